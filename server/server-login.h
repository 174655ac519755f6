/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Password logins run on threads of their own: a PAM stack may take seconds, and a worker's
 * event loop must never wait for it. A worker hands a LoginJob over with login_submit(); a
 * login thread checks the password and the groups and gives the job back through its done
 * callback, which must only hand it on (to the worker's inbox) and return.
 *
 * Failed logins are counted per user and per client address, and so are the attempts still
 * with PAM, so that a burst of parallel guesses gets no further than a row of them. Past
 * the limit, logins are refused at once, without asking PAM, until the window has passed; a
 * success clears the user's count. */

#include <stdint.h>

#include "macro.h"
#include "secret.h"

#define LOGIN_THREADS 4
#define LOGIN_QUEUE_MAX 64
#define LOGIN_FAILURES_PER_USER 5
#define LOGIN_FAILURES_PER_SOURCE 20
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

/* The throttle on its own, for tests. A key is a user or an address. begin() takes an attempt
 * in (false: the key is at its limit, counting attempts in flight) and end() gives its
 * outcome. The table is bounded; when it is full the entry with the oldest window and no
 * attempt in flight goes. */
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
