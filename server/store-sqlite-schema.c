/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SQLite store's schema: its version, the migrations, WAL mode and store_init(). */

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "store-sqlite.h"

/* Schema migrations: migrations[v] takes a database from version v to v + 1, inside the
 * same transaction that sets PRAGMA user_version. A new database runs all of them. */
/* clang-format off */
static const char *const migrations[] = {
        /* 0 -> 1: Knox's own table, as its SQL backend lays it out (an existing one is
         * adopted as is), and the change counter. */
        "CREATE TABLE IF NOT EXISTS secrets ("
        "  id VARCHAR(512) PRIMARY KEY,"
        "  acl TEXT,"
        "  version_hash TEXT,"
        "  versions TEXT,"
        "  last_updated BIGINT);"
        "CREATE TABLE meta ("
        "  name TEXT PRIMARY KEY NOT NULL,"
        "  value INTEGER NOT NULL);"
        "INSERT INTO meta (name, value) VALUES ('change_counter', 0);",

        /* 1 -> 2: an explicit sequence number for a stable list order (the implicit rowid
         * of a table without an INTEGER PRIMARY KEY may change on VACUUM), NOT NULL
         * columns, and user tokens. */
        "CREATE TABLE secrets_new ("
        "  id VARCHAR(512) PRIMARY KEY NOT NULL,"
        "  acl TEXT NOT NULL,"
        "  version_hash TEXT NOT NULL,"
        "  versions TEXT NOT NULL,"
        "  last_updated BIGINT NOT NULL,"
        "  seq INTEGER NOT NULL UNIQUE);"
        "INSERT INTO secrets_new (id, acl, version_hash, versions, last_updated, seq)"
        "  SELECT id, IFNULL(acl, 'null'), IFNULL(version_hash, ''), IFNULL(versions, 'null'),"
        "         IFNULL(last_updated, 0), rowid"
        "  FROM secrets WHERE id IS NOT NULL ORDER BY rowid;"
        "DROP TABLE secrets;"
        "ALTER TABLE secrets_new RENAME TO secrets;"
        "CREATE TABLE tokens ("
        "  hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),"
        "  \"user\" TEXT NOT NULL,"
        "  \"groups\" TEXT NOT NULL,"
        "  created BIGINT NOT NULL,"
        "  expires BIGINT NOT NULL,"
        "  revoked INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX tokens_expires ON tokens (expires);",

        /* 2 -> 3: the notAfter of versions that are X.509 certificates (store.c writes it as
         * JSON; NULL when no version is one), found without reading any version. */
        ("ALTER TABLE secrets ADD COLUMN not_after TEXT;"
         "CREATE INDEX secrets_not_after ON secrets (seq) WHERE not_after IS NOT NULL;"),
};
/* clang-format on */

_Static_assert(ELEMENTSOF(migrations) == STORE_SQLITE_SCHEMA_VERSION, "one migration per schema version");

/* ---- schema ---- */

static int read_user_version(SqliteStore *s, int64_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = sqlite_stmt_get(s, STMT_USER_VERSION, &st);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return sqlite_fail(s, rc, "reading the schema version");
        *ret = sqlite3_column_int64(st, 0);
        return 0;
}

static int check_version(SqliteStore *s, int64_t v) {
        if (v < 0 || v > STORE_SQLITE_SCHEMA_VERSION)
                return log_debug_errno(
                        EPROTONOSUPPORT,
                        "SQLite: '%s' has schema version %" PRIi64
                        ", which this build (version %d) does not know.",
                        s->path, v, STORE_SQLITE_SCHEMA_VERSION);
        return 0;
}

/* The schema version, refused when this build does not know it. */
static int read_known_version(SqliteStore *s, int64_t *ret) {
        int64_t v = 0;
        int r;

        r = read_user_version(s, &v);
        if (r < 0)
                return r;
        r = check_version(s, v);
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

/* Calls other than init need the current schema; an older one waits for store_init(). */
int sqlite_ensure_ready(SqliteStore *s) {
        int64_t v = 0;
        int r;

        if (s->ready)
                return 0;

        r = read_known_version(s, &v);
        if (r < 0)
                return r;
        if (v < STORE_SQLITE_SCHEMA_VERSION)
                return -ENOMEDIUM;

        s->ready = true;
        return 0;
}

static int set_wal(SqliteStore *s) {
        sqlite3_stmt *st = NULL;
        const unsigned char *mode;
        bool ok;
        int rc;

        /* Persistent in the file; a no-op once set. Not possible inside a transaction. */
        rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "preparing the journal mode");
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                (void) sqlite_fail(s, rc, "setting the journal mode");
                sqlite3_finalize(st);
                return store_sqlite_errno(rc);
        }
        mode = sqlite3_column_text(st, 0);
        /* An in-memory database (tests only) has no WAL. */
        ok = mode &&
                (strcasecmp((const char *) mode, "wal") == 0 ||
                 (strcasecmp((const char *) mode, "memory") == 0 && streq(s->path, ":memory:")));
        if (!ok)
                log_debug(
                        "SQLite: '%s' refused WAL mode, journal mode is '%s'.", s->path,
                        strna((const char *) mode));
        sqlite3_finalize(st);
        return ok ? 0 : -EIO;
}

static int migrate(SqliteStore *s, int64_t *ret_from) {
        char sql[64];
        int64_t v = 0;
        int rc, r;

        /* Read inside the write transaction: a concurrent init has either finished or not begun. */
        r = read_known_version(s, &v);
        if (r < 0)
                return r;

        for (int64_t i = v; i < STORE_SQLITE_SCHEMA_VERSION; i++) {
                char *err = NULL;

                rc = sqlite3_exec(s->db, migrations[i], NULL, NULL, &err);
                if (rc != SQLITE_OK) {
                        log_debug(
                                "SQLite: migrating '%s' from schema version %" PRIi64 " failed: %s (%d)",
                                s->path, i, strna(err), rc);
                        sqlite3_free(err);
                        return store_sqlite_errno(rc);
                }
                log_debug("SQLite: migrated '%s' to schema version %" PRIi64 ".", s->path, i + 1);
        }

        if (v < STORE_SQLITE_SCHEMA_VERSION) {
                (void) snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SQLITE_SCHEMA_VERSION);
                rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
                if (rc != SQLITE_OK)
                        return sqlite_fail(s, rc, "setting the schema version");
        }

        *ret_from = v;
        return 0;
}

/* Make a new database file's directory entry durable too. */
static void sync_parent_dir(const char *path) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *slash = strrchr(path, '/');

        if (!slash)
                dir = strdup(".");
        else if (slash == path)
                dir = strdup("/");
        else
                dir = strndup(path, slash - path);
        if (!dir)
                return;

        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                log_debug_errno(errno, "Failed to sync directory '%s', ignoring: %m", dir);
}

int sqlite_init(Store *base) {
        SqliteStore *s = sqlite_store(base);
        int64_t from = 0;
        int r;

        /* Refuse a newer database before touching its journal mode. */
        r = read_known_version(s, &from);
        if (r < 0)
                return r;

        r = set_wal(s);
        if (r < 0)
                return r;

        r = sqlite_tx_begin(s);
        if (r < 0)
                return r;
        r = sqlite_tx_end(s, migrate(s, &from));
        if (r < 0)
                return r;

        if (from == 0 && !streq(s->path, ":memory:"))
                sync_parent_dir(s->path);
        s->ready = true;
        return 0;
}
