/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG

#include "key.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "hexdecoct.h"

#define HASH_PRIMARY_1 "7c9fa136d4413fa6173637e883b6998d32e1d675f88cddff9dcbcf331820f4b8"
#define HASH_P1_A2_I3 "e92b80d2ee5ab0f63d286728dc9849450b7cf439c2c2718d3bac632a510fd50c"
#define HASH_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* sha256(LE64(2) || LE64(1) || 8 zero bytes): Primary 2, Active 1, Inactive 3 */
#define HASH_P2_A1_I3 "b3db6650e4598ca51942f83e2b5f5adc1d65b806fb1224619d7c385d3642de1c"
/* sha256(LE64(1) || 16 zero bytes): Primary 1, Inactive 2, Inactive 3 */
#define HASH_P1_I2_I3 "32edb6022c0921d99aa347e9cda5dc2db413f5574eebaaa8592234308ffebd2b"
/* sha256(LE64(1) || LE64(3) || 8 zero bytes): Primary 1, Active 3, Inactive 2 */
#define HASH_P1_A3_I2 "8442462f27e0de408fae8e834f91ce7586ccda19924b67454c1d7e20beba838f"
/* sha256(LE64(1) || LE64(2) || LE64(3)): Primary 1, Active 2, Active 3 */
#define HASH_P1_A2_A3 "e2e2033ae7e19d680599d4eb0a1359a2b48ec5baac75066c317fbf85159c54ef"
/* sha256(LE64(1) || 8 zero bytes): Primary 1, Inactive 2 */
#define HASH_P1_I2 "4cbbd8ca5215b8d161aec181a74b694f4e24b001d5b081dc0030ed797a8973e0"

#define MSG_PRIMARY_COUNT "More than one Primary key"
#define MSG_REPEATED_ID "Repeated Version ID"
#define MSG_TO_PRIMARY "Version must be Active to promote to Primary"
#define MSG_TO_ACTIVE "Primary Key can not be demoted. Specify Active key to promote."
#define MSG_TO_INACTIVE "Version must be Active to demote to Inactive"
#define MSG_NOT_FOUND "Key version not found"

static void hash_of(const KeyVersion *v, size_t n, char ret[static KEY_HASH_HEX_SIZE]) {
        assert_int_equal(key_version_hash(v, n, ret), 0);
}

/* A key with versions (ids[i], statuses[i]), each with a little data, and a valid ACL. */
static Key *make_key(const char *id, const uint64_t *ids, const VersionStatus *statuses, size_t n) {
        Key *k = key_new();

        assert_non_null(k);
        k->id = strdup(id);
        assert_non_null(k->id);

        k->acl.entries = calloc(2, sizeof(Access));
        assert_non_null(k->acl.entries);
        k->acl.entries[0] = (Access){PRINCIPAL_TYPE_USER, ACCESS_ADMIN, strdup("alice")};
        k->acl.entries[1] = (Access){PRINCIPAL_TYPE_MACHINE, ACCESS_READ, strdup("m1")};
        k->acl.n = 2;
        assert_non_null(k->acl.entries[0].id);
        assert_non_null(k->acl.entries[1].id);

        for (size_t i = 0; i < n; i++) {
                char data[32];
                KeyVersion v = {.id = ids[i], .status = statuses[i], .ts = (int64_t) (1000 + i)};

                (void) snprintf(data, sizeof(data), "data-%zu", i);
                v.data = secret_new_copy(data, strlen(data));
                assert_non_null(v.data);
                assert_int_equal(key_append_version(k, &v), 0);
                assert_null(v.data);
        }
        return k;
}

static Key *make_p1_a2_i3(void) {
        static const uint64_t ids[] = {1, 2, 3};
        static const VersionStatus st[] = {
                VERSION_STATUS_PRIMARY, VERSION_STATUS_ACTIVE, VERSION_STATUS_INACTIVE};
        return make_key("test:key", ids, st, 3);
}

static void assert_statuses(const Key *k, VersionStatus s1, VersionStatus s2, VersionStatus s3) {
        assert_int_equal(k->n_versions, 3);
        assert_int_equal(key_find_version(k, 1)->status, s1);
        assert_int_equal(key_find_version(k, 2)->status, s2);
        assert_int_equal(key_find_version(k, 3)->status, s3);
}

static void test_string_tables(void **state) {
        (void) state;

        assert_string_equal(version_status_to_string(VERSION_STATUS_PRIMARY), "Primary");
        assert_string_equal(version_status_to_string(VERSION_STATUS_ACTIVE), "Active");
        assert_string_equal(version_status_to_string(VERSION_STATUS_INACTIVE), "Inactive");
        assert_null(version_status_to_string(_VERSION_STATUS_MAX));
        assert_null(version_status_to_string(_VERSION_STATUS_INVALID));
        assert_int_equal(version_status_from_string("Primary"), VERSION_STATUS_PRIMARY);
        assert_int_equal(version_status_from_string("Active"), VERSION_STATUS_ACTIVE);
        assert_int_equal(version_status_from_string("Inactive"), VERSION_STATUS_INACTIVE);
        assert_true(version_status_from_string("primary") < 0);
        assert_true(version_status_from_string("\"Primary\"") < 0);
        assert_true(version_status_from_string("") < 0);
        assert_true(version_status_from_string(NULL) < 0);

        static const char *const types[] = {"User",          "UserGroup", "Machine",
                                            "MachinePrefix", "Service",   "ServicePrefix"};
        for (PrincipalType t = 0; t < _PRINCIPAL_TYPE_MAX; t++) {
                assert_string_equal(principal_type_to_string(t), types[t]);
                assert_int_equal(principal_type_from_string(types[t]), t);
        }
        assert_null(principal_type_to_string(_PRINCIPAL_TYPE_MAX));
        assert_null(principal_type_to_string(-1));
        assert_true(principal_type_from_string("user") < 0);
        assert_true(principal_type_from_string("Group") < 0);
        assert_true(principal_type_from_string(NULL) < 0);

        static const char *const accesses[] = {"None", "Read", "Write", "Admin"};
        for (AccessType a = 0; a < _ACCESS_TYPE_MAX; a++) {
                assert_string_equal(access_type_to_string(a), accesses[a]);
                assert_int_equal(access_type_from_string(accesses[a]), a);
        }
        /* Ordered: a grant covers the levels below it. */
        assert_true(ACCESS_NONE < ACCESS_READ && ACCESS_READ < ACCESS_WRITE && ACCESS_WRITE < ACCESS_ADMIN);
        assert_null(access_type_to_string(_ACCESS_TYPE_MAX));
        assert_true(access_type_from_string("admin") < 0);
        assert_true(access_type_from_string("Owner") < 0);
}

static void test_hash_vectors(void **state) {
        char h[KEY_HASH_HEX_SIZE];
        (void) state;

        KeyVersion only_primary[] = {{.id = 1, .status = VERSION_STATUS_PRIMARY}};
        hash_of(only_primary, 1, h);
        assert_string_equal(h, HASH_PRIMARY_1);

        KeyVersion three[] = {
                {.id = 1, .status = VERSION_STATUS_PRIMARY},
                {.id = 2, .status = VERSION_STATUS_ACTIVE},
                {.id = 3, .status = VERSION_STATUS_INACTIVE},
        };
        hash_of(three, 3, h);
        assert_string_equal(h, HASH_P1_A2_I3);

        hash_of(NULL, 0, h);
        assert_string_equal(h, HASH_EMPTY);
        assert_int_equal(strlen(h), 64);
}

static void test_hash_little_endian(void **state) {
        static const uint8_t le[8] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
        char h[KEY_HASH_HEX_SIZE], expected[KEY_HASH_HEX_SIZE];
        uint8_t md[32];
        unsigned md_len = 0;
        (void) state;

        /* Computed independently here: the id goes in as 8 little-endian bytes. */
        assert_int_equal(EVP_Digest(le, sizeof(le), md, &md_len, EVP_sha256(), NULL), 1);
        hexencode(md, md_len, expected);

        KeyVersion v[] = {{.id = UINT64_C(0x0102030405060708), .status = VERSION_STATUS_PRIMARY}};
        hash_of(v, 1, h);
        assert_string_equal(h, expected);
        assert_string_equal(h, "380b980886b7a3e726b5c2776160d7842b8f139eaea1e6acf7442cdf890e6287");
}

static void test_hash_order_independent(void **state) {
        static const unsigned perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                             {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
        const KeyVersion base[] = {
                {.id = 1, .status = VERSION_STATUS_PRIMARY},
                {.id = 2, .status = VERSION_STATUS_ACTIVE},
                {.id = 3, .status = VERSION_STATUS_INACTIVE},
        };
        const KeyVersion actives[] = {
                {.id = 3, .status = VERSION_STATUS_ACTIVE},
                {.id = 1, .status = VERSION_STATUS_PRIMARY},
                {.id = 2, .status = VERSION_STATUS_ACTIVE},
        };
        (void) state;

        for (size_t p = 0; p < ELEMENTSOF(perms); p++) {
                KeyVersion v[3];
                char h[KEY_HASH_HEX_SIZE];

                for (size_t i = 0; i < 3; i++)
                        v[i] = base[perms[p][i]];
                hash_of(v, 3, h);
                assert_string_equal(h, HASH_P1_A2_I3);

                /* Actives sort by id, not by position. */
                for (size_t i = 0; i < 3; i++)
                        v[i] = actives[perms[p][i]];
                hash_of(v, 3, h);
                assert_string_equal(h, HASH_P1_A2_A3);
        }
}

static void test_hash_deactivation(void **state) {
        char active[KEY_HASH_HEX_SIZE], inactive[KEY_HASH_HEX_SIZE], only[KEY_HASH_HEX_SIZE];
        (void) state;

        KeyVersion v[] = {
                {.id = 1, .status = VERSION_STATUS_PRIMARY},
                {.id = 2, .status = VERSION_STATUS_ACTIVE},
        };
        hash_of(v, 2, active);
        v[1].status = VERSION_STATUS_INACTIVE;
        hash_of(v, 2, inactive);
        hash_of(v, 1, only);

        assert_string_not_equal(active, inactive);
        /* The Inactive version still adds 8 zero bytes: not the same as dropping it. */
        assert_string_not_equal(inactive, only);
        assert_string_equal(inactive, HASH_P1_I2);
        assert_string_equal(only, HASH_PRIMARY_1);
}

static void test_update_hash_and_append(void **state) {
        _cleanup_(key_freep) Key *k = NULL;
        KeyVersion v = {.id = 3, .status = VERSION_STATUS_INACTIVE, .ts = 7};
        (void) state;

        k = key_new();
        assert_non_null(k);
        assert_string_equal(k->hash, "");
        assert_int_equal(key_update_hash(k), 0);
        assert_string_equal(k->hash, HASH_EMPTY);
        assert_null(key_primary_version(k));
        assert_null(key_find_version(k, 0));

        KeyVersion p = {.id = 1, .status = VERSION_STATUS_PRIMARY, .ts = 5};
        p.data = secret_new_copy("one", 3);
        assert_non_null(p.data);
        assert_int_equal(key_append_version(k, &p), 0);
        assert_null(p.data);
        assert_int_equal(p.id, 0);
        assert_string_equal(k->hash, HASH_PRIMARY_1);

        KeyVersion a = {.id = 2, .status = VERSION_STATUS_ACTIVE, .ts = 6};
        assert_int_equal(key_append_version(k, &a), 0);
        v.sealed = malloc(4);
        v.sealed_size = 4;
        v.crypt = malloc(13);
        v.crypt_size = 13;
        assert_non_null(v.sealed);
        assert_non_null(v.crypt);
        memset(v.sealed, 'x', 4);
        memset(v.crypt, 0, 13);
        assert_int_equal(key_append_version(k, &v), 0);
        assert_null(v.sealed);
        assert_null(v.crypt);
        assert_string_equal(k->hash, HASH_P1_A2_I3);

        /* Stored order is insertion order. */
        assert_int_equal(k->n_versions, 3);
        assert_int_equal(k->versions[0].id, 1);
        assert_int_equal(k->versions[1].id, 2);
        assert_int_equal(k->versions[2].id, 3);
        assert_ptr_equal(key_primary_version(k), &k->versions[0]);
        assert_ptr_equal(key_find_version(k, 2), &k->versions[1]);
        assert_int_equal(key_find_version(k, 3)->ts, 7);
        assert_memory_equal(key_find_version(k, 1)->data->data, "one", 3);
        assert_null(key_find_version(k, 4));
        assert_null(key_find_version(NULL, 1));
        assert_null(key_primary_version(NULL));
}

static void test_versions_validate(void **state) {
        const char *msg;
        (void) state;

        KeyVersion ok[] = {
                {.id = 1, .status = VERSION_STATUS_PRIMARY},
                {.id = 2, .status = VERSION_STATUS_ACTIVE},
                {.id = 3, .status = VERSION_STATUS_INACTIVE},
        };
        msg = NULL;
        assert_int_equal(key_versions_validate(ok, 3, &msg), 0);
        assert_null(msg);
        assert_int_equal(key_versions_validate(ok, 1, NULL), 0);

        /* Zero Primary uses the same message as two. */
        KeyVersion none[] = {
                {.id = 1, .status = VERSION_STATUS_ACTIVE},
                {.id = 2, .status = VERSION_STATUS_INACTIVE},
        };
        assert_int_equal(key_versions_validate(none, 2, &msg), -EINVAL);
        assert_string_equal(msg, MSG_PRIMARY_COUNT);
        msg = NULL;
        assert_int_equal(key_versions_validate(NULL, 0, &msg), -EINVAL);
        assert_string_equal(msg, MSG_PRIMARY_COUNT);

        KeyVersion two[] = {
                {.id = 1, .status = VERSION_STATUS_PRIMARY},
                {.id = 2, .status = VERSION_STATUS_PRIMARY},
        };
        msg = NULL;
        assert_int_equal(key_versions_validate(two, 2, &msg), -EINVAL);
        assert_string_equal(msg, MSG_PRIMARY_COUNT);

        KeyVersion repeated[] = {
                {.id = 7, .status = VERSION_STATUS_PRIMARY},
                {.id = 8, .status = VERSION_STATUS_ACTIVE},
                {.id = 7, .status = VERSION_STATUS_INACTIVE},
        };
        msg = NULL;
        assert_int_equal(key_versions_validate(repeated, 3, &msg), -EINVAL);
        assert_string_equal(msg, MSG_REPEATED_ID);
        assert_int_equal(key_versions_validate(repeated, 3, NULL), -EINVAL);

        /* Knox checks ids while it counts, so a repeat wins over a bad Primary count. */
        KeyVersion both[] = {
                {.id = 7, .status = VERSION_STATUS_ACTIVE},
                {.id = 7, .status = VERSION_STATUS_ACTIVE},
        };
        msg = NULL;
        assert_int_equal(key_versions_validate(both, 2, &msg), -EINVAL);
        assert_string_equal(msg, MSG_REPEATED_ID);
}

static void test_key_validate(void **state) {
        _cleanup_(key_freep) Key *k = make_p1_a2_i3();
        const char *msg;
        char *saved;
        (void) state;

        msg = NULL;
        assert_int_equal(key_validate(k, &msg), 0);
        assert_null(msg);

        /* Key id. */
        saved = k->id;
        static const char *const bad_ids[] = {"", "a-b", "a b", "a/b", "key.1"};
        for (size_t i = 0; i < ELEMENTSOF(bad_ids); i++) {
                k->id = (char *) bad_ids[i];
                msg = NULL;
                assert_int_equal(key_validate(k, &msg), -EINVAL);
                assert_string_equal(
                        msg, "KeyID can only contain alphanumeric characters, colons, and underscores.");
        }
        k->id = NULL;
        assert_int_equal(key_validate(k, &msg), -EINVAL);
        k->id = saved;
        assert_int_equal(key_validate(k, NULL), 0);

        /* ACL: a None entry, then a duplicate (type, id). */
        k->acl.entries[1].access = ACCESS_NONE;
        msg = NULL;
        assert_int_equal(key_validate(k, &msg), -EINVAL);
        assert_string_equal(msg, "ACL contains None access");
        k->acl.entries[1].access = ACCESS_READ;
        k->acl.entries[1].type = PRINCIPAL_TYPE_USER;
        saved = k->acl.entries[1].id;
        k->acl.entries[1].id = (char *) "alice";
        msg = NULL;
        assert_int_equal(key_validate(k, &msg), -EINVAL);
        assert_string_equal(msg, "Duplicate entries in ACL");

        /* The ACL is checked before the versions, as Knox does. */
        k->versions[0].status = VERSION_STATUS_ACTIVE;
        msg = NULL;
        assert_int_equal(key_validate(k, &msg), -EINVAL);
        assert_string_equal(msg, "Duplicate entries in ACL");
        k->acl.entries[1].id = saved;
        k->acl.entries[1].type = PRINCIPAL_TYPE_MACHINE;

        /* Versions: no Primary, then a repeated id. */
        msg = NULL;
        assert_int_equal(key_validate(k, &msg), -EINVAL);
        assert_string_equal(msg, MSG_PRIMARY_COUNT);
        k->versions[0].status = VERSION_STATUS_PRIMARY;
        k->versions[2].id = 2;
        msg = NULL;
        assert_int_equal(key_validate(k, &msg), -EINVAL);
        assert_string_equal(msg, MSG_REPEATED_ID);
        k->versions[2].id = 3;
        assert_int_equal(key_validate(k, NULL), 0);

        /* The stored hash must describe the versions. */
        k->versions[1].status = VERSION_STATUS_INACTIVE;
        msg = NULL;
        assert_int_equal(key_validate(k, &msg), -EINVAL);
        assert_string_equal(msg, "Hash does not match");
        assert_int_equal(key_update_hash(k), 0);
        assert_string_equal(k->hash, HASH_P1_I2_I3);
        assert_int_equal(key_validate(k, &msg), 0);
        k->hash[0] = '\0';
        msg = NULL;
        assert_int_equal(key_validate(k, &msg), -EINVAL);
        assert_string_equal(msg, "Hash does not match");
}

static void test_promote(void **state) {
        _cleanup_(key_freep) Key *k = make_p1_a2_i3();
        const char *msg;
        (void) state;

        assert_string_equal(k->hash, HASH_P1_A2_I3);

        /* Inactive -> Primary and Primary -> Primary are refused, nothing changes. */
        msg = NULL;
        assert_int_equal(key_set_version_status(k, 3, VERSION_STATUS_PRIMARY, &msg), -EINVAL);
        assert_string_equal(msg, MSG_TO_PRIMARY);
        msg = NULL;
        assert_int_equal(key_set_version_status(k, 1, VERSION_STATUS_PRIMARY, &msg), -EINVAL);
        assert_string_equal(msg, MSG_TO_PRIMARY);
        assert_statuses(k, VERSION_STATUS_PRIMARY, VERSION_STATUS_ACTIVE, VERSION_STATUS_INACTIVE);
        assert_string_equal(k->hash, HASH_P1_A2_I3);

        /* Active -> Primary: the old Primary becomes Active. */
        msg = NULL;
        assert_int_equal(key_set_version_status(k, 2, VERSION_STATUS_PRIMARY, &msg), 0);
        assert_null(msg);
        assert_statuses(k, VERSION_STATUS_ACTIVE, VERSION_STATUS_PRIMARY, VERSION_STATUS_INACTIVE);
        assert_string_equal(k->hash, HASH_P2_A1_I3);
        assert_int_equal(key_primary_version(k)->id, 2);
        assert_int_equal(key_validate(k, NULL), 0);

        /* And back. */
        assert_int_equal(key_set_version_status(k, 1, VERSION_STATUS_PRIMARY, NULL), 0);
        assert_statuses(k, VERSION_STATUS_PRIMARY, VERSION_STATUS_ACTIVE, VERSION_STATUS_INACTIVE);
        assert_string_equal(k->hash, HASH_P1_A2_I3);
}

static void test_reactivate(void **state) {
        _cleanup_(key_freep) Key *k = make_p1_a2_i3();
        const char *msg;
        (void) state;

        /* Primary -> Active and Active -> Active are refused with Knox's one message. */
        msg = NULL;
        assert_int_equal(key_set_version_status(k, 1, VERSION_STATUS_ACTIVE, &msg), -EINVAL);
        assert_string_equal(msg, MSG_TO_ACTIVE);
        msg = NULL;
        assert_int_equal(key_set_version_status(k, 2, VERSION_STATUS_ACTIVE, &msg), -EINVAL);
        assert_string_equal(msg, MSG_TO_ACTIVE);
        assert_statuses(k, VERSION_STATUS_PRIMARY, VERSION_STATUS_ACTIVE, VERSION_STATUS_INACTIVE);
        assert_string_equal(k->hash, HASH_P1_A2_I3);

        /* Inactive -> Active. */
        msg = NULL;
        assert_int_equal(key_set_version_status(k, 3, VERSION_STATUS_ACTIVE, &msg), 0);
        assert_null(msg);
        assert_statuses(k, VERSION_STATUS_PRIMARY, VERSION_STATUS_ACTIVE, VERSION_STATUS_ACTIVE);
        assert_string_equal(k->hash, HASH_P1_A2_A3);
        assert_int_equal(key_validate(k, NULL), 0);
}

static void test_deactivate(void **state) {
        _cleanup_(key_freep) Key *k = make_p1_a2_i3();
        const char *msg;
        (void) state;

        /* Primary -> Inactive and Inactive -> Inactive are refused. */
        msg = NULL;
        assert_int_equal(key_set_version_status(k, 1, VERSION_STATUS_INACTIVE, &msg), -EINVAL);
        assert_string_equal(msg, MSG_TO_INACTIVE);
        msg = NULL;
        assert_int_equal(key_set_version_status(k, 3, VERSION_STATUS_INACTIVE, &msg), -EINVAL);
        assert_string_equal(msg, MSG_TO_INACTIVE);
        assert_statuses(k, VERSION_STATUS_PRIMARY, VERSION_STATUS_ACTIVE, VERSION_STATUS_INACTIVE);
        assert_string_equal(k->hash, HASH_P1_A2_I3);

        /* Active -> Inactive. */
        msg = NULL;
        assert_int_equal(key_set_version_status(k, 2, VERSION_STATUS_INACTIVE, &msg), 0);
        assert_null(msg);
        assert_statuses(k, VERSION_STATUS_PRIMARY, VERSION_STATUS_INACTIVE, VERSION_STATUS_INACTIVE);
        assert_string_equal(k->hash, HASH_P1_I2_I3);
        assert_int_equal(key_validate(k, NULL), 0);

        /* A full cycle: reactivate 3, demote... the hash follows the statuses. */
        assert_int_equal(key_set_version_status(k, 3, VERSION_STATUS_ACTIVE, NULL), 0);
        assert_string_equal(k->hash, HASH_P1_A3_I2);
}

static void test_transition_unknown(void **state) {
        _cleanup_(key_freep) Key *k = make_p1_a2_i3();
        const char *msg;
        (void) state;

        for (VersionStatus s = 0; s < _VERSION_STATUS_MAX; s++) {
                msg = NULL;
                assert_int_equal(key_set_version_status(k, 4, s, &msg), -ENOENT);
                assert_string_equal(msg, MSG_NOT_FOUND);
        }
        assert_int_equal(key_set_version_status(k, 0, VERSION_STATUS_PRIMARY, NULL), -ENOENT);
        assert_int_equal(key_set_version_status(k, 2, _VERSION_STATUS_MAX, NULL), -EINVAL);
        assert_int_equal(key_set_version_status(k, 2, _VERSION_STATUS_INVALID, NULL), -EINVAL);
        assert_statuses(k, VERSION_STATUS_PRIMARY, VERSION_STATUS_ACTIVE, VERSION_STATUS_INACTIVE);
        assert_string_equal(k->hash, HASH_P1_A2_I3);
}

static void test_key_id(void **state) {
        (void) state;

        static const char *const good[] = {
                "a", "Z", "0", "_", ":", "test:key", "A_b:9", "tink:aead:x", "demo:key1", "UPPER_lower_09"};
        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert_true(key_id_is_valid(good[i]));

        static const char *const bad[] = {"",         "a-b",    "a b",  "a/b",  "a.b", "a\n",
                                          "\xc3\xa9", "key%20", "a\"b", "a\\b", "-",   " a"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_false(key_id_is_valid(bad[i]));
        assert_false(key_id_is_valid(NULL));
}

static void test_new_version_id(void **state) {
        _cleanup_(key_freep) Key *k = NULL;
        uint64_t high_bits = 0;
        (void) state;

        k = key_new();
        assert_non_null(k);

        for (unsigned i = 0; i < 256; i++) {
                KeyVersion v = {.status = i == 0 ? VERSION_STATUS_PRIMARY : VERSION_STATUS_ACTIVE};
                uint64_t id = UINT64_MAX;

                assert_int_equal(key_new_version_id(k, &id), 0);
                assert_true(id <= VERSION_ID_MAX);
                assert_null(key_find_version(k, id));
                high_bits |= id;

                v.id = id;
                assert_int_equal(key_append_version(k, &v), 0);
        }
        /* All 256 are distinct, so the list is valid; 63 bits are used, not 32. */
        assert_int_equal(key_versions_validate(k->versions, k->n_versions, NULL), 0);
        assert_true(high_bits & (UINT64_C(1) << 62));
        assert_false(high_bits & (UINT64_C(1) << 63));

        /* No key at all is fine too. */
        uint64_t id;
        assert_int_equal(key_new_version_id(NULL, &id), 0);
        assert_true(id <= VERSION_ID_MAX);
}

static void test_acl_copy_and_free(void **state) {
        _cleanup_(key_freep) Key *k = make_p1_a2_i3();
        _cleanup_acl_ Acl copy = {}, empty = {};
        Acl none = {};
        (void) state;

        assert_int_equal(acl_copy(&k->acl, &copy), 0);
        assert_int_equal(copy.n, 2);
        assert_ptr_not_equal(copy.entries, k->acl.entries);
        assert_ptr_not_equal(copy.entries[0].id, k->acl.entries[0].id);
        assert_string_equal(copy.entries[0].id, "alice");
        assert_int_equal(copy.entries[0].type, PRINCIPAL_TYPE_USER);
        assert_int_equal(copy.entries[0].access, ACCESS_ADMIN);
        assert_string_equal(copy.entries[1].id, "m1");
        assert_int_equal(copy.entries[1].type, PRINCIPAL_TYPE_MACHINE);
        assert_int_equal(copy.entries[1].access, ACCESS_READ);

        assert_int_equal(acl_copy(&none, &empty), 0);
        assert_int_equal(empty.n, 0);
        assert_null(empty.entries);

        /* Destructors take NULL and reset what they were given. */
        acl_done(NULL);
        access_done(NULL);
        key_version_done(NULL);
        assert_null(key_free(NULL));
        KeyVersion v = {.id = 1, .data = secret_new_copy("x", 1)};
        key_version_done(&v);
        assert_null(v.data);
        assert_int_equal(v.id, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_string_tables),
                cmocka_unit_test(test_hash_vectors),
                cmocka_unit_test(test_hash_little_endian),
                cmocka_unit_test(test_hash_order_independent),
                cmocka_unit_test(test_hash_deactivation),
                cmocka_unit_test(test_update_hash_and_append),
                cmocka_unit_test(test_versions_validate),
                cmocka_unit_test(test_key_validate),
                cmocka_unit_test(test_promote),
                cmocka_unit_test(test_reactivate),
                cmocka_unit_test(test_deactivate),
                cmocka_unit_test(test_transition_unknown),
                cmocka_unit_test(test_key_id),
                cmocka_unit_test(test_new_version_id),
                cmocka_unit_test(test_acl_copy_and_free),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
