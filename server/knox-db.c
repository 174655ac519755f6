/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "knox-db.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "parse.h"

void knox_mysql_url_done(KnoxMysqlUrl *u) {
        free(u->user);
        free(u->host);
        free(u->database);
        free(u->socket);
        *u = (KnoxMysqlUrl){};
}

static int fail(const char **reterr_message, const char *m, int r) {
        if (reterr_message)
                *reterr_message = m;
        return r;
}

static bool name_is_ok(const char *s, size_t n) {
        /* No percent-encoding: names with such characters are not supported. */
        for (size_t i = 0; i < n; i++)
                if (strchr("%?#@/:", s[i]) || (unsigned char) s[i] < 0x20)
                        return false;
        return true;
}

int knox_mysql_url_parse(const char *url, KnoxMysqlUrl *ret, const char **reterr_message) {
        _cleanup_(knox_mysql_url_done) KnoxMysqlUrl u = {};
        const char *p, *at, *slash, *q, *colon;
        size_t n;

        if (!url || !ret)
                return -EINVAL;
        if (strncmp(url, "mysql://", 8) == 0)
                p = url + 8;
        else if (strncmp(url, "mariadb://", 10) == 0)
                p = url + 10;
        else
                return fail(reterr_message, "the URL must start with mysql:// or mariadb://", -EINVAL);

        slash = strchr(p, '/');
        if (!slash)
                return fail(reterr_message, "the URL names no database (mysql://USER@HOST/DB)", -EINVAL);
        at = memchr(p, '@', slash - p);
        if (!at || at == p)
                return fail(reterr_message, "the URL names no user (mysql://USER@HOST/DB)", -EINVAL);
        if (memchr(p, ':', at - p))
                return fail(
                        reterr_message,
                        "a password in the URL would show in the process list; use --knox-db-password-file",
                        -EPERM);
        if (!name_is_ok(p, at - p))
                return fail(
                        reterr_message, "the user name holds a character this URL form does not take",
                        -EINVAL);
        u.user = strndup(p, at - p);
        if (!u.user)
                return -ENOMEM;

        p = at + 1;
        n = slash - p;
        colon = memchr(p, ':', n);
        if (colon) {
                _cleanup_free_ char *port = strndup(colon + 1, slash - colon - 1);
                unsigned v;

                if (!port)
                        return -ENOMEM;
                if (safe_atou(port, &v) < 0 || v == 0 || v > 65535)
                        return fail(reterr_message, "the port is not a number from 1 to 65535", -EINVAL);
                u.port = v;
                n = colon - p;
        }
        if (n > 0) {
                if (!name_is_ok(p, n) || memchr(p, '[', n))
                        return fail(
                                reterr_message, "the host holds a character this URL form does not take",
                                -EINVAL);
                u.host = strndup(p, n);
                if (!u.host)
                        return -ENOMEM;
        }

        p = slash + 1;
        q = strchr(p, '?');
        n = q ? (size_t) (q - p) : strlen(p);
        if (n == 0 || !name_is_ok(p, n))
                return fail(
                        reterr_message,
                        "the database name is empty or holds a character this URL form does not take",
                        -EINVAL);
        u.database = strndup(p, n);
        if (!u.database)
                return -ENOMEM;
        if (q) {
                q++;
                if (strncmp(q, "socket=", 7) != 0 || q[7] != '/' || strpbrk(q + 7, "&#?"))
                        return fail(
                                reterr_message, "the only query the URL takes is ?socket=/ABSOLUTE/PATH",
                                -EINVAL);
                u.socket = strdup(q + 7);
                if (!u.socket)
                        return -ENOMEM;
                if (u.port != 0 || (u.host && !streq(u.host, "localhost")))
                        return fail(
                                reterr_message, "a socket URL takes no port and no host but localhost",
                                -EINVAL);
                free(u.host);
                u.host = NULL;
        } else if (!u.host)
                return fail(reterr_message, "the URL names no host (or ?socket=PATH)", -EINVAL);

        *ret = u;
        u = (KnoxMysqlUrl){};
        return 0;
}

int knox_db_open(const char *url, const char *password, KnoxDb **ret) {
        _cleanup_(knox_mysql_url_done) KnoxMysqlUrl u = {};
        const char *m = NULL;
        int r;

        if (!url || !ret)
                return -EINVAL;
        if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
                return knox_db_postgres_open(url, password, ret);

        r = knox_mysql_url_parse(url, &u, &m);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(
                        EINVAL,
                        "Bad --knox-db URL: %s (mysql://USER@HOST[:PORT]/DB, mysql://USER@localhost/DB?socket=PATH or "
                        "postgresql://...).",
                        m);
        return knox_db_mysql_open(&u, password, ret);
}

KnoxDb *knox_db_free(KnoxDb *db) {
        if (db)
                db->free(db);
        return NULL;
}

int knox_db_foreach(KnoxDb *db, KnoxRowFunc f, void *userdata) {
        if (!db || !f)
                return -EINVAL;
        return db->foreach(db, f, userdata);
}
