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

#define PG_SCHEMA_VERSION 1

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
                                        ECONNRESET,
                                        "PostgreSQL: cannot reconnect: %s",
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

        r =
                pg_read(s,
                        "reading the schema version",
                        "SELECT value FROM keyward_meta WHERE name = 'schema_version'",
                        0,
                        NULL,
                        NULL,
                        NULL,
                        &res);
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
                        "PostgreSQL: schema version %" PRId64 " is newer than this keywardd.",
                        v);
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
                s,
                "creating the schema",
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
        r =
                pg_read(s,
                        "reading a key",
                        "SELECT acl, version_hash, versions, last_updated FROM secrets WHERE id = $1",
                        1,
                        &id,
                        NULL,
                        NULL,
                        &res);
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
                pg_read(s,
                        "reading a hash",
                        "SELECT version_hash FROM secrets WHERE id = $1",
                        1,
                        &id,
                        NULL,
                        NULL,
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

/* The row change and the counter's bump in one statement; rows come back only when the
 * change touched a row. */
#define BUMP_IF(cte)                                                               \
        " UPDATE keyward_meta SET value = value + 1 WHERE name = 'change_counter'" \
        " AND EXISTS (SELECT 1 FROM " cte ") RETURNING value"

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
                s,
                "adding a key",
                "WITH ins AS (INSERT INTO secrets (id, acl, version_hash, versions, last_updated)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING 1)" BUMP_IF("ins"),
                5,
                (const char *const[]){id, rec->acl, rec->hash, rec->versions, version},
                NULL,
                NULL,
                &res);
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
                s,
                "updating a key",
                "WITH upd AS (UPDATE secrets SET acl = $2, version_hash = $3, versions = $4, last_updated = $5"
                " WHERE id = $1 AND last_updated = $6 RETURNING 1)" BUMP_IF("upd"),
                6,
                (const char *const[]){id, rec->acl, rec->hash, rec->versions, version, expected},
                NULL,
                NULL,
                &res);
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
                pg_exec(s,
                        "removing a key",
                        "WITH del AS (DELETE FROM secrets WHERE id = $1 RETURNING 1)" BUMP_IF("del"),
                        1,
                        &id,
                        NULL,
                        NULL,
                        &res);
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
                pg_read(s,
                        "listing keys",
                        "SELECT id, version_hash FROM secrets ORDER BY seq",
                        0,
                        NULL,
                        NULL,
                        NULL,
                        &res);
        if (r < 0)
                return r;
        for (int i = 0; i < PQntuples(res); i++) {
                r = f(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int pg_change_counter(Store *base, uint64_t *ret) {
        PgStore *s = pg_store(base);
        _cleanup_pgresult_ PGresult *res = NULL;
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r =
                pg_read(s,
                        "reading the change counter",
                        "SELECT value FROM keyward_meta WHERE name = 'change_counter'",
                        0,
                        NULL,
                        NULL,
                        NULL,
                        &res);
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
                s,
                "adding a token",
                "INSERT INTO keyward_tokens (hash, \"user\", \"groups\", created, expires, revoked)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                6,
                (const char *const[]){
                        (const char *) hash, t->user, t->groups, created, expires, t->revoked ? "t" : "f"},
                (const int[]){TOKEN_HASH_SIZE, 0, 0, 0, 0, 0},
                (const int[]){1, 0, 0, 0, 0, 0},
                &res);
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
                s,
                "reading a token",
                "SELECT \"user\", \"groups\", created, expires, revoked FROM keyward_tokens WHERE hash = $1",
                1,
                (const char *const[]){(const char *) hash},
                (const int[]){TOKEN_HASH_SIZE},
                (const int[]){1},
                &res);
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
                pg_exec(s,
                        "revoking a token",
                        "UPDATE keyward_tokens SET revoked = true WHERE hash = $1",
                        1,
                        (const char *const[]){(const char *) hash},
                        (const int[]){TOKEN_HASH_SIZE},
                        (const int[]){1},
                        &res);
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
                pg_exec(s,
                        "expiring tokens",
                        "DELETE FROM keyward_tokens WHERE expires < $1",
                        1,
                        (const char *const[]){now},
                        NULL,
                        NULL,
                        &res);
        if (r < 0)
                return r;
        {
                uint64_t n = 0;

                (void) safe_atou64(PQcmdTuples(res), &n);
                return (int) MIN(n, (uint64_t) INT32_MAX);
        }
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
                s,
                "creating the audit anchor table",
                "CREATE TABLE IF NOT EXISTS keyward_audit_anchor ("
                "name TEXT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL)");
        if (r < 0)
                return r;
        int64_text((int64_t) seq, seq_text);
        return pg_exec(
                s,
                "storing the audit anchor",
                "INSERT INTO keyward_audit_anchor (name, seq, hash) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                3,
                (const char *const[]){name, seq_text, hash},
                NULL,
                NULL,
                &res);
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
                pg_read(s,
                        "looking for the audit anchor table",
                        "SELECT to_regclass('keyward_audit_anchor') IS NOT NULL",
                        0,
                        NULL,
                        NULL,
                        NULL,
                        &res);
        if (r < 0)
                return r;
        if (PQntuples(res) != 1 || !streq(PQgetvalue(res, 0, 0), "t"))
                return -ENOENT;
        PQclear(TAKE_PTR(res));
        r =
                pg_read(s,
                        "reading the audit anchor",
                        "SELECT seq, hash FROM keyward_audit_anchor WHERE name = $1",
                        1,
                        (const char *const[]){name},
                        NULL,
                        NULL,
                        &res);
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
        .change_counter = pg_change_counter,
        .token_add = pg_token_add,
        .token_get = pg_token_get,
        .token_revoke = pg_token_revoke,
        .token_expire = pg_token_expire,
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
