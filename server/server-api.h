/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Knox's v0 routes (protocol.md §3) and keyward's extensions, independent of HTTP: a
 * request comes in already authenticated, with its path, query and form decoded; the
 * result is a Knox code, a message and the JSON of the data. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "acl.h"
#include "buf.h"
#include "cryptor.h"
#include "form.h"
#include "key-cache.h"
#include "knox-json.h"
#include "store.h"

typedef enum ApiRoute {
        API_ROUTE_GETKEYS,
        API_ROUTE_POSTKEYS,
        API_ROUTE_GETKEY,
        API_ROUTE_DELETEKEY,
        API_ROUTE_GETACCESS,
        API_ROUTE_PUTACCESS,
        API_ROUTE_POSTVERSION,
        API_ROUTE_PUTVERSION,
        API_ROUTE_WHOAMI,
        API_ROUTE_DELETETOKEN,
        API_ROUTE_LOGIN,     /* answered by the HTTP layer: PAM runs off the event loop */
        API_ROUTE_EXPIRING,  /* GET /v0/certificates/expiring/ */
        API_ROUTE_NOT_FOUND, /* Knox's "404" route: authenticated, then code 8 */
        _API_ROUTE_MAX,
        _API_ROUTE_INVALID = -EINVAL,
} ApiRoute;

/* Knox's route ids: "getkeys", "postkeys", ..., "404". */
const char *api_route_to_string(ApiRoute r) _const_;

typedef struct Api {
        Store *store;
        const Cryptor *cryptor;
        const Acl *default_acl;       /* merged into every new key's ACL */
        const char *hostname;         /* for the envelope */
        KeyCache *cache;              /* the worker's cache of records for reads; NULL: none */
        _Atomic uint64_t *generation; /* moves on with every write (see key-cache.h) */
} Api;

typedef struct ApiMatch {
        ApiRoute route;
        bool method_not_allowed; /* the path is a route, the method is not */
        char *key_id;            /* path parameters, percent-decoded */
        char *version_id;
} ApiMatch;

void api_match_done(ApiMatch *m);

/* Route a method and a decoded path. Unknown paths give API_ROUTE_NOT_FOUND. */
int api_match(const char *method, const char *path, ApiMatch *ret);

typedef struct ApiRequest {
        const ApiMatch *match;
        const char *raw_query;        /* after '?', or NULL */
        const Form *query;            /* raw_query parsed, errors ignored as Go's URL.Query() */
        const Form *form;             /* the body form, or NULL when Go's ParseForm would fail */
        const Principals *principals; /* at least one: the caller authenticated */
        const uint8_t *token_hash;    /* SHA-256 of the user token presented, if any */
        int64_t now_ns;
} ApiRequest;

typedef struct ApiResult {
        KnoxCode code;
        int http_status;
        char *message;     /* NULL: "" */
        Buf data;          /* the data's JSON (secure: it may carry key data); empty means null */
        bool changed;      /* a key was written: watchers must look again */
        char *changed_key; /* which one (NULL with changed: unknown) */
        bool wait;         /* a watch found nothing new: hold the request (the caller decides) */
} ApiResult;

#define API_RESULT_INIT ((ApiResult){.data = BUF_INIT_SECURE})

void api_result_done(ApiResult *r);

/* Run the matched route. Returns 0 when a result (success or Knox error) was produced, or a
 * negative errno on a failure that left no result (only -ENOMEM in practice). */
int api_handle(const Api *api, const ApiRequest *req, ApiResult *res);

/* Set an error result: code, the HTTP status for it and a formatted message. */
int api_result_error(ApiResult *res, KnoxCode code, const char *fmt, ...) _printf_(3, 4);

/* Write the response body for a result: the envelope around its data. */
int api_result_body(const ApiResult *res, const char *hostname, int64_t now_ns, Buf *body);
