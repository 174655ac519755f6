/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The operator's verbs on a store: backup, rekey and import-knox. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fileio.h"
#include "keywardd.h"
#include "knox-cryptor.h"
#include "knox-import.h"
#include "log.h"
#include "master-key.h"
#include "rekey.h"
#include "store-backup.h"
#include "strv.h"

typedef struct BackupArgs {
        char *db;
} BackupArgs;

/* clang-format off */
static const ConfigItem backup_items[] = {
        { "backup", "db", config_parse_string, offsetof(BackupArgs, db), "SQLite store to copy (may be in use)", "DB" },
};
/* clang-format on */

/* keywardd backup --db DB FILE: a consistent copy of a live SQLite store. */
int verb_backup(int argc, char **argv) {
        _cleanup_free_ char **files = NULL;
        _cleanup_free_ char *shown_buf = NULL;
        BackupArgs a = {};
        const char *shown;
        int r;

        r = config_parse_argv(argc, argv, backup_items, ELEMENTSOF(backup_items), &a, &files);
        if (r != 0)
                goto finish;
        if ((r = require(a.db, "db")) < 0)
                goto finish;
        if (!files || !files[0] || files[1]) {
                r = log_error_errno(EINVAL, "Usage: keywardd backup --db DB FILE");
                goto finish;
        }
        shown = store_url_display(a.db, &shown_buf);
        r = store_backup(a.db, files[0]);
        if (r == -EOPNOTSUPP)
                r = log_error_errno(
                        r,
                        "keywardd backup copies SQLite stores only. Back up the PostgreSQL store '%s' with "
                        "PostgreSQL's own tools: pg_dump --format=custom --file FILE DBNAME (restore with "
                        "pg_restore), or continuous archiving and point-in-time recovery; see keywardd(8).",
                        shown);
        else if (r == -ENOMEDIUM)
                r = log_error_errno(
                        r, "'%s' is no keyward store (missing, or not initialised); nothing copied.", shown);
        else if (r == -EEXIST)
                r = log_error_errno(
                        r,
                        "Refusing to write the copy to '%s': it is the store itself, or SQLite's -wal or -shm "
                        "files lie beside it (a store in use). Choose another file.",
                        files[0]);
        else if (r < 0)
                r = log_error_errno(r, "Failed to copy the store '%s' to '%s': %m", shown, files[0]);
        else
                log_info("Copied the store '%s' to '%s'.", shown, files[0]);
        if (r == -EINVAL)
                r = -EIO; /* not a usage error */

finish:
        free(a.db);
        return r > 0 ? 0 : r;
}

typedef struct RekeyArgs {
        char *db;
        char **master_key;
        char *new_master_key;
} RekeyArgs;

/* clang-format off */
static const ConfigItem rekey_items[] = {
        { "rekey", "db",             config_parse_string, offsetof(RekeyArgs, db),             "SQLite file, or postgresql:// URI", "DB" },
        { "rekey", "master-key",     config_parse_strv,   offsetof(RekeyArgs, master_key),     "the old master key, that the store is sealed under now (repeatable)", "MK" },
        { "rekey", "new-master-key", config_parse_string, offsetof(RekeyArgs, new_master_key), "the master key to re-seal every version under", "MK" },
};
/* clang-format on */

/* keywardd rekey --db DB --master-key OLD --new-master-key NEW: exit 0 when nothing is left
 * under another key (OLD may be retired), 1 when something is (or on an error). */
int verb_rekey(int argc, char **argv) {
        _cleanup_(store_freep) Store *store = NULL;
        _cleanup_(cryptor_freep) Cryptor *cryptor = NULL;
        RekeyArgs a = {};
        RekeyStats st;
        int r;

        r = config_parse_argv(argc, argv, rekey_items, ELEMENTSOF(rekey_items), &a, NULL);
        if (r != 0)
                goto finish;
        if ((r = require(a.db, "db")) < 0 || (r = require(a.new_master_key, "new-master-key")) < 0)
                goto finish;
        if (!a.master_key) {
                r = log_error_errno(EINVAL, "Missing --master-key (the old key the store is sealed under).");
                goto finish;
        }

        r = check_master_key_credential(a.new_master_key);
        if (r >= 0)
                r = master_key_load(a.new_master_key, &cryptor);
        if (r < 0) {
                r = -EIO; /* not a usage error */
                goto finish;
        }
        STRV_FOREACH(k, a.master_key) {
                r = check_master_key_credential(*k);
                if (r >= 0)
                        r = master_key_add_old(cryptor, *k);
                if (r < 0) {
                        r = -EIO;
                        goto finish;
                }
        }
        r = open_existing_store(a.db, &store);
        if (r < 0) {
                r = -EIO;
                goto finish;
        }

        r = rekey_store(store, cryptor, &st);
        if (r < 0) {
                r = -EIO;
                goto finish;
        }
        printf("Re-sealed %" PRIu64 " versions under the new master key; %" PRIu64 " keys, %" PRIu64
               " versions in the store.\n",
               st.resealed, st.keys, st.versions);
        printf("%" PRIu64 " versions remain under other master keys%s\n", st.remaining,
               st.remaining == 0 ? ": the old key can be retired." : ".");
        if (st.unopenable > 0)
                printf("%" PRIu64 " versions open with none of the keys given.\n", st.unopenable);
        r = fflush(stdout) == 0 ? 0 : -EIO;
        if (r >= 0 && st.remaining > 0)
                r = -EAGAIN; /* exit 1: run it again, with every old key */

finish:
        free(a.db);
        strv_free(a.master_key);
        free(a.new_master_key);
        return r > 0 ? 0 : r;
}

typedef struct ImportKnoxArgs {
        char *db;
        char *master_key;
        char *knox_db;
        char *knox_master_key;
        char *knox_db_password_file;
        bool dry_run;
        bool update;
} ImportKnoxArgs;

/* clang-format off */
static const ConfigItem import_knox_items[] = {
        { "import-knox", "db",                    config_parse_string, offsetof(ImportKnoxArgs, db),                    "SQLite file, or postgresql:// URI", "DB" },
        { "import-knox", "master-key",            config_parse_string, offsetof(ImportKnoxArgs, master_key),            "master key: FILE, credential:NAME or pkcs11: URI", "MK" },
        { "import-knox", "knox-db",               config_parse_string, offsetof(ImportKnoxArgs, knox_db),               "Knox's database: mysql://USER@HOST[:PORT]/DB, mysql://USER@localhost/DB?socket=PATH or postgresql://...", "URL" },
        { "import-knox", "knox-master-key",       config_parse_string, offsetof(ImportKnoxArgs, knox_master_key),       "Knox's AES-GCM key: a file of 16, 24 or 32 raw bytes", "FILE" },
        { "import-knox", "knox-db-password-file", config_parse_string, offsetof(ImportKnoxArgs, knox_db_password_file), "the Knox database password (first line), never in the URL", "FILE" },
        { "import-knox", "dry-run",               config_parse_bool,   offsetof(ImportKnoxArgs, dry_run),               "list what would be added and updated; write nothing", NULL },
        { "import-knox", "update",                config_parse_bool,   offsetof(ImportKnoxArgs, update),                "replace keys that differ from Knox's (default: report them)", NULL },
};
/* clang-format on */

/* The password is the file's first line; it goes to the client library, never to argv. */
static int read_password_file(const char *path, Secret **ret) {
        _cleanup_(secret_freep) Secret *s = NULL, *p = NULL;
        size_t n;
        int r;

        r = read_secret_file(path, 4096, &s);
        if (r < 0)
                return log_error_errno(r, "Failed to read the Knox database password file '%s': %m", path);
        for (n = 0; n < s->size && s->data[n] != '\n' && s->data[n] != '\r'; n++)
                if (s->data[n] == '\0')
                        return log_error_errno(
                                EINVAL, "The Knox database password file '%s' holds a NUL byte.", path);
        p = secret_new(n + 1);
        if (!p)
                return log_oom();
        memcpy(p->data, s->data, n);
        p->data[n] = '\0';
        *ret = TAKE_PTR(p);
        return 0;
}

int verb_import_knox(int argc, char **argv) {
        _cleanup_(cryptor_freep) Cryptor *cryptor = NULL, *knox_key = NULL;
        _cleanup_(secret_freep) Secret *password = NULL;
        _cleanup_(knox_db_freep) KnoxDb *knox = NULL;
        _cleanup_(store_freep) Store *store = NULL;
        ImportKnoxArgs a = {};
        KnoxImportOptions o;
        int r;

        r = config_parse_argv(argc, argv, import_knox_items, ELEMENTSOF(import_knox_items), &a, NULL);
        if (r != 0)
                goto finish;
        if ((r = require(a.db, "db")) < 0 || (r = require(a.master_key, "master-key")) < 0 ||
            (r = require(a.knox_db, "knox-db")) < 0 ||
            (r = require(a.knox_master_key, "knox-master-key")) < 0)
                goto finish;
        o = (KnoxImportOptions){.dry_run = a.dry_run, .update = a.update};

        r = master_key_load(a.master_key, &cryptor);
        if (r < 0) {
                r = log_error_errno(r, "Failed to load the master key: %m");
                r = r == -EINVAL ? -EIO : r;
                goto finish;
        }
        r = knox_master_key_load(a.knox_master_key, &knox_key);
        if (r < 0) {
                r = r == -EINVAL ? -EIO : r;
                goto finish;
        }
        if (a.knox_db_password_file) {
                r = read_password_file(a.knox_db_password_file, &password);
                if (r < 0)
                        goto finish;
        }
        r = knox_db_open(a.knox_db, password ? (const char *) password->data : NULL, &knox);
        if (r < 0) {
                r = r == -EINVAL ? -EIO : r;
                goto finish;
        }
        r = open_existing_store(a.db, &store);
        if (r < 0)
                goto finish;

        r = knox_import(knox, knox_key, store, cryptor, &o, stdout, NULL);
        if (r == -EINVAL)
                r = -EIO; /* exit 1, not a usage error */

finish:
        free(a.db);
        free(a.master_key);
        free(a.knox_db);
        free(a.knox_master_key);
        free(a.knox_db_password_file);
        return r > 0 ? 0 : r;
}
