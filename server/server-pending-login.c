/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* POST /v0/auth/login/ on a worker: the job handed to the login threads (server-login.c),
 * held until it comes back, and its answer (a token, or a failure a second late). */

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
#include "api-login.h"
#include "server-http.h"

#define LOGIN_FAIL_DELAY_USEC (1 * USEC_PER_SEC)

/* A POST /v0/auth/login/ while a login thread checks it, and then, for a failure, while its
 * answer waits out LOGIN_FAIL_DELAY_USEC. */
struct PendingLogin {
        Worker *worker;
        Exchange x;       /* moved out of request_cb; x.req is NULL once the client left */
        bool with_thread; /* the job is out: the login threads will give it back */
        ApiResult res;    /* a failure's answer, while it waits */
        struct event *delay;
        LIST_FIELDS(PendingLogin, logins);
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

        LIST_REMOVE(logins, w->logins, p);
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

static void login_finish(LoginJob *j) {
        _cleanup_(login_job_freep) LoginJob *job = j;
        PendingLogin *p = job->userdata;
        Worker *w = p->worker;
        ApiResult res = API_RESULT_INIT;
        int r;

        p->with_thread = false;
        if (!p->x.req) {
                pending_login_free(p);
                return;
        }

        r = api_login_finish(&w->api, j, w->server->config->login_ttl_usec, now_nsec(CLOCK_REALTIME), &res);
        if (r < 0)
                metrics_store_error(w->server->metrics, w->index);

        /* Failures are answered a second late, without holding a thread: guessing is slow. */
        if (r > 0 && !atomic_load(&w->server->stopping)) {
                struct timeval tv = {.tv_sec = LOGIN_FAIL_DELAY_USEC / USEC_PER_SEC};

                p->res = res;
                p->delay = evtimer_new(w->base, login_delay_cb, p);
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
void worker_drain_logins(Worker *w) {
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

/* POST /v0/auth/login/: no authentication; the route (api-login.c) makes the job, which
 * goes to the login threads, and the request is held until it comes back. */
void login_start(Exchange *x) {
        Worker *w = x->worker;
        _cleanup_(login_job_freep) LoginJob *j = NULL;
        const PeerCert *peer = x->conn ? x->conn->peer : NULL;
        ApiResult res = API_RESULT_INIT;
        PendingLogin *p;
        int r;

        r = api_login_begin(
                &(ApiLogin){
                        .form = x->form_ok ? &x->form : NULL,
                        .remote_addr = x->remote_addr,
                        .machine_names = peer && peer_cert_verified(peer) ? peer_cert_dns_names(peer) : NULL,
                },
                &j, &res);
        if (r < 0 || !j) {
                if (r < 0)
                        (void) api_result_error(&res, KNOX_INTERNAL_SERVER_ERROR, "Out of memory");
                exchange_reply(x, &res, "login");
                api_result_done(&res);
                return;
        }

        p = calloc(1, sizeof(PendingLogin));
        if (!p) {
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
                        "Refusing a login as '%s' from %s: %s.", LOG_NAME(j->user), LOG_NAME(j->source),
                        r == -EBUSY ? "its place in the queue is taken (by its source, its user, or all)" :
                                      strerror(-r));
                reply_error(
                        x, KNOX_INTERNAL_SERVER_ERROR, 503, "login",
                        "Too many logins in progress, try again later");
                return;
        }
        TAKE_PTR(j);
        LIST_PREPEND(logins, w->logins, p);
        evhttp_connection_set_closecb(evhttp_request_get_connection(p->x.req), login_closed_cb, p);
}

/* At shutdown: answer the logins still out, and those waiting to give their failure. */
void worker_stop_logins(Worker *w) {
        PendingLogin *p, *next;

        LIST_FOREACH_SAFE(logins, p, next, w->logins) {
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

/* With the worker: the login threads are gone, so every job is back in the inbox. */
void worker_free_logins(Worker *w) {
        worker_drain_logins(w);
        while (w->logins) {
                pending_login_forget_connection(w->logins);
                pending_login_free(w->logins);
        }
}
