/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the D-Bus service's files share (agent-bus.c: the vtable, the methods, open and
 * close; agent-bus-props.c: properties and signals; agent-bus-register.c: Register,
 * RegisterMany and Unregister). Not for other files. */

#include "agent-bus.h"
#include "agent-caller.h"
#include "agent-peers.h"
#include "agent-polkit.h"
#include "log.h"

typedef struct PendingSync {
        sd_bus_message *request;
        uint64_t target;
} PendingSync;

struct AgentBus {
        sd_bus *bus;
        sd_bus_slot *object_slot;
        CallerCache callers;
        PendingSync *syncs;
        size_t n_syncs;
        PolkitQuery *queries;
        bool connected;
        uint64_t last_sync_usec;
        LogRateLimit refusals;
        sd_event_source *refusal_timer; /* tells the suppressed count when the interval ends */
        AgentPeers peers;               /* who may be sent KeyChanged (agent-peers.c) */
        /* Announces the LastSync that the once-a-second limit held back. */
        sd_event_source *last_sync_timer;
};

/* ---- agent-bus.c ---- */
int get_caller(Agent *a, sd_bus_message *m, Caller **ret, sd_bus_error *error);

/* ---- agent-bus-register.c: AuthorizedHandlers (agent-polkit.h) ---- */
int do_register(sd_bus_message *m, Agent *a, sd_bus_error *error);
int do_register_many(sd_bus_message *m, Agent *a, sd_bus_error *error);
int do_unregister(sd_bus_message *m, Agent *a, sd_bus_error *error);

/* ---- agent-bus-props.c: the vtable's property getters ---- */
#define BUS_PROPERTY_GETTER(name)                                                           \
        int name(                                                                           \
                sd_bus *bus, const char *path, const char *interface, const char *property, \
                sd_bus_message *reply, void *userdata, sd_bus_error *error)
BUS_PROPERTY_GETTER(property_servers);
BUS_PROPERTY_GETTER(property_server_ca);
BUS_PROPERTY_GETTER(property_connected);
BUS_PROPERTY_GETTER(property_sync_status);
BUS_PROPERTY_GETTER(property_key_count);
BUS_PROPERTY_GETTER(property_version);
