/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A connection of the HTTPS front: its Conn kept on the SSL object, the per-address count
 * taken once evhttp has given it its socket, the deadline for each request's bytes, the
 * framing check as they arrive, and the bufferevent evhttp asks for. */

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

static int conn_ex_index = -1;

static void conn_unresolved_remove(Conn *c) {
        if (!c->unresolved)
                return;
        LIST_REMOVE(unresolved, c->worker->unresolved, c);
        c->unresolved = false;
}

/* evhttp makes a connection's bufferevent before it gives it its socket, and tells us neither
 * the socket nor the address: new connections are counted per address on the next pass of
 * the loop. One over its address's limit is shut down at once, before its TLS handshake;
 * evhttp then frees it as it would any connection the client closed. */
void resolve_cb(evutil_socket_t fd_unused, short what, void *userdata) {
        Worker *w = userdata;
        Conn *c;

        while ((c = w->unresolved)) {
                struct sockaddr_storage sa;
                socklen_t len = sizeof(sa);
                int fd = bufferevent_getfd(c->bev), r;

                conn_unresolved_remove(c);
                if (fd < 0 || getpeername(fd, (struct sockaddr *) &sa, &len) < 0)
                        continue;
                r = conn_limit_acquire(w->server->conn_limit, (struct sockaddr *) &sa, len, &c->limit_key);
                if (r > 0)
                        continue;
                if (r == 0) {
                        uint64_t now = now_usec(CLOCK_MONOTONIC);

                        metrics_connection_refused(w->server->metrics, w->index);

                        /* Logged at most once a second per worker: the peer sets the pace. */
                        if (now - w->limit_logged_usec >= USEC_PER_SEC) {
                                char host[INET6_ADDRSTRLEN] = "?";

                                if (sa.ss_family == AF_INET6)
                                        (void) inet_ntop(
                                                AF_INET6, &((struct sockaddr_in6 *) &sa)->sin6_addr, host,
                                                sizeof(host));
                                else if (sa.ss_family == AF_INET)
                                        (void) inet_ntop(
                                                AF_INET, &((struct sockaddr_in *) &sa)->sin_addr, host,
                                                sizeof(host));
                                log_warning(
                                        "Refusing a connection from %s: it has %u open already (--max-connections-per-address).",
                                        host, w->server->config->max_connections_per_address);
                                w->limit_logged_usec = now;
                        }
                } else
                        log_debug_errno(r, "Failed to count a connection, closing it: %m");
                (void) shutdown(fd, SHUT_RDWR);
        }
}

static void conn_free_ex(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
        Conn *c = ptr;

        if (!c)
                return;
        conn_unresolved_remove(c);
        if (c->stop_answer)
                c->worker->stop_pending--;
        conn_limit_release(c->worker->server->conn_limit, &c->limit_key);
        metrics_connections_add(c->worker->server->metrics, c->worker->index, -1);
        if (c->worker->n_connections-- >=
            c->worker->server->config->max_connections / c->worker->server->n_workers)
                worker_listen(c->worker, true);
        if (c->deadline)
                event_free(c->deadline);
        peer_cert_free(c->peer);
        free(c);
}

/* libevent's timeouts restart with every byte read, so a client dripping a request a byte at
 * a time would hold its connection forever. Each connection gets a deadline for receiving a
 * whole request (idle time before it included); past it the socket is shut down and evhttp
 * frees the connection. It is stopped while a request is handled or a watch is held. */
static void conn_deadline_cb(evutil_socket_t fd, short what, void *userdata) {
        Conn *c = userdata;
        int sock = bufferevent_getfd(c->bev);

        log_debug("Connection %d took too long to send a request; closing it.", sock);
        if (sock >= 0)
                (void) shutdown(sock, SHUT_RDWR);
}

void conn_arm_deadline(Conn *c) {
        const ServerConfig *cfg = c->worker->server->config;
        uint64_t usec = cfg->idle_timeout_usec + cfg->request_timeout_usec;
        struct timeval tv = {
                .tv_sec = (time_t) (usec / USEC_PER_SEC), .tv_usec = (suseconds_t) (usec % USEC_PER_SEC)};

        if (c->deadline)
                (void) evtimer_add(c->deadline, &tv);
}

/* Every byte the connection receives passes the framing check before evhttp parses it
 * (evbuffer callbacks run as the data is added; evhttp reads it afterwards). */
static void conn_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *userdata) {
        Conn *c = userdata;
        struct evbuffer_ptr pos;
        size_t left = info->n_added;

        c->received += info->n_added;
        if (left == 0 || c->scan.error != HTTP_SCAN_OK)
                return;
        if (evbuffer_ptr_set(buf, &pos, evbuffer_get_length(buf) - left, EVBUFFER_PTR_SET) < 0)
                return;
        while (left > 0 && c->scan.error == HTTP_SCAN_OK) {
                struct evbuffer_iovec v[8];
                int n = evbuffer_peek(buf, (ev_ssize_t) left, &pos, v, ELEMENTSOF(v));

                if (n <= 0)
                        break;
                for (int i = 0; i < MIN(n, (int) ELEMENTSOF(v)) && left > 0; i++) {
                        size_t k = MIN(v[i].iov_len, left);

                        (void) http_scan_feed(&c->scan, v[i].iov_base, k);
                        left -= k;
                        if (evbuffer_ptr_set(buf, &pos, k, EVBUFFER_PTR_ADD) < 0)
                                left = 0;
                }
        }
        /* A request line refused before its end (too many query parameters): its client may
         * wait for an answer before it sends the rest (libcurl does past 128 KiB), so it is
         * answered now. What was read of it gives way to a stand-in head that evhttp parses
         * at once; request_cb() answers it with the error, and the connection closes. */
        if (c->scan.error == HTTP_SCAN_TOO_MANY_PARAMETERS && !c->cut &&
            c->received - c->scan.head_start <= evbuffer_get_length(buf)) {
                static const char stand_in[] = "GET / HTTP/1.1\r\n\r\n";
                size_t keep = evbuffer_get_length(buf) - (size_t) (c->received - c->scan.head_start);
                struct evbuffer *head = evbuffer_new();

                c->cut = true;
                if (head && evbuffer_remove_buffer(buf, head, keep) == (int) keep &&
                    evbuffer_drain(buf, evbuffer_get_length(buf)) == 0 &&
                    evbuffer_add_buffer(buf, head) == 0)
                        (void) evbuffer_add(buf, stand_in, sizeof(stand_in) - 1);
                if (head)
                        evbuffer_free(head);
        }
        /* evhttp answers a CONNECT whose target it cannot parse itself, and keeps its
         * connection open after that answer: give it a second, then cut it. */
        if (c->scan.error == HTTP_SCAN_CONNECT && c->deadline)
                (void) evtimer_add(c->deadline, &(struct timeval){.tv_sec = 1});
}

/* evhttp asks for a bufferevent for each accepted connection. */
struct bufferevent *make_bufferevent(struct event_base *base, void *userdata) {
        Worker *w = userdata;
        SSL_CTX *ctx = atomic_load(&w->server->ssl_ctx);
        struct evbuffer_cb_entry *cb;
        struct bufferevent *bev;
        Conn *c;
        SSL *ssl;

        ssl = SSL_new(ctx);
        if (!ssl)
                return NULL;
        c = calloc(1, sizeof(Conn));
        if (!c || SSL_set_ex_data(ssl, conn_ex_index, c) != 1) {
                free(c);
                SSL_free(ssl);
                return NULL;
        }
        c->worker = w;
        c->limit_key.family = AF_UNSPEC;
        metrics_connections_add(w->server->metrics, w->index, +1);
        if (++w->n_connections >= w->server->config->max_connections / w->server->n_workers)
                worker_listen(w, false);

        bev = bufferevent_openssl_socket_new(
                base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
        if (!bev)
                return NULL; /* the SSL was freed with it, and so was c */
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
        c->bev = bev;
        c->scan = (HttpScan) HTTP_SCAN_INIT;
        /* Input callbacks of a bufferevent run as the data is added, never deferred. */
        cb = evbuffer_add_cb(bufferevent_get_input(bev), conn_input_cb, c);
        if (!cb)
                /* Unchecked requests are never served: request_cb() refuses them. */
                c->closing = true;
        c->deadline = evtimer_new(base, conn_deadline_cb, c);
        conn_arm_deadline(c);
        c->unresolved = true;
        LIST_PREPEND(unresolved, w->unresolved, c);
        event_active(w->resolve_event, EV_TIMEOUT, 1);
        return bev;
}

Conn *request_conn(struct evhttp_request *req, SSL **ret_ssl) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        struct bufferevent *bev;
        SSL *ssl;

        if (!evcon)
                return NULL;
        bev = evhttp_connection_get_bufferevent(evcon);
        ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
        if (!ssl)
                return NULL;
        if (ret_ssl)
                *ret_ssl = ssl;
        return SSL_get_ex_data(ssl, conn_ex_index);
}

void peer_address(struct evhttp_request *req, char ret[static PEER_ADDR_MAX]) {
        char *addr = NULL;
        uint16_t port = 0;

        evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
        (void) snprintf(ret, PEER_ADDR_MAX, "%s:%u", strna(addr), port);
}

void conn_prepare(Conn *c, struct evhttp_request *req, SSL *ssl) {
        /* The request is in: no deadline while it is handled or held as a watch. Past a
         * CONNECT the connection's one deadline is the cut conn_input_cb() armed: what is
         * pipelined after it is never served and must not keep the connection. */
        if (c->deadline && c->scan.error != HTTP_SCAN_CONNECT)
                (void) evtimer_del(c->deadline);
        if (!c->nodelay) {
                struct bufferevent *bev =
                        evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
                int fd = bufferevent_getfd(bev), one = 1;

                if (fd >= 0)
                        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                c->nodelay = true;
        }
        if (!c->peer_done) {
                /* Verified once per connection, not on every request. */
                (void) peer_cert_from_ssl(ssl, c->worker->server->client_roots, &c->peer);
                metrics_tls_handshake(
                        c->worker->server->metrics, c->worker->index, ssl && SSL_session_reused(ssl) == 1);
                peer_address(req, c->remote_addr);
                c->peer_done = true;
        }
}

/* Once, before the first connection: the SSL ex_data slot that holds each Conn. */
int conn_setup(void) {
        if (conn_ex_index < 0) {
                conn_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_free_ex);
                if (conn_ex_index < 0)
                        return -ENOMEM;
        }
        return 0;
}
