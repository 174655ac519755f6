/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "peer-cert.h"
#include "secret.h"

/* TLS 1.2 suites, in our order of preference. Knox's dev_server allows only the two
 * ECDHE AES-128-GCM suites; we also accept their AES-256-GCM and ChaCha20-Poly1305
 * siblings, so that clients whose policy demands 256-bit keys, or that lack AES hardware
 * and offer ChaCha20 only, can connect. All six are ECDHE (forward secret) AEAD suites,
 * so nothing weaker than Knox's pair is ever negotiated. TLS 1.3 suites are all AEAD;
 * AES-128-GCM goes first as the cheapest with AES-NI. */
#define TLS12_CIPHERS                                                \
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "X25519:P-256:P-384:P-521"

typedef STACK_OF(X509_OBJECT) X509Objects;

DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(SSL_CTX *, SSL_CTX_free, NULL);
DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(X509_STORE *, X509_STORE_free, NULL);

/* Translate the OpenSSL error queue into one errno, once, and empty it. File errors carry
 * the errno of the failed fopen(); the rest is mapped by reason. Each queued error is
 * logged at debug level, where OpenSSL's wording helps and cannot leak anything. */
static int tls_translate_error(int fallback) {
        const char *file = NULL, *func = NULL, *data = NULL;
        int line = 0, flags = 0, r = 0;
        bool sys_seen = false;
        unsigned long e;

        while ((e = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
                int lib = ERR_GET_LIB(e), reason = ERR_GET_REASON(e), mapped = 0;
                char buf[256];

                ERR_error_string_n(e, buf, sizeof(buf));
                log_debug(
                        "OpenSSL: %s%s%s", buf, data && (flags & ERR_TXT_STRING) ? ": " : "",
                        data && (flags & ERR_TXT_STRING) ? data : "");

                if (lib == ERR_LIB_SYS && reason > 0) {
                        /* The errno of a failed fopen() says it best; it comes first. */
                        if (!sys_seen)
                                r = -reason;
                        sys_seen = true;
                        continue;
                }
                if (reason == ERR_R_MALLOC_FAILURE)
                        mapped = -ENOMEM;
                else if (
                        (lib == ERR_LIB_X509 &&
                         (reason == X509_R_KEY_VALUES_MISMATCH || reason == X509_R_KEY_TYPE_MISMATCH)) ||
                        (lib == ERR_LIB_SSL &&
                         (reason == SSL_R_PRIVATE_KEY_MISMATCH || reason == SSL_R_NO_PRIVATE_KEY_ASSIGNED)))
                        mapped = -EKEYREJECTED;
                else if (
                        lib == ERR_LIB_PEM &&
                        (reason == PEM_R_BAD_PASSWORD_READ || reason == PEM_R_PROBLEMS_GETTING_PASSWORD))
                        mapped = -ENOKEY;
                if (r == 0)
                        r = mapped;
        }
        return r != 0 ? r : fallback;
}

/* The client's certificate never fails the handshake (protocol.md §1): peer-cert.c
 * judges it per connection and the auth providers per request. Since OpenSSL's own chain
 * check would be thrown away, skip it; the mark keeps SSL_get_verify_result() from ever
 * claiming X509_V_OK. The possession proof (CertificateVerify) is still checked. */
static int cert_verify_skip(X509_STORE_CTX *store_ctx, void *userdata) {
        X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
        return 1;
}

/* Belt and braces should cert_verify_skip() ever be removed: accept whatever OpenSSL
 * thinks of the chain. */
static int verify_accept_all(int preverify_ok, X509_STORE_CTX *store_ctx) {
        return 1;
}

/* ALPN: http/1.1 only, like dev_server. A client that offers no ALPN never gets here and
 * is served HTTP/1.1; one that offers only other protocols (h2 alone) gets Go's and RFC
 * 7301's answer, the no_application_protocol alert. */
static int alpn_select(
        SSL *ssl,
        const unsigned char **out,
        unsigned char *outlen,
        const unsigned char *in,
        unsigned inlen,
        void *userdata) {

        for (unsigned i = 0; i < inlen;) {
                unsigned n = in[i];

                if (n > inlen - i - 1)
                        break;
                if (n == STRLEN(TLS_ALPN_HTTP_1_1) && memcmp(in + i + 1, TLS_ALPN_HTTP_1_1, n) == 0) {
                        *out = in + i + 1;
                        *outlen = (unsigned char) n;
                        return SSL_TLSEXT_ERR_OK;
                }
                i += 1 + n;
        }
        return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Never prompt on a terminal for a key passphrase: an encrypted key simply fails, and we
 * note that it asked. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata) {
        bool *asked = userdata;

        if (asked)
                *asked = true;
        return 0;
}

/* The paths a context was built from, kept on it for tls_server_ctx_reload(). */
typedef struct TlsPaths {
        char *cert;
        char *key;
} TlsPaths;

static int paths_index = -1;
static pthread_once_t paths_once = PTHREAD_ONCE_INIT;

static void paths_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
        TlsPaths *p = ptr;

        if (!p)
                return;
        free(p->cert);
        free(p->key);
        free(p);
}

/* OpenSSL drops a session from the cache when its connection is freed before a
 * close_notify was sent (ssl_clear_bad_session()). libevent frees the SSL without
 * SSL_shutdown() and most clients just close, so no session would ever be resumed. Like
 * nginx, keep the sessions of connections whose handshake completed: mark them shut down
 * right before OpenSSL looks (SSL_free() frees the ex_data first, and calls this for every
 * SSL, data or not). A connection that ended in a fatal alert lost its session then. */
static void ssl_keep_session(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
        SSL *ssl = parent;

        if (!ssl || !SSL_is_server(ssl) || !SSL_is_init_finished(ssl))
                return;
        if (!SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), paths_index))
                return; /* not one of our contexts */
        SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_SENT_SHUTDOWN);
}

static int keep_session_index = -1;

static void paths_index_init(void) {
        paths_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, paths_free);
        if (paths_index >= 0)
                keep_session_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, ssl_keep_session);
}

static int ctx_set_paths(SSL_CTX *ctx, const char *cert, const char *key) {
        TlsPaths *p;

        if (pthread_once(&paths_once, paths_index_init) != 0 || paths_index < 0 || keep_session_index < 0)
                return -ENOMEM;
        p = calloc(1, sizeof(TlsPaths));
        if (!p)
                return -ENOMEM;
        p->cert = strdup(cert);
        p->key = strdup(key);
        if (!p->cert || !p->key || SSL_CTX_set_ex_data(ctx, paths_index, p) != 1) {
                paths_free(NULL, p, NULL, 0, 0, NULL);
                return -ENOMEM;
        }
        return 0;
}

/* A readable file, not a directory (which fopen() would open, for OpenSSL to find no PEM
 * in): the precise errno before OpenSSL's more general complaint. */
static int check_file(const char *path) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        return 0;
}

/* ---- Session tickets ----
 * A ticket key per period: name (8 bytes derived, then the period's number, big-endian),
 * AES-256-CBC key and HMAC-SHA256 key, all HKDF-SHA256 of the seed with the period's number.
 * The two periods in use are kept derived; the seed and the keys live in one locked page. */
typedef struct TicketKey {
        uint64_t period;
        bool valid;
        uint8_t name[16];
        uint8_t aes[32];
        uint8_t hmac[32];
} TicketKey;

typedef struct TicketKeys {
        uint8_t seed[TLS_TICKET_SEED_SIZE];
        bool seeded;
        TicketKey slot[2];
} TicketKeys;

#define TICKET_KEY_INFO "keywardd TLS session ticket key"

static pthread_mutex_t ticket_lock = PTHREAD_MUTEX_INITIALIZER;
static Secret *ticket_keys; /* holds a TicketKeys */

/* Under ticket_lock. */
static TicketKeys *ticket_keys_get(void) {
        TicketKeys *k;

        if (!ticket_keys) {
                ticket_keys = secret_new(sizeof(TicketKeys));
                if (!ticket_keys)
                        return NULL;
                memset(ticket_keys->data, 0, sizeof(TicketKeys));
        }
        k = (TicketKeys *) ticket_keys->data;
        if (!k->seeded) {
                if (RAND_priv_bytes(k->seed, sizeof(k->seed)) != 1)
                        return NULL;
                k->seeded = true;
        }
        return k;
}

int tls_set_ticket_seed(const uint8_t seed[static TLS_TICKET_SEED_SIZE]) {
        TicketKeys *k;
        int r = 0;

        assert_return(seed, -EINVAL);

        pthread_mutex_lock(&ticket_lock);
        k = ticket_keys_get();
        if (!k)
                r = -ENOMEM;
        else {
                explicit_bzero(k, sizeof(TicketKeys));
                memcpy(k->seed, seed, TLS_TICKET_SEED_SIZE);
                k->seeded = true;
        }
        pthread_mutex_unlock(&ticket_lock);
        return r;
}

static int
ticket_key_derive(const uint8_t seed[static TLS_TICKET_SEED_SIZE], uint64_t period, TicketKey *ret) {
        uint8_t info[sizeof(TICKET_KEY_INFO) + 8], out[8 + 32 + 32];
        EVP_PKEY_CTX *ctx;
        size_t n = sizeof(out);
        int r = -EIO;

        memcpy(info, TICKET_KEY_INFO, sizeof(TICKET_KEY_INFO));
        for (int i = 0; i < 8; i++)
                info[sizeof(TICKET_KEY_INFO) + i] = (uint8_t) (period >> (56 - 8 * i));
        ERR_clear_error();
        ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
        if (!ctx)
                return -ENOMEM;
        if (EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0 &&
            EVP_PKEY_CTX_set1_hkdf_key(ctx, seed, TLS_TICKET_SEED_SIZE) > 0 &&
            EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int) sizeof(info)) > 0 &&
            EVP_PKEY_derive(ctx, out, &n) > 0 && n == sizeof(out))
                r = 0;
        EVP_PKEY_CTX_free(ctx);
        if (r == 0) {
                ret->period = period;
                ret->valid = true;
                memcpy(ret->name, out, 8);
                memcpy(ret->name + 8, info + sizeof(TICKET_KEY_INFO), 8);
                memcpy(ret->aes, out + 8, 32);
                memcpy(ret->hmac, out + 40, 32);
        } else
                ERR_clear_error();
        explicit_bzero(out, sizeof(out));
        return r;
}

/* A copy of the key of that period, into ret (which the caller wipes). */
static int ticket_key(uint64_t period, TicketKey *ret) {
        TicketKeys *k;
        TicketKey *slot = NULL;
        int r = 0;

        pthread_mutex_lock(&ticket_lock);
        k = ticket_keys_get();
        if (!k)
                r = -ENOMEM;
        else {
                for (size_t i = 0; i < ELEMENTSOF(k->slot); i++)
                        if (k->slot[i].valid && k->slot[i].period == period)
                                slot = &k->slot[i];
                if (!slot) {
                        /* Replace the older period. */
                        slot = &k->slot[0];
                        if (k->slot[1].period < slot->period || !k->slot[1].valid)
                                slot = &k->slot[1];
                        r = ticket_key_derive(k->seed, period, slot);
                        if (r < 0)
                                explicit_bzero(slot, sizeof(*slot));
                }
                if (r >= 0)
                        *ret = *slot;
        }
        pthread_mutex_unlock(&ticket_lock);
        return r;
}

static int ticket_mac_init(EVP_MAC_CTX *hctx, const TicketKey *key) {
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *) key->hmac, sizeof(key->hmac)),
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0),
                OSSL_PARAM_construct_end(),
        };

        return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -EIO;
}

/* OpenSSL's ticket key callback: 1 sealed or opened, 2 opened with last period's key (send a
 * fresh ticket), 0 not ours or too old (a full handshake), -1 error. */
static int ticket_key_cb(
        SSL *ssl,
        unsigned char key_name[16],
        unsigned char *iv,
        EVP_CIPHER_CTX *cctx,
        EVP_MAC_CTX *hctx,
        int enc) {
        uint64_t now = (uint64_t) time(NULL) / TLS_TICKET_KEY_PERIOD_SEC, period = 0;
        TicketKey key = {};
        int r;

        if (enc) {
                if (ticket_key(now, &key) < 0 || RAND_bytes(iv, 16) != 1) {
                        r = -1;
                        goto finish;
                }
                memcpy(key_name, key.name, sizeof(key.name));
                r = EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv) == 1 &&
                                ticket_mac_init(hctx, &key) == 0 ?
                        1 :
                        -1;
                goto finish;
        }

        for (int i = 0; i < 8; i++)
                period = period << 8 | key_name[8 + i];
        if (period != now && period + 1 != now) {
                r = 0;
                goto finish;
        }
        if (ticket_key(period, &key) < 0) {
                r = -1;
                goto finish;
        }
        if (CRYPTO_memcmp(key.name, key_name, 8) != 0) {
                r = 0; /* another master key's */
                goto finish;
        }
        if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv) != 1 ||
            ticket_mac_init(hctx, &key) < 0) {
                r = -1;
                goto finish;
        }
        r = period == now ? 1 : 2;
finish:
        explicit_bzero(&key, sizeof(key));
        return r;
}

/* Which kind of TLS 1.3 ticket a connection's client presents: a stateful one is a cache key
 * of SSL_MAX_SSL_SESSION_ID_LENGTH bytes, a stateless one is far longer. OpenSSL reads it the
 * way SSL_OP_NO_TICKET says, so set that per connection before it looks. */
static int client_hello_cb(SSL *ssl, int *alert, void *userdata) {
        const unsigned char *p;
        size_t len;

        /* pre_shared_key: identities<7..2^16-1>, the first one's length after the list's.
         * Without one (or when OpenSSL calls again once it has taken the extension) the
         * option stays as it is: the context's SSL_OP_NO_TICKET, or what was decided here. */
        if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_psk, &p, &len) != 1 || len < 4)
                return SSL_CLIENT_HELLO_SUCCESS;
        if (((size_t) p[2] << 8 | p[3]) == SSL_MAX_SSL_SESSION_ID_LENGTH)
                SSL_set_options(ssl, SSL_OP_NO_TICKET);
        else
                SSL_clear_options(ssl, SSL_OP_NO_TICKET);
        return SSL_CLIENT_HELLO_SUCCESS;
}

/* Before each TLS 1.3 ticket: stateless when the client sent no intermediate (the leaf the
 * ticket carries is all peer-cert.c needs: a self-signed certificate sent along, such as the
 * root that OpenSSL's clients add to their chain, is never used, the store has the anchors),
 * stateful (the cache keeps the chain) otherwise. */
static int ticket_generate_cb(SSL *ssl, void *userdata) {
        STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
        bool intermediates = false;

        if (SSL_version(ssl) != TLS1_3_VERSION)
                return 1;
        for (int i = 0; chain && i < sk_X509_num(chain) && !intermediates; i++)
                intermediates = !(X509_get_extension_flags(sk_X509_value(chain, i)) & EXFLAG_SS);
        if (intermediates)
                SSL_set_options(ssl, SSL_OP_NO_TICKET);
        else
                SSL_clear_options(ssl, SSL_OP_NO_TICKET);
        return 1;
}

static SSL_TICKET_RETURN ticket_decrypt_cb(
        SSL *ssl,
        SSL_SESSION *session,
        const unsigned char *key_name,
        size_t key_name_len,
        SSL_TICKET_STATUS status,
        void *userdata) {

        /* A TLS 1.3 client uses a ticket once (RFC 8446, C.4): it gets a fresh one each time,
         * as it does from the cache. */
        switch (status) {
        case SSL_TICKET_SUCCESS:
        case SSL_TICKET_SUCCESS_RENEW:
                return SSL_TICKET_RETURN_USE_RENEW;
        case SSL_TICKET_FATAL_ERR_MALLOC:
        case SSL_TICKET_FATAL_ERR_OTHER:
                return SSL_TICKET_RETURN_ABORT;
        default:
                return SSL_TICKET_RETURN_IGNORE_RENEW;
        }
}

static int ctx_configure(SSL_CTX *ctx) {
        static const unsigned char sid_ctx[] = TLS_SERVER_SESSION_ID_CONTEXT;

        if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
            SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
            SSL_CTX_set_ciphersuites(ctx, TLS13_CIPHERSUITES) != 1 ||
            SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1)
                return tls_translate_error(-EIO);

        /* No client-initiated renegotiation (a cheap way to make a server work hard);
         * SSL_OP_NO_TICKET selects the server-side cache for TLS 1.2 and stateful TLS 1.3
         * tickets (see server-tls.h for why); decrypted requests (a POST's secret, a token)
         * are wiped from OpenSSL's read buffer once handed over (libevent's copies:
         * wipe-alloc.c). */
        SSL_CTX_set_options(
                ctx,
                SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                        SSL_OP_NO_COMPRESSION | SSL_OP_CLEANSE_PLAINTEXT);
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

        /* Request a certificate, never require one, never fail on it, name no CA: no
         * SSL_CTX_set_client_CA_list() here, so the CertificateRequest carries no
         * certificate_authorities and clients send whatever certificate they have. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_accept_all);
        SSL_CTX_set_cert_verify_callback(ctx, cert_verify_skip, NULL);

        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
        SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);

        /* Resumption. A session ID context is mandatory with SSL_VERIFY_PEER, or OpenSSL
         * refuses to cache and to resume. */
        if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1)
                return tls_translate_error(-EIO);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, TLS_SERVER_SESSION_CACHE_SIZE);
        SSL_CTX_set_timeout(ctx, TLS_SERVER_SESSION_TIMEOUT_SEC);
        if (SSL_CTX_set_num_tickets(ctx, TLS_SERVER_NUM_TICKETS) != 1)
                return tls_translate_error(-EIO);

        /* Stateless TLS 1.3 tickets under keys derived from the master key, for clients
         * without intermediates (see server-tls.h); SSL_OP_NO_TICKET above stays the default
         * for the rest and for TLS 1.2. */
        SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
        if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) != 1 ||
            SSL_CTX_set_session_ticket_cb(ctx, ticket_generate_cb, ticket_decrypt_cb, NULL) != 1)
                return tls_translate_error(-EIO);
        return 0;
}

int tls_server_ctx_new(const char *cert_chain_path, const char *key_path, SSL_CTX **ret) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        bool asked = false;
        int k, r;

        assert_return(cert_chain_path, -EINVAL);
        assert_return(key_path, -EINVAL);
        assert_return(ret, -EINVAL);

        r = check_file(cert_chain_path);
        if (r < 0)
                return log_debug_errno(r, "Cannot read the certificate chain '%s': %m", cert_chain_path);
        r = check_file(key_path);
        if (r < 0)
                return log_debug_errno(r, "Cannot read the private key '%s': %m", key_path);

        ERR_clear_error();

        ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx)
                return tls_translate_error(-ENOMEM);

        r = ctx_configure(ctx);
        if (r < 0)
                return r;

        if (SSL_CTX_use_certificate_chain_file(ctx, cert_chain_path) != 1) {
                r = tls_translate_error(-EBADMSG);
                log_debug("Failed to load the certificate chain '%s'.", cert_chain_path);
                return r;
        }
        SSL_CTX_set_default_passwd_cb_userdata(ctx, &asked);
        k = SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM);
        SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
        if (k != 1) {
                r = tls_translate_error(-EBADMSG);
                if (asked)
                        r = -ENOKEY; /* OpenSSL 3 reports a failed decryption, not the reason */
                log_debug(
                        "Failed to load the private key '%s'%s.", key_path,
                        asked ? " (passphrase-protected)" : "");
                return r;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
                r = tls_translate_error(-EKEYREJECTED);
                log_debug(
                        "The key '%s' does not belong to the certificate '%s'.", key_path, cert_chain_path);
                return r;
        }

        r = ctx_set_paths(ctx, cert_chain_path, key_path);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(ctx);
        return 0;
}

int tls_server_ctx_reload(SSL_CTX *old, SSL_CTX **ret) {
        const TlsPaths *p;

        assert_return(old, -EINVAL);
        assert_return(ret, -EINVAL);

        if (pthread_once(&paths_once, paths_index_init) != 0 || paths_index < 0)
                return -EINVAL;
        p = SSL_CTX_get_ex_data(old, paths_index);
        if (!p)
                return -EINVAL; /* not made by tls_server_ctx_new() */

        return tls_server_ctx_new(p->cert, p->key, ret);
}

int tls_client_roots_new(const char *ca_path, X509_STORE **ret) {
        _cleanup_(X509_STORE_freep) X509_STORE *store = NULL;
        X509Objects *objs;
        size_t n_certs = 0;
        int r;

        assert_return(ca_path, -EINVAL);
        assert_return(ret, -EINVAL);

        r = check_file(ca_path);
        if (r < 0)
                return log_debug_errno(r, "Cannot read the client CA file '%s': %m", ca_path);

        ERR_clear_error();

        store = X509_STORE_new();
        if (!store)
                return tls_translate_error(-ENOMEM);
        if (X509_STORE_load_file(store, ca_path) != 1) {
                r = tls_translate_error(-EBADMSG);
                log_debug("Failed to load the client CA file '%s'.", ca_path);
                return r;
        }

        objs = X509_STORE_get0_objects(store);
        for (int i = 0; i < sk_X509_OBJECT_num(objs); i++)
                if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objs, i)) == X509_LU_X509)
                        n_certs++;
        if (n_certs == 0) {
                log_debug("The client CA file '%s' holds no certificate.", ca_path);
                return -EBADMSG;
        }

        r = peer_cert_cache_attach(store, TLS_CLIENT_VERIFY_CACHE_SIZE);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(store);
        return 0;
}
