/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's cache files: whatever is on disk must be rejected or open to a key that
 * encodes back to what decodes the same. Each input is tried three ways: as a sealed file
 * (the envelope parser and the AEAD, under a fixed key), as the plaintext JSON behind the
 * AEAD (which a mutated sealed file never reaches: its tag fails), sealed anew so that it
 * passes the tag and reaches the decoder through cache_open_file(), as the record of the
 * files written (cache_seen_parse()), and as the --cache-key and --tpm2-pcrs settings. */
#undef NDEBUG
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "agent-cache.h"
#include "cache-key.h"
#include "fuzz.h"

static void check_plain(const uint8_t *data, size_t size) {
        _cleanup_(key_freep) Key *k = NULL;
        _cleanup_(secret_freep) Secret *s = NULL;
        CacheInfo info = {}, again = {};
        const char *reason = NULL;

        if (cache_decode(data, size, NULL, &k, &info, &reason) < 0) {
                assert(reason);
                return;
        }
        assert(info.valid);
        assert(key_primary_version(k));
        assert(cache_encode(k, &s, &again) == 0);
        assert(again.primary == info.primary);
        assert(memcmp(again.hash, info.hash, sizeof(info.hash)) == 0);
        /* Re-encoding may normalize the JSON, but what it writes must decode. */
        assert(cache_decode(s->data, s->size, k->id, NULL, NULL, NULL) == 0);
}

static void check_sealed(const Secret *seal, const uint8_t *data, size_t size) {
        _cleanup_(secret_freep) Secret *plain = NULL;
        const char *reason = NULL;
        uint8_t hash[CACHE_HASH_SIZE];
        uint64_t seq = 0;
        int r;

        r = cache_open_file(seal, "k1", data, size, &plain, &seq, hash, &reason);
        if (r < 0) {
                assert(r == -EBADMSG || r == -EPROTONOSUPPORT || r == -ENOMEM);
                return;
        }
        check_plain(plain->data, plain->size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(secret_freep) Secret *seal = NULL, *plain = NULL;
        _cleanup_free_ uint8_t *file = NULL;
        CacheSeen *seen = NULL;
        uint8_t hash[CACHE_HASH_SIZE] = {};
        size_t n = 0, n_seen = 0;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        seal = secret_new(CACHE_KEY_SIZE);
        assert(seal);
        memset(seal->data, 0x5a, seal->size);

        check_sealed(seal, data, size);
        check_plain(data, size);

        plain = secret_new_copy(data, size);
        assert(plain);
        assert(cache_seal_file(seal, "k1", 1, hash, plain, &file, &n) == 0);
        check_sealed(seal, file, n);

        if (cache_seen_parse(data, size, &seen, &n_seen) >= 0)
                cache_seen_free(seen, n_seen);

        /* The settings --cache-key and --tpm2-pcrs, as text. */
        {
                _cleanup_free_ char *text = strndup((const char *) data, size);
                uint32_t mask = 0;

                assert(text);
                (void) cache_key_spec_is_valid(text);
                if (cache_key_parse_pcrs(text, &mask) >= 0)
                        assert(mask < UINT32_C(1) << 24);
        }
        return 0;
}
