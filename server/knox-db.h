/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reading a Knox server's database: the `secrets` table of Knox's keydb, in MySQL/MariaDB
 * (libmariadb) or PostgreSQL (libpq). Read only: nothing here writes to Knox's database. */

#include <stdint.h>

#include "macro.h"

typedef struct KnoxDb KnoxDb;

/* url: "mysql://USER@HOST[:PORT]/DB", "mysql://USER@localhost/DB?socket=PATH" (also
 * "mariadb://"), or a libpq "postgres://" / "postgresql://" URI. A password in the URL is
 * refused (-EINVAL: it would show in ps); password, when not NULL, is used instead. */
int knox_db_open(const char *url, const char *password, KnoxDb **ret);
KnoxDb *knox_db_free(KnoxDb *db);
DEFINE_TRIVIAL_CLEANUP_FUNC(KnoxDb *, knox_db_free);

/* Every row, ordered by id. Columns are NUL-terminated; NULL for an SQL NULL. The
 * callback's negative return stops the walk and is returned. */
typedef int (*KnoxRowFunc)(
        const char *id,
        const char *acl,
        size_t acl_size,
        const char *hash,
        const char *versions,
        size_t versions_size,
        void *userdata);
int knox_db_foreach(KnoxDb *db, KnoxRowFunc f, void *userdata);

/* A mysql:// URL taken apart (knox-db.c); strings owned by the struct. */
typedef struct KnoxMysqlUrl {
        char *user;
        char *host;    /* NULL with a socket */
        unsigned port; /* 0: the default */
        char *database;
        char *socket;
} KnoxMysqlUrl;
void knox_mysql_url_done(KnoxMysqlUrl *u);
/* -EINVAL with a message for a malformed URL, -EPERM for one holding a password. */
int knox_mysql_url_parse(const char *url, KnoxMysqlUrl *ret, const char **reterr_message);

/* The backends (knox-db-mysql.c, knox-db-postgres.c). */
struct KnoxDb {
        KnoxDb *(*free)(KnoxDb *db);
        int (*foreach)(KnoxDb *db, KnoxRowFunc f, void *userdata);
};
int knox_db_mysql_open(const KnoxMysqlUrl *u, const char *password, KnoxDb **ret);
int knox_db_postgres_open(const char *url, const char *password, KnoxDb **ret);
