/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "fileio.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "strv.h"
#include "tests.h"

typedef struct Fixture {
        char dir[64];
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));

        if (!f)
                return -1;
        (void) snprintf(f->dir, sizeof(f->dir), "/tmp/test-fileio.XXXXXX");
        if (!mkdtemp(f->dir)) {
                free(f);
                return -1;
        }
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        (void) tests_rm_rf(f->dir);
        free(f);
        return 0;
}

/* A path inside the fixture's directory, in a static buffer (one at a time). */
static const char *path_in(void **state, const char *name) {
        static char p[4][PATH_MAX];
        static unsigned k;
        Fixture *f = *state;

        k = (k + 1) % ELEMENTSOF(p);
        (void) snprintf(p[k], sizeof(p[k]), "%s/%s", f->dir, name);
        return p[k];
}

static void make_file(const char *path, const void *data, size_t n, mode_t mode) {
        int fd;

        (void) unlink(path);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, n), (ssize_t) n);
        assert_int_equal(fchmod(fd, mode), 0);
        assert_int_equal(close(fd), 0);
}

/* The names in a directory, in readdir() order, without "." and "..". */
static char **list_dir(const char *path) {
        char **l = NULL;
        struct dirent *de;
        DIR *d;

        d = opendir(path);
        assert_non_null(d);
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        assert_int_equal(strv_extend(&l, de->d_name), 0);
        closedir(d);
        return l;
}

static void test_read_full_file(void **state) {
        const char *p = path_in(state, "plain");
        char *data = NULL;
        size_t n = 0;

        make_file(p, "hello\nworld\n", 12, 0644);
        assert_int_equal(read_full_file(p, 4096, &data, &n), 0);
        assert_int_equal(n, 12);
        assert_string_equal(data, "hello\nworld\n");
        free(data);

        /* The size is optional; the limit is inclusive. */
        assert_int_equal(read_full_file(p, 12, &data, NULL), 0);
        assert_string_equal(data, "hello\nworld\n");
        free(data);

        data = (char *) "untouched";
        assert_int_equal(read_full_file(p, 11, &data, &n), -E2BIG);
        assert_int_equal(read_full_file(p, 0, &data, &n), -E2BIG);
        assert_string_equal(data, "untouched");
        assert_int_equal(n, 12);

        /* Binary content with NULs, length by size; always NUL-terminated. */
        make_file(p, "a\0b\0", 4, 0600);
        assert_int_equal(read_full_file(p, 100, &data, &n), 0);
        assert_int_equal(n, 4);
        assert_memory_equal(data, "a\0b\0", 5);
        free(data);

        /* Empty. */
        make_file(p, "", 0, 0600);
        assert_int_equal(read_full_file(p, 0, &data, &n), 0);
        assert_int_equal(n, 0);
        assert_string_equal(data, "");
        free(data);
}

static void test_read_full_file_large(void **state) {
        const char *p = path_in(state, "large");
        _cleanup_free_ char *big = NULL;
        char *data = NULL;
        size_t n = 0, size = 3 * 65536 + 17;

        big = malloc(size);
        assert_non_null(big);
        for (size_t i = 0; i < size; i++)
                big[i] = (char) ('a' + i % 23);
        make_file(p, big, size, 0600);

        assert_int_equal(read_full_file(p, size, &data, &n), 0);
        assert_int_equal(n, size);
        assert_memory_equal(data, big, size);
        assert_int_equal(data[size], '\0');
        free(data);

        assert_int_equal(read_full_file(p, size - 1, &data, &n), -E2BIG);
}

static void test_read_full_file_errors(void **state) {
        const char *target = path_in(state, "target"), *link = path_in(state, "link"),
                   *fifo = path_in(state, "fifo");
        Fixture *f = *state;
        char *data = NULL;
        size_t n = 0;

        assert_int_equal(read_full_file(path_in(state, "missing"), 100, &data, &n), -ENOENT);
        assert_int_equal(read_full_file("/nonexistent-dir/x", 100, &data, &n), -ENOENT);

        /* Only regular files. */
        assert_int_equal(read_full_file(f->dir, 100, &data, &n), -EBADFD);
        assert_int_equal(read_full_file("/dev/null", 100, &data, &n), -EBADFD);

        /* A FIFO is refused at once: opening it must not wait for a writer. */
        assert_int_equal(mkfifo(fifo, 0600), 0);
        alarm(10);
        assert_int_equal(read_full_file(fifo, 100, &data, &n), -EBADFD);
        alarm(0);

        /* A symlink is never followed, even to a good file. */
        make_file(target, "x", 1, 0600);
        assert_int_equal(symlink(target, link), 0);
        assert_int_equal(read_full_file(link, 100, &data, &n), -ELOOP);

        assert_null(data);
        assert_int_equal(n, 0);
}

static void test_read_secret_file(void **state) {
        /* clang-format off */
        static const struct {
                mode_t mode;
                int r;
        } modes[] = {
                { 0600, 0 },
                { 0400, 0 },
                { 0700, 0 },
                { 0620, 0 },
                { 0644, -EPERM },
                { 0640, -EPERM },
                { 0604, -EPERM },
                { 0440, -EPERM },
                { 0404, -EPERM },
                { 0660, -EPERM },
                { 0666, -EPERM },
        };
        /* clang-format on */
        const char *p = path_in(state, "secret");

        for (size_t i = 0; i < ELEMENTSOF(modes); i++) {
                _cleanup_(secret_freep) Secret *s = NULL;

                make_file(p, "s3cr3t-bytes", 12, modes[i].mode);
                if (read_secret_file(p, 4096, &s) != modes[i].r)
                        fail_msg("mode %04o: expected %d", (unsigned) modes[i].mode, modes[i].r);
                if (modes[i].r < 0) {
                        assert_null(s);
                        continue;
                }
                assert_non_null(s);
                assert_int_equal(s->size, 12);
                assert_string_equal((const char *) s->data, "s3cr3t-bytes");
        }
}

static void test_read_secret_file_errors(void **state) {
        const char *p = path_in(state, "secret"), *link = path_in(state, "secret-link");
        _cleanup_(secret_freep) Secret *s = NULL;
        Fixture *f = *state;

        make_file(p, "0123456789", 10, 0600);

        /* Limit, inclusive. */
        assert_int_equal(read_secret_file(p, 9, &s), -E2BIG);
        assert_null(s);
        assert_int_equal(read_secret_file(p, 10, &s), 0);
        assert_non_null(s);
        assert_int_equal(s->size, 10);
        assert_memory_equal(s->data, "0123456789", 11);
        s = secret_free(s);

        /* Empty file. */
        make_file(p, "", 0, 0400);
        assert_int_equal(read_secret_file(p, 10, &s), 0);
        assert_int_equal(s->size, 0);
        assert_int_equal(s->data[0], '\0');
        s = secret_free(s);

        /* No symlinks, even to a well-protected file. */
        make_file(p, "key", 3, 0600);
        assert_int_equal(symlink(p, link), 0);
        assert_int_equal(read_secret_file(link, 10, &s), -ELOOP);
        assert_null(s);

        assert_int_equal(read_secret_file(path_in(state, "missing"), 10, &s), -ENOENT);
        assert_int_equal(read_secret_file(f->dir, 10, &s), -EBADFD);
        assert_int_equal(read_secret_file("/dev/null", 10, &s), -EBADFD);
        assert_null(s);
}

static void check_file(const char *path, const void *data, size_t n, mode_t mode) {
        struct stat st;
        char *got = NULL;
        size_t l;

        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        if ((st.st_mode & 07777) != mode)
                fail_msg("%s: mode %04o, expected %04o", path, st.st_mode & 07777, (unsigned) mode);
        assert_int_equal(read_full_file(path, n + 1, &got, &l), 0);
        assert_int_equal(l, n);
        assert_memory_equal(got, data, n);
        free(got);
}

static void test_write_file_atomic(void **state) {
        _cleanup_strv_free_ char **l = NULL;
        const char *p = path_in(state, "out");
        Fixture *f = *state;
        mode_t saved;

        saved = umask(077);
        assert_int_equal(write_file_atomic(p, "first", 5, 0644), 0);
        check_file(p, "first", 5, 0644);

        assert_int_equal(write_file_atomic(p, "mode 0751", 9, 0751), 0);
        check_file(p, "mode 0751", 9, 0751);

        (void) umask(022);
        assert_int_equal(write_file_atomic(p, "second", 6, 0600), 0);
        check_file(p, "second", 6, 0600);

        assert_int_equal(write_file_atomic(p, "group-writable", 14, 0664), 0);
        check_file(p, "group-writable", 14, 0664);

        assert_int_equal(write_file_atomic(p, "", 0, 0400), 0);
        check_file(p, "", 0, 0400);

        /* Without the fsyncs: the same replacement, the same mode. */
        assert_int_equal(write_file_replace(p, "not synced", 10, 0644, false), 0);
        check_file(p, "not synced", 10, 0644);
        (void) umask(saved);

        /* Nothing but the target is left in the directory. */
        l = list_dir(f->dir);
        assert_int_equal(strv_length(l), 1);
        assert_string_equal(l[0], "out");
}

static void test_write_file_atomic_replaces(void **state) {
        _cleanup_strv_free_ char **l = NULL;
        const char *p = path_in(state, "cache");
        _cleanup_close_ int fd = -EBADF;
        Fixture *f = *state;
        struct stat before, after;
        char buf[16] = {};

        make_file(p, "old content", 11, 0600);
        fd = open(p, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &before), 0);

        assert_int_equal(write_file_atomic(p, "new", 3, 0600), 0);
        check_file(p, "new", 3, 0600);

        /* A new inode took the name; a reader of the old file still sees it whole. */
        assert_int_equal(stat(p, &after), 0);
        assert_true(before.st_ino != after.st_ino);
        assert_int_equal(read(fd, buf, sizeof(buf)), 11);
        assert_string_equal(buf, "old content");

        l = list_dir(f->dir);
        assert_int_equal(strv_length(l), 1);
        assert_string_equal(l[0], "cache");
}

static void test_write_file_atomic_large(void **state) {
        const char *p = path_in(state, "large");
        _cleanup_free_ uint8_t *big = NULL;
        size_t size = 1024 * 1024 + 3;

        big = malloc(size);
        assert_non_null(big);
        for (size_t i = 0; i < size; i++)
                big[i] = (uint8_t) (i * 31 + 7);
        assert_int_equal(write_file_atomic(p, big, size, 0600), 0);
        check_file(p, big, size, 0600);
}

static void test_write_file_atomic_symlink(void **state) {
        const char *real = path_in(state, "real"), *link = path_in(state, "link");
        struct stat st;

        /* The name is replaced; a symlink there is not followed. */
        make_file(real, "real", 4, 0600);
        assert_int_equal(symlink("real", link), 0);
        assert_int_equal(write_file_atomic(link, "replaced", 8, 0600), 0);
        assert_int_equal(lstat(link, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        check_file(link, "replaced", 8, 0600);
        check_file(real, "real", 4, 0600);
}

static void test_write_file_atomic_relative(void **state) {
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_close_ int cwd = -EBADF;
        Fixture *f = *state;

        /* A bare file name lands in the current directory. */
        cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(cwd >= 0);
        assert_int_equal(chdir(f->dir), 0);
        assert_int_equal(write_file_atomic("rel", "relative", 8, 0640), 0);
        assert_int_equal(fchdir(cwd), 0);

        check_file(path_in(state, "rel"), "relative", 8, 0640);
        l = list_dir(f->dir);
        assert_int_equal(strv_length(l), 1);
        assert_string_equal(l[0], "rel");
}

static void test_write_file_atomic_failure(void **state) {
        _cleanup_strv_free_ char **l = NULL, **inner = NULL;
        const char *d = path_in(state, "target"), *inside = path_in(state, "target/keep");
        Fixture *f = *state;
        int r;

        /* Renaming over a non-empty directory fails; permissions would not stop root. */
        assert_int_equal(mkdir(d, 0700), 0);
        make_file(inside, "keep", 4, 0600);
        r = write_file_atomic(d, "data", 4, 0600);
        assert_true(r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST);

        /* The directory and its content are untouched, no temporary file is left. */
        check_file(inside, "keep", 4, 0600);
        l = list_dir(f->dir);
        assert_int_equal(strv_length(l), 1);
        assert_string_equal(l[0], "target");
        inner = list_dir(d);
        assert_int_equal(strv_length(inner), 1);
        assert_string_equal(inner[0], "keep");

        /* A missing directory, an empty name. */
        assert_int_equal(write_file_atomic(path_in(state, "nodir/file"), "x", 1, 0600), -ENOENT);
        assert_int_equal(write_file_atomic(path_in(state, ""), "x", 1, 0600), -EINVAL);
        assert_int_equal(write_file_atomic(path_in(state, "target/"), "x", 1, 0600), -EINVAL);
        assert_int_equal(write_file_atomic("", "x", 1, 0600), -EINVAL);

        strv_free(l);
        l = list_dir(f->dir);
        assert_int_equal(strv_length(l), 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_read_full_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_full_file_large, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_full_file_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_secret_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_secret_file_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_file_atomic, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_file_atomic_replaces, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_file_atomic_large, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_file_atomic_symlink, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_file_atomic_relative, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_file_atomic_failure, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
