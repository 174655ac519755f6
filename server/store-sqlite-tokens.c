/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SQLite store's user tokens (their hashes, never the tokens). */

#include "store-sqlite.h"

/* ---- tokens ---- */

static int token_add_in_tx(SqliteStore *s, const uint8_t hash[TOKEN_HASH_SIZE], const StoreTokenRecord *t) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = sqlite_stmt_get(s, STMT_TOKEN_ADD, &st);
        if (r < 0)
                return r;
        if ((rc = bind_hash(st, 1, hash)) != SQLITE_OK || (rc = bind_text(st, 2, t->user)) != SQLITE_OK ||
            (rc = bind_text(st, 3, t->groups)) != SQLITE_OK ||
            (rc = sqlite3_bind_int64(st, 4, t->created)) != SQLITE_OK ||
            (rc = sqlite3_bind_int64(st, 5, t->expires)) != SQLITE_OK ||
            (rc = sqlite3_bind_int(st, 6, t->revoked)) != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");

        rc = sqlite3_step(st);
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
                return -EEXIST;
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, "adding a token");
        return 0;
}

int sqlite_token_add(Store *base, const uint8_t hash[TOKEN_HASH_SIZE], const StoreTokenRecord *t) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = sqlite_write_begin(s);
        if (r < 0)
                return r;
        return sqlite_tx_end(s, token_add_in_tx(s, hash, t));
}

int sqlite_token_get(Store *base, const uint8_t hash[TOKEN_HASH_SIZE], StoreTokenRecord *ret) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_(store_token_record_done) StoreTokenRecord t = {};
        int rc, r;

        r = sqlite_stmt_ready(s, STMT_TOKEN_GET, &st);
        if (r < 0)
                return r;
        rc = bind_hash(st, 1, hash);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");

        r = sqlite_step_row(s, st, "reading a token");
        if (r < 0)
                return r;

        if ((r = sqlite_column_strdup(st, 0, &t.user)) < 0 ||
            (r = sqlite_column_strdup(st, 1, &t.groups)) < 0)
                return r;
        t.created = sqlite3_column_int64(st, 2);
        t.expires = sqlite3_column_int64(st, 3);
        t.revoked = sqlite3_column_int64(st, 4) != 0;

        *ret = t;
        t = (StoreTokenRecord){};
        return 0;
}

static int token_revoke_in_tx(SqliteStore *s, const uint8_t hash[TOKEN_HASH_SIZE]) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = sqlite_stmt_get(s, STMT_TOKEN_REVOKE, &st);
        if (r < 0)
                return r;
        rc = bind_hash(st, 1, hash);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, "revoking a token");
        return sqlite3_changes(s->db) == 0 ? -ENOKEY : 0;
}

int sqlite_token_revoke(Store *base, const uint8_t hash[TOKEN_HASH_SIZE]) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = sqlite_write_begin(s);
        if (r < 0)
                return r;
        return sqlite_tx_end(s, token_revoke_in_tx(s, hash));
}

static int token_expire_in_tx(SqliteStore *s, int64_t now_ns) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = sqlite_stmt_get(s, STMT_TOKEN_EXPIRE, &st);
        if (r < 0)
                return r;
        rc = sqlite3_bind_int64(st, 1, now_ns);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, "expiring tokens");
        return sqlite3_changes(s->db);
}

int sqlite_token_expire(Store *base, int64_t now_ns) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = sqlite_write_begin(s);
        if (r < 0)
                return r;
        return sqlite_tx_end(s, token_expire_in_tx(s, now_ns));
}
