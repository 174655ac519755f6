/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The payload of a store change notification (store_change_parse): whatever anyone allowed
 * to connect to the database sends on the channel. What it accepts names a counter above 0
 * and, if anything, an id that is a suffix of the input. */

#include <stdlib.h>

#include "fuzz.h"
#include "store-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s;
        const char *id = NULL;
        uint64_t counter = 0;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        if (store_change_parse(s, &id, &counter) == 0) {
                if (counter == 0)
                        __builtin_trap();
                if (id && (id <= s || id > s + strlen(s) || id[-1] != ' ' || *id == '\0'))
                        __builtin_trap();
        }
        free(s);
        return 0;
}
