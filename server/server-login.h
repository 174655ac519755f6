/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Password logins run on threads of their own: a PAM stack may take seconds, and a worker's
 * event loop must never wait for it. A worker hands a LoginJob over with login_submit(); a
 * login thread checks the password and the groups and gives the job back through its done
 * callback, which must only hand it on (to the worker's inbox) and return.
 *
 * Failed logins are counted per (user, source), per source and per user, and so are the
 * attempts still waiting or with PAM. Past the limit for a (user, source) or for a source,
 * logins from there are refused at once, without asking PAM, until the window has passed.
 * The user's count alone never locks anyone out (anyone can fail it): once it reaches
 * LOGIN_USER_SLOW_AFTER, the user's logins go to PAM one after another, each
 * login_user_delay_usec() after the one before (1 s, 2 s, 4 s, ... up to
 * LOGIN_USER_DELAY_MAX_USEC, growing with the count), waiting on no thread; however many
 * sources a burst comes from, it reaches PAM no faster than that. A login from a source with
 * nothing counted against it (nor, for one a machine passes on, against the machine) takes
 * the place of the first waiting login whose source or machine has more counted than that
 * login alone, which moves to the end of the row: the person with the right password from a
 * clean address waits about one interval, not behind a flood. A success clears the user's
 * counts; the source keeps its own.
 *
 * A source is the client's address, an IPv6 address standing for its /64, or, for a login a
 * machine's agent passes on, "machine/rhost"; a machine may name LOGIN_RHOSTS_PER_MACHINE
 * rhosts in a window, and the logins it passes on from any further one count as the
 * machine's alone. */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "secret.h"

#define LOGIN_THREADS 4
#define LOGIN_QUEUE_MAX 64
/* Slowed-down logins waiting for their time, in all. Each job in flight holds up to four
 * throttle entries (user, source, pair, machine), so queued, running and waiting jobs
 * together, (64 + 4 + 180) * 4, can never fill the 1024 entries of the table with entries no
 * one may push out. One source may hold
 * LOGIN_DELAYED_PER_SOURCE of them, and one user's logins LOGIN_DELAYED_PER_USER (logins from
 * a clean source aside), so that one party's flood cannot take other users' places. */
#define LOGIN_DELAYED_MAX 180
#define LOGIN_DELAYED_PER_SOURCE 4
#define LOGIN_DELAYED_PER_USER 8
#define LOGIN_RHOSTS_PER_MACHINE 16
#define LOGIN_FAILURES_PER_PAIR 5
#define LOGIN_FAILURES_PER_SOURCE 20
#define LOGIN_USER_SLOW_AFTER 5
#define LOGIN_USER_DELAY_MAX_USEC (8 * USEC_PER_SEC)
#define LOGIN_WINDOW_USEC (5 * 60 * USEC_PER_SEC)

typedef struct Login Login;

typedef struct LoginJob LoginJob;
struct LoginJob {
        /* the question */
        char *user;
        Secret *password; /* freed as soon as PAM has seen it */
        char *source;     /* who is counted for the throttle and named in the logs: the
                           * client's address, or "machine/rhost" for a login a machine's
                           * agent passes on */
        char *rhost;      /* PAM_RHOST: the address the person comes from; NULL: unknown */
        char *machine;    /* for a login a machine passes on: the machine, and source is
                           * "machine/RHOST", RHOST the rhost as counted (an IPv6 /64) */
        /* the answer: 0, -EACCES (refused), -EKEYEXPIRED (password expired), -EUSERS (too many
         * failures), -EHOSTDOWN (PAM could not decide), -ECANCELED (the server is stopping) */
        int result;
        const char *reason; /* static text for the log, on failure */
        char *canonical_user;
        char **groups;
        /* the way back */
        void (*done)(LoginJob *j);
        void *userdata;
        LoginJob *next;
        uint64_t not_before_usec; /* CLOCK_MONOTONIC: when a slowed-down login may go to PAM */
        bool delayed;
        bool clean; /* its source had nothing counted against it when it came */
};

LoginJob *login_job_free(LoginJob *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(LoginJob *, login_job_free);

int login_new(const char *pam_service, Login **ret);
/* Stops the threads: queued jobs are given back with -ECANCELED, running ones finish. */
Login *login_free(Login *l);

/* Queue a job; the job belongs to the login threads until done is called, which may happen
 * before this returns (for a throttled login). -EBUSY: the queue is full, the job is still
 * the caller's. */
int login_submit(Login *l, LoginJob *j);

/* The throttle on its own, for tests. A key is a user, a source or a pair of them. begin()
 * takes an attempt in (false: the key is at its limit, counting attempts in flight) and end()
 * gives its outcome. The table is bounded (1024 entries); when it is full, of the entries
 * with no attempt in flight the one with the fewest failures goes, the oldest among equals:
 * to push out an entry with n failures, an attacker must first fill the table with entries of
 * n failures or more, 1024 * n failed logins within the window. */
typedef struct LoginThrottle LoginThrottle;
LoginThrottle *login_throttle_new(void);
LoginThrottle *login_throttle_free(LoginThrottle *t);
typedef enum LoginOutcome {
        LOGIN_OUTCOME_NONE,    /* no verdict (PAM could not decide, or never asked) */
        LOGIN_OUTCOME_SUCCESS, /* clears the failures */
        LOGIN_OUTCOME_FAILURE, /* counts one */
} LoginOutcome;
bool login_throttle_begin(LoginThrottle *t, const char *key, unsigned limit, uint64_t now_usec);
void login_throttle_end(LoginThrottle *t, const char *key, LoginOutcome outcome, uint64_t now_usec);
/* Failures in the window plus attempts in flight. */
unsigned login_throttle_count(LoginThrottle *t, const char *key, uint64_t now_usec);
/* Failures in the window only. */
unsigned login_throttle_failures(LoginThrottle *t, const char *key, uint64_t now_usec);
/* How long a login waits when its user has this many failures in the window. */
uint64_t login_user_delay_usec(unsigned failures);

/* The queue and the throttle on their own, with the time passed in, for tests; the caller
 * locks. add() takes a job in (0), refuses it for too many failures (-EUSERS: the job is
 * still the caller's, its result and reason set) or for a full queue (-EBUSY). take() gives
 * the first job whose time has come, or NULL with *ret_next_usec when the next one is due
 * (0: none waits). done() counts the outcome of a job take() gave. */
typedef struct LoginQueue LoginQueue;
LoginQueue *login_queue_new(void);
/* Frees the jobs still queued, without calling done. */
LoginQueue *login_queue_free(LoginQueue *q);
int login_queue_add(LoginQueue *q, LoginJob *j, uint64_t now_usec);
LoginJob *login_queue_take(LoginQueue *q, uint64_t now_usec, uint64_t *ret_next_usec);
void login_queue_done(LoginQueue *q, const LoginJob *j, LoginOutcome outcome, uint64_t now_usec);
size_t login_queue_delayed(LoginQueue *q);

/* A client's address as the throttle counts it: an IPv6 address (not IPv4-mapped) as its /64,
 * "2001:db8:1:2::/64"; an IPv4-mapped one as the IPv4 address; anything else as it is.
 * -EBADMSG: a NUL in it. */
int login_source_address(const char *addr, size_t len, char **ret);
