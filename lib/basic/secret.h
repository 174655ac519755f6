/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "macro.h"

/* Secret bytes live only in a Secret: in memory that is locked (never swapped), excluded
 * from core dumps and wiped in a forked child, and wiped again when freed. Small secrets come
 * from a pool of such pages (a mapping and four system calls per secret would dominate a
 * server's request path); large ones get a mapping of their own. The bytes are always
 * followed by a NUL, so a secret holding text can be used as a C string. */
typedef struct Secret {
        uint8_t *data;
        size_t size;
        size_t mapped;       /* private: the slot or mapping size, header included */
        unsigned pool_class; /* private: the pool's size class, or SECRET_POOL_NONE */
} Secret;

#define SECRET_POOL_NONE UINT32_MAX

/* Zero-filled secret of the given size; NULL on OOM (or if the mapping fails). */
Secret *secret_new(size_t size);
Secret *secret_new_copy(const void *p, size_t size);
Secret *secret_free(Secret *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Secret *, secret_free);

/* Constant-time comparison of two byte strings of equal length. */
bool memeq_secure(const void *a, const void *b, size_t n);

/* Wipe n bytes and free p; both may be NULL/0. Returns NULL. */
void *erase_and_free(void *p, size_t n);
void *erase_and_free_string(char *s);

static inline void erase_and_free_stringp(char **s) {
        *s = erase_and_free_string(*s);
}
#define _cleanup_erase_free_ _cleanup_(erase_and_free_stringp)

/* For stack buffers: wipe when the scope ends, as in CLEANUP_ERASE(buf). */
struct erase_span {
        void *p;
        size_t n;
};
static inline void erase_spanp(struct erase_span *s) {
        explicit_bzero(s->p, s->n);
}
#define CLEANUP_ERASE__(var, uniq) \
        _cleanup_(erase_spanp) _unused_ struct erase_span uniq = {&(var), sizeof(var)}
#define CLEANUP_ERASE_(var, line) CLEANUP_ERASE__(var, _erase_##line)
#define CLEANUP_ERASE_L(var, line) CLEANUP_ERASE_(var, line)
#define CLEANUP_ERASE(var) CLEANUP_ERASE_L(var, __LINE__)

/* Hardening for daemons that hold secrets: no core dumps, not ptrace-able by the same uid.
 * (Secrets themselves live in locked pages: secret_new().) Returns 0 or -errno. */
int secret_harden_process(void);
