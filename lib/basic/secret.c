/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "secret.h"

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

Secret *secret_new(size_t size) {
        size_t want, mapped, ps = page_size();
        Secret *s;
        void *p;

        /* Header, bytes and a terminating NUL share one mapping. */
        if (!ADD_SAFE(&want, size, sizeof(Secret) + 1) || !ADD_SAFE(&mapped, want, ps - 1))
                return NULL;
        mapped &= ~(ps - 1);

        p = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return NULL;

        /* Best effort: without CAP_IPC_LOCK the RLIMIT_MEMLOCK may be exhausted; the daemons
         * also run with LimitMEMLOCK= and mlockall(), and dumps are off in any case. */
        (void) mlock(p, mapped);
        (void) madvise(p, mapped, MADV_DONTDUMP);
        (void) madvise(p, mapped, MADV_WIPEONFORK);

        s = p;
        s->data = (uint8_t *) p + sizeof(Secret);
        s->size = size;
        s->mapped = mapped;
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

        if (!s)
                return NULL;
        mapped = s->mapped;
        explicit_bzero(s, mapped);
        (void) munlock(s, mapped);
        (void) munmap(s, mapped);
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

int secret_harden_process(bool mlock_all) {
        const struct rlimit zero = {};

        if (setrlimit(RLIMIT_CORE, &zero) < 0)
                return -errno;
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return -errno;
        if (mlock_all && mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
                return -errno;
        return 0;
}
