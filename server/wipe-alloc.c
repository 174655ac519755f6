/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libevent's and OpenSSL's own allocations hold plaintext that keywardd never sees as a buffer
 * of its own: a request's bytes are decrypted in OpenSSL's read buffer and copied into
 * libevent's input chains (a POST's secret, an Authorization token), and an answer copied into
 * the output's chains stays there until it is sent. Both free them with plain free(), which
 * leaves the bytes in the heap. Routing their frees through a wiping free closes that gap for
 * every such buffer at once; it costs a memset of each freed block, mostly OpenSSL's read
 * buffer (about 17 KiB, released after each request) and libevent's chains. OpenSSL's own
 * SSL_OP_CLEANSE_PLAINTEXT does the same for its read buffer with a slower byte loop. */

#include <errno.h>
#include <event2/event.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "wipe-alloc.h"

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

static void *crypto_malloc(size_t n, const char *file, int line) {
        return malloc(n);
}

static void *crypto_realloc(void *p, size_t n, const char *file, int line) {
        return wiping_realloc(p, n);
}

static void crypto_free(void *p, const char *file, int line) {
        wiping_free(p);
}

static bool openssl_wipes;

int wipe_alloc_install(void) {
        event_set_mem_functions(malloc, wiping_realloc, wiping_free);
        if (!CRYPTO_set_mem_functions(crypto_malloc, crypto_realloc, crypto_free))
                return -EBUSY;
        openssl_wipes = true;
        return 0;
}

bool wipe_alloc_openssl(void) {
        return openssl_wipes;
}
