/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* `keywardd rekey`: re-seal every stored version under the cryptor's current master key while
 * servers keep serving (they run with the new key and the old one, --old-master-key). Keys
 * are written back in batches, each one transaction that changes only sealed forms (no
 * record version, hash or change counter moves), so a kill -9 loses nothing and a second run
 * picks up what is left. See keywardd(8), "Master key rotation", and docs/store.md. */

#include <stdint.h>

#include "cryptor.h"
#include "store.h"

typedef struct RekeyStats {
        uint64_t keys;       /* keys in the store at the end */
        uint64_t versions;   /* their versions */
        uint64_t resealed;   /* versions this run re-sealed under the current key */
        uint64_t remaining;  /* versions still sealed under another master key */
        uint64_t unopenable; /* of those, versions that no key given opens */
} RekeyStats;

/* Re-seal everything not yet under c's current key (c holds the old keys too), then count
 * what is left. Passes repeat while a concurrent write put back a key's old sealed forms,
 * at most a few times. Errors are store errors; versions no key opens are counted, logged
 * and left as they are. */
int rekey_store(Store *store, const Cryptor *c, RekeyStats *ret);
