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
                        fd, "UNAVAILABLE",
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
                        LOG_NAME(found->login), (unsigned) uid, LOG_NAME(name));
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
                                "User token of '%s' bound to uid %u, session '%s'.", LOG_NAME(found->user),
                                (unsigned) uid, LOG_NAME(s));
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
                "User token of '%s' released with session '%s' of uid %u.", LOG_NAME(t->user),
                LOG_NAME(t->session), (unsigned) t->uid);
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
                        "Refused a PAM socket connection from uid %u (pid %d).", (unsigned) cred.uid,
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
                pam->agent->event, &c->timer, CLOCK_MONOTONIC, PAM_REQUEST_WITHIN_USEC, USEC_PER_SEC / 10,
                on_request_timeout, c);
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
                        a->event, &pam->sweep_source, CLOCK_MONOTONIC, sweep_interval(a), USEC_PER_SEC,
                        on_sweep, pam);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the PAM socket: %m");
        log_debug("Listening for PAM logins on '%s'.", pam->path);
        return 0;
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
