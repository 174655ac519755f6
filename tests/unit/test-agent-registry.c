/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "agent-registry.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strv.h"

#include "strv.h"

#define LIST(...) ((char *[]){__VA_ARGS__, NULL})

static void test_on_change(void **state) {
        assert_string_equal(on_change_to_string(ON_CHANGE_NONE), "none");
        assert_string_equal(on_change_to_string(ON_CHANGE_RESTART), "restart");
        assert_string_equal(on_change_to_string(ON_CHANGE_RELOAD_OR_RESTART), "reload-or-restart");
        assert_string_equal(on_change_to_string(ON_CHANGE_RELOAD), "reload");
        assert_null(on_change_to_string(_ON_CHANGE_MAX));
        assert_null(on_change_to_string(_ON_CHANGE_INVALID));
        assert_int_equal(on_change_from_string("restart"), ON_CHANGE_RESTART);
        assert_int_equal(on_change_from_string("reload-or-restart"), ON_CHANGE_RELOAD_OR_RESTART);
        assert_int_equal(on_change_from_string("reload"), ON_CHANGE_RELOAD);
        assert_int_equal(on_change_from_string("Restart"), _ON_CHANGE_INVALID);
        assert_int_equal(on_change_from_string(""), _ON_CHANGE_INVALID);
        assert_int_equal(on_change_from_string(NULL), _ON_CHANGE_INVALID);
}

static void test_names(void **state) {
        char long_id[300];

        assert_true(registry_id_is_valid("db:password_1"));
        assert_false(registry_id_is_valid(""));
        assert_false(registry_id_is_valid(NULL));
        assert_false(registry_id_is_valid("a/b"));
        assert_false(registry_id_is_valid(".."));
        assert_false(registry_id_is_valid("a b"));
        memset(long_id, 'x', sizeof(long_id));
        long_id[255] = '\0';
        assert_true(registry_id_is_valid(long_id));
        long_id[255] = 'x';
        long_id[256] = '\0';
        assert_false(registry_id_is_valid(long_id));

        assert_true(registry_reader_is_valid("user:alice"));
        assert_true(registry_reader_is_valid("group:web-admins"));
        assert_true(registry_reader_is_valid("user:1000"));
        assert_true(registry_reader_is_valid("user:HOST$"));
        assert_true(registry_reader_is_valid("user:a.b@example.com"));
        assert_false(registry_reader_is_valid("alice"));
        assert_false(registry_reader_is_valid("user:"));
        assert_false(registry_reader_is_valid("group:"));
        assert_false(registry_reader_is_valid("user:-rf"));
        assert_false(registry_reader_is_valid("user:a b"));
        assert_false(registry_reader_is_valid("user:a$b"));
        assert_false(registry_reader_is_valid("user:a:b"));
        assert_false(registry_reader_is_valid("uid:0"));
        assert_false(registry_reader_is_valid(NULL));

        assert_true(registry_unit_is_valid("web.service"));
        assert_true(registry_unit_is_valid("getty@tty1.service"));
        assert_true(registry_unit_is_valid("backup.timer"));
        assert_false(registry_unit_is_valid("web"));
        assert_false(registry_unit_is_valid(".service"));
        assert_false(registry_unit_is_valid("a/b.service"));
        assert_false(registry_unit_is_valid("-x.service"));
        assert_false(registry_unit_is_valid("web.servicex"));
        assert_false(registry_unit_is_valid(""));

        assert_true(registry_credential_is_valid("db.json"));
        assert_true(registry_credential_is_valid("tls-key"));
        assert_false(registry_credential_is_valid("."));
        assert_false(registry_credential_is_valid(".."));
        assert_false(registry_credential_is_valid("a/b"));
        assert_false(registry_credential_is_valid(""));
}

static void test_validate(void **state) {
        Registration r = {
                .id = (char *) "k1",
                .readers = LIST("user:alice", "group:web"),
                .units = LIST("web.service"),
                .credential = (char *) "db",
                .on_change = ON_CHANGE_RESTART,
        };
        char *many[REGISTRY_LIST_MAX + 2] = {};
        char names[REGISTRY_LIST_MAX + 1][32];
        const char *msg = NULL;

        assert_int_equal(registration_validate(&r, &msg), 0);

        r.readers = LIST("user:alice", "user:alice");
        assert_int_equal(registration_validate(&r, &msg), -EINVAL);
        assert_string_equal(msg, "Duplicate entry in readers or units");
        r.readers = LIST("alice");
        assert_int_equal(registration_validate(&r, &msg), -EINVAL);
        assert_string_equal(msg, "Invalid reader (user:NAME or group:NAME)");
        r.readers = NULL;
        r.units = LIST("web");
        assert_int_equal(registration_validate(&r, &msg), -EINVAL);
        assert_string_equal(msg, "Invalid unit name");

        for (size_t i = 0; i <= REGISTRY_LIST_MAX; i++) {
                (void) snprintf(names[i], sizeof(names[i]), "u%zu.service", i);
                many[i] = names[i];
        }
        r.units = many;
        assert_int_equal(registration_validate(&r, &msg), -EINVAL);
        assert_string_equal(msg, "Too many readers or units");
        many[REGISTRY_LIST_MAX] = NULL;
        assert_int_equal(registration_validate(&r, &msg), 0);

        r.units = NULL;
        r.credential = (char *) "../x";
        assert_int_equal(registration_validate(&r, &msg), -EINVAL);
        assert_string_equal(msg, "Invalid credential name");
        r.credential = NULL;
        r.on_change = (OnChange) 7;
        assert_int_equal(registration_validate(&r, &msg), -EINVAL);
        r.on_change = ON_CHANGE_NONE;
        r.id = (char *) "bad id";
        assert_int_equal(registration_validate(&r, &msg), -EINVAL);
        assert_non_null(strstr(msg, "Invalid key id"));
}

static void test_merge(void **state) {
        _cleanup_(registration_donep) Registration dst = {};
        Registration src = {
                .id = (char *) "k", .readers = LIST("user:bob", "user:alice"), .units = LIST("a.service")};
        Registration same = {.id = (char *) "k", .readers = LIST("user:alice")};
        Registration cred = {
                .id = (char *) "k", .credential = (char *) "db", .on_change = ON_CHANGE_RELOAD_OR_RESTART};

        dst.id = strdup("k");
        assert_int_equal(strv_extend(&dst.readers, "user:alice"), 0);

        assert_int_equal(registration_merge(&dst, &src, false), 1);
        assert_int_equal(strv_length(dst.readers), 2);
        assert_string_equal(dst.readers[0], "user:alice");
        assert_string_equal(dst.readers[1], "user:bob");
        assert_string_equal(dst.units[0], "a.service");

        assert_int_equal(registration_merge(&dst, &same, false), 0);
        /* on_change only counts when it was given. */
        assert_int_equal(registration_merge(&dst, &cred, false), 1);
        assert_string_equal(dst.credential, "db");
        assert_int_equal(dst.on_change, ON_CHANGE_NONE);
        assert_int_equal(registration_merge(&dst, &cred, true), 1);
        assert_int_equal(dst.on_change, ON_CHANGE_RELOAD_OR_RESTART);
        assert_int_equal(registration_merge(&dst, &cred, true), 0);

        /* A copy is deep and equal. */
        _cleanup_(registration_donep) Registration copy = {};
        assert_int_equal(registration_copy(&dst, &copy), 0);
        assert_ptr_not_equal(copy.readers, dst.readers);
        assert_string_equal(copy.id, "k");
        assert_string_equal(copy.readers[1], "user:bob");
        assert_string_equal(copy.credential, "db");
        assert_int_equal(copy.on_change, ON_CHANGE_RELOAD_OR_RESTART);
}

static void test_merge_limit(void **state) {
        _cleanup_(registration_donep) Registration dst = {};
        char name[32];

        dst.id = strdup("k");
        for (size_t i = 0; i < REGISTRY_LIST_MAX; i++) {
                (void) snprintf(name, sizeof(name), "user:u%zu", i);
                assert_int_equal(strv_extend(&dst.readers, name), 0);
        }
        Registration more = {.id = (char *) "k", .readers = LIST("user:one-more")};
        assert_int_equal(registration_merge(&dst, &more, false), -E2BIG);
}

static void free_regs(Registration *regs, size_t n) {
        for (size_t i = 0; i < n; i++)
                registration_done(&regs[i]);
        free(regs);
}

static void test_format_parse(void **state) {
        Registration a = {.id = (char *) "zeta", .on_change = ON_CHANGE_NONE};
        Registration b = {
                .id = (char *) "alpha:db",
                .readers = LIST("user:alice", "group:web"),
                .units = LIST("web.service", "worker@1.service"),
                .credential = (char *) "db.json",
                .on_change = ON_CHANGE_RELOAD_OR_RESTART,
        };
        const Registration *regs[] = {&a, &b};
        _cleanup_free_ char *text = NULL;
        Registration *out = NULL;
        size_t size = 0, n = 0;

        assert_int_equal(registry_format(regs, 2, &text, &size), 0);
        assert_int_equal(strlen(text), size);
        assert_non_null(
                strstr(text, "{\"id\":\"zeta\",\"readers\":[],\"units\":[],\"on_change\":\"none\"}"));
        assert_non_null(strstr(
                text,
                "{\"id\":\"alpha:db\",\"readers\":[\"user:alice\",\"group:web\"],\"units\":[\"web.service\","
                "\"worker@1.service\"],\"credential\":\"db.json\",\"on_change\":\"reload-or-restart\"}"));

        assert_int_equal(registry_parse(text, size, &out, &n), 0);
        assert_int_equal(n, 2);
        /* Sorted by id. */
        assert_string_equal(out[0].id, "alpha:db");
        assert_string_equal(out[0].readers[1], "group:web");
        assert_string_equal(out[0].units[1], "worker@1.service");
        assert_string_equal(out[0].credential, "db.json");
        assert_int_equal(out[0].on_change, ON_CHANGE_RELOAD_OR_RESTART);
        assert_string_equal(out[1].id, "zeta");
        assert_null(out[1].credential);
        assert_int_equal(strv_length(out[1].readers), 0);
        free_regs(out, n);
}

static void test_parse_bad(void **state) {
        static const char dup[] = "{\"version\":1,\"keys\":["
                                  "{\"id\":\"k\",\"readers\":[\"user:a\"]},"
                                  "{\"id\":\"bad id\"},"
                                  "{\"id\":\"k2\",\"on_change\":\"explode\"},"
                                  "{\"id\":\"k\",\"readers\":[\"user:b\"],\"on_change\":\"restart\"},"
                                  "{\"id\":\"k3\",\"readers\":\"user:a\"},"
                                  "7]}";
        Registration *out = NULL;
        size_t n = 0;

        /* Bad entries are skipped, duplicates merged. */
        assert_int_equal(registry_parse(dup, sizeof(dup) - 1, &out, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(out[0].id, "k");
        assert_int_equal(strv_length(out[0].readers), 2);
        assert_int_equal(out[0].on_change, ON_CHANGE_RESTART);
        free_regs(out, n);

        assert_int_equal(registry_parse("", 0, &out, &n), -EBADMSG);
        assert_int_equal(registry_parse("[]", 2, &out, &n), -EBADMSG);
        assert_int_equal(registry_parse("{\"version\":2,\"keys\":[]}", 23, &out, &n), -EBADMSG);
        assert_int_equal(registry_parse("{\"version\":1}", 13, &out, &n), -EBADMSG);
        assert_int_equal(registry_parse("{\"version\":1,\"keys\":[]}", 23, &out, &n), 0);
        assert_int_equal(n, 0);
        free(out);
}

static void test_parse_lines(void **state) {
        /* The layout registry_format() writes is read a line at a time; other layouts of the
         * same JSON still load. */
        static const char lines[] = "{\"version\":1,\"keys\":[\n"
                                    "{\"id\":\"b\",\"readers\":[\"user:x\"]},\n"
                                    "{\"id\":\"bad id\"},\n"
                                    "{\"id\":\"a\",\"units\":[\"u.service\"]}\n"
                                    "]}\n";
        static const char pretty[] =
                "{ \"version\": 1,\n  \"keys\": [\n    { \"id\": \"a\" },\n    { \"id\": \"b\" }\n  ]\n}";
        static const char broken[] = "{\"version\":1,\"keys\":[\n"
                                     "{\"id\":\"a\"},\n"
                                     "{\"id\":\n"
                                     "]}\n";
        static const char empty[] = "{\"version\":1,\"keys\":[\n]}\n";
        Registration *out = NULL;
        size_t n = 0;

        assert_int_equal(registry_parse(lines, sizeof(lines) - 1, &out, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(out[0].id, "a");
        assert_string_equal(out[0].units[0], "u.service");
        assert_string_equal(out[1].id, "b");
        assert_string_equal(out[1].readers[0], "user:x");
        free_regs(out, n);

        assert_int_equal(registry_parse(pretty, sizeof(pretty) - 1, &out, &n), 0);
        assert_int_equal(n, 2);
        free_regs(out, n);

        assert_int_equal(registry_parse(broken, sizeof(broken) - 1, &out, &n), -EBADMSG);

        assert_int_equal(registry_parse(empty, sizeof(empty) - 1, &out, &n), 0);
        assert_int_equal(n, 0);
        free(out);
}

static void test_save_load(void **state) {
        char dir[] = "/tmp/test-agent-registry.XXXXXX", path[64];
        Registration a = {.id = (char *) "k1", .readers = LIST("user:root"), .on_change = ON_CHANGE_RESTART};
        const Registration *regs[] = {&a};
        Registration *out = NULL;
        struct stat st;
        size_t n = 0;

        assert_non_null(mkdtemp(dir));
        (void) snprintf(path, sizeof(path), "%s/registrations.json", dir);

        assert_int_equal(registry_load(path, &out, &n), -ENOENT);
        assert_int_equal(registry_save(path, regs, 1), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(registry_load(path, &out, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(out[0].id, "k1");
        assert_string_equal(out[0].readers[0], "user:root");
        assert_int_equal(out[0].on_change, ON_CHANGE_RESTART);
        free_regs(out, n);

        assert_int_equal(registry_save(path, NULL, 0), 0);
        assert_int_equal(registry_load(path, &out, &n), 0);
        assert_int_equal(n, 0);
        free(out);

        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* keyward register -f's file: words in order, repeats dropped (also against the ids the list
 * had), each first one kept where it was. */
static void test_id_list(void **state) {
        static const char text[] = "  b a\n\tc b\r\na d\0e ";
        char **ids = NULL;

        assert_int_equal(strv_extend(&ids, "c"), 0);
        assert_int_equal(registry_id_list_parse(text, sizeof(text) - 1, &ids), 0);
        assert_int_equal(strv_length(ids), 5);
        assert_string_equal(ids[0], "c");
        assert_string_equal(ids[1], "b");
        assert_string_equal(ids[2], "a");
        assert_string_equal(ids[3], "d");
        assert_string_equal(ids[4], "e");
        assert_null(ids[5]);
        strv_free(ids);

        ids = NULL;
        assert_int_equal(registry_id_list_parse("", 0, &ids), 0);
        assert_int_equal(strv_length(ids), 0);
        strv_free(ids);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_on_change),   cmocka_unit_test(test_names),
                cmocka_unit_test(test_validate),    cmocka_unit_test(test_merge),
                cmocka_unit_test(test_merge_limit), cmocka_unit_test(test_format_parse),
                cmocka_unit_test(test_parse_bad),   cmocka_unit_test(test_parse_lines),
                cmocka_unit_test(test_save_load),   cmocka_unit_test(test_id_list),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
