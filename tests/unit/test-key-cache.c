/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "key-cache.h"

static Key *make_key(const char *id) {
        Key *k = key_new();

        assert_non_null(k);
        k->id = strdup(id);
        k->versions = calloc(1, sizeof(KeyVersion));
        assert_non_null(k->id);
        assert_non_null(k->versions);
        k->n_versions = 1;
        k->versions[0].status = VERSION_STATUS_PRIMARY;
        k->versions[0].id = 1;
        return k;
}

static void test_hit_and_generation(void **state) {
        _cleanup_(key_cache_freep) KeyCache *c = key_cache_new();
        Key *k = make_key("a"), *got;
        int64_t v = 0;

        assert_non_null(c);
        assert_null(key_cache_get(c, "a", 1, &v));
        key_cache_put(c, k, 42, 1);
        got = key_cache_get(c, "a", 1, &v);
        assert_ptr_equal(got, k);
        assert_int_equal(v, 42);
        /* Another id, or any later generation, misses. */
        assert_null(key_cache_get(c, "b", 1, &v));
        assert_null(key_cache_get(c, "a", 2, &v));
}

static void test_replace_and_close(void **state) {
        _cleanup_(key_cache_freep) KeyCache *c = key_cache_new();
        Key *k1 = make_key("a"), *k2 = make_key("a");

        /* Plaintext never stays in the cache. */
        k1->versions[0].data = secret_new_copy("plain", 5);
        key_cache_put(c, k1, 1, 1);
        assert_null(k1->versions[0].data);

        k1->versions[0].data = secret_new_copy("again", 5);
        key_cache_close(k1);
        assert_null(k1->versions[0].data);

        /* A newer record of the same id replaces the old one (freed: ASan checks). */
        key_cache_put(c, k2, 2, 3);
        assert_ptr_equal(key_cache_get(c, "a", 3, NULL), k2);
        /* Putting the cached key again keeps it. */
        key_cache_put(c, k2, 2, 4);
        assert_ptr_equal(key_cache_get(c, "a", 4, NULL), k2);
}

static void test_many(void **state) {
        _cleanup_(key_cache_freep) KeyCache *c = key_cache_new();
        char id[32];
        size_t hits = 0;

        for (int i = 0; i < 3 * KEY_CACHE_SLOTS; i++) {
                snprintf(id, sizeof(id), "key%d", i);
                key_cache_put(c, make_key(id), i, 7);
        }
        /* Bounded: at most one entry per slot, and the most recent ones are there. */
        for (int i = 0; i < 3 * KEY_CACHE_SLOTS; i++) {
                snprintf(id, sizeof(id), "key%d", i);
                if (key_cache_get(c, id, 7, NULL))
                        hits++;
        }
        assert_true(hits <= KEY_CACHE_SLOTS);
        assert_true(hits > KEY_CACHE_SLOTS / 2);
        snprintf(id, sizeof(id), "key%d", 3 * KEY_CACHE_SLOTS - 1);
        assert_non_null(key_cache_get(c, id, 7, NULL));
}

static void test_forget(void **state) {
        _cleanup_(key_cache_freep) KeyCache *c = key_cache_new();
        char other[32];

        key_cache_put(c, make_key("a"), 1, 5);
        /* An id sharing a's slot (or any other) that is not cached leaves a alone. */
        key_cache_forget(c, "b");
        for (int i = 0; i < 4 * KEY_CACHE_SLOTS; i++) {
                snprintf(other, sizeof(other), "x%d", i);
                key_cache_forget(c, other);
        }
        assert_non_null(key_cache_get(c, "a", 5, NULL));
        /* Forgetting a drops it (freed: ASan checks), in this generation too. */
        key_cache_forget(c, "a");
        assert_null(key_cache_get(c, "a", 5, NULL));
        key_cache_forget(c, "a");
        key_cache_put(c, make_key("a"), 2, 5);
        assert_non_null(key_cache_get(c, "a", 5, NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hit_and_generation),
                cmocka_unit_test(test_replace_and_close),
                cmocka_unit_test(test_many),
                cmocka_unit_test(test_forget),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
