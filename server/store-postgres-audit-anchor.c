/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PostgreSQL store's audit chain anchor. */

#include <string.h>

#include "store-postgres.h"

/* The audit chain's anchor: a table of its own, made on first use. */
int pg_audit_anchor_set(Store *base, const char *name, uint64_t seq, const char *hash) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        char seq_text[24];
        int r;

        r = pg_ensure_ready(s);
        if (r < 0)
                return r;
        r = pg_exec_simple(
                s, "creating the audit anchor table",
                "CREATE TABLE IF NOT EXISTS keyward_audit_anchor ("
                "name TEXT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL)");
        if (r < 0)
                return r;
        pg_int64_text((int64_t) seq, seq_text);
        return pg_exec(
                s, "storing the audit anchor",
                "INSERT INTO keyward_audit_anchor (name, seq, hash) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                3, (const char *const[]){name, seq_text, hash}, NULL, NULL, &res);
}

int pg_audit_anchor_get(Store *base, const char *name, uint64_t *ret_seq, char *ret_hash) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        int64_t seq;
        int r;

        r = pg_ensure_ready(s);
        if (r < 0)
                return r;
        /* No table: no anchor was ever stored (naming it would fail the statement). */
        r =
                pg_read(s, "looking for the audit anchor table",
                        "SELECT to_regclass('keyward_audit_anchor') IS NOT NULL", 0, NULL, NULL, NULL, &res);
        if (r < 0)
                return r;
        if (PQntuples(res) != 1 || !streq(PQgetvalue(res, 0, 0), "t"))
                return -ENOENT;
        PQclear(TAKE_PTR(res));
        r = pg_read(
                s, "reading the audit anchor", "SELECT seq, hash FROM keyward_audit_anchor WHERE name = $1",
                1, (const char *const[]){name}, NULL, NULL, &res);
        if (r < 0)
                return r;
        if (PQntuples(res) == 0)
                return -ENOENT;
        if (pg_column_int64(res, 0, 0, &seq) < 0 || seq <= 0 ||
            strlen(PQgetvalue(res, 0, 1)) != STORE_AUDIT_HASH_HEX)
                return -EBADMSG;
        *ret_seq = (uint64_t) seq;
        memcpy(ret_hash, PQgetvalue(res, 0, 1), STORE_AUDIT_HASH_HEX + 1);
        return 0;
}
