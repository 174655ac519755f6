/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Password checks through PAM and group lookups through NSS, for POST /v0/auth/login/.
 * Both block (a PAM stack may ask a directory server), so they run on the login threads,
 * never on a worker's event loop. */

#include <stdbool.h>

#include "secret.h"

/* Authenticate user with password under the PAM service, then check the account. rhost is
 * the client's address (PAM_RHOST). On success *ret_user is the name PAM settled on, which a
 * module may have canonicalised. Returns -EACCES when the password or the account is
 * refused, -EKEYEXPIRED when the password must be changed first, and -EHOSTDOWN when PAM
 * could not decide (an unreachable directory, a broken stack, no file for the service):
 * the caller may try again. The
 * message for the log goes to *ret_reason in every case but success. */
int pam_check_password(
        const char *service,
        const char *user,
        const Secret *password,
        const char *rhost,
        char **ret_user,
        const char **ret_reason);

/* What a PAM status means for a login: 0 for PAM_SUCCESS; -EACCES for wrong credentials
 * (PAM_AUTH_ERR, PAM_USER_UNKNOWN, PAM_MAXTRIES) and, in the account step, a refused
 * account (PAM_PERM_DENIED, PAM_ACCT_EXPIRED); -EKEYEXPIRED for a password to change;
 * -EHOSTDOWN for anything else (PAM_AUTHINFO_UNAVAIL, PAM_SYSTEM_ERR, PAM_ABORT,
 * PAM_CRED_INSUFFICIENT, ...): PAM could not decide. *ret_reason: text for the log. */
int pam_status_to_errno(int status, bool account_step, const char **ret_reason);

/* Whether the PAM service has a configuration file of its own where libpam looks for one
 * (pam_check_password() refuses with -EHOSTDOWN otherwise, rather than let libpam use
 * "other"). true when libpam reads /etc/pam.conf, which is not looked into. */
bool pam_service_configured(const char *service);

/* Whether a refusal for user may only mean the password could not be read: keywardd runs
 * without root, the user's passwd entry says the password is in the shadow file ("x") and
 * /etc/shadow is not readable. pam_unix then asks unix_chkpwd, which checks only its caller's
 * own password and answers PAM_AUTH_ERR for anyone else, right password or wrong. */
bool pam_password_unreadable(const char *user);

/* The names of the groups NSS gives user (getgrouplist(), the primary group included),
 * sorted, without duplicates. A user NSS does not know has no groups. */
int user_groups(const char *user, char ***ret);
