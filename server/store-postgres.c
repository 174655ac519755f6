/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PostgreSQL backend, for several keywardd behind a load balancer sharing one database.
 * Each write is a single statement, so it is one transaction, durable when PostgreSQL says
 * so (synchronous_commit): the row change and the change counter's bump are joined in one
 * statement through a data-modifying WITH. A connection that broke is reset once before a
 * statement fails. */

#include "store-postgres.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define PG_SCHEMA_VERSION 2

static void pg_free(Store *base) {
        PgStore *s = pg_store(base);

        if (s->conn)
                PQfinish(s->conn);
        free(s);
}

/* SQLSTATE classes that mean "the server or the connection", not "the statement". */
int pg_error(PgStore *s, const PGresult *res, const char *what) {
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
int pg_exec_full(
        PgStore *s,
        unsigned flags,
        const char *what,
        const char *sql,
        int n,
        const char *const *values,
        const int *lengths,
        const int *formats,
        PGresult **ret) {
        if (flags & PG_EXEC_READY) {
                int r = pg_ensure_ready(s);
                if (r < 0)
                        return r;
        }

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
                        if ((flags & PG_EXEC_RETRY) && attempt == 0)
                                continue;
                }
                return r;
        }
}

/* Statements without parameters, several allowed (PQexecParams takes one). */
int pg_exec_simple(PgStore *s, const char *what, const char *sql) {
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

int pg_ensure_ready(PgStore *s) {
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
        return pg_ensure_ready(s);
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
                r = pg_ensure_ready(s);
                if (r < 0) {
                        pg_free(&s->store);
                        return r;
                }
        }
        *ret = &s->store;
        return 0;
}
