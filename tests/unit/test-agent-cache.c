/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "agent-cache.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache-key.h"
#include "fileio.h"
#include "random-util.h"
#include "tests.h"

typedef struct Fixture {
        char dir[64];
        char cache[80];
} Fixture;

/* The cache purpose key of the tests' "host", and of another one. */
static Secret *seal, *other_seal;

static Secret *random_key(void) {
        Secret *s = secret_new(CACHE_KEY_SIZE);

        assert_non_null(s);
        assert_int_equal(random_bytes(s->data, s->size), 0);
        return s;
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));

        if (!f)
                return -1;
        (void) snprintf(f->dir, sizeof(f->dir), "/tmp/test-agent-cache.XXXXXX");
        if (!mkdtemp(f->dir)) {
                free(f);
                return -1;
        }
        (void) snprintf(f->cache, sizeof(f->cache), "%s/cache", f->dir);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        (void) tests_rm_rf(f->dir);
        free(f);
        return 0;
}

static void add_version(Key *k, uint64_t id, VersionStatus status, const char *data) {
        KeyVersion v = {.id = id, .status = status, .ts = 1800000000123456789};

        v.data = secret_new_copy(data, strlen(data));
        assert_non_null(v.data);
        assert_int_equal(key_append_version(k, &v), 0);
}

/* A key as a machine gets it: the primary and an active version (ids past 2^53). */
static Key *make_key(const char *id) {
        Key *k = key_new();

        assert_non_null(k);
        k->id = strdup(id);
        assert_non_null(k->id);
        add_version(k, UINT64_C(9007199254740993), VERSION_STATUS_ACTIVE, "old secret");
        add_version(k, UINT64_C(9223372036854775807), VERSION_STATUS_PRIMARY, "new secret");
        return k;
}

static void test_encode_decode(void **state) {
        _cleanup_(key_freep) Key *k = make_key("db:password"), *back = NULL;
        _cleanup_(secret_freep) Secret *s = NULL;
        CacheInfo info = {}, info2 = {};
        const char *reason = NULL;

        assert_int_equal(cache_encode(k, &s, &info), 0);
        assert_true(info.valid);
        {
                char hex[KEY_HASH_HEX_SIZE];

                assert_string_equal(cache_info_hash(&info, hex), k->hash);
                info.valid = false;
                assert_string_equal(cache_info_hash(&info, hex), "");
                info.valid = true;
        }
        assert_true(info.primary == UINT64_C(9223372036854775807));
        assert_memory_equal(s->data, "{\"id\":\"db:password\"", 19);

        assert_int_equal(cache_decode(s->data, s->size, "db:password", &back, &info2, &reason), 0);
        assert_memory_equal(&info, &info2, sizeof(info));
        assert_string_equal(back->id, "db:password");
        assert_string_equal(back->hash, k->hash);
        assert_int_equal(back->n_versions, 2);
        assert_true(back->versions[0].id == UINT64_C(9007199254740993));
        assert_int_equal(back->versions[0].status, VERSION_STATUS_ACTIVE);
        assert_int_equal(back->versions[0].data->size, 10);
        assert_memory_equal(back->versions[0].data->data, "old secret", 10);
        assert_memory_equal(key_primary_version(back)->data->data, "new secret", 10);

        /* Checking only, and for any id. */
        assert_int_equal(cache_decode(s->data, s->size, NULL, NULL, NULL, NULL), 0);
}

/* A sealed file opens only as the key it was written for, with this host's key, untouched. */
static void test_open_corrupt(void **state) {
        _cleanup_(key_freep) Key *k = make_key("k1");
        _cleanup_(secret_freep) Secret *plain = NULL, *back = NULL;
        _cleanup_free_ uint8_t *file = NULL;
        CacheInfo info = {};
        const char *reason = NULL;
        uint8_t hash[CACHE_HASH_SIZE];
        uint64_t seq = 0;
        size_t n = 0;
        uint8_t *copy;

        assert_int_equal(cache_encode(k, &plain, &info), 0);
        assert_int_equal(cache_seal_file(seal, "k1", 7, info.hash, plain, &file, &n), 0);
        assert_memory_equal(file, "keyward-cache-v2\n", 17);
        /* No plaintext: neither the JSON nor the secret. */
        assert_null(memmem(file, n, "new secret", 10));
        assert_null(memmem(file, n, "\"versions\"", 10));

        assert_int_equal(cache_open_file(seal, "k1", file, n, &back, &seq, hash, &reason), 0);
        assert_true(seq == 7);
        assert_memory_equal(hash, info.hash, CACHE_HASH_SIZE);
        assert_int_equal(back->size, plain->size);
        assert_memory_equal(back->data, plain->data, plain->size);
        back = secret_free(back);

        copy = malloc(n);
        assert_non_null(copy);
        /* One flipped byte: of the ciphertext, the tag, the sequence, the hash. */
        for (size_t i = 0, offs[] = {n / 2, n - 1, 17, 30}; i < ELEMENTSOF(offs); i++) {
                size_t off = offs[i];

                memcpy(copy, file, n);
                copy[off] ^= 1;
                assert_int_equal(cache_open_file(seal, "k1", copy, n, &back, NULL, hash, &reason), -EBADMSG);
                assert_non_null(strstr(reason, "does not open"));
        }
        /* Cut short, by a byte or to the header. */
        assert_int_equal(cache_open_file(seal, "k1", file, n - 1, &back, NULL, hash, &reason), -EBADMSG);
        assert_int_equal(cache_open_file(seal, "k1", file, 20, &back, NULL, hash, &reason), -EBADMSG);
        assert_string_equal(reason, "no cache header");
        assert_int_equal(cache_open_file(seal, "k1", file, 0, &back, NULL, hash, &reason), -EBADMSG);
        /* Another key's file renamed, another host's key. */
        assert_int_equal(cache_open_file(seal, "k2", file, n, &back, NULL, hash, &reason), -EBADMSG);
        assert_int_equal(cache_open_file(other_seal, "k1", file, n, &back, NULL, hash, &reason), -EBADMSG);
        assert_null(back);
        /* A plaintext file of the earlier format. */
        memcpy(copy, "keyward-cache-v1 sha256=", 24);
        assert_int_equal(cache_open_file(seal, "k1", copy, n, &back, NULL, hash, &reason), -EPROTONOSUPPORT);
        free(copy);
}

static void test_decode_corrupt(void **state) {
        _cleanup_(key_freep) Key *k = make_key("k1");
        _cleanup_(secret_freep) Secret *s = NULL;
        const char *reason = NULL;

        assert_int_equal(cache_encode(k, &s, NULL), 0);
        /* Cut short: no longer JSON. */
        assert_int_equal(cache_decode(s->data, s->size - 1, "k1", NULL, NULL, &reason), -EBADMSG);
        assert_string_equal(reason, "not a Knox key");
        assert_int_equal(cache_decode(s->data, 0, "k1", NULL, NULL, &reason), -EBADMSG);
        /* A valid plaintext of another key. */
        assert_int_equal(cache_decode(s->data, s->size, "k2", NULL, NULL, &reason), -EBADMSG);
        assert_string_equal(reason, "holds another key");
        assert_int_equal(cache_decode((const uint8_t *) "{}", 2, "k1", NULL, NULL, &reason), -EBADMSG);
        assert_string_equal(reason, "not a Knox key");
}

/* The record of the files written: round trip, lookups, and malformed text. */
static void test_seen(void **state) {
        Fixture *f = *state;
        CacheSeen in[2] = {{.id = (char *) "a", .seq = 1}, {.id = (char *) "b:c", .seq = UINT64_MAX}};
        CacheSeen *out = NULL;
        size_t n = 0;
        char path[128];

        memset(in[1].hash, 0xab, CACHE_HASH_SIZE);
        (void) snprintf(path, sizeof(path), "%s/seen.sealed", f->dir);
        assert_int_equal(cache_seen_load(path, seal, &out, &n), -ENOENT);
        assert_int_equal(cache_seen_save(path, seal, in, 2), 0);
        assert_int_equal(cache_seen_load(path, seal, &out, &n), 0);
        assert_int_equal(n, 2);
        assert_non_null(cache_seen_find(out, n, "b:c"));
        assert_true(cache_seen_find(out, n, "b:c")->seq == UINT64_MAX);
        assert_memory_equal(cache_seen_find(out, n, "b:c")->hash, in[1].hash, CACHE_HASH_SIZE);
        assert_null(cache_seen_find(out, n, "b"));
        cache_seen_free(out, n);
        assert_int_equal(cache_seen_load(path, other_seal, &out, &n), -EBADMSG);

        static const char *const bads[] = {
                "1 00 a\n",
                "x 0000000000000000000000000000000000000000000000000000000000000000 a\n",
                "1 0000000000000000000000000000000000000000000000000000000000000000 a",
                "1 0000000000000000000000000000000000000000000000000000000000000000 ../a\n",
                "99999999999999999999 0000000000000000000000000000000000000000000000000000000000000000 a\n",
                "1 0000000000000000000000000000000000000000000000000000000000000000 a\n"
                "2 0000000000000000000000000000000000000000000000000000000000000000 a\n"};
        for (size_t i = 0; i < ELEMENTSOF(bads); i++)
                assert_int_equal(
                        cache_seen_parse((const uint8_t *) bads[i], strlen(bads[i]), &out, &n), -EBADMSG);
}

static void test_encode_needs_primary(void **state) {
        _cleanup_(key_freep) Key *k = key_new();
        _cleanup_(secret_freep) Secret *s = NULL;

        k->id = strdup("k");
        add_version(k, 1, VERSION_STATUS_ACTIVE, "x");
        assert_int_equal(cache_encode(k, &s, NULL), -EINVAL);
        assert_null(s);
}

/* A key bigger than a cache file may be (keywardd caps versions, not keys) is still encoded,
 * for the agent to serve from memory, but never written: -EFBIG, and no file. */
static void test_oversized(void **state) {
        Fixture *f = *state;
        _cleanup_(key_freep) Key *k = key_new();
        _cleanup_(secret_freep) Secret *s = NULL;
        _cleanup_free_ char *big = NULL;
        _cleanup_(key_freep) Key *back = NULL;
        CacheInfo info = {}, got = {};
        const char *reason = NULL;
        size_t n = CACHE_FILE_MAX / 2 + 1024;

        k->id = strdup("big");
        assert_non_null(k->id);
        big = malloc(n + 1);
        assert_non_null(big);
        memset(big, 'x', n);
        big[n] = '\0';
        add_version(k, 1, VERSION_STATUS_ACTIVE, big); /* base64 makes each 4/3 as long */
        add_version(k, 2, VERSION_STATUS_PRIMARY, big);

        assert_int_equal(cache_encode(k, &s, &info), 0);
        assert_true(s->size > CACHE_FILE_MAX - 100);
        assert_int_equal(cache_decode(s->data, s->size, "big", &back, &got, &reason), 0);
        assert_memory_equal(&info, &got, sizeof(info));
        assert_int_equal(key_primary_version(back)->id, 2);

        assert_int_equal(cache_dir_setup(f->cache), 0);
        assert_int_equal(cache_write_content(f->cache, seal, "big", &info, s), -EFBIG);
        assert_int_equal(cache_write(f->cache, seal, k, 1, NULL), -EFBIG);
        assert_int_equal(cache_read(f->cache, seal, "big", NULL, &got, &reason), -ENOENT);
}

static void test_dir_setup(void **state) {
        Fixture *f = *state;
        char file[128];
        struct stat st;

        assert_int_equal(cache_dir_setup(f->cache), 0);
        assert_int_equal(stat(f->cache, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);

        /* A looser mode is tightened. */
        assert_int_equal(chmod(f->cache, 0755), 0);
        assert_int_equal(cache_dir_setup(f->cache), 0);
        assert_int_equal(stat(f->cache, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);

        (void) snprintf(file, sizeof(file), "%s/file", f->dir);
        assert_int_equal(write_file_atomic(file, "x", 1, 0600), 0);
        assert_int_equal(cache_dir_setup(file), -ENOTDIR);
}

static void test_write_read(void **state) {
        Fixture *f = *state;
        _cleanup_(key_freep) Key *k = make_key("svc:token"), *back = NULL;
        CacheInfo info = {}, got = {};
        const char *reason = NULL;
        char path[128], link[128];
        struct stat st;

        assert_int_equal(cache_dir_setup(f->cache), 0);
        assert_int_equal(cache_read(f->cache, seal, "svc:token", NULL, &got, &reason), -ENOENT);

        assert_int_equal(cache_write(f->cache, seal, k, 3, &info), 0);
        (void) snprintf(path, sizeof(path), "%s/svc:token", f->cache);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);

        assert_int_equal(cache_read(f->cache, seal, "svc:token", &back, &got, &reason), 0);
        assert_memory_equal(&info, &got, sizeof(info));
        assert_true(got.seq == 3);
        /* Another host's key opens nothing. */
        assert_int_equal(cache_read(f->cache, other_seal, "svc:token", NULL, NULL, &reason), -EBADMSG);
        assert_memory_equal(key_primary_version(back)->data->data, "new secret", 10);

        /* Readable by others: not trusted. */
        assert_int_equal(chmod(path, 0644), 0);
        assert_int_equal(cache_read(f->cache, seal, "svc:token", NULL, &got, &reason), -EPERM);
        assert_string_equal(reason, "accessible to group or others");
        assert_int_equal(chmod(path, 0600), 0);

        /* A symbolic link is never followed. */
        (void) snprintf(link, sizeof(link), "%s/other", f->cache);
        assert_int_equal(symlink(path, link), 0);
        assert_int_equal(cache_read(f->cache, seal, "other", NULL, &got, &reason), -EPERM);
        assert_string_equal(reason, "a symbolic link");

        /* Ids that are no file names are refused. */
        assert_int_equal(cache_read(f->cache, seal, "../x", NULL, &got, &reason), -EINVAL);
        assert_int_equal(cache_remove(f->cache, "a/b"), -EINVAL);

        assert_int_equal(cache_remove(f->cache, "svc:token"), 0);
        assert_int_equal(cache_remove(f->cache, "svc:token"), 0);
        assert_int_equal(cache_read(f->cache, seal, "svc:token", NULL, &got, &reason), -ENOENT);
}

static bool keep_k1(const char *id, void *userdata) {
        (*(int *) userdata)++;
        return streq(id, "k1");
}

static void test_prune(void **state) {
        Fixture *f = *state;
        _cleanup_(key_freep) Key *k1 = make_key("k1"), *k2 = make_key("k2");
        char path[128];
        int calls = 0;

        assert_int_equal(cache_dir_setup(f->cache), 0);
        assert_int_equal(cache_write(f->cache, seal, k1, 1, NULL), 0);
        assert_int_equal(cache_write(f->cache, seal, k2, 1, NULL), 0);
        /* A temporary left by a crash mid-write. */
        (void) snprintf(path, sizeof(path), "%s/.#k1.0123456789abcdef", f->cache);
        assert_int_equal(write_file_atomic(path, "partial", 7, 0600), 0);

        assert_int_equal(cache_prune(f->cache, keep_k1, &calls), 2);
        assert_int_equal(calls, 2);
        assert_int_equal(cache_read(f->cache, seal, "k1", NULL, NULL, NULL), 0);
        assert_int_equal(cache_read(f->cache, seal, "k2", NULL, NULL, NULL), -ENOENT);
        assert_int_equal(access(path, F_OK), -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_encode_decode),
                cmocka_unit_test(test_open_corrupt),
                cmocka_unit_test(test_decode_corrupt),
                cmocka_unit_test_setup_teardown(test_seen, setup, teardown),
                cmocka_unit_test(test_encode_needs_primary),
                cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dir_setup, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        };

        int r;

        seal = random_key();
        other_seal = random_key();
        r = cmocka_run_group_tests(tests, NULL, NULL);
        secret_free(seal);
        secret_free(other_seal);
        return r;
}
