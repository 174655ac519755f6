/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "secret.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

static bool all_zero(const void *p, size_t n) {
        const uint8_t *x = p;

        for (size_t i = 0; i < n; i++)
                if (x[i] != 0)
                        return false;
        return true;
}

static void test_secret_new(void **state) {
        static const size_t sizes[] = {0, 1, 31, 4096 - 64, 4096, 4097, 3 * 4096 + 5};
        long ps = sysconf(_SC_PAGESIZE);

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                _cleanup_(secret_freep) Secret *s = NULL;

                s = secret_new(sizes[i]);
                assert_non_null(s);
                assert_non_null(s->data);
                assert_int_equal(s->size, sizes[i]);
                assert_true(all_zero(s->data, sizes[i]));
                assert_int_equal(s->data[sizes[i]], '\0');
                assert_true(s->mapped >= sizes[i] + sizeof(Secret) + 1);
                if (s->pool_class == SECRET_POOL_NONE) {
                        /* A secret of its own: the mapping is whole pages. */
                        assert_true(sizes[i] + sizeof(Secret) + 1 > 4096);
                        assert_int_equal((uintptr_t) s % (uintptr_t) ps, 0);
                        assert_int_equal(s->mapped % (size_t) ps, 0);
                } else {
                        /* A pool slot: a power of two, aligned to its size. */
                        assert_true(sizes[i] + sizeof(Secret) + 1 <= 4096);
                        assert_int_equal(s->mapped & (s->mapped - 1), 0);
                        assert_int_equal((uintptr_t) s % s->mapped, 0);
                }

                /* All of it is writable. */
                memset(s->data, 0xa5, sizes[i]);
        }

        /* Sizes that cannot be mapped fail cleanly. */
        assert_null(secret_new(SIZE_MAX));
        assert_null(secret_new(SIZE_MAX - 4096));
}

static void test_secret_copy(void **state) {
        _cleanup_(secret_freep) Secret *s = NULL, *e = NULL, *b = NULL;
        uint8_t bin[300];

        (void) state;
        s = secret_new_copy("hunter2", 7);
        assert_non_null(s);
        assert_int_equal(s->size, 7);
        assert_string_equal((const char *) s->data, "hunter2");

        e = secret_new_copy(NULL, 0);
        assert_non_null(e);
        assert_int_equal(e->size, 0);
        assert_int_equal(e->data[0], '\0');

        for (size_t i = 0; i < sizeof(bin); i++)
                bin[i] = (uint8_t) (i * 7);
        b = secret_new_copy(bin, sizeof(bin));
        assert_non_null(b);
        assert_memory_equal(b->data, bin, sizeof(bin));
        assert_int_equal(b->data[sizeof(bin)], 0);
}

static void test_secret_free(void **state) {
        Secret *s;

        (void) state;
        assert_null(secret_free(NULL));
        s = secret_new_copy("x", 1);
        assert_non_null(s);
        s = secret_free(s);
        assert_null(s);

        /* The cleanup helper accepts NULL too. */
        {
                _cleanup_(secret_freep) Secret *n = NULL;
                (void) n;
        }
}

static void test_memeq_secure(void **state) {
        uint8_t a[64], b[64];

        (void) state;
        for (size_t i = 0; i < sizeof(a); i++)
                a[i] = b[i] = (uint8_t) (i + 1);
        assert_true(memeq_secure(a, b, sizeof(a)));
        assert_true(memeq_secure(a, b, 0));
        assert_true(memeq_secure(NULL, NULL, 0));

        b[0] ^= 1;
        assert_false(memeq_secure(a, b, sizeof(a)));
        assert_true(memeq_secure(a + 1, b + 1, sizeof(a) - 1));
        b[0] ^= 1;

        b[63] ^= 0x80;
        assert_false(memeq_secure(a, b, sizeof(a)));
        assert_true(memeq_secure(a, b, 63));
        b[63] ^= 0x80;

        /* Every single-bit difference is seen. */
        for (size_t i = 0; i < sizeof(a); i++)
                for (unsigned bit = 0; bit < 8; bit++) {
                        b[i] ^= (uint8_t) (1u << bit);
                        assert_false(memeq_secure(a, b, sizeof(a)));
                        b[i] ^= (uint8_t) (1u << bit);
                }
        assert_true(memeq_secure("token", "token", 5));
        assert_false(memeq_secure("token", "tokex", 5));
}

static void test_erase_and_free(void **state) {
        char *p;

        (void) state;
        assert_null(erase_and_free(NULL, 0));
        assert_null(erase_and_free(NULL, 100));
        assert_null(erase_and_free_string(NULL));

        p = strdup("password");
        assert_non_null(p);
        p = erase_and_free(p, strlen(p) + 1);
        assert_null(p);

        p = strdup("password");
        assert_non_null(p);
        p = erase_and_free_string(p);
        assert_null(p);

        p = malloc(0);
        p = erase_and_free(p, 0);
        assert_null(p);

        {
                _cleanup_erase_free_ char *q = strdup("scoped secret");
                assert_non_null(q);
        }
        {
                _cleanup_erase_free_ char *q = NULL;
                (void) q;
        }
}

static void test_cleanup_erase(void **state) {
        char outer[32];
        struct {
                uint64_t a;
                char b[7];
        } st;
        uint8_t big[1000];

        (void) state;
        /* CLEANUP_ERASE() wipes the whole variable when its own scope ends; the variables live
         * in this outer scope so they can still be inspected. */
        memset(outer, 'S', sizeof(outer));
        memset(&st, 'T', sizeof(st));
        memset(big, 0x5a, sizeof(big));
        {
                CLEANUP_ERASE(outer);
                CLEANUP_ERASE(st); /* two on adjacent lines must not clash */
                CLEANUP_ERASE(big);
                assert_int_equal(outer[31], 'S');
                assert_int_equal(big[999], 0x5a);
                assert_int_equal(st.a, UINT64_C(0x5454545454545454));
        }
        assert_true(all_zero(outer, sizeof(outer)));
        assert_true(all_zero(&st, sizeof(st)));
        assert_true(all_zero(big, sizeof(big)));

        /* Also when leaving the scope early. */
        memset(outer, 'S', sizeof(outer));
        for (int i = 0; i < 3; i++) {
                CLEANUP_ERASE(outer);
                if (i == 0)
                        break;
        }
        assert_true(all_zero(outer, sizeof(outer)));
}

/* The VmFlags of the mapping of /proc/self/smaps that holds address p, or NULL. */
static char *smaps_vmflags(const void *p) {
        _cleanup_free_ char *line = NULL;
        size_t allocated = 0;
        bool in = false;
        FILE *f;
        char *result = NULL;

        f = fopen("/proc/self/smaps", "re");
        if (!f)
                return NULL;
        while (getline(&line, &allocated, f) > 0) {
                unsigned long long start, end;
                int consumed = 0;

                if (sscanf(line, "%llx-%llx %*s%n", &start, &end, &consumed) == 2 && consumed > 0) {
                        in = (uintptr_t) p >= start && (uintptr_t) p < end;
                        continue;
                }
                if (in && strneq(line, "VmFlags:", 8)) {
                        result = strdup(line + 8);
                        break;
                }
        }
        fclose(f);
        return result;
}

static bool has_flag(const char *flags, const char *flag) {
        char padded[8];

        (void) snprintf(padded, sizeof(padded), " %s", flag);
        for (const char *p = flags; (p = strstr(p, padded)); p++)
                if (p[strlen(padded)] == ' ' || p[strlen(padded)] == '\n' || p[strlen(padded)] == '\0')
                        return true;
        return false;
}

static void test_mapping_flags(void **state) {
        _cleanup_(secret_freep) Secret *s = NULL, *big = NULL;
        _cleanup_free_ char *flags = NULL, *flags_big = NULL;
        _cleanup_free_ char *plain_flags = NULL, *locked_flags = NULL;
        bool can_lock = false;
        void *plain;
        struct rlimit rl;

        (void) state;
        s = secret_new_copy("k", 1);
        big = secret_new(5 * 4096);
        assert_non_null(s);
        assert_non_null(big);

        flags = smaps_vmflags(s->data);
        if (!flags)
                skip();
        flags_big = smaps_vmflags(big->data + big->size - 1);
        assert_non_null(flags_big);

        /* Excluded from core dumps and wiped in a forked child. */
        assert_true(has_flag(flags, "dd"));
        assert_true(has_flag(flags, "wf"));
        assert_true(has_flag(flags_big, "dd"));
        assert_true(has_flag(flags_big, "wf"));

        /* The checker itself must be able to fail: a plain anonymous mapping has none of the flags. */
        plain = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(plain != MAP_FAILED);
        plain_flags = smaps_vmflags(plain);
        assert_non_null(plain_flags);
        assert_false(has_flag(plain_flags, "dd"));
        assert_false(has_flag(plain_flags, "wf"));
        assert_false(has_flag(plain_flags, "lo"));

        /* Locked, where this process can lock memory at all: RLIMIT_MEMLOCK may be too small,
         * and ASan turns mlock() into a no-op. Find out with a page of our own. */
        if (mlock(plain, 4096) >= 0) {
                locked_flags = smaps_vmflags(plain);
                assert_non_null(locked_flags);
                can_lock = has_flag(locked_flags, "lo");
        }
        assert_int_equal(munmap(plain, 4096), 0);
        if (can_lock) {
                assert_true(has_flag(flags, "lo"));
                assert_true(has_flag(flags_big, "lo"));
        } else {
                assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
                print_message(
                        "# memory cannot be locked here (RLIMIT_MEMLOCK %llu, or ASan), not checking 'lo'\n",
                        (unsigned long long) rl.rlim_cur);
        }
}

static void test_pool_reuse(void **state) {
        Secret *a, *b;
        uint8_t *where;

        (void) state;
        /* A freed slot is wiped and handed out again, zeroed. */
        a = secret_new_copy("first secret value", 18);
        assert_non_null(a);
        assert_int_not_equal(a->pool_class, SECRET_POOL_NONE);
        where = a->data;
        a = secret_free(a);
        assert_true(all_zero(where, 18));
        b = secret_new(18);
        assert_non_null(b);
        assert_ptr_equal(b->data, where);
        assert_true(all_zero(b->data, 19));
        b = secret_free(b);

        /* Many at once come from distinct slots. */
        {
                Secret *many[2000];

                for (size_t i = 0; i < ELEMENTSOF(many); i++) {
                        many[i] = secret_new(100);
                        assert_non_null(many[i]);
                        memset(many[i]->data, (int) (i & 0xff) | 1, 100);
                }
                for (size_t i = 0; i < ELEMENTSOF(many); i++) {
                        assert_int_equal(many[i]->data[99], (uint8_t) ((i & 0xff) | 1));
                        assert_int_equal(many[i]->data[100], 0);
                }
                for (size_t i = 0; i < ELEMENTSOF(many); i++)
                        many[i] = secret_free(many[i]);
        }
}

static void test_wipe_on_fork(void **state) {
        _cleanup_(secret_freep) Secret *s = NULL;
        int status;
        pid_t pid;

        (void) state;
        s = secret_new_copy("parent-only", 11);
        assert_non_null(s);

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* The child sees the whole slot, header included, as zeros. */
                const Secret *c = s;
                _exit(all_zero((const void *) c, sizeof(Secret) + 12) ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);

        /* The parent keeps its copy. */
        assert_string_equal((const char *) s->data, "parent-only");
}

static void test_harden_process(void **state) {
        int status;
        pid_t pid;

        (void) state;
        /* In a child, so this test program stays dumpable; never mlockall() here. */
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct rlimit rl;

                if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1)
                        _exit(10);
                if (secret_harden_process() != 0)
                        _exit(11);
                if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
                        _exit(12);
                if (getrlimit(RLIMIT_CORE, &rl) < 0 || rl.rlim_cur != 0 || rl.rlim_max != 0)
                        _exit(13);
                /* Idempotent. */
                if (secret_harden_process() != 0)
                        _exit(14);
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_secret_new),     cmocka_unit_test(test_secret_copy),
                cmocka_unit_test(test_secret_free),    cmocka_unit_test(test_memeq_secure),
                cmocka_unit_test(test_erase_and_free), cmocka_unit_test(test_cleanup_erase),
                cmocka_unit_test(test_mapping_flags),  cmocka_unit_test(test_pool_reuse),
                cmocka_unit_test(test_wipe_on_fork),   cmocka_unit_test(test_harden_process),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
