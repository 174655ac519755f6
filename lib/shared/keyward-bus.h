/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keyward-agent's D-Bus API, as dbus/org.keyward.Agent1.xml describes it: the names that the
 * agent publishes and the keyward CLI calls, in one place. */

#define AGENT_BUS_NAME "org.keyward.Agent1"
#define AGENT_BUS_PATH "/org/keyward/Agent1"
#define AGENT_BUS_INTERFACE "org.keyward.Agent1"
#define AGENT_POLKIT_ACTION "org.keyward.agent.manage"

#define AGENT_ERROR_PREFIX "org.keyward.Agent1.Error."
#define AGENT_ERROR_NO_SUCH_KEY AGENT_ERROR_PREFIX "NoSuchKey"
#define AGENT_ERROR_NOT_REGISTERED AGENT_ERROR_PREFIX "NotRegistered"
#define AGENT_ERROR_ACCESS_DENIED AGENT_ERROR_PREFIX "AccessDenied"
#define AGENT_ERROR_UNAVAILABLE AGENT_ERROR_PREFIX "Unavailable"
