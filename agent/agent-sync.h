/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Keeping the cache in step with keywardd, on two threads with a KnoxClient each (mutual TLS
 * with the machine certificate, "0t<hostname>"):
 *
 *  - the watcher holds a watch (GET /v0/keys/?id=hash... with Prefer: wait=N) over every
 *    key it can compare (as many as --max-request-size lets one request name), and
 *    fetches what the server reports changed at once, on the same connection;
 *  - the worker fetches keys that need it (new registrations, corrupt files, Sync(),
 *    retries after a back-off), runs the periodic full comparison (which also re-reads and
 *    checks every cache file), and polls the keys the watch in flight does not cover:
 *    every 250 ms those that joined after the watcher sent its request (until its next
 *    request covers them), every second those beyond the size limit (raise keywardd's
 *    --max-header-size and the agent's --max-request-size to watch them all).
 *
 * A key the server does not have, or will not give to this machine, stays registered, and
 * its cached copy is still served; it is retried with exponential back-off and jitter, as
 * are servers that do not answer (the client fails over between --server URLs). Nothing
 * is ever removed from the cache because a server is away. While credential requests wait
 * for keys (Agent.credential_waiting), the worker fetches again at least once a second.
 *
 * A key whose cache file cannot be written (a full disk, a key over CACHE_FILE_MAX) is
 * served from memory (AgentKey.held) as the server has it, never from the older file; the
 * write is retried with the same back-off. A failure to reach or use the servers is logged
 * once per kind (again when it changes, or after an hour) and kept in Agent.last_error. */

#include "agent.h"

int agent_sync_start(Agent *a);
/* Ask both threads to stop, and wait up to timeout for them: 0 when both ended, -ETIMEDOUT
 * when one is still inside a request (it is left running, and the caller must not free a
 * then). */
int agent_sync_stop(Agent *a, uint64_t timeout_usec);
