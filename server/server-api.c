/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "json-util.h"
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

int api_handle(const Api *api, const ApiRequest *req, ApiResult *res) {
        typedef int (*Handler)(const Api *, const ApiRequest *, ApiResult *);
        /* clang-format off */
        static const Handler handlers[_API_ROUTE_MAX] = {
                [API_ROUTE_GETKEYS]     = api_handle_getkeys,
                [API_ROUTE_POSTKEYS]    = api_handle_postkeys,
                [API_ROUTE_GETKEY]      = api_handle_getkey,
                [API_ROUTE_DELETEKEY]   = api_handle_deletekey,
                [API_ROUTE_GETACCESS]   = api_handle_getaccess,
                [API_ROUTE_PUTACCESS]   = api_handle_putaccess,
                [API_ROUTE_POSTVERSION] = api_handle_postversion,
                [API_ROUTE_PUTVERSION]  = api_handle_putversion,
                [API_ROUTE_WHOAMI]      = api_handle_whoami,
                [API_ROUTE_DELETETOKEN] = api_handle_deletetoken,
                [API_ROUTE_EXPIRING]    = api_handle_expiring,
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
