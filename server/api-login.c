/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* POST /v0/auth/login/: the form decoded into a job for PAM, and the job's result encoded as
 * the answer (a user token, or Knox's unauthenticated error). */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api-login.h"
#include "json-util.h"
#include "log.h"
#include "server-auth.h"
#include "store.h"
#include "strv.h"
#include "time-util.h"

/* The client's address without its port, for PAM_RHOST and the throttle. */
static char *remote_host(const char *addr) {
        const char *colon = strrchr(addr, ':');

        return strndup(addr, colon ? (size_t) (colon - addr) : strlen(addr));
}

static const FormField *login_field(const Form *f, const char *name, size_t max) {
        const FormField *field = form_get(f, name);

        if (!field || field->value_len == 0 || field->value_len > max ||
            memchr(field->value, '\0', field->value_len))
                return NULL;
        return field;
}

/* An address or a host name, as PAM_RHOST holds them; empty for a local login. */
static bool rhost_valid(const char *s, size_t n) {
        if (n > API_LOGIN_RHOST_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || strchr(".:-_[]%", s[i])) ||
                    s[i] == '\0')
                        return false;
        return true;
}

/* Who a login is from. A machine's agent, proving itself with its certificate, passes on
 * the address the person logged in to it from (form field rhost, empty for a local login):
 * the login is then counted as "<machine>/<rhost>", so that one host's users do not share
 * one throttle, and PAM sees that address. Anyone else is their own address. An IPv6
 * address counts as its /64, and login_submit() bounds the rhosts one machine may name. */
static int login_source(const ApiLogin *l, LoginJob *j) {
        const FormField *f = form_get(l->form, "rhost");
        char *const *names = l->machine_names;
        _cleanup_free_ char *host = NULL, *counted = NULL;
        int r;

        if (f && names && names[0] && rhost_valid(f->value, f->value_len)) {
                r = login_source_address(f->value, f->value_len, &counted);
                if (r < 0)
                        return r;
                if (asprintf(&j->source, "%s/%s", names[0], counted) < 0) {
                        j->source = NULL;
                        return -ENOMEM;
                }
                j->machine = strdup(names[0]);
                if (!j->machine)
                        return -ENOMEM;
                if (f->value_len > 0) {
                        j->rhost = strndup(f->value, f->value_len);
                        if (!j->rhost)
                                return -ENOMEM;
                }
                return 0;
        }
        host = remote_host(l->remote_addr);
        if (!host)
                return -ENOMEM;
        r = login_source_address(host, strlen(host), &j->source);
        if (r < 0)
                return r;
        j->rhost = TAKE_PTR(host);
        return 0;
}

int api_login_begin(const ApiLogin *l, LoginJob **ret, ApiResult *res) {
        _cleanup_(login_job_freep) LoginJob *j = NULL;
        const FormField *user, *password;
        int r;

        *ret = NULL;
        if (!l->form)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "Invalid form");
        user = login_field(l->form, "user", API_LOGIN_USER_MAX);
        password = login_field(l->form, "password", API_LOGIN_PASSWORD_MAX);
        if (!user || !password)
                return api_result_error(res, KNOX_BAD_REQUEST_DATA, "Missing or invalid user or password");

        j = calloc(1, sizeof(LoginJob));
        if (!j)
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Out of memory");
        j->user = strndup(user->value, user->value_len);
        j->password = secret_new_copy(password->value, password->value_len);
        r = login_source(l, j);
        /* The form keeps the user for the audit line; the password lives on in the job only. */
        explicit_bzero((char *) password->value, password->value_len);
        if (!j->user || !j->password || r < 0)
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Out of memory");
        *ret = TAKE_PTR(j);
        return 0;
}

/* A token for the user PAM let in, as the answer's data. */
static int login_mint(Api *api, const LoginJob *j, uint64_t ttl_usec, int64_t now, ApiResult *res) {
        _cleanup_(secret_freep) Secret *token = NULL;
        uint8_t hash[TOKEN_HASH_SIZE];
        int64_t expires = now + (int64_t) (ttl_usec * NSEC_PER_USEC);
        Buf *b = &res->data;
        int r;

        r = user_token_new(&token, hash);
        if (r >= 0)
                r = store_token_add(
                        api->store, hash,
                        &(TokenInfo){
                                .user = j->canonical_user,
                                .groups = j->groups,
                                .created = now,
                                .expires = expires,
                        });
        explicit_bzero(hash, sizeof(hash));
        if (r < 0) {
                log_error_errno(r, "Failed to store a token for '%s': %m", LOG_NAME(j->canonical_user));
                (void) api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to make a token");
                return r;
        }

        (void) buf_puts(b, "{\"token\":");
        (void) json_append_string(b, (const char *) token->data, token->size);
        (void) buf_puts(b, ",\"user\":");
        (void) json_append_cstring(b, j->canonical_user);
        (void) buf_puts(b, ",\"groups\":[");
        STRV_FOREACH(g, j->groups) {
                if (g != j->groups)
                        (void) buf_putc(b, ',');
                (void) json_append_cstring(b, *g);
        }
        (void) buf_printf(b, "],\"expires\":%" PRId64 "}", expires / (int64_t) NSEC_PER_SEC);
        if (b->error < 0)
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "%s", strerror(-b->error));
        res->code = KNOX_OK;
        res->http_status = 200;
        log_info("User '%s' logged in from %s.", LOG_NAME(j->canonical_user), LOG_NAME(j->source));
        return 0;
}

int api_login_finish(Api *api, const LoginJob *j, uint64_t ttl_usec, int64_t now_ns, ApiResult *res) {
        switch (j->result) {
        case 0:
                return login_mint(api, j, ttl_usec, now_ns, res);
        case -EACCES:
        case -EKEYEXPIRED:
        case -EUSERS:
                /* The same answer for an unknown user and a wrong password. */
                log_notice(
                        "Login as '%s' from %s refused: %s.", LOG_NAME(j->user), LOG_NAME(j->source),
                        strna(j->reason));
                if (api_result_error(
                            res, KNOX_UNAUTHENTICATED, "%s",
                            j->result == -EUSERS              ? "Too many failed logins, try again later" :
                                    j->result == -EKEYEXPIRED ? "Password expired, change it first" :
                                                                "Invalid user name or password") < 0)
                        (void) api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Out of memory");
                return 1;
        default:
                log_warning(
                        "Login as '%s' from %s failed: %s.", LOG_NAME(j->user), LOG_NAME(j->source),
                        strna(j->reason));
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Password check unavailable");
        }
}
