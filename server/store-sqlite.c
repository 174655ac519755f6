/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "store-sqlite.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* How long a write waits for another connection's write to finish. Writes are small and
 * each is one fsync, so this is only reached when something is badly stuck. */
#define BUSY_TIMEOUT_MS 5000

/* Every value is a bound parameter; nothing from outside is ever put into SQL text. */
/* clang-format off */
static const char *const stmt_sql[_STMT_MAX] = {
        [STMT_BEGIN]        = "BEGIN IMMEDIATE",
        [STMT_COMMIT]       = "COMMIT",
        [STMT_ROLLBACK]     = "ROLLBACK",
        [STMT_USER_VERSION] = "PRAGMA user_version",
        [STMT_GET]          = "SELECT acl, version_hash, versions, last_updated, not_after FROM secrets WHERE id = ?1",
        [STMT_GET_HASH]     = "SELECT version_hash FROM secrets WHERE id = ?1",
        [STMT_EXISTS]       = "SELECT 1 FROM secrets WHERE id = ?1",
        [STMT_ADD]          = "INSERT INTO secrets (id, acl, version_hash, versions, last_updated, seq, not_after) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, (SELECT IFNULL(MAX(seq), 0) + 1 FROM secrets), ?6)",
        [STMT_UPDATE]       = "UPDATE secrets SET acl = ?2, version_hash = ?3, versions = ?4, last_updated = ?5, "
                              "not_after = ?7 WHERE id = ?1 AND last_updated = ?6",
        [STMT_REMOVE]       = "DELETE FROM secrets WHERE id = ?1",
        [STMT_LIST]         = "SELECT id, version_hash FROM secrets ORDER BY seq",
        [STMT_LIST_NOT_AFTER] = "SELECT id, not_after FROM secrets WHERE not_after IS NOT NULL ORDER BY seq",
        [STMT_LIST_PAGE]    = "SELECT id, version_hash, seq FROM secrets WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        [STMT_BUMP]         = "UPDATE meta SET value = value + 1 WHERE name = 'change_counter'",
        [STMT_COUNTER]      = "SELECT value FROM meta WHERE name = 'change_counter'",
        [STMT_TOKEN_ADD]    = "INSERT INTO tokens (hash, \"user\", \"groups\", created, expires, revoked) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        [STMT_TOKEN_GET]    = "SELECT \"user\", \"groups\", created, expires, revoked FROM tokens WHERE hash = ?1",
        [STMT_TOKEN_REVOKE] = "UPDATE tokens SET revoked = 1 WHERE hash = ?1",
        [STMT_TOKEN_EXPIRE] = "DELETE FROM tokens WHERE expires < ?1",
        [STMT_RESEAL]       = "UPDATE secrets SET versions = ?2 WHERE id = ?1 AND last_updated = ?3",
};
/* clang-format on */

/* ---- errors ---- */

int store_sqlite_errno(int rc) {
        switch (rc & 0xff) {
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_READONLY:
                return -EROFS;
        default:
                return -EIO;
        }
}

int sqlite_fail(SqliteStore *s, int rc, const char *what) {
        int r = store_sqlite_errno(rc);

        return log_debug_errno(
                r, "SQLite: %s on '%s' failed: %s (%d)", what, s->path, sqlite3_errmsg(s->db), rc);
}

/* ---- statements ---- */

int sqlite_stmt_get(SqliteStore *s, Stmt i, sqlite3_stmt **ret) {
        int rc;

        if (!s->stmts[i]) {
                rc = sqlite3_prepare_v3(
                        s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[i], NULL);
                if (rc != SQLITE_OK)
                        return sqlite_fail(s, rc, "prepare");
        }
        *ret = s->stmts[i];
        return 0;
}

int sqlite_stmt_ready(SqliteStore *s, Stmt i, sqlite3_stmt **ret) {
        int r;

        r = sqlite_ensure_ready(s);
        if (r < 0)
                return r;
        return sqlite_stmt_get(s, i, ret);
}

int sqlite_step_row(SqliteStore *s, sqlite3_stmt *st, const char *what) {
        int rc;

        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOKEY;
        if (rc != SQLITE_ROW)
                return sqlite_fail(s, rc, what);
        return 0;
}

/* Run a statement that returns no rows, or whose rows do not matter. */
int sqlite_stmt_exec(SqliteStore *s, Stmt i, const char *what) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = sqlite_stmt_get(s, i, &st);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                return sqlite_fail(s, rc, what);
        return 0;
}

/* A column as a fresh string, NULL for SQL NULL. */
int sqlite_column_strdup(sqlite3_stmt *st, int i, char **ret) {
        const unsigned char *t;

        if (sqlite3_column_type(st, i) == SQLITE_NULL) {
                *ret = NULL;
                return 0;
        }
        t = sqlite3_column_text(st, i);
        if (!t)
                return -ENOMEM;
        *ret = strdup((const char *) t);
        return *ret ? 0 : -ENOMEM;
}

/* ---- transactions ---- */

static void sqlite_tx_rollback(SqliteStore *s) {
        if (!sqlite3_get_autocommit(s->db))
                (void) sqlite_stmt_exec(s, STMT_ROLLBACK, "ROLLBACK");
}

int sqlite_tx_begin(SqliteStore *s) {
        /* A transaction left open by a failure must not swallow this write. */
        sqlite_tx_rollback(s);
        return sqlite_stmt_exec(s, STMT_BEGIN, "BEGIN IMMEDIATE");
}

/* Commit when r >= 0 (and return r), else roll back and return r. */
int sqlite_tx_end(SqliteStore *s, int r) {
        int q;

        if (r < 0) {
                sqlite_tx_rollback(s);
                return r;
        }
        q = sqlite_stmt_exec(s, STMT_COMMIT, "COMMIT");
        if (q < 0) {
                sqlite_tx_rollback(s);
                return q;
        }
        return r;
}

int sqlite_write_begin(SqliteStore *s) {
        int r;

        r = sqlite_ensure_ready(s);
        if (r < 0)
                return r;
        return sqlite_tx_begin(s);
}

int sqlite_bump_change_counter(SqliteStore *s) {
        int r;

        r = sqlite_stmt_exec(s, STMT_BUMP, "bumping the change counter");
        if (r < 0)
                return r;
        if (sqlite3_changes(s->db) != 1)
                return log_debug_errno(EIO, "SQLite: '%s' has no change counter.", s->path);
        return 0;
}

/* ---- open and close ---- */

static void sqlite_free(Store *base) {
        SqliteStore *s = sqlite_store(base);

        if (!s)
                return;
        for (size_t i = 0; i < _STMT_MAX; i++)
                sqlite3_finalize(s->stmts[i]);
        /* Closing a connection with an open transaction rolls it back. */
        sqlite3_close_v2(s->db);
        free(s->path);
        free(s);
}

static inline void sqlite_freep(SqliteStore **s) {
        if (*s)
                sqlite_free(&(*s)->store);
}

/* clang-format off */
static const StoreVTable sqlite_vtable = {
        .name           = "sqlite",
        .free           = sqlite_free,
        .init           = sqlite_init,
        .get            = sqlite_get,
        .get_hash       = sqlite_get_hash,
        .add            = sqlite_add,
        .update         = sqlite_update,
        .remove         = sqlite_remove,
        .list           = sqlite_list,
        .list_not_after = sqlite_list_not_after,
        .list_page      = sqlite_list_page,
        .change_counter = sqlite_change_counter,
        .token_add      = sqlite_token_add,
        .token_get      = sqlite_token_get,
        .token_revoke   = sqlite_token_revoke,
        .token_expire   = sqlite_token_expire,
        .reseal         = sqlite_reseal,
        .audit_anchor_set = sqlite_audit_anchor_set,
        .audit_anchor_get = sqlite_audit_anchor_get,
};
/* clang-format on */

int store_sqlite_open(const char *path, bool create, Store **ret) {
        _cleanup_(sqlite_freep) SqliteStore *s = NULL;
        int rc;

        assert_return(path, -EINVAL);
        assert_return(ret, -EINVAL);

        if (isempty(path))
                return -EINVAL;

        s = calloc(1, sizeof(SqliteStore));
        if (!s)
                return -ENOMEM;
        s->store.vtable = &sqlite_vtable;

        /* This SQLite may be built to read "file:..." as a URI with options; a path is a path. */
        if (strncmp(path, "file:", 5) == 0) {
                s->path = malloc(strlen(path) + 3);
                if (s->path) {
                        memcpy(s->path, "./", 2);
                        memcpy(s->path + 2, path, strlen(path) + 1);
                }
        } else
                s->path = strdup(path);
        if (!s->path)
                return -ENOMEM;

        if (!streq(s->path, ":memory:")) {
                _cleanup_close_ int fd = -EBADF;

                /* The file holds ACLs and token hashes: only its owner reads it. SQLite
                 * gives its -wal and -shm files the database file's mode.
                 *
                 * Only ever create it here: closing any descriptor of a file drops every POSIX
                 * lock this process holds on it, so opening and closing an existing database
                 * would silently unlock the other connections of this process (the other
                 * workers), and another process could then checkpoint and delete the WAL
                 * under them. */
                if (create)
                        fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
                else if (access(s->path, F_OK) < 0)
                        return errno == ENOENT ? -ENOMEDIUM : -errno; /* no store: not initialised */
                if (fd < 0 && create && errno != EEXIST)
                        return log_debug_errno(errno, "Failed to create '%s': %m", s->path);
                if (fd < 0) {
                        struct stat st;

                        if (stat(s->path, &st) < 0)
                                return log_debug_errno(errno, "Failed to stat '%s': %m", s->path);
                        if (S_ISDIR(st.st_mode))
                                return -EISDIR;
                }
        }

        rc = sqlite3_open_v2(
                s->path, &s->db,
                SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                if (!s->db)
                        return -ENOMEM;
                return sqlite_fail(s, rc, "opening");
        }

        (void) sqlite3_extended_result_codes(s->db, 1);
        (void) sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
        (void) sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
        (void) sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);

        /* Every commit reaches the disk before it returns (in WAL mode: the WAL is synced). */
        rc = sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "setting synchronous mode");

        *ret = &TAKE_PTR(s)->store;
        return 0;
}

struct sqlite3 *store_sqlite_handle(Store *s) {
        if (!s || s->vtable != &sqlite_vtable)
                return NULL;
        return sqlite_store(s)->db;
}
