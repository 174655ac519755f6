/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "strv.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

static void test_null_and_empty(void **state) {
        char *empty[] = {NULL};
        size_t n = 0;

        (void) state;
        assert_int_equal(strv_length(NULL), 0);
        assert_int_equal(strv_length(empty), 0);
        assert_false(strv_contains(NULL, "a"));
        assert_false(strv_contains(empty, "a"));
        assert_false(strv_contains(empty, ""));
        assert_null(strv_free(NULL));

        STRV_FOREACH(s, (char **) NULL)
                n++;
        STRV_FOREACH(s, empty)
                n++;
        assert_int_equal(n, 0);
}

static void test_extend(void **state) {
        _cleanup_strv_free_ char **l = NULL;
        char word[] = "alpha";

        (void) state;
        assert_int_equal(strv_extend(&l, word), 0);
        assert_non_null(l);
        assert_int_equal(strv_length(l), 1);
        assert_string_equal(l[0], "alpha");
        assert_null(l[1]);

        /* A copy was stored, not the caller's buffer. */
        assert_ptr_not_equal(l[0], word);
        word[0] = 'X';
        assert_string_equal(l[0], "alpha");

        assert_int_equal(strv_extend(&l, "beta"), 0);
        assert_int_equal(strv_extend(&l, ""), 0);
        assert_int_equal(strv_extend(&l, "beta"), 0);
        assert_int_equal(strv_length(l), 4);
        assert_string_equal(l[0], "alpha");
        assert_string_equal(l[1], "beta");
        assert_string_equal(l[2], "");
        assert_string_equal(l[3], "beta");
        assert_null(l[4]);

        assert_true(strv_contains(l, "alpha"));
        assert_true(strv_contains(l, "beta"));
        assert_true(strv_contains(l, ""));
        assert_false(strv_contains(l, "Alpha"));
        assert_false(strv_contains(l, "alph"));
        assert_false(strv_contains(l, "alphabet"));
}

static void test_push(void **state) {
        _cleanup_strv_free_ char **l = NULL;
        char *a, *b;

        (void) state;
        a = strdup("owned-a");
        b = strdup("owned-b");
        assert_non_null(a);
        assert_non_null(b);

        /* Ownership moves: the very pointer is stored, and strv_free() frees it (ASan checks). */
        assert_int_equal(strv_push(&l, a), 0);
        assert_int_equal(strv_push(&l, b), 0);
        assert_int_equal(strv_length(l), 2);
        assert_ptr_equal(l[0], a);
        assert_ptr_equal(l[1], b);
        assert_null(l[2]);
}

static void test_many(void **state) {
        _cleanup_strv_free_ char **l = NULL;
        char buf[16];
        size_t n = 0;

        (void) state;
        for (unsigned i = 0; i < 1000; i++) {
                (void) snprintf(buf, sizeof(buf), "item%u", i);
                assert_int_equal(strv_extend(&l, buf), 0);
                assert_int_equal(strv_length(l), i + 1);
        }
        STRV_FOREACH(s, l) {
                (void) snprintf(buf, sizeof(buf), "item%zu", n);
                assert_string_equal(*s, buf);
                n++;
        }
        assert_int_equal(n, 1000);
        assert_true(strv_contains(l, "item999"));
        assert_false(strv_contains(l, "item1000"));
}

static void test_copy(void **state) {
        _cleanup_strv_free_ char **l = NULL, **c = NULL, **e = NULL, **n = NULL;
        char *const empty[] = {NULL};

        (void) state;
        assert_int_equal(strv_extend(&l, "x"), 0);
        assert_int_equal(strv_extend(&l, "yy"), 0);
        assert_int_equal(strv_extend(&l, ""), 0);

        assert_int_equal(strv_copy(l, &c), 0);
        assert_int_equal(strv_length(c), 3);
        for (size_t i = 0; i < 3; i++) {
                assert_string_equal(c[i], l[i]);
                assert_ptr_not_equal(c[i], l[i]); /* deep copy */
        }
        assert_null(c[3]);
        c[0][0] = 'Z';
        assert_string_equal(l[0], "x");

        /* Copies of empty and NULL lists are empty lists, never NULL. */
        assert_int_equal(strv_copy(empty, &e), 0);
        assert_non_null(e);
        assert_null(e[0]);
        assert_int_equal(strv_copy(NULL, &n), 0);
        assert_non_null(n);
        assert_int_equal(strv_length(n), 0);
}

static void test_free_returns_null(void **state) {
        char **l = NULL;

        (void) state;
        assert_int_equal(strv_extend(&l, "a"), 0);
        assert_int_equal(strv_extend(&l, "b"), 0);
        l = strv_free(l);
        assert_null(l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_null_and_empty), cmocka_unit_test(test_extend),
                cmocka_unit_test(test_push),           cmocka_unit_test(test_many),
                cmocka_unit_test(test_copy),           cmocka_unit_test(test_free_returns_null),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
