/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "parse.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>

/* Inputs that no integer parser may accept. */
static const char *const malformed[] = {
        "", " ", "+1", " 1", "1 ", "\t1", "1\n", "1a", "a1", "0x10", "1.0", "1e3", "--1", "- 1", "1-", "١",
};

static void test_safe_atou64(void **state) {
        uint64_t v;

        (void) state;
        assert_int_equal(safe_atou64("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(safe_atou64("42", &v), 0);
        assert_int_equal(v, 42);
        assert_int_equal(safe_atou64("007", &v), 0);
        assert_int_equal(v, 7);
        assert_int_equal(safe_atou64("18446744073709551615", &v), 0);
        assert_true(v == UINT64_MAX);
        assert_int_equal(safe_atou64("1800000000000000000", &v), 0);
        assert_true(v == UINT64_C(1800000000000000000));

        v = 4242;
        assert_int_equal(safe_atou64("18446744073709551616", &v), -ERANGE);
        assert_int_equal(safe_atou64("18446744073709551620", &v), -ERANGE);
        assert_int_equal(safe_atou64("99999999999999999999999999", &v), -ERANGE);
        assert_int_equal(safe_atou64("-1", &v), -EINVAL);
        assert_int_equal(safe_atou64("-0", &v), -EINVAL);
        assert_int_equal(safe_atou64(NULL, &v), -EINVAL);
        for (size_t i = 0; i < ELEMENTSOF(malformed); i++)
                if (safe_atou64(malformed[i], &v) != -EINVAL)
                        fail_msg("'%s' was not rejected with -EINVAL", malformed[i]);
        assert_int_equal(v, 4242); /* never written on failure */
}

static void test_safe_atoi64(void **state) {
        int64_t v;

        (void) state;
        assert_int_equal(safe_atoi64("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(safe_atoi64("-0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(safe_atoi64("-1", &v), 0);
        assert_int_equal(v, -1);
        assert_int_equal(safe_atoi64("123", &v), 0);
        assert_int_equal(v, 123);
        assert_int_equal(safe_atoi64("9223372036854775807", &v), 0);
        assert_true(v == INT64_MAX);
        assert_int_equal(safe_atoi64("-9223372036854775807", &v), 0);
        assert_true(v == -INT64_MAX);
        assert_int_equal(safe_atoi64("-9223372036854775808", &v), 0);
        assert_true(v == INT64_MIN);

        v = 4242;
        assert_int_equal(safe_atoi64("9223372036854775808", &v), -ERANGE);
        assert_int_equal(safe_atoi64("-9223372036854775809", &v), -ERANGE);
        assert_int_equal(safe_atoi64("18446744073709551615", &v), -ERANGE);
        assert_int_equal(safe_atoi64("-18446744073709551616", &v), -ERANGE);
        assert_int_equal(safe_atoi64("-", &v), -EINVAL);
        assert_int_equal(safe_atoi64("-+1", &v), -EINVAL);
        assert_int_equal(safe_atoi64("- 1", &v), -EINVAL);
        assert_int_equal(safe_atoi64(NULL, &v), -EINVAL);
        for (size_t i = 0; i < ELEMENTSOF(malformed); i++)
                if (safe_atoi64(malformed[i], &v) != -EINVAL)
                        fail_msg("'%s' was not rejected with -EINVAL", malformed[i]);
        assert_int_equal(v, 4242);
}

static void test_safe_atou(void **state) {
        char s[32];
        unsigned v;

        (void) state;
        assert_int_equal(safe_atou("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(safe_atou("65536", &v), 0);
        assert_int_equal(v, 65536);

        (void) snprintf(s, sizeof(s), "%u", UINT_MAX);
        assert_int_equal(safe_atou(s, &v), 0);
        assert_int_equal(v, UINT_MAX);

        v = 4242;
        (void) snprintf(s, sizeof(s), "%llu", (unsigned long long) UINT_MAX + 1);
        assert_int_equal(safe_atou(s, &v), -ERANGE);
        assert_int_equal(safe_atou("18446744073709551615", &v), -ERANGE);
        assert_int_equal(safe_atou("18446744073709551616", &v), -ERANGE);
        assert_int_equal(safe_atou("-1", &v), -EINVAL);
        assert_int_equal(safe_atou(NULL, &v), -EINVAL);
        for (size_t i = 0; i < ELEMENTSOF(malformed); i++)
                if (safe_atou(malformed[i], &v) != -EINVAL)
                        fail_msg("'%s' was not rejected with -EINVAL", malformed[i]);
        assert_int_equal(v, 4242);
}

static void test_parse_boolean(void **state) {
        static const char *const yes[] = {"1", "yes", "YES", "Yes", "true", "TRUE", "on", "On", "y", "t"};
        static const char *const no[] = {"0", "no", "NO", "false", "False", "off", "OFF", "n", "f"};
        static const char *const bad[] = {"",   " ",    "2",  "-1",   "yes ", " yes",
                                          "ye", "yess", "of", "nope", "01",   "truth"};

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (parse_boolean(yes[i]) != 1)
                        fail_msg("'%s' is not true", yes[i]);
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (parse_boolean(no[i]) != 0)
                        fail_msg("'%s' is not false", no[i]);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (parse_boolean(bad[i]) != -EINVAL)
                        fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(parse_boolean(NULL), -EINVAL);
}

static void test_parse_sec(void **state) {
        /* clang-format off */
        static const struct {
                const char *s;
                uint64_t usec;
        } good[] = {
                { "0",       0 },
                { "30",      30 * USEC_PER_SEC },
                { "30s",     30 * USEC_PER_SEC },
                { "500ms",   500 * USEC_PER_MSEC },
                { "1ms",     USEC_PER_MSEC },
                { "5m",      300 * USEC_PER_SEC },
                { "5min",    300 * USEC_PER_SEC },
                { "1h",      3600 * USEC_PER_SEC },
                { "2d",      2 * 86400 * USEC_PER_SEC },
                { "1h30m",   5400 * USEC_PER_SEC },
                { "1d2h3m4s5ms", (86400 + 7200 + 180 + 4) * USEC_PER_SEC + 5 * USEC_PER_MSEC },
                { "0h30m",   1800 * USEC_PER_SEC },
                { "1m30s",   90 * USEC_PER_SEC },
                { "18446744073709ms", UINT64_C(18446744073709) * USEC_PER_MSEC },
        };
        static const char *const bad[] = {
                "", " ", "x", "s", "h", "1x", "1 s", " 1", "1 ", "-1", "+1", "1.5s", "1h30", "0h30", "1h 30m",
                "1hh", "1sm", "1mi", "1ms5", "5S", "1H", "1h-1m", "30sec", "1w",
        };
        static const char *const too_big[] = {
                "18446744073710",        /* seconds -> usec overflows */
                "213503982336d",         /* days -> usec overflows */
                "18446744073709551616",  /* does not even fit in 64 bits */
                "18446744073709s18446744073709s",
        };
        /* clang-format on */
        uint64_t v;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                v = 4242;
                if (parse_sec(good[i].s, &v) != 0)
                        fail_msg("'%s' was rejected", good[i].s);
                if (v != good[i].usec)
                        fail_msg("'%s' gave %llu", good[i].s, (unsigned long long) v);
        }

        v = 4242;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (parse_sec(bad[i], &v) != -EINVAL)
                        fail_msg("'%s' was not rejected with -EINVAL", bad[i]);
        for (size_t i = 0; i < ELEMENTSOF(too_big); i++)
                if (parse_sec(too_big[i], &v) != -ERANGE)
                        fail_msg("'%s' was not rejected with -ERANGE", too_big[i]);
        assert_int_equal(parse_sec(NULL, &v), -EINVAL);
        assert_int_equal(v, 4242);

        /* Just past the largest representable value. */
        assert_int_equal(parse_sec("18446744073709551615ms", &v), -ERANGE);
}

static void test_parse_size(void **state) {
        /* clang-format off */
        static const struct {
                const char *s;
                uint64_t v;
        } good[] = {
                { "0",        0 },
                { "1",        1 },
                { "4096",     4096 },
                { "1K",       1024 },
                { "1KiB",     1024 },
                { "1KB",      1024 },
                { "64K",      64 * 1024 },
                { "2M",       2 * 1024 * 1024 },
                { "3MiB",     3 * 1024 * 1024 },
                { "1G",       UINT64_C(1) << 30 },
                { "16GB",     UINT64_C(16) << 30 },
                { "17179869183G", UINT64_C(17179869183) << 30 },
                { "18446744073709551615", UINT64_MAX },
        };
        static const char *const bad[] = {
                "", " ", "K", "1k", "1m", "1g", "1T", "1B", "1 K", " 1K", "1K ", "1Ki", "1KiBx", "1KBx",
                "1KK", "1iB", "-1", "+1", "1.5K", "1KIB", "1Kib", "0x10", "junk",
        };
        /* clang-format on */
        uint64_t v;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                v = 4242;
                if (parse_size(good[i].s, &v) != 0)
                        fail_msg("'%s' was rejected", good[i].s);
                if (v != good[i].v)
                        fail_msg("'%s' gave %llu", good[i].s, (unsigned long long) v);
        }

        v = 4242;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (parse_size(bad[i], &v) != -EINVAL)
                        fail_msg("'%s' was not rejected with -EINVAL", bad[i]);
        assert_int_equal(parse_size("17179869184G", &v), -ERANGE);
        assert_int_equal(parse_size("18014398509481984K", &v), -ERANGE);
        assert_int_equal(parse_size("18446744073709551616", &v), -ERANGE);
        assert_int_equal(parse_size(NULL, &v), -EINVAL);
        assert_int_equal(v, 4242);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_safe_atou64), cmocka_unit_test(test_safe_atoi64),
                cmocka_unit_test(test_safe_atou),   cmocka_unit_test(test_parse_boolean),
                cmocka_unit_test(test_parse_sec),   cmocka_unit_test(test_parse_size),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
