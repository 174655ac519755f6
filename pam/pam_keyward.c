/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pam_keyward: logs people in to keywardd through keyward-agent, which holds their user token
 * for the session (GetUserToken on the bus).
 *
 *   auth     the password already typed (try_first_pass, use_first_pass) or asked for goes
 *            to the agent, which asks keywardd; a refusal is PAM_AUTH_ERR, an agent or server
 *            away PAM_AUTHINFO_UNAVAIL
 *   session  open binds the token to the user's uid and logind session (XDG_SESSION_ID, so
 *            list the module after pam_systemd); close releases it
 *
 * sshd authenticates in a forked child: the login's handle reaches the session through the
 * PAM environment (KEYWARD_LOGIN), which sshd carries back, and is removed from it there.
 * Options: socket=PATH (default /run/keyward/pam.sock), timeout=SECONDS (default 15), debug.
 *
 * Inside keywardd the module does nothing (PAM_IGNORE): keywardd checks passwords through PAM,
 * and if its stack included this module (pam-auth-update puts it in common-auth) a login would
 * ask the agent, which asks keywardd, which asks the module again, until everything times out.
 * The module is a thin client: no threads, no signal handlers, only libc and libpam. */

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "pam-wire.h"
#include "time-util.h"

#define DEFAULT_SOCKET "/run/keyward/pam.sock"
#define DEFAULT_TIMEOUT_SEC 15
#define HANDLE_DATA "pam_keyward_handle"
#define BOUND_DATA "pam_keyward_bound" /* the handle the session bound, for its close */
#define HANDLE_ENV "KEYWARD_LOGIN"
#define KEYWARDD_PAM_SERVICE "keyward" /* keywardd's --pam-service default */
#define KEYWARDD_EXE "keywardd"

typedef struct Options {
        const char *socket;
        int timeout_ms;
        bool debug;
} Options;

static void parse_options(pam_handle_t *h, int argc, const char **argv, Options *o) {
        *o = (Options){.socket = DEFAULT_SOCKET, .timeout_ms = DEFAULT_TIMEOUT_SEC * 1000};
        for (int i = 0; i < argc; i++) {
                if (strncmp(argv[i], "socket=", 7) == 0 && argv[i][7] == '/')
                        o->socket = argv[i] + 7;
                else if (strncmp(argv[i], "timeout=", 8) == 0) {
                        int v = 0;
                        const char *p = argv[i] + 8;

                        /* 1 to 600 seconds, digits only. */
                        for (; *p >= '0' && *p <= '9' && v <= 600; p++)
                                v = v * 10 + (*p - '0');
                        if (*p == '\0' && p > argv[i] + 8 && v > 0 && v <= 600)
                                o->timeout_ms = v * 1000;
                        else
                                pam_syslog(h, LOG_WARNING, "ignoring bad option %s", argv[i]);
                } else if (streq(argv[i], "debug"))
                        o->debug = true;
                else if (!streq(argv[i], "try_first_pass") && !streq(argv[i], "use_first_pass"))
                        pam_syslog(h, LOG_WARNING, "ignoring unknown option %s", argv[i]);
        }
}

/* Whether we are running for keywardd's own password check. Either test is enough: the PAM
 * service is keywardd's default one, or this process is keywardd, which catches a renamed
 * --pam-service. The executable's name comes from the kernel (/proc/self/exe); argv[0] is
 * asked too, for keywardd run under a tool such as valgrind. A program that merely calls
 * itself keywardd gains nothing: PAM_IGNORE never lets anyone in, the rest of the stack
 * decides. */
static bool inside_keywardd(pam_handle_t *h) {
        const char *service = NULL, *base;
        char exe[4096];
        ssize_t n;

        if (pam_get_item(h, PAM_SERVICE, (const void **) &service) == PAM_SUCCESS && service &&
            streq(service, KEYWARDD_PAM_SERVICE))
                return true;
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
                return streq(program_invocation_short_name, KEYWARDD_EXE);
        exe[n] = '\0';
        /* An executable replaced by an upgrade while it runs. */
        if ((size_t) n > strlen(" (deleted)") && streq(exe + n - strlen(" (deleted)"), " (deleted)"))
                exe[n - strlen(" (deleted)")] = '\0';
        base = strrchr(exe, '/');
        return streq(base ? base + 1 : exe, KEYWARDD_EXE) ||
                streq(program_invocation_short_name, KEYWARDD_EXE);
}

/* One request, one answer. The answer's fields point into answer. Returns the number of
 * fields, or -errno: the agent is away (-ENOENT, -ECONNREFUSED), too slow (-ETIMEDOUT) or
 * answered nonsense (-EBADMSG). */
static int ask_agent(
        const Options *o,
        const char *const request[],
        size_t n,
        char answer[static PAM_WIRE_MAX],
        const char *fields[static PAM_WIRE_FIELDS_MAX]) {

        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char buf[PAM_WIRE_MAX];
        int64_t deadline = (int64_t) now_msec(CLOCK_MONOTONIC) + o->timeout_ms;
        int fd, len, r;
        ssize_t got;

        if (strlen(o->socket) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, o->socket, strlen(o->socket) + 1);
        len = pam_wire_join(buf, sizeof(buf), request, n);
        if (len < 0)
                return len;

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                r = -errno;
                goto finish_nofd;
        }
        /* An agent alive but stuck must not hold a login: connect() to a full backlog and
         * send() honour the send timeout. */
        {
                struct timeval tv = {.tv_sec = o->timeout_ms / 1000};

                (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        }
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
            send(fd, buf, (size_t) len, MSG_NOSIGNAL) != len) {
                r = -errno;
                goto finish;
        }
        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int64_t left = deadline - (int64_t) now_msec(CLOCK_MONOTONIC);

                if (left <= 0) {
                        r = -ETIMEDOUT;
                        goto finish;
                }
                r = poll(&p, 1, (int) left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        r = -errno;
                        goto finish;
                }
                if (r > 0)
                        break;
        }
        got = recv(fd, answer, PAM_WIRE_MAX, MSG_TRUNC);
        if (got < 0)
                r = -errno;
        else if (got == 0 || got > PAM_WIRE_MAX)
                r = -EBADMSG;
        else
                r = pam_wire_split(answer, (size_t) got, fields, PAM_WIRE_FIELDS_MAX);
finish:
        close(fd);
finish_nofd:
        explicit_bzero(buf, sizeof(buf));
        return r;
}

/* Why a request to the agent did not get its OK, for the log. */
static const char *failure(int r, const char *const *f) {
        return r < 0 ? strerror(-r) : r >= 2 ? f[1] : "bad answer";
}

static void free_handle(pam_handle_t *h, void *data, int status) {
        free(data);
}

_public_ PAM_EXTERN int pam_sm_authenticate(pam_handle_t *h, int flags, int argc, const char **argv) {
        const char *user = NULL, *password = NULL, *rhost = NULL, *f[PAM_WIRE_FIELDS_MAX];
        char answer[PAM_WIRE_MAX], env[sizeof(HANDLE_ENV) + PAM_WIRE_HANDLE_SIZE + 1];
        char *handle;
        Options o;
        int r, status;

        parse_options(h, argc, argv, &o);
        if (inside_keywardd(h)) {
                if (o.debug)
                        pam_syslog(h, LOG_DEBUG, "inside keywardd: ignored");
                return PAM_IGNORE;
        }
        if (pam_get_user(h, &user, NULL) != PAM_SUCCESS || !user || !user[0])
                return PAM_USER_UNKNOWN;
        /* pam_get_authtok() honours try_first_pass and use_first_pass itself. */
        status = pam_get_authtok(h, PAM_AUTHTOK, &password, NULL);
        if (status != PAM_SUCCESS)
                return status;
        if (!password || !password[0])
                return PAM_AUTH_ERR;
        (void) pam_get_item(h, PAM_RHOST, (const void **) &rhost);

        r = ask_agent(&o, (const char *const[]){"LOGIN", user, password, rhost ?: ""}, 4, answer, f);
        if (r < 0) {
                pam_syslog(h, LOG_ERR, "cannot ask keyward-agent at %s: %s", o.socket, strerror(-r));
                status = PAM_AUTHINFO_UNAVAIL;
        } else if (r == 3 && streq(f[0], "OK") && strlen(f[1]) == PAM_WIRE_HANDLE_SIZE - 1) {
                handle = strdup(f[1]);
                if (!handle || pam_set_data(h, HANDLE_DATA, handle, free_handle) != PAM_SUCCESS) {
                        free(handle);
                        status = PAM_BUF_ERR;
                } else {
                        /* For sshd, whose session runs in another process than its auth. */
                        (void) snprintf(env, sizeof(env), "%s=%s", HANDLE_ENV, f[1]);
                        (void) pam_putenv(h, env);
                        if (o.debug)
                                pam_syslog(h, LOG_DEBUG, "user %s logged in to keyward", user);
                        status = PAM_SUCCESS;
                }
        } else if (r == 2 && streq(f[0], "DENIED")) {
                pam_syslog(h, LOG_NOTICE, "keyward refused user %s: %s", user, f[1]);
                status = PAM_AUTH_ERR;
        } else {
                pam_syslog(h, LOG_ERR, "keyward could not check user %s: %s", user, failure(r, f));
                status = PAM_AUTHINFO_UNAVAIL;
        }
        explicit_bzero(answer, sizeof(answer));
        explicit_bzero(env, sizeof(env));
        return status;
}

_public_ PAM_EXTERN int pam_sm_setcred(pam_handle_t *h, int flags, int argc, const char **argv) {
        return PAM_SUCCESS;
}

/* The uid of the PAM user, and the logind session (empty without one). */
static int session_of(pam_handle_t *h, char uid[static 16], const char **ret_session) {
        const char *user = NULL, *session;
        struct passwd pw, *pwp = NULL;
        char buf[4096];

        if (pam_get_user(h, &user, NULL) != PAM_SUCCESS || !user)
                return PAM_USER_UNKNOWN;
        if (getpwnam_r(user, &pw, buf, sizeof(buf), &pwp) != 0 || !pwp)
                return PAM_USER_UNKNOWN;
        (void) snprintf(uid, 16, "%u", (unsigned) pw.pw_uid);
        session = pam_getenv(h, "XDG_SESSION_ID");
        *ret_session = session ?: "";
        return PAM_SUCCESS;
}

_public_ PAM_EXTERN int pam_sm_open_session(pam_handle_t *h, int flags, int argc, const char **argv) {
        const char *handle = NULL, *session, *f[PAM_WIRE_FIELDS_MAX];
        char answer[PAM_WIRE_MAX], uid[16], copy[PAM_WIRE_HANDLE_SIZE] = "";
        Options o;
        int r;

        parse_options(h, argc, argv, &o);
        if (inside_keywardd(h))
                return PAM_IGNORE;
        if (pam_get_data(h, HANDLE_DATA, (const void **) &handle) != PAM_SUCCESS || !handle)
                handle = pam_getenv(h, HANDLE_ENV);
        if (handle && strlen(handle) == PAM_WIRE_HANDLE_SIZE - 1)
                memcpy(copy, handle, PAM_WIRE_HANDLE_SIZE);
        /* The session's environment must not carry it. Only remove what is there: libpam
         * logs an error for removing a name it does not have (every session without a
         * keyward login: root su, outages, services). */
        if (pam_getenv(h, HANDLE_ENV))
                (void) pam_putenv(h, HANDLE_ENV);
        if (!copy[0])
                return PAM_IGNORE; /* logged in some other way: no token to bind */
        if (session_of(h, uid, &session) != PAM_SUCCESS)
                return PAM_SESSION_ERR;

        r = ask_agent(&o, (const char *const[]){"BIND", copy, uid, session}, 4, answer, f);
        if (r >= 1 && streq(f[0], "OK")) {
                char *bound = strdup(copy);

                if (!bound || pam_set_data(h, BOUND_DATA, bound, free_handle) != PAM_SUCCESS)
                        free(bound);
                if (o.debug)
                        pam_syslog(
                                h, LOG_DEBUG, "keyward token bound to uid %s, session '%s'", uid, session);
                return PAM_SUCCESS;
        }
        /* A session without a token is still a session: the user can log in with keyward. */
        pam_syslog(h, LOG_WARNING, "cannot bind the keyward token: %s", failure(r, f));
        return PAM_IGNORE;
}

_public_ PAM_EXTERN int pam_sm_close_session(pam_handle_t *h, int flags, int argc, const char **argv) {
        const char *handle = NULL, *f[PAM_WIRE_FIELDS_MAX];
        char answer[PAM_WIRE_MAX];
        Options o;
        int r;

        parse_options(h, argc, argv, &o);
        /* Only the token this session bound: a cron job's session closing must not end
         * anyone's login. */
        if (pam_get_data(h, BOUND_DATA, (const void **) &handle) != PAM_SUCCESS || !handle)
                return PAM_IGNORE;
        r = ask_agent(&o, (const char *const[]){"RELEASE", handle}, 2, answer, f);
        if (r >= 1 && streq(f[0], "OK"))
                return PAM_SUCCESS;
        pam_syslog(h, LOG_WARNING, "cannot release the keyward token: %s", failure(r, f));
        return PAM_IGNORE;
}
