/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cryptor-internal.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "random-util.h"

#define KEY_ID_INFO "keyward master key id"

static atomic_uint_fast64_t cryptor_serial;

/* One cipher context per thread, reused by every seal and open of that thread. It keeps the
 * expanded key of the cryptor it last served (thread_ctx_serial), so that the next call
 * with that cryptor only sets a new nonce: expanding an AES key costs as much as sealing a
 * short secret. The context is reset (and the expanded key wiped) after a failure, when a
 * call comes for another cryptor, when its cryptor is freed on this thread, and by the
 * key's destructor when the thread exits. */
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static pthread_key_t ctx_key;
static bool ctx_key_ok;
static _Thread_local EVP_CIPHER_CTX *thread_ctx;
static _Thread_local uint64_t thread_ctx_serial;

static void ctx_destroy(void *p) {
        EVP_CIPHER_CTX_free(p);
}

static void ctx_key_init(void) {
        ctx_key_ok = pthread_key_create(&ctx_key, ctx_destroy) == 0;
}

int cryptor_ctx_acquire(const Cryptor *c, CtxRef *ret) {
        EVP_CIPHER_CTX *ctx;

        if (thread_ctx) {
                *ret = (CtxRef){.ctx = thread_ctx, .keyed = thread_ctx_serial == c->serial};
                return 0;
        }

        ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return -ENOMEM;
        (void) pthread_once(&ctx_once, ctx_key_init);
        if (ctx_key_ok && pthread_setspecific(ctx_key, ctx) == 0) {
                thread_ctx = ctx;
                thread_ctx_serial = 0;
                *ret = (CtxRef){.ctx = ctx};
        } else
                *ret = (CtxRef){.ctx = ctx, .owned = true};
        return 0;
}

/* The init of a seal or an open: the whole key schedule the first time, the nonce alone
 * while the thread's context still holds this cryptor's key. */
int cryptor_ctx_init(const Cryptor *c, CtxRef *ref, int enc, const uint8_t *nonce) {
        if (ref->keyed)
                return EVP_CipherInit_ex(ref->ctx, NULL, NULL, NULL, nonce, enc) == 1 ? 0 : -EIO;
        /* 12 bytes is GCM's default IV length, so no EVP_CTRL_GCM_SET_IVLEN is needed. */
        if (EVP_CipherInit_ex(ref->ctx, c->cipher, NULL, c->key->data, nonce, enc) != 1)
                return -EIO;
        if (!ref->owned)
                thread_ctx_serial = c->serial;
        return 0;
}

void cryptor_ctx_release(CtxRef *ref) {
        if (!ref->ctx)
                return;
        if (ref->owned)
                EVP_CIPHER_CTX_free(ref->ctx);
        else if (!ref->ok) {
                (void) EVP_CIPHER_CTX_reset(ref->ctx);
                thread_ctx_serial = 0;
        }
        ref->ctx = NULL;
}

/* The one place OpenSSL errors become errnos: the queue is logged at debug (it never holds
 * key or data bytes) and cleared. */
int cryptor_openssl_error(int r, const char *what) {
        unsigned long e;

        while ((e = ERR_get_error()) != 0) {
                char buf[256];

                ERR_error_string_n(e, buf, sizeof(buf));
                log_debug("cryptor: %s: %s", what, buf);
        }
        return r;
}

/* A Cryptor over one raw key, with no data-key cache: a master key's (cryptor_new() adds the
 * cache) or a data key's. */
int cryptor_aead_new(const void *master_key, size_t size, Cryptor **ret) {
        _cleanup_(cryptor_freep) Cryptor *c = NULL;
        const char *name;
        int r;

        assert_return(master_key || size == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        switch (size) {
        case 16:
                name = "AES-128-GCM";
                break;
        case 24:
                name = "AES-192-GCM";
                break;
        case 32:
                name = "AES-256-GCM";
                break;
        default:
                return -EINVAL;
        }

        c = calloc(1, sizeof(Cryptor));
        if (!c)
                return -ENOMEM;
        c->key = secret_new_copy(master_key, size);
        if (!c->key)
                return -ENOMEM;
        ERR_clear_error();
        c->cipher = EVP_CIPHER_fetch(NULL, name, NULL);
        if (!c->cipher)
                return cryptor_openssl_error(-EOPNOTSUPP, "EVP_CIPHER_fetch");
        c->serial = atomic_fetch_add_explicit(&cryptor_serial, 1, memory_order_relaxed) + 1;
        r = cryptor_derive_key(c, KEY_ID_INFO, c->id, sizeof(c->id));
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

static DataKeyCache *data_key_cache_new(void) {
        DataKeyCache *k = calloc(1, sizeof(DataKeyCache));

        if (k)
                pthread_mutex_init(&k->lock, NULL);
        return k;
}

int cryptor_new(const void *master_key, size_t size, Cryptor **ret) {
        _cleanup_(cryptor_freep) Cryptor *c = NULL;
        int r;

        assert_return(master_key || size == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        r = cryptor_aead_new(master_key, size, &c);
        if (r < 0)
                return r;
        c->keys = data_key_cache_new();
        if (!c->keys)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

int cryptor_new_remote(
        const CryptorRemote *remote, const uint8_t id[static CRYPTOR_KEY_ID_SIZE], Cryptor **ret) {
        Cryptor *c;

        assert_return(remote && remote->open && remote->seal, -EINVAL);
        assert_return(ret, -EINVAL);

        c = calloc(1, sizeof(Cryptor));
        if (!c)
                return -ENOMEM;
        c->remote = remote;
        memcpy(c->id, id, CRYPTOR_KEY_ID_SIZE);
        c->keys = data_key_cache_new();
        if (!c->keys) {
                free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

const Cryptor *cryptor_by_id(const Cryptor *c, const uint8_t id[static CRYPTOR_KEY_ID_SIZE]) {
        if (memcmp(c->id, id, CRYPTOR_KEY_ID_SIZE) == 0)
                return c;
        for (size_t i = 0; i < c->n_old; i++)
                if (memcmp(c->old[i]->id, id, CRYPTOR_KEY_ID_SIZE) == 0)
                        return c->old[i];
        return NULL;
}

int cryptor_add_old_key(Cryptor *c, const void *master_key, size_t size) {
        _cleanup_(cryptor_freep) Cryptor *o = NULL;
        Cryptor **a;
        int r;

        assert_return(c, -EINVAL);

        if (c->remote)
                return -EOPNOTSUPP;
        r = cryptor_aead_new(master_key, size, &o);
        if (r < 0)
                return r;
        if (cryptor_by_id(c, o->id))
                return -EEXIST;
        a = reallocarray(c->old, c->n_old + 1, sizeof(Cryptor *));
        if (!a)
                return -ENOMEM;
        c->old = a;
        c->old[c->n_old++] = TAKE_PTR(o);
        return 0;
}

void cryptor_key_id(const Cryptor *c, uint8_t ret[static CRYPTOR_KEY_ID_SIZE]) {
        assert(c);
        memcpy(ret, c->id, CRYPTOR_KEY_ID_SIZE);
}

bool cryptor_sealed_by_current(const Cryptor *c, const KeyVersion *v) {
        assert(c);
        assert(v);
        return v->crypt && v->crypt_size == CRYPTOR_CRYPT_SIZE_V1 &&
                v->crypt[0] == CRYPTOR_VERSION_AES_GCM_KEY_ID &&
                memcmp(v->crypt + 1, c->id, CRYPTOR_KEY_ID_SIZE) == 0;
}

void cryptor_data_key_unref(DataKey *k) {
        if (!k || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
                return;
        cryptor_free(k->aead); /* wipes the key */
        free(k->key_id);
        free(k);
}

static void data_key_cache_free(DataKeyCache *k) {
        if (!k)
                return;
        while (k->newest) {
                DataKey *d = k->newest;

                k->newest = d->older;
                cryptor_data_key_unref(d);
        }
        pthread_mutex_destroy(&k->lock);
        free(k);
}

Cryptor *cryptor_free(Cryptor *c) {
        if (!c)
                return NULL;
        if (thread_ctx && thread_ctx_serial == c->serial) {
                (void) EVP_CIPHER_CTX_reset(thread_ctx);
                thread_ctx_serial = 0;
        }
        for (size_t i = 0; i < c->n_old; i++)
                cryptor_free(c->old[i]);
        free(c->old);
        data_key_cache_free(c->keys);
        secret_free(c->key);
        EVP_CIPHER_free(c->cipher);
        free(c);
        return NULL;
}
