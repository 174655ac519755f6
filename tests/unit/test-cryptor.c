/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cryptor.h"
#include "hexdecoct.h"
#include "key.h"
#include "random-util.h"
#include "secret.h"

/* Decode a hex literal of the test vectors into a malloc()ed buffer. */
static uint8_t *unhex(const char *s, size_t *ret_size) {
        size_t n = strlen(s);
        uint8_t *p;

        assert_int_equal(n % 2, 0);
        p = malloc(n / 2 + 1);
        assert_non_null(p);
        for (size_t i = 0; i < n / 2; i++) {
                unsigned hi, lo;
                char c;

                c = s[2 * i];
                hi = c >= 'a' ? (unsigned) (c - 'a' + 10) : (unsigned) (c - '0');
                c = s[2 * i + 1];
                lo = c >= 'a' ? (unsigned) (c - 'a' + 10) : (unsigned) (c - '0');
                p[i] = (uint8_t) (hi << 4 | lo);
        }
        *ret_size = n / 2;
        return p;
}

static void assert_ad(const char *key_id, uint64_t version_id, int64_t ts, const char *expected_hex) {
        _cleanup_buf_ Buf b = BUF_INIT;
        _cleanup_free_ char *hex = NULL;

        assert_int_equal(cryptor_associated_data(key_id, version_id, ts, &b), 0);
        assert_int_equal(b.len, CRYPTOR_AD_FIXED_SIZE + strlen(key_id));
        hex = malloc(2 * b.len + 1);
        assert_non_null(hex);
        hexencode(b.data, b.len, hex);
        assert_string_equal(hex, expected_hex);
}

static void test_associated_data(_unused_ void **state) {
        /* protocol.md §7.2; the others from an independent Python port of Knox's generateAD. */
        assert_ad("test:key", 1, 10, "0100000000000000000014000000000000000000746573743a6b6579");
        assert_ad("a", 0, 0, "000000000000000000000000000000000000000061");
        assert_ad("k", INT64_MAX, -1, "ffffffffffffffff7f00010000000000000000006b");
        assert_ad(
                "x:y", 300, INT64_C(1700000000123456789), "ac020000000000000000aab4aed8c7bfce972f00783a79");
        assert_ad("z", 12345, INT64_C(-1700000000123456789), "b9600000000000000000a9b4aed8c7bfce972f007a");
        assert_ad("m", UINT64_MAX, INT64_MIN, "ffffffffffffffffff01ffffffffffffffffff016d");
}

static const uint8_t key32[32] = {
        0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d, 0x77, 0x81,
        0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61, 0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4,
};

static void version_set_data(KeyVersion *v, const void *p, size_t n) {
        secret_free(v->data);
        v->data = secret_new_copy(p, n);
        assert_non_null(v->data);
}

static void version_drop_data(KeyVersion *v) {
        v->data = secret_free(v->data);
}

/* Knox's version 0 form of plain under a raw master key, sealed here with OpenSSL directly
 * (random nonce, Knox's associated data): what Knox or an old store holds. */
static void seal_knox_form(
        const uint8_t *mk, size_t mk_size, const char *key_id, KeyVersion *v, const void *plain, size_t n) {
        _cleanup_buf_ Buf ad = BUF_INIT;
        EVP_CIPHER_CTX *ctx;
        int outl;

        assert_int_equal(cryptor_associated_data(key_id, v->id, v->ts, &ad), 0);
        free(v->crypt);
        free(v->sealed);
        v->crypt = malloc(CRYPTOR_CRYPT_SIZE_V0);
        v->sealed = malloc(n + CRYPTOR_TAG_SIZE);
        assert_non_null(v->crypt);
        assert_non_null(v->sealed);
        v->crypt[0] = CRYPTOR_VERSION_AES_GCM;
        assert_int_equal(random_bytes(v->crypt + 1, CRYPTOR_NONCE_SIZE), 0);
        v->crypt_size = CRYPTOR_CRYPT_SIZE_V0;
        v->sealed_size = n + CRYPTOR_TAG_SIZE;
        ctx = EVP_CIPHER_CTX_new();
        assert_non_null(ctx);
        assert_int_equal(
                EVP_EncryptInit_ex(
                        ctx,
                        mk_size == 16         ? EVP_aes_128_gcm() :
                                mk_size == 24 ? EVP_aes_192_gcm() :
                                                EVP_aes_256_gcm(),
                        NULL, mk, v->crypt + 1),
                1);
        assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &outl, (const uint8_t *) ad.data, (int) ad.len), 1);
        if (n > 0)
                assert_int_equal(EVP_EncryptUpdate(ctx, v->sealed, &outl, plain, (int) n), 1);
        assert_int_equal(EVP_EncryptFinal_ex(ctx, v->sealed + n, &outl), 1);
        assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTOR_TAG_SIZE, v->sealed + n), 1);
        EVP_CIPHER_CTX_free(ctx);
}

static void round_trip(size_t key_size, size_t n) {
        _cleanup_(cryptor_freep) Cryptor *c = NULL;
        _cleanup_free_ uint8_t *plain = NULL;
        KeyVersion v = {.id = 42, .ts = INT64_C(1500000000000000000)};

        assert_int_equal(cryptor_new(key32, key_size, &c), 0);

        plain = malloc(n + 1);
        assert_non_null(plain);
        for (size_t i = 0; i < n; i++)
                plain[i] = (uint8_t) (i * 7 + 3);
        version_set_data(&v, plain, n);

        assert_int_equal(cryptor_seal_version(c, "rt:key", &v), 0);
        assert_non_null(v.sealed);
        assert_int_equal(v.sealed_size, n + CRYPTOR_TAG_SIZE);
        assert_non_null(v.crypt);
        assert_int_equal(v.crypt_size, CRYPTOR_CRYPT_SIZE_V1);
        assert_int_equal(v.crypt[0], CRYPTOR_VERSION_AES_GCM_KEY_ID);
        /* The data stays, and the ciphertext is not the plaintext. */
        assert_non_null(v.data);
        if (n >= 16)
                assert_memory_not_equal(v.sealed, plain, 16);

        version_drop_data(&v);
        assert_int_equal(cryptor_open_version(c, "rt:key", &v), 0);
        assert_non_null(v.data);
        assert_int_equal(v.data->size, n);
        if (n > 0)
                assert_memory_equal(v.data->data, plain, n);
        assert_int_equal(v.data->data[n], 0); /* a Secret is NUL-terminated */

        key_version_done(&v);
}

static void test_round_trip(_unused_ void **state) {
        static const size_t key_sizes[] = {16, 24, 32};
        static const size_t sizes[] = {0, 1, 15, 16, 17, 4096, 1024 * 1024 + 3};

        FOREACH_ARRAY(k, key_sizes, ELEMENTSOF(key_sizes))
                FOREACH_ARRAY(n, sizes, ELEMENTSOF(sizes))
                        round_trip(*k, *n);
}

/* The plaintext, key and IV of the GCM spec's test cases 4, 10 and 16 (McGrew & Viega; NIST's
 * GCM validation vectors). GCM's ciphertext does not depend on the associated data, so with
 * Knox's AD for ("test:key", 1, 10) the ciphertext is the spec's own; the tags were computed
 * independently with Python's cryptography (AESGCM.encrypt, the same output layout as Go's
 * gcm.Seal). */
#define GCM_PLAIN                                                                                        \
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b5" \
        "25b16aedf5aa0de657ba637b39"
#define GCM_IV "cafebabefacedbaddecaf888"

static const struct {
        const char *key;
        const char *ciphertext; /* the spec's C */
        const char *knox_tag;   /* the tag under Knox's AD */
} kat[] = {
        {"feffe9928665731c6d6a8f9467308308",
         "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa05"
         "1ba30b396a0aac973d58e091",
         "359c06b89f805a39e7d1008462b947a1"},
        {"feffe9928665731c6d6a8f9467308308feffe9928665731c",
         "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f47"
         "18e2448b2fe324d9ccda2710",
         "a8819f4b404e6b70868b7b8666c54fe5"},
        {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
         "c5f61e6393ba7a0abcc9f662",
         "78ecb821ce3422fdbd9d2605e5bc1ba5"},
};

/* v gets crypt = 0 ‖ iv and sealed = ciphertext ‖ tag. */
static void version_set_stored(KeyVersion *v, const char *iv_hex, const char *ct_hex, const char *tag_hex) {
        _cleanup_free_ uint8_t *iv = NULL, *ct = NULL, *tag = NULL;
        size_t n_iv, n_ct, n_tag;

        iv = unhex(iv_hex, &n_iv);
        ct = unhex(ct_hex, &n_ct);
        tag = unhex(tag_hex, &n_tag);
        assert_int_equal(n_iv, CRYPTOR_NONCE_SIZE);
        assert_int_equal(n_tag, CRYPTOR_TAG_SIZE);

        free(v->crypt);
        v->crypt = malloc(1 + n_iv);
        assert_non_null(v->crypt);
        v->crypt[0] = CRYPTOR_VERSION_AES_GCM;
        memcpy(v->crypt + 1, iv, n_iv);
        v->crypt_size = 1 + n_iv;

        free(v->sealed);
        v->sealed = malloc(n_ct + n_tag);
        assert_non_null(v->sealed);
        memcpy(v->sealed, ct, n_ct);
        memcpy(v->sealed + n_ct, tag, n_tag);
        v->sealed_size = n_ct + n_tag;
}

static void test_known_answer(_unused_ void **state) {
        _cleanup_free_ uint8_t *plain = NULL;
        size_t n_plain;

        plain = unhex(GCM_PLAIN, &n_plain);

        FOREACH_ARRAY(t, kat, ELEMENTSOF(kat)) {
                _cleanup_(cryptor_freep) Cryptor *c = NULL;
                _cleanup_free_ uint8_t *key = NULL;
                KeyVersion v = {.id = 1, .ts = 10};
                size_t n_key;

                key = unhex(t->key, &n_key);
                assert_int_equal(cryptor_new(key, n_key, &c), 0);

                version_set_stored(&v, GCM_IV, t->ciphertext, t->knox_tag);
                assert_int_equal(cryptor_open_version(c, "test:key", &v), 0);
                assert_non_null(v.data);
                assert_int_equal(v.data->size, n_plain);
                assert_memory_equal(v.data->data, plain, n_plain);

                /* The same ciphertext with the spec's own tag (over its AD, not Knox's) fails. */
                version_drop_data(&v);
                version_set_stored(
                        &v, GCM_IV, t->ciphertext,
                        n_key == 16         ? "5bc94fbc3221a5db94fae95ae7121a47" :
                                n_key == 24 ? "2519498e80f1478f37ba55bd6d27618c" :
                                              "76fc6ece0f4e1768cddf8853bb2d551b");
                assert_int_equal(cryptor_open_version(c, "test:key", &v), -EBADMSG);
                assert_null(v.data);

                key_version_done(&v);
        }
}

static void test_known_answer_dev_key(_unused_ void **state) {
        /* knox's dev_server master key; computed with Python's cryptography as above. */
        _cleanup_(cryptor_freep) Cryptor *c = NULL;
        KeyVersion v = {.id = 1234, .ts = INT64_C(1500000000000000000)};

        assert_int_equal(cryptor_new("testtesttesttest", 16, &c), 0);
        version_set_stored(
                &v, "000102030405060708090a0b", "4f018ebce22827c0d632", "22fc3fd468b6fec31c97c3bedd02b42c");
        assert_int_equal(cryptor_open_version(c, "dev_key", &v), 0);
        assert_int_equal(v.data->size, 10);
        assert_memory_equal(v.data->data, "hello knox", 10);
        key_version_done(&v);
}

/* A sealed version of "secret data" under key32, key id "tamper:key". */
static void sealed_version(const Cryptor *c, KeyVersion *v) {
        *v = (KeyVersion){.id = 7, .ts = INT64_C(1600000000000000000)};
        version_set_data(v, "secret data", 11);
        assert_int_equal(cryptor_seal_version(c, "tamper:key", v), 0);
        version_drop_data(v);
}

static void test_tamper(_unused_ void **state) {
        _cleanup_(cryptor_freep) Cryptor *c = NULL, *other = NULL, *other_size = NULL;
        uint8_t other_key[32];
        KeyVersion v;

        assert_int_equal(cryptor_new(key32, 32, &c), 0);
        memcpy(other_key, key32, sizeof(other_key));
        other_key[31] ^= 1;
        assert_int_equal(cryptor_new(other_key, 32, &other), 0);
        assert_int_equal(cryptor_new(key32, 24, &other_size), 0);

        /* Untouched, it opens. */
        sealed_version(c, &v);
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), 0);
        assert_memory_equal(v.data->data, "secret data", 11);
        key_version_done(&v);

        /* Each bit of the ciphertext and of the tag counts. */
        sealed_version(c, &v);
        for (size_t i = 0; i < v.sealed_size * 8; i++) {
                v.sealed[i / 8] ^= (uint8_t) (1u << (i % 8));
                assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EBADMSG);
                assert_null(v.data);
                v.sealed[i / 8] ^= (uint8_t) (1u << (i % 8));
        }
        /* So does the nonce; another master key id names a key this cryptor lacks. */
        v.crypt[CRYPTOR_NONCE_OFFSET_V1 + 4] ^= 0x80;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EBADMSG);
        v.crypt[CRYPTOR_NONCE_OFFSET_V1 + 4] ^= 0x80;
        v.crypt[3] ^= 0x80;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -ENOKEY);
        v.crypt[3] ^= 0x80;

        /* The associated data binds key id, version id and creation time. */
        assert_int_equal(cryptor_open_version(c, "tamper:kex", &v), -EBADMSG);
        assert_int_equal(cryptor_open_version(c, "tamper:key:", &v), -EBADMSG);
        assert_int_equal(cryptor_open_version(c, "", &v), -EBADMSG);
        v.id = 8;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EBADMSG);
        v.id = 7;
        v.ts++;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EBADMSG);
        v.ts--;

        /* Another master key, or the same bytes as AES-192: the version names neither. */
        assert_int_equal(cryptor_open_version(other, "tamper:key", &v), -ENOKEY);
        assert_int_equal(cryptor_open_version(other_size, "tamper:key", &v), -ENOKEY);
        assert_null(v.data);

        /* Everything restored: it opens again. */
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), 0);
        assert_memory_equal(v.data->data, "secret data", 11);
        key_version_done(&v);
}

/* A thread's context keeps the expanded key of the cryptor it last served: repeated calls
 * with that cryptor must still open the known answer, and a new cryptor (even one at the
 * freed one's address) must never inherit the old key. */
static void test_context_reuse(_unused_ void **state) {
        _cleanup_free_ uint8_t *plain = NULL, *key = NULL;
        uint8_t other_key[32];
        size_t n_plain, n_key;
        Cryptor *c = NULL;
        KeyVersion v = {.id = 1, .ts = 10}, w;

        plain = unhex(GCM_PLAIN, &n_plain);
        key = unhex(kat[ELEMENTSOF(kat) - 1].key, &n_key);
        assert_int_equal(cryptor_new(key, n_key, &c), 0);
        version_set_stored(
                &v, GCM_IV, kat[ELEMENTSOF(kat) - 1].ciphertext, kat[ELEMENTSOF(kat) - 1].knox_tag);
        for (unsigned i = 0; i < 3; i++) {
                /* open, seal, a failed open and open again, all on the kept key */
                assert_int_equal(cryptor_open_version(c, "test:key", &v), 0);
                assert_memory_equal(v.data->data, plain, n_plain);
                version_drop_data(&v);
                sealed_version(c, &w);
                w.id++;
                assert_int_equal(cryptor_open_version(c, "tamper:key", &w), -EBADMSG);
                w.id--;
                assert_int_equal(cryptor_open_version(c, "tamper:key", &w), 0);
                assert_memory_equal(w.data->data, "secret data", 11);
                key_version_done(&w);
        }
        c = cryptor_free(c);

        memcpy(other_key, key, sizeof(other_key));
        other_key[0] ^= 1;
        assert_int_equal(cryptor_new(other_key, sizeof(other_key), &c), 0);
        assert_int_equal(cryptor_open_version(c, "test:key", &v), -EBADMSG);
        assert_null(v.data);
        sealed_version(c, &w);
        assert_int_equal(cryptor_open_version(c, "tamper:key", &w), 0);
        key_version_done(&w);
        c = cryptor_free(c);
        key_version_done(&v);
}

static void test_malformed(_unused_ void **state) {
        _cleanup_(cryptor_freep) Cryptor *c = NULL;
        KeyVersion v;
        uint8_t *crypt;
        size_t sealed_size;

        assert_int_equal(cryptor_new(key32, 32, &c), 0);
        sealed_version(c, &v);

        /* An unknown cryptor version byte, with or without a nonce after it. */
        for (unsigned b = 2; b < 256; b++) {
                v.crypt[0] = (uint8_t) b;
                assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EPROTONOSUPPORT);
        }
        v.crypt_size = 1;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EPROTONOSUPPORT);
        v.crypt[0] = CRYPTOR_VERSION_AES_GCM_KEY_ID;

        /* Metadata sizes: no version byte, short and long key id and nonce, and each
         * version's size under the other version byte. */
        v.crypt_size = 0;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EINVAL);
        v.crypt_size = 1;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EINVAL);
        v.crypt_size = CRYPTOR_CRYPT_SIZE_V0;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EINVAL);
        crypt = realloc(v.crypt, CRYPTOR_CRYPT_SIZE_V1 + 1);
        assert_non_null(crypt);
        v.crypt = crypt;
        v.crypt[CRYPTOR_CRYPT_SIZE_V1] = 0;
        v.crypt_size = CRYPTOR_CRYPT_SIZE_V1 + 1;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EINVAL);
        v.crypt_size = CRYPTOR_CRYPT_SIZE_V1;
        v.crypt[0] = CRYPTOR_VERSION_AES_GCM;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EINVAL);
        v.crypt_size = CRYPTOR_NONCE_SIZE;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EINVAL);
        v.crypt[0] = CRYPTOR_VERSION_AES_GCM_KEY_ID;
        v.crypt_size = CRYPTOR_CRYPT_SIZE_V1;

        /* Sealed data shorter than a tag. */
        sealed_size = v.sealed_size;
        v.sealed_size = CRYPTOR_TAG_SIZE - 1;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EINVAL);
        v.sealed_size = 0;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EINVAL);
        /* Exactly a tag: well-formed but not what was sealed. */
        v.sealed_size = CRYPTOR_TAG_SIZE;
        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), -EBADMSG);
        v.sealed_size = sealed_size;
        assert_null(v.data);

        assert_int_equal(cryptor_open_version(c, "tamper:key", &v), 0);
        key_version_done(&v);

        /* Nothing to open or seal. */
        v = (KeyVersion){.id = 1};
        assert_int_equal(cryptor_open_version(c, "k", &v), -EINVAL);
        assert_int_equal(cryptor_seal_version(c, "k", &v), -EINVAL);
        assert_null(v.sealed);
        assert_null(v.crypt);
        assert_int_equal(cryptor_seal_version(c, NULL, &v), -EINVAL);
}

static void test_fresh_nonce(_unused_ void **state) {
        _cleanup_(cryptor_freep) Cryptor *c = NULL;
        _cleanup_free_ uint8_t *sealed1 = NULL, *crypt1 = NULL;
        KeyVersion v = {.id = 3, .ts = 5};

        assert_int_equal(cryptor_new(key32, 32, &c), 0);
        version_set_data(&v, "same plaintext", 14);

        assert_int_equal(cryptor_seal_version(c, "n", &v), 0);
        sealed1 = TAKE_PTR(v.sealed);
        crypt1 = TAKE_PTR(v.crypt);

        /* Sealing again replaces the sealed form and uses another nonce. */
        assert_int_equal(cryptor_seal_version(c, "n", &v), 0);
        assert_int_equal(v.sealed_size, 14 + CRYPTOR_TAG_SIZE);
        assert_memory_not_equal(
                v.crypt + CRYPTOR_NONCE_OFFSET_V1, crypt1 + CRYPTOR_NONCE_OFFSET_V1, CRYPTOR_NONCE_SIZE);
        assert_memory_not_equal(v.sealed, sealed1, v.sealed_size);

        /* Every byte of the nonce is random: over 32 seals each position takes more than one
         * value (a fixed byte would repeat with certainty, a random one with p = 2^-248). */
        {
                uint8_t first[CRYPTOR_NONCE_SIZE];
                bool varies[CRYPTOR_NONCE_SIZE] = {};

                memcpy(first, v.crypt + CRYPTOR_NONCE_OFFSET_V1, CRYPTOR_NONCE_SIZE);
                for (unsigned i = 0; i < 32; i++) {
                        assert_int_equal(cryptor_seal_version(c, "n", &v), 0);
                        for (size_t j = 0; j < CRYPTOR_NONCE_SIZE; j++)
                                varies[j] = varies[j] || v.crypt[CRYPTOR_NONCE_OFFSET_V1 + j] != first[j];
                }
                for (size_t j = 0; j < CRYPTOR_NONCE_SIZE; j++)
                        assert_true(varies[j]);
        }

        assert_int_equal(cryptor_seal_version(c, "n", &v), 0); /* frees the previous one */
        version_drop_data(&v);
        assert_int_equal(cryptor_open_version(c, "n", &v), 0);
        assert_memory_equal(v.data->data, "same plaintext", 14);
        key_version_done(&v);
}

static void test_new(_unused_ void **state) {
        static const size_t bad[] = {0, 1, 8, 15, 17, 20, 23, 25, 31, 33, 48, 64};
        uint8_t buf[64] = {};

        FOREACH_ARRAY(n, bad, ELEMENTSOF(bad)) {
                Cryptor *c = NULL;

                assert_int_equal(cryptor_new(buf, *n, &c), -EINVAL);
                assert_null(c);
        }
        for (size_t n = 16; n <= 32; n += 8) {
                Cryptor *c = NULL;

                assert_int_equal(cryptor_new(buf, n, &c), 0);
                assert_non_null(c);
                c = cryptor_free(c);
                assert_null(c);
        }
        assert_null(cryptor_free(NULL));
}

static Key *make_key(const char *id, size_t n) {
        _cleanup_(key_freep) Key *k = NULL;

        k = key_new();
        assert_non_null(k);
        k->id = strdup(id);
        assert_non_null(k->id);

        for (size_t i = 0; i < n; i++) {
                KeyVersion v = {
                        .id = 100 + i,
                        .status = i == 0 ? VERSION_STATUS_PRIMARY : VERSION_STATUS_ACTIVE,
                        .ts = INT64_C(1600000000000000000) + (int64_t) i,
                };
                char data[32];
                int l;

                l = snprintf(data, sizeof(data), "version %zu data", i);
                version_set_data(&v, data, (size_t) l);
                assert_int_equal(key_append_version(k, &v), 0);
        }
        return TAKE_PTR(k);
}

static void assert_key_data(const Key *k) {
        for (size_t i = 0; i < k->n_versions; i++) {
                char data[32];
                int l;

                l = snprintf(data, sizeof(data), "version %zu data", i);
                assert_non_null(k->versions[i].data);
                assert_int_equal(k->versions[i].data->size, (size_t) l);
                assert_memory_equal(k->versions[i].data->data, data, (size_t) l);
        }
}

static void test_key(_unused_ void **state) {
        _cleanup_(cryptor_freep) Cryptor *c = NULL;
        _cleanup_(key_freep) Key *k = NULL, *empty = NULL;
        _cleanup_free_ uint8_t *crypt0 = NULL;

        assert_int_equal(cryptor_new(key32, 32, &c), 0);
        k = make_key("multi:key", 3);

        assert_int_equal(cryptor_seal_key(c, k), 0);
        for (size_t i = 0; i < k->n_versions; i++) {
                assert_non_null(k->versions[i].sealed);
                assert_int_equal(k->versions[i].crypt_size, CRYPTOR_CRYPT_SIZE_V1);
                version_drop_data(k->versions + i);
        }
        assert_int_equal(cryptor_open_key(c, k), 0);
        assert_key_data(k);

        /* Versions sealed already keep their ciphertext; only the new one is sealed. */
        crypt0 = malloc(k->versions[0].crypt_size);
        assert_non_null(crypt0);
        memcpy(crypt0, k->versions[0].crypt, k->versions[0].crypt_size);
        {
                KeyVersion v = {.id = 999, .status = VERSION_STATUS_ACTIVE, .ts = 1};

                version_set_data(&v, "version 3 data", 14);
                assert_int_equal(key_append_version(k, &v), 0);
        }
        assert_null(k->versions[3].sealed);
        assert_int_equal(cryptor_seal_key(c, k), 0);
        assert_non_null(k->versions[3].sealed);
        assert_memory_equal(k->versions[0].crypt, crypt0, k->versions[0].crypt_size);

        /* Each version is bound to its own id: swapping two ciphertexts fails, and a failure
         * leaves every version as it was. */
        for (size_t i = 0; i < k->n_versions; i++)
                version_drop_data(k->versions + i);
        {
                KeyVersion t = k->versions[1];

                k->versions[1].sealed = k->versions[2].sealed;
                k->versions[1].sealed_size = k->versions[2].sealed_size;
                k->versions[1].crypt = k->versions[2].crypt;
                k->versions[2].sealed = t.sealed;
                k->versions[2].sealed_size = t.sealed_size;
                k->versions[2].crypt = t.crypt;

                assert_int_equal(cryptor_open_key(c, k), -EBADMSG);
                for (size_t i = 0; i < k->n_versions; i++)
                        assert_null(k->versions[i].data);

                k->versions[2].sealed = k->versions[1].sealed;
                k->versions[2].sealed_size = k->versions[1].sealed_size;
                k->versions[2].crypt = k->versions[1].crypt;
                k->versions[1].sealed = t.sealed;
                k->versions[1].sealed_size = t.sealed_size;
                k->versions[1].crypt = t.crypt;
        }
        assert_int_equal(cryptor_open_key(c, k), 0);
        {
                /* version 3's data was set above with the same pattern. */
                assert_key_data(k);
        }

        /* A version with neither data nor a sealed form cannot be stored. */
        key_version_done(k->versions + 3);
        k->versions[3].id = 999;
        assert_int_equal(cryptor_seal_key(c, k), -EINVAL);
        assert_int_equal(cryptor_open_key(c, k), -EINVAL);

        /* No versions: nothing to do. */
        empty = make_key("empty", 0);
        assert_int_equal(cryptor_seal_key(c, empty), 0);
        assert_int_equal(cryptor_open_key(c, empty), 0);
}

/* One Cryptor, several threads sealing and opening at once. */
static void *thread_round_trips(void *p) {
        const Cryptor *c = p;
        uintptr_t failures = 0;

        for (unsigned i = 0; i < 200; i++) {
                KeyVersion v = {.id = i, .ts = (int64_t) i};
                uint8_t data[64];

                memset(data, (int) i, sizeof(data));
                v.data = secret_new_copy(data, sizeof(data));
                if (!v.data || cryptor_seal_version(c, "threads", &v) < 0)
                        failures++;
                v.data = secret_free(v.data);
                if (cryptor_open_version(c, "threads", &v) < 0 || v.data->size != sizeof(data) ||
                    memcmp(v.data->data, data, sizeof(data)) != 0)
                        failures++;
                key_version_done(&v);
        }
        return (void *) failures;
}

static void test_threads(_unused_ void **state) {
        _cleanup_(cryptor_freep) Cryptor *c = NULL;
        uintptr_t failures = 0;
        pthread_t t[4];

        assert_int_equal(cryptor_new(key32, 32, &c), 0);
        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                assert_int_equal(pthread_create(t + i, NULL, thread_round_trips, c), 0);
        /* Join every thread before asserting: a failed assertion must not leave one running. */
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                void *f = NULL;

                if (pthread_join(t[i], &f) != 0)
                        f = (void *) UINTPTR_MAX;
                failures += (uintptr_t) f;
        }
        assert_int_equal(failures, 0);
}

/* Each thread reuses one cipher context for every Cryptor: alternating AES-256 and AES-128
 * (and failures in between) must neither mix keys nor leave state behind. */
typedef struct Pair {
        const Cryptor *a, *b;
        size_t a_size, b_size; /* of key32 */
} Pair;

static void *thread_alternate(void *p) {
        const Pair *pair = p;
        uintptr_t failures = 0;

        for (unsigned i = 0; i < 100; i++) {
                const Cryptor *c = i % 2 ? pair->a : pair->b, *other = i % 2 ? pair->b : pair->a;
                size_t c_size = i % 2 ? pair->a_size : pair->b_size;
                KeyVersion v = {.id = i, .ts = (int64_t) i};
                uint8_t data[40];

                memset(data, (int) i, sizeof(data));
                v.data = secret_new_copy(data, sizeof(data));
                if (!v.data || cryptor_seal_version(c, "alternate", &v) < 0)
                        failures++;
                v.data = secret_free(v.data);
                if (cryptor_open_version(other, "alternate", &v) != -ENOKEY || v.data)
                        failures++;
                /* Knox's form names no key: the other key is tried, and must fail on the tag. */
                seal_knox_form(key32, c_size, "alternate", &v, data, sizeof(data));
                if (cryptor_open_version(other, "alternate", &v) != -EBADMSG || v.data)
                        failures++;
                if (cryptor_open_version(c, "alternate", &v) < 0 || v.data->size != sizeof(data) ||
                    memcmp(v.data->data, data, sizeof(data)) != 0)
                        failures++;
                key_version_done(&v);
        }
        return (void *) failures;
}

static void test_threads_two_cryptors(_unused_ void **state) {
        _cleanup_(cryptor_freep) Cryptor *a = NULL, *b = NULL;
        uintptr_t failures = 0;
        pthread_t t[4];
        Pair pair;

        assert_int_equal(cryptor_new(key32, 32, &a), 0);
        assert_int_equal(cryptor_new(key32, 16, &b), 0);
        pair = (Pair){.a = a, .b = b, .a_size = 32, .b_size = 16};
        /* The main thread too, so that its context is used before and after the others. */
        assert_null(thread_alternate(&pair));
        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                assert_int_equal(pthread_create(t + i, NULL, thread_alternate, &pair), 0);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                void *f = NULL;

                if (pthread_join(t[i], &f) != 0)
                        f = (void *) UINTPTR_MAX;
                failures += (uintptr_t) f;
        }
        assert_int_equal(failures, 0);
        assert_null(thread_alternate(&pair));
}

/* HKDF-SHA256 (RFC 5869, no salt) of the master key: a known answer, computed apart from
 * OpenSSL; another info or another master key gives another key. */
static void test_derive_key(void **state) {
        static const char want[] = "e56579a039742fdcf19af96eba3f75d9cea5e443f5355405887fdae7db1cda62";
        _cleanup_(cryptor_freep) Cryptor *c = NULL, *d = NULL;
        uint8_t mk[32], k1[32], k2[32], k3[32];
        char hex[65];

        for (size_t i = 0; i < sizeof(mk); i++)
                mk[i] = (uint8_t) i;
        assert_int_equal(cryptor_new(mk, sizeof(mk), &c), 0);
        assert_int_equal(cryptor_derive_key(c, "keyward audit checkpoint v1", k1, sizeof(k1)), 0);
        hexencode(k1, sizeof(k1), hex);
        assert_string_equal(hex, want);
        assert_int_equal(cryptor_derive_key(c, "another purpose", k2, sizeof(k2)), 0);
        assert_memory_not_equal(k1, k2, sizeof(k1));
        mk[0] ^= 1;
        assert_int_equal(cryptor_new(mk, sizeof(mk), &d), 0);
        assert_int_equal(cryptor_derive_key(d, "keyward audit checkpoint v1", k3, sizeof(k3)), 0);
        assert_memory_not_equal(k1, k3, sizeof(k1));
}

/* Master-key generations: a cryptor with an old key opens what that key sealed (in either
 * form), seals only with its current key, and one without the old key refuses the old
 * key's versions as a key it lacks (-ENOKEY), never as a wrong tag. */
static void test_old_keys(_unused_ void **state) {
        _cleanup_(cryptor_freep) Cryptor *old = NULL, *cur = NULL;
        uint8_t new_key[32], old_id[CRYPTOR_KEY_ID_SIZE], cur_id[CRYPTOR_KEY_ID_SIZE];
        KeyVersion v1, v0;

        memcpy(new_key, key32, sizeof(new_key));
        new_key[7] ^= 0x10;
        assert_int_equal(cryptor_new(key32, 32, &old), 0);
        assert_int_equal(cryptor_new(new_key, 32, &cur), 0);
        cryptor_key_id(old, old_id);
        cryptor_key_id(cur, cur_id);
        assert_memory_not_equal(old_id, cur_id, CRYPTOR_KEY_ID_SIZE);

        /* v1 as the old key seals today, v0 the same data in Knox's form under the old key. */
        sealed_version(old, &v1);
        assert_memory_equal(v1.crypt + 1, old_id, CRYPTOR_KEY_ID_SIZE);
        v0 = (KeyVersion){.id = v1.id, .ts = v1.ts};
        seal_knox_form(key32, 32, "tamper:key", &v0, "secret data", 11);
        assert_int_equal(cryptor_open_version(old, "tamper:key", &v0), 0);
        version_drop_data(&v0);

        /* Without the old key. */
        assert_int_equal(cryptor_open_version(cur, "tamper:key", &v1), -ENOKEY);
        assert_int_equal(cryptor_open_version(cur, "tamper:key", &v0), -EBADMSG);
        assert_null(v1.data);
        assert_false(cryptor_sealed_by_current(cur, &v1));
        assert_true(cryptor_sealed_by_current(old, &v1));
        assert_false(cryptor_sealed_by_current(old, &v0));

        /* Keys it has already, or of a bad size, are refused. */
        assert_int_equal(cryptor_add_old_key(cur, new_key, 32), -EEXIST);
        assert_int_equal(cryptor_add_old_key(cur, key32, 31), -EINVAL);
        assert_int_equal(cryptor_add_old_key(cur, key32, 32), 0);
        assert_int_equal(cryptor_add_old_key(cur, key32, 32), -EEXIST);

        /* With it: both forms open; sealing again names the current key. */
        assert_int_equal(cryptor_open_version(cur, "tamper:key", &v0), 0);
        assert_memory_equal(v0.data->data, "secret data", 11);
        assert_int_equal(cryptor_open_version(cur, "tamper:key", &v1), 0);
        assert_memory_equal(v1.data->data, "secret data", 11);
        assert_int_equal(cryptor_seal_version(cur, "tamper:key", &v1), 0);
        assert_true(cryptor_sealed_by_current(cur, &v1));
        assert_memory_equal(v1.crypt + 1, cur_id, CRYPTOR_KEY_ID_SIZE);
        version_drop_data(&v1);

        /* Re-sealed, the old key alone cannot open it, the new one alone can. */
        assert_int_equal(cryptor_open_version(old, "tamper:key", &v1), -ENOKEY);
        cur = cryptor_free(cur);
        assert_int_equal(cryptor_new(new_key, 32, &cur), 0);
        assert_int_equal(cryptor_open_version(cur, "tamper:key", &v1), 0);
        assert_memory_equal(v1.data->data, "secret data", 11);

        key_version_done(&v1);
        key_version_done(&v0);
}

/* A key read under old master keys is written under the current one: what c opens is
 * sealed again, what it cannot open is left as it was and counted. */
static void test_reseal_key(_unused_ void **state) {
        _cleanup_(cryptor_freep) Cryptor *old = NULL, *stranger = NULL, *cur = NULL, *cur_alone = NULL;
        _cleanup_(key_freep) Key *k = NULL;
        uint8_t new_key[32], other_key[32];
        size_t failed = 99;

        memcpy(new_key, key32, sizeof(new_key));
        new_key[0] ^= 1;
        memcpy(other_key, key32, sizeof(other_key));
        other_key[1] ^= 1;
        assert_int_equal(cryptor_new(key32, 32, &old), 0);
        assert_int_equal(cryptor_new(other_key, 32, &stranger), 0);
        assert_int_equal(cryptor_new(new_key, 32, &cur), 0);
        assert_int_equal(cryptor_add_old_key(cur, key32, 32), 0);
        assert_int_equal(cryptor_new(new_key, 32, &cur_alone), 0);

        k = make_key("reseal:key", 3);
        assert_int_equal(cryptor_seal_key(old, k), 0);
        assert_int_equal(cryptor_seal_version(stranger, k->id, k->versions + 2), 0);
        for (size_t i = 0; i < k->n_versions; i++)
                version_drop_data(k->versions + i);

        assert_int_equal(cryptor_reseal_key(cur, k, &failed), 2);
        assert_int_equal(failed, 1);
        assert_true(cryptor_sealed_by_current(cur, k->versions + 0));
        assert_true(cryptor_sealed_by_current(cur, k->versions + 1));
        assert_false(cryptor_sealed_by_current(cur, k->versions + 2));
        for (size_t i = 0; i < k->n_versions; i++)
                assert_null(k->versions[i].data); /* no plaintext left behind */

        /* Nothing more to do the second time. */
        assert_int_equal(cryptor_reseal_key(cur, k, &failed), 0);
        assert_int_equal(failed, 1);

        assert_int_equal(cryptor_open_version(cur_alone, k->id, k->versions + 0), 0);
        assert_int_equal(cryptor_open_version(cur_alone, k->id, k->versions + 1), 0);
        assert_int_equal(cryptor_open_version(cur_alone, k->id, k->versions + 2), -ENOKEY);
        assert_int_equal(cryptor_open_version(stranger, k->id, k->versions + 2), 0);
        assert_key_data(k);
}

/* Version 1's AES-256 key is a data key per Knox key id: HKDF-SHA256 (no salt) of the master
 * key with info "keyward data key v1", a NUL and the key id (docs/store.md). Computed here
 * apart from the cryptor, and the sealed form opened with it by OpenSSL directly. */
static void hkdf_data_key(const uint8_t *mk, size_t mk_size, const char *key_id, uint8_t ret[32]) {
        static const char prefix[] = "keyward data key v1"; /* and its NUL */
        uint8_t info[256];
        EVP_PKEY_CTX *ctx;
        size_t n = 32;

        assert_true(sizeof(prefix) + strlen(key_id) <= sizeof(info));
        memcpy(info, prefix, sizeof(prefix));
        memcpy(info + sizeof(prefix), key_id, strlen(key_id));
        ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
        assert_non_null(ctx);
        assert_true(EVP_PKEY_derive_init(ctx) > 0);
        assert_true(EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0);
        assert_true(EVP_PKEY_CTX_set1_hkdf_key(ctx, mk, (int) mk_size) > 0);
        assert_true(EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int) (sizeof(prefix) + strlen(key_id))) > 0);
        assert_true(EVP_PKEY_derive(ctx, ret, &n) > 0);
        assert_int_equal(n, 32);
        EVP_PKEY_CTX_free(ctx);
}

static void test_data_key(_unused_ void **state) {
        static const size_t key_sizes[] = {16, 24, 32};

        FOREACH_ARRAY(ks, key_sizes, ELEMENTSOF(key_sizes)) {
                _cleanup_(cryptor_freep) Cryptor *c = NULL;
                _cleanup_(secret_freep) Secret *dk = NULL;
                _cleanup_buf_ Buf ad = BUF_INIT;
                uint8_t want[32], other[32], id[CRYPTOR_KEY_ID_SIZE], plain[32] = {};
                KeyVersion v = {.id = 9, .ts = 77};
                EVP_CIPHER_CTX *ctx;
                int outl;

                assert_int_equal(cryptor_new(key32, *ks, &c), 0);
                cryptor_key_id(c, id);
                hkdf_data_key(key32, *ks, "dk:key", want);
                hkdf_data_key(key32, *ks, "dk:other", other);
                assert_memory_not_equal(want, other, 32);

                assert_int_equal(cryptor_data_key(c, id, "dk:key", &dk), 0);
                assert_int_equal(dk->size, CRYPTOR_DATA_KEY_SIZE);
                assert_memory_equal(dk->data, want, 32);
                id[0] ^= 1;
                assert_int_equal(cryptor_data_key(c, id, "dk:key", &dk), -ENOKEY);

                version_set_data(&v, "per-key data key", 16);
                assert_int_equal(cryptor_seal_version(c, "dk:key", &v), 0);
                assert_int_equal(v.sealed_size, 16 + CRYPTOR_TAG_SIZE);
                assert_int_equal(cryptor_associated_data("dk:key", v.id, v.ts, &ad), 0);
                ctx = EVP_CIPHER_CTX_new();
                assert_non_null(ctx);
                assert_int_equal(
                        EVP_DecryptInit_ex(
                                ctx, EVP_aes_256_gcm(), NULL, want, v.crypt + CRYPTOR_NONCE_OFFSET_V1),
                        1);
                assert_int_equal(
                        EVP_DecryptUpdate(ctx, NULL, &outl, (const uint8_t *) ad.data, (int) ad.len), 1);
                assert_int_equal(EVP_DecryptUpdate(ctx, plain, &outl, v.sealed, 16), 1);
                assert_int_equal(
                        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTOR_TAG_SIZE, v.sealed + 16), 1);
                assert_int_equal(EVP_DecryptFinal_ex(ctx, plain + 16, &outl), 1);
                EVP_CIPHER_CTX_free(ctx);
                assert_memory_equal(plain, "per-key data key", 16);
                key_version_done(&v);
        }
}

/* A remote cryptor over a local one (the key holder's side, in process): it counts what it
 * is asked. */
typedef struct Counting {
        const Cryptor *local;
        unsigned opens, seals, data_keys;
} Counting;

static int counting_open(void *userdata, const char *key_id, const KeyVersion *v, Secret **ret) {
        Counting *t = userdata;
        KeyVersion copy = *v;
        int r;

        t->opens++;
        copy.data = NULL;
        r = cryptor_open_version(t->local, key_id, &copy);
        if (r >= 0)
                *ret = copy.data;
        return r;
}

static int counting_seal(
        void *userdata,
        const char *key_id,
        const KeyVersion *v,
        uint8_t **ret_sealed,
        size_t *ret_sealed_size,
        uint8_t **ret_crypt) {
        Counting *t = userdata;
        KeyVersion copy = {.id = v->id, .ts = v->ts};

        t->seals++;
        copy.data = secret_new_copy(v->data->data, v->data->size);
        assert_non_null(copy.data);
        assert_int_equal(cryptor_seal_version(t->local, key_id, &copy), 0);
        copy.data = secret_free(copy.data);
        *ret_sealed = copy.sealed;
        *ret_sealed_size = copy.sealed_size;
        *ret_crypt = copy.crypt;
        return 0;
}

static int counting_data_key(
        void *userdata, const uint8_t master_id[CRYPTOR_KEY_ID_SIZE], const char *key_id, Secret **ret) {
        Counting *t = userdata;

        t->data_keys++;
        return cryptor_data_key(t->local, master_id, key_id, ret);
}

/* Seal a fresh version 5 into v (whatever v held before is freed). */
static void remote_seal_one(const Cryptor *r, const char *key_id, KeyVersion *v) {
        key_version_done(v);
        *v = (KeyVersion){.id = 5, .ts = 55};
        version_set_data(v, key_id, strlen(key_id));
        assert_int_equal(cryptor_seal_version(r, key_id, v), 0);
        version_drop_data(v);
}

static void remote_open_one(const Cryptor *r, const char *key_id, KeyVersion *v) {
        assert_int_equal(cryptor_open_version(r, key_id, v), 0);
        assert_int_equal(v->data->size, strlen(key_id));
        assert_memory_equal(v->data->data, key_id, strlen(key_id));
        version_drop_data(v);
}

/* The remote side is asked once per key id and master key for a data key; version 1 is then
 * sealed and opened here, Knox's version 0 still goes to it per version. */
static void test_remote_data_keys(_unused_ void **state) {
        _cleanup_(cryptor_freep) Cryptor *local = NULL, *old = NULL, *r = NULL;
        uint8_t old_key[32], id[CRYPTOR_KEY_ID_SIZE];
        Counting t = {};
        CryptorRemote remote = {
                .open = counting_open, .seal = counting_seal, .data_key = counting_data_key, .userdata = &t};
        KeyVersion v[3] = {}, w = {}, k0 = {.id = 3, .ts = 4}, ko = {};

        memcpy(old_key, key32, 32);
        old_key[31] ^= 0x80;
        assert_int_equal(cryptor_new(key32, 32, &local), 0);
        assert_int_equal(cryptor_add_old_key(local, old_key, 32), 0);
        assert_int_equal(cryptor_new(old_key, 32, &old), 0);
        t.local = local;
        cryptor_key_id(local, id);
        assert_int_equal(cryptor_new_remote(&remote, id, &r), 0);

        for (size_t i = 0; i < ELEMENTSOF(v); i++)
                remote_seal_one(r, "remote:a", v + i);
        assert_int_equal(t.data_keys, 1);
        for (size_t i = 0; i < ELEMENTSOF(v); i++)
                remote_open_one(r, "remote:a", v + i);
        remote_seal_one(r, "remote:b", &w);
        remote_open_one(r, "remote:b", &w);
        assert_int_equal(t.data_keys, 2);
        assert_int_equal(t.opens, 0);
        assert_int_equal(t.seals, 0);
        /* What the worker sealed, the key holder opens, and the other way round. */
        remote_open_one(local, "remote:a", v + 0);
        remote_seal_one(local, "remote:a", v + 1);
        remote_open_one(r, "remote:a", v + 1);
        assert_int_equal(t.data_keys, 2);

        /* Knox's form goes to the other side each time. */
        seal_knox_form(key32, 32, "remote:a", &k0, "remote:a", 8);
        remote_open_one(r, "remote:a", &k0);
        remote_open_one(r, "remote:a", &k0);
        assert_int_equal(t.opens, 2);
        assert_int_equal(t.data_keys, 2);

        /* An old master key's version: that key's data key, once; none for a key it lacks. */
        remote_seal_one(old, "remote:a", &ko);
        remote_open_one(r, "remote:a", &ko);
        remote_open_one(r, "remote:a", &ko);
        assert_int_equal(t.data_keys, 3);
        ko.crypt[1] ^= 1;
        assert_int_equal(cryptor_open_version(r, "remote:a", &ko), -ENOKEY);
        assert_null(ko.data);

        for (size_t i = 0; i < ELEMENTSOF(v); i++)
                key_version_done(v + i);
        key_version_done(&w);
        key_version_done(&k0);
        key_version_done(&ko);
}

/* The data keys a cryptor keeps are bounded: the least recently used one goes first. */
static void test_data_key_cache_bound(_unused_ void **state) {
        _cleanup_(cryptor_freep) Cryptor *local = NULL, *r = NULL;
        uint8_t id[CRYPTOR_KEY_ID_SIZE];
        Counting t = {};
        CryptorRemote remote = {
                .open = counting_open, .seal = counting_seal, .data_key = counting_data_key, .userdata = &t};
        KeyVersion *v;
        char name[32];

        assert_int_equal(cryptor_new(key32, 32, &local), 0);
        t.local = local;
        cryptor_key_id(local, id);
        assert_int_equal(cryptor_new_remote(&remote, id, &r), 0);
        v = calloc(CRYPTOR_DATA_KEY_CACHE_MAX + 1, sizeof(KeyVersion));
        assert_non_null(v);

        for (unsigned i = 0; i < CRYPTOR_DATA_KEY_CACHE_MAX; i++) {
                (void) snprintf(name, sizeof(name), "bound:%u", i);
                remote_seal_one(r, name, v + i);
        }
        assert_int_equal(t.data_keys, CRYPTOR_DATA_KEY_CACHE_MAX);
        remote_open_one(r, "bound:0", v + 0); /* bound:0 is now the most recently used */
        (void) snprintf(name, sizeof(name), "bound:%u", CRYPTOR_DATA_KEY_CACHE_MAX);
        remote_seal_one(r, name, v + CRYPTOR_DATA_KEY_CACHE_MAX);
        assert_int_equal(t.data_keys, CRYPTOR_DATA_KEY_CACHE_MAX + 1);
        remote_open_one(r, "bound:0", v + 0);
        assert_int_equal(t.data_keys, CRYPTOR_DATA_KEY_CACHE_MAX + 1);
        remote_open_one(r, "bound:1", v + 1); /* the least recently used went */
        assert_int_equal(t.data_keys, CRYPTOR_DATA_KEY_CACHE_MAX + 2);

        for (unsigned i = 0; i <= CRYPTOR_DATA_KEY_CACHE_MAX; i++)
                key_version_done(v + i);
        free(v);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_associated_data),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_known_answer),
                cmocka_unit_test(test_known_answer_dev_key),
                cmocka_unit_test(test_context_reuse),
                cmocka_unit_test(test_tamper),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_fresh_nonce),
                cmocka_unit_test(test_old_keys),
                cmocka_unit_test(test_reseal_key),
                cmocka_unit_test(test_new),
                cmocka_unit_test(test_key),
                cmocka_unit_test(test_threads),
                cmocka_unit_test(test_threads_two_cryptors),
                cmocka_unit_test(test_derive_key),
                cmocka_unit_test(test_data_key),
                cmocka_unit_test(test_remote_data_keys),
                cmocka_unit_test(test_data_key_cache_bound),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
