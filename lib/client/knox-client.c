/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "knox-client-internal.h"

#include <curl/curl.h>
#include <pthread.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "acl-json.h"
#include "buf.h"
#include "hexdecoct.h"
#include "json-util.h"
#include "log.h"
#include "strv.h"

/* The one place a CURLcode becomes an errno (STYLE.md §3). */
static int curl_to_errno(CURLcode code) {
        switch (code) {
        case CURLE_OK:
                return 0;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_ABORTED_BY_CALLBACK:
                return -ECANCELED;
        case CURLE_PEER_FAILED_VERIFICATION:
                return -EKEYREJECTED;
        case CURLE_SSL_CONNECT_ERROR:
                return -ECONNABORTED;
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_URL_MALFORMAT:
        case CURLE_BAD_FUNCTION_ARGUMENT:
                return -EINVAL;
        case CURLE_UNSUPPORTED_PROTOCOL:
                return -EPROTONOSUPPORT;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
                return -ECONNRESET;
        case CURLE_WRITE_ERROR:
                return -E2BIG; /* our write callback refused: the answer was too long */
        default:
                return -EIO;
        }
}

/* Whether a failed transfer never got as far as sending the request, so that another
 * server may be tried even for a request that is not idempotent. */
static bool curl_failed_before_request(CURLcode code, CURL *curl) {
        curl_off_t pretransfer = 0;

        switch (code) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_CONNECT:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
                return true;
        case CURLE_OPERATION_TIMEDOUT:
                return curl_easy_getinfo(curl, CURLINFO_PRETRANSFER_TIME_T, &pretransfer) == CURLE_OK &&
                        pretransfer == 0;
        default:
                return false;
        }
}

void knox_error_done(KnoxError *e) {
        if (!e)
                return;
        free(e->message);
        *e = (KnoxError){};
}

int knox_client_error(KnoxError *err, int r, const char *fmt, ...) {
        va_list ap;
        char *m = NULL;

        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        free(err->message);
        err->message = m ?: strdup("Out of memory");
        return r;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *userdata) {
        Buf *b = userdata;
        size_t n;

        if (!MUL_SAFE(&n, size, nmemb))
                return 0;
        if (buf_put(b, p, n) < 0)
                return 0; /* curl stops with CURLE_WRITE_ERROR */
        return n;
}

static void slist_free_erase(struct curl_slist *l) {
        for (struct curl_slist *i = l; i; i = i->next)
                if (i->data)
                        explicit_bzero(i->data, strlen(i->data));
        curl_slist_free_all(l);
}

static int server_normalize(const char *s, char **ret) {
        size_t n = strlen(s);
        char *u;

        while (n > 0 && s[n - 1] == '/')
                n--;
        if (n == 0)
                return -EINVAL;
        if (strstr(s, "://"))
                u = strndup(s, n);
        else if (asprintf(&u, "https://%.*s", (int) n, s) < 0)
                u = NULL;
        if (!u)
                return -ENOMEM;
        *ret = u;
        return 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void) {
        curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* libcurl calls it at least once a second during a transfer, a held watch included. */
static int
xferinfo_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        const KnoxClient *c = userdata;

        return atomic_load(c->cancel) ? 1 : 0;
}

/* A held watch leaves its connection idle for a minute at a time: OpenSSL may free the
 * connection's read and write buffers (about 34 KB) while nothing is pending.
 *
 * The client certificate goes with its chain built here, as libcurl sets up a connection,
 * from the certificate file's own intermediates and the CA bundle, but without a self-signed
 * root: left alone, OpenSSL builds the chain in the handshake and sends the root too, which
 * the server holds among its anchors anyway and would only parse (OpenSSL 3.0 decodes a
 * certificate's public key in about 0.15 ms, a sixth of keywardd's CPU per full handshake).
 * libcurl before 8.2 loads the CA bundle into the context only after this callback, so the
 * chain is built from the client's own copy of it. A chain that does not verify against the
 * bundle (the client's CA is not in it) is sent as far as it was built, as OpenSSL would;
 * should the build fail outright, OpenSSL's own chain is left in place. */
static CURLcode ssl_ctx_cb(CURL *curl, void *ssl_ctx, void *userdata) {
        KnoxClient *c = userdata;
        SSL_CTX *ctx = ssl_ctx;

        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
        if (c->chain_store && SSL_CTX_get0_certificate(ctx)) {
                ERR_set_mark();
                if (SSL_CTX_set1_chain_cert_store(ctx, c->chain_store) == 1)
                        (void) SSL_CTX_build_cert_chain(
                                ctx,
                                SSL_BUILD_CHAIN_FLAG_UNTRUSTED | SSL_BUILD_CHAIN_FLAG_NO_ROOT |
                                        SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR |
                                        SSL_BUILD_CHAIN_FLAG_CLEAR_ERROR);
                (void) SSL_CTX_set1_chain_cert_store(ctx, NULL);
                ERR_pop_to_mark();
        }
        return CURLE_OK;
}

/* The CA bundle, for ssl_ctx_cb() to build the client's chain from; NULL (OpenSSL's own
 * chain) when it cannot be read, which libcurl then reports. */
static X509_STORE *chain_store_new(const char *ca_file) {
        X509_STORE *store;

        ERR_set_mark();
        store = X509_STORE_new();
        if (store && X509_STORE_load_file(store, ca_file) != 1) {
                X509_STORE_free(store);
                store = NULL;
        }
        ERR_pop_to_mark();
        return store;
}

static bool curl_uses_openssl(void) {
        const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

        return v && v->ssl_version && strncmp(v->ssl_version, "OpenSSL/", 8) == 0;
}

/* Every option of the handle that does not change from one request to the next. */
static int handle_setup(KnoxClient *c, const KnoxClientConfig *config, long connect_ms) {
        if (curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
            curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
#else
            curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS, (long) CURLPROTO_HTTPS) != CURLE_OK ||
#endif
            curl_easy_setopt(c->curl, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_PATH_AS_IS, 1L) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, MAX(connect_ms, 1L)) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_USERAGENT, c->user_agent) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &c->response) != CURLE_OK ||
            curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf) != CURLE_OK)
                return -EIO;
        /* With an SSL_CTX only when libcurl's TLS back end is OpenSSL. */
        if (curl_uses_openssl()) {
                if (config->cert_file && config->ca_file)
                        c->chain_store = chain_store_new(config->ca_file);
                (void) curl_easy_setopt(c->curl, CURLOPT_SSL_CTX_DATA, c);
                (void) curl_easy_setopt(c->curl, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
        }
        if (config->ca_file && curl_easy_setopt(c->curl, CURLOPT_CAINFO, config->ca_file) != CURLE_OK)
                return -EIO;
        if (c->cancel &&
            (curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, xferinfo_cb) != CURLE_OK ||
             curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c) != CURLE_OK ||
             curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L) != CURLE_OK))
                return -EIO;
        if (config->cert_file &&
            (curl_easy_setopt(c->curl, CURLOPT_SSLCERT, config->cert_file) != CURLE_OK ||
             curl_easy_setopt(c->curl, CURLOPT_SSLKEY, config->key_file) != CURLE_OK))
                return -EIO;
        return 0;
}

int knox_client_new(const KnoxClientConfig *config, KnoxClient **ret) {
        _cleanup_(knox_client_freep) KnoxClient *c = NULL;
        uint64_t connect_timeout;
        int r;

        assert_return(config, -EINVAL);
        assert_return(config->servers && config->servers[0], -EINVAL);
        assert_return(!config->cert_file == !config->key_file, -EINVAL);
        assert_return(ret, -EINVAL);

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->response = BUF_INIT_SECURE;
        c->response.max = KNOX_CLIENT_RESPONSE_MAX;

        STRV_FOREACH(s, config->servers) {
                char *u;

                r = server_normalize(*s, &u);
                if (r < 0)
                        return r;
                r = strv_push(&c->servers, u);
                if (r < 0) {
                        free(u);
                        return r;
                }
        }
        c->n_servers = strv_length(c->servers);

        if (config->authorization) {
                c->authorization = strdup(config->authorization);
                if (!c->authorization)
                        return -ENOMEM;
        }
        if (config->user_agent)
                c->user_agent = strdup(config->user_agent);
        else if (asprintf(&c->user_agent, "keyward/%s", PACKAGE_VERSION) < 0)
                c->user_agent = NULL;
        if (!c->user_agent)
                return -ENOMEM;

        c->timeout_usec = config->timeout_usec ?: KNOX_CLIENT_TIMEOUT_USEC;
        connect_timeout = config->connect_timeout_usec ?: KNOX_CLIENT_CONNECT_TIMEOUT_USEC;

        /* libcurl's global set-up is thread-safe only from 7.84: do it once, and never undo
         * it (the process may have clients in several threads). */
        (void) pthread_once(&curl_once, curl_init_once);
        if (curl_init_result != CURLE_OK)
                return -EIO;
        c->curl = curl_easy_init();
        if (!c->curl)
                return -ENOMEM;
        c->cancel = config->cancel;
        r = handle_setup(c, config, (long) MIN(connect_timeout / 1000, (uint64_t) LONG_MAX));
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

KnoxClient *knox_client_free(KnoxClient *c) {
        if (!c)
                return NULL;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        X509_STORE_free(c->chain_store);
        strv_free(c->servers);
        erase_and_free_string(c->authorization);
        free(c->user_agent);
        buf_done(&c->response);
        free(c);
        return NULL;
}

int knox_client_set_authorization(KnoxClient *c, const char *authorization) {
        char *a = NULL;

        assert_return(c, -EINVAL);

        if (authorization) {
                a = strdup(authorization);
                if (!a)
                        return -ENOMEM;
        }
        erase_and_free_string(c->authorization);
        c->authorization = a;
        return 0;
}

int knox_client_set_timeouts(KnoxClient *c, uint64_t connect_timeout_usec, uint64_t timeout_usec) {
        uint64_t connect_ms = (connect_timeout_usec ?: KNOX_CLIENT_CONNECT_TIMEOUT_USEC) / 1000;

        assert_return(c, -EINVAL);

        if (curl_easy_setopt(
                    c->curl, CURLOPT_CONNECTTIMEOUT_MS,
                    (long) MAX(MIN(connect_ms, (uint64_t) LONG_MAX), (uint64_t) 1)) != CURLE_OK)
                return -EINVAL;
        c->timeout_usec = timeout_usec ?: KNOX_CLIENT_TIMEOUT_USEC;
        return 0;
}

const char *knox_client_current_server(const KnoxClient *c) {
        return c ? c->servers[c->current] : NULL;
}

/* A path segment: Knox's key ids ([A-Za-z0-9_:]) go in as they are; anything else is
 * percent-encoded, so that no id can change the path or start a query. */
static int path_segment_append(Buf *b, const char *s) {
        for (const char *p = s; *p; p++) {
                uint8_t ch = (uint8_t) *p;

                if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                    strchr("_:-.~", ch))
                        (void) buf_putc(b, (char) ch);
                else
                        (void) buf_printf(b, "%%%02X", ch);
        }
        return b->error;
}

int knox_client_key_path(Buf *b, const char *id, const char *suffix) {
        (void) buf_puts(b, "/v0/keys/");
        (void) path_segment_append(b, id);
        (void) buf_putc(b, '/');
        if (suffix)
                (void) buf_puts(b, suffix);
        return b->error;
}

/* One form field "name=<escaped value>", with '&' before it unless it is the first. */
int knox_client_form_append(Buf *body, const char *name, const char *value, size_t len) {
        if (body->len > 0)
                (void) buf_putc(body, '&');
        (void) buf_puts(body, name);
        (void) buf_putc(body, '=');
        (void) url_escape_append(body, value, len);
        return body->error;
}

/* The data field: standard base64 with padding, then form-escaped; both copies are secure
 * buffers, wiped when done. */
int knox_client_form_append_data(Buf *body, const Secret *data) {
        _cleanup_buf_ Buf b64 = BUF_INIT_SECURE;
        int r;

        r = base64_append(&b64, data->data, data->size);
        if (r < 0)
                return r;
        if (b64.error < 0)
                return b64.error;
        return knox_client_form_append(body, "data", strempty(b64.data), b64.len);
}

static int build_headers(KnoxClient *c, bool form, unsigned wait_sec, struct curl_slist **ret) {
        struct curl_slist *l = NULL, *n;
        char prefer[32];

        /* curl adds "Expect: 100-continue" to large bodies; Knox's client never sends it. */
        n = curl_slist_append(l, "Expect:");
        if (!n)
                goto oom;
        l = n;
        if (form) {
                n = curl_slist_append(l, "Content-Type: application/x-www-form-urlencoded");
                if (!n)
                        goto oom;
                l = n;
        }
        if (wait_sec > 0) {
                (void) snprintf(prefer, sizeof(prefer), "Prefer: wait=%u", wait_sec);
                n = curl_slist_append(l, prefer);
                if (!n)
                        goto oom;
                l = n;
        }
        if (c->authorization) {
                _cleanup_erase_free_ char *h = NULL;

                if (asprintf(&h, "Authorization: %s", c->authorization) < 0) {
                        h = NULL;
                        goto oom;
                }
                n = curl_slist_append(l, h);
                if (!n)
                        goto oom;
                l = n;
        }
        *ret = l;
        return 0;
oom:
        slist_free_erase(l);
        return -ENOMEM;
}

static int setup_method(CURL *curl, Method method, const Buf *body) {
        static const char *const names[] = {
                [METHOD_GET] = NULL,
                [METHOD_POST] = NULL,
                [METHOD_PUT] = "PUT",
                [METHOD_DELETE] = "DELETE",
        };

        if (method == METHOD_POST || method == METHOD_PUT) {
                if (curl_easy_setopt(curl, CURLOPT_POSTFIELDS, strempty(body ? body->data : NULL)) !=
                            CURLE_OK ||
                    curl_easy_setopt(
                            curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (body ? body->len : 0)) !=
                            CURLE_OK)
                        return -EIO;
        } else if (curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L) != CURLE_OK)
                return -EIO;
        if (curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, names[method]) != CURLE_OK)
                return -EIO;
        return 0;
}

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
        KnoxError *err) {

        static const char *const method_names[] = {"GET", "POST", "PUT", "DELETE"};
        _cleanup_buf_ Buf failures = BUF_INIT;
        struct curl_slist *headers = NULL;
        KnoxResponse resp = {};
        const char *parse_error = NULL;
        bool idempotent = method != METHOD_POST, target_set = !path;
        uint64_t timeout_ms;
        size_t idx = c->current;
        long http_status = 0;
        int r, cause = 0;

        knox_error_done(err);
        failures.max = KNOX_CLIENT_ERRORS_MAX;

        r = build_headers(c, body != NULL, wait_sec, &headers);
        if (r < 0)
                return knox_client_error(err, r, "Out of memory");
        timeout_ms = c->timeout_usec / 1000 + (uint64_t) wait_sec * 1000;
        r = setup_method(c->curl, method, body);
        if (r >= 0 &&
            (curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
             curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long) MIN(timeout_ms, (uint64_t) LONG_MAX)) !=
                     CURLE_OK))
                r = -EIO;
        if (r < 0) {
                slist_free_erase(headers);
                return knox_client_error(err, r, "Failed to set up the request");
        }

        r = -EHOSTUNREACH;
        for (size_t i = 0; i < c->n_servers; i++) {
                _cleanup_free_ char *url = NULL;
                CURLcode code;

                idx = (c->current + i) % c->n_servers;
                if (asprintf(&url, "%s%s", c->servers[idx], target_set ? "/" : path) < 0) {
                        url = NULL;
                        r = -ENOMEM;
                        break;
                }
                buf_done(&c->response);
                c->errbuf[0] = '\0';
                if (curl_easy_setopt(c->curl, CURLOPT_URL, url) != CURLE_OK) {
                        r = -EIO;
                        break;
                }

                log_debug(
                        "%s %s%s", method_names[method], c->servers[idx],
                        path ?: "/v0/keys/?(a long key list)");
                code = curl_easy_perform(c->curl);
                if (code == CURLE_OK) {
                        r = 0;
                        break;
                }

                r = curl_to_errno(code);
                cause = r;
                if (r == -E2BIG && c->response.error == -ENOMEM)
                        r = -ENOMEM;
                if (r == -ENOMEM || r == -E2BIG || r == -ECANCELED)
                        break;
                (void) buf_printf(
                        &failures, "%s%s: %s", failures.len > 0 ? "; " : "", c->servers[idx],
                        c->errbuf[0] ? c->errbuf : curl_easy_strerror(code));
                log_debug(
                        "%s%s failed: %s", c->servers[idx], path ?: "/v0/keys/?(a long key list)",
                        c->errbuf[0] ? c->errbuf : curl_easy_strerror(code));
                if (!idempotent && !curl_failed_before_request(code, c->curl))
                        break; /* the server may have acted on it: do not send it twice */
                r = -EHOSTUNREACH;
        }

        /* Nothing of the request may stay behind: the headers hold the token, the body the
         * key data (the caller wipes its body). */
        (void) curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
        (void) curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
        slist_free_erase(headers);

        if (r == -ENOMEM)
                return knox_client_error(err, r, "Out of memory");
        if (r == -E2BIG)
                return knox_client_error(err, r, "The answer of %s is too long", c->servers[idx]);
        if (r == -ECANCELED)
                return knox_client_error(err, r, "The request was cancelled");
        if (r < 0) {
                err->cause = cause;
                if (r == -EHOSTUNREACH)
                        return knox_client_error(
                                err, r, "Cannot reach any server: %s", strempty(failures.data));
                return knox_client_error(err, r, "Request failed: %s", strempty(failures.data));
        }

        c->current = idx;
        (void) curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &http_status);
        err->http_status = (int) http_status;

        r = knox_response_parse(strempty(c->response.data), c->response.len, &resp, &parse_error);
        buf_done(&c->response);
        if (r == -ENOMEM)
                return knox_client_error(err, r, "Out of memory");
        if (r < 0)
                return knox_client_error(
                        err, -EBADMSG, "Invalid answer from %s (HTTP status %ld): %s", c->servers[idx],
                        http_status, strna(parse_error));

        if (!resp.ok) {
                err->code = resp.code == KNOX_OK ? KNOX_INTERNAL_SERVER_ERROR : resp.code;
                err->message = TAKE_PTR(resp.message);
                knox_response_done(&resp);
                return 0;
        }
        err->code = KNOX_OK;
        *ret = resp;
        return 1;
}

int knox_client_request_uint64(
        KnoxClient *c, Method method, const char *path, const Buf *body, uint64_t *ret, KnoxError *err) {
        KnoxResponse resp = {};
        uint64_t v;
        int r;

        r = knox_client_request(c, method, path, body, 0, &resp, err);
        if (r <= 0)
                return r;
        if (json_get_uint64(resp.data, &v) < 0)
                r = knox_client_error(err, -EBADMSG, "Invalid answer: data is not a version id");
        else
                *ret = v;
        knox_response_done(&resp);
        return r;
}

static int data_strv(const KnoxResponse *resp, char ***ret, KnoxError *err) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n;

        if (!resp->data) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return knox_client_error(err, -ENOMEM, "Out of memory");
                *ret = TAKE_PTR(l);
                return 0;
        }
        if (!json_object_is_type(resp->data, json_type_array))
                return knox_client_error(err, -EBADMSG, "Invalid answer: data is not a list of key ids");
        n = json_object_array_length(resp->data);
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return knox_client_error(err, -ENOMEM, "Out of memory");
        for (size_t i = 0; i < n; i++) {
                const char *s;
                size_t len;

                if (json_get_string(json_object_array_get_idx(resp->data, i), &s, &len) < 0 ||
                    strlen(s) != len)
                        return knox_client_error(
                                err, -EBADMSG, "Invalid answer: data is not a list of key ids");
                l[i] = strdup(s);
                if (!l[i])
                        return knox_client_error(err, -ENOMEM, "Out of memory");
        }
        *ret = TAKE_PTR(l);
        return 0;
}

int knox_client_request_strv(
        KnoxClient *c, const char *path, unsigned wait_sec, char ***ret, KnoxError *err) {
        KnoxResponse resp = {};
        int r;

        r = knox_client_request(c, METHOD_GET, path, NULL, wait_sec, &resp, err);
        if (r <= 0)
                return r;
        r = data_strv(&resp, ret, err);
        knox_response_done(&resp);
        return r < 0 ? r : 1;
}

/* A call whose answer carries nothing. */
int knox_client_request_simple(
        KnoxClient *c, Method method, const char *path, const Buf *body, KnoxError *err) {
        KnoxResponse resp = {};
        int r;

        r = knox_client_request(c, method, path, body, 0, &resp, err);
        if (r > 0)
                knox_response_done(&resp);
        return r < 0 ? r : 0;
}

int knox_client_oom(KnoxError *err) {
        knox_error_done(err);
        return knox_client_error(err, -ENOMEM, "Out of memory");
}

/* A GET whose answer's data is JSON of the given type, handed back as compact text. */
int knox_client_request_json(
        KnoxClient *c, const char *path, json_type type, const char *what, char **ret_json, KnoxError *err) {
        KnoxResponse resp = {};
        char *s;
        int r;

        r = knox_client_request(c, METHOD_GET, path, NULL, 0, &resp, err);
        if (r <= 0)
                return r;
        if (!json_object_is_type(resp.data, type)) {
                knox_response_done(&resp);
                return knox_client_error(err, -EBADMSG, "Invalid answer: data is not %s", what);
        }
        s = strdup(json_object_to_json_string_ext(
                resp.data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        knox_response_done(&resp);
        if (!s)
                return knox_client_error(err, -ENOMEM, "Out of memory");
        *ret_json = s;
        return 0;
}
