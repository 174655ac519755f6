/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Managing the agent (Register, RegisterMany, Unregister, Sync) as someone other than root:
 * polkit's CheckAuthorization for org.keyward.agent.manage, asked without blocking. No polkit
 * on the bus: denied. */

#include <systemd/sd-bus.h>

#include "agent.h"

/* Does what m asks, once authorized; replies itself or leaves an error in error. */
typedef int (*AuthorizedHandler)(sd_bus_message *m, Agent *a, sd_bus_error *error);

typedef struct PolkitQuery PolkitQuery;

/* Ask polkit over bus whether m's sender may manage the agent, and run handler for m when it
 * says yes (answering m with the refusal otherwise). The query waits in queries. 1 (m is
 * answered later), or a negative errno. */
int agent_polkit_check(
        Agent *a, sd_bus *bus, PolkitQuery **queries, sd_bus_message *m, AuthorizedHandler handler);
/* Drop the queries still waiting (their callers get no answer from us: the agent stops). */
void agent_polkit_cancel(PolkitQuery **queries);
