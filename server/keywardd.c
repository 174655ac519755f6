/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keywardd: the central server. Verbs: init, serve, token, audit-verify, backup, rekey,
 * import-knox. */

#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "keywardd.h"
#include "log.h"
#include "master-key.h"
#include "server-auth.h"
#include "server.h"
#include "store-cert-backfill.h"
#include "strv.h"
#include "time-util.h"
#include "user-util.h"
#include "wipe-alloc.h"

/* The user the packaged unit runs keywardd as: `keywardd init` run as root hands it the store. */
#define KEYWARDD_USER "keywardd"

typedef struct TokenArgs {
        char *db;
        char *master_key;
        char *user;
        char **groups;
        uint64_t ttl_usec;
} TokenArgs;

/* clang-format off */
static const ConfigItem token_items[] = {
        { "token", "db",         config_parse_string, offsetof(TokenArgs, db),         "SQLite file, or postgresql:// URI", "DB" },
        { "token", "master-key", config_parse_string, offsetof(TokenArgs, master_key), "master key: FILE, credential:NAME or pkcs11: URI", "MK" },
        { "token", "user",       config_parse_string, offsetof(TokenArgs, user),       "user the token authenticates", "NAME" },
        { "token", "group",      config_parse_strv,   offsetof(TokenArgs, groups),     "group of the user (repeatable)", "GROUP" },
        { "token", "ttl",        config_parse_sec,    offsetof(TokenArgs, ttl_usec),   "lifetime (default: 1h)", "TIME" },
};
/* clang-format on */

int open_existing_store(const char *db, Store **ret) {
        _cleanup_free_ char *shown = NULL;
        int r;

        r = store_open_existing(db, ret);
        if (r == -ENOMEDIUM)
                return log_error_errno(
                        r, "The store '%s' is not initialised; run 'keywardd init' first.",
                        store_url_display(db, &shown));
        if (r < 0)
                return log_error_errno(
                        r, "Failed to open the store '%s': %m", store_url_display(db, &shown));
        return 0;
}

int require(const char *value, const char *flag) {
        if (isempty(value))
                return log_error_errno(
                        EINVAL, "--%s is required (or %s = in the [server] section of --config FILE).", flag,
                        flag);
        return 0;
}

int apply_log_level(const char *level) {
        int l;

        if (!level)
                return 0;
        l = log_level_from_string(level);
        if (l < 0)
                return log_error_errno(EINVAL, "Invalid log level '%s'.", level);
        log_set_max_level(l);
        return 0;
}

/* `keywardd init`'s settings: the server's (so that --config keywardd.conf works), and --owner. */
typedef struct InitArgs {
        ServerConfig c; /* first: server_items' offsets apply */
        char *owner;
} InitArgs;

/* Hand the SQLite file (and its WAL files, when there) to the user the service runs as. */
static int chown_store(const char *db, const char *user, uid_t uid, gid_t gid) {
        static const char *const suffixes[] = {"", "-wal", "-shm"};
        _cleanup_free_ char *dir_buf = NULL;
        struct stat st;

        FOREACH_ARRAY(sfx, suffixes, ELEMENTSOF(suffixes)) {
                _cleanup_free_ char *path = NULL;
                _cleanup_close_ int fd = -EBADF;

                if (asprintf(&path, "%s%s", db, *sfx) < 0)
                        return log_oom();
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                if (fd < 0 && errno == ENOENT && !isempty(*sfx))
                        continue;
                if (fd < 0)
                        return log_error_errno(errno, "Failed to open '%s': %m", path);
                if (fchown(fd, uid, gid) < 0)
                        return log_error_errno(errno, "Failed to hand '%s' to user '%s': %m", path, user);
        }
        log_info("Store '%s' is owned by user '%s' now.", db, user);

        /* SQLite makes its -wal and -shm files next to the store: the user must be able to. */
        dir_buf = strdup(db);
        if (!dir_buf)
                return log_oom();
        if (stat(dirname(dir_buf), &st) == 0 && st.st_uid != uid && (st.st_mode & S_IWOTH) == 0 &&
            !(st.st_gid == gid && (st.st_mode & S_IWGRP)))
                log_warning(
                        "User '%s' cannot create files in '%s', which SQLite needs next to the store: "
                        "chown the directory to '%s', or keep the store in /var/lib/keywardd.",
                        user, dir_buf, user);
        return 0;
}

static bool db_is_file(const char *db) {
        return strncmp(db, "postgresql:", STRLEN("postgresql:")) != 0 &&
                strncmp(db, "postgres:", STRLEN("postgres:")) != 0;
}

/* Why this process may not use the SQLite store, said as an admin needs it: which file,
 * its owner and mode, and which user we run as. Returns -EACCES when logged, else 0. */
int check_store_access(const char *db) {
        _cleanup_free_ char *dir_buf = NULL, *me = NULL, *owner = NULL;
        const char *what, *path;
        struct stat st;

        if (!db_is_file(db))
                return 0;
        dir_buf = strdup(db);
        if (!dir_buf)
                return log_oom();
        if (faccessat(AT_FDCWD, dirname(dir_buf), X_OK, AT_EACCESS) < 0 && errno == EACCES) {
                path = dir_buf;
                what = "search the directory";
        } else if (access(db, F_OK) < 0)
                return 0; /* missing: the store code says so */
        else if (faccessat(AT_FDCWD, db, R_OK | W_OK, AT_EACCESS) < 0 && errno == EACCES) {
                path = db;
                what = "read and write the store";
        } else if (faccessat(AT_FDCWD, dir_buf, W_OK, AT_EACCESS) < 0 && errno == EACCES) {
                path = dir_buf;
                what = "create SQLite's -wal and -shm files in the directory";
        } else
                return 0;

        if (stat(path, &st) < 0)
                return 0;
        (void) user_by_uid(geteuid(), &me, NULL);
        (void) user_by_uid(st.st_uid, &owner, NULL);
        return log_error_errno(
                EACCES,
                "Cannot %s '%s': %m. keywardd runs as user '%s' (uid %u), and '%s' is owned by '%s' (uid %u) "
                "with mode %04o. Run 'keywardd init' as root again (it hands the store to the keywardd user), "
                "or chown it.",
                what, path, strna(me), (unsigned) geteuid(), path, strna(owner), (unsigned) st.st_uid,
                (unsigned) (st.st_mode & 07777));
}

/* The packaged unit loads the master key credential from this file; when it is missing,
 * systemd hands over this marker instead (SetCredential=), which is no key's size. */
#define UNIT_MASTER_KEY_FILE "/etc/keyward/master.key"
#define UNIT_NO_MASTER_KEY "keywardd-no-master-key"

/* Whether the credential file holds the unit's marker (or nothing). */
static bool credential_is_placeholder(const char *path) {
        _cleanup_close_ int fd = -EBADF;
        char buf[STRLEN(UNIT_NO_MASTER_KEY) + 1];
        struct stat st;
        bool marker;
        ssize_t n;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT;
        if (fstat(fd, &st) < 0)
                return false;
        if (st.st_size == 0)
                return true;
        if (st.st_size != (off_t) STRLEN(UNIT_NO_MASTER_KEY))
                return false;
        n = read(fd, buf, sizeof(buf));
        marker = n == (ssize_t) STRLEN(UNIT_NO_MASTER_KEY) &&
                memcmp(buf, UNIT_NO_MASTER_KEY, (size_t) n) == 0;
        explicit_bzero(buf, sizeof(buf));
        return marker;
}

/* A master key credential that systemd could not load: the file it comes from is missing.
 * Say so, as a configuration error (-EINVAL), before the master key code reports a key of
 * the wrong size. */
int check_master_key_credential(const char *spec) {
        _cleanup_free_ char *path = NULL;
        const char *dir;

        if (strncmp(spec, "credential:", STRLEN("credential:")) != 0)
                return 0;
        dir = secure_getenv("CREDENTIALS_DIRECTORY");
        if (isempty(dir))
                return 0; /* the master key code says so */
        if (asprintf(&path, "%s/%s", dir, spec + STRLEN("credential:")) < 0)
                return log_oom();
        if (!credential_is_placeholder(path))
                return 0;
        return log_error_errno(
                EINVAL,
                "The master key credential '%s' is missing: systemd found no file to load it from "
                "(keywardd.service loads it from " UNIT_MASTER_KEY_FILE
                "). Make the master key and the store with 'keywardd init --db DB --master-key " UNIT_MASTER_KEY_FILE
                "' first.",
                spec + STRLEN("credential:"));
}

/* Keys stored before the not_after column get their certificates recorded. */
static int init_backfill(Store *store, const char *master_key) {
        _cleanup_(cryptor_freep) Cryptor *cryptor = NULL;
        size_t n = 0;
        int r;

        r = master_key_load(master_key, &cryptor);
        if (r < 0)
                return r;
        r = store_backfill_not_after(store, cryptor, &n);
        if (r < 0)
                return log_error_errno(r, "Failed to record the certificates already stored: %m");
        if (n > 0)
                log_info("Recorded the certificate expiry of %zu key(s) stored before it was kept.", n);
        return 0;
}

static int verb_init(int argc, char **argv) {
        _cleanup_(store_freep) Store *store = NULL;
        _cleanup_free_ char *shown_buf = NULL;
        _cleanup_free_ ConfigItem *items = NULL;
        bool hand_over = false;
        uid_t uid = 0;
        gid_t gid = 0;
        InitArgs a = {};
        size_t n = server_items_count;
        const char *shown, *owner;
        int r;

        items = calloc(n + 1, sizeof(ConfigItem));
        if (!items)
                return log_oom();
        memcpy(items, server_items, n * sizeof(ConfigItem));
        items[n] = (ConfigItem){
                "init",
                "owner",
                config_parse_string,
                offsetof(InitArgs, owner),
                "user the SQLite store is handed to (default, as root: " KEYWARDD_USER
                " when that user exists)",
                "USER",
        };

        r = config_parse_argv(argc, argv, items, n + 1, &a, NULL);
        if (r != 0)
                goto finish;
        if ((r = require(a.c.db, "db")) < 0 || (r = require(a.c.master_key, "master-key")) < 0)
                goto finish;
        shown = store_url_display(a.c.db, &shown_buf);

        /* Who the store is for: --owner, else as root the packaged unit's user when it exists
         * (a root-owned 0600 store is one the service cannot open), else whoever runs this. */
        owner = a.owner;
        if (!owner && geteuid() == 0)
                owner = KEYWARDD_USER;
        if (owner && db_is_file(a.c.db)) {
                r = user_by_name(owner, &uid, &gid, NULL);
                if (r < 0) {
                        if (a.owner) {
                                r = log_error_errno(r, "Unknown --owner user '%s'.", owner);
                                goto finish;
                        }
                        /* no keywardd user: a store for root */
                } else
                        hand_over = uid != geteuid(); /* or ours already */
        } else if (owner && a.owner) {
                r = log_error_errno(EINVAL, "--owner applies to an SQLite store only, not to '%s'.", shown);
                goto finish;
        }

        r = master_key_init(a.c.master_key);
        if (r < 0)
                goto finish;
        r = store_open(a.c.db, &store);
        if (r < 0) {
                log_error_errno(r, "Failed to open the store '%s': %m", shown);
                goto finish;
        }
        r = store_init(store);
        if (r < 0) {
                log_error_errno(r, "Failed to create the schema in '%s': %m", shown);
                goto finish;
        }
        r = init_backfill(store, a.c.master_key);
        if (r < 0)
                goto finish;
        store = store_free(store);
        if (hand_over) {
                r = chown_store(a.c.db, owner, uid, gid);
                if (r < 0)
                        goto finish;
        }
        log_info("Store '%s' is ready.", shown);
        r = 0;

finish:
        server_config_done(&a.c);
        free(a.owner);
        return r > 0 ? 0 : r;
}

static int verb_token(int argc, char **argv) {
        _cleanup_(secret_freep) Secret *token = NULL;
        _cleanup_(store_freep) Store *store = NULL;
        _cleanup_(cryptor_freep) Cryptor *cryptor = NULL;
        _cleanup_free_ char *shown_buf = NULL;
        TokenArgs a = {.ttl_usec = 3600 * USEC_PER_SEC};
        uint8_t hash[TOKEN_HASH_SIZE];
        TokenInfo t;
        int64_t now;
        int r;

        r = config_parse_argv(argc, argv, token_items, ELEMENTSOF(token_items), &a, NULL);
        if (r != 0)
                goto finish;
        if ((r = require(a.db, "db")) < 0 || (r = require(a.master_key, "master-key")) < 0 ||
            (r = require(a.user, "user")) < 0)
                goto finish;

        /* Whoever may mint tokens must be able to read the master key too. */
        r = master_key_load(a.master_key, &cryptor);
        if (r < 0)
                goto finish;
        r = open_existing_store(a.db, &store);
        if (r < 0)
                goto finish;

        r = user_token_new(&token, hash);
        if (r < 0) {
                log_error_errno(r, "Failed to make a token: %m");
                goto finish;
        }
        now = now_nsec(CLOCK_REALTIME);
        t = (TokenInfo){
                .user = a.user,
                .groups = a.groups,
                .created = now,
                .expires = now + (int64_t) (a.ttl_usec * NSEC_PER_USEC),
        };
        r = store_token_add(store, hash, &t);
        explicit_bzero(hash, sizeof(hash));
        if (r == -ENOMEDIUM) {
                log_error_errno(
                        r, "The store '%s' is not initialised; run 'keywardd init' first.",
                        store_url_display(a.db, &shown_buf));
                goto finish;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to store the token: %m");
                goto finish;
        }
        log_notice("Minted a user token for '%s'.", a.user);
        (void) fwrite(token->data, 1, token->size, stdout);
        (void) fputc('\n', stdout);
        r = fflush(stdout) == 0 ? 0 : -EIO;

finish:
        free(a.db);
        free(a.master_key);
        free(a.user);
        strv_free(a.groups);
        return r > 0 ? 0 : r;
}

static void help(void) {
        printf("keywardd " PACKAGE_VERSION ": the keyward server, speaking Knox's v0 REST API.\n\n"
               "Usage:\n"
               "  keywardd init  --db DB --master-key MK [--owner USER]\n"
               "  keywardd serve --listen ADDR:PORT --tls-cert F --tls-key F --client-ca F --db DB --master-key MK\n"
               "                 [--audit-log PATH|-|journal] [--default-acl TYPE:ID:ACCESS]... [OPTIONS]\n"
               "  keywardd token --db DB --master-key MK --user NAME [--group G]... [--ttl 1h]\n"
               "  keywardd audit-verify [--master-key MK] [--db DB [--host NAME] | --anchor SEQ:HASH] [--first-seq N] FILE...\n"
               "  keywardd backup --db DB FILE\n"
               "  keywardd rekey --db DB --master-key OLD [--master-key OLD]... --new-master-key NEW\n"
               "  keywardd import-knox --db DB --master-key MK --knox-db URL --knox-master-key FILE\n"
               "                 [--knox-db-password-file FILE] [--dry-run] [--update]\n"
               "  keywardd version\n\n"
               "DB is a file path (SQLite) or a postgresql:// URI. MK is a file path, credential:NAME or\n"
               "a pkcs11: URI. Every setting may also come from an INI file given with --config FILE;\n"
               "flags override it. 'keywardd VERB --help' lists a verb's options.\n");
}

/* init takes few of serve's options; its --help lists those only. */
static bool init_wants_help(int argc, char **argv) {
        for (int i = 2; i < argc && !streq(argv[i], "--"); i++)
                if (streq(argv[i], "--help") || streq(argv[i], "-h"))
                        return true;
        return false;
}

static void init_help(void) {
        printf("Usage: keywardd init --db DB --master-key MK [--owner USER] [--config FILE]\n\n"
               "Creates the master key if it is absent (a file of 32 random bytes, mode 0600, or on a\n"
               "PKCS#11 token the key and the sealed data key) and creates or migrates the schema in DB.\n"
               "Running it again changes nothing, except that the store is handed to its owner again.\n\n"
               "  --db DB            SQLite file, or postgresql:// URI\n"
               "  --master-key MK    master key: FILE, credential:NAME or pkcs11: URI\n"
               "  --owner USER       user the SQLite store is handed to (default, as root: " KEYWARDD_USER
               "\n                     when that user exists)\n"
               "  --config FILE      INI file with these settings ([server] section)\n"
               "  --help             show this help\n");
}

int main(int argc, char *argv[]) {
        const char *verb = argc > 1 ? argv[1] : NULL;
        int r;

        log_setup("keywardd", LOG_TARGET_AUTO);
        wipe_alloc_install();

        if (!verb || streq(verb, "--help") || streq(verb, "-h") || streq(verb, "help")) {
                help();
                return verb ? 0 : 2;
        }
        if (streq(verb, "version") || streq(verb, "--version")) {
                printf("keywardd %s\n", PACKAGE_VERSION);
                return 0;
        }

        if (streq(verb, "init") && init_wants_help(argc, argv)) {
                init_help();
                return 0;
        }
        if (streq(verb, "init"))
                r = verb_init(argc - 1, argv + 1);
        else if (streq(verb, "serve"))
                r = verb_serve(argc - 1, argv + 1);
        else if (streq(verb, "token"))
                r = verb_token(argc - 1, argv + 1);
        else if (streq(verb, "audit-verify"))
                r = verb_audit_verify(argc - 1, argv + 1);
        else if (streq(verb, "backup"))
                r = verb_backup(argc - 1, argv + 1);
        else if (streq(verb, "rekey"))
                r = verb_rekey(argc - 1, argv + 1);
        else if (streq(verb, "import-knox"))
                r = verb_import_knox(argc - 1, argv + 1);
        else {
                log_error("Unknown verb '%s'; see 'keywardd --help'.", verb);
                return 2;
        }
        if (r == -EINVAL)
                return 2;
        return r < 0 ? 1 : 0;
}
