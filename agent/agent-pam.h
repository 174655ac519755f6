/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The PAM socket (<runtime-dir>/pam.sock, 0600, root only) and the user tokens it brings in.
 * pam_keyward logs a person in through it (the agent asks keywardd, on a thread of its own),
 * binds the token to the uid and logind session at session start and releases it at the
 * end (the agent then revokes it). Tokens live in memory only, in Secrets, until their
 * expiry, their session's end or the agent's. Wire format: lib/basic/pam-wire.h. */

#include <stdbool.h>
#include <sys/types.h>

#include "secret.h"

typedef struct Agent Agent;
typedef struct AgentPam AgentPam;

int agent_pam_open(Agent *a);
/* Close the socket and wait (a.cancel set: within about a second) for logins in flight.
 * Returns false when one is stuck past that: it still uses the agent, which must then not be
 * torn down. */
bool agent_pam_close(Agent *a);

/* The token held for uid: the one bound to session when there is one, else the newest of
 * the uid's. -ENOKEY when there is none. Main thread. */
int agent_user_token(Agent *a, uid_t uid, const char *session, Secret **ret_token, char **ret_user);
