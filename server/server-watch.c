/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Held watches (GET /v0/keys/?id=hash... with Prefer: wait=N), indexed by key id, and the
 * fan-out that answers them after a key changed. */

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

/* Watches answered per pass of the loop, so that the first answers go out while the rest
 * are looked at, and other connections get their turn. */
#define FANOUT_BATCH 256
/* A watch's answer is a few hundred bytes; one that is larger goes the usual way. */
#define WRITE_NOW_MAX 16384

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

void watch_free(Watch *wa) {
        Worker *w = wa->worker;

        LIST_REMOVE(watches, w->watches, wa);
        if (wa->due)
                LIST_REMOVE(due, w->due, wa);
        watch_unindex(wa);
        metrics_watchers_add(w->server->metrics, w->index, -1);
        if (wa->timeout)
                event_free(wa->timeout);
        if (wa->peer)
                event_free(wa->peer);
        form_done(&wa->query);
        principals_done(&wa->principals);
        free(wa->remote_addr);
        free(wa);
}

/* The client's connection no longer calls back into the watch. */
void watch_forget_connection(Watch *wa) {
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

/* Write an answer evhttp has just queued on bev to the socket at once, head and body in one
 * TLS record and one write(2), instead of waiting for the loop to find the socket writable
 * and then writing the head and the body (separate chains of the output buffer) as two
 * records. Only for a watch's answer (key ids, never key data: the output buffer's copy is
 * not wiped), and only when nothing was queued before it. Once the socket has taken it
 * all, the bufferevent's write callback is run as the loop would have run it (deferred), so
 * evhttp finishes the request as usual. Anything short of that leaves what is still queued
 * to the loop, which writes it as it would have. */
static bool answer_write_now(struct bufferevent *bev, bool finish) {
        struct evbuffer *out = bufferevent_get_output(bev);
        size_t len = evbuffer_get_length(out);
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        unsigned char *p;
        int n;

        if (!ssl || len == 0 || len > WRITE_NOW_MAX)
                return false;
        p = evbuffer_pullup(out, -1);
        if (!p)
                return false;
        ERR_clear_error();
        n = SSL_write(ssl, p, (int) len);
        if (n <= 0) {
                /* Retried by the loop with the same bytes, as OpenSSL wants; errors are
                 * met again there, and handled as evhttp handles them. */
                ERR_clear_error();
                return false;
        }
        (void) evbuffer_drain(out, (size_t) n);
        if ((size_t) n < len)
                return false;
        if (finish)
                (void) bufferevent_trigger(bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
        return true;
}

/* Answer a held watch, or leave it held (returns false) when how is WATCH_IF_CHANGED and
 * none of its keys differs. pass: see watch_list_changed(). */
bool watch_answer(Watch *wa, WatchAnswer how, uint64_t pass) {
        Worker *w = wa->worker;
        struct evhttp_connection *evcon = evhttp_request_get_connection(wa->req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        bool write_now = bev && evbuffer_get_length(bufferevent_get_output(bev)) == 0;
        ApiResult res = API_RESULT_INIT;
        Exchange x = {
                .worker = w,
                .req = wa->req,
                .method = "GET",
                .started_usec = now_usec(CLOCK_MONOTONIC),
                .now_ns = now_nsec(CLOCK_REALTIME),
        };
        bool exiting = how == WATCH_NOTHING_CHANGED && worker_exit_keeps_connections();
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
        /* At the stop, an answer the socket has taken leaves its connection as it is until
         * the process exits (worker_exit_keeps_connections()): nothing more is read from it,
         * and evhttp never frees it one by one. */
        if (write_now && answer_write_now(bev, !exiting) && exiting) {
                (void) bufferevent_disable(bev, EV_READ | EV_WRITE);
                if (x.conn && x.conn->stop_answer) {
                        x.conn->stop_answer = false;
                        w->stop_pending--;
                }
        }
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

/* The client's end of a waiting watch. evhttp reads nothing from a connection while its request
 * is ours, so a client that died (its end closed with a FIN, or reset) would otherwise keep
 * the connection, its TLS state and the watch until the watch's time is up (--max-watch, up
 * to 300 s), in CLOSE_WAIT. EV_CLOSED is epoll's EPOLLRDHUP; a reset or an error comes as
 * EV_READ, as do bytes the client sent ahead of the answer, which evhttp reads after it:
 * those leave the watch as it is, and only the close is looked for from then on. */
static void watch_peer_cb(evutil_socket_t fd, short what, void *userdata) {
        Watch *wa = userdata;
        ssize_t n = 0; /* EV_CLOSED: closed */
        char c;

        if (!(what & EV_CLOSED))
                n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) {
                struct event_base *base = event_get_base(wa->peer);

                (void) event_del(wa->peer);
                if (event_assign(wa->peer, base, fd, EV_CLOSED, watch_peer_cb, wa) < 0 ||
                    event_add(wa->peer, NULL) < 0) {
                        event_free(wa->peer);
                        wa->peer = NULL;
                }
                return;
        }
        /* evhttp_connection_free() calls watch_closed_cb(), which frees wa and this event,
         * then frees the request. */
        log_debug("Watcher %s closed its connection while its watch waited.", strna(wa->remote_addr));
        evhttp_connection_free(evhttp_request_get_connection(wa->req));
}

/* Look for the client's end closing (watch_peer_cb()). Without the event, the watch waits as
 * before. */
static void watch_peer_start(Watch *wa) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(wa->req);
        struct event_base *base = wa->worker->base;
        evutil_socket_t fd;

        if (!evcon || !(event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE))
                return;
        fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
        if (fd < 0)
                return;
        wa->peer = event_new(base, fd, EV_CLOSED | EV_READ, watch_peer_cb, wa);
        if (wa->peer && event_add(wa->peer, NULL) < 0) {
                event_free(wa->peer);
                wa->peer = NULL;
        }
}

static void watch_mark_due(Watch *wa) {
        if (wa->due)
                return;
        wa->due = true;
        LIST_PREPEND(due, wa->worker->due, wa);
}

void fanout_arm(Worker *w) {
        static const struct timeval zero = {};

        /* A timer, not an active event: it runs on the next pass of the loop, after the
         * writes that pass finds ready, so the writer's answer leaves first. */
        (void) evtimer_add(w->fanout_event, &zero);
}

/* The changes others told this worker about: mark the watches on those keys due, then look
 * at them FANOUT_BATCH at a time, one store read per key per pass. */
void fanout_cb(evutil_socket_t fd, short what, void *userdata) {
        Worker *w = userdata;
        _cleanup_strv_free_ char **ids = NULL;
        Watch *wa;
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
                LIST_FOREACH(watches, wa, w->watches)
        watch_mark_due(wa);
        else STRV_FOREACH(id, ids) {
                WatchKey *k = watch_index_find(w->watch_index, *id);

                for (WatchLink *l = k ? k->links : NULL; l; l = l->next)
                        watch_mark_due(l->watch);
        }

        while (w->due && n++ < FANOUT_BATCH) {
                wa = w->due;

                LIST_REMOVE(due, w->due, wa);
                wa->due = false;
                (void) watch_answer(wa, WATCH_IF_CHANGED, w->fanout_pass);
        }
        if (w->due)
                fanout_arm(w);
}

void server_keys_changed(Server *s, size_t origin, ChangeScope scope, char *const *ids, size_t n_ids) {
        const uint64_t one = 1;
        bool one_worker = scope == CHANGE_ONE_WORKER && origin < s->n_workers;

        /* Cached records of those keys are stale: everywhere after a write of ours, or when
         * which keys is unknown; a worker told alone drops its own copies of them. */
        if (!one_worker || !ids)
                atomic_fetch_add(&s->generation, 1);
        else
                for (size_t j = 0; j < n_ids; j++)
                        if (ids[j])
                                key_cache_forget(s->workers[origin]->cache, ids[j]);

        for (size_t i = one_worker ? origin : 0; i < (one_worker ? origin + 1 : s->n_workers); i++) {
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

int watch_start(Exchange *x, unsigned wait_sec) {
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
        LIST_PREPEND(watches, w->watches, wa);
        metrics_watchers_add(w->server->metrics, w->index, +1);
        evhttp_connection_set_closecb(evhttp_request_get_connection(x->req), watch_closed_cb, wa);
        watch_peer_start(wa);
        return 0;
}
