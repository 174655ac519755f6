/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the CLI's agent commands share (keyward-agent-cmds.c, keyward-status.c). */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

/* The system bus (or $DBUS_SYSTEM_BUS_ADDRESS); interactive: polkit may ask for a password. */
int agent_bus_connect(sd_bus **ret, bool interactive);
/* "<what>: <why>" for a failed bus call, and EXIT_FAIL. */
int agent_fail_bus(const char *what, int r, const sd_bus_error *e);
int agent_fail_bus_open(int r);

/* ListKeys() → a(sst): the registered keys the caller may read, with the hash and primary
 * version id of the cached copy ("" and 0 while nothing is cached). */
typedef struct AgentKey {
        char *id;
        char *hash;
        uint64_t number;
} AgentKey;

void agent_keys_free(AgentKey *keys, size_t n);
int agent_call_list_keys(sd_bus *bus, AgentKey **ret, size_t *ret_n, sd_bus_error *error);
