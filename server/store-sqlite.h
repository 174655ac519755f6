/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The SQLite store's private part, shared by its files: store-sqlite.c (statements,
 * transactions, open and close), store-sqlite-schema.c, store-sqlite-keys.c,
 * store-sqlite-tokens.c and store-sqlite-audit-anchor.c. Included by them only. */

#include <sqlite3.h>

#include "store-internal.h"

typedef enum Stmt {
        STMT_BEGIN,
        STMT_COMMIT,
        STMT_ROLLBACK,
        STMT_USER_VERSION,
        STMT_GET,
        STMT_GET_HASH,
        STMT_EXISTS,
        STMT_ADD,
        STMT_UPDATE,
        STMT_REMOVE,
        STMT_LIST,
        STMT_LIST_NOT_AFTER,
        STMT_LIST_PAGE,
        STMT_BUMP,
        STMT_COUNTER,
        STMT_TOKEN_ADD,
        STMT_TOKEN_GET,
        STMT_TOKEN_REVOKE,
        STMT_TOKEN_EXPIRE,
        STMT_RESEAL,
        _STMT_MAX,
} Stmt;

typedef struct SqliteStore {
        Store store;
        sqlite3 *db;
        sqlite3_stmt *stmts[_STMT_MAX];
        char *path;
        bool ready; /* the schema was seen at the current version */
} SqliteStore;

static inline SqliteStore *sqlite_store(Store *s) {
        return (SqliteStore *) s;
}

/* Log an SQLite failure at debug and return its errno. */
int sqlite_fail(SqliteStore *s, int rc, const char *what);

/* A prepared statement is reset and its bindings cleared when it goes out of scope. */
static inline void stmt_resetp(sqlite3_stmt **st) {
        if (*st) {
                (void) sqlite3_reset(*st);
                (void) sqlite3_clear_bindings(*st);
        }
}
#define _cleanup_stmt_ _cleanup_(stmt_resetp)

/* The connection's prepared statement i, prepared on first use. */
int sqlite_stmt_get(SqliteStore *s, Stmt i, sqlite3_stmt **ret);
/* The same, once the schema is known to be current (sqlite_ensure_ready()). */
int sqlite_stmt_ready(SqliteStore *s, Stmt i, sqlite3_stmt **ret);
/* Step a lookup of one row: 0 on it, -ENOKEY when there is none. */
int sqlite_step_row(SqliteStore *s, sqlite3_stmt *st, const char *what);
/* Run a statement that returns no rows, or whose rows do not matter. */
int sqlite_stmt_exec(SqliteStore *s, Stmt i, const char *what);

static inline int bind_text(sqlite3_stmt *st, int i, const char *t) {
        return sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
}

static inline int bind_hash(sqlite3_stmt *st, int i, const uint8_t hash[TOKEN_HASH_SIZE]) {
        return sqlite3_bind_blob(st, i, hash, TOKEN_HASH_SIZE, SQLITE_STATIC);
}

/* A column as a fresh string, NULL for SQL NULL. */
int sqlite_column_strdup(sqlite3_stmt *st, int i, char **ret);

/* BEGIN IMMEDIATE; and COMMIT when r >= 0 (returning r), else ROLLBACK. */
int sqlite_tx_begin(SqliteStore *s);
int sqlite_tx_end(SqliteStore *s, int r);
int sqlite_bump_change_counter(SqliteStore *s);
/* The start of every write: the current schema, then BEGIN IMMEDIATE. */
int sqlite_write_begin(SqliteStore *s);

/* store-sqlite-schema.c: calls other than init need the current schema. */
int sqlite_ensure_ready(SqliteStore *s);
int sqlite_init(Store *base);

/* store-sqlite-keys.c */
int sqlite_get(Store *base, const char *id, StoreRecord *ret);
int sqlite_get_hash(Store *base, const char *id, char ret[KEY_HASH_HEX_SIZE]);
int sqlite_add(Store *base, const char *id, const StoreRecord *rec);
int sqlite_update(Store *base, const char *id, const StoreRecord *rec, int64_t expected_version);
int sqlite_remove(Store *base, const char *id);
int sqlite_list(Store *base, StoreListFunc f, void *userdata);
int sqlite_list_not_after(
        Store *base, int (*f)(const char *id, const char *not_after, void *userdata), void *userdata);
int sqlite_list_page(
        Store *base, int64_t after, size_t max, StoreListFunc f, void *userdata, int64_t *ret_next);
int sqlite_change_counter(Store *base, uint64_t *ret);
int sqlite_reseal(Store *base, StoreReseal *items, size_t n);

/* store-sqlite-tokens.c */
int sqlite_token_add(Store *base, const uint8_t hash[TOKEN_HASH_SIZE], const StoreTokenRecord *t);
int sqlite_token_get(Store *base, const uint8_t hash[TOKEN_HASH_SIZE], StoreTokenRecord *ret);
int sqlite_token_revoke(Store *base, const uint8_t hash[TOKEN_HASH_SIZE]);
int sqlite_token_expire(Store *base, int64_t now_ns);

/* store-sqlite-audit-anchor.c */
int sqlite_audit_anchor_set(Store *base, const char *name, uint64_t seq, const char *hash);
int sqlite_audit_anchor_get(Store *base, const char *name, uint64_t *ret_seq, char *ret_hash);
