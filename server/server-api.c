/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl-json.h"
#include "cert-expiry.h"
#include "hexdecoct.h"
#include "json-util.h"
#include "key-cache.h"
#include "log.h"
#include "parse.h"
#include "store-internal.h"

/* clang-format off */
static const char *const route_names[_API_ROUTE_MAX] = {
        [API_ROUTE_GETKEYS]     = "getkeys",
        [API_ROUTE_POSTKEYS]    = "postkeys",
        [API_ROUTE_GETKEY]      = "getkey",
        [API_ROUTE_DELETEKEY]   = "deletekey",
        [API_ROUTE_GETACCESS]   = "getaccess",
        [API_ROUTE_PUTACCESS]   = "putaccess",
        [API_ROUTE_POSTVERSION] = "postversion",
        [API_ROUTE_PUTVERSION]  = "putversion",
        [API_ROUTE_WHOAMI]      = "whoami",
        [API_ROUTE_DELETETOKEN] = "deletetoken",
        [API_ROUTE_LOGIN]       = "login",
        [API_ROUTE_EXPIRING]    = "expiring",
        [API_ROUTE_NOT_FOUND]   = "404",
};
/* clang-format on */

const char *api_route_to_string(ApiRoute r) {
        return r >= 0 && r < _API_ROUTE_MAX ? route_names[r] : NULL;
}

void api_match_done(ApiMatch *m) {
        free(m->key_id);
        free(m->version_id);
        *m = (ApiMatch){};
}

void api_result_done(ApiResult *r) {
        free(r->message);
        free(r->changed_key);
        buf_done(&r->data);
        *r = API_RESULT_INIT;
}

/* Split "a/b/" into its segments; each segment must be non-empty and the path must end
 * with '/' (Knox's routes all do; there is no redirect). Returns the count, at most max. */
static int split_path(const char *path, const char *seg[], size_t len[], int max) {
        int n = 0;

        if (path[0] != '/')
                return -EINVAL;
        for (const char *p = path + 1; *p;) {
                const char *slash = strchr(p, '/');

                if (!slash || slash == p || n == max)
                        return -EINVAL;
                seg[n] = p;
                len[n] = (size_t) (slash - p);
                n++;
                p = slash + 1;
        }
        return n;
}

static bool seg_is(const char *seg, size_t len, const char *s) {
        return strlen(s) == len && memcmp(seg, s, len) == 0;
}

int api_match(const char *method, const char *path, ApiMatch *ret) {
        /* clang-format off */
        static const struct {
                const char *method;
                ApiRoute route;
                int shape; /* 0: /v0/keys/, 1: +{id}/, 2: +{id}/access/, 3: +{id}/versions/, 4: +{id}/versions/{v}/ */
        } table[] = {
                { "GET",    API_ROUTE_GETKEYS,     0 },
                { "POST",   API_ROUTE_POSTKEYS,    0 },
                { "GET",    API_ROUTE_GETKEY,      1 },
                { "DELETE", API_ROUTE_DELETEKEY,   1 },
                { "GET",    API_ROUTE_GETACCESS,   2 },
                { "PUT",    API_ROUTE_PUTACCESS,   2 },
                { "POST",   API_ROUTE_POSTVERSION, 3 },
                { "PUT",    API_ROUTE_PUTVERSION,  4 },
        };
        /* clang-format on */
        ApiMatch m = {.route = API_ROUTE_NOT_FOUND};
        const char *seg[6];
        size_t len[6];
        int n, shape = -1;

        n = split_path(path, seg, len, (int) ELEMENTSOF(seg));
        if (n >= 2 && seg_is(seg[0], len[0], "v0") && seg_is(seg[1], len[1], "auth")) {
                if (n == 3 && seg_is(seg[2], len[2], "whoami")) {
                        m.route = API_ROUTE_WHOAMI;
                        m.method_not_allowed = !streq(method, "GET");
                } else if (n == 3 && seg_is(seg[2], len[2], "token")) {
                        m.route = API_ROUTE_DELETETOKEN;
                        m.method_not_allowed = !streq(method, "DELETE");
                } else if (n == 3 && seg_is(seg[2], len[2], "login")) {
                        m.route = API_ROUTE_LOGIN;
                        m.method_not_allowed = !streq(method, "POST");
                }
                *ret = m;
                return 0;
        }
        if (n == 3 && seg_is(seg[0], len[0], "v0") && seg_is(seg[1], len[1], "certificates") &&
            seg_is(seg[2], len[2], "expiring")) {
                m.route = API_ROUTE_EXPIRING;
                m.method_not_allowed = !streq(method, "GET");
                *ret = m;
                return 0;
        }
        if (n >= 2 && seg_is(seg[0], len[0], "v0") && seg_is(seg[1], len[1], "keys")) {
                if (n == 2)
                        shape = 0;
                else if (n == 3)
                        shape = 1;
                else if (n == 4 && seg_is(seg[3], len[3], "access"))
                        shape = 2;
                else if (n == 4 && seg_is(seg[3], len[3], "versions"))
                        shape = 3;
                else if (n == 5 && seg_is(seg[3], len[3], "versions"))
                        shape = 4;
        }
        if (shape < 0) {
                *ret = m;
                return 0;
        }

        /* The route of the method, or, for a method the path does not have, its first route. */
        m.route = _API_ROUTE_INVALID;
        m.method_not_allowed = true;
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                if (table[i].shape != shape)
                        continue;
                if (m.route < 0)
                        m.route = table[i].route;
                if (streq(table[i].method, method)) {
                        m.route = table[i].route;
                        m.method_not_allowed = false;
                        break;
                }
        }
        if (shape >= 1) {
                m.key_id = strndup(seg[2], len[2]);
                if (!m.key_id)
                        return -ENOMEM;
        }
        if (shape == 4) {
                m.version_id = strndup(seg[4], len[4]);
                if (!m.version_id) {
                        api_match_done(&m);
                        return -ENOMEM;
                }
        }
        *ret = m;
        return 0;
}

int api_result_error(ApiResult *res, KnoxCode code, const char *fmt, ...) {
        va_list ap;
        char *m;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&m, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;

        free(res->message);
        res->message = m;
        res->code = code;
        res->http_status = knox_code_http_status(code);
        buf_truncate(&res->data, 0);
        return 0;
}

static int result_ok(ApiResult *res) {
        res->code = KNOX_OK;
        res->http_status = 200;
        return 0;
}

static int64_t version_ts_now(const ApiRequest *req) {
        return req->now_ns;
}

static const char *default_principal_id(const ApiRequest *req) {
        return principals_default(req->principals)->id;
}

/* A form parameter as Go's PostFormValue sees it: NULL when absent. */
static const FormField *post_param(const ApiRequest *req, const char *name) {
        return req->form ? form_get(req->form, name) : NULL;
}

/* Load a key's stored record; the Knox errors for a missing key or a store failure are
 * set on res and 0 is returned with *ret NULL. */
static int load_key(const Api *api, const ApiRequest *req, ApiResult *res, Key **ret, int64_t *ret_version) {
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

/* A key for a route that only reads it: from the worker's cache when it holds the record of
 * the current generation, else from the store (and then cached). */
typedef struct ReadKey {
        Key *key;
        bool cached; /* borrowed from the cache: close it, never free it */
} ReadKey;

static void read_key_done(ReadKey *rk) {
        if (!rk->key)
                return;
        if (rk->cached)
                key_cache_close(rk->key); /* no plaintext stays behind in the cache */
        else
                key_free(rk->key);
        *rk = (ReadKey){};
}

static int load_key_read(const Api *api, const ApiRequest *req, ApiResult *res, ReadKey *ret) {
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

        r = load_key(api, req, res, &k, &version);
        if (r < 0 || !k)
                return r;
        if (api->cache)
                key_cache_put(api->cache, k, version, generation);
        *ret = (ReadKey){.key = k, .cached = api->cache != NULL};
        return 0;
}

/* A store failure as Knox reports it. The errno's text is for the log only: it would tell a
 * client nothing it can act on ("Argument list too long"). */
static int store_error(ApiResult *res, const char *what, const char *key_id, int r) {
        if (r == -ESTALE)
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "DB version does not match");
        if (r == -ENOKEY)
                return api_result_error(res, KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST, "No such key %s", key_id);
        log_error_errno(r, "Failed to %s key '%s': %m", what, LOG_NAME(key_id));
        return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to %s key", what);
}

static bool authorized(const ApiRequest *req, const Key *k, AccessType need) {
        return acl_allows(&k->acl, req->principals, need);
}

/* Record a new version's notAfter when its data is an X.509 certificate (cert-expiry.h);
 * the data is not looked at otherwise, and never logged. */
static void version_sniff_certificate(KeyVersion *v) {
        int64_t t;

        if (v->data && cert_not_after(v->data->data, v->data->size, &t) > 0)
                v->not_after = t;
}

/* Decode base64 form data into a Secret, with Go's error text on failure. */
static int decode_data(const FormField *f, ApiResult *res, KnoxCode bad_code, Secret **ret) {
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

/* ---- GET /v0/keys/ ---------------------------------------------------------------- */

struct list_ctx {
        Buf *out;
        bool first;
};

static int list_append(struct list_ctx *c, const char *id) {
        if (!c->first)
                (void) buf_putc(c->out, ',');
        c->first = false;
        return json_append_cstring(c->out, id);
}

static int list_one(const char *id, const char *hash, void *userdata) {
        return list_append(userdata, id);
}

/* By key, equal keys in input order. */
static int field_ptr_cmp(const void *x, const void *y) {
        const FormField *a = *(const FormField *const *) x, *b = *(const FormField *const *) y;
        int c;

        c = strcmp(a->key, b->key);
        if (c != 0)
                return c;
        return a < b ? -1 : a > b;
}

/* For each field of a changed-keys query: the field whose value counts for its key (the last
 * one with that key: Knox reads the last value) if it is the key's first field, else NULL.
 * So each key is looked at once, in the order of first appearance. A key holding a NUL
 * names no stored key (Go compares the whole key); its fields are left out. */
static int query_pick(const Form *q, const FormField ***ret) {
        _cleanup_free_ const FormField **sorted = NULL, **pick = NULL;
        size_t n = 0;

        sorted = calloc(q->n, sizeof(sorted[0]));
        pick = calloc(q->n, sizeof(pick[0]));
        if (!sorted || !pick)
                return -ENOMEM;

        for (size_t i = 0; i < q->n; i++)
                if (strlen(q->fields[i].key) == q->fields[i].key_len)
                        sorted[n++] = &q->fields[i];
        qsort(sorted, n, sizeof(sorted[0]), field_ptr_cmp);

        for (size_t i = 0, j; i < n; i = j) {
                for (j = i + 1; j < n && streq(sorted[j]->key, sorted[i]->key); j++)
                        ;
                pick[sorted[i] - q->fields] = sorted[j - 1];
        }

        *ret = TAKE_PTR(pick);
        return 0;
}

/* The keys asked about that exist and whose stored hash differs from the value given. One
 * indexed lookup per key, not a walk over the whole store. */
static int list_changed(Store *store, const Form *q, struct list_ctx *c) {
        _cleanup_free_ const FormField **pick = NULL;
        int r;

        r = query_pick(q, &pick);
        if (r < 0)
                return r;

        for (size_t i = 0; i < q->n; i++) {
                const FormField *v = pick[i];
                char hash[KEY_HASH_HEX_SIZE];

                if (!v)
                        continue;
                r = store_get_hash(store, q->fields[i].key, hash);
                if (r == -ENOKEY)
                        continue;
                /* A broken stored hash differs from any value; the key's GET reports it. */
                if (r < 0 && r != -EBADMSG)
                        return r;
                if (r == 0 && v->value_len == strlen(hash) && memcmp(v->value, hash, v->value_len) == 0)
                        continue;

                r = list_append(c, q->fields[i].key);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int handle_getkeys(const Api *api, const ApiRequest *req, ApiResult *res) {
        const Form *want = req->query && req->query->n > 0 ? req->query : NULL;
        struct list_ctx c = {
                .out = &res->data,
                .first = true,
        };
        int r;

        (void) buf_putc(&res->data, '[');
        if (want)
                r = list_changed(api->store, want, &c);
        else
                r = store_list(api->store, list_one, &c);
        if (r == -ENOMEM || res->data.error == -ENOMEM)
                return -ENOMEM;
        if (r < 0) {
                log_error_errno(r, "Failed to list keys: %m");
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to list keys");
        }
        (void) buf_putc(&res->data, ']');

        /* A watch that found nothing new waits for a change (DESIGN.md, Watch). */
        res->wait = want && c.first;
        return result_ok(res);
}

/* ---- POST /v0/keys/ --------------------------------------------------------------- */

static int handle_postkeys(const Api *api, const ApiRequest *req, ApiResult *res) {
        const Principal *p = principals_default(req->principals);
        _cleanup_(key_freep) Key *k = NULL;
        _cleanup_acl_ Acl acl = {};
        const FormField *id, *data, *acl_field;
        KeyVersion v = {};
        const char *msg;
        int r;

        if (p->kind != PRINCIPAL_KIND_USER)
                return api_result_error(
                        res, KNOX_UNAUTHORIZED, "Must be a user to create keys, principal is %s", p->id);

        id = post_param(req, "id");
        if (!id)
                return api_result_error(res, KNOX_NO_KEY_ID, "Missing parameter 'id'");
        data = post_param(req, "data");
        if (!data)
                return api_result_error(res, KNOX_NO_KEY_DATA, "Missing parameter 'data'");
        if (data->value_len == 0)
                return api_result_error(res, KNOX_NO_KEY_DATA, "Parameter 'data' is empty");

        acl_field = post_param(req, "acl");
        if (acl_field && acl_parse(acl_field->value, acl_field->value_len, &acl, &msg) < 0)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "%s", msg);

        r = decode_data(data, res, KNOX_BAD_REQUEST_DATA, &v.data);
        if (r < 0 || !v.data)
                return r;
        version_sniff_certificate(&v);

        k = key_new();
        if (!k) {
                key_version_done(&v);
                return -ENOMEM;
        }
        k->id = strdup(id->value);
        if (!k->id) {
                key_version_done(&v);
                return -ENOMEM;
        }

        if (!key_id_is_valid(k->id) || strlen(k->id) != id->value_len) {
                key_version_done(&v);
                return api_result_error(
                        res, KNOX_BAD_KEY_FORMAT, "KeyID includes unsupported characters %s", k->id);
        }
        /* Knox's schema (VARCHAR(512)) fails such an id with a 500; it is the caller's error. */
        if (id->value_len > STORE_ID_MAX) {
                key_version_done(&v);
                return api_result_error(
                        res, KNOX_BAD_KEY_FORMAT, "KeyID is longer than %d bytes", STORE_ID_MAX);
        }

        /* Deviation from Knox, which accepts anything here and fails later with a 500: the
         * entries of a new key are held to the same rules as PUT access (protocol.md §9). */
        for (size_t i = 0; i < acl.n; i++)
                if (acl.entries[i].access != ACCESS_NONE &&
                    access_validate_principal(&acl.entries[i], &msg) < 0) {
                        key_version_done(&v);
                        return api_result_error(res, KNOX_BAD_PRINCIPAL_IDENTIFIER, "%s", msg);
                }
        if (acl_validate(&acl, &msg) < 0) {
                key_version_done(&v);
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "%s", msg);
        }

        r = acl_build_for_create(&acl, p->id, api->default_acl);
        if (r < 0) {
                key_version_done(&v);
                return r;
        }
        k->acl = acl;
        acl = (Acl){};

        v.status = VERSION_STATUS_PRIMARY;
        v.ts = version_ts_now(req);
        r = key_new_version_id(k, &v.id);
        if (r >= 0)
                r = key_append_version(k, &v);
        if (r < 0) {
                key_version_done(&v);
                return r;
        }

        r = cryptor_seal_key(api->cryptor, k);
        if (r < 0) {
                log_error_errno(r, "Failed to encrypt key '%s': %m", LOG_NAME(k->id));
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to encrypt key");
        }

        r = store_add(api->store, k);
        if (r == -EEXIST)
                return api_result_error(res, KNOX_KEY_IDENTIFIER_EXISTS, "Key %s already exists", k->id);
        if (r < 0)
                return store_error(res, "create", k->id, r);

        log_info(
                "Key '%s' created by %s '%s'.", LOG_NAME(k->id), principal_kind_to_string(p->kind),
                LOG_NAME(p->id));
        res->changed = true;
        res->changed_key = strdup(k->id); /* NULL: every watch looks again */
        (void) json_append_uint64(&res->data, k->versions[0].id);
        return result_ok(res);
}

/* ---- GET /v0/keys/{id}/ ----------------------------------------------------------- */

/* Go's VersionStatus.UnmarshalJSON on a raw parameter. */
static int parse_status_param(const char *s, VersionStatus *ret, const char **reterr) {
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

/* A key's versions as one GET answers them: shallow copies of the record's versions (the
 * record may be the worker's cache's, which never holds plaintext), each opened into a
 * Secret of this request's own, wiped once the answer is built. */
typedef struct OpenedKey {
        Key view; /* the record's fields, with versions pointing at the copies */
        KeyVersion *versions;
} OpenedKey;

static void opened_key_done(OpenedKey *o) {
        for (size_t i = 0; o->versions && i < o->view.n_versions; i++)
                secret_free(o->versions[i].data);
        free(o->versions);
        *o = (OpenedKey){};
}

static int handle_getkey(const Api *api, const ApiRequest *req, ApiResult *res) {
        _cleanup_(read_key_done) ReadKey rk = {};
        _cleanup_(opened_key_done) OpenedKey o = {};
        VersionStatus max = VERSION_STATUS_ACTIVE;
        const FormField *status;
        const char *msg;
        Key *k;
        int r;

        status = req->query ? form_get(req->query, "status") : NULL;
        if (status && parse_status_param(status->value, &max, &msg) < 0)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "%s", msg);

        r = load_key_read(api, req, res, &rk);
        if (r < 0 || !rk.key)
                return r;
        k = rk.key;

        if (!authorized(req, k, ACCESS_READ))
                return api_result_error(
                        res, KNOX_UNAUTHORIZED, "Principal %s not authorized to read %s",
                        default_principal_id(req), k->id);

        /* Only the versions to be returned are opened, and only for a caller allowed to read
         * them: Knox decrypts first, which differs only when a version cannot be opened (an
         * unauthorized caller then gets Knox's "not authorized", not "Failed to decrypt"), and
         * would let any caller make the key holder open every version. */
        o.versions = calloc(MAX(k->n_versions, 1U), sizeof(KeyVersion));
        if (!o.versions)
                return -ENOMEM;
        o.view = *k;
        o.view.versions = o.versions;
        for (size_t i = 0; i < k->n_versions; i++) {
                o.versions[i] = k->versions[i];
                o.versions[i].data = NULL;
                if (k->versions[i].status > max)
                        continue;
                r = cryptor_open_version(api->cryptor, k->id, &o.versions[i]);
                if (r < 0) {
                        log_error_errno(
                                r, "Failed to decrypt version %" PRIu64 " of key '%s': %m",
                                k->versions[i].id, k->id);
                        return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to decrypt key");
                }
        }

        r = knox_key_json_append(&res->data, &o.view, max, false);
        if (r < 0)
                return r;
        return result_ok(res);
}

/* ---- DELETE /v0/keys/{id}/ -------------------------------------------------------- */

static int handle_deletekey(const Api *api, const ApiRequest *req, ApiResult *res) {
        _cleanup_(key_freep) Key *k = NULL;
        int64_t version;
        int r;

        r = load_key(api, req, res, &k, &version);
        if (r < 0 || !k)
                return r;
        if (!authorized(req, k, ACCESS_ADMIN))
                return api_result_error(
                        res, KNOX_UNAUTHORIZED, "Principal %s not authorized to delete %s",
                        default_principal_id(req), k->id);

        r = store_remove(api->store, k->id);
        if (r < 0)
                return store_error(res, "delete", k->id, r);

        log_info("Key '%s' deleted by '%s'.", LOG_NAME(k->id), LOG_NAME(default_principal_id(req)));
        res->changed = true;
        res->changed_key = strdup(k->id); /* NULL: every watch looks again */
        return result_ok(res);
}

/* ---- GET and PUT /v0/keys/{id}/access/ -------------------------------------------- */

static int handle_getaccess(const Api *api, const ApiRequest *req, ApiResult *res) {
        _cleanup_(read_key_done) ReadKey rk = {};
        int r;

        r = load_key_read(api, req, res, &rk);
        if (r < 0 || !rk.key)
                return r;

        /* No authorization, on purpose: anyone may see whom to ask for access. */
        r = acl_json_append(&res->data, &rk.key->acl);
        if (r < 0)
                return r;
        return result_ok(res);
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

static int handle_putaccess(const Api *api, const ApiRequest *req, ApiResult *res) {
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

        r = load_key(api, req, res, &k, &version);
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
                return store_error(res, "update", k->id, r);

        log_info(
                "Access to key '%s' changed by '%s'.", LOG_NAME(k->id), LOG_NAME(default_principal_id(req)));
        res->changed = true;
        res->changed_key = strdup(k->id); /* NULL: every watch looks again */
        return result_ok(res);
}

/* ---- POST /v0/keys/{id}/versions/ ------------------------------------------------- */

static int handle_postversion(const Api *api, const ApiRequest *req, ApiResult *res) {
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
        r = decode_data(data, res, KNOX_BAD_REQUEST_DATA, &v.data);
        if (r < 0 || !v.data)
                return r;
        version_sniff_certificate(&v);

        r = load_key(api, req, res, &k, &version);
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
                return store_error(res, "update", k->id, r);

        log_info(
                "Version %" PRIu64 " added to key '%s' by '%s'.", id, LOG_NAME(k->id),
                LOG_NAME(default_principal_id(req)));
        res->changed = true;
        res->changed_key = strdup(k->id); /* NULL: every watch looks again */
        (void) json_append_uint64(&res->data, id);
        return result_ok(res);
}

/* ---- PUT /v0/keys/{id}/versions/{version}/ ---------------------------------------- */

static int handle_putversion(const Api *api, const ApiRequest *req, ApiResult *res) {
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
        if (parse_status_param(status->value, &to, &msg) < 0)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "%s", msg);
        r = safe_atou64(req->match->version_id, &id);
        if (r < 0)
                return api_result_error(
                        res, KNOX_BAD_REQUEST_DATA, "strconv.ParseUint: parsing \"%s\": %s",
                        req->match->version_id, r == -ERANGE ? "value out of range" : "invalid syntax");

        r = load_key(api, req, res, &k, &version);
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
                return store_error(res, "update", k->id, r);

        log_info(
                "Version %" PRIu64 " of key '%s' set to %s by '%s'.", id, k->id,
                version_status_to_string(to), default_principal_id(req));
        res->changed = true;
        res->changed_key = strdup(k->id); /* NULL: every watch looks again */
        return result_ok(res);
}

/* ---- keyward's extensions --------------------------------------------------------- */

static int handle_whoami(const Api *api, const ApiRequest *req, ApiResult *res) {
        const Principals *ps = req->principals;
        Buf *b = &res->data;

        (void) buf_puts(b, "{\"principal\":");
        (void) json_append_cstring(b, principals_default(ps)->id);
        (void) buf_puts(b, ",\"type\":");
        {
                _cleanup_buf_ Buf t = BUF_INIT;
                (void) principals_type_append(ps, &t);
                if (t.error < 0)
                        return t.error;
                (void) json_append_cstring(b, t.data);
        }
        (void) buf_puts(b, ",\"principals\":[");
        for (size_t i = 0; i < ps->n; i++) {
                const Principal *p = &ps->items[i];

                (void) buf_puts(b, i > 0 ? ",{\"id\":" : "{\"id\":");
                (void) json_append_cstring(b, p->id);
                (void) buf_puts(b, ",\"type\":");
                (void) json_append_cstring(b, principal_kind_to_string(p->kind));
                (void) buf_puts(b, ",\"provider\":");
                (void) json_append_cstring(b, p->provider);
                (void) buf_puts(b, ",\"groups\":[");
                for (char **g = p->groups; g && *g; g++) {
                        if (g != p->groups)
                                (void) buf_putc(b, ',');
                        (void) json_append_cstring(b, *g);
                }
                (void) buf_puts(b, "]}");
        }
        (void) buf_puts(b, "]}");
        if (b->error < 0)
                return b->error;
        return result_ok(res);
}

/* ---- GET /v0/certificates/expiring/?within=SECONDS ---------------------------------- */

#define EXPIRING_DEFAULT_SEC (30 * 24 * 3600)
#define EXPIRING_MAX_SEC (100LL * 366 * 24 * 3600)

typedef struct Expiring {
        char *id;
        uint64_t version;
        int64_t not_after;
} Expiring;

typedef struct ExpiringList {
        Expiring *items;
        size_t n;
        int64_t cutoff;
} ExpiringList;

static void expiring_list_done(ExpiringList *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->items[i].id);
        free(l->items);
        *l = (ExpiringList){};
}

static int
expiring_collect(const char *id, uint64_t version, VersionStatus status, int64_t not_after, void *userdata) {
        ExpiringList *l = userdata;
        Expiring *n;

        if (status != VERSION_STATUS_PRIMARY || not_after > l->cutoff)
                return 0;
        n = reallocarray(l->items, l->n + 1, sizeof(Expiring));
        if (!n)
                return -ENOMEM;
        l->items = n;
        l->items[l->n] = (Expiring){.id = strdup(id), .version = version, .not_after = not_after};
        if (!l->items[l->n].id)
                return -ENOMEM;
        l->n++;
        return 0;
}

static int expiring_compare(const void *a, const void *b) {
        const Expiring *x = a, *y = b;

        if (x->not_after != y->not_after)
                return x->not_after < y->not_after ? -1 : 1;
        return strcmp(x->id, y->id);
}

/* The keys the caller may read whose primary version is a certificate that expires within
 * the window (expired ones included), soonest first: [{"id","version","not_after"}]. The ACL
 * is checked key by key, as GET /v0/keys/{id}/ would; other keys are left out silently. */
static int handle_expiring(const Api *api, const ApiRequest *req, ApiResult *res) {
        _cleanup_(expiring_list_done) ExpiringList l = {};
        const FormField *within = req->query ? form_get(req->query, "within") : NULL;
        uint64_t sec = EXPIRING_DEFAULT_SEC;
        Buf *b = &res->data;
        bool first = true;
        int r;

        if (within && (safe_atou64(within->value, &sec) < 0 || sec > EXPIRING_MAX_SEC))
                return api_result_error(
                        res, KNOX_BAD_REQUEST_DATA,
                        "Parameter 'within' must be a number of seconds up to %lld", EXPIRING_MAX_SEC);
        l.cutoff = req->now_ns / 1000000000 + (int64_t) sec;

        r = store_list_certificates(api->store, expiring_collect, &l);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_error_errno(r, "Failed to list certificates: %m");
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to list certificates");
        }
        if (l.n > 1)
                qsort(l.items, l.n, sizeof(Expiring), expiring_compare);

        (void) buf_putc(b, '[');
        for (size_t i = 0; i < l.n; i++) {
                _cleanup_(key_freep) Key *k = NULL;

                r = store_get(api->store, l.items[i].id, &k, NULL);
                if (r == -ENOKEY)
                        continue; /* removed since */
                if (r < 0) {
                        log_error_errno(r, "Failed to read key '%s': %m", LOG_NAME(l.items[i].id));
                        return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to read key");
                }
                if (!authorized(req, k, ACCESS_READ))
                        continue;
                (void) buf_puts(b, first ? "{\"id\":" : ",{\"id\":");
                (void) json_append_cstring(b, l.items[i].id);
                (void) buf_puts(b, ",\"version\":");
                (void) json_append_uint64(b, l.items[i].version);
                (void) buf_puts(b, ",\"not_after\":");
                (void) json_append_int64(b, l.items[i].not_after);
                (void) buf_putc(b, '}');
                first = false;
        }
        (void) buf_putc(b, ']');
        if (b->error < 0)
                return b->error;
        return result_ok(res);
}

static int handle_deletetoken(const Api *api, const ApiRequest *req, ApiResult *res) {
        int r;

        if (!req->token_hash)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "Only a user token can be revoked");
        r = store_token_revoke(api->store, req->token_hash);
        if (r == -ENOKEY)
                return api_result_error(res, KNOX_UNAUTHENTICATED, "Token is not known");
        if (r < 0) {
                log_error_errno(r, "Failed to revoke a token: %m");
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to revoke token");
        }
        log_notice("User token of '%s' revoked.", LOG_NAME(default_principal_id(req)));
        return result_ok(res);
}

int api_handle(const Api *api, const ApiRequest *req, ApiResult *res) {
        typedef int (*Handler)(const Api *, const ApiRequest *, ApiResult *);
        /* clang-format off */
        static const Handler handlers[_API_ROUTE_MAX] = {
                [API_ROUTE_GETKEYS]     = handle_getkeys,
                [API_ROUTE_POSTKEYS]    = handle_postkeys,
                [API_ROUTE_GETKEY]      = handle_getkey,
                [API_ROUTE_DELETEKEY]   = handle_deletekey,
                [API_ROUTE_GETACCESS]   = handle_getaccess,
                [API_ROUTE_PUTACCESS]   = handle_putaccess,
                [API_ROUTE_POSTVERSION] = handle_postversion,
                [API_ROUTE_PUTVERSION]  = handle_putversion,
                [API_ROUTE_WHOAMI]      = handle_whoami,
                [API_ROUTE_DELETETOKEN] = handle_deletetoken,
                [API_ROUTE_EXPIRING]    = handle_expiring,
        };
        /* clang-format on */
        ApiRoute route = req->match->route;
        int r;

        assert_return(req->principals && req->principals->n > 0, -EINVAL);

        if (req->match->method_not_allowed)
                return api_result_error(res, KNOX_NOT_FOUND, "Method not allowed");
        if (route < 0 || route >= _API_ROUTE_MAX || !handlers[route])
                return api_result_error(res, KNOX_NOT_FOUND, "%s", "");
        r = handlers[route](api, req, res);
        /* Any write invalidates every worker's cached records. */
        if (res->changed && api->generation)
                atomic_fetch_add(api->generation, 1);
        /* A failure no handler turned into a Knox error is ours, and its errno text is for
         * the log, not for the client. */
        if (r < 0 && r != -ENOMEM) {
                log_error_errno(r, "Failed to handle %s: %m", api_route_to_string(route));
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Internal server error");
        }
        return r;
}

int api_result_body(const ApiResult *res, const char *hostname, int64_t now_ns, Buf *body) {
        (void) knox_envelope_begin(body, res->code, hostname, now_ns, strempty(res->message));
        if (res->code == KNOX_OK && res->data.len > 0)
                (void) buf_put(body, res->data.data, res->data.len);
        else
                (void) buf_puts(body, "null");
        return knox_envelope_end(body);
}
