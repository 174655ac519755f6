/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-request.h"

#include <string.h>
#include <strings.h>

#include "form.h"
#include "hexdecoct.h"
#include "parse.h"

int http_target_split(const char *target, char **ret_path, const char **ret_query) {
        _cleanup_free_ char *path = NULL;
        const char *q;
        size_t len, n;

        if (!target || target[0] != '/')
                return -EBADMSG;
        q = strchr(target, '?');
        len = q ? (size_t) (q - target) : strlen(target);

        path = malloc(len + 1);
        if (!path)
                return -ENOMEM;
        if (url_unescape(target, len, false, path, &n) < 0 || strlen(path) != n)
                return -EBADMSG;

        *ret_path = TAKE_PTR(path);
        *ret_query = q ? q + 1 : NULL;
        return 0;
}

unsigned http_prefer_wait(const char *header, unsigned max) {
        const char *p = header;

        while (p && *p) {
                char num[16];
                uint64_t v;
                size_t n;

                p += strspn(p, " \t,;");
                if (strncasecmp(p, "wait", 4) != 0 || !strchr(" \t=", p[4])) {
                        p = strpbrk(p, ",;");
                        continue;
                }
                p += 4;
                p += strspn(p, " \t");
                if (*p != '=')
                        return 0;
                p++;
                p += strspn(p, " \t");
                n = strspn(p, "0123456789");
                if (n == 0 || n >= sizeof(num) || !strchr(" \t,;", p[n]))
                        return 0;
                memcpy(num, p, n);
                num[n] = '\0';
                if (safe_atou64(num, &v) < 0)
                        return 0;
                return (unsigned) MIN(v, (uint64_t) max);
        }
        return 0;
}

bool http_content_type_is_form(const char *ct) {
        static const char form[] = "application/x-www-form-urlencoded";

        if (!ct)
                return false;
        ct += strspn(ct, " \t");
        return strncasecmp(ct, form, (sizeof(form) - 1)) == 0 && strchr(" \t;", ct[(sizeof(form) - 1)]);
}

enum {
        SCAN_LINE_START, /* at the start of a line of the head */
        SCAN_REQUEST,    /* in the request line */
        SCAN_NAME,       /* in a field name */
        SCAN_VALUE,      /* in a field value */
        SCAN_CR,         /* after the CR of a line: only LF may follow */
        SCAN_CR_EMPTY,   /* after the CR of the empty line that ends the head */
        SCAN_BODY,       /* skipping a body */
        SCAN_STOPPED,    /* after an error */
};

static const char *const http_scan_error_table[_HTTP_SCAN_MAX] = {
        [HTTP_SCAN_OK] = "ok",
        [HTTP_SCAN_BARE_LF] = "a line of the request head ends in a bare LF",
        [HTTP_SCAN_BARE_CR] = "a bare CR in the request head",
        [HTTP_SCAN_EMPTY_REQUEST_LINE] = "an empty line before the request line",
        [HTTP_SCAN_OBS_FOLD] = "a header field folded onto a continuation line",
        [HTTP_SCAN_BAD_FIELD_NAME] = "an invalid header field name (white space before the colon?)",
        [HTTP_SCAN_BAD_FIELD_VALUE] = "a control character in a header field value",
        [HTTP_SCAN_CONTENT_LENGTH_REPEATED] = "Content-Length given more than once",
        [HTTP_SCAN_CONTENT_LENGTH_INVALID] = "Content-Length is not a number",
        [HTTP_SCAN_TRANSFER_ENCODING_WITH_CONTENT_LENGTH] = "both Transfer-Encoding and Content-Length",
        [HTTP_SCAN_TRANSFER_ENCODING_REPEATED] = "Transfer-Encoding given more than once",
        [HTTP_SCAN_TRANSFER_ENCODING] = "send the body with a Content-Length, not a Transfer-Encoding",
        [HTTP_SCAN_BODY_NOT_ALLOWED] = "a body on a request that cannot have one",
        [HTTP_SCAN_CONNECT] = "Method not allowed",
        [HTTP_SCAN_TOO_MANY_PARAMETERS] = "too many query parameters",
};

const char *http_scan_error_to_string(HttpScanError e) {
        if (e < 0 || e >= _HTTP_SCAN_MAX)
                return NULL;
        return http_scan_error_table[e];
}

int http_scan_error_status(HttpScanError e) {
        return e == HTTP_SCAN_TRANSFER_ENCODING ? 411 : e == HTTP_SCAN_CONNECT ? 405 : 400;
}

HttpScanError http_scan_error_of(const HttpScan *s, unsigned head) {
        return s->error != HTTP_SCAN_OK && head >= s->error_head ? s->error : HTTP_SCAN_OK;
}

static bool is_tchar(uint8_t c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/* A byte a field value may hold (visible, space, tab, obs-text). */
static bool is_value_byte(uint8_t c) {
        return (c >= 0x20 && c != 0x7f) || c == '\t';
}

static HttpScanError scan_fail(HttpScan *s, HttpScanError e) {
        s->error = e;
        s->error_head = s->heads;
        s->state = SCAN_STOPPED;
        return e;
}

/* A field line is complete: note Content-Length and Transfer-Encoding. */
static HttpScanError scan_field_done(HttpScan *s) {
        size_t a = 0, b = s->n_value;

        if (s->field_te)
                s->n_te++;
        if (!s->field_cl)
                return HTTP_SCAN_OK;
        s->n_cl++;
        while (a < b && strchr(" \t", s->value[a]))
                a++;
        while (b > a && strchr(" \t", s->value[b - 1]))
                b--;
        /* At most 18 digits: libevent reads it as a signed 64-bit number. */
        if (a == b || b - a > 18 || s->n_value >= sizeof(s->value))
                s->cl_invalid = true;
        else {
                uint64_t v = 0;

                for (size_t i = a; i < b; i++) {
                        if (s->value[i] < '0' || s->value[i] > '9') {
                                s->cl_invalid = true;
                                break;
                        }
                        v = v * 10 + (uint64_t) (s->value[i] - '0');
                }
                s->cl = v;
        }
        return HTTP_SCAN_OK;
}

/* The empty line: the head is complete, and the body's length known. */
static HttpScanError scan_head_done(HttpScan *s) {
        if (s->n_te > 0 && s->n_cl > 0)
                return scan_fail(s, HTTP_SCAN_TRANSFER_ENCODING_WITH_CONTENT_LENGTH);
        if (s->n_te > 1)
                return scan_fail(s, HTTP_SCAN_TRANSFER_ENCODING_REPEATED);
        if (s->n_te == 1)
                return scan_fail(s, HTTP_SCAN_TRANSFER_ENCODING);
        if (s->n_cl > 1)
                return scan_fail(s, HTTP_SCAN_CONTENT_LENGTH_REPEATED);
        if (s->n_cl == 1 && s->cl_invalid)
                return scan_fail(s, HTTP_SCAN_CONTENT_LENGTH_INVALID);
        if (s->n_cl == 1 && s->cl > 0 && s->no_body)
                return scan_fail(s, HTTP_SCAN_BODY_NOT_ALLOWED);

        s->body_left = s->n_cl == 1 ? s->cl : 0;
        s->heads++;
        s->first_line = true;
        s->n_cl = s->n_te = 0;
        s->cl = 0;
        s->cl_invalid = s->no_body = false;
        s->state = s->body_left > 0 ? SCAN_BODY : SCAN_LINE_START;
        return HTTP_SCAN_OK;
}

/* The request line is complete: its method. */
static HttpScanError scan_request_line_done(HttpScan *s) {
        if (s->n_name == 7 && memcmp(s->name, "CONNECT", 7) == 0)
                return scan_fail(s, HTTP_SCAN_CONNECT);
        s->no_body = (s->n_name == 4 && memcmp(s->name, "HEAD", 4) == 0) ||
                (s->n_name == 5 && memcmp(s->name, "TRACE", 5) == 0);
        s->first_line = false;
        s->past_target = s->in_query = false;
        s->query_pairs = 0;
        return HTTP_SCAN_OK;
}

HttpScanError http_scan_feed(HttpScan *s, const void *data, size_t n) {
        const uint8_t *p = data, *end = p + n;
        uint64_t base = s->fed;
        HttpScanError r;

        s->fed += n;
        while (p < end) {
                uint8_t c;

                if (s->state == SCAN_STOPPED)
                        return s->error;
                if (s->state == SCAN_BODY) {
                        size_t k = (size_t) MIN(s->body_left, (uint64_t) (end - p));

                        p += k;
                        s->body_left -= k;
                        if (s->body_left == 0)
                                s->state = SCAN_LINE_START;
                        continue;
                }

                c = *p++;
                switch (s->state) {
                case SCAN_LINE_START:
                        if (s->first_line)
                                s->head_start = base + (uint64_t) (p - 1 - (const uint8_t *) data);
                        s->n_name = s->n_value = 0;
                        s->field_cl = s->field_te = false;
                        if (c == '\r') {
                                if (s->first_line)
                                        return scan_fail(s, HTTP_SCAN_EMPTY_REQUEST_LINE);
                                s->state = SCAN_CR_EMPTY;
                        } else if (c == '\n')
                                return scan_fail(s, HTTP_SCAN_BARE_LF);
                        else if (s->first_line) {
                                s->state = SCAN_REQUEST;
                                p--; /* the method's first byte */
                        } else if (c == ' ' || c == '\t')
                                return scan_fail(s, HTTP_SCAN_OBS_FOLD);
                        else if (!is_tchar(c))
                                return scan_fail(s, HTTP_SCAN_BAD_FIELD_NAME);
                        else {
                                s->name[s->n_name++] = (char) c;
                                s->state = SCAN_NAME;
                        }
                        break;
                case SCAN_REQUEST:
                        /* The method is kept in name; the rest libevent checks itself. */
                        if (c == '\r')
                                s->state = SCAN_CR;
                        else if (c == '\n')
                                return scan_fail(s, HTTP_SCAN_BARE_LF);
                        else if (s->n_value == 0 && c == ' ')
                                s->n_value = 1; /* past the method */
                        else if (s->n_value == 0 && s->n_name < sizeof(s->name))
                                s->name[s->n_name++] = (char) c;
                        else if (s->n_value == 0 || s->past_target)
                                ;
                        else if (c == ' ')
                                s->past_target = true;
                        else if (c == '?' && !s->in_query) {
                                s->in_query = true;
                                s->query_pairs = 1;
                        } else if (c == '&' && s->in_query && ++s->query_pairs > FORM_FIELDS_MAX)
                                return scan_fail(s, HTTP_SCAN_TOO_MANY_PARAMETERS);
                        break;
                case SCAN_NAME:
                        if (c == ':') {
                                s->field_cl =
                                        s->n_name == 14 && strncasecmp(s->name, "content-length", 14) == 0;
                                s->field_te = s->n_name == 17 &&
                                        strncasecmp(s->name, "transfer-encoding", 17) == 0;
                                s->state = SCAN_VALUE;
                        } else if (!is_tchar(c))
                                return scan_fail(s, HTTP_SCAN_BAD_FIELD_NAME);
                        else if (s->n_name < sizeof(s->name))
                                s->name[s->n_name++] = (char) c;
                        else
                                s->n_name = sizeof(s->name) + 1; /* too long to be one we look for */
                        break;
                case SCAN_VALUE:
                        /* Most values are not a Content-Length: skip them in one go. */
                        if (!s->field_cl && is_value_byte(c)) {
                                while (p < end && is_value_byte(*p))
                                        p++;
                                break;
                        }
                        if (c == '\r') {
                                r = scan_field_done(s);
                                if (r != HTTP_SCAN_OK)
                                        return r;
                                s->state = SCAN_CR;
                        } else if (c == '\n')
                                return scan_fail(s, HTTP_SCAN_BARE_LF);
                        else if ((c < 0x20 && c != '\t') || c == 0x7f)
                                return scan_fail(s, HTTP_SCAN_BAD_FIELD_VALUE);
                        else if (s->n_value < sizeof(s->value))
                                s->value[s->n_value++] = (char) c;
                        else
                                s->n_value = sizeof(s->value); /* too long: an invalid Content-Length */
                        break;
                case SCAN_CR:
                        if (c != '\n')
                                return scan_fail(s, HTTP_SCAN_BARE_CR);
                        if (s->first_line) {
                                r = scan_request_line_done(s);
                                if (r != HTTP_SCAN_OK)
                                        return r;
                        }
                        s->state = SCAN_LINE_START;
                        break;
                case SCAN_CR_EMPTY:
                        if (c != '\n')
                                return scan_fail(s, HTTP_SCAN_BARE_CR);
                        r = scan_head_done(s);
                        if (r != HTTP_SCAN_OK)
                                return r;
                        break;
                }
        }
        return s->error;
}
