/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

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
int buf_put(Buf *b, const void *p, size_t n);
int buf_puts(Buf *b, const char *s);
int buf_putc(Buf *b, char c);
int buf_printf(Buf *b, const char *fmt, ...) _printf_(2, 3);
void buf_truncate(Buf *b, size_t len);
/* Release the memory (wiped first if secure) and reset to empty. */
void buf_done(Buf *b);
/* Hand out the NUL-terminated data; the Buf is reset. NULL if a previous append failed. */
char *buf_steal(Buf *b, size_t *ret_len);

static inline void buf_donep(Buf *b) {
        buf_done(b);
}
#define _cleanup_buf_ _cleanup_(buf_donep)
