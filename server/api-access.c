/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ACL routes: GET and PUT /v0/keys/{id}/access/. */

#include <stdlib.h>

#include "acl-json.h"
#include "api-internal.h"
#include "hexdecoct.h"
#include "log.h"

/* ---- GET and PUT /v0/keys/{id}/access/ -------------------------------------------- */

int api_handle_getaccess(const Api *api, const ApiRequest *req, ApiResult *res) {
        _cleanup_(api_read_key_done) ReadKey rk = {};
        int r;

        r = api_load_key_read(api, req, res, &rk);
        if (r < 0 || !rk.key)
                return r;

        /* No authorization, on purpose: anyone may see whom to ask for access. */
        r = acl_json_append(&res->data, &rk.key->acl);
        if (r < 0)
                return r;
        return api_result_ok(res);
}

/* The `access` parameter: one entry as JSON, or as unpadded URL-safe base64 of it. */
static int parse_access_param(const FormField *f, Acl *acl, const char **reterr) {
        _cleanup_free_ uint8_t *decoded = NULL;
        Access a = {};
        size_t n;

        if (access_parse(f->value, f->value_len, &a, reterr) < 0) {
                decoded = malloc(base64_decoded_max(f->value_len) + 1);
                if (!decoded)
                        return -ENOMEM;
                if (base64url_decode(f->value, f->value_len, decoded, &n) < 0) {
                        *reterr = "illegal base64 data in access";
                        return -EBADMSG;
                }
                if (access_parse((const char *) decoded, n, &a, reterr) < 0)
                        return -EBADMSG;
        }

        acl->entries = calloc(1, sizeof(Access));
        if (!acl->entries) {
                access_done(&a);
                return -ENOMEM;
        }
        acl->entries[0] = a;
        acl->n = 1;
        return 0;
}

int api_handle_putaccess(const Api *api, const ApiRequest *req, ApiResult *res) {
        _cleanup_(key_freep) Key *k = NULL;
        _cleanup_acl_ Acl changes = {};
        const FormField *access, *acl;
        const char *msg = NULL;
        int64_t version;
        int r;

        access = post_param(req, "access");
        acl = post_param(req, "acl");
        if (access)
                r = parse_access_param(access, &changes, &msg);
        else if (acl)
                r = acl_parse(acl->value, acl->value_len, &changes, &msg);
        else
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "Missing acl and access parameters");
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "%s", msg);

        r = api_load_key(api, req, res, &k, &version);
        if (r < 0 || !k)
                return r;
        if (!authorized(req, k, ACCESS_ADMIN))
                return api_result_error(
                        res, KNOX_UNAUTHORIZED, "Principal %s not authorized to update access for %s",
                        default_principal_id(req), k->id);

        for (size_t i = 0; i < changes.n; i++)
                if (changes.entries[i].access != ACCESS_NONE &&
                    access_validate_principal(&changes.entries[i], &msg) < 0)
                        return api_result_error(res, KNOX_BAD_PRINCIPAL_IDENTIFIER, "%s", msg);

        for (size_t i = 0; i < changes.n; i++) {
                r = acl_merge(&k->acl, &changes.entries[i]);
                if (r < 0)
                        return r;
        }
        if (acl_validate(&k->acl, &msg) < 0)
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "%s", msg);

        (void) cryptor_reseal_key(api->cryptor, k, NULL); /* written under the newest master key */
        r = store_update(api->store, k, version);
        if (r < 0)
                return api_store_error(res, "update", k->id, r);

        log_info(
                "Access to key '%s' changed by '%s'.", LOG_NAME(k->id), LOG_NAME(default_principal_id(req)));
        res->changed = true;
        res->changed_key = strdup(k->id); /* NULL: every watch looks again */
        return api_result_ok(res);
}
