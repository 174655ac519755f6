/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one read path for a key: every reader (D-Bus GetKey and GetKeyVersions, the credential
 * socket) calls agent_key_read(), which checks the caller against the key's readers, serves
 * the copy held in memory when the key's file could not be written, else the cache file as
 * the agent last wrote it (its checksum is the agent's record of it, or the one of the file a
 * sync thread is writing now), looks again while a sync thread replaces the file, and keeps
 * the keys read lately parsed. Main thread only; it takes a.lock only to look. */

#include "agent-caller.h"
#include "agent.h"

/* Security events in the journal (MESSAGE_ID=): a key handed out, and the credential
 * socket's deliveries and refusals. */
#define MESSAGE_ID_DELIVERY "5b8e2f0c41d34a7a9f6c3e1d2b7a8c90"
#define MESSAGE_ID_CREDENTIAL "8d2f6b1a09c44e7d95e3a7c0b4d1f268"

/* Why a registered key has no copy to serve (agent_key_read() returned -ENOENT). */
typedef struct KeyUnavailable {
        KeyState state;
        bool connected; /* a keyward server answers */
        char *error;    /* why the last fetch failed, or NULL */
} KeyUnavailable;

void key_unavailable_done(KeyUnavailable *u);

/* Open the cache directory for the reads (agent_key_read() looks at a file's inode before
 * it reads it again). */
int agent_read_open(Agent *a);
void agent_read_close(Agent *a);

/* Key id as c may have it: 0 with the key (it belongs to the agent and lives until the next
 * call of agent_key_read() or agent_key_read_forget()) and, if ret_sha256 is not NULL, the
 * checksum of the cache content it came from. Otherwise:
 *   -EACCES   c may not read it (or it is not registered, and c is not privileged: which keys
 *             this host holds is not everybody's to learn)
 *   -ENOKEY   it is not registered (c is privileged)
 *   -ENOENT   it has no copy yet; *ret_unavailable (if not NULL) says why
 *   -EBADMSG  its cache file is damaged: it stops being served and is fetched again
 *   -EAGAIN   its file was replaced at each of several looks
 *   -ENOMEM */
int agent_key_read(
        Agent *a,
        Caller *c,
        const char *id,
        const Key **ret_key,
        uint8_t ret_sha256[CACHE_SHA256_SIZE],
        KeyUnavailable *ret_unavailable);

/* Drop what the read path keeps parsed of key id (it changed or went away). */
void agent_key_read_forget(Agent *a, const char *id);

/* The one delivery log line: version of key id went to c, through D-Bus method (a method's
 * name) or, with method NULL, as c->unit's credential (its name); r < 0: it could not be
 * written, for that reason. */
void agent_log_delivery(
        const Caller *c,
        const char *id,
        uint64_t version,
        const char *method,
        const char *credential,
        int r);
