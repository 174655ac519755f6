/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "json-util.h"

#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "hexdecoct.h"
#include "parse.h"

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not one.
 * Overlong forms, surrogates and code points above U+10FFFF are invalid, as in Go. */
static size_t utf8_sequence(const uint8_t *s, size_t n, uint32_t *ret) {
        uint32_t c;
        size_t len;

        if (s[0] < 0x80) {
                *ret = s[0];
                return 1;
        }
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                len = 2, c = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                len = 3, c = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                len = 4, c = s[0] & 0x07;
        else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (s[i] & 0x3f);
        }
        if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10ffff ||
            (c >= 0xd800 && c <= 0xdfff))
                return 0;
        *ret = c;
        return len;
}

bool utf8_is_valid(const char *s, size_t n) {
        const uint8_t *p = (const uint8_t *) s;
        uint32_t c;

        for (size_t i = 0, l; i < n; i += l) {
                l = utf8_sequence(p + i, n - i, &c);
                if (l == 0)
                        return false;
        }
        return true;
}

int json_append_string(Buf *b, const char *s, size_t n) {
        static const char hex[] = "0123456789abcdef";
        const uint8_t *p = (const uint8_t *) s;
        size_t start = 0, i = 0;

        (void) buf_putc(b, '"');
        while (i < n) {
                const char *esc = NULL;
                char ubuf[7];
                uint32_t c;
                size_t l;

                /* Plain ASCII, the bulk of it, without decoding. */
                if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\' && p[i] != '<' &&
                    p[i] != '>' && p[i] != '&') {
                        i++;
                        continue;
                }
                l = utf8_sequence(p + i, n - i, &c);
                if (l == 1 && c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                        i++;
                        continue;
                }
                if (l > 1 && c != 0x2028 && c != 0x2029) {
                        i += l;
                        continue;
                }

                /* Something to escape: flush the plain run before it. */
                (void) buf_put(b, s + start, i - start);
                if (l == 0) {
                        esc = "\\ufffd";
                        l = 1;
                } else if (c == '"')
                        esc = "\\\"";
                else if (c == '\\')
                        esc = "\\\\";
                else if (c == '\n')
                        esc = "\\n";
                else if (c == '\r')
                        esc = "\\r";
                else if (c == '\t')
                        esc = "\\t";
                else if (c == 0x2028 || c == 0x2029)
                        esc = c == 0x2028 ? "\\u2028" : "\\u2029";
                else {
                        ubuf[0] = '\\';
                        ubuf[1] = 'u';
                        ubuf[2] = '0';
                        ubuf[3] = '0';
                        ubuf[4] = hex[c >> 4];
                        ubuf[5] = hex[c & 15];
                        ubuf[6] = '\0';
                        esc = ubuf;
                }
                (void) buf_puts(b, esc);
                i += l;
                start = i;
        }
        (void) buf_put(b, s + start, n - start);
        return buf_putc(b, '"');
}

int json_append_cstring(Buf *b, const char *s) {
        return json_append_string(b, strempty(s), strlen(strempty(s)));
}

/* Integers are on every response's hot path (ids, timestamps): no printf machinery. */
int json_append_uint64(Buf *b, uint64_t v) {
        char tmp[20];
        size_t n = 0;

        do {
                tmp[sizeof(tmp) - ++n] = (char) ('0' + v % 10);
                v /= 10;
        } while (v > 0);
        return buf_put(b, tmp + sizeof(tmp) - n, n);
}

int json_append_int64(Buf *b, int64_t v) {
        if (v >= 0)
                return json_append_uint64(b, (uint64_t) v);
        (void) buf_putc(b, '-');
        /* -(v + 1) + 1 avoids overflowing on INT64_MIN. */
        return json_append_uint64(b, (uint64_t) - (v + 1) + 1);
}

static void tokener_wipe_and_free(struct json_tokener *tok) {
        if (!tok)
                return;
        if (tok->pb && tok->pb->buf)
                explicit_bzero(tok->pb->buf, (size_t) tok->pb->size);
        json_tokener_free(tok);
}

static bool is_json_space(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* The number at s[*i] (s[*i] is '-' or a digit), advancing *i past it: -EINVAL if it breaks
 * the JSON grammar, -ERANGE for an integer that fits neither int64 nor uint64. */
static int json_check_number(const char *s, size_t n, size_t *i) {
        size_t start = *i, k = *i;
        bool integer = true;
        char digits[24];
        uint64_t u;
        int64_t v;

        if (s[k] == '-')
                k++;
        if (k < n && s[k] == '0')
                k++;
        else if (k < n && is_digit(s[k]))
                while (k < n && is_digit(s[k]))
                        k++;
        else
                return -EINVAL;
        if (k < n && s[k] == '.') {
                integer = false;
                if (++k >= n || !is_digit(s[k]))
                        return -EINVAL;
                while (k < n && is_digit(s[k]))
                        k++;
        }
        if (k < n && (s[k] == 'e' || s[k] == 'E')) {
                integer = false;
                if (++k < n && (s[k] == '+' || s[k] == '-'))
                        k++;
                if (k >= n || !is_digit(s[k]))
                        return -EINVAL;
                while (k < n && is_digit(s[k]))
                        k++;
        }
        /* json-c reads "00" or "-01" inside an array as a number. */
        if (k < n && (is_digit(s[k]) || s[k] == '.'))
                return -EINVAL;
        *i = k;
        if (!integer)
                return 0;

        if (k - start >= sizeof(digits))
                return -ERANGE;
        memcpy(digits, s + start, k - start);
        digits[k - start] = '\0';
        if (digits[0] == '-' ? safe_atoi64(digits, &v) < 0 : safe_atou64(digits, &u) < 0)
                return -ERANGE;
        return 0;
}

/* json-c accepts NaN, Infinity, "1.", "00" and raw control characters in strings even in
 * strict mode, and clamps an integer that does not fit in 64 bits to INT64_MIN or
 * UINT64_MAX, which would then be read back as a wrong value. So look at every token of the
 * text json-c accepted: words must be true, false or null, numbers must follow the JSON
 * grammar, integers must fit an int64 or uint64, strings must hold no raw control byte. */
static int json_check_tokens(const char *s, size_t n, const char **reterr_message) {
        size_t i = 0;
        int r;

        while (i < n) {
                size_t start = i;
                char c = s[i];

                if (c == '"') {
                        for (i++; i < n && s[i] != '"'; i++) {
                                if ((uint8_t) s[i] < 0x20) {
                                        *reterr_message = "invalid control character in string literal";
                                        return -EBADMSG;
                                }
                                if (s[i] == '\\')
                                        i++;
                        }
                        i++;
                } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
                        size_t l;

                        while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
                                i++;
                        l = i - start;
                        if (!(l == 4 && memcmp(s + start, "true", 4) == 0) &&
                            !(l == 5 && memcmp(s + start, "false", 5) == 0) &&
                            !(l == 4 && memcmp(s + start, "null", 4) == 0)) {
                                *reterr_message = "invalid literal";
                                return -EBADMSG;
                        }
                } else if (c == '-' || is_digit(c)) {
                        r = json_check_number(s, n, &i);
                        if (r < 0) {
                                *reterr_message = r == -ERANGE ? "integer out of range" : "invalid number";
                                return -EBADMSG;
                        }
                } else
                        i++;
        }
        return 0;
}

typedef struct KeySpan {
        size_t offset, len;
        bool decoded; /* in KeyText.decoded, not in the text */
} KeySpan;

typedef struct KeyText {
        const char *text;
        const Buf *decoded;
} KeyText;

static const char *key_span_data(const KeyText *t, const KeySpan *k) {
        return (k->decoded ? t->decoded->data : t->text) + k->offset;
}

static int key_span_compare(const void *a, const void *b, void *userdata) {
        const KeySpan *x = a, *y = b;

        if (x->len != y->len)
                return x->len < y->len ? -1 : 1;
        return memcmp(key_span_data(userdata, x), key_span_data(userdata, y), x->len);
}

/* A key written with escapes, as json-c will store it, appended to out: 1, or 0 when the
 * escapes are not JSON (json-c refuses the text), or -EBADMSG for an escaped NUL (json-c cuts
 * the key there) or surrogate (no use for one in a key: refused rather than second-guessing
 * how json-c pairs them). */
static int key_decode(const char *p, size_t n, Buf *out) {
        for (size_t i = 0; i < n; i++) {
                static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
                const char *e;
                unsigned cp = 0;

                if (p[i] != '\\') {
                        (void) buf_putc(out, p[i]);
                        continue;
                }
                if (++i >= n)
                        return 0;
                if (p[i] != 'u') {
                        e = strchr(from, p[i]);
                        if (!e || !*e)
                                return 0;
                        (void) buf_putc(out, to[e - from]);
                        continue;
                }
                if (n - i < 5)
                        return 0;
                for (size_t k = 1; k <= 4; k++) {
                        int d = unhexchar(p[i + k]);

                        if (d < 0)
                                return 0;
                        cp = cp << 4 | (unsigned) d;
                }
                i += 4;
                if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
                        return -EBADMSG;
                if (cp < 0x80)
                        (void) buf_putc(out, (char) cp);
                else if (cp < 0x800) {
                        (void) buf_putc(out, (char) (0xc0 | cp >> 6));
                        (void) buf_putc(out, (char) (0x80 | (cp & 0x3f)));
                } else {
                        (void) buf_putc(out, (char) (0xe0 | cp >> 12));
                        (void) buf_putc(out, (char) (0x80 | (cp >> 6 & 0x3f)));
                        (void) buf_putc(out, (char) (0x80 | (cp & 0x3f)));
                }
        }
        return out->error < 0 ? out->error : 1;
}

/* json-c keeps the last of two members with the same key and frees the first value as it
 * goes, unwiped: a repeated "data" would leave key bytes behind in freed memory before any
 * check after parsing could see it. So before json-c reads the text, refuse an object that
 * repeats a key (as json-c would store the keys: escapes decoded). Text that is not JSON is
 * left for json-c to refuse. */
static int json_check_keys(const char *s, size_t n, const char **reterr_message) {
        _cleanup_free_ KeySpan *spans = NULL;
        _cleanup_buf_ Buf decoded = BUF_INIT;
        KeyText t = {.text = s, .decoded = &decoded};
        size_t n_spans = 0, n_alloc = 0, depth = 0;
        size_t frame_start[JSON_DEPTH_MAX + 1]; /* per open container: its first key's index */
        bool frame_object[JSON_DEPTH_MAX + 1];
        int r;

        for (size_t i = 0; i < n; i++) {
                char c = s[i];

                if (c == '"') {
                        size_t start = ++i, k;
                        bool escaped = false;
                        KeySpan span;

                        for (; i < n && s[i] != '"'; i++)
                                if (s[i] == '\\') {
                                        escaped = true;
                                        i++;
                                }
                        if (i >= n)
                                return 0;
                        for (k = i + 1; k < n && is_json_space(s[k]); k++)
                                ;
                        if (k >= n || s[k] != ':' || depth == 0 || !frame_object[depth - 1])
                                continue; /* a value, not a key */
                        span = (KeySpan){.offset = start, .len = i - start};
                        if (escaped) {
                                span = (KeySpan){.offset = decoded.len, .decoded = true};
                                r = key_decode(s + start, i - start, &decoded);
                                if (r == -EBADMSG)
                                        *reterr_message = "an object key holds an escaped NUL or surrogate";
                                if (r <= 0)
                                        return r;
                                span.len = decoded.len - span.offset;
                        }
                        if (n_spans == n_alloc) {
                                size_t m = MAX(n_alloc * 2, (size_t) 16);
                                KeySpan *p = reallocarray(spans, m, sizeof(KeySpan));

                                if (!p)
                                        return -ENOMEM;
                                spans = p;
                                n_alloc = m;
                        }
                        spans[n_spans++] = span;
                } else if (c == '{' || c == '[') {
                        if (depth > JSON_DEPTH_MAX)
                                return 0; /* json-c refuses it */
                        frame_start[depth] = n_spans;
                        frame_object[depth] = c == '{';
                        depth++;
                } else if (c == '}' || c == ']') {
                        size_t first, count;

                        if (depth == 0)
                                return 0;
                        depth--;
                        first = frame_start[depth];
                        count = n_spans - first;
                        if (frame_object[depth] && count > 1) {
                                qsort_r(spans + first, count, sizeof(KeySpan), key_span_compare, &t);
                                for (size_t k = first + 1; k < n_spans; k++)
                                        if (key_span_compare(spans + k - 1, spans + k, &t) == 0) {
                                                *reterr_message = "an object repeats a key";
                                                return -EBADMSG;
                                        }
                        }
                        n_spans = first;
                }
        }
        return 0;
}

int json_fail(const char **reterr_message, const char *message) {
        if (reterr_message)
                *reterr_message = message;
        return -EBADMSG;
}

int json_parse(const char *s, size_t n, json_object **ret, const char **reterr_message) {
        struct json_tokener *tok;
        const char *ignored;
        json_object *o;
        size_t end;
        int r;

        if (!reterr_message)
                reterr_message = &ignored;

        if (n > INT32_MAX) {
                *reterr_message = "JSON text too large";
                return -E2BIG;
        }

        r = json_check_keys(s, n, reterr_message);
        if (r < 0)
                return r;

        tok = json_tokener_new_ex(JSON_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);

        o = json_tokener_parse_ex(tok, s, (int) n);
        if (!o && json_tokener_get_error(tok) == json_tokener_continue) {
                /* The input ended inside a value, or after a top-level number or literal, which
                 * json-c finishes only when it sees what follows: tell it the text is over. All n
                 * bytes were consumed. A JSON null parses to NULL with success. */
                o = json_tokener_parse_ex(tok, "", 1);
                if (json_tokener_get_error(tok) != json_tokener_success) {
                        *reterr_message = "unexpected end of JSON input";
                        tokener_wipe_and_free(tok);
                        return -EBADMSG;
                }
                end = n;
        } else if (json_tokener_get_error(tok) != json_tokener_success) {
                *reterr_message = json_tokener_error_desc(json_tokener_get_error(tok));
                tokener_wipe_and_free(tok);
                return -EBADMSG;
        } else
                end = json_tokener_get_parse_end(tok);
        tokener_wipe_and_free(tok);

        r = json_check_tokens(s, end, reterr_message);
        for (; r >= 0 && end < n; end++)
                if (!is_json_space(s[end])) {
                        *reterr_message = "invalid character after top-level value";
                        r = -EBADMSG;
                }
        if (r < 0) {
                json_wipe(o);
                json_object_put(o);
                return r;
        }

        *ret = o;
        return 0;
}

void json_wipe(json_object *o) {
        switch (json_object_get_type(o)) {
        case json_type_string:
                explicit_bzero((char *) json_object_get_string(o), (size_t) json_object_get_string_len(o));
                break;
        case json_type_array:
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        json_wipe(json_object_array_get_idx(o, i));
                break;
        case json_type_object: {
                json_object_object_foreach(o, k, v) {
                        (void) k;
                        json_wipe(v);
                }
                break;
        }
        default:
                break;
        }
}

json_object *json_get_field(json_object *o, const char *name) {
        json_object *v;

        if (!json_object_is_type(o, json_type_object))
                return NULL;
        if (json_object_object_get_ex(o, name, &v))
                return v;
        json_object_object_foreach(o, k, val)
                if (strcasecmp(k, name) == 0)
                        return val;
        return NULL;
}

/* json-c clamps out-of-range integers and keeps uint64 and int64 apart, so read the
 * integer back from its own decimal serialisation, which is exact. */
static const char *json_int_text(json_object *o) {
        if (!json_object_is_type(o, json_type_int))
                return NULL;
        return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
}

int json_get_int64(json_object *o, int64_t *ret) {
        const char *t = json_int_text(o);

        if (!t || safe_atoi64(t, ret) < 0)
                return -EBADMSG;
        return 0;
}

int json_get_uint64(json_object *o, uint64_t *ret) {
        const char *t = json_int_text(o);

        if (!t || safe_atou64(t, ret) < 0)
                return -EBADMSG;
        return 0;
}

int json_get_string(json_object *o, const char **ret, size_t *ret_len) {
        if (!json_object_is_type(o, json_type_string))
                return -EBADMSG;
        *ret = json_object_get_string(o);
        if (ret_len)
                *ret_len = (size_t) json_object_get_string_len(o);
        return 0;
}

int json_get_cstring(json_object *o, const char **ret) {
        const char *s;
        size_t n;
        int r;

        r = json_get_string(o, &s, &n);
        if (r < 0)
                return r;
        if (strlen(s) != n)
                return -EBADMSG;

        *ret = s;
        return 0;
}
