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
#include "server-http.h"

#define LOGIN_FAIL_DELAY_USEC (1 * USEC_PER_SEC)
#define LOGIN_USER_MAX 256
#define LOGIN_PASSWORD_MAX 4096
#define LOGIN_RHOST_MAX 253

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
void login_start(Exchange *x) {
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
void worker_stop_logins(Worker *w) {
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

/* With the worker: the login threads are gone, so every job is back in the inbox. */
void worker_free_logins(Worker *w) {
        worker_drain_logins(w);
        while (w->logins) {
                pending_login_forget_connection(w->logins);
                pending_login_free(w->logins);
        }
}
