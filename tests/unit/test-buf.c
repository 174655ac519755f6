/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "buf.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "secret.h"

static void test_empty(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        size_t len = 1;
        char *p;

        (void) state;
        assert_null(b.data);
        assert_int_equal(b.len, 0);

        /* Stealing from a Buf that never saw an append still gives a valid empty string. */
        p = buf_steal(&b, &len);
        assert_non_null(p);
        assert_string_equal(p, "");
        assert_int_equal(len, 0);
        free(p);

        /* An empty append allocates and NUL-terminates. */
        assert_int_equal(buf_put(&b, NULL, 0), 0);
        assert_non_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.data[0], '\0');
}

static void test_put_puts_putc_printf(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;

        (void) state;
        assert_int_equal(buf_puts(&b, "hello"), 0);
        assert_int_equal(buf_putc(&b, ','), 0);
        assert_int_equal(buf_putc(&b, ' '), 0);
        assert_int_equal(buf_put(&b, "world!!!", 5), 0);
        assert_int_equal(b.len, 12);
        assert_string_equal(b.data, "hello, world");

        assert_int_equal(buf_printf(&b, " %d-%s-%05.1f %c", 42, "x", 3.14159, 'z'), 0);
        assert_string_equal(b.data, "hello, world 42-x-003.1 z");
        assert_int_equal(b.len, strlen("hello, world 42-x-003.1 z"));

        /* An empty format appends nothing but keeps the terminator. */
        assert_int_equal(buf_printf(&b, "%s", ""), 0);
        assert_int_equal(b.len, strlen("hello, world 42-x-003.1 z"));
        assert_int_equal(b.data[b.len], '\0');

        /* Binary data with embedded NULs counts by length. */
        assert_int_equal(buf_put(&b, "\0a\0", 3), 0);
        assert_int_equal(b.len, strlen("hello, world 42-x-003.1 z") + 3);
        assert_memory_equal(b.data + b.len - 3, "\0a\0", 3);
        assert_int_equal(b.data[b.len], '\0');
        assert_int_equal(b.error, 0);
}

static void test_printf_first(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;

        (void) state;
        assert_int_equal(buf_printf(&b, "%s=%u", "n", 7u), 0);
        assert_string_equal(b.data, "n=7");
        assert_int_equal(b.len, 3);
}

static void test_growth(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        char expect[10000];

        (void) state;
        /* One byte at a time through many reallocations. */
        for (size_t i = 0; i < sizeof(expect) - 1; i++) {
                expect[i] = (char) ('a' + i % 26);
                assert_int_equal(buf_putc(&b, expect[i]), 0);
                assert_int_equal(b.len, i + 1);
                assert_true(b.cap > b.len);
                assert_int_equal(b.data[b.len], '\0');
        }
        expect[sizeof(expect) - 1] = '\0';
        assert_string_equal(b.data, expect);

        /* A long printf at once. */
        buf_done(&b);
        assert_int_equal(buf_printf(&b, "<%s>", expect), 0);
        assert_int_equal(b.len, sizeof(expect) + 1);
        assert_int_equal(b.data[0], '<');
        assert_memory_equal(b.data + 1, expect, sizeof(expect) - 1);
        assert_string_equal(b.data + sizeof(expect), ">");

        /* buf_reserve() makes room without changing the content. */
        assert_int_equal(buf_reserve(&b, 100000), 0);
        assert_true(b.cap >= b.len + 100000 + 1);
        assert_int_equal(b.len, sizeof(expect) + 1);
        assert_int_equal(b.data[0], '<');
}

static void test_max(void **state) {
        _cleanup_buf_ Buf b = {.max = 8};
        size_t len;
        char *p;

        (void) state;
        assert_int_equal(buf_puts(&b, "12345"), 0);
        assert_int_equal(buf_puts(&b, "678"), 0); /* exactly max is fine */
        assert_int_equal(b.len, 8);
        assert_string_equal(b.data, "12345678");
        assert_true(b.cap <= 9);

        /* One more byte is too much, and the error is sticky. */
        assert_int_equal(buf_putc(&b, '9'), -E2BIG);
        assert_int_equal(b.error, -E2BIG);
        assert_int_equal(b.len, 8);
        assert_string_equal(b.data, "12345678");
        assert_int_equal(buf_put(&b, NULL, 0), -E2BIG);
        assert_int_equal(buf_puts(&b, ""), -E2BIG);
        assert_int_equal(buf_printf(&b, "%s", ""), -E2BIG);
        assert_int_equal(buf_reserve(&b, 0), -E2BIG);
        assert_int_equal(b.len, 8);

        /* Stealing after an error fails and resets the Buf, keeping the limit. */
        len = 77;
        p = buf_steal(&b, &len);
        assert_null(p);
        assert_int_equal(len, 77);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.error, 0);
        assert_int_equal(b.max, 8);

        /* Usable again; a printf that overflows fails as a whole. */
        assert_int_equal(buf_puts(&b, "abc"), 0);
        assert_int_equal(buf_printf(&b, "%s", "defghi"), -E2BIG);
        assert_string_equal(b.data, "abc");
        assert_int_equal(buf_putc(&b, 'd'), -E2BIG);
        assert_string_equal(b.data, "abc");

        /* buf_done() clears the error too. */
        buf_done(&b);
        assert_int_equal(b.error, 0);
        assert_int_equal(b.max, 8);
        assert_int_equal(buf_printf(&b, "%s", "123456789"), -E2BIG);
        assert_int_equal(b.error, -E2BIG);
}

static void test_max_large(void **state) {
        _cleanup_buf_ Buf b = {.max = SIZE_MAX};
        _cleanup_buf_ Buf c = {.max = 1};

        (void) state;
        /* The largest limit must behave as "practically unlimited", not overflow. */
        assert_int_equal(buf_puts(&b, "no overflow"), 0);
        assert_string_equal(b.data, "no overflow");
        assert_int_equal(buf_reserve(&b, SIZE_MAX), -ENOMEM);

        assert_int_equal(buf_putc(&c, 'x'), 0);
        assert_int_equal(buf_putc(&c, 'y'), -E2BIG);
        assert_string_equal(c.data, "x");
}

static void test_steal(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        _cleanup_free_ char *p = NULL, *q = NULL;
        size_t len = 0;

        (void) state;
        assert_int_equal(buf_puts(&b, "payload"), 0);
        b.max = 100;
        p = buf_steal(&b, &len);
        assert_non_null(p);
        assert_string_equal(p, "payload");
        assert_int_equal(len, 7);

        /* The Buf is reset and no longer owns p (ASan would flag a double free). */
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
        assert_int_equal(b.max, 100);

        assert_int_equal(buf_puts(&b, "next"), 0);
        q = buf_steal(&b, NULL);
        assert_string_equal(q, "next");
        assert_string_equal(p, "payload");
}

static void test_truncate(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;

        (void) state;
        buf_truncate(&b, 0); /* no data yet: no-op */
        assert_null(b.data);

        assert_int_equal(buf_puts(&b, "abcdef"), 0);
        buf_truncate(&b, 10); /* longer than the content: no-op */
        assert_string_equal(b.data, "abcdef");
        assert_int_equal(b.len, 6);

        buf_truncate(&b, 3);
        assert_int_equal(b.len, 3);
        assert_string_equal(b.data, "abc");
        assert_int_equal(buf_puts(&b, "XY"), 0);
        assert_string_equal(b.data, "abcXY");

        buf_truncate(&b, 0);
        assert_int_equal(b.len, 0);
        assert_string_equal(b.data, "");
}

static void test_secure(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT_SECURE;
        char expect[5000];
        char *old;
        bool moved = false;

        (void) state;
        assert_true(b.secure);
        assert_int_equal(buf_puts(&b, "s3cr3t"), 0);
        old = b.data;
        for (size_t i = 0; i < sizeof(expect) - 1; i++) {
                expect[i] = (char) ('A' + i % 26);
                assert_int_equal(buf_putc(&b, expect[i]), 0);
                if (b.data != old)
                        moved = true;
                old = b.data;
        }
        expect[sizeof(expect) - 1] = '\0';
        /* It grew (into new buffers) and kept the content in order. */
        assert_true(moved);
        assert_int_equal(b.len, 6 + sizeof(expect) - 1);
        assert_memory_equal(b.data, "s3cr3t", 6);
        assert_string_equal(b.data + 6, expect);

        assert_int_equal(buf_printf(&b, "%s", "!"), 0);
        assert_int_equal(b.data[b.len - 1], '!');

        /* Truncation wipes the tail it drops. */
        buf_truncate(&b, 6);
        assert_string_equal(b.data, "s3cr3t");
        for (size_t i = 6; i < sizeof(expect); i++)
                assert_int_equal(b.data[i], '\0');

        /* done frees, resets and stays secure. */
        buf_done(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
        assert_true(b.secure);
        assert_int_equal(buf_puts(&b, "again"), 0);
        assert_string_equal(b.data, "again");
}

static void test_secure_steal(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT_SECURE;
        char *p;
        size_t len;

        (void) state;
        assert_int_equal(buf_printf(&b, "token-%d", 123), 0);
        p = buf_steal(&b, &len);
        assert_string_equal(p, "token-123");
        assert_int_equal(len, 9);
        assert_true(b.secure);
        assert_null(b.data);
        p = erase_and_free_string(p);
        assert_null(p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),        cmocka_unit_test(test_put_puts_putc_printf),
                cmocka_unit_test(test_printf_first), cmocka_unit_test(test_growth),
                cmocka_unit_test(test_max),          cmocka_unit_test(test_max_large),
                cmocka_unit_test(test_steal),        cmocka_unit_test(test_truncate),
                cmocka_unit_test(test_secure),       cmocka_unit_test(test_secure_steal),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
