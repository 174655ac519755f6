/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by agent-pam.c (the socket and its requests, on the main loop) and
 * agent-pam-tokens.c (the user tokens, the login and revocation threads). */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "agent-pam.h"
#include "agent.h"
#include "knox-client.h"
#include "log.h"
#include "pam-wire.h"

#define PAM_SOCKET_NAME "pam.sock"
#define PAM_SWEEP_USEC (60 * USEC_PER_SEC)
/* Logins at once. Revocations have a thread of their own besides, which logins cannot take. */
#define PAM_THREADS_MAX 16
#define PAM_STOP_WAIT_SEC 5
/* At stop every token still held is revoked on the server, for at most this long in all, so
 * that a server away cannot hold up the stop. */
#define PAM_STOP_REVOKE_USEC (5 * USEC_PER_SEC)
/* pam_keyward sends its request as soon as it is connected: a connection that has sent
 * nothing for this long is closed, and of those waiting to send no more than PAM_PENDING_MAX
 * are kept (a new one pushes out the oldest), so idle connections cannot eat the agent's fds. */
#define PAM_REQUEST_WITHIN_USEC (10 * USEC_PER_SEC)
#define PAM_PENDING_MAX 32
/* Tokens let go of whose revocation could not start or failed wait for another try, at
 * most this many (past that they are left to expire, and the log says how many). Tries
 * back off from the first to the second delay, doubling. */
#define PAM_UNREVOKED_MAX 512
#define PAM_REVOKE_RETRY_MIN_USEC (1 * USEC_PER_SEC)
#define PAM_REVOKE_RETRY_MAX_USEC (5 * 60 * USEC_PER_SEC)

typedef struct UserToken UserToken;
struct UserToken {
        char handle[PAM_WIRE_HANDLE_SIZE];
        bool bound;
        uid_t uid;
        char *session; /* the logind session, "" when there is none */
        char *login;   /* the name the person logged in with: a BIND must be for that user */
        char *user;    /* the name keywardd gave the token */
        Secret *token;
        uint64_t expires_usec; /* CLOCK_REALTIME */
        uint64_t bind_by_usec; /* CLOCK_MONOTONIC: an unbound token goes then */
        uint64_t seq;          /* larger is newer */
        UserToken *next;
};

/* A connection that has not sent its request yet. */
typedef struct PamConn PamConn;
struct PamConn {
        AgentPam *pam;
        sd_event_source *io;    /* owns the fd */
        sd_event_source *timer; /* the deadline for the request */
        PamConn *prev, *next;   /* oldest first */
};

struct AgentPam {
        Agent *agent;
        int fd;
        char *path;
        sd_event_source *listen_source;
        sd_event_source *sweep_source;
        PamConn *pending, *pending_tail;
        unsigned n_pending;
        LogRateLimit idle_log;

        pthread_mutex_t lock; /* guards what follows; the threads add tokens */
        pthread_cond_t idle;
        unsigned n_threads; /* logins and the revocation thread */
        unsigned n_logins;
        bool revoking; /* the revocation thread runs */
        UserToken *tokens;
        UserToken *unrevoked; /* let go of, still valid on the server: to revoke */
        unsigned n_unrevoked;
        uint64_t retry_usec;   /* CLOCK_MONOTONIC: no revocation starts before */
        uint64_t backoff_usec; /* the last delay after a failure, 0 after a success */
        uint64_t seq;
};

/* A LOGIN, or the revocation of the tokens in AgentPam.unrevoked, on a thread of its own. */
typedef struct PamJob {
        AgentPam *pam;
        bool revoker;
        int fd; /* the connection to answer; -EBADF for the revocations */
        char *user;
        Secret *password;
        char *rhost; /* where the person logs in from, "" for a local login */
        uint64_t bind_usec;
        KnoxClientConfig cc;
        char **servers;
        char *ca, *cert, *key;
} PamJob;

/* ---- agent-pam-tokens.c (AgentPam.lock where a name ends in _locked) ---- */

void sweep_locked(AgentPam *pam, UserToken **revoke);
int job_start(AgentPam *pam, PamJob *j);
void revoker_kick(AgentPam *pam);
void revoke_later(AgentPam *pam, UserToken *list);
void sweep_soon(AgentPam *pam);
void revoke_at_stop(Agent *a, UserToken *list);
PamJob *pam_job_free(PamJob *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(PamJob *, pam_job_free);
/* Answer on fd with one message of the wire format (fields joined). */
int pam_reply(int fd, const char *const fields[], size_t n);
#define REPLY(fd, ...) \
        pam_reply(fd, (const char *const[]){__VA_ARGS__}, ELEMENTSOF(((const char *const[]){__VA_ARGS__})))
