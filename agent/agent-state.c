/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's shared state as files other than the table's own (agent-keys.c) and the
 * sync threads' see it: each accessor takes a.lock itself, so that they lock nothing by
 * hand. */
#include <stdlib.h>
#include <string.h>

#include "agent.h"

void agent_status_done(AgentStatus *s) {
        free(s->last_error);
        s->last_error = NULL;
}

/* a.lock held. */
static void status_copy(Agent *a, AgentStatus *ret) {
        *ret = (AgentStatus){
                .connected = a->connected,
                .last_sync_usec = a->last_sync_usec,
                .sync_done = a->sync_done,
                .sync_error = a->sync_error,
        };
}

int agent_status_snapshot(Agent *a, AgentStatus *ret) {
        int r = 0;

        pthread_mutex_lock(&a->lock);
        status_copy(a, ret);
        if (a->last_error) {
                ret->last_error = strdup(a->last_error);
                if (!ret->last_error)
                        r = -ENOMEM;
        }
        pthread_mutex_unlock(&a->lock);
        return r;
}

void agent_take_changes(Agent *a, KeyChange **ret, size_t *ret_n, AgentStatus *ret_status) {
        pthread_mutex_lock(&a->lock);
        *ret = a->changes;
        *ret_n = a->n_changes;
        a->changes = NULL;
        a->n_changes = 0;
        status_copy(a, ret_status);
        a->status_dirty = false;
        pthread_mutex_unlock(&a->lock);
}

uint64_t agent_request_sync(Agent *a) {
        uint64_t target;

        pthread_mutex_lock(&a->lock);
        target = ++a->sync_requested;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        return target;
}

void agent_set_credential_waiting(Agent *a, bool waiting) {
        pthread_mutex_lock(&a->lock);
        a->credential_waiting = waiting;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
}

void agent_config_replace(Agent *a, AgentConfig *c) {
        pthread_mutex_lock(&a->lock);
        agent_config_done(&a->config);
        a->config = *c;
        *c = (AgentConfig){};
        a->config_gen++;
        /* New settings: their first failure is news even if it reads like the last. */
        free(a->last_error_logged);
        a->last_error_logged = NULL;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
}
