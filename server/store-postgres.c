/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PostgreSQL backend, for several keywardd behind a load balancer sharing one database.
 * Each write is a single statement, so it is one transaction, durable when PostgreSQL says
 * so (synchronous_commit): the row change and the change counter's bump are joined in one
 * statement through a data-modifying WITH. A connection that broke is reset once before a
 * statement fails. */

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "parse.h"
#include "store-internal.h"

#define PG_SCHEMA_VERSION 2
#define PG_STR_(x) #x
#define PG_STR(x) PG_STR_(x)

typedef struct PgStore {
        Store store;
        PGconn *conn;
        bool ready;
} PgStore;

static PgStore *pg_store(Store *s) {
        return (PgStore *) s;
}

static void pg_free(Store *base) {
        PgStore *s = pg_store(base);

        if (s->conn)
                PQfinish(s->conn);
        free(s);
}

static void pg_clearp(PGresult **r) {
        if (*r)
                PQclear(*r);
}
#define _cleanup_pgresult_ _cleanup_(pg_clearp)

/* SQLSTATE classes that mean "the server or the connection", not "the statement". */
static int pg_error(PgStore *s, const PGresult *res, const char *what) {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

        log_debug("PostgreSQL: %s failed: %s", what, PQerrorMessage(s->conn));
        if (!state)
                return PQstatus(s->conn) == CONNECTION_OK ? -EIO : -ECONNRESET;
        if (streq(state, "23505"))
                return -EEXIST;
        if (streq(state, "42P01"))
                return -ENOMEDIUM; /* no such table: not initialised */
        if (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0)
                return -ECONNRESET;
        if (strncmp(state, "53", 2) == 0)
                return -ENOSPC;
        return -EIO;
}

/* Run one statement with text parameters (NULL lengths) or with the binary ones marked in
 * formats. Returns the result when it succeeded. */
static int pg_exec_full(
        PgStore *s,
        bool retry,
        const char *what,
        const char *sql,
        int n,
        const char *const *values,
        const int *lengths,
        const int *formats,
        PGresult **ret) {

        for (int attempt = 0;; attempt++) {
                PGresult *res;
                ExecStatusType st;

                if (PQstatus(s->conn) != CONNECTION_OK) {
                        log_debug("PostgreSQL: the connection is down; reconnecting.");
                        PQreset(s->conn);
                        if (PQstatus(s->conn) != CONNECTION_OK)
                                return log_debug_errno(
                                        ECONNRESET, "PostgreSQL: cannot reconnect: %s",
                                        PQerrorMessage(s->conn));
                }
                res = PQexecParams(s->conn, sql, n, NULL, values, lengths, formats, 0);
                st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
                if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
                        *ret = res;
                        return 0;
                }
                int r = pg_error(s, res, what);
                if (res)
                        PQclear(res);
                /* The server went away (a restart ends every session with 57P01, and the
                 * connection may still look fine until then): reconnect, and send a read
                 * once more. A write is not sent again: it may have committed before the
                 * answer was lost, and the caller gets the error. */
                if (r == -ECONNRESET) {
                        PQreset(s->conn);
                        if (retry && attempt == 0)
                                continue;
                }
                return r;
        }
}

#define pg_exec(s, ...) pg_exec_full(s, false, __VA_ARGS__)
#define pg_read(s, ...) pg_exec_full(s, true, __VA_ARGS__)

/* Statements without parameters, several allowed (PQexecParams takes one). */
static int pg_exec_simple(PgStore *s, const char *what, const char *sql) {
        _cleanup_pgresult_ PGresult *res = NULL;
        ExecStatusType st;

        res = PQexec(s->conn, sql);
        st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
                return 0;
        return pg_error(s, res, what);
}

static int read_schema_version(PgStore *s, int64_t *ret) {
        _cleanup_pgresult_ PGresult *res = NULL;
        int r;

        r = pg_read(
                s, "reading the schema version",
                "SELECT value FROM keyward_meta WHERE name = 'schema_version'", 0, NULL, NULL, NULL, &res);
        if (r < 0)
                return r;
        if (PQntuples(res) != 1)
                return -ENOMEDIUM;
        return safe_atoi64(PQgetvalue(res, 0, 0), ret) < 0 ? -EBADMSG : 0;
}

static int ensure_ready(PgStore *s) {
        int64_t v = 0;
        int r;

        if (s->ready)
                return 0;
        r = read_schema_version(s, &v);
        if (r < 0)
                return r;
        if (v > PG_SCHEMA_VERSION)
                return log_debug_errno(
                        EPROTONOSUPPORT,
                        "PostgreSQL: schema version %" PRId64 " is newer than this keywardd.", v);
        if (v < PG_SCHEMA_VERSION)
                return -ENOMEDIUM;
        s->ready = true;
        return 0;
}

static int pg_init(Store *base) {
        PgStore *s = pg_store(base);
        int r;

        /* One statement list in one transaction: a second keywardd init waits for the lock
         * and then finds everything in place. "secrets" is Knox's own table. */
        r = pg_exec_simple(
                s, "creating the schema",
                "BEGIN;"
                "CREATE TABLE IF NOT EXISTS keyward_meta ("
                "  name TEXT PRIMARY KEY NOT NULL,"
                "  value BIGINT NOT NULL);"
                "LOCK TABLE keyward_meta IN EXCLUSIVE MODE;"
                "CREATE TABLE IF NOT EXISTS secrets ("
                "  id VARCHAR(512) PRIMARY KEY NOT NULL,"
                "  acl TEXT NOT NULL,"
                "  version_hash TEXT NOT NULL,"
                "  versions TEXT NOT NULL,"
                "  last_updated BIGINT NOT NULL,"
                "  seq BIGSERIAL UNIQUE NOT NULL);"
                "CREATE TABLE IF NOT EXISTS keyward_tokens ("
                "  hash BYTEA PRIMARY KEY NOT NULL CHECK (length(hash) = 32),"
                "  \"user\" TEXT NOT NULL,"
                "  \"groups\" TEXT NOT NULL,"
                "  created BIGINT NOT NULL,"
                "  expires BIGINT NOT NULL,"
                "  revoked BOOLEAN NOT NULL DEFAULT false);"
                "CREATE INDEX IF NOT EXISTS keyward_tokens_expires ON keyward_tokens (expires);"
                "INSERT INTO keyward_meta (name, value) VALUES ('change_counter', 0) ON CONFLICT DO NOTHING;"
                "INSERT INTO keyward_meta (name, value) VALUES ('schema_version', 1) ON CONFLICT DO NOTHING;"
                /* 1 -> 2: the notAfter of certificate versions (store.c's JSON, or NULL). */
                "ALTER TABLE secrets ADD COLUMN IF NOT EXISTS not_after TEXT;"
                "UPDATE keyward_meta SET value = 2 WHERE name = 'schema_version' AND value < 2;"
                "COMMIT;");
        if (r < 0) {
                (void) pg_exec_simple(s, "rolling back", "ROLLBACK");
                return r;
        }
        return ensure_ready(s);
}

static void int64_text(int64_t v, char buf[static 24]) {
        (void) snprintf(buf, 24, "%" PRId64, v);
}

/* A BIGINT column in text form. */
static int column_int64(const PGresult *res, int row, int col, int64_t *ret) {
        return safe_atoi64(PQgetvalue(res, row, col), ret) < 0 ? -EBADMSG : 0;
}

static char *dup_value(const PGresult *res, int row, int col) {
        return strdup(PQgetvalue(res, row, col));
}

static int pg_get(Store *base, const char *id, StoreRecord *ret) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        _cleanup_(store_record_done) StoreRecord rec = {};
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = pg_read(
                s, "reading a key",
                "SELECT acl, version_hash, versions, last_updated, not_after FROM secrets WHERE id = $1", 1,
                &id, NULL, NULL, &res);
        if (r < 0)
                return r;
        if (PQntuples(res) == 0)
                return -ENOKEY;
        rec.acl = dup_value(res, 0, 0);
        rec.hash = dup_value(res, 0, 1);
        rec.versions = dup_value(res, 0, 2);
        if (!rec.acl || !rec.hash || !rec.versions)
                return -ENOMEM;
        if (column_int64(res, 0, 3, &rec.version) < 0)
                return -EBADMSG;
        if (!PQgetisnull(res, 0, 4)) {
                rec.not_after = dup_value(res, 0, 4);
                if (!rec.not_after)
                        return -ENOMEM;
        }
        *ret = rec;
        rec = (StoreRecord){};
        return 0;
}

static int pg_get_hash(Store *base, const char *id, char ret[KEY_HASH_HEX_SIZE]) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        const char *hash;
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r =
                pg_read(s, "reading a hash", "SELECT version_hash FROM secrets WHERE id = $1", 1, &id, NULL,
                        NULL, &res);
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

static int pg_add(Store *base, const char *id, const StoreRecord *rec) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        char version[24];
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        int64_text(rec->version, version);
        r = pg_exec(
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

static int pg_update(Store *base, const char *id, const StoreRecord *rec, int64_t expected_version) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        char version[24], expected[24];
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        int64_text(rec->version, version);
        int64_text(expected_version, expected);
        r = pg_exec(
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

static int pg_remove(Store *base, const char *id) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r =
                pg_exec(s, "removing a key",
                        "WITH del AS (DELETE FROM secrets WHERE id = $1 RETURNING 1)" BUMP_IF("del"), 1, &id,
                        NULL, NULL, &res);
        if (r < 0)
                return r;
        return PQntuples(res) == 1 ? 0 : -ENOKEY;
}

static int pg_list(Store *base, StoreListFunc f, void *userdata) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r =
                pg_read(s, "listing keys", "SELECT id, version_hash FROM secrets ORDER BY seq", 0, NULL,
                        NULL, NULL, &res);
        if (r < 0)
                return r;
        for (int i = 0; i < PQntuples(res); i++) {
                r = f(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int pg_list_not_after(
        Store *base, int (*f)(const char *id, const char *not_after, void *userdata), void *userdata) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r =
                pg_read(s, "listing certificates",
                        "SELECT id, not_after FROM secrets WHERE not_after IS NOT NULL ORDER BY seq", 0,
                        NULL, NULL, NULL, &res);
        if (r < 0)
                return r;
        for (int i = 0; i < PQntuples(res); i++) {
                r = f(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int
pg_list_page(Store *base, int64_t after, size_t max, StoreListFunc f, void *userdata, int64_t *ret_next) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        char after_text[24], max_text[24];
        int64_t next = after;
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        int64_text(after, after_text);
        int64_text((int64_t) MIN(max, (size_t) INT32_MAX), max_text);
        r =
                pg_read(s, "listing keys",
                        "SELECT id, version_hash, seq FROM secrets WHERE seq > $1 ORDER BY seq LIMIT $2", 2,
                        (const char *const[]){after_text, max_text}, NULL, NULL, &res);
        if (r < 0)
                return r;
        for (int i = 0; i < PQntuples(res); i++) {
                if (column_int64(res, i, 2, &next) < 0)
                        return -EBADMSG;
                r = f(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), userdata);
                if (r < 0)
                        return r;
        }
        *ret_next = next;
        return PQntuples(res);
}

static int pg_change_counter(Store *base, uint64_t *ret) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = pg_read(
                s, "reading the change counter",
                "SELECT value FROM keyward_meta WHERE name = 'change_counter'", 0, NULL, NULL, NULL, &res);
        if (r < 0)
                return r;
        if (PQntuples(res) != 1)
                return -EIO;
        return safe_atou64(PQgetvalue(res, 0, 0), ret) < 0 ? -EBADMSG : 0;
}

/* ---- tokens ---- */

static int pg_token_add(Store *base, const uint8_t hash[TOKEN_HASH_SIZE], const StoreTokenRecord *t) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        char created[24], expires[24];
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        int64_text(t->created, created);
        int64_text(t->expires, expires);
        return pg_exec(
                s, "adding a token",
                "INSERT INTO keyward_tokens (hash, \"user\", \"groups\", created, expires, revoked)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                6,
                (const char *const[]){
                        (const char *) hash, t->user, t->groups, created, expires, t->revoked ? "t" : "f"},
                (const int[]){TOKEN_HASH_SIZE, 0, 0, 0, 0, 0}, (const int[]){1, 0, 0, 0, 0, 0}, &res);
}

static int pg_token_get(Store *base, const uint8_t hash[TOKEN_HASH_SIZE], StoreTokenRecord *ret) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        _cleanup_(store_token_record_done) StoreTokenRecord t = {};
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = pg_read(
                s, "reading a token",
                "SELECT \"user\", \"groups\", created, expires, revoked FROM keyward_tokens WHERE hash = $1",
                1, (const char *const[]){(const char *) hash}, (const int[]){TOKEN_HASH_SIZE},
                (const int[]){1}, &res);
        if (r < 0)
                return r;
        if (PQntuples(res) == 0)
                return -ENOKEY;
        t.user = dup_value(res, 0, 0);
        t.groups = dup_value(res, 0, 1);
        t.revoked = streq(PQgetvalue(res, 0, 4), "t");
        if (!t.user || !t.groups)
                return -ENOMEM;
        if (column_int64(res, 0, 2, &t.created) < 0 || column_int64(res, 0, 3, &t.expires) < 0)
                return -EBADMSG;
        *ret = t;
        t = (StoreTokenRecord){};
        return 0;
}

static int pg_token_revoke(Store *base, const uint8_t hash[TOKEN_HASH_SIZE]) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r =
                pg_exec(s, "revoking a token", "UPDATE keyward_tokens SET revoked = true WHERE hash = $1", 1,
                        (const char *const[]){(const char *) hash}, (const int[]){TOKEN_HASH_SIZE},
                        (const int[]){1}, &res);
        if (r < 0)
                return r;
        return streq(PQcmdTuples(res), "0") ? -ENOKEY : 0;
}

static int pg_token_expire(Store *base, int64_t now_ns) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        char now[24];
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        int64_text(now_ns, now);
        r =
                pg_exec(s, "expiring tokens", "DELETE FROM keyward_tokens WHERE expires < $1", 1,
                        (const char *const[]){now}, NULL, NULL, &res);
        if (r < 0)
                return r;
        {
                uint64_t n = 0;

                (void) safe_atou64(PQcmdTuples(res), &n);
                return (int) MIN(n, (uint64_t) INT32_MAX);
        }
}

/* One transaction of compare-and-set updates. A connection lost in the middle leaves the
 * rest of the batch to the next run (rekey looks at every key again). */
static int pg_reseal(Store *base, StoreReseal *items, size_t n) {
        PgStore *s = pg_store(base);
        int applied = 0, r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = pg_exec_simple(s, "starting a re-seal", "BEGIN");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                _cleanup_pgresult_ PGresult *res = NULL;
                char expected[24];

                int64_text(items[i].expected_version, expected);
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

/* The audit chain's anchor: a table of its own, made on first use. */
static int pg_audit_anchor_set(Store *base, const char *name, uint64_t seq, const char *hash) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        char seq_text[24];
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = pg_exec_simple(
                s, "creating the audit anchor table",
                "CREATE TABLE IF NOT EXISTS keyward_audit_anchor ("
                "name TEXT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL)");
        if (r < 0)
                return r;
        int64_text((int64_t) seq, seq_text);
        return pg_exec(
                s, "storing the audit anchor",
                "INSERT INTO keyward_audit_anchor (name, seq, hash) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                3, (const char *const[]){name, seq_text, hash}, NULL, NULL, &res);
}

static int pg_audit_anchor_get(Store *base, const char *name, uint64_t *ret_seq, char *ret_hash) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        int64_t seq;
        int r;

        r = ensure_ready(s);
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
        if (column_int64(res, 0, 0, &seq) < 0 || seq <= 0 ||
            strlen(PQgetvalue(res, 0, 1)) != STORE_AUDIT_HASH_HEX)
                return -EBADMSG;
        *ret_seq = (uint64_t) seq;
        memcpy(ret_hash, PQgetvalue(res, 0, 1), STORE_AUDIT_HASH_HEX + 1);
        return 0;
}

static const StoreVTable pg_vtable = {
        .name = "postgresql",
        .free = pg_free,
        .init = pg_init,
        .get = pg_get,
        .get_hash = pg_get_hash,
        .add = pg_add,
        .update = pg_update,
        .remove = pg_remove,
        .list = pg_list,
        .list_not_after = pg_list_not_after,
        .list_page = pg_list_page,
        .change_counter = pg_change_counter,
        .token_add = pg_token_add,
        .token_get = pg_token_get,
        .token_revoke = pg_token_revoke,
        .token_expire = pg_token_expire,
        .reseal = pg_reseal,
        .audit_anchor_set = pg_audit_anchor_set,
        .audit_anchor_get = pg_audit_anchor_get,
};

int store_postgres_open(const char *url, bool create, Store **ret) {
        PgStore *s;
        int r;

        s = calloc(1, sizeof(PgStore));
        if (!s)
                return -ENOMEM;
        s->store.vtable = &pg_vtable;
        s->conn = PQconnectdb(url);
        if (!s->conn) {
                free(s);
                return -ENOMEM;
        }
        if (PQstatus(s->conn) != CONNECTION_OK) {
                /* libpq's message names the host and the reason, never the password. */
                log_error("Cannot connect to PostgreSQL: %s", PQerrorMessage(s->conn));
                pg_free(&s->store);
                return -ECONNREFUSED;
        }
        (void) pg_exec_simple(s, "setting the session", "SET client_min_messages = warning");
        if (!create) {
                r = ensure_ready(s);
                if (r < 0) {
                        pg_free(&s->store);
                        return r;
                }
        }
        *ret = &s->store;
        return 0;
}

/* ---- change notifications ---- */

typedef enum PgListenState {
        PG_LISTEN_IDLE,       /* no connection */
        PG_LISTEN_CONNECTING, /* PQconnectPoll() under way */
        PG_LISTEN_SENT,       /* LISTEN sent, its answer awaited */
        PG_LISTEN_UP,
} PgListenState;

typedef struct PgListener {
        StoreListener base;
        char *url;
        PGconn *conn;
        PgListenState state;
        PostgresPollingStatusType polling;
} PgListener;

static PgListener *pg_listener(StoreListener *l) {
        return (PgListener *) l;
}

static void pg_listener_close(PgListener *l) {
        if (l->conn)
                PQfinish(l->conn);
        l->conn = NULL;
        l->state = PG_LISTEN_IDLE;
}

static void pg_listener_free(StoreListener *base) {
        PgListener *l = pg_listener(base);

        pg_listener_close(l);
        free(l->url);
        free(l);
}

static void pg_notice_ignore(void *arg, const char *message) {
        log_debug("PostgreSQL (change listener): %s", message);
}

static int pg_listener_fail(PgListener *l, const char *what) {
        log_debug("PostgreSQL: change listener: %s: %s", what, l->conn ? PQerrorMessage(l->conn) : "");
        pg_listener_close(l);
        return -ECONNRESET;
}

static int pg_listener_connect(StoreListener *base, int *ret_fd, bool *ret_write) {
        PgListener *l = pg_listener(base);

        if (l->state == PG_LISTEN_IDLE) {
                /* Later keywords override what the URL says. Keepalives notice a peer that
                 * vanished without closing the connection, which nothing else would. */
                static const char *const keys[] = {
                        "dbname",
                        "application_name",
                        "keepalives",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "connect_timeout",
                        NULL,
                };
                const char *const values[] = {l->url, "keywardd-listen", "1", "10", "5", "3", "10", NULL};

                l->conn = PQconnectStartParams(keys, values, 1);
                if (!l->conn)
                        return -ENOMEM;
                if (PQstatus(l->conn) == CONNECTION_BAD)
                        return pg_listener_fail(l, "cannot start connecting");
                (void) PQsetNoticeProcessor(l->conn, pg_notice_ignore, NULL);
                l->state = PG_LISTEN_CONNECTING;
                l->polling = PGRES_POLLING_WRITING; /* as libpq says to begin */
        } else if (l->state == PG_LISTEN_CONNECTING) {
                l->polling = PQconnectPoll(l->conn);
                if (l->polling == PGRES_POLLING_FAILED)
                        return pg_listener_fail(l, "cannot connect");
                if (l->polling == PGRES_POLLING_OK) {
                        if (PQsetnonblocking(l->conn, 1) < 0 ||
                            !PQsendQuery(l->conn, "LISTEN " STORE_PG_CHANNEL) || PQflush(l->conn) < 0)
                                return pg_listener_fail(l, "cannot send LISTEN");
                        l->state = PG_LISTEN_SENT;
                }
        } else if (l->state == PG_LISTEN_SENT) {
                PGresult *res;
                bool ok = false;

                if (!PQconsumeInput(l->conn))
                        return pg_listener_fail(l, "LISTEN failed");
                if (PQisBusy(l->conn))
                        goto wait;
                while ((res = PQgetResult(l->conn))) {
                        ok = ok || PQresultStatus(res) == PGRES_COMMAND_OK;
                        PQclear(res);
                }
                if (!ok)
                        return pg_listener_fail(l, "LISTEN refused");
                l->state = PG_LISTEN_UP;
        }

wait:
        *ret_fd = PQsocket(l->conn);
        if (*ret_fd < 0)
                return pg_listener_fail(l, "no socket");
        *ret_write = l->state == PG_LISTEN_CONNECTING && l->polling == PGRES_POLLING_WRITING;
        return l->state == PG_LISTEN_UP;
}

static void pg_notification_pass(const char *payload, StoreChangeFunc f, void *userdata) {
        const char *id;
        uint64_t c;

        /* Not ours (someone else wrote to the channel) is taken as "anything may have
         * changed": it costs a look at the counter, never a change gone unheard. */
        if (store_change_parse(payload, &id, &c) < 0) {
                log_debug(
                        "PostgreSQL: a change notification that is not keywardd's; looking at the counter.");
                f(NULL, 0, userdata);
                return;
        }
        f(id, c, userdata);
}

static int pg_listener_dispatch(StoreListener *base, StoreChangeFunc f, void *userdata) {
        PgListener *l = pg_listener(base);
        PGnotify *n;
        bool lost;

        if (l->state != PG_LISTEN_UP)
                return -ENOTCONN;
        /* What arrived before the connection broke is still passed on. */
        lost = !PQconsumeInput(l->conn) || PQstatus(l->conn) == CONNECTION_BAD;
        while ((n = PQnotifies(l->conn))) {
                if (streq(n->relname, STORE_PG_CHANNEL))
                        pg_notification_pass(n->extra, f, userdata);
                PQfreemem(n);
        }
        if (lost)
                return pg_listener_fail(l, "connection lost");
        return 0;
}

static const StoreListenerVTable pg_listener_vtable = {
        .free = pg_listener_free,
        .connect = pg_listener_connect,
        .dispatch = pg_listener_dispatch,
};

int store_postgres_listener_new(const char *url, StoreListener **ret) {
        PgListener *l;

        l = calloc(1, sizeof(PgListener));
        if (!l)
                return -ENOMEM;
        l->base.vtable = &pg_listener_vtable;
        l->url = strdup(url);
        if (!l->url) {
                free(l);
                return -ENOMEM;
        }
        *ret = &l->base;
        return 0;
}
