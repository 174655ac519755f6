/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Time units and reading the clocks: the one place keyward turns a timespec into a number. */

#include <stdint.h>
#include <time.h>

#define MSEC_PER_SEC UINT64_C(1000)
#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define NSEC_PER_SEC UINT64_C(1000000000)
#define NSEC_PER_MSEC UINT64_C(1000000)
#define NSEC_PER_USEC UINT64_C(1000)

static inline uint64_t timespec_to_usec(const struct timespec *ts) {
        return (uint64_t) ts->tv_sec * USEC_PER_SEC + (uint64_t) ts->tv_nsec / NSEC_PER_USEC;
}

/* The clock's time in µs or ns. clock_gettime() cannot fail for the clocks keyward reads
 * (CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME); were it to, the answer is 0. */
static inline uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return timespec_to_usec(&ts);
}

static inline int64_t now_nsec(clockid_t clock) {
        struct timespec ts;

        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return (int64_t) ts.tv_sec * (int64_t) NSEC_PER_SEC + ts.tv_nsec;
}

static inline uint64_t now_msec(clockid_t clock) {
        return now_usec(clock) / USEC_PER_MSEC;
}
