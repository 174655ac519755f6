/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Registering and unregistering keys on this host: the registry file first (written once
 * per batch), then the key table. D-Bus Register, RegisterMany and Unregister decode their
 * arguments and call these. Main thread. */

#include "agent.h"

/* What a refusal names, for the caller's answer. */
typedef struct RegisterFailure {
        char *name; /* the key, or the reader, that the failure is about */
        bool save;  /* the registry file could not be written (the errno says why) */
        /* -EINVAL: why the registration is refused, for the caller */
        char *message;
} RegisterFailure;

void register_failure_done(RegisterFailure *f);

/* What a batch changes, built in full before anything is applied: all or none. */
typedef struct RegisterBatch {
        AgentKey **fresh; /* new keys, sorted by id once applied */
        size_t n_fresh, n_fresh_alloc;
        AgentKey **updated; /* merged registrations of registered keys */
        size_t n_updated, n_updated_alloc;
} RegisterBatch;

void register_batch_done(RegisterBatch *b);

/* Add reg to the batch: a new key (then the contents of *reg are taken), or what it changes
 * in a registered one (nothing added when it changes nothing). The readers are resolved through NSS here. 0,
 * or: -E2BIG    too many readers or units for the key (f->name: the key) -ESRCH    a reader is no user or
 * group (f->name: the reader) -ENOBUFS  the host would have more than REGISTRY_KEYS_MAX keys
 * -EINVAL   its file is refused (agent-files.c; f->message says why) */
int register_batch_add(
        Agent *a, RegisterBatch *b, Registration *reg, bool on_change_set, RegisterFailure *f);

/* Write the registry and update the table, on behalf of uid by: the number of new keys, or
 * -ENOTUNIQ (a key listed twice, f->name), or a failure to save (f->save set). */
int register_batch_apply(Agent *a, RegisterBatch *b, uid_t by, RegisterFailure *f);

/* Unregister key id on behalf of uid by and remove its cache file: the key as it was in
 * *ret, or -ENOKEY, or a failure to save (f->save set). */
int agent_unregister(Agent *a, const char *id, uid_t by, AgentKey **ret, RegisterFailure *f);
