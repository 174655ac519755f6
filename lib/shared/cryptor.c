/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cryptor.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "random-util.h"

#define VARINT_MAX_SIZE 10 /* Go's binary.MaxVarintLen64 */
#define KEY_ID_INFO "keyward master key id"
#define DATA_KEY_INFO "keyward data key v1" /* then a NUL and the Knox key id */
#define DATA_KEY_BUCKETS 2048U              /* twice CRYPTOR_DATA_KEY_CACHE_MAX */

typedef struct DataKey DataKey;
typedef struct DataKeyCache DataKeyCache;

static int data_key_get(const Cryptor *c, const uint8_t *master_id, const char *key_id, DataKey **ret);
static void data_key_unref(DataKey *k);
DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(DataKey *, data_key_unref, NULL);

/* The cryptor never changes after cryptor_new() and every call uses its own thread's cipher
 * context, so one Cryptor may be used from several threads at once. */
struct Cryptor {
        Secret *key;
        /* Fetched once here: OpenSSL 3 would otherwise look the cipher up in its provider
         * store on every init. Reference-counted and read-only, so threads share it. */
        EVP_CIPHER *cipher;
        uint64_t serial; /* names this cryptor's key in the thread contexts; never reused */
        uint8_t id[CRYPTOR_KEY_ID_SIZE];
        const CryptorRemote *remote; /* the key is elsewhere: key and cipher are NULL */
        /* Older master keys, for opening only (each a Cryptor with no older keys itself). */
        Cryptor **old;
        size_t n_old;
        /* The data keys of version 1, by master key id and Knox key id; its own lock, so the
         * Cryptor itself still never changes. NULL in the Cryptors that hold a data key or an
         * old master key. */
        DataKeyCache *keys;
};

/* One Knox key's data key: an AES-256-GCM Cryptor over it. Reference-counted, so that an
 * eviction while another thread seals or opens with it frees it after that thread is done. */
struct DataKey {
        atomic_uint refs;
        uint64_t hash;
        uint8_t master_id[CRYPTOR_KEY_ID_SIZE];
        char *key_id;
        Cryptor *aead;
        DataKey *newer, *older, *bucket_next;
};

struct DataKeyCache {
        pthread_mutex_t lock;
        DataKey *buckets[DATA_KEY_BUCKETS];
        DataKey *newest, *oldest; /* most and least recently used */
        size_t n;
};

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

typedef struct CtxRef {
        EVP_CIPHER_CTX *ctx;
        bool owned; /* no thread slot could be set up: a context for this call only */
        bool keyed; /* the context already holds this cryptor's expanded key */
        bool ok;    /* the call succeeded: the thread's context may keep the key */
} CtxRef;

static int ctx_acquire(const Cryptor *c, CtxRef *ret) {
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
static int ctx_init(const Cryptor *c, CtxRef *ref, int enc, const uint8_t *nonce) {
        if (ref->keyed)
                return EVP_CipherInit_ex(ref->ctx, NULL, NULL, NULL, nonce, enc) == 1 ? 0 : -EIO;
        /* 12 bytes is GCM's default IV length, so no EVP_CTRL_GCM_SET_IVLEN is needed. */
        if (EVP_CipherInit_ex(ref->ctx, c->cipher, NULL, c->key->data, nonce, enc) != 1)
                return -EIO;
        if (!ref->owned)
                thread_ctx_serial = c->serial;
        return 0;
}

static void ctx_release(CtxRef *ref) {
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
static int openssl_error(int r, const char *what) {
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
static int aead_new(const void *master_key, size_t size, Cryptor **ret) {
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
                return openssl_error(-EOPNOTSUPP, "EVP_CIPHER_fetch");
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

        r = aead_new(master_key, size, &c);
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

static const Cryptor *cryptor_by_id(const Cryptor *c, const uint8_t id[static CRYPTOR_KEY_ID_SIZE]) {
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
        r = aead_new(master_key, size, &o);
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

static void data_key_unref(DataKey *k) {
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
                data_key_unref(d);
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

/* Go's binary.PutUvarint into a zeroed 10-byte field. */
static void put_uvarint(uint8_t out[static VARINT_MAX_SIZE], uint64_t x) {
        size_t i = 0;

        while (x >= 0x80) {
                out[i++] = (uint8_t) x | 0x80;
                x >>= 7;
        }
        out[i] = (uint8_t) x;
}

/* The fixed part of Knox's associated data: the version id and the creation time as Go's
 * binary.PutUvarint and PutVarint (zig-zag) write them, each in a zeroed 10-byte field. The
 * key id follows it. */
static void ad_fixed(uint64_t version_id, int64_t ts, uint8_t ret[static CRYPTOR_AD_FIXED_SIZE]) {
        uint64_t zz;

        zz = (uint64_t) ts << 1;
        if (ts < 0)
                zz = ~zz;
        memset(ret, 0, CRYPTOR_AD_FIXED_SIZE);
        put_uvarint(ret, version_id);
        put_uvarint(ret + VARINT_MAX_SIZE, zz);
}

int cryptor_associated_data(const char *key_id, uint64_t version_id, int64_t ts, Buf *ret) {
        _cleanup_buf_ Buf b = BUF_INIT;
        uint8_t field[CRYPTOR_AD_FIXED_SIZE];
        int r;

        assert_return(key_id, -EINVAL);
        assert_return(ret, -EINVAL);

        ad_fixed(version_id, ts, field);
        r = buf_put(&b, field, sizeof(field));
        if (r < 0)
                return r;
        r = buf_puts(&b, key_id);
        if (r < 0)
                return r;

        *ret = b;
        b = BUF_INIT;
        return 0;
}

/* The associated data goes to GCM in two parts, the fixed one and the key id, with no copy
 * of them put together. */
static int ad_update(EVP_CIPHER_CTX *ctx, const char *key_id, size_t key_id_len, const KeyVersion *v) {
        uint8_t field[CRYPTOR_AD_FIXED_SIZE];
        int outl;

        ad_fixed(v->id, v->ts, field);
        if (EVP_CipherUpdate(ctx, NULL, &outl, field, (int) sizeof(field)) != 1)
                return -EIO;
        if (key_id_len > 0 &&
            EVP_CipherUpdate(ctx, NULL, &outl, (const uint8_t *) key_id, (int) key_id_len) != 1)
                return -EIO;
        return 0;
}

static int check_sizes(size_t data_size, size_t key_id_len) {
        /* OpenSSL counts in int; the tag must fit too. */
        if (data_size > INT_MAX - CRYPTOR_TAG_SIZE || key_id_len > INT_MAX)
                return -E2BIG;
        return 0;
}

/* AES-GCM as Go's cipher.NewGCM does it: 12-byte nonce, 16-byte tag after the ciphertext. */
static int seal_into(
        const Cryptor *c,
        const char *key_id,
        const KeyVersion *v,
        uint8_t **ret_sealed,
        size_t *ret_sealed_size,
        uint8_t **ret_crypt) {

        _cleanup_(ctx_release) CtxRef ref = {};
        _cleanup_(data_key_unrefp) DataKey *dk = NULL;
        EVP_CIPHER_CTX *ctx;
        _cleanup_free_ uint8_t *sealed = NULL, *crypt = NULL;
        size_t n, key_id_len;
        int outl, r;

        assert(c);
        assert(v);

        if (!key_id || !v->data)
                return -EINVAL;
        if (c->remote && !c->remote->data_key)
                return c->remote->seal(
                        c->remote->userdata, key_id, v, ret_sealed, ret_sealed_size, ret_crypt);
        /* Version 1: under this key's data key, made or fetched once. */
        r = data_key_get(c, c->id, key_id, &dk);
        if (r < 0)
                return r;
        n = v->data->size;
        key_id_len = strlen(key_id);
        r = check_sizes(n, key_id_len);
        if (r < 0)
                return r;

        crypt = malloc(CRYPTOR_CRYPT_SIZE_V1);
        sealed = malloc(n + CRYPTOR_TAG_SIZE);
        if (!crypt || !sealed)
                return -ENOMEM;

        crypt[0] = CRYPTOR_VERSION_AES_GCM_KEY_ID;
        memcpy(crypt + 1, c->id, CRYPTOR_KEY_ID_SIZE);
        r = random_bytes(crypt + CRYPTOR_NONCE_OFFSET_V1, CRYPTOR_NONCE_SIZE);
        if (r < 0)
                return r;

        ERR_clear_error();

        if (ctx_acquire(dk->aead, &ref) < 0)
                return openssl_error(-ENOMEM, "EVP_CIPHER_CTX_new");
        ctx = ref.ctx;
        if (ctx_init(dk->aead, &ref, 1, crypt + CRYPTOR_NONCE_OFFSET_V1) < 0)
                return openssl_error(-EIO, "EVP_EncryptInit_ex");
        if (ad_update(ctx, key_id, key_id_len, v) < 0)
                return openssl_error(-EIO, "EVP_EncryptUpdate(AD)");
        if (n > 0) {
                if (EVP_EncryptUpdate(ctx, sealed, &outl, v->data->data, (int) n) != 1)
                        return openssl_error(-EIO, "EVP_EncryptUpdate");
                if ((size_t) outl != n)
                        return openssl_error(-EIO, "EVP_EncryptUpdate(length)");
        }
        if (EVP_EncryptFinal_ex(ctx, sealed + n, &outl) != 1 || outl != 0)
                return openssl_error(-EIO, "EVP_EncryptFinal_ex");
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTOR_TAG_SIZE, sealed + n) != 1)
                return openssl_error(-EIO, "EVP_CTRL_GCM_GET_TAG");
        ref.ok = true;

        *ret_sealed = TAKE_PTR(sealed);
        *ret_sealed_size = n + CRYPTOR_TAG_SIZE;
        *ret_crypt = TAKE_PTR(crypt);
        return 0;
}

/* Open with one master key (c's own, not its old ones) and the given nonce. The plaintext is
 * decrypted straight into locked memory; on failure that memory is wiped. */
static int
open_with(const Cryptor *c, const char *key_id, const KeyVersion *v, const uint8_t *nonce, Secret **ret) {
        _cleanup_(ctx_release) CtxRef ref = {};
        EVP_CIPHER_CTX *ctx;
        _cleanup_(secret_freep) Secret *s = NULL;
        uint8_t tag[CRYPTOR_TAG_SIZE];
        size_t n, key_id_len;
        int outl, r;

        assert(c);
        assert(v);
        assert(ret);

        n = v->sealed_size - CRYPTOR_TAG_SIZE;
        key_id_len = strlen(key_id);
        r = check_sizes(n, key_id_len);
        if (r < 0)
                return r;

        s = secret_new(n);
        if (!s)
                return -ENOMEM;

        /* OpenSSL wants a writable tag buffer; the tag is not secret. */
        memcpy(tag, v->sealed + n, CRYPTOR_TAG_SIZE);

        ERR_clear_error();

        if (ctx_acquire(c, &ref) < 0)
                return openssl_error(-ENOMEM, "EVP_CIPHER_CTX_new");
        ctx = ref.ctx;
        if (ctx_init(c, &ref, 0, nonce) < 0)
                return openssl_error(-EIO, "EVP_DecryptInit_ex");
        if (ad_update(ctx, key_id, key_id_len, v) < 0)
                return openssl_error(-EIO, "EVP_DecryptUpdate(AD)");
        if (n > 0) {
                if (EVP_DecryptUpdate(ctx, s->data, &outl, v->sealed, (int) n) != 1)
                        return openssl_error(-EIO, "EVP_DecryptUpdate");
                if ((size_t) outl != n)
                        return openssl_error(-EIO, "EVP_DecryptUpdate(length)");
        }
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTOR_TAG_SIZE, tag) != 1)
                return openssl_error(-EIO, "EVP_CTRL_GCM_SET_TAG");
        /* A tag mismatch leaves nothing on OpenSSL's error queue; either way it is -EBADMSG. */
        if (EVP_DecryptFinal_ex(ctx, s->data + n, &outl) != 1)
                return openssl_error(-EBADMSG, "EVP_DecryptFinal_ex");
        ref.ok = true;

        *ret = TAKE_PTR(s);
        return 0;
}

static int open_into(const Cryptor *c, const char *key_id, const KeyVersion *v, Secret **ret) {
        _cleanup_(data_key_unrefp) DataKey *dk = NULL;
        int r;

        assert(c);
        assert(v);

        if (!key_id)
                return -EINVAL;
        /* Knox's version 0 is opened with a master key itself: where the key is. So is all of
         * it when the remote side gives no data keys. */
        if (c->remote &&
            (!c->remote->data_key || !v->crypt || v->crypt_size < 1 ||
             v->crypt[0] != CRYPTOR_VERSION_AES_GCM_KEY_ID))
                return c->remote->open(c->remote->userdata, key_id, v, ret);

        /* Knox checks the version byte before anything else. */
        if (!v->crypt || v->crypt_size < 1)
                return -EINVAL;
        if (v->crypt[0] != CRYPTOR_VERSION_AES_GCM && v->crypt[0] != CRYPTOR_VERSION_AES_GCM_KEY_ID)
                return -EPROTONOSUPPORT;
        if (v->crypt_size !=
            (v->crypt[0] == CRYPTOR_VERSION_AES_GCM ? CRYPTOR_CRYPT_SIZE_V0 : CRYPTOR_CRYPT_SIZE_V1))
                return -EINVAL;
        if (!v->sealed || v->sealed_size < CRYPTOR_TAG_SIZE)
                return -EINVAL;

        if (v->crypt[0] == CRYPTOR_VERSION_AES_GCM_KEY_ID) {
                r = data_key_get(c, v->crypt + 1, key_id, &dk); /* -ENOKEY: not a key c has */
                if (r < 0)
                        return r;
                return open_with(dk->aead, key_id, v, v->crypt + CRYPTOR_NONCE_OFFSET_V1, ret);
        }

        /* Knox's form names no key: the current one first, then each old one. */
        r = open_with(c, key_id, v, v->crypt + 1, ret);
        for (size_t i = 0; r == -EBADMSG && i < c->n_old; i++)
                r = open_with(c->old[i], key_id, v, v->crypt + 1, ret);
        return r;
}

int cryptor_seal_version(const Cryptor *c, const char *key_id, KeyVersion *v) {
        uint8_t *sealed, *crypt;
        size_t sealed_size;
        int r;

        assert_return(c, -EINVAL);
        assert_return(v, -EINVAL);

        r = seal_into(c, key_id, v, &sealed, &sealed_size, &crypt);
        if (r < 0)
                return r;

        erase_and_free(v->sealed, v->sealed_size);
        erase_and_free(v->crypt, v->crypt_size);
        v->sealed = sealed;
        v->sealed_size = sealed_size;
        v->crypt = crypt;
        v->crypt_size = CRYPTOR_CRYPT_SIZE_V1;
        return 0;
}

int cryptor_open_version(const Cryptor *c, const char *key_id, KeyVersion *v) {
        Secret *s;
        int r;

        assert_return(c, -EINVAL);
        assert_return(v, -EINVAL);

        r = open_into(c, key_id, v, &s);
        if (r < 0)
                return r;

        secret_free(v->data);
        v->data = s;
        return 0;
}

typedef struct Sealed {
        uint8_t *sealed;
        size_t sealed_size;
        uint8_t *crypt;
} Sealed;

static Sealed *sealed_array_free(Sealed *a, size_t n) {
        if (!a)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                free(a[i].sealed);
                free(a[i].crypt);
        }
        free(a);
        return NULL;
}

/* Both work on all versions or none: results are collected first and only applied once
 * every version succeeded, so a failure leaves k as it was. */
int cryptor_seal_key(const Cryptor *c, Key *k) {
        Sealed *a;
        int r = 0;

        assert_return(c, -EINVAL);
        assert_return(k, -EINVAL);

        if (k->n_versions == 0)
                return 0;

        a = calloc(k->n_versions, sizeof(Sealed));
        if (!a)
                return -ENOMEM;

        for (size_t i = 0; i < k->n_versions; i++) {
                const KeyVersion *v = k->versions + i;

                if (v->sealed)
                        continue; /* stored ciphertexts are kept as they are */
                if (!v->data) {
                        r = -EINVAL; /* neither data nor a sealed form: nothing to store */
                        goto finish;
                }
                r = seal_into(c, k->id, v, &a[i].sealed, &a[i].sealed_size, &a[i].crypt);
                if (r < 0)
                        goto finish;
        }

        for (size_t i = 0; i < k->n_versions; i++) {
                KeyVersion *v = k->versions + i;

                if (!a[i].sealed)
                        continue;
                v->sealed = TAKE_PTR(a[i].sealed);
                v->sealed_size = a[i].sealed_size;
                v->crypt = TAKE_PTR(a[i].crypt);
                v->crypt_size = CRYPTOR_CRYPT_SIZE_V1;
        }

finish:
        sealed_array_free(a, k->n_versions);
        return r;
}

int cryptor_open_key(const Cryptor *c, Key *k) {
        Secret **a;
        int r = 0;

        assert_return(c, -EINVAL);
        assert_return(k, -EINVAL);

        if (k->n_versions == 0)
                return 0;

        a = calloc(k->n_versions, sizeof(Secret *));
        if (!a)
                return -ENOMEM;

        for (size_t i = 0; i < k->n_versions; i++) {
                r = open_into(c, k->id, k->versions + i, a + i);
                if (r < 0)
                        goto finish;
        }

        for (size_t i = 0; i < k->n_versions; i++) {
                secret_free(k->versions[i].data);
                k->versions[i].data = TAKE_PTR(a[i]);
        }

finish:
        for (size_t i = 0; i < k->n_versions; i++)
                secret_free(a[i]);
        free(a);
        return r;
}

int cryptor_reseal_key(const Cryptor *c, Key *k, size_t *ret_failed) {
        size_t failed = 0;
        int n = 0;

        assert_return(c, -EINVAL);
        assert_return(k, -EINVAL);

        for (size_t i = 0; i < k->n_versions; i++) {
                KeyVersion *v = k->versions + i;
                Secret *s = NULL;
                uint8_t *sealed, *crypt;
                size_t sealed_size;
                int r;

                if (cryptor_sealed_by_current(c, v) || !v->sealed)
                        continue;
                r = open_into(c, k->id, v, &s);
                if (r >= 0) {
                        /* Sealed from a copy of v holding the plaintext; v keeps its data. */
                        KeyVersion t = *v;

                        t.data = s;
                        r = seal_into(c, k->id, &t, &sealed, &sealed_size, &crypt);
                        secret_free(s);
                }
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        failed++;
                        continue;
                }
                erase_and_free(v->sealed, v->sealed_size);
                erase_and_free(v->crypt, v->crypt_size);
                v->sealed = sealed;
                v->sealed_size = sealed_size;
                v->crypt = crypt;
                v->crypt_size = CRYPTOR_CRYPT_SIZE_V1;
                n++;
        }
        if (ret_failed)
                *ret_failed = failed;
        return n;
}

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
        return openssl_error(r, "HKDF");
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
        data_key_unref(d);
}

/* The data key of key_id under master_id, from c's cache or else made (a local cryptor) or
 * asked for (a remote one) and kept. The caller unrefs it. -EOPNOTSUPP when the remote side
 * gives no data keys. */
static int data_key_get(const Cryptor *c, const uint8_t *master_id, const char *key_id, DataKey **ret) {
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
        r = aead_new(s->data, s->size, &aead);
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
        data_key_unref(n);
        *ret = d;
        return 0;
}
