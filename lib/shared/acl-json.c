/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "acl-json.h"

#include <string.h>

#include "json-util.h"

int access_json_append(Buf *b, const Access *a) {
        const char *type, *access;

        assert_return(b, -EINVAL);
        assert_return(a, -EINVAL);

        type = principal_type_to_string(a->type);
        access = access_type_to_string(a->access);
        if (!type || !access)
                return -EINVAL;

        (void) buf_puts(b, "{\"type\":");
        (void) json_append_cstring(b, type);
        (void) buf_puts(b, ",\"id\":");
        (void) json_append_cstring(b, strempty(a->id));
        (void) buf_puts(b, ",\"access\":");
        (void) json_append_cstring(b, access);
        (void) buf_putc(b, '}');

        return b->error;
}

int acl_json_append(Buf *b, const Acl *acl) {
        int r;

        assert_return(b, -EINVAL);
        assert_return(acl, -EINVAL);

        (void) buf_putc(b, '[');
        for (size_t i = 0; i < acl->n; i++) {
                if (i > 0)
                        (void) buf_putc(b, ',');
                r = access_json_append(b, &acl->entries[i]);
                if (r < 0)
                        return r;
        }
        (void) buf_putc(b, ']');

        return b->error;
}

#define INVALID_PRINCIPAL_TYPE "json: Invalid PrincipalType to convert"
#define INVALID_ACCESS_TYPE "json: Invalid AccessType to convert"

/* ACL entry o's field name, which must be there (missing: the message if not) and be a string
 * (invalid: the message if not). */
static int entry_string(
        json_object *o,
        const char *name,
        const char *missing,
        const char *invalid,
        const char **ret,
        const char **reterr_message) {
        json_object *f = json_get_field(o, name);

        if (!f)
                return json_fail(reterr_message, missing);
        if (json_get_cstring(f, ret) < 0)
                return json_fail(reterr_message, invalid);
        return 0;
}

int access_from_json(json_object *o, Access *ret, const char **reterr_message) {
        json_object *f;
        const char *name, *id = "";
        PrincipalType type;
        AccessType access;
        char *copy;
        int r;

        assert_return(ret, -EINVAL);

        if (!json_object_is_type(o, json_type_object))
                return json_fail(reterr_message, "json: ACL entry must be an object");

        /* In this order, so that the message is Knox's for each mistake. */
        r = entry_string(
                o, "type", "json: ACL entry without type", INVALID_PRINCIPAL_TYPE, &name, reterr_message);
        if (r < 0)
                return r;
        type = principal_type_from_string(name);
        if (type < 0)
                return json_fail(reterr_message, INVALID_PRINCIPAL_TYPE);

        r = entry_string(
                o, "access", "json: ACL entry without access", INVALID_ACCESS_TYPE, &name, reterr_message);
        if (r < 0)
                return r;
        access = access_type_from_string(name);
        if (access < 0)
                return json_fail(reterr_message, INVALID_ACCESS_TYPE);

        /* A missing or null id is "", as in Go; validation rejects it where it matters. */
        f = json_get_field(o, "id");
        if (f && json_get_cstring(f, &id) < 0)
                return json_fail(reterr_message, "json: ACL entry id must be a string");

        copy = strdup(id);
        if (!copy)
                return -ENOMEM;

        *ret = (Access){
                .type = type,
                .access = access,
                .id = copy,
        };
        return 0;
}

int acl_from_json(json_object *o, Acl *ret, const char **reterr_message) {
        _cleanup_acl_ Acl acl = {};
        size_t n;
        int r;

        assert_return(ret, -EINVAL);

        /* json_parse() yields NULL for a JSON null. */
        if (!o || json_object_is_type(o, json_type_null)) {
                *ret = (Acl){};
                return 0;
        }
        if (!json_object_is_type(o, json_type_array))
                return json_fail(reterr_message, "json: ACL must be an array");

        n = json_object_array_length(o);
        if (n > 0) {
                acl.entries = calloc(n, sizeof(Access));
                if (!acl.entries)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = access_from_json(json_object_array_get_idx(o, i), &acl.entries[i], reterr_message);
                if (r < 0)
                        return r;
                acl.n = i + 1;
        }

        *ret = acl;
        acl = (Acl){};
        return 0;
}

DEFINE_JSON_TEXT_DECODER(access_parse, Access, access_from_json, json_object_putp);
DEFINE_JSON_TEXT_DECODER(acl_parse, Acl, acl_from_json, json_object_putp);
