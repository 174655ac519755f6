/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "fuzz.h"
#include "pam-wire.h"

/* What reaches the agent's PAM socket: a packet is split into fields that lie inside it and
 * join back into the same bytes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *f[PAM_WIRE_FIELDS_MAX];
        char back[PAM_WIRE_MAX];
        int n, len;

        n = pam_wire_split((const char *) data, size, f, PAM_WIRE_FIELDS_MAX);
        if (n < 0)
                return 0;
        if (n == 0 || size == 0 || size > PAM_WIRE_MAX)
                __builtin_trap();
        for (int i = 0; i < n; i++)
                if ((const uint8_t *) f[i] < data || (const uint8_t *) f[i] + strlen(f[i]) >= data + size)
                        __builtin_trap();
        len = pam_wire_join(back, sizeof(back), f, (size_t) n);
        if (len != (int) size || memcmp(back, data, size) != 0)
                __builtin_trap();
        return 0;
}
