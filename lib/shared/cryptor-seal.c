/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sealing and opening: a version (Knox's associated data, AES-256-GCM under the master key
 * or the Knox key's data key) and a key's versions at once. */

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

#include "cryptor-internal.h"
#include "random-util.h"

#define VARINT_MAX_SIZE 10 /* Go's binary.MaxVarintLen64 */

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

        _cleanup_(cryptor_ctx_release) CtxRef ref = {};
        _cleanup_(cryptor_data_key_unrefp) DataKey *dk = NULL;
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
        r = cryptor_data_key_get(c, c->id, key_id, &dk);
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

        if (cryptor_ctx_acquire(dk->aead, &ref) < 0)
                return cryptor_openssl_error(-ENOMEM, "EVP_CIPHER_CTX_new");
        ctx = ref.ctx;
        if (cryptor_ctx_init(dk->aead, &ref, 1, crypt + CRYPTOR_NONCE_OFFSET_V1) < 0)
                return cryptor_openssl_error(-EIO, "EVP_EncryptInit_ex");
        if (ad_update(ctx, key_id, key_id_len, v) < 0)
                return cryptor_openssl_error(-EIO, "EVP_EncryptUpdate(AD)");
        if (n > 0) {
                if (EVP_EncryptUpdate(ctx, sealed, &outl, v->data->data, (int) n) != 1)
                        return cryptor_openssl_error(-EIO, "EVP_EncryptUpdate");
                if ((size_t) outl != n)
                        return cryptor_openssl_error(-EIO, "EVP_EncryptUpdate(length)");
        }
        if (EVP_EncryptFinal_ex(ctx, sealed + n, &outl) != 1 || outl != 0)
                return cryptor_openssl_error(-EIO, "EVP_EncryptFinal_ex");
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTOR_TAG_SIZE, sealed + n) != 1)
                return cryptor_openssl_error(-EIO, "EVP_CTRL_GCM_GET_TAG");
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
        _cleanup_(cryptor_ctx_release) CtxRef ref = {};
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

        if (cryptor_ctx_acquire(c, &ref) < 0)
                return cryptor_openssl_error(-ENOMEM, "EVP_CIPHER_CTX_new");
        ctx = ref.ctx;
        if (cryptor_ctx_init(c, &ref, 0, nonce) < 0)
                return cryptor_openssl_error(-EIO, "EVP_DecryptInit_ex");
        if (ad_update(ctx, key_id, key_id_len, v) < 0)
                return cryptor_openssl_error(-EIO, "EVP_DecryptUpdate(AD)");
        if (n > 0) {
                if (EVP_DecryptUpdate(ctx, s->data, &outl, v->sealed, (int) n) != 1)
                        return cryptor_openssl_error(-EIO, "EVP_DecryptUpdate");
                if ((size_t) outl != n)
                        return cryptor_openssl_error(-EIO, "EVP_DecryptUpdate(length)");
        }
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTOR_TAG_SIZE, tag) != 1)
                return cryptor_openssl_error(-EIO, "EVP_CTRL_GCM_SET_TAG");
        /* A tag mismatch leaves nothing on OpenSSL's error queue; either way it is -EBADMSG. */
        if (EVP_DecryptFinal_ex(ctx, s->data + n, &outl) != 1)
                return cryptor_openssl_error(-EBADMSG, "EVP_DecryptFinal_ex");
        ref.ok = true;

        *ret = TAKE_PTR(s);
        return 0;
}

static int open_into(const Cryptor *c, const char *key_id, const KeyVersion *v, Secret **ret) {
        _cleanup_(cryptor_data_key_unrefp) DataKey *dk = NULL;
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
                r = cryptor_data_key_get(c, v->crypt + 1, key_id, &dk); /* -ENOKEY: not a key c has */
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

/* A version's sealed parts replaced by new ones (of version 1), the old ones wiped. */
static void version_set_sealed(KeyVersion *v, uint8_t *sealed, size_t sealed_size, uint8_t *crypt) {
        erase_and_free(v->sealed, v->sealed_size);
        erase_and_free(v->crypt, v->crypt_size);
        v->sealed = sealed;
        v->sealed_size = sealed_size;
        v->crypt = crypt;
        v->crypt_size = CRYPTOR_CRYPT_SIZE_V1;
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

        version_set_sealed(v, sealed, sealed_size, crypt);
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
                version_set_sealed(v, sealed, sealed_size, crypt);
                n++;
        }
        if (ret_failed)
                *ret_failed = failed;
        return n;
}
