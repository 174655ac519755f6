/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sync threads' exchanges with keywardd: the client, fetching keys and storing them
 * (agent-commit.c), asking which keys changed, polls over many requests. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent-commit.h"
#include "agent-servers.h"
#include "agent-sync-internal.h"
#include "log.h"
#include "strv.h"

/* Lazy cache writes are made durable at the latest after this many. */
#define UNSYNCED_MAX 512

int ensure_client(Agent *a, KnoxClient **c, uint64_t *client_gen) {
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
int fetch_list(Agent *a, KnoxClient *c, char *const *ids) {
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
int changed_keys(Agent *a, KnoxClient *c, const Snapshot *s, unsigned wait_sec, char ***ret) {
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
int poll_changed(Agent *a, KnoxClient *c, KeyFilter filter, bool forced) {
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
