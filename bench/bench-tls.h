/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/bench-tls: the bench clients' OpenSSL set-up, the same for every client so that the
 * client side costs the same against every server measured. */
#pragma once

#include <openssl/ssl.h>

/* A TLS client context presenting cert and key (PEM). With ca, the server's certificate is
 * verified against it; without, not at all (as Knox's dev_client). NULL on failure, with
 * OpenSSL's errors printed to stderr. */
SSL_CTX *bench_tls_client_ctx_new(const char *ca, const char *cert, const char *key);

/* An SSL on the connected (or connecting) socket fd, sending sni when not NULL and offering
 * session when not NULL. NULL on failure. */
SSL *bench_tls_new(SSL_CTX *ctx, int fd, const char *sni, SSL_SESSION *session);

/* After a call on a non-blocking ssl returned n (<= 0): POLLIN or POLLOUT (EPOLLIN, EPOLLOUT)
 * when OpenSSL waits to read or to write, 0 when the connection failed. */
short bench_tls_wants(SSL *ssl, int n);
