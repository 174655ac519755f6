/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One HTTP exchange: the request decoded (target, query, form, authentication), handed to
 * server-api.c (or to the watch, list-stream and login code), and the answer sent with its
 * audit line and metrics. */

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "hexdecoct.h"
#include "json-util.h"
#include "log.h"
#include "parse.h"
#include "peer-cert.h"
#include "server-api.h"
#include "server-audit.h"
#include "server-auth.h"
#include "server-changes.h"
#include "server-conn-limit.h"
#include "server-login.h"
#include "server-metrics.h"
#include "server-request.h"
#include "server-tls.h"
#include "server.h"
#include "strv.h"
#include "time-util.h"
#include "watch-index.h"
#include "server-http.h"

#define AUDIT_FLUSH_USEC 1000
/* Knox's internal error (code 1, 500) for a request whose audit line cannot be written. */
#define AUDIT_UNAVAILABLE_MESSAGE "audit log unavailable"

static void wipe_and_free_cb(const void *data, size_t len, void *extra) {
        erase_and_free((void *) data, len);
}

/* The reply is written: stop reading, drop what was read ahead, and let evhttp see the end. */
static void close_after_reply_cb(struct evhttp_request *req, void *userdata) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        int fd = bev ? bufferevent_getfd(bev) : -EBADF;

        if (!bev)
                return;
        (void) evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
        if (fd >= 0)
                (void) shutdown(fd, SHUT_RDWR);
}

/* A client whose request line was refused before its end may still be sending the rest: had
 * its socket closed with those bytes unread, the kernel would reset the connection and the
 * client could lose the answer. After the answer the socket stays open one more second, written
 * to no more, its input read and discarded. It is kept open by a reference to the connection's
 * bufferevent, which closes it when the last reference goes, rather than by a duplicate
 * descriptor: the worker's epoll changes are batched per loop pass (server-worker.c), and a
 * descriptor closed while a duplicate keeps its socket open would stay in the epoll set. */
typedef struct Linger {
        struct event *event;
        struct bufferevent *bev;
        uint64_t until_usec;
} Linger;

static void linger_cb(evutil_socket_t fd, short what, void *userdata) {
        Linger *l = userdata;
        char scratch[16384];
        ssize_t n = 0;

        if (what & EV_READ) {
                n = read(fd, scratch, sizeof(scratch));
                explicit_bzero(scratch, sizeof(scratch)); /* it may hold a token */
        }
        if ((what & EV_READ) && (n > 0 || (n < 0 && errno == EAGAIN)) &&
            now_usec(CLOCK_MONOTONIC) < l->until_usec)
                return;
        event_free(l->event);
        bufferevent_decref(l->bev); /* the last reference: the socket is closed */
        free(l);
}

static void linger_after_reply_cb(struct evhttp_request *req, void *userdata) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        int fd = bev ? bufferevent_getfd(bev) : -EBADF;
        Linger *l;

        if (fd < 0)
                return;
        l = calloc(1, sizeof(Linger));
        if (l)
                l->event =
                        event_new(evhttp_connection_get_base(evcon), fd, EV_READ | EV_PERSIST, linger_cb, l);
        if (!l || !l->event || event_add(l->event, &(struct timeval){.tv_sec = 1}) < 0) {
                if (l && l->event)
                        event_free(l->event);
                free(l);
                return;
        }
        /* evhttp frees the connection after this: its bufferevent stays, with no events of its
         * own (a TLS bufferevent does not cancel them when freed), until linger_cb lets go. */
        bufferevent_disable(bev, EV_READ | EV_WRITE);
        bufferevent_incref(bev);
        l->bev = bev;
        l->until_usec = now_usec(CLOCK_MONOTONIC) + USEC_PER_SEC;
        (void) shutdown(fd, SHUT_WR); /* the answer is in the socket: end it there */
}

/* evhttp queues the head and the body as two pieces, which OpenSSL's bufferevent writes as
 * two records, two write(2)s and, on loopback, twice the receiver's wake-up. An answer that fits
 * in one record goes as one: the pieces are joined before the write event runs. The copy this
 * makes of the body is wiped when libevent frees it (wipe-alloc.c). */
static void output_one_record(Conn *conn) {
        struct evbuffer *o = conn->bev ? bufferevent_get_output(conn->bev) : NULL;

        if (o && evbuffer_get_length(o) <= 16384)
                (void) evbuffer_pullup(o, -1);
}

static void send_body(struct evhttp_request *req, int status, const char *content_type, Buf *body) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        struct evbuffer *out = evbuffer_new();
        Conn *conn;
        size_t len;
        char *data;

        evhttp_add_header(h, "Content-Type", content_type);
        evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
        conn = request_conn(req, NULL);
        /* After an error answer nothing more is read from the connection: when the error is
         * about the request itself (its framing, target, method) a proxy in front may have
         * framed it otherwise, and what follows may be the rest of it; for the API's own errors
         * closing costs a client one handshake and keeps one rule. A stopping worker closes
         * each connection after its reply, so that no client sends another request into a loop
         * about to end. */
        if (status >= 400 || !conn || conn->worker->stopping) {
                evhttp_add_header(h, "Connection", "close");
                if (conn)
                        conn->closing = true;
                /* evhttp keeps a CONNECT's connection open whatever the headers say. */
                if (evhttp_request_get_command(req) == EVHTTP_REQ_CONNECT)
                        evhttp_request_set_on_complete_cb(req, close_after_reply_cb, NULL);
                else if (conn && conn->cut)
                        evhttp_request_set_on_complete_cb(req, linger_after_reply_cb, NULL);
        }

        data = buf_steal(body, &len);
        if (!out || !data) {
                erase_and_free(data, len);
                if (out)
                        evbuffer_free(out);
                evhttp_send_error(req, 500, NULL);
                return;
        }
        /* The body may hold key data: hand it over without a copy and wipe it when sent. */
        if (evbuffer_add_reference(out, data, len, wipe_and_free_cb, NULL) < 0) {
                erase_and_free(data, len);
                evbuffer_free(out);
                evhttp_send_error(req, 500, NULL);
                return;
        }
        evhttp_send_reply(req, status, NULL, out);
        evbuffer_free(out);
        if (conn)
                output_one_record(conn);
        /* The next request on this connection must arrive within its deadline. */
        if (conn)
                conn_arm_deadline(conn);
}

void exchange_done(Exchange *x) {
        free(x->path);
        form_done(&x->query);
        form_done(&x->form);
        api_match_done(&x->match);
        principals_done(&x->principals);
        explicit_bzero(x->token_hash, sizeof(x->token_hash));
}

static const char *method_name(enum evhttp_cmd_type t) {
        switch (t) {
        case EVHTTP_REQ_GET:
                return "GET";
        case EVHTTP_REQ_POST:
                return "POST";
        case EVHTTP_REQ_PUT:
                return "PUT";
        case EVHTTP_REQ_DELETE:
                return "DELETE";
        case EVHTTP_REQ_HEAD:
                return "HEAD";
        case EVHTTP_REQ_OPTIONS:
                return "OPTIONS";
        case EVHTTP_REQ_PATCH:
                return "PATCH";
        case EVHTTP_REQ_TRACE:
                return "TRACE";
        case EVHTTP_REQ_CONNECT:
                return "CONNECT";
        }
        return "UNKNOWN";
}

/* How a request's audit line goes out. An acknowledged write waits for its line on disk, an
 * answer with key data (or a user token) for its line in the sink; the lines of other answers
 * follow them within AUDIT_FLUSH_USEC, which is what a crash or a failing sink can lose. While
 * the sink fails, every line goes out before its answer: so each request learns whether its
 * line was taken, and the first line taken again ends the failure. */
static AuditMode exchange_audit_mode(const Exchange *x, const ApiResult *res, const char *route) {
        bool read = streq(x->method, "GET") || streq(x->method, "HEAD");

        if (!read && route && res->http_status >= 200 && res->http_status < 300)
                return AUDIT_DURABLE;
        if (res->http_status == 200 && route && streq(route, "getkey"))
                return AUDIT_NOW;
        if (audit_is_failing(x->worker->server->audit))
                return AUDIT_NOW;
        return AUDIT_BATCHED;
}

static int exchange_audit_line(Exchange *x, const ApiResult *res, const char *route, AuditMode mode) {
        Server *s = x->worker->server;
        const char *sni = NULL;
        uint8_t unique[64];
        size_t unique_size = 0;
        const SSL_CIPHER *cipher = NULL;
        AuditRecord rec;
        int r;

        if (x->ssl) {
                sni = SSL_get_servername(x->ssl, TLSEXT_NAMETYPE_host_name);
                cipher = SSL_get_current_cipher(x->ssl);
                if (SSL_version(x->ssl) < TLS1_3_VERSION)
                        unique_size = SSL_get_finished(x->ssl, unique, sizeof(unique));
        }
        rec = (AuditRecord){
                .ts_ns = x->now_ns,
                .code = res->code,
                .status_code = res->http_status,
                .msg = strempty(res->message),
                .user_agent = evhttp_find_header(evhttp_request_get_input_headers(x->req), "User-Agent"),
                .method = x->method,
                .path = x->path,
                .route = route,
                .key_id = x->match.key_id,
                .version_id = x->match.version_id,
                .raw_query = x->raw_query,
                .query = &x->query,
                .form = x->form_ok ? &x->form : NULL,
                .principals = &x->principals,
                .remote_addr = x->remote_addr,
                .tls_server = sni,
                .tls_cipher = cipher ? (int) (SSL_CIPHER_get_id(cipher) & 0xffff) : 0,
                .tls_version = x->ssl ? SSL_version(x->ssl) : 0,
                .tls_resumed = x->ssl && SSL_session_reused(x->ssl),
                .tls_unique = unique_size > 0 ? unique : NULL,
                .tls_unique_size = unique_size,
        };
        r = audit_write_mode(s->audit, &rec, mode);
        if (r < 0)
                metrics_audit_failure(s->metrics, x->worker->index);
        /* Batched: the lines of a millisecond go out in one write (a write per loop pass
         * cost 5% of a keep-alive GET). No line waits longer than that. */
        if (mode == AUDIT_BATCHED && !evtimer_pending(x->worker->flush_event, NULL))
                (void) evtimer_add(x->worker->flush_event, &(struct timeval){.tv_usec = AUDIT_FLUSH_USEC});
        return r;
}

static void exchange_metrics(Exchange *x, const ApiResult *res, const char *route) {
        metrics_request(
                x->worker->server->metrics, x->worker->index, route ?: "unmatched", res->http_status,
                res->code, now_usec(CLOCK_MONOTONIC) - x->started_usec);
}

/* The line of an answer that goes out before its line (healthz, metrics). */
void exchange_audit(Exchange *x, const ApiResult *res, const char *route) {
        (void) exchange_audit_line(x, res, route, exchange_audit_mode(x, res, route));
        exchange_metrics(x, res, route);
}

/* Write the line of res before its answer, when its mode says so. 0: answer res; negative: the
 * line could not be written and (failing closed) the answer must be the refusal instead. */
static int exchange_audit_first(Exchange *x, const ApiResult *res, const char *route, AuditMode mode) {
        Server *s = x->worker->server;
        int r;

        /* The failure itself is logged where the sink met it (server-audit.c). */
        r = exchange_audit_line(x, res, route, mode);
        if (r >= 0 || s->config->audit_fail_open)
                return 0;
        if (mode == AUDIT_DURABLE)
                log_error(
                        "Request %s '%s' (key '%s') was carried out, but its audit line could not be written; it was answered with an error.",
                        x->method, strna(route), strna(x->match.key_id));
        return r;
}

/* An answer with key data whose line is in the worker's audit buffer: it leaves once the
 * lines of its pass of the event loop are written (exchange_send_held()), so one write(2)
 * serves every answer of the pass, and none leaves before its line is in the sink. */
struct HeldReply {
        HeldReply *next;
        struct evhttp_request *req; /* evhttp keeps it for us until we answer, even if the
                                     * connection goes away meanwhile */
        int status;
        Buf body; /* secure */
};

/* Hold body (taken) for req until the pass's lines are written. False (body untouched) when
 * there is no memory for it: the caller answers at once. */
static bool exchange_hold(Exchange *x, int status, Buf *body) {
        Worker *w = x->worker;
        HeldReply *h;

        h = malloc(sizeof(HeldReply));
        if (!h)
                return false;
        *h = (HeldReply){.req = x->req, .status = status, .body = *body};
        *body = BUF_INIT_SECURE;
        *w->held_tail = h;
        w->held_tail = &h->next;
        /* After the events the loop has already found ready: the rest of this pass. */
        event_active(w->held_event, 0, 0);
        return true;
}

void exchange_send_held(Worker *w) {
        Server *s = w->server;
        HeldReply *h;
        int r;

        if (!w->held)
                return;
        r = audit_flush(s->audit); /* a failure is logged there */

        while ((h = w->held)) {
                w->held = h->next;
                if (r < 0) /* each of their lines is lost */
                        metrics_audit_failure(s->metrics, w->index);
                if (r < 0 && !s->config->audit_fail_open) {
                        /* Failing closed: the key data stays here. The refusals have no line
                         * of their own: the sink just refused, and the failure is logged and
                         * counted instead. */
                        ApiResult refusal = API_RESULT_INIT;

                        buf_done(&h->body);
                        h->body = BUF_INIT_SECURE;
                        (void) api_result_error(
                                &refusal, KNOX_INTERNAL_SERVER_ERROR, AUDIT_UNAVAILABLE_MESSAGE);
                        if (api_result_body(&refusal, s->hostname, now_nsec(CLOCK_REALTIME), &h->body) >= 0)
                                send_body(h->req, refusal.http_status, "application/json", &h->body);
                        else
                                evhttp_send_error(h->req, 500, NULL);
                        api_result_done(&refusal);
                } else
                        send_body(h->req, h->status, "application/json", &h->body);
                buf_done(&h->body);
                free(h);
        }
        w->held_tail = &w->held;
}

/* Reply with the envelope of res, and write the audit line: before the reply for writes and
 * key data (failing closed: an answer whose line the sink refuses becomes Knox's internal
 * error "audit log unavailable"), after it for the rest. Key data waits for the line in the
 * batch of its loop pass (exchange_hold()), unless the sink is failing, when every line goes
 * out on its own. */
void exchange_reply(Exchange *x, ApiResult *res, const char *route) {
        _cleanup_buf_ Buf body = BUF_INIT_SECURE;
        ApiResult refusal = API_RESULT_INIT;
        AuditMode mode = exchange_audit_mode(x, res, route);
        bool hold = mode == AUDIT_NOW && !audit_is_failing(x->worker->server->audit);

        if (mode != AUDIT_BATCHED && exchange_audit_first(x, res, route, hold ? AUDIT_BATCHED : mode) < 0) {
                (void) api_result_error(&refusal, KNOX_INTERNAL_SERVER_ERROR, AUDIT_UNAVAILABLE_MESSAGE);
                res = &refusal;
                mode = AUDIT_BATCHED; /* the refusal's line: should the sink be back by then */
                hold = false;
        }
        if (api_result_body(res, x->worker->server->hostname, now_nsec(CLOCK_REALTIME), &body) < 0) {
                evhttp_send_error(x->req, 500, NULL);
                api_result_done(&refusal);
                return;
        }
        if (hold && exchange_hold(x, res->http_status, &body)) {
                exchange_metrics(x, res, route);
                return;
        }
        if (hold && audit_flush(x->worker->server->audit) < 0 &&
            !x->worker->server->config->audit_fail_open) {
                /* No memory to hold it, and its line did not go out: no key data. */
                evhttp_send_error(x->req, 500, NULL);
                return;
        }
        send_body(x->req, res->http_status, "application/json", &body);
        if (mode == AUDIT_BATCHED)
                (void) exchange_audit_line(x, res, route, AUDIT_BATCHED);
        exchange_metrics(x, res, route);
        api_result_done(&refusal);
}

void reply_error(Exchange *x, KnoxCode code, int http_status, const char *route, const char *fmt, ...) {
        ApiResult res = API_RESULT_INIT;
        va_list ap;

        res.code = code;
        res.http_status = http_status;
        va_start(ap, fmt);
        if (vasprintf(&res.message, fmt, ap) < 0)
                res.message = NULL;
        va_end(ap);
        exchange_reply(x, &res, route);
        api_result_done(&res);
}

/* Parse the body as Go's ParseForm would for POST and PUT, then wipe libevent's copy. */
static int read_form(Exchange *x) {
        struct evbuffer *in = evhttp_request_get_input_buffer(x->req);
        size_t len = evbuffer_get_length(in);
        unsigned char *p;
        int r = 0;

        if (len == 0 ||
            !http_content_type_is_form(
                    evhttp_find_header(evhttp_request_get_input_headers(x->req), "Content-Type")))
                return 0;
        p = evbuffer_pullup(in, -1);
        if (!p)
                return -ENOMEM;
        r = form_parse((const char *) p, len, &x->form);
        explicit_bzero(p, len);
        evbuffer_drain(in, len);
        return r;
}

/* 200 "ok", or 503 when the store or (failing closed) the audit log is unavailable. A failing
 * audit log is tried again here, so a health check also sees it come back. */
static void handle_healthz(Exchange *x) {
        Server *s = x->worker->server;
        _cleanup_buf_ Buf body = BUF_INIT;
        ApiResult res = API_RESULT_INIT;
        uint64_t c;

        if (store_change_counter(x->worker->store, &c) < 0) {
                res.http_status = 503;
                (void) buf_puts(&body, "store unavailable\n");
        } else {
                res.http_status = 200;
                (void) buf_puts(&body, "ok\n");
        }
        if (audit_probe(s->audit) < 0) {
                /* Only a line that goes out shows that a journal or pipe is back. */
                if (exchange_audit_line(x, &res, "healthz", AUDIT_NOW) >= 0) {
                        send_body(x->req, res.http_status, "text/plain; charset=utf-8", &body);
                        exchange_metrics(x, &res, "healthz");
                        return;
                }
                if (!s->config->audit_fail_open)
                        res.http_status = 503;
                buf_truncate(&body, 0);
                (void) buf_puts(&body, AUDIT_UNAVAILABLE_MESSAGE "\n");
        }
        send_body(x->req, res.http_status, "text/plain; charset=utf-8", &body);
        exchange_audit(x, &res, "healthz");
}

static void handle_metrics(Exchange *x) {
        _cleanup_buf_ Buf body = BUF_INIT;
        ApiResult res = API_RESULT_INIT;

        res.http_status = metrics_render(x->worker->server->metrics, &body) < 0 ? 500 : 200;
        if (res.http_status == 200 && x->worker->server->config->certificate_metrics) {
                int r = metrics_certificates_render(x->worker->store, &body);

                if (r < 0) {
                        log_warning_errno(r, "Failed to list certificates for /metrics: %m");
                        res.http_status = 500;
                }
        }
        send_body(x->req, res.http_status, "text/plain; version=0.0.4; charset=utf-8", &body);
        exchange_audit(x, &res, "metrics");
}

/* The routes that may write a key (and bump the store's change counter). */
static bool route_writes_keys(const ApiMatch *m) {
        ApiRoute r = m->route;

        return !m->method_not_allowed &&
                (r == API_ROUTE_POSTKEYS || r == API_ROUTE_DELETEKEY || r == API_ROUTE_PUTACCESS ||
                 r == API_ROUTE_POSTVERSION || r == API_ROUTE_PUTVERSION);
}

void request_cb(struct evhttp_request *req, void *userdata) {
        _cleanup_(exchange_done) Exchange x = {
                .worker = userdata,
                .req = req,
                .started_usec = now_usec(CLOCK_MONOTONIC),
                .now_ns = now_nsec(CLOCK_REALTIME),
        };
        Server *s = x.worker->server;
        _cleanup_free_ char *auth_msg = NULL;
        ApiResult res = API_RESULT_INIT;
        HttpScanError scan_error;
        const char *target;
        struct evkeyvalq *in;
        bool writes;
        int r, query_r;

        x.method = method_name(evhttp_request_get_command(req));
        x.conn = request_conn(req, &x.ssl);
        target = evhttp_request_get_uri(req);
        if (!x.conn) {
                /* Not one of ours: evhttp falls back to a plain socket when making the TLS
                 * connection failed. Nothing is served without TLS. */
                peer_address(req, x.remote_addr);
                x.path = strdup(strempty(target));
                reply_error(&x, KNOX_INTERNAL_SERVER_ERROR, 500, NULL, "Connection setup failed");
                return;
        }
        conn_prepare(x.conn, req, x.ssl);
        memcpy(x.remote_addr, x.conn->remote_addr, sizeof(x.remote_addr));
        scan_error = http_scan_error_of(&x.conn->scan, x.conn->n_requests++);
        if (scan_error != HTTP_SCAN_OK || x.conn->closing) {
                x.path = strdup(strempty(target));
                if (scan_error == HTTP_SCAN_CONNECT)
                        reply_error(&x, KNOX_NOT_FOUND, 405, NULL, "Method not allowed");
                else if (scan_error == HTTP_SCAN_TOO_MANY_PARAMETERS)
                        reply_error(&x, KNOX_BAD_REQUEST_DATA, 400, NULL, "too many query parameters");
                else
                        reply_error(
                                &x, KNOX_BAD_REQUEST_DATA, http_scan_error_status(scan_error), NULL,
                                "Invalid request: %s",
                                scan_error != HTTP_SCAN_OK ? http_scan_error_to_string(scan_error) :
                                                             "the connection is closing");
                return;
        }

        r = http_target_split(target, &x.path, &x.raw_query);
        if (r == -ENOMEM) {
                reply_error(&x, KNOX_INTERNAL_SERVER_ERROR, 500, NULL, "Out of memory");
                return;
        }
        if (r < 0) {
                x.path = strdup(target);
                reply_error(&x, KNOX_BAD_REQUEST_DATA, 400, NULL, "invalid request target");
                return;
        }
        /* Parsed once: the routes read it, and a bad pair in it spoils the form below. */
        query_r = x.raw_query ? form_parse(x.raw_query, strlen(x.raw_query), &x.query) : 0;
        if (query_r == -E2BIG) {
                reply_error(&x, KNOX_BAD_REQUEST_DATA, 400, NULL, "too many query parameters");
                return;
        }

        if (streq(x.path, "/healthz"))
                return handle_healthz(&x);
        if (streq(x.path, "/metrics"))
                return handle_metrics(&x);

        r = api_match(x.method, x.path, &x.match);
        if (r < 0) {
                reply_error(&x, KNOX_INTERNAL_SERVER_ERROR, 500, NULL, "Out of memory");
                return;
        }
        if (x.match.method_not_allowed) {
                reply_error(&x, KNOX_NOT_FOUND, 405, NULL, "Method not allowed");
                return;
        }

        /* Go's ParseForm fails as a whole when the body or the query has a bad pair. */
        r = read_form(&x);
        if (r == -ENOMEM) {
                reply_error(&x, KNOX_INTERNAL_SERVER_ERROR, 500, NULL, "Out of memory");
                return;
        }
        x.form_ok = r >= 0 && query_r >= 0;
        /* Fail closed before a write touches the store, while the audit log takes no lines. */
        if (!streq(x.method, "GET") && !streq(x.method, "HEAD") && !s->config->audit_fail_open &&
            audit_probe(s->audit) < 0) {
                reply_error(
                        &x, KNOX_INTERNAL_SERVER_ERROR, 500, api_route_to_string(x.match.route), "%s",
                        AUDIT_UNAVAILABLE_MESSAGE);
                return;
        }
        if (x.match.route == API_ROUTE_LOGIN) {
                if (x.worker->stopping) {
                        reply_error(&x, KNOX_INTERNAL_SERVER_ERROR, 503, "login", "Server is stopping");
                        return;
                }
                return login_start(&x);
        }

        in = evhttp_request_get_input_headers(req);
        r = auth_request(
                &(AuthRequest){
                        .authorization = evhttp_find_header(in, "Authorization"),
                        .peer = x.conn ? x.conn->peer : NULL,
                        .store = x.worker->store,
                        .now_ns = x.now_ns,
                },
                &x.principals, x.token_hash, &x.has_token, &auth_msg);
        if (r == -EACCES) {
                metrics_auth_failure(s->metrics, x.worker->index);
                reply_error(
                        &x, KNOX_UNAUTHENTICATED, 401, api_route_to_string(x.match.route), "%s",
                        strempty(auth_msg));
                return;
        }
        if (r < 0) {
                metrics_store_error(s->metrics, x.worker->index);
                reply_error(
                        &x, KNOX_INTERNAL_SERVER_ERROR, 500, api_route_to_string(x.match.route),
                        "Authentication failed: %s", strerror(-r));
                return;
        }

        /* The whole list is written out as it is read. */
        if (list_stream_start(&x) > 0)
                return;

        writes = route_writes_keys(&x.match);
        if (writes)
                pthread_mutex_lock(&s->write_lock);
        r = api_handle(
                &x.worker->api,
                &(ApiRequest){
                        .match = &x.match,
                        .raw_query = x.raw_query,
                        .query = &x.query,
                        .form = x.form_ok ? &x.form : NULL,
                        .principals = &x.principals,
                        .token_hash = x.has_token ? x.token_hash : NULL,
                        .now_ns = x.now_ns,
                },
                &res);
        if (writes) {
                if (res.changed)
                        s->local_writes++;
                pthread_mutex_unlock(&s->write_lock);
        }
        if (r < 0)
                (void) api_result_error(&res, KNOX_INTERNAL_SERVER_ERROR, "%s", strerror(-r));
        if (res.code == KNOX_INTERNAL_SERVER_ERROR)
                metrics_store_error(s->metrics, x.worker->index);

        /* The watchers of the key are looked at after this answer has gone out. */
        if (res.changed)
                server_keys_changed(s, x.worker->index, CHANGE_EVERY_WORKER, &res.changed_key, 1);

        /* A stopping worker answers a watch at once: nothing may be held past its loop. */
        if (res.wait && !x.worker->stopping) {
                unsigned wait = http_prefer_wait(evhttp_find_header(in, "Prefer"), s->config->max_watch_sec);

                if (wait > 0 && watch_start(&x, wait) >= 0) {
                        api_result_done(&res);
                        return;
                }
        }

        exchange_reply(&x, &res, api_route_to_string(x.match.route));
        api_result_done(&res);
}
