/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the routes share: a key loaded (from the worker's cache for a read), a store
 * failure as Knox reports it, and the form's data and status parameters decoded. */

#include <string.h>

#include "api-internal.h"
#include "cert-expiry.h"
#include "hexdecoct.h"
#include "key-cache.h"
#include "log.h"
#include "store-internal.h"

/* Load a key's stored record; the Knox errors for a missing key or a store failure are
 * set on res and 0 is returned with *ret NULL. */
int api_load_key(const Api *api, const ApiRequest *req, ApiResult *res, Key **ret, int64_t *ret_version) {
        int r;

        /* No stored key has a longer id; the store need not be asked. */
        r = strlen(req->match->key_id) > STORE_ID_MAX ?
                -ENOKEY :
                store_get(api->store, req->match->key_id, ret, ret_version);
        if (r == -ENOKEY) {
                *ret = NULL;
                return api_result_error(
                        res, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST, "No such key %s", req->match->key_id);
        }
        if (r < 0) {
                *ret = NULL;
                log_error_errno(r, "Failed to read key '%s': %m", LOG_NAME(req->match->key_id));
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to read key");
        }
        return 0;
}

void api_read_key_done(ReadKey *rk) {
        if (!rk->key)
                return;
        if (rk->cached)
                key_cache_close(rk->key); /* no plaintext stays behind in the cache */
        else
                key_free(rk->key);
        *rk = (ReadKey){};
}

int api_load_key_read(const Api *api, const ApiRequest *req, ApiResult *res, ReadKey *ret) {
        uint64_t generation = 0;
        int64_t version;
        Key *k;
        int r;

        if (api->cache) {
                /* Read the generation before the store: a write that lands in between moves it
                 * on, so what is read here can never be cached as current. */
                generation = atomic_load(api->generation);
                k = key_cache_get(api->cache, req->match->key_id, generation, NULL);
                if (k) {
                        *ret = (ReadKey){.key = k, .cached = true};
                        return 0;
                }
        }

        r = api_load_key(api, req, res, &k, &version);
        if (r < 0 || !k)
                return r;
        if (api->cache)
                key_cache_put(api->cache, k, version, generation);
        *ret = (ReadKey){.key = k, .cached = api->cache != NULL};
        return 0;
}

/* A store failure as Knox reports it. The errno's text is for the log only: it would tell a
 * client nothing it can act on ("Argument list too long"). */
int api_store_error(ApiResult *res, const char *what, const char *key_id, int r) {
        if (r == -ESTALE)
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "DB version does not match");
        if (r == -ENOKEY)
                return api_result_error(res, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST, "No such key %s", key_id);
        log_error_errno(r, "Failed to %s key '%s': %m", what, LOG_NAME(key_id));
        return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to %s key", what);
}

/* Record a new version's notAfter when its data is an X.509 certificate (cert-expiry.h);
 * the data is not looked at otherwise, and never logged. */
void api_version_sniff_certificate(KeyVersion *v) {
        int64_t t;

        if (v->data && cert_not_after(v->data->data, v->data->size, &t) > 0)
                v->not_after = t;
}

/* Decode base64 form data into a Secret, with Go's error text on failure. */
int api_decode_data(const FormField *f, ApiResult *res, KnoxCode bad_code, Secret **ret) {
        _cleanup_(secret_freep) Secret *s = NULL;
        size_t n;

        s = secret_new(base64_decoded_max(f->value_len));
        if (!s)
                return -ENOMEM;
        if (base64_decode(f->value, f->value_len, s->data, &n) < 0) {
                *ret = NULL;
                return api_result_error(
                        res, bad_code, "illegal base64 data at input byte %zu",
                        base64_error_offset(f->value, f->value_len));
        }
        s->size = n;
        s->data[n] = 0;
        *ret = TAKE_PTR(s);
        return 0;
}

/* Go's VersionStatus.UnmarshalJSON on a raw parameter. */
int api_parse_status_param(const char *s, VersionStatus *ret, const char **reterr) {
        size_t n = strlen(s);
        VersionStatus st = _VERSION_STATUS_INVALID;
        char name[sizeof("Inactive")];

        if (n < 2 || s[0] != '"' || s[n - 1] != '"') {
                *reterr = n == 0 ? "unexpected end of JSON input" :
                                   "invalid character looking for beginning of value";
                return -EINVAL;
        }
        /* The name on the stack only when it can be one: the value is the client's. */
        if (n - 2 < sizeof(name)) {
                memcpy(name, s + 1, n - 2);
                name[n - 2] = '\0';
                st = version_status_from_string(name);
        }
        if (st < 0) {
                *reterr = "json: Invalid VersionStatus to convert";
                return -EINVAL;
        }
        *ret = st;
        return 0;
}
