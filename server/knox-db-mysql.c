/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Knox's `secrets` table in MySQL or MariaDB, through libmariadb. */
#include <errno.h>
#include <stdlib.h>

#include "knox-db.h"
#include "log.h"

#if HAVE_MARIADB
#        include <mysql.h>

#        define KNOX_SELECT "SELECT id, acl, version_hash, versions FROM secrets ORDER BY id"

typedef struct KnoxDbMysql {
        KnoxDb db;
        MYSQL *conn;
} KnoxDbMysql;

static KnoxDb *mysql_db_free(KnoxDb *db) {
        KnoxDbMysql *m = (KnoxDbMysql *) db;

        if (m->conn)
                mysql_close(m->conn);
        free(m);
        return NULL;
}

static int mysql_db_foreach(KnoxDb *db, KnoxRowFunc f, void *userdata) {
        KnoxDbMysql *m = (KnoxDbMysql *) db;
        MYSQL_RES *res;
        MYSQL_ROW row;
        int r = 0;

        if (mysql_real_query(m->conn, KNOX_SELECT, sizeof(KNOX_SELECT) - 1) != 0)
                return log_error_errno(
                        EIO, "Knox database: reading table secrets failed: %s", mysql_error(m->conn));
        if (mysql_field_count(m->conn) != 4)
                return log_error_errno(EIO, "Knox database: unexpected result shape.");
        res = mysql_use_result(m->conn);
        if (!res)
                return log_error_errno(
                        EIO, "Knox database: reading table secrets failed: %s", mysql_error(m->conn));

        while ((row = mysql_fetch_row(res))) {
                unsigned long *len = mysql_fetch_lengths(res);

                r = f(row[0], row[1], row[1] ? len[1] : 0, row[2], row[3], row[3] ? len[3] : 0, userdata);
                if (r < 0)
                        break;
        }
        if (r >= 0 && mysql_errno(m->conn) != 0)
                r = log_error_errno(
                        EIO, "Knox database: reading table secrets failed: %s", mysql_error(m->conn));
        /* Drain what is left, or the connection stays out of sync. */
        while (r < 0 && mysql_fetch_row(res))
                ;
        mysql_free_result(res);
        return r < 0 ? r : 0;
}

int knox_db_mysql_open(const KnoxMysqlUrl *u, const char *password, KnoxDb **ret) {
        KnoxDbMysql *m;
        unsigned timeout = 30;

        m = calloc(1, sizeof(KnoxDbMysql));
        if (!m)
                return log_oom();
        m->db = (KnoxDb){.free = mysql_db_free, .foreach = mysql_db_foreach};
        m->conn = mysql_init(NULL);
        if (!m->conn) {
                free(m);
                return log_oom();
        }
        (void) mysql_optionsv(m->conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
        (void) mysql_optionsv(m->conn, MYSQL_OPT_READ_TIMEOUT, &timeout);
        (void) mysql_optionsv(m->conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
        if (!mysql_real_connect(m->conn, u->host, u->user, password, u->database, u->port, u->socket, 0)) {
                log_error("Cannot connect to the Knox database (MySQL/MariaDB): %s", mysql_error(m->conn));
                mysql_db_free(&m->db);
                return -ECONNREFUSED;
        }
        *ret = &m->db;
        return 0;
}

#else

int knox_db_mysql_open(const KnoxMysqlUrl *u, const char *password, KnoxDb **ret) {
        return log_error_errno(
                EOPNOTSUPP,
                "This keywardd was built without MariaDB client support (libmariadb); it reads Knox "
                "databases in PostgreSQL only.");
}

#endif
