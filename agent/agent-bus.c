/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-bus-internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-login.h>

#include "agent-caller.h"
#include "agent-pam.h"
#include "agent-peers.h"
#include "agent-polkit.h"
#include "agent-read.h"
#include "agent-register.h"
#include "agent-sync.h"
#include "agent-units.h"
#include "agent-metrics.h"
#include "log.h"
#include "strv.h"

/* Security events in the journal (MESSAGE_ID=). */
#define MESSAGE_ID_REFUSED "c3d9a1e7f25b4e08b6a4d2c1e9f07b35"

/* Refusals are logged on behalf of callers, who can make as many as they like: the first
 * few in each interval, then one line that counts the rest. */
#define REFUSAL_LOG_INTERVAL_USEC (60 * USEC_PER_SEC)
#define REFUSAL_LOG_BURST 10

int get_caller(Agent *a, sd_bus_message *m, Caller **ret, sd_bus_error *error) {
        return caller_from_message(&a->bus->callers, m, ret, error);
}

/* Say how many refusals went unlogged, if any. */
static void refusals_flush(AgentBus *b) {
        unsigned n = log_ratelimit_take(&b->refusals);

        if (n > 0)
                log_security(
                        LOG_NOTICE, MESSAGE_ID_REFUSED, "Refused calls to read keys: %u more suppressed.",
                        n);
}

static int on_refusal_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        refusals_flush(userdata);
        return 0;
}

static void log_refusal(Agent *a, const Caller *c, const char *what, const char *id) {
        AgentBus *b = a->bus;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (!log_ratelimit_below(&b->refusals, now)) {
                /* The count is told once this interval is over. */
                uint64_t until = b->refusals.begin_usec + b->refusals.interval_usec;

                if (!b->refusal_timer)
                        (void) sd_event_add_time(
                                a->event, &b->refusal_timer, CLOCK_MONOTONIC, until, USEC_PER_SEC,
                                on_refusal_timer, b);
                else {
                        (void) sd_event_source_set_time(b->refusal_timer, until);
                        (void) sd_event_source_set_enabled(b->refusal_timer, SD_EVENT_ONESHOT);
                }
                return;
        }
        refusals_flush(b);
        log_security(
                LOG_NOTICE, MESSAGE_ID_REFUSED,
                "Refused %s of key '%s' to uid %u pid %u unit %s: not a reader.", what, LOG_NAME(id),
                (unsigned) c->uid, (unsigned) c->pid, LOG_NAME(c->unit));
}

/* The one answer to a caller that is neither root nor a reader, whether or not the key is
 * registered: which keys this host holds is not theirs to learn. */
static int refuse(Agent *a, const Caller *c, const char *what, const char *id, sd_bus_error *error) {
        a->counters.bus_denied_read++;
        agent_metrics_changed(a);
        log_refusal(a, c, what, id);
        return sd_bus_error_setf(
                error, AGENT_ERROR_ACCESS_DENIED, "uid %u may not read key '%s' on this host.",
                (unsigned) c->uid, id);
}

static int unavailable_error(const char *id, const KeyUnavailable *u, sd_bus_error *error) {
        switch (u->state) {
        case KEY_STATE_MISSING:
                return sd_bus_error_setf(
                        error, AGENT_ERROR_NO_SUCH_KEY, "Key '%s' does not exist on the server.", id);
        case KEY_STATE_DENIED:
                return sd_bus_error_setf(
                        error, AGENT_ERROR_UNAVAILABLE,
                        "The server does not let this machine read key '%s' (%s), and no copy is cached.",
                        id, strna(u->error));
        case KEY_STATE_FAILED:
                return sd_bus_error_setf(
                        error, AGENT_ERROR_UNAVAILABLE, "Key '%s' is not cached: %s", id, strna(u->error));
        case KEY_STATE_NEW:
        case KEY_STATE_OK:
        case _KEY_STATE_MAX:
        case _KEY_STATE_INVALID:
                break;
        }
        return sd_bus_error_setf(
                error, AGENT_ERROR_UNAVAILABLE, "Key '%s' is not cached yet%s", id,
                u->connected ? "." : ": no keyward server answers.");
}

/* Key id for c, through the agent's one read path, or the D-Bus error that says why not. */
static int
load_key(Agent *a, Caller *c, const char *what, const char *id, const Key **ret, sd_bus_error *error) {
        _cleanup_(key_unavailable_done) KeyUnavailable u = {};
        int r;

        r = agent_key_read(a, c, id, ret, NULL, &u);
        switch (r) {
        case -EACCES:
                return refuse(a, c, what, id, error);
        case -ENOKEY:
                return sd_bus_error_setf(
                        error, AGENT_ERROR_NOT_REGISTERED, "Key '%s' is not registered on this host.", id);
        case -ENOENT:
                return unavailable_error(id, &u, error);
        case -EBADMSG:
                return sd_bus_error_setf(
                        error, AGENT_ERROR_UNAVAILABLE,
                        "The cached copy of key '%s' is damaged; it is being fetched again.", id);
        case -EAGAIN:
                return sd_bus_error_setf(
                        error, AGENT_ERROR_UNAVAILABLE, "Key '%s' is being replaced; ask again.", id);
        }
        return r;
}

/* A call that reads a key: its name (for the logs), the id argument, the caller, the key as
 * the agent's one read path gave it, and the reply. */
typedef struct KeyCall {
        const char *what;
        const char *id;
        Caller *caller;
        const Key *key;
        sd_bus_message *reply;
} KeyCall;

static void key_call_done(KeyCall *kc) {
        kc->reply = sd_bus_message_unref(kc->reply);
}

/* The start of it: the id read, the caller found, the key read for the caller, an empty reply
 * marked sensitive. */
static int key_call_begin(Agent *a, sd_bus_message *m, KeyCall *kc, sd_bus_error *error) {
        int r;

        r = sd_bus_message_read(m, "s", &kc->id);
        if (r < 0)
                return r;
        r = get_caller(a, m, &kc->caller, error);
        if (r < 0)
                return r;
        r = load_key(a, kc->caller, kc->what, kc->id, &kc->key, error);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(m, &kc->reply);
        if (r < 0)
                return r;
        return sd_bus_message_sensitive(kc->reply);
}

/* The end of it: the reply sent, the delivery of version version_id logged. */
static int key_call_finish(KeyCall *kc, uint64_t version_id) {
        int r;

        r = sd_bus_send(NULL, kc->reply, NULL);
        if (r < 0)
                return r;
        agent_log_delivery(kc->caller, kc->id, version_id, kc->what, NULL, 0);
        return 1;
}

static int method_get_key(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(key_call_done) KeyCall kc = {.what = "GetKey"};
        const KeyVersion *p;
        int r;

        r = key_call_begin(userdata, m, &kc, error);
        if (r < 0)
                return r;
        p = key_primary_version(kc.key);
        if (!p || !p->data)
                return sd_bus_error_setf(
                        error, AGENT_ERROR_UNAVAILABLE, "Key '%s' has no primary version.", kc.id);
        r = sd_bus_message_append_array(kc.reply, 'y', p->data->data, p->data->size);
        if (r < 0)
                return r;
        r = sd_bus_message_append(kc.reply, "t", p->id);
        if (r < 0)
                return r;
        return key_call_finish(&kc, p->id);
}

static int method_get_key_versions(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(key_call_done) KeyCall kc = {.what = "GetKeyVersions"};
        sd_bus_message *reply;
        const KeyVersion *p;
        int r;

        r = key_call_begin(userdata, m, &kc, error);
        if (r < 0)
                return r;
        reply = kc.reply;
        r = sd_bus_message_open_container(reply, 'a', "(tays)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < kc.key->n_versions; i++) {
                const KeyVersion *v = &kc.key->versions[i];

                r = sd_bus_message_open_container(reply, 'r', "tays");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "t", v->id);
                if (r >= 0)
                        r = sd_bus_message_append_array(
                                reply, 'y', v->data ? v->data->data : NULL, v->data ? v->data->size : 0);
                if (r >= 0)
                        r = sd_bus_message_append(reply, "s", version_status_to_string(v->status));
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "s", kc.key->hash);
        if (r < 0)
                return r;
        p = key_primary_version(kc.key);
        return key_call_finish(&kc, p ? p->id : 0);
}

/* Appends one key's entry to a listing (type: the entry's D-Bus signature). With a.lock held. */
typedef int (*ListAppend)(sd_bus_message *reply, const char *type, const AgentKey *k);

typedef struct Listing {
        sd_bus_message *reply;
        const char *type;
        ListAppend append;
        const Caller *c;
} Listing;

static int listing_add(const AgentKey *k, void *userdata) {
        Listing *l = userdata;

        if (!agent_key_may_read(k, l->c->uid, l->c->groups, l->c->n_groups))
                return 0;
        return l->append(l->reply, l->type, k);
}

/* A reply listing the keys the caller may read, one entry of type each: the one walk of the
 * table that ListKeys and ListKeyStates share. */
static int
list_readable_keys(Agent *a, sd_bus_message *m, sd_bus_error *error, const char *type, ListAppend append) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Caller *c;
        int r;

        r = get_caller(a, m, &c, error);
        if (r < 0)
                return r;
        if (!agent_uid_is_privileged(c->uid)) {
                r = caller_groups(c);
                if (r < 0)
                        return r;
        }

        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', type);
        if (r < 0)
                return r;
        r = agent_keys_foreach(
                a, listing_add, &(Listing){.reply = reply, .type = type, .append = append, .c = c});
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int list_keys_append(sd_bus_message *reply, const char *type, const AgentKey *k) {
        char hash[KEY_HASH_HEX_SIZE];

        return sd_bus_message_append(
                reply, type, k->reg.id, cache_info_hash(&k->cache, hash),
                k->cache.valid ? k->cache.primary : UINT64_C(0));
}

static int method_list_keys(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return list_readable_keys(userdata, m, error, "(sst)", list_keys_append);
}

/* Run handler for m: at once for root (as systemd's services do), otherwise when polkit
 * says the caller may use org.keyward.agent.manage (agent-polkit.c). */
static int authorize_manage(Agent *a, sd_bus_message *m, AuthorizedHandler handler, sd_bus_error *error) {
        Caller *c;
        int r;

        r = get_caller(a, m, &c, error);
        if (r < 0)
                return r;
        if (agent_uid_is_privileged(c->uid))
                return handler(m, a, error);
        return agent_polkit_check(a, a->bus->bus, &a->bus->queries, m, handler);
}

/* ---- Register, Unregister (agent-bus-register.c), Sync -------------------------------- */

static int do_sync(sd_bus_message *m, Agent *a, sd_bus_error *error) {
        AgentBus *b = a->bus;
        PendingSync *n;
        uint64_t target;

        n = reallocarray(b->syncs, b->n_syncs + 1, sizeof(PendingSync));
        if (!n)
                return -ENOMEM;
        b->syncs = n;

        target = agent_request_sync(a);

        b->syncs[b->n_syncs++] = (PendingSync){sd_bus_message_ref(m), target};
        return 1; /* answered by agent_bus_sync_finished() */
}

static int method_register(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return authorize_manage(userdata, m, do_register, error);
}

static int method_register_many(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return authorize_manage(userdata, m, do_register_many, error);
}

static int method_unregister(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return authorize_manage(userdata, m, do_unregister, error);
}

static int method_sync(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return authorize_manage(userdata, m, do_sync, error);
}

static int method_get_user_token(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(secret_freep) Secret *token = NULL;
        _cleanup_free_ char *session = NULL, *user = NULL;
        Agent *a = userdata;
        Caller *c;
        int r;

        r = get_caller(a, m, &c, error);
        if (r < 0)
                return r;
        /* Tokens come from PAM logins (pam_keyward): the caller's own, of its logind session
         * when it has one and a token is bound to it. */
        if (c->pid <= 0 || sd_pid_get_session(c->pid, &session) < 0)
                session = NULL;
        r = agent_user_token(a, c->uid, session, &token, &user);
        if (r == -ENOKEY)
                return sd_bus_error_setf(
                        error, AGENT_ERROR_UNAVAILABLE,
                        "No user token is held for uid %u: log in through pam_keyward, or use KEYWARD_TOKEN.",
                        (unsigned) c->uid);
        if (r < 0)
                return r;
        log_info(
                "User token of '%s' handed to uid %u (pid %d, unit %s).", LOG_NAME(user), (unsigned) c->uid,
                (int) c->pid, LOG_NAME(c->unit));
        return sd_bus_reply_method_return(m, "s", (const char *) token->data);
}

static int list_key_states_append(sd_bus_message *reply, const char *type, const AgentKey *k) {
        return sd_bus_message_append(
                reply, type, k->reg.id, strna(key_state_to_string(k->state)), strempty(k->error),
                k->held ? strerror(k->disk_error < 0 ? -k->disk_error : EIO) : "");
}

static int method_list_key_states(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return list_readable_keys(userdata, m, error, "(ssss)", list_key_states_append);
}

/* clang-format off */
static const sd_bus_vtable agent_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Servers", "as", property_servers, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Connected", "b", property_connected, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastSync", "t", property_sync_status, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("KeyCount", "u", property_key_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Version", "s", property_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ServerCA", "s", property_server_ca, 0, 0),
        SD_BUS_PROPERTY("LastError", "s", property_sync_status, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("GetKey",
                SD_BUS_ARGS("s", id), SD_BUS_RESULT("ay", data, "t", version),
                method_get_key, SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("GetKeyVersions",
                SD_BUS_ARGS("s", id), SD_BUS_RESULT("a(tays)", versions, "s", hash),
                method_get_key_versions, SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("ListKeys",
                SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sst)", keys),
                method_list_keys, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListKeyStates",
                SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssss)", keys),
                method_list_key_states, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Register",
                SD_BUS_ARGS("s", id, "a{sv}", options), SD_BUS_NO_RESULT,
                method_register, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RegisterMany",
                SD_BUS_ARGS("a(sa{sv})", keys), SD_BUS_NO_RESULT,
                method_register_many, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Unregister",
                SD_BUS_ARGS("s", id), SD_BUS_NO_RESULT,
                method_unregister, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Sync",
                SD_BUS_NO_ARGS, SD_BUS_NO_RESULT,
                method_sync, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetUserToken",
                SD_BUS_NO_ARGS, SD_BUS_RESULT("s", token),
                method_get_user_token, SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_SIGNAL_WITH_ARGS("KeyChanged", SD_BUS_ARGS("s", id, "s", hash), 0),
        SD_BUS_VTABLE_END,
};
/* clang-format on */

/* ---- from the main loop --------------------------------------------------------------- */

void agent_bus_sync_finished(Agent *a, uint64_t done, int error) {
        AgentBus *b = a->bus;
        size_t kept = 0;

        if (!b)
                return;
        for (size_t i = 0; i < b->n_syncs; i++) {
                PendingSync *p = &b->syncs[i];

                if (p->target > done) {
                        b->syncs[kept++] = *p;
                        continue;
                }
                if (error < 0)
                        (void) sd_bus_reply_method_errorf(
                                p->request, AGENT_ERROR_UNAVAILABLE,
                                "No keyward server could be reached: %s", strerror(-error));
                else
                        (void) sd_bus_reply_method_return(p->request, NULL);
                sd_bus_message_unref(p->request);
        }
        b->n_syncs = kept;
}

int agent_bus_open(Agent *a) {
        AgentBus *b;
        int r;

        assert_return(a && !a->bus, -EINVAL);

        b = calloc(1, sizeof(AgentBus));
        if (!b)
                return -ENOMEM;
        b->refusals = LOG_RATELIMIT_INIT(REFUSAL_LOG_INTERVAL_USEC, REFUSAL_LOG_BURST);
        a->bus = b;

        /* The system bus, or the one DBUS_SYSTEM_BUS_ADDRESS names. */
        r = sd_bus_open_system(&b->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        r = sd_bus_add_object_vtable(
                b->bus, &b->object_slot, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, agent_vtable, a);
        if (r < 0)
                return log_error_errno(r, "Failed to publish %s: %m", AGENT_BUS_PATH);
        /* Without its bus the agent is of no use: exit, and let systemd start it again. */
        r = sd_bus_set_exit_on_disconnect(b->bus, true);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the bus connection: %m");
        r = sd_bus_attach_event(b->bus, a->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        r = agent_peers_start(&b->peers, b->bus);
        if (r < 0)
                return r;
        r = sd_bus_request_name(b->bus, AGENT_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to take the bus name %s: %m", AGENT_BUS_NAME);
        return 0;
}

void agent_bus_close(Agent *a) {
        AgentBus *b = a ? a->bus : NULL;

        if (!b)
                return;
        agent_polkit_cancel(&b->queries);
        for (size_t i = 0; i < b->n_syncs; i++) {
                (void) sd_bus_reply_method_errorf(
                        b->syncs[i].request, AGENT_ERROR_UNAVAILABLE, "keyward-agent is shutting down.");
                sd_bus_message_unref(b->syncs[i].request);
        }
        free(b->syncs);
        caller_cache_done(&b->callers);
        agent_peers_done(&b->peers);
        refusals_flush(b);
        sd_event_source_disable_unref(b->refusal_timer);
        sd_event_source_disable_unref(b->last_sync_timer);
        sd_bus_slot_unref(b->object_slot);
        if (b->bus) {
                (void) sd_bus_release_name(b->bus, AGENT_BUS_NAME);
                sd_bus_flush_close_unref(b->bus);
        }
        free(b);
        a->bus = NULL;
}
