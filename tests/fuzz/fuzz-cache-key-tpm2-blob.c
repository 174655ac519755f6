/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's sealed cache key blob (agent/cache-key-tpm2.c): our header, then the TPM's
 * marshalled TPM2B_PUBLIC and TPM2B_PRIVATE. No TPM here: whatever is on disk must be refused
 * or parse to a blob that formats back to exactly the same bytes. */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "cache-key-tpm2.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        CacheKeyTpm2Blob blob, again;
        uint8_t buf[CACHE_KEY_TPM2_BLOB_MAX];
        size_t n;
        int r;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        r = cache_key_tpm2_blob_parse(data, size, &blob);
        if (r < 0) {
                assert(r == -EBADMSG);
                return 0;
        }
        assert((blob.pcr_mask & ~CACHE_KEY_TPM2_PCR_MASK_ALL) == 0);
        assert(cache_key_tpm2_blob_format(&blob, buf, sizeof(buf), &n) == 0);
        assert(n == size && memcmp(buf, data, size) == 0);
        assert(cache_key_tpm2_blob_parse(buf, n, &again) == 0);
        assert(again.pcr_mask == blob.pcr_mask);
        return 0;
}
