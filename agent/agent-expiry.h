/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keyward-agent's warning for cached certificates close to expiry: when a fetched key's
 * primary version is an X.509 certificate (cert-expiry.h) whose notAfter is within
 * AGENT_EXPIRY_WINDOW_SEC, or past, the agent logs a warning naming the key, the version and
 * the date, at most once a day per key version (the agent fetches a key on every change, and
 * at each start). Never any key data. */

#include <stdint.h>

#include "key.h"

#define AGENT_EXPIRY_WINDOW_SEC (30 * 24 * 3600)
#define AGENT_EXPIRY_REPEAT_SEC (24 * 3600)

typedef struct AgentExpiry AgentExpiry;

AgentExpiry *agent_expiry_new(void);
AgentExpiry *agent_expiry_free(AgentExpiry *e);

/* Look at k's primary; now is Unix seconds. Returns 1 when it warned, else 0. Thread-safe. */
int agent_expiry_check(AgentExpiry *e, const Key *k, int64_t now);
