/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Knox client's key routes: /v0/keys/ and what lies below it. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl-json.h"
#include "hexdecoct.h"
#include "json-util.h"
#include "knox-client-internal.h"
#include "strv.h"

int knox_client_get_key(KnoxClient *c, const char *id, VersionStatus max_status, Key **ret, KnoxError *err) {
        _cleanup_buf_ Buf path = BUF_INIT;
        KnoxResponse resp = {};
        const char *msg = NULL;
        Key *k = NULL;
        int r;

        assert_return(c && id && ret && err, -EINVAL);
        assert_return(max_status >= 0 && max_status < _VERSION_STATUS_MAX, -EINVAL);

        (void) knox_client_key_path(&path, id, NULL);
        /* The raw quotes are what Knox's client sends and its server wants (protocol.md §1). */
        if (max_status != VERSION_STATUS_ACTIVE)
                (void) buf_printf(&path, "?status=\"%s\"", version_status_to_string(max_status));
        if (path.error < 0)
                return knox_client_oom(err);

        r = knox_client_request(c, METHOD_GET, path.data, NULL, 0, &resp, err);
        if (r <= 0)
                return r;
        r = knox_key_from_json(resp.data, &k, &msg);
        knox_response_done(&resp);
        if (r == -ENOMEM)
                return knox_client_error(err, r, "Out of memory");
        if (r < 0)
                return knox_client_error(err, r, "invalid key content for the remote key: %s", strna(msg));
        *ret = k;
        return 0;
}

int knox_client_list_keys(KnoxClient *c, char ***ret_ids, KnoxError *err) {
        int r;

        assert_return(c && ret_ids && err, -EINVAL);

        r = knox_client_request_strv(c, "/v0/keys/?", 0, ret_ids, err);
        return r < 0 ? r : 0;
}

typedef struct IdHash {
        const char *id;
        const char *hash;
        size_t order;
} IdHash;

static int id_hash_compare(const void *a, const void *b) {
        const IdHash *x = a, *y = b;
        int d = strcmp(x->id, y->id);

        if (d != 0)
                return d;
        return x->order < y->order ? -1 : x->order > y->order;
}

int knox_client_changed_keys(
        KnoxClient *c,
        char *const *ids,
        char *const *hashes,
        size_t n,
        unsigned wait_sec,
        char ***ret_ids,
        KnoxError *err) {

        _cleanup_buf_ Buf path = BUF_INIT;
        _cleanup_free_ IdHash *items = NULL;
        bool first = true;
        int r;

        assert_return(c && (ids || n == 0) && ret_ids && err, -EINVAL);

        /* As Go's url.Values.Encode(): sorted by key, the last value of a repeated key wins. */
        if (n > 0) {
                items = calloc(n, sizeof(IdHash));
                if (!items)
                        return knox_client_oom(err);
        }
        for (size_t i = 0; i < n; i++) {
                assert_return(ids[i], -EINVAL);
                items[i] = (IdHash){.id = ids[i], .hash = hashes ? strempty(hashes[i]) : "", .order = i};
        }
        if (n > 1)
                qsort(items, n, sizeof(IdHash), id_hash_compare);

        (void) buf_puts(&path, "/v0/keys/?");
        for (size_t i = 0; i < n; i++) {
                if (i + 1 < n && streq(items[i].id, items[i + 1].id))
                        continue;
                if (!first)
                        (void) buf_putc(&path, '&');
                first = false;
                (void) url_escape_append(&path, items[i].id, strlen(items[i].id));
                (void) buf_putc(&path, '=');
                (void) url_escape_append(&path, items[i].hash, strlen(items[i].hash));
        }
        if (path.error < 0)
                return knox_client_oom(err);

        if (path.len > LONG_PATH) {
                /* libcurl keeps its own copy: ours need not last the whole wait of a watch */
                if (curl_easy_setopt(c->curl, CURLOPT_REQUEST_TARGET, path.data) != CURLE_OK)
                        return knox_client_error(err, -EIO, "Failed to set up the request");
                buf_done(&path);
                r = knox_client_request_strv(c, NULL, wait_sec, ret_ids, err);
                /* Whatever happened, the next request has a target of its own. */
                (void) curl_easy_setopt(c->curl, CURLOPT_REQUEST_TARGET, NULL);
        } else
                r = knox_client_request_strv(c, path.data, wait_sec, ret_ids, err);
        return r < 0 ? r : 0;
}

int knox_client_create_key(
        KnoxClient *c,
        const char *id,
        const Secret *data,
        const Acl *acl,
        uint64_t *ret_version,
        KnoxError *err) {

        _cleanup_buf_ Buf body = BUF_INIT_SECURE, acl_json = BUF_INIT;
        int r;

        assert_return(c && id && data && ret_version && err, -EINVAL);

        if (acl)
                (void) acl_json_append(&acl_json, acl);
        else
                (void) buf_puts(&acl_json, "[]");
        /* Go's url.Values.Encode() sorts the fields: acl, data, id. */
        (void) knox_client_form_append(&body, "acl", strempty(acl_json.data), acl_json.len);
        (void) knox_client_form_append_data(&body, data);
        (void) knox_client_form_append(&body, "id", id, strlen(id));
        if (acl_json.error < 0 || body.error < 0)
                return knox_client_oom(err);

        r = knox_client_request_uint64(c, METHOD_POST, "/v0/keys/", &body, ret_version, err);
        return r < 0 ? r : 0;
}

int knox_client_delete_key(KnoxClient *c, const char *id, KnoxError *err) {
        _cleanup_buf_ Buf path = BUF_INIT;

        assert_return(c && id && err, -EINVAL);

        if (knox_client_key_path(&path, id, NULL) < 0)
                return knox_client_oom(err);
        return knox_client_request_simple(c, METHOD_DELETE, path.data, NULL, err);
}

int knox_client_get_acl(KnoxClient *c, const char *id, Acl *ret, KnoxError *err) {
        _cleanup_buf_ Buf path = BUF_INIT;
        KnoxResponse resp = {};
        const char *msg = NULL;
        Acl acl = {};
        int r;

        assert_return(c && id && ret && err, -EINVAL);

        if (knox_client_key_path(&path, id, "access/") < 0)
                return knox_client_oom(err);
        r = knox_client_request(c, METHOD_GET, path.data, NULL, 0, &resp, err);
        if (r <= 0)
                return r;
        r = acl_from_json(resp.data, &acl, &msg);
        knox_response_done(&resp);
        if (r == -ENOMEM)
                return knox_client_error(err, r, "Out of memory");
        if (r < 0)
                return knox_client_error(err, -EBADMSG, "Invalid ACL in the answer: %s", strna(msg));
        *ret = acl;
        return 0;
}

int knox_client_put_access(KnoxClient *c, const char *id, const Acl *changes, KnoxError *err) {
        _cleanup_buf_ Buf path = BUF_INIT, body = BUF_INIT, acl_json = BUF_INIT;

        assert_return(c && id && changes && err, -EINVAL);

        (void) acl_json_append(&acl_json, changes);
        (void) knox_client_form_append(&body, "acl", strempty(acl_json.data), acl_json.len);
        if (knox_client_key_path(&path, id, "access/") < 0 || acl_json.error < 0 || body.error < 0)
                return knox_client_oom(err);
        return knox_client_request_simple(c, METHOD_PUT, path.data, &body, err);
}

int knox_client_add_version(
        KnoxClient *c, const char *id, const Secret *data, uint64_t *ret_version, KnoxError *err) {

        _cleanup_buf_ Buf path = BUF_INIT, body = BUF_INIT_SECURE;
        int r;

        assert_return(c && id && data && ret_version && err, -EINVAL);

        (void) knox_client_form_append_data(&body, data);
        if (knox_client_key_path(&path, id, "versions/") < 0 || body.error < 0)
                return knox_client_oom(err);

        r = knox_client_request_uint64(c, METHOD_POST, path.data, &body, ret_version, err);
        return r < 0 ? r : 0;
}

int knox_client_set_version_status(
        KnoxClient *c, const char *id, uint64_t version, VersionStatus status, KnoxError *err) {

        _cleanup_buf_ Buf path = BUF_INIT, body = BUF_INIT;
        char quoted[32];

        assert_return(c && id && err, -EINVAL);
        assert_return(status >= 0 && status < _VERSION_STATUS_MAX, -EINVAL);

        /* The status travels JSON-quoted: status=%22Primary%22. */
        (void) snprintf(quoted, sizeof(quoted), "\"%s\"", version_status_to_string(status));
        (void) knox_client_form_append(&body, "status", quoted, strlen(quoted));
        (void) knox_client_key_path(&path, id, "versions/");
        (void) buf_printf(&path, "%" PRIu64 "/", version);
        if (path.error < 0 || body.error < 0)
                return knox_client_oom(err);
        return knox_client_request_simple(c, METHOD_PUT, path.data, &body, err);
}
