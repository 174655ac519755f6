/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "json-util.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

/* json_append_string() of n bytes, compared with what Go's json.Marshal writes. */
static void check_string(const char *in, size_t n, const char *expect) {
        _cleanup_buf_ Buf b = BUF_INIT;

        assert_int_equal(json_append_string(&b, in, n), 0);
        assert_non_null(b.data);
        if (!streq(b.data, expect))
                fail_msg("got %s, expected %s", b.data, expect);
        assert_int_equal(b.len, strlen(expect));
}
#define CHECK(in, expect) check_string(in, sizeof(in) - 1, expect)

static void test_append_string_escapes(void **state) {
        (void) state;
        CHECK("", "\"\"");
        CHECK("hello, world", "\"hello, world\"");
        CHECK("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
        CHECK("\n\r\t", "\"\\n\\r\\t\"");
        CHECK("\x00", "\"\\u0000\"");
        CHECK("a\x00"
              "b",
              "\"a\\u0000b\"");
        CHECK("\x01\x07\x08\x0b\x0c\x0e\x1a\x1f",
              "\"\\u0001\\u0007\\u0008\\u000b\\u000c\\u000e\\u001a\\u001f\"");
        CHECK(" ~\x7f", "\" ~\x7f\""); /* DEL is not escaped */
        CHECK("<script>&amp;", "\"\\u003cscript\\u003e\\u0026amp;\"");
        CHECK("'", "\"'\"");
        /* Line and paragraph separators are escaped, their neighbours are not. */
        CHECK("\xe2\x80\xa8", "\"\\u2028\"");
        CHECK("\xe2\x80\xa9", "\"\\u2029\"");
        CHECK("a\xe2\x80\xa7\xe2\x80\xaa", "\"a\xe2\x80\xa7\xe2\x80\xaa\"");
}

static void test_append_string_utf8(void **state) {
        (void) state;
        /* Valid multi-byte sequences are kept as they are. */
        CHECK("\xc3\xa9t\xc3\xa9", "\"\xc3\xa9t\xc3\xa9\""); /* U+00E9 */
        CHECK("\xc2\x80", "\"\xc2\x80\"");                   /* U+0080 */
        CHECK("\xdf\xbf", "\"\xdf\xbf\"");                   /* U+07FF */
        CHECK("\xe0\xa0\x80", "\"\xe0\xa0\x80\"");           /* U+0800 */
        CHECK("\xe2\x82\xac", "\"\xe2\x82\xac\"");           /* U+20AC */
        CHECK("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");           /* U+D7FF */
        CHECK("\xee\x80\x80", "\"\xee\x80\x80\"");           /* U+E000 */
        CHECK("\xef\xbf\xbd", "\"\xef\xbf\xbd\"");           /* U+FFFD itself */
        CHECK("\xef\xbf\xbf", "\"\xef\xbf\xbf\"");           /* U+FFFF */
        CHECK("\xf0\x90\x80\x80", "\"\xf0\x90\x80\x80\"");   /* U+10000 */
        CHECK("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");   /* U+1F600 */
        CHECK("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");   /* U+10FFFF */

        /* Each byte of invalid UTF-8 becomes U+FFFD. */
        CHECK("\xff", "\"\\ufffd\"");
        CHECK("\x80", "\"\\ufffd\"");
        CHECK("a\xfe"
              "b",
              "\"a\\ufffdb\"");
        CHECK("\xc3", "\"\\ufffd\""); /* truncated */
        CHECK("\xc3"
              "a",
              "\"\\ufffda\"");                   /* bad continuation */
        CHECK("\xe2\x82", "\"\\ufffd\\ufffd\""); /* truncated */
        CHECK("\xe2\x82"
              "a",
              "\"\\ufffd\\ufffda\"");
        CHECK("\xf0\x9f\x98", "\"\\ufffd\\ufffd\\ufffd\"");            /* truncated */
        CHECK("\xc0\xaf", "\"\\ufffd\\ufffd\"");                       /* overlong '/' */
        CHECK("\xc1\xbf", "\"\\ufffd\\ufffd\"");                       /* overlong */
        CHECK("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong */
        CHECK("\xe0\x9f\xbf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong U+07FF */
        CHECK("\xf0\x80\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* overlong */
        CHECK("\xf0\x8f\xbf\xbf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* overlong U+FFFF */
        CHECK("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate U+D800 */
        CHECK("\xed\xbf\xbf", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate U+DFFF */
        CHECK("\xed\xa0\xbd\xed\xb8\x80",
              "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");       /* CESU-8 pair */
        CHECK("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* U+110000 */
        CHECK("\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
        CHECK("\xf8\x88\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");

        /* Mixed: escapes, invalid and valid bytes in one string. */
        CHECK("<\xff\xc3\xa9\n\xe2\x80\xa8>", "\"\\u003c\\ufffd\xc3\xa9\\n\\u2028\\u003e\"");
}

static void test_append_misc(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT, l = {.max = 8};

        (void) state;
        /* Only n bytes are read. */
        check_string("abcdef", 3, "\"abc\"");
        check_string("\xe2\x82\xac", 2, "\"\\ufffd\\ufffd\"");

        assert_int_equal(buf_putc(&b, '{'), 0);
        assert_int_equal(json_append_cstring(&b, "id"), 0);
        assert_int_equal(buf_putc(&b, ':'), 0);
        assert_int_equal(json_append_int64(&b, INT64_MIN), 0);
        assert_int_equal(buf_putc(&b, ','), 0);
        assert_int_equal(json_append_cstring(&b, NULL), 0);
        assert_int_equal(buf_putc(&b, ':'), 0);
        assert_int_equal(json_append_uint64(&b, UINT64_MAX), 0);
        assert_int_equal(buf_putc(&b, ','), 0);
        assert_int_equal(json_append_int64(&b, 0), 0);
        assert_int_equal(buf_putc(&b, ','), 0);
        assert_int_equal(json_append_int64(&b, INT64_MAX), 0);
        assert_int_equal(buf_putc(&b, '}'), 0);
        assert_string_equal(
                b.data, "{\"id\":-9223372036854775808,\"\":18446744073709551615,0,9223372036854775807}");

        /* The Buf's limit is reported. */
        assert_int_equal(json_append_cstring(&l, "abcdef"), 0);
        assert_int_equal(json_append_cstring(&l, "x"), -E2BIG);
        buf_done(&l);
        assert_int_equal(json_append_cstring(&l, "a<b>c"), -E2BIG);
}

/* The escaper's output is JSON that json-c reads back to the very input (valid UTF-8). */
static void check_roundtrip(const char *in, size_t n) {
        _cleanup_buf_ Buf b = BUF_INIT;
        json_object *o = NULL;
        const char *m = NULL, *s;
        size_t l;

        assert_int_equal(json_append_string(&b, in, n), 0);
        if (json_parse(b.data, b.len, &o, &m) != 0)
                fail_msg("%s: %s", b.data, m);
        assert_int_equal(json_get_string(o, &s, &l), 0);
        assert_int_equal(l, n);
        assert_memory_equal(s, in, n);
        json_object_put(o);
}

static void test_append_roundtrip(void **state) {
        static const char multi[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xe2\x80\xa8\xef\xbf\xbd";
        char in[128 + 10 * (sizeof(multi) - 1)];

        (void) state;
        for (size_t i = 0; i < 128; i++)
                in[i] = (char) i;
        for (size_t i = 0; i < 10; i++)
                memcpy(in + 128 + i * (sizeof(multi) - 1), multi, sizeof(multi) - 1);

        for (size_t n = 0; n <= 128; n++)
                check_roundtrip(in, n);
        for (size_t i = 0; i < 128; i++)
                check_roundtrip(in + i, 1);
        check_roundtrip(in, sizeof(in));
        check_roundtrip(in + 128, sizeof(in) - 128);
}

static int parse(const char *s, json_object **ret, const char **m) {
        return json_parse(s, strlen(s), ret, m);
}

static void test_parse_valid(void **state) {
        static const char *const good[] = {
                "{}",
                "[]",
                "\"\"",
                "0",
                "-0",
                "1",
                "-1",
                "1.5",
                "-1.5e-3",
                "1E+2",
                "true",
                "false",
                "{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\\n\"}",
                " \t\r\n{ \"a\" : 1 } \t\r\n",
                "[1]\n",
                "\"\\ud83d\\ude00\"",
                "[\"\\/\"]",
        };
        json_object *o = NULL, *v;
        const char *m = NULL, *s;
        size_t l;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                m = NULL;
                if (parse(good[i], &o, &m) != 0)
                        fail_msg("'%s' was rejected: %s", good[i], strna(m));
                assert_non_null(o);
                json_object_put(o);
                o = NULL;
        }

        /* JSON null parses to NULL. */
        o = (json_object *) 0x1;
        assert_int_equal(parse("null", &o, &m), 0);
        assert_null(o);
        assert_int_equal(parse(" null\n", &o, &m), 0);
        assert_null(o);

        assert_int_equal(parse("{\"a\":[1,2,{\"b\":\"x\\u0000y\"}],\"c\":\"\\u00e9\"}", &o, &m), 0);
        v = json_get_field(o, "c");
        assert_int_equal(json_get_string(v, &s, &l), 0);
        assert_int_equal(l, 2);
        assert_string_equal(s, "\xc3\xa9");
        v = json_get_field(json_object_array_get_idx(json_get_field(o, "a"), 2), "b");
        assert_int_equal(json_get_string(v, &s, NULL), 0);
        assert_int_equal(json_get_string(v, &s, &l), 0);
        assert_int_equal(l, 3);
        assert_memory_equal(s, "x\0y", 3);
        json_object_put(o);

        /* Only n bytes are looked at. */
        assert_int_equal(json_parse("[1]garbage", 3, &o, &m), 0);
        assert_int_equal(json_object_array_length(o), 1);
        json_object_put(o);
        assert_int_equal(json_parse("12345", 2, &o, &m), 0);
        assert_int_equal(json_object_get_int64(o), 12);
        json_object_put(o);
}

static void test_parse_invalid(void **state) {
        static const char *const bad[] = {
                "",           /* empty */
                " \n",        /* only white space */
                "{",          /* truncated */
                "{\"a\":1",   /* truncated */
                "{\"a\":",    /* truncated */
                "[1,",        /* truncated */
                "\"abc",      /* truncated */
                "nul",        /* truncated */
                "tru",        /* truncated */
                "-",          /* truncated */
                "1e",         /* truncated */
                "{} x",       /* trailing garbage */
                "{}{}",       /* two values */
                "1 2",        /* two values */
                "[1] ,",      /* trailing garbage */
                "[1] // c",   /* comment */
                "/* c */ 1",  /* comment */
                "[1,]",       /* trailing comma */
                "{\"a\":1,}", /* trailing comma */
                "[1,,2]",
                "{a:1}", /* unquoted key */
                "'a'",   /* single quotes */
                "TRUE",
                "True",
                "NaN",
                "[NaN]",
                "Infinity",
                "-Infinity",
                "[1, Infinity]",
                "01", /* leading zero */
                "[01]",
                "[-01]",
                "[00]",
                "1.",
                "[1.]",
                "[.5]",
                "[1.e5]",
                "+1",
                "0x10",
                "\"a\nb\"", /* raw control character in a string */
                "\"a\tb\"",
                "[\"\x01\"]",
                "\"\\x41\"", /* bad escape */
                "\"\\u12\"",
                "\"\\u12G4\"",
                "\x0b"
                "1", /* not JSON white space */
                "\x0c"
                "1",
                "1\x0c",
        };
        json_object *o = (json_object *) 0x1;
        const char *m;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                m = NULL;
                if (parse(bad[i], &o, &m) != -EBADMSG)
                        fail_msg("'%s' was accepted", bad[i]);
                assert_non_null(m);
                assert_true(strlen(m) > 0);
        }
        assert_ptr_equal(o, (json_object *) 0x1); /* untouched on failure */

        /* Truncation reads as Go's "unexpected end of JSON input". */
        assert_int_equal(parse("{\"a\":[1,2", &o, &m), -EBADMSG);
        assert_string_equal(m, "unexpected end of JSON input");
        assert_int_equal(parse("", &o, &m), -EBADMSG);
        assert_string_equal(m, "unexpected end of JSON input");
        assert_int_equal(parse("{} x", &o, &m), -EBADMSG);
        assert_string_equal(m, "invalid character after top-level value");

        /* NUL bytes inside the given length are not white space. */
        assert_int_equal(json_parse("{}\0", 3, &o, &m), -EBADMSG);
        assert_int_equal(json_parse("12\0", 3, &o, &m), -EBADMSG);
        assert_int_equal(json_parse("[1,\0 2]", 7, &o, &m), -EBADMSG);
        assert_int_equal(json_parse("\0", 1, &o, &m), -EBADMSG);
        assert_int_equal(json_parse("\"a\0b\"", 5, &o, &m), -EBADMSG);
        assert_ptr_equal(o, (json_object *) 0x1);
}

static char *nested(const char *open, const char *inner, const char *close, unsigned depth) {
        _cleanup_buf_ Buf b = BUF_INIT;

        for (unsigned i = 0; i < depth; i++)
                assert_int_equal(buf_puts(&b, open), 0);
        assert_int_equal(buf_puts(&b, inner), 0);
        for (unsigned i = 0; i < depth; i++)
                assert_int_equal(buf_puts(&b, close), 0);
        return buf_steal(&b, NULL);
}

/* A repeated key would make json-c free the first value unwiped: refused before parsing.
 * The same key in different objects, or in the objects of an array, is fine. */
static void test_parse_repeated_keys(void **state) {
        static const char *const good[] = {
                "{\"a\":1,\"b\":2}",
                "{\"a\":{\"a\":1},\"b\":{\"a\":2}}",
                "[{\"data\":\"x\"},{\"data\":\"y\"}]",
                "{\"versions\":[{\"id\":1,\"data\":\"QQ==\"},{\"id\":2,\"data\":\"Qg==\"}],\"id\":\"k\"}",
                "{\"a\":\"\\\":\",\"b\":\"a\"}", /* a value that looks like a key */
                "[\"a\",\"a\"]",
                "{\"c\\u003cd\":1,\"c<e\":2}", /* as Go escapes a map key */
                "{\"ab\":1,\"a\":1,\"b\":1}",
        };
        static const char *const bad[] = {
                "{\"a\":1,\"a\":2}",
                "{\"data\":\"c2VjcmV0\",\"id\":1,\"data\":\"b3RoZXI=\"}",
                "{\"x\":{\"b\":1,\"c\":2,\"b\":3}}",
                "[1,{\"a\":1,\"a\":1}]",
                "{ \"a\" : 1 , \"a\" : 2 }",
                "{\"d\\u0061ta\":\"x\",\"data\":\"y\"}", /* the same key, escaped */
                "{\"a\\/b\":1,\"a/b\":2}",
                "{\"\\u00e9\":1,\"\xc3\xa9\":2}", /* U+00E9 escaped and as UTF-8 */
                "{\"a\\u0000b\":1}",              /* json-c would cut the key */
                "{\"\\ud83d\\ude00\":1}",         /* surrogates in a key */
        };

        FOREACH_ARRAY(t, good, ELEMENTSOF(good)) {
                json_object *o = NULL;
                const char *msg = NULL;

                assert_int_equal(json_parse(*t, strlen(*t), &o, &msg), 0);
                json_object_put(o);
        }
        FOREACH_ARRAY(t, bad, ELEMENTSOF(bad)) {
                json_object *o = NULL;
                const char *msg = NULL;

                assert_int_equal(json_parse(*t, strlen(*t), &o, &msg), -EBADMSG);
                assert_non_null(msg);
                assert_null(o);
        }
}

static void test_parse_depth(void **state) {
        json_object *o = NULL;
        const char *m;

        (void) state;
        /* json-c counts every value, a scalar leaf included: JSON_DEPTH_MAX containers when
         * the innermost is empty, one fewer around a scalar. */
        for (unsigned d = 1; d <= JSON_DEPTH_MAX + 4; d++) {
                _cleanup_free_ char *arrays = nested("[", "", "]", d), *arrays1 = nested("[", "1", "]", d),
                                    *objects = nested("{\"k\":", "{}", "}", d - 1),
                                    *objects1 = nested("{\"k\":", "1", "}", d);
                int expect = d <= JSON_DEPTH_MAX ? 0 : -EBADMSG;
                int expect1 = d < JSON_DEPTH_MAX ? 0 : -EBADMSG;

                if (json_parse(arrays, strlen(arrays), &o, &m) != expect)
                        fail_msg("%u nested arrays", d);
                json_object_put(o);
                o = NULL;
                if (json_parse(objects, strlen(objects), &o, &m) != expect)
                        fail_msg("%u nested objects", d);
                json_object_put(o);
                o = NULL;
                if (json_parse(arrays1, strlen(arrays1), &o, &m) != expect1)
                        fail_msg("%u nested arrays around a number", d);
                json_object_put(o);
                o = NULL;
                if (json_parse(objects1, strlen(objects1), &o, &m) != expect1)
                        fail_msg("%u nested objects around a number", d);
                json_object_put(o);
                o = NULL;
        }

        /* The brief's case: 17 nested arrays are refused, with json-c's message. */
        {
                _cleanup_free_ char *s = nested("[", "", "]", 17);

                assert_int_equal(json_parse(s, strlen(s), &o, &m), -EBADMSG);
                assert_string_equal(m, "nesting too deep");
        }
        /* Deep but wide is fine. */
        assert_int_equal(parse("[[],[[]],[[[]]],{},{\"a\":{}},[1,2,3]]", &o, &m), 0);
        json_object_put(o);
}

static void test_integers(void **state) {
        /* clang-format off */
        static const struct {
                const char *json;
                int r64;
                int64_t v64;
                int ru64;
                uint64_t vu64;
        } cases[] = {
                { "0",                    0, 0,                   0, 0 },
                { "1",                    0, 1,                   0, 1 },
                { "-1",                   0, -1,                  -EBADMSG, 0 },
                { "1800000000000000000",  0, INT64_C(1800000000000000000), 0, UINT64_C(1800000000000000000) },
                { "9223372036854775807",  0, INT64_MAX,           0, INT64_MAX },
                { "-9223372036854775808", 0, INT64_MIN,           -EBADMSG, 0 },
                { "9223372036854775808",  -EBADMSG, 0,            0, UINT64_C(9223372036854775808) },
                { "18446744073709551615", -EBADMSG, 0,            0, UINT64_MAX },
                { "1.5",                  -EBADMSG, 0,            -EBADMSG, 0 },
                { "1.0",                  -EBADMSG, 0,            -EBADMSG, 0 },
                { "1e3",                  -EBADMSG, 0,            -EBADMSG, 0 },
                { "\"1\"",                -EBADMSG, 0,            -EBADMSG, 0 },
                { "true",                 -EBADMSG, 0,            -EBADMSG, 0 },
                { "[1]",                  -EBADMSG, 0,            -EBADMSG, 0 },
                { "{\"a\":1}",            -EBADMSG, 0,            -EBADMSG, 0 },
        };
        /* json-c would clamp these to INT64_MIN or UINT64_MAX; they must never come back as a
         * (wrong) number, so json_parse() refuses them. */
        static const char *const out_of_range[] = {
                "18446744073709551616",
                "18446744073709551617",
                "99999999999999999999999999999",
                "-9223372036854775809",
                "-18446744073709551616",
                "[1, 18446744073709551616]",
                "{\"id\":18446744073709551616}",
                "{\"ts\":-9223372036854775809}",
                "{\"s\":\"\\\"\",\"id\":100000000000000000000}",
        };
        /* clang-format on */

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_object *o = NULL;
                const char *m;
                int64_t v = 4242;
                uint64_t u = 4242;

                assert_int_equal(parse(cases[i].json, &o, &m), 0);
                if (json_get_int64(o, &v) != cases[i].r64)
                        fail_msg("%s: int64 result", cases[i].json);
                if (cases[i].r64 == 0 && v != cases[i].v64)
                        fail_msg("%s: int64 %lld", cases[i].json, (long long) v);
                if (cases[i].r64 < 0 && v != 4242)
                        fail_msg("%s: int64 written on failure", cases[i].json);
                if (json_get_uint64(o, &u) != cases[i].ru64)
                        fail_msg("%s: uint64 result", cases[i].json);
                if (cases[i].ru64 == 0 && u != cases[i].vu64)
                        fail_msg("%s: uint64 %llu", cases[i].json, (unsigned long long) u);
                if (cases[i].ru64 < 0 && u != 4242)
                        fail_msg("%s: uint64 written on failure", cases[i].json);
                json_object_put(o);
        }

        for (size_t i = 0; i < ELEMENTSOF(out_of_range); i++) {
                json_object *o = NULL;
                const char *m = NULL;

                if (parse(out_of_range[i], &o, &m) != -EBADMSG)
                        fail_msg("'%s' was accepted", out_of_range[i]);
                assert_string_equal(m, "integer out of range");
        }

        /* Nanosecond timestamps and version ids inside objects stay exact. */
        {
                json_object *o = NULL;
                const char *m;
                int64_t ts;
                uint64_t id;

                assert_int_equal(
                        parse("{\"id\":9223372036854775807,\"ts\":1800000000000000001,\"big\":18446744073709551615}",
                              &o, &m),
                        0);
                assert_int_equal(json_get_uint64(json_get_field(o, "id"), &id), 0);
                assert_true(id == UINT64_C(9223372036854775807));
                assert_int_equal(json_get_int64(json_get_field(o, "ts"), &ts), 0);
                assert_true(ts == INT64_C(1800000000000000001));
                assert_int_equal(json_get_uint64(json_get_field(o, "big"), &id), 0);
                assert_true(id == UINT64_MAX);
                assert_int_equal(json_get_int64(json_get_field(o, "missing"), &ts), -EBADMSG);
                json_object_put(o);
        }

        /* A NULL object (JSON null, or a missing field) is not an integer. */
        {
                int64_t v;
                uint64_t u;
                const char *s;

                assert_int_equal(json_get_int64(NULL, &v), -EBADMSG);
                assert_int_equal(json_get_uint64(NULL, &u), -EBADMSG);
                assert_int_equal(json_get_string(NULL, &s, NULL), -EBADMSG);
        }
}

static void test_get_field(void **state) {
        json_object *o = NULL, *a = NULL;
        const char *m;

        (void) state;
        assert_int_equal(parse("{\"Id\":1,\"id\":2,\"NAME\":\"n\",\"data\":null}", &o, &m), 0);

        /* An exact match wins over a case-insensitive one, wherever it is. */
        assert_int_equal(json_object_get_int(json_get_field(o, "id")), 2);
        assert_int_equal(json_object_get_int(json_get_field(o, "Id")), 1);
        /* Otherwise any case will do. */
        assert_string_equal(json_object_get_string(json_get_field(o, "name")), "n");
        assert_string_equal(json_object_get_string(json_get_field(o, "Name")), "n");
        assert_non_null(json_get_field(o, "ID"));
        /* Missing names, prefixes and a null value all give NULL. */
        assert_null(json_get_field(o, "nam"));
        assert_null(json_get_field(o, "names"));
        assert_null(json_get_field(o, ""));
        assert_null(json_get_field(o, "data"));

        /* Not an object. */
        assert_int_equal(parse("[{\"id\":1}]", &a, &m), 0);
        assert_null(json_get_field(a, "id"));
        assert_null(json_get_field(NULL, "id"));

        json_object_put(a);
        json_object_put(o);
}

static void test_get_string(void **state) {
        json_object *o = NULL;
        const char *m, *s = "untouched";
        size_t l = 4242;

        (void) state;
        assert_int_equal(parse("[\"\", \"abc\", 1, null, true]", &o, &m), 0);
        assert_int_equal(json_get_string(json_object_array_get_idx(o, 0), &s, &l), 0);
        assert_string_equal(s, "");
        assert_int_equal(l, 0);
        assert_int_equal(json_get_string(json_object_array_get_idx(o, 1), &s, &l), 0);
        assert_string_equal(s, "abc");
        assert_int_equal(l, 3);

        s = "untouched";
        l = 4242;
        assert_int_equal(json_get_string(json_object_array_get_idx(o, 2), &s, &l), -EBADMSG);
        assert_int_equal(json_get_string(json_object_array_get_idx(o, 3), &s, &l), -EBADMSG);
        assert_int_equal(json_get_string(json_object_array_get_idx(o, 4), &s, &l), -EBADMSG);
        assert_int_equal(json_get_string(o, &s, &l), -EBADMSG);
        assert_string_equal(s, "untouched");
        assert_int_equal(l, 4242);
        json_object_put(o);
}

static void test_wipe(void **state) {
        static const char text[] =
                "{\"data\":\"c2VjcmV0\",\"list\":[\"x\",\"yy\",{\"deep\":\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\"}],"
                "\"n\":5,\"b\":true,\"nil\":null,\"empty\":\"\"}";
        const char *strs[5];
        size_t lens[5];
        json_object *o = NULL, *list;
        const char *m;

        (void) state;
        assert_int_equal(parse(text, &o, &m), 0);
        list = json_get_field(o, "list");
        assert_int_equal(json_get_string(json_get_field(o, "data"), &strs[0], &lens[0]), 0);
        assert_int_equal(json_get_string(json_object_array_get_idx(list, 0), &strs[1], &lens[1]), 0);
        assert_int_equal(json_get_string(json_object_array_get_idx(list, 1), &strs[2], &lens[2]), 0);
        assert_int_equal(
                json_get_string(
                        json_get_field(json_object_array_get_idx(list, 2), "deep"), &strs[3], &lens[3]),
                0);
        assert_int_equal(json_get_string(json_get_field(o, "empty"), &strs[4], &lens[4]), 0);
        assert_string_equal(strs[0], "c2VjcmV0");
        assert_int_equal(lens[3], 36);

        json_wipe(o);

        /* Every string's bytes are zero now; the tree and the other values are intact. */
        for (size_t i = 0; i < ELEMENTSOF(strs); i++)
                for (size_t j = 0; j < lens[i]; j++)
                        if (strs[i][j] != '\0')
                                fail_msg("string %zu byte %zu not wiped", i, j);
        assert_int_equal(json_object_get_int(json_get_field(o, "n")), 5);
        assert_true(json_object_get_boolean(json_get_field(o, "b")));
        assert_int_equal(json_object_array_length(list), 3);

        json_object_put(o);

        /* NULL and scalars are fine. */
        json_wipe(NULL);
        assert_int_equal(parse("\"top\"", &o, &m), 0);
        json_wipe(o);
        assert_int_equal(json_object_get_string(o)[0], '\0');
        assert_int_equal(json_object_get_string(o)[2], '\0');
        json_object_put(o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_append_string_escapes),
                cmocka_unit_test(test_append_string_utf8),
                cmocka_unit_test(test_append_misc),
                cmocka_unit_test(test_append_roundtrip),
                cmocka_unit_test(test_parse_valid),
                cmocka_unit_test(test_parse_invalid),
                cmocka_unit_test(test_parse_repeated_keys),
                cmocka_unit_test(test_parse_depth),
                cmocka_unit_test(test_integers),
                cmocka_unit_test(test_get_field),
                cmocka_unit_test(test_get_string),
                cmocka_unit_test(test_wipe),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
