/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-changes.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"
#include "random-util.h"

struct ChangeFeed {
        struct event_base *base;
        StoreListener *listener;
        StoreChangeFunc f;
        void *userdata;
        struct event *io;    /* on the listener's socket (it changes with each connection) */
        struct event *retry; /* the next attempt after a failure */
        uint64_t delay_usec;
        bool up;
        bool logged_down; /* "lost" was logged: log the next "up" too */
};

static void feed_step(ChangeFeed *c);

static void feed_io_cb(evutil_socket_t fd, short what, void *userdata) {
        ChangeFeed *c = userdata;
        int r;

        if (!c->up) {
                feed_step(c);
                return;
        }
        r = store_listener_dispatch(c->listener, c->f, c->userdata);
        if (r < 0) {
                log_warning(
                        "Lost the store's change notifications; polling for changes until they are back.");
                c->logged_down = true;
                c->up = false;
                feed_step(c);
        }
}

static void feed_retry_cb(evutil_socket_t fd, short what, void *userdata) {
        feed_step(userdata);
}

static void feed_schedule_retry(ChangeFeed *c) {
        uint64_t jitter = 0, d;
        struct timeval tv;

        /* Somewhere in [delay/2, delay], so that the workers of many servers cut off at
         * once do not come back all at once. */
        (void) random_bytes(&jitter, sizeof(jitter));
        d = c->delay_usec / 2 + jitter % (c->delay_usec / 2 + 1);
        tv = (struct timeval){
                .tv_sec = (time_t) (d / USEC_PER_SEC), .tv_usec = (suseconds_t) (d % USEC_PER_SEC)};
        c->delay_usec = MIN(c->delay_usec * 2, CHANGE_FEED_RETRY_MAX_USEC);
        (void) evtimer_add(c->retry, &tv);
}

/* Connect, or carry on connecting, and wait for what the listener needs next. */
static void feed_step(ChangeFeed *c) {
        bool want_write = false;
        int fd = -EBADF, r;

        if (c->io) {
                event_free(c->io);
                c->io = NULL;
        }
        r = store_listener_connect(c->listener, &fd, &want_write);
        if (r < 0) {
                if (!c->logged_down)
                        log_warning_errno(
                                r,
                                "Cannot listen for the store's change notifications, polling for changes meanwhile: %m");
                c->logged_down = true;
                feed_schedule_retry(c);
                return;
        }
        c->io = event_new(
                c->base, fd, (want_write ? EV_WRITE : EV_READ) | (r > 0 ? EV_PERSIST : 0), feed_io_cb, c);
        if (!c->io || event_add(c->io, NULL) < 0) {
                log_oom();
                feed_schedule_retry(c);
                return;
        }
        if (r > 0) {
                c->up = true;
                c->delay_usec = CHANGE_FEED_RETRY_MIN_USEC;
                if (c->logged_down)
                        log_info("The store's change notifications are back.");
                c->logged_down = false;
                /* What changed while nobody listened: the caller looks at the counter. */
                c->f(NULL, 0, c->userdata);
        }
}

int change_feed_new(
        struct event_base *base, const char *url, StoreChangeFunc f, void *userdata, ChangeFeed **ret) {
        _cleanup_(change_feed_freep) ChangeFeed *c = NULL;
        int r;

        c = calloc(1, sizeof(ChangeFeed));
        if (!c)
                return -ENOMEM;
        c->base = base;
        c->f = f;
        c->userdata = userdata;
        c->delay_usec = CHANGE_FEED_RETRY_MIN_USEC;
        r = store_listener_new(url, &c->listener);
        if (r < 0)
                return r;
        c->retry = evtimer_new(base, feed_retry_cb, c);
        if (!c->retry)
                return -ENOMEM;
        feed_step(c);
        *ret = TAKE_PTR(c);
        return 0;
}

ChangeFeed *change_feed_free(ChangeFeed *c) {
        if (!c)
                return NULL;
        if (c->io)
                event_free(c->io);
        if (c->retry)
                event_free(c->retry);
        store_listener_free(c->listener);
        free(c);
        return NULL;
}

bool change_feed_up(const ChangeFeed *c) {
        return c && c->up;
}
