/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-login.h"

#include <arpa/inet.h>
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
#include "time-util.h"

#define THROTTLE_SLOTS 1024

typedef struct ThrottleSlot {
        char *key;
        uint64_t window_start_usec;
        unsigned failures;
        unsigned pending;   /* attempts waiting or with PAM now */
        uint64_t next_usec; /* a user's: when its last slowed-down login goes to PAM */
} ThrottleSlot;

/* A small table searched end to end: it is consulted once per login, next to a PAM
 * conversation, and bounded, so that a flood of made-up user names cannot grow it. */
struct LoginThrottle {
        ThrottleSlot slots[THROTTLE_SLOTS];
};

#define MACHINE_SLOTS 256

/* The rhosts a machine named in its window. */
typedef struct MachineSlot {
        char *machine;
        uint64_t window_start_usec;
        size_t n_rhosts;
        char *rhosts[LOGIN_RHOSTS_PER_MACHINE];
        bool told; /* that it named too many */
} MachineSlot;

struct LoginQueue {
        LoginJob *head, *tail;
        size_t queued;  /* jobs to run now */
        size_t delayed; /* jobs slowed down, waiting for their time */
        LoginThrottle *throttle;
        MachineSlot machines[MACHINE_SLOTS];
};

struct Login {
        char *service;
        pthread_mutex_t lock;
        pthread_cond_t wake; /* on CLOCK_MONOTONIC: threads wait for a slowed-down job too */
        bool stopping;
        LoginQueue *queue; /* under lock */
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
        free(j->machine);
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

/* ---- sources ---------------------------------------------------------------------- */

int login_source_address(const char *addr, size_t len, char **ret) {
        char buf[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 4];
        const char *p = addr;
        size_t n = len;
        struct in6_addr a;
        char *s = NULL;

        assert_return(addr || len == 0, -EINVAL);
        assert_return(ret, -EINVAL);
        if (len > 0 && memchr(addr, '\0', len))
                return -EBADMSG;
        /* "[address]", as some write an IPv6 rhost */
        if (n >= 2 && p[0] == '[' && p[n - 1] == ']') {
                p++;
                n -= 2;
        }
        if (n > 0 && n < sizeof(buf)) {
                memcpy(buf, p, n);
                buf[n] = '\0';
                if (inet_pton(AF_INET6, buf, &a) == 1) {
                        if (IN6_IS_ADDR_V4MAPPED(&a)) {
                                if (!inet_ntop(AF_INET, &a.s6_addr[12], text, sizeof(text)))
                                        return -EINVAL;
                        } else {
                                /* One host on the Internet holds a /64: count the /64. */
                                memset(&a.s6_addr[8], 0, 8);
                                if (!inet_ntop(AF_INET6, &a, text, sizeof(text) - 3))
                                        return -EINVAL;
                                memcpy(text + strlen(text), "/64", 4);
                        }
                        s = strdup(text);
                        if (!s)
                                return -ENOMEM;
                }
        }
        if (!s) {
                s = strndup(addr ?: "", len);
                if (!s)
                        return -ENOMEM;
        }
        *ret = s;
        return 0;
}

static void machine_slot_reset(MachineSlot *m) {
        free(m->machine);
        for (size_t i = 0; i < m->n_rhosts; i++)
                free(m->rhosts[i]);
        *m = (MachineSlot){};
}

/* The machine's slot, with its window restarted when it lapsed; else a free slot, or the
 * one with the oldest window. NULL: out of memory. */
static MachineSlot *machine_get(LoginQueue *q, const char *machine, uint64_t now_usec) {
        MachineSlot *m = NULL, *oldest = NULL;

        for (size_t i = 0; i < MACHINE_SLOTS && !m; i++) {
                MachineSlot *c = &q->machines[i];

                if (c->machine && streq(c->machine, machine))
                        m = c;
                else if (
                        !oldest || !c->machine ||
                        (oldest->machine && c->window_start_usec < oldest->window_start_usec))
                        oldest = c;
        }
        if (m && now_usec - m->window_start_usec < LOGIN_WINDOW_USEC)
                return m;
        m = m ?: oldest;
        machine_slot_reset(m);
        m->machine = strdup(machine);
        m->window_start_usec = now_usec;
        return m->machine ? m : NULL;
}

/* A machine names only so many rhosts in a window: logins it passes on from any further one
 * are counted as the machine's own, j->source becoming the machine's name. */
static int machine_rhost_admit(LoginQueue *q, LoginJob *j, uint64_t now_usec) {
        size_t n = j->machine ? strlen(j->machine) : 0;
        const char *rhost;
        MachineSlot *m;
        char *s;

        if (!j->machine || strncmp(j->source, j->machine, n) != 0 || j->source[n] != '/')
                return 0;
        rhost = j->source + n + 1;
        m = machine_get(q, j->machine, now_usec);
        if (!m)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_rhosts; i++)
                if (streq(m->rhosts[i], rhost))
                        return 0;
        if (m->n_rhosts < LOGIN_RHOSTS_PER_MACHINE) {
                m->rhosts[m->n_rhosts] = strdup(rhost);
                if (!m->rhosts[m->n_rhosts])
                        return -ENOMEM;
                m->n_rhosts++;
                return 0;
        }
        s = strdup(j->machine);
        if (!s)
                return -ENOMEM;
        if (!m->told)
                log_notice(
                        "Machine %s passed on logins from more than %u addresses: counting further "
                        "ones as the machine's own.",
                        LOG_NAME(j->machine), LOGIN_RHOSTS_PER_MACHINE);
        m->told = true;
        free(j->source);
        j->source = s;
        return 0;
}

/* ---- the queue -------------------------------------------------------------------- */

/* "user:NAME", "addr:ADDRESS" and "pair:LENGTH:ADDRESS:NAME", so that no key can stand for
 * another kind's. */
typedef struct LoginKeys {
        char *user, *source, *pair;
        char *machine; /* "mach:NAME", for a login a machine passes on: all of the machine's */
} LoginKeys;

static void login_keys_done(LoginKeys *k) {
        free(k->user);
        free(k->source);
        free(k->pair);
        free(k->machine);
}

static int login_keys_init(LoginKeys *k, const LoginJob *j) {
        const char *src = strempty(j->source), *user = strempty(j->user);

        *k = (LoginKeys){};
        if (asprintf(&k->user, "user:%s", user) < 0)
                k->user = NULL;
        if (asprintf(&k->source, "addr:%s", src) < 0)
                k->source = NULL;
        if (asprintf(&k->pair, "pair:%zu:%s:%s", strlen(src), src, user) < 0)
                k->pair = NULL;
        if (j->machine && asprintf(&k->machine, "mach:%s", j->machine) < 0)
                k->machine = NULL;
        if (!k->user || !k->source || !k->pair || (j->machine && !k->machine)) {
                login_keys_done(k);
                return -ENOMEM;
        }
        return 0;
}

LoginQueue *login_queue_new(void) {
        LoginQueue *q = calloc(1, sizeof(LoginQueue));

        if (!q)
                return NULL;
        q->throttle = login_throttle_new();
        if (!q->throttle) {
                free(q);
                return NULL;
        }
        return q;
}

LoginQueue *login_queue_free(LoginQueue *q) {
        LoginJob *j;

        if (!q)
                return NULL;
        while ((j = q->head)) {
                q->head = j->next;
                login_job_free(j);
        }
        for (size_t i = 0; i < MACHINE_SLOTS; i++)
                machine_slot_reset(&q->machines[i]);
        login_throttle_free(q->throttle);
        free(q);
        return NULL;
}

size_t login_queue_delayed(LoginQueue *q) {
        return q->delayed;
}

/* Slowed-down logins waiting, from this source, or for this user. */
static size_t queue_count_source(LoginQueue *q, const char *source) {
        size_t n = 0;

        for (LoginJob *j = q->head; j; j = j->next)
                n += j->delayed && streq(j->source, source);
        return n;
}

static size_t queue_count_user(LoginQueue *q, const char *user) {
        size_t n = 0;

        for (LoginJob *j = q->head; j; j = j->next)
                n += j->delayed && streq(j->user, user);
        return n;
}

/* Whether a waiting job's source, and its machine, still have nothing counted but the job
 * itself: a source that came clean and then sent more, or whose machine did, is clean no
 * longer. */
static bool job_still_clean(LoginQueue *q, const LoginJob *c, uint64_t now_usec) {
        _cleanup_(login_keys_done) LoginKeys k = {};

        if (!c->clean || login_keys_init(&k, c) < 0)
                return false;
        return login_throttle_count(q->throttle, k.source, now_usec) <= 1 &&
                login_throttle_count(q->throttle, k.pair, now_usec) <= 1 &&
                (!k.machine || login_throttle_count(q->throttle, k.machine, now_usec) <= 1);
}

int login_queue_add(LoginQueue *q, LoginJob *j, uint64_t now_usec) {
        _cleanup_(login_keys_done) LoginKeys k = {};
        uint64_t delay;
        ThrottleSlot *u;
        bool blocked;
        int r;

        assert_return(q && j && j->user && j->source, -EINVAL);
        r = machine_rhost_admit(q, j, now_usec);
        if (r < 0)
                return r;
        r = login_keys_init(&k, j);
        if (r < 0)
                return r;

        /* The user's failures from everywhere, and the user's attempts still out, only slow
         * the user's logins down: anyone may fail them, and a lock would keep the user out
         * from every address. */
        delay = login_user_delay_usec(login_throttle_count(q->throttle, k.user, now_usec));
        j->clean = login_throttle_count(q->throttle, k.source, now_usec) == 0 &&
                login_throttle_count(q->throttle, k.pair, now_usec) == 0 &&
                (!k.machine || login_throttle_count(q->throttle, k.machine, now_usec) == 0);
        if (delay == 0 ? q->queued >= LOGIN_QUEUE_MAX :
                         q->delayed >= LOGIN_DELAYED_MAX ||
                            queue_count_source(q, j->source) >= LOGIN_DELAYED_PER_SOURCE ||
                            (!j->clean && queue_count_user(q, j->user) >= LOGIN_DELAYED_PER_USER))
                return -EBUSY;

        /* Locks: the user from this source, and this source for everyone. */
        blocked = !login_throttle_begin(q->throttle, k.pair, LOGIN_FAILURES_PER_PAIR, now_usec);
        if (!blocked && !login_throttle_begin(q->throttle, k.source, LOGIN_FAILURES_PER_SOURCE, now_usec)) {
                login_throttle_end(q->throttle, k.pair, LOGIN_OUTCOME_NONE, now_usec);
                blocked = true;
        }
        if (!blocked && !login_throttle_begin(q->throttle, k.user, UINT_MAX, now_usec)) {
                login_throttle_end(q->throttle, k.pair, LOGIN_OUTCOME_NONE, now_usec);
                login_throttle_end(q->throttle, k.source, LOGIN_OUTCOME_NONE, now_usec);
                blocked = true;
        }
        if (!blocked && k.machine && !login_throttle_begin(q->throttle, k.machine, UINT_MAX, now_usec)) {
                login_throttle_end(q->throttle, k.pair, LOGIN_OUTCOME_NONE, now_usec);
                login_throttle_end(q->throttle, k.source, LOGIN_OUTCOME_NONE, now_usec);
                login_throttle_end(q->throttle, k.user, LOGIN_OUTCOME_NONE, now_usec);
                blocked = true;
        }
        if (blocked) {
                j->result = -EUSERS;
                j->reason = "too many failed logins";
                return -EUSERS;
        }

        j->next = NULL;
        j->delayed = delay > 0;
        j->not_before_usec = now_usec;
        u = throttle_find(q->throttle, k.user);
        if (j->delayed && u) {
                /* One after another: after the user's last slowed-down login, not beside it. */
                u->next_usec = MAX(now_usec, u->next_usec) + delay;
                j->not_before_usec = u->next_usec;
                /* From a clean source, take the place of the first login waiting from a source
                 * with something counted, which goes to the end of the row instead. */
                if (j->clean) {
                        LoginJob *first = NULL;

                        for (LoginJob *c = q->head; c; c = c->next)
                                if (c->delayed && c != j && streq(c->user, j->user) &&
                                    (!first || c->not_before_usec < first->not_before_usec) &&
                                    !job_still_clean(q, c, now_usec))
                                        first = c;
                        if (first) {
                                j->not_before_usec = first->not_before_usec;
                                first->not_before_usec = u->next_usec;
                        }
                }
        }
        if (q->tail)
                q->tail->next = j;
        else
                q->head = j;
        q->tail = j;
        if (j->delayed)
                q->delayed++;
        else
                q->queued++;
        return 0;
}

LoginJob *login_queue_take(LoginQueue *q, uint64_t now_usec, uint64_t *ret_next_usec) {
        LoginJob *prev = NULL, *due_prev = NULL, *due = NULL;
        uint64_t next = 0;

        /* First come first served among those whose time has come. */
        for (LoginJob *j = q->head; j; prev = j, j = j->next) {
                if (j->not_before_usec <= now_usec) {
                        due = j;
                        due_prev = prev;
                        break;
                }
                if (next == 0 || j->not_before_usec < next)
                        next = j->not_before_usec;
        }
        if (!due) {
                *ret_next_usec = next;
                return NULL;
        }
        if (due_prev)
                due_prev->next = due->next;
        else
                q->head = due->next;
        if (q->tail == due)
                q->tail = due_prev;
        if (due->delayed)
                q->delayed--;
        else
                q->queued--;
        due->next = NULL;
        return due;
}

void login_queue_done(LoginQueue *q, const LoginJob *j, LoginOutcome outcome, uint64_t now_usec) {
        _cleanup_(login_keys_done) LoginKeys k = {};

        if (login_keys_init(&k, j) < 0)
                return;
        /* A success clears the user's failures, from everywhere and from this source; the
         * source keeps its count. */
        login_throttle_end(q->throttle, k.user, outcome, now_usec);
        login_throttle_end(q->throttle, k.pair, outcome, now_usec);
        login_throttle_end(
                q->throttle, k.source, outcome == LOGIN_OUTCOME_SUCCESS ? LOGIN_OUTCOME_NONE : outcome,
                now_usec);
        if (k.machine)
                login_throttle_end(
                        q->throttle, k.machine,
                        outcome == LOGIN_OUTCOME_SUCCESS ? LOGIN_OUTCOME_NONE : outcome, now_usec);
}

/* ---- the threads ------------------------------------------------------------------ */

static void login_run(Login *l, LoginJob *j) {
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

        /* Only a refused password is a failure: an unreachable directory is nobody's guess. */
        outcome = r >= 0 ? LOGIN_OUTCOME_SUCCESS : r == -EACCES ? LOGIN_OUTCOME_FAILURE : LOGIN_OUTCOME_NONE;
        pthread_mutex_lock(&l->lock);
        login_queue_done(l->queue, j, outcome, now_usec(CLOCK_MONOTONIC));
        pthread_mutex_unlock(&l->lock);
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

                while (!l->stopping && !(j = login_queue_take(l->queue, now_usec(CLOCK_MONOTONIC), &next))) {
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
        l->queue = login_queue_new();
        if (!l->service || !l->queue) {
                login_queue_free(l->queue);
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
        uint64_t next;
        LoginJob *j;

        if (!l)
                return NULL;
        pthread_mutex_lock(&l->lock);
        l->stopping = true;
        pthread_cond_broadcast(&l->wake);
        pthread_mutex_unlock(&l->lock);
        for (size_t i = 0; i < l->n_threads; i++)
                (void) pthread_join(l->threads[i], NULL);

        while ((j = login_queue_take(l->queue, UINT64_MAX, &next))) {
                j->password = secret_free(j->password);
                j->result = -ECANCELED;
                j->reason = "server stopping";
                j->done(j);
        }
        login_queue_free(l->queue);
        pthread_cond_destroy(&l->wake);
        pthread_mutex_destroy(&l->lock);
        free(l->service);
        free(l);
        return NULL;
}

int login_submit(Login *l, LoginJob *j) {
        char user[LOG_NAME_SIZE], source[LOG_NAME_SIZE];
        uint64_t now = now_usec(CLOCK_MONOTONIC), wait = 0;
        bool slowed = false;
        int r;

        assert_return(l && j && j->user && j->password && j->done, -EINVAL);

        pthread_mutex_lock(&l->lock);
        r = l->stopping ? -EBUSY : login_queue_add(l->queue, j, now);
        if (r >= 0 && j->delayed) {
                /* Named now: once the lock is let go, the job is the threads'. A clean
                 * source's login may have taken a place already due. */
                wait = j->not_before_usec > now ? j->not_before_usec - now : 0;
                slowed = true;
                (void) log_name_escape(j->user, user);
                (void) log_name_escape(j->source, source);
        }
        if (r >= 0)
                pthread_cond_broadcast(&l->wake);
        pthread_mutex_unlock(&l->lock);

        if (slowed)
                log_notice(
                        "Login as '%s' from %s slowed down by %" PRIu64
                        " s: too many failed logins for '%s'.",
                        user, source, (wait + USEC_PER_SEC - 1) / USEC_PER_SEC, user);
        if (r == -EUSERS) {
                j->password = secret_free(j->password);
                j->done(j);
                return 0;
        }
        return r;
}
