/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-polkit.h"

#include <stdlib.h>

#include "agent-bus.h"
#include "agent-metrics.h"
#include "list.h"
#include "log.h"

struct PolkitQuery {
        Agent *agent;
        sd_bus_message *request;
        sd_bus_slot *slot;
        AuthorizedHandler handler;
        PolkitQuery **head;
        LIST_FIELDS(PolkitQuery, queries);
};

static PolkitQuery *polkit_query_free(PolkitQuery *q) {
        if (!q)
                return NULL;
        LIST_REMOVE(queries, *q->head, q);
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->request);
        free(q);
        return NULL;
}

/* Answer request from what handler did: it replied itself, or left an error. */
static void finish(sd_bus_message *request, int r, sd_bus_error *error) {
        if (sd_bus_error_is_set(error))
                (void) sd_bus_reply_method_error(request, error);
        else if (r < 0)
                (void) sd_bus_reply_method_errno(request, r, NULL);
}

static int polkit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        PolkitQuery *q = userdata;
        Agent *a = q->agent;
        int authorized = 0, challenge = 0, r;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);

                a->counters.bus_denied_manage++;
                agent_metrics_changed(a);
                log_notice(
                        "polkit cannot be asked (%s), so only root may manage the agent.",
                        e && e->name ? e->name : "error");
                (void) sd_bus_reply_method_errorf(
                        q->request, AGENT_ERROR_ACCESS_DENIED,
                        "Only root may do this here: polkit is not available.");
                goto done;
        }
        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r < 0) {
                (void) sd_bus_reply_method_errorf(
                        q->request, AGENT_ERROR_ACCESS_DENIED, "polkit gave an answer that cannot be read.");
                goto done;
        }
        if (!authorized) {
                a->counters.bus_denied_manage++;
                agent_metrics_changed(a);
                if (challenge)
                        (void) sd_bus_reply_method_errorf(
                                q->request, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                "Authentication is required to manage keyward-agent.");
                else
                        (void) sd_bus_reply_method_errorf(
                                q->request, AGENT_ERROR_ACCESS_DENIED,
                                "Not authorized to manage keyward-agent.");
                goto done;
        }
        r = q->handler(q->request, a, &error);
        finish(q->request, r, &error);
done:
        polkit_query_free(q);
        return 0;
}

int agent_polkit_check(
        Agent *a, sd_bus *bus, PolkitQuery **queries, sd_bus_message *m, AuthorizedHandler handler) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        PolkitQuery *q;
        int r;

        r = sd_bus_message_new_method_call(
                bus, &call, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
                "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(
                call, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s", sd_bus_message_get_sender(m),
                AGENT_POLKIT_ACTION, 0,
                (uint32_t) (sd_bus_message_get_allow_interactive_authorization(m) > 0 ? 1 : 0), "");
        if (r < 0)
                return r;

        q = calloc(1, sizeof(PolkitQuery));
        if (!q)
                return -ENOMEM;
        q->agent = a;
        q->request = sd_bus_message_ref(m);
        q->handler = handler;
        q->head = queries;
        LIST_PREPEND(queries, *queries, q);
        /* Interactive authentication may take a while. */
        r = sd_bus_call_async(bus, &q->slot, call, polkit_reply, q, 120 * USEC_PER_SEC);
        if (r < 0) {
                polkit_query_free(q);
                return r;
        }
        return 1;
}

void agent_polkit_cancel(PolkitQuery **queries) {
        while (*queries)
                polkit_query_free(*queries);
}
