/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "secret.h"

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

static size_t page_size(void) {
        static size_t cached;
        long r;

        if (cached == 0) {
                r = sysconf(_SC_PAGESIZE);
                cached = r > 0 ? (size_t) r : 4096;
        }
        return cached;
}

/* Locked, undumpable, wiped-on-fork anonymous memory. */
static void *secure_map(size_t size) {
        void *p;

        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return NULL;

        /* Best effort: without CAP_IPC_LOCK the RLIMIT_MEMLOCK may be exhausted; the pages are
         * still left out of core dumps, and the daemons allow none anyway. */
        (void) mlock(p, size);
        (void) madvise(p, size, MADV_DONTDUMP);
        (void) madvise(p, size, MADV_WIPEONFORK);
        return p;
}

/* The pool: slots of 64 bytes to 4 KiB, header included, carved from chunks of secure
 * memory and kept on a free list per size when freed. Chunks are locked, so resident, as
 * soon as they are mapped: each size's first is 16 KiB and the next ones double up to
 * 256 KiB, so that a process holding a few secrets (the agent, the command line) pays
 * little and a busy server maps rarely. Chunks are never unmapped, so the pool is as large
 * as the most secrets ever held at once. */
#define POOL_CLASSES 7 /* 64, 128, ..., 4096 */
#define POOL_SLOT_MIN 64
#define POOL_CHUNK_MIN (16 * 1024)
#define POOL_CHUNK_MAX (256 * 1024)

typedef struct PoolSlot {
        struct PoolSlot *next;
} PoolSlot;

static struct {
        pthread_mutex_t lock;
        PoolSlot *free[POOL_CLASSES];
        uint8_t *chunk[POOL_CLASSES]; /* where the next fresh slot of each class is carved */
        size_t chunk_left[POOL_CLASSES];
        size_t chunk_next[POOL_CLASSES]; /* the size of the class's next chunk; 0: the first */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static unsigned pool_class_of(size_t total) {
        unsigned c = 0;

        for (size_t slot = POOL_SLOT_MIN; c < POOL_CLASSES; c++, slot <<= 1)
                if (total <= slot)
                        return c;
        return SECRET_POOL_NONE;
}

static void *pool_get(unsigned c) {
        size_t slot = (size_t) POOL_SLOT_MIN << c;
        void *p = NULL;

        pthread_mutex_lock(&pool.lock);
        if (pool.free[c]) {
                PoolSlot *s = pool.free[c];

                pool.free[c] = s->next;
                s->next = NULL;
                p = s;
        } else {
                if (pool.chunk_left[c] < slot) {
                        size_t size = pool.chunk_next[c] ?: POOL_CHUNK_MIN;

                        pool.chunk[c] = secure_map(size);
                        pool.chunk_left[c] = pool.chunk[c] ? size : 0;
                        if (pool.chunk[c])
                                pool.chunk_next[c] = MIN(size * 2, (size_t) POOL_CHUNK_MAX);
                }
                if (pool.chunk[c] && pool.chunk_left[c] >= slot) {
                        p = pool.chunk[c];
                        pool.chunk[c] += slot;
                        pool.chunk_left[c] -= slot;
                }
        }
        pthread_mutex_unlock(&pool.lock);
        return p;
}

static void pool_put(unsigned c, void *p) {
        PoolSlot *s = p;

        pthread_mutex_lock(&pool.lock);
        s->next = pool.free[c];
        pool.free[c] = s;
        pthread_mutex_unlock(&pool.lock);
}

Secret *secret_new(size_t size) {
        size_t total, mapped, ps = page_size();
        unsigned c;
        Secret *s;
        void *p;

        /* Header, bytes and a terminating NUL share one slot or mapping. */
        if (!ADD_SAFE(&total, size, sizeof(Secret) + 1))
                return NULL;

        c = pool_class_of(total);
        if (c != SECRET_POOL_NONE) {
                mapped = (size_t) POOL_SLOT_MIN << c;
                p = pool_get(c);
        } else {
                if (!ADD_SAFE(&mapped, total, ps - 1))
                        return NULL;
                mapped &= ~(ps - 1);
                p = secure_map(mapped);
        }
        if (!p)
                return NULL;

        /* Slots are zero: fresh from the kernel, or wiped when freed (but the list link). */
        s = p;
        *s = (Secret){
                .data = (uint8_t *) p + sizeof(Secret),
                .size = size,
                .mapped = mapped,
                .pool_class = c,
        };
        return s;
}

Secret *secret_new_copy(const void *p, size_t size) {
        Secret *s;

        s = secret_new(size);
        if (s && size > 0)
                memcpy(s->data, p, size);
        return s;
}

Secret *secret_free(Secret *s) {
        size_t mapped;
        unsigned c;

        if (!s)
                return NULL;
        mapped = s->mapped;
        c = s->pool_class;
        explicit_bzero(s, mapped);
        if (c != SECRET_POOL_NONE)
                pool_put(c, s);
        else {
                (void) munlock(s, mapped);
                (void) munmap(s, mapped);
        }
        return NULL;
}

bool memeq_secure(const void *a, const void *b, size_t n) {
        const volatile uint8_t *x = a, *y = b;
        uint8_t d = 0;

        for (size_t i = 0; i < n; i++)
                d |= x[i] ^ y[i];
        return d == 0;
}

void *erase_and_free(void *p, size_t n) {
        if (p) {
                explicit_bzero(p, n);
                free(p);
        }
        return NULL;
}

void *erase_and_free_string(char *s) {
        return s ? erase_and_free(s, strlen(s)) : NULL;
}

int secret_harden_process(void) {
        const struct rlimit zero = {};

        if (setrlimit(RLIMIT_CORE, &zero) < 0)
                return -errno;
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return -errno;
        return 0;
}
