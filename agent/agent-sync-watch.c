/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The watchers: each holds a watch (Prefer: wait=N) over its share of the watchable keys
 * and fetches what the server reports changed. */
#include <string.h>

#include "agent-servers.h"
#include "agent-sync-internal.h"
#include "log.h"
#include "strv.h"

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
_Thread_local unsigned watcher_index;

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

void *watcher_main(void *userdata) {
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
