/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keywardd: the central server. Verbs: init, serve, token, audit-verify, backup, rekey,
 * import-knox. */

#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <malloc.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "keyholder.h"
#include "keywardd.h"
#include "log.h"
#include "master-key.h"
#include <pthread.h>

#include "audit-verify.h"
#include "hexdecoct.h"
#include "server-auth.h"
#include "server-conn-limit.h"
#include "server-metrics.h"
#include "server-tls.h"
#include "server.h"
#include "store-cert-backfill.h"
#include "strv.h"
#include "time-util.h"
#include "user-util.h"

#define DEFAULT_MAX_BODY (1024 * 1024)
#define DEFAULT_MAX_HEADER (256 * 1024)
#define DEFAULT_IDLE_TIMEOUT (60 * USEC_PER_SEC)
#define DEFAULT_REQUEST_TIMEOUT (30 * USEC_PER_SEC)
#define DEFAULT_MAX_CONNECTIONS 4096
#define DEFAULT_MAX_CONNECTIONS_PER_ADDRESS 256
#define WATCH_MAX_SEC 300
#define DEFAULT_LOGIN_TTL (8 * 3600 * USEC_PER_SEC)
#define DEFAULT_POLL_INTERVAL (1 * USEC_PER_SEC)

#define SERVER_ITEM(name, parser, field, metavar, help) \
        { "server", name, parser, offsetof(ServerConfig, field), help, metavar }
#define SERVER_ITEM_EXPECT(name, parser, field, metavar, help, expect) \
        { "server", name, parser, offsetof(ServerConfig, field), help, metavar, expect }

/* The user the packaged unit runs keywardd as: `keywardd init` run as root hands it the store. */
#define KEYWARDD_USER "keywardd"

#define DEFAULT_ACL_EXPECT \
        "TYPE:ID:ACCESS, TYPE one of User, UserGroup, Machine, MachinePrefix, Service, ServicePrefix, ACCESS one of Read, Write, Admin (e.g. UserGroup:security-team:Admin)"
#define LOG_LEVEL_EXPECT "one of debug, info, notice, warning, err"
#define EXEMPT_EXPECT "an IPv4 or IPv6 address, or ADDRESS/PREFIX such as 10.0.0.0/8"
#define LOGIN_TTL_EXPECT "a duration between 1s and 366d, e.g. 8h"
#define POLL_INTERVAL_EXPECT "a duration between 10ms and 1d, e.g. 1s"

/* Settings that are checked as they are read, so that a bad one in a config file is reported
 * with its file and line (config.c adds them, and the item's expect text). */
static int parse_default_acl(const ConfigItem *item, const char *value, void *data);
static int parse_log_level(const ConfigItem *item, const char *value, void *data);
static int parse_exempt(const ConfigItem *item, const char *value, void *data);
static int parse_login_ttl(const ConfigItem *item, const char *value, void *data);
static int parse_poll_interval(const ConfigItem *item, const char *value, void *data);

/* clang-format off */
static const ConfigItem server_items[] = {
        SERVER_ITEM("listen",          config_parse_strv,     listen,            "ADDR:PORT", "address to serve HTTPS on (repeatable)"),
        SERVER_ITEM("tls-cert",        config_parse_string,   tls_cert,          "FILE", "server certificate chain (PEM)"),
        SERVER_ITEM("tls-key",         config_parse_string,   tls_key,           "FILE", "server private key (PEM)"),
        SERVER_ITEM("client-ca",       config_parse_string,   client_ca,         "FILE", "CA certificates that client certificates must chain to"),
        SERVER_ITEM("db",              config_parse_string,   db,                "DB", "SQLite file, or postgresql:// URI"),
        SERVER_ITEM("master-key",      config_parse_string,   master_key,        "MK", "master key: FILE, credential:NAME or pkcs11: URI"),
        SERVER_ITEM("old-master-key",  config_parse_strv,     old_master_key,    "MK", "an older master key, to read what it sealed while 'keywardd rekey' runs (repeatable)"),
        SERVER_ITEM("audit-log",       config_parse_string,   audit_log,         "PATH|-|journal", "where audit lines go (default: journal when stderr is the journal, else -)"),
        SERVER_ITEM("audit-fail-open", config_parse_bool,     audit_fail_open,   NULL, "answer requests even when their audit line cannot be written (default: refuse them)"),
        SERVER_ITEM("certificate-metrics", config_parse_bool, certificate_metrics, NULL, "list each primary and active certificate's notAfter in /metrics, labelled with key ids (default: off)"),
        SERVER_ITEM_EXPECT("default-acl", parse_default_acl,  default_acl,       "TYPE:ID:ACCESS", "ACL entry added to every new key (repeatable)", DEFAULT_ACL_EXPECT),
        SERVER_ITEM("pam-service",     config_parse_string,   pam_service,       "NAME", "PAM service for password logins (default: keyward)"),
        SERVER_ITEM_EXPECT("login-ttl", parse_login_ttl,      login_ttl_usec,    "TIME", "lifetime of the tokens password logins get (default: 8h)", LOGIN_TTL_EXPECT),
        SERVER_ITEM("hostname",        config_parse_string,   hostname,          "NAME", "host name reported in responses (default: the system's)"),
        SERVER_ITEM_EXPECT("log-level", parse_log_level,      log_level,         "LEVEL", "debug, info, notice, warning, err", LOG_LEVEL_EXPECT),
        SERVER_ITEM("workers",         config_parse_unsigned, workers,           "N", "worker threads, each with its own event loop (default: CPUs)"),
        SERVER_ITEM("max-connections", config_parse_unsigned, max_connections,   "N", "open connections at most (default: 4096)"),
        SERVER_ITEM("max-connections-per-address", config_parse_unsigned, max_connections_per_address, "N", "open connections from one client address at most (default: 256; 0: no limit)"),
        SERVER_ITEM_EXPECT("connection-limit-exempt", parse_exempt, connection_limit_exempt, "ADDR[/PREFIX]", "address or network not held to --max-connections-per-address, e.g. a trusted load balancer (repeatable)", EXEMPT_EXPECT),
        SERVER_ITEM("max-body-size",   config_parse_size,     max_body_size,     "SIZE", "largest request body (default: 1M)"),
        SERVER_ITEM("max-header-size", config_parse_size,     max_header_size,   "SIZE", "largest request header block (default: 256K; a watch lists its keys in the request line)"),
        SERVER_ITEM("idle-timeout",    config_parse_sec,      idle_timeout_usec, "TIME", "close connections idle or stalled this long (default: 60s)"),
        SERVER_ITEM("request-timeout", config_parse_sec,      request_timeout_usec, "TIME", "longest a client may take to send one request, idle time aside (default: 30s)"),
        SERVER_ITEM("max-watch",       config_parse_unsigned, max_watch_sec,     "SECONDS", "longest Prefer: wait a watch may hold (default and maximum: 300)"),
        SERVER_ITEM_EXPECT("poll-interval", parse_poll_interval, poll_interval_usec, "TIME", "how often to look for writes by other servers on the same database when no notification told of them (default: 1s)", POLL_INTERVAL_EXPECT),
        SERVER_ITEM("ready-file",      config_parse_string,   ready_file,        "FILE", "write the bound addresses here once serving (for tests)"),
};
/* clang-format on */

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

void server_config_done(ServerConfig *c) {
        strv_free(c->listen);
        free(c->tls_cert);
        free(c->tls_key);
        free(c->client_ca);
        free(c->db);
        free(c->master_key);
        strv_free(c->old_master_key);
        free(c->audit_log);
        strv_free(c->default_acl);
        strv_free(c->connection_limit_exempt);
        free(c->pam_service);
        free(c->hostname);
        free(c->log_level);
        free(c->ready_file);
        *c = (ServerConfig){};
}

int default_acl_entry_parse(const char *s, Access *ret) {
        const char *first, *last;
        _cleanup_free_ char *type = NULL, *id = NULL;
        PrincipalType t;
        AccessType a;

        first = strchr(s, ':');
        last = strrchr(s, ':');
        if (!first || first == last)
                return -EINVAL;
        type = strndup(s, (size_t) (first - s));
        id = strndup(first + 1, (size_t) (last - first - 1));
        if (!type || !id)
                return -ENOMEM;
        t = principal_type_from_string(type);
        a = access_type_from_string(last + 1);
        if (t < 0 || a < 0 || a == ACCESS_NONE || isempty(id))
                return -EINVAL;
        *ret = (Access){.type = t, .access = a, .id = TAKE_PTR(id)};
        return 0;
}

static int parse_default_acl(const ConfigItem *item, const char *value, void *data) {
        Access a;
        int r;

        if (!isempty(value)) {
                r = default_acl_entry_parse(value, &a);
                if (r < 0)
                        return r;
                access_done(&a);
        }
        return config_parse_strv(item, value, data);
}

static int parse_log_level(const ConfigItem *item, const char *value, void *data) {
        if (!isempty(value) && log_level_from_string(value) < 0)
                return -EINVAL;
        return config_parse_string(item, value, data);
}

static int parse_exempt(const ConfigItem *item, const char *value, void *data) {
        AddressPrefix p;
        int r;

        if (!isempty(value)) {
                r = address_prefix_parse(value, &p);
                if (r < 0)
                        return r;
        }
        return config_parse_strv(item, value, data);
}

static int parse_login_ttl(const ConfigItem *item, const char *value, void *data) {
        uint64_t usec;
        int r;

        r = config_parse_sec(item, value, &usec);
        if (r < 0)
                return r;
        if (usec < USEC_PER_SEC || usec > 366 * 24 * 3600 * USEC_PER_SEC)
                return -ERANGE;
        *(uint64_t *) data = usec;
        return 0;
}

static int parse_poll_interval(const ConfigItem *item, const char *value, void *data) {
        uint64_t usec;
        int r;

        r = config_parse_sec(item, value, &usec);
        if (r < 0)
                return r;
        if (usec < 10 * USEC_PER_MSEC || usec > 24 * 3600 * USEC_PER_SEC)
                return -ERANGE;
        *(uint64_t *) data = usec;
        return 0;
}

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

static int apply_log_level(const char *level) {
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
static int check_store_access(const char *db) {
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
        size_t n = ELEMENTSOF(server_items);
        const char *shown, *owner;
        int r;

        items = calloc(n + 1, sizeof(ConfigItem));
        if (!items)
                return log_oom();
        memcpy(items, server_items, sizeof(server_items));
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

/* The audit log's checkpoints are keyed from the master key: only its holders can seal. The
 * key holder derived the key when it started. */
static int audit_key_set(Server *s, KeyHolder *kh) {
        int r;

        r = audit_set_checkpoint_key(s->audit, keyholder_audit_key(kh));
        if (r < 0)
                return log_error_errno(r, "Failed to set up the audit log's checkpoint key: %m");
        return 0;
}

/* The audit chain's anchor, kept in the store (store_audit_anchor_set()) under keywardd's
 * host name: one connection of its own, used by whichever thread wrote a checkpoint. */
typedef struct AuditAnchorSink {
        pthread_mutex_t lock;
        Store *store;
        char *name;
        uint64_t stored_seq; /* calls may come out of order: the anchor only moves forward */
} AuditAnchorSink;

static int audit_anchor_store(uint64_t seq, const uint8_t hash[32], void *userdata) {
        AuditAnchorSink *k = userdata;
        char hex[AUDIT_HASH_HEX + 1];
        int r = 0;

        hexencode(hash, AUDIT_HASH_SIZE, hex);
        (void) pthread_mutex_lock(&k->lock);
        if (seq > k->stored_seq) {
                r = store_audit_anchor_set(k->store, k->name, seq, hex);
                if (r >= 0)
                        k->stored_seq = seq;
        }
        (void) pthread_mutex_unlock(&k->lock);
        return r;
}

/* Anchor the audit chain in the store. A file whose chain is behind the stored anchor was cut
 * back or replaced while keywardd was down: say so loudly (audit-verify --db will too). A sink
 * that starts with no chain (a new file after a rotation while keywardd was down, the journal)
 * continues from the anchor, the last checkpoint: after a clean stop, the last line. */
static int audit_anchor_setup(Server *s, const char *db, AuditAnchorSink *k) {
        char hash[STORE_AUDIT_HASH_HEX + 1], spelled[24 + STORE_AUDIT_HASH_HEX];
        uint8_t head[AUDIT_HASH_SIZE], anchor[AUDIT_HASH_SIZE];
        uint64_t seq = 0, head_seq;
        int r;

        r = store_open_existing(db, &k->store);
        if (r < 0)
                return log_error_errno(r, "Failed to open the store for the audit chain's anchor: %m");
        k->name = strdup(s->hostname);
        if (!k->name)
                return log_oom();
        audit_get_head(s->audit, &head_seq, head);
        r = store_audit_anchor_get(k->store, k->name, &seq, hash);
        if (r >= 0) {
                (void) snprintf(spelled, sizeof(spelled), "%" PRIu64 ":%s", seq, hash);
                r = audit_anchor_parse(spelled, &seq, anchor);
        }
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Failed to read the audit chain's anchor, ignoring: %m");
        else if (r >= 0 && head_seq == 0) {
                log_info(
                        "The audit log starts empty: its chain continues from the store's anchor at seq %" PRIu64
                        ".",
                        seq);
                audit_continue(s->audit, seq, anchor);
                k->stored_seq = seq;
        } else if (r >= 0 && seq > head_seq)
                log_error(
                        "The audit log ends at seq %" PRIu64 ", but the store's anchor says seq %" PRIu64
                        " was written: the audit log was cut back or replaced while keywardd was not running.",
                        head_seq, seq);
        audit_set_anchor(s->audit, audit_anchor_store, k);
        return 0;
}

static int verb_serve(int argc, char **argv) {
        _cleanup_(server_config_done) ServerConfig c = {
                .workers = 0,
                .max_connections = DEFAULT_MAX_CONNECTIONS,
                .max_connections_per_address = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
                .max_body_size = DEFAULT_MAX_BODY,
                .max_header_size = DEFAULT_MAX_HEADER,
                .idle_timeout_usec = DEFAULT_IDLE_TIMEOUT,
                .request_timeout_usec = DEFAULT_REQUEST_TIMEOUT,
                .max_watch_sec = WATCH_MAX_SEC,
                .poll_interval_usec = DEFAULT_POLL_INTERVAL,
                .login_ttl_usec = DEFAULT_LOGIN_TTL,
        };
        Server s = {.config = &c};
        KeyHolder *keyholder = NULL;
        AuditAnchorSink anchor = {.lock = PTHREAD_MUTEX_INITIALIZER};
        struct stat st;
        char host[256];
        long ncpu;
        int r;

        /* No fastbins: with thousands of connections glibc spent a fifth of the fan-out and of
         * the stop in malloc_consolidate() (bench/fleet: 10-20% less CPU for both). */
        (void) mallopt(M_MXFAST, 0);

        r = config_parse_argv(argc, argv, server_items, ELEMENTSOF(server_items), &c, NULL);
        if (r != 0) /* a missing or bad config file is a configuration error too: exit 2 */
                return r > 0 ? 0 : r == -ENOMEM ? r : -EINVAL;
        r = apply_log_level(c.log_level);
        if (r < 0)
                return r;
        if ((r = require(c.db, "db")) < 0 || (r = require(c.master_key, "master-key")) < 0 ||
            (r = require(c.tls_cert, "tls-cert")) < 0 || (r = require(c.tls_key, "tls-key")) < 0 ||
            (r = require(c.client_ca, "client-ca")) < 0)
                return r;
        if (!c.listen && strv_extend(&c.listen, "127.0.0.1:9000") < 0)
                return log_oom();
        /* An audit file at its size limit (LimitFSIZE=) must fail its write, and be cut back
         * and refused like a full disk, not kill the server. */
        (void) signal(SIGXFSZ, SIG_IGN);
        if (c.workers == 0) {
                ncpu = sysconf(_SC_NPROCESSORS_ONLN);
                c.workers = ncpu > 0 ? (unsigned) MIN(ncpu, 64L) : 1;
        }
        if (c.max_connections < c.workers)
                c.max_connections = c.workers;
        c.max_watch_sec = MIN(c.max_watch_sec, (unsigned) WATCH_MAX_SEC);
        STRV_FOREACH(e, c.connection_limit_exempt) {
                AddressPrefix p;

                r = address_prefix_parse(*e, &p);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return log_error_errno(
                                EINVAL,
                                "Invalid --connection-limit-exempt '%s': expected an address or ADDRESS/PREFIX, e.g. 10.0.0.0/8.",
                                *e);
        }

        r = secret_harden_process();
        if (r < 0)
                log_warning_errno(r, "Failed to disable core dumps, ignoring: %m");

        if (c.hostname)
                s.hostname = strdup(c.hostname);
        else if (gethostname(host, sizeof(host)) == 0) {
                host[sizeof(host) - 1] = '\0';
                s.hostname = strdup(host);
        } else
                s.hostname = strdup("localhost");
        if (!s.hostname)
                return log_oom();

        STRV_FOREACH(e, c.default_acl) {
                Access a;

                r = default_acl_entry_parse(*e, &a);
                if (r < 0) {
                        log_error_errno(
                                r,
                                "Invalid --default-acl '%s': expected TYPE:ID:ACCESS, e.g. UserGroup:security-team:Admin.",
                                *e);
                        goto finish;
                }
                r = acl_merge(&s.default_acl, &a);
                access_done(&a);
                if (r < 0) {
                        log_oom();
                        goto finish;
                }
        }

        r = check_master_key_credential(c.master_key);
        if (r < 0)
                goto finish;
        STRV_FOREACH(k, c.old_master_key) {
                r = check_master_key_credential(*k);
                if (r < 0)
                        goto finish;
        }
        /* The master key is loaded by the key holder only, never in this process. */
        r = keyholder_start(c.master_key, c.old_master_key, &keyholder);
        if (r < 0)
                goto finish;
        s.cryptor = keyholder_cryptor(keyholder);
        if (c.old_master_key)
                log_info(
                        "Reading with %zu old master key(s) too; new versions are sealed under --master-key.",
                        strv_length(c.old_master_key));

        {
                /* Fail early and clearly on a missing or old schema. */
                _cleanup_(store_freep) Store *probe = NULL;
                _cleanup_free_ char *shown_buf = NULL;
                uint64_t counter;

                r = check_store_access(c.db);
                if (r < 0)
                        goto finish;
                r = store_open_existing(c.db, &probe);
                if (r >= 0)
                        r = store_change_counter(probe, &counter);
                if (r == -ENOMEDIUM) {
                        log_error_errno(
                                r, "The store '%s' is not initialised; run 'keywardd init' first.",
                                store_url_display(c.db, &shown_buf));
                        goto finish;
                }
                if (r < 0) {
                        log_error_errno(
                                r, "Failed to open the store '%s': %m", store_url_display(c.db, &shown_buf));
                        goto finish;
                }
        }

        {
                SSL_CTX *ctx;

                /* Session tickets that every keywardd with this master key opens. */
                r = tls_set_ticket_seed(keyholder_ticket_seed(keyholder));
                if (r < 0) {
                        log_oom();
                        goto finish;
                }
                r = tls_server_ctx_new(c.tls_cert, c.tls_key, &ctx);
                if (r < 0) {
                        log_error_errno(
                                r, "Failed to set up TLS with '%s' and '%s': %m", c.tls_cert, c.tls_key);
                        goto finish;
                }
                atomic_store(&s.ssl_ctx, ctx);
        }
        r = tls_client_roots_new(c.client_ca, &s.client_roots);
        if (r < 0) {
                log_error_errno(r, "Failed to load the client CA '%s': %m", c.client_ca);
                goto finish;
        }

        /* Under systemd the journal is the default audit sink; audit-log= in the config says
         * otherwise (the unit passes no --audit-log, so the file has the last word). */
        if (!c.audit_log && !(c.audit_log = strdup(log_stderr_is_journal() ? "journal" : "-"))) {
                r = log_oom();
                goto finish;
        }
        /* stderr a regular file: keywardd's own log lines would land between the audit lines. */
        if (streq(c.audit_log, "-") && fstat(STDERR_FILENO, &st) >= 0 && S_ISREG(st.st_mode)) {
                log_error(
                        "Refusing --audit-log - (the default when stderr is not the journal): stderr is a regular file, where keywardd's own log lines would be mixed into the audit lines. Give the audit file as --audit-log PATH, or send stderr to a pipe or the journal.");
                r = -EINVAL;
                goto finish;
        }
        r = audit_open(c.audit_log, "keywardd", PACKAGE_VERSION, s.hostname, &s.audit);
        if (r < 0) {
                log_error_errno(r, "Failed to open the audit log '%s': %m", strna(c.audit_log));
                goto finish;
        }
        r = audit_key_set(&s, keyholder);
        if (r < 0)
                goto finish;
        r = audit_anchor_setup(&s, c.db, &anchor);
        if (r < 0)
                goto finish;
        if (c.audit_fail_open)
                log_warning(
                        "Audit fails open (--audit-fail-open): requests are answered even when their audit lines cannot be written.");
        r = metrics_new(c.workers, &s.metrics);
        if (r < 0) {
                log_oom();
                goto finish;
        }

        r = server_run(&s);
        if (r >= 0 && keyholder_failed(keyholder))
                r = -ECHILD; /* logged when it happened: exit 1, systemd restarts keywardd */

finish:
        free(s.hostname);
        s.cryptor = NULL; /* the key holder's */
        keyholder = keyholder_free(keyholder);
        acl_done(&s.default_acl);
        SSL_CTX_free(atomic_load(&s.ssl_ctx));
        for (size_t i = 0; i < s.n_retired_ctx; i++)
                SSL_CTX_free(s.retired_ctx[i]);
        X509_STORE_free(s.client_roots);
        audit_free(s.audit); /* its final checkpoint goes to the anchor: free the store after */
        store_free(anchor.store);
        free(anchor.name);
        metrics_free(s.metrics);
        return r;
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
