/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PostgreSQL store's keys: read, write, list, the change counter and re-sealing. */

#include <string.h>

#include "store-postgres.h"

#define PG_STR_(x) #x
#define PG_STR(x) PG_STR_(x)

int pg_get(Store *base, const char *id, StoreRecord *ret) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        _cleanup_(store_record_done) StoreRecord rec = {};
        int r;

        r = pg_read_ready(
                s, "reading a key",
                "SELECT acl, version_hash, versions, last_updated, not_after FROM secrets WHERE id = $1", 1,
                &id, NULL, NULL, &res);
        if (r < 0)
                return r;
        if (PQntuples(res) == 0)
                return -ENOKEY;
        rec.acl = pg_dup_value(res, 0, 0);
        rec.hash = pg_dup_value(res, 0, 1);
        rec.versions = pg_dup_value(res, 0, 2);
        if (!rec.acl || !rec.hash || !rec.versions)
                return -ENOMEM;
        if (pg_column_int64(res, 0, 3, &rec.version) < 0)
                return -EBADMSG;
        if (!PQgetisnull(res, 0, 4)) {
                rec.not_after = pg_dup_value(res, 0, 4);
                if (!rec.not_after)
                        return -ENOMEM;
        }
        *ret = rec;
        rec = (StoreRecord){};
        return 0;
}

int pg_get_hash(Store *base, const char *id, char ret[KEY_HASH_HEX_SIZE]) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        const char *hash;
        int r;

        r = pg_read_ready(
                s, "reading a hash", "SELECT version_hash FROM secrets WHERE id = $1", 1, &id, NULL, NULL,
                &res);
        if (r < 0)
                return r;
        if (PQntuples(res) == 0)
                return -ENOKEY;
        hash = PQgetvalue(res, 0, 0);
        if (strlen(hash) >= KEY_HASH_HEX_SIZE)
                return -EBADMSG;
        memcpy(ret, hash, strlen(hash) + 1);
        return 0;
}

/* The row change, the counter's bump and the notification in one statement; rows come
 * back only when the change touched a row. The notification ("<counter> <id>", or the
 * counter alone for an id too long for NOTIFY's payload) goes out when the statement's
 * transaction commits, and not at all if it rolls back. The counter's row lock is held to
 * the commit, so counters are notified in commit order. $1 is the key id. */
#define BUMP_IF(cte)                                                                              \
        ", bump AS (UPDATE keyward_meta SET value = value + 1 WHERE name = 'change_counter'"      \
        " AND EXISTS (SELECT 1 FROM " cte ") RETURNING value)"                                    \
        " SELECT value, pg_notify('" STORE_PG_CHANNEL "', CASE WHEN octet_length($1) <= " PG_STR( \
                STORE_PG_NOTIFY_ID_MAX) " THEN value || ' ' || $1 ELSE value::text END) FROM bump"

int pg_add(Store *base, const char *id, const StoreRecord *rec) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        char version[24];
        int r;

        pg_int64_text(rec->version, version);
        r = pg_exec_ready(
                s, "adding a key",
                "WITH ins AS (INSERT INTO secrets (id, acl, version_hash, versions, last_updated, not_after)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING 1)" BUMP_IF("ins"),
                6, (const char *const[]){id, rec->acl, rec->hash, rec->versions, version, rec->not_after},
                NULL, NULL, &res);
        if (r < 0)
                return r;
        return PQntuples(res) == 1 ? 0 : -EEXIST;
}

static int key_exists(PgStore *s, const char *id) {
        _cleanup_pgresult_ PGresult *res = NULL;
        int r;

        r = pg_read(s, "looking up a key", "SELECT 1 FROM secrets WHERE id = $1", 1, &id, NULL, NULL, &res);
        return r < 0 ? r : PQntuples(res) > 0;
}

int pg_update(Store *base, const char *id, const StoreRecord *rec, int64_t expected_version) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        char version[24], expected[24];
        int r;

        pg_int64_text(rec->version, version);
        pg_int64_text(expected_version, expected);
        r = pg_exec_ready(
                s, "updating a key",
                "WITH upd AS (UPDATE secrets SET acl = $2, version_hash = $3, versions = $4, last_updated = $5,"
                " not_after = $7 WHERE id = $1 AND last_updated = $6 RETURNING 1)" BUMP_IF("upd"),
                7,
                (const char *const[]){
                        id, rec->acl, rec->hash, rec->versions, version, expected, rec->not_after},
                NULL, NULL, &res);
        if (r < 0)
                return r;
        if (PQntuples(res) == 1)
                return 0;
        r = key_exists(s, id);
        if (r < 0)
                return r;
        return r > 0 ? -ESTALE : -ENOKEY;
}

int pg_remove(Store *base, const char *id) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        int r;

        r = pg_exec_ready(
                s, "removing a key",
                "WITH del AS (DELETE FROM secrets WHERE id = $1 RETURNING 1)" BUMP_IF("del"), 1, &id, NULL,
                NULL, &res);
        if (r < 0)
                return r;
        return PQntuples(res) == 1 ? 0 : -ENOKEY;
}

/* Each row's first two columns to f, in order, for a statement without parameters. */
static int list_all(Store *base, const char *what, const char *sql, StoreListFunc f, void *userdata) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        int r;

        r = pg_read_ready(s, what, sql, 0, NULL, NULL, NULL, &res);
        if (r < 0)
                return r;
        for (int i = 0; i < PQntuples(res); i++) {
                r = f(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

int pg_list(Store *base, StoreListFunc f, void *userdata) {
        return list_all(
                base, "listing keys", "SELECT id, version_hash FROM secrets ORDER BY seq", f, userdata);
}

int pg_list_not_after(
        Store *base, int (*f)(const char *id, const char *not_after, void *userdata), void *userdata) {
        return list_all(
                base, "listing certificates",
                "SELECT id, not_after FROM secrets WHERE not_after IS NOT NULL ORDER BY seq", f, userdata);
}

int pg_list_page(
        Store *base, int64_t after, size_t max, StoreListFunc f, void *userdata, int64_t *ret_next) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        char after_text[24], max_text[24];
        int64_t next = after;
        int r;

        pg_int64_text(after, after_text);
        pg_int64_text((int64_t) MIN(max, (size_t) INT32_MAX), max_text);
        r = pg_read_ready(
                s, "listing keys",
                "SELECT id, version_hash, seq FROM secrets WHERE seq > $1 ORDER BY seq LIMIT $2", 2,
                (const char *const[]){after_text, max_text}, NULL, NULL, &res);
        if (r < 0)
                return r;
        for (int i = 0; i < PQntuples(res); i++) {
                if (pg_column_int64(res, i, 2, &next) < 0)
                        return -EBADMSG;
                r = f(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), userdata);
                if (r < 0)
                        return r;
        }
        *ret_next = next;
        return PQntuples(res);
}

int pg_change_counter(Store *base, uint64_t *ret) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        int r;

        r = pg_read_ready(
                s, "reading the change counter",
                "SELECT value FROM keyward_meta WHERE name = 'change_counter'", 0, NULL, NULL, NULL, &res);
        if (r < 0)
                return r;
        if (PQntuples(res) != 1)
                return -EIO;
        return safe_atou64(PQgetvalue(res, 0, 0), ret) < 0 ? -EBADMSG : 0;
}

/* One transaction of compare-and-set updates. A connection lost in the middle leaves the
 * rest of the batch to the next run (rekey looks at every key again). */
int pg_reseal(Store *base, StoreReseal *items, size_t n) {
        PgStore *s = pg_store(base);
        int applied = 0, r;

        r = pg_ensure_ready(s);
        if (r < 0)
                return r;
        r = pg_exec_simple(s, "starting a re-seal", "BEGIN");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                _cleanup_pgresult_ PGresult *res = NULL;
                char expected[24];

                pg_int64_text(items[i].expected_version, expected);
                r = pg_exec(
                        s, "re-sealing a key",
                        "UPDATE secrets SET versions = $2 WHERE id = $1 AND last_updated = $3 RETURNING 1",
                        3, (const char *const[]){items[i].id, items[i].versions, expected}, NULL, NULL,
                        &res);
                if (r < 0) {
                        (void) pg_exec_simple(s, "rolling back a re-seal", "ROLLBACK");
                        return r;
                }
                items[i].applied = PQntuples(res) == 1;
                applied += items[i].applied;
        }
        r = pg_exec_simple(s, "committing a re-seal", "COMMIT");
        if (r < 0) {
                (void) pg_exec_simple(s, "rolling back a re-seal", "ROLLBACK");
                return r;
        }
        return applied;
}
