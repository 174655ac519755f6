/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The version routes: POST /v0/keys/{id}/versions/ and PUT
 * /v0/keys/{id}/versions/{version}/. */

#include <inttypes.h>

#include "api-internal.h"
#include "json-util.h"
#include "log.h"
#include "parse.h"

/* ---- POST /v0/keys/{id}/versions/ ------------------------------------------------- */

int api_handle_postversion(const Api *api, const ApiRequest *req, ApiResult *res) {
        _cleanup_(key_freep) Key *k = NULL;
        const FormField *data;
        KeyVersion v = {};
        uint64_t id;
        int64_t version;
        int r;

        data = post_param(req, "data");
        if (!data)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "Missing parameter 'data'");
        if (data->value_len == 0)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "Parameter 'data' is empty");
        r = api_decode_data(data, res, KNOX_BAD_REQUEST_DATA, &v.data);
        if (r < 0 || !v.data)
                return r;
        api_version_sniff_certificate(&v);

        r = api_load_key(api, req, res, &k, &version);
        if (r < 0 || !k) {
                key_version_done(&v);
                return r;
        }
        if (!authorized(req, k, ACCESS_WRITE)) {
                key_version_done(&v);
                return api_result_error(
                        res, KNOX_UNAUTHORIZED, "Principal %s not authorized to write %s",
                        default_principal_id(req), k->id);
        }

        v.status = VERSION_STATUS_ACTIVE;
        v.ts = version_ts_now(req);
        r = key_new_version_id(k, &v.id);
        if (r >= 0)
                r = cryptor_seal_version(api->cryptor, k->id, &v);
        if (r < 0) {
                key_version_done(&v);
                log_error_errno(r, "Failed to add a version to key '%s': %m", LOG_NAME(k->id));
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to encrypt key");
        }
        id = v.id;
        r = key_append_version(k, &v);
        if (r < 0) {
                key_version_done(&v);
                return r;
        }

        (void) cryptor_reseal_key(api->cryptor, k, NULL); /* written under the newest master key */
        r = store_update(api->store, k, version);
        if (r < 0)
                return api_store_error(res, "update", k->id, r);

        log_info(
                "Version %" PRIu64 " added to key '%s' by '%s'.", id, LOG_NAME(k->id),
                LOG_NAME(default_principal_id(req)));
        res->changed = true;
        res->changed_key = strdup(k->id); /* NULL: every watch looks again */
        (void) json_append_uint64(&res->data, id);
        return api_result_ok(res);
}

/* ---- PUT /v0/keys/{id}/versions/{version}/ ---------------------------------------- */

int api_handle_putversion(const Api *api, const ApiRequest *req, ApiResult *res) {
        _cleanup_(key_freep) Key *k = NULL;
        const FormField *status;
        VersionStatus to;
        const char *msg;
        uint64_t id;
        int64_t version;
        int r;

        status = post_param(req, "status");
        if (!status)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "Missing parameter 'status'");
        if (api_parse_status_param(status->value, &to, &msg) < 0)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "%s", msg);
        r = safe_atou64(req->match->version_id, &id);
        if (r < 0)
                return api_result_error(
                        res, KNOX_BAD_REQUEST_DATA, "strconv.ParseUint: parsing \"%s\": %s",
                        req->match->version_id, r == -ERANGE ? "value out of range" : "invalid syntax");

        r = api_load_key(api, req, res, &k, &version);
        if (r < 0 || !k)
                return r;
        if (!authorized(req, k, ACCESS_WRITE))
                return api_result_error(
                        res, KNOX_UNAUTHORIZED, "Principal %s not authorized to write %s",
                        default_principal_id(req), k->id);

        r = key_set_version_status(k, id, to, &msg);
        if (r == -ENOENT)
                return api_result_error(res, KNOX_KEY_VERSION_DOES_NOT_EXIST, "%s", msg);
        if (r < 0)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "%s", msg);

        (void) cryptor_reseal_key(api->cryptor, k, NULL); /* written under the newest master key */
        r = store_update(api->store, k, version);
        if (r < 0)
                return api_store_error(res, "update", k->id, r);

        log_info(
                "Version %" PRIu64 " of key '%s' set to %s by '%s'.", id, k->id,
                version_status_to_string(to), default_principal_id(req));
        res->changed = true;
        res->changed_key = strdup(k->id); /* NULL: every watch looks again */
        return api_result_ok(res);
}
