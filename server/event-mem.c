/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libevent's own allocations hold plaintext that keywardd never sees as a buffer of its own:
 * a request's bytes as they come out of TLS (a POST's secret, an Authorization token) sit in
 * the input buffer's chains, and an answer copied into the output's chains stays there until
 * it is sent. libevent frees those chains with plain free(), which leaves the bytes in the
 * heap. Routing its frees through a wiping free closes that gap; it costs a memset of each
 * freed block, mostly the input chains of 4 KiB or less. */

#include <event2/event.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "event-mem.h"

static void wiping_free(void *p) {
        if (!p)
                return;
        explicit_bzero(p, malloc_usable_size(p));
        free(p);
}

/* A block that grows moves through a fresh allocation, so that the old one is wiped; one that
 * shrinks or fits stays where it is. */
static void *wiping_realloc(void *p, size_t n) {
        size_t have;
        void *q;

        if (!p)
                return malloc(n);
        if (n == 0) {
                wiping_free(p);
                return NULL;
        }
        have = malloc_usable_size(p);
        if (n <= have)
                return p;
        q = malloc(n);
        if (!q)
                return NULL;
        memcpy(q, p, have);
        wiping_free(p);
        return q;
}

void event_mem_wipe_on_free(void) {
        event_set_mem_functions(malloc, wiping_realloc, wiping_free);
}
