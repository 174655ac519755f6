/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The PostgreSQL store's private part, shared by its files: store-postgres.c (the
 * connection, its statements, the schema, open and close), store-postgres-keys.c,
 * store-postgres-tokens.c, store-postgres-audit-anchor.c and store-postgres-listen.c (the
 * change notifications). Included by them only. */

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"
#include "store-internal.h"

typedef struct PgStore {
        Store store;
        PGconn *conn;
        bool ready;
} PgStore;

static inline PgStore *pg_store(Store *s) {
        return (PgStore *) s;
}

static inline void pg_clearp(PGresult **r) {
        if (*r)
                PQclear(*r);
}
#define _cleanup_pgresult_ _cleanup_(pg_clearp)

/* A failed statement's errno: SQLSTATE classes that mean "the server or the connection",
 * not "the statement", give -ECONNRESET. */
int pg_error(PgStore *s, const PGresult *res, const char *what);

/* How pg_exec_full() runs a statement. */
enum {
        PG_EXEC_RETRY = 1 << 0, /* a read: sent once more after the connection was reset */
        PG_EXEC_READY = 1 << 1, /* only once the schema is known to be current (pg_ensure_ready()) */
};

/* Run one statement with text parameters (NULL lengths) or with the binary ones marked in
 * formats. Returns the result when it succeeded. A read is sent once more after the
 * connection was reset; a write is not. */
int pg_exec_full(
        PgStore *s,
        unsigned flags,
        const char *what,
        const char *sql,
        int n,
        const char *const *values,
        const int *lengths,
        const int *formats,
        PGresult **ret);
#define pg_exec(s, ...) pg_exec_full(s, 0, __VA_ARGS__)
#define pg_read(s, ...) pg_exec_full(s, PG_EXEC_RETRY, __VA_ARGS__)
/* The same, once the schema is known to be current. */
#define pg_exec_ready(s, ...) pg_exec_full(s, PG_EXEC_READY, __VA_ARGS__)
#define pg_read_ready(s, ...) pg_exec_full(s, PG_EXEC_RETRY | PG_EXEC_READY, __VA_ARGS__)

/* Statements without parameters, several allowed (PQexecParams takes one). */
int pg_exec_simple(PgStore *s, const char *what, const char *sql);

/* Calls other than init need the current schema. */
int pg_ensure_ready(PgStore *s);

static inline void pg_int64_text(int64_t v, char buf[static 24]) {
        (void) snprintf(buf, 24, "%" PRId64, v);
}

/* A BIGINT column in text form. */
static inline int pg_column_int64(const PGresult *res, int row, int col, int64_t *ret) {
        return safe_atoi64(PQgetvalue(res, row, col), ret) < 0 ? -EBADMSG : 0;
}

static inline char *pg_dup_value(const PGresult *res, int row, int col) {
        return strdup(PQgetvalue(res, row, col));
}

/* store-postgres-keys.c */
int pg_get(Store *base, const char *id, StoreRecord *ret);
int pg_get_hash(Store *base, const char *id, char ret[KEY_HASH_HEX_SIZE]);
int pg_add(Store *base, const char *id, const StoreRecord *rec);
int pg_update(Store *base, const char *id, const StoreRecord *rec, int64_t expected_version);
int pg_remove(Store *base, const char *id);
int pg_list(Store *base, StoreListFunc f, void *userdata);
int pg_list_not_after(
        Store *base, int (*f)(const char *id, const char *not_after, void *userdata), void *userdata);
int pg_list_page(Store *base, int64_t after, size_t max, StoreListFunc f, void *userdata, int64_t *ret_next);
int pg_change_counter(Store *base, uint64_t *ret);
int pg_reseal(Store *base, StoreReseal *items, size_t n);

/* store-postgres-tokens.c */
int pg_token_add(Store *base, const uint8_t hash[TOKEN_HASH_SIZE], const StoreTokenRecord *t);
int pg_token_get(Store *base, const uint8_t hash[TOKEN_HASH_SIZE], StoreTokenRecord *ret);
int pg_token_revoke(Store *base, const uint8_t hash[TOKEN_HASH_SIZE]);
int pg_token_expire(Store *base, int64_t now_ns);

/* store-postgres-audit-anchor.c */
int pg_audit_anchor_set(Store *base, const char *name, uint64_t seq, const char *hash);
int pg_audit_anchor_get(Store *base, const char *name, uint64_t *ret_seq, char *ret_hash);
