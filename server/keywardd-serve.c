/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `keywardd serve`: its defaults, the audit chain's key and anchor, and the start-up that reads
 * the settings, opens the store, starts the key holder and hands over to server_run(). */

#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit-verify.h"
#include "config.h"
#include "hexdecoct.h"
#include "keyholder.h"
#include "keywardd.h"
#include "log.h"
#include "master-key.h"
#include "server-auth.h"
#include "server-conn-limit.h"
#include "server-metrics.h"
#include "server-tls.h"
#include "server.h"
#include "strv.h"
#include "time-util.h"

#define DEFAULT_MAX_BODY (1024 * 1024)
#define DEFAULT_MAX_HEADER (256 * 1024)
#define DEFAULT_IDLE_TIMEOUT (60 * USEC_PER_SEC)
#define DEFAULT_REQUEST_TIMEOUT (30 * USEC_PER_SEC)
#define DEFAULT_MAX_CONNECTIONS 4096
#define DEFAULT_MAX_CONNECTIONS_PER_ADDRESS 256
#define WATCH_MAX_SEC 300
#define DEFAULT_LOGIN_TTL (8 * 3600 * USEC_PER_SEC)
#define DEFAULT_POLL_INTERVAL (1 * USEC_PER_SEC)

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

int verb_serve(int argc, char **argv) {
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
         * the stop in malloc_consolidate() (bench/fleet: 10-20% less CPU for both). A build
         * with jemalloc (keywardd-alloc.c) has no glibc heap to tune. */
#if !HAVE_JEMALLOC
        (void) mallopt(M_MXFAST, 0);
#endif

        r = config_parse_argv(argc, argv, server_items, server_items_count, &c, NULL);
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
        audit_set_fail_open(s.audit, c.audit_fail_open);
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
