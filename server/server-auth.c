/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-auth.h"

#include <openssl/evp.h>
#include <string.h>

#include "hexdecoct.h"
#include "log.h"
#include "random-util.h"
#include "strv.h"

#define USER_TOKEN_RANDOM_SIZE 32

int user_token_hash(const char *token, size_t n, uint8_t ret_hash[TOKEN_HASH_SIZE]) {
        unsigned len = 0;

        if (EVP_Digest(token, n, ret_hash, &len, EVP_sha256(), NULL) != 1 || len != TOKEN_HASH_SIZE)
                return -EIO;
        return 0;
}

int user_token_new(Secret **ret_token, uint8_t ret_hash[TOKEN_HASH_SIZE]) {
        _cleanup_(secret_freep) Secret *t = NULL;
        _cleanup_buf_ Buf b = BUF_INIT_SECURE;
        uint8_t rnd[USER_TOKEN_RANDOM_SIZE];
        CLEANUP_ERASE(rnd);
        size_t n = 0;
        int r;

        r = random_bytes(rnd, sizeof(rnd));
        if (r < 0)
                return r;
        r = base64_append(&b, rnd, sizeof(rnd));
        if (r < 0)
                return r;

        /* base64url without padding (RFC 4648 §5), behind a prefix that secret scanners can
         * recognise. */
        t = secret_new(STRLEN(USER_TOKEN_PREFIX) + b.len);
        if (!t)
                return -ENOMEM;
        memcpy(t->data, USER_TOKEN_PREFIX, STRLEN(USER_TOKEN_PREFIX));
        n = STRLEN(USER_TOKEN_PREFIX);
        for (size_t i = 0; i < b.len && b.data[i] != '='; i++)
                t->data[n++] = b.data[i] == '+' ? '-' : b.data[i] == '/' ? '_' : (uint8_t) b.data[i];
        t->size = n;
        t->data[n] = '\0';

        r = user_token_hash((const char *) t->data, t->size, ret_hash);
        if (r < 0)
                return r;
        *ret_token = TAKE_PTR(t);
        return 0;
}

static int set_message(char **reterr, const char *fmt, ...) _printf_(2, 3);
static int set_message(char **reterr, const char *fmt, ...) {
        va_list ap;
        char *m;

        if (!reterr)
                return 0; /* nobody will read it */
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        if (!m)
                return -ENOMEM;
        free(*reterr);
        *reterr = m;
        return 0;
}

/* Why a certificate cannot authenticate anyone, or NULL when it verified. Knox says "No peer
 * certs configured" for a request without one, which reads like a server fault. */
static const char *cert_problem(const PeerCert *peer) {
        const char *err = peer ? peer_cert_error(peer) : PEER_CERT_ERROR_NO_CERT;

        if (err && streq(err, PEER_CERT_ERROR_NO_CERT))
                return "auth: no client certificate was presented (0t and 0s need one)";
        return err;
}

/* mtls: the payload is a hostname the certificate must hold. */
static int auth_mtls(const AuthRequest *req, const char *payload, Principals *ps, char **reterr) {
        _cleanup_free_ char *mismatch = NULL;
        const char *err;
        int r;

        err = cert_problem(req->peer);
        if (err)
                return set_message(reterr, "%s", err);
        r = peer_cert_match_host(req->peer, payload, &mismatch);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return set_message(
                        reterr, "auth: '%.253s' is not a name of the client certificate (%s)", payload,
                        strna(mismatch));
        r = principals_add(ps, PRINCIPAL_KIND_MACHINE, payload, NULL, "mtls");
        return r < 0 ? r : 1;
}

/* spiffe and spiffe-fallback: the single spiffe:// URI of the certificate. */
static int auth_spiffe(const AuthRequest *req, const char *provider, Principals *ps, char **reterr) {
        const char *id = NULL, *err = NULL;
        int r;

        err = cert_problem(req->peer);
        if (err)
                return set_message(reterr, "%s", err);
        r = peer_cert_spiffe_id(req->peer, &id, &err);
        if (r < 0)
                return set_message(reterr, "%s", strna(err));
        r = principals_add(ps, PRINCIPAL_KIND_SERVICE, id, NULL, provider);
        return r < 0 ? r : 1;
}

/* user: a token minted by keywardd, looked up by its hash. */
static int auth_user(
        const AuthRequest *req,
        const char *payload,
        Principals *ps,
        uint8_t hash[TOKEN_HASH_SIZE],
        char **reterr) {
        _cleanup_(token_info_done) TokenInfo t = {};
        int r;

        r = user_token_hash(payload, strlen(payload), hash);
        if (r < 0)
                return r;
        r = store_token_get(req->store, hash, &t);
        if (r == -ENOKEY)
                return set_message(reterr, "auth: invalid user token");
        if (r < 0)
                return r;
        if (t.revoked)
                return set_message(reterr, "auth: user token has been revoked");
        if (t.expires <= req->now_ns)
                return set_message(reterr, "auth: user token has expired");

        r = principals_add(ps, PRINCIPAL_KIND_USER, t.user, t.groups, "user");
        return r < 0 ? r : 1;
}

int auth_request(
        const AuthRequest *req,
        Principals *ret,
        uint8_t ret_token_hash[TOKEN_HASH_SIZE],
        bool *ret_has_token,
        char **reterr_message) {
        Principals ps = {};
        uint8_t hash[TOKEN_HASH_SIZE];
        const char *h = req->authorization;
        bool matched = false, has_token = false;
        char *msg = NULL;
        int r = 0;

        /* A provider matches a header of more than two characters whose first is the version
         * '0' and whose second is the provider's type. */
        if (h && strlen(h) > 2 && h[0] == '0') {
                const char *payload = h + 2;

                switch (h[1]) {
                case 't':
                        matched = true;
                        r = auth_mtls(req, payload, &ps, &msg);
                        /* The fallback may add a service, but why it fails matters to no one:
                         * a 0t caller wants to hear why the host name did not do (Knox
                         * reports the fallback's "no spiffe identity" instead). */
                        if (r >= 0)
                                r = auth_spiffe(req, "spiffe-fallback", &ps, NULL);
                        break;
                case 'u':
                        matched = true;
                        r = auth_user(req, payload, &ps, hash, &msg);
                        has_token = r > 0;
                        break;
                case 's':
                        matched = true;
                        r = auth_spiffe(req, "spiffe", &ps, &msg);
                        break;
                default:
                        break;
                }
        }

        if (r < 0) {
                principals_done(&ps);
                free(msg);
                return r;
        }
        if (ps.n == 0) {
                if (!matched) {
                        free(msg);
                        /* Knox's text, then what was wrong with the header. */
                        msg = strdup(
                                !h ? "No matching authentication providers found: no Authorization header" :
                                     "No matching authentication providers found: Authorization is not "
                                     "0u<token>, 0t<host name> or 0s<anything>");
                        if (!msg)
                                return -ENOMEM;
                }
                *reterr_message = msg;
                return -EACCES;
        }

        free(msg);
        *ret = ps;
        *ret_has_token = has_token;
        if (has_token)
                memcpy(ret_token_hash, hash, TOKEN_HASH_SIZE);
        explicit_bzero(hash, sizeof(hash));
        return 0;
}
