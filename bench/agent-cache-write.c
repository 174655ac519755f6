/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agent-cache-write [--rounds N] [--keys K] [--size BYTES] DIR: the cost of a rotation's write
 * to disk in the agent's cache, in process, with the same key: before (the plaintext file of
 * keyward-cache-v1: a checksum line and the JSON, written atomically and durably) and after
 * (the sealed file of cache_write_content(), then the record of the files written, K keys
 * long, as sync_commit() does). Rounds alternate the two so that the disk's mood hits both.
 * Prints one line of key=value figures (microseconds) and the ratios. */
#include <getopt.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent-cache.h"
#include "bench-util.h"
#include "cache-key.h"
#include "fileio.h"
#include "hexdecoct.h"
#include "random-util.h"

static uint64_t now_us(void) {
        return bench_now_ns() / 1000;
}

static Key *make_key(size_t size, uint64_t round) {
        KeyVersion v = {.id = round + 1, .status = VERSION_STATUS_PRIMARY, .ts = 1800000000000000000};
        Key *k = key_new();

        if (!k || !(k->id = strdup("bench_key")))
                return NULL;
        v.data = secret_new(size);
        if (!v.data || random_bytes(v.data->data, size) < 0 || key_append_version(k, &v) < 0)
                return NULL;
        return k;
}

int main(int argc, char **argv) {
        size_t rounds = 200, keys = 1000, size = 64;
        _cleanup_(secret_freep) Secret *seal = NULL, *seen_seal = NULL;
        _cleanup_free_ uint64_t *plain_us = NULL, *sealed_us = NULL;
        _cleanup_free_ char *v1_path = NULL, *seen_path = NULL;
        CacheSeen *seen = NULL;
        const char *dir;
        int c;

        while ((c = getopt_long(
                        argc, argv, "",
                        (const struct option[]){
                                {"rounds", required_argument, NULL, 'r'},
                                {"keys", required_argument, NULL, 'k'},
                                {"size", required_argument, NULL, 's'},
                                {},
                        },
                        NULL)) >= 0)
                switch (c) {
                case 'r':
                        rounds = strtoul(optarg, NULL, 10);
                        break;
                case 'k':
                        keys = strtoul(optarg, NULL, 10);
                        break;
                case 's':
                        size = strtoul(optarg, NULL, 10);
                        break;
                default:
                        return 2;
                }
        if (optind != argc - 1 || rounds < 2 || keys < 1 || size < 1) {
                fprintf(stderr, "Usage: %s [--rounds N] [--keys K] [--size BYTES] DIR\n", argv[0]);
                return 2;
        }
        dir = argv[optind];
        if (cache_dir_setup(dir) < 0)
                return 1;
        seal = secret_new(CACHE_KEY_SIZE);
        seen_seal = secret_new(CACHE_KEY_SIZE);
        plain_us = calloc(rounds, sizeof(uint64_t));
        sealed_us = calloc(rounds, sizeof(uint64_t));
        seen = calloc(keys, sizeof(CacheSeen));
        if (!seal || !seen_seal || !plain_us || !sealed_us || !seen ||
            asprintf(&v1_path, "%s/bench_key.v1", dir) < 0 ||
            asprintf(&seen_path, "%s/seen.sealed", dir) < 0)
                return 1;
        (void) random_bytes(seal->data, seal->size);
        (void) random_bytes(seen_seal->data, seen_seal->size);
        for (size_t i = 0; i < keys; i++) {
                if (asprintf(&seen[i].id, "key%07zu", i) < 0)
                        return 1;
                seen[i].seq = i + 1;
        }

        for (size_t r = 0; r < rounds; r++) {
                _cleanup_(key_freep) Key *k = make_key(size, r);
                _cleanup_(secret_freep) Secret *content = NULL;
                CacheInfo info;
                uint8_t digest[32];
                unsigned len = 0;
                char header[128];
                uint64_t t0;
                int n;

                if (!k || cache_encode(k, &content, &info) < 0)
                        return 1;
                info.seq = r + 1;

                /* Before: the v1 file, a checksum line over the JSON, in the clear. */
                t0 = now_us();
                {
                        _cleanup_(secret_freep) Secret *file = NULL;

                        if (EVP_Digest(content->data, content->size, digest, &len, EVP_sha256(), NULL) != 1)
                                return 1;
                        n = snprintf(header, sizeof(header), "keyward-cache-v1 sha256=");
                        hexencode(digest, sizeof(digest), header + n);
                        n += 64;
                        header[n++] = '\n';
                        file = secret_new((size_t) n + content->size);
                        if (!file)
                                return 1;
                        memcpy(file->data, header, (size_t) n);
                        memcpy(file->data + n, content->data, content->size);
                        if (write_file_atomic(v1_path, file->data, file->size, 0600) < 0)
                                return 1;
                }
                plain_us[r] = now_us() - t0;

                /* After: sealed, and the record rewritten. */
                t0 = now_us();
                if (cache_write_content(dir, seal, "bench_key", &info, content) < 0)
                        return 1;
                seen[0].seq = info.seq;
                if (cache_seen_save(seen_path, seen_seal, seen, keys) < 0)
                        return 1;
                sealed_us[r] = now_us() - t0;
        }
        qsort(plain_us, rounds, sizeof(uint64_t), bench_cmp_u64);
        qsort(sealed_us, rounds, sizeof(uint64_t), bench_cmp_u64);
        printf("rounds=%zu keys=%zu size=%zu plain_p50_us=%llu plain_p99_us=%llu sealed_p50_us=%llu "
               "sealed_p99_us=%llu ratio_p50=%.2f ratio_p99=%.2f\n",
               rounds, keys, size, (unsigned long long) bench_percentile(plain_us, rounds, 0.5),
               (unsigned long long) bench_percentile(plain_us, rounds, 0.99),
               (unsigned long long) bench_percentile(sealed_us, rounds, 0.5),
               (unsigned long long) bench_percentile(sealed_us, rounds, 0.99),
               (double) bench_percentile(sealed_us, rounds, 0.5) /
                       (double) (bench_percentile(plain_us, rounds, 0.5) ?: 1),
               (double) bench_percentile(sealed_us, rounds, 0.99) /
                       (double) (bench_percentile(plain_us, rounds, 0.99) ?: 1));
        cache_seen_free(seen, keys);
        return 0;
}
