/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-pam.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent-listen.h"
#include "agent.h"
#include "hexdecoct.h"
#include "json-util.h"
#include "knox-client.h"
#include "log.h"
#include "pam-wire.h"
#include "random-util.h"
#include "strv.h"
#include "user-util.h"

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

static UserToken *user_token_free(UserToken *t) {
        if (!t)
                return NULL;
        free(t->session);
        free(t->login);
        free(t->user);
        secret_free(t->token);
        free(t);
        return NULL;
}

static void user_token_list_free(UserToken *list) {
        while (list) {
                UserToken *t = list;

                list = t->next;
                user_token_free(t);
        }
}

static PamJob *pam_job_free(PamJob *j) {
        if (!j)
                return NULL;
        safe_close(j->fd);
        free(j->user);
        free(j->rhost);
        secret_free(j->password);
        strv_free(j->servers);
        free(j->ca);
        free(j->cert);
        free(j->key);
        free(j);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(PamJob *, pam_job_free);

/* With pam->lock held: drop expired tokens and those never bound in time. The latter are
 * still valid on the server: they go to *revoke (a list) for the caller to revoke once the
 * lock is released. */
static void sweep_locked(AgentPam *pam, UserToken **revoke) {
        uint64_t now = now_usec(CLOCK_REALTIME), mono = now_usec(CLOCK_MONOTONIC);

        for (UserToken **p = &pam->tokens; *p;) {
                UserToken *t = *p;

                if (now >= t->expires_usec || (!t->bound && mono >= t->bind_by_usec)) {
                        log_info(
                                "User token of '%s' %s; dropped.",
                                LOG_NAME(t->user),
                                now >= t->expires_usec ? "expired" :
                                                         "was never bound to a session, revoking it");
                        *p = t->next;
                        if (now < t->expires_usec) {
                                t->next = *revoke;
                                *revoke = t;
                        } else
                                user_token_free(t);
                } else
                        p = &t->next;
        }
}

static int job_start(AgentPam *pam, PamJob *j);

/* With pam->lock held: put the tokens of list on the list to revoke, as many as fit. Returns
 * how many did not (they are freed). */
static unsigned unrevoked_add_locked(AgentPam *pam, UserToken *list) {
        unsigned dropped = 0;

        while (list) {
                UserToken *t = list;

                list = t->next;
                if (pam->n_unrevoked >= PAM_UNREVOKED_MAX) {
                        user_token_free(t);
                        dropped++;
                        continue;
                }
                t->next = pam->unrevoked;
                pam->unrevoked = t;
                pam->n_unrevoked++;
        }
        return dropped;
}

static void log_dropped(unsigned dropped) {
        if (dropped > 0)
                log_warning(
                        "Too many user tokens wait for their revocation (%u): %u more left to expire on their own.",
                        (unsigned) PAM_UNREVOKED_MAX,
                        dropped);
}

/* With pam->lock held: the tries failed; the next waits longer. */
static void backoff_locked(AgentPam *pam) {
        pam->backoff_usec = pam->backoff_usec == 0 ?
                PAM_REVOKE_RETRY_MIN_USEC :
                MIN(pam->backoff_usec * 2, (uint64_t) PAM_REVOKE_RETRY_MAX_USEC);
        pam->retry_usec = now_usec(CLOCK_MONOTONIC) + pam->backoff_usec;
}

/* Start the revocation thread, unless it runs, there is nothing to revoke, the last failure
 * asks to wait or the agent is stopping (which revokes what is left itself). */
static void revoker_kick(AgentPam *pam) {
        PamJob *j;
        int r;

        pthread_mutex_lock(&pam->lock);
        if (pam->revoking || !pam->unrevoked || now_usec(CLOCK_MONOTONIC) < pam->retry_usec ||
            atomic_load(&pam->agent->cancel)) {
                pthread_mutex_unlock(&pam->lock);
                return;
        }
        pam->revoking = true;
        pthread_mutex_unlock(&pam->lock);

        j = calloc(1, sizeof(PamJob));
        if (!j)
                r = -ENOMEM;
        else {
                j->fd = -EBADF;
                j->revoker = true;
                r = job_start(pam, j);
        }
        if (r >= 0)
                return;
        pam_job_free(j);
        pthread_mutex_lock(&pam->lock);
        pam->revoking = false;
        backoff_locked(pam);
        pthread_mutex_unlock(&pam->lock);
        log_warning_errno(
                r, "Could not start the revocation of user tokens let go of; trying again later: %m");
}

/* Revoke the tokens of list (which are ours from then on) on the revocation thread; those it
 * cannot revoke now wait for another try. Any thread. */
static void revoke_later(AgentPam *pam, UserToken *list) {
        unsigned dropped;

        if (!list)
                return;
        pthread_mutex_lock(&pam->lock);
        dropped = unrevoked_add_locked(pam, list);
        pthread_mutex_unlock(&pam->lock);
        log_dropped(dropped);
        revoker_kick(pam);
}

/* Main thread: while tokens wait for their revocation, the sweep looks every second whether
 * it is time to try again. */
static void sweep_soon(AgentPam *pam) {
        uint64_t at, now = now_usec(CLOCK_MONOTONIC);
        bool pending;

        if (!pam->sweep_source)
                return;
        pthread_mutex_lock(&pam->lock);
        pending = pam->unrevoked || pam->revoking;
        pthread_mutex_unlock(&pam->lock);
        if (pending &&
            (sd_event_source_get_time(pam->sweep_source, &at) < 0 || at > now + PAM_REVOKE_RETRY_MIN_USEC))
                (void) sd_event_source_set_time(pam->sweep_source, now + PAM_REVOKE_RETRY_MIN_USEC);
}

/* Revoke token on the server through c (whose authorization it changes). 0 when it is
 * revoked or was dead already. */
static int revoke_one(KnoxClient *c, const Secret *token, KnoxError *err) {
        _cleanup_erase_free_ char *auth = NULL;
        int r;

        if (asprintf(&auth, "0u%s", (const char *) token->data) < 0) {
                auth = NULL;
                return -ENOMEM;
        }
        r = knox_client_set_authorization(c, auth);
        if (r < 0)
                return r;
        r = knox_client_revoke_token(c, err);
        if (r < 0)
                return r;
        return err->code == KNOX_OK || err->code == KNOX_UNAUTHENTICATED ? 0 : -EIO;
}

static int reply(int fd, const char *const fields[], size_t n) {
        char buf[PAM_WIRE_MAX];
        int len;

        len = pam_wire_join(buf, sizeof(buf), fields, n);
        if (len < 0)
                return len;
        if (send(fd, buf, (size_t) len, MSG_NOSIGNAL) < 0)
                return -errno;
        return 0;
}

#define REPLY(fd, ...) \
        reply(fd, (const char *const[]){__VA_ARGS__}, ELEMENTSOF(((const char *const[]){__VA_ARGS__})))

/* ---- the threads ---------------------------------------------------------------------- */

static int job_client(PamJob *j, const char *authorization, KnoxClient **ret) {
        j->cc.authorization = authorization;
        return knox_client_new(&j->cc, ret);
}

static void job_login(PamJob *j) {
        AgentPam *pam = j->pam;
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(knox_client_freep) KnoxClient *c = NULL;
        _cleanup_(secret_freep) Secret *token = NULL;
        _cleanup_erase_free_ char *json = NULL;
        _cleanup_(json_wipe_putp) json_object *o = NULL; /* holds the token too */
        _cleanup_free_ char *token_user = NULL;
        char handle[PAM_WIRE_HANDLE_SIZE];
        UserToken *t = NULL;
        const char *user = NULL;
        int64_t expires = 0;
        uint8_t raw[16];
        size_t len;
        int r;

        r = job_client(j, NULL, &c);
        if (r >= 0)
                r = knox_client_login(c, j->user, j->password, strempty(j->rhost), &token, &json, &err);
        j->password = secret_free(j->password);
        if (r < 0 || err.code != KNOX_OK) {
                bool denied = r >= 0 && err.code != KNOX_INTERNAL_SERVER_ERROR;
                const char *msg = strempty(err.message);

                log_info(
                        "PAM login of '%s': %s: %s",
                        LOG_NAME(j->user),
                        denied ? "refused" : "failed",
                        msg[0] ? msg : strerror(-r));
                (void) REPLY(
                        j->fd,
                        denied ? "DENIED" : "UNAVAILABLE",
                        msg[0] ? msg : "No keyward server reachable");
                return;
        }

        if (json_parse(json, strlen(json), &o, NULL) >= 0) {
                (void) json_get_string(json_get_field(o, "user"), &user, &len);
                (void) json_get_int64(json_get_field(o, "expires"), &expires);
        }
        t = calloc(1, sizeof(UserToken));
        if (!t || random_bytes(raw, sizeof(raw)) < 0 || !(t->user = strdup(user ?: j->user)) ||
            !(t->login = strdup(j->user)) || !(t->session = strdup(""))) {
                user_token_free(t);
                (void) REPLY(j->fd, "UNAVAILABLE", "Out of memory");
                return;
        }
        hexencode(raw, sizeof(raw), t->handle);
        t->token = TAKE_PTR(token);
        /* A token the server gives no expiry lives as long as its session. */
        t->expires_usec = expires > 0 ? (uint64_t) expires * USEC_PER_SEC : UINT64_MAX;
        t->bind_by_usec = now_usec(CLOCK_MONOTONIC) + j->bind_usec;

        /* Once in the list the token is the main thread's too: answer from copies. */
        memcpy(handle, t->handle, sizeof(handle));
        token_user = strdup(t->user);
        if (!token_user) {
                user_token_free(t);
                (void) REPLY(j->fd, "UNAVAILABLE", "Out of memory");
                return;
        }
        pthread_mutex_lock(&pam->lock);
        t->seq = ++pam->seq;
        t->next = pam->tokens;
        pam->tokens = t;
        pthread_mutex_unlock(&pam->lock);

        log_info("PAM login of '%s': got a user token, waiting for the session.", LOG_NAME(j->user));
        if (REPLY(j->fd, "OK", handle, token_user) >= 0)
                return;

        /* pam_keyward gave up waiting: nobody can bind this token. Take it back (unless a
         * session got it meanwhile, which it cannot have without the handle) and revoke it. */
        pthread_mutex_lock(&pam->lock);
        for (UserToken **p = &pam->tokens;; p = &(*p)->next) {
                if (!*p) {
                        t = NULL;
                        break;
                }
                if (*p == t && !t->bound) {
                        *p = t->next;
                        t->next = NULL;
                        break;
                }
        }
        pthread_mutex_unlock(&pam->lock);
        if (t) {
                log_info(
                        "PAM login of '%s': the module left before the answer; revoking the token.",
                        LOG_NAME(j->user));
                if (revoke_one(c, t->token, &err) >= 0)
                        user_token_free(t);
                else
                        revoke_later(pam, t); /* tried again later */
        }
}

/* The revocation thread: revoke what AgentPam.unrevoked holds, over one connection, until it
 * is empty or a revocation fails; what is left then waits for the sweep's next try. */
static void job_revoke(PamJob *j) {
        _cleanup_(knox_client_freep) KnoxClient *c = NULL;
        AgentPam *pam = j->pam;
        UserToken *again = NULL; /* the server answered an error for these */
        unsigned done = 0, left = 0, dropped = 0;
        uint64_t backoff = 0;
        int r;

        r = job_client(j, NULL, &c);
        for (;;) {
                UserToken *list;

                pthread_mutex_lock(&pam->lock);
                if (r < 0 || !pam->unrevoked) {
                        if (r < 0) {
                                backoff_locked(pam);
                                backoff = pam->backoff_usec;
                                left = pam->n_unrevoked;
                        } else
                                pam->backoff_usec = 0;
                        pam->revoking = false;
                        pthread_mutex_unlock(&pam->lock);
                        break;
                }
                list = TAKE_PTR(pam->unrevoked);
                pam->n_unrevoked = 0;
                pthread_mutex_unlock(&pam->lock);

                /* A server that answers with an error for one token may revoke the next: only
                 * a server away stops the pass. */
                while (list) {
                        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
                        UserToken *t = list;
                        int k;

                        k = revoke_one(c, t->token, &err);
                        if (k < 0 && k != -EIO) {
                                r = k;
                                break;
                        }
                        list = t->next;
                        if (k < 0) {
                                r = k;
                                t->next = again;
                                again = t;
                                continue;
                        }
                        user_token_free(t);
                        done++;
                }
                if (list || again) {
                        pthread_mutex_lock(&pam->lock);
                        dropped += unrevoked_add_locked(pam, list);
                        dropped += unrevoked_add_locked(pam, TAKE_PTR(again));
                        pthread_mutex_unlock(&pam->lock);
                }
        }
        log_dropped(dropped);
        if (done > 0)
                log_debug("Revoked %u user token(s) let go of.", done);
        if (left > 0 && !atomic_load(&pam->agent->cancel))
                log_warning(
                        "Could not revoke %u user token(s) yet; trying again in %" PRIu64 " s: %s",
                        left,
                        backoff / USEC_PER_SEC,
                        strerror(-r));
}

static void *job_main(void *userdata) {
        _cleanup_(pam_job_freep) PamJob *j = userdata;
        AgentPam *pam = j->pam;
        bool revoker = j->revoker;

        if (revoker)
                job_revoke(j);
        else
                job_login(j);

        pam_job_free(TAKE_PTR(j));
        pthread_mutex_lock(&pam->lock);
        pam->n_threads--;
        if (!revoker)
                pam->n_logins--;
        pthread_cond_broadcast(&pam->idle);
        pthread_mutex_unlock(&pam->lock);
        return NULL;
}

/* Hand a job to a new thread (it owns the job from then on). */
static int job_start(AgentPam *pam, PamJob *j) {
        Agent *a = pam->agent;
        pthread_attr_t attr;
        pthread_t t;
        int r;

        pthread_mutex_lock(&a->lock);
        r = strv_copy(a->config.servers, &j->servers);
        if (r >= 0 &&
            ((a->config.server_ca && !(j->ca = strdup(a->config.server_ca))) ||
             (a->config.cert && !(j->cert = strdup(a->config.cert))) ||
             (a->config.key && !(j->key = strdup(a->config.key)))))
                r = -ENOMEM;
        j->cc = (KnoxClientConfig){
                .connect_timeout_usec = a->config.connect_timeout_usec,
                .timeout_usec = a->config.request_timeout_usec,
        };
        j->bind_usec = a->config.pam_bind_usec ?: AGENT_DEFAULT_PAM_BIND_USEC;
        pthread_mutex_unlock(&a->lock);
        if (r < 0)
                return r;
        j->cc.servers = j->servers;
        j->cc.ca_file = j->ca;
        j->cc.cert_file = j->cert;
        j->cc.key_file = j->key;
        j->cc.user_agent = "keyward-agent/" PACKAGE_VERSION;
        j->cc.cancel = &a->cancel;
        j->pam = pam;

        pthread_mutex_lock(&pam->lock);
        if (!j->revoker && pam->n_logins >= PAM_THREADS_MAX) {
                pthread_mutex_unlock(&pam->lock);
                return -EBUSY;
        }
        pam->n_threads++;
        if (!j->revoker)
                pam->n_logins++;
        pthread_mutex_unlock(&pam->lock);

        (void) pthread_attr_init(&attr);
        (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = -pthread_create(&t, &attr, job_main, j);
        (void) pthread_attr_destroy(&attr);
        if (r < 0) {
                pthread_mutex_lock(&pam->lock);
                pam->n_threads--;
                if (!j->revoker)
                        pam->n_logins--;
                pthread_mutex_unlock(&pam->lock);
        }
        return r;
}

/* ---- requests, on the main loop -------------------------------------------------------- */

static int parse_uid(const char *s, uid_t *ret) {
        unsigned u;
        int r;

        r = safe_atou(s, &u);
        if (r < 0)
                return r;
        if (u == (unsigned) (uid_t) -1)
                return -ERANGE;
        *ret = (uid_t) u;
        return 0;
}

static void handle_login(AgentPam *pam, int fd, const char *const *f, size_t n) {
        _cleanup_(pam_job_freep) PamJob *j = NULL;
        int r;

        if (n != 4 || !f[1][0] || !f[2][0]) {
                (void) REPLY(fd, "UNAVAILABLE", "Malformed request");
                return;
        }
        j = calloc(1, sizeof(PamJob));
        if (!j) {
                (void) REPLY(fd, "UNAVAILABLE", "Out of memory");
                return;
        }
        j->fd = -EBADF;
        j->user = strdup(f[1]);
        j->password = secret_new_copy(f[2], strlen(f[2]));
        j->rhost = strdup(f[3]);
        if (!j->user || !j->password || !j->rhost) {
                (void) REPLY(fd, "UNAVAILABLE", "Out of memory");
                return;
        }
        j->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (j->fd < 0) {
                (void) REPLY(fd, "UNAVAILABLE", "Out of file descriptors");
                return;
        }
        r = job_start(pam, j);
        if (r < 0) {
                log_warning_errno(r, "Cannot start a PAM login for '%s': %m", LOG_NAME(f[1]));
                (void) REPLY(
                        fd,
                        "UNAVAILABLE",
                        r == -EBUSY ? "Too many logins in progress" : "Cannot start the login");
                return;
        }
        TAKE_PTR(j);
}

static void handle_bind(AgentPam *pam, int fd, const char *const *f, size_t n) {
        _cleanup_free_ char *name = NULL;
        UserToken *found = NULL, **prev = NULL, *revoke = NULL;
        uid_t uid;
        int r;

        if (n != 4 || parse_uid(f[2], &uid) < 0 || strlen(f[1]) != PAM_WIRE_HANDLE_SIZE - 1) {
                (void) REPLY(fd, "ERROR", "Malformed request");
                return;
        }
        r = user_by_uid(uid, &name, NULL);
        if (r < 0) {
                (void) REPLY(fd, "ERROR", "The session's uid has no user name");
                return;
        }
        pthread_mutex_lock(&pam->lock);
        sweep_locked(pam, &revoke);
        for (UserToken **p = &pam->tokens; *p && !found; p = &(*p)->next)
                if (!(*p)->bound && streq((*p)->handle, f[1])) {
                        found = *p;
                        prev = p;
                }
        r = -ENOKEY;
        if (found && !streq(found->login, name)) {
                /* e.g. sudo: alice authenticated, the session is root's. No one else can
                 * bind this token: let go of it, and revoke it. */
                log_warning(
                        "Refused to bind the user token of '%s' to uid %u (%s): not the user who logged in; revoking it.",
                        LOG_NAME(found->login),
                        (unsigned) uid,
                        LOG_NAME(name));
                *prev = found->next;
                found->next = revoke;
                revoke = found;
                r = -EPERM;
        } else if (found) {
                char *s = strdup(f[3]);

                r = -ENOMEM;
                if (s) {
                        free(found->session);
                        found->session = s;
                        found->uid = uid;
                        found->bound = true;
                        found->seq = ++pam->seq;
                        r = 0;
                        log_info(
                                "User token of '%s' bound to uid %u, session '%s'.",
                                LOG_NAME(found->user),
                                (unsigned) uid,
                                LOG_NAME(s));
                }
        }
        pthread_mutex_unlock(&pam->lock);
        revoke_later(pam, revoke);
        sweep_soon(pam);
        if (r == -EPERM)
                (void) REPLY(fd, "ERROR", "The session is not the user who logged in");
        else if (r == -ENOKEY)
                (void) REPLY(fd, "ERROR", "No login waits under this handle");
        else if (r < 0)
                (void) REPLY(fd, "ERROR", "Out of memory");
        else
                (void) REPLY(fd, "OK");
}

static void handle_release(AgentPam *pam, int fd, const char *const *f, size_t n) {
        UserToken *t = NULL;

        if (n != 2 || strlen(f[1]) != PAM_WIRE_HANDLE_SIZE - 1) {
                (void) REPLY(fd, "ERROR", "Malformed request");
                return;
        }
        pthread_mutex_lock(&pam->lock);
        for (UserToken **p = &pam->tokens; *p; p = &(*p)->next)
                if ((*p)->bound && streq((*p)->handle, f[1])) {
                        t = *p;
                        *p = t->next;
                        break;
                }
        pthread_mutex_unlock(&pam->lock);
        if (!t) {
                (void) REPLY(fd, "ERROR", "No token is bound under this handle");
                return;
        }

        log_info(
                "User token of '%s' released with session '%s' of uid %u.",
                LOG_NAME(t->user),
                LOG_NAME(t->session),
                (unsigned) t->uid);
        /* Revoked on the server too; it expires on its own if that fails. */
        t->next = NULL;
        revoke_later(pam, t);
        sweep_soon(pam);
        (void) REPLY(fd, "OK");
}

static PamConn *pam_conn_free(PamConn *c) {
        AgentPam *pam;

        if (!c)
                return NULL;
        pam = c->pam;
        if (c->prev)
                c->prev->next = c->next;
        else
                pam->pending = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else
                pam->pending_tail = c->prev;
        pam->n_pending--;
        sd_event_source_disable_unref(c->io); /* closes the connection */
        sd_event_source_disable_unref(c->timer);
        free(c);
        return NULL;
}

static void pam_conn_drop_idle(PamConn *c, const char *why) {
        AgentPam *pam = c->pam;

        if (log_ratelimit_below(&pam->idle_log, now_usec(CLOCK_MONOTONIC)))
                log_notice("Closed a PAM socket connection that sent no request: %s.", why);
        pam_conn_free(c);
}

static int on_request(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        PamConn *c = userdata;
        AgentPam *pam = c->pam;
        const char *f[PAM_WIRE_FIELDS_MAX];
        char buf[PAM_WIRE_MAX];
        ssize_t len;
        int n;

        len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
        if (len < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        n = len > 0 && (size_t) len <= sizeof(buf) ? pam_wire_split(buf, (size_t) len, f, ELEMENTSOF(f)) :
                                                     -EBADMSG;
        if (n <= 0)
                (void) REPLY(fd, "ERROR", "Malformed request");
        else if (streq(f[0], "LOGIN"))
                handle_login(pam, fd, f, (size_t) n);
        else if (streq(f[0], "BIND"))
                handle_bind(pam, fd, f, (size_t) n);
        else if (streq(f[0], "RELEASE"))
                handle_release(pam, fd, f, (size_t) n);
        else
                (void) REPLY(fd, "ERROR", "Unknown request");
        explicit_bzero(buf, sizeof(buf));
        /* One request per connection: a login thread answers on a copy of the socket. */
        pam_conn_free(c);
        return 0;
}

static int on_request_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        pam_conn_drop_idle(userdata, "too slow");
        return 0;
}

static int on_connection(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        AgentPam *pam = userdata;
        _cleanup_close_ int fd_conn = -EBADF;
        struct ucred cred = {};
        socklen_t len = sizeof(cred);
        PamConn *c;
        int r;

        fd_conn = agent_accept(fd, "PAM");
        if (fd_conn < 0)
                return 0;
        if (getsockopt(fd_conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
            !agent_uid_is_privileged(cred.uid)) {
                log_warning(
                        "Refused a PAM socket connection from uid %u (pid %d).",
                        (unsigned) cred.uid,
                        (int) cred.pid);
                return 0;
        }
        if (pam->n_pending >= PAM_PENDING_MAX)
                pam_conn_drop_idle(pam->pending, "too many connections wait to send");

        c = calloc(1, sizeof(PamConn));
        if (!c)
                return 0;
        c->pam = pam;
        c->prev = pam->pending_tail;
        if (c->prev)
                c->prev->next = c;
        else
                pam->pending = c;
        pam->pending_tail = c;
        pam->n_pending++;

        r = sd_event_add_io(pam->agent->event, &c->io, fd_conn, EPOLLIN, on_request, c);
        if (r < 0) {
                pam_conn_free(c);
                return 0;
        }
        (void) sd_event_source_set_io_fd_own(c->io, true);
        TAKE_FD(fd_conn);
        r = sd_event_add_time_relative(
                pam->agent->event,
                &c->timer,
                CLOCK_MONOTONIC,
                PAM_REQUEST_WITHIN_USEC,
                USEC_PER_SEC / 10,
                on_request_timeout,
                c);
        if (r < 0)
                pam_conn_free(c);
        return 0;
}

/* Often enough that a token not bound in time is revoked soon after. */
static uint64_t sweep_interval(const Agent *a) {
        return MIN((uint64_t) PAM_SWEEP_USEC, a->config.pam_bind_usec ?: AGENT_DEFAULT_PAM_BIND_USEC);
}

static int on_sweep(sd_event_source *s, uint64_t usec, void *userdata) {
        AgentPam *pam = userdata;
        UserToken *revoke = NULL;
        uint64_t next = sweep_interval(pam->agent);
        bool pending;

        pthread_mutex_lock(&pam->lock);
        sweep_locked(pam, &revoke);
        pthread_mutex_unlock(&pam->lock);
        revoke_later(pam, revoke);
        revoker_kick(pam); /* the next try of those waiting, when their time has come */
        /* While tokens wait for their revocation, look every second whether it is time. */
        pthread_mutex_lock(&pam->lock);
        pending = pam->unrevoked || pam->revoking;
        pthread_mutex_unlock(&pam->lock);
        if (pending)
                next = MIN(next, PAM_REVOKE_RETRY_MIN_USEC);
        (void) sd_event_source_set_time_relative(s, next);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

/* ---- setup ---------------------------------------------------------------------------- */

int agent_pam_open(Agent *a) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        AgentPam *pam;
        int r;

        pam = calloc(1, sizeof(AgentPam));
        if (!pam)
                return log_oom();
        pam->agent = a;
        pam->fd = -EBADF;
        (void) pthread_mutex_init(&pam->lock, NULL);
        (void) pthread_cond_init(&pam->idle, NULL);
        pam->idle_log = LOG_RATELIMIT_INIT(60 * USEC_PER_SEC, 5);
        a->pam = pam;

        if (asprintf(&pam->path, "%s/%s", a->config.runtime_dir, PAM_SOCKET_NAME) < 0) {
                pam->path = NULL;
                return log_oom();
        }
        if (strlen(pam->path) >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "The PAM socket path '%s' is too long.", pam->path);
        strncpy(sa.sun_path, pam->path, sizeof(sa.sun_path) - 1);

        if (mkdir(a->config.runtime_dir, 0755) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create '%s': %m", a->config.runtime_dir);
        pam->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (pam->fd < 0)
                return log_error_errno(errno, "Failed to create the PAM socket: %m");
        (void) unlink(pam->path);
        if (bind(pam->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return log_error_errno(errno, "Failed to bind '%s': %m", pam->path);
        /* Root only: whoever may talk here may log people in and bind their tokens. */
        if (chmod(pam->path, 0600) < 0 || listen(pam->fd, 64) < 0)
                return log_error_errno(errno, "Failed to set up '%s': %m", pam->path);

        r = agent_listen_watch(a, pam->fd, on_connection, pam, &pam->listen_source);
        if (r >= 0)
                r = sd_event_add_time_relative(
                        a->event,
                        &pam->sweep_source,
                        CLOCK_MONOTONIC,
                        sweep_interval(a),
                        USEC_PER_SEC,
                        on_sweep,
                        pam);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the PAM socket: %m");
        log_debug("Listening for PAM logins on '%s'.", pam->path);
        return 0;
}

/* Revoke the tokens of list (and free them) within PAM_STOP_REVOKE_USEC, over one connection
 * kept alive (keywardd closes it after an error answer, such as a 401 for a token dead
 * already: the client connects again), each request given its servers' share of what is
 * left: a server away cannot make the stop wait longer. */
static void revoke_at_stop(Agent *a, UserToken *list) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + PAM_STOP_REVOKE_USEC;
        size_t n_servers = MAX(strv_length(a->config.servers), (size_t) 1);
        _cleanup_(knox_client_freep) KnoxClient *c = NULL;
        KnoxClientConfig cc = {
                .servers = a->config.servers,
                .ca_file = a->config.server_ca,
                .cert_file = a->config.cert,
                .key_file = a->config.key,
                .user_agent = "keyward-agent/" PACKAGE_VERSION,
                /* not a->cancel: it is set, and these must still go out */
        };
        unsigned done = 0, left = 0;
        int last = 0;

        if (list)
                last = knox_client_new(&cc, &c);
        for (UserToken *t = list; t; t = t->next) {
                _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
                uint64_t now = now_usec(CLOCK_MONOTONIC), share;

                if (!c || now + USEC_PER_SEC / 10 >= deadline) {
                        left++;
                        continue;
                }
                share = (deadline - now) / n_servers;
                last = knox_client_set_timeouts(
                        c, MIN(a->config.connect_timeout_usec ?: share, share), share);
                if (last >= 0)
                        last = revoke_one(c, t->token, &err);
                if (last >= 0)
                        done++;
                else
                        left++;
        }
        user_token_list_free(list);
        if (done > 0)
                log_info("Revoked %u user token(s) held for sessions.", done);
        if (left > 0)
                log_warning(
                        "Could not revoke %u user token(s) before stopping (they expire on their own)%s%s",
                        left,
                        last < 0 ? ": " : ".",
                        last < 0 ? strerror(-last) : "");
}

bool agent_pam_close(Agent *a) {
        AgentPam *pam = a->pam;
        UserToken *list;
        struct timespec until;

        if (!pam)
                return true;
        pam->listen_source = sd_event_source_disable_unref(pam->listen_source);
        pam->sweep_source = sd_event_source_disable_unref(pam->sweep_source);
        while (pam->pending)
                pam_conn_free(pam->pending);
        if (pam->fd >= 0) {
                (void) unlink(pam->path);
                pam->fd = safe_close(pam->fd);
        }

        /* Logins in flight end within a second of a.cancel; leave without them (and without
         * freeing what they use) if one is stuck elsewhere. */
        atomic_store(&a->cancel, true);
        (void) clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += PAM_STOP_WAIT_SEC;
        pthread_mutex_lock(&pam->lock);
        while (pam->n_threads > 0)
                if (pthread_cond_timedwait(&pam->idle, &pam->lock, &until) == ETIMEDOUT)
                        break;
        if (pam->n_threads > 0) {
                pthread_mutex_unlock(&pam->lock);
                log_warning("A PAM login did not stop in time.");
                return false;
        }
        /* Every token still held goes: revoke it on the server too, or it would stay valid
         * there until it expires. */
        list = pam->tokens;
        pam->tokens = NULL;
        for (UserToken **p = &list;; p = &(*p)->next)
                if (!*p) {
                        *p = TAKE_PTR(pam->unrevoked);
                        pam->n_unrevoked = 0;
                        break;
                }
        pthread_mutex_unlock(&pam->lock);
        revoke_at_stop(a, list);
        pthread_cond_destroy(&pam->idle);
        pthread_mutex_destroy(&pam->lock);
        free(pam->path);
        free(pam);
        a->pam = NULL;
        return true;
}

int agent_user_token(Agent *a, uid_t uid, const char *session, Secret **ret_token, char **ret_user) {
        AgentPam *pam = a->pam;
        UserToken *best = NULL, *revoke = NULL;
        Secret *token;
        char *user;

        if (!pam)
                return -ENOKEY;
        pthread_mutex_lock(&pam->lock);
        sweep_locked(pam, &revoke);
        for (UserToken *t = pam->tokens; t; t = t->next) {
                if (!t->bound || t->uid != uid)
                        continue;
                if (session && streq(t->session, session)) {
                        best = t;
                        break;
                }
                if (!best || t->seq > best->seq)
                        best = t;
        }
        if (!best) {
                pthread_mutex_unlock(&pam->lock);
                revoke_later(pam, revoke);
                sweep_soon(pam);
                return -ENOKEY;
        }
        token = secret_new_copy(best->token->data, best->token->size);
        user = strdup(best->user);
        pthread_mutex_unlock(&pam->lock);
        revoke_later(pam, revoke);
        sweep_soon(pam);
        if (!token || !user) {
                secret_free(token);
                free(user);
                return -ENOMEM;
        }
        *ret_token = token;
        *ret_user = user;
        return 0;
}
