/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "watch-index.h"

static size_t count_watch(WatchKey *k, void *watch) {
        size_t n = 0;

        for (WatchLink *l = k ? k->links : NULL; l; l = l->next)
                n += l->watch == watch;
        return n;
}

static void test_find_by_key(void **state) {
        _cleanup_(watch_index_freep) WatchIndex *ix = watch_index_new();
        int a, b;
        WatchLink *la1, *la2, *lb;

        assert_non_null(ix);
        assert_int_equal(watch_index_add(ix, "A", &a, "h1", 2, &la1), 1);
        assert_int_equal(watch_index_add(ix, "B", &a, "h2", 2, &la2), 1);
        assert_int_equal(watch_index_add(ix, "B", &b, "h3", 2, &lb), 1);
        assert_int_equal(watch_index_keys(ix), 2);

        /* A change to A finds only a; a change to B finds both; C finds nobody. */
        assert_int_equal(watch_index_find(ix, "A")->n_links, 1);
        assert_int_equal(count_watch(watch_index_find(ix, "A"), &a), 1);
        assert_int_equal(count_watch(watch_index_find(ix, "A"), &b), 0);
        assert_int_equal(watch_index_find(ix, "B")->n_links, 2);
        assert_null(watch_index_find(ix, "C"));

        watch_index_remove(ix, la1);
        assert_null(watch_index_find(ix, "A"));
        assert_int_equal(watch_index_keys(ix), 1);
        watch_index_remove(ix, la2);
        assert_int_equal(watch_index_find(ix, "B")->n_links, 1);
        watch_index_remove(ix, lb);
        assert_int_equal(watch_index_keys(ix), 0);
}

static void test_repeated_key_keeps_last_value(void **state) {
        _cleanup_(watch_index_freep) WatchIndex *ix = watch_index_new();
        WatchLink *l1, *l2;
        int a;

        assert_int_equal(watch_index_add(ix, "A", &a, "old", 3, &l1), 1);
        assert_int_equal(watch_index_add(ix, "A", &a, "newer", 5, &l2), 0);
        assert_ptr_equal(l1, l2);
        assert_int_equal(l1->want_len, 5);
        assert_memory_equal(l1->want, "newer", 5);
        assert_int_equal(watch_index_find(ix, "A")->n_links, 1);
        watch_index_remove(ix, l1);
}

/* Many keys and watches: the table grows and every key still finds exactly its watches. */
static void test_many(void **state) {
        _cleanup_(watch_index_freep) WatchIndex *ix = watch_index_new();
        static WatchLink *links[5000][2];
        static int watches[5000];
        char id[32];

        for (size_t i = 0; i < 5000; i++) {
                snprintf(id, sizeof(id), "key-%zu", i);
                assert_int_equal(watch_index_add(ix, id, &watches[i], "h", 1, &links[i][0]), 1);
                assert_int_equal(watch_index_add(ix, "common", &watches[i], "h", 1, &links[i][1]), 1);
        }
        assert_int_equal(watch_index_keys(ix), 5001);
        assert_int_equal(watch_index_find(ix, "common")->n_links, 5000);
        for (size_t i = 0; i < 5000; i++) {
                WatchKey *k;

                snprintf(id, sizeof(id), "key-%zu", i);
                k = watch_index_find(ix, id);
                assert_non_null(k);
                assert_int_equal(k->n_links, 1);
                assert_ptr_equal(k->links->watch, &watches[i]);
        }
        for (size_t i = 0; i < 5000; i += 2) {
                watch_index_remove(ix, links[i][0]);
                watch_index_remove(ix, links[i][1]);
        }
        assert_int_equal(watch_index_keys(ix), 2501);
        assert_int_equal(watch_index_find(ix, "common")->n_links, 2500);
        assert_null(watch_index_find(ix, "key-0"));
        assert_non_null(watch_index_find(ix, "key-1"));
        for (size_t i = 1; i < 5000; i += 2) {
                watch_index_remove(ix, links[i][0]);
                watch_index_remove(ix, links[i][1]);
        }
        assert_int_equal(watch_index_keys(ix), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_find_by_key),
                cmocka_unit_test(test_repeated_key_keeps_last_value),
                cmocka_unit_test(test_many),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
