/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the cryptor's files share: the Cryptor and its data keys (cryptor.c: the object and
 * each thread's cipher context), sealing and opening (cryptor-seal.c) and the data keys of
 * version 1 (cryptor-data-key.c). Included by them only. */

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>

#include "cryptor.h"

#define DATA_KEY_BUCKETS 2048U /* twice CRYPTOR_DATA_KEY_CACHE_MAX */

typedef struct DataKey DataKey;
typedef struct DataKeyCache DataKeyCache;

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

typedef struct CtxRef {
        EVP_CIPHER_CTX *ctx;
        bool owned; /* no thread slot could be set up: a context for this call only */
        bool keyed; /* the context already holds this cryptor's expanded key */
        bool ok;    /* the call succeeded: the thread's context may keep the key */
} CtxRef;

/* This thread's cipher context for c (or one for this call only), and its init for a seal
 * (enc 1) or an open (enc 0) with nonce; released after the call, kept keyed if ref->ok. */
int cryptor_ctx_acquire(const Cryptor *c, CtxRef *ret);
int cryptor_ctx_init(const Cryptor *c, CtxRef *ref, int enc, const uint8_t *nonce);
void cryptor_ctx_release(CtxRef *ref);

/* The one place OpenSSL errors become errnos: the queue is logged at debug and cleared. */
int cryptor_openssl_error(int r, const char *what);

/* A Cryptor over one raw key, with no data-key cache. */
int cryptor_aead_new(const void *master_key, size_t size, Cryptor **ret);

/* The cryptor (c or one of its old keys) whose key id is id, or NULL. */
const Cryptor *cryptor_by_id(const Cryptor *c, const uint8_t id[static CRYPTOR_KEY_ID_SIZE]);

/* The data key of Knox key key_id under the master key master_id (cryptor-data-key.c). */
int cryptor_data_key_get(const Cryptor *c, const uint8_t *master_id, const char *key_id, DataKey **ret);
void cryptor_data_key_unref(DataKey *k);
DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(DataKey *, cryptor_data_key_unref, NULL);
