/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Logging for the daemons and tools: to the journal when stderr is connected to it
 * (JOURNAL_STREAM), to stderr otherwise. The *_errno() forms take a (positive or negative)
 * errno, make %m print it, and return it negated, so a caller can write
 *         return log_error_errno(r, "Failed to read '%s': %m", path); */

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

#include "macro.h"

typedef enum LogTarget {
        LOG_TARGET_AUTO, /* journal if stderr is the journal stream, stderr otherwise */
        LOG_TARGET_STDERR,
        LOG_TARGET_JOURNAL,
        _LOG_TARGET_MAX,
        _LOG_TARGET_INVALID = -EINVAL,
} LogTarget;

void log_setup(const char *ident, LogTarget target);
/* Whether stderr is the stream systemd connected to the journal for us (JOURNAL_STREAM). */
bool log_stderr_is_journal(void);
void log_set_max_level(int level);
int log_get_max_level(void);
/* LOG_* level from "debug", "info", ... "emerg"; -EINVAL otherwise. */
int log_level_from_string(const char *s);

int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...)
        _printf_(6, 7);

/* A security event for the journal, with a MESSAGE_ID= that tools can filter on. */
int log_security(int level, const char *message_id, const char *fmt, ...) _printf_(3, 4);
/* The same with fields of its own, each "NAME=value" (at most LOG_FIELDS_MAX): journal fields
 * when logging to the journal (so journalctl NAME=value finds the event), left out on stderr,
 * where the message alone goes. */
#define LOG_FIELDS_MAX 12
int log_security_fields(
        int level, const char *message_id, char *const *fields, size_t n_fields, const char *fmt, ...)
        _printf_(5, 6);

#define log_full_errno(level, error, ...)                                                   \
        ({                                                                                  \
                int _l_ = (level), _e_ = (error);                                           \
                (_l_ <= log_get_max_level()) ?                                              \
                        log_internal(_l_, _e_, __FILE__, __LINE__, __func__, __VA_ARGS__) : \
                        -abs(_e_);                                                          \
        })
#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_notice_errno(error, ...) log_full_errno(LOG_NOTICE, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

/* For allocation failures: logs and returns -ENOMEM. */
#define log_oom() log_error_errno(ENOMEM, "Out of memory.")

/* Names that come from outside (key ids, credential, unit and user names) as one safe piece
 * of a log line: control characters, quotes, backslashes and bytes outside printable ASCII
 * become \xNN, and a name too long for buf ends in "...". NULL is "n/a". Every place that
 * logs such a name goes through here, so that none can split a line or forge one. */
#define LOG_NAME_SIZE 256
const char *log_name_escape(const char *s, char buf[static LOG_NAME_SIZE]);
/* For an argument of a log call: the buffer lives until the end of the enclosing block. */
#define LOG_NAME(s) log_name_escape((s), (char[LOG_NAME_SIZE]){})

/* A limit on messages logged on behalf of peers: the first burst in each interval are
 * logged, the rest only counted, and the count is told once ("N more suppressed") by
 * whoever calls log_ratelimit_take(). No clock of its own: callers pass CLOCK_MONOTONIC. */
typedef struct LogRateLimit {
        uint64_t interval_usec;
        unsigned burst;
        uint64_t begin_usec; /* of the current interval */
        unsigned n;          /* logged in it */
        unsigned suppressed; /* not logged, and not yet told */
} LogRateLimit;

#define LOG_RATELIMIT_INIT(interval, b) ((LogRateLimit){.interval_usec = (interval), .burst = (b)})

/* Whether a message may be logged at now_usec; false counts it as suppressed. */
bool log_ratelimit_below(LogRateLimit *rl, uint64_t now_usec);
/* How many were suppressed since the last call (0 if none), and forget them. */
unsigned log_ratelimit_take(LogRateLimit *rl);
