/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/fleet: one client process standing in for a fleet of agents, each holding one
 * mutual-TLS watch on keywardd (bench/fleet runs it; see bench/README.md). One epoll loop,
 * non-blocking OpenSSL, up to --inflight connections in their handshake at once.
 *
 * In order, against a keywardd whose pid is --server-pid:
 *   1. the writer's answer with no watcher (--rounds writes; median and p99);
 *   2. N watches established (connect, handshake with the client certificate, GET
 *      /v0/keys/?ID=HASH with Prefer: wait): the time until keywardd holds them all
 *      (its /metrics says keyward_watchers N), and its RSS growth per connection;
 *   3. --rounds times: the writer adds a version to ID; its answer's time; every watcher's
 *      answer after the writer's; then every watcher watches again with the new hash;
 *   4. SIGTERM to keywardd: how many watches it answers, and the time until it has exited;
 *   5. with --restart CMD: CMD starts keywardd again on the same address (and returns once
 *      it is ready, its pid in --pid-file); the time until the N watches are held again.
 * Output: key=value lines on stdout. Everything is bounded by --max-time seconds per phase. */

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-tls.h"
#include "bench-util.h"

#define RBUF_SIZE 8192
#define MAX_N 100000

typedef enum State {
        ST_IDLE,       /* no connection */
        ST_CONNECTING, /* TCP */
        ST_HANDSHAKE,
        ST_WRITING,
        ST_READING,
} State;

typedef struct Conn {
        int fd;
        SSL *ssl;
        State state;
        char *rbuf; /* only while reading */
        size_t rlen;
        size_t woff;
        bool answered; /* this round */
        int status;
        bool empty;  /* the answer was [] */
        bool closed; /* the server said Connection: close, or closed it */
        X509 *cert;  /* with --distinct-certs: this agent's own certificate and key */
        EVP_PKEY *key;
        SSL_SESSION *session; /* with --distinct-certs: this agent's last session */
} Conn;

static struct {
        struct sockaddr_in addr;
        struct sockaddr_in write_addr; /* --writer: the writes go to another keywardd */
        char host[256];                /* Authorization: 0t<host> */
        SSL_CTX *ctx;
        char key_id[256];
        char hash[80];
        unsigned n, inflight, rounds, wait_sec;
        double max_time;
        int server_pid;
        const char *restart, *pid_file;
        bool resume, resume_restart, offer_session, auto_chain, distinct;
        SSL_SESSION *session;

        int epfd;
        Conn *conns;
        unsigned n_handshaking;
        unsigned next_open; /* connections below this index have been started */
        char request[1024];
        size_t request_len;
        uint64_t errors, refused, handshakes, resumed;
        unsigned answered;
        uint64_t *answer_ns; /* per watcher, this round */
} F = {
        .n = 100,
        .inflight = 256,
        .rounds = 5,
        .wait_sec = 120,
        .max_time = 60,
        .server_pid = -1,
        .epfd = -1,
};

static double pct_ms(uint64_t *v, size_t n, double p) {
        qsort(v, n, sizeof(v[0]), bench_cmp_u64);
        return (double) bench_percentile(v, n, p) / 1e6;
}

static long rss_kib(int pid) {
        char path[64], line[256];
        long v = -1;
        FILE *f;

        (void) snprintf(path, sizeof(path), "/proc/%d/status", pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld", &v) == 1)
                        break;
        fclose(f);
        return v;
}

/* This process's CPU time, in ns. */
static uint64_t self_cpu_ns(void) {
        struct timespec ts;

        if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* The process is gone or a zombie (its parent, the bench script, reaps it later). */
static bool process_gone(int pid) {
        char path[64], buf[512], *p;
        FILE *f;
        size_t n;

        (void) snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        f = fopen(path, "re");
        if (!f)
                return true;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        p = strrchr(buf, ')');
        return !p || p[1] == 0 || p[2] == 'Z' || p[2] == 'X';
}

/* ---- blocking control connection (writer, /metrics) ---------------------------------- */

typedef struct Ctl {
        int fd;
        SSL *ssl;
        const struct sockaddr_in *to; /* NULL: the watched keywardd (--connect) */
} Ctl;

static Ctl ctl = {.fd = -1};
static Ctl wctl = {.fd = -1}; /* the writer's: ctl's keywardd, or --writer's */

static void ctl_close(Ctl *c) {
        if (c->ssl) {
                (void) SSL_shutdown(c->ssl);
                SSL_free(c->ssl);
        }
        if (c->fd >= 0)
                close(c->fd);
        c->ssl = NULL;
        c->fd = -1;
}

static int ctl_open(Ctl *c) {
        struct timeval tv = {.tv_sec = 20};
        int r;

        r = bench_tcp_connect(c->to ?: &F.addr, false, &c->fd);
        if (r < 0)
                return r;
        (void) setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void) setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        c->ssl = bench_tls_new(F.ctx, c->fd, "localhost", NULL);
        if (!c->ssl || SSL_connect(c->ssl) != 1) {
                ERR_print_errors_fp(stderr);
                ctl_close(c);
                return -EIO;
        }
        return 0;
}

/* One request, one answer (Content-Length framed) into buf; returns the HTTP status. */
static int ctl_request(Ctl *c, const char *req, char *buf, size_t size) {
        size_t len = 0, want = 0;

        if (c->fd < 0 && ctl_open(c) < 0)
                return -1;
        if (SSL_write(c->ssl, req, (int) strlen(req)) <= 0) {
                ctl_close(c);
                return -1;
        }
        for (;;) {
                char *end;
                int n = SSL_read(c->ssl, buf + len, (int) (size - 1 - len));

                if (n <= 0) {
                        ctl_close(c);
                        return -1;
                }
                len += (size_t) n;
                buf[len] = 0;
                end = strstr(buf, "\r\n\r\n");
                if (end && !want) {
                        const char *cl = strcasestr(buf, "Content-Length:");
                        if (!cl || cl > end) {
                                ctl_close(c);
                                return -1;
                        }
                        want = (size_t) (end - buf) + 4 + strtoul(cl + 15, NULL, 10);
                }
                if (want && len >= want)
                        break;
                if (len >= size - 1) {
                        ctl_close(c);
                        return -1;
                }
        }
        if (strcasestr(buf, "Connection: close"))
                ctl_close(c);
        return (int) strtoul(buf + 9, NULL, 10);
}

static long metric(Ctl *c, const char *name) {
        static char buf[65536];
        char req[256], *p;
        size_t l = strlen(name);

        (void) snprintf(req, sizeof(req), "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
        if (ctl_request(c, req, buf, sizeof(buf)) != 200)
                return -1;
        for (p = buf; (p = strstr(p, name)); p += l)
                if ((p == buf || p[-1] == '\n') && p[l] == ' ')
                        return (long) strtoll(p + l + 1, NULL, 10);
        return -1;
}

/* The key's current hash, for the next watch. */
static int fetch_hash(Ctl *c) {
        static char buf[65536];
        char req[768];
        const char *p, *q;

        (void) snprintf(
                req, sizeof(req),
                "GET /v0/keys/%s/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: 0t%s\r\n\r\n", F.key_id,
                F.host);
        if (ctl_request(c, req, buf, sizeof(buf)) != 200)
                return -1;
        p = strstr(buf, "\"hash\":\"");
        if (!p)
                return -1;
        p += 8;
        q = strchr(p, '"');
        if (!q || (size_t) (q - p) >= sizeof(F.hash))
                return -1;
        memcpy(F.hash, p, (size_t) (q - p));
        F.hash[q - p] = 0;
        F.request_len = (size_t) snprintf(
                F.request, sizeof(F.request),
                "GET /v0/keys/?%s=%s HTTP/1.1\r\nHost: localhost\r\nAuthorization: 0t%s\r\nPrefer: wait=%u\r\n\r\n",
                F.key_id, F.hash, F.host, F.wait_sec);
        return 0;
}

/* The hash for the next watch, from the watched keywardd. With --writer, that one learns of the
 * write from the other (PostgreSQL's NOTIFY, or its poll): wait until it has the writer's hash,
 * else the watches would be answered at once with the version before. */
static int sync_hash(void) {
        char want[sizeof(F.hash)];

        if (!wctl.to)
                return fetch_hash(&ctl);
        if (fetch_hash(&wctl) < 0)
                return -1;
        memcpy(want, F.hash, sizeof(want));
        for (unsigned i = 0; i < 1000; i++) {
                if (fetch_hash(&ctl) < 0)
                        return -1;
                if (strcmp(F.hash, want) == 0)
                        return 0;
                (void) usleep(5000);
        }
        fprintf(stderr, "fleet: the watched keywardd did not learn of the write within 5 s\n");
        return -1;
}

/* The writer: one new version of the key; returns the time to its answer in ns, 0 on error. */
static uint64_t write_once(Ctl *c, unsigned serial) {
        static char buf[65536];
        char req[1024], data[64], body[128];
        uint64_t t0;
        int n;

        (void) snprintf(data, sizeof(data), "fleet-%u-%u", (unsigned) getpid(), serial);
        /* base64 of a short ASCII string without padding trouble: hex is base64-safe text */
        n = snprintf(body, sizeof(body), "data=");
        for (const char *s = data; *s && n < (int) sizeof(body) - 3; s++)
                n += snprintf(body + n, sizeof(body) - (size_t) n, "%02x", (unsigned char) *s);
        while (((size_t) n - 5) % 4)
                body[n++] = 'A';
        body[n] = 0;
        (void) snprintf(
                req, sizeof(req),
                "POST /v0/keys/%s/versions/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: 0t%s\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s",
                F.key_id, F.host, strlen(body), body);
        t0 = bench_now_ns();
        if (ctl_request(c, req, buf, sizeof(buf)) != 200) {
                fprintf(stderr, "fleet: the write failed: %.300s\n", buf);
                return 0;
        }
        return bench_now_ns() - t0;
}

/* ---- certificates ------------------------------------------------------------------------ */

/* With --distinct-certs each agent has a certificate of its own, as in a fleet (keywardd
 * verifies each chain once, then its cache knows it): a P-256 key and a certificate for the
 * same host name, signed by the CA, made before anything is timed. */
static int make_certs(const char *ca_path, const char *ca_key_path) {
        X509 *ca = NULL;
        EVP_PKEY *ca_key = NULL;
        FILE *f;
        int r = -1;

        f = fopen(ca_path, "re");
        if (f) {
                ca = PEM_read_X509(f, NULL, NULL, NULL);
                fclose(f);
        }
        f = fopen(ca_key_path, "re");
        if (f) {
                ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
                fclose(f);
        }
        if (!ca || !ca_key)
                goto finish;
        for (unsigned i = 0; i < F.n; i++) {
                Conn *c = &F.conns[i];
                X509V3_CTX v3;
                X509_EXTENSION *ext;
                char san[300];

                c->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
                c->cert = X509_new();
                if (!c->key || !c->cert || X509_set_version(c->cert, 2) != 1 ||
                    ASN1_INTEGER_set(X509_get_serialNumber(c->cert), (long) i + 1000) != 1 ||
                    !X509_gmtime_adj(X509_getm_notBefore(c->cert), -3600) ||
                    !X509_gmtime_adj(X509_getm_notAfter(c->cert), 2 * 86400) ||
                    X509_set_issuer_name(c->cert, X509_get_subject_name(ca)) != 1 ||
                    X509_NAME_add_entry_by_txt(
                            X509_get_subject_name(c->cert), "CN", MBSTRING_ASC,
                            (const unsigned char *) F.host, -1, -1, 0) != 1 ||
                    X509_set_pubkey(c->cert, c->key) != 1)
                        goto finish;
                X509V3_set_ctx(&v3, ca, c->cert, NULL, NULL, 0);
                (void) snprintf(san, sizeof(san), "DNS:%s", F.host);
                ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
                if (!ext || X509_add_ext(c->cert, ext, -1) != 1)
                        goto finish;
                X509_EXTENSION_free(ext);
                ext = X509V3_EXT_conf_nid(NULL, &v3, NID_ext_key_usage, "clientAuth");
                if (!ext || X509_add_ext(c->cert, ext, -1) != 1)
                        goto finish;
                X509_EXTENSION_free(ext);
                if (X509_sign(c->cert, ca_key, EVP_sha256()) <= 0)
                        goto finish;
        }
        r = 0;
finish:
        X509_free(ca);
        EVP_PKEY_free(ca_key);
        if (r < 0)
                ERR_print_errors_fp(stderr);
        return r;
}

/* ---- the watchers -------------------------------------------------------------------- */

static void conn_close(Conn *c) {
        if (c->ssl) {
                /* Closed as Go's client and curl close: the session stays resumable (OpenSSL
                 * spoils the session of an SSL freed without a shutdown). */
                if (SSL_is_init_finished(c->ssl))
                        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
                if (F.distinct && SSL_get0_session(c->ssl) &&
                    SSL_SESSION_is_resumable(SSL_get0_session(c->ssl))) {
                        SSL_SESSION_free(c->session);
                        c->session = SSL_get1_session(c->ssl);
                }
                SSL_free(c->ssl);
                c->ssl = NULL;
        }
        if (c->fd >= 0) {
                (void) epoll_ctl(F.epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
        }
        if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE)
                F.n_handshaking--;
        free(c->rbuf);
        c->rbuf = NULL;
        c->rlen = 0;
        c->state = ST_IDLE;
}

/* Wait for events (EPOLLIN or EPOLLOUT) on c. */
static void conn_wait_for(Conn *c, uint32_t events) {
        struct epoll_event ev = {.events = events, .data.ptr = c};

        (void) epoll_ctl(F.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int conn_open(Conn *c) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
        int r;

        r = bench_tcp_connect(&F.addr, true, &c->fd);
        if (r < 0)
                return r;
        c->ssl = bench_tls_new(
                F.ctx, c->fd, "localhost",
                F.distinct                          ? (F.offer_session ? c->session : NULL) :
                        F.resume || F.offer_session ? F.session :
                                                      NULL);
        if (!c->ssl)
                return -ENOMEM;
        if (F.distinct &&
            (SSL_use_certificate(c->ssl, c->cert) != 1 || SSL_use_PrivateKey(c->ssl, c->key) != 1))
                return -ENOMEM;
        c->state = ST_CONNECTING;
        F.n_handshaking++;
        c->closed = false;
        return epoll_ctl(F.epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0 ? -errno : 0;
}

static void conn_send_watch(Conn *c) {
        c->state = ST_WRITING;
        c->woff = 0;
        c->answered = false;
}

/* 1: a whole answer is in rbuf. */
static int answer_complete(Conn *c) {
        const char *end, *cl;
        size_t hlen;

        c->rbuf[c->rlen] = 0;
        end = strstr(c->rbuf, "\r\n\r\n");
        if (!end)
                return c->rlen >= RBUF_SIZE - 1 ? -1 : 0;
        hlen = (size_t) (end - c->rbuf) + 4;
        cl = strcasestr(c->rbuf, "Content-Length:");
        if (!cl || cl > end)
                return -1;
        if (c->rlen < hlen + strtoul(cl + 15, NULL, 10))
                return 0;
        c->status = (int) strtoul(c->rbuf + 9, NULL, 10);
        c->empty = strstr(end, "\"data\":[]") != NULL;
        c->closed =
                strcasestr(c->rbuf, "Connection: close") && strcasestr(c->rbuf, "Connection: close") < end;
        return 1;
}

static void conn_step(Conn *c, uint64_t now) {
        for (;;) {
                int n, e;

                switch (c->state) {
                case ST_IDLE:
                        return;
                case ST_CONNECTING:
                        if (bench_socket_error(c->fd) < 0) {
                                F.refused++;
                                conn_close(c);
                                return;
                        }
                        c->state = ST_HANDSHAKE;
                        break;
                case ST_HANDSHAKE:
                        n = SSL_connect(c->ssl);
                        if (n == 1) {
                                F.handshakes++;
                                F.n_handshaking--;
                                if (SSL_session_reused(c->ssl))
                                        F.resumed++;
                                conn_send_watch(c);
                                break;
                        }
                        e = bench_tls_wants(c->ssl, n);
                        if (e != 0) {
                                conn_wait_for(c, (uint32_t) e);
                                return;
                        }
                        ERR_clear_error();
                        F.refused++; /* reset before or during the handshake */
                        conn_close(c);
                        return;
                case ST_WRITING:
                        n = SSL_write(c->ssl, F.request + c->woff, (int) (F.request_len - c->woff));
                        if (n > 0) {
                                c->woff += (size_t) n;
                                if (c->woff < F.request_len)
                                        break;
                                c->state = ST_READING;
                                conn_wait_for(c, EPOLLIN);
                                return;
                        }
                        e = bench_tls_wants(c->ssl, n);
                        if (e != 0) {
                                conn_wait_for(c, (uint32_t) e);
                                return;
                        }
                        ERR_clear_error();
                        F.errors++;
                        conn_close(c);
                        return;
                case ST_READING:
                        if (!c->rbuf) {
                                c->rbuf = malloc(RBUF_SIZE);
                                if (!c->rbuf) {
                                        conn_close(c);
                                        return;
                                }
                        }
                        n = SSL_read(c->ssl, c->rbuf + c->rlen, (int) (RBUF_SIZE - 1 - c->rlen));
                        if (n > 0) {
                                c->rlen += (size_t) n;
                                e = answer_complete(c);
                                if (e < 0) {
                                        F.errors++;
                                        conn_close(c);
                                        return;
                                }
                                if (e == 0)
                                        break;
                                if (!c->answered) {
                                        c->answered = true;
                                        F.answer_ns[F.answered++] = now;
                                }
                                free(c->rbuf);
                                c->rbuf = NULL;
                                c->rlen = 0;
                                if (c->closed)
                                        conn_close(c);
                                else
                                        c->state = ST_WRITING, c->woff = F.request_len; /* parked */
                                return;
                        }
                        e = bench_tls_wants(c->ssl, n);
                        if (e != 0) {
                                /* TLS 1.3 tickets come after the handshake: keep the first
                                 * session that can be resumed. */
                                if ((F.resume || F.resume_restart) && !F.session &&
                                    SSL_get0_session(c->ssl) &&
                                    SSL_SESSION_is_resumable(SSL_get0_session(c->ssl)))
                                        F.session = SSL_get1_session(c->ssl);
                                conn_wait_for(c, (uint32_t) e);
                                return;
                        }
                        ERR_clear_error();
                        /* Closed without an answer. */
                        c->closed = true;
                        conn_close(c);
                        return;
                }
        }
}

/* Open connections (at most --inflight handshaking) until all N are started. */
static void open_more(void) {
        while (F.next_open < F.n && F.n_handshaking < F.inflight) {
                Conn *c = &F.conns[F.next_open++];

                if (c->state != ST_IDLE)
                        continue;
                if (conn_open(c) < 0) {
                        F.errors++;
                        conn_close(c);
                }
        }
}

/* Run the loop until done() or the deadline. */
static bool loop_until(bool (*done)(void), uint64_t deadline, int timeout_ms) {
        struct epoll_event ev[512];

        while (!done()) {
                uint64_t now = bench_now_ns();
                int n;

                if (now > deadline)
                        return false;
                open_more();
                n = epoll_wait(F.epfd, ev, 512, timeout_ms);
                now = bench_now_ns();
                for (int i = 0; i < n; i++) {
                        Conn *c = ev[i].data.ptr;

                        /* A parked watcher (answered, kept alive) waits for its next round. */
                        if (c->state == ST_WRITING && c->woff == F.request_len) {
                                /* Nothing comes unasked but the server closing it. */
                                conn_close(c);
                                continue;
                        }
                        conn_step(c, now);
                }
        }
        return true;
}

static long held_target;

static bool all_started(void) {
        return F.next_open >= F.n && F.n_handshaking == 0;
}

/* Every connection sent its watch and keywardd says it holds them all (asked every 50 ms). */
static bool all_held(void) {
        static uint64_t last;
        uint64_t now = bench_now_ns();
        long h;

        if (!all_started()) {
                /* Connections refused or reset while starting: start them again. */
                return false;
        }
        for (unsigned i = 0; i < F.n; i++)
                if (F.conns[i].state == ST_IDLE) {
                        F.next_open = i;
                        return false;
                }
        if (now - last < 50000000ULL)
                return false;
        last = now;
        h = metric(&ctl, "keyward_watchers");
        return h >= held_target;
}

/* Wait until keywardd is idle: less than 1% of a core over a whole second, checked up to
 * 20 s. Returns the time it took, in ms. */
static double wait_server_idle(void) {
        uint64_t t0 = bench_now_ns(), c0 = bench_process_cpu_ns(F.server_pid);

        for (int i = 0; i < 20; i++) {
                struct timespec ts = {.tv_sec = 1};
                uint64_t c1;

                (void) nanosleep(&ts, NULL);
                c1 = bench_process_cpu_ns(F.server_pid);
                if (c1 - c0 < 10000000ULL)
                        break;
                c0 = c1;
        }
        return (double) (bench_now_ns() - t0) / 1e6;
}

static bool all_answered(void) {
        return F.answered >= F.n;
}

static int establish(uint64_t *ret_ns) {
        uint64_t t0 = bench_now_ns();

        F.next_open = 0;
        held_target = F.n;
        if (!loop_until(all_held, t0 + (uint64_t) (F.max_time * 1e9), 20))
                return -1;
        *ret_ns = bench_now_ns() - t0;
        return 0;
}

static void rewatch_all(void) {
        struct epoll_event ev = {.events = EPOLLOUT};

        for (unsigned i = 0; i < F.n; i++) {
                Conn *c = &F.conns[i];

                if (c->state != ST_WRITING)
                        continue;
                conn_send_watch(c);
                ev.data.ptr = c;
                (void) epoll_ctl(F.epfd, EPOLL_CTL_MOD, c->fd, &ev);
        }
}

static int read_pid_file(void) {
        FILE *f = fopen(F.pid_file, "re");
        int pid = -1;

        if (!f)
                return -1;
        if (fscanf(f, "%d", &pid) != 1)
                pid = -1;
        fclose(f);
        return pid;
}

/* Run a command through /bin/sh and wait for it; its exit status, or -1. */
static int run_shell(const char *cmd) {
        pid_t pid = fork();
        int st;

        if (pid < 0)
                return -1;
        if (pid == 0) {
                execl("/bin/sh", "sh", "-c", cmd, (char *) NULL);
                _exit(127);
        }
        if (waitpid(pid, &st, 0) < 0)
                return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void usage(void) {
        fprintf(stderr,
                "usage: fleet --connect ADDR:PORT --ca F --cert F --key F --host NAME --key-id ID\n"
                "             --server-pid PID [--n N] [--inflight K] [--rounds R] [--max-time S]\n"
                "             [--resume] [--resume-after-restart] [--restart CMD --pid-file F]\n"
                "             [--writer ADDR:PORT] [--auto-chain] [--distinct-certs CA_KEY]\n");
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                {"connect", required_argument, NULL, 'c'},
                {"ca", required_argument, NULL, 'A'},
                {"cert", required_argument, NULL, 'C'},
                {"key", required_argument, NULL, 'K'},
                {"host", required_argument, NULL, 'H'},
                {"key-id", required_argument, NULL, 'i'},
                {"server-pid", required_argument, NULL, 'p'},
                {"n", required_argument, NULL, 'n'},
                {"inflight", required_argument, NULL, 'f'},
                {"rounds", required_argument, NULL, 'r'},
                {"max-time", required_argument, NULL, 't'},
                {"resume", no_argument, NULL, 'R'},
                {"resume-after-restart", no_argument, NULL, 'E'},
                {"restart", required_argument, NULL, 'S'},
                {"pid-file", required_argument, NULL, 'P'},
                {"writer", required_argument, NULL, 'W'},
                {"auto-chain", no_argument, NULL, 'a'},
                {"distinct-certs", required_argument, NULL, 'D'},
                {},
        };
        const char *ca = NULL, *cert = NULL, *key = NULL, *connect_to = NULL, *writer = NULL, *ca_key = NULL;
        uint64_t *ack0, *ackn, *after, t_est, t_re = 0, t_term, t_exit = 0;
        struct rlimit rl = {.rlim_cur = 200000, .rlim_max = 200000};
        uint64_t cpu0, cpu1 = 0, fanout_cpu = 0, self0;
        long rss0, rss1, rss_busy;
        double idle_ms;
        size_t n_after = 0;
        unsigned stop_answered = 0, stop_empty = 0;
        int opt;

        while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
                switch (opt) {
                case 'c':
                        connect_to = optarg;
                        break;
                case 'a':
                        F.auto_chain = true;
                        break;
                case 'D':
                        ca_key = optarg;
                        F.distinct = true;
                        break;
                case 'A':
                        ca = optarg;
                        break;
                case 'C':
                        cert = optarg;
                        break;
                case 'K':
                        key = optarg;
                        break;
                case 'H':
                        (void) snprintf(F.host, sizeof(F.host), "%s", optarg);
                        break;
                case 'i':
                        (void) snprintf(F.key_id, sizeof(F.key_id), "%s", optarg);
                        break;
                case 'p':
                        F.server_pid = (int) strtoul(optarg, NULL, 10);
                        break;
                case 'n':
                        F.n = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'f':
                        F.inflight = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'r':
                        F.rounds = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 't':
                        F.max_time = strtod(optarg, NULL);
                        break;
                case 'R':
                        F.resume = true;
                        break;
                case 'E':
                        F.resume_restart = true;
                        break;
                case 'S':
                        F.restart = optarg;
                        break;
                case 'P':
                        F.pid_file = optarg;
                        break;
                case 'W':
                        writer = optarg;
                        break;
                default:
                        usage();
                        return 2;
                }
        if (!connect_to || !ca || !cert || !key || !*F.host || !*F.key_id || F.server_pid <= 0 || F.n == 0 ||
            F.n > MAX_N || F.inflight == 0 || F.rounds == 0 || F.rounds > 100 || F.max_time <= 0 ||
            F.max_time > 600 || (F.restart && !F.pid_file) ||
            bench_parse_ipv4_port(connect_to, &F.addr) < 0 ||
            (writer && bench_parse_ipv4_port(writer, &F.write_addr) < 0)) {
                usage();
                return 2;
        }
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
                (void) getrlimit(RLIMIT_NOFILE, &rl);
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
                if (rl.rlim_cur < F.n + 64) {
                        fprintf(stderr, "fleet: RLIMIT_NOFILE %lu is too low for %u connections\n",
                                (unsigned long) rl.rlim_cur, F.n);
                        return 1;
                }
        }
        signal(SIGPIPE, SIG_IGN);

        F.ctx = bench_tls_client_ctx_new(ca, cert, key);
        if (!F.ctx)
                return 1;
        SSL_CTX_set_mode(F.ctx, SSL_MODE_RELEASE_BUFFERS);
        /* Send the certificate file's chain, as keyward-agent and Knox's Go client do; with
         * --auto-chain, OpenSSL's default: the chain it builds from the trust store (the root
         * too), which keywardd must then parse in every full handshake. */
        if (!F.auto_chain)
                SSL_CTX_set_mode(F.ctx, SSL_MODE_NO_AUTO_CHAIN);
        F.conns = calloc(F.n, sizeof(Conn));
        F.answer_ns = calloc(F.n, sizeof(uint64_t));
        ack0 = calloc(F.rounds, sizeof(uint64_t));
        ackn = calloc(F.rounds, sizeof(uint64_t));
        after = calloc((size_t) F.n * F.rounds, sizeof(uint64_t));
        F.epfd = epoll_create1(EPOLL_CLOEXEC);
        if (!F.conns || !F.answer_ns || !ack0 || !ackn || !after || F.epfd < 0)
                return 1;
        if (F.distinct && make_certs(ca, ca_key) < 0) {
                fprintf(stderr, "fleet: cannot make the agents' certificates\n");
                return 1;
        }
        for (unsigned i = 0; i < F.n; i++)
                F.conns[i].fd = -1;

        if (writer)
                wctl.to = &F.write_addr;

        /* 1. The writer alone. */
        for (unsigned r = 0; r < F.rounds; r++)
                if (!(ack0[r] = write_once(&wctl, r)))
                        return 1;
        if (sync_hash() < 0) {
                fprintf(stderr, "fleet: cannot read the hash of '%s'\n", F.key_id);
                return 1;
        }

        /* 2. N watchers. */
        rss0 = rss_kib(F.server_pid);
        cpu0 = bench_process_cpu_ns(F.server_pid);
        self0 = self_cpu_ns();
        if (establish(&t_est) < 0) {
                fprintf(stderr, "fleet: the %u watches were not all held within %.0f s\n", F.n, F.max_time);
                return 1;
        }
        rss_busy = rss_kib(F.server_pid);
        cpu1 = bench_process_cpu_ns(F.server_pid);
        self0 = self_cpu_ns() - self0;
        /* The RSS a fleet costs is that of its watches held and idle: what keywardd keeps
         * once the burst of handshakes is over, not the burst's high-water mark. */
        idle_ms = wait_server_idle();
        rss1 = rss_kib(F.server_pid);
        printf("n=%u establish_ms=%.0f establish_server_cpu_ms=%.0f establish_client_cpu_ms=%.0f handshakes=%" PRIu64
               " resumed=%" PRIu64 " refused=%" PRIu64 "\n",
               F.n, (double) t_est / 1e6, (double) (cpu1 - cpu0) / 1e6, (double) self0 / 1e6, F.handshakes,
               F.resumed, F.refused);
        printf("rss_before_kib=%ld rss_held_kib=%ld rss_per_conn_kib=%.2f rss_per_conn_busy_kib=%.2f "
               "idle_after_ms=%.0f\n",
               rss0, rss1, (double) (rss1 - rss0) / F.n, (double) (rss_busy - rss0) / F.n, idle_ms);
        fflush(stdout);

        /* 3. Writes with N watchers. */
        for (unsigned r = 0; r < F.rounds; r++) {
                uint64_t t_ack;

                F.answered = 0;
                cpu0 = bench_process_cpu_ns(F.server_pid);
                t_ack = bench_now_ns();
                ackn[r] = write_once(&wctl, 1000 + r);
                if (!ackn[r])
                        return 1;
                t_ack += ackn[r];
                if (!loop_until(all_answered, bench_now_ns() + (uint64_t) (F.max_time * 1e9), 100)) {
                        fprintf(stderr, "fleet: round %u: %u of %u watchers answered\n", r, F.answered, F.n);
                        return 1;
                }
                fanout_cpu += bench_process_cpu_ns(F.server_pid) - cpu0;
                for (unsigned i = 0; i < F.answered; i++)
                        after[n_after++] = F.answer_ns[i] > t_ack ? F.answer_ns[i] - t_ack : 0;
                if (sync_hash() < 0)
                        return 1;
                rewatch_all();
                held_target = F.n;
                if (!loop_until(all_held, bench_now_ns() + (uint64_t) (F.max_time * 1e9), 20)) {
                        fprintf(stderr, "fleet: round %u: the watches were not held again\n", r);
                        return 1;
                }
        }
        printf("ack_none_p50_ms=%.2f ack_none_p99_ms=%.2f ack_n_p50_ms=%.2f ack_n_p99_ms=%.2f\n",
               pct_ms(ack0, F.rounds, 0.5), pct_ms(ack0, F.rounds, 0.99), pct_ms(ackn, F.rounds, 0.5),
               pct_ms(ackn, F.rounds, 0.99));
        printf("write_and_fanout_server_cpu_ms=%.1f\n", (double) fanout_cpu / 1e6 / F.rounds);
        printf("after_ack_p50_ms=%.2f after_ack_p99_ms=%.2f after_ack_max_ms=%.2f answers=%zu\n",
               pct_ms(after, n_after, 0.5), pct_ms(after, n_after, 0.99), pct_ms(after, n_after, 1.0),
               n_after);
        fflush(stdout);

        /* 4. SIGTERM with N held. */
        ctl_close(&ctl);
        ctl_close(&wctl);
        F.answered = 0;
        cpu0 = bench_process_cpu_ns(F.server_pid);
        cpu1 = cpu0;
        t_term = bench_now_ns();
        if (kill(F.server_pid, SIGTERM) < 0)
                return 1;
        while (bench_now_ns() - t_term < (uint64_t) (F.max_time * 1e9)) {
                struct epoll_event ev[512];
                int n = epoll_wait(F.epfd, ev, 512, 1);
                uint64_t c;
                uint64_t now = bench_now_ns();

                for (int i = 0; i < n; i++)
                        conn_step(ev[i].data.ptr, now);
                if (!t_exit && process_gone(F.server_pid))
                        t_exit = bench_now_ns();
                else if (!t_exit && (c = bench_process_cpu_ns(F.server_pid)) > cpu1)
                        cpu1 = c; /* threads that have ended no longer count: keep the most */
                /* Not `now`: it was taken before t_exit, which this pass may have just set. */
                if (t_exit && (F.answered >= F.n || bench_now_ns() - t_exit > 2000000000ULL))
                        break;
        }
        for (unsigned i = 0; i < F.n; i++)
                if (F.conns[i].answered) {
                        stop_answered++;
                        stop_empty += F.conns[i].status == 200 && F.conns[i].empty;
                }
        printf("sigterm_exit_ms=%.0f sigterm_server_cpu_ms=%.0f stop_answered=%u stop_answered_empty=%u\n",
               t_exit ? (double) (t_exit - t_term) / 1e6 : -1.0,
               cpu1 > cpu0 ? (double) (cpu1 - cpu0) / 1e6 : 0.0, stop_answered, stop_empty);
        fflush(stdout);

        /* 5. Back after a restart. */
        if (F.restart) {
                uint64_t t0;
                int st;

                for (unsigned i = 0; i < F.n; i++)
                        conn_close(&F.conns[i]);
                F.n_handshaking = 0;
                st = run_shell(F.restart);
                if (st != 0 || (F.server_pid = read_pid_file()) <= 0) {
                        fprintf(stderr, "fleet: the restart command failed\n");
                        return 1;
                }
                F.refused = 0;
                F.handshakes = 0;
                F.resumed = 0;
                /* Every agent offers the session it had before the restart. */
                F.offer_session = F.resume_restart;
                if (sync_hash() < 0)
                        return 1;
                t0 = bench_process_cpu_ns(F.server_pid);
                self0 = self_cpu_ns();
                if (establish(&t_re) < 0) {
                        fprintf(stderr, "fleet: not all watches back within %.0f s\n", F.max_time);
                        return 1;
                }
                t0 = bench_process_cpu_ns(F.server_pid) - t0;
                self0 = self_cpu_ns() - self0;
                printf("reestablish_ms=%.0f reestablish_server_cpu_ms=%.0f reestablish_client_cpu_ms=%.0f "
                       "refused_after_restart=%" PRIu64 " resumed_after_restart=%" PRIu64 "\n",
                       (double) t_re / 1e6, (double) t0 / 1e6, (double) self0 / 1e6, F.refused, F.resumed);
        }
        printf("errors=%" PRIu64 "\n", F.errors);
        return F.errors ? 1 : 0;
}
