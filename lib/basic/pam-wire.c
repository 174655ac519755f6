/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "pam-wire.h"

#include <errno.h>
#include <string.h>

int pam_wire_split(const char *buf, size_t len, const char *fields[], size_t max) {
        size_t n = 0;

        if (!buf || len == 0 || len > PAM_WIRE_MAX || buf[len - 1] != '\0')
                return -EBADMSG;
        for (const char *p = buf, *end = buf + len; p < end;) {
                size_t l = strlen(p);

                if (n == max)
                        return -EBADMSG;
                fields[n++] = p;
                p += l + 1;
        }
        return (int) n;
}

int pam_wire_join(char *buf, size_t size, const char *const fields[], size_t n) {
        size_t len = 0;

        for (size_t i = 0; i < n; i++) {
                size_t l;

                if (!fields[i])
                        return -E2BIG;
                l = strlen(fields[i]);
                if (l + 1 > size - len || len + l + 1 > PAM_WIRE_MAX)
                        return -E2BIG;
                memcpy(buf + len, fields[i], l + 1);
                len += l + 1;
        }
        return (int) len;
}
