/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-login.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
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
        pthread_cond_t wake; /* on CLOCK_MONOTONIC: threads wait for a slowed-down job too */
        LoginJob *head, *tail;
        size_t queued;  /* jobs to run now */
        size_t delayed; /* jobs slowed down, waiting for their time */
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
        /* A free or lapsed slot; else, of those with nothing in flight, the one with the fewest
         * failures, the oldest window among equals. So new keys, however many, push out only
         * entries with no more failures than they will have themselves: to free an entry with
         * n failures, a whole table of entries with n or more failures must be made first. */
        for (size_t i = 0; i < THROTTLE_SLOTS && !s; i++) {
                const ThrottleSlot *c = &t->slots[i];

                if (!slot_live(c, now_usec))
                        s = &t->slots[i];
                else if (
                        c->pending == 0 &&
                        (!oldest || c->failures < oldest->failures ||
                         (c->failures == oldest->failures &&
                          c->window_start_usec < oldest->window_start_usec)))
                        oldest = &t->slots[i];
        }
        s = s ?: oldest;
        if (!s)
                return NULL;
        free(s->key);
        *s = (ThrottleSlot){.key = strdup(key), .window_start_usec = now_usec};
        return s->key ? s : NULL;
}

unsigned login_throttle_failures(LoginThrottle *t, const char *key, uint64_t now_usec) {
        ThrottleSlot *s = throttle_find(t, key);

        return s && now_usec - s->window_start_usec < LOGIN_WINDOW_USEC ? s->failures : 0;
}

uint64_t login_user_delay_usec(unsigned failures) {
        unsigned over;

        if (failures < LOGIN_USER_SLOW_AFTER)
                return 0;
        over = failures - LOGIN_USER_SLOW_AFTER;
        if (over >= 16)
                return LOGIN_USER_DELAY_MAX_USEC;
        return MIN(USEC_PER_SEC << over, LOGIN_USER_DELAY_MAX_USEC);
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

/* "user:NAME", "addr:ADDRESS" and "pair:LENGTH:ADDRESS:NAME", so that no key can stand for
 * another kind's. */
static char *throttle_key(const char *kind, const char *s) {
        char *k = NULL;

        return asprintf(&k, "%s:%s", kind, strempty(s)) < 0 ? NULL : k;
}

static char *throttle_pair_key(const char *user, const char *source) {
        char *k = NULL;

        return asprintf(&k, "pair:%zu:%s:%s", strlen(strempty(source)), strempty(source), strempty(user)) <
                        0 ?
                NULL :
                k;
}

/* ---- the threads ------------------------------------------------------------------ */

static void login_run(Login *l, LoginJob *j) {
        _cleanup_free_ char *user_key = throttle_key("user", j->user);
        _cleanup_free_ char *source_key = throttle_key("addr", j->source);
        _cleanup_free_ char *pair_key = throttle_pair_key(j->user, j->source);
        LoginOutcome outcome;
        int r;

        r = pam_check_password(l->service, j->user, j->password, j->rhost, &j->canonical_user, &j->reason);
        j->password = secret_free(j->password);
        if (r >= 0) {
                r = user_groups(j->canonical_user, &j->groups);
                if (r < 0) {
                        log_warning_errno(
                                r, "Failed to look up the groups of '%s': %m", LOG_NAME(j->canonical_user));
                        j->reason = "group lookup failed";
                        r = -EHOSTDOWN;
                }
        }
        j->result = r;

        /* A success clears the user's failures, from everywhere and from this source; the
         * source keeps its count. Only a refused password is a failure: an unreachable
         * directory is nobody's guess. */
        outcome = r >= 0 ? LOGIN_OUTCOME_SUCCESS : r == -EACCES ? LOGIN_OUTCOME_FAILURE : LOGIN_OUTCOME_NONE;
        pthread_mutex_lock(&l->lock);
        if (user_key)
                login_throttle_end(l->throttle, user_key, outcome, now_usec_monotonic());
        if (pair_key)
                login_throttle_end(l->throttle, pair_key, outcome, now_usec_monotonic());
        if (source_key)
                login_throttle_end(
                        l->throttle,
                        source_key,
                        outcome == LOGIN_OUTCOME_SUCCESS ? LOGIN_OUTCOME_NONE : outcome,
                        now_usec_monotonic());
        pthread_mutex_unlock(&l->lock);
}

/* Under the lock: take the queued job whose time has come, first come first served; NULL,
 * with *ret_wait_usec the time the next one is due (0: none is queued), when there is none. */
static LoginJob *take_due(Login *l, uint64_t now_usec, uint64_t *ret_wait_usec) {
        LoginJob *prev = NULL, *due_prev = NULL, *due = NULL;
        uint64_t next = 0;

        for (LoginJob *j = l->head; j; prev = j, j = j->next) {
                if (j->not_before_usec <= now_usec) {
                        due = j;
                        due_prev = prev;
                        break;
                }
                if (next == 0 || j->not_before_usec < next)
                        next = j->not_before_usec;
        }
        if (!due) {
                *ret_wait_usec = next;
                return NULL;
        }
        if (due_prev)
                due_prev->next = due->next;
        else
                l->head = due->next;
        if (l->tail == due)
                l->tail = due_prev;
        if (due->delayed)
                l->delayed--;
        else
                l->queued--;
        due->next = NULL;
        return due;
}

static void *login_main(void *userdata) {
        Login *l = userdata;
        sigset_t all;

        sigfillset(&all);
        (void) pthread_sigmask(SIG_BLOCK, &all, NULL);

        pthread_mutex_lock(&l->lock);
        for (;;) {
                uint64_t next = 0;
                LoginJob *j = NULL;

                while (!l->stopping && !(j = take_due(l, now_usec_monotonic(), &next))) {
                        if (next == 0)
                                pthread_cond_wait(&l->wake, &l->lock);
                        else {
                                struct timespec ts = {
                                        .tv_sec = (time_t) (next / USEC_PER_SEC),
                                        .tv_nsec = (long) (next % USEC_PER_SEC * NSEC_PER_USEC),
                                };

                                (void) pthread_cond_timedwait(&l->wake, &l->lock, &ts);
                        }
                }
                if (l->stopping)
                        break;
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
        {
                pthread_condattr_t a;

                (void) pthread_condattr_init(&a);
                (void) pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
                (void) pthread_cond_init(&l->wake, &a);
                (void) pthread_condattr_destroy(&a);
        }
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
        _cleanup_free_ char *pair_key = throttle_pair_key(j->user, j->source);
        uint64_t now = now_usec_monotonic(), delay;
        bool blocked;

        assert_return(l && j && j->user && j->password && j->done, -EINVAL);
        if (!user_key || !source_key || !pair_key)
                return -ENOMEM;

        pthread_mutex_lock(&l->lock);
        /* The user's failures from everywhere only slow the user's logins down: anyone may
         * fail them, and a lock would keep the user out from every address. */
        delay = login_user_delay_usec(login_throttle_failures(l->throttle, user_key, now));
        if ((delay == 0 ? l->queued >= LOGIN_QUEUE_MAX : l->delayed >= LOGIN_DELAYED_MAX) || l->stopping) {
                pthread_mutex_unlock(&l->lock);
                return -EBUSY;
        }
        /* Locks: the user from this source, and this source for everyone. */
        blocked = !login_throttle_begin(l->throttle, pair_key, LOGIN_FAILURES_PER_PAIR, now);
        if (!blocked && !login_throttle_begin(l->throttle, source_key, LOGIN_FAILURES_PER_SOURCE, now)) {
                login_throttle_end(l->throttle, pair_key, LOGIN_OUTCOME_NONE, now);
                blocked = true;
        }
        if (!blocked && !login_throttle_begin(l->throttle, user_key, UINT_MAX, now)) {
                login_throttle_end(l->throttle, pair_key, LOGIN_OUTCOME_NONE, now);
                login_throttle_end(l->throttle, source_key, LOGIN_OUTCOME_NONE, now);
                blocked = true;
        }
        if (!blocked) {
                j->next = NULL;
                j->not_before_usec = now + delay;
                j->delayed = delay > 0;
                if (l->tail)
                        l->tail->next = j;
                else
                        l->head = j;
                l->tail = j;
                if (j->delayed)
                        l->delayed++;
                else
                        l->queued++;
                pthread_cond_signal(&l->wake);
        }
        pthread_mutex_unlock(&l->lock);

        if (delay > 0 && !blocked)
                log_notice(
                        "Login as '%s' from %s slowed down by %" PRIu64
                        " s: too many failed logins for '%s'.",
                        j->user,
                        j->source,
                        delay / USEC_PER_SEC,
                        j->user);
        if (blocked) {
                j->password = secret_free(j->password);
                j->result = -EUSERS;
                j->reason = "too many failed logins";
                j->done(j);
        }
        return 0;
}
