/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A worker's held watches indexed by the key ids they wait on, so that a change to one key
 * finds its watchers without looking at any other watch. Each watched key also keeps the
 * hash last read for it in a fan-out pass, so that the many watchers of one key cost one
 * store lookup per pass, not one each. Used by one thread; no locking. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "key.h"
#include "macro.h"

typedef struct WatchIndex WatchIndex;
typedef struct WatchKey WatchKey;
typedef struct WatchLink WatchLink;

/* One key id with the watches on it. */
struct WatchKey {
        char *id;
        WatchLink *links; /* doubly linked, newest first */
        size_t n_links;
        WatchKey *bucket_next;
        /* The hash read in pass `pass`: hash_r is store_get_hash()'s answer (0, -ENOKEY, ...) */
        uint64_t pass;
        int hash_r;
        char hash[KEY_HASH_HEX_SIZE];
};

/* One watch's interest in one key, with the hash the watcher has (not NUL-terminated). */
struct WatchLink {
        WatchKey *key;
        void *watch;
        const char *want;
        size_t want_len;
        WatchLink *prev, *next;
};

WatchIndex *watch_index_new(void);
/* Every link must have been removed first. */
WatchIndex *watch_index_free(WatchIndex *ix);
DEFINE_TRIVIAL_CLEANUP_FUNC(WatchIndex *, watch_index_free);

/* Add watch's interest in id. When the same watch already waits on id (a query naming a key
 * twice), its link is reused with the new hash (the last value counts, as Knox reads it)
 * and 0 is returned; else the new link and 1. want must outlive the link. */
int watch_index_add(
        WatchIndex *ix, const char *id, void *watch, const char *want, size_t want_len, WatchLink **ret);

/* Remove and free a link; a key left without watchers is dropped. */
void watch_index_remove(WatchIndex *ix, WatchLink *l);

/* The watched key id, or NULL when nobody waits on it. */
WatchKey *watch_index_find(const WatchIndex *ix, const char *id);

size_t watch_index_keys(const WatchIndex *ix);
