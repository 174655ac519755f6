/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "cache-key.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "tests.h"

static void test_spec(void **state) {
        static const char *const good[] = {
                "auto", "tpm2", "file:/var/lib/k", "credential:keyward-cache-key"};
        static const char *const bad[] = {
                "",    "file:", "file:k", "file:/d/", "credential:", "credential:a/b", "credential:..",
                "tpm", "AUTO"};

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_true(cache_key_spec_is_valid(good[i]));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_false(cache_key_spec_is_valid(bad[i]));
        assert_false(cache_key_spec_is_valid(NULL));
}

static void test_pcrs(void **state) {
        uint32_t m = 1;

        assert_int_equal(cache_key_parse_pcrs(NULL, &m), 0);
        assert_int_equal(m, 0);
        assert_int_equal(cache_key_parse_pcrs("7", &m), 0);
        assert_int_equal(m, 1u << 7);
        assert_int_equal(cache_key_parse_pcrs("0,7,23", &m), 0);
        assert_int_equal(m, 1u | 1u << 7 | 1u << 23);
        m = 5;
        for (const char *const *s = (const char *const[]){"24", "7,", ",7", "a", "7 ", "0007", "1,,2", NULL};
             *s; s++)
                assert_int_equal(cache_key_parse_pcrs(*s, &m), -EINVAL);
        assert_int_equal(m, 5);
}

static Secret *host_key(uint8_t fill) {
        Secret *s = secret_new(CACHE_KEY_SIZE);

        assert_non_null(s);
        memset(s->data, fill, s->size);
        return s;
}

static void test_derive_seal(void **state) {
        _cleanup_(secret_freep) Secret *h = host_key(1), *h2 = host_key(2), *a = NULL, *a2 = NULL, *b = NULL,
                                       *c = NULL, *plain = NULL;
        _cleanup_free_ uint8_t *blob = NULL;
        size_t n = 0;

        assert_int_equal(cache_key_derive(h, "cache", &a), 0);
        assert_int_equal(cache_key_derive(h, "cache", &a2), 0);
        assert_int_equal(cache_key_derive(h, "registry", &b), 0);
        assert_int_equal(cache_key_derive(h2, "cache", &c), 0);
        assert_memory_equal(a->data, a2->data, CACHE_KEY_SIZE);
        assert_memory_not_equal(a->data, b->data, CACHE_KEY_SIZE);
        assert_memory_not_equal(a->data, c->data, CACHE_KEY_SIZE);
        assert_memory_not_equal(a->data, h->data, CACHE_KEY_SIZE);

        assert_int_equal(cache_seal_blob(a, "magic\n", "hello", 5, &blob, &n), 0);
        assert_int_equal(n, 6 + CACHE_SEAL_OVERHEAD + 5);
        assert_null(memmem(blob, n, "hello", 5));
        assert_int_equal(cache_unseal_blob(a, "magic\n", blob, n, &plain), 0);
        assert_int_equal(plain->size, 5);
        assert_memory_equal(plain->data, "hello", 5);
        assert_int_equal(cache_unseal_blob(b, "magic\n", blob, n, &plain), -EBADMSG);
        assert_int_equal(cache_unseal_blob(a, "other\n", blob, n, &plain), -EBADMSG);
        assert_int_equal(cache_unseal_blob(a, "magic\n", blob, n - 1, &plain), -EBADMSG);
        blob[8] ^= 0x80;
        assert_int_equal(cache_unseal_blob(a, "magic\n", blob, n, &plain), -EBADMSG);
}

static void test_file(void **state) {
        char dir[] = "/tmp/test-cache-key.XXXXXX", path[128], state_dir[128], inside[200], alias[160];
        _cleanup_(secret_freep) Secret *k = NULL, *again = NULL;
        struct stat st;

        assert_non_null(mkdtemp(dir));
        (void) snprintf(path, sizeof(path), "%s/host/cache.key", dir);
        (void) snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
        assert_int_equal(mkdir(state_dir, 0700), 0);

        /* Made when missing: 0400, 32 bytes, its directory 0700; the same key read back. */
        assert_int_equal(cache_key_file(path, state_dir, &k), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0400);
        assert_int_equal(st.st_size, CACHE_KEY_SIZE);
        assert_int_equal(cache_key_file(path, state_dir, &again), 0);
        assert_memory_equal(k->data, again->data, CACHE_KEY_SIZE);
        again = secret_free(again);

        /* Others may read it: refused. */
        assert_int_equal(chmod(path, 0440), 0);
        assert_int_equal(cache_key_file(path, state_dir, &again), -EPERM);
        assert_int_equal(chmod(path, 0400), 0);

        /* Inside the state directory, or below it: refused, and not made. */
        (void) snprintf(inside, sizeof(inside), "%s/cache.key", state_dir);
        assert_int_equal(cache_key_file(inside, state_dir, &again), -EPERM);
        assert_int_equal(access(inside, F_OK), -1);
        (void) snprintf(inside, sizeof(inside), "%s/../state/x.key", state_dir);
        assert_int_equal(cache_key_file(inside, state_dir, &again), -EPERM);
        /* Through a symlink to the state directory, into a directory not made yet (the key
         * file's parent is made by cache_key_file): refused, nothing made. */
        (void) snprintf(alias, sizeof(alias), "%s/alias", dir);
        assert_int_equal(symlink(state_dir, alias), 0);
        (void) snprintf(inside, sizeof(inside), "%s/new/x.key", alias);
        assert_int_equal(cache_key_file(inside, state_dir, &again), -EPERM);
        (void) snprintf(inside, sizeof(inside), "%s/new", state_dir);
        assert_int_equal(access(inside, F_OK), -1);
        /* The same with a state directory named with a trailing slash. */
        (void) snprintf(inside, sizeof(inside), "%s/", state_dir);
        (void) snprintf(alias, sizeof(alias), "%s/alias/new/x.key", dir);
        assert_int_equal(cache_key_file(alias, inside, &again), -EPERM);
        /* A name with a "." or ".." component is no --cache-key file: */
        assert_false(cache_key_spec_is_valid("file:/etc/../var/lib/keyward/x.key"));
        assert_false(cache_key_spec_is_valid("file:/etc/./x.key"));
        assert_false(cache_key_spec_is_valid("file:/etc/x/.."));
        assert_true(cache_key_spec_is_valid("file:/etc/keyward/..x.key"));

        /* Not 32 bytes. */
        (void) snprintf(inside, sizeof(inside), "%s/short.key", dir);
        assert_int_equal(write_file_atomic(inside, "short", 5, 0400), 0);
        assert_int_equal(cache_key_file(inside, state_dir, &again), -EBADMSG);
        assert_null(again);
        (void) tests_rm_rf(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_spec),
                cmocka_unit_test(test_pcrs),
                cmocka_unit_test(test_derive_seal),
                cmocka_unit_test(test_file),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
