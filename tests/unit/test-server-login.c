/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "parse.h"
#include "server-login.h"

#define S USEC_PER_SEC

static void failed_attempt(LoginThrottle *t, const char *key, unsigned limit, uint64_t now) {
        assert_true(login_throttle_begin(t, key, limit, now));
        login_throttle_end(t, key, LOGIN_OUTCOME_FAILURE, now);
}

static void test_limit_and_window(void **state) {
        LoginThrottle *t = login_throttle_new();

        assert_non_null(t);
        for (unsigned i = 0; i < 5; i++)
                failed_attempt(t, "user:dave", 5, 100 * S + i);
        assert_int_equal(login_throttle_count(t, "user:dave", 101 * S), 5);
        assert_false(login_throttle_begin(t, "user:dave", 5, 101 * S));
        assert_true(login_throttle_begin(t, "user:alice", 5, 101 * S));
        login_throttle_end(t, "user:alice", LOGIN_OUTCOME_SUCCESS, 101 * S);
        /* The window counts from the first failure. */
        assert_false(login_throttle_begin(t, "user:dave", 5, 100 * S + LOGIN_WINDOW_USEC - 1));
        assert_true(login_throttle_begin(t, "user:dave", 5, 100 * S + LOGIN_WINDOW_USEC));
        login_throttle_end(t, "user:dave", LOGIN_OUTCOME_FAILURE, 100 * S + LOGIN_WINDOW_USEC);
        assert_int_equal(login_throttle_count(t, "user:dave", 100 * S + LOGIN_WINDOW_USEC), 1);
        /* A success clears the failures; no verdict changes nothing. */
        failed_attempt(t, "user:dave", 5, 100 * S + LOGIN_WINDOW_USEC);
        assert_true(login_throttle_begin(t, "user:dave", 5, 100 * S + LOGIN_WINDOW_USEC));
        login_throttle_end(t, "user:dave", LOGIN_OUTCOME_NONE, 100 * S + LOGIN_WINDOW_USEC);
        assert_int_equal(login_throttle_count(t, "user:dave", 100 * S + LOGIN_WINDOW_USEC), 2);
        assert_true(login_throttle_begin(t, "user:dave", 5, 100 * S + LOGIN_WINDOW_USEC));
        login_throttle_end(t, "user:dave", LOGIN_OUTCOME_SUCCESS, 100 * S + LOGIN_WINDOW_USEC);
        assert_int_equal(login_throttle_count(t, "user:dave", 100 * S + LOGIN_WINDOW_USEC), 0);
        login_throttle_free(t);
}

/* Attempts still with PAM count: a burst of parallel guesses stops at the limit. */
static void test_in_flight(void **state) {
        LoginThrottle *t = login_throttle_new();
        unsigned admitted = 0;

        assert_non_null(t);
        for (unsigned i = 0; i < 20; i++)
                admitted += login_throttle_begin(t, "user:erin", 5, 10 * S);
        assert_int_equal(admitted, 5);
        for (unsigned i = 0; i < 5; i++)
                login_throttle_end(t, "user:erin", LOGIN_OUTCOME_FAILURE, 11 * S);
        assert_int_equal(login_throttle_count(t, "user:erin", 11 * S), 5);
        assert_false(login_throttle_begin(t, "user:erin", 5, 11 * S));
        login_throttle_free(t);
}

/* Made-up names cannot grow the table without bound; the oldest entry goes first, never one
 * with an attempt in flight. */
static void test_bounded(void **state) {
        LoginThrottle *t = login_throttle_new();
        char key[64];

        assert_non_null(t);
        for (unsigned i = 0; i < 3; i++)
                failed_attempt(t, "addr:10.0.0.1", 20, 1000 * S);
        assert_true(login_throttle_begin(t, "user:busy", 5, 1000 * S));
        for (unsigned i = 0; i < 5000; i++) {
                snprintf(key, sizeof(key), "user:made-up-%u", i);
                failed_attempt(t, key, 5, 1000 * S + 1 + i);
        }
        assert_int_equal(login_throttle_count(t, "addr:10.0.0.1", 1000 * S + 6000), 0);
        assert_int_equal(login_throttle_count(t, "user:made-up-4999", 1000 * S + 6000), 1);
        assert_int_equal(login_throttle_count(t, "user:busy", 1000 * S + 6000), 1);
        login_throttle_free(t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_limit_and_window),
                cmocka_unit_test(test_in_flight),
                cmocka_unit_test(test_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
