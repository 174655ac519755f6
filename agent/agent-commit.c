/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-commit.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "agent-expiry.h"
#include "agent-knox.h"
#include "log.h"
#include "strv.h"

static void key_ok(Agent *a, AgentKey *k) {
        if (k->state != KEY_STATE_OK && k->state != KEY_STATE_NEW)
                log_info("Key '%s' is available again.", k->reg.id);
        if (k->state != KEY_STATE_OK || k->retry_usec > 0) {
                a->gen++;
                pthread_cond_broadcast(&a->cond);
        }
        k->state = KEY_STATE_OK;
        k->failures = 0;
        k->retry_usec = 0;
        free(k->error);
        k->error = NULL;
}

void sync_key_failed(Agent *a, AgentKey *k, KeyState state, const char *why) {
        bool again = k->state == state && streq(strempty(k->error), strempty(why));

        if (!again) {
                if (state == KEY_STATE_MISSING)
                        log_warning(
                                "Key '%s' does not exist on the server%s", k->reg.id,
                                k->cache.valid ? "; serving the cached copy." : ".");
                else if (state == KEY_STATE_DENIED)
                        log_warning(
                                "The server does not let this machine read key '%s' (%s)%s", k->reg.id,
                                strna(why), k->cache.valid ? "; serving the cached copy." : ".");
                else
                        log_warning(
                                "Cannot fetch key '%s': %s%s", k->reg.id, strna(why),
                                k->cache.valid ? "; serving the cached copy." : "");
        }
        if (!again) {
                free(k->error);
                k->error = why ? strdup(why) : NULL;
        }
        /* A key the server does not have is watched with an empty hash, and the server names
         * it once it exists: no timer needed, unless the server named it and the fetch still
         * found nothing (then the watch would spin). */
        if (state == KEY_STATE_MISSING && k->state != KEY_STATE_MISSING) {
                k->failures = 0;
                k->retry_usec = 0;
        } else {
                if (k->failures < UINT16_MAX)
                        k->failures++;
                k->retry_usec =
                        now_usec(CLOCK_MONOTONIC) + backoff_usec(k->failures, a->config.retry_max_usec);
        }
        k->state = state;
        a->counters.fetch_failures++;
        a->gen++;
        pthread_cond_broadcast(&a->cond);
        /* Credential requests waiting for the key learn whether to go on waiting. */
        if (!again)
                agent_wake(a);
}

/* The cache file of k could not be written (a.lock held): k->held is served meanwhile. A
 * failure is logged when it is new for the key; the write is tried again with back-off,
 * except for a key too big for a file, whose size a retry does not change. */
static void disk_failed(Agent *a, AgentKey *k, int r) {
        uint64_t primary = k->cache.primary;

        if (k->disk_error != r) {
                log_warning_errno(
                        r,
                        "Cannot write the cache file of key '%s': %m; serving version %" PRIu64
                        " from memory until it can be written.",
                        k->reg.id, primary);
        } else
                log_debug_errno(r, "Still cannot write the cache file of key '%s': %m", k->reg.id);
        if (k->disk_error != r)
                a->status_dirty = true;
        k->disk_error = r;
        if (k->disk_failures < UINT16_MAX)
                k->disk_failures++;
        a->counters.cache_write_failures++;
        k->disk_retry_usec = r == -EFBIG ?
                UINT64_MAX :
                now_usec(CLOCK_MONOTONIC) + backoff_usec(k->disk_failures, a->config.retry_max_usec);
        a->gen++;
        pthread_cond_broadcast(&a->cond);
}

/* The cache file of k now holds what k->cache says (a.lock held). */
static void disk_ok(Agent *a, AgentKey *k) {
        if (k->disk_error != 0) {
                log_info("Key '%s': the cache file is written again.", k->reg.id);
                a->status_dirty = true;
        }
        k->held = secret_free(k->held);
        k->disk_error = 0;
        k->disk_failures = 0;
        k->disk_retry_usec = 0;
}

/* The agent's one table of certificate warnings (agent-expiry.h). */
static AgentExpiry *expiry_table;
static void expiry_table_init(void) {
        expiry_table = agent_expiry_new();
}

static void check_expiry(const Key *key) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        (void) pthread_once(&once, expiry_table_init);
        (void) agent_expiry_check(expiry_table, key, (int64_t) time(NULL));
}

int sync_commit(Agent *a, const Key *key, uint64_t seq) {
        _cleanup_(secret_freep) Secret *content = NULL;
        const KeyVersion *primary;
        AgentKey *k;
        CacheInfo info;
        bool changed, rotated, lazy;
        int r;

        r = cache_encode(key, &content, &info);
        if (r < 0)
                return r;
        check_expiry(key);

        pthread_mutex_lock(&a->commit_lock);
        pthread_mutex_lock(&a->lock);
        k = agent_find_key(a, key->id);
        if (!k || k->committed_seq > seq) {
                /* Unregistered meanwhile, or a fetch that started later was stored first. */
                pthread_mutex_unlock(&a->lock);
                pthread_mutex_unlock(&a->commit_lock);
                return 0;
        }
        if (k->cache.valid && memcmp(k->cache.sha256, info.sha256, sizeof(info.sha256)) == 0) {
                /* Nothing new (a copy held in memory is written by its own timer). */
                k->committed_seq = seq;
                key_ok(a, k);
                pthread_mutex_unlock(&a->lock);
                pthread_mutex_unlock(&a->commit_lock);
                return 0;
        }
        a->writing = k;
        memcpy(a->writing_sha256, info.sha256, sizeof(info.sha256));
        /* A key with no copy on disk has nothing to lose to a crash: its file is made durable
         * with the others of the same sync (sync_cache_writes()). A copy that replaces
         * another is durable at once. */
        lazy = !k->cache.valid && !k->held;
        /* Every write of the key has a sequence of its own, bound into the sealed file. */
        info.seq = ++k->last_seq;
        pthread_mutex_unlock(&a->lock);

        r = lazy ? cache_write_content_lazy(a->cache_dir, a->cache_seal, key->id, &info, content) :
                   cache_write_content(a->cache_dir, a->cache_seal, key->id, &info, content);
        agent_knox_store(a, key);

        pthread_mutex_lock(&a->lock);
        a->writing = NULL;
        if (r >= 0 && lazy)
                a->cache_unsynced++;
        /* Still there: removals take commit_lock. */
        k = agent_find_key(a, key->id);
        if (!k) {
                pthread_mutex_unlock(&a->lock);
                (void) cache_remove(a->cache_dir, key->id);
                pthread_mutex_unlock(&a->commit_lock);
                return 0;
        }
        changed = !k->cache.valid || memcmp(k->cache.hash, info.hash, sizeof(info.hash)) != 0;
        /* A rotation is a new primary: an added or retired version alone changes the hash
         * but not what units read. */
        rotated = k->cache.valid && changed && k->cache.primary != info.primary;
        k->cache = info;
        k->committed_seq = seq;
        if (r < 0) {
                /* What the server says is current is served from memory, never the old
                 * file: readers find k->held through agent_key_read_held(). */
                secret_free(k->held);
                k->held = TAKE_PTR(content);
                disk_failed(a, k, r);
        } else
                disk_ok(a, k);
        key_ok(a, k);
        a->gen++;
        pthread_cond_broadcast(&a->cond);
        primary = key_primary_version(key);
        if (changed) {
                log_info(
                        "Key '%s': %s primary version %" PRIu64 " (hash %.12s).", key->id,
                        r < 0 ? "serving from memory" : "cached", primary ? primary->id : 0, key->hash);
                if (agent_post_change(a, key->id, key->hash, rotated) < 0)
                        log_oom();
        }
        if (a->status_dirty)
                changed = true;
        pthread_mutex_unlock(&a->lock);
        /* A durable write is vouched for at once; lazy ones once they are on disk. */
        if (r >= 0 && !lazy)
                agent_seen_save(a);
        pthread_mutex_unlock(&a->commit_lock);
        if (changed)
                agent_wake(a);
        return 0;
}

void sync_retry_disk_writes(Agent *a, uint64_t now) {
        _cleanup_strv_free_ char **ids = NULL;

        for (size_t i = 0; i < a->n_keys; i++)
                if (a->keys[i]->held && a->keys[i]->disk_retry_usec <= now &&
                    strv_extend(&ids, a->keys[i]->reg.id) < 0) {
                        log_oom();
                        return;
                }

        STRV_FOREACH(id, ids) {
                AgentKey *k;
                CacheInfo info;
                int r;

                if (a->stop)
                        return;
                pthread_mutex_unlock(&a->lock);
                pthread_mutex_lock(&a->commit_lock);
                pthread_mutex_lock(&a->lock);
                /* Under commit_lock neither the key nor its held copy can go away. */
                k = agent_find_key(a, *id);
                if (!k || !k->held) {
                        pthread_mutex_unlock(&a->commit_lock);
                        continue;
                }
                a->writing = k;
                memcpy(a->writing_sha256, k->cache.sha256, sizeof(a->writing_sha256));
                info = k->cache;
                pthread_mutex_unlock(&a->lock);
                r = cache_write_content(a->cache_dir, a->cache_seal, *id, &info, k->held);
                pthread_mutex_lock(&a->lock);
                a->writing = NULL;
                if (r < 0)
                        disk_failed(a, k, r);
                else
                        disk_ok(a, k);
                if (r >= 0) {
                        pthread_mutex_unlock(&a->lock);
                        agent_seen_save(a);
                        pthread_mutex_lock(&a->lock);
                }
                pthread_mutex_unlock(&a->commit_lock);
                if (a->status_dirty)
                        agent_wake(a);
        }
}

void agent_seen_save(Agent *a) {
        CacheSeen *l = NULL;
        size_t n = 0;
        int r;

        pthread_mutex_lock(&a->lock);
        l = calloc(a->n_keys ? a->n_keys : 1, sizeof(CacheSeen));
        for (size_t i = 0; l && i < a->n_keys; i++) {
                const AgentKey *k = a->keys[i];

                /* A key served from memory has an older file, or none: not vouched for. */
                if (!k->cache.valid || k->held)
                        continue;
                l[n] = (CacheSeen){.id = strdup(k->reg.id), .seq = k->cache.seq};
                if (!l[n].id) {
                        cache_seen_free(l, n);
                        l = NULL;
                        break;
                }
                memcpy(l[n].hash, k->cache.hash, CACHE_HASH_SIZE);
                n++;
        }
        pthread_mutex_unlock(&a->lock);
        if (!l) {
                log_oom();
                return;
        }
        /* The table is sorted by id, and so is l. */
        r = cache_seen_save(a->seen_path, a->seen_seal, l, n);
        if (r < 0)
                log_warning_errno(r, "Cannot write the record of the cache files, ignoring: %m");
        cache_seen_free(l, n);
}
