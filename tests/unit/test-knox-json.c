/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include "knox-json.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "acl-json.h"
#include "json-util.h"

#define BIG_ID UINT64_C(9007199254740993) /* 2^53 + 1: a double would round it */
#define BIG_TS INT64_C(1800000000123456789)
/* sha256(LE64(BIG_ID) || LE64(2) || 8 zero bytes) */
#define TEST_HASH "acc7e60f287ee2f4778a840e9547b69d39df3c5e22e9e0cb129bdce83f7ec4f0"
#define INVALID_KEY_CONTENT "invalid key content for the remote key"

#define V1_JSON \
        "{\"id\":9007199254740993,\"data\":\"c2VjcmV0\",\"status\":\"Primary\",\"ts\":1800000000123456789}"
#define V2_JSON "{\"id\":2,\"data\":\"AP8=\",\"status\":\"Active\",\"ts\":-1}"
#define V3_JSON "{\"id\":9223372036854775807,\"data\":\"\",\"status\":\"Inactive\",\"ts\":2}"
#define ACL_JSON \
        "[{\"type\":\"User\",\"id\":\"alice\",\"access\":\"Admin\"},{\"type\":\"Machine\",\"id\":\"m1\",\"access\":\"Read\"}]"
#define KEY_HEAD "{\"id\":\"test:key\",\"acl\":"
#define KEY_TAIL ",\"hash\":\"" TEST_HASH "\"}"

static Key *make_test_key(void) {
        Key *k = key_new();

        assert_non_null(k);
        k->id = strdup("test:key");
        assert_non_null(k->id);

        k->acl.entries = calloc(2, sizeof(Access));
        assert_non_null(k->acl.entries);
        k->acl.entries[0] = (Access){PRINCIPAL_TYPE_USER, ACCESS_ADMIN, strdup("alice")};
        k->acl.entries[1] = (Access){PRINCIPAL_TYPE_MACHINE, ACCESS_READ, strdup("m1")};
        k->acl.n = 2;

        KeyVersion v1 = {.id = BIG_ID, .status = VERSION_STATUS_PRIMARY, .ts = BIG_TS};
        v1.data = secret_new_copy("secret", 6);
        KeyVersion v2 = {.id = 2, .status = VERSION_STATUS_ACTIVE, .ts = -1};
        v2.data = secret_new_copy("\x00\xff", 2);
        KeyVersion v3 = {.id = VERSION_ID_MAX, .status = VERSION_STATUS_INACTIVE, .ts = 2};
        v3.data = secret_new(0);
        assert_non_null(v1.data);
        assert_non_null(v2.data);
        assert_non_null(v3.data);
        assert_int_equal(key_append_version(k, &v1), 0);
        assert_int_equal(key_append_version(k, &v2), 0);
        assert_int_equal(key_append_version(k, &v3), 0);
        return k;
}

static void assert_same_version(const KeyVersion *a, const KeyVersion *b) {
        assert_true(a->id == b->id);
        assert_int_equal(a->status, b->status);
        assert_true(a->ts == b->ts);
        assert_non_null(a->data);
        assert_non_null(b->data);
        assert_int_equal(a->data->size, b->data->size);
        assert_memory_equal(a->data->data, b->data->data, a->data->size);
}

static void test_http_status(void **state) {
        static const int expected[_KNOX_CODE_MAX] = {200, 500, 400, 404, 404, 401, 403,
                                                     501, 404, 400, 400, 400, 400, 400};
        (void) state;

        for (KnoxCode c = 0; c < _KNOX_CODE_MAX; c++)
                assert_int_equal(knox_code_http_status(c), expected[c]);
        assert_int_equal(knox_code_http_status(_KNOX_CODE_MAX), 500);
        assert_int_equal(knox_code_http_status(_KNOX_CODE_INVALID), 500);
}

static void test_envelope_ok(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        (void) state;

        assert_int_equal(knox_envelope_begin(&b, KNOX_OK, "host1", INT64_C(1700000000123456789), NULL), 0);
        assert_int_equal(buf_puts(&b, "12345"), 0);
        assert_int_equal(knox_envelope_end(&b), 0);
        assert_string_equal(
                b.data,
                "{\"status\":\"ok\",\"code\":0,\"host\":\"host1\",\"ts\":1700000000123456789,"
                "\"message\":\"\",\"data\":12345}\n");
}

static void test_envelope_error(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        (void) state;

        /* Go escapes <, > and & in strings. */
        assert_int_equal(
                knox_envelope_begin(
                        &b, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST, "h<&>", 42, "No such key <a&b>\"x\""),
                0);
        assert_int_equal(buf_puts(&b, "null"), 0);
        assert_int_equal(knox_envelope_end(&b), 0);
        assert_string_equal(
                b.data,
                "{\"status\":\"error\",\"code\":4,\"host\":\"h\\u003c\\u0026\\u003e\",\"ts\":42,"
                "\"message\":\"No such key \\u003ca\\u0026b\\u003e\\\"x\\\"\",\"data\":null}\n");
}

static void test_key_json_exact(void **state) {
        _cleanup_(key_freep) Key *k = make_test_key();
        (void) state;

        assert_string_equal(k->hash, TEST_HASH);

        {
                _cleanup_buf_ Buf b = BUF_INIT_SECURE;
                assert_int_equal(knox_key_json_append(&b, k, VERSION_STATUS_INACTIVE, true), 0);
                assert_string_equal(
                        b.data,
                        KEY_HEAD ACL_JSON ",\"versions\":[" V1_JSON "," V2_JSON "," V3_JSON "]" KEY_TAIL);
        }
        {
                /* GET key: acl always [], Active filter, hash of the full list. */
                _cleanup_buf_ Buf b = BUF_INIT_SECURE;
                assert_int_equal(knox_key_json_append(&b, k, VERSION_STATUS_ACTIVE, false), 0);
                assert_string_equal(b.data, KEY_HEAD "[],\"versions\":[" V1_JSON "," V2_JSON "]" KEY_TAIL);
        }
        {
                _cleanup_buf_ Buf b = BUF_INIT_SECURE;
                assert_int_equal(knox_key_json_append(&b, k, VERSION_STATUS_PRIMARY, false), 0);
                assert_string_equal(b.data, KEY_HEAD "[],\"versions\":[" V1_JSON "]" KEY_TAIL);
        }
        {
                /* An empty ACL is [] even with_acl, never null. */
                _cleanup_buf_ Buf b = BUF_INIT;
                Acl saved = k->acl;
                k->acl = (Acl){};
                assert_int_equal(knox_key_json_append(&b, k, VERSION_STATUS_PRIMARY, true), 0);
                k->acl = saved;
                assert_string_equal(b.data, KEY_HEAD "[],\"versions\":[" V1_JSON "]" KEY_TAIL);
        }
        {
                /* Appends after what is there: inside an envelope. */
                _cleanup_buf_ Buf b = BUF_INIT_SECURE;
                assert_int_equal(knox_envelope_begin(&b, KNOX_OK, "h", 1, ""), 0);
                assert_int_equal(knox_key_json_append(&b, k, VERSION_STATUS_PRIMARY, false), 0);
                assert_int_equal(knox_envelope_end(&b), 0);
                assert_string_equal(
                        b.data,
                        "{\"status\":\"ok\",\"code\":0,\"host\":\"h\",\"ts\":1,\"message\":\"\",\"data\":" KEY_HEAD
                        "[],\"versions\":[" V1_JSON "]" KEY_TAIL "}\n");
        }
}

static void test_version_json(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        KeyVersion v = {.id = 1, .status = VERSION_STATUS_ACTIVE, .ts = 5};
        (void) state;

        /* Data is required, and the status must be one of the three. */
        assert_int_equal(knox_version_json_append(&b, &v), -EINVAL);
        v.data = secret_new_copy("hello!?", 7);
        assert_non_null(v.data);
        v.status = _VERSION_STATUS_MAX;
        assert_int_equal(knox_version_json_append(&b, &v), -EINVAL);
        v.status = VERSION_STATUS_ACTIVE;
        buf_truncate(&b, 0);
        assert_int_equal(knox_version_json_append(&b, &v), 0);
        assert_string_equal(b.data, "{\"id\":1,\"data\":\"aGVsbG8hPw==\",\"status\":\"Active\",\"ts\":5}");
        key_version_done(&v);
}

static void test_key_round_trip(void **state) {
        _cleanup_(key_freep) Key *k = make_test_key(), *parsed = NULL;
        _cleanup_buf_ Buf b = BUF_INIT_SECURE;
        const char *msg = NULL;
        (void) state;

        assert_int_equal(knox_key_json_append(&b, k, VERSION_STATUS_INACTIVE, true), 0);
        assert_int_equal(knox_key_parse(b.data, b.len, &parsed, &msg), 0);
        assert_null(msg);

        assert_string_equal(parsed->id, "test:key");
        assert_string_equal(parsed->hash, TEST_HASH);
        assert_int_equal(parsed->acl.n, 2);
        assert_string_equal(parsed->acl.entries[0].id, "alice");
        assert_int_equal(parsed->acl.entries[0].type, PRINCIPAL_TYPE_USER);
        assert_int_equal(parsed->acl.entries[0].access, ACCESS_ADMIN);
        assert_string_equal(parsed->acl.entries[1].id, "m1");
        assert_int_equal(parsed->acl.entries[1].type, PRINCIPAL_TYPE_MACHINE);
        assert_int_equal(parsed->acl.entries[1].access, ACCESS_READ);
        assert_int_equal(parsed->n_versions, 3);
        for (size_t i = 0; i < 3; i++)
                assert_same_version(&parsed->versions[i], &k->versions[i]);
        /* Exact 64-bit values, not doubles. */
        assert_true(parsed->versions[0].id == BIG_ID);
        assert_true(parsed->versions[0].ts == BIG_TS);
        assert_true(parsed->versions[2].id == VERSION_ID_MAX);
        assert_int_equal(key_validate(parsed, &msg), 0);

        /* And out again, byte for byte. */
        _cleanup_buf_ Buf again = BUF_INIT_SECURE;
        assert_int_equal(knox_key_json_append(&again, parsed, VERSION_STATUS_INACTIVE, true), 0);
        assert_string_equal(again.data, b.data);
}

static void test_key_parse_valid(void **state) {
        _cleanup_(key_freep) Key *k = NULL;
        const char *msg = NULL;
        (void) state;

        /* What a Knox daemon caches: acl [], fields in other order, extra fields, spaces, and
         * Go's case-insensitive field names. */
        static const char json[] =
                " {\"hash\":\"" TEST_HASH "\", \"path\":\"/var/lib/knox/v0/keys/k\",\"ID\":\"k\","
                "\"acl\":[],\"versions\":[{\"ts\":3,\"Status\":\"Primary\",\"data\":\"YQ==\",\"id\":18446744073709551615,"
                "\"crypt\":\"ignored\"}],\"tinkKeyset\":\"x\"}\n";
        assert_int_equal(knox_key_parse(json, strlen(json), &k, &msg), 0);
        assert_string_equal(k->id, "k");
        assert_int_equal(k->acl.n, 0);
        assert_int_equal(k->n_versions, 1);
        assert_true(k->versions[0].id == UINT64_MAX);
        assert_int_equal(k->versions[0].status, VERSION_STATUS_PRIMARY);
        assert_int_equal(k->versions[0].ts, 3);
        assert_int_equal(k->versions[0].data->size, 1);
        assert_memory_equal(k->versions[0].data->data, "a", 1);
        assert_string_equal(k->hash, TEST_HASH);
        assert_null(k->versions[0].sealed);
        assert_null(k->versions[0].crypt);

        /* The tree form, then the caller's wipe. */
        _cleanup_(key_freep) Key *k2 = NULL;
        json_object *o = NULL;
        assert_int_equal(json_parse(json, strlen(json), &o, &msg), 0);
        assert_int_equal(knox_key_from_json(o, &k2, &msg), 0);
        assert_string_equal(k2->id, "k");
        json_wipe(o);
        json_object_put(o);
}

static void assert_key_rejected(const char *json, const char *expected_message) {
        Key *k = NULL;
        const char *msg = NULL;

        assert_int_equal(knox_key_parse(json, strlen(json), &k, &msg), -EBADMSG);
        assert_null(k);
        assert_non_null(msg);
        if (expected_message)
                assert_string_equal(msg, expected_message);
        /* Also without a message pointer. */
        assert_int_equal(knox_key_parse(json, strlen(json), &k, NULL), -EBADMSG);
        assert_null(k);
}

#define VOK "{\"id\":1,\"data\":\"YQ==\",\"status\":\"Primary\",\"ts\":1}"
#define HOK "\"hash\":\"" TEST_HASH "\""

static void test_key_parse_invalid(void **state) {
        (void) state;

        /* Not a key at all. */
        assert_key_rejected("", NULL);
        assert_key_rejected("{", NULL);
        assert_key_rejected("nul", NULL);
        assert_key_rejected("null", "json: key must be an object");
        assert_key_rejected("[]", "json: key must be an object");
        assert_key_rejected("\"k\"", "json: key must be an object");
        assert_key_rejected("{\"id\":\"k\",\"acl\":[],\"versions\":[" VOK "]," HOK "} x", NULL);
        assert_key_rejected("{\"id\":\"k\",\"acl\":[],\"versions\":[" VOK "]," HOK "}{}", NULL);

        /* The Go client's checks. */
        assert_key_rejected("{\"acl\":[],\"versions\":[" VOK "]," HOK "}", INVALID_KEY_CONTENT);
        assert_key_rejected("{\"id\":\"\",\"acl\":[],\"versions\":[" VOK "]," HOK "}", INVALID_KEY_CONTENT);
        assert_key_rejected("{\"id\":null,\"acl\":[],\"versions\":[" VOK "]," HOK "}", INVALID_KEY_CONTENT);
        assert_key_rejected("{\"id\":\"k\",\"versions\":[" VOK "]," HOK "}", INVALID_KEY_CONTENT);
        assert_key_rejected(
                "{\"id\":\"k\",\"acl\":null,\"versions\":[" VOK "]," HOK "}", INVALID_KEY_CONTENT);
        assert_key_rejected("{\"id\":\"k\",\"acl\":[]," HOK "}", INVALID_KEY_CONTENT);
        assert_key_rejected("{\"id\":\"k\",\"acl\":[],\"versions\":null," HOK "}", INVALID_KEY_CONTENT);
        assert_key_rejected("{\"id\":\"k\",\"acl\":[],\"versions\":[]," HOK "}", INVALID_KEY_CONTENT);
        assert_key_rejected("{\"id\":\"k\",\"acl\":[],\"versions\":[" VOK "]}", INVALID_KEY_CONTENT);
        assert_key_rejected(
                "{\"id\":\"k\",\"acl\":[],\"versions\":[" VOK "],\"hash\":\"\"}", INVALID_KEY_CONTENT);
        assert_key_rejected(
                "{\"id\":\"k\",\"acl\":[],\"versions\":[" VOK "],\"hash\":null}", INVALID_KEY_CONTENT);

        /* Wrong JSON types. */
        assert_key_rejected(
                "{\"id\":5,\"acl\":[],\"versions\":[" VOK "]," HOK "}", "json: key id must be a string");
        assert_key_rejected(
                "{\"id\":\"k\\u0000x\",\"acl\":[],\"versions\":[" VOK "]," HOK "}",
                "json: key id must be a string");
        assert_key_rejected(
                "{\"id\":\"k\",\"acl\":{},\"versions\":[" VOK "]," HOK "}", "json: ACL must be an array");
        assert_key_rejected(
                "{\"id\":\"k\",\"acl\":[],\"versions\":{}," HOK "}", "json: key versions must be an array");
        assert_key_rejected(
                "{\"id\":\"k\",\"acl\":[],\"versions\":[" VOK "],\"hash\":1}",
                "json: key hash must be a string");
        assert_key_rejected(
                "{\"id\":\"k\",\"acl\":[],\"versions\":[" VOK "],\"hash\":\"abc\"}",
                "json: key hash must be 64 lowercase hex digits");
        assert_key_rejected(
                "{\"id\":\"k\",\"acl\":[],\"versions\":[" VOK
                "],\"hash\":\"ACC7E60F287EE2F4778A840E9547B69D39DF3C5E22E9E0CB129BDCE83F7EC4F0\"}",
                "json: key hash must be 64 lowercase hex digits");
        assert_key_rejected(
                "{\"id\":\"k\",\"acl\":[],\"versions\":[" VOK "],\"hash\":\"" TEST_HASH "0\"}",
                "json: key hash must be 64 lowercase hex digits");

        /* ACL entries: unknown principal types are rejected (Knox would store type -1). */
        assert_key_rejected(
                "{\"id\":\"k\",\"acl\":[{\"type\":\"Robot\",\"id\":\"r\",\"access\":\"Read\"}],\"versions\":[" VOK
                "]," HOK "}",
                "json: Invalid PrincipalType to convert");
        assert_key_rejected(
                "{\"id\":\"k\",\"acl\":[{\"type\":\"User\",\"id\":\"r\",\"access\":\"Owner\"}],\"versions\":[" VOK
                "]," HOK "}",
                "json: Invalid AccessType to convert");
        assert_key_rejected(
                "{\"id\":\"k\",\"acl\":[null],\"versions\":[" VOK "]," HOK "}",
                "json: ACL entry must be an object");

        /* Versions. */
#define KEY_WITH_VERSION(v) "{\"id\":\"k\",\"acl\":[],\"versions\":[" v "]," HOK "}"
        static const char *const id_bad[] = {
                KEY_WITH_VERSION("{\"data\":\"YQ==\",\"status\":\"Primary\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":-1,\"data\":\"YQ==\",\"status\":\"Primary\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":1.5,\"data\":\"YQ==\",\"status\":\"Primary\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":\"1\",\"data\":\"YQ==\",\"status\":\"Primary\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":null,\"data\":\"YQ==\",\"status\":\"Primary\",\"ts\":1}"),
        };
        for (size_t i = 0; i < ELEMENTSOF(id_bad); i++)
                assert_key_rejected(id_bad[i], "json: key version id must be an unsigned 64-bit integer");
        /* Beyond 64 bits: the JSON layer refuses it already. */
        assert_key_rejected(
                KEY_WITH_VERSION(
                        "{\"id\":18446744073709551616,\"data\":\"YQ==\",\"status\":\"Primary\",\"ts\":1}"),
                NULL);

        static const char *const status_bad[] = {
                KEY_WITH_VERSION("{\"id\":1,\"data\":\"YQ==\",\"status\":\"Foo\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":1,\"data\":\"YQ==\",\"status\":\"primary\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":1,\"data\":\"YQ==\",\"status\":0,\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":1,\"data\":\"YQ==\",\"ts\":1}"),
        };
        for (size_t i = 0; i < ELEMENTSOF(status_bad); i++)
                assert_key_rejected(status_bad[i], "json: Invalid VersionStatus to convert");

        static const char *const ts_bad[] = {
                KEY_WITH_VERSION("{\"id\":1,\"data\":\"YQ==\",\"status\":\"Primary\"}"),
                KEY_WITH_VERSION("{\"id\":1,\"data\":\"YQ==\",\"status\":\"Primary\",\"ts\":\"1\"}"),
                KEY_WITH_VERSION(
                        "{\"id\":1,\"data\":\"YQ==\",\"status\":\"Primary\",\"ts\":9223372036854775808}"),
        };
        for (size_t i = 0; i < ELEMENTSOF(ts_bad); i++)
                assert_key_rejected(ts_bad[i], "json: key version ts must be a 64-bit integer");

        static const char *const data_bad[] = {
                KEY_WITH_VERSION("{\"id\":1,\"status\":\"Primary\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":1,\"data\":null,\"status\":\"Primary\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":1,\"data\":\"YQ\",\"status\":\"Primary\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":1,\"data\":\"YQ=\",\"status\":\"Primary\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":1,\"data\":\"Y-_=\",\"status\":\"Primary\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":1,\"data\":\"YQ==YQ==\",\"status\":\"Primary\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":1,\"data\":\"Y Q==\",\"status\":\"Primary\",\"ts\":1}"),
                KEY_WITH_VERSION("{\"id\":1,\"data\":[],\"status\":\"Primary\",\"ts\":1}"),
        };
        for (size_t i = 0; i < ELEMENTSOF(data_bad); i++)
                assert_key_rejected(data_bad[i], "json: key version data must be standard base64");

        assert_key_rejected(KEY_WITH_VERSION("1"), "json: key version must be an object");
        assert_key_rejected(KEY_WITH_VERSION(VOK ",null"), "json: key version must be an object");
#undef KEY_WITH_VERSION
}

static void test_acl_json(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        _cleanup_acl_ Acl acl = {};
        const char *msg = NULL;
        Access a = {};
        (void) state;

        /* Every type and access spelled as Knox does; ids escaped as Go does. */
        static const char *const types[] = {"User",          "UserGroup", "Machine",
                                            "MachinePrefix", "Service",   "ServicePrefix"};
        for (PrincipalType t = 0; t < _PRINCIPAL_TYPE_MAX; t++) {
                char json[128];

                buf_truncate(&b, 0);
                a = (Access){t, ACCESS_WRITE, (char *) "x<y>&"};
                assert_int_equal(access_json_append(&b, &a), 0);
                (void) snprintf(
                        json, sizeof(json),
                        "{\"type\":\"%s\",\"id\":\"x\\u003cy\\u003e\\u0026\",\"access\":\"Write\"}",
                        types[t]);
                assert_string_equal(b.data, json);
        }
        a = (Access){_PRINCIPAL_TYPE_MAX, ACCESS_WRITE, (char *) "x"};
        assert_int_equal(access_json_append(&b, &a), -EINVAL);
        a = (Access){PRINCIPAL_TYPE_USER, _ACCESS_TYPE_MAX, (char *) "x"};
        assert_int_equal(access_json_append(&b, &a), -EINVAL);

        buf_truncate(&b, 0);
        assert_int_equal(acl_json_append(&b, &acl), 0);
        assert_string_equal(b.data, "[]");

        /* Parse: a full array, then each way an entry can be wrong. */
        static const char good[] =
                "[{\"type\":\"UserGroup\",\"id\":\"security-team\",\"access\":\"Admin\"},"
                "{\"type\":\"ServicePrefix\",\"id\":\"spiffe://example.com/\",\"access\":\"None\"},"
                "{\"access\":\"Read\",\"type\":\"MachinePrefix\"}]";
        assert_int_equal(acl_parse(good, strlen(good), &acl, &msg), 0);
        assert_int_equal(acl.n, 3);
        assert_int_equal(acl.entries[0].type, PRINCIPAL_TYPE_USER_GROUP);
        assert_string_equal(acl.entries[0].id, "security-team");
        assert_int_equal(acl.entries[0].access, ACCESS_ADMIN);
        assert_int_equal(acl.entries[1].type, PRINCIPAL_TYPE_SERVICE_PREFIX);
        assert_int_equal(acl.entries[1].access, ACCESS_NONE);
        /* A missing id is "", left for validation to reject. */
        assert_int_equal(acl.entries[2].type, PRINCIPAL_TYPE_MACHINE_PREFIX);
        assert_string_equal(acl.entries[2].id, "");

        buf_truncate(&b, 0);
        assert_int_equal(acl_json_append(&b, &acl), 0);
        assert_string_equal(
                b.data,
                "[{\"type\":\"UserGroup\",\"id\":\"security-team\",\"access\":\"Admin\"},"
                "{\"type\":\"ServicePrefix\",\"id\":\"spiffe://example.com/\",\"access\":\"None\"},"
                "{\"type\":\"MachinePrefix\",\"id\":\"\",\"access\":\"Read\"}]");
        acl_done(&acl);

        /* null is an empty ACL, as in Go. */
        acl.n = 99;
        assert_int_equal(acl_parse("null", 4, &acl, &msg), 0);
        assert_int_equal(acl.n, 0);
        assert_null(acl.entries);
        assert_int_equal(acl_parse(" [ ] ", 5, &acl, &msg), 0);
        assert_int_equal(acl.n, 0);

        static const struct {
                const char *json, *message;
        } bad[] = {
                {"{}", "json: ACL must be an array"},
                {"\"User\"", "json: ACL must be an array"},
                {"[1]", "json: ACL entry must be an object"},
                {"[{\"type\":\"Robot\",\"id\":\"r\",\"access\":\"Read\"}]",
                 "json: Invalid PrincipalType to convert"},
                {"[{\"type\":\"user\",\"id\":\"r\",\"access\":\"Read\"}]",
                 "json: Invalid PrincipalType to convert"},
                {"[{\"type\":1,\"id\":\"r\",\"access\":\"Read\"}]",
                 "json: Invalid PrincipalType to convert"},
                {"[{\"type\":\"User\\u0000\",\"id\":\"r\",\"access\":\"Read\"}]",
                 "json: Invalid PrincipalType to convert"},
                {"[{\"type\":\"User\",\"id\":\"r\",\"access\":\"Owner\"}]",
                 "json: Invalid AccessType to convert"},
                {"[{\"type\":\"User\",\"id\":\"r\",\"access\":3}]", "json: Invalid AccessType to convert"},
                {"[{\"id\":\"r\",\"access\":\"Read\"}]", "json: ACL entry without type"},
                {"[{\"type\":null,\"id\":\"r\",\"access\":\"Read\"}]", "json: ACL entry without type"},
                {"[{\"type\":\"User\",\"id\":\"r\"}]", "json: ACL entry without access"},
                {"[{\"type\":\"User\",\"id\":7,\"access\":\"Read\"}]",
                 "json: ACL entry id must be a string"},
                {"[{\"type\":\"User\",\"id\":\"a\\u0000b\",\"access\":\"Read\"}]",
                 "json: ACL entry id must be a string"},
                {"[{\"type\":\"User\",\"id\":\"a\",\"access\":\"Read\"},{\"type\":\"Robot\",\"id\":\"b\",\"access\":\"Read\"}]",
                 "json: Invalid PrincipalType to convert"},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                Acl out = {};

                msg = NULL;
                assert_int_equal(acl_parse(bad[i].json, strlen(bad[i].json), &out, &msg), -EBADMSG);
                assert_non_null(msg);
                assert_string_equal(msg, bad[i].message);
                assert_int_equal(out.n, 0);
                assert_null(out.entries);
        }
        msg = NULL;
        assert_int_equal(acl_parse("[", 1, &acl, &msg), -EBADMSG);
        assert_non_null(msg);
        assert_int_equal(acl_parse("[", 1, &acl, NULL), -EBADMSG);

        /* One entry, as PUT access sends it. */
        static const char one[] =
                "{\"type\":\"Service\",\"id\":\"spiffe://example.com/svc\",\"access\":\"Read\"}";
        assert_int_equal(access_parse(one, strlen(one), &a, &msg), 0);
        assert_int_equal(a.type, PRINCIPAL_TYPE_SERVICE);
        assert_int_equal(a.access, ACCESS_READ);
        assert_string_equal(a.id, "spiffe://example.com/svc");
        access_done(&a);
        assert_null(a.id);
        static const char null_id[] = "{\"type\":\"User\",\"id\":null,\"access\":\"None\"}";
        assert_int_equal(access_parse(null_id, strlen(null_id), &a, &msg), 0);
        assert_string_equal(a.id, "");
        access_done(&a);
        msg = NULL;
        assert_int_equal(access_parse("[]", 2, &a, &msg), -EBADMSG);
        assert_string_equal(msg, "json: ACL entry must be an object");
        assert_int_equal(access_parse("null", 4, &a, &msg), -EBADMSG);
}

static void test_sealed_versions(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        KeyVersion *parsed = NULL;
        size_t n = 99;
        const char *msg = NULL;
        (void) state;

        uint8_t sealed1[] = {0xde, 0xad, 0xbe, 0xef, 0x00},
                crypt1[13] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
        uint8_t sealed2[] = {0xff}, crypt2[13] = {1};
        KeyVersion v[2] = {
                {.id = BIG_ID,
                 .status = VERSION_STATUS_PRIMARY,
                 .ts = BIG_TS,
                 .sealed = sealed1,
                 .sealed_size = 5,
                 .crypt = crypt1,
                 .crypt_size = 13},
                {.id = 2,
                 .status = VERSION_STATUS_INACTIVE,
                 .ts = 3,
                 .sealed = sealed2,
                 .sealed_size = 1,
                 .crypt = crypt2,
                 .crypt_size = 13},
        };

        assert_int_equal(knox_sealed_versions_json_append(&b, v, 2), 0);
        assert_string_equal(
                b.data,
                "[{\"id\":9007199254740993,\"data\":\"3q2+7wA=\",\"status\":\"Primary\",\"ts\":1800000000123456789,"
                "\"crypt\":\"AAECAwQFBgcICQoLDA==\"},"
                "{\"id\":2,\"data\":\"/w==\",\"status\":\"Inactive\",\"ts\":3,\"crypt\":\"AQAAAAAAAAAAAAAAAA==\"}]");

        assert_int_equal(knox_sealed_versions_parse(b.data, b.len, &parsed, &n, &msg), 0);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < 2; i++) {
                assert_true(parsed[i].id == v[i].id);
                assert_int_equal(parsed[i].status, v[i].status);
                assert_true(parsed[i].ts == v[i].ts);
                assert_int_equal(parsed[i].sealed_size, v[i].sealed_size);
                assert_memory_equal(parsed[i].sealed, v[i].sealed, v[i].sealed_size);
                assert_int_equal(parsed[i].crypt_size, v[i].crypt_size);
                assert_memory_equal(parsed[i].crypt, v[i].crypt, v[i].crypt_size);
                assert_null(parsed[i].data);
        }

        /* The re-encoding is the same bytes. */
        _cleanup_buf_ Buf again = BUF_INIT;
        assert_int_equal(knox_sealed_versions_json_append(&again, parsed, n), 0);
        assert_string_equal(again.data, b.data);
        for (size_t i = 0; i < n; i++)
                key_version_done(&parsed[i]);
        free(parsed);

        /* Empty lists. */
        buf_truncate(&b, 0);
        assert_int_equal(knox_sealed_versions_json_append(&b, NULL, 0), 0);
        assert_string_equal(b.data, "[]");
        parsed = (KeyVersion *) 1;
        assert_int_equal(knox_sealed_versions_parse("[]", 2, &parsed, &n, &msg), 0);
        assert_null(parsed);
        assert_int_equal(n, 0);
        parsed = (KeyVersion *) 1;
        assert_int_equal(knox_sealed_versions_parse("null", 4, &parsed, &n, &msg), 0);
        assert_null(parsed);
        assert_int_equal(n, 0);

        /* A version without its sealed form cannot be written. */
        v[1].crypt = NULL;
        assert_int_equal(knox_sealed_versions_json_append(&b, v, 2), -EINVAL);

        static const struct {
                const char *json, *message;
        } bad[] = {
                {"{}", "json: stored versions must be an array"},
                {"[1]", "json: key version must be an object"},
                {"[{\"id\":1,\"data\":\"/w==\",\"status\":\"Primary\",\"ts\":1}]",
                 "json: stored version crypt must be standard base64"},
                {"[{\"id\":1,\"data\":\"/w==\",\"status\":\"Primary\",\"ts\":1,\"crypt\":\"AQ\"}]",
                 "json: stored version crypt must be standard base64"},
                {"[{\"id\":1,\"data\":\"/w=\",\"status\":\"Primary\",\"ts\":1,\"crypt\":\"AQ==\"}]",
                 "json: stored version data must be standard base64"},
                {"[{\"id\":1,\"status\":\"Primary\",\"ts\":1,\"crypt\":\"AQ==\"}]",
                 "json: stored version data must be standard base64"},
                {"[{\"id\":1,\"data\":\"/w==\",\"status\":\"Gone\",\"ts\":1,\"crypt\":\"AQ==\"}]",
                 "json: Invalid VersionStatus to convert"},
                {"[{\"id\":1,\"data\":\"/w==\",\"status\":\"Primary\",\"ts\":1,\"crypt\":\"AQ==\"},{\"id\":-2}]",
                 "json: key version id must be an unsigned 64-bit integer"},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                parsed = NULL;
                n = 99;
                msg = NULL;
                assert_int_equal(
                        knox_sealed_versions_parse(bad[i].json, strlen(bad[i].json), &parsed, &n, &msg),
                        -EBADMSG);
                assert_string_equal(msg, bad[i].message);
                assert_null(parsed);
                assert_int_equal(n, 99);
        }
        assert_int_equal(knox_sealed_versions_parse("[", 1, &parsed, &n, NULL), -EBADMSG);
}

static void test_response_ok(void **state) {
        _cleanup_(key_freep) Key *k = make_test_key(), *parsed = NULL;
        _cleanup_buf_ Buf b = BUF_INIT_SECURE;
        KnoxResponse r = {};
        const char *msg = NULL;
        (void) state;

        assert_int_equal(knox_envelope_begin(&b, KNOX_OK, "server-1", BIG_TS, ""), 0);
        assert_int_equal(knox_key_json_append(&b, k, VERSION_STATUS_ACTIVE, false), 0);
        assert_int_equal(knox_envelope_end(&b), 0);

        assert_int_equal(knox_response_parse(b.data, b.len, &r, &msg), 0);
        assert_true(r.ok);
        assert_int_equal(r.code, KNOX_OK);
        assert_string_equal(r.host, "server-1");
        assert_true(r.ts == BIG_TS);
        assert_string_equal(r.message, "");
        assert_non_null(r.data);

        assert_int_equal(knox_key_from_json(r.data, &parsed, &msg), 0);
        assert_string_equal(parsed->id, "test:key");
        assert_int_equal(parsed->acl.n, 0);
        assert_int_equal(parsed->n_versions, 2);
        assert_same_version(&parsed->versions[0], &k->versions[0]);
        assert_same_version(&parsed->versions[1], &k->versions[1]);
        assert_string_equal(parsed->hash, TEST_HASH);
        knox_response_done(&r);
        assert_null(r.data);
        assert_null(r.host);
        knox_response_done(&r);

        /* A scalar payload, as create returns. */
        static const char created[] =
                "{\"status\":\"ok\",\"code\":0,\"host\":\"h\",\"ts\":1,\"message\":\"\",\"data\":9223372036854775807}\n";
        uint64_t id = 0;
        assert_int_equal(knox_response_parse(created, strlen(created), &r, &msg), 0);
        assert_true(r.ok);
        assert_int_equal(json_get_uint64(r.data, &id), 0);
        assert_true(id == VERSION_ID_MAX);
        knox_response_done(&r);
}

static void test_response_error(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        KnoxResponse r = {};
        const char *msg = NULL;
        (void) state;

        assert_int_equal(
                knox_envelope_begin(&b, KNOX_UNAUTHORIZED, "h", 7, "Principal <x> not authorized"), 0);
        assert_int_equal(buf_puts(&b, "null"), 0);
        assert_int_equal(knox_envelope_end(&b), 0);

        assert_int_equal(knox_response_parse(b.data, b.len, &r, &msg), 0);
        assert_false(r.ok);
        assert_int_equal(r.code, KNOX_UNAUTHORIZED);
        assert_string_equal(r.message, "Principal <x> not authorized");
        assert_int_equal(r.ts, 7);
        assert_null(r.data);
        knox_response_done(&r);

        /* Codes outside the table are kept; missing optional fields are empty. */
        static const char odd[] = "{\"status\":\"error\",\"code\":99}";
        assert_int_equal(knox_response_parse(odd, strlen(odd), &r, &msg), 0);
        assert_false(r.ok);
        assert_int_equal(r.code, 99);
        assert_string_equal(r.host, "");
        assert_string_equal(r.message, "");
        assert_int_equal(r.ts, 0);
        knox_response_done(&r);

        static const struct {
                const char *json, *message;
        } bad[] = {
                {"[]", "json: response must be an object"},
                {"null", "json: response must be an object"},
                {"{\"code\":0}", "json: response status must be a string"},
                {"{\"status\":1,\"code\":0}", "json: response status must be a string"},
                {"{\"status\":\"ok\",\"code\":\"0\"}", "json: response code must be an integer"},
                {"{\"status\":\"ok\",\"code\":4294967296}", "json: response code must be an integer"},
                {"{\"status\":\"ok\",\"code\":0,\"ts\":1.5}", "json: response ts must be a 64-bit integer"},
                {"{\"status\":\"ok\",\"code\":0,\"host\":[]}", "json: response host must be a string"},
                {"{\"status\":\"ok\",\"code\":0,\"message\":{}}", "json: response message must be a string"},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                msg = NULL;
                r = (KnoxResponse){.host = (char *) "untouched"};
                assert_int_equal(knox_response_parse(bad[i].json, strlen(bad[i].json), &r, &msg), -EBADMSG);
                assert_string_equal(msg, bad[i].message);
                assert_string_equal(r.host, "untouched");
        }
        msg = NULL;
        assert_int_equal(knox_response_parse("", 0, &r, &msg), -EBADMSG);
        assert_non_null(msg);
        assert_int_equal(knox_response_parse("<html>", 6, &r, NULL), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_http_status),     cmocka_unit_test(test_envelope_ok),
                cmocka_unit_test(test_envelope_error),  cmocka_unit_test(test_key_json_exact),
                cmocka_unit_test(test_version_json),    cmocka_unit_test(test_key_round_trip),
                cmocka_unit_test(test_key_parse_valid), cmocka_unit_test(test_key_parse_invalid),
                cmocka_unit_test(test_acl_json),        cmocka_unit_test(test_sealed_versions),
                cmocka_unit_test(test_response_ok),     cmocka_unit_test(test_response_error),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
