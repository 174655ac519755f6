/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libevent's own allocations hold plaintext that keywardd never sees as a buffer of its own: a
 * request's bytes are copied out of TLS into libevent's input chains (a POST's secret, an
 * Authorization token), and an answer copied into the output's chains (server-exchange.c joins
 * a small answer's head and body so) stays there until it is sent. libevent frees them with
 * plain free(), which leaves the bytes in the heap; routing its frees through a wiping free
 * closes that gap for every such buffer at once, at the cost of a memset of each freed block,
 * mostly input chains of 4 KiB or less. OpenSSL's own read buffer, where requests are
 * decrypted, is wiped by SSL_OP_CLEANSE_PLAINTEXT (server-tls.c): wiping all of OpenSSL's frees
 * instead cost a new connection 2% more for the handshake's allocations. */

#include <event2/event.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"
#include "wipe-alloc.h"

static void wiping_free(void *p) {
        if (p)
                (void) erase_and_free(p, malloc_usable_size(p));
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

void wipe_alloc_install(void) {
        event_set_mem_functions(malloc, wiping_realloc, wiping_free);
}
