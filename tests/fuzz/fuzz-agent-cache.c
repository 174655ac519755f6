/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's cache file format: whatever is on disk must be rejected or parse to a key
 * that encodes back to the same bytes. */
#undef NDEBUG
#include <assert.h>
#include <string.h>

#include "agent-cache.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(key_freep) Key *k = NULL;
        _cleanup_(secret_freep) Secret *s = NULL;
        CacheInfo info = {}, again = {};
        const char *reason = NULL;

        if (size > FUZZ_INPUT_MAX)
                return 0;

        if (cache_decode(data, size, NULL, &k, &info, &reason) < 0) {
                assert(reason);
                return 0;
        }
        assert(info.valid);
        assert(key_primary_version(k));
        assert(cache_encode(k, &s, &again) == 0);
        assert(again.primary == info.primary);
        assert(memcmp(again.hash, info.hash, sizeof(info.hash)) == 0);
        /* Re-encoding may normalize the JSON, but what it writes must decode. */
        assert(cache_decode(s->data, s->size, k->id, NULL, NULL, NULL) == 0);
        return 0;
}
