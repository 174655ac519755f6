/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keywardd's [server] settings: the table that serve and init parse their command line and
 * --config file with, the parsers that check a value as it is read, and ServerConfig's cleanup. */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "keywardd.h"
#include "log.h"
#include "server-conn-limit.h"
#include "server.h"
#include "strv.h"
#include "time-util.h"

#define SERVER_ITEM(name, parser, field, metavar, help) \
        { "server", name, parser, offsetof(ServerConfig, field), help, metavar }
#define SERVER_ITEM_EXPECT(name, parser, field, metavar, help, expect) \
        { "server", name, parser, offsetof(ServerConfig, field), help, metavar, expect }

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
const ConfigItem server_items[] = {
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

const size_t server_items_count = ELEMENTSOF(server_items);

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
