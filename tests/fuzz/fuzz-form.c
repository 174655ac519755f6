/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "form.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_form_ Form f = FORM_NULL;
        int r;

        if (size > FUZZ_INPUT_MAX)
                return 0;

        r = form_parse((const char *) data, size, &f);
        if (r == -E2BIG)
                return 0;
        for (size_t i = 0; i < f.n; i++) {
                /* Every field is NUL-terminated where its length says, and findable. */
                if (f.fields[i].key[f.fields[i].key_len] != '\0' ||
                    f.fields[i].value[f.fields[i].value_len] != '\0')
                        __builtin_trap();
                if (strlen(f.fields[i].key) == f.fields[i].key_len && !form_get(&f, f.fields[i].key))
                        __builtin_trap();
        }
        return 0;
}
