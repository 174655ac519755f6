/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "hexdecoct.h"

#include <string.h>

static const char hex_digits[] = "0123456789abcdef";
static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void hexencode(const void *p, size_t n, char *ret) {
        const uint8_t *x = p;

        for (size_t i = 0; i < n; i++) {
                ret[2 * i] = hex_digits[x[i] >> 4];
                ret[2 * i + 1] = hex_digits[x[i] & 15];
        }
        ret[2 * n] = '\0';
}

int unhexchar(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

size_t base64_encoded_size(size_t n) {
        return (n + 2) / 3 * 4;
}

int base64_append(Buf *b, const void *p, size_t n) {
        const uint8_t *x = p;
        char *o;
        int r;

        r = buf_reserve(b, base64_encoded_size(n));
        if (r < 0)
                return r;

        o = b->data + b->len;
        for (; n >= 3; n -= 3, x += 3) {
                *o++ = b64_std[x[0] >> 2];
                *o++ = b64_std[((x[0] & 3) << 4) | (x[1] >> 4)];
                *o++ = b64_std[((x[1] & 15) << 2) | (x[2] >> 6)];
                *o++ = b64_std[x[2] & 63];
        }
        if (n > 0) {
                *o++ = b64_std[x[0] >> 2];
                if (n == 1) {
                        *o++ = b64_std[(x[0] & 3) << 4];
                        *o++ = '=';
                } else {
                        *o++ = b64_std[((x[0] & 3) << 4) | (x[1] >> 4)];
                        *o++ = b64_std[(x[1] & 15) << 2];
                }
                *o++ = '=';
        }
        *o = '\0';
        b->len = (size_t) (o - b->data);
        return 0;
}

size_t base64_decoded_max(size_t len) {
        return len / 4 * 3 + 3;
}

static int b64_value(const char *alphabet, char c) {
        const char *p;

        if (c == '\0')
                return -EINVAL;
        p = memchr(alphabet, c, 64);
        return p ? (int) (p - alphabet) : -EINVAL;
}

/* The decoder behind both alphabets. With padded, input must be whole quanta with '='
 * padding; without it, a final partial quantum of 2 or 3 characters is allowed and '='
 * is an error. CR and LF are skipped in both, as Go does. */
static int base64_decode_full(
        const char *alphabet, bool padded, const char *s, size_t len, uint8_t *out, size_t *ret_size) {
        uint32_t acc = 0;
        size_t n = 0, k = 0, pad = 0;

        for (size_t i = 0; i < len; i++) {
                int v;

                if (s[i] == '\r' || s[i] == '\n')
                        continue;
                if (s[i] == '=') {
                        if (!padded || k < 2)
                                return -EBADMSG;
                        pad++;
                        if (k + pad > 4)
                                return -EBADMSG;
                        continue;
                }
                if (pad > 0)
                        return -EBADMSG;

                v = b64_value(alphabet, s[i]);
                if (v < 0)
                        return -EBADMSG;
                acc = (acc << 6) | (uint32_t) v;
                if (++k == 4) {
                        out[n++] = (uint8_t) (acc >> 16);
                        out[n++] = (uint8_t) (acc >> 8);
                        out[n++] = (uint8_t) acc;
                        acc = 0;
                        k = 0;
                }
        }

        if (pad > 0) {
                if (k + pad != 4)
                        return -EBADMSG;
        } else if (padded && k != 0)
                return -EBADMSG;
        else if (k == 1)
                return -EBADMSG;

        if (k == 2)
                out[n++] = (uint8_t) (acc >> 4);
        else if (k == 3) {
                out[n++] = (uint8_t) (acc >> 10);
                out[n++] = (uint8_t) (acc >> 2);
        }
        explicit_bzero(&acc, sizeof(acc));

        *ret_size = n;
        return 0;
}

int base64_decode(const char *s, size_t len, uint8_t *out, size_t *ret_size) {
        return base64_decode_full(b64_std, true, s, len, out, ret_size);
}

int base64url_decode(const char *s, size_t len, uint8_t *out, size_t *ret_size) {
        return base64_decode_full(b64_url, false, s, len, out, ret_size);
}

int url_unescape(const char *s, size_t len, bool plus_is_space, char *out, size_t *ret_len) {
        size_t n = 0;

        for (size_t i = 0; i < len; i++) {
                if (s[i] == '%') {
                        int hi, lo;

                        if (len - i < 3)
                                return -EBADMSG;
                        hi = unhexchar(s[i + 1]);
                        lo = unhexchar(s[i + 2]);
                        if (hi < 0 || lo < 0)
                                return -EBADMSG;
                        out[n++] = (char) ((hi << 4) | lo);
                        i += 2;
                } else if (s[i] == '+' && plus_is_space)
                        out[n++] = ' ';
                else
                        out[n++] = s[i];
        }
        out[n] = '\0';
        *ret_len = n;
        return 0;
}

static bool is_unreserved(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '_' || c == '.' || c == '~';
}

int url_escape_append(Buf *b, const char *s, size_t len) {
        for (size_t i = 0; i < len; i++) {
                uint8_t c = (uint8_t) s[i];
                int r;

                if (is_unreserved((char) c))
                        r = buf_putc(b, (char) c);
                else if (c == ' ')
                        r = buf_putc(b, '+');
                else {
                        char e[3] = {'%', "0123456789ABCDEF"[c >> 4], "0123456789ABCDEF"[c & 15]};
                        r = buf_put(b, e, sizeof(e));
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

size_t base64_error_offset(const char *s, size_t len) {
        size_t quantum = 0, k = 0;

        /* Where Go's decoder would report a CorruptInputError: the first character outside
         * the alphabet, else the start of the incomplete final quantum. */
        for (size_t i = 0; i < len; i++) {
                if (s[i] == '\r' || s[i] == '\n')
                        continue;
                if (s[i] != '=' && b64_value(b64_std, s[i]) < 0)
                        return i;
                if (k == 0)
                        quantum = i;
                k = (k + 1) % 4;
        }
        return quantum;
}
