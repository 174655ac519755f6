/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The HTTPS front's workers: one event loop per thread, each with its own evhttp on its own
 * SO_REUSEPORT listening sockets and its own store connection; the store's change poll and
 * notifications, the signals (SIGHUP reloads the TLS context and the audit log), the ready
 * file, and the stop. */

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

#include "config.h"
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

#if HAVE_VALGRIND_VALGRIND_H
#        include <valgrind/valgrind.h>
#endif

#define STOP_GRACE_USEC (200 * USEC_PER_MSEC)
#define STOP_MAX_USEC (5 * USEC_PER_SEC)
#define STOP_CHECK_USEC 10000
#define TOKEN_SWEEP_USEC (3600 * USEC_PER_SEC)
#define TOKEN_KEEP_EXPIRED_NSEC (INT64_C(24) * 3600 * 1000000000) /* they still say "expired" */

void worker_listen(Worker *w, bool on) {
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
                        server_keys_changed(s, w->index, CHANGE_ONE_WORKER, NULL, 0);
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
 * alone. This worker's own listener told it alone: the other workers have listeners of
 * their own. */
static void worker_store_changed(const char *id, uint64_t counter, void *userdata) {
        Worker *w = userdata;

        if (!id) {
                w->notified_counter = 0; /* believe nothing heard before: the poll decides */
                worker_poll_changes(w);
                return;
        }
        server_keys_changed(w->server, w->index, CHANGE_ONE_WORKER, (char *const[]){(char *) id}, 1);
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

/* Connections the kernel queues per listening socket before the worker accepts them. A
 * restarted keywardd meets its whole fleet at once: a short queue drops their SYNs, and each
 * agent then waits out TCP's retransmission (1 s, then 3 s...). The kernel caps it at
 * net.core.somaxconn (4096 since Linux 5.4). */
#define LISTEN_BACKLOG 65535

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
        if (listen(fd, LISTEN_BACKLOG) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static void flush_cb(evutil_socket_t fd, short what, void *userdata) {
        Worker *w = userdata;

        if (audit_flush(w->server->audit) < 0)
                metrics_audit_failure(w->server->metrics, w->index);
}

static void held_cb(evutil_socket_t fd, short what, void *userdata) {
        exchange_send_held(userdata);
}

/* Whether a stopping keywardd leaves its connections to the exit: freeing 10,000 of them one
 * by one (each with its TLS session and the client's certificate) took most of the time from
 * SIGTERM to exit, and the kernel closes their sockets at exit anyway. Under a sanitizer or
 * valgrind every connection is freed as before, so that their leak checks stay meaningful. */
bool worker_exit_keeps_connections(void) {
#if defined(__SANITIZE_ADDRESS__)
        return false;
#elif defined(__has_feature)
#        if __has_feature(address_sanitizer)
        return false;
#        endif
#endif
#if HAVE_VALGRIND_VALGRIND_H
        if (RUNNING_ON_VALGRIND)
                return false;
#endif
        return true;
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
        worker_free_logins(w);
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
        if (w->held_event)
                event_free(w->held_event);
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

/* A worker's loop with epoll's changes batched per pass: evhttp turns a connection's read and
 * write interest off and on around each request, and batched, those turns cost one
 * epoll_ctl() per pass instead of four per request. libevent warns that a descriptor closed
 * while a duplicate (or a child) keeps its socket open then stays in the epoll set: keywardd
 * duplicates none (the linger after a refused request line holds the connection's bufferevent
 * instead, server-exchange.c), and forks only the key holder, before any connection. */
DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(struct event_config *, event_config_free, NULL);

static struct event_base *worker_base_new(void) {
        _cleanup_(event_config_freep) struct event_config *cfg = event_config_new();

        if (!cfg || event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) < 0)
                return NULL;
        return event_base_new_with_config(cfg);
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

        w->base = worker_base_new();
        w->http = w->base ? evhttp_new(w->base) : NULL;
        w->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (!w->http || w->notify_fd < 0) {
                worker_free(w);
                return -ENOMEM;
        }
        w->notify_event = event_new(w->base, w->notify_fd, EV_READ | EV_PERSIST, notify_cb, w);
        w->poll_event = event_new(w->base, -1, EV_PERSIST, poll_cb, w);
        w->flush_event = evtimer_new(w->base, flush_cb, w);
        w->held_tail = &w->held;
        w->held_event = event_new(w->base, -1, 0, held_cb, w);
        if (!w->held_event) {
                worker_free(w);
                return -ENOMEM;
        }
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
        /* Answers held for their lines: out with both (evhttp_free() closes their connections). */
        exchange_send_held(w);
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

void worker_stop(Worker *w) {
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
                                memmove(s->retired_ctx, s->retired_ctx + 1,
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
        server_keys_changed(s, SIZE_MAX, CHANGE_EVERY_WORKER, NULL, 0);
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

        r = conn_setup();
        if (r < 0)
                return r;

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
        if (r >= 0 && atomic_load(&s->stopping) && worker_exit_keeps_connections()) {
                /* Stopped: the workers and their connections are left to the exit; only the
                 * stores are closed (SQLite checkpoints its log, PostgreSQL says goodbye). */
                for (size_t i = 0; i < s->n_workers; i++) {
                        s->workers[i]->feed = change_feed_free(s->workers[i]->feed);
                        s->workers[i]->store = store_free(s->workers[i]->store);
                }
                return r;
        }
        for (size_t i = 0; i < s->n_workers; i++)
                s->workers[i] = worker_free(s->workers[i]);
        free(s->workers);
        s->workers = NULL;
        s->n_workers = 0;
        /* After the workers: their connections gave back what they counted. */
        s->conn_limit = conn_limit_free(s->conn_limit);
        return r;
}
