/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The D-Bus service: org.keyward.Agent1 at /org/keyward/Agent1 on the system bus (or the bus
 * DBUS_SYSTEM_BUS_ADDRESS names), exactly as dbus/org.keyward.Agent1.xml describes it; the
 * names are in keyward-bus.h, which the CLI shares. */

#include "agent.h"
#include "keyward-bus.h"

/* Connect, publish the object and take the name (the cache must be loaded by then). */
int agent_bus_open(Agent *a);
void agent_bus_close(Agent *a);

/* Main thread, after the sync threads reported. */
void agent_bus_key_changed(Agent *a, const char *id, const char *hash, bool rotated);
/* Announce the sync status (Connected, LastSync) when it changed. */
void agent_bus_status_changed(Agent *a, bool connected, uint64_t last_sync_usec);
/* Servers or KeyCount changed. */
void agent_bus_properties_changed(Agent *a, const char *property);
/* Answer the Sync() calls that a finished full comparison covers. */
void agent_bus_sync_finished(Agent *a, uint64_t done, int error);
