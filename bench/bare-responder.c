/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/bare-responder: the baseline of bench/server. A bare libevent evhttp server over
 * OpenSSL bufferevents, one event loop, that answers every GET with the same small JSON body
 * (about the size of a Knox GET-key reply) and does nothing else: no routing, no
 * authentication beyond TLS, no store, no audit.
 *
 * Two TLS set-ups:
 *   --tls keywardd  (default) the very context keywardd uses, from tls_server_ctx_new() in
 *                   server/server-tls.c; the client chain is verified once per connection
 *                   against --client-ca, as keywardd does, with plain X509_verify_cert().
 *   --tls defaults  OpenSSL's defaults for a mutual-TLS server: the certificate and key, a
 *                   client certificate required and verified in the handshake against
 *                   --client-ca, a session ID context (needed to resume at all), nothing more.
 *
 * Usage: bare-responder --listen 127.0.0.1:0 --tls-cert F --tls-key F --client-ca F
 *                       [--tls keywardd|defaults] [--body-file F] [--ready-file F] */

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "bench-util.h"
#include "server-tls.h"

/* A Knox GET-key reply for a key with one 32-byte version, as keywardd sends it. */
#define DEFAULT_BODY                                                                                       \
        "{\"status\":\"ok\",\"code\":0,\"host\":\"testhost\",\"ts\":1700000000123456789,\"message\":\"\"," \
        "\"data\":{\"id\":\"bench:key\",\"acl\":[],\"versions\":[{\"id\":5577006791947779410,"             \
        "\"data\":\"QmVuY2htYXJrIHNlY3JldCwgMzIgYnl0ZXMgbG9uZyE=\",\"status\":\"Primary\","                \
        "\"ts\":1700000000012345678}],"                                                                    \
        "\"hash\":\"7c9fa136d4413fa6173637e883b6998d32e1d675f88cddff9dcbcf331820f4b8\"}}\n"

typedef struct Responder {
        struct event_base *base;
        SSL_CTX *ctx;
        X509_STORE *roots; /* --tls keywardd: verified per connection, as keywardd does */
        char *body;
        size_t body_len;
} Responder;

static int verified_index = -1;

static struct bufferevent *make_bufferevent(struct event_base *base, void *userdata) {
        Responder *rs = userdata;
        struct bufferevent *bev;
        SSL *ssl;

        ssl = SSL_new(rs->ctx);
        if (!ssl)
                return NULL;
        bev = bufferevent_openssl_socket_new(
                base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
        if (!bev)
                return NULL;
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
        return bev;
}

/* --tls keywardd skips OpenSSL's chain check in the handshake; verify once per connection. */
static bool connection_verified(Responder *rs, struct evhttp_request *req) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
        X509_STORE_CTX *sctx;
        X509 *leaf;
        bool ok = false;

        if (!ssl)
                return false;
        if (!rs->roots || SSL_get_ex_data(ssl, verified_index))
                return true;

        leaf = SSL_get0_peer_certificate(ssl);
        sctx = X509_STORE_CTX_new();
        if (leaf && sctx && X509_STORE_CTX_init(sctx, rs->roots, leaf, SSL_get_peer_cert_chain(ssl)) == 1) {
                X509_STORE_CTX_set_purpose(sctx, X509_PURPOSE_SSL_CLIENT);
                ok = X509_verify_cert(sctx) == 1;
        }
        X509_STORE_CTX_free(sctx);
        if (ok) {
                int fd = bufferevent_getfd(bev), one = 1;

                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                (void) SSL_set_ex_data(ssl, verified_index, (void *) 1);
        }
        return ok;
}

static void request_cb(struct evhttp_request *req, void *userdata) {
        Responder *rs = userdata;
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        struct evbuffer *out;

        if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
                evhttp_send_error(req, 405, NULL);
                return;
        }
        if (!connection_verified(rs, req)) {
                evhttp_send_error(req, 401, NULL);
                return;
        }
        out = evbuffer_new();
        if (!out) {
                evhttp_send_error(req, 500, NULL);
                return;
        }
        evhttp_add_header(h, "Content-Type", "application/json");
        evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
        (void) evbuffer_add_reference(out, rs->body, rs->body_len, NULL, NULL);
        evhttp_send_reply(req, 200, NULL, out);
        evbuffer_free(out);
}

static void signal_cb(evutil_socket_t sig, short what, void *userdata) {
        Responder *rs = userdata;

        (void) event_base_loopbreak(rs->base);
}

/* OpenSSL's defaults for a mutual-TLS server. */
static SSL_CTX *ctx_defaults_new(const char *cert, const char *key, const char *ca) {
        static const unsigned char sid_ctx[] = "bare-responder";
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

        if (!ctx)
                return NULL;
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1 || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
            SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1) {
                SSL_CTX_free(ctx);
                return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        return ctx;
}

static int read_body(const char *path, char **ret, size_t *ret_len) {
        FILE *f = fopen(path, "re");
        char *b;
        long n;

        if (!f)
                return -errno;
        if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || n > 1 << 20 || fseek(f, 0, SEEK_SET) < 0) {
                fclose(f);
                return -EIO;
        }
        b = malloc((size_t) n + 1);
        if (!b || fread(b, 1, (size_t) n, f) != (size_t) n) {
                free(b);
                fclose(f);
                return -EIO;
        }
        fclose(f);
        *ret = b;
        *ret_len = (size_t) n;
        return 0;
}

static int listen_on(const char *spec) {
        struct sockaddr_in sa;
        int fd, one = 1;

        if (bench_parse_ipv4_port(spec, &sa) < 0)
                return -EINVAL;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static int write_ready_file(const char *path, int fd) {
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        char host[INET_ADDRSTRLEN], tmp[4096];
        FILE *f;

        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return -errno;
        inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
        if ((size_t) snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
                return -ENAMETOOLONG;
        f = fopen(tmp, "we");
        if (!f)
                return -errno;
        fprintf(f, "%s:%u\n", host, ntohs(sa.sin_port));
        if (fclose(f) != 0 || rename(tmp, path) < 0)
                return -errno;
        return 0;
}

static void usage(FILE *f) {
        fputs("Usage: bare-responder --listen ADDR:PORT --tls-cert F --tls-key F --client-ca F\n"
              "                      [--tls keywardd|defaults] [--body-file F] [--ready-file F]\n",
              f);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                {"listen", required_argument, NULL, 'l'},
                {"tls-cert", required_argument, NULL, 'c'},
                {"tls-key", required_argument, NULL, 'k'},
                {"client-ca", required_argument, NULL, 'a'},
                {"tls", required_argument, NULL, 't'},
                {"body-file", required_argument, NULL, 'b'},
                {"ready-file", required_argument, NULL, 'r'},
                {"help", no_argument, NULL, 'h'},
                {}};
        const char *listen_spec = NULL, *cert = NULL, *key = NULL, *ca = NULL, *tls = "keywardd",
                   *body_file = NULL, *ready_file = NULL;
        Responder rs = {};
        struct evhttp *http;
        struct event *sigterm, *sigint;
        int fd, c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'l':
                        listen_spec = optarg;
                        break;
                case 'c':
                        cert = optarg;
                        break;
                case 'k':
                        key = optarg;
                        break;
                case 'a':
                        ca = optarg;
                        break;
                case 't':
                        tls = optarg;
                        break;
                case 'b':
                        body_file = optarg;
                        break;
                case 'r':
                        ready_file = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (!listen_spec || !cert || !key || !ca || optind != argc ||
            (strcmp(tls, "keywardd") != 0 && strcmp(tls, "defaults") != 0)) {
                usage(stderr);
                return 2;
        }

        (void) signal(SIGPIPE, SIG_IGN);

        if (body_file) {
                r = read_body(body_file, &rs.body, &rs.body_len);
                if (r < 0) {
                        fprintf(stderr, "bare-responder: cannot read '%s': %s\n", body_file, strerror(-r));
                        return 1;
                }
        } else {
                rs.body = strdup(DEFAULT_BODY);
                rs.body_len = STRLEN(DEFAULT_BODY);
        }

        if (strcmp(tls, "keywardd") == 0) {
                r = tls_server_ctx_new(cert, key, &rs.ctx);
                if (r >= 0)
                        r = tls_client_roots_new(ca, &rs.roots);
                /* keywardd wipes its plaintext (OpenSSL's read buffer, libevent's chains:
                 * server/wipe-alloc.c); the baseline wipes nothing. */
                if (r >= 0)
                        SSL_CTX_clear_options(rs.ctx, SSL_OP_CLEANSE_PLAINTEXT);
                if (r < 0) {
                        fprintf(stderr, "bare-responder: TLS set-up failed: %s\n", strerror(-r));
                        return 1;
                }
        } else {
                rs.ctx = ctx_defaults_new(cert, key, ca);
                if (!rs.ctx) {
                        ERR_print_errors_fp(stderr);
                        return 1;
                }
        }
        verified_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);

        fd = listen_on(listen_spec);
        if (fd < 0) {
                fprintf(stderr, "bare-responder: cannot listen on '%s': %s\n", listen_spec, strerror(-fd));
                return 1;
        }

        rs.base = event_base_new();
        http = rs.base ? evhttp_new(rs.base) : NULL;
        if (!http)
                return 1;
        evhttp_set_bevcb(http, make_bufferevent, &rs);
        evhttp_set_gencb(http, request_cb, &rs);
        evhttp_set_timeout(http, 60);
        if (!evhttp_accept_socket_with_handle(http, fd))
                return 1;

        sigterm = evsignal_new(rs.base, SIGTERM, signal_cb, &rs);
        sigint = evsignal_new(rs.base, SIGINT, signal_cb, &rs);
        if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0)
                return 1;

        if (ready_file) {
                r = write_ready_file(ready_file, fd);
                if (r < 0) {
                        fprintf(stderr, "bare-responder: cannot write '%s': %s\n", ready_file, strerror(-r));
                        return 1;
                }
        }

        (void) event_base_dispatch(rs.base);

        event_free(sigterm);
        event_free(sigint);
        evhttp_free(http);
        event_base_free(rs.base);
        SSL_CTX_free(rs.ctx);
        X509_STORE_free(rs.roots);
        free(rs.body);
        return 0;
}
