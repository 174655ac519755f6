/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agent-unseal KEYFILE FILE: print the plaintext of one of keyward-agent's sealed files (a
 * cache file, named by its key id, the registry or the record of the files written) under
 * the host cache key in KEYFILE, so that tests can look inside. Exit 1 when it does not
 * open. For tests only: it writes secrets to stdout. */
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent-cache.h"
#include "agent-registry.h"
#include "cache-key.h"
#include "fileio.h"

int main(int argc, char **argv) {
        _cleanup_(secret_freep) Secret *host = NULL, *purpose = NULL, *plain = NULL;
        _cleanup_free_ char *text = NULL, *copy = NULL;
        size_t n = 0;
        const char *what;
        int r;

        if (argc != 3) {
                fprintf(stderr, "Usage: %s KEYFILE FILE\n", argv[0]);
                return 2;
        }
        if (cache_key_file(argv[1], NULL, &host) < 0 ||
            read_full_file(argv[2], CACHE_FILE_MAX + 4096, &text, &n) < 0)
                return 1;
        copy = strdup(argv[2]);
        if (!copy)
                return 1;
        if (n >= 17 && memcmp(text, "keyward-cache-v2\n", 17) == 0) {
                uint8_t hash[CACHE_HASH_SIZE];
                uint64_t seq = 0;

                what = "cache";
                if (cache_key_derive(host, what, &purpose) < 0)
                        return 1;
                r = cache_open_file(
                        purpose, basename(copy), (const uint8_t *) text, n, &plain, &seq, hash, NULL);
        } else {
                what = strncmp(text, "keyward-seen-v1\n", 16) == 0 ? "seen" : "registry";
                if (cache_key_derive(host, what, &purpose) < 0)
                        return 1;
                r = cache_unseal_blob(
                        purpose, streq(what, "seen") ? "keyward-seen-v1\n" : REGISTRY_SEALED_MAGIC,
                        (const uint8_t *) text, n, &plain);
        }
        if (r < 0) {
                fprintf(stderr, "%s: does not open (%s)\n", argv[2], strerror(-r));
                return 1;
        }
        fwrite(plain->data, 1, plain->size, stdout);
        return fflush(stdout) == 0 ? 0 : 1;
}
