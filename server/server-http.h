/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The HTTPS front's own interfaces, shared by its files and by no one else:
 *   server-worker.c        the loops, listening sockets, signals, change poll, stop
 *   server-conn.c          a connection (Conn): its count, deadline, framing check
 *   server-exchange.c      one request and its answer, audit line and metrics
 *   server-watch.c         held watches and the fan-out after a change
 *   server-list-stream.c   the whole key list, streamed
 *   server-pending-login.c a password login while PAM checks it */

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <pthread.h>

#include "form.h"
#include "list.h"
#include "server-api.h"
#include "server-auth.h"
#include "server-changes.h"
#include "server-login.h"
#include "server-conn-limit.h"
#include "server-request.h"
#include "server.h"
#include "watch-index.h"

#define PEER_ADDR_MAX (INET6_ADDRSTRLEN + 8)

typedef struct Watch Watch;
typedef struct PendingLogin PendingLogin;
typedef struct Conn Conn;
typedef struct HeldReply HeldReply;

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
        HeldReply *held;          /* answers with key data waiting for their audit lines (FIFO) */
        HeldReply **held_tail;
        struct event *held_event; /* writes the lines of the pass in one go, then sends them */
};

/* A held GET /v0/keys/?id=hash... with Prefer: wait=N. */
struct Watch {
        Worker *worker;
        struct evhttp_request *req;
        Form query;
        struct event *timeout;
        struct event *peer; /* the client's end closing while the watch waits (server-watch.c) */
        int64_t started_ns;
        char *remote_addr;
        Principals principals;
        WatchLink **links; /* one per key of the query, in order of first appearance */
        size_t n_links;
        bool due;
        LIST_FIELDS(Watch, due);
        LIST_FIELDS(Watch, watches);
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
        LIST_FIELDS(Conn, unresolved);
};

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

/* How a held watch is answered. */
typedef enum WatchAnswer {
        WATCH_IF_CHANGED,      /* after a change: only when one of its keys differs */
        WATCH_ALWAYS,          /* its wait is over: what differs, maybe nothing */
        WATCH_NOTHING_CHANGED, /* the server stops: [] at once, so the agent goes elsewhere */
} WatchAnswer;

/* server-worker.c */
void worker_listen(Worker *w, bool on);
void worker_stop(Worker *w);
bool worker_exit_keeps_connections(void);

/* server-conn.c */
int conn_setup(void);
void resolve_cb(evutil_socket_t fd_unused, short what, void *userdata);
struct bufferevent *make_bufferevent(struct event_base *base, void *userdata);
void conn_arm_deadline(Conn *c);
Conn *request_conn(struct evhttp_request *req, SSL **ret_ssl);
void peer_address(struct evhttp_request *req, char ret[static PEER_ADDR_MAX]);
void conn_prepare(Conn *c, struct evhttp_request *req, SSL *ssl);

/* server-exchange.c */
void exchange_done(Exchange *x);
void exchange_audit(Exchange *x, const ApiResult *res, const char *route);
/* Write the audit lines the worker's held answers wait for, in one write, then send the
 * answers (or, failing closed, Knox's "audit log unavailable" instead). */
void exchange_send_held(Worker *w);
void exchange_reply(Exchange *x, ApiResult *res, const char *route);
void reply_error(Exchange *x, KnoxCode code, int http_status, const char *route, const char *fmt, ...)
        _printf_(5, 6);
void request_cb(struct evhttp_request *req, void *userdata);

/* server-watch.c */
void watch_free(Watch *wa);
void watch_forget_connection(Watch *wa);
bool watch_answer(Watch *wa, WatchAnswer how, uint64_t pass);
void fanout_arm(Worker *w);
void fanout_cb(evutil_socket_t fd, short what, void *userdata);
int watch_start(Exchange *x, unsigned wait_sec);

/* server-pending-login.c */
void login_start(Exchange *x);
void worker_drain_logins(Worker *w);
void worker_stop_logins(Worker *w);
void worker_free_logins(Worker *w);

/* server-list-stream.c */
int list_stream_start(Exchange *x);
