/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-register.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "agent-files.h"
#include "agent-knox.h"
#include "log.h"

void register_failure_done(RegisterFailure *f) {
        free(f->name);
        free(f->message);
        *f = (RegisterFailure){};
}

static int fail(RegisterFailure *f, int r, const char *name) {
        free(f->name);
        f->name = name ? strdup(name) : NULL;
        if (name && !f->name)
                return -ENOMEM;
        return r;
}

static int batch_push(AgentKey ***list, size_t *n, size_t *n_alloc, AgentKey *k) {
        if (*n == *n_alloc) {
                size_t m = MAX(*n_alloc * 2, (size_t) 64);
                AgentKey **l = reallocarray(*list, m, sizeof(AgentKey *));

                if (!l)
                        return -ENOMEM;
                *list = l;
                *n_alloc = m;
        }
        (*list)[(*n)++] = k;
        return 0;
}

void register_batch_done(RegisterBatch *b) {
        for (size_t i = 0; i < b->n_fresh; i++)
                agent_key_free(b->fresh[i]);
        for (size_t i = 0; i < b->n_updated; i++)
                agent_key_free(b->updated[i]);
        free(b->fresh);
        free(b->updated);
        *b = (RegisterBatch){};
}

static int agent_key_compare(const void *x, const void *y) {
        return strcmp((*(AgentKey *const *) x)->reg.id, (*(AgentKey *const *) y)->reg.id);
}

/* The first id listed twice in keys (sorted), or NULL. */
static const char *duplicate_id(AgentKey *const *keys, size_t n) {
        for (size_t i = 1; i < n; i++)
                if (streq(keys[i - 1]->reg.id, keys[i]->reg.id))
                        return keys[i]->reg.id;
        return NULL;
}

/* The key of the batch other than id that writes path, or NULL. */
static const char *batch_file_key(const RegisterBatch *b, const char *path, const char *id) {
        for (size_t i = 0; i < b->n_fresh + b->n_updated; i++) {
                const Registration *o =
                        i < b->n_fresh ? &b->fresh[i]->reg : &b->updated[i - b->n_fresh]->reg;

                if (o->file && streq(o->file, path) && !streq(o->id, id))
                        return o->id;
        }
        return NULL;
}

/* reg's file, checked (agent-files.c) and named by no other key: 0, or -EINVAL with
 * f->message set. */
static int check_file(Agent *a, const RegisterBatch *b, Registration *reg, RegisterFailure *f) {
        const char *other;
        int r;

        if (!reg->file)
                return 0;
        free(f->message);
        f->message = NULL;
        r = agent_files_check(a, reg, &f->message);
        if (r < 0)
                return r;
        other = agent_files_key_of(a, reg->file, reg->id) ?: batch_file_key(b, reg->file, reg->id);
        if (other &&
            asprintf(
                    &f->message, "Refused file '%s': it is already written for key '%s'.", reg->file,
                    other) < 0) {
                f->message = NULL;
                return -ENOMEM;
        }
        return other ? -EINVAL : 0;
}

int register_batch_add(
        Agent *a, RegisterBatch *b, Registration *reg, bool on_change_set, RegisterFailure *f) {
        _cleanup_(registration_donep) Registration copy = {};
        _cleanup_(agent_key_freep) AgentKey *n = NULL;
        const char *unknown = NULL;
        AgentKey *k, ***list;
        size_t *count, *alloc;
        int r;

        r = check_file(a, b, reg, f);
        if (r < 0)
                return r;
        k = agent_find_key(a, reg->id);
        if (k) {
                r = registration_copy(&k->reg, &copy);
                if (r < 0)
                        return r;
                r = registration_merge(&copy, reg, on_change_set);
                if (r == -E2BIG)
                        return fail(f, r, reg->id);
                if (r == -EEXIST) {
                        if (asprintf(
                                    &f->message,
                                    "Key '%s' already has the file '%s'; unregister it to name another.",
                                    reg->id, k->reg.file) < 0) {
                                f->message = NULL;
                                return -ENOMEM;
                        }
                        return -EINVAL;
                }
                if (r <= 0)
                        return r;
                list = &b->updated;
                count = &b->n_updated;
                alloc = &b->n_updated_alloc;
        } else {
                if (a->n_keys + b->n_fresh >= REGISTRY_KEYS_MAX)
                        return fail(f, -ENOBUFS, NULL);
                copy = *reg; /* taken */
                *reg = (Registration){};
                list = &b->fresh;
                count = &b->n_fresh;
                alloc = &b->n_fresh_alloc;
        }
        n = agent_key_new(&copy);
        if (!n)
                return -ENOMEM;
        r = agent_key_resolve_readers(n, &unknown);
        if (r == -ESRCH)
                return fail(f, r, unknown);
        if (r < 0)
                return r;
        r = batch_push(list, count, alloc, n);
        if (r < 0)
                return r;
        TAKE_PTR(n);
        return 0;
}

/* Give k the registration and readers of tmp (same id). With a.lock held. */
static void key_take_registration(AgentKey *k, AgentKey *tmp) {
        registration_done(&k->reg);
        k->reg = tmp->reg;
        tmp->reg = (Registration){};
        free(k->reader_uids);
        free(k->reader_gids);
        k->reader_uids = TAKE_PTR(tmp->reader_uids);
        k->n_reader_uids = tmp->n_reader_uids;
        k->reader_gids = TAKE_PTR(tmp->reader_gids);
        k->n_reader_gids = tmp->n_reader_gids;
}

int register_batch_apply(Agent *a, RegisterBatch *b, uid_t by, RegisterFailure *f) {
        _cleanup_free_ const Registration **replace = NULL, **extra = NULL;
        _cleanup_free_ AgentKey **touched = NULL;
        size_t n_fresh = b->n_fresh, n_touched = 0;
        const char *dup;
        int r;

        if (b->n_fresh > 1)
                qsort(b->fresh, b->n_fresh, sizeof(AgentKey *), agent_key_compare);
        if (b->n_updated > 1)
                qsort(b->updated, b->n_updated, sizeof(AgentKey *), agent_key_compare);
        dup = duplicate_id(b->fresh, b->n_fresh) ?: duplicate_id(b->updated, b->n_updated);
        if (dup)
                return fail(f, -ENOTUNIQ, dup);
        if (b->n_fresh + b->n_updated == 0)
                return 0;

        replace = calloc(b->n_updated + 1, sizeof(Registration *));
        extra = calloc(b->n_fresh + 1, sizeof(Registration *));
        if (!replace || !extra)
                return -ENOMEM;
        for (size_t i = 0; i < b->n_updated; i++)
                replace[i] = &b->updated[i]->reg;
        for (size_t i = 0; i < b->n_fresh; i++)
                extra[i] = &b->fresh[i]->reg;
        r = agent_save_registry_many(a, replace, b->n_updated, extra, b->n_fresh);
        if (r < 0) {
                f->save = true;
                return r;
        }

        touched = calloc(b->n_updated + 1, sizeof(AgentKey *));
        if (!touched)
                return -ENOMEM;

        /* Saved: now the table follows, under one hold of the lock (held by hand: the
         * sync threads see all of the batch or none of it). */
        pthread_mutex_lock(&a->lock);
        for (size_t i = 0; i < b->n_updated; i++) {
                AgentKey *k = agent_find_key(a, b->updated[i]->reg.id);

                if (!k) /* cannot be: only the main thread removes keys */
                        continue;
                key_take_registration(k, b->updated[i]);
                touched[n_touched++] = k;
                log_info("Key '%s': registration updated by uid %u.", LOG_NAME(k->reg.id), (unsigned) by);
        }
        r = 0;
        for (size_t i = 0; i < b->n_fresh; i++) {
                AgentKey *k = b->fresh[i];

                k->need_fetch = true;
                r = agent_insert_key(a, k);
                if (r < 0)
                        break;
                b->fresh[i] = NULL;
        }
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        if (r < 0) /* out of memory: the registry file has them, the next start loads them */
                return r;
        /* A file named or changed for a key already cached: written now (only the main
         * thread removes keys, so they are still there). */
        for (size_t i = 0; i < n_touched; i++)
                (void) agent_files_update(a, touched[i]);

        for (size_t i = 0; i < n_fresh; i++)
                log_info("Key '%s' registered by uid %u.", LOG_NAME(extra[i]->id), (unsigned) by);
        agent_knox_registered(a, extra, n_fresh);
        return (int) MIN(n_fresh, (size_t) INT_MAX);
}

int agent_unregister(Agent *a, const char *id, uid_t by, AgentKey **ret, RegisterFailure *f) {
        AgentKey *k;
        int r;

        if (!agent_find_key(a, id))
                return -ENOKEY;

        r = agent_save_registry(a, NULL, NULL, id);
        if (r < 0) {
                f->save = true;
                return r;
        }

        pthread_mutex_lock(&a->commit_lock);
        k = agent_remove_key(a, id);
        r = cache_remove(a->cache_dir, id);
        pthread_mutex_unlock(&a->commit_lock);
        if (r < 0)
                log_warning_errno(
                        r, "Failed to remove the cache file of key '%s', ignoring: %m", LOG_NAME(id));
        if (k)
                agent_files_remove(a, &k->reg);

        agent_knox_unregistered(a, id);
        log_info("Key '%s' unregistered by uid %u.", LOG_NAME(id), (unsigned) by);
        *ret = k;
        return 0;
}
