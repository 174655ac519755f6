/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "acl.h"
#include "buf.h"
#include "key.h"
#include "strv.h"

#define MSG_NONE "ACL contains None access"
#define MSG_DUP "Duplicate entries in ACL"
#define MSG_EMPTY "Principals of type user, user group, machine, or machine prefix may not be empty."
#define MSG_URL "Service prefix is invalid URL, must conform to 'spiffe://<domain>/<path>/' format."
#define MSG_SLASH "Service prefix had no trailing slash, must conform to 'spiffe://<domain>/<path>/' format."

#define E(t, i, a) ((Access){.type = PRINCIPAL_TYPE_##t, .id = (char *) (i), .access = ACCESS_##a})
#define ENTRIES(...) ((const Access[]){__VA_ARGS__})
#define N_ENTRIES(...) ELEMENTSOF(ENTRIES(__VA_ARGS__))
/* A heap ACL holding copies of the listed entries. */
#define ACL(...) acl_from_array(ENTRIES(__VA_ARGS__), N_ENTRIES(__VA_ARGS__))
#define ASSERT_ACL(acl, ...) assert_acl_equal(acl, ENTRIES(__VA_ARGS__), N_ENTRIES(__VA_ARGS__))

static Acl acl_from_array(const Access *entries, size_t n) {
        Acl src = {.entries = (Access *) entries, .n = n}, ret;

        assert_int_equal(acl_copy(&src, &ret), 0);
        return ret;
}

static void assert_acl_equal(const Acl *acl, const Access *expected, size_t n) {
        assert_int_equal(acl->n, n);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(acl->entries[i].type, expected[i].type);
                assert_string_equal(acl->entries[i].id, expected[i].id);
                assert_int_equal(acl->entries[i].access, expected[i].access);
        }
}

/* ---- acl_validate ---- */

static void check_validate(Acl acl, int expected, const char *expected_msg) {
        const char *msg = "untouched";

        assert_int_equal(acl_validate(&acl, &msg), expected);
        assert_string_equal(msg, expected_msg ?: "untouched");
        acl_done(&acl);
}

static void test_validate(void **state) {
        (void) state;

        check_validate((Acl){}, 0, NULL);
        check_validate(ACL(E(USER, "alice", ADMIN)), 0, NULL);
        check_validate(
                ACL(E(USER, "alice", ADMIN), E(USER_GROUP, "alice", READ), E(MACHINE, "alice", WRITE),
                    E(MACHINE_PREFIX, "alice", READ), E(SERVICE, "spiffe://d/alice", READ),
                    E(SERVICE_PREFIX, "spiffe://d/alice/", READ), E(USER, "bob", READ)),
                0, NULL);

        /* None anywhere */
        check_validate(ACL(E(USER, "alice", NONE)), -EINVAL, MSG_NONE);
        check_validate(ACL(E(USER, "alice", ADMIN), E(MACHINE, "m1", NONE)), -EINVAL, MSG_NONE);

        /* Same (type, id) twice, whatever the access */
        check_validate(ACL(E(USER, "alice", ADMIN), E(USER, "alice", ADMIN)), -EINVAL, MSG_DUP);
        check_validate(
                ACL(E(MACHINE, "m1", READ), E(USER, "bob", READ), E(MACHINE, "m1", WRITE)), -EINVAL,
                MSG_DUP);
        /* Ids compare exactly */
        check_validate(ACL(E(USER, "alice", ADMIN), E(USER, "Alice", ADMIN)), 0, NULL);

        /* Knox's order: entry 0 is compared with all others before entry 1 is looked at. */
        check_validate(
                ACL(E(USER, "alice", READ), E(USER, "bob", NONE), E(USER, "alice", WRITE)), -EINVAL,
                MSG_DUP);
        check_validate(
                ACL(E(USER, "bob", NONE), E(USER, "alice", READ), E(USER, "alice", WRITE)), -EINVAL,
                MSG_NONE);
        check_validate(
                ACL(E(USER, "carol", READ), E(USER, "bob", NONE), E(USER, "bob", NONE)), -EINVAL, MSG_NONE);

        /* The message pointer is optional */
        _cleanup_acl_ Acl acl = ACL(E(USER, "alice", NONE));
        assert_int_equal(acl_validate(&acl, NULL), -EINVAL);
        assert_int_equal(acl_validate(NULL, NULL), -EINVAL);
}

/* ---- access_validate_principal ---- */

static void check_principal(PrincipalType t, const char *id, const char *expected_msg) {
        Access a = {.type = t, .id = (char *) id, .access = ACCESS_READ};
        const char *msg = "untouched";

        if (expected_msg) {
                assert_int_equal(access_validate_principal(&a, &msg), -EINVAL);
                assert_string_equal(msg, expected_msg);
        } else {
                assert_int_equal(access_validate_principal(&a, &msg), 0);
                assert_string_equal(msg, "untouched");
        }
}

static void test_principal_empty(void **state) {
        (void) state;

        for (PrincipalType t = 0; t < _PRINCIPAL_TYPE_MAX; t++) {
                check_principal(t, "", MSG_EMPTY);
                check_principal(t, NULL, MSG_EMPTY);
        }

        Access a = E(MACHINE_PREFIX, "", READ);
        assert_int_equal(access_validate_principal(&a, NULL), -EINVAL);
        assert_int_equal(access_validate_principal(NULL, NULL), -EINVAL);
}

static void test_principal_plain_types(void **state) {
        (void) state;

        /* Only Service and ServicePrefix ids have a syntax. */
        check_principal(PRINCIPAL_TYPE_USER, "alice", NULL);
        check_principal(PRINCIPAL_TYPE_USER, "spiffe:not a url", NULL);
        check_principal(PRINCIPAL_TYPE_USER_GROUP, "security-team", NULL);
        check_principal(PRINCIPAL_TYPE_MACHINE, "host with spaces", NULL);
        check_principal(PRINCIPAL_TYPE_MACHINE_PREFIX, "a", NULL);
        check_principal(PRINCIPAL_TYPE_MACHINE_PREFIX, "http://x", NULL);
}

static void test_principal_service(void **state) {
        (void) state;

        const PrincipalType both[] = {PRINCIPAL_TYPE_SERVICE, PRINCIPAL_TYPE_SERVICE_PREFIX};
        for (size_t i = 0; i < ELEMENTSOF(both); i++) {
                PrincipalType t = both[i];

                /* good: the prefix form ends with '/' and so passes for both types */
                check_principal(t, "spiffe://example.com/", NULL);
                check_principal(t, "spiffe://example.com/ns/prod/", NULL);
                check_principal(t, "SPIFFE://example.com/x/", NULL); /* Go lowercases the scheme */
                check_principal(t, "spiffe://example.com:8443/x/", NULL);
                check_principal(t, "spiffe://example.com:/x/", NULL);
                check_principal(t, "spiffe://:8443/x/", NULL); /* host ":8443" is not empty */
                check_principal(t, "spiffe://user:pw@example.com/x/", NULL);
                check_principal(t, "spiffe://ex%C3%A9mple.com/x/", NULL);
                check_principal(t, "spiffe://[::1]/x/", NULL);
                check_principal(t, "spiffe://[::1]:80/x/", NULL);
                check_principal(t, "spiffe://[fe80::1%25en0]/x/", NULL);
                check_principal(t, "spiffe://example.com/a%20b/", NULL);
                check_principal(t, "spiffe://example.com/a b/", NULL);      /* raw bytes pass in a path */
                check_principal(t, "spiffe://example.com/x/?q=%zz/", NULL); /* query unchecked */
                check_principal(t, "spiffe://ex_ample-1.com/x/", NULL);
                check_principal(t, "spiffe://example.com/\xc3\xa9/", NULL);

                /* bad URLs */
                check_principal(t, "http://example.com/x/", MSG_URL);
                check_principal(t, "https://example.com/x/", MSG_URL);
                check_principal(t, "spiffe1://example.com/x/", MSG_URL);
                check_principal(t, "spiff://example.com/x/", MSG_URL);
                check_principal(t, "spiffe://", MSG_URL);
                check_principal(t, "spiffe:///", MSG_URL);
                check_principal(t, "spiffe:///x/", MSG_URL);
                check_principal(t, "spiffe://user@/x/", MSG_URL);
                check_principal(t, "spiffe://?x/", MSG_URL);
                check_principal(t, "spiffe://#x/", MSG_URL);
                check_principal(t, "spiffe:example.com/x/", MSG_URL); /* opaque, no host */
                check_principal(t, "spiffe:/example.com/x/", MSG_URL);
                check_principal(t, "example.com/x/", MSG_URL);
                check_principal(t, "//example.com/x/", MSG_URL);
                check_principal(t, ":spiffe://example.com/x/", MSG_URL);
                check_principal(t, "/", MSG_URL);
                check_principal(t, "spiffe://exa mple.com/x/", MSG_URL);
                check_principal(t, "spiffe://exa{mple.com/x/", MSG_URL);
                check_principal(t, "spiffe://ex%41mple.com/x/", MSG_URL); /* ASCII escaped in host */
                check_principal(t, "spiffe://example.com%/x/", MSG_URL);
                check_principal(t, "spiffe://example.com:http/x/", MSG_URL);
                check_principal(t, "spiffe://[::1/x/", MSG_URL);
                check_principal(t, "spiffe://[::1]x/", MSG_URL);
                check_principal(t, "spiffe://[fe80::1%25%0a]/x/", MSG_URL);
                check_principal(t, "spiffe://us er@example.com/x/", MSG_URL);
                check_principal(t, "spiffe://us%zzer@example.com/x/", MSG_URL);
                check_principal(t, "spiffe://us\xc3\xa9r@example.com/x/", MSG_URL);
                check_principal(t, "spiffe://example.com/a%zz/", MSG_URL);
                check_principal(t, "spiffe://example.com/a%2/", MSG_URL);
                check_principal(t, "spiffe://example.com/x/#%zz/", MSG_URL);
                check_principal(t, "spiffe://example.com/a\tb/", MSG_URL);
                check_principal(t, "spiffe://example.com/a\x7f/", MSG_URL);
                check_principal(t, "\x01spiffe://example.com/x/", MSG_URL);
        }

        /* A Service needs no trailing slash; a ServicePrefix does. */
        check_principal(PRINCIPAL_TYPE_SERVICE, "spiffe://example.com/ns/prod/sa/web", NULL);
        check_principal(PRINCIPAL_TYPE_SERVICE, "spiffe://example.com", NULL);
        check_principal(PRINCIPAL_TYPE_SERVICE_PREFIX, "spiffe://example.com/ns/prod", MSG_SLASH);
        check_principal(PRINCIPAL_TYPE_SERVICE_PREFIX, "spiffe://example.com", MSG_SLASH);
        check_principal(PRINCIPAL_TYPE_SERVICE_PREFIX, "spiffe://example.com/x/#frag", MSG_SLASH);
        /* The slash test looks at the whole string, as Knox does. */
        check_principal(PRINCIPAL_TYPE_SERVICE_PREFIX, "spiffe://example.com?q/", NULL);
        check_principal(PRINCIPAL_TYPE_SERVICE_PREFIX, "spiffe://example.com/x#frag/", NULL);
        /* Control bytes in the fragment are not looked at by url.Parse. */
        check_principal(PRINCIPAL_TYPE_SERVICE_PREFIX, "spiffe://example.com/x/#\x01/", NULL);
        /* The URL check comes first. */
        check_principal(PRINCIPAL_TYPE_SERVICE_PREFIX, "http://example.com/x", MSG_URL);
        check_principal(PRINCIPAL_TYPE_SERVICE_PREFIX, "spiffe://", MSG_URL);
}

/* ---- acl_merge ---- */

static void test_merge(void **state) {
        _cleanup_acl_ Acl acl =
                ACL(E(USER, "alice", READ), E(MACHINE, "m1", READ), E(USER_GROUP, "g", WRITE));
        (void) state;

        /* replace in place keeps the position */
        assert_int_equal(acl_merge(&acl, &E(MACHINE, "m1", ADMIN)), 0);
        ASSERT_ACL(&acl, E(USER, "alice", READ), E(MACHINE, "m1", ADMIN), E(USER_GROUP, "g", WRITE));

        /* a lower level replaces too */
        assert_int_equal(acl_merge(&acl, &E(MACHINE, "m1", READ)), 0);
        ASSERT_ACL(&acl, E(USER, "alice", READ), E(MACHINE, "m1", READ), E(USER_GROUP, "g", WRITE));

        /* same id, other type: a new entry, appended */
        assert_int_equal(acl_merge(&acl, &E(USER, "m1", WRITE)), 0);
        ASSERT_ACL(
                &acl, E(USER, "alice", READ), E(MACHINE, "m1", READ), E(USER_GROUP, "g", WRITE),
                E(USER, "m1", WRITE));

        /* None removes, the others keep their order */
        assert_int_equal(acl_merge(&acl, &E(MACHINE, "m1", NONE)), 0);
        ASSERT_ACL(&acl, E(USER, "alice", READ), E(USER_GROUP, "g", WRITE), E(USER, "m1", WRITE));

        /* None for an absent entry is ignored */
        assert_int_equal(acl_merge(&acl, &E(MACHINE, "m1", NONE)), 0);
        assert_int_equal(acl_merge(&acl, &E(USER, "ALICE", NONE)), 0);
        ASSERT_ACL(&acl, E(USER, "alice", READ), E(USER_GROUP, "g", WRITE), E(USER, "m1", WRITE));

        /* append, with the id copied */
        char id[] = "spiffe://d/x/";
        assert_int_equal(acl_merge(&acl, &E(SERVICE_PREFIX, id, READ)), 0);
        id[0] = 'X';
        ASSERT_ACL(
                &acl, E(USER, "alice", READ), E(USER_GROUP, "g", WRITE), E(USER, "m1", WRITE),
                E(SERVICE_PREFIX, "spiffe://d/x/", READ));
        assert_int_equal(acl_validate(&acl, NULL), 0);

        /* remove everything, first and last positions included */
        assert_int_equal(acl_merge(&acl, &E(USER, "alice", NONE)), 0);
        assert_int_equal(acl_merge(&acl, &E(SERVICE_PREFIX, "spiffe://d/x/", NONE)), 0);
        ASSERT_ACL(&acl, E(USER_GROUP, "g", WRITE), E(USER, "m1", WRITE));
        assert_int_equal(acl_merge(&acl, &E(USER_GROUP, "g", NONE)), 0);
        assert_int_equal(acl_merge(&acl, &E(USER, "m1", NONE)), 0);
        assert_int_equal(acl.n, 0);

        /* and grow again from empty */
        assert_int_equal(acl_merge(&acl, &E(USER, "bob", ADMIN)), 0);
        ASSERT_ACL(&acl, E(USER, "bob", ADMIN));

        /* merging an entry of the ACL itself works (the id is read before anything moves) */
        assert_int_equal(acl_merge(&acl, &E(USER, "carol", READ)), 0);
        Access self = acl.entries[0];
        self.access = ACCESS_NONE;
        assert_int_equal(acl_merge(&acl, &self), 0);
        ASSERT_ACL(&acl, E(USER, "carol", READ));

        assert_int_equal(acl_merge(NULL, &E(USER, "x", READ)), -EINVAL);
        assert_int_equal(acl_merge(&acl, NULL), -EINVAL);
}

static void test_merge_put_access_sequence(void **state) {
        /* PUT access with an acl array merges each entry in turn. */
        _cleanup_acl_ Acl acl = ACL(E(USER, "alice", ADMIN), E(MACHINE, "m1", READ));
        const Access request[] = {
                E(MACHINE, "m2", READ), E(MACHINE, "m1", NONE), E(MACHINE, "m2", WRITE),
                E(USER, "alice", NONE), E(USER, "alice", READ),
        };
        (void) state;

        FOREACH_ARRAY(a, request, ELEMENTSOF(request))
                assert_int_equal(acl_merge(&acl, a), 0);
        ASSERT_ACL(&acl, E(MACHINE, "m2", WRITE), E(USER, "alice", READ));
        assert_int_equal(acl_validate(&acl, NULL), 0);
}

/* ---- acl_build_for_create ---- */

static void test_create_example(void **state) {
        /* protocol.md §4.5, verbatim */
        _cleanup_acl_ Acl acl = ACL(E(USER, "alice", READ), E(MACHINE, "m1", READ));
        _cleanup_acl_ Acl defaults = ACL(E(USER_GROUP, "security-team", ADMIN));
        (void) state;

        assert_int_equal(acl_build_for_create(&acl, "alice", &defaults), 0);
        ASSERT_ACL(
                &acl, E(USER, "alice", ADMIN), E(MACHINE, "m1", READ),
                E(USER_GROUP, "security-team", ADMIN));
        assert_int_equal(acl_validate(&acl, NULL), 0);
}

static void test_create_creator(void **state) {
        (void) state;

        /* the creator already present with lower access, not first: raised in place */
        _cleanup_acl_ Acl a = ACL(E(MACHINE, "m1", READ), E(USER, "bob", WRITE), E(USER, "alice", READ));
        assert_int_equal(acl_build_for_create(&a, "bob", NULL), 0);
        ASSERT_ACL(&a, E(MACHINE, "m1", READ), E(USER, "bob", ADMIN), E(USER, "alice", READ));

        /* the creator as a machine or a group is another principal: User is appended */
        _cleanup_acl_ Acl b = ACL(E(MACHINE, "bob", READ), E(USER_GROUP, "bob", READ));
        assert_int_equal(acl_build_for_create(&b, "bob", &(Acl){}), 0);
        ASSERT_ACL(&b, E(MACHINE, "bob", READ), E(USER_GROUP, "bob", READ), E(USER, "bob", ADMIN));

        /* an empty request */
        _cleanup_acl_ Acl c = {};
        assert_int_equal(acl_build_for_create(&c, "carol", NULL), 0);
        ASSERT_ACL(&c, E(USER, "carol", ADMIN));

        /* the creator's own None entry is overwritten, not a removal */
        _cleanup_acl_ Acl d = ACL(E(USER, "dave", NONE));
        assert_int_equal(acl_build_for_create(&d, "dave", NULL), 0);
        ASSERT_ACL(&d, E(USER, "dave", ADMIN));
        assert_int_equal(acl_validate(&d, NULL), 0);

        assert_int_equal(acl_build_for_create(NULL, "x", NULL), -EINVAL);
        assert_int_equal(acl_build_for_create(&d, NULL, NULL), -EINVAL);
        ASSERT_ACL(&d, E(USER, "dave", ADMIN));
}

static void test_create_defaults(void **state) {
        _cleanup_acl_ Acl defaults =
                ACL(E(USER_GROUP, "security-team", ADMIN), E(MACHINE_PREFIX, "backup", READ),
                    E(USER, "root", WRITE));
        (void) state;

        /* a default already in the request is set to the default's level, in place */
        _cleanup_acl_ Acl a = ACL(E(MACHINE_PREFIX, "backup", ADMIN), E(USER_GROUP, "security-team", READ));
        assert_int_equal(acl_build_for_create(&a, "alice", &defaults), 0);
        ASSERT_ACL(
                &a, E(MACHINE_PREFIX, "backup", READ), E(USER_GROUP, "security-team", ADMIN),
                E(USER, "alice", ADMIN), E(USER, "root", WRITE));

        /* defaults come after the creator, so a default for the creator wins */
        _cleanup_acl_ Acl b = {};
        assert_int_equal(acl_build_for_create(&b, "root", &defaults), 0);
        ASSERT_ACL(
                &b, E(USER, "root", WRITE), E(USER_GROUP, "security-team", ADMIN),
                E(MACHINE_PREFIX, "backup", READ));

        /* the request's entries are kept as sent: Knox validates them afterwards (500/1) */
        _cleanup_acl_ Acl c = ACL(E(MACHINE, "m1", NONE), E(MACHINE, "m2", READ), E(MACHINE, "m2", READ));
        const char *msg = NULL;
        assert_int_equal(acl_build_for_create(&c, "alice", &defaults), 0);
        assert_int_equal(c.n, 7);
        assert_int_equal(acl_validate(&c, &msg), -EINVAL);
        assert_string_equal(msg, MSG_NONE);

        _cleanup_acl_ Acl d = ACL(E(MACHINE, "m2", READ), E(MACHINE, "m2", WRITE));
        assert_int_equal(acl_build_for_create(&d, "alice", NULL), 0);
        ASSERT_ACL(&d, E(MACHINE, "m2", READ), E(MACHINE, "m2", WRITE), E(USER, "alice", ADMIN));
        assert_int_equal(acl_validate(&d, &msg), -EINVAL);
        assert_string_equal(msg, MSG_DUP);
}

/* ---- principals ---- */

static void test_principal_kinds(void **state) {
        (void) state;

        assert_string_equal(principal_kind_to_string(PRINCIPAL_KIND_USER), "user");
        assert_string_equal(principal_kind_to_string(PRINCIPAL_KIND_MACHINE), "machine");
        assert_string_equal(principal_kind_to_string(PRINCIPAL_KIND_SERVICE), "service");
        assert_null(principal_kind_to_string(_PRINCIPAL_KIND_MAX));
        assert_null(principal_kind_to_string(_PRINCIPAL_KIND_INVALID));
}

static void test_principals(void **state) {
        Principals ps = {};
        char g1[] = "eng", g2[] = "ops";
        char *groups[] = {g1, g2, NULL};
        (void) state;

        assert_null(principals_default(&ps));
        assert_null(principals_default(NULL));

        assert_int_equal(principals_add(&ps, PRINCIPAL_KIND_USER, "alice", groups, "user"), 0);
        g1[0] = 'X'; /* copied */
        assert_int_equal(principals_add(&ps, PRINCIPAL_KIND_MACHINE, "host1", NULL, NULL), 0);
        assert_int_equal(ps.n, 2);

        const Principal *p = principals_default(&ps);
        assert_non_null(p);
        assert_int_equal(p->kind, PRINCIPAL_KIND_USER);
        assert_string_equal(p->id, "alice");
        assert_string_equal(p->provider, "user");
        assert_int_equal(strv_length(p->groups), 2);
        assert_string_equal(p->groups[0], "eng");
        assert_string_equal(p->groups[1], "ops");
        assert_null(ps.items[1].groups);
        assert_null(ps.items[1].provider);

        assert_int_equal(principals_add(&ps, _PRINCIPAL_KIND_MAX, "x", NULL, NULL), -EINVAL);
        assert_int_equal(principals_add(&ps, _PRINCIPAL_KIND_INVALID, "x", NULL, NULL), -EINVAL);
        assert_int_equal(principals_add(&ps, PRINCIPAL_KIND_USER, NULL, NULL, NULL), -EINVAL);
        assert_int_equal(ps.n, 2);

        principals_done(&ps);
        assert_int_equal(ps.n, 0);
        assert_null(ps.items);
        principals_done(&ps); /* idempotent */
        principals_done(NULL);
        principal_done(NULL);
}

static void check_type_string(const Principals *ps, const char *expected) {
        _cleanup_buf_ Buf b = BUF_INIT;

        assert_int_equal(buf_puts(&b, "<"), 0);
        assert_int_equal(principals_type_append(ps, &b), 0);
        assert_int_equal(buf_puts(&b, ">"), 0);
        assert_string_equal(b.data, expected);
}

static void test_type_string(void **state) {
        Principals ps = {};
        (void) state;

        check_type_string(&ps, "<>");

        assert_int_equal(principals_add(&ps, PRINCIPAL_KIND_USER, "alice", NULL, "github"), 0);
        check_type_string(&ps, "<user>");
        principals_done(&ps);

        assert_int_equal(principals_add(&ps, PRINCIPAL_KIND_SERVICE, "spiffe://d/x", NULL, "spiffe"), 0);
        check_type_string(&ps, "<service>");
        principals_done(&ps);

        assert_int_equal(principals_add(&ps, PRINCIPAL_KIND_MACHINE, "host1", NULL, "mtls"), 0);
        assert_int_equal(
                principals_add(&ps, PRINCIPAL_KIND_SERVICE, "spiffe://d/x", NULL, "spiffe-fallback"), 0);
        check_type_string(&ps, "<mux[mtls=>machine,spiffe-fallback=>service]>");

        /* the order is the order of adding */
        Principals rev = {};
        assert_int_equal(
                principals_add(&rev, PRINCIPAL_KIND_SERVICE, "spiffe://d/x", NULL, "spiffe-fallback"), 0);
        assert_int_equal(principals_add(&rev, PRINCIPAL_KIND_MACHINE, "host1", NULL, "mtls"), 0);
        assert_int_equal(principals_add(&rev, PRINCIPAL_KIND_USER, "alice", NULL, NULL), 0);
        check_type_string(&rev, "<mux[spiffe-fallback=>service,mtls=>machine,=>user]>");

        assert_int_equal(principals_type_append(NULL, &(Buf){}), -EINVAL);
        assert_int_equal(principals_type_append(&ps, NULL), -EINVAL);
        principals_done(&ps);
        principals_done(&rev);
}

/* ---- access decision ---- */

/* A principal on the stack, borrowing its strings. */
#define P(k, i, g) ((Principal){.kind = (k), .id = (char *) (i), .groups = (g)})

static void test_allows_kinds(void **state) {
        /* one entry of each type, all with the same id */
        _cleanup_acl_ Acl user = ACL(E(USER, "x", ADMIN)), group = ACL(E(USER_GROUP, "x", ADMIN)),
                          machine = ACL(E(MACHINE, "x", ADMIN)),
                          mprefix = ACL(E(MACHINE_PREFIX, "x", ADMIN)),
                          service = ACL(E(SERVICE, "x", ADMIN)),
                          sprefix = ACL(E(SERVICE_PREFIX, "x", ADMIN));
        char gx[] = "x";
        char *groups[] = {gx, NULL};
        Principal u = P(PRINCIPAL_KIND_USER, "x", groups), m = P(PRINCIPAL_KIND_MACHINE, "x", groups),
                  s = P(PRINCIPAL_KIND_SERVICE, "x", groups);
        (void) state;

        /* a user: User and UserGroup only */
        assert_true(acl_allows_principal(&user, &u, ACCESS_READ));
        assert_true(acl_allows_principal(&group, &u, ACCESS_READ));
        assert_false(acl_allows_principal(&machine, &u, ACCESS_READ));
        assert_false(acl_allows_principal(&mprefix, &u, ACCESS_READ));
        assert_false(acl_allows_principal(&service, &u, ACCESS_READ));
        assert_false(acl_allows_principal(&sprefix, &u, ACCESS_READ));

        /* a machine: Machine and MachinePrefix only (its groups are never looked at) */
        assert_false(acl_allows_principal(&user, &m, ACCESS_READ));
        assert_false(acl_allows_principal(&group, &m, ACCESS_READ));
        assert_true(acl_allows_principal(&machine, &m, ACCESS_READ));
        assert_true(acl_allows_principal(&mprefix, &m, ACCESS_READ));
        assert_false(acl_allows_principal(&service, &m, ACCESS_READ));
        assert_false(acl_allows_principal(&sprefix, &m, ACCESS_READ));

        /* a service: Service and ServicePrefix only */
        assert_false(acl_allows_principal(&user, &s, ACCESS_READ));
        assert_false(acl_allows_principal(&group, &s, ACCESS_READ));
        assert_false(acl_allows_principal(&machine, &s, ACCESS_READ));
        assert_false(acl_allows_principal(&mprefix, &s, ACCESS_READ));
        assert_true(acl_allows_principal(&service, &s, ACCESS_READ));
        assert_true(acl_allows_principal(&sprefix, &s, ACCESS_READ));
}

static void test_allows_exact(void **state) {
        _cleanup_acl_ Acl acl =
                ACL(E(USER, "alice", READ), E(MACHINE, "host1.example.com", READ),
                    E(SERVICE, "spiffe://d/web", READ));
        (void) state;

        assert_true(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_USER, "alice", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_USER, "alic", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_USER, "alice2", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_USER, "Alice", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_USER, "", NULL), ACCESS_READ));

        assert_true(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_MACHINE, "host1.example.com", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_MACHINE, "host1", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_MACHINE, "host1.example.com.", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_MACHINE, "HOST1.example.com", NULL), ACCESS_READ));

        assert_true(
                acl_allows_principal(&acl, &P(PRINCIPAL_KIND_SERVICE, "spiffe://d/web", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_SERVICE, "spiffe://d/web/", NULL), ACCESS_READ));
        assert_false(
                acl_allows_principal(&acl, &P(PRINCIPAL_KIND_SERVICE, "spiffe://d/we", NULL), ACCESS_READ));
}

static void test_allows_groups(void **state) {
        _cleanup_acl_ Acl acl = ACL(E(USER_GROUP, "security-team", WRITE));
        char g1[] = "eng", g2[] = "security-team", g3[] = "security";
        char *member[] = {g1, g2, NULL}, *other[] = {g1, g3, NULL}, *none[] = {NULL};
        (void) state;

        assert_true(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_USER, "bob", member), ACCESS_WRITE));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_USER, "bob", member), ACCESS_ADMIN));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_USER, "bob", other), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_USER, "bob", none), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_USER, "bob", NULL), ACCESS_READ));
        /* a user named like the group is not a member */
        assert_false(
                acl_allows_principal(&acl, &P(PRINCIPAL_KIND_USER, "security-team", NULL), ACCESS_READ));
}

static void test_allows_machine_prefix(void **state) {
        _cleanup_acl_ Acl acl = ACL(E(MACHINE_PREFIX, "auth", READ));
        (void) state;

        assert_true(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_MACHINE, "auth", NULL), ACCESS_READ));
        assert_true(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_MACHINE, "auth004", NULL), ACCESS_READ));
        assert_true(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_MACHINE, "authxyz", NULL), ACCESS_READ));
        assert_true(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_MACHINE, "auth.example.com", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_MACHINE, "Auth004", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_MACHINE, "AUTH", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_MACHINE, "aut", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_MACHINE, "xauth", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_MACHINE, "", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_MACHINE, "auth004", NULL), ACCESS_WRITE));
        /* a prefix is not an exact Machine entry for other kinds */
        assert_false(acl_allows_principal(&acl, &P(PRINCIPAL_KIND_USER, "auth004", NULL), ACCESS_READ));

        /* Knox's semantics: an empty prefix (which PUT access refuses) matches every machine */
        _cleanup_acl_ Acl empty = ACL(E(MACHINE_PREFIX, "", READ));
        assert_true(acl_allows_principal(&empty, &P(PRINCIPAL_KIND_MACHINE, "anything", NULL), ACCESS_READ));
        assert_false(
                acl_allows_principal(&empty, &P(PRINCIPAL_KIND_SERVICE, "anything", NULL), ACCESS_READ));
}

static void test_allows_service_prefix(void **state) {
        _cleanup_acl_ Acl acl = ACL(E(SERVICE_PREFIX, "spiffe://example.com/ns/prod/", READ));
        (void) state;

        assert_true(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_SERVICE, "spiffe://example.com/ns/prod/web", NULL), ACCESS_READ));
        assert_true(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_SERVICE, "spiffe://example.com/ns/prod/sa/api", NULL), ACCESS_READ));
        assert_true(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_SERVICE, "spiffe://example.com/ns/prod/", NULL), ACCESS_READ));
        /* the trailing slash keeps the match on a path-segment boundary */
        assert_false(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_SERVICE, "spiffe://example.com/ns/prod", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_SERVICE, "spiffe://example.com/ns/production/web", NULL),
                ACCESS_READ));
        assert_false(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_SERVICE, "spiffe://example.com/ns/prodx/web", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_SERVICE, "spiffe://example.org/ns/prod/web", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_SERVICE, "spiffe://EXAMPLE.com/ns/prod/web", NULL), ACCESS_READ));
        assert_false(acl_allows_principal(
                &acl, &P(PRINCIPAL_KIND_MACHINE, "spiffe://example.com/ns/prod/web", NULL), ACCESS_READ));
}

static void test_allows_levels(void **state) {
        _cleanup_acl_ Acl admin = ACL(E(USER, "a", ADMIN)), write = ACL(E(USER, "a", WRITE)),
                          read = ACL(E(USER, "a", READ)), none = ACL(E(USER, "a", NONE));
        Principal a = P(PRINCIPAL_KIND_USER, "a", NULL);
        (void) state;

        assert_true(acl_allows_principal(&admin, &a, ACCESS_ADMIN));
        assert_true(acl_allows_principal(&admin, &a, ACCESS_WRITE));
        assert_true(acl_allows_principal(&admin, &a, ACCESS_READ));

        assert_false(acl_allows_principal(&write, &a, ACCESS_ADMIN));
        assert_true(acl_allows_principal(&write, &a, ACCESS_WRITE));
        assert_true(acl_allows_principal(&write, &a, ACCESS_READ));

        assert_false(acl_allows_principal(&read, &a, ACCESS_ADMIN));
        assert_false(acl_allows_principal(&read, &a, ACCESS_WRITE));
        assert_true(acl_allows_principal(&read, &a, ACCESS_READ));

        /* None never grants, not even None */
        assert_false(acl_allows_principal(&none, &a, ACCESS_READ));
        assert_false(acl_allows_principal(&none, &a, ACCESS_NONE));
        assert_true(acl_allows_principal(&read, &a, ACCESS_NONE));

        /* out-of-range requests are refused */
        assert_false(acl_allows_principal(&admin, &a, _ACCESS_TYPE_MAX));
        assert_false(acl_allows_principal(&admin, &a, _ACCESS_TYPE_INVALID));

        /* several entries for one principal: any one that suffices */
        _cleanup_acl_ Acl mixed = ACL(E(USER, "a", READ), E(USER_GROUP, "g", ADMIN));
        char g[] = "g";
        char *groups[] = {g, NULL};
        assert_true(acl_allows_principal(&mixed, &P(PRINCIPAL_KIND_USER, "a", groups), ACCESS_ADMIN));
        assert_false(acl_allows_principal(&mixed, &P(PRINCIPAL_KIND_USER, "a", NULL), ACCESS_WRITE));
}

static void test_allows_several(void **state) {
        _cleanup_acl_ Acl acl = ACL(E(MACHINE, "host1", READ), E(SERVICE, "spiffe://d/web", WRITE));
        Principals ps = {};
        (void) state;

        assert_false(acl_allows(&acl, &ps, ACCESS_READ));
        assert_false(acl_allows(&acl, NULL, ACCESS_READ));

        /* only the second qualifies */
        assert_int_equal(principals_add(&ps, PRINCIPAL_KIND_MACHINE, "host2", NULL, "mtls"), 0);
        assert_int_equal(
                principals_add(&ps, PRINCIPAL_KIND_SERVICE, "spiffe://d/web", NULL, "spiffe-fallback"), 0);
        assert_true(acl_allows(&acl, &ps, ACCESS_READ));
        assert_true(acl_allows(&acl, &ps, ACCESS_WRITE));
        assert_false(acl_allows(&acl, &ps, ACCESS_ADMIN));
        principals_done(&ps);

        /* neither qualifies */
        assert_int_equal(principals_add(&ps, PRINCIPAL_KIND_MACHINE, "host2", NULL, "mtls"), 0);
        assert_int_equal(
                principals_add(&ps, PRINCIPAL_KIND_SERVICE, "spiffe://d/api", NULL, "spiffe-fallback"), 0);
        assert_false(acl_allows(&acl, &ps, ACCESS_READ));
        principals_done(&ps);

        /* the first gives Read, the second Write: each level is checked per principal */
        assert_int_equal(principals_add(&ps, PRINCIPAL_KIND_MACHINE, "host1", NULL, "mtls"), 0);
        assert_false(acl_allows(&acl, &ps, ACCESS_WRITE));
        assert_true(acl_allows(&acl, &ps, ACCESS_READ));
        principals_done(&ps);
}

static void test_allows_empty(void **state) {
        Acl empty = {};
        Principals ps = {};
        (void) state;

        assert_int_equal(principals_add(&ps, PRINCIPAL_KIND_USER, "alice", NULL, NULL), 0);
        assert_false(acl_allows(&empty, &ps, ACCESS_READ));
        assert_false(acl_allows(NULL, &ps, ACCESS_READ));
        assert_false(acl_allows_principal(&empty, &ps.items[0], ACCESS_READ));
        assert_false(acl_allows_principal(NULL, &ps.items[0], ACCESS_READ));
        assert_false(acl_allows_principal(&empty, NULL, ACCESS_READ));
        principals_done(&ps);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_validate),
                cmocka_unit_test(test_principal_empty),
                cmocka_unit_test(test_principal_plain_types),
                cmocka_unit_test(test_principal_service),
                cmocka_unit_test(test_merge),
                cmocka_unit_test(test_merge_put_access_sequence),
                cmocka_unit_test(test_create_example),
                cmocka_unit_test(test_create_creator),
                cmocka_unit_test(test_create_defaults),
                cmocka_unit_test(test_principal_kinds),
                cmocka_unit_test(test_principals),
                cmocka_unit_test(test_type_string),
                cmocka_unit_test(test_allows_kinds),
                cmocka_unit_test(test_allows_exact),
                cmocka_unit_test(test_allows_groups),
                cmocka_unit_test(test_allows_machine_prefix),
                cmocka_unit_test(test_allows_service_prefix),
                cmocka_unit_test(test_allows_levels),
                cmocka_unit_test(test_allows_several),
                cmocka_unit_test(test_allows_empty),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
