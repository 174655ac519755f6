/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>

#include "bench-tls.h"

SSL_CTX *bench_tls_client_ctx_new(const char *ca, const char *cert, const char *key) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

        if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            (ca && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)) {
                ERR_print_errors_fp(stderr);
                SSL_CTX_free(ctx);
                return NULL;
        }
        SSL_CTX_set_verify(ctx, ca ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
        return ctx;
}

SSL *bench_tls_new(SSL_CTX *ctx, int fd, const char *sni, SSL_SESSION *session) {
        SSL *ssl = SSL_new(ctx);

        if (!ssl || SSL_set_fd(ssl, fd) != 1 || (sni && SSL_set_tlsext_host_name(ssl, sni) != 1)) {
                SSL_free(ssl);
                return NULL;
        }
        if (session)
                (void) SSL_set_session(ssl, session);
        return ssl;
}

short bench_tls_wants(SSL *ssl, int n) {
        switch (SSL_get_error(ssl, n)) {
        case SSL_ERROR_WANT_READ:
                return POLLIN;
        case SSL_ERROR_WANT_WRITE:
                return POLLOUT;
        default:
                return 0;
        }
}
