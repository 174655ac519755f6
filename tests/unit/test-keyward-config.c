/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyward-config.h"
#include "log.h"
#include "strv.h"

#define LOAD(text, c) keyward_config_load_string(text, strlen(text), "test.conf", c)

static void assert_strv(char **l, const char *const *want, size_t n) {
        assert_int_equal(strv_length(l), n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(l[i], want[i]);
}

static void test_servers_append(_unused_ void **state) {
        _cleanup_strv_free_ char **l = NULL;
        char big[KEYWARD_SERVER_URL_MAX + 2];

        /* Commas, spaces, tabs and newlines separate; empty pieces are skipped. */
        assert_int_equal(keyward_servers_append(&l, " https://a:1,https://b:2\t c:3,, \n"), 0);
        assert_strv(l, (const char *const[]){"https://a:1", "https://b:2", "c:3"}, 3);
        assert_int_equal(keyward_servers_append(&l, ""), 0);
        assert_int_equal(keyward_servers_append(&l, " , "), 0);
        assert_int_equal(strv_length(l), 3);

        /* A control character anywhere is refused; what came before stays. */
        assert_int_equal(keyward_servers_append(&l, "https://d:4, https://e\001:5"), -EINVAL);
        assert_int_equal(strv_length(l), 4);
        assert_int_equal(keyward_servers_append(&l, "https://f\r"), -EINVAL);
        assert_int_equal(keyward_servers_append(&l, "https://f\x7f"), -EINVAL);
        assert_int_equal(strv_length(l), 4);

        /* The longest URL, and one byte more. */
        memset(big, 'x', sizeof(big));
        big[KEYWARD_SERVER_URL_MAX] = '\0';
        assert_int_equal(keyward_servers_append(&l, big), 0);
        big[KEYWARD_SERVER_URL_MAX] = 'x';
        big[KEYWARD_SERVER_URL_MAX + 1] = '\0';
        assert_int_equal(keyward_servers_append(&l, big), -EINVAL);
        assert_int_equal(strv_length(l), 5);
}

static void test_servers_max(_unused_ void **state) {
        _cleanup_strv_free_ char **l = NULL;

        for (int i = 0; i < KEYWARD_SERVERS_MAX; i++)
                assert_int_equal(keyward_servers_append(&l, "s"), 0);
        assert_int_equal(keyward_servers_append(&l, "one-more"), -E2BIG);
        assert_int_equal(strv_length(l), KEYWARD_SERVERS_MAX);
}

static void test_load(_unused_ void **state) {
        _cleanup_(keyward_config_done) KeywardConfig c = {};

        assert_int_equal(
                LOAD("# the fleet\n"
                     "; both comment styles\n"
                     "[keyward]\n"
                     "server = https://a:1, https://b:2\n"
                     "server = c:3\n"
                     "server-ca = /etc/keyward/ca.pem\n",
                     &c),
                0);
        assert_strv(c.servers, (const char *const[]){"https://a:1", "https://b:2", "c:3"}, 3);
        assert_string_equal(c.server_ca, "/etc/keyward/ca.pem");
}

static void test_load_reset(_unused_ void **state) {
        _cleanup_(keyward_config_done) KeywardConfig c = {};

        /* An empty value empties what came before. */
        assert_int_equal(
                LOAD("[keyward]\nserver = https://a:1\nserver =\nserver = https://b:2\n"
                     "server-ca = /ca.pem\nserver-ca =\n",
                     &c),
                0);
        assert_strv(c.servers, (const char *const[]){"https://b:2"}, 1);
        assert_null(c.server_ca);
}

static void test_load_empty(_unused_ void **state) {
        _cleanup_(keyward_config_done) KeywardConfig c = {};

        assert_int_equal(LOAD("", &c), 0);
        assert_int_equal(LOAD("# nothing\n[keyward]\n", &c), 0);
        assert_null(c.servers);
        assert_null(c.server_ca);
}

static void test_load_errors(_unused_ void **state) {
        static const char *const bad[] = {
                "[keyward]\nserver-ca = ca.pem\n",        /* relative */
                "[keyward]\nserver-ca = ./ca.pem\n",      /* relative */
                "[keyward]\ncert = /etc/keyward/m.pem\n", /* not ours */
                "[agent]\nserver = https://a:1\n",        /* not our section */
                "server = https://a:1\n",                 /* no section */
                "[keyward]\nserver = https://a\001:1\n",  /* control character */
                "[keyward\nserver = https://a:1\n",       /* syntax */
                "[keyward]\nserver https://a:1\n",        /* syntax */
        };

        FOREACH_ARRAY(t, bad, ELEMENTSOF(bad)) {
                _cleanup_(keyward_config_done) KeywardConfig c = {};

                if (LOAD(*t, &c) >= 0)
                        fail_msg("accepted: %s", *t);
        }
}

static void test_load_file_missing(_unused_ void **state) {
        _cleanup_(keyward_config_done) KeywardConfig c = {};

        assert_int_equal(keyward_config_load_file("/nonexistent/keyward.conf", &c), -ENOENT);
        assert_null(c.servers);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_servers_append),
                cmocka_unit_test(test_servers_max),
                cmocka_unit_test(test_load),
                cmocka_unit_test(test_load_reset),
                cmocka_unit_test(test_load_empty),
                cmocka_unit_test(test_load_errors),
                cmocka_unit_test(test_load_file_missing),
        };

        /* The errors are expected: keep them off the TAP output. */
        log_set_max_level(LOG_EMERG);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
