/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* POST /v0/auth/login/ as a route of the API layer. It runs in two halves, because PAM runs
 * on the login threads (server-login.c), never on an event loop: api_login_begin() decodes
 * the request into a LoginJob, and api_login_finish() turns the job the threads gave back
 * into the answer. The HTTP layer (server-pending-login.c) holds the request in between. */

#include "form.h"
#include "server-api.h"
#include "server-login.h"

#define API_LOGIN_USER_MAX 256
#define API_LOGIN_PASSWORD_MAX 4096
#define API_LOGIN_RHOST_MAX 253

typedef struct ApiLogin {
        const Form *form;           /* the body; NULL when it was no valid form */
        const char *remote_addr;    /* the client's "address:port" */
        char *const *machine_names; /* the DNS names of a verified client certificate, or NULL */
} ApiLogin;

/* The job for the login threads in *ret, or *ret NULL and res the answer (a bad request, or
 * out of memory). The form's password is wiped: it lives on in the job only. */
int api_login_begin(const ApiLogin *l, LoginJob **ret, ApiResult *res);

/* The answer to a job the login threads gave back, in res: a token for the user PAM let in
 * (stored, valid for ttl_usec), or the refusal. Returns 1 for a refusal that is to be answered
 * LOGIN_FAIL_DELAY late, 0 otherwise, or a negative errno when the store failed (res holds
 * the error answer). */
int api_login_finish(Api *api, const LoginJob *j, uint64_t ttl_usec, int64_t now_ns, ApiResult *res);
