/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Keys derived from the master key: HKDF-SHA256, and the data keys of version 1, one per
 * Knox key, in a bounded cache. */

#include <assert.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <stdlib.h>
#include <string.h>

#include "cryptor-internal.h"
#include "log.h"

#define DATA_KEY_INFO "keyward data key v1" /* then a NUL and the Knox key id */

/* HKDF-SHA256 with no salt of c's own key. */
static int hkdf(const Cryptor *c, const void *info, size_t info_len, void *ret, size_t size) {
        EVP_PKEY_CTX *ctx;
        size_t n = size;
        int r = -EIO;

        ERR_clear_error();
        ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
        if (!ctx)
                return -ENOMEM;
        if (EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0 &&
            EVP_PKEY_CTX_set1_hkdf_key(ctx, c->key->data, (int) c->key->size) > 0 &&
            EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int) info_len) > 0 &&
            EVP_PKEY_derive(ctx, ret, &n) > 0 && n == size)
                r = 0;
        EVP_PKEY_CTX_free(ctx);
        if (r < 0)
                explicit_bzero(ret, size);
        return cryptor_openssl_error(r, "HKDF");
}

int cryptor_derive_key(const Cryptor *c, const char *info, void *ret, size_t size) {
        assert_return(c, -EINVAL);
        assert_return(info, -EINVAL);
        assert_return(ret, -EINVAL);

        if (c->remote)
                return -EOPNOTSUPP;
        return hkdf(c, info, strlen(info), ret, size);
}

int cryptor_data_key(
        const Cryptor *c,
        const uint8_t master_id[static CRYPTOR_KEY_ID_SIZE],
        const char *key_id,
        Secret **ret) {
        _cleanup_(secret_freep) Secret *k = NULL;
        _cleanup_free_ uint8_t *info = NULL;
        const Cryptor *m;
        size_t n;
        int r;

        assert_return(c, -EINVAL);
        assert_return(key_id, -EINVAL);
        assert_return(ret, -EINVAL);

        if (c->remote)
                return -EOPNOTSUPP;
        m = cryptor_by_id(c, master_id);
        if (!m)
                return -ENOKEY;
        n = strlen(key_id);
        if (n > INT_MAX - sizeof(DATA_KEY_INFO))
                return -E2BIG;
        info = malloc(sizeof(DATA_KEY_INFO) + n); /* the info string with its NUL, the key id */
        k = secret_new(CRYPTOR_DATA_KEY_SIZE);
        if (!info || !k)
                return -ENOMEM;
        memcpy(info, DATA_KEY_INFO, sizeof(DATA_KEY_INFO));
        memcpy(info + sizeof(DATA_KEY_INFO), key_id, n);
        r = hkdf(m, info, sizeof(DATA_KEY_INFO) + n, k->data, k->size);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(k);
        return 0;
}

static uint64_t data_key_hash(const uint8_t master_id[static CRYPTOR_KEY_ID_SIZE], const char *key_id) {
        uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */

        for (size_t i = 0; i < CRYPTOR_KEY_ID_SIZE; i++)
                h = (h ^ master_id[i]) * UINT64_C(1099511628211);
        for (const char *p = key_id; *p; p++)
                h = (h ^ (uint8_t) *p) * UINT64_C(1099511628211);
        return h;
}

/* Under the cache's lock: the entry, made the most recently used. */
static DataKey *data_key_find(DataKeyCache *k, uint64_t h, const uint8_t *master_id, const char *key_id) {
        DataKey *d;

        for (d = k->buckets[h % DATA_KEY_BUCKETS]; d; d = d->bucket_next)
                if (d->hash == h && memcmp(d->master_id, master_id, CRYPTOR_KEY_ID_SIZE) == 0 &&
                    streq(d->key_id, key_id))
                        break;
        if (!d || k->newest == d)
                return d;
        /* Unlink, then put first. */
        d->newer->older = d->older;
        if (d->older)
                d->older->newer = d->newer;
        else
                k->oldest = d->newer;
        d->newer = NULL;
        d->older = k->newest;
        k->newest->newer = d;
        k->newest = d;
        return d;
}

/* Under the cache's lock: drop the least recently used entry (its key is wiped once no
 * thread uses it any more). */
static void data_key_evict(DataKeyCache *k) {
        DataKey *d = k->oldest, **p;

        for (p = &k->buckets[d->hash % DATA_KEY_BUCKETS]; *p != d; p = &(*p)->bucket_next)
                ;
        *p = d->bucket_next;
        k->oldest = d->newer;
        if (k->oldest)
                k->oldest->older = NULL;
        else
                k->newest = NULL;
        k->n--;
        cryptor_data_key_unref(d);
}

/* The data key of key_id under master_id, from c's cache or else made (a local cryptor) or
 * asked for (a remote one) and kept. The caller unrefs it. -EOPNOTSUPP when the remote side
 * gives no data keys. */
int cryptor_data_key_get(const Cryptor *c, const uint8_t *master_id, const char *key_id, DataKey **ret) {
        DataKeyCache *k = c->keys;
        _cleanup_(secret_freep) Secret *s = NULL;
        _cleanup_(cryptor_freep) Cryptor *aead = NULL;
        DataKey *d, *n;
        uint64_t h;
        int r;

        assert(k);

        h = data_key_hash(master_id, key_id);
        pthread_mutex_lock(&k->lock);
        d = data_key_find(k, h, master_id, key_id);
        if (d)
                atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
        pthread_mutex_unlock(&k->lock);
        if (d) {
                *ret = d;
                return 0;
        }

        /* Asked for without the lock: the key holder's round trip must not stall the others. */
        if (c->remote)
                r = c->remote->data_key ? c->remote->data_key(c->remote->userdata, master_id, key_id, &s) :
                                          -EOPNOTSUPP;
        else
                r = cryptor_data_key(c, master_id, key_id, &s);
        if (r < 0)
                return r;
        if (!s || s->size != CRYPTOR_DATA_KEY_SIZE)
                return -EIO;
        r = cryptor_aead_new(s->data, s->size, &aead);
        if (r < 0)
                return r;
        n = calloc(1, sizeof(DataKey));
        if (!n)
                return -ENOMEM;
        n->key_id = strdup(key_id);
        if (!n->key_id) {
                free(n);
                return -ENOMEM;
        }
        n->hash = h;
        memcpy(n->master_id, master_id, CRYPTOR_KEY_ID_SIZE);
        n->aead = TAKE_PTR(aead);
        atomic_init(&n->refs, 2); /* the cache's and the caller's */

        pthread_mutex_lock(&k->lock);
        d = data_key_find(k, h, master_id, key_id); /* another thread may have been quicker */
        if (d) {
                atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
                atomic_store(&n->refs, 1);
        } else {
                n->bucket_next = k->buckets[h % DATA_KEY_BUCKETS];
                k->buckets[h % DATA_KEY_BUCKETS] = n;
                n->older = k->newest;
                if (k->newest)
                        k->newest->newer = n;
                else
                        k->oldest = n;
                k->newest = n;
                if (++k->n > CRYPTOR_DATA_KEY_CACHE_MAX)
                        data_key_evict(k);
                d = TAKE_PTR(n);
        }
        pthread_mutex_unlock(&k->lock);
        cryptor_data_key_unref(n);
        *ret = d;
        return 0;
}
