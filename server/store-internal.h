/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What a storage backend implements. store.c owns everything that is the same for every
 * backend (argument checks, the JSON forms of ACLs, versions and token groups, the clock
 * and the optimistic version arithmetic); a backend only moves rows. Adding one (e.g.
 * PostgreSQL) means a new store-<name>.c with a StoreVTable and one line in store_open(). */

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* The longest key id the schema holds (Knox's VARCHAR(512)). */
#define STORE_ID_MAX 512

/* One row of the secrets table. As input the strings are borrowed; as output the
 * backend allocates them and the caller frees them with store_record_done(). */
typedef struct StoreRecord {
        char *acl;       /* the ACL as JSON (acl_json_append) */
        char *hash;      /* the stored version hash */
        char *versions;  /* the sealed versions as JSON (knox_sealed_versions_json_append) */
        int64_t version; /* last_updated, ns */
        char *not_after; /* the certificate versions as JSON (docs/store.md), or NULL: none */
} StoreRecord;

void store_record_done(StoreRecord *r);

/* One row of the tokens table, with the same ownership rules as StoreRecord. */
typedef struct StoreTokenRecord {
        char *user;
        char *groups; /* JSON array of strings */
        int64_t created;
        int64_t expires;
        bool revoked;
} StoreTokenRecord;

void store_token_record_done(StoreTokenRecord *t);

/* One key of a re-seal batch (store_reseal): the versions JSON is borrowed. */
typedef struct StoreReseal {
        const char *id;
        const char *versions;
        int64_t expected_version;
        bool applied; /* out: the row still had expected_version and was rewritten */
} StoreReseal;

/* Every function returns the errors store.h documents. All except free and init return
 * -ENOMEDIUM on an uninitialised (or not yet migrated) database and -EPROTONOSUPPORT on
 * one from a newer keyward. Each write is one durable transaction. */
typedef struct StoreVTable {
        const char *name;
        void (*free)(Store *s);
        int (*init)(Store *s);
        int (*get)(Store *s, const char *id, StoreRecord *ret);
        /* The stored version hash alone; -EBADMSG if it is no C string that fits in ret. */
        int (*get_hash)(Store *s, const char *id, char ret[KEY_HASH_HEX_SIZE]);
        /* rec->version is the new row's last_updated. */
        int (*add)(Store *s, const char *id, const StoreRecord *rec);
        /* Replace the row if its last_updated is still expected_version; rec->version is the
         * new last_updated (> expected_version). -ESTALE or -ENOKEY otherwise. */
        int (*update)(Store *s, const char *id, const StoreRecord *rec, int64_t expected_version);
        int (*remove)(Store *s, const char *id);
        int (*list)(Store *s, StoreListFunc f, void *userdata);
        /* Every row whose not_after column is not NULL: its id and that column. */
        int (*list_not_after)(
                Store *s, int (*f)(const char *id, const char *not_after, void *userdata), void *userdata);
        /* Keys with seq > after in seq order, at most max; *ret_next the last seq passed on
         * (after when none). Returns how many. */
        int (*list_page)(
                Store *s, int64_t after, size_t max, StoreListFunc f, void *userdata, int64_t *ret_next);
        int (*change_counter)(Store *s, uint64_t *ret);
        int (*token_add)(Store *s, const uint8_t hash[TOKEN_HASH_SIZE], const StoreTokenRecord *t);
        int (*token_get)(Store *s, const uint8_t hash[TOKEN_HASH_SIZE], StoreTokenRecord *ret);
        int (*token_revoke)(Store *s, const uint8_t hash[TOKEN_HASH_SIZE]);
        int (*token_expire)(Store *s, int64_t now_ns);
        /* In one transaction, for each item: set versions where id and last_updated match,
         * leaving last_updated, hash, ACL and the change counter alone. Returns how many
         * were applied. */
        int (*reseal)(Store *s, StoreReseal *items, size_t n);
        /* store.h's store_audit_anchor_*(); hash is STORE_AUDIT_HASH_HEX hex digits. */
        int (*audit_anchor_set)(Store *s, const char *name, uint64_t seq, const char *hash);
        int (*audit_anchor_get)(Store *s, const char *name, uint64_t *ret_seq, char *ret_hash);
} StoreVTable;

/* Each backend's object starts with this. */
struct Store {
        const StoreVTable *vtable;
};

/* A backend's change listener starts with this. */
typedef struct StoreListenerVTable {
        void (*free)(StoreListener *l);
        int (*connect)(StoreListener *l, int *ret_fd, bool *ret_write);
        int (*dispatch)(StoreListener *l, StoreChangeFunc f, void *userdata);
} StoreListenerVTable;

struct StoreListener {
        const StoreListenerVTable *vtable;
};

/* The channel PostgreSQL writes notify, and the longest key id a notification names:
 * NOTIFY's payload holds less than 8000 bytes, and it also carries the counter. Longer ids
 * (the schema refuses them anyway) are sent as the counter alone. */
#define STORE_PG_CHANNEL "keyward_changes"
#define STORE_PG_NOTIFY_ID_MAX 7900

/* A change notification's payload, "<counter> <id>" or "<counter>" alone: the counter (a
 * decimal above 0) in *ret_counter, the id (or NULL) in *ret_id, which points into payload.
 * -EBADMSG for anything else (anyone who may connect can NOTIFY on the channel). */
int store_change_parse(const char *payload, const char **ret_id, uint64_t *ret_counter);

/* The SQLite backend (store-sqlite.c). path is a file name, created 0600 if absent. */
int store_sqlite_open(const char *path, bool create, Store **ret);
/* An SQLite result code as a negative errno: -ENOMEM, -EBUSY (busy or locked), -ENOSPC,
 * -EROFS, else -EIO. */
int store_sqlite_errno(int rc);

/* The PostgreSQL backend (store-postgres.c). url is a libpq connection URI; without create
 * the schema must be there (-ENOMEDIUM otherwise). */
int store_postgres_open(const char *url, bool create, Store **ret);
int store_postgres_listener_new(const char *url, StoreListener **ret);

/* The schema version this build writes, and the SQLite handle of a SQLite store (NULL for
 * any other backend). For tests. */
#define STORE_SQLITE_SCHEMA_VERSION 3
struct sqlite3;
struct sqlite3 *store_sqlite_handle(Store *s);
