/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "key-cache.h"

#include <string.h>

typedef struct Entry {
        Key *key;
        int64_t version;
        uint64_t generation;
} Entry;

struct KeyCache {
        Entry slots[KEY_CACHE_SLOTS];
};

/* FNV-1a: ids are short and not chosen by an attacker who could gain from collisions beyond
 * evicting each other's entries. */
static size_t slot_of(const char *id) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (const unsigned char *p = (const unsigned char *) id; *p; p++)
                h = (h ^ *p) * UINT64_C(0x100000001b3);
        return (size_t) (h % KEY_CACHE_SLOTS);
}

KeyCache *key_cache_new(void) {
        return calloc(1, sizeof(KeyCache));
}

KeyCache *key_cache_free(KeyCache *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < KEY_CACHE_SLOTS; i++)
                key_free(c->slots[i].key);
        free(c);
        return NULL;
}

Key *key_cache_get(KeyCache *c, const char *id, uint64_t generation, int64_t *ret_version) {
        Entry *e = &c->slots[slot_of(id)];

        if (!e->key || e->generation != generation || !streq(e->key->id, id))
                return NULL;
        if (ret_version)
                *ret_version = e->version;
        return e->key;
}

void key_cache_put(KeyCache *c, Key *k, int64_t version, uint64_t generation) {
        Entry *e = &c->slots[slot_of(k->id)];

        key_cache_close(k);
        if (e->key != k)
                key_free(e->key);
        *e = (Entry){.key = k, .version = version, .generation = generation};
}

void key_cache_forget(KeyCache *c, const char *id) {
        Entry *e = &c->slots[slot_of(id)];

        if (!e->key || !streq(e->key->id, id))
                return;
        key_free(e->key);
        *e = (Entry){};
}

void key_cache_close(Key *k) {
        for (size_t i = 0; i < k->n_versions; i++)
                k->versions[i].data = secret_free(k->versions[i].data);
}
