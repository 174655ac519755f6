/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-expiry.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cert-expiry.h"
#include "log.h"

/* The last warning per key version. Entries are dropped once a day has passed, so the table
 * holds at most the versions warned about in the last day. */
typedef struct Warned {
        char *id;
        uint64_t version;
        int64_t at;
} Warned;

struct AgentExpiry {
        pthread_mutex_t lock;
        Warned *items;
        size_t n;
};

AgentExpiry *agent_expiry_new(void) {
        AgentExpiry *e = calloc(1, sizeof(AgentExpiry));

        if (e)
                pthread_mutex_init(&e->lock, NULL);
        return e;
}

AgentExpiry *agent_expiry_free(AgentExpiry *e) {
        if (!e)
                return NULL;
        for (size_t i = 0; i < e->n; i++)
                free(e->items[i].id);
        free(e->items);
        pthread_mutex_destroy(&e->lock);
        free(e);
        return NULL;
}

/* Whether (id, version) was warned about within the last day; when not, record now. -ENOMEM
 * counts as "warn" (a warning too many beats none). */
static bool already_warned(AgentExpiry *e, const char *id, uint64_t version, int64_t now) {
        Warned *n;
        size_t j = 0;
        bool found = false;

        for (size_t i = 0; i < e->n; i++) {
                Warned *w = &e->items[i];

                if (now - w->at >= AGENT_EXPIRY_REPEAT_SEC || now < w->at) {
                        free(w->id);
                        continue;
                }
                if (w->version == version && streq(w->id, id))
                        found = true;
                e->items[j++] = *w;
        }
        e->n = j;
        if (found)
                return true;
        n = reallocarray(e->items, e->n + 1, sizeof(Warned));
        if (!n)
                return false;
        e->items = n;
        e->items[e->n] = (Warned){.id = strdup(id), .version = version, .at = now};
        if (e->items[e->n].id)
                e->n++;
        return false;
}

int agent_expiry_check(AgentExpiry *e, const Key *k, int64_t now) {
        const KeyVersion *p;
        int64_t not_after;
        char when[64] = "?";
        struct tm tm;
        time_t t;
        bool warned;

        if (!e || !k || !k->id)
                return 0;
        p = key_primary_version(k);
        if (!p || !p->data || cert_not_after(p->data->data, p->data->size, &not_after) <= 0)
                return 0;
        if (not_after - now > AGENT_EXPIRY_WINDOW_SEC)
                return 0;

        pthread_mutex_lock(&e->lock);
        warned = already_warned(e, k->id, p->id, now);
        pthread_mutex_unlock(&e->lock);
        if (warned)
                return 0;

        t = (time_t) not_after;
        if (gmtime_r(&t, &tm))
                (void) strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
        if (not_after < now)
                log_warning(
                        "Key '%s': the certificate in primary version %" PRIu64 " expired on %s.",
                        LOG_NAME(k->id), p->id, when);
        else
                log_warning(
                        "Key '%s': the certificate in primary version %" PRIu64 " expires on %s, in %" PRId64
                        " days.",
                        LOG_NAME(k->id), p->id, when, (not_after - now) / 86400);
        return 1;
}
