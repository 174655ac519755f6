/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the sync threads learn of the keyward servers: which answered (ServerState), whether
 * the agent is connected, and why not (LastError, logged once per kind of failure). All
 * with a.lock held; the main thread hears of changes through agent_wake(). */

#include "agent.h"
#include "knox-client.h"

/* An exchange through c went well (connected) or failed for why. */
void sync_set_connected(Agent *a, bool connected, KnoxClient *c, const char *why);
/* A request failed: no server answered, or one refused this machine. */
void sync_server_failed(Agent *a, KnoxClient *c, int r, const KnoxError *err);
