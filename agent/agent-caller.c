/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-caller.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-login.h>

#include "agent-bus.h"
#include "macro.h"
#include "user-util.h"

void caller_done(Caller *c) {
        free(c->sender);
        free(c->unit);
        free(c->groups);
        *c = (Caller){};
}

int caller_groups(Caller *c) {
        _cleanup_free_ char *name = NULL;
        gid_t gid;
        int r;

        if (c->groups_known)
                return 0;
        r = user_by_uid(c->uid, &name, &gid);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                /* No user entry: no groups either; the uid alone decides. */
                c->groups_known = true;
                return 0;
        }
        r = user_group_ids(name, gid, &c->groups, &c->n_groups);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                /* Fall back to the primary group alone. */
                c->groups = malloc(sizeof(gid_t));
                if (!c->groups)
                        return -ENOMEM;
                c->groups[0] = gid;
                c->n_groups = 1;
        }
        c->groups_known = true;
        return 0;
}

void caller_cache_done(CallerCache *cc) {
        for (size_t i = 0; i < CALLER_CACHE_SIZE; i++)
                caller_done(&cc->callers[i]);
        cc->next = 0;
}

int caller_from_message(CallerCache *cc, sd_bus_message *m, Caller **ret, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *sender;
        Caller *c;
        uid_t uid;
        pid_t pid = 0;
        int r;

        sender = sd_bus_message_get_sender(m);
        if (!sender)
                return sd_bus_error_set(error, AGENT_ERROR_ACCESS_DENIED, "The caller has no bus name.");
        for (size_t i = 0; i < CALLER_CACHE_SIZE; i++)
                if (cc->callers[i].sender && streq(cc->callers[i].sender, sender)) {
                        *ret = &cc->callers[i];
                        return 0;
                }

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID, &creds);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot identify the caller: %m");
        if (sd_bus_creds_get_augmented_mask(creds) & SD_BUS_CREDS_EUID)
                return sd_bus_error_set(
                        error, AGENT_ERROR_ACCESS_DENIED, "The bus did not vouch for the caller's uid.");
        r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                return sd_bus_error_set(
                        error, AGENT_ERROR_ACCESS_DENIED, "The bus did not vouch for the caller's uid.");
        (void) sd_bus_creds_get_pid(creds, &pid);

        c = &cc->callers[cc->next];
        cc->next = (cc->next + 1) % CALLER_CACHE_SIZE;
        caller_done(c);
        c->sender = strdup(sender);
        if (!c->sender)
                return sd_bus_error_set_errno(error, -ENOMEM);
        c->uid = uid;
        c->pid = pid;
        if (pid > 0 && sd_pid_get_unit(pid, &c->unit) < 0)
                c->unit = NULL;
        *ret = c;
        return 0;
}
