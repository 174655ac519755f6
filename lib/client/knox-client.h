/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A client of keywardd's Knox v0 API (and of Knox itself) on libcurl: what the agent and
 * the keyward CLI speak. One KnoxClient is one curl handle, so connections are reused; it
 * is not thread-safe (use one per thread). With several server URLs a request that fails
 * to connect moves on to the next one; the one that answered is tried first next time. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "key.h"
#include "knox-json.h"
#include "macro.h"
#include "secret.h"

typedef struct KnoxClient KnoxClient;

typedef struct KnoxClientConfig {
        char *const *servers;  /* base URLs "https://host:port", NULL-terminated, at least one;
                                * "host:port" alone means https:// */
        const char *ca_file;   /* server CA bundle; NULL: the system's */
        const char *cert_file; /* client certificate chain (machine identity), may be NULL */
        const char *key_file;
        const char *authorization;     /* "0t<host>", "0u<token>", "0s..."; may be NULL */
        uint64_t connect_timeout_usec; /* 0: 5 s */
        uint64_t timeout_usec;         /* whole request, 0: 30 s (a watch adds its wait) */
        const char *user_agent;        /* NULL: "keyward/<version>" */
        /* May be NULL. Once it reads true (from any thread), a request in flight, a held
         * watch included, ends within about a second with -ECANCELED. */
        const atomic_bool *cancel;
} KnoxClientConfig;

int knox_client_new(const KnoxClientConfig *config, KnoxClient **ret);
KnoxClient *knox_client_free(KnoxClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(KnoxClient *, knox_client_free);

/* Change the Authorization value (e.g. after a login); NULL sends none. The string is
 * copied and wiped on free, since a user token is a secret. */
int knox_client_set_authorization(KnoxClient *c, const char *authorization);

/* Change the timeouts (0: the defaults) for the requests that follow, e.g. to fit many
 * requests over one connection into a budget. */
int knox_client_set_timeouts(KnoxClient *c, uint64_t connect_timeout_usec, uint64_t timeout_usec);

/* The base URL of the server that answered last (or the first one). */
const char *knox_client_current_server(const KnoxClient *c);

/* The outcome of a call: code KNOX_OK, or the server's Knox code and message. A call
 * returns 0 when it got an envelope (ok or error: look at err->code; ret_ values are only
 * written for KNOX_OK), -EHOSTUNREACH when no server could be reached, -EBADMSG when a
 * server answered something that is not an envelope or an ok envelope whose data is not
 * what the call expects, -ENOMEM, -E2BIG for an oversized answer. A POST (create, add
 * version, login) that failed after it was sent is not repeated elsewhere and returns the
 * transport error (-ETIMEDOUT, -ECONNRESET...); other requests go on to the next server. On every such
 * failure err->message says why (only a programming error, -EINVAL from a bad argument, leaves it NULL). err
 * must start zeroed (KNOX_ERROR_NULL); each call resets it first. */
typedef struct KnoxError {
        KnoxCode code;
        int http_status;
        char *message;
        /* When no server could be reached: why the last one tried could not, as an errno
         * (-EHOSTUNREACH name not resolved, -ECONNREFUSED, -ETIMEDOUT, -EKEYREJECTED the
         * server's certificate did not verify, -ECONNABORTED the TLS handshake failed,
         * -EINVAL a local certificate, key or CA file unusable, -ECONNRESET...); 0 otherwise. */
        int cause;
} KnoxError;
#define KNOX_ERROR_NULL ((KnoxError){})
void knox_error_done(KnoxError *e);
static inline void knox_error_donep(KnoxError *e) {
        knox_error_done(e);
}
#define _cleanup_knox_error_ _cleanup_(knox_error_donep)

/* GET /v0/keys/<id>/ (with ?status="<S>" unless max_status is ACTIVE, the default). */
int knox_client_get_key(KnoxClient *c, const char *id, VersionStatus max_status, Key **ret, KnoxError *err);

/* GET /v0/keys/? — every key id. */
int knox_client_list_keys(KnoxClient *c, char ***ret_ids, KnoxError *err);

/* GET /v0/keys/?id=hash&... — the ids among these whose hash differs from the one given (an
 * empty or NULL hash, or "NONE", asks for the key in any case). With wait_sec > 0 the server
 * holds the request up to that long for a change (Prefer: wait=N, keyward's extension; a
 * Knox server answers at once). ids and hashes are parallel arrays of n entries; hashes
 * may be NULL. */
int knox_client_changed_keys(
        KnoxClient *c,
        char *const *ids,
        char *const *hashes,
        size_t n,
        unsigned wait_sec,
        char ***ret_ids,
        KnoxError *err);

/* POST /v0/keys/ with id, data (base64) and acl (JSON, "[]" when NULL). */
int knox_client_create_key(
        KnoxClient *c,
        const char *id,
        const Secret *data,
        const Acl *acl,
        uint64_t *ret_version,
        KnoxError *err);
int knox_client_delete_key(KnoxClient *c, const char *id, KnoxError *err);
int knox_client_get_acl(KnoxClient *c, const char *id, Acl *ret, KnoxError *err);
/* PUT /v0/keys/<id>/access/ with acl=<JSON array of the entries> (as Knox's client does). */
int knox_client_put_access(KnoxClient *c, const char *id, const Acl *changes, KnoxError *err);
int knox_client_add_version(
        KnoxClient *c, const char *id, const Secret *data, uint64_t *ret_version, KnoxError *err);
int knox_client_set_version_status(
        KnoxClient *c, const char *id, uint64_t version, VersionStatus status, KnoxError *err);

/* keyward's extensions. whoami returns the data object's JSON text. */
int knox_client_whoami(KnoxClient *c, char **ret_json, KnoxError *err);
int knox_client_revoke_token(KnoxClient *c, KnoxError *err);
/* keywardd's GET /v0/certificates/expiring/?within=SECONDS: the readable keys whose primary
 * certificate expires within the window, as the JSON array of the answer's data. */
int knox_client_expiring(KnoxClient *c, uint64_t within_sec, char **ret_json, KnoxError *err);
/* POST /v0/auth/login/ with user and password, sent without an Authorization header. rhost
 * (may be NULL) is, for an agent logging a person in, the address they came from (""
 * for a local login); keywardd heeds it only from a verified machine certificate. The
 * token comes back in a Secret; ret_json (may be NULL) gets the whole data object, which
 * holds the token too (the caller wipes it: erase_and_free_string()). */
int knox_client_login(
        KnoxClient *c,
        const char *user,
        const Secret *password,
        const char *rhost,
        Secret **ret_token,
        char **ret_json,
        KnoxError *err);
