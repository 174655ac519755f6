/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who asks the agent for something: the uid the bus (or SO_PEERCRED) vouches for, the pid
 * and unit for the log, and the uid's groups, looked up through NSS only when a check
 * needs them. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

typedef struct Caller {
        char *sender; /* the unique bus name; NULL off the bus */
        uid_t uid;
        pid_t pid;
        char *unit;
        gid_t *groups;
        size_t n_groups;
        bool groups_known;
} Caller;

void caller_done(Caller *c);
/* Look up c's groups once (the primary group alone when NSS has no list, none when it has
 * no user entry). 0, or -ENOMEM. */
int caller_groups(Caller *c);

/* Callers by unique bus name. A unique name is never reused on a bus, and the bus took its
 * credentials when the connection was made, so they can be kept: this saves a round trip
 * to the bus (GetConnectionCredentials) on every call. */
#define CALLER_CACHE_SIZE 128

typedef struct CallerCache {
        Caller callers[CALLER_CACHE_SIZE];
        size_t next;
} CallerCache;

void caller_cache_done(CallerCache *cc);
/* Who sent m: the EUID the bus vouches for (never augmented from /proc), and the pid and
 * unit for the log. The Caller belongs to cc. 0, or a negative errno with error set. */
int caller_from_message(CallerCache *cc, sd_bus_message *m, Caller **ret, sd_bus_error *error);
