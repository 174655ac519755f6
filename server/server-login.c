/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-login.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "parse.h"
#include "server-pam.h"
#include "strv.h"

#define THROTTLE_SLOTS 1024

typedef struct ThrottleSlot {
        char *key;
        uint64_t window_start_usec;
        unsigned failures;
        unsigned pending; /* attempts with PAM now */
} ThrottleSlot;

/* A small table searched end to end: it is consulted once per login, next to a PAM
 * conversation, and bounded, so that a flood of made-up user names cannot grow it. */
struct LoginThrottle {
        ThrottleSlot slots[THROTTLE_SLOTS];
};

struct Login {
        char *service;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        LoginJob *head, *tail;
        size_t queued;
        bool stopping;
        LoginThrottle *throttle; /* under lock */
        pthread_t threads[LOGIN_THREADS];
        size_t n_threads;
};

LoginJob *login_job_free(LoginJob *j) {
        if (!j)
                return NULL;
        free(j->user);
        secret_free(j->password);
        free(j->source);
        free(j->rhost);
        free(j->canonical_user);
        strv_free(j->groups);
        free(j);
        return NULL;
}

/* ---- the throttle ----------------------------------------------------------------- */

LoginThrottle *login_throttle_new(void) {
        return calloc(1, sizeof(LoginThrottle));
}

LoginThrottle *login_throttle_free(LoginThrottle *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < THROTTLE_SLOTS; i++)
                free(t->slots[i].key);
        free(t);
        return NULL;
}

static bool slot_live(const ThrottleSlot *s, uint64_t now_usec) {
        return s->key && (s->pending > 0 || now_usec - s->window_start_usec < LOGIN_WINDOW_USEC);
}

static ThrottleSlot *throttle_find(LoginThrottle *t, const char *key) {
        for (size_t i = 0; i < THROTTLE_SLOTS; i++)
                if (t->slots[i].key && streq(t->slots[i].key, key))
                        return &t->slots[i];
        return NULL;
}

/* The key's slot, with its window restarted when it lapsed; NULL when the table is full of
 * attempts in flight, or out of memory. */
static ThrottleSlot *throttle_get(LoginThrottle *t, const char *key, uint64_t now_usec) {
        ThrottleSlot *s = throttle_find(t, key), *oldest = NULL;

        if (s) {
                if (now_usec - s->window_start_usec >= LOGIN_WINDOW_USEC) {
                        s->window_start_usec = now_usec;
                        s->failures = 0;
                }
                return s;
        }
        /* A free or lapsed slot, else the one whose window started first. */
        for (size_t i = 0; i < THROTTLE_SLOTS && !s; i++)
                if (!slot_live(&t->slots[i], now_usec))
                        s = &t->slots[i];
                else if (
                        t->slots[i].pending == 0 &&
                        (!oldest || t->slots[i].window_start_usec < oldest->window_start_usec))
                        oldest = &t->slots[i];
        s = s ?: oldest;
        if (!s)
                return NULL;
        free(s->key);
        *s = (ThrottleSlot){.key = strdup(key), .window_start_usec = now_usec};
        return s->key ? s : NULL;
}

unsigned login_throttle_count(LoginThrottle *t, const char *key, uint64_t now_usec) {
        ThrottleSlot *s = throttle_find(t, key);

        if (!s)
                return 0;
        return s->pending + (now_usec - s->window_start_usec < LOGIN_WINDOW_USEC ? s->failures : 0);
}

bool login_throttle_begin(LoginThrottle *t, const char *key, unsigned limit, uint64_t now_usec) {
        ThrottleSlot *s;

        if (login_throttle_count(t, key, now_usec) >= limit)
                return false;
        s = throttle_get(t, key, now_usec);
        if (!s)
                return false; /* nowhere to count it: refuse rather than go uncounted */
        s->pending++;
        return true;
}

void login_throttle_end(LoginThrottle *t, const char *key, LoginOutcome outcome, uint64_t now_usec) {
        ThrottleSlot *s = throttle_find(t, key);

        if (!s)
                return;
        if (s->pending > 0)
                s->pending--;
        if (outcome == LOGIN_OUTCOME_SUCCESS)
                s->failures = 0;
        if (outcome != LOGIN_OUTCOME_FAILURE)
                return;
        if (now_usec - s->window_start_usec >= LOGIN_WINDOW_USEC) {
                s->window_start_usec = now_usec;
                s->failures = 0;
        }
        if (s->failures < UINT32_MAX)
                s->failures++;
}

static uint64_t now_usec_monotonic(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* "user:NAME" and "addr:ADDRESS", so that a user name cannot stand for an address. */
static char *throttle_key(const char *kind, const char *s) {
        char *k = NULL;

        return asprintf(&k, "%s:%s", kind, strempty(s)) < 0 ? NULL : k;
}

/* ---- the threads ------------------------------------------------------------------ */

static void login_run(Login *l, LoginJob *j) {
        _cleanup_free_ char *user_key = throttle_key("user", j->user);
        _cleanup_free_ char *source_key = throttle_key("addr", j->source);
        LoginOutcome outcome;
        int r;

        r = pam_check_password(l->service, j->user, j->password, j->rhost, &j->canonical_user, &j->reason);
        j->password = secret_free(j->password);
        if (r >= 0) {
                r = user_groups(j->canonical_user, &j->groups);
                if (r < 0) {
                        log_warning_errno(r, "Failed to look up the groups of '%s': %m", j->canonical_user);
                        j->reason = "group lookup failed";
                        r = -EHOSTDOWN;
                }
        }
        j->result = r;

        /* A success clears the user's failures; the address keeps its count. Only a refused
         * password is a failure: an unreachable directory is nobody's guess. */
        outcome = r >= 0 ? LOGIN_OUTCOME_SUCCESS : r == -EACCES ? LOGIN_OUTCOME_FAILURE : LOGIN_OUTCOME_NONE;
        pthread_mutex_lock(&l->lock);
        if (user_key)
                login_throttle_end(l->throttle, user_key, outcome, now_usec_monotonic());
        if (source_key)
                login_throttle_end(
                        l->throttle,
                        source_key,
                        outcome == LOGIN_OUTCOME_SUCCESS ? LOGIN_OUTCOME_NONE : outcome,
                        now_usec_monotonic());
        pthread_mutex_unlock(&l->lock);
}

static void *login_main(void *userdata) {
        Login *l = userdata;
        sigset_t all;

        sigfillset(&all);
        (void) pthread_sigmask(SIG_BLOCK, &all, NULL);

        pthread_mutex_lock(&l->lock);
        for (;;) {
                LoginJob *j;

                while (!l->head && !l->stopping)
                        pthread_cond_wait(&l->wake, &l->lock);
                if (l->stopping)
                        break;
                j = l->head;
                l->head = j->next;
                if (!l->head)
                        l->tail = NULL;
                l->queued--;
                j->next = NULL;
                pthread_mutex_unlock(&l->lock);

                login_run(l, j);
                j->done(j);

                pthread_mutex_lock(&l->lock);
        }
        pthread_mutex_unlock(&l->lock);
        return NULL;
}

int login_new(const char *pam_service, Login **ret) {
        Login *l;

        l = calloc(1, sizeof(Login));
        if (!l)
                return -ENOMEM;
        l->service = strdup(pam_service);
        l->throttle = login_throttle_new();
        if (!l->service || !l->throttle) {
                login_throttle_free(l->throttle);
                free(l->service);
                free(l);
                return -ENOMEM;
        }
        (void) pthread_mutex_init(&l->lock, NULL);
        (void) pthread_cond_init(&l->wake, NULL);
        for (size_t i = 0; i < LOGIN_THREADS; i++) {
                if (pthread_create(&l->threads[i], NULL, login_main, l) != 0) {
                        login_free(l);
                        return -EAGAIN;
                }
                l->n_threads++;
        }
        *ret = l;
        return 0;
}

Login *login_free(Login *l) {
        LoginJob *j;

        if (!l)
                return NULL;
        pthread_mutex_lock(&l->lock);
        l->stopping = true;
        pthread_cond_broadcast(&l->wake);
        pthread_mutex_unlock(&l->lock);
        for (size_t i = 0; i < l->n_threads; i++)
                (void) pthread_join(l->threads[i], NULL);

        while ((j = l->head)) {
                l->head = j->next;
                j->next = NULL;
                j->password = secret_free(j->password);
                j->result = -ECANCELED;
                j->reason = "server stopping";
                j->done(j);
        }
        login_throttle_free(l->throttle);
        pthread_cond_destroy(&l->wake);
        pthread_mutex_destroy(&l->lock);
        free(l->service);
        free(l);
        return NULL;
}

int login_submit(Login *l, LoginJob *j) {
        _cleanup_free_ char *user_key = throttle_key("user", j->user);
        _cleanup_free_ char *source_key = throttle_key("addr", j->source);
        uint64_t now = now_usec_monotonic();
        bool blocked;

        assert_return(l && j && j->user && j->password && j->done, -EINVAL);
        if (!user_key || !source_key)
                return -ENOMEM;

        pthread_mutex_lock(&l->lock);
        if (l->queued >= LOGIN_QUEUE_MAX || l->stopping) {
                pthread_mutex_unlock(&l->lock);
                return -EBUSY;
        }
        blocked = !login_throttle_begin(l->throttle, user_key, LOGIN_FAILURES_PER_USER, now);
        if (!blocked && !login_throttle_begin(l->throttle, source_key, LOGIN_FAILURES_PER_SOURCE, now)) {
                login_throttle_end(l->throttle, user_key, LOGIN_OUTCOME_NONE, now);
                blocked = true;
        }
        if (!blocked) {
                j->next = NULL;
                if (l->tail)
                        l->tail->next = j;
                else
                        l->head = j;
                l->tail = j;
                l->queued++;
                pthread_cond_signal(&l->wake);
        }
        pthread_mutex_unlock(&l->lock);

        if (blocked) {
                j->password = secret_free(j->password);
                j->result = -EUSERS;
                j->reason = "too many failed logins";
                j->done(j);
        }
        return 0;
}
