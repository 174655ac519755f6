/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A worker's cache of stored key records (sealed: no plaintext is ever kept), so that a GET
 * need not read and parse the record again. It is direct-mapped and bounded, and any write
 * anywhere invalidates all of it: every entry remembers the generation it was read in, and
 * the server's generation moves on with every write (and when the store's change counter
 * shows a write by another process); a change another server announces drops that key's
 * entry alone (key_cache_forget). Used by one thread. */

#include <stdint.h>

#include "key.h"

#define KEY_CACHE_SLOTS 4096

typedef struct KeyCache KeyCache;

KeyCache *key_cache_new(void);
KeyCache *key_cache_free(KeyCache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(KeyCache *, key_cache_free);

/* The cached record of id read in this generation, or NULL. The key stays owned by the
 * cache; a GET opens copies of its versions into Secrets of its own (server-api.c), never the
 * cached versions, so the record holds sealed data only; key_cache_close() stays as a guard. */
Key *key_cache_get(KeyCache *c, const char *id, uint64_t generation, int64_t *ret_version);

/* Take ownership of a record read in this generation. */
void key_cache_put(KeyCache *c, Key *k, int64_t version, uint64_t generation);

/* Drop the cached record of id, if there is one: another server changed that key. */
void key_cache_forget(KeyCache *c, const char *id);

/* Wipe and free the plaintext of every version of a cached key. */
void key_cache_close(Key *k);
