/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "form.h"

static void parse_ok(const char *s, Form *f) {
        assert_int_equal(form_parse(s, strlen(s), f), 0);
}

static void test_basic(void **state) {
        _cleanup_form_ Form f = FORM_NULL;

        parse_ok("id=test%3Akey&data=aGVsbG8%3D&acl=%5B%5D", &f);
        assert_int_equal(f.n, 3);
        assert_string_equal(form_get(&f, "id")->value, "test:key");
        assert_string_equal(form_get(&f, "data")->value, "aGVsbG8=");
        assert_string_equal(form_get(&f, "acl")->value, "[]");
        assert_int_equal(form_get(&f, "data")->value_len, 8);
        assert_null(form_get(&f, "missing"));
}

static void test_plus_and_empty(void **state) {
        _cleanup_form_ Form f = FORM_NULL;

        parse_ok("a+b=c+d&&empty=&novalue&=v&", &f);
        assert_int_equal(f.n, 4);
        assert_string_equal(form_get(&f, "a b")->value, "c d");
        assert_string_equal(form_get(&f, "empty")->value, "");
        assert_string_equal(form_get(&f, "novalue")->value, "");
        assert_int_equal(form_get(&f, "novalue")->value_len, 0);
        assert_string_equal(form_get(&f, "")->value, "v");
}

static void test_repeated_keys(void **state) {
        _cleanup_form_ Form f = FORM_NULL;

        parse_ok("k=1&x=2&k=3", &f);
        assert_string_equal(form_get(&f, "k")->value, "1");
        assert_string_equal(form_get_last(&f, "k")->value, "3");
        assert_string_equal(form_get_last(&f, "x")->value, "2");
}

static void test_raw_quotes_and_equals(void **state) {
        _cleanup_form_ Form f = FORM_NULL;

        /* Knox's client sends the status with raw double quotes. */
        parse_ok("status=\"Inactive\"&b=x=y", &f);
        assert_string_equal(form_get(&f, "status")->value, "\"Inactive\"");
        assert_string_equal(form_get(&f, "b")->value, "x=y");
}

static void test_bad_pairs_skipped(void **state) {
        _cleanup_form_ Form f = FORM_NULL;
        const char *s = "a=1&b=%zz&c;d=2&e=%4&f=%41";

        assert_int_equal(form_parse(s, strlen(s), &f), -EBADMSG);
        assert_int_equal(f.n, 2);
        assert_string_equal(form_get(&f, "a")->value, "1");
        assert_string_equal(form_get(&f, "f")->value, "A");
        assert_null(form_get(&f, "b"));
        assert_null(form_get(&f, "e"));
}

static void test_binary_values(void **state) {
        _cleanup_form_ Form f = FORM_NULL;
        const char s[] = "k=a%00b";

        assert_int_equal(form_parse(s, sizeof(s) - 1, &f), 0);
        assert_int_equal(form_get(&f, "k")->value_len, 3);
        assert_memory_equal(form_get(&f, "k")->value, "a\0b", 3);
}

static void test_not_nul_terminated(void **state) {
        _cleanup_form_ Form f = FORM_NULL;
        const char s[] = "a=1&b=2TRAILING";

        assert_int_equal(form_parse(s, 7, &f), 0);
        assert_string_equal(form_get(&f, "b")->value, "2");
}

static void test_empty(void **state) {
        _cleanup_form_ Form f = FORM_NULL;

        assert_int_equal(form_parse("", 0, &f), 0);
        assert_int_equal(f.n, 0);
        assert_null(form_get(&f, ""));
}

static void test_too_many(void **state) {
        _cleanup_form_ Form f = FORM_NULL;
        char *s;
        size_t n = FORM_FIELDS_MAX * 2 + 1;

        s = malloc(n + 1);
        assert_non_null(s);
        for (size_t i = 0; i < n; i++)
                s[i] = i % 2 ? '&' : 'a';
        s[n] = '\0';
        assert_int_equal(form_parse(s, n, &f), -E2BIG);
        assert_null(f.fields);
        free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_basic),
                cmocka_unit_test(test_plus_and_empty),
                cmocka_unit_test(test_repeated_keys),
                cmocka_unit_test(test_raw_quotes_and_equals),
                cmocka_unit_test(test_bad_pairs_skipped),
                cmocka_unit_test(test_binary_values),
                cmocka_unit_test(test_not_nul_terminated),
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_too_many),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
