/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

/* Every Knox JSON decoder on the same input: a key, a stored version list, a response
 * envelope, an ACL and one ACL entry. Whatever parses is written out again and must parse
 * back to the same thing. */

#include "fuzz.h"

#include <assert.h>
#include <string.h>

#include "acl-json.h"
#include "json-util.h"
#include "knox-json.h"

static void assert_same_versions(const KeyVersion *a, const KeyVersion *b, size_t n, bool sealed) {
        for (size_t i = 0; i < n; i++) {
                assert(a[i].id == b[i].id);
                assert(a[i].status == b[i].status);
                assert(a[i].ts == b[i].ts);
                if (sealed) {
                        assert(a[i].sealed_size == b[i].sealed_size);
                        assert(memcmp(a[i].sealed, b[i].sealed, a[i].sealed_size) == 0);
                        assert(a[i].crypt_size == b[i].crypt_size);
                        assert(memcmp(a[i].crypt, b[i].crypt, a[i].crypt_size) == 0);
                } else {
                        assert(a[i].data->size == b[i].data->size);
                        assert(memcmp(a[i].data->data, b[i].data->data, a[i].data->size) == 0);
                }
        }
}

/* Invalid UTF-8 is written as \ufffd, so such strings change on the first round only. */
static bool lossless(const Buf *b) {
        return !strstr(b->data, "\\ufffd");
}

static void assert_same_acl(const Acl *a, const Acl *b, bool strings) {
        assert(a->n == b->n);
        for (size_t i = 0; i < a->n; i++) {
                assert(a->entries[i].type == b->entries[i].type);
                assert(a->entries[i].access == b->entries[i].access);
                if (strings)
                        assert(streq(a->entries[i].id, b->entries[i].id));
        }
}

static void fuzz_key(const char *s, size_t n) {
        _cleanup_(key_freep) Key *k = NULL, *k2 = NULL, *k3 = NULL;
        _cleanup_buf_ Buf e1 = BUF_INIT_SECURE, e2 = BUF_INIT_SECURE, e3 = BUF_INIT_SECURE;
        const char *msg = NULL;

        if (knox_key_parse(s, n, &k, &msg) < 0) {
                assert(msg);
                return;
        }

        /* Exercise the model on whatever came in. */
        (void) key_validate(k, &msg);
        (void) key_primary_version(k);

        assert(knox_key_json_append(&e1, k, VERSION_STATUS_INACTIVE, true) == 0);
        assert(knox_key_parse(e1.data, e1.len, &k2, &msg) == 0);
        assert(streq(k->hash, k2->hash));
        assert(k->n_versions == k2->n_versions);
        assert_same_versions(k->versions, k2->versions, k->n_versions, false);
        assert_same_acl(&k->acl, &k2->acl, lossless(&e1));
        if (lossless(&e1))
                assert(streq(k->id, k2->id));

        assert(knox_key_json_append(&e2, k2, VERSION_STATUS_INACTIVE, true) == 0);
        assert(knox_key_parse(e2.data, e2.len, &k3, &msg) == 0);
        assert(knox_key_json_append(&e3, k3, VERSION_STATUS_INACTIVE, true) == 0);
        assert(e2.len == e3.len && memcmp(e2.data, e3.data, e2.len) == 0);
        if (lossless(&e1))
                assert(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0);

        /* Filtered forms parse too, whenever a version survives the filter. */
        for (VersionStatus max = 0; max < _VERSION_STATUS_MAX; max++) {
                _cleanup_(key_freep) Key *f = NULL;
                _cleanup_buf_ Buf b = BUF_INIT_SECURE;
                bool any = false;

                FOREACH_ARRAY(v, k->versions, k->n_versions)
                        any = any || v->status <= max;
                assert(knox_key_json_append(&b, k, max, false) == 0);
                assert((knox_key_parse(b.data, b.len, &f, &msg) == 0) == any);
                if (f)
                        assert(f->acl.n == 0 && streq(f->hash, k->hash));
        }

        /* Every transition on every version: the hash always follows the statuses. */
        for (size_t i = 0; i < k->n_versions && i < 8; i++)
                for (VersionStatus to = 0; to < _VERSION_STATUS_MAX; to++) {
                        char h[KEY_HASH_HEX_SIZE];

                        if (key_set_version_status(k, k->versions[i].id, to, &msg) < 0)
                                continue;
                        assert(key_version_hash(k->versions, k->n_versions, h) == 0);
                        assert(streq(h, k->hash));
                }
}

static void fuzz_sealed(const char *s, size_t n) {
        _cleanup_buf_ Buf e1 = BUF_INIT, e2 = BUF_INIT;
        KeyVersion *v = NULL, *v2 = NULL;
        size_t count = 0, count2 = 0;
        const char *msg = NULL;

        if (knox_sealed_versions_parse(s, n, &v, &count, &msg) < 0) {
                assert(msg);
                return;
        }

        assert(knox_sealed_versions_json_append(&e1, v, count) == 0);
        assert(knox_sealed_versions_parse(e1.data, e1.len, &v2, &count2, &msg) == 0);
        assert(count == count2);
        assert_same_versions(v, v2, count, true);
        assert(knox_sealed_versions_json_append(&e2, v2, count2) == 0);
        assert(e1.len == e2.len && memcmp(e1.data, e2.data, e1.len) == 0);

        for (size_t i = 0; i < count; i++)
                key_version_done(&v[i]);
        for (size_t i = 0; i < count2; i++)
                key_version_done(&v2[i]);
        free(v);
        free(v2);
}

static void fuzz_response(const char *s, size_t n) {
        KnoxResponse r = {};
        const char *msg = NULL;

        if (knox_response_parse(s, n, &r, &msg) < 0) {
                assert(msg);
                return;
        }
        assert(r.host && r.message);

        if (json_object_is_type(r.data, json_type_object)) {
                _cleanup_(key_freep) Key *k = NULL;
                (void) knox_key_from_json(r.data, &k, &msg);
        } else if (json_object_is_type(r.data, json_type_array)) {
                _cleanup_acl_ Acl acl = {};
                (void) acl_from_json(r.data, &acl, &msg);
        }
        knox_response_done(&r);
}

static void fuzz_acl(const char *s, size_t n) {
        _cleanup_acl_ Acl acl = {}, acl2 = {};
        _cleanup_buf_ Buf e1 = BUF_INIT;
        const char *msg = NULL;

        if (acl_parse(s, n, &acl, &msg) < 0) {
                assert(msg);
                return;
        }
        assert(acl_json_append(&e1, &acl) == 0);
        assert(acl_parse(e1.data, e1.len, &acl2, &msg) == 0);
        assert_same_acl(&acl, &acl2, lossless(&e1));
}

static void fuzz_access(const char *s, size_t n) {
        _cleanup_buf_ Buf e1 = BUF_INIT;
        Access a = {}, a2 = {};
        const char *msg = NULL;

        if (access_parse(s, n, &a, &msg) < 0) {
                assert(msg);
                return;
        }
        assert(access_json_append(&e1, &a) == 0);
        assert(access_parse(e1.data, e1.len, &a2, &msg) == 0);
        assert(a.type == a2.type && a.access == a2.access);
        if (lossless(&e1))
                assert(streq(a.id, a2.id));
        access_done(&a);
        access_done(&a2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *s = (const char *) data;

        if (size > FUZZ_INPUT_MAX)
                return 0;

        fuzz_key(s, size);
        fuzz_sealed(s, size);
        fuzz_response(s, size);
        fuzz_acl(s, size);
        fuzz_access(s, size);
        return 0;
}
