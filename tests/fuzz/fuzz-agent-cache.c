/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's cache file format: whatever is on disk must be rejected or parse to a key
 * that encodes back to the same bytes. Each input is tried twice: as it is, which exercises
 * the header and checksum checks, and with its header made anew over the JSON behind it, so
 * that mutations of the JSON get past the checksum and reach the parser. */
#undef NDEBUG
#include <assert.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "agent-cache.h"
#include "fuzz.h"
#include "hexdecoct.h"

#define MAGIC "keyward-cache-v1 sha256="
#define HEADER_SIZE (sizeof(MAGIC) - 1 + 2 * CACHE_SHA256_SIZE + 1)

static void check(const uint8_t *data, size_t size) {
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t digest[CACHE_SHA256_SIZE];
        const uint8_t *body = data;
        size_t n = size;
        unsigned len = 0;
        uint8_t *file;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        check(data, size);

        /* The JSON behind a header, or the whole input when it has none. */
        if (size >= HEADER_SIZE && memcmp(data, MAGIC, sizeof(MAGIC) - 1) == 0) {
                body = data + HEADER_SIZE;
                n = size - HEADER_SIZE;
        }
        assert(EVP_Digest(body, n, digest, &len, EVP_sha256(), NULL) == 1 && len == sizeof(digest));
        file = malloc(HEADER_SIZE + n + 1);
        assert(file);
        memcpy(file, MAGIC, sizeof(MAGIC) - 1);
        hexencode(digest, sizeof(digest), (char *) file + sizeof(MAGIC) - 1);
        file[HEADER_SIZE - 1] = '\n';
        if (n > 0)
                memcpy(file + HEADER_SIZE, body, n);
        check(file, HEADER_SIZE + n);
        free(file);
        return 0;
}
