/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Register, RegisterMany and Unregister over D-Bus: the options decoded into a
 * Registration, agent-register.c called, its refusals encoded as D-Bus errors. */
#include <stdlib.h>
#include <string.h>

#include "agent-bus-internal.h"
#include "agent-read.h"
#include "agent-register.h"
#include "log.h"
#include "strv.h"

static int read_option_strv(sd_bus_message *m, const char *name, char ***ret, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(m, 'v', "as");
        if (r < 0)
                return sd_bus_error_setf(
                        error, SD_BUS_ERROR_INVALID_ARGS, "Option '%s' must be an array of strings (as).",
                        name);
        strv_free(*ret);
        *ret = NULL;
        r = sd_bus_message_read_strv(m, ret);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int read_option_string(sd_bus_message *m, const char *name, char **ret, sd_bus_error *error) {
        const char *s;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "s");
        if (r < 0)
                return sd_bus_error_setf(
                        error, SD_BUS_ERROR_INVALID_ARGS, "Option '%s' must be a string (s).", name);
        r = sd_bus_message_read(m, "s", &s);
        if (r < 0)
                return r;
        free(*ret);
        *ret = strdup(s);
        if (!*ret)
                return -ENOMEM;
        return sd_bus_message_exit_container(m);
}

static int read_option_mode(sd_bus_message *m, const char *name, unsigned *ret, sd_bus_error *error) {
        uint32_t u;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "u");
        if (r < 0)
                return sd_bus_error_setf(
                        error, SD_BUS_ERROR_INVALID_ARGS, "Option '%s' must be an unsigned integer (u).",
                        name);
        r = sd_bus_message_read(m, "u", &u);
        if (r < 0)
                return r;
        if (u > 07777)
                return sd_bus_error_setf(
                        error, SD_BUS_ERROR_INVALID_ARGS, "Option '%s' is not a file mode.", name);
        *ret = u;
        return sd_bus_message_exit_container(m);
}

/* Read one registration, "s a{sv}", at m's position, and check it: 0, or an error set. */
static int
read_registration(sd_bus_message *m, Registration *reg, bool *ret_on_change_set, sd_bus_error *error) {
        _cleanup_free_ char *on_change = NULL;
        const char *id, *msg = NULL;
        int r;

        r = sd_bus_message_read(m, "s", &id);
        if (r < 0)
                return r;
        reg->id = strdup(id);
        if (!reg->id)
                return -ENOMEM;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *name;

                r = sd_bus_message_enter_container(m, 'e', "sv");
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return r;
                if (streq(name, "readers"))
                        r = read_option_strv(m, name, &reg->readers, error);
                else if (streq(name, "units"))
                        r = read_option_strv(m, name, &reg->units, error);
                else if (streq(name, "credential"))
                        r = read_option_string(m, name, &reg->credential, error);
                else if (streq(name, "on_change"))
                        r = read_option_string(m, name, &on_change, error);
                else if (streq(name, "file"))
                        r = read_option_string(m, name, &reg->file, error);
                else if (streq(name, "file_owner"))
                        r = read_option_string(m, name, &reg->file_owner, error);
                else if (streq(name, "file_group"))
                        r = read_option_string(m, name, &reg->file_group, error);
                else if (streq(name, "file_mode"))
                        r = read_option_mode(m, name, &reg->file_mode, error);
                else
                        return sd_bus_error_setf(
                                error, SD_BUS_ERROR_INVALID_ARGS, "Unknown option '%s'.", name);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        reg->on_change = on_change ? on_change_from_string(on_change) : ON_CHANGE_NONE;
        if (registration_validate(reg, &msg) < 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, msg);
        *ret_on_change_set = !!on_change;
        return 0;
}

/* The answer to a refused registration (many: the error names the key). */
static int register_error(int r, const RegisterFailure *f, bool many, sd_bus_error *error) {
        if (f->save)
                return sd_bus_error_set_errnof(error, r, "Failed to save the registry: %m");
        if (r == -EINVAL && f->message)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, f->message);
        switch (r) {
        case -E2BIG:
                if (!many)
                        return sd_bus_error_set(
                                error, SD_BUS_ERROR_INVALID_ARGS, "Too many readers or units.");
                return sd_bus_error_setf(
                        error, SD_BUS_ERROR_INVALID_ARGS, "Too many readers or units for key '%s'.",
                        f->name);
        case -ESRCH:
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown reader '%s'.", f->name);
        case -ENOBUFS:
                return sd_bus_error_set(
                        error, SD_BUS_ERROR_LIMITS_EXCEEDED, "Too many keys are registered.");
        case -ENOTUNIQ:
                return sd_bus_error_setf(
                        error, SD_BUS_ERROR_INVALID_ARGS, "Key '%s' is listed twice.", f->name);
        }
        return r;
}

/* The caller of m, and m rewound to its first argument: the handler may run straight away or
 * later, on polkit's answer (agent-polkit.c). */
static int caller_and_rewind(Agent *a, sd_bus_message *m, Caller **ret, sd_bus_error *error) {
        int r;

        r = get_caller(a, m, ret, error);
        if (r < 0)
                return r;
        return sd_bus_message_rewind(m, true);
}

/* Register(s id, a{sv} options) and RegisterMany(a(sa{sv}) keys): each registration read
 * and added to one batch, applied all or none, with the registry written once. */
static int register_keys(sd_bus_message *m, Agent *a, bool many, sd_bus_error *error) {
        _cleanup_(register_batch_done) RegisterBatch batch = {};
        _cleanup_(register_failure_done) RegisterFailure f = {};
        Caller *c;
        int r;

        r = caller_and_rewind(a, m, &c, error);
        if (r < 0)
                return r;
        if (many) {
                r = sd_bus_message_enter_container(m, 'a', "(sa{sv})");
                if (r < 0)
                        return r;
        }
        for (;;) {
                _cleanup_(registration_donep) Registration reg = {};
                bool on_change_set = false;

                if (many) {
                        r = sd_bus_message_enter_container(m, 'r', "sa{sv}");
                        if (r < 0)
                                return r;
                        if (r == 0)
                                break;
                }
                r = read_registration(m, &reg, &on_change_set, error);
                if (r < 0)
                        return r;
                if (many) {
                        r = sd_bus_message_exit_container(m);
                        if (r < 0)
                                return r;
                }
                r = register_batch_add(a, &batch, &reg, on_change_set, &f);
                if (r < 0)
                        return register_error(r, &f, many, error);
                if (!many)
                        break;
        }
        if (many) {
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }

        r = register_batch_apply(a, &batch, c->uid, &f);
        if (r < 0)
                return register_error(r, &f, many, error);
        if (r > 0)
                agent_bus_properties_changed(a, "KeyCount");
        return sd_bus_reply_method_return(m, NULL);
}

int do_register(sd_bus_message *m, Agent *a, sd_bus_error *error) {
        return register_keys(m, a, false, error);
}

int do_register_many(sd_bus_message *m, Agent *a, sd_bus_error *error) {
        return register_keys(m, a, true, error);
}

int do_unregister(sd_bus_message *m, Agent *a, sd_bus_error *error) {
        _cleanup_(register_failure_done) RegisterFailure f = {};
        _cleanup_(agent_key_freep) AgentKey *k = NULL;
        const char *id;
        Caller *c;
        int r;

        r = caller_and_rewind(a, m, &c, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "s", &id);
        if (r < 0)
                return r;
        r = agent_unregister(a, id, c->uid, &k, &f);
        if (r == -ENOKEY)
                return sd_bus_error_setf(
                        error, AGENT_ERROR_NOT_REGISTERED, "Key '%s' is not registered on this host.", id);
        if (r < 0)
                return register_error(r, &f, false, error);

        /* To its readers as they were (k is out of the table now). */
        agent_key_read_forget(a, id);
        agent_peers_key_changed(&a->bus->peers, id, "", k);
        agent_bus_properties_changed(a, "KeyCount");
        return sd_bus_reply_method_return(m, NULL);
}
