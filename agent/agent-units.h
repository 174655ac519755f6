/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Units that use a key, acted on when it rotates (Register's "on_change": "restart" asks
 * systemd to RestartUnit, "reload-or-restart" to ReloadOrRestartUnit, "reload" to ReloadUnit,
 * each unit in "units"). */

#include <systemd/sd-bus.h>

#include "agent-registry.h"

/* The key that reg registers has a new primary version: ask systemd, over bus, to act on
 * its units. Asynchronous; the outcome is logged. */
void agent_units_key_rotated(sd_bus *bus, const Registration *reg);
