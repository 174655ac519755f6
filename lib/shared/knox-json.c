/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "knox-json.h"

#include <string.h>

#include "acl-json.h"
#include "hexdecoct.h"
#include "json-util.h"

#define INVALID_KEY_CONTENT "invalid key content for the remote key"

/* clang-format off */
static const int knox_http_status_table[_KNOX_CODE_MAX] = {
        [KNOX_OK]                            = 200,
        [KNOX_INTERNAL_SERVER_ERROR]         = 500,
        [KNOX_KEY_IDENTIFIER_EXISTS]         = 400,
        [KNOX_KEY_VERSION_DOES_NOT_EXIST]    = 404,
        [KNOX_KEY_IDENTIFIER_DOES_NOT_EXIST] = 404,
        [KNOX_UNAUTHENTICATED]               = 401,
        [KNOX_UNAUTHORIZED]                  = 403,
        [KNOX_NOT_YET_IMPLEMENTED]           = 501,
        [KNOX_NOT_FOUND]                     = 404,
        [KNOX_NO_KEY_ID]                     = 400,
        [KNOX_NO_KEY_DATA]                   = 400,
        [KNOX_BAD_REQUEST_DATA]              = 400,
        [KNOX_BAD_KEY_FORMAT]                = 400,
        [KNOX_BAD_PRINCIPAL_IDENTIFIER]      = 400,
};
/* clang-format on */

int knox_code_http_status(KnoxCode code) {
        if (code < 0 || code >= _KNOX_CODE_MAX)
                return 500;
        return knox_http_status_table[code];
}

/* ---- writers ---- */

int knox_envelope_begin(Buf *b, KnoxCode code, const char *host, int64_t ts_ns, const char *message) {
        assert_return(b, -EINVAL);

        (void) buf_puts(
                b, code == KNOX_OK ? "{\"status\":\"ok\",\"code\":" : "{\"status\":\"error\",\"code\":");
        (void) json_append_int64(b, (int64_t) code);
        (void) buf_puts(b, ",\"host\":");
        (void) json_append_cstring(b, strempty(host));
        (void) buf_puts(b, ",\"ts\":");
        (void) json_append_int64(b, ts_ns);
        (void) buf_puts(b, ",\"message\":");
        (void) json_append_cstring(b, strempty(message));
        (void) buf_puts(b, ",\"data\":");

        return b->error;
}

int knox_envelope_end(Buf *b) {
        assert_return(b, -EINVAL);

        (void) buf_puts(b, "}\n");
        return b->error;
}

static int version_head_append(Buf *b, const KeyVersion *v, const void *data, size_t size) {
        const char *status;

        status = version_status_to_string(v->status);
        if (!status)
                return -EINVAL;

        (void) buf_puts(b, "{\"id\":");
        (void) json_append_uint64(b, v->id);
        (void) buf_puts(b, ",\"data\":\"");
        (void) base64_append(b, data, size);
        (void) buf_puts(b, "\",\"status\":");
        (void) json_append_cstring(b, status);
        (void) buf_puts(b, ",\"ts\":");
        (void) json_append_int64(b, v->ts);

        return b->error;
}

int knox_version_json_append(Buf *b, const KeyVersion *v) {
        int r;

        assert_return(b, -EINVAL);
        assert_return(v, -EINVAL);

        if (!v->data)
                return -EINVAL;

        r = version_head_append(b, v, v->data->data, v->data->size);
        if (r < 0)
                return r;

        (void) buf_putc(b, '}');
        return b->error;
}

int knox_key_json_append(Buf *b, const Key *k, VersionStatus max_status, bool with_acl) {
        bool first = true;
        int r;

        assert_return(b, -EINVAL);
        assert_return(k, -EINVAL);
        assert_return(max_status >= 0 && max_status < _VERSION_STATUS_MAX, -EINVAL);

        (void) buf_puts(b, "{\"id\":");
        (void) json_append_cstring(b, strempty(k->id));
        (void) buf_puts(b, ",\"acl\":");
        if (with_acl) {
                r = acl_json_append(b, &k->acl);
                if (r < 0)
                        return r;
        } else
                (void) buf_puts(b, "[]");

        (void) buf_puts(b, ",\"versions\":[");
        FOREACH_ARRAY(v, k->versions, k->n_versions) {
                if (v->status > max_status)
                        continue;
                if (!first)
                        (void) buf_putc(b, ',');
                first = false;
                r = knox_version_json_append(b, v);
                if (r < 0)
                        return r;
        }
        (void) buf_puts(b, "],\"hash\":");
        (void) json_append_cstring(b, k->hash);
        (void) buf_putc(b, '}');

        return b->error;
}

int knox_sealed_versions_json_append(Buf *b, const KeyVersion *versions, size_t n) {
        int r;

        assert_return(b, -EINVAL);
        assert_return(versions || n == 0, -EINVAL);

        (void) buf_putc(b, '[');
        for (size_t i = 0; i < n; i++) {
                const KeyVersion *v = &versions[i];

                if (!v->sealed || !v->crypt)
                        return -EINVAL;
                if (i > 0)
                        (void) buf_putc(b, ',');
                r = version_head_append(b, v, v->sealed, v->sealed_size);
                if (r < 0)
                        return r;
                (void) buf_puts(b, ",\"crypt\":\"");
                (void) base64_append(b, v->crypt, v->crypt_size);
                (void) buf_puts(b, "\"}");
        }
        (void) buf_putc(b, ']');

        return b->error;
}

/* ---- parsers ---- */

static int status_from_json(json_object *o, VersionStatus *ret) {
        VersionStatus s;
        const char *str;

        if (json_get_cstring(o, &str) < 0)
                return -EBADMSG;
        s = version_status_from_string(str);
        if (s < 0)
                return -EBADMSG;

        *ret = s;
        return 0;
}

/* Decode a base64 JSON string into a plain heap buffer (never NULL, even when empty). */
static int bytes_from_json(json_object *o, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *p = NULL;
        const char *s;
        size_t n, size;

        if (json_get_string(o, &s, &n) < 0)
                return -EBADMSG;

        p = malloc(base64_decoded_max(n));
        if (!p)
                return -ENOMEM;
        if (base64_decode(s, n, p, &size) < 0)
                return -EBADMSG;

        *ret = TAKE_PTR(p);
        *ret_size = size;
        return 0;
}

/* Decode base64 version data into a Secret; the scratch copy is a Secret too. */
static int secret_from_json(json_object *o, Secret **ret) {
        _cleanup_(secret_freep) Secret *scratch = NULL;
        Secret *s;
        const char *str;
        size_t n, size;

        if (json_get_string(o, &str, &n) < 0)
                return -EBADMSG;

        scratch = secret_new(base64_decoded_max(n));
        if (!scratch)
                return -ENOMEM;
        if (base64_decode(str, n, scratch->data, &size) < 0)
                return -EBADMSG;

        s = secret_new_copy(scratch->data, size);
        if (!s)
                return -ENOMEM;

        *ret = s;
        return 0;
}

/* The fields every version has, in both forms: id, status, ts. */
static int version_common_from_json(json_object *o, KeyVersion *v, const char **reterr_message) {
        if (!json_object_is_type(o, json_type_object))
                return json_fail(reterr_message, "json: key version must be an object");
        if (json_get_uint64(json_get_field(o, "id"), &v->id) < 0)
                return json_fail(reterr_message, "json: key version id must be an unsigned 64-bit integer");
        if (status_from_json(json_get_field(o, "status"), &v->status) < 0)
                return json_fail(reterr_message, "json: Invalid VersionStatus to convert");
        if (json_get_int64(json_get_field(o, "ts"), &v->ts) < 0)
                return json_fail(reterr_message, "json: key version ts must be a 64-bit integer");
        return 0;
}

static void versions_free(KeyVersion *versions, size_t n) {
        FOREACH_ARRAY(v, versions, n)
                key_version_done(v);
        free(versions);
}

static int version_from_json(json_object *o, KeyVersion *ret, const char **reterr_message) {
        KeyVersion v = {};
        int r;

        r = version_common_from_json(o, &v, reterr_message);
        if (r < 0)
                return r;

        r = secret_from_json(json_get_field(o, "data"), &v.data);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return json_fail(reterr_message, "json: key version data must be standard base64");

        *ret = v;
        return 0;
}

static bool hash_is_valid(const char *s) {
        size_t n = 0;

        for (; s[n]; n++)
                if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
                        return false;
        return n == KEY_HASH_HEX_SIZE - 1;
}

int knox_key_from_json(json_object *o, Key **ret, const char **reterr_message) {
        _cleanup_(key_freep) Key *k = NULL;
        json_object *f;
        const char *s = NULL;
        size_t n;
        int r;

        assert_return(ret, -EINVAL);

        if (!json_object_is_type(o, json_type_object))
                return json_fail(reterr_message, "json: key must be an object");

        k = key_new();
        if (!k)
                return -ENOMEM;

        /* id: missing, null or "" fails the Go client's check. */
        f = json_get_field(o, "id");
        if (f && json_get_cstring(f, &s) < 0)
                return json_fail(reterr_message, "json: key id must be a string");
        if (!f || isempty(s))
                return json_fail(reterr_message, INVALID_KEY_CONTENT);
        k->id = strdup(s);
        if (!k->id)
                return -ENOMEM;

        /* acl: present and not null (the server sends []). */
        f = json_get_field(o, "acl");
        if (!f)
                return json_fail(reterr_message, INVALID_KEY_CONTENT);
        r = acl_from_json(f, &k->acl, reterr_message);
        if (r < 0)
                return r;

        /* versions: a non-empty array. */
        f = json_get_field(o, "versions");
        if (!f)
                return json_fail(reterr_message, INVALID_KEY_CONTENT);
        if (!json_object_is_type(f, json_type_array))
                return json_fail(reterr_message, "json: key versions must be an array");
        n = json_object_array_length(f);
        if (n == 0)
                return json_fail(reterr_message, INVALID_KEY_CONTENT);
        k->versions = calloc(n, sizeof(KeyVersion));
        if (!k->versions)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = version_from_json(json_object_array_get_idx(f, i), &k->versions[i], reterr_message);
                if (r < 0)
                        return r;
                k->n_versions = i + 1;
        }

        /* hash: the stored hash, 64 lowercase hex digits. */
        f = json_get_field(o, "hash");
        if (f && json_get_cstring(f, &s) < 0)
                return json_fail(reterr_message, "json: key hash must be a string");
        if (!f || isempty(s))
                return json_fail(reterr_message, INVALID_KEY_CONTENT);
        if (!hash_is_valid(s))
                return json_fail(reterr_message, "json: key hash must be 64 lowercase hex digits");
        memcpy(k->hash, s, KEY_HASH_HEX_SIZE);

        *ret = TAKE_PTR(k);
        return 0;
}

/* The tree holds the base64 of every version: it is wiped before it is freed. */
DEFINE_JSON_TEXT_DECODER(knox_key_parse, Key *, knox_key_from_json, json_wipe_putp);

static int sealed_version_from_json(json_object *o, KeyVersion *ret, const char **reterr_message) {
        _cleanup_(key_version_done) KeyVersion v = {};
        int r;

        r = version_common_from_json(o, &v, reterr_message);
        if (r < 0)
                return r;

        r = bytes_from_json(json_get_field(o, "data"), &v.sealed, &v.sealed_size);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return json_fail(reterr_message, "json: stored version data must be standard base64");

        r = bytes_from_json(json_get_field(o, "crypt"), &v.crypt, &v.crypt_size);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return json_fail(reterr_message, "json: stored version crypt must be standard base64");

        *ret = v;
        v = (KeyVersion){};
        return 0;
}

int knox_sealed_versions_parse(
        const char *s, size_t n, KeyVersion **ret_versions, size_t *ret_n, const char **reterr_message) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        KeyVersion *versions = NULL;
        size_t count, done = 0;
        int r;

        assert_return(s || n == 0, -EINVAL);
        assert_return(ret_versions, -EINVAL);
        assert_return(ret_n, -EINVAL);

        r = json_parse(s, n, &o, reterr_message);
        if (r < 0)
                return r;

        /* Go writes a nil list as null. */
        if (!o) {
                *ret_versions = NULL;
                *ret_n = 0;
                return 0;
        }
        if (!json_object_is_type(o, json_type_array))
                return json_fail(reterr_message, "json: stored versions must be an array");

        count = json_object_array_length(o);
        if (count > 0) {
                versions = calloc(count, sizeof(KeyVersion));
                if (!versions)
                        return -ENOMEM;
        }
        for (; done < count; done++) {
                r = sealed_version_from_json(
                        json_object_array_get_idx(o, done), &versions[done], reterr_message);
                if (r < 0) {
                        versions_free(versions, done);
                        return r;
                }
        }

        *ret_versions = versions;
        *ret_n = count;
        return 0;
}

int knox_response_parse(const char *s, size_t n, KnoxResponse *ret, const char **reterr_message) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *host = NULL, *message = NULL;
        json_object *f;
        const char *status, *str;
        int64_t code = 0, ts = 0;
        int r;

        assert_return(s || n == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        r = json_parse(s, n, &o, reterr_message);
        if (r < 0)
                return r;
        if (!json_object_is_type(o, json_type_object)) {
                json_wipe(o);
                return json_fail(reterr_message, "json: response must be an object");
        }

        r = -EBADMSG;
        if (json_get_cstring(json_get_field(o, "status"), &status) < 0) {
                (void) json_fail(reterr_message, "json: response status must be a string");
                goto finish;
        }

        f = json_get_field(o, "code");
        if (f && (json_get_int64(f, &code) < 0 || code < INT32_MIN || code > INT32_MAX)) {
                (void) json_fail(reterr_message, "json: response code must be an integer");
                goto finish;
        }

        f = json_get_field(o, "ts");
        if (f && json_get_int64(f, &ts) < 0) {
                (void) json_fail(reterr_message, "json: response ts must be a 64-bit integer");
                goto finish;
        }

        f = json_get_field(o, "host");
        if (f && json_get_cstring(f, &str) < 0) {
                (void) json_fail(reterr_message, "json: response host must be a string");
                goto finish;
        }
        host = strdup(f ? str : "");

        f = json_get_field(o, "message");
        if (f && json_get_cstring(f, &str) < 0) {
                (void) json_fail(reterr_message, "json: response message must be a string");
                goto finish;
        }
        message = strdup(f ? str : "");

        if (!host || !message) {
                r = -ENOMEM;
                goto finish;
        }

        *ret = (KnoxResponse){
                .ok = streq(status, "ok"),
                .code = (KnoxCode) code,
                .host = TAKE_PTR(host),
                .ts = ts,
                .message = TAKE_PTR(message),
                /* The payload outlives the envelope: take a reference before the root goes. */
                .data = json_object_get(json_get_field(o, "data")),
        };
        return 0;

finish:
        /* The payload may carry secrets: leave nothing behind on failure. */
        json_wipe(o);
        return r;
}

void knox_response_done(KnoxResponse *r) {
        if (!r)
                return;
        free(r->host);
        free(r->message);
        if (r->data) {
                json_wipe(r->data);
                json_object_put(r->data);
        }
        *r = (KnoxResponse){};
}
