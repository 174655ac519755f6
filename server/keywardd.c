/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keywardd: the central server. Verbs: init, serve, token. */

#include <getopt.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "key.h"
#include "log.h"
#include "master-key.h"
#include "parse.h"
#include "secret.h"
#include "audit-verify.h"
#include "server-audit.h"
#include "server-auth.h"
#include "server-conn-limit.h"
#include "server-metrics.h"
#include "server-tls.h"
#include "server.h"
#include "store.h"
#include "strv.h"

#define DEFAULT_MAX_BODY (1024 * 1024)
#define DEFAULT_MAX_HEADER (256 * 1024)
#define DEFAULT_IDLE_TIMEOUT (60 * USEC_PER_SEC)
#define DEFAULT_REQUEST_TIMEOUT (30 * USEC_PER_SEC)
#define DEFAULT_MAX_CONNECTIONS 4096
#define DEFAULT_MAX_CONNECTIONS_PER_ADDRESS 256
#define WATCH_MAX_SEC 300
#define DEFAULT_LOGIN_TTL (8 * 3600 * USEC_PER_SEC)

#define SERVER_ITEM(name, parser, field, metavar, help) \
        { "server", name, parser, offsetof(ServerConfig, field), help, metavar }

/* clang-format off */
static const ConfigItem server_items[] = {
        SERVER_ITEM("listen",          config_parse_strv,     listen,            "ADDR:PORT", "address to serve HTTPS on (repeatable)"),
        SERVER_ITEM("tls-cert",        config_parse_string,   tls_cert,          "FILE", "server certificate chain (PEM)"),
        SERVER_ITEM("tls-key",         config_parse_string,   tls_key,           "FILE", "server private key (PEM)"),
        SERVER_ITEM("client-ca",       config_parse_string,   client_ca,         "FILE", "CA certificates that client certificates must chain to"),
        SERVER_ITEM("db",              config_parse_string,   db,                "DB", "SQLite file, or postgresql:// URI"),
        SERVER_ITEM("master-key",      config_parse_string,   master_key,        "MK", "master key: FILE, credential:NAME or pkcs11: URI"),
        SERVER_ITEM("audit-log",       config_parse_string,   audit_log,         "PATH|-|journal", "where audit lines go (default: -)"),
        SERVER_ITEM("audit-fail-open", config_parse_bool,     audit_fail_open,   NULL, "answer requests even when their audit line cannot be written (default: refuse them)"),
        SERVER_ITEM("default-acl",     config_parse_strv,     default_acl,       "TYPE:ID:ACCESS", "ACL entry added to every new key (repeatable)"),
        SERVER_ITEM("pam-service",     config_parse_string,   pam_service,       "NAME", "PAM service for password logins (default: keyward)"),
        SERVER_ITEM("login-ttl",       config_parse_sec,      login_ttl_usec,    "TIME", "lifetime of the tokens password logins get (default: 8h)"),
        SERVER_ITEM("hostname",        config_parse_string,   hostname,          "NAME", "host name reported in responses (default: the system's)"),
        SERVER_ITEM("log-level",       config_parse_string,   log_level,         "LEVEL", "debug, info, notice, warning, err"),
        SERVER_ITEM("workers",         config_parse_unsigned, workers,           "N", "worker threads, each with its own event loop (default: CPUs)"),
        SERVER_ITEM("max-connections", config_parse_unsigned, max_connections,   "N", "open connections at most (default: 4096)"),
        SERVER_ITEM("max-connections-per-address", config_parse_unsigned, max_connections_per_address, "N", "open connections from one client address at most (default: 256; 0: no limit)"),
        SERVER_ITEM("connection-limit-exempt", config_parse_strv, connection_limit_exempt, "ADDR[/PREFIX]", "address or network not held to --max-connections-per-address, e.g. a trusted load balancer (repeatable)"),
        SERVER_ITEM("max-body-size",   config_parse_size,     max_body_size,     "SIZE", "largest request body (default: 1M)"),
        SERVER_ITEM("max-header-size", config_parse_size,     max_header_size,   "SIZE", "largest request header block (default: 256K; a watch lists its keys in the request line)"),
        SERVER_ITEM("idle-timeout",    config_parse_sec,      idle_timeout_usec, "TIME", "close connections idle or stalled this long (default: 60s)"),
        SERVER_ITEM("request-timeout", config_parse_sec,      request_timeout_usec, "TIME", "longest a client may take to send one request, idle time aside (default: 30s)"),
        SERVER_ITEM("max-watch",       config_parse_unsigned, max_watch_sec,     "SECONDS", "longest Prefer: wait a watch may hold (default and maximum: 300)"),
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

static int require(const char *value, const char *flag) {
        if (isempty(value))
                return log_error_errno(EINVAL, "--%s is required.", flag);
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

static int verb_init(int argc, char **argv) {
        _cleanup_(server_config_done) ServerConfig c = {};
        _cleanup_(store_freep) Store *store = NULL;
        _cleanup_free_ char *shown_buf = NULL;
        const char *shown;
        int r;

        r = config_parse_argv(argc, argv, server_items, ELEMENTSOF(server_items), &c, NULL);
        if (r != 0)
                return r > 0 ? 0 : r;
        if ((r = require(c.db, "db")) < 0 || (r = require(c.master_key, "master-key")) < 0)
                return r;
        shown = store_url_display(c.db, &shown_buf);

        r = master_key_init(c.master_key);
        if (r < 0)
                return r;
        r = store_open(c.db, &store);
        if (r < 0)
                return log_error_errno(r, "Failed to open the store '%s': %m", shown);
        r = store_init(store);
        if (r < 0)
                return log_error_errno(r, "Failed to create the schema in '%s': %m", shown);
        log_info("Store '%s' is ready.", shown);
        return 0;
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
        r = store_open_existing(a.db, &store);
        if (r == -ENOMEDIUM) {
                log_error_errno(
                        r,
                        "The store '%s' is not initialised; run 'keywardd init' first.",
                        store_url_display(a.db, &shown_buf));
                goto finish;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to open the store '%s': %m", store_url_display(a.db, &shown_buf));
                goto finish;
        }

        r = user_token_new(&token, hash);
        if (r < 0) {
                log_error_errno(r, "Failed to make a token: %m");
                goto finish;
        }
        now = now_ns();
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
                        r,
                        "The store '%s' is not initialised; run 'keywardd init' first.",
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

/* The audit log's checkpoints are keyed from the master key: only its holders can seal. */
static int audit_key_set(Server *s) {
        uint8_t key[AUDIT_CHECKPOINT_KEY_SIZE];
        int r;

        r = cryptor_derive_key(s->cryptor, AUDIT_CHECKPOINT_KEY_INFO, key, sizeof(key));
        if (r >= 0)
                r = audit_set_checkpoint_key(s->audit, key);
        explicit_bzero(key, sizeof(key));
        if (r < 0)
                return log_error_errno(r, "Failed to set up the audit log's checkpoint key: %m");
        return 0;
}

typedef struct VerifyArgs {
        char *master_key;
} VerifyArgs;

/* clang-format off */
static const ConfigItem verify_items[] = {
        { "audit-verify", "master-key", config_parse_string, offsetof(VerifyArgs, master_key), "master key, to check the checkpoints too: FILE, credential:NAME or pkcs11: URI", "MK" },
};
/* clang-format on */

/* keywardd audit-verify [--master-key MK] FILE...: exit 0 intact, 1 broken, 2 usage. */
static int verb_audit_verify(int argc, char **argv) {
        _cleanup_(cryptor_freep) Cryptor *cryptor = NULL;
        _cleanup_free_ char **files = NULL;
        uint8_t key[AUDIT_CHECKPOINT_KEY_SIZE];
        VerifyArgs a = {};
        int r;

        r = config_parse_argv(argc, argv, verify_items, ELEMENTSOF(verify_items), &a, &files);
        if (r != 0)
                goto finish;
        if (!files || !files[0]) {
                log_error("Usage: keywardd audit-verify [--master-key MK] FILE...");
                r = -EINVAL;
                goto finish;
        }
        if (a.master_key) {
                r = master_key_load(a.master_key, &cryptor);
                if (r < 0) {
                        log_error_errno(r, "Failed to load the master key: %m");
                        r = -EIO; /* not a usage error */
                        goto finish;
                }
                r = cryptor_derive_key(cryptor, AUDIT_CHECKPOINT_KEY_INFO, key, sizeof(key));
                if (r < 0) {
                        log_error_errno(r, "Failed to derive the audit checkpoint key: %m");
                        goto finish;
                }
        }
        r = audit_verify_files(files, a.master_key ? key : NULL, stdout);
        if (r > 0)
                r = -EBADMSG; /* broken: exit 1 */
        else if (r == -EINVAL)
                r = -EIO;

finish:
        explicit_bzero(key, sizeof(key));
        free(a.master_key);
        return r > 0 ? 0 : r;
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
                .login_ttl_usec = DEFAULT_LOGIN_TTL,
        };
        Server s = {.config = &c};
        char host[256];
        long ncpu;
        int r;

        r = config_parse_argv(argc, argv, server_items, ELEMENTSOF(server_items), &c, NULL);
        if (r != 0)
                return r > 0 ? 0 : r;
        r = apply_log_level(c.log_level);
        if (r < 0)
                return r;
        if ((r = require(c.db, "db")) < 0 || (r = require(c.master_key, "master-key")) < 0 ||
            (r = require(c.tls_cert, "tls-cert")) < 0 || (r = require(c.tls_key, "tls-key")) < 0 ||
            (r = require(c.client_ca, "client-ca")) < 0)
                return r;
        if (!c.listen && strv_extend(&c.listen, "127.0.0.1:9000") < 0)
                return log_oom();
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
        if (c.login_ttl_usec < USEC_PER_SEC || c.login_ttl_usec > 366 * 24 * 3600 * USEC_PER_SEC)
                return log_error_errno(EINVAL, "--login-ttl must be between a second and a year.");

        r = secret_harden_process(false);
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

        r = master_key_load(c.master_key, &s.cryptor);
        if (r < 0)
                goto finish;

        {
                /* Fail early and clearly on a missing or old schema. */
                _cleanup_(store_freep) Store *probe = NULL;
                _cleanup_free_ char *shown_buf = NULL;
                uint64_t counter;

                r = store_open_existing(c.db, &probe);
                if (r >= 0)
                        r = store_change_counter(probe, &counter);
                if (r == -ENOMEDIUM) {
                        log_error_errno(
                                r,
                                "The store '%s' is not initialised; run 'keywardd init' first.",
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

        r = audit_open(c.audit_log ?: "-", "keywardd", PACKAGE_VERSION, s.hostname, &s.audit);
        if (r < 0) {
                log_error_errno(r, "Failed to open the audit log '%s': %m", strna(c.audit_log));
                goto finish;
        }
        r = audit_key_set(&s);
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

finish:
        free(s.hostname);
        cryptor_free(s.cryptor);
        acl_done(&s.default_acl);
        SSL_CTX_free(atomic_load(&s.ssl_ctx));
        for (size_t i = 0; i < s.n_retired_ctx; i++)
                SSL_CTX_free(s.retired_ctx[i]);
        X509_STORE_free(s.client_roots);
        audit_free(s.audit);
        metrics_free(s.metrics);
        return r;
}

static void help(void) {
        printf("keywardd " PACKAGE_VERSION ": the keyward server, speaking Knox's v0 REST API.\n\n"
               "Usage:\n"
               "  keywardd init  --db DB --master-key MK\n"
               "  keywardd serve --listen ADDR:PORT --tls-cert F --tls-key F --client-ca F --db DB --master-key MK\n"
               "                 [--audit-log PATH|-|journal] [--default-acl TYPE:ID:ACCESS]... [OPTIONS]\n"
               "  keywardd token --db DB --master-key MK --user NAME [--group G]... [--ttl 1h]\n"
               "  keywardd audit-verify [--master-key MK] FILE...\n"
               "  keywardd version\n\n"
               "DB is a file path (SQLite) or a postgresql:// URI. MK is a file path, credential:NAME or\n"
               "a pkcs11: URI. Every setting may also come from an INI file given with --config FILE;\n"
               "flags override it. 'keywardd VERB --help' lists a verb's options.\n");
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

        if (streq(verb, "init"))
                r = verb_init(argc - 1, argv + 1);
        else if (streq(verb, "serve"))
                r = verb_serve(argc - 1, argv + 1);
        else if (streq(verb, "token"))
                r = verb_token(argc - 1, argv + 1);
        else if (streq(verb, "audit-verify"))
                r = verb_audit_verify(argc - 1, argv + 1);
        else {
                log_error("Unknown verb '%s'; see 'keywardd --help'.", verb);
                return 2;
        }
        if (r == -EINVAL)
                return 2;
        return r < 0 ? 1 : 0;
}
