/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the sync threads do with a fetch's outcome: store a key (its cache file, or the copy
 * held in memory while the disk refuses it, written again with back-off), or record why it
 * failed; the key's state and the main thread's news follow. */

#include "agent.h"

/* Store a fetched key: returns 0 when stored (on disk, or in memory when the disk refuses),
 * or when a newer fetch already was; negative when it cannot even be encoded. Called
 * without a.lock. */
int sync_commit(Agent *a, const Key *key, uint64_t seq);
/* A fetch of k failed (a.lock held): its state, error and back-off. */
void sync_key_failed(Agent *a, AgentKey *k, KeyState state, const char *why);
/* Write the copies held in memory whose retry is due (a.lock held, dropped meanwhile). */
void sync_retry_disk_writes(Agent *a, uint64_t now);
