/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "macro.h"

/* A growable byte buffer, always NUL-terminated. A secure Buf never leaves a copy of its
 * bytes behind: it grows by allocate-copy-wipe instead of realloc() and wipes on done. */
typedef struct Buf {
        char *data;
        size_t len;
        size_t cap;
        bool secure;
        int error;  /* first -ENOMEM or -E2BIG seen; later appends are no-ops */
        size_t max; /* 0: unlimited */
} Buf;

#define BUF_INIT ((Buf){})
#define BUF_INIT_SECURE ((Buf){.secure = true})

int buf_reserve(Buf *b, size_t extra);
int buf_put_slow(Buf *b, const void *p, size_t n);

/* Appends are on every response's and audit line's path, a few bytes at a time: when they
 * fit, they are a copy; growth, limits and failures take buf_put_slow(). */
static inline int buf_put(Buf *b, const void *p, size_t n) {
        if (n < b->cap - b->len && b->error == 0 && (b->max == 0 || b->len + n <= b->max)) {
                if (n > 0)
                        memcpy(b->data + b->len, p, n);
                b->len += n;
                b->data[b->len] = '\0';
                return 0;
        }
        return buf_put_slow(b, p, n);
}

static inline int buf_puts(Buf *b, const char *s) {
        return buf_put(b, s, strlen(s));
}

static inline int buf_putc(Buf *b, char c) {
        return buf_put(b, &c, 1);
}
int buf_printf(Buf *b, const char *fmt, ...) _printf_(2, 3);
int buf_vprintf(Buf *b, const char *fmt, va_list ap) _printf_(2, 0);
void buf_truncate(Buf *b, size_t len);
/* Release the memory (wiped first if secure) and reset to empty. */
void buf_done(Buf *b);
/* Hand out the NUL-terminated data; the Buf is reset. NULL if a previous append failed. */
char *buf_steal(Buf *b, size_t *ret_len);

static inline void buf_donep(Buf *b) {
        buf_done(b);
}
#define _cleanup_buf_ _cleanup_(buf_donep)
