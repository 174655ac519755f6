/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "store-backup.h"

#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store-internal.h"
#include "time-util.h"

/* How long we keep asking for a read snapshot while writers hold the database (each try
 * also waits out SQLite's busy timeout). A WAL reader is only refused for the moment a
 * checkpoint resets the WAL, so this is reached only when something is stuck. */
#define BACKUP_DEADLINE_SEC 60
#define BACKUP_BUSY_TIMEOUT_MS 5000

static bool url_is_postgres(const char *url) {
        return strncmp(url, "postgresql:", STRLEN("postgresql:")) == 0 ||
                strncmp(url, "postgres:", STRLEN("postgres:")) == 0;
}

static int fsync_directory_of(const char *path) {
        _cleanup_free_ char *buf = strdup(path);
        _cleanup_close_ int fd = -EBADF;

        if (!buf)
                return -ENOMEM;
        fd = open(dirname(buf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                return -errno;
        return 0;
}

static void sqlite_closep(sqlite3 **db) {
        if (*db)
                (void) sqlite3_close_v2(*db);
        *db = NULL;
}

/* Whether path or its -wal or -shm file exists: a name in use by a live database. */
static int dest_in_use(const char *dest) {
        static const char *const suffixes[] = {"-wal", "-shm"};

        FOREACH_ARRAY(sfx, suffixes, ELEMENTSOF(suffixes)) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s%s", dest, *sfx) < 0)
                        return -ENOMEM;
                if (access(p, F_OK) == 0)
                        return 1;
        }
        return 0;
}

/* Copy every page of src into dst in one step: one read transaction on src, so the copy is
 * one snapshot. In WAL mode that snapshot does not hold writers up, and their commits do not
 * restart the copy (they go to the WAL, past our snapshot). */
static int copy_pages(sqlite3 *src, sqlite3 *dst) {
        sqlite3_backup *b;
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + BACKUP_DEADLINE_SEC * USEC_PER_SEC;
        int rc, r;

        b = sqlite3_backup_init(dst, "main", src, "main");
        if (!b)
                return log_debug_errno(
                        store_sqlite_errno(sqlite3_errcode(dst)), "sqlite3_backup_init: %s",
                        sqlite3_errmsg(dst));
        for (;;) {
                rc = sqlite3_backup_step(b, -1);
                if (rc == SQLITE_DONE)
                        break;
                if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && now_usec(CLOCK_MONOTONIC) < deadline) {
                        (void) sqlite3_sleep(50);
                        continue;
                }
                break;
        }
        r = rc == SQLITE_DONE ? 0 : store_sqlite_errno(rc);
        if (r < 0)
                log_debug("sqlite3_backup_step: %s", sqlite3_errstr(rc));
        rc = sqlite3_backup_finish(b);
        if (r == 0 && rc != SQLITE_OK)
                r = store_sqlite_errno(rc);
        return r;
}

/* The copy is a store like `keywardd init` makes: WAL mode, checked, everything in the one
 * file once the connection is closed (the last close checkpoints and removes the WAL). */
static int finish_copy(sqlite3 **dst) {
        sqlite3_stmt *st = NULL;
        bool fine = false;
        int rc;

        rc = sqlite3_exec(*dst, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return log_debug_errno(store_sqlite_errno(rc), "journal_mode: %s", sqlite3_errmsg(*dst));
        rc = sqlite3_prepare_v2(*dst, "PRAGMA quick_check", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_sqlite_errno(rc);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const unsigned char *v = sqlite3_column_text(st, 0);

                fine = v && streq((const char *) v, "ok");
        }
        (void) sqlite3_finalize(st);
        if (!fine)
                return log_debug_errno(EBADMSG, "The copy fails PRAGMA quick_check.");
        rc = sqlite3_close(*dst);
        *dst = NULL;
        if (rc != SQLITE_OK)
                return store_sqlite_errno(rc);
        return 0;
}

int store_backup(const char *db, const char *dest) {
        static const char *const tmp_suffixes[] = {"-journal", "-wal", "-shm"};
        _cleanup_(store_freep) Store *store = NULL;
        _cleanup_(sqlite_closep) sqlite3 *dst = NULL;
        _cleanup_free_ char *tmp = NULL, *tmp_path = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st_db, st_dest;
        uint64_t counter;
        sqlite3 *src;
        int r, rc;

        assert_return(db, -EINVAL);
        assert_return(dest, -EINVAL);

        if (url_is_postgres(db))
                return -EOPNOTSUPP;
        if (isempty(dest))
                return -EINVAL;
        if (stat(db, &st_db) == 0 && stat(dest, &st_dest) == 0 && st_db.st_dev == st_dest.st_dev &&
            st_db.st_ino == st_dest.st_ino)
                return -EEXIST;
        r = dest_in_use(dest);
        if (r != 0)
                return r > 0 ? -EEXIST : r;

        r = store_open_existing(db, &store);
        if (r < 0)
                return r;
        r = store_change_counter(store, &counter); /* the schema is there and ours */
        if (r < 0)
                return r;
        src = store_sqlite_handle(store);
        if (!src)
                return -EOPNOTSUPP;
        (void) sqlite3_busy_timeout(src, BACKUP_BUSY_TIMEOUT_MS);

        /* The temporary file: beside dest (same file system, so rename is atomic), 0600 from
         * birth, opened by SQLite by name. Keep our descriptor for the fsync. */
        if (asprintf(&tmp, "%s.tmpXXXXXX", dest) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        tmp_path = strdup(tmp);
        if (!tmp_path) {
                (void) unlink(tmp);
                return -ENOMEM;
        }
        if (fchmod(fd, 0600) < 0) {
                r = -errno;
                goto fail;
        }

        rc = sqlite3_open_v2(tmp_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
                r = dst ? store_sqlite_errno(rc) : -ENOMEM;
                goto fail;
        }
        (void) sqlite3_extended_result_codes(dst, 1);
        (void) sqlite3_exec(dst, "PRAGMA synchronous = FULL", NULL, NULL, NULL);

        r = copy_pages(src, dst);
        if (r < 0)
                goto fail;
        store = store_free(store);
        r = finish_copy(&dst);
        if (r < 0)
                goto fail;

        if (fsync(fd) < 0) {
                r = -errno;
                goto fail;
        }
        if (rename(tmp_path, dest) < 0) {
                r = -errno;
                goto fail;
        }
        r = fsync_directory_of(dest);
        if (r < 0)
                return log_debug_errno(r, "Failed to fsync the directory of '%s': %m", dest);
        return 0;

fail:
        sqlite_closep(&dst);
        (void) unlink(tmp_path);
        FOREACH_ARRAY(sfx, tmp_suffixes, ELEMENTSOF(tmp_suffixes)) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s%s", tmp_path, *sfx) >= 0)
                        (void) unlink(p);
        }
        return r;
}
