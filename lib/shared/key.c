/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "key.h"

#include <openssl/evp.h>
#include <string.h>

#include "acl.h"
#include "hexdecoct.h"
#include "random-util.h"

/* clang-format off */
static const char *const version_status_table[_VERSION_STATUS_MAX] = {
        [VERSION_STATUS_PRIMARY]  = "Primary",
        [VERSION_STATUS_ACTIVE]   = "Active",
        [VERSION_STATUS_INACTIVE] = "Inactive",
};

static const char *const principal_type_table[_PRINCIPAL_TYPE_MAX] = {
        [PRINCIPAL_TYPE_USER]           = "User",
        [PRINCIPAL_TYPE_USER_GROUP]     = "UserGroup",
        [PRINCIPAL_TYPE_MACHINE]        = "Machine",
        [PRINCIPAL_TYPE_MACHINE_PREFIX] = "MachinePrefix",
        [PRINCIPAL_TYPE_SERVICE]        = "Service",
        [PRINCIPAL_TYPE_SERVICE_PREFIX] = "ServicePrefix",
};

static const char *const access_type_table[_ACCESS_TYPE_MAX] = {
        [ACCESS_NONE]  = "None",
        [ACCESS_READ]  = "Read",
        [ACCESS_WRITE] = "Write",
        [ACCESS_ADMIN] = "Admin",
};
/* clang-format on */

static int table_lookup(const char *const *table, size_t n, const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (streq(table[i], s))
                        return (int) i;
        return -EINVAL;
}

const char *version_status_to_string(VersionStatus s) {
        if (s < 0 || s >= _VERSION_STATUS_MAX)
                return NULL;
        return version_status_table[s];
}

VersionStatus version_status_from_string(const char *s) {
        return (VersionStatus) table_lookup(version_status_table, _VERSION_STATUS_MAX, s);
}

const char *principal_type_to_string(PrincipalType t) {
        if (t < 0 || t >= _PRINCIPAL_TYPE_MAX)
                return NULL;
        return principal_type_table[t];
}

PrincipalType principal_type_from_string(const char *s) {
        return (PrincipalType) table_lookup(principal_type_table, _PRINCIPAL_TYPE_MAX, s);
}

const char *access_type_to_string(AccessType a) {
        if (a < 0 || a >= _ACCESS_TYPE_MAX)
                return NULL;
        return access_type_table[a];
}

AccessType access_type_from_string(const char *s) {
        return (AccessType) table_lookup(access_type_table, _ACCESS_TYPE_MAX, s);
}

void access_done(Access *a) {
        if (!a)
                return;
        free(a->id);
        a->id = NULL;
}

void acl_done(Acl *acl) {
        if (!acl)
                return;
        FOREACH_ARRAY(a, acl->entries, acl->n)
                access_done(a);
        free(acl->entries);
        acl->entries = NULL;
        acl->n = 0;
}

int acl_copy(const Acl *acl, Acl *ret) {
        _cleanup_acl_ Acl copy = {};

        assert_return(acl, -EINVAL);
        assert_return(ret, -EINVAL);

        if (acl->n > 0) {
                copy.entries = calloc(acl->n, sizeof(Access));
                if (!copy.entries)
                        return -ENOMEM;
                for (size_t i = 0; i < acl->n; i++) {
                        copy.entries[i] = (Access){
                                .type = acl->entries[i].type,
                                .access = acl->entries[i].access,
                                .id = strdup(strempty(acl->entries[i].id)),
                        };
                        copy.n = i + 1;
                        if (!copy.entries[i].id)
                                return -ENOMEM;
                }
        }

        *ret = copy;
        copy = (Acl){};
        return 0;
}

void key_version_done(KeyVersion *v) {
        if (!v)
                return;
        secret_free(v->data);
        erase_and_free(v->sealed, v->sealed_size);
        erase_and_free(v->crypt, v->crypt_size);
        *v = (KeyVersion){};
}

Key *key_new(void) {
        return calloc(1, sizeof(Key));
}

Key *key_free(Key *k) {
        if (!k)
                return NULL;
        free(k->id);
        acl_done(&k->acl);
        FOREACH_ARRAY(v, k->versions, k->n_versions)
                key_version_done(v);
        free(k->versions);
        free(k);
        return NULL;
}

bool key_id_is_valid(const char *id) {
        if (isempty(id))
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == ':'))
                        return false;
        return true;
}

typedef struct HashItem {
        int status;
        uint64_t id;
} HashItem;

static int hash_item_compare(const void *a, const void *b) {
        const HashItem *x = a, *y = b;

        if (x->status != y->status)
                return x->status < y->status ? -1 : 1;
        if (x->id != y->id)
                return x->id < y->id ? -1 : 1;
        return 0;
}

int key_version_hash(const KeyVersion *versions, size_t n, char ret[static KEY_HASH_HEX_SIZE]) {
        _cleanup_free_ HashItem *items = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        static const uint8_t empty[1];
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned md_len = 0;
        size_t size, off = 0;

        assert_return(versions || n == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        if (!MUL_SAFE(&size, n, (size_t) 8))
                return -E2BIG;

        if (n > 0) {
                items = calloc(n, sizeof(HashItem));
                buf = calloc(n, 8); /* zeroed: each Inactive version leaves 8 zero bytes */
                if (!items || !buf)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++)
                        items[i] = (HashItem){.status = versions[i].status, .id = versions[i].id};
                qsort(items, n, sizeof(HashItem), hash_item_compare);

                for (size_t i = 0; i < n; i++) {
                        if (items[i].status == VERSION_STATUS_INACTIVE)
                                continue;
                        for (size_t j = 0; j < 8; j++)
                                buf[off + j] = (uint8_t) (items[i].id >> (8 * j));
                        off += 8;
                }
        }

        if (EVP_Digest(buf ?: empty, size, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
                return -EIO;

        hexencode(md, md_len, ret);
        return 0;
}

int key_update_hash(Key *k) {
        char hash[KEY_HASH_HEX_SIZE];
        int r;

        assert_return(k, -EINVAL);

        r = key_version_hash(k->versions, k->n_versions, hash);
        if (r < 0) {
                /* Never leave a hash that no longer describes the versions. */
                k->hash[0] = '\0';
                return r;
        }
        memcpy(k->hash, hash, sizeof(hash));
        return 0;
}

int key_versions_validate(const KeyVersion *versions, size_t n, const char **reterr_message) {
        size_t n_primary = 0;

        assert_return(versions || n == 0, -EINVAL);

        /* Knox's order: a repeated id is reported before the Primary count. */
        for (size_t i = 0; i < n; i++) {
                if (versions[i].status == VERSION_STATUS_PRIMARY)
                        n_primary++;
                for (size_t j = 0; j < i; j++)
                        if (versions[j].id == versions[i].id) {
                                if (reterr_message)
                                        *reterr_message = "Repeated Version ID";
                                return -EINVAL;
                        }
        }

        if (n_primary != 1) {
                if (reterr_message)
                        *reterr_message = "More than one Primary key";
                return -EINVAL;
        }

        for (size_t i = 0; i < n; i++)
                if (versions[i].status < 0 || versions[i].status >= _VERSION_STATUS_MAX) {
                        if (reterr_message)
                                *reterr_message = "Invalid Status";
                        return -EINVAL;
                }

        return 0;
}

int key_validate(const Key *k, const char **reterr_message) {
        char hash[KEY_HASH_HEX_SIZE];
        int r;

        assert_return(k, -EINVAL);

        /* Knox's Key.Validate order: id, ACL, versions, hash. */
        if (!key_id_is_valid(k->id)) {
                if (reterr_message)
                        *reterr_message =
                                "KeyID can only contain alphanumeric characters, colons, and underscores.";
                return -EINVAL;
        }

        r = acl_validate(&k->acl, reterr_message);
        if (r < 0)
                return r;

        r = key_versions_validate(k->versions, k->n_versions, reterr_message);
        if (r < 0)
                return r;

        r = key_version_hash(k->versions, k->n_versions, hash);
        if (r < 0)
                return r;
        if (!streq(hash, k->hash)) {
                if (reterr_message)
                        *reterr_message = "Hash does not match";
                return -EINVAL;
        }

        return 0;
}

KeyVersion *key_find_version(const Key *k, uint64_t id) {
        if (!k)
                return NULL;
        FOREACH_ARRAY(v, k->versions, k->n_versions)
                if (v->id == id)
                        return v;
        return NULL;
}

const KeyVersion *key_primary_version(const Key *k) {
        if (!k)
                return NULL;
        FOREACH_ARRAY(v, k->versions, k->n_versions)
                if (v->status == VERSION_STATUS_PRIMARY)
                        return v;
        return NULL;
}

int key_new_version_id(const Key *k, uint64_t *ret) {
        int r;

        assert_return(ret, -EINVAL);

        /* 63 bits as Knox uses; a collision is astronomically unlikely, but retry anyway. */
        for (unsigned attempt = 0; attempt < 64; attempt++) {
                uint64_t id;

                r = random_bytes(&id, sizeof(id));
                if (r < 0)
                        return r;
                id &= VERSION_ID_MAX;

                if (!key_find_version(k, id)) {
                        *ret = id;
                        return 0;
                }
        }

        return -EBUSY;
}

int key_append_version(Key *k, KeyVersion *v) {
        KeyVersion *n;
        size_t count;

        assert_return(k, -EINVAL);
        assert_return(v, -EINVAL);

        if (!ADD_SAFE(&count, k->n_versions, (size_t) 1))
                return -E2BIG;

        /* Only pointers move, so realloc leaves no copy of secret bytes. */
        n = reallocarray(k->versions, count, sizeof(KeyVersion));
        if (!n)
                return -ENOMEM;
        k->versions = n;
        k->versions[k->n_versions++] = *v;
        *v = (KeyVersion){};

        return key_update_hash(k);
}

int key_set_version_status(Key *k, uint64_t version_id, VersionStatus to, const char **reterr_message) {
        KeyVersion *v;

        assert_return(k, -EINVAL);
        assert_return(to >= 0 && to < _VERSION_STATUS_MAX, -EINVAL);

        v = key_find_version(k, version_id);
        if (!v) {
                if (reterr_message)
                        *reterr_message = "Key version not found";
                return -ENOENT;
        }

        switch (to) {
        case VERSION_STATUS_PRIMARY:
                if (v->status != VERSION_STATUS_ACTIVE) {
                        if (reterr_message)
                                *reterr_message = "Version must be Active to promote to Primary";
                        return -EINVAL;
                }
                FOREACH_ARRAY(o, k->versions, k->n_versions)
                        if (o->status == VERSION_STATUS_PRIMARY)
                                o->status = VERSION_STATUS_ACTIVE;
                v->status = VERSION_STATUS_PRIMARY;
                break;

        case VERSION_STATUS_ACTIVE:
                if (v->status != VERSION_STATUS_INACTIVE) {
                        if (reterr_message)
                                *reterr_message =
                                        "Primary Key can not be demoted. Specify Active key to promote.";
                        return -EINVAL;
                }
                v->status = VERSION_STATUS_ACTIVE;
                break;

        case VERSION_STATUS_INACTIVE:
                if (v->status != VERSION_STATUS_ACTIVE) {
                        if (reterr_message)
                                *reterr_message = "Version must be Active to demote to Inactive";
                        return -EINVAL;
                }
                v->status = VERSION_STATUS_INACTIVE;
                break;

        case _VERSION_STATUS_MAX:
        case _VERSION_STATUS_INVALID:
                return -EINVAL;
        }

        return key_update_hash(k);
}
