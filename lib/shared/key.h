/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Knox key model: keys, versions, statuses, ACL entries (protocol.md §4). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "secret.h"

#define KEY_HASH_HEX_SIZE 65 /* 64 lowercase hex digits and a NUL */
#define VERSION_ID_MAX ((uint64_t) INT64_MAX)

typedef enum VersionStatus {
        VERSION_STATUS_PRIMARY, /* Knox's internal order matters: the hash sorts by it */
        VERSION_STATUS_ACTIVE,
        VERSION_STATUS_INACTIVE,
        _VERSION_STATUS_MAX,
        _VERSION_STATUS_INVALID = -EINVAL,
} VersionStatus;

typedef enum PrincipalType {
        PRINCIPAL_TYPE_USER,
        PRINCIPAL_TYPE_USER_GROUP,
        PRINCIPAL_TYPE_MACHINE,
        PRINCIPAL_TYPE_MACHINE_PREFIX,
        PRINCIPAL_TYPE_SERVICE,
        PRINCIPAL_TYPE_SERVICE_PREFIX,
        _PRINCIPAL_TYPE_MAX,
        _PRINCIPAL_TYPE_INVALID = -EINVAL,
} PrincipalType;

typedef enum AccessType {
        ACCESS_NONE, /* ordered: a grant covers every level below it */
        ACCESS_READ,
        ACCESS_WRITE,
        ACCESS_ADMIN,
        _ACCESS_TYPE_MAX,
        _ACCESS_TYPE_INVALID = -EINVAL,
} AccessType;

/* Knox's spellings: "Primary", "UserGroup", "Admin", ... */
const char *version_status_to_string(VersionStatus s) _const_;
VersionStatus version_status_from_string(const char *s) _pure_;
const char *principal_type_to_string(PrincipalType t) _const_;
PrincipalType principal_type_from_string(const char *s) _pure_;
const char *access_type_to_string(AccessType a) _const_;
AccessType access_type_from_string(const char *s) _pure_;

typedef struct Access {
        PrincipalType type;
        AccessType access;
        char *id;
} Access;

typedef struct Acl {
        Access *entries;
        size_t n;
} Acl;

/* One version of a key. A decrypted version has data; a stored one has sealed and
 * crypt (the cryptor's metadata: its version byte and the nonce). Both may be set. */
typedef struct KeyVersion {
        uint64_t id;
        VersionStatus status;
        int64_t ts; /* creation time, Unix nanoseconds */
        Secret *data;
        uint8_t *sealed; /* ciphertext followed by the GCM tag */
        size_t sealed_size;
        uint8_t *crypt;
        size_t crypt_size;
        int64_t not_after; /* notAfter when data is an X.509 certificate (Unix seconds); 0: not one */
} KeyVersion;

typedef struct Key {
        char *id;
        Acl acl;
        KeyVersion *versions; /* stored order, which is insertion order */
        size_t n_versions;
        char hash[KEY_HASH_HEX_SIZE];
} Key;

void access_done(Access *a);
void acl_done(Acl *acl);
int acl_copy(const Acl *acl, Acl *ret);
void key_version_done(KeyVersion *v);
Key *key_new(void);
Key *key_free(Key *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(Key *, key_free);
static inline void acl_donep(Acl *acl) {
        acl_done(acl);
}
#define _cleanup_acl_ _cleanup_(acl_donep)

/* ^[a-zA-Z0-9_:]+$ (protocol.md §4.7). */
bool key_id_is_valid(const char *id) _pure_;

/* Knox's VersionHash (protocol.md §4.3) of a version list, as 64 lowercase hex digits. -ENOMEM, or -EIO
 * if OpenSSL fails; ret is untouched then. */
int key_version_hash(const KeyVersion *versions, size_t n, char ret[static KEY_HASH_HEX_SIZE]);
/* Recompute k->hash from k->versions. On failure k->hash is left empty, never stale. */
int key_update_hash(Key *k);

/* Exactly one Primary and unique version ids. On failure returns -EINVAL and points
 * *reterr_message at Knox's message ("More than one Primary key", "Repeated Version ID"). */
int key_versions_validate(const KeyVersion *versions, size_t n, const char **reterr_message);

/* Everything a stored key must satisfy, in Knox's order: id pattern ("KeyID can only contain
 * alphanumeric characters, colons, and underscores."), ACL rules (acl_validate), versions,
 * and a hash that matches them ("Hash does not match"). */
int key_validate(const Key *k, const char **reterr_message);

KeyVersion *key_find_version(const Key *k, uint64_t id);
const KeyVersion *key_primary_version(const Key *k);

/* A fresh version id: 63 bits from the CSPRNG, never one the key already has. */
int key_new_version_id(const Key *k, uint64_t *ret);

/* Append v (ownership moves, v is zeroed) and recompute the hash. */
int key_append_version(Key *k, KeyVersion *v);

/* Knox's status transitions (protocol.md §3.8), hash recomputed on success. Returns -ENOENT for an
 * unknown version ("Key version not found"), -EINVAL for a forbidden transition, each
 * with Knox's message in *reterr_message. */
int key_set_version_status(Key *k, uint64_t version_id, VersionStatus to, const char **reterr_message);
