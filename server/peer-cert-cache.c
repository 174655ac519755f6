/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cache of verified chains, attached to a trust store. */

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "peer-cert-internal.h"

/* Verifying an ECDSA chain costs about 0.1 ms, nearly as much as a resumed handshake. The
 * verdict depends only on the certificates sent, the store and the time, so successes are
 * kept, keyed by the SHA-256 of the DER of every certificate the client sent, with the span
 * in which the whole chain is valid: a client that reconnects (resuming or not) costs a
 * digest, about 5 us. */
typedef struct CacheEntry {
        uint8_t digest[SHA256_DIGEST_LENGTH];
        PeerCert *pc;
} CacheEntry;

typedef struct PeerCertCache {
        pthread_mutex_t lock;
        EVP_MD *sha256;
        size_t n_entries;
        CacheEntry entries[];
} PeerCertCache;

static int cache_index = -1;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
        PeerCertCache *c = ptr;

        if (!c)
                return;
        for (size_t i = 0; i < c->n_entries; i++)
                peer_cert_free(c->entries[i].pc);
        EVP_MD_free(c->sha256);
        (void) pthread_mutex_destroy(&c->lock);
        free(c);
}

static void cache_index_init(void) {
        cache_index = X509_STORE_get_ex_new_index(0, NULL, NULL, NULL, cache_free);
}

int peer_cert_cache_attach(X509_STORE *roots, size_t n_entries) {
        PeerCertCache *c;

        assert_return(roots, -EINVAL);
        assert_return(n_entries > 0 && n_entries <= 1024 * 1024, -EINVAL);

        if (pthread_once(&cache_once, cache_index_init) != 0 || cache_index < 0)
                return -ENOMEM;
        if (X509_STORE_get_ex_data(roots, cache_index))
                return -EEXIST;

        c = calloc(1, sizeof(PeerCertCache) + n_entries * sizeof(CacheEntry));
        if (!c)
                return -ENOMEM;
        c->n_entries = n_entries;
        c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (!c->sha256 || pthread_mutex_init(&c->lock, NULL) != 0) {
                EVP_MD_free(c->sha256);
                free(c);
                ERR_clear_error();
                return -ENOMEM;
        }
        if (X509_STORE_set_ex_data(roots, cache_index, c) != 1) {
                cache_free(NULL, c, NULL, 0, 0, NULL);
                ERR_clear_error();
                return -ENOMEM;
        }
        return 0;
}

PeerCertCache *peer_cert_cache_get(X509_STORE *roots) {
        return cache_index >= 0 && roots ? X509_STORE_get_ex_data(roots, cache_index) : NULL;
}

int peer_cert_cache_digest(
        PeerCertCache *c, X509 *leaf, X509Chain *sent, uint8_t ret[SHA256_DIGEST_LENGTH]) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        int n_sent = sent ? sk_X509_num(sent) : 0; /* sk_X509_num(NULL) is -1 */
        unsigned len = 0;
        int r = -EIO;

        if (!md)
                return -ENOMEM;
        if (EVP_DigestInit_ex(md, c->sha256, NULL) != 1)
                goto finish;
        /* The leaf, then what came with it: DER is self-delimiting, so the concatenation is
         * unambiguous. */
        for (int i = -1; i < n_sent; i++) {
                X509 *x = i < 0 ? leaf : sk_X509_value(sent, i);
                unsigned char *der = NULL;
                int n = i2d_X509(x, &der), ok;

                if (n <= 0)
                        goto finish;
                ok = EVP_DigestUpdate(md, der, (size_t) n);
                OPENSSL_free(der);
                if (ok != 1)
                        goto finish;
        }
        if (EVP_DigestFinal_ex(md, ret, &len) == 1 && len == SHA256_DIGEST_LENGTH)
                r = 0;
finish:
        EVP_MD_CTX_free(md);
        ERR_clear_error();
        return r;
}

static CacheEntry *cache_slot(PeerCertCache *c, const uint8_t digest[SHA256_DIGEST_LENGTH]) {
        uint64_t h;

        memcpy(&h, digest, sizeof(h));
        return &c->entries[h % c->n_entries];
}

PeerCert *peer_cert_cache_lookup(PeerCertCache *c, const uint8_t digest[SHA256_DIGEST_LENGTH], time_t now) {
        CacheEntry *e = cache_slot(c, digest);
        PeerCert *pc = NULL;

        (void) pthread_mutex_lock(&c->lock);
        if (e->pc && memcmp(e->digest, digest, SHA256_DIGEST_LENGTH) == 0 && now >= e->pc->valid_from &&
            now <= e->pc->valid_until)
                pc = peer_cert_ref(e->pc);
        (void) pthread_mutex_unlock(&c->lock);
        return pc;
}

void peer_cert_cache_store(PeerCertCache *c, const uint8_t digest[SHA256_DIGEST_LENGTH], PeerCert *pc) {
        CacheEntry *e = cache_slot(c, digest);
        PeerCert *old;

        (void) pthread_mutex_lock(&c->lock);
        old = e->pc;
        memcpy(e->digest, digest, SHA256_DIGEST_LENGTH);
        e->pc = peer_cert_ref(pc);
        (void) pthread_mutex_unlock(&c->lock);
        peer_cert_free(old);
}
