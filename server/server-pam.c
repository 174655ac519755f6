/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-pam.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "strv.h"
#include "user-util.h"

typedef struct Conversation {
        const char *user;
        const Secret *password;
} Conversation;

/* Every hidden prompt gets the password and every echoed one the user name; messages are
 * for a person at a terminal, and there is none. PAM frees the answers; modules wipe the
 * password they were given. */
static int conversation(int n, const struct pam_message **msg, struct pam_response **ret, void *userdata) {
        const Conversation *c = userdata;
        struct pam_response *resp;

        if (n <= 0 || n > PAM_MAX_NUM_MSG)
                return PAM_CONV_ERR;
        resp = calloc((size_t) n, sizeof(struct pam_response));
        if (!resp)
                return PAM_BUF_ERR;
        for (int i = 0; i < n; i++) {
                const char *answer = NULL;

                if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF)
                        answer = (const char *) c->password->data;
                else if (msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
                        answer = c->user;
                if (!answer)
                        continue;
                resp[i].resp = strdup(answer);
                if (!resp[i].resp) {
                        for (int j = 0; j < i; j++)
                                if (resp[j].resp)
                                        resp[j].resp = erase_and_free_string(resp[j].resp);
                        free(resp);
                        return PAM_BUF_ERR;
                }
        }
        *ret = resp;
        return PAM_SUCCESS;
}

/* Failures are answered late by the caller, without holding a thread: no module sleeps. */
static void no_delay(int status, unsigned usec, void *userdata) {
}

int pam_status_to_errno(int status, bool account_step, const char **ret_reason) {
        *ret_reason = pam_strerror(NULL, status);
        switch (status) {
        case PAM_SUCCESS:
                return 0;
        /* Wrong credentials, or an account PAM refuses: the user's failure. */
        case PAM_AUTH_ERR:
        case PAM_USER_UNKNOWN:
        case PAM_MAXTRIES:
                return -EACCES;
        case PAM_PERM_DENIED:
        case PAM_ACCT_EXPIRED:
                /* In the auth step, PERM_DENIED is also what libpam answers for a stack with no
                 * auth module at all: the server's failure. */
                return account_step ? -EACCES : -EHOSTDOWN;
        case PAM_NEW_AUTHTOK_REQD:
        case PAM_AUTHTOK_EXPIRED:
                *ret_reason = "password expired";
                return -EKEYEXPIRED;
        /* Everything else (PAM_AUTHINFO_UNAVAIL, PAM_SYSTEM_ERR, PAM_ABORT,
         * PAM_CRED_INSUFFICIENT: the module could not read what it checks against, a broken
         * stack, ...) means PAM could not decide: the server's failure, not a wrong guess. */
        default:
                return -EHOSTDOWN;
        }
}

/* Linux-PAM falls back to the service "other" when a service has no file of its own, and
 * Debian's "other" asks pam_unix: without this check a missing file turns every login into a
 * wrong password. libpam lowercases the name and reads /etc/pam.d/ (or, with a vendor
 * directory, /usr/lib/pam.d/); pam_wrapper points it at $PAM_WRAPPER_SERVICE_DIR instead.
 * Without /etc/pam.d/ libpam reads /etc/pam.conf, which is not looked into here. */
bool pam_service_configured(const char *service) {
        const char *dirs[2] = {"/etc/pam.d", "/usr/lib/pam.d"}, *wrapped;
        char name[256], path[PATH_MAX];
        size_t n = strlen(service);

        if (n == 0 || n >= sizeof(name) || strchr(service, '/') || service[0] == '.')
                return false;
        for (size_t i = 0; i <= n; i++)
                name[i] = (char) tolower((unsigned char) service[i]);

        wrapped = secure_getenv("PAM_WRAPPER");
        if (wrapped && streq(wrapped, "1") && secure_getenv("PAM_WRAPPER_SERVICE_DIR")) {
                dirs[0] = secure_getenv("PAM_WRAPPER_SERVICE_DIR");
                dirs[1] = NULL;
        } else if (access(dirs[0], F_OK) < 0)
                return true;

        for (size_t i = 0; i < ELEMENTSOF(dirs) && dirs[i]; i++) {
                int k = snprintf(path, sizeof(path), "%s/%s", dirs[i], name);

                if (k > 0 && (size_t) k < sizeof(path) && access(path, F_OK) >= 0)
                        return true;
        }
        return false;
}

bool pam_password_unreadable(const char *user) {
        _cleanup_free_ char *field = NULL;

        if (geteuid() == 0)
                return false;
        if (user_by_name(user, NULL, NULL, &field) < 0 || !streq(field, "x"))
                return false;
        return faccessat(AT_FDCWD, "/etc/shadow", R_OK, AT_EACCESS) < 0;
}

int pam_check_password(
        const char *service,
        const char *user,
        const Secret *password,
        const char *rhost,
        char **ret_user,
        const char **ret_reason) {

        Conversation c = {.user = user, .password = password};
        struct pam_conv conv = {.conv = conversation, .appdata_ptr = &c};
        const void *item = NULL;
        pam_handle_t *h = NULL;
        char *name;
        int status, r;

        assert_return(service && user && password && ret_user && ret_reason, -EINVAL);

        if (!pam_service_configured(service)) {
                *ret_reason = "the PAM service has no configuration file";
                return -EHOSTDOWN;
        }
        status = pam_start(service, user, &conv, &h);
        if (status != PAM_SUCCESS) {
                *ret_reason = "pam_start() failed";
                return -EHOSTDOWN;
        }
        (void) pam_set_item(h, PAM_FAIL_DELAY, (const void *) no_delay);
        if (rhost)
                (void) pam_set_item(h, PAM_RHOST, rhost);

        status = pam_authenticate(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
        r = pam_status_to_errno(status, false, ret_reason);
        if (r == -EACCES && pam_password_unreadable(user)) {
                *ret_reason = "the password is in /etc/shadow, which keywardd cannot read";
                r = -EHOSTDOWN;
        }
        if (r >= 0) {
                status = pam_acct_mgmt(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
                r = pam_status_to_errno(status, true, ret_reason);
        }
        if (r < 0) {
                (void) pam_end(h, status | PAM_DATA_SILENT);
                return r;
        }

        if (pam_get_item(h, PAM_USER, &item) != PAM_SUCCESS || !item)
                item = user;
        name = strdup(item);
        (void) pam_end(h, PAM_SUCCESS);
        if (!name)
                return -ENOMEM;
        *ret_user = name;
        return 0;
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int user_groups(const char *user, char ***ret) {
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ gid_t *gids = NULL;
        size_t n = 0;
        gid_t gid;
        int r;

        assert_return(user && ret, -EINVAL);

        names = calloc(1, sizeof(char *));
        if (!names)
                return -ENOMEM;
        /* The passwd entry gives the primary group; a user without one has no groups. */
        r = user_by_name(user, NULL, &gid, NULL);
        if (r == -ESRCH) {
                *ret = TAKE_PTR(names);
                return 0;
        }
        if (r < 0)
                return r;
        r = user_group_ids(user, gid, &gids, &n);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *name = NULL;

                r = group_by_gid(gids[i], &name);
                /* A gid without a name has nothing an ACL could name. */
                if (r == -ESRCH)
                        continue;
                if (r < 0)
                        return r;
                r = strv_extend(&names, name);
                if (r < 0)
                        return r;
        }

        qsort(names, strv_length(names), sizeof(char *), strcmp_ptr);
        for (size_t i = 1, len = strv_length(names); i < len;)
                if (streq(names[i], names[i - 1])) {
                        free(names[i]);
                        memmove(names + i, names + i + 1, (len - i) * sizeof(char *));
                        len--;
                } else
                        i++;
        *ret = TAKE_PTR(names);
        return 0;
}
