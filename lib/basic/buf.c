/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "buf.h"

#include <stdio.h>
#include <string.h>

#include "secret.h"

static int buf_fail(Buf *b, int error) {
        if (b->error == 0)
                b->error = error;
        return b->error;
}

int buf_reserve(Buf *b, size_t extra) {
        size_t need, cap;
        char *p;

        if (b->error < 0)
                return b->error;
        if (!ADD_SAFE(&need, b->len, extra) || !ADD_SAFE(&need, need, 1))
                return buf_fail(b, -ENOMEM);
        if (b->max > 0 && need - 1 > b->max)
                return buf_fail(b, -E2BIG);
        if (need <= b->cap)
                return 0;

        /* Start at 1 KiB: responses and audit lines are a few hundred bytes, and every growth of
         * a secure buffer is an allocation, a copy and a wipe. */
        cap = MAX(need, MAX(b->cap * 2, (size_t) 1024));
        if (b->max > 0 && b->max < SIZE_MAX)
                cap = MIN(cap, b->max + 1);

        if (!b->secure) {
                p = realloc(b->data, cap);
                if (!p)
                        return buf_fail(b, -ENOMEM);
        } else {
                /* Never realloc() a secret: allocate, copy, wipe the old buffer. */
                p = malloc(cap);
                if (!p)
                        return buf_fail(b, -ENOMEM);
                if (b->data) {
                        memcpy(p, b->data, b->len + 1);
                        erase_and_free(b->data, b->cap);
                }
        }
        b->data = p;
        b->cap = cap;
        return 0;
}

int buf_put_slow(Buf *b, const void *p, size_t n) {
        int r;

        r = buf_reserve(b, n);
        if (r < 0)
                return r;
        if (n > 0)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int buf_vprintf(Buf *b, const char *fmt, va_list ap) {
        va_list aq;
        int n, r;

        va_copy(aq, ap);
        n = vsnprintf(NULL, 0, fmt, aq);
        va_end(aq);
        if (n < 0)
                return buf_fail(b, -EINVAL);

        r = buf_reserve(b, (size_t) n);
        if (r < 0)
                return r;

        (void) vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
        b->len += (size_t) n;
        return 0;
}

int buf_printf(Buf *b, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = buf_vprintf(b, fmt, ap);
        va_end(ap);
        return r;
}

void buf_truncate(Buf *b, size_t len) {
        if (!b->data || len >= b->len)
                return;
        if (b->secure)
                explicit_bzero(b->data + len, b->len - len);
        b->len = len;
        b->data[len] = '\0';
}

void buf_done(Buf *b) {
        if (b->secure)
                erase_and_free(b->data, b->cap);
        else
                free(b->data);
        *b = (Buf){.secure = b->secure, .max = b->max};
}

char *buf_steal(Buf *b, size_t *ret_len) {
        char *p;

        if (b->error < 0) {
                buf_done(b);
                return NULL;
        }
        if (!b->data && buf_reserve(b, 0) < 0)
                return NULL;
        if (!b->data)
                return NULL;
        b->data[b->len] = '\0';
        if (ret_len)
                *ret_len = b->len;
        p = b->data;
        *b = (Buf){.secure = b->secure, .max = b->max};
        return p;
}
