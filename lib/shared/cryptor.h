/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* AES-GCM per key version with Knox's associated data (protocol.md §7.2). sealed is Knox's
 * ciphertext ‖ 16-byte tag. crypt is the version byte, then for Knox's version 0 the 12-byte
 * nonce, for keyward's version 1 the 8-byte id of the master key that sealed it and the nonce.
 * Sealing writes version 1; both are read. The key id lets several master-key generations
 * coexist during an online rekey (docs/store.md, "Master keys"). Version 0 is sealed with the
 * master key itself; version 1 with AES-256 under the data key of its Knox key id and master
 * key (cryptor_data_key()), so that a holder of one key's data key can open that key alone. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "key.h"
#include "secret.h"

#define CRYPTOR_VERSION_AES_GCM 0        /* Knox's own: the master key encrypts versions directly */
#define CRYPTOR_VERSION_AES_GCM_KEY_ID 1 /* the same, with the id of the master key before the nonce */
#define CRYPTOR_KEY_ID_SIZE 8
#define CRYPTOR_CRYPT_SIZE_V0 (1 + CRYPTOR_NONCE_SIZE)
#define CRYPTOR_CRYPT_SIZE_V1 (1 + CRYPTOR_KEY_ID_SIZE + CRYPTOR_NONCE_SIZE)
#define CRYPTOR_NONCE_OFFSET_V1 (1 + CRYPTOR_KEY_ID_SIZE)
#define CRYPTOR_NONCE_SIZE 12
#define CRYPTOR_TAG_SIZE 16
#define CRYPTOR_AD_FIXED_SIZE 20
#define MASTER_KEY_SIZE 32       /* what keywardd init makes: AES-256 */
#define CRYPTOR_DATA_KEY_SIZE 32 /* version 1 is AES-256-GCM whatever the master key's size */
/* The data keys one Cryptor keeps (least recently used out first, wiped). A key costs about
 * 0.5 KiB, 32 bytes of it locked: 1024 keep the keys a busy server reads in about 0.5 MiB,
 * well under the usual 8 MiB RLIMIT_MEMLOCK, and a miss costs one round trip. */
#define CRYPTOR_DATA_KEY_CACHE_MAX 1024U

typedef struct Cryptor Cryptor;

/* A cryptor over a raw master key of 16, 24 or 32 bytes (AES-128/192/256, as Knox allows);
 * the key is copied into locked memory. -EINVAL for another size. A Cryptor never changes
 * after this, so several threads may use one at once. */
int cryptor_new(const void *master_key, size_t size, Cryptor **ret);
Cryptor *cryptor_free(Cryptor *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Cryptor *, cryptor_free);

/* A cryptor whose master key lives in another process (keywardd's key holder): seal and
 * open are handed to remote, which answers as cryptor_seal_version()/open_version() would
 * (seal: the version 1 form). id is the current key's id. remote must outlive the cryptor;
 * cryptor_derive_key() and cryptor_add_old_key() are -EOPNOTSUPP on it. */
typedef struct CryptorRemote {
        int (*open)(void *userdata, const char *key_id, const KeyVersion *v, Secret **ret);
        int (*seal)(
                void *userdata,
                const char *key_id,
                const KeyVersion *v,
                uint8_t **ret_sealed,
                size_t *ret_sealed_size,
                uint8_t **ret_crypt);
        /* Optional: the data key (CRYPTOR_DATA_KEY_SIZE bytes) of key_id under the master key
         * master_id, as cryptor_data_key() makes it; -ENOKEY for a master key it lacks. With it
         * version 1 is sealed and opened in this process, each data key asked for once (then
         * kept, CRYPTOR_DATA_KEY_CACHE_MAX at most); open() is then called for version 0
         * only, seal() never. */
        int (*data_key)(
                void *userdata,
                const uint8_t master_id[CRYPTOR_KEY_ID_SIZE],
                const char *key_id,
                Secret **ret);
        void *userdata;
} CryptorRemote;
int cryptor_new_remote(
        const CryptorRemote *remote, const uint8_t id[static CRYPTOR_KEY_ID_SIZE], Cryptor **ret);

/* Add an older master key that c opens versions with but never seals with (during a rekey).
 * Call before c is shared between threads. -EINVAL for a bad size, -EEXIST for a key c
 * already has (its current one included). */
int cryptor_add_old_key(Cryptor *c, const void *master_key, size_t size);

/* The id of the current master key: the first 8 bytes of HKDF-SHA256(key, "keyward master key
 * id"); it names the key without revealing anything about it. */
void cryptor_key_id(const Cryptor *c, uint8_t ret[static CRYPTOR_KEY_ID_SIZE]);

/* Whether v's sealed form names c's current master key (version 1 with its id). A version 0
 * form names no key and so is never "current": rekey re-seals it. */
bool cryptor_sealed_by_current(const Cryptor *c, const KeyVersion *v);

/* Knox's associated data: LEB128(version id) padded to 10 bytes, zig-zag varint(ts) padded
 * to 10 bytes, then the key id. *ret is overwritten (pass an empty Buf) and the caller
 * buf_done()s it. */
int cryptor_associated_data(const char *key_id, uint64_t version_id, int64_t ts, Buf *ret);

/* Seal v->data into v->sealed and v->crypt with a fresh random nonce (replacing any old
 * sealed form). v->data stays. */
int cryptor_seal_version(const Cryptor *c, const char *key_id, KeyVersion *v);

/* Open v->sealed into v->data, a new Secret (the old one is freed on success only; on
 * failure v is untouched). Version 1 is opened with the master key its id names, version 0
 * with the current key and then each old one. -EBADMSG when the tag does not verify
 * (tampered data, another key id, version id, timestamp or master key), -ENOKEY when the
 * version names a master key c does not have, -EPROTONOSUPPORT for an unknown cryptor
 * version byte, -EINVAL for malformed metadata. */
int cryptor_open_version(const Cryptor *c, const char *key_id, KeyVersion *v);

/* Every version of k: seal those that have data but no sealed form (a version with neither
 * is -EINVAL) / open them all. All or nothing: on failure k is untouched. */
int cryptor_seal_key(const Cryptor *c, Key *k);
int cryptor_open_key(const Cryptor *c, Key *k);

/* Seal again under the current key every version of k that is under another one (opening
 * it with that key; the plaintext is wiped at once). A version that no key of c opens is
 * left as it is and counted in *ret_failed (may be NULL). Returns how many were re-sealed.
 * keywardd's writes call it, so that a key written while a rekey runs is written under the
 * new key whatever it was read under. */
int cryptor_reseal_key(const Cryptor *c, Key *k, size_t *ret_failed);

/* HKDF-SHA256 (no salt) of the master key with info into size bytes at ret: a key for another
 * purpose (the audit log's checkpoints) that only holders of the master key can make. */
int cryptor_derive_key(const Cryptor *c, const char *info, void *ret, size_t size);

/* The data key of the Knox key key_id under the master key named master_id (the current one or
 * an old one): HKDF-SHA256 (no salt) of that master key with info "keyward data key v1", a NUL
 * byte and key_id, CRYPTOR_DATA_KEY_SIZE bytes, in a new Secret. -ENOKEY for a master key c
 * does not have, -EOPNOTSUPP on a remote cryptor (the key holder answers it instead). */
int cryptor_data_key(
        const Cryptor *c,
        const uint8_t master_id[static CRYPTOR_KEY_ID_SIZE],
        const char *key_id,
        Secret **ret);
