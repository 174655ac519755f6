/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* By path: automake's -I$(top_builddir) comes first and holds autoconf's config.h. */
#include "config.h"
#include "parse.h"
#include "strv.h"

typedef struct Settings {
        char *listen;
        unsigned workers;
        size_t body_max;
        uint64_t timeout;
        bool tls;
        char **servers;
        bool verbose;
        char *db;
} Settings;

/* clang-format off */
static const ConfigItem items[] = {
        { "server", "listen",   config_parse_string,   offsetof(Settings, listen),   "Address to listen on",   "ADDR:PORT" },
        { "server", "workers",  config_parse_unsigned, offsetof(Settings, workers),  "Worker threads",         "N"         },
        { "server", "body-max", config_parse_size,     offsetof(Settings, body_max), "Largest request body",   "BYTES"     },
        { "server", "timeout",  config_parse_sec,      offsetof(Settings, timeout),  "Request timeout",        "DURATION"  },
        { "server", "tls",      config_parse_bool,     offsetof(Settings, tls),      "Serve TLS",              "BOOL"      },
        { "agent",  "server",   config_parse_strv,     offsetof(Settings, servers),  "Server URL (repeat)",    "URL"       },
        { "agent",  "verbose",  config_parse_bool,     offsetof(Settings, verbose),  "Log more",               NULL        },
        { NULL,     "db",       config_parse_string,   offsetof(Settings, db),       "Database",               "PATH"      },
};
/* clang-format on */

static void settings_done(Settings *s) {
        free(s->listen);
        free(s->db);
        strv_free(s->servers);
        *s = (Settings){};
}

static char tmpdir[] = "/tmp/test-config-XXXXXX";

static int setup(_unused_ void **state) {
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(_unused_ void **state) {
        DIR *d;

        /* Only files this test made, in its own mkdtemp() directory. */
        d = opendir(tmpdir);
        if (!d)
                return -1;
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_name[0] != '.')
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
        return rmdir(tmpdir);
}

/* Write text to tmpdir/name and return the path (static buffer, one at a time per name). */
static const char *write_conf(const char *name, const char *text) {
        static char paths[4][256];
        static unsigned next;
        char *path = paths[next++ % 4];
        FILE *f;

        (void) snprintf(path, 256, "%s/%s", tmpdir, name);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
        assert_int_equal(fclose(f), 0);
        return path;
}

/* Run code with fd 1 or 2 going to a memfd; returns what was written (malloc()ed). */
typedef struct Capture {
        int fd, target, saved;
} Capture;

static void capture_begin(Capture *c, int target) {
        fflush(stdout);
        fflush(stderr);
        c->target = target;
        c->fd = memfd_create("capture", MFD_CLOEXEC);
        assert_true(c->fd >= 0);
        c->saved = fcntl(target, F_DUPFD_CLOEXEC, 3);
        assert_true(c->saved >= 0);
        assert_int_equal(dup2(c->fd, target), target);
}

static char *capture_end(Capture *c) {
        char *buf;
        ssize_t n;
        off_t size;

        fflush(stdout);
        fflush(stderr);
        assert_int_equal(dup2(c->saved, c->target), c->target);
        close(c->saved);
        size = lseek(c->fd, 0, SEEK_END);
        assert_true(size >= 0);
        buf = calloc(1, (size_t) size + 1);
        assert_non_null(buf);
        n = pread(c->fd, buf, (size_t) size, 0);
        assert_int_equal(n, size);
        close(c->fd);
        return buf;
}

static void *mfree(void *p) {
        free(p);
        return NULL;
}

static void assert_contains(const char *haystack, const char *needle) {
        if (!strstr(haystack, needle))
                fail_msg("'%s' not found in '%s'", needle, haystack);
}

static void assert_strv(char **l, const char *const *expected, size_t n) {
        assert_int_equal(strv_length(l), n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(l[i], expected[i]);
}

static void test_parsers(_unused_ void **state) {
        Settings s = {};
        char **l = NULL;

        assert_int_equal(config_parse_string(items, "a", &s.listen), 0);
        assert_int_equal(config_parse_string(items, "b", &s.listen), 0); /* frees "a" */
        assert_string_equal(s.listen, "b");
        assert_int_equal(config_parse_string(items, "", &s.listen), 0);
        assert_null(s.listen);

        assert_int_equal(config_parse_strv(items, "x", &l), 0);
        assert_int_equal(config_parse_strv(items, "y", &l), 0);
        assert_strv(l, (const char *[]){"x", "y"}, 2);
        assert_int_equal(config_parse_strv(items, "", &l), 0);
        assert_null(l);

        /* clang-format off */
        static const struct { const char *s; int r; bool v; } bools[] = {
                { "yes", 0, true }, { "no", 0, false }, { "true", 0, true }, { "false", 0, false },
                { "1", 0, true }, { "0", 0, false }, { "on", 0, true }, { "off", 0, false },
                { "", -EINVAL, false }, { "2", -EINVAL, false }, { "yes ", -EINVAL, false }, { "nope", -EINVAL, false },
        };
        static const struct { const char *s; int r; unsigned v; } uints[] = {
                { "0", 0, 0 }, { "42", 0, 42 }, { "4294967295", 0, 4294967295u },
                { "4294967296", -ERANGE, 0 }, { "-1", -EINVAL, 0 }, { "1x", -EINVAL, 0 }, { "", -EINVAL, 0 },
                { " 1", -EINVAL, 0 }, { "0x10", -EINVAL, 0 },
        };
        static const struct { const char *s; int r; size_t v; } sizes[] = {
                { "0", 0, 0 }, { "10", 0, 10 }, { "1K", 0, 1024 }, { "2M", 0, 2 * 1024 * 1024 },
                { "3G", 0, (size_t) 3 << 30 }, { "1X", -EINVAL, 0 }, { "K", -EINVAL, 0 }, { "", -EINVAL, 0 },
                { "-1K", -EINVAL, 0 }, { "99999999999999999999", -ERANGE, 0 }, { "17179869184G", -ERANGE, 0 },
        };
        static const struct { const char *s; int r; uint64_t v; } secs[] = {
                { "30", 0, 30 * USEC_PER_SEC }, { "0", 0, 0 }, { "500ms", 0, 500 * USEC_PER_MSEC },
                { "15s", 0, 15 * USEC_PER_SEC }, { "5m", 0, 300 * USEC_PER_SEC }, { "1h", 0, 3600 * USEC_PER_SEC },
                { "2d", 0, 2 * 86400 * USEC_PER_SEC }, { "1h30m", 0, 5400 * USEC_PER_SEC },
                { "", -EINVAL, 0 }, { "s", -EINVAL, 0 }, { "5x", -EINVAL, 0 }, { "-5s", -EINVAL, 0 },
                { "99999999999999999999d", -ERANGE, 0 },
        };
        /* clang-format on */

        FOREACH_ARRAY(t, bools, ELEMENTSOF(bools)) {
                bool b = !t->v;

                assert_int_equal(config_parse_bool(items, t->s, &b), t->r);
                if (t->r == 0)
                        assert_int_equal(b, t->v);
                else
                        assert_int_equal(b, !t->v); /* untouched */
        }
        FOREACH_ARRAY(t, uints, ELEMENTSOF(uints)) {
                unsigned u = 7;

                assert_int_equal(config_parse_unsigned(items, t->s, &u), t->r);
                assert_int_equal(u, t->r == 0 ? t->v : 7);
        }
        FOREACH_ARRAY(t, sizes, ELEMENTSOF(sizes)) {
                size_t z = 7;

                assert_int_equal(config_parse_size(items, t->s, &z), t->r);
                assert_int_equal(z, t->r == 0 ? t->v : 7);
        }
        FOREACH_ARRAY(t, secs, ELEMENTSOF(secs)) {
                uint64_t u = 7;

                assert_int_equal(config_parse_sec(items, t->s, &u), t->r);
                assert_int_equal(u, t->r == 0 ? t->v : 7);
        }
}

#define FULL_CONF                            \
        "; a comment\n"                      \
        "# another one\n"                    \
        "db = /var/lib/keyward/keys.db\n"    \
        "\n"                                 \
        "[server]\n"                         \
        "listen = 127.0.0.1:9000\n"          \
        "workers=8\n"                        \
        "  body-max   =   4M  \n"            \
        "timeout = 1m ; inline comment\n"    \
        "tls = yes\r\n"                      \
        "[agent]\n"                          \
        "server = https://a.example:9000/\n" \
        "server: https://b.example:9000/\n"  \
        "verbose = on\n"

static void assert_full(const Settings *s) {
        assert_string_equal(s->db, "/var/lib/keyward/keys.db");
        assert_string_equal(s->listen, "127.0.0.1:9000");
        assert_int_equal(s->workers, 8);
        assert_int_equal(s->body_max, 4 * 1024 * 1024);
        assert_int_equal(s->timeout, 60 * USEC_PER_SEC);
        assert_true(s->tls);
        assert_strv(s->servers, (const char *[]){"https://a.example:9000/", "https://b.example:9000/"}, 2);
        assert_true(s->verbose);
}

static void test_load_file(_unused_ void **state) {
        Settings s = {.listen = strdup("default")};
        const char *path;

        path = write_conf("full.conf", FULL_CONF);
        assert_int_equal(config_load_file(path, items, ELEMENTSOF(items), &s), 0);
        assert_full(&s);
        settings_done(&s);

        assert_int_equal(
                config_load_string(FULL_CONF, strlen(FULL_CONF), "mem", items, ELEMENTSOF(items), &s), 0);
        assert_full(&s);
        settings_done(&s);

        /* Without a trailing newline, and empty. */
        assert_int_equal(
                config_load_string("[server]\nworkers = 3", 20, "mem", items, ELEMENTSOF(items), &s), 0);
        assert_int_equal(s.workers, 3);
        assert_int_equal(config_load_string("", 0, "mem", items, ELEMENTSOF(items), &s), 0);
        assert_int_equal(s.workers, 3);
        settings_done(&s);
}

/* Load text as a file; expect r and a message containing want (with the path in front). */
static void load_fails(const char *text, int r, const char *want) {
        _cleanup_free_ char *out = NULL;
        char expected[512];
        Settings s = {};
        const char *path;
        Capture c;

        path = write_conf("bad.conf", text);
        capture_begin(&c, STDERR_FILENO);
        assert_int_equal(config_load_file(path, items, ELEMENTSOF(items), &s), r);
        out = capture_end(&c);
        (void) snprintf(expected, sizeof(expected), "%s%s", path, want);
        assert_contains(out, expected);
        settings_done(&s);
}

static void test_load_errors(_unused_ void **state) {
        Settings s = {};
        _cleanup_free_ char *out = NULL, *long_line = NULL;
        Capture c;

        load_fails(
                "[server]\nlisten = x\nnope = 1\n", -EINVAL, ":3: Unknown key 'nope' in section [server].");
        load_fails("[server]\nlisten = x\n[sever]\nlisten = y\n", -EINVAL, ":4: Unknown section [sever].");
        load_fails("listen = x\n", -EINVAL, ":1: Unknown key 'listen' in section [].");
        load_fails(
                "[server]\nworkers = many\n", -EINVAL,
                ":2: Invalid value for 'workers' in section [server]: 'many'");
        load_fails("[server]\n\nbody-max = 99999999999G\n", -ERANGE, ":3: Invalid value for 'body-max'");
        load_fails("[agent]\nverbose = maybe\n", -EINVAL, ":2: Invalid value for 'verbose'");
        load_fails("[server]\ntimeout = 5 minutes\n", -EINVAL, ":2: Invalid value for 'timeout'");
        /* A bad value says what a good one is: the metavar, or "yes or no" for a flag. */
        load_fails(
                "[server]\nworkers = many\n", -EINVAL,
                ":2: Invalid value for 'workers' in section [server]: 'many': Invalid argument. Expected N.");
        load_fails(
                "[agent]\nverbose = maybe\n", -EINVAL,
                ":2: Invalid value for 'verbose' in section [agent]: 'maybe': Invalid argument. Expected yes or no.");
        load_fails("[server]\nthis is not ini\n", -EINVAL, ":2: Syntax error.");
        load_fails("[server\nworkers = 1\n", -EINVAL, ":1: Syntax error.");
        /* No multi-line values: an indented line is a line of its own. */
        load_fails("[server]\nlisten = a\n  b\n", -EINVAL, ":3: Syntax error.");

        /* Every error is reported, the first one returned; good lines still apply. */
        capture_begin(&c, STDERR_FILENO);
        assert_int_equal(
                config_load_file(
                        write_conf("multi.conf", "[server]\nworkers = x\nnope = 1\nlisten = ok\n"), items,
                        ELEMENTSOF(items), &s),
                -EINVAL);
        out = capture_end(&c);
        assert_contains(out, "multi.conf:2: Invalid value for 'workers'");
        assert_contains(out, "multi.conf:3: Unknown key 'nope'");
        assert_string_equal(s.listen, "ok");
        settings_done(&s);

        /* libinih would split a long line; we refuse it, and keep counting lines right. */
        long_line = malloc(CONFIG_LINE_MAX + 64);
        assert_non_null(long_line);
        (void) snprintf(
                long_line, CONFIG_LINE_MAX + 64, "[server]\nlisten = %0*d\nnope = 1\n", CONFIG_LINE_MAX, 0);
        load_fails(long_line, -E2BIG, ":2: Line is longer than");
        load_fails(long_line, -E2BIG, ":3: Unknown key 'nope'");
        /* The longest line that fits is fine. */
        (void) snprintf(
                long_line, CONFIG_LINE_MAX + 64, "[server]\nlisten = %0*d\n", CONFIG_LINE_MAX - 11, 0);
        assert_int_equal(
                config_load_file(write_conf("max.conf", long_line), items, ELEMENTSOF(items), &s), 0);
        assert_int_equal(strlen(s.listen), CONFIG_LINE_MAX - 11);
        settings_done(&s);

        /* A NUL byte would cut the line short. */
        capture_begin(&c, STDERR_FILENO);
        assert_int_equal(
                config_load_string("[server]\nlisten = a\0b\n", 22, "nul", items, ELEMENTSOF(items), &s),
                -EBADMSG);
        free(out);
        out = capture_end(&c);
        assert_contains(out, "nul:2: Line contains a NUL byte.");
        assert_null(s.listen);

        /* Not a file, or an endless one. */
        capture_begin(&c, STDERR_FILENO);
        assert_int_equal(config_load_file(tmpdir, items, ELEMENTSOF(items), &s), -EISDIR);
        assert_int_equal(config_load_file("/dev/zero", items, ELEMENTSOF(items), &s), -E2BIG);
        free(out);
        out = capture_end(&c);
        assert_contains(out, ": Failed to read: Is a directory");
        assert_contains(out, "/dev/zero: File is larger than 1048576 bytes.");

        /* Missing file: -ENOENT, quietly (the caller decides whether that matters). */
        assert_int_equal(
                config_load_file("/nonexistent/keyward.conf", items, ELEMENTSOF(items), &s), -ENOENT);
}

static void test_set(_unused_ void **state) {
        Settings s = {};

        assert_int_equal(config_set(items, ELEMENTSOF(items), &s, "workers", "5"), 0);
        assert_int_equal(s.workers, 5);
        assert_int_equal(config_set(items, ELEMENTSOF(items), &s, "db", "/x"), 0);
        assert_string_equal(s.db, "/x");
        assert_int_equal(config_set(items, ELEMENTSOF(items), &s, "workers", "x"), -EINVAL);
        assert_int_equal(config_set(items, ELEMENTSOF(items), &s, "nope", "1"), -ENOENT);
        settings_done(&s);
}

/* Run config_parse_argv over a NULL-terminated list of arguments. */
#define ARGV(...) ((char *[]){"test", __VA_ARGS__, NULL})
static int parse(char **argv, Settings *s, char ***ret_args) {
        int argc = 0;

        while (argv[argc])
                argc++;
        return config_parse_argv(argc, argv, items, ELEMENTSOF(items), s, ret_args);
}

static void test_argv(_unused_ void **state) {
        _cleanup_free_ char **args = NULL;
        Settings s = {};

        assert_int_equal(
                parse(ARGV("--listen", "[::1]:443", "--workers=4", "--body-max", "1K", "--timeout=250ms",
                           "--tls=no", "--verbose", "--db="),
                      &s, &args),
                0);
        assert_string_equal(s.listen, "[::1]:443");
        assert_int_equal(s.workers, 4);
        assert_int_equal(s.body_max, 1024);
        assert_int_equal(s.timeout, 250 * USEC_PER_MSEC);
        assert_false(s.tls);
        assert_true(s.verbose);
        assert_null(s.db);
        assert_non_null(args);
        assert_null(args[0]);
        args = mfree(args);
        settings_done(&s);

        /* A flag without value takes one only after '='. */
        assert_int_equal(parse(ARGV("--verbose=no"), &s, NULL), 0);
        assert_false(s.verbose);
        assert_int_equal(parse(ARGV("--verbose", "yes"), &s, &args), 0);
        assert_true(s.verbose);
        assert_strv(args, (const char *[]){"yes"}, 1);
        settings_done(&s);

        /* No arguments at all. */
        assert_int_equal(
                config_parse_argv(1, (char *[]){"test", NULL}, items, ELEMENTSOF(items), &s, NULL), 0);
        args = mfree(args);
        assert_int_equal(config_parse_argv(0, (char *[]){NULL}, items, ELEMENTSOF(items), &s, &args), 0);
        assert_non_null(args);
        assert_null(args[0]);
}

static void test_argv_overrides_file(_unused_ void **state) {
        _cleanup_free_ char **args = NULL;
        const char *path;
        Settings s = {};

        path = write_conf("argv.conf", FULL_CONF);

        /* File only. */
        assert_int_equal(parse(ARGV("--config", (char *) path), &s, NULL), 0);
        assert_full(&s);
        settings_done(&s);

        /* Flags win, wherever --config stands; the rest comes from the file. */
        assert_int_equal(
                parse(ARGV("--listen=flag:1", "--workers", "2", "--config", (char *) path), &s, NULL), 0);
        assert_string_equal(s.listen, "flag:1");
        assert_int_equal(s.workers, 2);
        assert_int_equal(s.body_max, 4 * 1024 * 1024);
        assert_string_equal(s.db, "/var/lib/keyward/keys.db");
        settings_done(&s);

        assert_int_equal(
                parse(ARGV("--config="
                           "/dev/null",
                           "--workers", "2"),
                      &s, NULL),
                0);
        assert_int_equal(s.workers, 2);
        settings_done(&s);

        assert_int_equal(parse(ARGV("--workers", "2", "--config", (char *) path, "--tls=0"), &s, NULL), 0);
        assert_int_equal(s.workers, 2);
        assert_false(s.tls);
        assert_string_equal(s.listen, "127.0.0.1:9000");
        settings_done(&s);

        /* An empty value undoes the file's setting. */
        assert_int_equal(parse(ARGV("--db=", "--config", (char *) path), &s, NULL), 0);
        assert_null(s.db);
        settings_done(&s);

        /* A list flag replaces the file's list, however many times it is given... */
        assert_int_equal(
                parse(ARGV("--server=https://z/", "--config", (char *) path, "--server", "https://w/"), &s,
                      NULL),
                0);
        assert_strv(s.servers, (const char *[]){"https://z/", "https://w/"}, 2);
        settings_done(&s);
        /* ...and the file's list stays when no flag names it. */
        assert_int_equal(parse(ARGV("--config", (char *) path), &s, NULL), 0);
        assert_strv(s.servers, (const char *[]){"https://a.example:9000/", "https://b.example:9000/"}, 2);
        settings_done(&s);
        /* An empty list flag empties it. */
        assert_int_equal(parse(ARGV("--config", (char *) path, "--server="), &s, NULL), 0);
        assert_null(s.servers);
        settings_done(&s);

        /* Two config files: the second on top of the first, lists appended. */
        assert_int_equal(
                parse(ARGV("--config", (char *) path, "--config",
                           (char *) write_conf(
                                   "second.conf", "[server]\nworkers = 9\n[agent]\nserver = https://c/\n")),
                      &s, &args),
                0);
        assert_int_equal(s.workers, 9);
        assert_strv(
                s.servers,
                (const char *[]){"https://a.example:9000/", "https://b.example:9000/", "https://c/"}, 3);
        settings_done(&s);
}

static void test_argv_positional(_unused_ void **state) {
        _cleanup_free_ char **args = NULL;
        _cleanup_free_ char *out = NULL;
        Settings s = {};
        Capture c;

        assert_int_equal(
                parse(ARGV("get", "--workers", "3", "my:key", "--", "--listen", "-"), &s, &args), 0);
        assert_int_equal(s.workers, 3);
        assert_null(s.listen);
        assert_strv(args, (const char *[]){"get", "my:key", "--listen", "-"}, 4);

        /* Without ret_args a positional argument is a usage error. */
        capture_begin(&c, STDERR_FILENO);
        assert_int_equal(parse(ARGV("--workers", "3", "stray"), &s, NULL), -EINVAL);
        out = capture_end(&c);
        assert_contains(out, "Unexpected argument 'stray'.");
}

static void argv_fails(char **argv, int r, const char *want) {
        _cleanup_free_ char *out = NULL;
        _cleanup_free_ char **args = NULL;
        Settings s = {};
        Capture c;

        capture_begin(&c, STDERR_FILENO);
        assert_int_equal(parse(argv, &s, &args), r);
        out = capture_end(&c);
        assert_contains(out, want);
        assert_null(args); /* not written on failure */
        settings_done(&s);
}

static void test_argv_errors(_unused_ void **state) {
        argv_fails(ARGV("--workers", "1", "--listen"), -EINVAL, "Option '--listen' needs a value.");
        argv_fails(ARGV("--config"), -EINVAL, "Option '--config' needs a value.");
        argv_fails(ARGV("--nope", "1"), -EINVAL, "Unknown option '--nope'.");
        argv_fails(ARGV("--nope=1"), -EINVAL, "Unknown option '--nope=1'.");
        argv_fails(ARGV("-x"), -EINVAL, "Unknown option '-x'.");
        argv_fails(ARGV("--help=1"), -EINVAL, "Option '--help=1' takes no value.");
        argv_fails(ARGV("--workers=x"), -EINVAL, "Invalid value for --workers: 'x'");
        argv_fails(ARGV("--tls=maybe"), -EINVAL, "Invalid value for --tls: 'maybe'");
        argv_fails(ARGV("--verbose="), -EINVAL, "Invalid value for --verbose: ''");
        argv_fails(
                ARGV("--workers=x"), -EINVAL,
                "Invalid value for --workers: 'x': Invalid argument. Expected N.");
        argv_fails(
                ARGV("--config", "/nonexistent/k.conf"), -ENOENT,
                "Failed to open config file '/nonexistent/k.conf'");
        argv_fails(
                ARGV("--config", (char *) write_conf("bad-argv.conf", "[server]\nworkers = -1\n")), -EINVAL,
                "bad-argv.conf:2: Invalid value for 'workers'");
        /* A usage error is found before any file is read. */
        argv_fails(ARGV("--config", "/nonexistent/k.conf", "--nope"), -EINVAL, "Unknown option '--nope'.");
}

static void test_help(_unused_ void **state) {
        _cleanup_free_ char *out = NULL;
        Settings s = {};
        Capture c;

        capture_begin(&c, STDOUT_FILENO);
        assert_int_equal(parse(ARGV("--workers=x", "--help", "--config", "/nonexistent"), &s, NULL), 1);
        out = capture_end(&c);
        assert_contains(out, "  --listen ADDR:PORT  Address to listen on\n");
        assert_contains(out, "  --verbose           Log more\n");
        assert_contains(out, "  --config FILE       ");
        assert_contains(out, "  --help              Show this help\n");
        /* Nothing was applied or loaded. */
        assert_int_equal(s.workers, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parsers),
                cmocka_unit_test(test_load_file),
                cmocka_unit_test(test_load_errors),
                cmocka_unit_test(test_set),
                cmocka_unit_test(test_argv),
                cmocka_unit_test(test_argv_overrides_file),
                cmocka_unit_test(test_argv_positional),
                cmocka_unit_test(test_argv_errors),
                cmocka_unit_test(test_help),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
