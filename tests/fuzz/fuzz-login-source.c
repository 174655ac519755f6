/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "server-login.h"

/* A client's address or a relayed rhost, as the login throttle counts it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = NULL;
        struct in6_addr a;
        size_t n;
        int r;

        if (size > FUZZ_INPUT_MAX)
                return 0;

        r = login_source_address((const char *) data, size, &s);
        if (r == -EBADMSG) {
                /* only for a NUL inside */
                if (!memchr(data, '\0', size))
                        __builtin_trap();
                return 0;
        }
        if (r < 0 || !s)
                __builtin_trap();
        n = strlen(s);
        /* The result is the input itself, or an IPv6 /64 (a prefix with its host half zero),
         * or the IPv4 address of an IPv4-mapped one. */
        if (n == size && memcmp(s, data, size) == 0)
                return 0;
        if (n > 3 && streq(s + n - 3, "/64")) {
                s[n - 3] = '\0';
                if (inet_pton(AF_INET6, s, &a) != 1)
                        __builtin_trap();
                for (size_t i = 8; i < 16; i++)
                        if (a.s6_addr[i] != 0)
                                __builtin_trap();
        } else if (inet_pton(AF_INET, s, &a) != 1)
                __builtin_trap();
        return 0;
}
