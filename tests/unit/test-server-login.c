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

static void test_limit_and_window(void **state) {
        LoginThrottle *t = login_throttle_new();

        assert_non_null(t);
        for (unsigned i = 0; i < 4; i++) {
                login_throttle_failed(t, "user:dave", 100 * S + i);
                assert_false(login_throttle_blocked(t, "user:dave", 5, 100 * S + i));
        }
        login_throttle_failed(t, "user:dave", 101 * S);
        assert_true(login_throttle_blocked(t, "user:dave", 5, 101 * S));
        assert_false(login_throttle_blocked(t, "user:alice", 5, 101 * S));
        /* The window counts from the first failure. */
        assert_true(login_throttle_blocked(t, "user:dave", 5, 100 * S + LOGIN_WINDOW_USEC - 1));
        assert_false(login_throttle_blocked(t, "user:dave", 5, 100 * S + LOGIN_WINDOW_USEC));
        /* A failure after the window starts a new count. */
        login_throttle_failed(t, "user:dave", 100 * S + LOGIN_WINDOW_USEC);
        assert_false(login_throttle_blocked(t, "user:dave", 2, 100 * S + LOGIN_WINDOW_USEC));
        login_throttle_failed(t, "user:dave", 100 * S + LOGIN_WINDOW_USEC);
        assert_true(login_throttle_blocked(t, "user:dave", 2, 100 * S + LOGIN_WINDOW_USEC));
        login_throttle_clear(t, "user:dave");
        assert_false(login_throttle_blocked(t, "user:dave", 1, 100 * S + LOGIN_WINDOW_USEC));
        login_throttle_free(t);
}

/* Made-up names cannot grow the table without bound, nor push out a live count before
 * older ones. */
static void test_bounded(void **state) {
        LoginThrottle *t = login_throttle_new();
        char key[64];

        assert_non_null(t);
        for (unsigned i = 0; i < 3; i++)
                login_throttle_failed(t, "addr:10.0.0.1", 1000 * S);
        for (unsigned i = 0; i < 5000; i++) {
                snprintf(key, sizeof(key), "user:made-up-%u", i);
                login_throttle_failed(t, key, 1000 * S + 1 + i);
        }
        /* The oldest entry went first: the address's count is gone, the newest are there. */
        assert_false(login_throttle_blocked(t, "addr:10.0.0.1", 1, 1000 * S + 6000));
        assert_true(login_throttle_blocked(t, "user:made-up-4999", 1, 1000 * S + 6000));
        login_throttle_free(t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_limit_and_window),
                cmocka_unit_test(test_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
