/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Knox's register file (<knox-dir>/.registered), as the agent reads it with knox-compat:
 * every id returned is a valid key id, listed once, and the file the agent writes from them
 * reads back as the same list. */
#undef NDEBUG
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "agent-knox.h"
#include "fuzz.h"
#include "log.h"
#include "strv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char **ids = NULL, **again = NULL, *text = NULL;
        size_t n, invalid = 0, text_size = 0;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        log_set_max_level(LOG_CRIT);

        if (knox_registered_parse((const char *) data, size, &ids, &invalid) < 0)
                return 0;
        n = strv_length(ids);
        for (size_t i = 0; i < n; i++) {
                assert(registry_id_is_valid(ids[i]));
                for (size_t j = i + 1; j < n && j < i + 64; j++)
                        assert(strcmp(ids[i], ids[j]) != 0);
        }

        assert(knox_registered_format(ids, &text, &text_size) == 0);
        assert(strlen(text) == text_size);
        assert(knox_registered_parse(text, text_size, &again, &invalid) == 0);
        assert(invalid == 0);
        assert(strv_length(again) == n);
        for (size_t i = 0; i < n; i++)
                assert(strcmp(again[i], ids[i]) == 0);

        strv_free(ids);
        strv_free(again);
        free(text);
        return 0;
}
