/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the Knox client's files share: the client (knox-client.c: the handle, the transport
 * and the request helpers), the key routes (knox-client-keys.c) and keyward's extensions
 * (knox-client-extensions.c). Included by them only. */

#include <curl/curl.h>
#include <stdatomic.h>

#include "buf.h"
#include "knox-client.h"

#define KNOX_CLIENT_CONNECT_TIMEOUT_USEC (5 * UINT64_C(1000000))
#define KNOX_CLIENT_TIMEOUT_USEC (30 * UINT64_C(1000000))
#define KNOX_CLIENT_RESPONSE_MAX (64 * 1024 * 1024)
#define KNOX_CLIENT_ERRORS_MAX 1024

struct KnoxClient {
        CURL *curl;
        char **servers; /* base URLs, no trailing slash */
        size_t n_servers;
        size_t current; /* the one that answered last */
        char *authorization;
        char *user_agent;
        uint64_t timeout_usec;
        const atomic_bool *cancel;
        Buf response;                      /* secure: may hold key data */
        struct x509_store_st *chain_store; /* the CA bundle, to build the client's chain from */
        char errbuf[CURL_ERROR_SIZE];
};

/* A key list longer than this (a watch or a comparison naming many keys) goes as the
 * request target (CURLOPT_REQUEST_TARGET) of a URL without one: libcurl keeps one copy of it
 * then, where a URL's query is copied into half a dozen buffers that last the whole request
 * (a held watch) and the next one. */
#define LONG_PATH (16 * 1024)

typedef enum Method {
        METHOD_GET,
        METHOD_POST,
        METHOD_PUT,
        METHOD_DELETE,
} Method;

/* Set err (message formatted) and return r. */
int knox_client_error(KnoxError *err, int r, const char *fmt, ...) _printf_(3, 4);

/* Send one request, to each server in turn until one answers, and decode the envelope. With
 * path NULL, the caller has set CURLOPT_REQUEST_TARGET (a long key list, see LONG_PATH).
 * Returns 1 with *ret filled for an ok envelope, 0 for an error envelope (err filled), or
 * a negative errno (err->message filled). */
int knox_client_request(
        KnoxClient *c,
        Method method,
        const char *path,
        const Buf *body,
        unsigned wait_sec,
        KnoxResponse *ret,
        KnoxError *err);
/* A call whose answer carries nothing. */
int knox_client_request_simple(
        KnoxClient *c, Method method, const char *path, const Buf *body, KnoxError *err);
/* A GET whose answer's data is JSON of the given type, handed back as compact text. */
int knox_client_request_json(
        KnoxClient *c, const char *path, json_type type, const char *what, char **ret_json, KnoxError *err);
/* "Out of memory" in err, for a path or a body that could not be built. */
int knox_client_oom(KnoxError *err);

/* "/v0/keys/<id, escaped>/<suffix>" */
int knox_client_key_path(Buf *b, const char *id, const char *suffix);
/* One form field, escaped; the data one in base64. */
int knox_client_form_append(Buf *body, const char *name, const char *value, size_t len);
int knox_client_form_append_data(Buf *body, const Secret *data);

/* A request whose answer's data must be an exact unsigned integer (a version id). As
 * knox_client_request(): 1 with *ret set, 0 when the server answered with an error (in err). */
int knox_client_request_uint64(
        KnoxClient *c, Method method, const char *path, const Buf *body, uint64_t *ret, KnoxError *err);
/* A GET whose answer's data must be an array of strings (null is an empty list, as Go decodes
 * it); path NULL: CURLOPT_REQUEST_TARGET is set. Returns as knox_client_request_uint64(). */
int knox_client_request_strv(
        KnoxClient *c, const char *path, unsigned wait_sec, char ***ret, KnoxError *err);
