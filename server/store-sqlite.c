/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "store-internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* How long a write waits for another connection's write to finish. Writes are small and
 * each is one fsync, so this is only reached when something is badly stuck. */
#define BUSY_TIMEOUT_MS 5000

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

typedef enum Stmt {
        STMT_BEGIN,
        STMT_COMMIT,
        STMT_ROLLBACK,
        STMT_USER_VERSION,
        STMT_GET,
        STMT_GET_HASH,
        STMT_EXISTS,
        STMT_ADD,
        STMT_UPDATE,
        STMT_REMOVE,
        STMT_LIST,
        STMT_LIST_NOT_AFTER,
        STMT_LIST_PAGE,
        STMT_BUMP,
        STMT_COUNTER,
        STMT_TOKEN_ADD,
        STMT_TOKEN_GET,
        STMT_TOKEN_REVOKE,
        STMT_TOKEN_EXPIRE,
        STMT_RESEAL,
        _STMT_MAX,
} Stmt;

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

typedef struct SqliteStore {
        Store store;
        sqlite3 *db;
        sqlite3_stmt *stmts[_STMT_MAX];
        char *path;
        bool ready; /* the schema was seen at the current version */
} SqliteStore;

static SqliteStore *sqlite_store(Store *s) {
        return (SqliteStore *) s;
}

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

static int sqlite_fail(SqliteStore *s, int rc, const char *what) {
        int r = store_sqlite_errno(rc);

        return log_debug_errno(
                r, "SQLite: %s on '%s' failed: %s (%d)", what, s->path, sqlite3_errmsg(s->db), rc);
}

/* ---- statements ---- */

static void stmt_resetp(sqlite3_stmt **st) {
        if (*st) {
                (void) sqlite3_reset(*st);
                (void) sqlite3_clear_bindings(*st);
        }
}
#define _cleanup_stmt_ _cleanup_(stmt_resetp)

static int stmt_get(SqliteStore *s, Stmt i, sqlite3_stmt **ret) {
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

/* Run a statement that returns no rows, or whose rows do not matter. */
static int stmt_exec(SqliteStore *s, Stmt i, const char *what) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_get(s, i, &st);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                return sqlite_fail(s, rc, what);
        return 0;
}

static int bind_text(sqlite3_stmt *st, int i, const char *t) {
        return sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
}

static int bind_hash(sqlite3_stmt *st, int i, const uint8_t hash[TOKEN_HASH_SIZE]) {
        return sqlite3_bind_blob(st, i, hash, TOKEN_HASH_SIZE, SQLITE_STATIC);
}

/* A column as a fresh string, NULL for SQL NULL. */
static int column_strdup(sqlite3_stmt *st, int i, char **ret) {
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

static void tx_rollback(SqliteStore *s) {
        if (!sqlite3_get_autocommit(s->db))
                (void) stmt_exec(s, STMT_ROLLBACK, "ROLLBACK");
}

static int tx_begin(SqliteStore *s) {
        /* A transaction left open by a failure must not swallow this write. */
        tx_rollback(s);
        return stmt_exec(s, STMT_BEGIN, "BEGIN IMMEDIATE");
}

/* Commit when r >= 0 (and return r), else roll back and return r. */
static int tx_end(SqliteStore *s, int r) {
        int q;

        if (r < 0) {
                tx_rollback(s);
                return r;
        }
        q = stmt_exec(s, STMT_COMMIT, "COMMIT");
        if (q < 0) {
                tx_rollback(s);
                return q;
        }
        return r;
}

static int bump_change_counter(SqliteStore *s) {
        int r;

        r = stmt_exec(s, STMT_BUMP, "bumping the change counter");
        if (r < 0)
                return r;
        if (sqlite3_changes(s->db) != 1)
                return log_debug_errno(EIO, "SQLite: '%s' has no change counter.", s->path);
        return 0;
}

/* ---- schema ---- */

static int read_user_version(SqliteStore *s, int64_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_get(s, STMT_USER_VERSION, &st);
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

/* Calls other than init need the current schema; an older one waits for store_init(). */
static int ensure_ready(SqliteStore *s) {
        int64_t v = 0;
        int r;

        if (s->ready)
                return 0;

        r = read_user_version(s, &v);
        if (r < 0)
                return r;
        r = check_version(s, v);
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
        r = read_user_version(s, &v);
        if (r < 0)
                return r;
        r = check_version(s, v);
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

static int sqlite_init(Store *base) {
        SqliteStore *s = sqlite_store(base);
        int64_t from = 0;
        int r;

        /* Refuse a newer database before touching its journal mode. */
        r = read_user_version(s, &from);
        if (r < 0)
                return r;
        r = check_version(s, from);
        if (r < 0)
                return r;

        r = set_wal(s);
        if (r < 0)
                return r;

        r = tx_begin(s);
        if (r < 0)
                return r;
        r = tx_end(s, migrate(s, &from));
        if (r < 0)
                return r;

        if (from == 0 && !streq(s->path, ":memory:"))
                sync_parent_dir(s->path);
        s->ready = true;
        return 0;
}

/* ---- keys ---- */

static int sqlite_get(Store *base, const char *id, StoreRecord *ret) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_(store_record_done) StoreRecord rec = {};
        int rc, r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = stmt_get(s, STMT_GET, &st);
        if (r < 0)
                return r;
        rc = bind_text(st, 1, id);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");

        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOKEY;
        if (rc != SQLITE_ROW)
                return sqlite_fail(s, rc, "reading a key");

        if ((r = column_strdup(st, 0, &rec.acl)) < 0 || (r = column_strdup(st, 1, &rec.hash)) < 0 ||
            (r = column_strdup(st, 2, &rec.versions)) < 0)
                return r;
        rec.version = sqlite3_column_int64(st, 3);
        r = column_strdup(st, 4, &rec.not_after);
        if (r < 0)
                return r;

        *ret = rec;
        rec = (StoreRecord){};
        return 0;
}

static int sqlite_get_hash(Store *base, const char *id, char ret[KEY_HASH_HEX_SIZE]) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        const unsigned char *hash;
        int rc, r, n;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = stmt_get(s, STMT_GET_HASH, &st);
        if (r < 0)
                return r;
        rc = bind_text(st, 1, id);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");

        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOKEY;
        if (rc != SQLITE_ROW)
                return sqlite_fail(s, rc, "reading a key's hash");

        hash = sqlite3_column_text(st, 0);
        if (!hash)
                return -ENOMEM; /* the column is NOT NULL */
        n = sqlite3_column_bytes(st, 0);
        if (n < 0 || (size_t) n >= KEY_HASH_HEX_SIZE || strlen((const char *) hash) != (size_t) n)
                return log_debug_errno(EBADMSG, "SQLite: stored hash of key '%s' is not a hash.", id);

        memcpy(ret, hash, (size_t) n + 1);
        return 0;
}

static int add_in_tx(SqliteStore *s, const char *id, const StoreRecord *rec) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_get(s, STMT_ADD, &st);
        if (r < 0)
                return r;
        if ((rc = bind_text(st, 1, id)) != SQLITE_OK || (rc = bind_text(st, 2, rec->acl)) != SQLITE_OK ||
            (rc = bind_text(st, 3, rec->hash)) != SQLITE_OK ||
            (rc = bind_text(st, 4, rec->versions)) != SQLITE_OK ||
            (rc = sqlite3_bind_int64(st, 5, rec->version)) != SQLITE_OK ||
            (rc = bind_text(st, 6, rec->not_after)) != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");

        rc = sqlite3_step(st);
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
                return -EEXIST;
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, "adding a key");

        return bump_change_counter(s);
}

static int sqlite_add(Store *base, const char *id, const StoreRecord *rec) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = tx_begin(s);
        if (r < 0)
                return r;
        return tx_end(s, add_in_tx(s, id, rec));
}

static int key_exists(SqliteStore *s, const char *id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_get(s, STMT_EXISTS, &st);
        if (r < 0)
                return r;
        rc = bind_text(st, 1, id);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return sqlite_fail(s, rc, "looking up a key");
}

static int update_in_tx(SqliteStore *s, const char *id, const StoreRecord *rec, int64_t expected_version) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_get(s, STMT_UPDATE, &st);
        if (r < 0)
                return r;
        if ((rc = bind_text(st, 1, id)) != SQLITE_OK || (rc = bind_text(st, 2, rec->acl)) != SQLITE_OK ||
            (rc = bind_text(st, 3, rec->hash)) != SQLITE_OK ||
            (rc = bind_text(st, 4, rec->versions)) != SQLITE_OK ||
            (rc = sqlite3_bind_int64(st, 5, rec->version)) != SQLITE_OK ||
            (rc = sqlite3_bind_int64(st, 6, expected_version)) != SQLITE_OK ||
            (rc = bind_text(st, 7, rec->not_after)) != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");

        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, "updating a key");

        if (sqlite3_changes(s->db) == 0) {
                r = key_exists(s, id);
                if (r < 0)
                        return r;
                return r > 0 ? -ESTALE : -ENOKEY;
        }

        return bump_change_counter(s);
}

static int sqlite_update(Store *base, const char *id, const StoreRecord *rec, int64_t expected_version) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = tx_begin(s);
        if (r < 0)
                return r;
        return tx_end(s, update_in_tx(s, id, rec, expected_version));
}

static int remove_in_tx(SqliteStore *s, const char *id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_get(s, STMT_REMOVE, &st);
        if (r < 0)
                return r;
        rc = bind_text(st, 1, id);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, "removing a key");
        if (sqlite3_changes(s->db) == 0)
                return -ENOKEY;

        return bump_change_counter(s);
}

static int sqlite_remove(Store *base, const char *id) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = tx_begin(s);
        if (r < 0)
                return r;
        return tx_end(s, remove_in_tx(s, id));
}

static int sqlite_list(Store *base, StoreListFunc f, void *userdata) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = stmt_get(s, STMT_LIST, &st);
        if (r < 0)
                return r;

        for (;;) {
                const unsigned char *id, *hash;

                rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        return 0;
                if (rc != SQLITE_ROW)
                        return sqlite_fail(s, rc, "listing keys");

                id = sqlite3_column_text(st, 0);
                hash = sqlite3_column_text(st, 1);
                if (!id || !hash)
                        return -ENOMEM; /* both columns are NOT NULL */

                r = f((const char *) id, (const char *) hash, userdata);
                if (r < 0)
                        return r;
        }
}

static int sqlite_list_not_after(
        Store *base, int (*f)(const char *id, const char *not_after, void *userdata), void *userdata) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = stmt_get(s, STMT_LIST_NOT_AFTER, &st);
        if (r < 0)
                return r;

        for (;;) {
                const unsigned char *id, *not_after;

                rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        return 0;
                if (rc != SQLITE_ROW)
                        return sqlite_fail(s, rc, "listing certificates");
                id = sqlite3_column_text(st, 0);
                not_after = sqlite3_column_text(st, 1);
                if (!id || !not_after)
                        return -ENOMEM; /* neither is NULL in these rows */
                r = f((const char *) id, (const char *) not_after, userdata);
                if (r < 0)
                        return r;
        }
}

static int sqlite_list_page(
        Store *base, int64_t after, size_t max, StoreListFunc f, void *userdata, int64_t *ret_next) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int64_t next = after;
        int rc, r, n = 0;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = stmt_get(s, STMT_LIST_PAGE, &st);
        if (r < 0)
                return r;
        if (sqlite3_bind_int64(st, 1, after) != SQLITE_OK ||
            sqlite3_bind_int64(st, 2, (sqlite3_int64) max) != SQLITE_OK)
                return -ENOMEM;

        for (;;) {
                const unsigned char *id, *hash;

                rc = sqlite3_step(st);
                if (rc == SQLITE_DONE)
                        break;
                if (rc != SQLITE_ROW)
                        return sqlite_fail(s, rc, "listing keys");

                id = sqlite3_column_text(st, 0);
                hash = sqlite3_column_text(st, 1);
                if (!id || !hash)
                        return -ENOMEM; /* both columns are NOT NULL */
                next = sqlite3_column_int64(st, 2);
                r = f((const char *) id, (const char *) hash, userdata);
                if (r < 0)
                        return r;
                n++;
        }
        *ret_next = next;
        return n;
}

static int sqlite_change_counter(Store *base, uint64_t *ret) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = stmt_get(s, STMT_COUNTER, &st);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return log_debug_errno(EIO, "SQLite: '%s' has no change counter.", s->path);
        if (rc != SQLITE_ROW)
                return sqlite_fail(s, rc, "reading the change counter");

        *ret = (uint64_t) sqlite3_column_int64(st, 0);
        return 0;
}

/* ---- tokens ---- */

static int token_add_in_tx(SqliteStore *s, const uint8_t hash[TOKEN_HASH_SIZE], const StoreTokenRecord *t) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_get(s, STMT_TOKEN_ADD, &st);
        if (r < 0)
                return r;
        if ((rc = bind_hash(st, 1, hash)) != SQLITE_OK || (rc = bind_text(st, 2, t->user)) != SQLITE_OK ||
            (rc = bind_text(st, 3, t->groups)) != SQLITE_OK ||
            (rc = sqlite3_bind_int64(st, 4, t->created)) != SQLITE_OK ||
            (rc = sqlite3_bind_int64(st, 5, t->expires)) != SQLITE_OK ||
            (rc = sqlite3_bind_int(st, 6, t->revoked)) != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");

        rc = sqlite3_step(st);
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
                return -EEXIST;
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, "adding a token");
        return 0;
}

static int sqlite_token_add(Store *base, const uint8_t hash[TOKEN_HASH_SIZE], const StoreTokenRecord *t) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = tx_begin(s);
        if (r < 0)
                return r;
        return tx_end(s, token_add_in_tx(s, hash, t));
}

static int sqlite_token_get(Store *base, const uint8_t hash[TOKEN_HASH_SIZE], StoreTokenRecord *ret) {
        SqliteStore *s = sqlite_store(base);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_(store_token_record_done) StoreTokenRecord t = {};
        int rc, r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = stmt_get(s, STMT_TOKEN_GET, &st);
        if (r < 0)
                return r;
        rc = bind_hash(st, 1, hash);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");

        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOKEY;
        if (rc != SQLITE_ROW)
                return sqlite_fail(s, rc, "reading a token");

        if ((r = column_strdup(st, 0, &t.user)) < 0 || (r = column_strdup(st, 1, &t.groups)) < 0)
                return r;
        t.created = sqlite3_column_int64(st, 2);
        t.expires = sqlite3_column_int64(st, 3);
        t.revoked = sqlite3_column_int64(st, 4) != 0;

        *ret = t;
        t = (StoreTokenRecord){};
        return 0;
}

static int token_revoke_in_tx(SqliteStore *s, const uint8_t hash[TOKEN_HASH_SIZE]) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_get(s, STMT_TOKEN_REVOKE, &st);
        if (r < 0)
                return r;
        rc = bind_hash(st, 1, hash);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, "revoking a token");
        return sqlite3_changes(s->db) == 0 ? -ENOKEY : 0;
}

static int sqlite_token_revoke(Store *base, const uint8_t hash[TOKEN_HASH_SIZE]) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = tx_begin(s);
        if (r < 0)
                return r;
        return tx_end(s, token_revoke_in_tx(s, hash));
}

static int token_expire_in_tx(SqliteStore *s, int64_t now_ns) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = stmt_get(s, STMT_TOKEN_EXPIRE, &st);
        if (r < 0)
                return r;
        rc = sqlite3_bind_int64(st, 1, now_ns);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "binding");
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, "expiring tokens");
        return sqlite3_changes(s->db);
}

static int sqlite_token_expire(Store *base, int64_t now_ns) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = tx_begin(s);
        if (r < 0)
                return r;
        return tx_end(s, token_expire_in_tx(s, now_ns));
}

/* ---- the audit chain's anchor (a table of its own, made on first use) ---- */

static int sqlite_audit_anchor_set(Store *base, const char *name, uint64_t seq, const char *hash) {
        SqliteStore *s = sqlite_store(base);
        sqlite3_stmt *st = NULL;
        int rc, r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        rc = sqlite3_exec(
                s->db,
                "CREATE TABLE IF NOT EXISTS audit_anchor ("
                "name TEXT PRIMARY KEY NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL)",
                NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "creating the audit anchor table");
        rc = sqlite3_prepare_v2(
                s->db,
                "INSERT INTO audit_anchor (name, seq, hash) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, "prepare");
        rc = bind_text(st, 1, name);
        if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 2, (sqlite3_int64) seq);
        if (rc == SQLITE_OK)
                rc = bind_text(st, 3, hash);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        r = rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc, "storing the audit anchor");
        sqlite3_finalize(st);
        return r;
}

static int sqlite_audit_anchor_get(Store *base, const char *name, uint64_t *ret_seq, char *ret_hash) {
        SqliteStore *s = sqlite_store(base);
        sqlite3_stmt *st = NULL;
        const unsigned char *h;
        int rc, r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        rc = sqlite3_prepare_v2(s->db, "SELECT seq, hash FROM audit_anchor WHERE name = ?1", -1, &st, NULL);
        if (rc != SQLITE_OK) {
                /* No table: no anchor was ever stored. */
                if (strstr(sqlite3_errmsg(s->db), "no such table"))
                        return -ENOENT;
                return sqlite_fail(s, rc, "prepare");
        }
        rc = bind_text(st, 1, name);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                r = -ENOENT;
        else if (rc != SQLITE_ROW)
                r = sqlite_fail(s, rc, "reading the audit anchor");
        else {
                h = sqlite3_column_text(st, 1);
                if (sqlite3_column_int64(st, 0) <= 0 || !h ||
                    strlen((const char *) h) != STORE_AUDIT_HASH_HEX)
                        r = -EBADMSG;
                else {
                        *ret_seq = (uint64_t) sqlite3_column_int64(st, 0);
                        memcpy(ret_hash, h, STORE_AUDIT_HASH_HEX + 1);
                        r = 0;
                }
        }
        sqlite3_finalize(st);
        return r;
}

/* ---- open and close ---- */

static int reseal_in_tx(SqliteStore *s, StoreReseal *items, size_t n) {
        int applied = 0;

        for (size_t i = 0; i < n; i++) {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                int rc, r;

                r = stmt_get(s, STMT_RESEAL, &st);
                if (r < 0)
                        return r;
                if ((rc = bind_text(st, 1, items[i].id)) != SQLITE_OK ||
                    (rc = bind_text(st, 2, items[i].versions)) != SQLITE_OK ||
                    (rc = sqlite3_bind_int64(st, 3, items[i].expected_version)) != SQLITE_OK)
                        return sqlite_fail(s, rc, "binding");
                rc = sqlite3_step(st);
                if (rc != SQLITE_DONE)
                        return sqlite_fail(s, rc, "re-sealing a key");
                items[i].applied = sqlite3_changes(s->db) > 0;
                applied += items[i].applied;
        }
        return applied;
}

static int sqlite_reseal(Store *base, StoreReseal *items, size_t n) {
        SqliteStore *s = sqlite_store(base);
        int r;

        r = ensure_ready(s);
        if (r < 0)
                return r;
        r = tx_begin(s);
        if (r < 0)
                return r;
        return tx_end(s, reseal_in_tx(s, items, n));
}

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
