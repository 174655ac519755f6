/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "random-util.h"

#include <errno.h>
#include <sys/random.h>

int random_bytes(void *p, size_t n) {
        uint8_t *q = p;

        while (n > 0) {
                ssize_t l = getrandom(q, n, 0);

                if (l < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                q += l;
                n -= (size_t) l;
        }
        return 0;
}
