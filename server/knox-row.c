/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "knox-row.h"

#include <errno.h>
#include <string.h>

#include "acl-json.h"
#include "knox-json.h"

static int fail(const char **reterr_message, const char *m) {
        if (reterr_message)
                *reterr_message = m;
        return -EBADMSG;
}

static bool hash_is_valid(const char *h) {
        if (strlen(h) != KEY_HASH_HEX_SIZE - 1)
                return false;
        for (const char *p = h; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

int knox_row_decode(
        const char *id,
        const char *acl,
        size_t acl_size,
        const char *hash,
        const char *versions,
        size_t versions_size,
        Key **ret,
        const char **reterr_message) {

        _cleanup_(key_freep) Key *k = NULL;
        const char *m = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        if (!id || !acl || !hash || !versions)
                return fail(reterr_message, "a column is NULL");
        if (!hash_is_valid(hash))
                return fail(reterr_message, "version_hash is not 64 lowercase hex digits");

        k = key_new();
        if (!k)
                return -ENOMEM;
        k->id = strdup(id);
        if (!k->id)
                return -ENOMEM;
        memcpy(k->hash, hash, KEY_HASH_HEX_SIZE);

        r = acl_parse(acl, acl_size, &k->acl, &m);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(reterr_message, m ?: "the acl column is not a Knox ACL");
        r = knox_sealed_versions_parse(versions, versions_size, &k->versions, &k->n_versions, &m);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(reterr_message, m ?: "the versions column is not a Knox version list");
        if (k->n_versions == 0)
                return fail(reterr_message, "the key has no versions");

        r = key_validate(k, &m);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                if (m && streq(m, "Hash does not match"))
                        return fail(
                                reterr_message, "the stored version_hash is not the hash of the versions");
                return fail(reterr_message, m ?: "the key is not valid");
        }

        *ret = TAKE_PTR(k);
        return 0;
}
