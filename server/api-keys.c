/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The key routes: GET and POST /v0/keys/, GET and DELETE /v0/keys/{id}/. */

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "acl-json.h"
#include "api-internal.h"
#include "json-util.h"
#include "log.h"
#include "store-internal.h"

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

int api_handle_getkeys(const Api *api, const ApiRequest *req, ApiResult *res) {
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
        return api_result_ok(res);
}

/* ---- POST /v0/keys/ --------------------------------------------------------------- */

int api_handle_postkeys(const Api *api, const ApiRequest *req, ApiResult *res) {
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

        r = api_decode_data(data, res, KNOX_BAD_REQUEST_DATA, &v.data);
        if (r < 0 || !v.data)
                return r;
        api_version_sniff_certificate(&v);

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
                return api_store_error(res, "create", k->id, r);

        log_info(
                "Key '%s' created by %s '%s'.", LOG_NAME(k->id), principal_kind_to_string(p->kind),
                LOG_NAME(p->id));
        res->changed = true;
        res->changed_key = strdup(k->id); /* NULL: every watch looks again */
        (void) json_append_uint64(&res->data, k->versions[0].id);
        return api_result_ok(res);
}

/* ---- GET /v0/keys/{id}/ ----------------------------------------------------------- */

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

int api_handle_getkey(const Api *api, const ApiRequest *req, ApiResult *res) {
        _cleanup_(api_read_key_done) ReadKey rk = {};
        _cleanup_(opened_key_done) OpenedKey o = {};
        VersionStatus max = VERSION_STATUS_ACTIVE;
        const FormField *status;
        const char *msg;
        Key *k;
        int r;

        status = req->query ? form_get(req->query, "status") : NULL;
        if (status && api_parse_status_param(status->value, &max, &msg) < 0)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "%s", msg);

        r = api_load_key_read(api, req, res, &rk);
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
        return api_result_ok(res);
}

/* ---- DELETE /v0/keys/{id}/ -------------------------------------------------------- */

int api_handle_deletekey(const Api *api, const ApiRequest *req, ApiResult *res) {
        _cleanup_(key_freep) Key *k = NULL;
        int64_t version;
        int r;

        r = api_load_key(api, req, res, &k, &version);
        if (r < 0 || !k)
                return r;
        if (!authorized(req, k, ACCESS_ADMIN))
                return api_result_error(
                        res, KNOX_UNAUTHORIZED, "Principal %s not authorized to delete %s",
                        default_principal_id(req), k->id);

        r = store_remove(api->store, k->id);
        if (r < 0)
                return api_store_error(res, "delete", k->id, r);

        log_info("Key '%s' deleted by '%s'.", LOG_NAME(k->id), LOG_NAME(default_principal_id(req)));
        res->changed = true;
        res->changed_key = strdup(k->id); /* NULL: every watch looks again */
        return api_result_ok(res);
}
