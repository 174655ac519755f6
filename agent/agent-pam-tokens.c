/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-pam-internal.h"

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

PamJob *pam_job_free(PamJob *j) {
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

/* With pam->lock held: drop expired tokens and those never bound in time. The latter are
 * still valid on the server: they go to *revoke (a list) for the caller to revoke once the
 * lock is released. */
void sweep_locked(AgentPam *pam, UserToken **revoke) {
        uint64_t now = now_usec(CLOCK_REALTIME), mono = now_usec(CLOCK_MONOTONIC);

        for (UserToken **p = &pam->tokens; *p;) {
                UserToken *t = *p;

                if (now >= t->expires_usec || (!t->bound && mono >= t->bind_by_usec)) {
                        log_info(
                                "User token of '%s' %s; dropped.", LOG_NAME(t->user),
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
                        (unsigned) PAM_UNREVOKED_MAX, dropped);
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
void revoker_kick(AgentPam *pam) {
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
void revoke_later(AgentPam *pam, UserToken *list) {
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
void sweep_soon(AgentPam *pam) {
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

int pam_reply(int fd, const char *const fields[], size_t n) {
        char buf[PAM_WIRE_MAX];
        int len;

        len = pam_wire_join(buf, sizeof(buf), fields, n);
        if (len < 0)
                return len;
        if (send(fd, buf, (size_t) len, MSG_NOSIGNAL) < 0)
                return -errno;
        return 0;
}

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
                        "PAM login of '%s': %s: %s", LOG_NAME(j->user), denied ? "refused" : "failed",
                        msg[0] ? msg : strerror(-r));
                (void) REPLY(
                        j->fd, denied ? "DENIED" : "UNAVAILABLE",
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
                        "Could not revoke %u user token(s) yet; trying again in %" PRIu64 " s: %s", left,
                        backoff / USEC_PER_SEC, strerror(-r));
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
int job_start(AgentPam *pam, PamJob *j) {
        Agent *a = pam->agent;
        pthread_attr_t attr;
        pthread_t t;
        int r;

        /* a.lock held by hand: the settings are copied whole, as SIGHUP may replace them. */
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

/* Revoke the tokens of list (and free them) within PAM_STOP_REVOKE_USEC, over one connection
 * kept alive (keywardd closes it after an error answer, such as a 401 for a token dead
 * already: the client connects again), each request given its servers' share of what is
 * left: a server away cannot make the stop wait longer. */
void revoke_at_stop(Agent *a, UserToken *list) {
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
                        left, last < 0 ? ": " : ".", last < 0 ? strerror(-last) : "");
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
