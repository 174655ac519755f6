/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent-commit.h"
#include "agent-servers.h"
#include "knox-client.h"
#include "log.h"
#include "strv.h"

#define DELTA_POLL_USEC (250 * USEC_PER_MSEC)
/* While credential requests wait for keys (units starting), keys are fetched again at least
 * this often, whatever the back-off: the wait is bounded, the units' start is not to miss a
 * server that came back. */
#define WAITING_RETRY_USEC (1 * USEC_PER_SEC)
#define OVERFLOW_POLL_USEC (1 * USEC_PER_SEC)
#define SYNC_THREAD_STACK (512 * 1024)

struct AgentSync {
        pthread_t worker;
        pthread_t watchers[AGENT_WATCHES_MAX];
        unsigned n_watchers; /* started; watcher 0 starts the others as the keys need them */
        bool worker_started;
        pthread_mutex_t done_lock;
        pthread_cond_t done_cond;
        unsigned running;
};

/* Lazy cache writes are made durable at the latest after this many. */
#define UNSYNCED_MAX 512

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

#define SNAPSHOT_BLOCK_MIN (4 * 1024)
#define SNAPSHOT_BLOCK_MAX (256 * 1024)

/* The length "id=hash&" takes in a query string (ids are [A-Za-z0-9_:], ':' is escaped). */
static size_t entry_size(const char *id, const char *hash) {
        size_t n = strlen(id) + strlen(hash) + 2;

        for (const char *p = id; *p; p++)
                if (*p == ':')
                        n += 2;
        return n;
}

static void snapshot_done(Snapshot *s) {
        while (s->blocks) {
                SnapshotBlock *b = s->blocks;

                s->blocks = b->next;
                free(b);
        }
        free(s->ids);
        free(s->hashes);
        *s = (Snapshot){};
}

static char *snapshot_copy(Snapshot *s, const char *str) {
        size_t n = strlen(str) + 1;
        SnapshotBlock *b = s->blocks;
        char *p;

        if (!b || b->size - b->used < n) {
                size_t size = MAX(n, b ? MIN(b->size * 2, (size_t) SNAPSHOT_BLOCK_MAX) : SNAPSHOT_BLOCK_MIN);

                b = malloc(offsetof(SnapshotBlock, data) + size);
                if (!b)
                        return NULL;
                *b = (SnapshotBlock){.next = s->blocks, .size = size};
                s->blocks = b;
        }
        p = memcpy(b->data + b->used, str, n);
        b->used += n;
        return p;
}

static int snapshot_add(Snapshot *s, const char *id, const char *hash) {
        char *i, *h;

        if (s->n == s->n_alloc) {
                size_t m = MAX(s->n_alloc * 2, (size_t) 64);
                char **ids, **hashes;

                ids = reallocarray(s->ids, m, sizeof(char *));
                if (!ids)
                        return -ENOMEM;
                s->ids = ids;
                hashes = reallocarray(s->hashes, m, sizeof(char *));
                if (!hashes)
                        return -ENOMEM;
                s->hashes = hashes;
                s->n_alloc = m;
        }
        i = snapshot_copy(s, id);
        h = i ? snapshot_copy(s, hash) : NULL;
        if (!h)
                return -ENOMEM;
        s->ids[s->n] = i;
        s->hashes[s->n] = h;
        s->n++;
        s->size += entry_size(id, hash);
        return 0;
}

/* The split of a key list into requests of at most max bytes and max_keys ids each, in
 * order: chunk_place() says which request the next key goes into. */
typedef struct Chunker {
        size_t index, n, size;
} Chunker;

static size_t chunk_place(Chunker *c, const char *id, const char *hash, size_t max, size_t max_keys) {
        size_t e = entry_size(id, hash);

        if (c->n > 0 && (c->n >= max_keys || c->size + e > max))
                *c = (Chunker){.index = c->index + 1};
        c->n++;
        c->size += e;
        return c->index;
}

/* Whether id can join s without passing max bytes or max_keys ids. */
static bool snapshot_fits(const Snapshot *s, const char *id, const char *hash, size_t max, size_t max_keys) {
        return s->n == 0 || (s->n < max_keys && s->size + entry_size(id, hash) <= max);
}

static void lock(Agent *a) {
        pthread_mutex_lock(&a->lock);
}

static void unlock(Agent *a) {
        pthread_mutex_unlock(&a->lock);
}

/* Wait on a.cond (held) until deadline (CLOCK_MONOTONIC usec, UINT64_MAX: no deadline). */
static void wait_until(Agent *a, uint64_t deadline) {
        struct timespec ts;

        if (a->stop)
                return;
        if (deadline == UINT64_MAX) {
                pthread_cond_wait(&a->cond, &a->lock);
                return;
        }
        ts.tv_sec = (time_t) (deadline / USEC_PER_SEC);
        ts.tv_nsec = (long) (deadline % USEC_PER_SEC * NSEC_PER_USEC);
        (void) pthread_cond_timedwait(&a->cond, &a->lock, &ts);
}

/* Sleep (a.lock held) until deadline unless stopped; other wake-ups are ignored. */
static void sleep_until(Agent *a, uint64_t deadline) {
        while (!a->stop && now_usec(CLOCK_MONOTONIC) < deadline)
                wait_until(a, deadline);
}

static bool in_backoff(const AgentKey *k, uint64_t now) {
        return k->retry_usec > now;
}

/* A key the watch can follow: one with a cached hash, or one the server does not have yet
 * (asked with an empty hash: the server names it once it exists), unless it is backing off
 * after a failed fetch (the server would name it at once, again and again). */
static bool watchable(const AgentKey *k, uint64_t now) {
        return (k->cache.valid || k->state == KEY_STATE_MISSING) && !in_backoff(k, now);
}

/* Build the thread's client when there is none or the config changed (a.lock held). */
static int ensure_client(Agent *a, KnoxClient **c, uint64_t *client_gen) {
        _cleanup_free_ char *auth = NULL;
        KnoxClient *n = NULL;
        int r;

        if (*c && *client_gen == a->config_gen)
                return 0;
        if (asprintf(&auth, "0t%s", a->config.hostname) < 0) {
                auth = NULL;
                return -ENOMEM;
        }
        KnoxClientConfig cc = {
                .servers = a->config.servers,
                .ca_file = a->config.server_ca,
                .cert_file = a->config.cert,
                .key_file = a->config.key,
                .authorization = auth,
                .connect_timeout_usec = a->config.connect_timeout_usec,
                .timeout_usec = a->config.request_timeout_usec,
                .user_agent = "keyward-agent/" PACKAGE_VERSION,
                .cancel = &a->cancel,
        };
        r = knox_client_new(&cc, &n);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the keyward client: %m");
        knox_client_free(*c);
        *c = n;
        *client_gen = a->config_gen;
        return 0;
}

static bool transport_error(int r) {
        return r < 0 && r != -ENOMEM && r != -EBADMSG && r != -E2BIG;
}

/* Fetch one key and store it (a.lock held on entry and exit). Returns a negative errno when
 * the server could not be reached, so that the caller stops for now; 0 otherwise (the
 * key's state says how it went). */
static int fetch_one(Agent *a, KnoxClient *c, const char *id_arg) {
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(key_freep) Key *key = NULL;
        _cleanup_free_ char *id = NULL;
        const char *why = NULL;
        KeyState state = KEY_STATE_FAILED;
        AgentKey *k;
        uint64_t seq;
        int r;

        k = agent_find_key(a, id_arg);
        if (!k)
                return 0;
        id = strdup(id_arg); /* id_arg may go with the table entry while unlocked */
        if (!id)
                return -ENOMEM;
        seq = ++a->fetch_seq;
        unlock(a);

        r = knox_client_get_key(c, id, VERSION_STATUS_ACTIVE, &key, &err);
        if (transport_error(r)) {
                /* No server answered: nothing is wrong with the key. The caller backs off
                 * and fetches it again later. */
                lock(a);
                k = agent_find_key(a, id);
                if (k)
                        k->need_fetch = true;
                sync_server_failed(a, c, r, &err);
                return r;
        }
        if (r >= 0 && err.code == KNOX_OK) {
                if (!streq(key->id, id) || !key_primary_version(key)) {
                        why = "the server answered with another key or one without a primary version";
                        r = -EBADMSG;
                } else {
                        r = sync_commit(a, key, seq);
                        if (r == -E2BIG)
                                why = "the key is larger than the agent can hold";
                        else if (r < 0)
                                why = "the key could not be stored";
                }
        } else if (r >= 0) {
                why = err.message;
                state = err.code == KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST ? KEY_STATE_MISSING :
                        err.code == KNOX_UNAUTHENTICATED || err.code == KNOX_UNAUTHORIZED ?
                                                                         KEY_STATE_DENIED :
                                                                         KEY_STATE_FAILED;
                r = -EPROTO;
        } else
                why = err.message;

        if (r == -EPROTO && err.code == KNOX_UNAUTHENTICATED) {
                /* The server refuses this machine itself (an expired or unknown certificate):
                 * nothing is wrong with the key, and no key will come. */
                lock(a);
                k = agent_find_key(a, id);
                if (k)
                        k->need_fetch = true;
                sync_server_failed(a, c, 0, &err);
                return -EACCES;
        }

        /* A server answered, whatever it said. */
        lock(a);
        sync_set_connected(a, true, c, NULL);
        if (r >= 0)
                return 0;
        k = agent_find_key(a, id);
        if (k && k->committed_seq <= seq)
                sync_key_failed(a, k, state, why ?: strerror(-r));
        return 0;
}

/* Make the lazy cache writes durable (a.lock held, dropped meanwhile). */
static void sync_cache_writes(Agent *a) {
        int r;

        if (a->cache_unsynced == 0)
                return;
        a->cache_unsynced = 0;
        unlock(a);
        r = cache_sync(a->cache_dir);
        if (r >= 0) {
                /* The record vouches for the files now on disk. */
                pthread_mutex_lock(&a->commit_lock);
                agent_seen_save(a);
                pthread_mutex_unlock(&a->commit_lock);
        }
        lock(a);
        if (r < 0)
                log_warning_errno(r, "Cannot flush the cache directory to disk, ignoring: %m");
}

static void sync_cache_writesp(Agent **a) {
        sync_cache_writes(*a);
}

/* Fetch each of ids; when no server answers, stop, and leave the rest to the worker. */
static int fetch_list(Agent *a, KnoxClient *c, char *const *ids) {
        _unused_ _cleanup_(sync_cache_writesp) Agent *flush = a;

        STRV_FOREACH(id, ids) {
                int r;

                if (a->cache_unsynced >= UNSYNCED_MAX)
                        sync_cache_writes(a);
                if (a->stop)
                        return -ECANCELED;
                r = fetch_one(a, c, *id);
                if (r < 0) {
                        for (char *const *rest = id + 1; *rest; rest++) {
                                AgentKey *k = agent_find_key(a, *rest);
                                if (k)
                                        k->need_fetch = true;
                        }
                        pthread_cond_broadcast(&a->cond);
                        return r;
                }
        }
        return 0;
}

/* Ask which of s changed (a.lock held, dropped during the request). */
static int changed_keys(Agent *a, KnoxClient *c, const Snapshot *s, unsigned wait_sec, char ***ret) {
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        char **changed = NULL;
        int r;

        unlock(a);
        r = knox_client_changed_keys(c, s->ids, s->hashes, s->n, wait_sec, &changed, &err);
        lock(a);
        if (r >= 0 && err.code != KNOX_OK && err.http_status == 400)
                /* The request itself is wrong (a limit the agent does not know of): no retry
                 * helps soon, so it is an error, logged each time (the back-off spaces them). */
                log_error(
                        "keywardd refused a sync request: HTTP status 400, Knox code %d: %s (%zu keys named); trying again with back-off.",
                        (int) err.code, strna(err.message), s->n);
        if (r >= 0 && err.code != KNOX_OK) {
                sync_server_failed(a, c, r, &err);
                return -EPROTO;
        }
        if (r < 0) {
                sync_server_failed(a, c, r, &err);
                return r;
        }
        sync_set_connected(a, true, c, NULL);
        *ret = changed;
        return 0;
}

/* Which keys a poll asks about. */
typedef bool (*KeyFilter)(const AgentKey *k, uint64_t now, bool forced);

/* Ask about every key filter() picks, without waiting (only the watcher waits), in requests
 * of at most request_max each, and fetch what changed after each. One request's list is
 * built at a time, from where the last one ended in the table's id order, so that memory
 * stays that of one request however many keys there are. a.lock held (dropped during the
 * requests). A fetch that fails leaves its keys marked and ends the poll with its error. */
static int poll_changed(Agent *a, KnoxClient *c, KeyFilter filter, bool forced) {
        _cleanup_free_ char *cursor = NULL; /* the last id asked about */

        for (;;) {
                _cleanup_(snapshot_done) Snapshot s = {};
                _cleanup_strv_free_ char **changed = NULL;
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                int r = 0;

                if (a->stop)
                        return -ECANCELED;
                for (size_t i = 0; i < a->n_keys && r >= 0; i++) {
                        AgentKey *k = a->keys[i];
                        char buf[KEY_HASH_HEX_SIZE];
                        const char *hash;

                        if ((cursor && strcmp(k->reg.id, cursor) <= 0) || !filter(k, now, forced))
                                continue;
                        hash = cache_info_hash(&k->cache, buf);
                        if (!snapshot_fits(
                                    &s, k->reg.id, hash, a->config.request_max, a->config.request_keys))
                                break; /* the next request goes on from here */
                        r = snapshot_add(&s, k->reg.id, hash);
                }
                if (r < 0)
                        return log_oom();
                if (s.n == 0)
                        return 0;
                free(cursor);
                cursor = strdup(s.ids[s.n - 1]);
                if (!cursor)
                        return log_oom();

                r = changed_keys(a, c, &s, 0, &changed);
                if (r < 0)
                        return r;
                r = fetch_list(a, c, changed);
                if (r < 0)
                        return r;
        }
}

/* ---- the watcher ---------------------------------------------------------------------- */

/* Ask a server who this machine is (a.lock held, dropped during the request). */
static int probe(Agent *a, KnoxClient *c) {
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_free_ char *json = NULL;
        int r;

        unlock(a);
        r = knox_client_whoami(c, &json, &err);
        lock(a);
        if (r == -ECANCELED)
                return r;
        if (r < 0 || err.code != KNOX_OK) {
                sync_server_failed(a, c, r, &err);
                return r < 0 ? r : -EPROTO;
        }
        log_debug("The server knows this machine as %s", json);
        sync_set_connected(a, true, c, NULL);
        return 0;
}

/* Which watcher this thread is (0: the first, which also starts the others). */
static _Thread_local unsigned watcher_index;

static int start_thread(AgentSync *s, Agent *a, pthread_t *ret, void *(*fn)(void *), const char *name);
static void *watcher_main(void *userdata);

/* Start watchers until there are want (a.lock held). */
static void start_watchers(Agent *a, size_t want) {
        AgentSync *s = a->sync;

        want = MIN(want, (size_t) AGENT_WATCHES_MAX);
        while (!a->stop && s->n_watchers < want) {
                if (start_thread(s, a, &s->watchers[s->n_watchers], watcher_main, "kw-watch") < 0)
                        return;
                log_debug("Watch %u started: more keys than one request may name.", s->n_watchers);
                s->n_watchers++;
        }
}

static void *watcher_main(void *userdata) {
        Agent *a = userdata;
        _cleanup_(knox_client_freep) KnoxClient *c = NULL;
        uint64_t client_gen = 0, probed_gen = UINT64_MAX;
        unsigned failures = 0, me = watcher_index;

        lock(a);
        while (!a->stop) {
                _cleanup_(snapshot_done) Snapshot s = {};
                _cleanup_strv_free_ char **changed = NULL;
                uint64_t now = now_usec(CLOCK_MONOTONIC), gen;
                unsigned wait_sec;
                int r;

                if (ensure_client(a, &c, &client_gen) < 0) {
                        sleep_until(a, now + backoff_usec(++failures, a->config.retry_max_usec));
                        continue;
                }

                /* The watchable keys, in id order, split into requests as large as one may be:
                 * this watcher takes the me-th of them; the worker polls what no watcher
                 * takes (keys past AGENT_WATCHES_MAX requests, keys between two watches). */
                Chunker ch = {};
                size_t n_chunks = 0;
                r = 0;
                for (size_t i = 0; i < a->n_keys && r >= 0; i++) {
                        AgentKey *k = a->keys[i];
                        char buf[KEY_HASH_HEX_SIZE];
                        const char *hash = cache_info_hash(&k->cache, buf);
                        size_t idx;

                        if (k->watcher == me + 1)
                                k->watcher = 0;
                        if (!watchable(k, now)) {
                                if (me == 0)
                                        k->overflow = false;
                                continue;
                        }
                        idx = chunk_place(
                                &ch, k->reg.id, hash, a->config.request_max, a->config.request_keys);
                        n_chunks = idx + 1;
                        if (me == 0)
                                k->overflow = idx >= AGENT_WATCHES_MAX;
                        if (idx != me)
                                continue;
                        k->watcher = (uint8_t) (me + 1);
                        r = snapshot_add(&s, k->reg.id, hash);
                }
                if (r >= 0 && me == 0)
                        start_watchers(a, n_chunks);
                if (r < 0) {
                        log_oom();
                        sleep_until(a, now + USEC_PER_SEC);
                        continue;
                }
                if (s.n == 0) {
                        /* Nothing to watch. Still, a server is asked once who this machine
                         * is, so that a wrong URL, CA or certificate shows at start and not
                         * with the first registration. */
                        if (me == 0 && probed_gen != client_gen) {
                                r = probe(a, c);
                                if (r == -ECANCELED)
                                        continue;
                                if (r < 0) {
                                        sleep_until(
                                                a,
                                                now_usec(CLOCK_MONOTONIC) +
                                                        backoff_usec(++failures, a->config.retry_max_usec));
                                        continue;
                                }
                                failures = 0;
                                probed_gen = client_gen;
                        }
                        /* Then wait for the table to change. */
                        gen = a->gen;
                        while (!a->stop && a->gen == gen && a->config_gen == client_gen)
                                wait_until(a, UINT64_MAX);
                        continue;
                }

                wait_sec = (unsigned) (a->config.watch_wait_usec / USEC_PER_SEC);
                r = changed_keys(a, c, &s, wait_sec, &changed);
                if (r < 0) {
                        if (r == -ENOMEM)
                                log_oom();
                        sleep_until(
                                a,
                                now_usec(CLOCK_MONOTONIC) +
                                        backoff_usec(++failures, a->config.retry_max_usec));
                        continue;
                }
                failures = 0;
                if (strv_length(changed) > 0)
                        log_debug("Watch: %zu key(s) changed.", strv_length(changed));
                r = fetch_list(a, c, changed);
                if (r < 0 && r != -ECANCELED)
                        sleep_until(
                                a,
                                now_usec(CLOCK_MONOTONIC) +
                                        backoff_usec(++failures, a->config.retry_max_usec));
        }
        unlock(a);
        return NULL;
}

/* ---- the worker ----------------------------------------------------------------------- */

/* Re-read every cache file and compare it with what was written (a.lock held). */
static void verify_cache(Agent *a) {
        _cleanup_strv_free_ char **ids = NULL;

        for (size_t i = 0; i < a->n_keys; i++)
                if (a->keys[i]->cache.valid && !a->keys[i]->held &&
                    strv_extend(&ids, a->keys[i]->reg.id) < 0) {
                        log_oom();
                        return;
                }

        STRV_FOREACH(id, ids) {
                const char *reason = NULL;
                CacheInfo info = {};
                AgentKey *k;
                int r;

                if (a->stop)
                        return;
                unlock(a);
                pthread_mutex_lock(&a->commit_lock);
                r = cache_read(a->cache_dir, a->cache_seal, *id, NULL, &info, &reason);
                lock(a);
                k = agent_find_key(a, *id);
                if (k && k->cache.valid && !k->held &&
                    (r < 0 || memcmp(info.sha256, k->cache.sha256, sizeof(info.sha256)) != 0)) {
                        if (r >= 0)
                                reason = "it differs from what the agent wrote";
                        log_security(
                                LOG_ERR, "a1c0f3e2d6b94b7c8e5f2a9d0c4b6e81",
                                "Cache file of key '%s' is corrupt (%s); it is not served and will be fetched again.",
                                *id, reason ?: strerror(-r));
                        k->cache.valid = false;
                        k->need_fetch = true;
                        k->retry_usec = 0;
                        a->gen++;
                        if (r != -ENOENT)
                                (void) cache_remove(a->cache_dir, *id);
                }
                pthread_mutex_unlock(&a->commit_lock);
        }
}

/* List all keys (except those backing off, unless forced) against their cached hashes and
 * fetch what changed. a.lock held. */
static bool full_sync_wants(const AgentKey *k, uint64_t now, bool forced) {
        return forced || !in_backoff(k, now);
}

static int full_sync(Agent *a, KnoxClient *c, bool forced) {
        int r;

        r = poll_changed(a, c, full_sync_wants, forced);
        if (r < 0)
                return r;
        verify_cache(a);
        return 0;
}

/* Keys the watch in flight does not cover. */
static bool unwatched(const AgentKey *k, uint64_t now, bool forced) {
        return k->watcher == 0 && watchable(k, now);
}

static void *worker_main(void *userdata) {
        Agent *a = userdata;
        _cleanup_(knox_client_freep) KnoxClient *c = NULL;
        uint64_t client_gen = 0, next_full = 0, next_delta = 0, fetch_pause = 0, sync_started;
        unsigned failures = 0, full_failures = 0, delta_failures = 0, fetch_failures = 0;

        lock(a);
        sync_started = a->sync_requested;
        while (!a->stop) {
                _cleanup_strv_free_ char **due = NULL;
                uint64_t now = now_usec(CLOCK_MONOTONIC), deadline;
                int r = 0;

                if (ensure_client(a, &c, &client_gen) < 0) {
                        sleep_until(a, now + backoff_usec(++failures, a->config.retry_max_usec));
                        continue;
                }
                failures = 0;

                /* Sync(): everything now, back-off or not. */
                if (a->sync_requested != sync_started) {
                        uint64_t target = a->sync_requested;

                        sync_started = target;
                        fetch_pause = 0;
                        for (size_t i = 0; i < a->n_keys; i++) {
                                if (a->keys[i]->retry_usec > 0)
                                        a->keys[i]->retry_usec = now;
                                if (a->keys[i]->held && a->keys[i]->disk_retry_usec != UINT64_MAX)
                                        a->keys[i]->disk_retry_usec = now;
                        }
                        sync_retry_disk_writes(a, now);
                        r = full_sync(a, c, true);
                        if (r >= 0) {
                                for (size_t i = 0; i < a->n_keys && r >= 0; i++)
                                        if (a->keys[i]->need_fetch || a->keys[i]->state != KEY_STATE_OK) {
                                                a->keys[i]->need_fetch = false;
                                                r = strv_extend(&due, a->keys[i]->reg.id);
                                        }
                                if (r >= 0)
                                        r = fetch_list(a, c, due);
                        }
                        a->sync_done = target;
                        a->sync_error = r < 0 ? r : 0;
                        a->status_dirty = true;
                        agent_wake(a);
                        next_full = now + a->config.full_sync_usec;
                        continue;
                }

                /* Copies held in memory whose next try to reach the disk is due. */
                sync_retry_disk_writes(a, now);

                if (a->credential_waiting && fetch_pause > now + WAITING_RETRY_USEC)
                        fetch_pause = now + WAITING_RETRY_USEC;

                /* Keys that need a fetch, or whose back-off is over; none while no server
                 * answered lately. */
                for (size_t i = 0; i < a->n_keys && r >= 0 && now >= fetch_pause; i++) {
                        AgentKey *k = a->keys[i];

                        if (k->need_fetch || (k->retry_usec > 0 && k->retry_usec <= now)) {
                                k->need_fetch = false;
                                if (k->retry_usec > 0) /* until the fetch says otherwise */
                                        k->retry_usec = now +
                                                backoff_usec(k->failures + 1, a->config.retry_max_usec);
                                r = strv_extend(&due, k->reg.id);
                        }
                }
                if (r < 0) {
                        log_oom();
                        sleep_until(a, now + USEC_PER_SEC);
                        continue;
                }
                if (due) {
                        r = fetch_list(a, c, due);
                        if (r < 0 && r != -ECANCELED)
                                fetch_pause = now +
                                        MIN(backoff_usec(++fetch_failures, a->config.retry_max_usec),
                                            a->credential_waiting ? WAITING_RETRY_USEC : UINT64_MAX);
                        else
                                fetch_failures = 0;
                        continue;
                }

                if (now >= next_full) {
                        r = full_sync(a, c, false);
                        if (r < 0 && r != -ECANCELED) {
                                full_failures++;
                                next_full = now + backoff_usec(full_failures, a->config.retry_max_usec);
                        } else {
                                full_failures = 0;
                                next_full = now + a->config.full_sync_usec;
                        }
                        continue;
                }

                /* Keys the watch in flight does not cover: polled every 250 ms while some are
                 * new (the watcher's next request takes them), every second when all are
                 * beyond what one request may name. */
                bool fresh = false;
                size_t n_delta = 0;
                for (size_t i = 0; i < a->n_keys; i++) {
                        AgentKey *k = a->keys[i];

                        if (k->watcher == 0 && watchable(k, now)) {
                                n_delta++;
                                fresh = fresh || !k->overflow;
                        }
                }
                if (n_delta > 0 && now >= next_delta) {
                        r = poll_changed(a, c, unwatched, false);
                        if (r < 0 && r != -ECANCELED) {
                                delta_failures++;
                                next_delta = now + backoff_usec(delta_failures, a->config.retry_max_usec);
                                continue;
                        }
                        delta_failures = 0;
                        next_delta = now + (fresh ? DELTA_POLL_USEC : OVERFLOW_POLL_USEC);
                        continue;
                }

                deadline = next_full;
                if (n_delta > 0)
                        deadline = MIN(deadline, next_delta);
                for (size_t i = 0; i < a->n_keys; i++) {
                        if (a->keys[i]->retry_usec > now)
                                deadline = MIN(deadline, MAX(a->keys[i]->retry_usec, fetch_pause));
                        if (a->keys[i]->need_fetch)
                                deadline = MIN(deadline, fetch_pause);
                        if (a->keys[i]->held)
                                deadline = MIN(deadline, a->keys[i]->disk_retry_usec);
                }
                wait_until(a, deadline);
        }
        unlock(a);
        return NULL;
}

/* ---- start and stop ------------------------------------------------------------------- */

typedef struct ThreadStart {
        AgentSync *s;
        Agent *a;
        void *(*fn)(void *);
        unsigned watcher_index;
} ThreadStart;

static void *thread_trampoline(void *userdata) {
        ThreadStart t = *(ThreadStart *) userdata;

        free(userdata);
        watcher_index = t.watcher_index;
        (void) t.fn(t.a);
        pthread_mutex_lock(&t.s->done_lock);
        t.s->running--;
        pthread_cond_broadcast(&t.s->done_cond);
        pthread_mutex_unlock(&t.s->done_lock);
        return NULL;
}

static int start_thread(AgentSync *s, Agent *a, pthread_t *ret, void *(*fn)(void *), const char *name) {
        pthread_attr_t attr;
        ThreadStart *t;
        int r;

        t = malloc(sizeof(ThreadStart));
        if (!t)
                return -ENOMEM;
        *t = (ThreadStart){s, a, fn, s->n_watchers};

        pthread_attr_init(&attr);
        /* mlockall() locks every stack page: keep stacks small (curl and OpenSSL need far less). */
        (void) pthread_attr_setstacksize(&attr, SYNC_THREAD_STACK);
        pthread_mutex_lock(&s->done_lock);
        s->running++;
        pthread_mutex_unlock(&s->done_lock);
        r = -pthread_create(ret, &attr, thread_trampoline, t);
        pthread_attr_destroy(&attr);
        if (r < 0) {
                pthread_mutex_lock(&s->done_lock);
                s->running--;
                pthread_mutex_unlock(&s->done_lock);
                free(t);
                return log_error_errno(r, "Failed to start the %s thread: %m", name);
        }
        (void) pthread_setname_np(*ret, name);
        return 0;
}

int agent_sync_start(Agent *a) {
        AgentSync *s;
        pthread_condattr_t ca;
        int r;

        assert_return(a && !a->sync, -EINVAL);

        s = calloc(1, sizeof(AgentSync));
        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->done_lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->done_cond, &ca);
        pthread_condattr_destroy(&ca);
        a->sync = s;

        r = start_thread(s, a, &s->worker, worker_main, "kw-sync");
        if (r < 0)
                return r;
        s->worker_started = true;
        r = start_thread(s, a, &s->watchers[0], watcher_main, "kw-watch");
        if (r < 0)
                return r;
        s->n_watchers = 1;
        return 0;
}

int agent_sync_stop(Agent *a, uint64_t timeout_usec) {
        AgentSync *s = a ? a->sync : NULL;
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        struct timespec ts = {
                .tv_sec = (time_t) (deadline / USEC_PER_SEC),
                .tv_nsec = (long) (deadline % USEC_PER_SEC * NSEC_PER_USEC),
        };
        bool all;

        if (!s)
                return 0;
        lock(a);
        a->stop = true;
        atomic_store(&a->cancel, true); /* a held watch, too, ends within a second */
        pthread_cond_broadcast(&a->cond);
        unlock(a);

        pthread_mutex_lock(&s->done_lock);
        while (s->running > 0)
                if (pthread_cond_timedwait(&s->done_cond, &s->done_lock, &ts) == ETIMEDOUT)
                        break;
        all = s->running == 0;
        pthread_mutex_unlock(&s->done_lock);
        if (!all)
                return -ETIMEDOUT;

        if (s->worker_started)
                pthread_join(s->worker, NULL);
        for (unsigned i = 0; i < s->n_watchers; i++)
                pthread_join(s->watchers[i], NULL);
        pthread_cond_destroy(&s->done_cond);
        pthread_mutex_destroy(&s->done_lock);
        free(s);
        a->sync = NULL;
        return 0;
}
