/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The HTTPS front: one event loop per worker thread, each with its own evhttp on its own
 * SO_REUSEPORT listening sockets and its own store connection. A connection is
 * authenticated once (its certificate verified on first use and kept on the SSL object);
 * each request is parsed, authenticated, handed to server-api.c, answered and audited. */

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
#include <fcntl.h>
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

#define AUDIT_FLUSH_USEC 1000
/* Knox's internal error (code 1, 500) for a request whose audit line cannot be written. */
#define AUDIT_UNAVAILABLE_MESSAGE "audit log unavailable"
#define PEER_ADDR_MAX (INET6_ADDRSTRLEN + 8)
#define LOGIN_FAIL_DELAY_USEC (1 * USEC_PER_SEC)
#define STOP_GRACE_USEC (200 * USEC_PER_MSEC)
#define STOP_MAX_USEC (5 * USEC_PER_SEC)
#define STOP_CHECK_USEC 10000
#define TOKEN_SWEEP_USEC (3600 * USEC_PER_SEC)
#define TOKEN_KEEP_EXPIRED_NSEC (INT64_C(24) * 3600 * 1000000000) /* they still say "expired" */
#define LOGIN_USER_MAX 256
#define LOGIN_PASSWORD_MAX 4096
#define LOGIN_RHOST_MAX 253

typedef struct Watch Watch;
typedef struct PendingLogin PendingLogin;
typedef struct Conn Conn;

struct Worker {
        Server *server;
        size_t index;
        pthread_t thread;
        struct event_base *base;
        struct evhttp *http;
        struct evhttp_bound_socket *bound[16];
        size_t n_bound;
        Store *store;
        KeyCache *cache;
        Api api;
        int notify_fd; /* eventfd: another worker wrote a key */
        struct event *notify_event;
        struct event *poll_event;
        ChangeFeed *feed;          /* the store's change notifications (PostgreSQL), or NULL */
        struct event *flush_event; /* writes this worker's audit lines, AUDIT_FLUSH_USEC late */
        uint64_t change_counter;
        uint64_t token_sweep_usec; /* worker 0: when expired tokens were last dropped */
        Watch *watches;            /* doubly linked */
        WatchIndex *watch_index;   /* the same watches by key id */
        Watch *due;                /* watches to look at again (singly linked by due_next) */
        struct event *fanout_event;
        uint64_t fanout_pass;         /* numbers the passes of the fan-out (WatchKey.pass) */
        uint64_t seen_local_writes;   /* Server.local_writes when the poll last looked */
        uint64_t notified_counter;    /* the last change the store's notifications told of */
        pthread_mutex_t changes_lock; /* for the two below: any thread adds, the worker takes */
        char **changed_ids;
        bool changed_all;
        PendingLogin *logins; /* doubly linked: with a login thread, or waiting to answer */
        pthread_mutex_t inbox_lock;
        LoginJob *inbox; /* logins the threads gave back; notify_fd tells */
        unsigned n_connections;
        Conn *unresolved;            /* accepted, their address not yet counted (doubly linked) */
        struct event *resolve_event; /* counts them, once evhttp has given them their sockets */
        uint64_t limit_logged_usec;  /* when a refusal by address was last logged */
        bool listening;
        bool stopping; /* answering what is in flight: no new watches or logins, every reply closes */
        unsigned stop_pending;    /* watches answered at the stop whose connections are still open */
        uint64_t stop_usec;       /* when the stop began */
        struct event *stop_event; /* leaves the loop once they are written */
};

/* A held GET /v0/keys/?id=hash... with Prefer: wait=N. */
struct Watch {
        Worker *worker;
        struct evhttp_request *req;
        Form query;
        struct event *timeout;
        int64_t started_ns;
        char *remote_addr;
        Principals principals;
        WatchLink **links; /* one per key of the query, in order of first appearance */
        size_t n_links;
        bool due;
        Watch *due_next;
        Watch *prev, *next;
};

/* Per connection, kept on its SSL object. */
struct Conn {
        Worker *worker;
        struct bufferevent *bev;
        struct event *deadline;          /* bounds the time to receive a whole request */
        PeerCert *peer;                  /* computed on the first request */
        char remote_addr[PEER_ADDR_MAX]; /* likewise, "address:port" */
        bool peer_done;
        bool nodelay;
        ConnKey limit_key; /* what the per-address limit counted for it */
        HttpScan scan;     /* the framing of its requests, checked as the bytes arrive */
        uint64_t received; /* bytes added to its input so far */
        unsigned n_requests;
        bool closing;     /* an answer said "Connection: close": nothing more is served */
        bool cut;         /* a refused request line was replaced by a stand-in (conn_input_cb) */
        bool stop_answer; /* it carries a watch's answer at SIGTERM (Worker.stop_pending) */
        bool unresolved;
        Conn *unresolved_prev, *unresolved_next;
};

static int conn_ex_index = -1;

static void worker_listen(Worker *w, bool on);

static void conn_unresolved_remove(Conn *c) {
        if (!c->unresolved)
                return;
        if (c->unresolved_prev)
                c->unresolved_prev->unresolved_next = c->unresolved_next;
        else
                c->worker->unresolved = c->unresolved_next;
        if (c->unresolved_next)
                c->unresolved_next->unresolved_prev = c->unresolved_prev;
        c->unresolved = false;
        c->unresolved_prev = c->unresolved_next = NULL;
}

/* evhttp makes a connection's bufferevent before it gives it its socket, and tells us neither
 * the socket nor the address: new connections are counted per address on the next pass of
 * the loop. One over its address's limit is shut down at once, before its TLS handshake;
 * evhttp then frees it as it would any connection the client closed. */
static void resolve_cb(evutil_socket_t fd_unused, short what, void *userdata) {
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
                                                AF_INET6,
                                                &((struct sockaddr_in6 *) &sa)->sin6_addr,
                                                host,
                                                sizeof(host));
                                else if (sa.ss_family == AF_INET)
                                        (void) inet_ntop(
                                                AF_INET,
                                                &((struct sockaddr_in *) &sa)->sin_addr,
                                                host,
                                                sizeof(host));
                                log_warning(
                                        "Refusing a connection from %s: it has %u open already (--max-connections-per-address).",
                                        host,
                                        w->server->config->max_connections_per_address);
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

static void conn_arm_deadline(Conn *c) {
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
static struct bufferevent *make_bufferevent(struct event_base *base, void *userdata) {
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
        c->unresolved_next = w->unresolved;
        if (w->unresolved)
                w->unresolved->unresolved_prev = c;
        w->unresolved = c;
        event_active(w->resolve_event, EV_TIMEOUT, 1);
        return bev;
}

static void worker_listen(Worker *w, bool on) {
        if (w->listening == on)
                return;
        for (size_t i = 0; i < w->n_bound; i++) {
                struct evconnlistener *l = evhttp_bound_socket_get_listener(w->bound[i]);

                if (on)
                        (void) evconnlistener_enable(l);
                else
                        (void) evconnlistener_disable(l);
        }
        if (!on)
                log_warning(
                        "Worker %zu reached its connection limit; not accepting until one closes.",
                        w->index);
        w->listening = on;
}

static Conn *request_conn(struct evhttp_request *req, SSL **ret_ssl) {
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

static void peer_address(struct evhttp_request *req, char ret[static PEER_ADDR_MAX]) {
        char *addr = NULL;
        uint16_t port = 0;

        evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
        (void) snprintf(ret, PEER_ADDR_MAX, "%s:%u", strna(addr), port);
}

static void conn_prepare(Conn *c, struct evhttp_request *req, SSL *ssl) {
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
                peer_address(req, c->remote_addr);
                c->peer_done = true;
        }
}

/* ---- responses -------------------------------------------------------------------- */

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
 * client could lose the answer. After the answer the socket stays open one more second on a
 * duplicate, written to no more, its input read and discarded. */
typedef struct Linger {
        struct event *event;
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
        (void) close(fd);
        free(l);
}

static void linger_after_reply_cb(struct evhttp_request *req, void *userdata) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        int fd = bev ? bufferevent_getfd(bev) : -EBADF, dup_fd;
        Linger *l;

        if (fd < 0)
                return;
        l = calloc(1, sizeof(Linger));
        dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (l && dup_fd >= 0)
                l->event = event_new(
                        evhttp_connection_get_base(evcon), dup_fd, EV_READ | EV_PERSIST, linger_cb, l);
        if (!l || !l->event || event_add(l->event, &(struct timeval){.tv_sec = 1}) < 0) {
                if (l && l->event)
                        event_free(l->event);
                free(l);
                if (dup_fd >= 0)
                        (void) close(dup_fd);
                return;
        }
        l->until_usec = now_usec(CLOCK_MONOTONIC) + USEC_PER_SEC;
        (void) shutdown(dup_fd, SHUT_WR); /* the answer is in the socket: end it there */
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
        /* The next request on this connection must arrive within its deadline. */
        if (conn)
                conn_arm_deadline(conn);
}

/* Everything known about one request, for the reply, the audit line and the metrics. */
typedef struct Exchange {
        Worker *worker;
        struct evhttp_request *req;
        SSL *ssl;
        Conn *conn;
        uint64_t started_usec;
        int64_t now_ns;
        const char *method;
        char *path;
        const char *raw_query;
        Form query;
        Form form;
        bool form_ok;
        ApiMatch match;
        Principals principals;
        uint8_t token_hash[TOKEN_HASH_SIZE];
        bool has_token;
        char remote_addr[PEER_ADDR_MAX];
} Exchange;

static void exchange_done(Exchange *x) {
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
                x->worker->server->metrics,
                x->worker->index,
                route ?: "unmatched",
                res->http_status,
                res->code,
                now_usec(CLOCK_MONOTONIC) - x->started_usec);
}

/* The line of an answer that goes out before its line (healthz, metrics). */
static void exchange_audit(Exchange *x, const ApiResult *res, const char *route) {
        (void) exchange_audit_line(x, res, route, exchange_audit_mode(x, res, route));
        exchange_metrics(x, res, route);
}

/* Write the line of res before its answer, when its mode says so. 0: answer res; negative: the
 * line could not be written and (failing closed) the answer must be the refusal instead. */
static int exchange_audit_first(Exchange *x, const ApiResult *res, const char *route, AuditMode mode) {
        Server *s = x->worker->server;
        bool was_failing = audit_is_failing(s->audit);
        int r;

        r = exchange_audit_line(x, res, route, mode);
        if (r >= 0)
                return 0;
        if (s->config->audit_fail_open) {
                if (!was_failing)
                        log_error_errno(
                                r,
                                "AUDIT LOG UNAVAILABLE, answering requests without their audit lines (--audit-fail-open): %m");
                return 0;
        }
        if (!was_failing)
                log_error_errno(
                        r, "Audit log unavailable, refusing requests until it takes lines again: %m");
        if (mode == AUDIT_DURABLE)
                log_error(
                        "Request %s '%s' (key '%s') was carried out, but its audit line could not be written; it was answered with an error.",
                        x->method,
                        strna(route),
                        strna(x->match.key_id));
        return r;
}

/* Reply with the envelope of res, and write the audit line: before the reply for writes and
 * key data (failing closed: an answer whose line the sink refuses becomes Knox's internal
 * error "audit log unavailable"), after it for the rest. */
static void exchange_reply(Exchange *x, ApiResult *res, const char *route) {
        _cleanup_buf_ Buf body = BUF_INIT_SECURE;
        ApiResult refusal = API_RESULT_INIT;
        AuditMode mode = exchange_audit_mode(x, res, route);

        if (mode != AUDIT_BATCHED && exchange_audit_first(x, res, route, mode) < 0) {
                (void) api_result_error(&refusal, KNOX_INTERNAL_SERVER_ERROR, AUDIT_UNAVAILABLE_MESSAGE);
                res = &refusal;
                mode = AUDIT_BATCHED; /* the refusal's line: should the sink be back by then */
        }
        if (api_result_body(res, x->worker->server->hostname, now_nsec(CLOCK_REALTIME), &body) < 0) {
                evhttp_send_error(x->req, 500, NULL);
                api_result_done(&refusal);
                return;
        }
        send_body(x->req, res->http_status, "application/json", &body);
        if (mode == AUDIT_BATCHED)
                (void) exchange_audit_line(x, res, route, AUDIT_BATCHED);
        exchange_metrics(x, res, route);
        api_result_done(&refusal);
}

static void reply_error(Exchange *x, KnoxCode code, int http_status, const char *route, const char *fmt, ...)
        _printf_(5, 6);
static void
reply_error(Exchange *x, KnoxCode code, int http_status, const char *route, const char *fmt, ...) {
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

/* ---- watches ---------------------------------------------------------------------- */

/* How a held watch is answered. */
typedef enum WatchAnswer {
        WATCH_IF_CHANGED,      /* after a change: only when one of its keys differs */
        WATCH_ALWAYS,          /* its wait is over: what differs, maybe nothing */
        WATCH_NOTHING_CHANGED, /* the server stops: [] at once, so the agent goes elsewhere */
} WatchAnswer;

/* Watches answered per pass of the loop, so that the first answers go out while the rest
 * are looked at, and other connections get their turn. */
#define FANOUT_BATCH 256

static void watch_unindex(Watch *wa) {
        for (size_t i = 0; i < wa->n_links; i++)
                watch_index_remove(wa->worker->watch_index, wa->links[i]);
        wa->n_links = 0;
        free(wa->links);
        wa->links = NULL;
}

/* Index the watch under each key its query names (keys holding a NUL name no stored key:
 * left out, as the list route leaves them out), in order of first appearance. */
static int watch_index_query(Watch *wa) {
        wa->links = calloc(MAX(wa->query.n, 1u), sizeof(WatchLink *));
        if (!wa->links)
                return -ENOMEM;
        for (size_t i = 0; i < wa->query.n; i++) {
                const FormField *f = &wa->query.fields[i];
                WatchLink *l;
                int r;

                if (strlen(f->key) != f->key_len)
                        continue;
                r = watch_index_add(wa->worker->watch_index, f->key, wa, f->value, f->value_len, &l);
                if (r < 0) {
                        watch_unindex(wa);
                        return r;
                }
                if (r > 0)
                        wa->links[wa->n_links++] = l;
        }
        return 0;
}

static void watch_free(Watch *wa) {
        Worker *w = wa->worker;

        if (wa->prev)
                wa->prev->next = wa->next;
        else
                w->watches = wa->next;
        if (wa->next)
                wa->next->prev = wa->prev;
        if (wa->due)
                for (Watch **p = &w->due; *p; p = &(*p)->due_next)
                        if (*p == wa) {
                                *p = wa->due_next;
                                break;
                        }
        watch_unindex(wa);
        metrics_watchers_add(w->server->metrics, w->index, -1);
        if (wa->timeout)
                event_free(wa->timeout);
        form_done(&wa->query);
        principals_done(&wa->principals);
        free(wa->remote_addr);
        free(wa);
}

/* The client's connection no longer calls back into the watch. */
static void watch_forget_connection(Watch *wa) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(wa->req);

        if (evcon)
                evhttp_connection_set_closecb(evcon, NULL, NULL);
}

/* Append to out the watched keys that exist and whose hash differs from the watcher's, as
 * GET /v0/keys/?... lists them (server-api.c, list_changed). Each key's hash is read once
 * per pass, however many watchers it has. Returns how many, or a negative errno. */
static int watch_list_changed(Watch *wa, uint64_t pass, Buf *out) {
        int n = 0;

        for (size_t i = 0; i < wa->n_links; i++) {
                WatchLink *l = wa->links[i];
                WatchKey *k = l->key;

                if (k->pass != pass) {
                        k->hash_r = store_get_hash(wa->worker->store, k->id, k->hash);
                        k->pass = pass;
                }
                if (k->hash_r == -ENOKEY)
                        continue;
                /* A broken stored hash differs from any value; the key's GET reports it. */
                if (k->hash_r < 0 && k->hash_r != -EBADMSG)
                        return k->hash_r;
                if (k->hash_r == 0 && l->want_len == strlen(k->hash) &&
                    memcmp(l->want, k->hash, l->want_len) == 0)
                        continue;
                if (n > 0)
                        (void) buf_putc(out, ',');
                (void) json_append_cstring(out, k->id);
                n++;
        }
        return out->error < 0 ? out->error : n;
}

/* Answer a held watch, or leave it held (returns false) when how is WATCH_IF_CHANGED and
 * none of its keys differs. pass: see watch_list_changed(). */
static bool watch_answer(Watch *wa, WatchAnswer how, uint64_t pass) {
        Worker *w = wa->worker;
        ApiResult res = API_RESULT_INIT;
        Exchange x = {
                .worker = w,
                .req = wa->req,
                .method = "GET",
                .started_usec = now_usec(CLOCK_MONOTONIC),
                .now_ns = now_nsec(CLOCK_REALTIME),
        };
        int r = 0;

        (void) buf_putc(&res.data, '[');
        if (how != WATCH_NOTHING_CHANGED) {
                metrics_watch_evaluations(w->server->metrics, w->index, 1);
                r = watch_list_changed(wa, pass, &res.data);
        }
        if (r == -ENOMEM)
                (void) api_result_error(&res, KNOX_INTERNAL_SERVER_ERROR, "Out of memory");
        else if (r < 0) {
                log_error_errno(r, "Failed to list keys: %m");
                metrics_store_error(w->server->metrics, w->index);
                (void) api_result_error(&res, KNOX_INTERNAL_SERVER_ERROR, "Failed to list keys");
        } else if (r == 0 && how == WATCH_IF_CHANGED) {
                api_result_done(&res);
                return false;
        } else {
                (void) buf_putc(&res.data, ']');
                res.code = KNOX_OK;
                res.http_status = 200;
        }

        x.path = strdup("/v0/keys/");
        x.raw_query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(wa->req));
        x.query = wa->query;
        x.principals = wa->principals;
        snprintf(x.remote_addr, sizeof(x.remote_addr), "%s", strempty(wa->remote_addr));
        x.conn = request_conn(wa->req, &x.ssl);
        watch_forget_connection(wa);
        /* The stop waits for this answer to be written (it closes the connection). */
        if (how == WATCH_NOTHING_CHANGED && x.conn && !x.conn->stop_answer) {
                x.conn->stop_answer = true;
                w->stop_pending++;
        }

        exchange_reply(&x, &res, "getkeys");
        api_result_done(&res);
        free(x.path);
        /* query and principals belong to the watch */
        watch_free(wa);
        return true;
}

static void watch_timeout_cb(evutil_socket_t fd, short what, void *userdata) {
        Watch *wa = userdata;

        (void) watch_answer(wa, WATCH_ALWAYS, ++wa->worker->fanout_pass);
}

static void watch_closed_cb(struct evhttp_connection *evcon, void *userdata) {
        Watch *wa = userdata;

        /* The client went away while we held its request; libevent frees the request. */
        log_debug("Watcher %s went away.", strna(wa->remote_addr));
        watch_free(wa);
}

static void watch_mark_due(Watch *wa) {
        if (wa->due)
                return;
        wa->due = true;
        wa->due_next = wa->worker->due;
        wa->worker->due = wa;
}

static void fanout_arm(Worker *w) {
        static const struct timeval zero = {};

        /* A timer, not an active event: it runs on the next pass of the loop, after the
         * writes that pass finds ready, so the writer's answer leaves first. */
        (void) evtimer_add(w->fanout_event, &zero);
}

/* Anything may have changed: drop every cached key and have every held watch of this worker
 * look again. */
static void worker_changed_all(Worker *w) {
        atomic_fetch_add(&w->server->generation, 1);
        pthread_mutex_lock(&w->changes_lock);
        w->changed_all = true;
        pthread_mutex_unlock(&w->changes_lock);
        fanout_arm(w);
}

/* The changes others told this worker about: mark the watches on those keys due, then look
 * at them FANOUT_BATCH at a time, one store read per key per pass. */
static void fanout_cb(evutil_socket_t fd, short what, void *userdata) {
        Worker *w = userdata;
        _cleanup_strv_free_ char **ids = NULL;
        bool all;
        unsigned n = 0;

        pthread_mutex_lock(&w->changes_lock);
        ids = TAKE_PTR(w->changed_ids);
        all = w->changed_all;
        w->changed_all = false;
        pthread_mutex_unlock(&w->changes_lock);

        if (w->stopping)
                return;
        if (all || ids)
                w->fanout_pass++;
        if (all)
                for (Watch *wa = w->watches; wa; wa = wa->next)
                        watch_mark_due(wa);
        else
                STRV_FOREACH(id, ids) {
                        WatchKey *k = watch_index_find(w->watch_index, *id);

                        for (WatchLink *l = k ? k->links : NULL; l; l = l->next)
                                watch_mark_due(l->watch);
                }

        while (w->due && n++ < FANOUT_BATCH) {
                Watch *wa = w->due;

                w->due = wa->due_next;
                wa->due = false;
                wa->due_next = NULL;
                (void) watch_answer(wa, WATCH_IF_CHANGED, w->fanout_pass);
        }
        if (w->due)
                fanout_arm(w);
}

void server_keys_changed(Server *s, size_t origin, char *const *ids, size_t n_ids) {
        const uint64_t one = 1;

        /* Cached records of those keys are stale everywhere. */
        atomic_fetch_add(&s->generation, 1);
        for (size_t i = 0; i < s->n_workers; i++) {
                Worker *w = s->workers[i];
                bool all = !ids;

                pthread_mutex_lock(&w->changes_lock);
                for (size_t j = 0; !all && j < n_ids; j++)
                        if (!ids[j] || strv_extend(&w->changed_ids, ids[j]) < 0)
                                all = true; /* out of memory: look at every watch */
                if (all)
                        w->changed_all = true;
                pthread_mutex_unlock(&w->changes_lock);

                /* The calling worker's loop is this thread: no wake-up needed. */
                if (i == origin)
                        fanout_arm(w);
                else if (write(w->notify_fd, &one, sizeof(one)) < 0)
                        log_debug_errno(errno, "Failed to wake worker %zu: %m", i);
        }
}

static void worker_stop(Worker *w);
static void worker_drain_logins(Worker *w);

static void notify_cb(evutil_socket_t fd, short what, void *userdata) {
        Worker *w = userdata;
        uint64_t v;

        /* Draining the eventfd is all that matters; a short read cannot happen. */
        if (read(w->notify_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                log_debug_errno(errno, "Failed to read the notification eventfd: %m");
        worker_drain_logins(w);
        if (atomic_load(&w->server->stopping))
                worker_stop(w);
        else
                fanout_arm(w);
}

/* Writes by another process on the same database reach neither our eventfds nor our key
 * caches: the store's change counter tells them. Writes by this process moved it too, but
 * their watchers have been told already: only a counter that moved further than our own
 * writes account for makes every watch look again, and drops every cached key, unless the
 * store's notifications (PostgreSQL) told of every change up to it already. */
static void worker_poll_changes(Worker *w) {
        Server *s = w->server;
        uint64_t c, local;
        bool foreign;
        int r;

        pthread_mutex_lock(&s->write_lock);
        r = store_change_counter(w->store, &c);
        local = s->local_writes;
        pthread_mutex_unlock(&s->write_lock);
        if (r < 0)
                return;
        if (c != w->change_counter) {
                foreign = c - w->change_counter > local - w->seen_local_writes;
                w->change_counter = c;
                w->seen_local_writes = local;
                if (foreign && w->notified_counter < c)
                        worker_changed_all(w);
        }
        /* Every change up to c is accounted for now. */
        w->notified_counter = c;
}

/* A write committed by any keywardd on the same PostgreSQL database (this one included),
 * as the store's notification tells it: drop that key's cached copy and have its watches
 * look again. Counters arrive in commit order; the next one moves on. Any client of the
 * database may notify on the channel, so a notification is only a hint: the key it names is
 * always dropped, and a counter that is not the next one is never believed, only checked
 * against the store. A forged one costs a look, never a stale key. A notification that names
 * no key, and the notifications coming back after a gap, leave it to the store's counter
 * alone. This worker's own
 * listener told it alone: the other workers have listeners of their own. */
static void worker_store_changed(const char *id, uint64_t counter, void *userdata) {
        Worker *w = userdata;

        if (!id) {
                w->notified_counter = 0; /* believe nothing heard before: the poll decides */
                worker_poll_changes(w);
                return;
        }
        key_cache_forget(w->cache, id);
        pthread_mutex_lock(&w->changes_lock);
        if (strv_extend(&w->changed_ids, id) < 0)
                w->changed_all = true; /* out of memory: look at every watch */
        pthread_mutex_unlock(&w->changes_lock);
        fanout_arm(w);
        if (w->notified_counter != 0 && counter == w->notified_counter + 1)
                w->notified_counter = counter;
        else
                worker_poll_changes(w);
}

/* The poll runs every --poll-interval whether the notifications are up or not: it is how
 * changes are seen while they are down, and the bound on how late they can be otherwise. */
static void poll_cb(evutil_socket_t fd, short what, void *userdata) {
        Worker *w = userdata;

        /* Every login adds a token: the first worker drops those long expired, hourly. */
        if (w->index == 0 && now_usec(CLOCK_MONOTONIC) - w->token_sweep_usec >= TOKEN_SWEEP_USEC) {
                int r = store_token_expire(w->store, now_nsec(CLOCK_REALTIME) - TOKEN_KEEP_EXPIRED_NSEC);

                w->token_sweep_usec = now_usec(CLOCK_MONOTONIC);
                if (r > 0)
                        log_info("Dropped %d expired user token(s).", r);
                else if (r < 0)
                        log_warning_errno(r, "Failed to drop expired user tokens: %m");
        }

        worker_poll_changes(w);
}

/* Some keys changed, which is unknown: every held watch looks again (and a stopping worker
 * stops when woken). */
void server_notify_change(Server *s) {
        server_keys_changed(s, SIZE_MAX, NULL, 0);
}

static int watch_start(Exchange *x, unsigned wait_sec) {
        Worker *w = x->worker;
        struct timeval tv = {.tv_sec = wait_sec};
        Watch *wa;

        wa = calloc(1, sizeof(Watch));
        if (!wa)
                return -ENOMEM;
        wa->worker = w;
        wa->req = x->req;
        wa->started_ns = x->now_ns;
        wa->query = x->query;
        x->query = FORM_NULL;
        wa->principals = x->principals;
        x->principals = (Principals){};
        wa->remote_addr = strdup(x->remote_addr);
        wa->timeout = evtimer_new(w->base, watch_timeout_cb, wa);
        if (!wa->remote_addr || !wa->timeout || watch_index_query(wa) < 0 ||
            evtimer_add(wa->timeout, &tv) < 0) {
                watch_unindex(wa);
                x->query = wa->query;
                x->principals = wa->principals;
                if (wa->timeout)
                        event_free(wa->timeout);
                free(wa->remote_addr);
                free(wa);
                return -ENOMEM;
        }
        wa->next = w->watches;
        if (w->watches)
                w->watches->prev = wa;
        w->watches = wa;
        metrics_watchers_add(w->server->metrics, w->index, +1);
        evhttp_connection_set_closecb(evhttp_request_get_connection(x->req), watch_closed_cb, wa);
        return 0;
}

/* ---- password logins ---------------------------------------------------------------- */

/* A POST /v0/auth/login/ while a login thread checks it, and then, for a failure, while its
 * answer waits out LOGIN_FAIL_DELAY_USEC. */
struct PendingLogin {
        Worker *worker;
        Exchange x;       /* moved out of request_cb; x.req is NULL once the client left */
        bool with_thread; /* the job is out: the login threads will give it back */
        ApiResult res;    /* a failure's answer, while it waits */
        struct event *delay;
        PendingLogin *prev, *next;
};

static void login_closed_cb(struct evhttp_connection *evcon, void *userdata);

/* The client's connection, if it is still there, no longer calls back into the login. */
static void pending_login_forget_connection(PendingLogin *p) {
        struct evhttp_connection *evcon = p->x.req ? evhttp_request_get_connection(p->x.req) : NULL;

        if (evcon)
                evhttp_connection_set_closecb(evcon, NULL, NULL);
}

static void pending_login_free(PendingLogin *p) {
        Worker *w = p->worker;

        if (p->prev)
                p->prev->next = p->next;
        else
                w->logins = p->next;
        if (p->next)
                p->next->prev = p->prev;
        if (p->delay)
                event_free(p->delay);
        api_result_done(&p->res);
        exchange_done(&p->x);
        free(p);
}

/* Answer, unless the client left; the pending login stays until its job is back. */
static void pending_login_reply(PendingLogin *p, ApiResult *res) {
        struct evhttp_request *req = p->x.req;

        if (!req)
                return;
        pending_login_forget_connection(p);
        /* The connection, and its TLS state, are as the request left them. */
        p->x.conn = request_conn(req, &p->x.ssl);
        exchange_reply(&p->x, res, "login");
        p->x.req = NULL;
        p->x.ssl = NULL;
        p->x.conn = NULL;
}

static void login_closed_cb(struct evhttp_connection *evcon, void *userdata) {
        PendingLogin *p = userdata;

        /* libevent frees the request; the job, if out, still comes back to us. */
        log_debug("Login from %s: the client went away.", p->x.remote_addr);
        p->x.req = NULL;
        if (!p->with_thread)
                pending_login_free(p);
}

static void login_delay_cb(evutil_socket_t fd, short what, void *userdata) {
        PendingLogin *p = userdata;

        pending_login_reply(p, &p->res);
        pending_login_free(p);
}

/* Called on a login thread: hand the job to its worker and wake it. */
static void login_job_done(LoginJob *j) {
        PendingLogin *p = j->userdata;
        Worker *w = p->worker;
        const uint64_t one = 1;

        pthread_mutex_lock(&w->inbox_lock);
        j->next = w->inbox;
        w->inbox = j;
        pthread_mutex_unlock(&w->inbox_lock);
        if (write(w->notify_fd, &one, sizeof(one)) < 0)
                log_debug_errno(errno, "Failed to wake worker %zu: %m", w->index);
}

/* A token for the user PAM let in, as the answer's data. */
static int login_mint(PendingLogin *p, const LoginJob *j, ApiResult *res) {
        Worker *w = p->worker;
        _cleanup_(secret_freep) Secret *token = NULL;
        uint8_t hash[TOKEN_HASH_SIZE];
        int64_t now = now_nsec(CLOCK_REALTIME);
        int64_t expires = now + (int64_t) (w->server->config->login_ttl_usec * NSEC_PER_USEC);
        Buf *b = &res->data;
        int r;

        r = user_token_new(&token, hash);
        if (r >= 0)
                r = store_token_add(
                        w->store,
                        hash,
                        &(TokenInfo){
                                .user = j->canonical_user,
                                .groups = j->groups,
                                .created = now,
                                .expires = expires,
                        });
        explicit_bzero(hash, sizeof(hash));
        if (r < 0) {
                log_error_errno(r, "Failed to store a token for '%s': %m", LOG_NAME(j->canonical_user));
                metrics_store_error(w->server->metrics, w->index);
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to make a token");
        }

        (void) buf_puts(b, "{\"token\":");
        (void) json_append_string(b, (const char *) token->data, token->size);
        (void) buf_puts(b, ",\"user\":");
        (void) json_append_cstring(b, j->canonical_user);
        (void) buf_puts(b, ",\"groups\":[");
        STRV_FOREACH(g, j->groups) {
                if (g != j->groups)
                        (void) buf_putc(b, ',');
                (void) json_append_cstring(b, *g);
        }
        (void) buf_printf(b, "],\"expires\":%" PRId64 "}", expires / (int64_t) NSEC_PER_SEC);
        if (b->error < 0)
                return b->error;
        res->code = KNOX_OK;
        res->http_status = 200;
        return 0;
}

static void login_finish(LoginJob *j) {
        _cleanup_(login_job_freep) LoginJob *job = j;
        PendingLogin *p = job->userdata;
        ApiResult res = API_RESULT_INIT;
        bool late = false;
        int r = 0;

        p->with_thread = false;
        if (!p->x.req) {
                pending_login_free(p);
                return;
        }

        switch (j->result) {
        case 0:
                r = login_mint(p, j, &res);
                if (r >= 0 && res.code == KNOX_OK)
                        log_info(
                                "User '%s' logged in from %s.",
                                LOG_NAME(j->canonical_user),
                                LOG_NAME(j->source));
                break;
        case -EACCES:
        case -EKEYEXPIRED:
        case -EUSERS:
                /* The same answer for an unknown user and a wrong password. */
                log_notice(
                        "Login as '%s' from %s refused: %s.",
                        LOG_NAME(j->user),
                        LOG_NAME(j->source),
                        strna(j->reason));
                r = api_result_error(
                        &res,
                        KNOX_UNAUTHENTICATED,
                        "%s",
                        j->result == -EUSERS              ? "Too many failed logins, try again later" :
                                j->result == -EKEYEXPIRED ? "Password expired, change it first" :
                                                            "Invalid user name or password");
                late = true;
                break;
        default:
                log_warning(
                        "Login as '%s' from %s failed: %s.",
                        LOG_NAME(j->user),
                        LOG_NAME(j->source),
                        strna(j->reason));
                r = api_result_error(&res, KNOX_INTERNAL_SERVER_ERROR, "Password check unavailable");
        }
        if (r < 0)
                (void) api_result_error(&res, KNOX_INTERNAL_SERVER_ERROR, "%s", strerror(-r));

        /* Failures are answered a second late, without holding a thread: guessing is slow. */
        if (late && !atomic_load(&p->worker->server->stopping)) {
                struct timeval tv = {.tv_sec = LOGIN_FAIL_DELAY_USEC / USEC_PER_SEC};

                p->res = res;
                p->delay = evtimer_new(p->worker->base, login_delay_cb, p);
                if (p->delay && evtimer_add(p->delay, &tv) >= 0)
                        return;
                res = p->res;
                p->res = API_RESULT_INIT;
        }
        pending_login_reply(p, &res);
        api_result_done(&res);
        pending_login_free(p);
}

/* Take the jobs the login threads gave back. */
static void worker_drain_logins(Worker *w) {
        LoginJob *j, *next;

        pthread_mutex_lock(&w->inbox_lock);
        j = w->inbox;
        w->inbox = NULL;
        pthread_mutex_unlock(&w->inbox_lock);
        for (; j; j = next) {
                next = j->next;
                login_finish(j);
        }
}

/* The client's address without its port, for PAM_RHOST and the throttle. */
static char *remote_host(const char *addr) {
        const char *colon = strrchr(addr, ':');

        return strndup(addr, colon ? (size_t) (colon - addr) : strlen(addr));
}

static const FormField *login_field(const Form *f, const char *name, size_t max) {
        const FormField *field = form_get(f, name);

        if (!field || field->value_len == 0 || field->value_len > max ||
            memchr(field->value, '\0', field->value_len))
                return NULL;
        return field;
}

/* An address or a host name, as PAM_RHOST holds them; empty for a local login. */
static bool rhost_valid(const char *s, size_t n) {
        if (n > LOGIN_RHOST_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || strchr(".:-_[]%", s[i])) ||
                    s[i] == '\0')
                        return false;
        return true;
}

/* Who a login is from. A machine's agent, proving itself with its certificate, passes on
 * the address the person logged in to it from (form field rhost, empty for a local login):
 * the login is then counted as "<machine>/<rhost>", so that one host's users do not share
 * one throttle, and PAM sees that address. Anyone else is their own address. An IPv6
 * address counts as its /64, and login_submit() bounds the rhosts one machine may name. */
static int login_source(const Exchange *x, LoginJob *j) {
        const FormField *f = form_get(&x->form, "rhost");
        const PeerCert *peer = x->conn ? x->conn->peer : NULL;
        char *const *names = peer && peer_cert_verified(peer) ? peer_cert_dns_names(peer) : NULL;
        _cleanup_free_ char *host = NULL, *counted = NULL;
        int r;

        if (f && names && names[0] && rhost_valid(f->value, f->value_len)) {
                r = login_source_address(f->value, f->value_len, &counted);
                if (r < 0)
                        return r;
                if (asprintf(&j->source, "%s/%s", names[0], counted) < 0) {
                        j->source = NULL;
                        return -ENOMEM;
                }
                j->machine = strdup(names[0]);
                if (!j->machine)
                        return -ENOMEM;
                if (f->value_len > 0) {
                        j->rhost = strndup(f->value, f->value_len);
                        if (!j->rhost)
                                return -ENOMEM;
                }
                return 0;
        }
        host = remote_host(x->remote_addr);
        if (!host)
                return -ENOMEM;
        r = login_source_address(host, strlen(host), &j->source);
        if (r < 0)
                return r;
        j->rhost = TAKE_PTR(host);
        return 0;
}

/* POST /v0/auth/login/: no authentication, the form's user and password go to PAM. */
static void login_start(Exchange *x) {
        Worker *w = x->worker;
        _cleanup_(login_job_freep) LoginJob *j = NULL;
        const FormField *user, *password;
        PendingLogin *p;
        int r;

        if (!x->form_ok) {
                reply_error(x, KNOX_BAD_REQUEST_DATA, 400, "login", "Invalid form");
                return;
        }
        user = login_field(&x->form, "user", LOGIN_USER_MAX);
        password = login_field(&x->form, "password", LOGIN_PASSWORD_MAX);
        if (!user || !password) {
                reply_error(x, KNOX_BAD_REQUEST_DATA, 400, "login", "Missing or invalid user or password");
                return;
        }

        j = calloc(1, sizeof(LoginJob));
        p = calloc(1, sizeof(PendingLogin));
        if (!j || !p) {
                free(p);
                reply_error(x, KNOX_INTERNAL_SERVER_ERROR, 500, "login", "Out of memory");
                return;
        }
        j->user = strndup(user->value, user->value_len);
        j->password = secret_new_copy(password->value, password->value_len);
        r = login_source(x, j);
        /* The form keeps the user for the audit line; the password lives on in the job only. */
        explicit_bzero((char *) password->value, password->value_len);
        if (!j->user || !j->password || r < 0) {
                free(p);
                reply_error(x, KNOX_INTERNAL_SERVER_ERROR, 500, "login", "Out of memory");
                return;
        }
        j->done = login_job_done;
        j->userdata = p;

        p->worker = w;
        p->res = API_RESULT_INIT;
        p->x = *x;
        *x = (Exchange){.worker = w};
        p->with_thread = true;
        r = login_submit(w->server->login, j);
        if (r < 0) {
                p->with_thread = false;
                *x = p->x;
                free(p);
                log_warning(
                        "Refusing a login as '%s' from %s: %s.",
                        LOG_NAME(j->user),
                        LOG_NAME(j->source),
                        r == -EBUSY ? "its place in the queue is taken (by its source, its user, or all)" :
                                      strerror(-r));
                reply_error(
                        x,
                        KNOX_INTERNAL_SERVER_ERROR,
                        503,
                        "login",
                        "Too many logins in progress, try again later");
                return;
        }
        TAKE_PTR(j);
        p->next = w->logins;
        if (w->logins)
                w->logins->prev = p;
        w->logins = p;
        evhttp_connection_set_closecb(evhttp_request_get_connection(p->x.req), login_closed_cb, p);
}

/* At shutdown: answer the logins still out, and those waiting to give their failure. */
static void worker_stop_logins(Worker *w) {
        PendingLogin *next;

        for (PendingLogin *p = w->logins; p; p = next) {
                next = p->next;
                if (p->delay) {
                        pending_login_reply(p, &p->res);
                        pending_login_free(p);
                } else if (p->x.req) {
                        ApiResult res = API_RESULT_INIT;

                        (void) api_result_error(&res, KNOX_INTERNAL_SERVER_ERROR, "Server is stopping");
                        pending_login_reply(p, &res);
                        api_result_done(&res);
                }
        }
}

/* ---- GET /v0/keys/: the whole list, written out as it is read ------------------------- */

/* Keys read from the store per page; the next page is read when what was written of the
 * last one has left the connection's output buffer, so a client that reads slowly (or not
 * at all) holds one page of the list in keywardd, not the list. */
#define LIST_PAGE_KEYS 1024

typedef struct ListStream {
        Worker *worker;
        struct evhttp_request *req;
        int64_t next; /* where the next page starts */
        bool first;   /* no id written yet */
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

/* Append the next page to out: 1 when it was the last one. */
static int list_stream_page(ListStream *ls, Buf *out) {
        ListPage p = {.out = out, .first = &ls->first};
        int r;

        r = store_list_page(ls->worker->store, ls->next, LIST_PAGE_KEYS, list_page_one, &p, &ls->next);
        if (r < 0)
                return r;
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
 * chunked body, never a shorter list. evhttp frees the connection when it sees it shut. */
static void list_stream_abort(ListStream *ls) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(ls->req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        int fd = bev ? bufferevent_getfd(bev) : -EBADF;

        list_stream_free(ls);
        if (fd >= 0)
                (void) shutdown(fd, SHUT_RDWR);
}

static void list_stream_closed_cb(struct evhttp_connection *evcon, void *userdata) {
        ListStream *ls = userdata;

        /* The client went away (or stalled past the idle timeout) mid-list; libevent frees
         * the request. */
        log_debug("A client left before the end of the key list.");
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

        r = list_stream_page(ls, &out);
        if (r > 0) {
                (void) buf_puts(&out, "]");
                (void) knox_envelope_end(&out);
        }
        if (r >= 0 && out.error < 0)
                r = out.error;
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
static int list_stream_start(Exchange *x) {
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
        if (r > 0) {
                (void) buf_putc(&out, ']');
                (void) knox_envelope_end(&out);
        }
        if (r >= 0 && out.error < 0)
                r = out.error;
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

/* ---- requests --------------------------------------------------------------------- */

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

static void request_cb(struct evhttp_request *req, void *userdata) {
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
        int r;

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
                                &x,
                                KNOX_BAD_REQUEST_DATA,
                                http_scan_error_status(scan_error),
                                NULL,
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
        if (x.raw_query && form_parse(x.raw_query, strlen(x.raw_query), &x.query) == -E2BIG) {
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
        x.form_ok = r >= 0;
        if (x.raw_query) {
                Form tmp = FORM_NULL;

                x.form_ok = x.form_ok && form_parse(x.raw_query, strlen(x.raw_query), &tmp) == 0;
                form_done(&tmp);
        }
        /* Fail closed before a write touches the store, while the audit log takes no lines. */
        if (!streq(x.method, "GET") && !streq(x.method, "HEAD") && !s->config->audit_fail_open &&
            audit_probe(s->audit) < 0) {
                reply_error(
                        &x,
                        KNOX_INTERNAL_SERVER_ERROR,
                        500,
                        api_route_to_string(x.match.route),
                        "%s",
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
                &x.principals,
                x.token_hash,
                &x.has_token,
                &auth_msg);
        if (r == -EACCES) {
                metrics_auth_failure(s->metrics, x.worker->index);
                reply_error(
                        &x,
                        KNOX_UNAUTHENTICATED,
                        401,
                        api_route_to_string(x.match.route),
                        "%s",
                        strempty(auth_msg));
                return;
        }
        if (r < 0) {
                metrics_store_error(s->metrics, x.worker->index);
                reply_error(
                        &x,
                        KNOX_INTERNAL_SERVER_ERROR,
                        500,
                        api_route_to_string(x.match.route),
                        "Authentication failed: %s",
                        strerror(-r));
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
                server_keys_changed(s, x.worker->index, &res.changed_key, 1);

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

/* ---- workers and listening sockets -------------------------------------------------- */

static int parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len) {
        _cleanup_free_ char *host = NULL;
        const char *colon;
        unsigned port;

        colon = strrchr(s, ':');
        if (!colon)
                return -EINVAL;
        if (safe_atou(colon + 1, &port) < 0 || port > 65535)
                return -EINVAL;
        if (s[0] == '[' && colon > s && colon[-1] == ']')
                host = strndup(s + 1, (size_t) (colon - s - 2));
        else
                host = strndup(s, (size_t) (colon - s));
        if (!host)
                return -ENOMEM;

        memset(ret, 0, sizeof(*ret));
        if (isempty(host) || streq(host, "*")) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *) ret;
                a->sin6_family = AF_INET6;
                a->sin6_port = htons((uint16_t) port);
                a->sin6_addr = in6addr_any;
                *ret_len = sizeof(*a);
        } else if (strchr(host, ':')) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *) ret;
                a->sin6_family = AF_INET6;
                a->sin6_port = htons((uint16_t) port);
                if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
                        return -EINVAL;
                *ret_len = sizeof(*a);
        } else {
                struct sockaddr_in *a = (struct sockaddr_in *) ret;
                a->sin_family = AF_INET;
                a->sin_port = htons((uint16_t) port);
                if (inet_pton(AF_INET, streq(host, "localhost") ? "127.0.0.1" : host, &a->sin_addr) != 1)
                        return -EINVAL;
                *ret_len = sizeof(*a);
        }
        return 0;
}

/* A listening socket with SO_REUSEPORT, so that every worker can have its own on the same
 * address and the kernel spreads connections among them. */
static int open_listen_socket(const struct sockaddr_storage *sa, socklen_t len) {
        _cleanup_close_ int fd = -EBADF;
        int one = 1;

        fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
                return -errno;
        if (bind(fd, (const struct sockaddr *) sa, len) < 0)
                return -errno;
        if (listen(fd, 1024) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static void flush_cb(evutil_socket_t fd, short what, void *userdata) {
        Worker *w = userdata;

        if (audit_flush(w->server->audit) < 0)
                metrics_audit_failure(w->server->metrics, w->index);
}

static Worker *worker_free(Worker *w) {
        if (!w)
                return NULL;
        /* Requests still held belong to connections that evhttp_free() closes below: their
         * close callbacks must not find the watch or login freed here. */
        while (w->watches) {
                watch_forget_connection(w->watches);
                watch_free(w->watches);
        }
        w->watch_index = watch_index_free(w->watch_index);
        strv_free(w->changed_ids);
        pthread_mutex_destroy(&w->changes_lock);
        if (w->fanout_event)
                event_free(w->fanout_event);
        if (w->stop_event)
                event_free(w->stop_event);
        /* The login threads are gone: every job is back in the inbox. */
        worker_drain_logins(w);
        while (w->logins) {
                pending_login_forget_connection(w->logins);
                pending_login_free(w->logins);
        }
        pthread_mutex_destroy(&w->inbox_lock);
        /* evhttp_free() frees the listeners before the connections, whose release would
         * otherwise try to re-enable them. */
        w->n_bound = 0;
        if (w->http)
                evhttp_free(w->http);
        if (w->notify_event)
                event_free(w->notify_event);
        if (w->poll_event)
                event_free(w->poll_event);
        change_feed_free(w->feed);
        if (w->flush_event)
                event_free(w->flush_event);
        if (w->resolve_event)
                event_free(w->resolve_event);
        if (w->base)
                event_base_free(w->base);
        safe_close(w->notify_fd);
        key_cache_free(w->cache);
        store_free(w->store);
        free(w);
        return NULL;
}

static int worker_new(Server *s, size_t index, const int *fds, size_t n_fds, Worker **ret) {
        const ServerConfig *c = s->config;
        struct timeval poll_tv = {
                .tv_sec = (time_t) (c->poll_interval_usec / USEC_PER_SEC),
                .tv_usec = (suseconds_t) (c->poll_interval_usec % USEC_PER_SEC),
        };
        struct timeval idle = {
                .tv_sec = (time_t) (c->idle_timeout_usec / USEC_PER_SEC),
                .tv_usec = (suseconds_t) (c->idle_timeout_usec % USEC_PER_SEC),
        };
        Worker *w;
        int r;

        w = calloc(1, sizeof(Worker));
        if (!w)
                return -ENOMEM;
        w->server = s;
        w->index = index;
        w->notify_fd = -EBADF;
        w->listening = true;
        (void) pthread_mutex_init(&w->inbox_lock, NULL);
        (void) pthread_mutex_init(&w->changes_lock, NULL);
        w->watch_index = watch_index_new();
        if (!w->watch_index) {
                worker_free(w);
                return log_oom();
        }

        r = store_open_existing(c->db, &w->store);
        if (r < 0) {
                _cleanup_free_ char *shown = NULL;

                worker_free(w);
                return log_error_errno(
                        r, "Failed to open the store '%s': %m", store_url_display(c->db, &shown));
        }
        (void) store_change_counter(w->store, &w->change_counter);
        w->cache = key_cache_new();
        if (!w->cache) {
                worker_free(w);
                return log_oom();
        }
        w->api = (Api){
                .store = w->store,
                .cryptor = s->cryptor,
                .default_acl = &s->default_acl,
                .hostname = s->hostname,
                .cache = w->cache,
                .generation = &s->generation,
        };

        w->base = event_base_new();
        w->http = w->base ? evhttp_new(w->base) : NULL;
        w->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (!w->http || w->notify_fd < 0) {
                worker_free(w);
                return -ENOMEM;
        }
        w->notify_event = event_new(w->base, w->notify_fd, EV_READ | EV_PERSIST, notify_cb, w);
        w->poll_event = event_new(w->base, -1, EV_PERSIST, poll_cb, w);
        w->flush_event = evtimer_new(w->base, flush_cb, w);
        w->resolve_event = event_new(w->base, -1, 0, resolve_cb, w);
        w->fanout_event = evtimer_new(w->base, fanout_cb, w);
        if (!w->notify_event || !w->poll_event || !w->flush_event || !w->resolve_event || !w->fanout_event ||
            event_add(w->notify_event, NULL) < 0 || event_add(w->poll_event, &poll_tv) < 0) {
                worker_free(w);
                return -ENOMEM;
        }
        r = change_feed_new(w->base, c->db, worker_store_changed, w, &w->feed);
        if (r < 0 && r != -EOPNOTSUPP) {
                worker_free(w);
                return log_error_errno(r, "Failed to set up the store's change notifications: %m");
        }

        evhttp_set_bevcb(w->http, make_bufferevent, w);
        evhttp_set_gencb(w->http, request_cb, w);
        evhttp_set_max_body_size(w->http, (ev_ssize_t) c->max_body_size);
        evhttp_set_max_headers_size(w->http, (ev_ssize_t) c->max_header_size);
        evhttp_set_timeout_tv(w->http, &idle);
        evhttp_set_allowed_methods(
                w->http,
                EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                        EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
        /* CONNECT and TRACE come to request_cb() too, to be refused with the envelope and
         * their connections closed (evhttp's own 501 left a CONNECT's open). */

        for (size_t i = 0; i < n_fds; i++) {
                w->bound[i] = evhttp_accept_socket_with_handle(w->http, fds[i]);
                if (!w->bound[i]) {
                        safe_close(fds[i]);
                        worker_free(w);
                        return -EIO;
                }
                w->n_bound++;
        }

        *ret = w;
        return 0;
}

static void *worker_main(void *userdata) {
        Worker *w = userdata;
        sigset_t all;

        /* Signals belong to the main thread. */
        sigfillset(&all);
        (void) pthread_sigmask(SIG_BLOCK, &all, NULL);
        (void) event_base_dispatch(w->base);
        /* The audit buffer is per thread: what this one holds goes out before it ends. */
        (void) audit_flush(w->server->audit);
        return NULL;
}

/* Leave the loop STOP_GRACE_USEC after the stop began, or later once the answers to the
 * held watches are all written, but never past STOP_MAX_USEC. */
static void stop_check_cb(evutil_socket_t fd, short what, void *userdata) {
        Worker *w = userdata;
        uint64_t elapsed = now_usec(CLOCK_MONOTONIC) - w->stop_usec;

        if ((elapsed >= STOP_GRACE_USEC && w->stop_pending == 0) || elapsed >= STOP_MAX_USEC)
                (void) event_base_loopexit(w->base, NULL);
}

static void worker_stop(Worker *w) {
        struct timeval tick = {.tv_sec = 0, .tv_usec = STOP_CHECK_USEC};

        /* Stop accepting, answer held watches with "nothing changed" (the agents go to
         * another server at once), give replies in flight a moment to be written, then
         * leave the loop. */
        if (w->stopping)
                return;
        w->stopping = true;
        w->stop_usec = now_usec(CLOCK_MONOTONIC);
        for (size_t i = 0; i < w->n_bound; i++)
                (void) evconnlistener_disable(evhttp_bound_socket_get_listener(w->bound[i]));
        while (w->watches)
                (void) watch_answer(w->watches, WATCH_NOTHING_CHANGED, 0);
        worker_stop_logins(w);
        w->stop_event = event_new(w->base, -1, EV_PERSIST, stop_check_cb, w);
        if (!w->stop_event || event_add(w->stop_event, &tick) < 0) {
                struct timeval grace = {.tv_sec = 0, .tv_usec = STOP_GRACE_USEC};

                (void) event_base_loopexit(w->base, &grace);
        }
}

static void signal_cb(evutil_socket_t sig, short what, void *userdata) {
        Server *s = userdata;

        if (sig == SIGHUP) {
                SSL_CTX *ctx, *old;
                int r;

                log_info("Reloading: reopening the audit log and the TLS certificates.");
                r = audit_reopen(s->audit);
                if (r < 0)
                        log_warning_errno(r, "Failed to reopen the audit log, ignoring: %m");
                r = tls_server_ctx_new(s->config->tls_cert, s->config->tls_key, &ctx);
                if (r < 0)
                        log_warning_errno(
                                r, "Failed to reload the TLS certificate, keeping the old one: %m");
                else {
                        old = atomic_exchange(&s->ssl_ctx, ctx);
                        /* Live connections hold their own references. After many reloads the
                         * oldest retired context has long been out of anyone's hands. */
                        if (s->n_retired_ctx == ELEMENTSOF(s->retired_ctx)) {
                                SSL_CTX_free(s->retired_ctx[0]);
                                memmove(s->retired_ctx,
                                        s->retired_ctx + 1,
                                        sizeof(s->retired_ctx) - sizeof(SSL_CTX *));
                                s->n_retired_ctx--;
                        }
                        s->retired_ctx[s->n_retired_ctx++] = old;
                }
                return;
        }

        log_info("Received SIG%s, finishing requests in flight.", sig == SIGTERM ? "TERM" : "INT");
        atomic_store(&s->stopping, true);
        (void) sd_notify(0, "STOPPING=1");
        /* Each worker sees the flag when its eventfd wakes it: event bases are never touched
         * from another thread. */
        server_notify_change(s);
}

static int write_ready_file(Server *s) {
        _cleanup_buf_ Buf b = BUF_INIT;

        for (size_t i = 0; i < s->n_listen_fds; i++) {
                struct sockaddr_storage sa;
                socklen_t len = sizeof(sa);
                char host[INET6_ADDRSTRLEN];
                uint16_t port;

                if (getsockname(s->listen_fds[i], (struct sockaddr *) &sa, &len) < 0)
                        return -errno;
                if (sa.ss_family == AF_INET6) {
                        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *) &sa;
                        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
                        port = ntohs(a->sin6_port);
                        (void) buf_printf(&b, "[%s]:%u\n", host, port);
                } else {
                        const struct sockaddr_in *a = (const struct sockaddr_in *) &sa;
                        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
                        port = ntohs(a->sin_port);
                        (void) buf_printf(&b, "%s:%u\n", host, port);
                }
        }
        if (b.error < 0)
                return b.error;
        return write_file_atomic(s->config->ready_file, b.data, b.len, 0644);
}

int server_run(Server *s) {
        const ServerConfig *c = s->config;
        struct event_base *main_base = NULL;
        struct event *sig[3] = {};
        size_t n_addrs = 0;
        int r = 0;

        if (conn_ex_index < 0) {
                conn_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_free_ex);
                if (conn_ex_index < 0)
                        return -ENOMEM;
        }

        /* The first worker's sockets fix the port (":0" picks one); the others bind to it. */
        n_addrs = strv_length(c->listen);
        if (n_addrs == 0 || n_addrs > ELEMENTSOF(s->listen_fds))
                return log_error_errno(
                        EINVAL, "Give between 1 and %zu --listen addresses.", ELEMENTSOF(s->listen_fds));

        s->workers = calloc(c->workers, sizeof(Worker *));
        if (!s->workers)
                return log_oom();
        (void) pthread_mutex_init(&s->write_lock, NULL);
        r = conn_limit_new(c->max_connections_per_address, c->connection_limit_exempt, &s->conn_limit);
        if (r < 0) {
                free(s->workers);
                s->workers = NULL;
                return log_error_errno(r, "Failed to set up the per-address connection limit: %m");
        }
        r = login_new(c->pam_service ?: "keyward", &s->login);
        if (r < 0) {
                s->conn_limit = conn_limit_free(s->conn_limit);
                free(s->workers);
                s->workers = NULL;
                return log_error_errno(r, "Failed to start the login threads: %m");
        }

        for (size_t wi = 0; wi < c->workers; wi++) {
                int fds[16];

                for (size_t i = 0; i < n_addrs; i++) {
                        struct sockaddr_storage sa;
                        socklen_t len;

                        if (wi == 0) {
                                r = parse_listen(c->listen[i], &sa, &len);
                                if (r < 0) {
                                        log_error_errno(r, "Invalid listen address '%s'.", c->listen[i]);
                                        goto finish;
                                }
                        } else {
                                len = sizeof(sa);
                                if (getsockname(s->listen_fds[i], (struct sockaddr *) &sa, &len) < 0) {
                                        r = log_error_errno(errno, "getsockname() failed: %m");
                                        goto finish;
                                }
                        }
                        fds[i] = open_listen_socket(&sa, len);
                        if (fds[i] < 0) {
                                r = log_error_errno(fds[i], "Failed to listen on '%s': %m", c->listen[i]);
                                goto finish;
                        }
                        if (wi == 0)
                                s->listen_fds[s->n_listen_fds++] = fds[i];
                }
                r = worker_new(s, wi, fds, n_addrs, &s->workers[wi]);
                if (r < 0)
                        goto finish;
                s->n_workers++;
        }

        main_base = event_base_new();
        if (!main_base) {
                r = log_oom();
                goto finish;
        }
        sig[0] = evsignal_new(main_base, SIGTERM, signal_cb, s);
        sig[1] = evsignal_new(main_base, SIGINT, signal_cb, s);
        sig[2] = evsignal_new(main_base, SIGHUP, signal_cb, s);
        for (size_t i = 0; i < ELEMENTSOF(sig); i++)
                if (!sig[i] || evsignal_add(sig[i], NULL) < 0) {
                        r = log_oom();
                        goto finish;
                }

        for (size_t i = 0; i < s->n_workers; i++)
                if (pthread_create(&s->workers[i]->thread, NULL, worker_main, s->workers[i]) != 0) {
                        r = log_error_errno(EAGAIN, "Failed to start worker threads.");
                        goto finish;
                }

        if (c->ready_file) {
                r = write_ready_file(s);
                if (r < 0)
                        log_warning_errno(r, "Failed to write '%s', ignoring: %m", c->ready_file);
        }
        log_info("keywardd ready: %zu worker(s) on %zu address(es).", s->n_workers, n_addrs);
        (void) sd_notify(0, "READY=1\nSTATUS=Serving");

        while (!atomic_load(&s->stopping))
                (void) event_base_loop(main_base, EVLOOP_ONCE);

        for (size_t i = 0; i < s->n_workers; i++)
                (void) pthread_join(s->workers[i]->thread, NULL);
        r = 0;

finish:
        for (size_t i = 0; i < ELEMENTSOF(sig); i++)
                if (sig[i])
                        event_free(sig[i]);
        if (main_base)
                event_base_free(main_base);
        /* Before the workers: a login thread may still be handing a job to one. */
        s->login = login_free(s->login);
        for (size_t i = 0; i < s->n_workers; i++)
                s->workers[i] = worker_free(s->workers[i]);
        free(s->workers);
        s->workers = NULL;
        s->n_workers = 0;
        /* After the workers: their connections gave back what they counted. */
        s->conn_limit = conn_limit_free(s->conn_limit);
        return r;
}
