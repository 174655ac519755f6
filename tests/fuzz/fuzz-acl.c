/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ACL engine on parsed input: principal validation, merge, validation, the ACL of a new
 * key and access decisions, with the invariants that tie them together. */

#include <string.h>

#include "acl-json.h"
#include "acl.h"
#include "buf.h"
#include "fuzz.h"
#include "key.h"

#define CHECK(expr)                       \
        do {                              \
                if (!(expr))              \
                        __builtin_trap(); \
        } while (false)

static const char *const principal_messages[] = {
        "Principals of type user, user group, machine, or machine prefix may not be empty.",
        "Service prefix is invalid URL, must conform to 'spiffe://<domain>/<path>/' format.",
        "Service prefix had no trailing slash, must conform to 'spiffe://<domain>/<path>/' format.",
};

static bool message_is_one_of(const char *msg, const char *const *list, size_t n) {
        if (!msg)
                return false;
        for (size_t i = 0; i < n; i++)
                if (streq(msg, list[i]))
                        return true;
        return false;
}

static void check_principal(const Access *a) {
        const char *msg = NULL;
        int r;

        r = access_validate_principal(a, &msg);
        CHECK(r == 0 || r == -EINVAL);
        CHECK(r == 0 || message_is_one_of(msg, principal_messages, ELEMENTSOF(principal_messages)));
        CHECK(r < 0 || !isempty(a->id));
}

static void check_validate(const Acl *acl) {
        const char *msg = NULL;
        int r;

        r = acl_validate(acl, &msg);
        CHECK(r == 0 || r == -EINVAL);
        CHECK(r == 0 || streq(msg, "ACL contains None access") || streq(msg, "Duplicate entries in ACL"));
}

/* Each level covers those below it, and a mux allows what any of its members allows. */
static void
check_decisions(const Acl *acl, const Principals *single, size_t n_single, const Principals *mux) {
        for (AccessType need = ACCESS_READ; need < _ACCESS_TYPE_MAX; need++) {
                bool any = false;

                for (size_t i = 0; i < n_single; i++) {
                        bool yes = acl_allows(acl, &single[i], need);

                        CHECK(yes == acl_allows_principal(acl, &single[i].items[0], need));
                        if (yes && need > ACCESS_READ)
                                CHECK(acl_allows(acl, &single[i], need - 1));
                        any = any || yes;
                }
                CHECK(acl_allows(acl, mux, need) == any);
        }
}

static int fixed_principals(Principals single[static 3], Principals *mux) {
        static char *const groups[] = {(char *) "eng", (char *) "security-team", NULL};
        int r;

        r = principals_add(&single[0], PRINCIPAL_KIND_USER, "alice", groups, "user");
        if (r >= 0)
                r = principals_add(&single[1], PRINCIPAL_KIND_MACHINE, "auth004.example.com", NULL, "mtls");
        if (r >= 0)
                r = principals_add(
                        &single[2], PRINCIPAL_KIND_SERVICE, "spiffe://example.com/ns/prod/web", NULL,
                        "spiffe");
        for (size_t i = 0; r >= 0 && i < 3; i++)
                r = principals_add(
                        mux, single[i].items[0].kind, single[i].items[0].id, single[i].items[0].groups,
                        single[i].items[0].provider);
        return r;
}

static void fuzz_acl(const Acl *acl, const Principals *single, const Principals *mux) {
        _cleanup_acl_ Acl merged = {}, created = {};
        static const Access default_entries[] = {
                {.type = PRINCIPAL_TYPE_USER_GROUP, .id = (char *) "security-team", .access = ACCESS_ADMIN},
        };
        const Acl defaults = {.entries = (Access *) default_entries, .n = ELEMENTSOF(default_entries)};
        bool valid;

        FOREACH_ARRAY(a, acl->entries, acl->n) {
                check_principal(a);
                if (acl_merge(&merged, a) < 0)
                        return;
        }
        /* Merging into an empty ACL can never produce None or a duplicate. */
        CHECK(acl_validate(&merged, NULL) == 0);
        CHECK(merged.n <= acl->n);

        check_validate(acl);
        valid = acl_validate(acl, NULL) == 0;
        /* A valid ACL merged into nothing is itself. */
        if (valid)
                CHECK(merged.n == acl->n);

        if (acl_copy(acl, &created) < 0)
                return;
        if (acl_build_for_create(&created, "alice", &defaults) < 0)
                return;
        /* The creator and the default are there with Admin; a valid request stays valid. */
        CHECK(acl_allows_principal(&created, &single[0].items[0], ACCESS_ADMIN));
        CHECK(created.n >= acl->n && created.n <= acl->n + 2);
        if (valid)
                CHECK(acl_validate(&created, NULL) == 0);

        check_decisions(acl, single, 3, mux);
        check_decisions(&merged, single, 3, mux);
        check_decisions(&created, single, 3, mux);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_acl_ Acl acl = {};
        _cleanup_(access_done) Access single_access = {};
        _cleanup_buf_ Buf b = BUF_INIT;
        Principals single[3] = {}, mux = {};
        const char *msg = NULL;

        if (size > FUZZ_INPUT_MAX)
                return 0;

        if (fixed_principals(single, &mux) < 0)
                goto finish;
        if (principals_type_append(&mux, &b) >= 0)
                CHECK(streq(b.data, "mux[user=>user,mtls=>machine,spiffe=>service]"));

        if (acl_parse((const char *) data, size, &acl, &msg) >= 0)
                fuzz_acl(&acl, single, &mux);

        if (access_parse((const char *) data, size, &single_access, &msg) >= 0) {
                Acl one = {.entries = &single_access, .n = 1};
                fuzz_acl(&one, single, &mux);
        }

finish:
        for (size_t i = 0; i < ELEMENTSOF(single); i++)
                principals_done(&single[i]);
        principals_done(&mux);
        return 0;
}
