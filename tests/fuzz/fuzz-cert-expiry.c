/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cert-expiry.h"
#include "fuzz.h"

/* Key data as keywardd and the agent sniff it for a certificate: any bytes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        int64_t t = 0;
        int r;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        r = cert_not_after(data, size, &t);
        if (r < 0 || r > 1)
                __builtin_trap();
        if (r == 0 && t != 0) /* untouched when no certificate */
                __builtin_trap();
        return 0;
}
