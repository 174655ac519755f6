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

static int fail(const char **reterr_message, const char *message) {
        if (reterr_message)
                *reterr_message = message;
        return -EBADMSG;
}

int access_from_json(json_object *o, Access *ret, const char **reterr_message) {
        json_object *f;
        const char *s, *id = "";
        PrincipalType type;
        AccessType access;
        char *copy;

        assert_return(ret, -EINVAL);

        if (!json_object_is_type(o, json_type_object))
                return fail(reterr_message, "json: ACL entry must be an object");

        f = json_get_field(o, "type");
        if (!f)
                return fail(reterr_message, "json: ACL entry without type");
        if (json_get_cstring(f, &s) < 0)
                return fail(reterr_message, "json: Invalid PrincipalType to convert");
        type = principal_type_from_string(s);
        if (type < 0)
                return fail(reterr_message, "json: Invalid PrincipalType to convert");

        f = json_get_field(o, "access");
        if (!f)
                return fail(reterr_message, "json: ACL entry without access");
        if (json_get_cstring(f, &s) < 0)
                return fail(reterr_message, "json: Invalid AccessType to convert");
        access = access_type_from_string(s);
        if (access < 0)
                return fail(reterr_message, "json: Invalid AccessType to convert");

        /* A missing or null id is "", as in Go; validation rejects it where it matters. */
        f = json_get_field(o, "id");
        if (f && json_get_cstring(f, &id) < 0)
                return fail(reterr_message, "json: ACL entry id must be a string");

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
                return fail(reterr_message, "json: ACL must be an array");

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

int access_parse(const char *s, size_t n, Access *ret, const char **reterr_message) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        int r;

        assert_return(s || n == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        r = json_parse(s, n, &o, reterr_message);
        if (r < 0)
                return r;

        return access_from_json(o, ret, reterr_message);
}

int acl_parse(const char *s, size_t n, Acl *ret, const char **reterr_message) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        int r;

        assert_return(s || n == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        r = json_parse(s, n, &o, reterr_message);
        if (r < 0)
                return r;

        return acl_from_json(o, ret, reterr_message);
}
