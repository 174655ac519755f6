/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Chained hash table of watched key ids. Ids come from clients, so the hash is keyed with a
 * random seed per index: collisions cannot be planned from outside. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "random-util.h"
#include "watch-index.h"

#define INITIAL_BUCKETS 64

struct WatchIndex {
        WatchKey **buckets;
        size_t n_buckets; /* a power of two */
        size_t n_keys;
        uint64_t seed;
};

/* FNV-1a over the seed and the bytes, with a final mix. */
static uint64_t hash_id(const WatchIndex *ix, const char *id) {
        uint64_t h = 0xcbf29ce484222325ULL ^ ix->seed;

        for (const unsigned char *p = (const unsigned char *) id; *p; p++) {
                h ^= *p;
                h *= 0x100000001b3ULL;
        }
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        return h;
}

WatchIndex *watch_index_new(void) {
        WatchIndex *ix;

        ix = calloc(1, sizeof(WatchIndex));
        if (!ix)
                return NULL;
        ix->buckets = calloc(INITIAL_BUCKETS, sizeof(WatchKey *));
        if (!ix->buckets) {
                free(ix);
                return NULL;
        }
        ix->n_buckets = INITIAL_BUCKETS;
        if (random_bytes(&ix->seed, sizeof(ix->seed)) < 0)
                ix->seed = (uint64_t) (uintptr_t) ix;
        return ix;
}

WatchIndex *watch_index_free(WatchIndex *ix) {
        if (!ix)
                return NULL;
        for (size_t i = 0; i < ix->n_buckets; i++)
                while (ix->buckets[i]) {
                        WatchKey *k = ix->buckets[i];

                        ix->buckets[i] = k->bucket_next;
                        free(k->id);
                        free(k);
                }
        free(ix->buckets);
        free(ix);
        return NULL;
}

WatchKey *watch_index_find(const WatchIndex *ix, const char *id) {
        for (WatchKey *k = ix->buckets[hash_id(ix, id) & (ix->n_buckets - 1)]; k; k = k->bucket_next)
                if (strcmp(k->id, id) == 0)
                        return k;
        return NULL;
}

size_t watch_index_keys(const WatchIndex *ix) {
        return ix->n_keys;
}

/* Double the table; on failure keep the old one (longer chains, still correct). */
static void grow(WatchIndex *ix) {
        size_t n = ix->n_buckets * 2;
        WatchKey **b;

        b = calloc(n, sizeof(WatchKey *));
        if (!b)
                return;
        for (size_t i = 0; i < ix->n_buckets; i++)
                while (ix->buckets[i]) {
                        WatchKey *k = ix->buckets[i];
                        size_t j = hash_id(ix, k->id) & (n - 1);

                        ix->buckets[i] = k->bucket_next;
                        k->bucket_next = b[j];
                        b[j] = k;
                }
        free(ix->buckets);
        ix->buckets = b;
        ix->n_buckets = n;
}

int watch_index_add(
        WatchIndex *ix, const char *id, void *watch, const char *want, size_t want_len, WatchLink **ret) {
        WatchKey *k;
        WatchLink *l;

        k = watch_index_find(ix, id);
        /* A watch's links to one key are added one after the other: a repeat is at the head. */
        if (k && k->links && k->links->watch == watch) {
                k->links->want = want;
                k->links->want_len = want_len;
                *ret = k->links;
                return 0;
        }

        l = calloc(1, sizeof(WatchLink));
        if (!l)
                return -ENOMEM;
        if (!k) {
                size_t j;

                k = calloc(1, sizeof(WatchKey));
                if (!k || !(k->id = strdup(id))) {
                        free(k);
                        free(l);
                        return -ENOMEM;
                }
                if (ix->n_keys >= ix->n_buckets)
                        grow(ix);
                j = hash_id(ix, id) & (ix->n_buckets - 1);
                k->bucket_next = ix->buckets[j];
                ix->buckets[j] = k;
                ix->n_keys++;
        }

        l->key = k;
        l->watch = watch;
        l->want = want;
        l->want_len = want_len;
        l->next = k->links;
        if (k->links)
                k->links->prev = l;
        k->links = l;
        k->n_links++;
        *ret = l;
        return 1;
}

void watch_index_remove(WatchIndex *ix, WatchLink *l) {
        WatchKey *k;

        if (!l)
                return;
        k = l->key;
        if (l->prev)
                l->prev->next = l->next;
        else
                k->links = l->next;
        if (l->next)
                l->next->prev = l->prev;
        k->n_links--;
        free(l);

        if (k->links)
                return;
        for (WatchKey **p = &ix->buckets[hash_id(ix, k->id) & (ix->n_buckets - 1)]; *p;
             p = &(*p)->bucket_next)
                if (*p == k) {
                        *p = k->bucket_next;
                        break;
                }
        ix->n_keys--;
        free(k->id);
        free(k);
}
