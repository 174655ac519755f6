/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The lists of ids and hashes a sync request names, and their split into requests within
 * --max-request-size and the keys-per-request limit. */
#include <stdlib.h>
#include <string.h>

#include "agent-sync-internal.h"

#define SNAPSHOT_BLOCK_MIN (4 * 1024)
#define SNAPSHOT_BLOCK_MAX (256 * 1024)

/* The length "id=hash&" takes in a query string (ids are [A-Za-z0-9_:], ':' is escaped). */
size_t entry_size(const char *id, const char *hash) {
        size_t n = strlen(id) + strlen(hash) + 2;

        for (const char *p = id; *p; p++)
                if (*p == ':')
                        n += 2;
        return n;
}

void snapshot_done(Snapshot *s) {
        while (s->blocks) {
                SnapshotBlock *b = s->blocks;

                s->blocks = b->next;
                free(b);
        }
        free(s->ids);
        free(s->hashes);
        *s = (Snapshot){};
}

static char *snapshot_copy(Snapshot *s, const char *str) {
        size_t n = strlen(str) + 1;
        SnapshotBlock *b = s->blocks;
        char *p;

        if (!b || b->size - b->used < n) {
                size_t size = MAX(n, b ? MIN(b->size * 2, (size_t) SNAPSHOT_BLOCK_MAX) : SNAPSHOT_BLOCK_MIN);

                b = malloc(offsetof(SnapshotBlock, data) + size);
                if (!b)
                        return NULL;
                *b = (SnapshotBlock){.next = s->blocks, .size = size};
                s->blocks = b;
        }
        p = memcpy(b->data + b->used, str, n);
        b->used += n;
        return p;
}

int snapshot_add(Snapshot *s, const char *id, const char *hash) {
        char *i, *h;

        if (s->n == s->n_alloc) {
                size_t m = MAX(s->n_alloc * 2, (size_t) 64);
                char **ids, **hashes;

                ids = reallocarray(s->ids, m, sizeof(char *));
                if (!ids)
                        return -ENOMEM;
                s->ids = ids;
                hashes = reallocarray(s->hashes, m, sizeof(char *));
                if (!hashes)
                        return -ENOMEM;
                s->hashes = hashes;
                s->n_alloc = m;
        }
        i = snapshot_copy(s, id);
        h = i ? snapshot_copy(s, hash) : NULL;
        if (!h)
                return -ENOMEM;
        s->ids[s->n] = i;
        s->hashes[s->n] = h;
        s->n++;
        s->size += entry_size(id, hash);
        return 0;
}

size_t chunk_place(Chunker *c, const char *id, const char *hash, size_t max, size_t max_keys) {
        size_t e = entry_size(id, hash);

        if (c->n > 0 && (c->n >= max_keys || c->size + e > max))
                *c = (Chunker){.index = c->index + 1};
        c->n++;
        c->size += e;
        return c->index;
}

/* Whether id can join s without passing max bytes or max_keys ids. */
bool snapshot_fits(const Snapshot *s, const char *id, const char *hash, size_t max, size_t max_keys) {
        return s->n == 0 || (s->n < max_keys && s->size + entry_size(id, hash) <= max);
}
