/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "form.h"

#include <string.h>

#include "hexdecoct.h"
#include "secret.h"

int form_parse(const char *s, size_t n, Form *ret) {
        _cleanup_(form_donep) Form f = FORM_NULL;
        size_t pairs = 1, out = 0;
        bool bad = false;

        for (size_t i = 0; i < n; i++)
                if (s[i] == '&')
                        pairs++;
        if (pairs > FORM_FIELDS_MAX)
                return -E2BIG;

        /* Unescaping only shrinks, so one buffer of n bytes plus a NUL per key and value
         * holds everything. */
        f.buf_size = n + 2 * pairs;
        f.buf = malloc(f.buf_size);
        f.fields = calloc(pairs, sizeof(FormField));
        if (!f.buf || !f.fields)
                return -ENOMEM;

        for (size_t start = 0; start <= n;) {
                const char *pair = s + start, *amp, *eq;
                size_t len, klen, kout, vout;
                FormField *field;

                amp = memchr(pair, '&', n - start);
                len = amp ? (size_t) (amp - pair) : n - start;
                start += len + 1;
                if (len == 0)
                        continue;

                if (memchr(pair, ';', len)) {
                        /* Go rejects ';' as a separator since 1.17 ("invalid semicolon separator"). */
                        bad = true;
                        continue;
                }
                eq = memchr(pair, '=', len);
                klen = eq ? (size_t) (eq - pair) : len;

                if (url_unescape(pair, klen, true, f.buf + out, &kout) < 0) {
                        bad = true;
                        continue;
                }
                field = &f.fields[f.n];
                field->key = f.buf + out;
                field->key_len = kout;

                if (eq) {
                        if (url_unescape(eq + 1, len - klen - 1, true, f.buf + out + kout + 1, &vout) < 0) {
                                explicit_bzero(f.buf + out, kout);
                                bad = true;
                                continue;
                        }
                } else
                        f.buf[out + kout + 1] = '\0', vout = 0;
                field->value = f.buf + out + kout + 1;
                field->value_len = vout;
                out += kout + vout + 2;
                f.n++;
        }

        *ret = f;
        f = FORM_NULL;
        return bad ? -EBADMSG : 0;
}

void form_done(Form *f) {
        if (f->buf)
                erase_and_free(f->buf, f->buf_size);
        free(f->fields);
        *f = FORM_NULL;
}

const FormField *form_get(const Form *f, const char *key) {
        for (size_t i = 0; i < f->n; i++)
                if (streq(f->fields[i].key, key))
                        return &f->fields[i];
        return NULL;
}

const FormField *form_get_last(const Form *f, const char *key) {
        for (size_t i = f->n; i > 0; i--)
                if (streq(f->fields[i - 1].key, key))
                        return &f->fields[i - 1];
        return NULL;
}
