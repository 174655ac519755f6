/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keywardd's storage: Knox's record store (knox-api.md §7.1) plus user tokens. It keeps
 * records, not business logic: the ACL and the version list arrive already built, and the
 * versions already sealed by the cryptor. One Store is one connection, used by one thread;
 * each worker opens its own. Every write is durable when the call returns. */

#include <stdbool.h>
#include <stdint.h>

#include "key.h"
#include "macro.h"

typedef struct Store Store;

/* "path/to/file.db" (SQLite) or "postgresql://..." (PostgreSQL). store_open() creates an
 * SQLite file that is not there (for `keywardd init`); store_open_existing() does not, and
 * fails with -ENOMEDIUM, as for a file without the schema. */
int store_open(const char *url, Store **ret);
/* url for messages: a PostgreSQL URL's password shows as "***". Returns url itself, or a copy
 * in *buf for the caller to free. */
const char *store_url_display(const char *url, char **buf);
int store_open_existing(const char *url, Store **ret);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free);

/* Create the schema, or migrate an older one to the current version. Idempotent. Every
 * other call fails with -ENOMEDIUM on a database that was never initialised (or is older
 * and not yet migrated), and every call with -EPROTONOSUPPORT on one from a newer keyward.
 * See docs/store.md for the schema, durability and the errno mapping of SQLite errors. */
int store_init(Store *s);

/* Knox's DB interface. A record's version is its last_updated time in ns, which every
 * update moves forward (optimistic concurrency). In store_get() ret_key and ret_version may
 * each be NULL; -ENOKEY if absent, -EBADMSG if the stored record does not decode. */
int store_get(Store *s, const char *id, Key **ret_key, int64_t *ret_version);
/* Only the stored hash of one key, without reading the rest: what a changed-keys query needs.
 * -ENOKEY if absent, -EBADMSG if the stored hash does not fit (too long, or holds a NUL). */
int store_get_hash(Store *s, const char *id, char ret_hash[KEY_HASH_HEX_SIZE]);
int store_add(Store *s, const Key *k); /* -EEXIST; -E2BIG for an id over 512 bytes */
int store_update(Store *s, const Key *k, int64_t expected_version); /* -ESTALE on conflict, -ENOKEY */
int store_remove(Store *s, const char *id);                         /* -ENOKEY */

/* Every key id in DB order (insertion order), and the stored hash of each, without
 * reading the versions. The callback's negative return stops the walk and is returned.
 * The callback must not use the same Store. */
typedef int (*StoreListFunc)(const char *id, const char *hash, void *userdata);
int store_list(Store *s, StoreListFunc f, void *userdata);

/* Monotonic change counter: bumped by every add, update and remove, from any process using
 * the same database. Watchers compare it to learn that something changed. */
int store_change_counter(Store *s, uint64_t *ret);

/* User tokens, stored only as SHA-256 of the token. */
#define TOKEN_HASH_SIZE 32
typedef struct TokenInfo {
        char *user;
        char **groups;   /* NULL-terminated, may be empty */
        int64_t created; /* ns */
        int64_t expires; /* ns */
        bool revoked;
} TokenInfo;
void token_info_done(TokenInfo *t);

int store_token_add(Store *s, const uint8_t hash[TOKEN_HASH_SIZE], const TokenInfo *t); /* -EEXIST */
/* Revoked and expired tokens are returned as they are; the caller decides. */
int store_token_get(Store *s, const uint8_t hash[TOKEN_HASH_SIZE], TokenInfo *ret); /* -ENOKEY */
int store_token_revoke(Store *s, const uint8_t hash[TOKEN_HASH_SIZE]);              /* -ENOKEY */
/* Drop tokens that expired before now_ns (revoked or not); returns how many. Token writes
 * do not bump the change counter. */
int store_token_expire(Store *s, int64_t now_ns);

/* The audit chain's anchor (keywardd(8), AUDIT LOG): the seq and hex SHA-256 of the last
 * checkpoint line an audit log named name (keywardd's host name) took, kept apart from the
 * audit file so that cutting the file back or replacing it shows. The table is made on the
 * first set (no schema version of its own). get: -ENOENT when none was ever stored. */
#define STORE_AUDIT_HASH_HEX 64
int store_audit_anchor_set(Store *s, const char *name, uint64_t seq, const char *hash);
int store_audit_anchor_get(
        Store *s, const char *name, uint64_t *ret_seq, char ret_hash[STORE_AUDIT_HASH_HEX + 1]);
