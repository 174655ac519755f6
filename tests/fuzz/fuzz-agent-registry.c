/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's registry file parser, and the checks that Register's D-Bus arguments go
 * through (ids, readers, units, credential names, on_change, the file's path, owner and
 * group). */
#undef NDEBUG
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "agent-registry.h"
#include "fuzz.h"
#include "log.h"
#include "strv.h"

static void check_names(const char *text, size_t size) {
        char *copy = strndup(text, size);

        if (!copy)
                return;
        for (char *p = copy, *e; p; p = e) {
                e = strchr(p, '\n');
                if (e)
                        *e++ = '\0';
                (void) registry_id_is_valid(p);
                (void) registry_reader_is_valid(p);
                (void) registry_unit_is_valid(p);
                (void) registry_credential_is_valid(p);
                (void) on_change_from_string(p);
                (void) registry_account_is_valid(p);
                if (registry_file_path_is_valid(p))
                        assert(p[0] == '/' && !strstr(p, "//") && !strstr(p, "/../") && !strstr(p, "/./"));
        }
        free(copy);
}

/* keyward register -f's id list: words, each once, none empty or holding whitespace. */
static void check_id_list(const char *text, size_t size) {
        char **ids = NULL;
        size_t n;

        if (registry_id_list_parse(text, size, &ids) < 0) {
                strv_free(ids);
                return;
        }
        n = strv_length(ids);
        for (size_t i = 0; i < n; i++) {
                assert(ids[i][0] != '\0');
                assert(!strpbrk(ids[i], " \t\r\n"));
                for (size_t j = i + 1; j < n && j < i + 64; j++)
                        assert(strcmp(ids[i], ids[j]) != 0);
        }
        strv_free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Registration *regs = NULL, *again = NULL;
        const Registration **ptrs = NULL;
        size_t n = 0, m = 0, out_size = 0;
        char *out = NULL;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        log_set_max_level(LOG_CRIT);

        check_names((const char *) data, size);
        check_id_list((const char *) data, size);
        if (registry_parse((const char *) data, size, &regs, &n) < 0)
                return 0;

        /* What was read is valid, and reads back the same after a write. */
        ptrs = calloc(n + 1, sizeof(Registration *));
        assert(ptrs);
        for (size_t i = 0; i < n; i++) {
                assert(registration_validate(&regs[i], NULL) == 0);
                ptrs[i] = &regs[i];
        }
        assert(registry_format(ptrs, n, &out, &out_size) == 0);
        assert(registry_parse(out, out_size, &again, &m) == 0);
        assert(m == n);
        for (size_t i = 0; i < n; i++) {
                assert(strcmp(again[i].id, regs[i].id) == 0);
                assert(again[i].on_change == regs[i].on_change);
                assert(strcmp(strempty(again[i].file), strempty(regs[i].file)) == 0);
                assert(strcmp(strempty(again[i].file_owner), strempty(regs[i].file_owner)) == 0);
                assert(strcmp(strempty(again[i].file_group), strempty(regs[i].file_group)) == 0);
                assert(again[i].file_mode == regs[i].file_mode);
        }

        for (size_t i = 0; i < n; i++)
                registration_done(&regs[i]);
        for (size_t i = 0; i < m; i++)
                registration_done(&again[i]);
        free(regs);
        free(again);
        free(ptrs);
        free(out);
        return 0;
}
