/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keywardd's storage: Knox's record store (protocol.md §7.1) plus user tokens. It keeps
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
/* The same list a page at a time, for answers written out as they are read: the keys after
 * position after (0: from the start), at most max of them; *ret_next is where the next page
 * starts. Returns how many keys f got: fewer than max means the end. Each page is a read of
 * its own: a key added while the pages are read may be in a later one, a key removed may be
 * gone; no key comes twice and the order is store_list()'s. */
int store_list_page(Store *s, int64_t after, size_t max, StoreListFunc f, void *userdata, int64_t *ret_next);

/* Every version recorded as an X.509 certificate (its notAfter taken at write time, see
 * cert-expiry.h), key by key in DB order: the key id, version id, status and notAfter in Unix
 * seconds. Reads no version data. The callback's negative return stops the walk. */
typedef int (*StoreCertFunc)(
        const char *id, uint64_t version, VersionStatus status, int64_t not_after, void *userdata);
int store_list_certificates(Store *s, StoreCertFunc f, void *userdata);

/* For `keywardd rekey`: write back keys whose versions were re-sealed under another master
 * key, n at most STORE_RESEAL_BATCH, in one transaction. Each key is written only if its
 * record's version is still expected_versions[i] (ret_applied[i] says whether it was), and
 * only its sealed versions change: its version, hash and ACL stay and the change counter does
 * not move, since what a client reads is the same. A server's write that read the record
 * before the re-seal still succeeds (with the old sealed forms): rekey looks again. Returns
 * how many keys were written. */
#define STORE_RESEAL_BATCH 64
int store_reseal(Store *s, Key *const *keys, const int64_t *expected_versions, size_t n, bool *ret_applied);

/* Monotonic change counter: bumped by every add, update and remove, from any process using
 * the same database. Watchers compare it to learn that something changed. */
int store_change_counter(Store *s, uint64_t *ret);

/* Change notifications: a connection of its own that hears of every add, update and remove
 * committed by any process on the same database, as it commits. PostgreSQL has them
 * (LISTEN/NOTIFY); store_listener_new() fails with -EOPNOTSUPP for a backend that does not,
 * whose users poll the change counter. The listener never blocks: the caller waits on its
 * socket and calls back in. See docs/store.md. */
typedef struct StoreListener StoreListener;
/* One committed write: the key's id and the change counter the write set it to. id is NULL
 * when the notification could not name the key (any key may have changed). */
typedef void (*StoreChangeFunc)(const char *id, uint64_t counter, void *userdata);
int store_listener_new(const char *url, StoreListener **ret);
StoreListener *store_listener_free(StoreListener *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(StoreListener *, store_listener_free);
/* Start connecting, or go on with it: 1 once listening (wait for *ret_fd to be readable,
 * then call store_listener_dispatch()), 0 while under way (wait for *ret_fd to be readable,
 * or writable when *ret_write, and call again), negative when it failed (the connection is
 * closed; call again later to start over). */
int store_listener_connect(StoreListener *l, int *ret_fd, bool *ret_write);
/* Read what arrived and call f once per change, in commit order. Negative when the
 * connection is lost (it is closed; changes from then on are not heard of). */
int store_listener_dispatch(StoreListener *l, StoreChangeFunc f, void *userdata);

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
