/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the route files of the API layer (api-*.c) share: the dispatch table's handlers and
 * the helpers that load a key and turn a store failure into Knox's error. Included by
 * server-api.c and api-*.c only. */

#include "server-api.h"

static inline int api_result_ok(ApiResult *res) {
        res->code = KNOX_OK;
        res->http_status = 200;
        return 0;
}

static inline int64_t version_ts_now(const ApiRequest *req) {
        return req->now_ns;
}

static inline const char *default_principal_id(const ApiRequest *req) {
        return principals_default(req->principals)->id;
}

/* A form parameter as Go's PostFormValue sees it: NULL when absent. */
static inline const FormField *post_param(const ApiRequest *req, const char *name) {
        return req->form ? form_get(req->form, name) : NULL;
}

static inline bool authorized(const ApiRequest *req, const Key *k, AccessType need) {
        return acl_allows(&k->acl, req->principals, need);
}

/* Load a key's stored record; the Knox errors for a missing key or a store failure are
 * set on res and 0 is returned with *ret NULL. */
int api_load_key(const Api *api, const ApiRequest *req, ApiResult *res, Key **ret, int64_t *ret_version);

/* A key for a route that only reads it: from the worker's cache when it holds the record of
 * the current generation, else from the store (and then cached). */
typedef struct ReadKey {
        Key *key;
        bool cached; /* borrowed from the cache: close it, never free it */
} ReadKey;

void api_read_key_done(ReadKey *rk);
int api_load_key_read(const Api *api, const ApiRequest *req, ApiResult *res, ReadKey *ret);

/* A store failure as Knox reports it (the errno's text goes to the log only). */
int api_store_error(ApiResult *res, const char *what, const char *key_id, int r);

/* Record a new version's notAfter when its data is an X.509 certificate. */
void api_version_sniff_certificate(KeyVersion *v);

/* Decode base64 form data into a Secret, with Go's error text on failure. */
int api_decode_data(const FormField *f, ApiResult *res, KnoxCode bad_code, Secret **ret);

/* Go's VersionStatus.UnmarshalJSON on a raw parameter. */
int api_parse_status_param(const char *s, VersionStatus *ret, const char **reterr);

/* The routes, one file per domain: api-keys.c, api-access.c, api-versions.c,
 * api-tokens.c, api-certificates.c. */
int api_handle_getkeys(const Api *api, const ApiRequest *req, ApiResult *res);
int api_handle_postkeys(const Api *api, const ApiRequest *req, ApiResult *res);
int api_handle_getkey(const Api *api, const ApiRequest *req, ApiResult *res);
int api_handle_deletekey(const Api *api, const ApiRequest *req, ApiResult *res);
int api_handle_getaccess(const Api *api, const ApiRequest *req, ApiResult *res);
int api_handle_putaccess(const Api *api, const ApiRequest *req, ApiResult *res);
int api_handle_postversion(const Api *api, const ApiRequest *req, ApiResult *res);
int api_handle_putversion(const Api *api, const ApiRequest *req, ApiResult *res);
int api_handle_whoami(const Api *api, const ApiRequest *req, ApiResult *res);
int api_handle_deletetoken(const Api *api, const ApiRequest *req, ApiResult *res);
int api_handle_expiring(const Api *api, const ApiRequest *req, ApiResult *res);
