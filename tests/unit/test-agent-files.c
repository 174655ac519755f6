/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "agent-files.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "agent-registry.h"
#include "registry-names.h"

#define LIST(...) ((char *[]){__VA_ARGS__, NULL})

static void test_path_syntax(void **state) {
        char long_name[REGISTRY_FILE_NAME_MAX + 3], long_path[REGISTRY_FILE_PATH_MAX + 2];

        assert_true(registry_file_path_is_valid("/run/app/db.secret"));
        assert_true(registry_file_path_is_valid("/run/app/.hidden"));
        assert_true(registry_file_path_is_valid("/a"));
        assert_false(registry_file_path_is_valid(NULL));
        assert_false(registry_file_path_is_valid(""));
        /* UTF-8 as D-Bus carries it, and nothing else: other bytes would not read back the same
         * from the registry's JSON. */
        assert_true(registry_file_path_is_valid("/run/app/caf\xc3\xa9.secret"));
        assert_false(registry_file_path_is_valid("/run/app/caf\xe9.secret"));
        assert_false(registry_file_path_is_valid("/run/app/\x84\xff"));
        assert_false(registry_file_path_is_valid("/run/app/\xc0\xaf")); /* an overlong '/' */
        assert_false(registry_file_path_is_valid("/"));
        assert_false(registry_file_path_is_valid("run/app/x"));
        assert_false(registry_file_path_is_valid("/run//app/x"));
        assert_false(registry_file_path_is_valid("/run/app/"));
        assert_false(registry_file_path_is_valid("/run/./app/x"));
        assert_false(registry_file_path_is_valid("/run/app/.."));
        assert_false(registry_file_path_is_valid("/run/../etc/shadow"));
        assert_false(registry_file_path_is_valid("/run/app/x\ny"));
        assert_false(registry_file_path_is_valid("/run/app/x\x7f"));

        long_name[0] = '/';
        memset(long_name + 1, 'a', REGISTRY_FILE_NAME_MAX);
        long_name[REGISTRY_FILE_NAME_MAX + 1] = '\0';
        assert_true(registry_file_path_is_valid(long_name));
        long_name[REGISTRY_FILE_NAME_MAX + 1] = 'a';
        long_name[REGISTRY_FILE_NAME_MAX + 2] = '\0';
        assert_false(registry_file_path_is_valid(long_name));

        for (size_t i = 0; i < sizeof(long_path) - 1; i++)
                long_path[i] = i % 100 == 0 ? '/' : 'b';
        long_path[sizeof(long_path) - 1] = '\0';
        assert_false(registry_file_path_is_valid(long_path));
}

static void test_mode(void **state) {
        assert_true(registry_file_mode_is_valid(0400));
        assert_true(registry_file_mode_is_valid(0440));
        assert_true(registry_file_mode_is_valid(0600));
        assert_true(registry_file_mode_is_valid(0660));
        assert_true(registry_file_mode_is_valid(0));
        assert_false(registry_file_mode_is_valid(0644)); /* others read */
        assert_false(registry_file_mode_is_valid(0602)); /* others write */
        assert_false(registry_file_mode_is_valid(0700)); /* execute */
        assert_false(registry_file_mode_is_valid(0450));
        assert_false(registry_file_mode_is_valid(04400)); /* setuid */
        assert_false(registry_file_mode_is_valid(02440));
        assert_false(registry_file_mode_is_valid(01400));
}

static void test_allowed(void **state) {
        char **dirs = LIST("/run/app", "/srv/secrets");
        const char *dir = NULL, *msg = NULL;

        assert_int_equal(agent_files_path_allowed("/run/app/db", dirs, "/var/lib/keyward", &dir, &msg), 0);
        assert_string_equal(dir, "/run/app");
        assert_int_equal(
                agent_files_path_allowed("/srv/secrets/a/b/c", dirs, "/var/lib/keyward", &dir, &msg), 0);
        assert_string_equal(dir, "/srv/secrets");

        /* Not the directory itself, not a sibling sharing its prefix. */
        assert_int_equal(agent_files_path_allowed("/run/app", dirs, NULL, NULL, &msg), -EPERM);
        assert_non_null(strstr(msg, "not under"));
        assert_int_equal(agent_files_path_allowed("/run/application/db", dirs, NULL, NULL, &msg), -EPERM);
        assert_int_equal(agent_files_path_allowed("/etc/shadow", dirs, NULL, NULL, &msg), -EPERM);
        assert_int_equal(
                agent_files_path_allowed("/run/app/../../etc/shadow", dirs, NULL, NULL, &msg), -EPERM);
        assert_non_null(strstr(msg, "absolute path"));

        /* No directory: nothing is allowed. */
        assert_int_equal(agent_files_path_allowed("/run/app/db", NULL, NULL, NULL, &msg), -EPERM);
        assert_non_null(strstr(msg, "no --file-dir"));

        /* The state directory, and below it, even under an allowed directory. */
        assert_int_equal(
                agent_files_path_allowed(
                        "/var/lib/keyward", LIST("/var/lib"), "/var/lib/keyward", NULL, &msg),
                -EPERM);
        assert_int_equal(
                agent_files_path_allowed(
                        "/var/lib/keyward/cache/k", LIST("/var/lib"), "/var/lib/keyward", NULL, &msg),
                -EPERM);
        assert_non_null(strstr(msg, "state directory"));
        /* A state directory given with trailing slashes ("--state-dir /var/lib/keyward/") is
         * the same directory. */
        assert_int_equal(
                agent_files_path_allowed(
                        "/var/lib/keyward/registrations.json", LIST("/var/lib"), "/var/lib/keyward/", NULL,
                        &msg),
                -EPERM);
        assert_non_null(strstr(msg, "state directory"));
        assert_int_equal(
                agent_files_path_allowed(
                        "/var/lib/keyward/cache/k", LIST("/var/lib"), "/var/lib/keyward//", NULL, &msg),
                -EPERM);
        assert_int_equal(
                agent_files_path_allowed(
                        "/var/lib/keywardx", LIST("/var/lib"), "/var/lib/keyward/", NULL, &msg),
                0);
        assert_int_equal(
                agent_files_path_allowed(
                        "/var/lib/keywardx", LIST("/var/lib"), "/var/lib/keyward", NULL, &msg),
                0);
}

static void test_json(void **state) {
        assert_true(agent_files_is_json("/run/app/k.json"));
        assert_false(agent_files_is_json("/run/app/k.jsonx"));
        assert_false(agent_files_is_json("/run/app/k"));
        assert_false(agent_files_is_json(NULL));
}

/* The file's options survive the registry file, and are checked on the way in. */
static void test_registry(void **state) {
        Registration reg = {
                .id = (char *) "k1",
                .file = (char *) "/run/app/k1",
                .file_owner = (char *) "nobody",
                .file_group = (char *) "nogroup",
                .file_mode = 0440,
        };
        const Registration *regs[] = {&reg};
        Registration *back = NULL, merged = {};
        const char *msg = NULL;
        char *text = NULL;
        size_t size = 0, n = 0;

        assert_int_equal(registration_validate(&reg, &msg), 0);
        assert_int_equal(registry_format(regs, 1, &text, &size), 0);
        assert_non_null(strstr(
                text,
                "\"file\":\"/run/app/k1\",\"file_owner\":\"nobody\",\"file_group\":\"nogroup\",\"file_mode\":288"));
        assert_int_equal(registry_parse(text, size, &back, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(back[0].file, "/run/app/k1");
        assert_string_equal(back[0].file_owner, "nobody");
        assert_string_equal(back[0].file_group, "nogroup");
        assert_int_equal(back[0].file_mode, 0440);

        /* Same file: owner and mode replaced; another file: refused. */
        assert_int_equal(registration_copy(&back[0], &merged), 0);
        reg.file_owner = NULL;
        reg.file_mode = 0400;
        assert_int_equal(registration_merge(&merged, &reg, false), 1);
        assert_null(merged.file_owner);
        assert_int_equal(merged.file_mode, 0400);
        assert_int_equal(registration_merge(&merged, &reg, false), 0);
        reg.file = (char *) "/run/app/other";
        assert_int_equal(registration_merge(&merged, &reg, false), -EEXIST);
        registration_done(&merged);
        registration_done(&back[0]);
        free(back);
        free(text);

        /* Entries with bad file options are dropped at load. */
        text = (char *) "{\"version\":1,\"keys\":[\n"
                        "{\"id\":\"a\",\"file\":\"/run/../etc/shadow\"},\n"
                        "{\"id\":\"b\",\"file\":\"/run/app/b\",\"file_mode\":420},\n"
                        "{\"id\":\"c\",\"file_mode\":256},\n"
                        "{\"id\":\"d\",\"file\":\"/run/app/d\",\"file_owner\":\"bad user\"},\n"
                        "{\"id\":\"e\",\"file\":\"/run/app/e\",\"file_mode\":-1},\n"
                        "{\"id\":\"f\",\"file\":\"/run/app/f\",\"file_mode\":416}\n"
                        "]}\n";
        assert_int_equal(registry_parse(text, strlen(text), &back, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(back[0].id, "f");
        assert_int_equal(back[0].file_mode, 0640);
        registration_done(&back[0]);
        free(back);

        reg = (Registration){.id = (char *) "k", .file_mode = 0400};
        assert_int_equal(registration_validate(&reg, &msg), -EINVAL);
        assert_non_null(strstr(msg, "need the option file"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_path_syntax), cmocka_unit_test(test_mode),
                cmocka_unit_test(test_allowed),     cmocka_unit_test(test_json),
                cmocka_unit_test(test_registry),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
