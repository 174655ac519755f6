/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Knox's `secrets` table in PostgreSQL, through libpq. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "knox-db.h"
#include "log.h"

typedef struct KnoxDbPostgres {
        KnoxDb db;
        PGconn *conn;
} KnoxDbPostgres;

static KnoxDb *pg_db_free(KnoxDb *db) {
        KnoxDbPostgres *p = (KnoxDbPostgres *) db;

        PQfinish(p->conn);
        free(p);
        return NULL;
}

static const char *col(PGresult *res, int c) {
        return PQgetisnull(res, 0, c) ? NULL : PQgetvalue(res, 0, c);
}

static int pg_db_foreach(KnoxDb *db, KnoxRowFunc f, void *userdata) {
        KnoxDbPostgres *p = (KnoxDbPostgres *) db;
        PGresult *res;
        int r = 0;

        if (!PQsendQuery(p->conn, "SELECT id, acl, version_hash, versions FROM secrets ORDER BY id") ||
            !PQsetSingleRowMode(p->conn))
                return log_error_errno(
                        EIO, "Knox database: reading table secrets failed: %s", PQerrorMessage(p->conn));

        /* Rows come one a result; the last result says how the query ended. Every result is
         * read, even after a failure, so the connection ends in a known state. */
        while ((res = PQgetResult(p->conn))) {
                ExecStatusType st = PQresultStatus(res);

                if (st == PGRES_SINGLE_TUPLE && r >= 0) {
                        if (PQnfields(res) != 4)
                                r = log_error_errno(EIO, "Knox database: unexpected result shape.");
                        else
                                r = f(col(res, 0), col(res, 1),
                                      col(res, 1) ? (size_t) PQgetlength(res, 0, 1) : 0, col(res, 2),
                                      col(res, 3), col(res, 3) ? (size_t) PQgetlength(res, 0, 3) : 0,
                                      userdata);
                } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && r >= 0)
                        r = log_error_errno(
                                EIO, "Knox database: reading table secrets failed: %s",
                                PQresultErrorMessage(res));
                PQclear(res);
        }
        return r < 0 ? r : 0;
}

static bool url_has_password(const char *url, int *error) {
        PQconninfoOption *opts;
        char *err = NULL;
        bool found = false;

        opts = PQconninfoParse(url, &err);
        if (!opts) {
                *error = -EINVAL;
                PQfreemem(err);
                return false;
        }
        for (PQconninfoOption *o = opts; o->keyword; o++)
                if (streq(o->keyword, "password") && o->val && o->val[0])
                        found = true;
        PQconninfoFree(opts);
        *error = 0;
        return found;
}

int knox_db_postgres_open(const char *url, const char *password, KnoxDb **ret) {
        const char *keys[] = {"dbname", password ? "password" : NULL, NULL};
        const char *values[] = {url, password, NULL};
        KnoxDbPostgres *p;
        int error;

        if (url_has_password(url, &error))
                return log_error_errno(
                        EINVAL,
                        "A password in the --knox-db URL would show in the process list; use "
                        "--knox-db-password-file (or PGPASSWORD, or ~/.pgpass).");
        if (error < 0)
                return log_error_errno(EINVAL, "Bad --knox-db URL: libpq cannot parse it.");

        p = calloc(1, sizeof(KnoxDbPostgres));
        if (!p)
                return log_oom();
        p->db = (KnoxDb){.free = pg_db_free, .foreach = pg_db_foreach};
        p->conn = PQconnectdbParams(keys, values, 1);
        if (!p->conn) {
                free(p);
                return log_oom();
        }
        if (PQstatus(p->conn) != CONNECTION_OK) {
                log_error("Cannot connect to the Knox database (PostgreSQL): %s", PQerrorMessage(p->conn));
                pg_db_free(&p->db);
                return -ECONNREFUSED;
        }
        *ret = &p->db;
        return 0;
}
