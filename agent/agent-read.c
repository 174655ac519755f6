/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-read.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

/* How often a reader looks again when a sync thread replaced the file under it. */
#define READ_ATTEMPTS 4

/* Keys served lately, parsed, by the checksum of the content they came from: a key read
 * often is not read and parsed again each time. The table's checksum decides whether an
 * entry is still current, so a new version is never missed. */
#define HOT_KEYS 64

typedef struct HotKey {
        char *id;
        uint8_t sha256[CACHE_SHA256_SIZE];
        struct stat st; /* of the file it was read from (zero: held in memory) */
        Key *key;
        uint64_t used;
} HotKey;

struct AgentReads {
        HotKey hot[HOT_KEYS];
        uint64_t tick;
        int cache_fd;
};

static void hot_key_done(HotKey *h) {
        free(h->id);
        key_free(h->key);
        *h = (HotKey){};
}

static HotKey *hot_find(AgentReads *rd, const char *id) {
        for (size_t i = 0; i < HOT_KEYS; i++)
                if (rd->hot[i].id && streq(rd->hot[i].id, id))
                        return &rd->hot[i];
        return NULL;
}

/* Keep key (parsed from content with checksum sha256, from the file st describes): the
 * entry, or NULL when out of memory. */
static HotKey *
hot_put(AgentReads *rd, const char *id, const uint8_t *sha256, const struct stat *st, Key *key) {
        HotKey *h = hot_find(rd, id);

        if (!h) {
                h = &rd->hot[0];
                for (size_t i = 1; i < HOT_KEYS && h->id; i++)
                        if (!rd->hot[i].id || rd->hot[i].used < h->used)
                                h = &rd->hot[i];
        }
        hot_key_done(h);
        h->id = strdup(id);
        if (!h->id) {
                key_free(key);
                return NULL;
        }
        memcpy(h->sha256, sha256, CACHE_SHA256_SIZE);
        h->st = *st;
        h->key = key;
        h->used = ++rd->tick;
        return h;
}

void key_unavailable_done(KeyUnavailable *u) {
        free(u->error);
        *u = (KeyUnavailable){};
}

int agent_read_open(Agent *a) {
        AgentReads *rd;

        assert_return(a && !a->reads, -EINVAL);
        rd = calloc(1, sizeof(AgentReads));
        if (!rd)
                return log_oom();
        rd->cache_fd = open(a->cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (rd->cache_fd < 0) {
                free(rd);
                return log_error_errno(errno, "Failed to open '%s': %m", a->cache_dir);
        }
        a->reads = rd;
        return 0;
}

void agent_read_close(Agent *a) {
        AgentReads *rd = a ? a->reads : NULL;

        if (!rd)
                return;
        for (size_t i = 0; i < HOT_KEYS; i++)
                hot_key_done(&rd->hot[i]);
        safe_close(rd->cache_fd);
        free(rd);
        a->reads = NULL;
}

void agent_key_read_forget(Agent *a, const char *id) {
        HotKey *h = a->reads ? hot_find(a->reads, id) : NULL;

        if (h)
                hot_key_done(h);
}

/* The access check and the agent's record of the file, under a.lock (held by hand: the read
 * path looks at the key and at what a sync thread writes in one step): 0 with the checksum
 * the file should have (and the one being written, if a sync thread writes it now), or a
 * negative errno as agent_key_read() gives it. */
static int
look(Agent *a,
     const Caller *c,
     const char *id,
     uint8_t expected[static CACHE_SHA256_SIZE],
     uint8_t writing[static CACHE_SHA256_SIZE],
     bool *ret_writing,
     KeyUnavailable *ret_unavailable) {
        AgentKey *k;
        int r = 0;

        pthread_mutex_lock(&a->lock);
        k = agent_find_key(a, id);
        if (!k)
                r = agent_uid_is_privileged(c->uid) ? -ENOKEY : -EACCES;
        else if (!agent_key_may_read(k, c->uid, c->groups, c->n_groups))
                r = -EACCES;
        else if (!k->cache.valid) {
                r = -ENOENT;
                if (ret_unavailable) {
                        *ret_unavailable = (KeyUnavailable){
                                .state = k->state,
                                .connected = a->connected,
                                .error = k->error ? strdup(k->error) : NULL,
                        };
                        if (k->error && !ret_unavailable->error)
                                r = -ENOMEM;
                }
        } else {
                memcpy(expected, k->cache.sha256, CACHE_SHA256_SIZE);
                *ret_writing = a->writing == k;
                memcpy(writing, a->writing_sha256, CACHE_SHA256_SIZE);
        }
        pthread_mutex_unlock(&a->lock);
        return r;
}

/* Whether the agent's record of key id moved away from expected: a sync thread replaced its
 * file (or is replacing it) since the look. */
static bool moved(Agent *a, const char *id, const uint8_t *expected) {
        AgentKey *k;
        bool m;

        pthread_mutex_lock(&a->lock);
        k = agent_find_key(a, id);
        m = k && (a->writing == k || memcmp(k->cache.sha256, expected, CACHE_SHA256_SIZE) != 0);
        pthread_mutex_unlock(&a->lock);
        return m;
}

static int served(HotKey *h, const Key **ret_key, uint8_t *ret_sha256) {
        if (!h)
                return -ENOMEM;
        *ret_key = h->key;
        if (ret_sha256)
                memcpy(ret_sha256, h->sha256, CACHE_SHA256_SIZE);
        return 0;
}

int agent_key_read(
        Agent *a,
        Caller *c,
        const char *id,
        const Key **ret_key,
        uint8_t ret_sha256[CACHE_SHA256_SIZE],
        KeyUnavailable *ret_unavailable) {
        AgentReads *rd = a->reads;
        int r;

        assert_return(rd, -EINVAL);

        /* NSS may block: the groups before the lock, and only when they can matter. */
        if (!agent_uid_is_privileged(c->uid)) {
                r = caller_groups(c);
                if (r < 0)
                        return r;
        }

        for (unsigned attempt = 1;; attempt++) {
                _cleanup_(key_freep) Key *key = NULL;
                uint8_t expected[CACHE_SHA256_SIZE], writing[CACHE_SHA256_SIZE];
                const char *reason = NULL;
                bool is_writing = false;
                CacheInfo got = {};
                struct stat st;
                HotKey *h;

                r = look(a, c, id, expected, writing, &is_writing, ret_unavailable);
                if (r == -ENOENT)
                        agent_key_read_forget(a, id);
                if (r < 0)
                        return r;

                /* Its file could not be written: what the server sent is in memory. */
                r = agent_key_read_held(a, id, expected, &key);
                if (r < 0)
                        return r;
                if (r > 0)
                        return served(
                                hot_put(rd, id, expected, &(struct stat){}, TAKE_PTR(key)), ret_key,
                                ret_sha256);

                /* Read lately, and the file is untouched since (any write changes its ctime). */
                h = hot_find(rd, id);
                if (h && memcmp(h->sha256, expected, sizeof(expected)) == 0 &&
                    fstatat(rd->cache_fd, id, &st, AT_SYMLINK_NOFOLLOW) >= 0 &&
                    cache_same_file(&st, &h->st)) {
                        h->used = ++rd->tick;
                        return served(h, ret_key, ret_sha256);
                }

                r = cache_read_stat(a->cache_dir, a->cache_seal, id, &key, &got, &st, &reason);
                if (r == -ENOMEM)
                        return r;
                if (r >= 0 &&
                    (memcmp(got.sha256, expected, sizeof(expected)) == 0 ||
                     (is_writing && memcmp(got.sha256, writing, sizeof(writing)) == 0)))
                        return served(hot_put(rd, id, got.sha256, &st, TAKE_PTR(key)), ret_key, ret_sha256);

                /* A sync thread may have replaced the file between the look and the read. A
                 * file that keeps being replaced is not damaged: the reader may ask again. */
                agent_key_read_forget(a, id);
                if (moved(a, id, expected)) {
                        if (attempt < READ_ATTEMPTS)
                                continue;
                        return -EAGAIN;
                }
                agent_cache_corrupt(
                        a, id, expected, r, r >= 0 ? "it differs from what the agent wrote" : reason);
                return -EBADMSG;
        }
}

/* One journal field, or NULL when out of memory (the field is then left out). */
_printf_(1, 2) static char *delivery_field(const char *fmt, ...) {
        char *f = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&f, fmt, ap) < 0)
                f = NULL;
        va_end(ap);
        return f;
}

/* Each key handed out (or not, over the credential socket), with journal fields
 * (journalctl KEYWARD_KEY_ID=ID lists who got it): the key's id and version, never its data. */
void agent_log_delivery(
        const Caller *c,
        const char *id,
        uint64_t version,
        const char *method,
        const char *credential,
        int r) {
        char *f[] = {
                delivery_field("KEYWARD_KEY_ID=%s", strempty(id)),
                delivery_field("KEYWARD_KEY_VERSION=%" PRIu64, version),
                delivery_field("KEYWARD_CALLER_UID=%u", (unsigned) c->uid),
                delivery_field("KEYWARD_CALLER_PID=%u", (unsigned) c->pid),
                c->unit ? delivery_field("KEYWARD_UNIT=%s", c->unit) : NULL,
                credential ? delivery_field("KEYWARD_CREDENTIAL=%s", credential) : NULL,
                delivery_field("KEYWARD_METHOD=%s", method ?: "credential"),
                delivery_field("KEYWARD_RESULT=%s", r >= 0 ? "delivered" : "failed"),
        };

        if (method)
                log_security_fields(
                        LOG_INFO, MESSAGE_ID_DELIVERY, f, ELEMENTSOF(f),
                        "Delivered key '%s' version %" PRIu64 " to uid %u pid %u unit %s (%s).",
                        LOG_NAME(id), version, (unsigned) c->uid, (unsigned) c->pid, LOG_NAME(c->unit),
                        method);
        else if (r >= 0)
                log_security_fields(
                        LOG_INFO, MESSAGE_ID_CREDENTIAL, f, ELEMENTSOF(f),
                        "Delivered key '%s' version %" PRIu64 " to unit %s as credential '%s'.",
                        LOG_NAME(id), version, LOG_NAME(c->unit), LOG_NAME(credential));
        else
                log_security_fields(
                        LOG_WARNING, MESSAGE_ID_CREDENTIAL, f, ELEMENTSOF(f),
                        "Could not deliver key '%s' version %" PRIu64 " to unit %s as credential '%s': %s.",
                        LOG_NAME(id), version, LOG_NAME(c->unit), LOG_NAME(credential),
                        r == -ETIME ? "the reader took too long" : strerror(-r));
        for (size_t i = 0; i < ELEMENTSOF(f); i++)
                free(f[i]);
}
