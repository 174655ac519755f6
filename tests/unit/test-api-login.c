/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* POST /v0/auth/login/ as an API route, against a real SQLite store and without HTTP or PAM:
 * the form decoded into a login job (its errors as Knox envelopes, the source counted), and
 * a job's result encoded as the answer (a stored token, or the refusal to give late). */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "api-login.h"
#include "server-auth.h"
#include "store.h"
#include "strv.h"
#include "tests.h"
#include "time-util.h"

#define NOW_NS (INT64_C(1700000000) * 1000000000)

typedef struct Fixture {
        char dir[64];
        char db[96];
        Store *store;
        Api api;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/test-api-login.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->db, sizeof(f->db), "%s/keyward.db", f->dir);
        assert_int_equal(store_open(f->db, &f->store), 0);
        assert_int_equal(store_init(f->store), 0);
        f->api = (Api){.store = f->store, .hostname = "testhost"};
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        store_free(f->store);
        assert_int_equal(tests_rm_rf(f->dir), 0);
        free(f);
        return 0;
}

/* Decode the form s as the route would see it. */
static int begin(const char *s, char *const *machine, LoginJob **ret, ApiResult *res) {
        _cleanup_(form_done) Form form = FORM_NULL;

        assert_int_equal(form_parse(s, strlen(s), &form), 0);
        return api_login_begin(
                &(ApiLogin){.form = &form, .remote_addr = "192.0.2.7:4711", .machine_names = machine}, ret,
                res);
}

static void test_begin_refuses_bad_forms(void **state) {
        static const char *const bad[] = {
                "user=alice",                /* no password */
                "password=secret",           /* no user */
                "user=&password=secret",     /* empty user */
                "user=alice&password=",      /* empty password */
                "user=al%00ice&password=pw", /* a NUL in the user */
        };
        ApiResult res = API_RESULT_INIT;
        LoginJob *j = NULL;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(begin(bad[i], NULL, &j, &res), 0);
                assert_null(j);
                assert_int_equal(res.code, KNOX_BAD_REQUEST_DATA);
                assert_int_equal(res.http_status, 400);
                assert_string_equal(res.message, "Missing or invalid user or password");
                api_result_done(&res);
        }

        /* A body that was no valid form. */
        assert_int_equal(
                api_login_begin(&(ApiLogin){.form = NULL, .remote_addr = "192.0.2.7:1"}, &j, &res), 0);
        assert_null(j);
        assert_int_equal(res.http_status, 400);
        assert_string_equal(res.message, "Invalid form");
        api_result_done(&res);
}

static void test_begin_makes_a_job(void **state) {
        _cleanup_(login_job_freep) LoginJob *j = NULL;
        ApiResult res = API_RESULT_INIT;

        assert_int_equal(begin("user=alice&password=s3cret", NULL, &j, &res), 0);
        assert_non_null(j);
        assert_string_equal(j->user, "alice");
        assert_memory_equal(j->password->data, "s3cret", 6);
        /* The client's own address, without its port. */
        assert_string_equal(j->source, "192.0.2.7");
        assert_string_equal(j->rhost, "192.0.2.7");
        assert_null(j->machine);
        api_result_done(&res);
}

static void test_begin_machine_passes_rhost(void **state) {
        _cleanup_(login_job_freep) LoginJob *j = NULL, *k = NULL;
        char *names[] = {(char *) "host1.example.com", NULL};
        ApiResult res = API_RESULT_INIT;

        assert_int_equal(begin("user=bob&password=pw&rhost=198.51.100.9", names, &j, &res), 0);
        assert_non_null(j);
        assert_string_equal(j->source, "host1.example.com/198.51.100.9");
        assert_string_equal(j->machine, "host1.example.com");
        assert_string_equal(j->rhost, "198.51.100.9");

        /* Without a verified certificate, rhost is not believed. */
        assert_int_equal(begin("user=bob&password=pw&rhost=198.51.100.9", NULL, &k, &res), 0);
        assert_non_null(k);
        assert_string_equal(k->source, "192.0.2.7");
        api_result_done(&res);
}

static void test_finish_mints_a_token(void **state) {
        Fixture *f = *state;
        char *groups[] = {(char *) "eng", NULL};
        LoginJob j = {.user = (char *) "alice", .canonical_user = (char *) "alice", .groups = groups};
        ApiResult res = API_RESULT_INIT;
        _cleanup_free_ char *token = NULL;
        uint8_t hash[TOKEN_HASH_SIZE];
        TokenInfo info = {};
        const char *p, *e;

        assert_int_equal(api_login_finish(&f->api, &j, 3600 * USEC_PER_SEC, NOW_NS, &res), 0);
        assert_int_equal(res.code, KNOX_OK);
        assert_int_equal(res.http_status, 200);
        assert_int_equal(res.data.error, 0);
        assert_non_null(
                strstr(res.data.data, "\"user\":\"alice\",\"groups\":[\"eng\"],\"expires\":1700003600}"));

        /* The token it answers is the one stored, for alice, with her groups. */
        p = strstr(res.data.data, "{\"token\":\"");
        assert_non_null(p);
        p += strlen("{\"token\":\"");
        e = strchr(p, '"');
        assert_non_null(e);
        token = strndup(p, (size_t) (e - p));
        assert_int_equal(user_token_hash(token, strlen(token), hash), 0);
        assert_int_equal(store_token_get(f->store, hash, &info), 0);
        assert_string_equal(info.user, "alice");
        assert_string_equal(info.groups[0], "eng");
        assert_true(info.expires == NOW_NS + INT64_C(3600) * 1000000000);
        token_info_done(&info);
        api_result_done(&res);
}

static void test_finish_refusals(void **state) {
        Fixture *f = *state;
        static const struct {
                int result;
                int late;
                int status;
                const char *message;
        } cases[] = {
                {-EACCES, 1, 401, "Invalid user name or password"},
                {-EKEYEXPIRED, 1, 401, "Password expired, change it first"},
                {-EUSERS, 1, 401, "Too many failed logins, try again later"},
                {-EHOSTDOWN, 0, 500, "Password check unavailable"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                LoginJob j = {.user = (char *) "alice", .result = cases[i].result};
                ApiResult res = API_RESULT_INIT;

                assert_int_equal(api_login_finish(&f->api, &j, USEC_PER_SEC, NOW_NS, &res), cases[i].late);
                assert_int_equal(res.http_status, cases[i].status);
                assert_string_equal(res.message, cases[i].message);
                assert_int_equal(res.data.len, 0);
                api_result_done(&res);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_begin_refuses_bad_forms),
                cmocka_unit_test(test_begin_makes_a_job),
                cmocka_unit_test(test_begin_machine_passes_rhost),
                cmocka_unit_test_setup_teardown(test_finish_mints_a_token, setup, teardown),
                cmocka_unit_test_setup_teardown(test_finish_refusals, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
