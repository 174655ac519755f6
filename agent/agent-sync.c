/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent-commit.h"
#include "agent-servers.h"
#include "agent-sync-internal.h"
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

/* ---- waiting, and what a watch follows ------------------------------------------------ */

/* Wait on a.cond (held) until deadline (CLOCK_MONOTONIC usec, UINT64_MAX: no deadline). */
void wait_until(Agent *a, uint64_t deadline) {
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
void sleep_until(Agent *a, uint64_t deadline) {
        while (!a->stop && now_usec(CLOCK_MONOTONIC) < deadline)
                wait_until(a, deadline);
}

bool in_backoff(const AgentKey *k, uint64_t now) {
        return k->retry_usec > now;
}

/* A key the watch can follow: one with a cached hash, or one the server does not have yet
 * (asked with an empty hash: the server names it once it exists), unless it is backing off
 * after a failed fetch (the server would name it at once, again and again). */
bool watchable(const AgentKey *k, uint64_t now) {
        return (k->cache.valid || k->state == KEY_STATE_MISSING) && !in_backoff(k, now);
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

int start_thread(AgentSync *s, Agent *a, pthread_t *ret, void *(*fn)(void *), const char *name) {
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
