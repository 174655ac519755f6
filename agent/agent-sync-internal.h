/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the sync threads' files share (agent-sync.c: the worker, start and stop;
 * agent-sync-watch.c: the watchers; agent-sync-fetch.c: fetches and polls;
 * agent-sync-request.c: the lists of ids a request names). Not for other files. */

#include <pthread.h>

#include "agent.h"
#include "knox-client.h"

struct AgentSync {
        pthread_t worker;
        pthread_t watchers[AGENT_WATCHES_MAX];
        unsigned n_watchers; /* started; watcher 0 starts the others as the keys need them */
        bool worker_started;
        pthread_mutex_t done_lock;
        pthread_cond_t done_cond;
        unsigned running;
};

/* A list of ids and their cached hashes, copied out of the table. The strings go into
 * blocks that never move, the pointers into arrays that double: a snapshot of ten thousand
 * keys is a handful of allocations, not twenty thousand small ones left to interleave with
 * the table's long-lived entries in the (locked, so never trimmed mid-heap) heap. */
typedef struct SnapshotBlock {
        struct SnapshotBlock *next;
        size_t used, size;
        char data[];
} SnapshotBlock;

typedef struct Snapshot {
        char **ids;
        char **hashes;
        size_t n, n_alloc;
        size_t size; /* of the query string these make */
        SnapshotBlock *blocks;
} Snapshot;

/* The split of a key list into requests of at most max bytes and max_keys ids each, in
 * order: chunk_place() says which request the next key goes into. */
typedef struct Chunker {
        size_t index, n, size;
} Chunker;

/* ---- agent-sync-request.c ---- */
size_t entry_size(const char *id, const char *hash);
void snapshot_done(Snapshot *s);
int snapshot_add(Snapshot *s, const char *id, const char *hash);
size_t chunk_place(Chunker *c, const char *id, const char *hash, size_t max, size_t max_keys);
bool snapshot_fits(const Snapshot *s, const char *id, const char *hash, size_t max, size_t max_keys);

/* ---- agent-sync.c: waiting on a.cond, which keys a watch can follow, threads ---- */
static inline void lock(Agent *a) {
        pthread_mutex_lock(&a->lock);
}

static inline void unlock(Agent *a) {
        pthread_mutex_unlock(&a->lock);
}

/* Wait on a.cond (held) until deadline (CLOCK_MONOTONIC usec, UINT64_MAX: no deadline). */
void wait_until(Agent *a, uint64_t deadline);
/* Sleep (a.lock held) until deadline unless stopped; other wake-ups are ignored. */
void sleep_until(Agent *a, uint64_t deadline);
bool in_backoff(const AgentKey *k, uint64_t now);
/* A key the watch can follow (see agent-sync.c). */
bool watchable(const AgentKey *k, uint64_t now);
int start_thread(AgentSync *s, Agent *a, pthread_t *ret, void *(*fn)(void *), const char *name);

/* ---- agent-sync-fetch.c ---- */
/* Build the thread's client when there is none or the config changed (a.lock held). */
int ensure_client(Agent *a, KnoxClient **c, uint64_t *client_gen);
/* Fetch each of ids; when no server answers, stop, and leave the rest to the worker. */
int fetch_list(Agent *a, KnoxClient *c, char *const *ids);
/* Ask which of s changed (a.lock held, dropped during the request). */
int changed_keys(Agent *a, KnoxClient *c, const Snapshot *s, unsigned wait_sec, char ***ret);
/* Which keys a poll asks about. */
typedef bool (*KeyFilter)(const AgentKey *k, uint64_t now, bool forced);
/* Ask about every key filter() picks, in requests of at most request_max each, and fetch
 * what changed after each (see agent-sync-fetch.c). */
int poll_changed(Agent *a, KnoxClient *c, KeyFilter filter, bool forced);

/* ---- agent-sync-watch.c ---- */
/* Which watcher this thread is (0: the first, which also starts the others). */
extern _Thread_local unsigned watcher_index;
void *watcher_main(void *userdata);
