/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SQLite store's audit chain anchor (a table of its own, made on first use). */

#include <string.h>

#include "store-sqlite.h"

/* ---- the audit chain's anchor (a table of its own, made on first use) ---- */

int sqlite_audit_anchor_set(Store *base, const char *name, uint64_t seq, const char *hash) {
        SqliteStore *s = sqlite_store(base);
        sqlite3_stmt *st = NULL;
        int rc, r;

        r = sqlite_ensure_ready(s);
        if (r < 0)
                return r;
        rc = sqlite3_exec(
                s->db,
                "CREATE TABLE IF NOT EXISTS audit_anchor ("
                "name TEXT PRIMARY KEY NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL)",
                NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "creating the audit anchor table");
        rc = sqlite3_prepare_v2(
                s->db,
                "INSERT INTO audit_anchor (name, seq, hash) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "prepare");
        rc = bind_text(st, 1, name);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 2, (sqlite3_int64) seq);
        if (rc == SQLITE_OK)
                rc = bind_text(st, 3, hash);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        r = rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc, "storing the audit anchor");
        sqlite3_finalize(st);
        return r;
}

int sqlite_audit_anchor_get(Store *base, const char *name, uint64_t *ret_seq, char *ret_hash) {
        SqliteStore *s = sqlite_store(base);
        sqlite3_stmt *st = NULL;
        const unsigned char *h;
        int rc, r;

        r = sqlite_ensure_ready(s);
        if (r < 0)
                return r;
        rc = sqlite3_prepare_v2(s->db, "SELECT seq, hash FROM audit_anchor WHERE name = ?1", -1, &st, NULL);
        if (rc != SQLITE_OK) {
                /* No table: no anchor was ever stored. */
                if (strstr(sqlite3_errmsg(s->db), "no such table"))
                        return -ENOENT;
                return sqlite_fail(s, rc, "prepare");
        }
        rc = bind_text(st, 1, name);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                r = -ENOENT;
        else if (rc != SQLITE_ROW)
                r = sqlite_fail(s, rc, "reading the audit anchor");
        else {
                h = sqlite3_column_text(st, 1);
                if (sqlite3_column_int64(st, 0) <= 0 || !h ||
                    strlen((const char *) h) != STORE_AUDIT_HASH_HEX)
                        r = -EBADMSG;
                else {
                        *ret_seq = (uint64_t) sqlite3_column_int64(st, 0);
                        memcpy(ret_hash, h, STORE_AUDIT_HASH_HEX + 1);
                        r = 0;
                }
        }
        sqlite3_finalize(st);
        return r;
}
