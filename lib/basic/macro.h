/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _pure_ __attribute__((pure))
#define _const_ __attribute__((const))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _sentinel_ __attribute__((sentinel))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))
#define _public_ __attribute__((visibility("default")))
#define _fallthrough_ __attribute__((fallthrough))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define STRLEN(x) (sizeof("" x "") - 1)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)

/* Take ownership of a pointer or fd out of a _cleanup_ variable. */
#define TAKE_GENERIC(var, type, nullvalue)    \
        ({                                    \
                type *_pvar_ = &(var);        \
                type _var_ = *_pvar_;         \
                type _nullvalue_ = nullvalue; \
                *_pvar_ = _nullvalue_;        \
                _var_;                        \
        })
#define TAKE_PTR(ptr) TAKE_GENERIC(ptr, typeof(ptr), NULL)
#define TAKE_FD(fd) TAKE_GENERIC(fd, int, -EBADF)

/* Define a helper suitable for _cleanup_() that frees *p with func, if not NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p) {   \
                if (*p)                         \
                        *p = func(*p);          \
        }

/* The same for functions returning void, such as OpenSSL's *_free(). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(type, func, empty) \
        static inline void func##p(type *p) {               \
                if (*p != (empty))                          \
                        func(*p);                           \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Translate a libc -1/errno result to -errno. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EINVAL;
}
#define RET_NERRNO(expr)                          \
        ({                                        \
                int _r_ = (expr);                 \
                _r_ < 0 ? negative_errno() : _r_; \
        })

/* Checks of arguments in public functions: programmer errors, never input. */
#define assert_return(expr, r)           \
        do {                             \
                if (_unlikely_(!(expr))) \
                        return (r);      \
        } while (false)

#define FOREACH_ARRAY(i, array, num) for (typeof(array[0]) *i = (array); i && i < (array) + (num); i++)

static inline const char *strempty(const char *s) {
        return s ?: "";
}
static inline const char *strna(const char *s) {
        return s ?: "n/a";
}
static inline bool isempty(const char *s) {
        return !s || s[0] == '\0';
}

/* Multiplication and addition that report overflow instead of wrapping. */
#define MUL_SAFE(ret, a, b) (!__builtin_mul_overflow(a, b, ret))
#define ADD_SAFE(ret, a, b) (!__builtin_add_overflow(a, b, ret))
