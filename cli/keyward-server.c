/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Which servers the keyward CLI talks to, and the CA it checks them with. Each of the two is
 * taken from the first source that has it: the flags (--server, --server-ca), the environment
 * (KEYWARD_SERVER, KEYWARD_SERVER_CA), keyward.conf, and last keyward-agent (its Servers and
 * ServerCA properties), so that a fresh login shell finds the server with nothing set. */
#include "keyward.h"

#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "fileio.h"
#include "keyward-config.h"
#include "log.h"
#include "parse.h"
#include "strv.h"
#include "keyward-bus.h"

#define AGENT_PROPERTY_TIMEOUT_USEC (2 * USEC_PER_SEC)
/* Larger than any CA bundle (Debian ca-certificates.crt is about 200 KiB). */
#define CA_FILE_MAX (4 * 1024 * 1024)

typedef struct Settings {
        char **servers;
        const char *servers_from;
        char *ca;
        const char *ca_from;
} Settings;

static void settings_done(Settings *s) {
        s->servers = strv_free(s->servers);
        free(s->ca);
        s->ca = NULL;
}

static bool settings_complete(const Settings *s) {
        return s->servers && s->ca;
}

/* What keyward-agent knows, for what is still missing. Best effort: no bus, no agent or an
 * old agent without ServerCA leaves the setting missing. */
static void settings_from_agent(Settings *s) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        /* sd_bus_open_system() honours $DBUS_SYSTEM_BUS_ADDRESS. */
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                log_debug_errno(r, "No system bus, so no server settings from the agent: %m");
                return;
        }
        (void) sd_bus_set_method_call_timeout(bus, AGENT_PROPERTY_TIMEOUT_USEC);

        if (!s->servers) {
                _cleanup_strv_free_ char **l = NULL, **checked = NULL;

                r = sd_bus_get_property_strv(
                        bus, AGENT_BUS_NAME, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, "Servers", &error, &l);
                if (r < 0) {
                        log_debug("No servers from the agent: %s", error.message ?: strerror(-r));
                        return; /* nor a CA: the agent is not there */
                }
                STRV_FOREACH(u, l) {
                        r = keyward_servers_append(&checked, *u);
                        if (r < 0) {
                                note("Ignoring keyward-agent's server list: '%s' is not a server URL.", *u);
                                checked = strv_free(checked);
                                break;
                        }
                }
                if (strv_length(checked) > 0) {
                        s->servers = TAKE_PTR(checked);
                        s->servers_from = "keyward-agent";
                }
        }

        if (!s->ca) {
                _cleanup_free_ char *ca = NULL;

                sd_bus_error_free(&error);
                r = sd_bus_get_property_string(
                        bus, AGENT_BUS_NAME, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, "ServerCA", &error, &ca);
                if (r < 0)
                        log_debug("No server CA from the agent: %s", error.message ?: strerror(-r));
                else if (isempty(ca))
                        log_debug("The agent uses the system's CA certificates.");
                else if (ca[0] != '/')
                        note("Ignoring keyward-agent's server CA '%s': not an absolute path.", ca);
                else {
                        s->ca = TAKE_PTR(ca);
                        s->ca_from = "keyward-agent";
                }
        }
}

/* Fills in what keyward.conf has. 0, or an exit status after printing why. */
static int settings_from_config(Settings *s) {
        _cleanup_(keyward_config_done) KeywardConfig c = {};
        const char *path;
        int r;

        path = secure_getenv(KEYWARD_CONFIG_ENV);
        if (isempty(path))
                path = KEYWARD_CONFIG_PATH;

        r = keyward_config_load_file(path, &c);
        if (r == -ENOENT) {
                log_debug("No config file '%s'.", path);
                return 0;
        }
        if (r == -ENOMEM)
                return fail("Out of memory.");
        if (r < 0) /* config.c said where and what */
                return fail(
                        "Cannot use the config file '%s': fix it, or name another with %s.", path,
                        KEYWARD_CONFIG_ENV);

        if (!s->servers && c.servers) {
                s->servers = TAKE_PTR(c.servers);
                s->servers_from = path;
        }
        if (!s->ca && c.server_ca) {
                s->ca = TAKE_PTR(c.server_ca);
                s->ca_from = path;
        }
        return 0;
}

/* A CA file curl can use: readable by us (root reads any mode), a regular file (symlinks
 * followed, as curl does), with a PEM certificate in it. 0, or -errno with *ret_why set
 * when the words are ours rather than strerror()'s. */
static int ca_file_check(const char *path, const char **ret_why) {
        static const char begin[] = "-----BEGIN CERTIFICATE-----";
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *text = NULL;
        struct stat st;
        size_t size;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode)) {
                *ret_why = "a directory, not a file of PEM certificates";
                return -EISDIR;
        }
        if (!S_ISREG(st.st_mode)) {
                *ret_why = "not a regular file";
                return -EINVAL;
        }
        if (st.st_size > CA_FILE_MAX) {
                *ret_why = "larger than 4 MiB, so not a CA bundle";
                return -E2BIG;
        }
        text = malloc((size_t) st.st_size + 1);
        if (!text)
                return -ENOMEM;
        r = read_fd_all(fd, text, (size_t) st.st_size, &size);
        if (r < 0)
                return r;
        if (!memmem(text, size, begin, sizeof(begin) - 1)) {
                *ret_why = "no PEM certificate (-----BEGIN CERTIFICATE-----) in it";
                return -EBADMSG;
        }
        return 0;
}

int client_server_settings(char ***ret_servers, char **ret_ca) {
        _cleanup_(settings_done) Settings s = {};
        const char *env;
        int r;

        if (arg_servers) {
                r = strv_copy(arg_servers, &s.servers);
                if (r < 0)
                        return fail("Out of memory.");
                s.servers_from = "--server";
        } else {
                env = secure_getenv("KEYWARD_SERVER");
                if (!isempty(env)) {
                        r = keyward_servers_append(&s.servers, env);
                        if (r == -ENOMEM)
                                return fail("Out of memory.");
                        if (r < 0)
                                return usage_error(
                                        "Invalid KEYWARD_SERVER: a list of server URLs, at most %d.",
                                        KEYWARD_SERVERS_MAX);
                        s.servers_from = "KEYWARD_SERVER";
                }
        }
        if (strv_length(s.servers) == 0)
                s.servers = strv_free(s.servers);

        if (arg_server_ca) {
                s.ca = strdup(arg_server_ca);
                s.ca_from = "--server-ca";
        } else {
                env = secure_getenv("KEYWARD_SERVER_CA");
                if (!isempty(env)) {
                        s.ca = strdup(env);
                        s.ca_from = "KEYWARD_SERVER_CA";
                }
        }
        if (s.ca_from && !s.ca)
                return fail("Out of memory.");

        if (!settings_complete(&s)) {
                r = settings_from_config(&s);
                if (r != 0)
                        return r;
        }
        if (!settings_complete(&s))
                settings_from_agent(&s);

        if (!s.servers)
                return usage_error(
                        "No server given: use --server URL or set KEYWARD_SERVER, or name one in %s "
                        "(server=), or run keyward-agent.",
                        KEYWARD_CONFIG_PATH);
        log_debug("Servers from %s, CA %s from %s.", s.servers_from, strna(s.ca), strna(s.ca_from));

        /* Say which file and where it came from, rather than "Cannot reach any server". */
        if (s.ca) {
                const char *why = NULL;

                r = ca_file_check(s.ca, &why);
                if (r == -ENOMEM)
                        return fail("Out of memory.");
                if (r < 0)
                        return fail(
                                "Cannot read the server CA '%s' (from %s): %s", s.ca, s.ca_from,
                                why ?: strerror(-r));
        }

        *ret_servers = TAKE_PTR(s.servers);
        *ret_ca = TAKE_PTR(s.ca);
        return 0;
}
