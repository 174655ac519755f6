/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The parts of an HTTP request keywardd reads itself, apart from the form body
 * (lib/basic/form.c): the request target, Prefer: wait and the Content-Type. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Split an origin-form request target ("/path?query") into its percent-decoded path (as Go's
 * url.PathUnescape; a NUL byte is refused) and a pointer to the raw query after '?' (NULL if
 * there is none). -EBADMSG for anything else. */
int http_target_split(const char *target, char **ret_path, const char **ret_query);

/* The N of "Prefer: wait=N" (RFC 7240; other preferences may stand beside it), at most max;
 * 0 when absent or malformed. */
unsigned http_prefer_wait(const char *header, unsigned max);

/* Whether a Content-Type is application/x-www-form-urlencoded (parameters allowed), which is
 * when Go's ParseForm reads the body. */
bool http_content_type_is_form(const char *content_type);

/* The framing of the requests on one connection, checked on the raw bytes as they arrive,
 * before libevent parses them: libevent takes a bare LF for a line end, joins obs-fold lines,
 * takes the first of several Content-Lengths and reads a chunked body beside one, each of
 * which a proxy in front may read otherwise (request smuggling). A request is refused when
 * its head has a line not ending in CRLF, a bare CR, an obs-fold line, a field name that is
 * not a token or has white space before its colon, a control character in a field value,
 * Content-Length repeated or not a plain number, Transfer-Encoding at all (bodies must have a
 * Content-Length; 411), a body on HEAD or TRACE, or the method CONNECT. A request target
 * whose query has more than FORM_FIELDS_MAX pairs is refused as soon as its bytes show it,
 * before its head is complete: a client may wait for the answer before it sends the rest
 * (libcurl never sends more than 128 KiB of a GET's head over TLS). After the first bad
 * head nothing more is checked: its connection is closed once it is answered. */
typedef enum HttpScanError {
        HTTP_SCAN_OK,
        HTTP_SCAN_BARE_LF,
        HTTP_SCAN_BARE_CR,
        HTTP_SCAN_EMPTY_REQUEST_LINE,
        HTTP_SCAN_OBS_FOLD,
        HTTP_SCAN_BAD_FIELD_NAME,
        HTTP_SCAN_BAD_FIELD_VALUE,
        HTTP_SCAN_CONTENT_LENGTH_REPEATED,
        HTTP_SCAN_CONTENT_LENGTH_INVALID,
        HTTP_SCAN_TRANSFER_ENCODING_WITH_CONTENT_LENGTH,
        HTTP_SCAN_TRANSFER_ENCODING_REPEATED,
        HTTP_SCAN_TRANSFER_ENCODING,
        HTTP_SCAN_BODY_NOT_ALLOWED,
        HTTP_SCAN_CONNECT,
        HTTP_SCAN_TOO_MANY_PARAMETERS,
        _HTTP_SCAN_MAX,
} HttpScanError;

#define HTTP_SCAN_NAME_MAX 32  /* longer names are checked, not kept: none of ours is that long */
#define HTTP_SCAN_VALUE_MAX 32 /* likewise values of Content-Length and Transfer-Encoding */

typedef struct HttpScan {
        uint64_t body_left; /* bytes of the current body still to come */
        unsigned heads;     /* heads complete before the current one */
        HttpScanError error;
        unsigned error_head; /* the index of the head with the error */
        uint8_t state;
        bool first_line;
        bool field_cl, field_te; /* the line being read is Content-Length / Transfer-Encoding */
        bool no_body;            /* HEAD or TRACE: libevent reads no body */
        unsigned n_cl, n_te;
        bool cl_invalid;
        uint64_t cl;
        bool past_target;    /* the request line is past its target */
        bool in_query;       /* the request target is past its '?' */
        size_t query_pairs;  /* pairs of the query so far, counted as form_parse() does */
        uint64_t fed;        /* bytes of the connection fed so far */
        uint64_t head_start; /* the offset of the current head's first byte */
        size_t n_name, n_value;
        char name[HTTP_SCAN_NAME_MAX];
        char value[HTTP_SCAN_VALUE_MAX];
} HttpScan;

#define HTTP_SCAN_INIT \
        { .first_line = true }

/* Feed the next bytes of the connection; the error so far, which sticks. */
HttpScanError http_scan_feed(HttpScan *s, const void *data, size_t n);
/* The error of the head with the given index (the n-th request, from 0), or HTTP_SCAN_OK. */
HttpScanError http_scan_error_of(const HttpScan *s, unsigned head);
/* What the client hears: "bare LF in the request head", ... */
const char *http_scan_error_to_string(HttpScanError e);
/* 411 for HTTP_SCAN_TRANSFER_ENCODING, 405 for HTTP_SCAN_CONNECT, 400 else. */
int http_scan_error_status(HttpScanError e);
