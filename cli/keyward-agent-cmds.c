/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The commands that talk to keyward-agent over D-Bus (org.keyward.Agent1 on the system bus,
 * or on $DBUS_SYSTEM_BUS_ADDRESS): register, unregister, sync, and the user token
 * the agent holds for this user (status: keyward-status.c). */
#include "keyward.h"
#include "keyward-agent.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "registry-names.h"
#include "buf.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "parse.h"
#include "strv.h"
#include "time-util.h"
#include "keyward-bus.h"

#define TOKEN_TIMEOUT_USEC (2 * USEC_PER_SEC)
/* How long a read waits for the agent before it asks the server instead. */
#define AGENT_GET_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define REGISTER_FILE_MAX (16 * 1024 * 1024)

int agent_bus_connect(sd_bus **ret, bool interactive) {
        sd_bus *bus = NULL;
        int r;

        /* sd_bus_open_system() honours $DBUS_SYSTEM_BUS_ADDRESS. */
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        (void) sd_bus_set_allow_interactive_authorization(bus, interactive);
        *ret = bus;
        return 0;
}

static bool agent_absent(const sd_bus_error *e) {
        return sd_bus_error_has_names(
                e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER, SD_BUS_ERROR_UNKNOWN_OBJECT,
                SD_BUS_ERROR_UNKNOWN_INTERFACE, SD_BUS_ERROR_UNKNOWN_METHOD);
}

/* "<what>: <why>" for a failed bus call, and EXIT_FAIL. */
int agent_fail_bus(const char *what, int r, const sd_bus_error *e) {
        if (agent_absent(e))
                return fail("%s: keyward-agent is not running (%s)", what, e->message ?: e->name);
        if (e && e->name && strneq(e->name, AGENT_ERROR_PREFIX, STRLEN(AGENT_ERROR_PREFIX)))
                return fail(
                        "%s: %s (%s)", what, e->message ?: e->name + STRLEN(AGENT_ERROR_PREFIX),
                        e->name + STRLEN(AGENT_ERROR_PREFIX));
        if (e && e->message)
                return fail("%s: %s", what, e->message);
        return fail("%s: %s", what, strerror(-r));
}

int agent_fail_bus_open(int r) {
        return fail("Cannot connect to the system bus, so not to keyward-agent: %s", strerror(-r));
}

int agent_get_user_token(char **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *token = NULL;
        char *t;
        int r;

        /* Best effort: without an agent, or with no token there, we go on without one. */
        r = agent_bus_connect(&bus, false);
        if (r < 0)
                return log_debug_errno(r, "No system bus, so no token from the agent: %m"), 0;
        r = sd_bus_message_new_method_call(
                bus, &m, AGENT_BUS_NAME, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, "GetUserToken");
        if (r < 0)
                return 0;
        r = sd_bus_call(bus, m, TOKEN_TIMEOUT_USEC, &error, &reply);
        if (r < 0) {
                log_debug("No user token from the agent: %s", error.message ?: strerror(-r));
                return 0;
        }
        (void) sd_bus_message_sensitive(reply);
        r = sd_bus_message_read(reply, "s", &token);
        if (r < 0 || isempty(token))
                return 0;
        t = strdup(token);
        if (!t)
                return -ENOMEM;
        *ret = t;
        return 1;
}

/* ---- register / unregister ------------------------------------------------------------- */

static int append_strv_option(sd_bus_message *m, const char *name, char **l) {
        int r;

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", name);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "as");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, l);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

typedef struct RegisterOptions {
        char **readers;
        char **units;
        const char *credential;
        const char *on_change;
        const char *file;
        const char *file_owner;
        const char *file_group;
        unsigned file_mode; /* 0: not given */
} RegisterOptions;

/* An octal mode of at most four digits, as --file-mode takes it. */
static int parse_file_mode(const char *s, unsigned *ret) {
        unsigned m = 0;

        if (isempty(s) || strlen(s) > 5)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '7')
                        return -EINVAL;
                m = m * 8 + (unsigned) (*p - '0');
        }
        if (m == 0 || m > 07777)
                return -EINVAL;
        *ret = m;
        return 0;
}

static int append_register_options(sd_bus_message *m, const RegisterOptions *o) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && o->readers)
                r = append_strv_option(m, "readers", o->readers);
        if (r >= 0 && o->units)
                r = append_strv_option(m, "units", o->units);
        if (r >= 0 && o->credential)
                r = sd_bus_message_append(m, "{sv}", "credential", "s", o->credential);
        if (r >= 0 && o->on_change)
                r = sd_bus_message_append(m, "{sv}", "on_change", "s", o->on_change);
        if (r >= 0 && o->file)
                r = sd_bus_message_append(m, "{sv}", "file", "s", o->file);
        if (r >= 0 && o->file_owner)
                r = sd_bus_message_append(m, "{sv}", "file_owner", "s", o->file_owner);
        if (r >= 0 && o->file_group)
                r = sd_bus_message_append(m, "{sv}", "file_group", "s", o->file_group);
        if (r >= 0 && o->file_mode != 0)
                r = sd_bus_message_append(m, "{sv}", "file_mode", "u", (uint32_t) o->file_mode);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static int call_register(sd_bus *bus, const char *id, const RegisterOptions *o, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(
                bus, &m, AGENT_BUS_NAME, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, "Register");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", id);
        if (r >= 0)
                r = append_register_options(m, o);
        if (r < 0)
                return r;
        return sd_bus_call(bus, m, 0, error, NULL);
}

/* Keys registered by one RegisterMany call: the agent writes its registry once per call. */
#define REGISTER_BATCH 1000

/* RegisterMany for n ids with the same options; -EOPNOTSUPP from an agent without it. */
static int
call_register_many(sd_bus *bus, char *const *ids, size_t n, const RegisterOptions *o, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(
                bus, &m, AGENT_BUS_NAME, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, "RegisterMany");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(sa{sv})");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = sd_bus_message_open_container(m, 'r', "sa{sv}");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", ids[i]);
                if (r >= 0)
                        r = append_register_options(m, o);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, 0, error, NULL);
        if (r < 0 && sd_bus_error_has_name(error, SD_BUS_ERROR_UNKNOWN_METHOD))
                return -EOPNOTSUPP;
        return r;
}

static int call_unregister(sd_bus *bus, const char *id, sd_bus_error *error) {
        return sd_bus_call_method(
                bus, AGENT_BUS_NAME, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, "Unregister", error, NULL, "s",
                id);
}

void agent_keys_free(AgentKey *keys, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(keys[i].id);
                free(keys[i].hash);
        }
        free(keys);
}

int agent_call_list_keys(sd_bus *bus, AgentKey **ret, size_t *ret_n, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        AgentKey *keys = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(
                bus, AGENT_BUS_NAME, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, "ListKeys", error, &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(sst)");
        if (r < 0)
                return r;
        for (;;) {
                const char *id, *hash;
                uint64_t t;
                AgentKey *k;

                r = sd_bus_message_read(reply, "(sst)", &id, &hash, &t);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                k = reallocarray(keys, n + 1, sizeof(AgentKey));
                if (!k) {
                        r = -ENOMEM;
                        goto fail;
                }
                keys = k;
                keys[n] = (AgentKey){.id = strdup(id), .hash = strdup(hash), .number = t};
                n++;
                if (!keys[n - 1].id || !keys[n - 1].hash) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        *ret = keys;
        *ret_n = n;
        return 0;
fail:
        agent_keys_free(keys, n);
        return r;
}

/* Call method(s id) for a read, with the reply marked sensitive (timeout_usec 0: sd-bus's
 * default). A read must not start an agent that is not running (bus activation). */
static int call_read(
        sd_bus *bus,
        const char *method,
        const char *id,
        uint64_t timeout_usec,
        sd_bus_message **ret,
        sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = sd_bus_message_new_method_call(
                bus, &m, AGENT_BUS_NAME, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, method);
        if (r < 0)
                return r;
        (void) sd_bus_message_set_auto_start(m, false);
        r = sd_bus_message_append(m, "s", id);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, timeout_usec, error, &reply);
        if (r < 0)
                return r;
        (void) sd_bus_message_sensitive(reply);
        *ret = TAKE_PTR(reply);
        return 0;
}

/* A Knox key named id, with no versions yet. */
static Key *key_named(const char *id) {
        _cleanup_(key_freep) Key *k = key_new();

        if (!k)
                return NULL;
        k->id = strdup(id);
        if (!k->id)
                return NULL;
        return TAKE_PTR(k);
}

/* GetKeyVersions(s id) → (a(tays) versions, s hash), as a Knox key (ts unknown: 0). */
static int call_get_key_versions(sd_bus *bus, const char *id, Key **ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(key_freep) Key *k = NULL;
        const char *hash;
        int r;

        r = call_read(bus, "GetKeyVersions", id, 0, &reply, error);
        if (r < 0)
                return r;

        k = key_named(id);
        if (!k)
                return -ENOMEM;

        r = sd_bus_message_enter_container(reply, 'a', "(tays)");
        if (r < 0)
                return r;
        for (;;) {
                const void *data;
                const char *status;
                size_t size;
                uint64_t vid;
                KeyVersion *v;

                r = sd_bus_message_enter_container(reply, 'r', "tays");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_read(reply, "t", &vid);
                if (r >= 0)
                        r = sd_bus_message_read_array(reply, 'y', &data, &size);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "s", &status);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;

                v = reallocarray(k->versions, k->n_versions + 1, sizeof(KeyVersion));
                if (!v)
                        return -ENOMEM;
                k->versions = v;
                v = &k->versions[k->n_versions];
                *v = (KeyVersion){.id = vid, .status = version_status_from_string(status)};
                if (v->status < 0)
                        v->status = VERSION_STATUS_ACTIVE;
                v->data = secret_new_copy(data, size);
                k->n_versions++;
                if (!v->data)
                        return -ENOMEM;
        }
        r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_read(reply, "s", &hash);
        if (r < 0)
                return r;
        (void) snprintf(k->hash, sizeof(k->hash), "%s", hash);

        *ret = TAKE_PTR(k);
        return 0;
}

/* GetKey(s id) → (ay data, t version), as a Knox key with that one primary version. */
static int call_get_key(sd_bus *bus, const char *id, Key **ret, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(key_freep) Key *k = NULL;
        const void *data;
        uint64_t vid;
        size_t size;
        int r;

        r = call_read(bus, "GetKey", id, AGENT_GET_TIMEOUT_USEC, &reply, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(reply, 'y', &data, &size);
        if (r >= 0)
                r = sd_bus_message_read(reply, "t", &vid);
        if (r < 0)
                return r;

        k = key_named(id);
        if (!k)
                return -ENOMEM;
        k->versions = calloc(1, sizeof(KeyVersion));
        if (!k->versions)
                return -ENOMEM;
        k->versions[0] = (KeyVersion){.id = vid, .status = VERSION_STATUS_PRIMARY};
        k->versions[0].data = secret_new_copy(data, size);
        k->n_versions = 1;
        if (!k->versions[0].data)
                return -ENOMEM;
        *ret = TAKE_PTR(k);
        return 0;
}

int agent_get_key(const char *id, bool all_versions, Key **ret, char **ret_why) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *why;
        char *s;
        int r;

        r = agent_bus_connect(&bus, false);
        if (r < 0) {
                if (asprintf(&s, "cannot connect to the system bus: %s", strerror(-r)) < 0)
                        return -ENOMEM;
                *ret_why = s;
                return r;
        }
        (void) sd_bus_set_method_call_timeout(bus, AGENT_GET_TIMEOUT_USEC);
        if (all_versions)
                r = call_get_key_versions(bus, id, ret, &error);
        else
                r = call_get_key(bus, id, ret, &error);
        if (r >= 0)
                return 0;
        if (r == -ENOMEM)
                return r;

        why = error.message ?: strerror(-r);
        if (agent_absent(&error))
                r = asprintf(&s, "keyward-agent is not running (%s)", why);
        else if (error.name && strneq(error.name, AGENT_ERROR_PREFIX, STRLEN(AGENT_ERROR_PREFIX)))
                r = asprintf(&s, "%s (%s)", why, error.name + STRLEN(AGENT_ERROR_PREFIX));
        else
                r = asprintf(&s, "%s", why);
        if (r < 0)
                return -ENOMEM;
        *ret_why = s;
        return sd_bus_error_get_errno(&error) > 0 ? -sd_bus_error_get_errno(&error) : -EIO;
}

static int read_ids_file(const char *path, char ***ids) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        r = read_full_file(path, REGISTER_FILE_MAX, &text, &size);
        if (r < 0)
                return r;
        return registry_id_list_parse(text, size, ids);
}

/* "[a b c]", as Go prints a []string. */
static char *ids_list(char **ids) {
        _cleanup_buf_ Buf b = BUF_INIT;

        (void) buf_putc(&b, '[');
        STRV_FOREACH(id, ids)
                (void) buf_printf(&b, "%s%s", id == ids ? "" : " ", *id);
        (void) buf_putc(&b, ']');
        return buf_steal(&b, NULL);
}

static int register_get(sd_bus *bus, const char *id, uint64_t timeout_usec, const char *timeout) {
        _cleanup_(sd_bus_error_free) sd_bus_error last = SD_BUS_ERROR_NULL;
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        int r;

        for (;;) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_(key_freep) Key *k = NULL;
                r = call_get_key_versions(bus, id, &k, &error);
                if (r >= 0)
                        return print_key_json(k, false);
                if (agent_absent(&error) || sd_bus_error_has_name(&error, AGENT_ERROR_ACCESS_DENIED) ||
                    sd_bus_error_has_name(&error, SD_BUS_ERROR_ACCESS_DENIED))
                        return agent_fail_bus("Error getting key from agent", r, &error);

                sd_bus_error_free(&last);
                (void) sd_bus_error_copy(&last, &error);
                if (now_usec(CLOCK_MONOTONIC) - start >= timeout_usec)
                        return fail(
                                "Error getting key from agent (hit timeout after %s); check keyward-agent's log "
                                "for details (most recent error: %s)",
                                timeout, last.message ?: strerror(-r));
                (void) usleep(50 * 1000);
        }
}

/* Why the agent would refuse unit as a unit name (its own test decides), or NULL. */
static const char *unit_name_problem(const char *unit) {
        size_t n = strlen(unit);

        if (registry_unit_is_valid(unit))
                return NULL;
        if (n == 0)
                return "the unit name is empty";
        if (n > REGISTRY_NAME_MAX)
                return "a unit name has at most 255 characters";
        if (unit[0] == '.' || unit[0] == '-')
                return "a unit name does not start with '.' or '-'";
        for (const char *p = unit; *p; p++)
                if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') &&
                    !strchr(":-_.\\@", *p))
                        return "a unit name has only letters, digits and the characters :-_.\\@";
        return "a unit name ends in .service, .socket, .target, .timer, .path, .mount, .scope or .slice";
}

int verb_register(int argc, char **argv) {
        enum {
                ARG_READER = _ARG_COMMON_MAX,
                ARG_UNIT,
                ARG_CREDENTIAL,
                ARG_ON_CHANGE,
                ARG_FILE,
                ARG_FILE_OWNER,
                ARG_FILE_GROUP,
                ARG_FILE_MODE,
        };
        static const struct option options[] = {
                {"reader", required_argument, NULL, ARG_READER},
                {"unit", required_argument, NULL, ARG_UNIT},
                {"credential", required_argument, NULL, ARG_CREDENTIAL},
                {"on-change", required_argument, NULL, ARG_ON_CHANGE},
                {"file", required_argument, NULL, ARG_FILE},
                {"file-owner", required_argument, NULL, ARG_FILE_OWNER},
                {"file-group", required_argument, NULL, ARG_FILE_GROUP},
                {"file-mode", required_argument, NULL, ARG_FILE_MODE},
                COMMON_OPTIONS,
        };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_strv_free_ char **ids = NULL, **readers = NULL, **units = NULL;
        _cleanup_free_ char *list = NULL;
        RegisterOptions o = {};
        const char *file = NULL, *timeout = "5s";
        bool replace = false, get = false;
        uint64_t timeout_usec;
        int opt, r;

        while ((opt = getopt_long_only(argc, argv, ":rk:f:gt:", options, NULL)) >= 0)
                switch (opt) {
                case 'r':
                        replace = true;
                        break;
                case 'k':
                        if (!strv_contains(ids, optarg) && strv_extend(&ids, optarg) < 0)
                                return fail("Out of memory.");
                        break;
                case 'f':
                        file = optarg;
                        break;
                case 'g':
                        get = true;
                        break;
                case 't':
                        timeout = optarg;
                        break;
                case ARG_READER:
                        if (!(strneq(optarg, "user:", 5) && optarg[5]) &&
                            !(strneq(optarg, "group:", 6) && optarg[6]))
                                return usage_error(
                                        "Invalid --reader '%s': use user:NAME or group:NAME.", optarg);
                        if (strv_extend(&readers, optarg) < 0)
                                return fail("Out of memory.");
                        break;
                case ARG_UNIT: {
                        const char *why = unit_name_problem(optarg);

                        if (why)
                                return usage_error("Invalid --unit '%s': %s.", optarg, why);
                        if (strv_extend(&units, optarg) < 0)
                                return fail("Out of memory.");
                        break;
                }
                case ARG_CREDENTIAL:
                        o.credential = optarg;
                        break;
                case ARG_ON_CHANGE:
                        if (!streq(optarg, "none") && !streq(optarg, "restart") &&
                            !streq(optarg, "reload-or-restart") && !streq(optarg, "reload"))
                                return usage_error(
                                        "Invalid --on-change '%s': use none, restart, reload-or-restart or reload.",
                                        optarg);
                        o.on_change = optarg;
                        break;
                case ARG_FILE:
                        if (!registry_file_path_is_valid(optarg))
                                return usage_error(
                                        "Invalid --file '%s': an absolute path without '.', '..' or '//' is needed.",
                                        optarg);
                        o.file = optarg;
                        break;
                case ARG_FILE_OWNER:
                case ARG_FILE_GROUP:
                        if (!registry_account_is_valid(optarg))
                                return usage_error(
                                        "Invalid --file-%s '%s'.", opt == ARG_FILE_OWNER ? "owner" : "group",
                                        optarg);
                        if (opt == ARG_FILE_OWNER)
                                o.file_owner = optarg;
                        else
                                o.file_group = optarg;
                        break;
                case ARG_FILE_MODE:
                        if (parse_file_mode(optarg, &o.file_mode) < 0 ||
                            !registry_file_mode_is_valid(o.file_mode))
                                return usage_error(
                                        "Invalid --file-mode '%s': an octal mode giving others nothing, with no execute or special bit (at most 0660).",
                                        optarg);
                        break;
                        COMMON_DEFAULT(opt, argv, "register");
                }
        for (int i = optind; i < argc; i++)
                if (!strv_contains(ids, argv[i]) && strv_extend(&ids, argv[i]) < 0)
                        return fail("Out of memory.");
        if (parse_sec(timeout, &timeout_usec) < 0)
                return usage_error("Invalid value for timeout flag: '%s'", timeout);
        if (file) {
                r = read_ids_file(file, &ids);
                if (r < 0)
                        return fail("There was an error reading input key file %s: %s", file, strerror(-r));
        }
        if (!replace && strv_length(ids) == 0)
                return usage_error(
                        "You must include a key or key file to register. see 'keyward help register'");
        if (get && strv_length(ids) != 1)
                return usage_error("-g takes exactly one key identifier. See 'keyward help register'");
        if ((o.file_owner || o.file_group || o.file_mode) && !o.file)
                return usage_error("--file-owner, --file-group and --file-mode need --file.");
        if (o.file && (strv_length(ids) != 1 || replace))
                return usage_error(
                        "--file takes exactly one key identifier (and no -r): a file is for one key.");
        o.readers = readers;
        o.units = units;

        r = agent_bus_connect(&bus, true);
        if (r < 0)
                return agent_fail_bus_open(r);

        if (replace) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                AgentKey *keys = NULL;
                size_t n = 0;

                r = agent_call_list_keys(bus, &keys, &n, &error);
                if (r < 0)
                        return agent_fail_bus("There was an error listing the registered keys", r, &error);
                for (size_t i = 0; i < n; i++) {
                        if (strv_contains(ids, keys[i].id))
                                continue;
                        r = call_unregister(bus, keys[i].id, &error);
                        if (r < 0) {
                                r = agent_fail_bus("Failed to unregister all keys", r, &error);
                                agent_keys_free(keys, n);
                                return r;
                        }
                }
                agent_keys_free(keys, n);
                if (strv_length(ids) == 0) {
                        note("Successfully unregistered all keys.");
                        return EXIT_OK;
                }
        }

        list = ids_list(ids);
        if (!list)
                return fail("Out of memory.");
        /* In batches (an agent older than RegisterMany: one by one). */
        bool many = strv_length(ids) > 1;
        for (size_t done = 0, n = strv_length(ids); done < n;) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                size_t batch = MIN(n - done, (size_t) REGISTER_BATCH);

                r = many ? call_register_many(bus, ids + done, batch, &o, &error) : -EOPNOTSUPP;
                if (r == -EOPNOTSUPP) {
                        sd_bus_error_free(&error);
                        many = false;
                        batch = 1;
                        r = call_register(bus, ids[done], &o, &error);
                }
                done += batch;
                if (r < 0) {
                        _cleanup_free_ char *what = NULL;

                        if (asprintf(&what, "There was an error registering keys %s", list) < 0)
                                return fail("Out of memory.");
                        return agent_fail_bus(what, r, &error);
                }
        }

        if (get)
                return register_get(bus, ids[0], timeout_usec, timeout);
        note("Successfully registered keys %s. The agent keeps them up to date; see 'keyward status'.",
             list);
        return EXIT_OK;
}

int verb_unregister(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        PARSE_PLAIN(argc, argv, "unregister");
        if (argc - optind != 1)
                return usage_error("You must include a key ID to deregister. See 'keyward help unregister'");

        r = agent_bus_connect(&bus, true);
        if (r < 0)
                return agent_fail_bus_open(r);
        r = call_unregister(bus, argv[optind], &error);
        if (r < 0)
                return agent_fail_bus("Error removing the key", r, &error);
        printf("Unregistered key successfully\n");
        return EXIT_OK;
}

int verb_sync(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        PARSE_PLAIN(argc, argv, "sync");
        if (optind < argc)
                return usage_error("sync takes no arguments. See 'keyward help sync'");

        r = agent_bus_connect(&bus, true);
        if (r < 0)
                return agent_fail_bus_open(r);
        r = sd_bus_call_method(
                bus, AGENT_BUS_NAME, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, "Sync", &error, NULL, NULL);
        if (r < 0)
                return agent_fail_bus("Error syncing", r, &error);
        printf("Synced successfully\n");
        return EXIT_OK;
}
