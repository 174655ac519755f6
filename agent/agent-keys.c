/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <time.h>

#include "log.h"
#include "parse.h"
#include "random-util.h"
#include "strv.h"
#include "user-util.h"

/* clang-format off */
static const char *const key_state_table[_KEY_STATE_MAX] = {
        [KEY_STATE_NEW]     = "new",
        [KEY_STATE_OK]      = "ok",
        [KEY_STATE_MISSING] = "missing",
        [KEY_STATE_DENIED]  = "denied",
        [KEY_STATE_FAILED]  = "failed",
};
/* clang-format on */

const char *key_state_to_string(KeyState s) {
        if (s < 0 || s >= _KEY_STATE_MAX)
                return NULL;
        return key_state_table[s];
}

/* Keys live as long as their registration; the allocations of syncing around them come and
 * go. Carved from blocks of their own, keys leave no holes between those in the heap, whose
 * pages, locked, are never returned from the middle. Blocks are kept for reuse (a freed
 * key's slot goes on a free list), never unmapped. */
#define KEY_BLOCK_SIZE (64 * 1024)

typedef union KeySlot {
        AgentKey key;
        union KeySlot *next;
} KeySlot;

#ifdef __SANITIZE_ADDRESS__
/* Under AddressSanitizer keys are plain heap objects, so that a use after free is caught. */
static AgentKey *slot_get(void) {
        return calloc(1, sizeof(KeySlot));
}

static void slot_put(AgentKey *k) {
        free(k);
}
#else
static struct {
        pthread_mutex_t lock;
        KeySlot *free;
        uint8_t *next; /* where the current block's next fresh slot is */
        size_t left;
} slots = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *block_map(void) {
        void *b = mmap(NULL, KEY_BLOCK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        return b == MAP_FAILED ? NULL : b;
}

static AgentKey *slot_get(void) {
        KeySlot *s = NULL;

        pthread_mutex_lock(&slots.lock);
        if (slots.free) {
                s = slots.free;
                slots.free = s->next;
        } else {
                if (slots.left < sizeof(KeySlot)) {
                        void *b = block_map();

                        if (b) {
                                slots.next = b;
                                slots.left = KEY_BLOCK_SIZE;
                        }
                }
                if (slots.left >= sizeof(KeySlot)) {
                        s = (KeySlot *) slots.next;
                        slots.next += sizeof(KeySlot);
                        slots.left -= sizeof(KeySlot);
                }
        }
        pthread_mutex_unlock(&slots.lock);
        if (s)
                memset(s, 0, sizeof(*s));
        return s ? &s->key : NULL;
}

static void slot_put(AgentKey *k) {
        KeySlot *s = (KeySlot *) k;

        pthread_mutex_lock(&slots.lock);
        s->next = slots.free;
        slots.free = s;
        pthread_mutex_unlock(&slots.lock);
}
#endif

AgentKey *agent_key_new(Registration *reg) {
        AgentKey *k;

        k = slot_get();
        if (!k)
                return NULL;
        k->reg = *reg;
        *reg = (Registration){};
        k->state = KEY_STATE_NEW;
        return k;
}

AgentKey *agent_key_free(AgentKey *k) {
        if (!k)
                return NULL;
        registration_done(&k->reg);
        free(k->reader_uids);
        free(k->reader_gids);
        free(k->error);
        secret_free(k->held);
        slot_put(k);
        return NULL;
}

static int cmp_id_key(const void *id, const void *p) {
        return strcmp(id, (*(AgentKey *const *) p)->reg.id);
}

static size_t lower_bound(Agent *a, const char *id) {
        size_t lo = 0, hi = a->n_keys;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (strcmp(a->keys[mid]->reg.id, id) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

AgentKey *agent_find_key(Agent *a, const char *id) {
        AgentKey **p;

        if (!id || a->n_keys == 0)
                return NULL;
        p = bsearch(id, a->keys, a->n_keys, sizeof(AgentKey *), cmp_id_key);
        return p ? *p : NULL;
}

int agent_insert_key(Agent *a, AgentKey *k) {
        AgentKey **n;
        size_t i;

        i = lower_bound(a, k->reg.id);
        if (i < a->n_keys && streq(a->keys[i]->reg.id, k->reg.id))
                return -EEXIST;
        n = reallocarray(a->keys, a->n_keys + 1, sizeof(AgentKey *));
        if (!n)
                return -ENOMEM;
        a->keys = n;
        memmove(a->keys + i + 1, a->keys + i, (a->n_keys - i) * sizeof(AgentKey *));
        a->keys[i] = k;
        a->n_keys++;
        a->gen++;
        return 0;
}

AgentKey *agent_detach_key(Agent *a, const char *id) {
        AgentKey *k;
        size_t i;

        i = lower_bound(a, id);
        if (i >= a->n_keys || !streq(a->keys[i]->reg.id, id))
                return NULL;
        k = a->keys[i];
        memmove(a->keys + i, a->keys + i + 1, (a->n_keys - i - 1) * sizeof(AgentKey *));
        a->n_keys--;
        a->gen++;
        return k;
}

static int lookup_user(const char *name, uid_t *ret) {
        uint64_t u;
        int r;

        r = user_by_name(name, ret, NULL, NULL);
        if (r != -ESRCH)
                return r;
        /* A numeric id that NSS does not know is still an id. */
        if (safe_atou64(name, &u) >= 0 && u < UINT32_MAX) {
                *ret = (uid_t) u;
                return 0;
        }
        return -ESRCH;
}

static int lookup_group(const char *name, gid_t *ret) {
        uint64_t u;
        int r;

        r = group_by_name(name, ret);
        if (r != -ESRCH)
                return r;
        if (safe_atou64(name, &u) >= 0 && u < UINT32_MAX) {
                *ret = (gid_t) u;
                return 0;
        }
        return -ESRCH;
}

int agent_key_resolve_readers(AgentKey *k, const char **reterr_unknown) {
        _cleanup_free_ uid_t *uids = NULL;
        _cleanup_free_ gid_t *gids = NULL;
        size_t n = strv_length(k->reg.readers), nu = 0, ng = 0;
        const char *unknown = NULL;

        if (n > 0) {
                uids = calloc(n, sizeof(uid_t));
                gids = calloc(n, sizeof(gid_t));
                if (!uids || !gids)
                        return -ENOMEM;
        }
        STRV_FOREACH(s, k->reg.readers) {
                int r;

                if (strneq(*s, "user:", 5)) {
                        r = lookup_user(*s + 5, &uids[nu]);
                        if (r >= 0)
                                nu++;
                } else {
                        r = lookup_group(*s + 6, &gids[ng]);
                        if (r >= 0)
                                ng++;
                }
                if (r == -ENOMEM)
                        return r;
                if (r < 0 && !unknown)
                        unknown = *s;
        }
        if (unknown && reterr_unknown) {
                *reterr_unknown = unknown;
                return -ESRCH;
        }
        if (unknown)
                log_warning("Key '%s': reader '%s' does not resolve, ignoring it.", k->reg.id, unknown);

        free(k->reader_uids);
        free(k->reader_gids);
        k->reader_uids = TAKE_PTR(uids);
        k->n_reader_uids = nu;
        k->reader_gids = TAKE_PTR(gids);
        k->n_reader_gids = ng;
        return 0;
}

bool agent_uid_is_privileged(uid_t uid) {
        /* The agent's own uid can read its state directory anyway: it is root in production,
         * the user running the tests otherwise. */
        return uid == 0 || uid == geteuid();
}

bool agent_key_may_read(const AgentKey *k, uid_t uid, const gid_t *groups, size_t n_groups) {
        if (agent_uid_is_privileged(uid))
                return true;
        for (size_t i = 0; i < k->n_reader_uids; i++)
                if (k->reader_uids[i] == uid)
                        return true;
        for (size_t i = 0; i < k->n_reader_gids; i++)
                for (size_t j = 0; j < n_groups; j++)
                        if (k->reader_gids[i] == groups[j])
                                return true;
        return false;
}

int agent_save_registry(
        Agent *a, const Registration *replace, const Registration *extra, const char *skip_id) {
        _cleanup_free_ const Registration **regs = NULL;
        size_t n = 0;
        bool extra_done = !extra;

        regs = calloc(a->n_keys + 1, sizeof(Registration *));
        if (!regs)
                return -ENOMEM;
        for (size_t i = 0; i < a->n_keys; i++) {
                const Registration *r = &a->keys[i]->reg;

                if (skip_id && streq(r->id, skip_id))
                        continue;
                if (!extra_done && strcmp(extra->id, r->id) < 0) {
                        regs[n++] = extra;
                        extra_done = true;
                }
                regs[n++] = replace && streq(replace->id, r->id) ? replace : r;
        }
        if (!extra_done)
                regs[n++] = extra;
        return registry_save_sealed(a->registry_path, a->registry_seal, regs, n);
}

int agent_save_registry_many(
        Agent *a,
        const Registration *const *replace,
        size_t n_replace,
        const Registration *const *extra,
        size_t n_extra) {
        _cleanup_free_ const Registration **regs = NULL;
        size_t n = 0, j = 0, x = 0;

        /* Three lists sorted by id merged in one pass: the table, with its entries replaced
         * where replace names them, and extra (whose ids the table does not have). */
        regs = calloc(a->n_keys + n_extra + 1, sizeof(Registration *));
        if (!regs)
                return -ENOMEM;
        for (size_t i = 0; i < a->n_keys; i++) {
                const Registration *r = &a->keys[i]->reg;

                while (x < n_extra && strcmp(extra[x]->id, r->id) < 0)
                        regs[n++] = extra[x++];
                if (j < n_replace && streq(replace[j]->id, r->id))
                        r = replace[j++];
                regs[n++] = r;
        }
        while (x < n_extra)
                regs[n++] = extra[x++];
        return registry_save_sealed(a->registry_path, a->registry_seal, regs, n);
}

int agent_post_change(Agent *a, const char *id, const char *hash, bool rotated) {
        KeyChange *n;
        char *copy;

        copy = strdup(id);
        if (!copy)
                return -ENOMEM;
        n = reallocarray(a->changes, a->n_changes + 1, sizeof(KeyChange));
        if (!n) {
                free(copy);
                return -ENOMEM;
        }
        a->changes = n;
        n[a->n_changes] = (KeyChange){.id = copy, .rotated = rotated};
        (void) snprintf(n[a->n_changes].hash, sizeof(n[a->n_changes].hash), "%s", strempty(hash));
        a->n_changes++;
        return 0;
}

void agent_wake(Agent *a) {
        uint64_t one = 1;

        if (a->wake_fd >= 0 && write(a->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
                log_debug_errno(errno, "Failed to wake the main loop: %m");
}

uint64_t backoff_usec(unsigned n, uint64_t max_usec) {
        uint64_t d = USEC_PER_SEC, floor;
        uint32_t rnd = 0;

        for (unsigned i = 1; i < n && d < max_usec; i++)
                d *= 2;
        d = MIN(d, max_usec);
        /* Spread over all but the first eighth of the window ("full jitter" with a floor):
         * the agents of a fleet that lost their server at the same instant come back
         * spread evenly over the window, not bunched in its second half, and none retries
         * at once. */
        floor = d / BACKOFF_FLOOR_DIVISOR;
        (void) random_bytes(&rnd, sizeof(rnd));
        return floor + (uint64_t) ((double) (d - floor) * rnd / UINT32_MAX);
}

void agent_cache_corrupt(Agent *a, const char *id, const uint8_t *expected, int r, const char *reason) {
        AgentKey *k;
        bool removed = false;

        pthread_mutex_lock(&a->commit_lock);
        pthread_mutex_lock(&a->lock);
        k = agent_find_key(a, id);
        /* A key served from memory has a stale file, or none, by design. */
        if (k && k->cache.valid && !k->held && memcmp(k->cache.sha256, expected, CACHE_SHA256_SIZE) == 0) {
                k->cache.valid = false;
                k->need_fetch = true;
                k->retry_usec = 0;
                a->gen++;
                pthread_cond_broadcast(&a->cond);
                removed = true;
        }
        pthread_mutex_unlock(&a->lock);
        if (removed) {
                log_security(
                        LOG_ERR, "a1c0f3e2d6b94b7c8e5f2a9d0c4b6e81",
                        "Cache file of key '%s' is corrupt (%s); it is not served and will be fetched again.",
                        id, reason ?: strerror(-r));
                if (r != -ENOENT)
                        (void) cache_remove(a->cache_dir, id);
        }
        pthread_mutex_unlock(&a->commit_lock);
}

int agent_key_read_held(Agent *a, const char *id, const uint8_t *expected, Key **ret) {
        _cleanup_(secret_freep) Secret *copy = NULL;
        const char *reason = NULL;
        AgentKey *k;
        int r;

        pthread_mutex_lock(&a->lock);
        k = agent_find_key(a, id);
        if (!k || !k->held || !k->cache.valid || memcmp(k->cache.sha256, expected, CACHE_SHA256_SIZE) != 0) {
                pthread_mutex_unlock(&a->lock);
                return 0;
        }
        copy = secret_new_copy(k->held->data, k->held->size);
        pthread_mutex_unlock(&a->lock);
        if (!copy)
                return -ENOMEM;

        /* The agent encoded it itself: a failure here is a bug, not a corrupt file. */
        r = cache_decode(copy->data, copy->size, id, ret, NULL, &reason);
        if (r < 0)
                return log_error_errno(
                        r, "Cannot decode the copy of key '%s' held in memory: %s", id, strna(reason));
        return 1;
}

static void status_of(const AgentKey *k, AgentKeyStatus *ret) {
        *ret = (AgentKeyStatus){.state = k->state, .cached = k->cache.valid};
        memcpy(ret->sha256, k->cache.sha256, CACHE_SHA256_SIZE);
}

int agent_key_status(Agent *a, const char *id, AgentKeyStatus *ret) {
        AgentKey *k;

        pthread_mutex_lock(&a->lock);
        k = agent_find_key(a, id);
        if (k)
                status_of(k, ret);
        pthread_mutex_unlock(&a->lock);
        return !!k;
}

int agent_key_find_for_unit(
        Agent *a, const char *unit, const char *name, char **ret_id, AgentKeyStatus *ret) {
        char *id = NULL;
        int r = 0;

        pthread_mutex_lock(&a->lock);
        for (size_t i = 0; i < a->n_keys; i++) {
                const AgentKey *k = a->keys[i];

                if (!strv_contains(k->reg.units, unit) || !streq(k->reg.credential ?: k->reg.id, name))
                        continue;
                id = strdup(k->reg.id);
                r = id ? 1 : -ENOMEM;
                if (id)
                        status_of(k, ret);
                break;
        }
        pthread_mutex_unlock(&a->lock);
        if (r > 0)
                *ret_id = id;
        return r;
}

int agent_keys_foreach(Agent *a, int (*fn)(const AgentKey *k, void *userdata), void *userdata) {
        int r = 0;

        pthread_mutex_lock(&a->lock);
        for (size_t i = 0; i < a->n_keys && r >= 0; i++)
                r = fn(a->keys[i], userdata);
        pthread_mutex_unlock(&a->lock);
        return r;
}

void agent_key_install_readers(Agent *a, AgentKey *k, AgentKey *from) {
        pthread_mutex_lock(&a->lock);
        free(k->reader_uids);
        free(k->reader_gids);
        k->reader_uids = TAKE_PTR(from->reader_uids);
        k->n_reader_uids = from->n_reader_uids;
        k->reader_gids = TAKE_PTR(from->reader_gids);
        k->n_reader_gids = from->n_reader_gids;
        pthread_mutex_unlock(&a->lock);
}

AgentKey *agent_remove_key(Agent *a, const char *id) {
        AgentKey *k;

        pthread_mutex_lock(&a->lock);
        k = agent_detach_key(a, id);
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        return k;
}
