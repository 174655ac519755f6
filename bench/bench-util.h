/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/bench-util: what the bench programs share that needs only libc: a monotonic clock,
 * percentiles, number and address parsing, a process's CPU time. */
#pragma once

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in ns. */
uint64_t bench_now_ns(void);

/* qsort() comparator of uint64_t. */
int bench_cmp_u64(const void *a, const void *b);

/* The index of the p-quantile (0 <= p <= 1) of n sorted values, nearest rank; n > 0. */
size_t bench_rank(size_t n, double p);

/* The p-quantile of v[0..n), already sorted; 0 when n is 0. */
uint64_t bench_percentile(const uint64_t *v, size_t n, double p);

/* A decimal number without sign, at most max; -EINVAL otherwise (ret untouched). */
int bench_parse_u64(const char *s, uint64_t max, uint64_t *ret);

/* "A.B.C.D:PORT" into an IPv4 address; -EINVAL when it is not one. */
int bench_parse_ipv4_port(const char *s, struct sockaddr_in *ret);

/* CPU time of every thread of process pid, in ns (schedstat's first field); 0 when unknown. */
uint64_t bench_process_cpu_ns(int pid);

/* A TCP connection to addr with TCP_NODELAY, close-on-exec, non-blocking when asked: 0 when
 * connected, 1 while a non-blocking connect is under way, -errno on failure (nothing left open). */
int bench_tcp_connect(const struct sockaddr_in *addr, int nonblock, int *ret_fd);

/* 0 when the socket's connect succeeded, -errno otherwise (SO_ERROR). */
int bench_socket_error(int fd);
