/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GET /v0/keys/ without a query: the whole list, written out page by page as it is read. */

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

/* Keys read from the store per page; the next page is read when what was written of the
 * last one has left the connection's output buffer, so a client that reads slowly (or not
 * at all) holds one page of the list in keywardd, not the list. */
#define LIST_PAGE_KEYS 1024

typedef struct ListStream {
        Worker *worker;
        struct evhttp_request *req;
        int64_t next; /* where the next page starts */
        bool first;   /* no id written yet */
        bool aborted; /* cut short: waiting for libevent to close the connection */
} ListStream;

static void list_stream_more_cb(struct evhttp_connection *evcon, void *userdata);

typedef struct ListPage {
        Buf *out;
        bool *first;
} ListPage;

static int list_page_one(const char *id, const char *hash, void *userdata) {
        ListPage *p = userdata;

        if (!*p->first)
                (void) buf_putc(p->out, ',');
        *p->first = false;
        return json_append_cstring(p->out, id);
}

/* Append the next page to out, and after the last one the end of the list and of the
 * envelope: 1 when it was the last one. */
static int list_stream_page(ListStream *ls, Buf *out) {
        ListPage p = {.out = out, .first = &ls->first};
        int r;

        r = store_list_page(ls->worker->store, ls->next, LIST_PAGE_KEYS, list_page_one, &p, &ls->next);
        if (r < 0)
                return r;
        if (r < LIST_PAGE_KEYS) {
                (void) buf_putc(out, ']');
                (void) knox_envelope_end(out);
        }
        if (out->error < 0)
                return out->error;
        return r < LIST_PAGE_KEYS;
}

static void list_stream_free(ListStream *ls) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(ls->req);

        if (evcon)
                evhttp_connection_set_closecb(evcon, NULL, NULL);
        free(ls);
}

/* Cut the answer short: the status went out long ago, so the client must see a broken
 * chunked body, never a shorter list. evhttp frees the connection when it sees it shut, and
 * list_stream_closed_cb() then the rest. */
static void list_stream_abort(ListStream *ls) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(ls->req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        int fd = bev ? bufferevent_getfd(bev) : -EBADF;

        ls->aborted = true;
        if (fd < 0) {
                list_stream_free(ls);
                return;
        }
        (void) shutdown(fd, SHUT_RDWR);
}

static void list_stream_closed_cb(struct evhttp_connection *evcon, void *userdata) {
        ListStream *ls = userdata;

        /* The client went away (or stalled past the idle timeout, or the list was cut short)
         * mid-list. A connection that failed has let go of the request, whose answer it
         * knows is unfinished, and leaves it to us; one freed with the worker still holds it
         * and frees it itself. */
        if (!ls->aborted)
                log_debug("A client left before the end of the key list.");
        if (!evhttp_request_get_connection(ls->req))
                evhttp_request_free(ls->req);
        free(ls);
}

/* Hand what out holds to the connection, with a callback for when it has drained. */
static int list_stream_write(ListStream *ls, Buf *out, bool last) {
        struct evbuffer *chunk = evbuffer_new();
        struct evhttp_request *req = ls->req;
        Conn *conn;

        if (!chunk || evbuffer_add(chunk, out->data, out->len) < 0) {
                if (chunk)
                        evbuffer_free(chunk);
                return -ENOMEM;
        }
        if (!last) {
                evhttp_send_reply_chunk_with_cb(req, chunk, list_stream_more_cb, ls);
                evbuffer_free(chunk);
                return 0;
        }
        evhttp_send_reply_chunk(req, chunk);
        evbuffer_free(chunk);
        conn = request_conn(req, NULL);
        list_stream_free(ls);
        evhttp_send_reply_end(req);
        if (conn)
                conn_arm_deadline(conn);
        return 0;
}

static void list_stream_more_cb(struct evhttp_connection *evcon, void *userdata) {
        ListStream *ls = userdata;
        _cleanup_buf_ Buf out = BUF_INIT;
        int r;

        if (ls->aborted)
                return;
        r = list_stream_page(ls, &out);
        if (r >= 0)
                r = list_stream_write(ls, &out, r > 0);
        if (r < 0) {
                log_error_errno(r, "Failed to list keys: %m");
                metrics_store_error(ls->worker->server->metrics, ls->worker->index);
                list_stream_abort(ls);
        }
}

/* Answer x (GET /v0/keys/ without a query) with the list written out page by page: the
 * same bytes as exchange_reply() would send, in chunked transfer encoding. 0 when x is not
 * such a request or this is no time to stream (a stopping worker, a failing audit log):
 * the caller answers it whole. */
int list_stream_start(Exchange *x) {
        ApiResult res = API_RESULT_INIT;
        _cleanup_buf_ Buf out = BUF_INIT;
        struct evkeyvalq *h;
        ListStream *ls;
        int r;

        /* HTTP/1.0 has no chunked encoding: its clients get the whole answer. */
        if (x->match.route != API_ROUTE_GETKEYS || !streq(x->method, "GET") || x->query.n > 0 ||
            x->req->major != 1 || x->req->minor < 1 || x->worker->stopping ||
            audit_is_failing(x->worker->server->audit))
                return 0;

        ls = calloc(1, sizeof(ListStream));
        if (!ls)
                return 0;
        *ls = (ListStream){.worker = x->worker, .req = x->req, .first = true};

        /* The first page before the status: a store that fails now gets Knox's error. */
        (void) knox_envelope_begin(&out, KNOX_OK, x->worker->server->hostname, now_nsec(CLOCK_REALTIME), "");
        (void) buf_putc(&out, '[');
        r = list_stream_page(ls, &out);
        if (r < 0) {
                free(ls);
                if (r == -ENOMEM)
                        return 0; /* the whole answer would not fit either: the caller says so */
                log_error_errno(r, "Failed to list keys: %m");
                metrics_store_error(x->worker->server->metrics, x->worker->index);
                reply_error(x, KNOX_INTERNAL_SERVER_ERROR, 500, "getkeys", "Failed to list keys");
                return 1;
        }

        h = evhttp_request_get_output_headers(x->req);
        evhttp_add_header(h, "Content-Type", "application/json");
        evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
        evhttp_connection_set_closecb(evhttp_request_get_connection(x->req), list_stream_closed_cb, ls);
        evhttp_send_reply_start(x->req, 200, "OK");

        /* The audit line and the metrics, as exchange_reply() writes them for a list. */
        res.code = KNOX_OK;
        res.http_status = 200;
        exchange_audit(x, &res, "getkeys");
        api_result_done(&res);

        if (list_stream_write(ls, &out, r > 0) < 0)
                list_stream_abort(ls);
        return 1;
}
