/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "log.h"
#include "parse.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* stderr goes to a memfd while a test runs; the real one is kept aside, and put back by the
 * teardown even when an assertion failed in between. */
typedef struct Capture {
        int saved;
        int fd;
} Capture;

static Capture capture = {-EBADF, -EBADF};

static void capture_start(Capture *c) {
        fflush(stderr);
        c->saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        assert_true(c->saved >= 0);
        c->fd = memfd_create("test-log", MFD_CLOEXEC);
        assert_true(c->fd >= 0);
        assert_int_equal(dup2(c->fd, STDERR_FILENO), STDERR_FILENO);
}

/* What was written since the last call; the caller frees it. */
static char *capture_take(Capture *c) {
        struct stat st;
        char *s;

        fflush(stderr);
        assert_int_equal(fstat(c->fd, &st), 0);
        s = calloc(1, (size_t) st.st_size + 1);
        assert_non_null(s);
        assert_int_equal(pread(c->fd, s, (size_t) st.st_size, 0), st.st_size);
        /* stderr shares this file offset: rewind it too. */
        assert_int_equal(ftruncate(c->fd, 0), 0);
        assert_int_equal(lseek(c->fd, 0, SEEK_SET), 0);
        return s;
}

static void capture_stop(Capture *c) {
        fflush(stderr);
        if (c->saved >= 0)
                (void) dup2(c->saved, STDERR_FILENO);
        c->saved = safe_close(c->saved);
        c->fd = safe_close(c->fd);
}

static int setup(void **state) {
        (void) state;
        (void) unsetenv("JOURNAL_STREAM");
        log_setup(NULL, LOG_TARGET_STDERR);
        log_set_max_level(LOG_INFO);
        return 0;
}

static int teardown(void **state) {
        (void) state;
        capture_stop(&capture);
        (void) unsetenv("JOURNAL_STREAM");
        log_setup(NULL, LOG_TARGET_STDERR);
        return 0;
}

static void test_level_from_string(void **state) {
        /* clang-format off */
        static const struct {
                const char *s;
                int level;
        } names[] = {
                { "emerg",   LOG_EMERG },
                { "alert",   LOG_ALERT },
                { "crit",    LOG_CRIT },
                { "err",     LOG_ERR },
                { "error",   LOG_ERR },
                { "warning", LOG_WARNING },
                { "notice",  LOG_NOTICE },
                { "info",    LOG_INFO },
                { "debug",   LOG_DEBUG },
                { "DEBUG",   LOG_DEBUG },
                { "Info",    LOG_INFO },
        };
        static const char *const bad[] = {
                "", " ", "7", "0", "deb", "debugx", " debug", "debug ", "warn", "information", "fatal",
        };
        /* clang-format on */

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (log_level_from_string(names[i].s) != names[i].level)
                        fail_msg("'%s' is not %d", names[i].s, names[i].level);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (log_level_from_string(bad[i]) != -EINVAL)
                        fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(log_level_from_string(NULL), -EINVAL);
}

static void test_max_level(void **state) {
        (void) state;
        log_set_max_level(LOG_DEBUG);
        assert_int_equal(log_get_max_level(), LOG_DEBUG);
        log_set_max_level(LOG_WARNING);
        assert_int_equal(log_get_max_level(), LOG_WARNING);
}

static void test_errno_return(void **state) {
        Capture *c = &capture;

        (void) state;
        capture_start(c);
        /* Either sign in, negative out, whether or not the message is written. */
        assert_int_equal(log_error_errno(EIO, "x"), -EIO);
        assert_int_equal(log_error_errno(-EIO, "x"), -EIO);
        assert_int_equal(log_warning_errno(ENOKEY, "x"), -ENOKEY);
        assert_int_equal(log_notice_errno(-EACCES, "x"), -EACCES);
        assert_int_equal(log_info_errno(EBADMSG, "x"), -EBADMSG);
        assert_int_equal(log_debug_errno(E2BIG, "x"), -E2BIG); /* below the max level */
        assert_int_equal(log_debug_errno(-E2BIG, "x"), -E2BIG);
        assert_int_equal(log_error_errno(0, "x"), 0);
        assert_int_equal(log_oom(), -ENOMEM);
        assert_int_equal(log_internal(LOG_ERR, -EPERM, "f.c", 1, "fn", "x"), -EPERM);
        assert_int_equal(log_internal(LOG_DEBUG, EPERM, "f.c", 1, "fn", "x"), -EPERM);
        free(capture_take(c));
        capture_stop(c);
}

static void test_percent_m(void **state) {
        _cleanup_free_ char *out = NULL, *expect = NULL;
        Capture *c = &capture;

        (void) state;
        capture_start(c);
        errno = EPERM; /* not what %m must print */
        assert_int_equal(log_error_errno(ENOENT, "Failed to open '%s': %m", "/x"), -ENOENT);
        assert_int_equal(log_warning_errno(-EKEYEXPIRED, "key %d: %m, ignoring", 7), -EKEYEXPIRED);
        out = capture_take(c);
        capture_stop(c);

        assert_true(
                asprintf(
                        &expect, "Failed to open '/x': %s\nkey 7: %s, ignoring\n", strerror(ENOENT),
                        strerror(EKEYEXPIRED)) > 0);
        assert_string_equal(out, expect);
}

static void test_level_filter(void **state) {
        _cleanup_free_ char *out = NULL, *out2 = NULL;
        Capture *c = &capture;

        (void) state;
        capture_start(c);
        log_set_max_level(LOG_NOTICE);
        log_debug("debug %d", 1);
        log_info("info %d", 2);
        log_notice("notice %d", 3);
        log_warning("warning %d", 4);
        log_error("error %d", 5);
        (void) log_info_errno(EIO, "info errno %m");
        (void) log_internal(LOG_INFO, 0, __FILE__, __LINE__, __func__, "direct info");
        assert_int_equal(log_security(LOG_INFO, "0123456789abcdef0123456789abcdef", "security info"), 0);
        assert_int_equal(
                log_security(LOG_NOTICE, "0123456789abcdef0123456789abcdef", "security %s", "notice"), 0);
        out = capture_take(c);
        assert_string_equal(out, "notice 3\nwarning 4\nerror 5\nsecurity notice\n");

        log_set_max_level(LOG_DEBUG);
        log_debug("now %s", "visible");
        out2 = capture_take(c);
        capture_stop(c);
        assert_string_equal(out2, "now visible\n");
}

static void test_ident(void **state) {
        _cleanup_free_ char *out = NULL, *out2 = NULL;
        Capture *c = &capture;

        (void) state;
        capture_start(c);
        log_setup("keywardd", LOG_TARGET_STDERR);
        log_info("Listening on %s.", "127.0.0.1:9000");
        (void) log_error_errno(EACCES, "Denied: %m");
        out = capture_take(c);

        log_setup(NULL, LOG_TARGET_STDERR);
        log_info("no ident");
        out2 = capture_take(c);
        capture_stop(c);

        assert_true(strneq(out, "keywardd: Listening on 127.0.0.1:9000.\nkeywardd: Denied: ", 56));
        assert_non_null(strstr(out, strerror(EACCES)));
        assert_string_equal(out2, "no ident\n");
}

static void test_long_message(void **state) {
        _cleanup_free_ char *big = NULL, *out = NULL;
        Capture *c = &capture;

        (void) state;
        big = malloc(10000);
        assert_non_null(big);
        memset(big, 'L', 9999);
        big[9999] = '\0';

        capture_start(c);
        log_info("%s", big);
        out = capture_take(c);
        capture_stop(c);

        /* Truncated, but still one whole line. */
        assert_true(strlen(out) > 1000);
        assert_true(strlen(out) < 9999);
        assert_int_equal(out[strlen(out) - 1], '\n');
        assert_int_equal(strspn(out, "L"), strlen(out) - 1);
}

static void test_target_auto(void **state) {
        _cleanup_free_ char *out = NULL, *out2 = NULL;
        char env[64];
        struct stat st;
        Capture *c = &capture;

        (void) state;
        capture_start(c);

        /* JOURNAL_STREAM naming another file: stderr it is. */
        assert_int_equal(setenv("JOURNAL_STREAM", "1:1", 1), 0);
        log_setup("t", LOG_TARGET_AUTO);
        log_info("to stderr");
        out = capture_take(c);
        assert_string_equal(out, "t: to stderr\n");

        /* JOURNAL_STREAM naming our stderr: the journal, so nothing on stderr. */
        assert_int_equal(fstat(STDERR_FILENO, &st), 0);
        (void) snprintf(
                env, sizeof(env), "%llu:%llu", (unsigned long long) st.st_dev,
                (unsigned long long) st.st_ino);
        assert_int_equal(setenv("JOURNAL_STREAM", env, 1), 0);
        log_setup("t", LOG_TARGET_AUTO);
        log_info("to the journal");
        assert_int_equal(log_security(LOG_NOTICE, "0123456789abcdef0123456789abcdef", "event"), 0);
        out2 = capture_take(c);
        assert_string_equal(out2, "");

        (void) unsetenv("JOURNAL_STREAM");
        log_setup(NULL, LOG_TARGET_STDERR);
        capture_stop(c);
}

static void test_name_escape(void **state) {
        char buf[LOG_NAME_SIZE], *out;
        char long_name[1000];
        const char *e;

        (void) state;
        assert_string_equal(log_name_escape("k1_prod:db", buf), "k1_prod:db");
        assert_string_equal(log_name_escape(NULL, buf), "n/a");
        assert_string_equal(log_name_escape("", buf), "");
        /* A newline, a carriage return, an escape sequence, quotes, a backslash and UTF-8. */
        assert_string_equal(
                log_name_escape("a\nb\r\033[0m'\"\\\xc3\xa9", buf),
                "a\\x0ab\\x0d\\x1b[0m\\x27\\x22\\x5c\\xc3\\xa9");

        /* Too long: cut, marked, and never in the middle of an escape. */
        memset(long_name, 'a', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = '\0';
        e = log_name_escape(long_name, buf);
        assert_int_equal(strlen(e), LOG_NAME_SIZE - 1);
        assert_string_equal(e + LOG_NAME_SIZE - 4, "...");
        memset(long_name, '\n', sizeof(long_name) - 1);
        e = log_name_escape(long_name, buf);
        assert_true(strlen(e) < LOG_NAME_SIZE);
        assert_null(strchr(e, '\n'));
        assert_string_equal(e + strlen(e) - 7, "\\x0a...");
        /* Exactly as long as fits: not cut. */
        memset(long_name, 'b', LOG_NAME_SIZE - 1);
        long_name[LOG_NAME_SIZE - 1] = '\0';
        assert_string_equal(log_name_escape(long_name, buf), long_name);

        /* In a log call: one line, whatever the name holds. */
        capture_start(&capture);
        log_info("Refused key '%s'.", LOG_NAME("x\nFAKE: forged line"));
        out = capture_take(&capture);
        assert_string_equal(out, "Refused key 'x\\x0aFAKE: forged line'.\n");
        free(out);
        capture_stop(&capture);
}

static void test_ratelimit(void **state) {
        LogRateLimit rl = LOG_RATELIMIT_INIT(10 * USEC_PER_SEC, 3);
        uint64_t t = 5 * USEC_PER_SEC;
        unsigned logged = 0;

        (void) state;
        assert_int_equal(log_ratelimit_take(&rl), 0);
        /* 100 in one interval: the first 3 logged, 97 counted. */
        for (unsigned i = 0; i < 100; i++)
                logged += log_ratelimit_below(&rl, t + i);
        assert_int_equal(logged, 3);
        assert_int_equal(log_ratelimit_take(&rl), 97);
        assert_int_equal(log_ratelimit_take(&rl), 0);

        /* The next interval starts afresh. */
        assert_false(log_ratelimit_below(&rl, t + 10 * USEC_PER_SEC - 1));
        assert_true(log_ratelimit_below(&rl, t + 10 * USEC_PER_SEC));
        assert_true(log_ratelimit_below(&rl, t + 10 * USEC_PER_SEC));
        assert_true(log_ratelimit_below(&rl, t + 11 * USEC_PER_SEC));
        assert_false(log_ratelimit_below(&rl, t + 12 * USEC_PER_SEC));
        assert_int_equal(log_ratelimit_take(&rl), 2);

        /* A clock at 0 is a time like any other. */
        rl = LOG_RATELIMIT_INIT(10 * USEC_PER_SEC, 1);
        assert_true(log_ratelimit_below(&rl, 0));
        assert_false(log_ratelimit_below(&rl, 1));
        assert_int_equal(log_ratelimit_take(&rl), 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_level_from_string, setup, teardown),
                cmocka_unit_test_setup_teardown(test_max_level, setup, teardown),
                cmocka_unit_test_setup_teardown(test_errno_return, setup, teardown),
                cmocka_unit_test_setup_teardown(test_percent_m, setup, teardown),
                cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ident, setup, teardown),
                cmocka_unit_test_setup_teardown(test_long_message, setup, teardown),
                cmocka_unit_test_setup_teardown(test_target_auto, setup, teardown),
                cmocka_unit_test_setup_teardown(test_name_escape, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ratelimit, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
