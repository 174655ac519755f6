/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The D-Bus service's properties, and the signals the main loop sends: KeyChanged (through
 * agent-peers.c) and PropertiesChanged. */
#include <stdlib.h>
#include <string.h>

#include "agent-bus-internal.h"
#include "agent-read.h"
#include "agent-units.h"
#include "log.h"

/* ---- properties ----------------------------------------------------------------------- */

/* Each getter is BUS_PROPERTY_GETTER(name): sd-bus's property getter, its arguments bus, path,
 * interface, property, reply, userdata and error. */

BUS_PROPERTY_GETTER(property_servers) {
        Agent *a = userdata;

        return sd_bus_message_append_strv(reply, a->config.servers);
}

/* The CA bundle the agent checks servers with, for the CLI; "" for the system's. */
BUS_PROPERTY_GETTER(property_server_ca) {
        Agent *a = userdata;

        return sd_bus_message_append(reply, "s", strempty(a->config.server_ca));
}

BUS_PROPERTY_GETTER(property_connected) {
        Agent *a = userdata;

        return sd_bus_message_append(reply, "b", a->bus->connected);
}

/* The properties the sync threads keep (LastSync, LastError), from one snapshot. */
BUS_PROPERTY_GETTER(property_sync_status) {
        _cleanup_(agent_status_done) AgentStatus st = {};
        Agent *a = userdata;
        int r;

        r = agent_status_snapshot(a, &st);
        if (r < 0)
                return r;
        if (streq(property, "LastSync"))
                return sd_bus_message_append(reply, "t", st.last_sync_usec);
        return sd_bus_message_append(reply, "s", strempty(st.last_error));
}

BUS_PROPERTY_GETTER(property_key_count) {
        Agent *a = userdata;

        return sd_bus_message_append(reply, "u", (uint32_t) a->n_keys);
}

BUS_PROPERTY_GETTER(property_version) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

/* ---- from the main loop --------------------------------------------------------------- */

void agent_bus_key_changed(Agent *a, const char *id, const char *hash, bool rotated) {
        AgentBus *b = a->bus;
        AgentKey *k;

        if (!b)
                return;
        agent_key_read_forget(a, id);
        k = agent_find_key(a, id);
        agent_peers_key_changed(&b->peers, id, hash, k);

        if (rotated && k)
                agent_units_key_rotated(b->bus, &k->reg);
}

static void last_sync_recheck(Agent *a);

/* The sync threads wake the main loop for LastSync at most once a second, so the last
 * exchange of a burst may move LastSync without a wake: a second after each announcement,
 * look again and announce what was held back. Idle once LastSync stops moving. */
static int on_last_sync_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        _cleanup_(agent_status_done) AgentStatus st = {};
        Agent *a = userdata;
        AgentBus *b = a->bus;

        if (!b || agent_status_snapshot(a, &st) < 0 || st.last_sync_usec == b->last_sync_usec)
                return 0;
        b->last_sync_usec = st.last_sync_usec;
        (void) sd_bus_emit_properties_changed(b->bus, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, "LastSync", NULL);
        last_sync_recheck(a);
        return 0;
}

static void last_sync_recheck(Agent *a) {
        AgentBus *b = a->bus;
        int r;

        if (b->last_sync_timer)
                r = sd_event_source_set_time_relative(b->last_sync_timer, USEC_PER_SEC);
        else
                r = sd_event_add_time_relative(
                        a->event, &b->last_sync_timer, CLOCK_MONOTONIC, USEC_PER_SEC, 0, on_last_sync_timer,
                        a);
        if (r >= 0)
                r = sd_event_source_set_enabled(b->last_sync_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_debug_errno(r, "Cannot schedule the next LastSync announcement, ignoring: %m");
}

void agent_bus_status_changed(Agent *a, bool connected, uint64_t last_sync_usec) {
        AgentBus *b = a->bus;
        const char *props[3] = {};
        bool moved;
        size_t n = 0;

        if (!b)
                return;
        moved = b->last_sync_usec != last_sync_usec;
        if (b->connected != connected)
                props[n++] = "Connected";
        if (moved)
                props[n++] = "LastSync";
        b->connected = connected;
        b->last_sync_usec = last_sync_usec;
        if (n > 0)
                (void) sd_bus_emit_properties_changed_strv(
                        b->bus, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, (char **) props);
        if (moved)
                last_sync_recheck(a);
}

void agent_bus_properties_changed(Agent *a, const char *property) {
        if (a->bus)
                (void) sd_bus_emit_properties_changed(
                        a->bus->bus, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, property, NULL);
}
