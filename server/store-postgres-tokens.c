/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PostgreSQL store's user tokens (their hashes, never the tokens). */

#include "store-postgres.h"

/* ---- tokens ---- */

int pg_token_add(Store *base, const uint8_t hash[TOKEN_HASH_SIZE], const StoreTokenRecord *t) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        char created[24], expires[24];

        pg_int64_text(t->created, created);
        pg_int64_text(t->expires, expires);
        return pg_exec_ready(
                s, "adding a token",
                "INSERT INTO keyward_tokens (hash, \"user\", \"groups\", created, expires, revoked)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                6,
                (const char *const[]){
                        (const char *) hash, t->user, t->groups, created, expires, t->revoked ? "t" : "f"},
                (const int[]){TOKEN_HASH_SIZE, 0, 0, 0, 0, 0}, (const int[]){1, 0, 0, 0, 0, 0}, &res);
}

int pg_token_get(Store *base, const uint8_t hash[TOKEN_HASH_SIZE], StoreTokenRecord *ret) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        _cleanup_(store_token_record_done) StoreTokenRecord t = {};
        int r;

        r = pg_read_ready(
                s, "reading a token",
                "SELECT \"user\", \"groups\", created, expires, revoked FROM keyward_tokens WHERE hash = $1",
                1, (const char *const[]){(const char *) hash}, (const int[]){TOKEN_HASH_SIZE},
                (const int[]){1}, &res);
        if (r < 0)
                return r;
        if (PQntuples(res) == 0)
                return -ENOKEY;
        t.user = pg_dup_value(res, 0, 0);
        t.groups = pg_dup_value(res, 0, 1);
        t.revoked = streq(PQgetvalue(res, 0, 4), "t");
        if (!t.user || !t.groups)
                return -ENOMEM;
        if (pg_column_int64(res, 0, 2, &t.created) < 0 || pg_column_int64(res, 0, 3, &t.expires) < 0)
                return -EBADMSG;
        *ret = t;
        t = (StoreTokenRecord){};
        return 0;
}

int pg_token_revoke(Store *base, const uint8_t hash[TOKEN_HASH_SIZE]) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        int r;

        r = pg_exec_ready(
                s, "revoking a token", "UPDATE keyward_tokens SET revoked = true WHERE hash = $1", 1,
                (const char *const[]){(const char *) hash}, (const int[]){TOKEN_HASH_SIZE}, (const int[]){1},
                &res);
        if (r < 0)
                return r;
        return streq(PQcmdTuples(res), "0") ? -ENOKEY : 0;
}

int pg_token_expire(Store *base, int64_t now_ns) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        char now[24];
        int r;

        pg_int64_text(now_ns, now);
        r = pg_exec_ready(
                s, "expiring tokens", "DELETE FROM keyward_tokens WHERE expires < $1", 1,
                (const char *const[]){now}, NULL, NULL, &res);
        if (r < 0)
                return r;
        {
                uint64_t n = 0;

                (void) safe_atou64(PQcmdTuples(res), &n);
                return (int) MIN(n, (uint64_t) INT32_MAX);
        }
}
