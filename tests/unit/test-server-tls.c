/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer-cert.h"
#include "server-tls.h"
#include "test-pki.h"
#include "tests.h"

typedef STACK_OF(X509_NAME) X509Names;

/* Made once in main(): a PKI, the server's files in a scratch directory, the trust store. */
static TestPki pki;
static X509_STORE *roots;
static EVP_PKEY *server_key;
static X509 *server_cert;
static char dir[] = "/tmp/test-server-tls.XXXXXX";
static char cert_path[64], key_path[64], ca_path[64];

#define STRV(...) ((const char *const[]){__VA_ARGS__, NULL})

static void path_in_dir(char *buf, size_t size, const char *name) {
        assert_true((size_t) snprintf(buf, size, "%s/%s", dir, name) < size);
}

/* ---- a client --------------------------------------------------------------------------- */

typedef struct Client {
        EVP_PKEY *key;
        X509 *cert;
        bool send_intermediate;
        int max_version;     /* 0: any */
        const char *ciphers; /* TLS 1.2 list, NULL for OpenSSL's */
        const unsigned char *alpn;
        unsigned alpn_len;
} Client;

/* What the client saw of the server's certificate request and tickets. */
static int cert_requests;
static int ca_names_at_request;
static int tickets;

static int client_cert_cb(SSL *ssl, X509 **ret_x509, EVP_PKEY **ret_pkey) {
        const X509Names *names = SSL_get0_peer_CA_list(ssl);

        cert_requests++;
        ca_names_at_request = names ? sk_X509_NAME_num(names) : 0;
        return 0; /* no certificate to offer */
}

static int count_ticket(SSL *ssl, SSL_SESSION *sess) {
        tickets++;
        return 0; /* not kept: the test takes SSL_get1_session() itself */
}

static SSL_CTX *client_ctx_new(const Client *c) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

        assert_non_null(ctx);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* like Knox's dev_client */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, count_ticket);
        if (c && c->cert)
                assert_int_equal(
                        test_pki_ctx_use(ctx, c->cert, &pki.inter, c->send_intermediate ? 1 : 0, c->key), 0);
        else
                SSL_CTX_set_client_cert_cb(ctx, client_cert_cb);
        if (c && c->max_version) {
                if (c->max_version < TLS1_2_VERSION) {
                        /* OpenSSL 3 will not even offer TLS 1.1 above security level 0. */
                        SSL_CTX_set_security_level(ctx, 0);
                        assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION), 1);
                        assert_int_equal(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
                }
                assert_int_equal(SSL_CTX_set_max_proto_version(ctx, c->max_version), 1);
        }
        if (c && c->ciphers)
                assert_int_equal(SSL_CTX_set_cipher_list(ctx, c->ciphers), 1);
        if (c && c->alpn)
                assert_int_equal(SSL_CTX_set_alpn_protos(ctx, c->alpn, c->alpn_len), 0);
        return ctx;
}

/* ---- a connection over a socketpair, both ends non-blocking in this thread ------------ */

typedef struct Conn {
        SSL *client;
        SSL *server;
        int fds[2];
        int server_reason; /* OpenSSL's reason when the server side failed */
} Conn;

static void conn_done(Conn *c) {
        /* The client closes as Go's does, keeping its session resumable; the server's SSL
         * is freed without SSL_shutdown(), as libevent frees it. */
        if (c->client)
                SSL_set_shutdown(c->client, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c->client);
        SSL_free(c->server);
        safe_close(c->fds[0]);
        safe_close(c->fds[1]);
        *c = (Conn){.fds = {-EBADF, -EBADF}};
}

/* 0 on success, -1 when the client failed, -2 when the server failed. */
static int step(SSL *ssl, bool *done) {
        int k, e;

        if (*done)
                return 0;
        k = SSL_do_handshake(ssl);
        if (k == 1) {
                *done = true;
                return 0;
        }
        e = SSL_get_error(ssl, k);
        return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

static int conn_open(Conn *c, SSL_CTX *server_ctx, SSL_CTX *client_ctx, SSL_SESSION *resume) {
        bool client_done = false, server_done = false;

        *c = (Conn){.fds = {-EBADF, -EBADF}};
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, c->fds), 0);
        c->client = SSL_new(client_ctx);
        c->server = SSL_new(server_ctx);
        assert_non_null(c->client);
        assert_non_null(c->server);
        assert_int_equal(SSL_set_fd(c->client, c->fds[0]), 1);
        assert_int_equal(SSL_set_fd(c->server, c->fds[1]), 1);
        SSL_set_connect_state(c->client);
        SSL_set_accept_state(c->server);
        assert_int_equal(SSL_set_tlsext_host_name(c->client, "localhost"), 1);
        if (resume)
                assert_int_equal(SSL_set_session(c->client, resume), 1);

        ERR_clear_error();
        for (int i = 0; i < 100 && !(client_done && server_done); i++) {
                if (step(c->client, &client_done) < 0) {
                        /* Let the server read the alert, then report. */
                        (void) step(c->server, &server_done);
                        ERR_clear_error();
                        return -1;
                }
                if (step(c->server, &server_done) < 0) {
                        c->server_reason = ERR_GET_REASON(ERR_peek_error());
                        ERR_clear_error();
                        return -2;
                }
        }
        assert_true(client_done && server_done);
        return 0;
}

/* Server writes, client reads: moves the TLS 1.3 tickets to the client on the way. */
static void conn_exchange(Conn *c) {
        char buf[16];
        int k = -1;

        assert_int_equal(SSL_write(c->server, "ping", 4), 4);
        for (int i = 0; i < 100 && k <= 0; i++) {
                k = SSL_read(c->client, buf, sizeof(buf));
                if (k <= 0)
                        assert_int_equal(SSL_get_error(c->client, k), SSL_ERROR_WANT_READ);
        }
        assert_int_equal(k, 4);
        assert_memory_equal(buf, "ping", 4);
}

static SSL_CTX *server_ctx_new(void) {
        SSL_CTX *ctx = NULL;

        assert_int_equal(tls_server_ctx_new(cert_path, key_path, &ctx), 0);
        assert_non_null(ctx);
        return ctx;
}

/* A client certificate under the intermediate. */
static void client_with_cert(Client *c, const TestCertSpec *spec) {
        *c = (Client){.send_intermediate = true};
        c->key = test_pki_key_new();
        assert_non_null(c->key);
        c->cert = test_pki_leaf(&pki, spec, c->key, NULL, NULL);
        assert_non_null(c->cert);
}

static void client_done(Client *c) {
        EVP_PKEY_free(c->key);
        X509_free(c->cert);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_ctx_settings(void **state) {
        SSL_CTX *ctx = server_ctx_new();

        assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
        assert_int_equal(SSL_CTX_get_num_tickets(ctx), 1);
        assert_true(SSL_CTX_get_mode(ctx) & SSL_MODE_RELEASE_BUFFERS);
        assert_true(SSL_CTX_get_options(ctx) & SSL_OP_CIPHER_SERVER_PREFERENCE);
        assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
        /* Requested, never required. */
        assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
        assert_true(SSL_CTX_get_session_cache_mode(ctx) & SSL_SESS_CACHE_SERVER);
        assert_int_equal(SSL_CTX_sess_get_cache_size(ctx), TLS_SERVER_SESSION_CACHE_SIZE);
        assert_int_equal(SSL_CTX_get_timeout(ctx), TLS_SERVER_SESSION_TIMEOUT_SEC);
        /* No CA names configured to be sent. */
        assert_int_equal(sk_X509_NAME_num(SSL_CTX_get_client_CA_list(ctx)), 0);
        assert_int_equal(sk_X509_NAME_num(SSL_CTX_get0_CA_list(ctx)), 0);
        SSL_CTX_free(ctx);
}

static void run_no_client_cert(int version) {
        const Client c = {.max_version = version};
        SSL_CTX *sctx = server_ctx_new(), *cctx = client_ctx_new(&c);
        _cleanup_(peer_cert_freep) PeerCert *pc = NULL;
        Conn conn;

        cert_requests = 0;
        ca_names_at_request = -1;
        assert_int_equal(conn_open(&conn, sctx, cctx, NULL), 0);
        assert_int_equal(SSL_version(conn.server), version ?: TLS1_3_VERSION);

        /* The server asked for a certificate, named no CA, and went on without one. */
        assert_int_equal(cert_requests, 1);
        assert_int_equal(ca_names_at_request, 0);
        assert_null(SSL_get0_peer_certificate(conn.server));

        /* Knox's verdict comes per request, from the auth providers. */
        assert_int_equal(peer_cert_from_ssl(conn.server, roots, &pc), 0);
        assert_false(peer_cert_verified(pc));
        assert_string_equal(peer_cert_error(pc), "auth: No peer certs configured");

        conn_exchange(&conn);
        conn_done(&conn);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
}

static void test_no_client_cert(void **state) {
        run_no_client_cert(0);
        run_no_client_cert(TLS1_2_VERSION);
}

static void run_client_cert(const TestCertSpec *spec, int version, const char *expected_error) {
        SSL_CTX *sctx = server_ctx_new(), *cctx;
        _cleanup_(peer_cert_freep) PeerCert *pc = NULL;
        Client c;
        Conn conn;

        client_with_cert(&c, spec);
        c.max_version = version;
        cctx = client_ctx_new(&c);

        /* Whatever the certificate, the handshake completes. */
        assert_int_equal(conn_open(&conn, sctx, cctx, NULL), 0);
        assert_non_null(SSL_get0_peer_certificate(conn.server));
        assert_int_equal(peer_cert_from_ssl(conn.server, roots, &pc), 0);
        if (expected_error) {
                assert_false(peer_cert_verified(pc));
                assert_non_null(strstr(peer_cert_error(pc), expected_error));
        } else {
                _cleanup_free_ char *msg = NULL;

                assert_true(peer_cert_verified(pc));
                assert_int_equal(peer_cert_match_host(pc, "host1.example.com", &msg), 0);
        }

        conn_exchange(&conn);
        conn_done(&conn);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        client_done(&c);
}

static void test_client_cert_good(void **state) {
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};

        run_client_cert(&spec, 0, NULL);
        run_client_cert(&spec, TLS1_2_VERSION, NULL);
}

static void test_client_cert_expired(void **state) {
        /* Knox's dev_client always sends its built-in, long expired certificate; it must
         * still get through the handshake, to use a user token. */
        const TestCertSpec spec = {
                .dns = STRV("host1.example.com"),
                .eku = TEST_EKU_CLIENT,
                .not_before_at = 1519948800,
                .not_after_at = 1677628800,
        };

        run_client_cert(
                &spec, 0,
                "auth: failed to verify client's certificate: x509: certificate has expired or is not yet "
                "valid: current time ");
        run_client_cert(&spec, TLS1_2_VERSION, " is after 2023-03-01T00:00:00Z");
}

static void test_client_cert_bad(void **state) {
        const TestCertSpec server_only = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_SERVER};
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        SSL_CTX *sctx = server_ctx_new(), *cctx;
        _cleanup_(peer_cert_freep) PeerCert *pc = NULL;
        Client c = {};
        Conn conn;

        run_client_cert(&server_only, 0, "x509: certificate specifies an incompatible key usage");

        /* Signed by a CA nobody trusts. */
        c.key = test_pki_key_new();
        assert_non_null(c.key);
        c.cert = test_pki_leaf(&pki, &spec, c.key, pki.other, pki.other_key);
        assert_non_null(c.cert);
        cctx = client_ctx_new(&c);
        assert_int_equal(conn_open(&conn, sctx, cctx, NULL), 0);
        assert_int_equal(peer_cert_from_ssl(conn.server, roots, &pc), 0);
        assert_string_equal(
                peer_cert_error(pc),
                "auth: failed to verify client's certificate: x509: certificate signed by unknown authority");
        conn_done(&conn);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        client_done(&c);
}

/* The CertificateRequest names no CA, in TLS 1.2 and 1.3: Knox's Go client then sends its
 * certificate whoever issued it. The same check on a context that does name its CA shows
 * that the check can see names. */
static int n_names(const X509Names *names) {
        return names ? sk_X509_NAME_num(names) : 0;
}

static void run_ca_names(int version, bool control) {
        const Client c = {.max_version = version};
        SSL_CTX *sctx = server_ctx_new(), *cctx = client_ctx_new(&c);
        Conn conn;

        if (control) {
                assert_int_equal(SSL_CTX_add_client_CA(sctx, pki.root), 1);
                assert_int_equal(SSL_CTX_add1_to_CA_list(sctx, pki.root), 1);
        }
        cert_requests = 0;
        ca_names_at_request = -1;
        assert_int_equal(conn_open(&conn, sctx, cctx, NULL), 0);
        assert_int_equal(cert_requests, 1);
        if (control) {
                assert_int_equal(ca_names_at_request, 1);
                assert_int_equal(n_names(SSL_get_client_CA_list(conn.client)), 1);
        } else {
                assert_int_equal(ca_names_at_request, 0);
                assert_int_equal(n_names(SSL_get0_peer_CA_list(conn.client)), 0);
                assert_int_equal(n_names(SSL_get_client_CA_list(conn.client)), 0);
        }
        conn_done(&conn);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
}

static void test_no_ca_names(void **state) {
        run_ca_names(0, false);
        run_ca_names(TLS1_2_VERSION, false);
        run_ca_names(0, true);
        run_ca_names(TLS1_2_VERSION, true);
}

/* A handshake offering this ALPN list (wire format, NULL: no extension): expected is the
 * protocol both ends must agree on, or NULL for none, or for a refusal when one was offered. */
static void run_alpn(const char *wire, unsigned wire_len, const char *expected) {
        const Client c = {.alpn = (const unsigned char *) wire, .alpn_len = wire_len};
        SSL_CTX *sctx = server_ctx_new(), *cctx = client_ctx_new(&c);
        const unsigned char *sel = NULL;
        unsigned sel_len = 0;
        Conn conn;
        int r;

        r = conn_open(&conn, sctx, cctx, NULL);
        if (!expected && wire) {
                /* Refused with no_application_protocol, as Go's dev_server does. */
                assert_int_equal(r, -2);
                assert_int_equal(conn.server_reason, SSL_R_NO_APPLICATION_PROTOCOL);
        } else {
                assert_int_equal(r, 0);
                SSL_get0_alpn_selected(conn.server, &sel, &sel_len);
                if (expected) {
                        assert_int_equal(sel_len, strlen(expected));
                        assert_memory_equal(sel, expected, sel_len);
                        SSL_get0_alpn_selected(conn.client, &sel, &sel_len);
                        assert_int_equal(sel_len, strlen(expected));
                } else
                        assert_int_equal(sel_len, 0);
        }
        conn_done(&conn);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
}

static void test_alpn(void **state) {
        run_alpn("\x02h2", 3, NULL);
        run_alpn("\x08spdy/3.1\x02h2", 12, NULL);
        run_alpn("\x02h2\x08http/1.1", 12, "http/1.1");
        run_alpn("\x08http/1.1", 9, "http/1.1");
        run_alpn(NULL, 0, NULL); /* no ALPN at all: fine, HTTP/1.1 */
}

static void test_protocol_versions(void **state) {
        SSL_CTX *sctx = server_ctx_new();
        Client c = {.max_version = TLS1_1_VERSION};
        SSL_CTX *cctx = client_ctx_new(&c);
        Conn conn;

        /* TLS 1.1 (and so 1.0) refused. */
        assert_int_equal(conn_open(&conn, sctx, cctx, NULL), -2);
        assert_int_equal(conn.server_reason, SSL_R_UNSUPPORTED_PROTOCOL);
        conn_done(&conn);
        SSL_CTX_free(cctx);

        /* The same client allowed TLS 1.2 gets it; a modern one gets 1.3. */
        c.max_version = TLS1_2_VERSION;
        cctx = client_ctx_new(&c);
        assert_int_equal(conn_open(&conn, sctx, cctx, NULL), 0);
        assert_int_equal(SSL_version(conn.server), TLS1_2_VERSION);
        conn_done(&conn);
        SSL_CTX_free(cctx);

        cctx = client_ctx_new(NULL);
        assert_int_equal(conn_open(&conn, sctx, cctx, NULL), 0);
        assert_int_equal(SSL_version(conn.server), TLS1_3_VERSION);
        conn_done(&conn);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
}

/* The TLS 1.2 suite negotiated for a client offering ciphers, NULL when refused. */
static const char *tls12_cipher(const char *ciphers) {
        static char name[64];
        const Client c = {.max_version = TLS1_2_VERSION, .ciphers = ciphers};
        SSL_CTX *sctx = server_ctx_new(), *cctx = client_ctx_new(&c);
        const char *result = NULL;
        Conn conn;

        if (conn_open(&conn, sctx, cctx, NULL) == 0) {
                snprintf(name, sizeof(name), "%s", SSL_CIPHER_get_name(SSL_get_current_cipher(conn.server)));
                result = name;
        }
        conn_done(&conn);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        return result;
}

static void test_tls12_ciphers(void **state) {
        /* Knox's suite (the server key is ECDSA) and the AES-256 and ChaCha20 siblings. */
        assert_string_equal(tls12_cipher("ECDHE-ECDSA-AES128-GCM-SHA256"), "ECDHE-ECDSA-AES128-GCM-SHA256");
        assert_string_equal(tls12_cipher("ECDHE-ECDSA-AES256-GCM-SHA384"), "ECDHE-ECDSA-AES256-GCM-SHA384");
        assert_string_equal(tls12_cipher("ECDHE-ECDSA-CHACHA20-POLY1305"), "ECDHE-ECDSA-CHACHA20-POLY1305");
        /* The server's preference wins. */
        assert_string_equal(
                tls12_cipher(
                        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256"),
                "ECDHE-ECDSA-AES128-GCM-SHA256");
        /* No CBC, no static key exchange. */
        assert_null(tls12_cipher("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA"));
        assert_null(tls12_cipher("AES128-GCM-SHA256:AES256-GCM-SHA384"));
}

/* A reconnecting client resumes, TLS 1.3 sends a single ticket, and a resumed connection
 * still knows the client's whole chain (the intermediate is not in the store). */
static void run_resumption(int version) {
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        SSL_CTX *sctx = server_ctx_new(), *cctx;
        SSL_SESSION *sess = NULL;
        Client c;
        Conn conn;

        client_with_cert(&c, &spec);
        c.max_version = version;
        cctx = client_ctx_new(&c);

        tickets = 0;
        assert_int_equal(conn_open(&conn, sctx, cctx, NULL), 0);
        assert_false(SSL_session_reused(conn.server));
        conn_exchange(&conn);
        assert_int_equal(tickets, 1);
        sess = SSL_get1_session(conn.client);
        assert_non_null(sess);
        assert_true(SSL_SESSION_is_resumable(sess));
        conn_done(&conn);

        for (int round = 0; round < 3; round++) {
                _cleanup_(peer_cert_freep) PeerCert *pc = NULL;
                _cleanup_free_ char *msg = NULL;

                assert_int_equal(conn_open(&conn, sctx, cctx, sess), 0);
                assert_true(SSL_session_reused(conn.client));
                assert_true(SSL_session_reused(conn.server));

                assert_non_null(SSL_get0_peer_certificate(conn.server));
                assert_int_equal(peer_cert_from_ssl(conn.server, roots, &pc), 0);
                if (!peer_cert_verified(pc))
                        fail_msg("resumed connection: %s", peer_cert_error(pc));
                assert_int_equal(peer_cert_match_host(pc, "host1.example.com", &msg), 0);

                /* Go on with the newest session, as clients do. */
                conn_exchange(&conn);
                SSL_SESSION_free(sess);
                sess = SSL_get1_session(conn.client);
                assert_non_null(sess);
                conn_done(&conn);
        }

        SSL_SESSION_free(sess);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        client_done(&c);
}

static void test_resumption(void **state) {
        run_resumption(0);
        run_resumption(TLS1_2_VERSION);
}

/* A client without a certificate resumes too, and still has none. */
static void test_resumption_no_cert(void **state) {
        SSL_CTX *sctx = server_ctx_new(), *cctx = client_ctx_new(NULL);
        _cleanup_(peer_cert_freep) PeerCert *pc = NULL;
        SSL_SESSION *sess;
        Conn conn;

        assert_int_equal(conn_open(&conn, sctx, cctx, NULL), 0);
        conn_exchange(&conn);
        sess = SSL_get1_session(conn.client);
        conn_done(&conn);

        assert_int_equal(conn_open(&conn, sctx, cctx, sess), 0);
        assert_true(SSL_session_reused(conn.server));
        assert_int_equal(peer_cert_from_ssl(conn.server, roots, &pc), 0);
        assert_string_equal(peer_cert_error(pc), "auth: No peer certs configured");
        conn_done(&conn);
        SSL_SESSION_free(sess);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
}

/* A TLS 1.3 client whose certificate the root issued (no intermediate sent) gets a stateless
 * ticket: a new server context (a restarted keywardd) with the same ticket seed resumes it,
 * and the resumed connection still verifies; under another seed it is a full handshake. A
 * client that sends an intermediate keeps the server-side cache (its chain is kept there),
 * which a new context does not have. */
static void test_resumption_across_restart(void **state) {
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        uint8_t seed[TLS_TICKET_SEED_SIZE], other[TLS_TICKET_SEED_SIZE];
        SSL_CTX *sctx, *cctx, *restarted;
        SSL_SESSION *sess = NULL;
        Client c = {}, ci;
        Conn conn;

        memset(seed, 0x5a, sizeof(seed));
        memset(other, 0xa5, sizeof(other));
        assert_int_equal(tls_set_ticket_seed(seed), 0);

        c.key = test_pki_key_new();
        assert_non_null(c.key);
        c.cert = test_pki_leaf(&pki, &spec, c.key, pki.root, pki.root_key);
        assert_non_null(c.cert);
        cctx = client_ctx_new(&c);

        sctx = server_ctx_new();
        assert_int_equal(conn_open(&conn, sctx, cctx, NULL), 0);
        conn_exchange(&conn);
        sess = SSL_get1_session(conn.client);
        assert_true(SSL_SESSION_is_resumable(sess));
        conn_done(&conn);
        SSL_CTX_free(sctx);

        restarted = server_ctx_new();
        for (int round = 0; round < 2; round++) {
                _cleanup_(peer_cert_freep) PeerCert *pc = NULL;
                _cleanup_free_ char *msg = NULL;

                assert_int_equal(conn_open(&conn, restarted, cctx, sess), 0);
                assert_true(SSL_session_reused(conn.server));
                assert_int_equal(peer_cert_from_ssl(conn.server, roots, &pc), 0);
                if (!peer_cert_verified(pc))
                        fail_msg("resumed after a restart: %s", peer_cert_error(pc));
                assert_int_equal(peer_cert_match_host(pc, "host1.example.com", &msg), 0);
                conn_exchange(&conn);
                SSL_SESSION_free(sess);
                sess = SSL_get1_session(conn.client);
                conn_done(&conn);
        }
        SSL_CTX_free(restarted);

        /* Another master key: its keys do not open the ticket. */
        assert_int_equal(tls_set_ticket_seed(other), 0);
        restarted = server_ctx_new();
        assert_int_equal(conn_open(&conn, restarted, cctx, sess), 0);
        assert_false(SSL_session_reused(conn.server));
        conn_done(&conn);
        SSL_CTX_free(restarted);
        SSL_SESSION_free(sess);
        SSL_CTX_free(cctx);

        /* With an intermediate: resumed by the context that cached it, not by a new one. */
        client_with_cert(&ci, &spec);
        cctx = client_ctx_new(&ci);
        sctx = server_ctx_new();
        assert_int_equal(conn_open(&conn, sctx, cctx, NULL), 0);
        conn_exchange(&conn);
        sess = SSL_get1_session(conn.client);
        conn_done(&conn);
        assert_int_equal(conn_open(&conn, sctx, cctx, sess), 0);
        assert_true(SSL_session_reused(conn.server));
        conn_done(&conn);
        restarted = server_ctx_new();
        assert_int_equal(conn_open(&conn, restarted, cctx, sess), 0);
        assert_false(SSL_session_reused(conn.server));
        conn_done(&conn);

        SSL_SESSION_free(sess);
        SSL_CTX_free(restarted);
        SSL_CTX_free(sctx);
        SSL_CTX_free(cctx);
        client_done(&ci);
        client_done(&c);
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, true);
        assert_int_equal(fclose(f), 0);
}

static void test_load_errors(void **state) {
        char missing[96], garbage[96], empty[96], other_key[96], encrypted[96];
        _cleanup_pkey_ EVP_PKEY *k = test_pki_key_new();
        SSL_CTX *ctx = (SSL_CTX *) 0x1;
        X509_STORE *store = (X509_STORE *) 0x1;

        assert_non_null(k);
        path_in_dir(missing, sizeof(missing), "missing.pem");
        path_in_dir(garbage, sizeof(garbage), "garbage.pem");
        path_in_dir(empty, sizeof(empty), "empty.pem");
        path_in_dir(other_key, sizeof(other_key), "other-key.pem");
        path_in_dir(encrypted, sizeof(encrypted), "encrypted-key.pem");
        write_file(garbage, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n");
        write_file(empty, "");
        assert_int_equal(test_pki_write_key(other_key, k, NULL), 0);
        assert_int_equal(test_pki_write_key(encrypted, server_key, "secret"), 0);

        assert_int_equal(tls_server_ctx_new(missing, key_path, &ctx), -ENOENT);
        assert_int_equal(tls_server_ctx_new(cert_path, missing, &ctx), -ENOENT);
        assert_int_equal(tls_server_ctx_new(dir, key_path, &ctx), -EISDIR);
        assert_int_equal(tls_server_ctx_new(garbage, key_path, &ctx), -EBADMSG);
        assert_int_equal(tls_server_ctx_new(empty, key_path, &ctx), -EBADMSG);
        assert_int_equal(tls_server_ctx_new(cert_path, garbage, &ctx), -EBADMSG);
        assert_int_equal(tls_server_ctx_new(cert_path, empty, &ctx), -EBADMSG);
        assert_int_equal(tls_server_ctx_new(cert_path, cert_path, &ctx), -EBADMSG);
        assert_int_equal(tls_server_ctx_new(cert_path, other_key, &ctx), -EKEYREJECTED);
        assert_int_equal(tls_server_ctx_new(cert_path, encrypted, &ctx), -ENOKEY);
        assert_ptr_equal(ctx, (SSL_CTX *) 0x1); /* untouched on failure */

        assert_int_equal(tls_client_roots_new(missing, &store), -ENOENT);
        assert_int_equal(tls_client_roots_new(empty, &store), -EBADMSG);
        assert_int_equal(tls_client_roots_new(garbage, &store), -EBADMSG);
        assert_int_equal(tls_client_roots_new(key_path, &store), -EBADMSG);
        assert_ptr_equal(store, (X509_STORE *) 0x1);

        /* Each failure was translated once and left nothing behind. */
        assert_int_equal(ERR_peek_error(), 0);
}

static void test_client_roots(void **state) {
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        _cleanup_pkey_ EVP_PKEY *k = test_pki_key_new();
        _cleanup_x509_ X509 *leaf = NULL, *stranger = NULL;
        _cleanup_chain_ X509Chain *chain = test_pki_chain(&pki.inter, 1);
        X509_STORE *store = NULL;
        PeerCert *pc = NULL;

        assert_non_null(k);
        leaf = test_pki_leaf(&pki, &spec, k, NULL, NULL);
        stranger = test_pki_leaf(&pki, &spec, k, pki.impostor, pki.impostor_key);
        assert_non_null(leaf);
        assert_non_null(stranger);

        /* ca_path holds the root and the "other" CA. */
        assert_int_equal(tls_client_roots_new(ca_path, &store), 0);
        assert_non_null(store);
        assert_int_equal(peer_cert_verify(leaf, chain, store, time(NULL), &pc), 0);
        assert_true(peer_cert_verified(pc));
        pc = peer_cert_free(pc);
        assert_int_equal(peer_cert_verify(stranger, NULL, store, time(NULL), &pc), 0);
        assert_false(peer_cert_verified(pc));
        pc = peer_cert_free(pc);

        /* The store caches verified chains: the same chain again is the same verdict, and a
         * leaf sent alone is judged on its own. */
        {
                PeerCert *again = NULL;
                _cleanup_x509_ X509 *direct = test_pki_leaf(&pki, &spec, k, pki.root, pki.root_key);

                assert_non_null(direct);
                assert_int_equal(peer_cert_verify(leaf, chain, store, time(NULL), &pc), 0);
                assert_int_equal(peer_cert_verify(leaf, chain, store, time(NULL), &again), 0);
                assert_ptr_equal(pc, again);
                again = peer_cert_free(again);
                pc = peer_cert_free(pc);

                assert_int_equal(peer_cert_verify(direct, NULL, store, time(NULL), &pc), 0);
                assert_true(peer_cert_verified(pc));
                pc = peer_cert_free(pc);
                assert_int_equal(peer_cert_verify(stranger, NULL, store, time(NULL), &pc), 0);
                assert_false(peer_cert_verified(pc));
                pc = peer_cert_free(pc);
        }
        X509_STORE_free(store);
}

/* The subject CN of the certificate a fresh client sees. */
static void served_cn(SSL_CTX *sctx, char *buf, size_t size) {
        SSL_CTX *cctx = client_ctx_new(NULL);
        Conn conn;

        assert_int_equal(conn_open(&conn, sctx, cctx, NULL), 0);
        assert_non_null(SSL_get0_peer_certificate(conn.client));
        assert_true(
                X509_NAME_get_text_by_NID(
                        X509_get_subject_name(SSL_get0_peer_certificate(conn.client)), NID_commonName, buf,
                        (int) size) > 0);
        conn_done(&conn);
        SSL_CTX_free(cctx);
}

static void test_reload(void **state) {
        const TestCertSpec spec = {.cn = "renewed", .dns = STRV("localhost"), .eku = TEST_EKU_SERVER};
        char c_path[96], k_path[96], cn[64];
        _cleanup_pkey_ EVP_PKEY *k2 = test_pki_key_new();
        _cleanup_x509_ X509 *cert2 = NULL;
        SSL_CTX *ctx = NULL, *ctx2 = NULL, *ctx3 = (SSL_CTX *) 0x1, *plain;
        X509 *chain[2];

        assert_non_null(k2);
        path_in_dir(c_path, sizeof(c_path), "reload-cert.pem");
        path_in_dir(k_path, sizeof(k_path), "reload-key.pem");
        chain[0] = server_cert;
        chain[1] = pki.inter;
        assert_int_equal(test_pki_write_certs(c_path, chain, 2), 0);
        assert_int_equal(test_pki_write_key(k_path, server_key, NULL), 0);

        assert_int_equal(tls_server_ctx_new(c_path, k_path, &ctx), 0);
        served_cn(ctx, cn, sizeof(cn));
        assert_string_equal(cn, "localhost");

        /* The certificate is renewed on disk; SIGHUP builds a context from the same paths. */
        cert2 = test_pki_leaf(&pki, &spec, k2, NULL, NULL);
        assert_non_null(cert2);
        chain[0] = cert2;
        assert_int_equal(test_pki_write_certs(c_path, chain, 2), 0);
        assert_int_equal(test_pki_write_key(k_path, k2, NULL), 0);
        assert_int_equal(tls_server_ctx_reload(ctx, &ctx2), 0);
        served_cn(ctx2, cn, sizeof(cn));
        assert_string_equal(cn, "renewed");
        served_cn(ctx, cn, sizeof(cn)); /* the old one still serves the old certificate */
        assert_string_equal(cn, "localhost");

        /* A half-written renewal fails the reload and changes nothing. */
        write_file(k_path, "");
        assert_int_equal(tls_server_ctx_reload(ctx2, &ctx3), -EBADMSG);
        assert_ptr_equal(ctx3, (SSL_CTX *) 0x1);
        served_cn(ctx2, cn, sizeof(cn));
        assert_string_equal(cn, "renewed");

        /* A context we did not make has no paths to reload from. */
        plain = SSL_CTX_new(TLS_server_method());
        assert_non_null(plain);
        assert_int_equal(tls_server_ctx_reload(plain, &ctx3), -EINVAL);
        SSL_CTX_free(plain);

        SSL_CTX_free(ctx);
        SSL_CTX_free(ctx2);
}

static int setup_files(void) {
        const TestCertSpec spec = {.cn = "localhost", .dns = STRV("localhost"), .eku = TEST_EKU_SERVER};
        X509 *chain[2], *cas[2];

        if (test_pki_init(&pki) < 0 || !(roots = test_pki_store(&pki)))
                return -1;
        server_key = test_pki_key_new();
        if (!server_key)
                return -1;
        server_cert = test_pki_leaf(&pki, &spec, server_key, NULL, NULL);
        if (!server_cert || !mkdtemp(dir))
                return -1;
        (void) snprintf(cert_path, sizeof(cert_path), "%s/server.pem", dir);
        (void) snprintf(key_path, sizeof(key_path), "%s/server-key.pem", dir);
        (void) snprintf(ca_path, sizeof(ca_path), "%s/client-ca.pem", dir);
        chain[0] = server_cert;
        chain[1] = pki.inter;
        cas[0] = pki.root;
        cas[1] = pki.other;
        if (test_pki_write_certs(cert_path, chain, 2) < 0 ||
            test_pki_write_key(key_path, server_key, NULL) < 0 || test_pki_write_certs(ca_path, cas, 2) < 0)
                return -1;
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ctx_settings),
                cmocka_unit_test(test_no_client_cert),
                cmocka_unit_test(test_client_cert_good),
                cmocka_unit_test(test_client_cert_expired),
                cmocka_unit_test(test_client_cert_bad),
                cmocka_unit_test(test_no_ca_names),
                cmocka_unit_test(test_alpn),
                cmocka_unit_test(test_protocol_versions),
                cmocka_unit_test(test_tls12_ciphers),
                cmocka_unit_test(test_resumption),
                cmocka_unit_test(test_resumption_no_cert),
                cmocka_unit_test(test_resumption_across_restart),
                cmocka_unit_test(test_load_errors),
                cmocka_unit_test(test_client_roots),
                cmocka_unit_test(test_reload),
        };
        int r = EXIT_FAILURE;

        if (setup_files() == 0)
                r = cmocka_run_group_tests(tests, NULL, NULL);
        else
                fprintf(stderr, "Failed to set up the test PKI.\n");

        if (dir[strlen(dir) - 1] != 'X')
                (void) tests_rm_rf(dir);
        X509_free(server_cert);
        EVP_PKEY_free(server_key);
        X509_STORE_free(roots);
        test_pki_done(&pki);
        return r;
}
