/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/loadgen: the load generator of bench/server. Plain OpenSSL and one epoll loop, so
 * that the client costs little and the same for every server it measures.
 *
 * Modes:
 *   keepalive  N connections, each sending GETs one after the other (HTTP/1.1 keep-alive).
 *   newconn    N connections at a time, each a full TLS handshake with the client
 *              certificate, one GET, close_notify, close. With --resume the next
 *              connection offers the last session it got (Knox's clients do not resume,
 *              so the default is a full handshake every time).
 *   watch      a watcher holds GET /v0/keys/?ID=HASH with "Prefer: wait=N"; a writer adds a
 *              version to ID; the time from the writer's request to the watcher's answer is
 *              measured, --rounds times.
 *
 * --spin: poll the connections without ever sleeping (keepalive and newconn). On loopback
 * the CPU that sends a segment also runs its receiver's softirq work and wakes the receiver:
 * a client that sleeps between answers bills the server for its wake-ups, more so the
 * slower the server is, which a client on another machine would pay on its own CPU.
 *
 * A fixed number of requests (after --warmup unmeasured ones) or --max-time seconds,
 * whichever comes first. Output is one line of key=value pairs on stdout:
 *   requests= errors= seconds= rps= p50_us= p99_us= max_us= client_cpu= [server_cpu= per_core_s=]
 *   [handshakes= resumed=]
 * server_cpu is the CPU time the process --server-pid used during the measured requests
 * (all its threads and its children's, from each /proc/PID/task/TID/schedstat), per_core_s =
 * requests / server_cpu.
 * Watch mode prints rounds= errors= p50_us= p99_us= max_us= (writer's request to watcher's
 * answer), ack_p50_us= ack_p99_us= (the writer's own answer) and after_ack_p50_us=
 * after_ack_p99_us= (watcher's answer minus writer's answer; negative when it came first). */

#include <arpa/inet.h>
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench-tls.h"
#include "bench-util.h"

#define RBUF_SIZE (1024 * 1024)
#define MAX_CONNS 64

typedef enum Mode {
        MODE_KEEPALIVE,
        MODE_NEWCONN,
        MODE_WATCH,
} Mode;

typedef enum State {
        ST_CLOSED,
        ST_CONNECTING,
        ST_HANDSHAKE,
        ST_WRITING,
        ST_READING,
} State;

typedef struct Conn {
        int fd;
        SSL *ssl;
        State state;
        uint64_t t_start; /* ns: when this request (newconn: this connection) began */
        char *rbuf;
        size_t rlen;
        const char *req; /* what ST_WRITING sends */
        size_t req_len;
        bool want_write;
} Conn;

/* Settings and counters; one instance, one thread. */
static struct {
        Mode mode;
        struct sockaddr_in addr;
        char host_port[64];
        SSL_CTX *ctx;
        char *request;
        size_t request_len;
        unsigned n_conns;
        uint64_t requests;
        uint64_t warmup;
        double max_time;
        bool resume;
        bool spin;
        int server_pid;

        int epfd;
        Conn conns[MAX_CONNS];
        SSL_SESSION *session;
        uint64_t done;     /* responses, warm-up included */
        uint64_t measured; /* responses after the warm-up */
        uint64_t errors;
        uint64_t handshakes, resumed;
        uint64_t *lat_ns;
        bool measuring, stopping;
        uint64_t t0, t_last, t_deadline;
        uint64_t server_cpu0;
        double client_cpu0;
} B = {
        .mode = MODE_KEEPALIVE,
        .n_conns = 4,
        .max_time = 10,
        .server_pid = -1,
        .epfd = -1,
};

static double client_cpu(void) {
        struct rusage ru;

        (void) getrusage(RUSAGE_SELF, &ru);
        return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 +
                (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

/* CPU time of the server: every thread, and its children's (keywardd's key holder does the
 * sealing and opening), in ns. */
static uint64_t server_cpu_ns(void) {
        char path[64];
        uint64_t sum;
        int child;
        FILE *f;

        if (B.server_pid <= 0)
                return 0;
        sum = bench_process_cpu_ns(B.server_pid);
        (void) snprintf(path, sizeof(path), "/proc/%d/task/%d/children", B.server_pid, B.server_pid);
        f = fopen(path, "re");
        if (!f)
                return sum;
        while (fscanf(f, "%d", &child) == 1)
                sum += bench_process_cpu_ns(child);
        fclose(f);
        return sum;
}

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

        return x < y ? -1 : x > y;
}

static double percentile_us(const uint64_t *v, size_t n, double p) {
        return (double) bench_percentile(v, n, p) / 1e3;
}

/* ---- HTTP responses ------------------------------------------------------------------ */

/* 1 when rbuf holds a whole response (status and total length set), 0 when more is
 * needed, -1 when it cannot be parsed. */
static int response_complete(const Conn *c, int *ret_status, size_t *ret_len, bool *ret_close) {
        const char *end, *p;
        size_t hlen, clen = 0;
        bool have_len = false, close_conn = false;

        end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (!end)
                return c->rlen >= RBUF_SIZE ? -1 : 0;
        hlen = (size_t) (end - c->rbuf) + 4;
        if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.", 7) != 0)
                return -1;

        for (p = memchr(c->rbuf, '\n', hlen); p && p < end; p = memchr(p, '\n', (size_t) (end - p))) {
                p++;
                if (strncasecmp(p, "Content-Length:", 15) == 0) {
                        clen = strtoull(p + 15, NULL, 10);
                        have_len = true;
                } else if (strncasecmp(p, "Connection:", 11) == 0) {
                        const char *v = p + 11;

                        while (*v == ' ')
                                v++;
                        close_conn = strncasecmp(v, "close", 5) == 0;
                }
        }
        if (!have_len || hlen + clen > RBUF_SIZE)
                return -1;
        if (c->rlen < hlen + clen)
                return 0;
        *ret_status = (int) strtoul(c->rbuf + 9, NULL, 10);
        *ret_len = hlen + clen;
        *ret_close = close_conn;
        return 1;
}

/* ---- connections --------------------------------------------------------------------- */

static void conn_close(Conn *c, bool graceful) {
        if (c->ssl) {
                if (graceful)
                        (void) SSL_shutdown(c->ssl); /* one close_notify, as Go's Close() sends */
                SSL_free(c->ssl);
                c->ssl = NULL;
        }
        if (c->fd >= 0) {
                if (B.epfd >= 0)
                        (void) epoll_ctl(B.epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
        }
        c->state = ST_CLOSED;
        c->rlen = 0;
}

/* Wait for events (EPOLLIN or EPOLLOUT) on c. */
static int conn_watch(Conn *c, uint32_t events) {
        struct epoll_event ev = {.events = events, .data.ptr = c};

        if (B.epfd < 0)
                return 0;
        return epoll_ctl(B.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int conn_open(Conn *c, bool blocking) {
        struct epoll_event ev = {.events = EPOLLOUT};
        int r;

        r = bench_tcp_connect(&B.addr, !blocking, &c->fd);
        if (r < 0)
                return r;
        c->ssl = bench_tls_new(B.ctx, c->fd, NULL, B.resume ? B.session : NULL);
        if (!c->ssl)
                return -ENOMEM;
        c->rlen = 0;
        c->state = r > 0 ? ST_CONNECTING : ST_HANDSHAKE;
        if (!blocking && B.epfd >= 0) {
                ev.data.ptr = c;
                if (epoll_ctl(B.epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
                        return -errno;
        }
        return 0;
}

static void on_response(Conn *c, int status, size_t len, bool close_conn);

/* Move c forward until it would block; then wait for the right event. */
static void conn_step(Conn *c) {
        for (;;) {
                int n, e, status;
                size_t len;
                bool cl;

                switch (c->state) {
                case ST_CLOSED:
                        return;
                case ST_CONNECTING:
                        e = bench_socket_error(c->fd);
                        if (e < 0) {
                                fprintf(stderr, "loadgen: connect: %s\n", strerror(-e));
                                B.errors++;
                                B.stopping = true;
                                conn_close(c, false);
                                return;
                        }
                        c->state = ST_HANDSHAKE;
                        break;
                case ST_HANDSHAKE:
                        n = SSL_connect(c->ssl);
                        if (n == 1) {
                                B.handshakes++;
                                if (SSL_session_reused(c->ssl))
                                        B.resumed++;
                                c->state = ST_WRITING;
                                c->req = B.request;
                                c->req_len = B.request_len;
                                break;
                        }
                        e = bench_tls_wants(c->ssl, n);
                        if (e != 0) {
                                (void) conn_watch(c, (uint32_t) e);
                                return;
                        }
                        fprintf(stderr, "loadgen: TLS handshake failed\n");
                        ERR_print_errors_fp(stderr);
                        B.errors++;
                        B.stopping = true;
                        conn_close(c, false);
                        return;
                case ST_WRITING:
                        n = SSL_write(c->ssl, c->req, (int) c->req_len);
                        if (n > 0) {
                                c->state = ST_READING;
                                break;
                        }
                        e = bench_tls_wants(c->ssl, n);
                        if (e != 0) {
                                (void) conn_watch(c, (uint32_t) e);
                                return;
                        }
                        B.errors++;
                        conn_close(c, false);
                        return;
                case ST_READING:
                        n = SSL_read(c->ssl, c->rbuf + c->rlen, (int) (RBUF_SIZE - c->rlen));
                        if (n > 0) {
                                c->rlen += (size_t) n;
                                e = response_complete(c, &status, &len, &cl);
                                if (e < 0) {
                                        B.errors++;
                                        conn_close(c, false);
                                        return;
                                }
                                if (e > 0) {
                                        on_response(c, status, len, cl);
                                        if (B.mode == MODE_WATCH)
                                                return;
                                }
                                break;
                        }
                        e = bench_tls_wants(c->ssl, n);
                        if (e != 0) {
                                (void) conn_watch(c, (uint32_t) e);
                                return;
                        }
                        /* The server closed the connection before answering. */
                        B.errors++;
                        conn_close(c, false);
                        return;
                }
        }
}

/* Set up a new connection (newconn) or the next request on one; conn_step() runs it. */
static void conn_begin(Conn *c) {
        int r;

        c->t_start = bench_now_ns();
        if (c->state == ST_CLOSED) {
                r = conn_open(c, false);
                if (r < 0) {
                        fprintf(stderr, "loadgen: cannot connect: %s\n", strerror(-r));
                        B.errors++;
                        B.stopping = true;
                        conn_close(c, false);
                        return;
                }
        } else {
                c->state = ST_WRITING;
                c->req = B.request;
                c->req_len = B.request_len;
        }
}

static void measure_start(void) {
        B.measuring = true;
        B.t0 = bench_now_ns();
        B.t_last = B.t0;
        B.server_cpu0 = server_cpu_ns();
        B.client_cpu0 = client_cpu();
        B.handshakes = B.resumed = 0;
        B.t_deadline = B.t0 + (uint64_t) (B.max_time * 1e9);
}

static void on_response(Conn *c, int status, size_t len, bool close_conn) {
        uint64_t t = bench_now_ns();

        B.done++;
        if (status != 200)
                B.errors++;
        if (B.measuring && B.measured < B.requests) {
                B.lat_ns[B.measured++] = t - c->t_start;
                B.t_last = t;
        }
        if (!B.measuring && B.done >= B.warmup)
                measure_start();
        if (B.mode == MODE_WATCH)
                return;
        if (B.measured >= B.requests || t >= B.t_deadline)
                B.stopping = true;

        /* No pipelining: the buffer holds exactly one response. */
        c->rlen = 0;
        if (B.mode == MODE_NEWCONN || close_conn || B.stopping) {
                if (B.resume && B.mode == MODE_NEWCONN) {
                        SSL_SESSION *s = SSL_get1_session(c->ssl);

                        if (s && SSL_SESSION_is_resumable(s)) {
                                SSL_SESSION_free(B.session);
                                B.session = s;
                        } else
                                SSL_SESSION_free(s);
                }
                conn_close(c, true);
        }
        if (!B.stopping)
                conn_begin(c);
        else if (c->state != ST_CLOSED)
                conn_close(c, true);
}

static int run_load(void) {
        struct epoll_event evs[MAX_CONNS];
        double client_cpu1;
        uint64_t server_cpu1;

        B.lat_ns = calloc(B.requests, sizeof(uint64_t));
        B.epfd = epoll_create1(EPOLL_CLOEXEC);
        if (!B.lat_ns || B.epfd < 0)
                return -ENOMEM;
        B.t_deadline = bench_now_ns() + (uint64_t) ((B.max_time + 30) * 1e9); /* warm-up bound */
        if (B.warmup == 0)
                measure_start();

        for (unsigned i = 0; i < B.n_conns && !B.stopping; i++) {
                Conn *c = &B.conns[i];

                c->fd = -1;
                c->rbuf = malloc(RBUF_SIZE);
                if (!c->rbuf)
                        return -ENOMEM;
                conn_begin(c);
                conn_step(c);
        }

        while (!B.stopping) {
                int n = epoll_wait(B.epfd, evs, MAX_CONNS, B.spin ? 0 : 100);

                for (int i = 0; i < n && !B.stopping; i++)
                        conn_step(evs[i].data.ptr);
                if (bench_now_ns() >= B.t_deadline)
                        B.stopping = true;
        }
        server_cpu1 = server_cpu_ns();
        client_cpu1 = client_cpu();
        for (unsigned i = 0; i < B.n_conns; i++)
                conn_close(&B.conns[i], false);

        {
                double secs = (double) (B.t_last - B.t0) / 1e9;
                double scpu = (double) (server_cpu1 - B.server_cpu0) / 1e9;

                qsort(B.lat_ns, B.measured, sizeof(uint64_t), bench_cmp_u64);
                printf("requests=%" PRIu64 " errors=%" PRIu64
                       " seconds=%.3f rps=%.0f p50_us=%.0f p99_us=%.0f "
                       "max_us=%.0f client_cpu=%.2f",
                       B.measured, B.errors, secs, secs > 0 ? (double) B.measured / secs : 0.0,
                       percentile_us(B.lat_ns, B.measured, 0.50), percentile_us(B.lat_ns, B.measured, 0.99),
                       B.measured ? (double) B.lat_ns[B.measured - 1] / 1e3 : 0.0,
                       secs > 0 ? (client_cpu1 - B.client_cpu0) / secs : 0.0);
                if (B.server_pid > 0)
                        printf(" server_cpu=%.2f per_core_s=%.0f", secs > 0 ? scpu / secs : 0.0,
                               scpu > 0 ? (double) B.measured / scpu : 0.0);
                if (B.mode == MODE_NEWCONN)
                        printf(" handshakes=%" PRIu64 " resumed=%" PRIu64, B.handshakes, B.resumed);
                printf("\n");
        }
        for (unsigned i = 0; i < B.n_conns; i++)
                free(B.conns[i].rbuf);
        free(B.lat_ns);
        close(B.epfd);
        return B.measured > 0 ? 0 : -EIO;
}

/* ---- watch mode ---------------------------------------------------------------------- */

/* Blocking connect and handshake, then non-blocking for the polls below. */
static int conn_open_blocking(Conn *c) {
        int r, flags = 1;

        c->rbuf = malloc(RBUF_SIZE);
        if (!c->rbuf)
                return -ENOMEM;
        r = conn_open(c, true);
        if (r < 0)
                return r;
        if (SSL_connect(c->ssl) != 1) {
                ERR_print_errors_fp(stderr);
                return -EPROTO;
        }
        (void) ioctl(c->fd, FIONBIO, &flags);
        c->state = ST_READING;
        return 0;
}

static int conn_send(Conn *c, const char *req) {
        size_t len = strlen(req);

        for (;;) {
                int n = SSL_write(c->ssl, req, (int) len);
                struct pollfd p = {.fd = c->fd};

                if (n > 0)
                        return 0;
                p.events = bench_tls_wants(c->ssl, n);
                if (p.events == 0)
                        return -EIO;
                (void) poll(&p, 1, 1000);
        }
}

/* Read what is there: 1 and the response's status when it is complete, 0 if not yet. */
static int conn_try_response(Conn *c, int *ret_status) {
        for (;;) {
                int n = SSL_read(c->ssl, c->rbuf + c->rlen, (int) (RBUF_SIZE - c->rlen)), e;
                size_t len;
                bool cl;

                if (n <= 0) {
                        return bench_tls_wants(c->ssl, n) != 0 ? 0 : -EIO;
                }
                c->rlen += (size_t) n;
                e = response_complete(c, ret_status, &len, &cl);
                if (e != 0)
                        return e < 0 ? -EBADMSG : 1;
        }
}

static int conn_wait_response(Conn *c, int *ret_status, int timeout_ms) {
        uint64_t end = bench_now_ns() + (uint64_t) timeout_ms * 1000000ULL;

        for (;;) {
                struct pollfd p = {.fd = c->fd, .events = POLLIN};
                int r = conn_try_response(c, ret_status);

                if (r != 0)
                        return r;
                if (bench_now_ns() >= end)
                        return -ETIMEDOUT;
                (void) poll(&p, 1, 100);
        }
}

static const char *body_of(Conn *c) {
        char *p = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);

        c->rbuf[c->rlen < RBUF_SIZE ? c->rlen : RBUF_SIZE - 1] = 0;
        return p ? p + 4 : "";
}

static int run_watch(const char *auth, const char *key_id, unsigned rounds, unsigned settle_ms) {
        Conn watcher = {.fd = -1}, writer = {.fd = -1};
        uint64_t *lat = NULL, *ack = NULL;
        int64_t *after = NULL;
        unsigned ok = 0;
        char req[4096];
        int r, status = 0;

        lat = calloc(rounds, sizeof(uint64_t));
        ack = calloc(rounds, sizeof(uint64_t));
        after = calloc(rounds, sizeof(int64_t));
        if (!lat || !ack || !after) {
                r = -ENOMEM;
                goto finish;
        }
        r = conn_open_blocking(&watcher);
        if (r >= 0)
                r = conn_open_blocking(&writer);
        if (r < 0) {
                fprintf(stderr, "loadgen: cannot connect: %s\n", strerror(-r));
                goto finish;
        }

        for (unsigned i = 0; i < rounds; i++) {
                unsigned char raw[32], b64[64];
                char hash[65], form[256], *q = form;
                const char *body, *h;
                uint64_t t0, t_ack = 0, t_watch = 0;
                int st_w = 0, st_a = 0;

                /* The key's current hash, as an agent learns it. */
                (void) snprintf(
                        req, sizeof(req),
                        "GET /v0/keys/%s/ HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n", key_id,
                        B.host_port, auth);
                watcher.rlen = 0;
                if (conn_send(&watcher, req) < 0 || conn_wait_response(&watcher, &status, 5000) <= 0 ||
                    status != 200) {
                        fprintf(stderr, "loadgen: GET %s failed (HTTP %d)\n", key_id, status);
                        r = -EIO;
                        goto finish;
                }
                body = body_of(&watcher);
                h = strstr(body, "\"hash\":\"");
                if (!h || strlen(h + 8) < 64) {
                        fprintf(stderr, "loadgen: no hash in '%.200s'\n", body);
                        r = -EIO;
                        goto finish;
                }
                memcpy(hash, h + 8, 64);
                hash[64] = 0;

                /* Hold a watch, give the server time to park it, then write. */
                (void) snprintf(
                        req, sizeof(req),
                        "GET /v0/keys/?%s=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nPrefer: wait=30\r\n\r\n",
                        key_id, hash, B.host_port, auth);
                watcher.rlen = 0;
                if (conn_send(&watcher, req) < 0) {
                        r = -EIO;
                        goto finish;
                }
                (void) usleep(settle_ms * 1000);
                r = conn_try_response(&watcher, &status);
                if (r != 0) {
                        fprintf(stderr, "loadgen: the watch returned before any change (HTTP %d)\n", status);
                        r = -EIO;
                        goto finish;
                }

                (void) RAND_bytes(raw, sizeof(raw));
                (void) EVP_EncodeBlock(b64, raw, sizeof(raw));
                q += snprintf(q, sizeof(form), "data=");
                for (unsigned char *p = b64; *p; p++)
                        if (*p == '+' || *p == '/' || *p == '=')
                                q += snprintf(q, 4, "%%%02X", *p);
                        else
                                *q++ = (char) *p;
                *q = 0;
                (void) snprintf(
                        req, sizeof(req),
                        "POST /v0/keys/%s/versions/ HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n"
                        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s",
                        key_id, B.host_port, auth, strlen(form), form);
                writer.rlen = 0;
                t0 = bench_now_ns();
                if (conn_send(&writer, req) < 0) {
                        r = -EIO;
                        goto finish;
                }
                while (!t_ack || !t_watch) {
                        struct pollfd p[2] = {
                                {.fd = writer.fd, .events = POLLIN},
                                {.fd = watcher.fd, .events = POLLIN},
                        };

                        if (!t_ack && (r = conn_try_response(&writer, &st_a)) != 0) {
                                if (r < 0)
                                        goto finish;
                                t_ack = bench_now_ns();
                                if (st_a != 200) {
                                        fprintf(stderr,
                                                "loadgen: adding a version to %s failed (HTTP %d): %.200s\n",
                                                key_id, st_a, body_of(&writer));
                                        r = -EIO;
                                        goto finish;
                                }
                        }
                        if (!t_watch && (r = conn_try_response(&watcher, &st_w)) != 0) {
                                if (r < 0)
                                        goto finish;
                                t_watch = bench_now_ns();
                        }
                        if (bench_now_ns() - t0 > 10ULL * 1000000000ULL) {
                                fprintf(stderr, "loadgen: the watch was not answered within 10 s\n");
                                r = -ETIMEDOUT;
                                goto finish;
                        }
                        if (!t_ack || !t_watch)
                                (void) poll(p, 2, 100);
                }
                body = body_of(&watcher);
                if (st_w != 200 || !strstr(body, key_id)) {
                        fprintf(stderr, "loadgen: round %u: watch HTTP %d '%.200s'\n", i, st_w, body);
                        B.errors++;
                        continue;
                }
                lat[ok] = t_watch - t0;
                ack[ok] = t_ack - t0;
                after[ok] = (int64_t) (t_watch - t_ack);
                ok++;
        }

        qsort(lat, ok, sizeof(uint64_t), bench_cmp_u64);
        qsort(ack, ok, sizeof(uint64_t), bench_cmp_u64);
        qsort(after, ok, sizeof(int64_t), cmp_i64);
        printf("rounds=%u errors=%" PRIu64
               " p50_us=%.0f p99_us=%.0f max_us=%.0f ack_p50_us=%.0f ack_p99_us=%.0f "
               "after_ack_p50_us=%.0f after_ack_p99_us=%.0f\n",
               ok, B.errors, percentile_us(lat, ok, 0.50), percentile_us(lat, ok, 0.99),
               ok ? (double) lat[ok - 1] / 1e3 : 0.0, percentile_us(ack, ok, 0.50),
               percentile_us(ack, ok, 0.99), ok ? (double) after[bench_rank(ok, 0.50)] / 1e3 : 0.0,
               ok ? (double) after[bench_rank(ok, 0.99)] / 1e3 : 0.0);
        r = ok > 0 ? 0 : -EIO;

finish:
        conn_close(&watcher, r >= 0);
        conn_close(&writer, r >= 0);
        free(watcher.rbuf);
        free(writer.rbuf);
        free(lat);
        free(ack);
        free(after);
        return r;
}

/* ---- main ---------------------------------------------------------------------------- */

static void usage(FILE *f) {
        fputs("Usage: loadgen --connect ADDR:PORT --cert F --key F [--ca F]\n"
              "               [--mode keepalive|newconn|watch] [--resume] [--spin] [--connections N]\n"
              "               [--requests N] [--warmup N] [--max-time SEC] [--server-pid PID]\n"
              "               [--host NAME | --auth VALUE] [--path PATH]\n"
              "               [--key-id ID --rounds N --settle-ms MS]   (watch)\n",
              f);
}

int main(int argc, char *argv[]) {
        /* clang-format off */
        static const struct option options[] = {
                {"connect", required_argument, NULL, 'c'},
                {"cert", required_argument, NULL, 'C'},
                {"key", required_argument, NULL, 'K'},
                {"ca", required_argument, NULL, 'A'},
                {"mode", required_argument, NULL, 'm'},
                {"resume", no_argument, NULL, 'R'},
                {"spin", no_argument, NULL, 'S'},
                {"connections", required_argument, NULL, 'n'},
                {"requests", required_argument, NULL, 'r'},
                {"warmup", required_argument, NULL, 'w'},
                {"max-time", required_argument, NULL, 't'},
                {"server-pid", required_argument, NULL, 'p'},
                {"host", required_argument, NULL, 'H'},
                {"auth", required_argument, NULL, 'a'},
                {"path", required_argument, NULL, 'P'},
                {"key-id", required_argument, NULL, 'i'},
                {"rounds", required_argument, NULL, 'o'},
                {"settle-ms", required_argument, NULL, 's'},
                {"help", no_argument, NULL, 'h'},
                {}
        };
        /* clang-format on */
        const char *connect_to = NULL, *cert = NULL, *key = NULL, *ca = NULL, *host = "host1.example.com",
                   *auth = NULL, *path = "/v0/keys/bench:key/", *key_id = "bench:watch";
        uint64_t v, rounds = 200, settle_ms = 5;
        bool have_requests = false;
        char auth_buf[512];
        int c, r, len;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                r = 0;
                switch (c) {
                case 'c':
                        connect_to = optarg;
                        break;
                case 'C':
                        cert = optarg;
                        break;
                case 'K':
                        key = optarg;
                        break;
                case 'A':
                        ca = optarg;
                        break;
                case 'm':
                        if (strcmp(optarg, "keepalive") == 0)
                                B.mode = MODE_KEEPALIVE;
                        else if (strcmp(optarg, "newconn") == 0)
                                B.mode = MODE_NEWCONN;
                        else if (strcmp(optarg, "watch") == 0)
                                B.mode = MODE_WATCH;
                        else
                                r = -EINVAL;
                        break;
                case 'R':
                        B.resume = true;
                        break;
                case 'S':
                        B.spin = true;
                        break;
                case 'n':
                        r = bench_parse_u64(optarg, MAX_CONNS, &v);
                        B.n_conns = (unsigned) v;
                        if (v == 0)
                                r = -EINVAL;
                        break;
                case 'r':
                        r = bench_parse_u64(optarg, 100000000, &B.requests);
                        have_requests = true;
                        break;
                case 'w':
                        r = bench_parse_u64(optarg, 100000000, &B.warmup);
                        break;
                case 't':
                        r = bench_parse_u64(optarg, 3600, &v);
                        B.max_time = (double) v;
                        break;
                case 'p':
                        r = bench_parse_u64(optarg, INT32_MAX, &v);
                        B.server_pid = (int) v;
                        break;
                case 'H':
                        host = optarg;
                        break;
                case 'a':
                        auth = optarg;
                        break;
                case 'P':
                        path = optarg;
                        break;
                case 'i':
                        key_id = optarg;
                        break;
                case 'o':
                        r = bench_parse_u64(optarg, 1000000, &rounds);
                        break;
                case 's':
                        r = bench_parse_u64(optarg, 60000, &settle_ms);
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
                if (r < 0) {
                        fprintf(stderr, "loadgen: bad value '%s'\n", optarg);
                        usage(stderr);
                        return 2;
                }
        }
        if (!connect_to || !cert || !key || optind != argc) {
                usage(stderr);
                return 2;
        }
        if (!have_requests)
                B.requests = B.mode == MODE_NEWCONN ? 2000 : 100000;
        if (B.requests == 0)
                B.requests = 1;

        if (bench_parse_ipv4_port(connect_to, &B.addr) < 0) {
                fprintf(stderr, "loadgen: --connect takes an IPv4 address and a port: '%s'\n", connect_to);
                return 2;
        }
        (void) snprintf(B.host_port, sizeof(B.host_port), "%s", connect_to);

        if (!auth) {
                (void) snprintf(auth_buf, sizeof(auth_buf), "0t%s", host);
                auth = auth_buf;
        }

        (void) signal(SIGPIPE, SIG_IGN);

        B.ctx = bench_tls_client_ctx_new(ca, cert, key);
        if (!B.ctx)
                return 1;
        SSL_CTX_set_session_cache_mode(B.ctx, SSL_SESS_CACHE_OFF);

        if (B.mode == MODE_WATCH) {
                r = run_watch(auth, key_id, (unsigned) rounds, (unsigned) settle_ms);
                SSL_CTX_free(B.ctx);
                return r < 0 ? 1 : 0;
        }

        /* What Knox's Go client sends for a GET. */
        len = asprintf(
                &B.request,
                "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Knox_Client/bench\r\nAuthorization: %s\r\n"
                "Accept-Encoding: gzip\r\n\r\n",
                path, B.host_port, auth);
        if (len < 0)
                return 1;
        B.request_len = (size_t) len;

        r = run_load();
        free(B.request);
        SSL_SESSION_free(B.session);
        SSL_CTX_free(B.ctx);
        return r < 0 ? 1 : 0;
}
