/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Logging for the daemons and tools: to the journal when stderr is connected to it
 * (JOURNAL_STREAM), to stderr otherwise. The *_errno() forms take a (positive or negative)
 * errno, make %m print it, and return it negated, so a caller can write
 *         return log_error_errno(r, "Failed to read '%s': %m", path); */

#include <stdarg.h>
#include <stdbool.h>
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
void log_set_max_level(int level);
int log_get_max_level(void);
/* LOG_* level from "debug", "info", ... "emerg"; -EINVAL otherwise. */
int log_level_from_string(const char *s);

int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...)
        _printf_(6, 7);

/* A security event for the journal, with a MESSAGE_ID= that tools can filter on. */
int log_security(int level, const char *message_id, const char *fmt, ...) _printf_(3, 4);

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
