/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Knox routes against a real SQLite store, without HTTP: every route, its success and
 * each of its error codes and messages (protocol.md §2 and §3). */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "acl-json.h"
#include "json-util.h"
#include "key-cache.h"
#include "knox-json.h"
#include "server-api.h"
#include "store-internal.h"
#include "strv.h"
#include "tests.h"

typedef struct Fixture {
        char dir[64];
        char db[96];
        Store *store;
        Cryptor *cryptor;
        Acl defaults;
        Api api;
        Principals alice, bob, machine, service, mux;
} Fixture;

static const uint8_t test_master_key[32] = "0123456789abcdef0123456789abcdef";

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        char *groups[] = {(char *) "security-team", (char *) "eng", NULL};
        Access def = {
                .type = PRINCIPAL_TYPE_USER_GROUP, .access = ACCESS_ADMIN, .id = (char *) "security-team"};

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/test-server-api.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->db, sizeof(f->db), "%s/keyward.db", f->dir);
        assert_int_equal(store_open(f->db, &f->store), 0);
        assert_int_equal(store_init(f->store), 0);
        assert_int_equal(cryptor_new(test_master_key, sizeof(test_master_key), &f->cryptor), 0);
        assert_int_equal(acl_merge(&f->defaults, &def), 0);
        f->api =
                (Api){.store = f->store,
                      .cryptor = f->cryptor,
                      .default_acl = &f->defaults,
                      .hostname = "testhost"};

        assert_int_equal(principals_add(&f->alice, PRINCIPAL_KIND_USER, "alice", groups, "user"), 0);
        assert_int_equal(principals_add(&f->bob, PRINCIPAL_KIND_USER, "bob", NULL, "user"), 0);
        assert_int_equal(
                principals_add(&f->machine, PRINCIPAL_KIND_MACHINE, "host1.example.com", NULL, "mtls"), 0);
        assert_int_equal(
                principals_add(
                        &f->service, PRINCIPAL_KIND_SERVICE, "spiffe://example.com/svc", NULL, "spiffe"),
                0);
        assert_int_equal(
                principals_add(&f->mux, PRINCIPAL_KIND_MACHINE, "host2.example.com", NULL, "mtls"), 0);
        assert_int_equal(
                principals_add(
                        &f->mux, PRINCIPAL_KIND_SERVICE, "spiffe://example.com/svc", NULL,
                        "spiffe-fallback"),
                0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        store_free(f->store);
        cryptor_free(f->cryptor);
        acl_done(&f->defaults);
        principals_done(&f->alice);
        principals_done(&f->bob);
        principals_done(&f->machine);
        principals_done(&f->service);
        principals_done(&f->mux);
        assert_int_equal(tests_rm_rf(f->dir), 0);
        free(f);
        return 0;
}

/* One call: method, path, raw query (or NULL), urlencoded body (or NULL), caller. */
static void
call(Fixture *f,
     const char *method,
     const char *path,
     const char *query,
     const char *body,
     const Principals *who,
     ApiResult *res) {
        ApiMatch m = {};
        Form q = FORM_NULL, form = FORM_NULL;
        int r;

        assert_int_equal(api_match(method, path, &m), 0);
        if (query)
                (void) form_parse(query, strlen(query), &q);
        if (body)
                r = form_parse(body, strlen(body), &form);
        else
                r = 0;
        *res = API_RESULT_INIT;
        assert_int_equal(
                api_handle(
                        &f->api,
                        &(ApiRequest){
                                .match = &m,
                                .raw_query = query,
                                .query = &q,
                                .form = r >= 0 ? &form : NULL,
                                .principals = who,
                                .now_ns = INT64_C(1800000000000000000),
                        },
                        res),
                0);
        form_done(&q);
        form_done(&form);
        api_match_done(&m);
}

static void expect(ApiResult *res, KnoxCode code, int http, const char *message) {
        if (res->code != code || (message && !streq(strempty(res->message), message)))
                print_error("got code %d message '%s'\n", res->code, strempty(res->message));
        assert_int_equal(res->code, code);
        assert_int_equal(res->http_status, http);
        if (message)
                assert_string_equal(strempty(res->message), message);
}

static uint64_t create(Fixture *f, const char *id, const char *b64) {
        ApiResult res;
        char body[256];
        uint64_t v;
        json_object *o;
        const char *err;

        snprintf(body, sizeof(body), "id=%s&data=%s&acl=%%5B%%5D", id, b64);
        call(f, "POST", "/v0/keys/", NULL, body, &f->alice, &res);
        expect(&res, KNOX_OK, 200, "");
        assert_int_equal(json_parse(res.data.data, res.data.len, &o, &err), 0);
        assert_int_equal(json_get_uint64(o, &v), 0);
        assert_true(v <= VERSION_ID_MAX);
        json_object_put(o);
        api_result_done(&res);
        return v;
}

static void test_match(void **state) {
        /* clang-format off */
        static const struct { const char *method, *path; ApiRoute route; bool mna; const char *key, *version; } cases[] = {
                { "GET",    "/v0/keys/",                  API_ROUTE_GETKEYS,     false, NULL,  NULL },
                { "POST",   "/v0/keys/",                  API_ROUTE_POSTKEYS,    false, NULL,  NULL },
                { "PUT",    "/v0/keys/",                  API_ROUTE_GETKEYS,     true,  NULL,  NULL },
                { "GET",    "/v0/keys/a:b/",              API_ROUTE_GETKEY,      false, "a:b", NULL },
                { "DELETE", "/v0/keys/a/",                API_ROUTE_DELETEKEY,   false, "a",   NULL },
                { "GET",    "/v0/keys/a/access/",         API_ROUTE_GETACCESS,   false, "a",   NULL },
                { "PUT",    "/v0/keys/a/access/",         API_ROUTE_PUTACCESS,   false, "a",   NULL },
                { "POST",   "/v0/keys/a/versions/",       API_ROUTE_POSTVERSION, false, "a",   NULL },
                { "PUT",    "/v0/keys/a/versions/12/",    API_ROUTE_PUTVERSION,  false, "a",   "12" },
                { "GET",    "/v0/keys/a/versions/12/",    API_ROUTE_PUTVERSION,  true,  "a",   "12" },
                { "GET",    "/v0/keys",                   API_ROUTE_NOT_FOUND,   false, NULL,  NULL },
                { "GET",    "/v0/keys/a",                 API_ROUTE_NOT_FOUND,   false, NULL,  NULL },
                { "GET",    "/v0/keys//",                 API_ROUTE_NOT_FOUND,   false, NULL,  NULL },
                { "GET",    "/v0/keys/a/b/",              API_ROUTE_NOT_FOUND,   false, NULL,  NULL },
                { "GET",    "/v1/keys/",                  API_ROUTE_NOT_FOUND,   false, NULL,  NULL },
                { "GET",    "/",                          API_ROUTE_NOT_FOUND,   false, NULL,  NULL },
                { "GET",    "/v0/auth/whoami/",           API_ROUTE_WHOAMI,      false, NULL,  NULL },
                { "DELETE", "/v0/auth/token/",            API_ROUTE_DELETETOKEN, false, NULL,  NULL },
                { "GET",    "/v0/auth/token/",            API_ROUTE_DELETETOKEN, true,  NULL,  NULL },
        };
        /* clang-format on */

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                ApiMatch m = {};

                assert_int_equal(api_match(cases[i].method, cases[i].path, &m), 0);
                assert_int_equal(m.route, cases[i].route);
                assert_int_equal(m.method_not_allowed, cases[i].mna);
                if (cases[i].key)
                        assert_string_equal(m.key_id, cases[i].key);
                else
                        assert_null(m.key_id);
                if (cases[i].version)
                        assert_string_equal(m.version_id, cases[i].version);
                else
                        assert_null(m.version_id);
                api_match_done(&m);
        }
}

static void test_create_and_get(void **state) {
        Fixture *f = *state;
        _cleanup_(key_freep) Key *k = NULL;
        ApiResult res;
        const char *err;
        uint64_t v;

        v = create(f, "test:key", "aGVsbG8%3D");

        call(f, "GET", "/v0/keys/test:key/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_OK, 200, "");
        assert_int_equal(knox_key_parse(res.data.data, res.data.len, &k, &err), 0);
        assert_string_equal(k->id, "test:key");
        assert_int_equal(k->acl.n, 0); /* the server never sends the ACL with a key */
        assert_int_equal(k->n_versions, 1);
        assert_int_equal(k->versions[0].id, v);
        assert_int_equal(k->versions[0].status, VERSION_STATUS_PRIMARY);
        assert_int_equal(k->versions[0].ts, INT64_C(1800000000000000000));
        assert_int_equal(k->versions[0].data->size, 5);
        assert_memory_equal(k->versions[0].data->data, "hello", 5);
        api_result_done(&res);

        /* The ACL: creator Admin, then the server default. */
        call(f, "GET", "/v0/keys/test:key/access/", NULL, NULL, &f->machine, &res);
        expect(&res, KNOX_OK, 200, "");
        assert_string_equal(
                res.data.data,
                "[{\"type\":\"User\",\"id\":\"alice\",\"access\":\"Admin\"},"
                "{\"type\":\"UserGroup\",\"id\":\"security-team\",\"access\":\"Admin\"}]");
        api_result_done(&res);

        /* The stored data is sealed: the plaintext is not in the database file. */
        {
                char wal[128];

                snprintf(wal, sizeof(wal), "%s-wal", f->db);
                assert_false(tests_file_contains(f->db, "hello", 5));
                assert_false(tests_file_contains(wal, "hello", 5));
        }
}

static void test_create_errors(void **state) {
        Fixture *f = *state;
        ApiResult res;

        create(f, "dup", "eA%3D%3D");

        call(f, "POST", "/v0/keys/", NULL, "id=x&data=eA%3D%3D", &f->machine, &res);
        expect(&res, KNOX_UNAUTHORIZED, 403,
               "Must be a user to create keys, principal is host1.example.com");
        api_result_done(&res);
        call(f, "POST", "/v0/keys/", NULL, "data=eA%3D%3D", &f->alice, &res);
        expect(&res, KNOX_NO_KEY_ID, 400, "Missing parameter 'id'");
        api_result_done(&res);
        call(f, "POST", "/v0/keys/", NULL, "id=x", &f->alice, &res);
        expect(&res, KNOX_NO_KEY_DATA, 400, "Missing parameter 'data'");
        api_result_done(&res);
        call(f, "POST", "/v0/keys/", NULL, "id=x&data=", &f->alice, &res);
        expect(&res, KNOX_NO_KEY_DATA, 400, "Parameter 'data' is empty");
        api_result_done(&res);
        call(f, "POST", "/v0/keys/", NULL, "id=x&data=%21%21%21%21", &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, "illegal base64 data at input byte 0");
        api_result_done(&res);
        call(f, "POST", "/v0/keys/", NULL, "id=x&data=eA%3D%3D&acl=nope", &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, NULL);
        api_result_done(&res);
        call(f, "POST", "/v0/keys/", NULL,
             "id=x&data=eA%3D%3D&acl=%5B%7B%22type%22%3A%22Robot%22%2C%22id%22%3A%22r%22%2C%22access%22%3A%22Read%22%7D%5D",
             &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, "json: Invalid PrincipalType to convert");
        api_result_done(&res);
        call(f, "POST", "/v0/keys/", NULL, "id=bad%2Fid&data=eA%3D%3D", &f->alice, &res);
        expect(&res, KNOX_BAD_KEY_FORMAT, 400, "KeyID includes unsupported characters bad/id");
        api_result_done(&res);
        call(f, "POST", "/v0/keys/", NULL, "id=&data=eA%3D%3D", &f->alice, &res);
        expect(&res, KNOX_BAD_KEY_FORMAT, 400, "KeyID includes unsupported characters ");
        api_result_done(&res);
        call(f, "POST", "/v0/keys/", NULL, "id=dup&data=eA%3D%3D", &f->alice, &res);
        expect(&res, KNOX_KEY_IDENTIFIER_EXISTS, 400, "Key dup already exists");
        api_result_done(&res);
        /* Empty MachinePrefix would open the key to every machine: refused on create too. */
        call(f, "POST", "/v0/keys/", NULL,
             "id=y&data=eA%3D%3D&acl=%5B%7B%22type%22%3A%22MachinePrefix%22%2C%22id%22%3A%22%22%2C%22access%22%3A%22Read%22%7D%5D",
             &f->alice, &res);
        expect(&res, KNOX_BAD_PRINCIPAL_IDENTIFIER, 400, NULL);
        api_result_done(&res);
        /* A form that Go's ParseForm rejects has no parameters at all. */
        call(f, "POST", "/v0/keys/", NULL, "id=z&data=%zz", &f->alice, &res);
        expect(&res, KNOX_NO_KEY_ID, 400, "Missing parameter 'id'");
        api_result_done(&res);
}

static void test_get_filters_and_auth(void **state) {
        Fixture *f = *state;
        _cleanup_(key_freep) Key *k = NULL;
        char path[128], body[64];
        uint64_t v1, v2, v3;
        ApiResult res;
        const char *err;
        json_object *o;

        v1 = create(f, "k", "YQ%3D%3D");
        call(f, "POST", "/v0/keys/k/versions/", NULL, "data=Yg%3D%3D", &f->alice, &res);
        expect(&res, KNOX_OK, 200, "");
        assert_int_equal(json_parse(res.data.data, res.data.len, &o, &err), 0);
        assert_int_equal(json_get_uint64(o, &v2), 0);
        json_object_put(o);
        api_result_done(&res);
        call(f, "POST", "/v0/keys/k/versions/", NULL, "data=Yw%3D%3D", &f->alice, &res);
        assert_int_equal(json_parse(res.data.data, res.data.len, &o, &err), 0);
        assert_int_equal(json_get_uint64(o, &v3), 0);
        json_object_put(o);
        api_result_done(&res);

        snprintf(path, sizeof(path), "/v0/keys/k/versions/%" PRIu64 "/", v3);
        call(f, "PUT", path, NULL, "status=%22Inactive%22", &f->alice, &res);
        expect(&res, KNOX_OK, 200, "");
        api_result_done(&res);

        /* Default: Primary and Active; the hash is always the stored full-list hash. */
        call(f, "GET", "/v0/keys/k/", NULL, NULL, &f->alice, &res);
        assert_int_equal(knox_key_parse(res.data.data, res.data.len, &k, &err), 0);
        assert_int_equal(k->n_versions, 2);
        assert_int_equal(k->versions[0].id, v1);
        assert_int_equal(k->versions[1].id, v2);
        {
                char full[KEY_HASH_HEX_SIZE];
                KeyVersion vs[3] = {
                        {.id = v1, .status = VERSION_STATUS_PRIMARY},
                        {.id = v2, .status = VERSION_STATUS_ACTIVE},
                        {.id = v3, .status = VERSION_STATUS_INACTIVE},
                };
                assert_int_equal(key_version_hash(vs, 3, full), 0);
                assert_string_equal(k->hash, full);
        }
        k = key_free(k);
        api_result_done(&res);

        call(f, "GET", "/v0/keys/k/", "status=\"Primary\"", NULL, &f->alice, &res);
        assert_int_equal(knox_key_parse(res.data.data, res.data.len, &k, &err), 0);
        assert_int_equal(k->n_versions, 1);
        k = key_free(k);
        api_result_done(&res);

        call(f, "GET", "/v0/keys/k/", "status=%22Inactive%22", NULL, &f->alice, &res);
        assert_int_equal(knox_key_parse(res.data.data, res.data.len, &k, &err), 0);
        assert_int_equal(k->n_versions, 3);
        assert_memory_equal(k->versions[2].data->data, "c", 1);
        k = key_free(k);
        api_result_done(&res);

        call(f, "GET", "/v0/keys/k/", "status=Inactive", NULL, &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, NULL);
        api_result_done(&res);
        call(f, "GET", "/v0/keys/k/", "status=%22Gone%22", NULL, &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, "json: Invalid VersionStatus to convert");
        api_result_done(&res);

        call(f, "GET", "/v0/keys/nope/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST, 404, "No such key nope");
        api_result_done(&res);
        call(f, "GET", "/v0/keys/k/", NULL, NULL, &f->bob, &res);
        expect(&res, KNOX_UNAUTHORIZED, 403, "Principal bob not authorized to read k");
        api_result_done(&res);
        call(f, "GET", "/v0/keys/k/", NULL, NULL, &f->machine, &res);
        expect(&res, KNOX_UNAUTHORIZED, 403, "Principal host1.example.com not authorized to read k");
        api_result_done(&res);

        /* Grants: a machine by prefix, a service exactly; a mux principal qualifies through
         * its second member. */
        call(f, "PUT", "/v0/keys/k/access/", NULL,
             "acl=%5B%7B%22type%22%3A%22MachinePrefix%22%2C%22id%22%3A%22host1%22%2C%22access%22%3A%22Read%22%7D%2C"
             "%7B%22type%22%3A%22Service%22%2C%22id%22%3A%22spiffe%3A%2F%2Fexample.com%2Fsvc%22%2C%22access%22%3A%22Read%22%7D%5D",
             &f->alice, &res);
        expect(&res, KNOX_OK, 200, "");
        api_result_done(&res);
        call(f, "GET", "/v0/keys/k/", NULL, NULL, &f->machine, &res);
        expect(&res, KNOX_OK, 200, "");
        api_result_done(&res);
        call(f, "GET", "/v0/keys/k/", NULL, NULL, &f->mux, &res);
        expect(&res, KNOX_OK, 200, "");
        api_result_done(&res);
        /* Read is not Write. */
        call(f, "POST", "/v0/keys/k/versions/", NULL, "data=eA%3D%3D", &f->machine, &res);
        expect(&res, KNOX_UNAUTHORIZED, 403, "Principal host1.example.com not authorized to write k");
        api_result_done(&res);

        snprintf(body, sizeof(body), "status=%%22Primary%%22");
        (void) body;
}

static void test_versions(void **state) {
        Fixture *f = *state;
        char path[128];
        ApiResult res;
        uint64_t v1, v2;
        json_object *o;
        const char *err;

        v1 = create(f, "r", "YQ%3D%3D");
        call(f, "POST", "/v0/keys/r/versions/", NULL, "data=Yg%3D%3D", &f->alice, &res);
        assert_int_equal(json_parse(res.data.data, res.data.len, &o, &err), 0);
        assert_int_equal(json_get_uint64(o, &v2), 0);
        json_object_put(o);
        api_result_done(&res);

        call(f, "POST", "/v0/keys/r/versions/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, "Missing parameter 'data'");
        api_result_done(&res);
        call(f, "POST", "/v0/keys/r/versions/", NULL, "data=", &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, "Parameter 'data' is empty");
        api_result_done(&res);
        call(f, "POST", "/v0/keys/r/versions/", NULL, "data=YQ", &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, "illegal base64 data at input byte 0");
        api_result_done(&res);
        call(f, "POST", "/v0/keys/none/versions/", NULL, "data=YQ%3D%3D", &f->alice, &res);
        expect(&res, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST, 404, "No such key none");
        api_result_done(&res);

        snprintf(path, sizeof(path), "/v0/keys/r/versions/%" PRIu64 "/", v1);
        call(f, "PUT", path, NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, "Missing parameter 'status'");
        api_result_done(&res);
        call(f, "PUT", path, NULL, "status=%22Inactive%22", &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, "Version must be Active to demote to Inactive");
        api_result_done(&res);
        call(f, "PUT", path, NULL, "status=%22Active%22", &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400,
               "Primary Key can not be demoted. Specify Active key to promote.");
        api_result_done(&res);
        call(f, "PUT", "/v0/keys/r/versions/abc/", NULL, "status=%22Active%22", &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, "strconv.ParseUint: parsing \"abc\": invalid syntax");
        api_result_done(&res);
        call(f, "PUT", "/v0/keys/r/versions/99999999999999999999/", NULL, "status=%22Active%22", &f->alice,
             &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400,
               "strconv.ParseUint: parsing \"99999999999999999999\": value out of range");
        api_result_done(&res);
        call(f, "PUT", "/v0/keys/r/versions/1/", NULL, "status=%22Primary%22", &f->alice, &res);
        expect(&res, KNOX_KEY_VERSION_DOES_NOT_EXIST, 404, "Key version not found");
        api_result_done(&res);
        call(f, "PUT", path, NULL, "status=%22Primary%22", &f->bob, &res);
        expect(&res, KNOX_UNAUTHORIZED, 403, "Principal bob not authorized to write r");
        api_result_done(&res);

        /* Promote v2: v1 becomes Active. */
        snprintf(path, sizeof(path), "/v0/keys/r/versions/%" PRIu64 "/", v2);
        call(f, "PUT", path, NULL, "status=%22Primary%22", &f->alice, &res);
        expect(&res, KNOX_OK, 200, "");
        assert_true(res.changed);
        api_result_done(&res);
        {
                _cleanup_(key_freep) Key *k = NULL;
                int64_t ver;

                assert_int_equal(store_get(f->store, "r", &k, &ver), 0);
                assert_int_equal(key_find_version(k, v1)->status, VERSION_STATUS_ACTIVE);
                assert_int_equal(key_find_version(k, v2)->status, VERSION_STATUS_PRIMARY);
        }
}

static void test_access_and_delete(void **state) {
        Fixture *f = *state;
        ApiResult res;

        create(f, "a", "YQ%3D%3D");

        call(f, "PUT", "/v0/keys/a/access/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, "Missing acl and access parameters");
        api_result_done(&res);
        call(f, "PUT", "/v0/keys/a/access/", NULL, "acl=%5Bx", &f->alice, &res);
        expect(&res, KNOX_BAD_REQUEST_DATA, 400, NULL);
        api_result_done(&res);
        call(f, "PUT", "/v0/keys/zz/access/", NULL, "acl=%5B%5D", &f->alice, &res);
        expect(&res, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST, 404, "No such key zz");
        api_result_done(&res);
        call(f, "PUT", "/v0/keys/a/access/", NULL, "acl=%5B%5D", &f->bob, &res);
        expect(&res, KNOX_UNAUTHORIZED, 403, "Principal bob not authorized to update access for a");
        api_result_done(&res);
        call(f, "PUT", "/v0/keys/a/access/", NULL,
             "acl=%5B%7B%22type%22%3A%22ServicePrefix%22%2C%22id%22%3A%22spiffe%3A%2F%2Fexample.com%2Fsvc%22%2C%22access%22%3A%22Read%22%7D%5D",
             &f->alice, &res);
        expect(&res, KNOX_BAD_PRINCIPAL_IDENTIFIER, 400, NULL);
        api_result_done(&res);

        /* `access`, as JSON and as unpadded URL-safe base64 of the JSON: bob gets Write. */
        call(f, "PUT", "/v0/keys/a/access/", NULL,
             "access=%7B%22type%22%3A%22User%22%2C%22id%22%3A%22bob%22%2C%22access%22%3A%22Read%22%7D",
             &f->alice, &res);
        expect(&res, KNOX_OK, 200, "");
        api_result_done(&res);
        /* base64url of {"type":"User","id":"bob","access":"Write"} */
        call(f, "PUT", "/v0/keys/a/access/", NULL,
             "access=eyJ0eXBlIjoiVXNlciIsImlkIjoiYm9iIiwiYWNjZXNzIjoiV3JpdGUifQ", &f->alice, &res);
        expect(&res, KNOX_OK, 200, "");
        api_result_done(&res);
        call(f, "GET", "/v0/keys/a/access/", NULL, NULL, &f->bob, &res);
        assert_string_equal(
                res.data.data,
                "[{\"type\":\"User\",\"id\":\"alice\",\"access\":\"Admin\"},"
                "{\"type\":\"UserGroup\",\"id\":\"security-team\",\"access\":\"Admin\"},"
                "{\"type\":\"User\",\"id\":\"bob\",\"access\":\"Write\"}]");
        api_result_done(&res);

        /* None removes; bob cannot delete (Write is not Admin). */
        call(f, "DELETE", "/v0/keys/a/", NULL, NULL, &f->bob, &res);
        expect(&res, KNOX_UNAUTHORIZED, 403, "Principal bob not authorized to delete a");
        api_result_done(&res);
        call(f, "PUT", "/v0/keys/a/access/", NULL,
             "acl=%5B%7B%22type%22%3A%22User%22%2C%22id%22%3A%22bob%22%2C%22access%22%3A%22None%22%7D%5D",
             &f->alice, &res);
        expect(&res, KNOX_OK, 200, "");
        api_result_done(&res);
        call(f, "GET", "/v0/keys/a/access/", NULL, NULL, &f->bob, &res);
        assert_null(strstr(res.data.data, "bob"));
        api_result_done(&res);

        call(f, "DELETE", "/v0/keys/a/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_OK, 200, "");
        assert_int_equal(res.data.len, 0);
        api_result_done(&res);
        call(f, "DELETE", "/v0/keys/a/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST, 404, "No such key a");
        api_result_done(&res);
        call(f, "GET", "/v0/keys/a/access/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST, 404, "No such key a");
        api_result_done(&res);
}

static void test_list_and_watch(void **state) {
        Fixture *f = *state;
        _cleanup_(key_freep) Key *k = NULL;
        char query[256];
        ApiResult res;
        const char *err;

        call(f, "GET", "/v0/keys/", NULL, NULL, &f->machine, &res);
        expect(&res, KNOX_OK, 200, "");
        assert_string_equal(res.data.data, "[]");
        assert_false(res.wait);
        api_result_done(&res);

        create(f, "one", "YQ%3D%3D");
        create(f, "two", "YQ%3D%3D");
        call(f, "GET", "/v0/keys/", "", NULL, &f->machine, &res);
        assert_string_equal(res.data.data, "[\"one\",\"two\"]");
        api_result_done(&res);

        /* Changed-keys query: unknown hash or NONE lists the key; a missing key is left out. */
        call(f, "GET", "/v0/keys/", "one=NONE&two=&three=", NULL, &f->machine, &res);
        assert_string_equal(res.data.data, "[\"one\",\"two\"]");
        api_result_done(&res);

        assert_int_equal(store_get(f->store, "one", &k, &(int64_t){0}), 0);
        snprintf(query, sizeof(query), "one=%s&two=x&one=%s", "stale", k->hash);
        call(f, "GET", "/v0/keys/", query, NULL, &f->machine, &res);
        assert_string_equal(res.data.data, "[\"two\"]"); /* the last value of "one" wins */
        assert_false(res.wait);
        api_result_done(&res);

        snprintf(query, sizeof(query), "one=%s", k->hash);
        call(f, "GET", "/v0/keys/", query, NULL, &f->machine, &res);
        assert_string_equal(res.data.data, "[]");
        assert_true(res.wait); /* nothing new: a watch would wait */
        api_result_done(&res);
        (void) err;
}

/* One GET /v0/keys/?query by a machine: the listed ids as JSON, and whether a watch would wait. */
static void check_changed(Fixture *f, const char *query, const char *want, bool wait) {
        ApiResult res;

        call(f, "GET", "/v0/keys/", query, NULL, &f->machine, &res);
        expect(&res, KNOX_OK, 200, "");
        assert_string_equal(res.data.data, want);
        assert_int_equal(res.wait, wait);
        api_result_done(&res);
}

static void test_changed_keys(void **state) {
        Fixture *f = *state;
        _cleanup_(key_freep) Key *one = NULL, *two = NULL;
        _cleanup_free_ char *big = NULL;
        char query[512];
        size_t n = 0;

        create(f, "one", "YQ%3D%3D");
        create(f, "two", "Yg%3D%3D");
        assert_int_equal(store_get(f->store, "one", &one, NULL), 0);
        assert_int_equal(store_get(f->store, "two", &two, NULL), 0);

        /* A key named again and again is listed once, at its first place in the query
         * (Knox lists in DB order; clients do not depend on the order). */
        check_changed(f, "two=NONE&one=&two=x&one=NONE&two=&three=", "[\"two\",\"one\"]", false);
        check_changed(f, "two=&one=", "[\"two\",\"one\"]", false);
        check_changed(f, "three=&three=NONE&one=", "[\"one\"]", false);

        /* Only its last value counts, whichever way it goes. */
        snprintf(
                query, sizeof(query), "one=%s&two=%s&one=NONE&two=x&two=%s", one->hash, two->hash,
                two->hash);
        check_changed(f, query, "[\"one\"]", false);
        snprintf(query, sizeof(query), "two=NONE&one=%s&two=%s&one=%s", one->hash, two->hash, one->hash);
        check_changed(f, query, "[]", true);

        /* The value must be the whole hash; a key with a NUL in it names no key. */
        snprintf(query, sizeof(query), "one=%.63s&two=%s0", one->hash, two->hash);
        check_changed(f, query, "[\"one\",\"two\"]", false);
        snprintf(query, sizeof(query), "one=%s%%00&two=%s", one->hash, two->hash);
        check_changed(f, query, "[\"one\"]", false);
        check_changed(f, "one%00=NONE&two%00x=", "[]", true);
        check_changed(f, "one%00=NONE&one=", "[\"one\"]", false);

        /* As many fields as a query may hold: "one" 1023 times, then once with its hash. */
        big = malloc(FORM_FIELDS_MAX * 8 + KEY_HASH_HEX_SIZE);
        assert_non_null(big);
        for (size_t i = 0; i + 1 < FORM_FIELDS_MAX; i++)
                n += (size_t) snprintf(big + n, 16, i % 2 ? "one=x&" : "one=&");
        snprintf(big + n, 5 + KEY_HASH_HEX_SIZE, "one=%s", one->hash);
        check_changed(f, big, "[]", true);
        /* ... and 1024 distinct ids, two of them stored. */
        n = 0;
        for (size_t i = 0; i + 2 < FORM_FIELDS_MAX; i++)
                n += (size_t) snprintf(big + n, 16, "k%zu=&", i);
        snprintf(big + n, 16, "two=&one=");
        check_changed(f, big, "[\"two\",\"one\"]", false);

        /* A stored hash that is not one differs from every value: the key is listed, and its
         * GET tells what is wrong. */
        assert_int_equal(
                sqlite3_exec(
                        store_sqlite_handle(f->store),
                        "UPDATE secrets SET version_hash = hex(randomblob(40)) WHERE id = 'two'", NULL, NULL,
                        NULL),
                SQLITE_OK);
        snprintf(query, sizeof(query), "one=%s&two=%s", one->hash, two->hash);
        check_changed(f, query, "[\"two\"]", false);
}

static void test_not_found_and_method(void **state) {
        Fixture *f = *state;
        ApiResult res;

        call(f, "GET", "/v0/nothing/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_NOT_FOUND, 404, "");
        assert_int_equal(res.data.len, 0);
        api_result_done(&res);
        call(f, "PATCH", "/v0/keys/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_NOT_FOUND, 404, "Method not allowed");
        api_result_done(&res);
}

static void test_whoami_and_body(void **state) {
        Fixture *f = *state;
        _cleanup_buf_ Buf body = BUF_INIT;
        ApiResult res;

        call(f, "GET", "/v0/auth/whoami/", NULL, NULL, &f->mux, &res);
        expect(&res, KNOX_OK, 200, "");
        assert_string_equal(
                res.data.data,
                "{\"principal\":\"host2.example.com\",\"type\":\"mux[mtls=\\u003emachine,spiffe-fallback=\\u003eservice]\","
                "\"principals\":[{\"id\":\"host2.example.com\",\"type\":\"machine\",\"provider\":\"mtls\",\"groups\":[]},"
                "{\"id\":\"spiffe://example.com/svc\",\"type\":\"service\",\"provider\":\"spiffe-fallback\",\"groups\":[]}]}");
        api_result_done(&res);

        call(f, "GET", "/v0/keys/nope/", NULL, NULL, &f->alice, &res);
        assert_int_equal(api_result_body(&res, "h", 42, &body), 0);
        assert_string_equal(
                body.data,
                "{\"status\":\"error\",\"code\":4,\"host\":\"h\",\"ts\":42,\"message\":\"No such key nope\",\"data\":null}\n");
        api_result_done(&res);
}

static void test_cache(void **state) {
        Fixture *f = *state;
        _cleanup_(key_cache_freep) KeyCache *cache = key_cache_new();
        _Atomic uint64_t generation = 1;
        _cleanup_(key_freep) Key *direct = NULL;
        int64_t version;
        ApiResult res;

        assert_non_null(cache);
        f->api.cache = cache;
        f->api.generation = &generation;

        create(f, "c", "YQ%3D%3D");
        assert_true(generation > 1); /* the create moved it on */

        call(f, "GET", "/v0/keys/c/access/", NULL, NULL, &f->bob, &res);
        expect(&res, KNOX_OK, 200, "");
        api_result_done(&res);
        call(f, "GET", "/v0/keys/c/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_OK, 200, "");
        api_result_done(&res);

        /* The cache holds no plaintext between requests. */
        {
                Key *k = key_cache_get(cache, "c", generation, NULL);

                assert_non_null(k);
                for (size_t i = 0; i < k->n_versions; i++)
                        assert_null(k->versions[i].data);
        }

        /* A write that bypasses the API (another process) is not seen until the generation
         * moves, which is what the server's poll of the change counter does. */
        assert_int_equal(store_get(f->store, "c", &direct, &version), 0);
        acl_done(&direct->acl);
        assert_int_equal(store_update(f->store, direct, version), 0);
        call(f, "GET", "/v0/keys/c/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_OK, 200, ""); /* still the cached record */
        api_result_done(&res);
        generation++;
        call(f, "GET", "/v0/keys/c/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_UNAUTHORIZED, 403, "Principal alice not authorized to read c");
        api_result_done(&res);

        /* A write through the API is seen at once by the next read. */
        call(f, "DELETE", "/v0/keys/c/", NULL, NULL, &f->alice, &res);
        expect(&res, KNOX_UNAUTHORIZED, 403, NULL);
        api_result_done(&res);
        create(f, "d", "YQ%3D%3D");
        call(f, "GET", "/v0/keys/d/", NULL, NULL, &f->bob, &res);
        expect(&res, KNOX_UNAUTHORIZED, 403, NULL);
        api_result_done(&res);
        call(f, "PUT", "/v0/keys/d/access/", NULL,
             "acl=%5B%7B%22type%22%3A%22User%22%2C%22id%22%3A%22bob%22%2C%22access%22%3A%22Read%22%7D%5D",
             &f->alice, &res);
        expect(&res, KNOX_OK, 200, "");
        api_result_done(&res);
        call(f, "GET", "/v0/keys/d/", NULL, NULL, &f->bob, &res);
        expect(&res, KNOX_OK, 200, "");
        api_result_done(&res);

        f->api.cache = NULL;
        f->api.generation = NULL;
}

/* Plaintext never lives in the worker's cache of records: while a GET opens a key's
 * versions (here through a remote cryptor that hands every open to the real one, as
 * keywardd's key holder does with Knox's form), no version of the cached record holds data. */
typedef struct CacheWatch {
        const Cryptor *local;
        KeyCache *cache;
        _Atomic uint64_t *generation;
        const char *key_id;
        unsigned opens, plaintext_seen;
} CacheWatch;

static int watch_open(void *userdata, const char *key_id, const KeyVersion *v, Secret **ret) {
        CacheWatch *w = userdata;
        Key *cached = key_cache_get(w->cache, w->key_id, *w->generation, NULL);
        KeyVersion copy = *v;
        int r;

        w->opens++;
        assert_non_null(cached); /* the record read for this GET is the cached one */
        for (size_t i = 0; i < cached->n_versions; i++)
                if (cached->versions[i].data)
                        w->plaintext_seen++;
        copy.data = NULL;
        r = cryptor_open_version(w->local, key_id, &copy);
        if (r >= 0)
                *ret = copy.data;
        return r;
}

static int watch_seal(
        _unused_ void *userdata,
        _unused_ const char *key_id,
        _unused_ const KeyVersion *v,
        _unused_ uint8_t **ret_sealed,
        _unused_ size_t *ret_sealed_size,
        _unused_ uint8_t **ret_crypt) {
        return -EOPNOTSUPP; /* the test only reads */
}

static void test_cache_no_plaintext(void **state) {
        Fixture *f = *state;
        _cleanup_(key_cache_freep) KeyCache *cache = key_cache_new();
        _cleanup_(cryptor_freep) Cryptor *remote = NULL;
        _Atomic uint64_t generation = 1;
        CacheWatch w = {.local = f->cryptor, .cache = cache, .generation = &generation, .key_id = "p"};
        CryptorRemote watcher = {.open = watch_open, .seal = watch_seal, .userdata = &w};
        uint8_t id[CRYPTOR_KEY_ID_SIZE];
        ApiResult res;

        assert_non_null(cache);
        f->api.cache = cache;
        f->api.generation = &generation;
        create(f, "p", "YQ%3D%3D");
        for (unsigned i = 0; i < 2; i++) {
                call(f, "POST", "/v0/keys/p/versions/", NULL, "data=Yg%3D%3D", &f->alice, &res);
                expect(&res, KNOX_OK, 200, "");
                api_result_done(&res);
        }

        cryptor_key_id(f->cryptor, id);
        assert_int_equal(cryptor_new_remote(&watcher, id, &remote), 0);
        f->api.cryptor = remote;
        for (unsigned i = 0; i < 2; i++) { /* read from the store and cached, then from the cache */
                call(f, "GET", "/v0/keys/p/", NULL, NULL, &f->alice, &res);
                expect(&res, KNOX_OK, 200, "");
                assert_non_null(strstr(res.data.data, "\"data\":\"YQ==\""));
                assert_non_null(strstr(res.data.data, "\"data\":\"Yg==\""));
                api_result_done(&res);
        }
        assert_int_equal(w.opens, 6);
        assert_int_equal(w.plaintext_seen, 0);

        f->api.cryptor = f->cryptor;
        f->api.cache = NULL;
        f->api.generation = NULL;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_match),
                cmocka_unit_test_setup_teardown(test_create_and_get, setup, teardown),
                cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_get_filters_and_auth, setup, teardown),
                cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_access_and_delete, setup, teardown),
                cmocka_unit_test_setup_teardown(test_list_and_watch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_changed_keys, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, teardown),
                cmocka_unit_test_setup_teardown(test_whoami_and_body, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cache_no_plaintext, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
