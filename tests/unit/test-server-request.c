/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "server-request.h"

/* The verdict on s, fed at once and one byte at a time (both must agree), and the index
 * of the head it falls on. */
static HttpScanError scan(const char *s, unsigned *ret_head) {
        HttpScan whole = HTTP_SCAN_INIT, bytes = HTTP_SCAN_INIT;
        size_t n = strlen(s);
        HttpScanError e;

        e = http_scan_feed(&whole, s, n);
        for (size_t i = 0; i < n; i++)
                (void) http_scan_feed(&bytes, s + i, 1);
        assert_int_equal(e, bytes.error);
        assert_int_equal(whole.heads, bytes.heads);
        assert_int_equal(whole.error_head, bytes.error_head);
        if (ret_head)
                *ret_head = e != HTTP_SCAN_OK ? whole.error_head : whole.heads;
        return e;
}

static void test_good(void **state) {
        unsigned heads;

        assert_int_equal(scan("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &heads), HTTP_SCAN_OK);
        assert_int_equal(heads, 1);
        /* Pipelined, with bodies that look like requests, and odd but valid spellings. */
        assert_int_equal(
                scan("POST /a HTTP/1.1\r\ncontent-LENGTH:  19 \r\n\r\nGET / HTTP/1.1\n\r\n\r\n"
                     "GET /b HTTP/1.1\r\nX-Tab:\tv\tw\r\nX-Empty:\r\n\r\n"
                     "HEAD / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                     &heads),
                HTTP_SCAN_OK);
        assert_int_equal(heads, 3);
        /* A head not complete yet is not an error. */
        assert_int_equal(scan("GET / HTTP/1.1\r\nHost: x\r", &heads), HTTP_SCAN_OK);
        assert_int_equal(heads, 0);
}

static void test_bad(void **state) {
        static const struct {
                const char *in;
                HttpScanError want;
        } cases[] = {
                {"GET / HTTP/1.1\nHost: x\r\n\r\n", HTTP_SCAN_BARE_LF},
                {"GET / HTTP/1.1\r\nHost: x\n\r\n", HTTP_SCAN_BARE_LF},
                {"GET / HTTP/1.1\r\nHost: x\r\n\n", HTTP_SCAN_BARE_LF},
                {"GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", HTTP_SCAN_BARE_CR},
                {"GET / HTTP/1.1\r\nHost: x\r\n\rX", HTTP_SCAN_BARE_CR},
                {"\r\nGET / HTTP/1.1\r\n\r\n", HTTP_SCAN_EMPTY_REQUEST_LINE},
                {"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", HTTP_SCAN_OBS_FOLD},
                {"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", HTTP_SCAN_OBS_FOLD},
                {"GET / HTTP/1.1\r\nContent-Length : 1\r\n\r\nx", HTTP_SCAN_BAD_FIELD_NAME},
                {"GET / HTTP/1.1\r\nX(y): 1\r\n\r\n", HTTP_SCAN_BAD_FIELD_NAME},
                {"GET / HTTP/1.1\r\n: 1\r\n\r\n", HTTP_SCAN_BAD_FIELD_NAME},
                {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", HTTP_SCAN_BAD_FIELD_NAME},
                {"GET / HTTP/1.1\r\nX: a\001b\r\n\r\n", HTTP_SCAN_BAD_FIELD_VALUE},
                {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
                 HTTP_SCAN_CONTENT_LENGTH_REPEATED},
                {"POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\nxy",
                 HTTP_SCAN_CONTENT_LENGTH_REPEATED},
                {"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx", HTTP_SCAN_CONTENT_LENGTH_INVALID},
                {"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", HTTP_SCAN_CONTENT_LENGTH_INVALID},
                {"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", HTTP_SCAN_CONTENT_LENGTH_INVALID},
                {"POST / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n",
                 HTTP_SCAN_CONTENT_LENGTH_INVALID},
                {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                 HTTP_SCAN_TRANSFER_ENCODING_WITH_CONTENT_LENGTH},
                {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                 HTTP_SCAN_TRANSFER_ENCODING_REPEATED},
                {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_SCAN_TRANSFER_ENCODING},
                {"HEAD / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", HTTP_SCAN_BODY_NOT_ALLOWED},
                {"TRACE / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", HTTP_SCAN_BODY_NOT_ALLOWED},
                {"CONNECT a:443 HTTP/1.1\r\n\r\n", HTTP_SCAN_CONNECT},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                unsigned head = 99;

                print_message("%s\n", cases[i].in);
                assert_int_equal(scan(cases[i].in, &head), cases[i].want);
                assert_int_equal(head, 0);
                assert_non_null(http_scan_error_to_string(cases[i].want));
        }
        assert_int_equal(http_scan_error_status(HTTP_SCAN_TRANSFER_ENCODING), 411);
        assert_int_equal(http_scan_error_status(HTTP_SCAN_CONNECT), 405);
        assert_int_equal(http_scan_error_status(HTTP_SCAN_BARE_LF), 400);
        assert_null(http_scan_error_to_string(_HTTP_SCAN_MAX));
}

static void test_which_request(void **state) {
        HttpScan s = HTTP_SCAN_INIT;
        const char *in = "GET /1 HTTP/1.1\r\n\r\n"
                         "POST /2 HTTP/1.1\r\nContent-Length: 5\r\n\r\nab\ncd"
                         "GET /3 HTTP/1.1\nContent-Length: 0\r\n\r\n"
                         "GET /4 HTTP/1.1\r\n\r\n";

        /* The bare LF in a body is data; the third request's is the error, and everything
         * from the third request on is refused, the first two are not. */
        assert_int_equal(http_scan_feed(&s, in, strlen(in)), HTTP_SCAN_BARE_LF);
        assert_int_equal(s.error_head, 2);
        assert_int_equal(http_scan_error_of(&s, 0), HTTP_SCAN_OK);
        assert_int_equal(http_scan_error_of(&s, 1), HTTP_SCAN_OK);
        assert_int_equal(http_scan_error_of(&s, 2), HTTP_SCAN_BARE_LF);
        assert_int_equal(http_scan_error_of(&s, 3), HTTP_SCAN_BARE_LF);
        /* It sticks: nothing after it is looked at. */
        assert_int_equal(http_scan_feed(&s, "GET / HTTP/1.1\r\n\r\n", 18), HTTP_SCAN_BARE_LF);
        assert_int_equal(s.heads, 2);
}

/* A query with more pairs than form_parse() takes is refused before its request line ends, at
 * the pair past the limit, and the scan knows where that request's head began. */
static void test_too_many_parameters(void **state) {
        static const char first[] = "GET /healthz HTTP/1.1\r\n\r\n";
        HttpScan s = HTTP_SCAN_INIT;
        char pair[32];

        assert_int_equal(http_scan_feed(&s, first, strlen(first)), HTTP_SCAN_OK);
        assert_int_equal(http_scan_feed(&s, "GET /v0/keys/?a=1", 17), HTTP_SCAN_OK);
        for (unsigned i = 2; i <= 1024; i++) {
                snprintf(pair, sizeof(pair), "&k%u=%u", i, i);
                assert_int_equal(http_scan_feed(&s, pair, strlen(pair)), HTTP_SCAN_OK);
        }
        /* '&' in the HTTP version or a header is no pair of the query. */
        assert_int_equal(http_scan_feed(&s, " HTTP/1.1&&", strlen(" HTTP/1.1&&")), HTTP_SCAN_OK);
        assert_int_equal(http_scan_feed(&s, "\r\nX: &&\r\n\r\n", strlen("\r\nX: &&\r\n\r\n")), HTTP_SCAN_OK);
        assert_int_equal(s.head_start, strlen(first));

        s = (HttpScan) HTTP_SCAN_INIT;
        assert_int_equal(http_scan_feed(&s, first, strlen(first)), HTTP_SCAN_OK);
        assert_int_equal(http_scan_feed(&s, "GET /?a", 7), HTTP_SCAN_OK);
        for (unsigned i = 2; i <= 1024; i++)
                assert_int_equal(http_scan_feed(&s, "&b", 2), HTTP_SCAN_OK);
        /* The 1,025th pair, with no end of line in sight. */
        assert_int_equal(http_scan_feed(&s, "&c", 2), HTTP_SCAN_TOO_MANY_PARAMETERS);
        assert_int_equal(http_scan_error_of(&s, 1), HTTP_SCAN_TOO_MANY_PARAMETERS);
        assert_int_equal(http_scan_error_of(&s, 0), HTTP_SCAN_OK);
        assert_int_equal(s.head_start, strlen(first));
        assert_int_equal(http_scan_error_status(HTTP_SCAN_TOO_MANY_PARAMETERS), 400);
        assert_string_equal(
                http_scan_error_to_string(HTTP_SCAN_TOO_MANY_PARAMETERS), "too many query parameters");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good),
                cmocka_unit_test(test_bad),
                cmocka_unit_test(test_which_request),
                cmocka_unit_test(test_too_many_parameters),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
