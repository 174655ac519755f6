/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

uint64_t bench_now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

int bench_cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

size_t bench_rank(size_t n, double p) {
        return (size_t) (p * (double) (n - 1) + 0.5);
}

uint64_t bench_percentile(const uint64_t *v, size_t n, double p) {
        if (n == 0)
                return 0;
        return v[bench_rank(n, p)];
}

int bench_parse_u64(const char *s, uint64_t max, uint64_t *ret) {
        unsigned long long v;
        char *end;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || end == s || *end || s[0] == '-' || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int bench_parse_ipv4_port(const char *s, struct sockaddr_in *ret) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        const char *colon = strrchr(s, ':');
        char host[64];
        uint64_t port;

        if (!colon || (size_t) (colon - s) >= sizeof(host) || bench_parse_u64(colon + 1, 65535, &port) < 0)
                return -EINVAL;
        memcpy(host, s, (size_t) (colon - s));
        host[colon - s] = 0;
        a.sin_port = htons((uint16_t) port);
        if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
                return -EINVAL;
        *ret = a;
        return 0;
}

uint64_t bench_process_cpu_ns(int pid) {
        char path[64];
        struct dirent *de;
        uint64_t sum = 0;
        DIR *d;

        (void) snprintf(path, sizeof(path), "/proc/%d/task", pid);
        d = opendir(path);
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char p[300];
                unsigned long long v;
                FILE *f;

                if (de->d_name[0] == '.')
                        continue;
                (void) snprintf(p, sizeof(p), "/proc/%d/task/%s/schedstat", pid, de->d_name);
                f = fopen(p, "re");
                if (!f)
                        continue;
                if (fscanf(f, "%llu", &v) == 1)
                        sum += v;
                fclose(f);
        }
        closedir(d);
        return sum;
}

int bench_tcp_connect(const struct sockaddr_in *addr, int nonblock, int *ret_fd) {
        int fd, one = 1, r = 0;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, (const struct sockaddr *) addr, sizeof(*addr)) < 0) {
                if (!nonblock || errno != EINPROGRESS) {
                        r = -errno;
                        close(fd);
                        return r;
                }
                r = 1;
        }
        *ret_fd = fd;
        return r;
}

int bench_socket_error(int fd) {
        int err = 0;
        socklen_t l = sizeof(err);

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                return -errno;
        return -err;
}
