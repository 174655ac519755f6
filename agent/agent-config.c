/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-config.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cache-key.h"
#include "config.h"
#include "log.h"
#include "registry-names.h"
#include "strv.h"

static void agent_config_print_usage(void);

#define ITEM(name, parser, field, metavar, help) \
        { "agent", name, parser, offsetof(AgentConfig, field), help, metavar }

/* clang-format off */
static const ConfigItem agent_items[] = {
        ITEM("server",             config_parse_strv,   servers,              "URL",  "keywardd base URL, https://HOST:PORT (repeatable: failover in order)"),
        ITEM("cert",               config_parse_string, cert,                 "FILE", "machine certificate chain (PEM)"),
        ITEM("key",                config_parse_string, key,                  "FILE", "machine private key (PEM)"),
        ITEM("server-ca",          config_parse_string, server_ca,            "FILE", "CA bundle for the server's certificate (default: the system's)"),
        ITEM("hostname",           config_parse_string, hostname,             "NAME", "machine name the certificate is for (default: the system's)"),
        ITEM("state-dir",          config_parse_string, state_dir,            "DIR",  "registrations and key cache (default: " AGENT_DEFAULT_STATE_DIR ")"),
        ITEM("runtime-dir",        config_parse_string, runtime_dir,          "DIR",  "sockets (default: " AGENT_DEFAULT_RUNTIME_DIR ")"),
        ITEM("log-level",          config_parse_string, log_level,            "LEVEL", "debug, info, notice, warning, err"),
        ITEM("full-sync-interval", config_parse_sec,    full_sync_usec,       "TIME", "compare every key with the server this often (default: 5m)"),
        ITEM("watch-wait",         config_parse_sec,    watch_wait_usec,      "TIME", "how long one watch request waits for a change (default: 60s, at most 300s)"),
        ITEM("retry-max",          config_parse_sec,    retry_max_usec,       "TIME", "longest back-off between failed attempts (default: 60s)"),
        ITEM("connect-timeout",    config_parse_sec,    connect_timeout_usec, "TIME", "TCP and TLS connection timeout (default: 5s)"),
        ITEM("request-timeout",    config_parse_sec,    request_timeout_usec, "TIME", "timeout of one request, not counting a watch's wait (default: 30s)"),
        ITEM("max-request-size",   config_parse_size,   request_max,          "SIZE", "longest key list in one request (default: 128K; keep below the server's header limit)"),
        ITEM("max-request-keys",   config_parse_unsigned, request_keys,       "N",    "most keys named in one request (default: 1000; keywardd refuses more than 1024)"),
        ITEM("mlock",              config_parse_bool,   mlock,                NULL,   "lock all memory (mlockall), default yes"),
        ITEM("pam-bind-timeout",   config_parse_sec,    pam_bind_usec,        "TIME", "revoke a PAM login's token no session bound this long (default: 5m)"),
        ITEM("credential-wait",    config_parse_sec,    credential_wait_usec, "TIME", "how long a unit's credential waits for a key not fetched yet (default: 30s, 0: no wait)"),
        ITEM("metrics-file",       config_parse_string, metrics_file,         "PATH", "write figures for Prometheus' node_exporter textfile collector there"),
        ITEM("file-dir",           config_parse_strv,   file_dirs,            "DIR",  "allow Register's option file under DIR (repeatable; default: nowhere)"),
        ITEM("cache-key",          config_parse_string, cache_key,            "SOURCE", "host key sealing the cache: tpm2, file:PATH, credential:NAME or auto (default)"),
        ITEM("tpm2-device",        config_parse_string, tpm2_device,          "TCTI", "TPM2 for the cache key (default: the system's)"),
        ITEM("tpm2-pcrs",          config_parse_string, tpm2_pcrs,            "LIST", "PCRs the TPM2-sealed cache key is bound to, e.g. 7 or 0,7 (default: none)"),
        ITEM("tpm2-sealed-key",    config_parse_string, tpm2_sealed_key,      "PATH", "the TPM2-sealed cache key (default: " CACHE_KEY_DEFAULT_TPM2 ")"),
        ITEM("knox-compat",        config_parse_bool,   knox_compat,          NULL,   "keep Knox's host layout (KNOX-DIR/v0/keys/ID, KNOX-DIR/.registered), default no"),
        ITEM("knox-dir",           config_parse_string, knox_dir,             "DIR",  "Knox's directory (default: " AGENT_DEFAULT_KNOX_DIR ")"),
        ITEM("knox-group",         config_parse_string, knox_group,           "GROUP", "the group that reads Knox's key files (default: " AGENT_DEFAULT_KNOX_GROUP ")"),
};
/* clang-format on */

void agent_config_done(AgentConfig *c) {
        if (!c)
                return;
        strv_free(c->servers);
        free(c->cert);
        free(c->key);
        free(c->server_ca);
        free(c->hostname);
        free(c->state_dir);
        free(c->runtime_dir);
        free(c->log_level);
        free(c->metrics_file);
        strv_free(c->file_dirs);
        free(c->cache_key);
        free(c->tpm2_device);
        free(c->tpm2_pcrs);
        free(c->tpm2_sealed_key);
        free(c->knox_dir);
        free(c->knox_group);
        *c = (AgentConfig){};
}

static int set_default(char **s, const char *value) {
        if (*s)
                return 0;
        *s = strdup(value);
        return *s ? 0 : -ENOMEM;
}

static bool dir_ok(const char *d) {
        return d[0] == '/' && strlen(d) < PATH_MAX - 512;
}

int agent_config_parse(int argc, char **argv, AgentConfig *ret) {
        _cleanup_(agent_config_done) AgentConfig c = {
                .full_sync_usec = AGENT_DEFAULT_FULL_SYNC_USEC,
                .watch_wait_usec = AGENT_DEFAULT_WATCH_WAIT_USEC,
                .retry_max_usec = AGENT_DEFAULT_RETRY_MAX_USEC,
                .request_max = AGENT_DEFAULT_REQUEST_MAX,
                .request_keys = AGENT_DEFAULT_REQUEST_KEYS,
                .mlock = true,
                .pam_bind_usec = AGENT_DEFAULT_PAM_BIND_USEC,
                .credential_wait_usec = AGENT_DEFAULT_CREDENTIAL_WAIT_USEC,
        };
        int r;

        assert_return(ret, -EINVAL);

        /* config_parse_argv() prints the options; the usage line comes first. */
        for (int i = 1; i < argc && !streq(argv[i], "--"); i++)
                if (streq(argv[i], "--help")) {
                        agent_config_print_usage();
                        break;
                }

        r = config_parse_argv(argc, argv, agent_items, ELEMENTSOF(agent_items), &c, NULL);
        if (r != 0)
                return r;

        if (strv_length(c.servers) == 0)
                return log_error_errno(EINVAL, "--server is required.");
        STRV_FOREACH(s, c.servers)
                if (isempty(*s) || strlen(*s) > 1024 || strpbrk(*s, " \t\r\n"))
                        return log_error_errno(EINVAL, "Invalid --server '%s'.", *s);
        if (!c.cert || !c.key)
                return log_error_errno(EINVAL, "--cert and --key (the machine certificate) are required.");
        if (!c.hostname) {
                char h[HOST_NAME_MAX + 1] = {};

                if (gethostname(h, sizeof(h) - 1) < 0 || isempty(h))
                        return log_error_errno(
                                errno ?: EINVAL, "Cannot find the host name, use --hostname.");
                c.hostname = strdup(h);
                if (!c.hostname)
                        return log_oom();
        }
        if (isempty(c.hostname) || strlen(c.hostname) > 253 || strpbrk(c.hostname, " \t\r\n/"))
                return log_error_errno(EINVAL, "Invalid --hostname '%s'.", c.hostname);
        if (set_default(&c.state_dir, AGENT_DEFAULT_STATE_DIR) < 0 ||
            set_default(&c.runtime_dir, AGENT_DEFAULT_RUNTIME_DIR) < 0 ||
            set_default(&c.knox_dir, AGENT_DEFAULT_KNOX_DIR) < 0 ||
            set_default(&c.knox_group, AGENT_DEFAULT_KNOX_GROUP) < 0)
                return log_oom();
        if (!dir_ok(c.state_dir) || !dir_ok(c.runtime_dir))
                return log_error_errno(EINVAL, "--state-dir and --runtime-dir must be absolute paths.");
        if (!dir_ok(c.knox_dir) || streq(c.knox_dir, "/"))
                return log_error_errno(EINVAL, "--knox-dir must be an absolute path below /.");
        if (isempty(c.knox_group) || strlen(c.knox_group) > 256 || strpbrk(c.knox_group, " \t\r\n:"))
                return log_error_errno(EINVAL, "Invalid --knox-group '%s'.", c.knox_group);
        if (c.log_level && log_level_from_string(c.log_level) < 0)
                return log_error_errno(EINVAL, "Invalid --log-level '%s'.", c.log_level);
        if (c.watch_wait_usec < USEC_PER_SEC || c.watch_wait_usec > AGENT_WATCH_WAIT_MAX_USEC)
                return log_error_errno(EINVAL, "--watch-wait must be between 1s and 300s.");
        if (c.full_sync_usec < USEC_PER_SEC)
                return log_error_errno(EINVAL, "--full-sync-interval must be at least 1s.");
        if (c.request_max < 1024)
                return log_error_errno(EINVAL, "--max-request-size must be at least 1K.");
        if (c.request_keys < 1 || c.request_keys > 100000)
                return log_error_errno(EINVAL, "--max-request-keys must be between 1 and 100000.");
        if (c.retry_max_usec < AGENT_RETRY_MIN_USEC)
                return log_error_errno(EINVAL, "--retry-max must be at least 500ms.");
        if (c.pam_bind_usec < USEC_PER_SEC || c.pam_bind_usec > AGENT_DEFAULT_PAM_BIND_USEC)
                return log_error_errno(EINVAL, "--pam-bind-timeout must be between 1s and 5m.");
        if (c.credential_wait_usec > AGENT_CREDENTIAL_WAIT_MAX_USEC)
                return log_error_errno(EINVAL, "--credential-wait must be at most 10m.");
        if (c.metrics_file &&
            (!dir_ok(c.metrics_file) || c.metrics_file[strlen(c.metrics_file) - 1] == '/' ||
             strpbrk(c.metrics_file, "\t\r\n")))
                return log_error_errno(
                        EINVAL, "Invalid --metrics-file '%s': an absolute file name is needed.",
                        c.metrics_file);

        STRV_FOREACH(d, c.file_dirs) {
                size_t n = strlen(*d);

                while (n > 1 && (*d)[n - 1] == '/') /* "/run/app/" is "/run/app" */
                        (*d)[--n] = '\0';
                if (!registry_file_path_is_valid(*d))
                        return log_error_errno(
                                EINVAL,
                                "Invalid --file-dir '%s': an absolute path without '.', '..' or '//' is needed.",
                                *d);
        }
        if (set_default(&c.cache_key, "auto") < 0)
                return log_oom();
        if (!cache_key_spec_is_valid(c.cache_key))
                return log_error_errno(
                        EINVAL,
                        "Invalid --cache-key '%s' (tpm2, file:/ABSOLUTE/PATH, credential:NAME or auto).",
                        c.cache_key);
        if (cache_key_parse_pcrs(c.tpm2_pcrs, &c.tpm2_pcr_mask) < 0)
                return log_error_errno(
                        EINVAL, "Invalid --tpm2-pcrs '%s' (e.g. 7 or 0,7; each 0 to 23).", c.tpm2_pcrs);
        if (c.tpm2_device && (isempty(c.tpm2_device) || strpbrk(c.tpm2_device, "\t\r\n")))
                return log_error_errno(EINVAL, "Invalid --tpm2-device '%s'.", c.tpm2_device);
        if (c.tpm2_sealed_key && !dir_ok(c.tpm2_sealed_key))
                return log_error_errno(EINVAL, "--tpm2-sealed-key must be an absolute path.");

        *ret = c;
        c = (AgentConfig){};
        return 0;
}

static void agent_config_print_usage(void) {
        printf("keyward-agent %s: keeps this host's registered keys in a private cache and serves\n"
               "them over D-Bus (org.keyward.Agent1 on the system bus, or DBUS_SYSTEM_BUS_ADDRESS).\n\n"
               "Usage: keyward-agent --server URL [--server URL]... --cert F --key F [--server-ca F]\n"
               "                     [--hostname H] [--state-dir DIR] [--runtime-dir DIR] [OPTIONS]\n\n",
               PACKAGE_VERSION);
}
