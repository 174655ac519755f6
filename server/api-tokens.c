/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The caller and its token: GET /v0/auth/whoami/ and DELETE /v0/auth/token/ (keyward's
 * extensions; the login itself is api-login.c). */

#include "api-internal.h"
#include "json-util.h"
#include "log.h"

/* ---- keyward's extensions --------------------------------------------------------- */

int api_handle_whoami(const Api *api, const ApiRequest *req, ApiResult *res) {
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
        return api_result_ok(res);
}

int api_handle_deletetoken(const Api *api, const ApiRequest *req, ApiResult *res) {
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
        return api_result_ok(res);
}
