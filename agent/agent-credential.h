/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The credential socket, <runtime-dir>/credential.sock (0600), for systemd's LoadCredential=.
 * systemd connects from an abstract address "\0<random>/unit/<unit>/<credential>"; the agent
 * checks that the peer is root and that its process belongs to that unit (sd_pid_get_unit()),
 * finds the key registered for that unit under that credential name (Register's "credential"
 * option, else the key's id), writes its primary version (or, for a name ending in ".json",
 * the key's versions in Knox's JSON) and closes. A refusal is
 * logged with the unit and the reason and closes without a byte: the socket has no way to say
 * no, so systemd starts the unit with an empty credential (keyward-agent.8 says how a unit
 * refuses to start then). A request for a registered key that has no copy yet (a unit
 * started at boot before the first fetch) waits up to --credential-wait for one, without
 * blocking anything else: at most 128 wait at once, apart from the replies. The socket comes
 * from systemd (keyward-agent.socket) when the agent is socket-activated. At most 16 replies
 * are written at once, each within 10 seconds; further connections wait in the backlog. */

typedef struct Agent Agent;

int agent_credential_open(Agent *a);
/* Forget the copies of credentials whose key changed or went away. Main thread. */
void agent_credential_trim(Agent *a);
/* Requests waiting for a key: deliver those whose key arrived, refuse those whose key the
 * server refused or that were unregistered. Main thread, after the sync threads reported. */
void agent_credential_wake(Agent *a);
void agent_credential_close(Agent *a);
