/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Knox client's calls to keyward's extensions: whoami, the expiring certificates,
 * and the user tokens' login and revocation. */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "knox-client-internal.h"

int knox_client_whoami(KnoxClient *c, char **ret_json, KnoxError *err) {
        assert_return(c && ret_json && err, -EINVAL);

        return knox_client_request_json(c, "/v0/auth/whoami/", json_type_object, "an object", ret_json, err);
}

int knox_client_expiring(KnoxClient *c, uint64_t within_sec, char **ret_json, KnoxError *err) {
        char path[64];

        assert_return(c && ret_json && err, -EINVAL);

        (void) snprintf(path, sizeof(path), "/v0/certificates/expiring/?within=%" PRIu64, within_sec);
        return knox_client_request_json(c, path, json_type_array, "an array", ret_json, err);
}

int knox_client_revoke_token(KnoxClient *c, KnoxError *err) {
        assert_return(c && err, -EINVAL);

        return knox_client_request_simple(c, METHOD_DELETE, "/v0/auth/token/", NULL, err);
}

int knox_client_login(
        KnoxClient *c,
        const char *user,
        const Secret *password,
        const char *rhost,
        Secret **ret_token,
        char **ret_json,
        KnoxError *err) {

        _cleanup_buf_ Buf body = BUF_INIT_SECURE;
        _cleanup_(secret_freep) Secret *token = NULL;
        _cleanup_erase_free_ char *json = NULL;
        _cleanup_erase_free_ char *saved = NULL;
        KnoxResponse resp = {};
        const char *s;
        size_t len;
        int r;

        assert_return(c && user && password && ret_token && err, -EINVAL);

        (void) knox_client_form_append(&body, "password", (const char *) password->data, password->size);
        if (rhost)
                (void) knox_client_form_append(&body, "rhost", rhost, strlen(rhost));
        (void) knox_client_form_append(&body, "user", user, strlen(user));
        if (body.error < 0)
                return knox_client_oom(err);

        /* A login presents no token: it is how one gets one. */
        saved = TAKE_PTR(c->authorization);
        r = knox_client_request(c, METHOD_POST, "/v0/auth/login/", &body, 0, &resp, err);
        c->authorization = TAKE_PTR(saved);
        if (r <= 0)
                return r;

        if (json_get_string(json_get_field(resp.data, "token"), &s, &len) < 0 || len == 0) {
                knox_response_done(&resp);
                return knox_client_error(err, -EBADMSG, "Invalid answer: no token");
        }
        token = secret_new_copy(s, len);
        if (ret_json) {
                const char *j = json_object_to_json_string_ext(
                        resp.data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
                json = strdup(j);
                /* json-c keeps the printed text in the object: wipe it with the tree. */
                explicit_bzero((char *) j, strlen(j));
        }
        knox_response_done(&resp);
        if (!token || (ret_json && !json))
                return knox_client_error(err, -ENOMEM, "Out of memory");

        *ret_token = TAKE_PTR(token);
        if (ret_json)
                *ret_json = TAKE_PTR(json);
        return 0;
}
