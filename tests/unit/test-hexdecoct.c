/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "hexdecoct.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "random-util.h"

static void test_hexencode(void **state) {
        static const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff};
        char out[2 * sizeof(in) + 1];

        (void) state;
        memset(out, 'x', sizeof(out));
        hexencode(in, sizeof(in), out);
        assert_string_equal(out, "00017f80abcdefff");

        memset(out, 'x', sizeof(out));
        hexencode(in, 0, out);
        assert_string_equal(out, "");

        hexencode("\x0f", 1, out);
        assert_string_equal(out, "0f");
}

static void test_base64_encoded_size(void **state) {
        (void) state;
        assert_int_equal(base64_encoded_size(0), 0);
        assert_int_equal(base64_encoded_size(1), 4);
        assert_int_equal(base64_encoded_size(2), 4);
        assert_int_equal(base64_encoded_size(3), 4);
        assert_int_equal(base64_encoded_size(4), 8);
        assert_int_equal(base64_encoded_size(6), 8);
        assert_int_equal(base64_encoded_size(7), 12);
}

/* RFC 4648 §10 */
/* clang-format off */
static const struct {
        const char *plain;
        const char *encoded;
} rfc4648[] = {
        { "",       ""         },
        { "f",      "Zg=="     },
        { "fo",     "Zm8="     },
        { "foo",    "Zm9v"     },
        { "foob",   "Zm9vYg==" },
        { "fooba",  "Zm9vYmE=" },
        { "foobar", "Zm9vYmFy" },
};
/* clang-format on */

static void test_base64_rfc4648(void **state) {
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(rfc4648); i++) {
                _cleanup_buf_ Buf b = BUF_INIT;
                size_t len = strlen(rfc4648[i].encoded), n = 12345;
                uint8_t out[16];

                assert_int_equal(base64_append(&b, rfc4648[i].plain, strlen(rfc4648[i].plain)), 0);
                assert_non_null(b.data);
                assert_string_equal(b.data, rfc4648[i].encoded);
                assert_int_equal(b.len, len);

                assert_true(base64_decoded_max(len) <= sizeof(out));
                assert_int_equal(base64_decode(rfc4648[i].encoded, len, out, &n), 0);
                assert_int_equal(n, strlen(rfc4648[i].plain));
                assert_memory_equal(out, rfc4648[i].plain, n);
        }
}

static void test_base64_append_to_existing(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT, l = {.max = 7};

        (void) state;
        assert_int_equal(buf_puts(&b, "data="), 0);
        assert_int_equal(base64_append(&b, "\xff\xfe\xfd", 3), 0);
        assert_string_equal(b.data, "data=//79");
        assert_int_equal(base64_append(&b, "\xfb\xff", 2), 0);
        assert_string_equal(b.data, "data=//79+/8=");

        /* The Buf's limit applies. */
        assert_int_equal(base64_append(&l, "abc", 3), 0);
        assert_int_equal(base64_append(&l, "d", 1), -E2BIG);
        assert_string_equal(l.data, "YWJj");
}

static void test_base64_roundtrip(void **state) {
        uint8_t in[700];

        (void) state;
        assert_int_equal(random_bytes(in, sizeof(in)), 0);
        /* Every byte value somewhere. */
        for (size_t i = 0; i < 256; i++)
                in[i + 300] = (uint8_t) i;

        for (size_t n = 0; n <= sizeof(in); n += n < 64 ? 1 : 37) {
                _cleanup_buf_ Buf b = BUF_INIT, wrapped = BUF_INIT;
                _cleanup_free_ uint8_t *out = NULL, *out2 = NULL;
                size_t m = SIZE_MAX;

                assert_int_equal(base64_append(&b, in, n), 0);
                assert_non_null(b.data);
                assert_int_equal(b.len, base64_encoded_size(n));
                assert_int_equal(strlen(b.data), b.len);
                for (size_t i = 0; i < b.len; i++)
                        assert_true(
                                strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
                                       b.data[i]));

                /* Allocated to the documented bound, so ASan catches any overrun. */
                out = malloc(base64_decoded_max(b.len));
                assert_non_null(out);
                assert_int_equal(base64_decode(b.data, b.len, out, &m), 0);
                assert_int_equal(m, n);
                assert_memory_equal(out, in, n);

                /* The same with CR LF every 76 characters (MIME style) and a final newline. */
                for (size_t i = 0; i < b.len; i += 76) {
                        assert_int_equal(buf_put(&wrapped, b.data + i, MIN((size_t) 76, b.len - i)), 0);
                        assert_int_equal(buf_puts(&wrapped, "\r\n"), 0);
                }
                if (!wrapped.data)
                        assert_int_equal(buf_puts(&wrapped, "\n"), 0);
                out2 = malloc(base64_decoded_max(wrapped.len));
                assert_non_null(out2);
                m = SIZE_MAX;
                assert_int_equal(base64_decode(wrapped.data, wrapped.len, out2, &m), 0);
                assert_int_equal(m, n);
                assert_memory_equal(out2, in, n);
        }
}

static int decode(const char *s, uint8_t *out, size_t *n) {
        return base64_decode(s, strlen(s), out, n);
}

static void test_base64_decode_errors(void **state) {
        static const char *const bad[] = {
                "Zg",         /* missing padding */
                "Zm8",        /* missing padding */
                "Zg=",        /* incomplete padding */
                "Zm9vYg",     /* missing padding after a full quantum */
                "Z",          /* lone character */
                "Zm9vY",      /* lone trailing character */
                "Zm9vY===",   /* lone character, too much padding */
                "Z===",       /* too much padding */
                "Zg===",      /* too much padding */
                "Zm8==",      /* too much padding */
                "Zm9v=",      /* padding after a full quantum */
                "Zm9v====",   /* a whole quantum of padding */
                "=",          /* only padding */
                "==",         /* only padding */
                "=Zg=",       /* misplaced padding */
                "Z=g=",       /* misplaced padding */
                "Zg=a",       /* data after padding */
                "Zg==Zg==",   /* data after padding */
                "Zg==\nZg==", /* data after padding, across a line */
                "Zm9v!",      /* bad character */
                "Zm9v YmFy",  /* space is not skipped */
                "Zm9v\tYmFy", /* nor tab */
                "Zm-v",       /* URL alphabet */
                "Zm_v",       /* URL alphabet */
                "Zm9\x80",    /* high byte */
                "Zm\xc3\xa9v",
        };
        uint8_t out[64];
        size_t n;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                n = 4242;
                if (decode(bad[i], out, &n) != -EBADMSG)
                        fail_msg("'%s' was accepted", bad[i]);
                assert_int_equal(n, 4242); /* untouched on failure */
        }

        /* A NUL byte inside the given length is a bad character, not an end. */
        assert_int_equal(base64_decode("Zm9v\0YmFy", 9, out, &n), -EBADMSG);
        assert_int_equal(base64_decode("Zg==\0", 5, out, &n), -EBADMSG);
}

static void test_base64_decode_ok(void **state) {
        uint8_t out[64];
        size_t n;

        (void) state;
        /* CR and LF are skipped anywhere, even inside the padding (as Go does). */
        assert_int_equal(decode("Zm9v\r\nYmFy", out, &n), 0);
        assert_int_equal(n, 6);
        assert_memory_equal(out, "foobar", 6);
        assert_int_equal(decode("\nZ\rg\n=\r\n=\n", out, &n), 0);
        assert_int_equal(n, 1);
        assert_memory_equal(out, "f", 1);
        assert_int_equal(decode("\r\n", out, &n), 0);
        assert_int_equal(n, 0);

        /* Only len characters are looked at. */
        assert_int_equal(base64_decode("Zm9vgarbage", 4, out, &n), 0);
        assert_int_equal(n, 3);
        assert_memory_equal(out, "foo", 3);

        /* Non-zero trailing bits are accepted, as in Go's (non-strict) StdEncoding. */
        assert_int_equal(decode("Zh==", out, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(out[0], 'f');

        /* '+' and '/' are the standard alphabet's 62 and 63. */
        assert_int_equal(decode("+/8=", out, &n), 0);
        assert_int_equal(n, 2);
        assert_memory_equal(out, "\xfb\xff", 2);
}

static int decode_url(const char *s, uint8_t *out, size_t *n) {
        return base64url_decode(s, strlen(s), out, n);
}

static void test_base64url(void **state) {
        static const char *const bad[] = {
                "Zg==",  /* padding is an error */
                "Zm8=",  /* padding is an error */
                "Zg=",   /* padding is an error */
                "=",     /* padding is an error */
                "Z",     /* lone character */
                "Zm9vY", /* lone trailing character */
                "+/8",   /* standard alphabet */
                "Zm9v/", /* standard alphabet */
                "Zm 9v", /* space */
                "Zm9v!", /* bad character */
        };
        uint8_t in[200], out[300];
        size_t n;

        (void) state;
        assert_int_equal(decode_url("", out, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(decode_url("Zg", out, &n), 0);
        assert_int_equal(n, 1);
        assert_memory_equal(out, "f", 1);
        assert_int_equal(decode_url("Zm8", out, &n), 0);
        assert_int_equal(n, 2);
        assert_memory_equal(out, "fo", 2);
        assert_int_equal(decode_url("Zm9vYmFy", out, &n), 0);
        assert_int_equal(n, 6);
        assert_memory_equal(out, "foobar", 6);
        assert_int_equal(decode_url("-_8", out, &n), 0);
        assert_int_equal(n, 2);
        assert_memory_equal(out, "\xfb\xff", 2);
        assert_int_equal(decode_url("Zm9v\r\nYg", out, &n), 0);
        assert_int_equal(n, 4);
        assert_memory_equal(out, "foob", 4);

        /* A JSON access entry, as the v0 API's "access" parameter carries it. */
        assert_int_equal(
                decode_url("eyJ0eXBlIjoiVXNlciIsImlkIjoiYWxpY2UiLCJhY2Nlc3MiOiJSZWFkIn0", out, &n), 0);
        assert_int_equal(n, strlen("{\"type\":\"User\",\"id\":\"alice\",\"access\":\"Read\"}"));
        assert_memory_equal(out, "{\"type\":\"User\",\"id\":\"alice\",\"access\":\"Read\"}", n);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                n = 4242;
                if (decode_url(bad[i], out, &n) != -EBADMSG)
                        fail_msg("'%s' was accepted", bad[i]);
                assert_int_equal(n, 4242);
        }

        /* Round trip: standard encoding, translated to the URL alphabet, padding dropped. */
        assert_int_equal(random_bytes(in, sizeof(in)), 0);
        for (size_t len = 0; len <= sizeof(in); len++) {
                _cleanup_buf_ Buf b = BUF_INIT;
                size_t l;

                assert_int_equal(base64_append(&b, in, len), 0);
                l = b.len;
                while (l > 0 && b.data[l - 1] == '=')
                        l--;
                for (size_t i = 0; i < l; i++)
                        if (b.data[i] == '+')
                                b.data[i] = '-';
                        else if (b.data[i] == '/')
                                b.data[i] = '_';
                assert_true(base64_decoded_max(l) <= sizeof(out));
                assert_int_equal(base64url_decode(b.data, l, out, &n), 0);
                assert_int_equal(n, len);
                assert_memory_equal(out, in, len);
        }
}

static int unescape(const char *s, bool plus, char *out, size_t *n) {
        return url_unescape(s, strlen(s), plus, out, n);
}

static void test_url_unescape(void **state) {
        static const char *const bad[] = {
                "%", "%4", "%zz", "%4g", "%g4", "a%", "a%2", "%%", "%%41", "abc%4", "% 41", "%-1",
        };
        char out[64];
        size_t n;

        (void) state;
        assert_int_equal(unescape("%41", false, out, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(out, "A");

        assert_int_equal(unescape("a+b", true, out, &n), 0);
        assert_string_equal(out, "a b");
        assert_int_equal(unescape("a+b", false, out, &n), 0);
        assert_string_equal(out, "a+b");
        assert_int_equal(n, 3);

        /* An escaped plus is a plus, hex digits in either case. */
        assert_int_equal(unescape("%2b%2B", true, out, &n), 0);
        assert_string_equal(out, "++");

        assert_int_equal(unescape("%22Primary%22", true, out, &n), 0);
        assert_string_equal(out, "\"Primary\"");

        assert_int_equal(unescape("%C3%A9t%c3%a9", true, out, &n), 0);
        assert_string_equal(out, "\xc3\xa9t\xc3\xa9");

        /* %00 is kept as a byte; the length tells. */
        assert_int_equal(unescape("a%00b", false, out, &n), 0);
        assert_int_equal(n, 3);
        assert_memory_equal(out, "a\0b", 4);

        assert_int_equal(unescape("", true, out, &n), 0);
        assert_int_equal(n, 0);
        assert_string_equal(out, "");

        /* Plain characters pass, including ones a strict decoder might refuse. */
        assert_int_equal(unescape("a=b&c/d?~!", true, out, &n), 0);
        assert_string_equal(out, "a=b&c/d?~!");

        /* Only len bytes are read. */
        assert_int_equal(url_unescape("%41%zz", 3, false, out, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(out, "A");
        assert_int_equal(url_unescape("%41%zz", 5, false, out, &n), -EBADMSG);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                n = 4242;
                if (unescape(bad[i], true, out, &n) != -EBADMSG)
                        fail_msg("'%s' was accepted", bad[i]);
                assert_int_equal(n, 4242);
        }
}

static void test_url_escape(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        char all[256];
        char out[1024];
        size_t n;

        (void) state;
        /* As Go's url.QueryEscape. */
        assert_int_equal(url_escape_append(&b, "a b&c=d/e?f", strlen("a b&c=d/e?f")), 0);
        assert_string_equal(b.data, "a+b%26c%3Dd%2Fe%3Ff");
        buf_done(&b);

        assert_int_equal(url_escape_append(&b, "AZaz09-_.~", 10), 0);
        assert_string_equal(b.data, "AZaz09-_.~");
        buf_done(&b);

        assert_int_equal(url_escape_append(&b, "\"Primary\"", 9), 0);
        assert_string_equal(b.data, "%22Primary%22");
        buf_done(&b);

        assert_int_equal(url_escape_append(&b, "+%#$,:;@[]!'()*", 15), 0);
        assert_string_equal(b.data, "%2B%25%23%24%2C%3A%3B%40%5B%5D%21%27%28%29%2A");
        buf_done(&b);

        assert_int_equal(url_escape_append(&b, "\xc3\xa9\x00\x7f\xff\n", 6), 0);
        assert_string_equal(b.data, "%C3%A9%00%7F%FF%0A");
        buf_done(&b);

        /* Appends to what is there; empty input adds nothing. */
        assert_int_equal(buf_puts(&b, "id="), 0);
        assert_int_equal(url_escape_append(&b, "", 0), 0);
        assert_int_equal(url_escape_append(&b, "x y", 3), 0);
        assert_string_equal(b.data, "id=x+y");
        buf_done(&b);

        /* Every byte value round-trips through url_unescape(). */
        for (size_t i = 0; i < sizeof(all); i++)
                all[i] = (char) i;
        assert_int_equal(url_escape_append(&b, all, sizeof(all)), 0);
        for (size_t i = 0; i < b.len; i++)
                assert_true(strchr(
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~%+", b.data[i]));
        assert_true(b.len < sizeof(out));
        assert_int_equal(url_unescape(b.data, b.len, true, out, &n), 0);
        assert_int_equal(n, sizeof(all));
        assert_memory_equal(out, all, sizeof(all));
        buf_done(&b);

        /* A limit is honoured. */
        b.max = 4;
        assert_int_equal(url_escape_append(&b, "ab&", 3), -E2BIG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hexencode),        cmocka_unit_test(test_base64_encoded_size),
                cmocka_unit_test(test_base64_rfc4648),   cmocka_unit_test(test_base64_append_to_existing),
                cmocka_unit_test(test_base64_roundtrip), cmocka_unit_test(test_base64_decode_errors),
                cmocka_unit_test(test_base64_decode_ok), cmocka_unit_test(test_base64url),
                cmocka_unit_test(test_url_unescape),     cmocka_unit_test(test_url_escape),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
