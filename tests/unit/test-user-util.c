/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "user-util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "macro.h"

/* root is in every passwd and group database these tests run with. */
static void test_user(void **state) {
        _cleanup_free_ char *name = NULL, *field = NULL;
        uid_t uid = 99;
        gid_t gid = 99;

        (void) state;
        assert_int_equal(user_by_name("root", &uid, &gid, &field), 0);
        assert_int_equal(uid, 0);
        assert_int_equal(gid, 0);
        assert_non_null(field);
        assert_int_equal(user_by_name("root", NULL, NULL, NULL), 0);

        assert_int_equal(user_by_uid(0, &name, &gid), 0);
        assert_string_equal(name, "root");
        assert_int_equal(user_by_name("no-such-user-kw", &uid, NULL, NULL), -ESRCH);
        assert_int_equal(user_by_uid(4000000000u, NULL, NULL), -ESRCH);
}

static void test_group(void **state) {
        _cleanup_free_ char *name = NULL;
        gid_t gid = 99;

        (void) state;
        assert_int_equal(group_by_name("root", &gid), 0);
        assert_int_equal(gid, 0);
        assert_int_equal(group_by_gid(0, &name), 0);
        assert_string_equal(name, "root");
        assert_int_equal(group_by_name("no-such-group-kw", &gid), -ESRCH);
        assert_int_equal(group_by_gid(4000000000u, NULL), -ESRCH);
}

static void test_group_ids(void **state) {
        _cleanup_free_ gid_t *gids = NULL;
        size_t n = 0;
        bool primary = false;

        (void) state;
        /* The primary group is always in the list, even one no group entry names. */
        assert_int_equal(user_group_ids("root", 4000000001u, &gids, &n), 0);
        assert_true(n >= 1);
        for (size_t i = 0; i < n; i++)
                primary |= gids[i] == 4000000001u;
        assert_true(primary);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_user),
                cmocka_unit_test(test_group),
                cmocka_unit_test(test_group_ids),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
