/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keywardd's shared state: settings, the TLS context, the trust store for client
 * certificates, the cryptor and the workers, each with its own event loop. */

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "acl.h"
#include "cryptor.h"
#include "macro.h"

typedef struct ServerConfig {
        char **listen; /* ADDR:PORT, several allowed */
        char *tls_cert;
        char *tls_key;
        char *client_ca;
        char *db;
        char *master_key;
        /* Read with these too, never sealed with (while a rekey runs). */
        char **old_master_key;
        char *audit_log;    /* PATH, "-" for stderr, "journal" */
        char **default_acl; /* TYPE:ID:ACCESS */
        char *pam_service;
        uint64_t login_ttl_usec; /* lifetime of the tokens password logins get */
        char *hostname;
        char *log_level;
        unsigned workers;
        unsigned max_connections;
        unsigned max_connections_per_address; /* 0: no limit */
        char **connection_limit_exempt;       /* ADDR[/PREFIX]: trusted load balancers */
        size_t max_body_size;
        size_t max_header_size;
        uint64_t idle_timeout_usec;
        uint64_t request_timeout_usec;
        unsigned max_watch_sec;
        uint64_t poll_interval_usec; /* how often workers read the store's change counter */
        char *ready_file;            /* tests: written with "ADDR:PORT\n" lines once listening */
        /* Answer requests even when their audit lines cannot be written. */
        bool audit_fail_open;
        /* /metrics lists keyward_certificate_not_after_seconds for every certificate version. */
        bool certificate_metrics;
} ServerConfig;

void server_config_done(ServerConfig *c);

typedef struct Worker Worker;
typedef struct Audit Audit;
typedef struct Metrics Metrics;
typedef struct Login Login;
typedef struct ConnLimit ConnLimit;

typedef struct Server {
        const ServerConfig *config;
        char *hostname;
        Cryptor *cryptor;
        Acl default_acl;
        _Atomic(SSL_CTX *) ssl_ctx; /* swapped on SIGHUP; workers take a reference per connection */
        SSL_CTX *retired_ctx[8];    /* replaced contexts, freed only at exit: a worker may be
                                     * between loading the pointer and SSL_new() */
        size_t n_retired_ctx;
        X509_STORE *client_roots;
        Audit *audit;
        Metrics *metrics;
        Login *login;
        ConnLimit *conn_limit; /* open connections per client address */
        Worker **workers;
        size_t n_workers;
        int listen_fds[16];
        size_t n_listen_fds;
        atomic_bool stopping;
        _Atomic uint64_t generation; /* moves on with every write: the workers' key caches */
        /* Held around each key write and the poll's read of the store's change counter, so
         * that the poll tells this process's writes (already fanned out) from other ones. */
        pthread_mutex_t write_lock;
        uint64_t local_writes; /* key writes by this process, under write_lock */
} Server;

/* Parse "TYPE:ID:ACCESS" (e.g. "UserGroup:security-team:Admin") into an entry. */
int default_acl_entry_parse(const char *s, Access *ret);

/* Serve until SIGTERM/SIGINT. */
int server_run(Server *s);

/* Who hears of a change. */
typedef enum ChangeScope {
        CHANGE_EVERY_WORKER, /* a write by this process (or the stop): every worker */
        CHANGE_ONE_WORKER,   /* what one worker's store poll or notifications saw: that one */
} ChangeScope;

/* These key ids changed (ids NULL: some keys did, which is unknown): their cached copies are
 * dropped and the held watches on them look again, after the answer in progress has been
 * sent. The one entry point for "keys changed", from a local write, the store poll, a store's
 * notification and the stop. origin is the calling worker's index (SIZE_MAX from no worker,
 * only with CHANGE_EVERY_WORKER). */
void server_keys_changed(Server *s, size_t origin, ChangeScope scope, char *const *ids, size_t n_ids);
