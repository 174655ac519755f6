/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "log.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "parse.h"

/* The one piece of global state in lib/: set once at start-up by main(). */
static int log_max_level = LOG_INFO;
static LogTarget log_target = LOG_TARGET_STDERR;
static const char *log_ident;

bool log_stderr_is_journal(void) {
        const char *e;
        unsigned long long dev, ino;
        struct stat st;

        e = secure_getenv("JOURNAL_STREAM");
        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(const char *ident, LogTarget target) {
        log_ident = ident;
        if (target == LOG_TARGET_AUTO)
                target = log_stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR;
        log_target = target;
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

int log_level_from_string(const char *s) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",     [LOG_CRIT] = "crit",
                [LOG_ERR] = "err",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
                [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
        };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcasecmp(s, names[i]) == 0)
                        return (int) i;
        if (strcasecmp(s, "error") == 0)
                return LOG_ERR;
        return -EINVAL;
}

static void log_write(
        int level,
        int error,
        const char *file,
        int line,
        const char *func,
        const char *message_id,
        const char *msg) {

        if (log_target == LOG_TARGET_JOURNAL) {
                /* sd_journal_send() stops at the first NULL, so the optional field goes last. */
                if (message_id)
                        (void) sd_journal_send(
                                "MESSAGE=%s", msg, "PRIORITY=%i", level, "SYSLOG_IDENTIFIER=%s",
                                strna(log_ident), "MESSAGE_ID=%s", message_id, NULL);
                else
                        (void) sd_journal_send(
                                "MESSAGE=%s", msg, "PRIORITY=%i", level, "SYSLOG_IDENTIFIER=%s",
                                strna(log_ident), "CODE_FILE=%s", strempty(file), "CODE_LINE=%i", line,
                                "CODE_FUNC=%s", strempty(func), error != 0 ? "ERRNO=%i" : NULL, error, NULL);
                return;
        }

        if (log_ident)
                (void) fprintf(stderr, "%s: %s\n", log_ident, msg);
        else
                (void) fprintf(stderr, "%s\n", msg);
}

_printf_(4, 0) static void log_format(char *buf, size_t size, int error, const char *fmt, va_list ap) {
        int saved = errno;

        /* %m prints the error we were given, not whatever errno happens to be. */
        errno = error;
        (void) vsnprintf(buf, size, fmt, ap);
        errno = saved;
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...) {
        char msg[2048];
        va_list ap;

        error = abs(error);
        if (level > log_max_level)
                return -error;

        va_start(ap, fmt);
        log_format(msg, sizeof(msg), error, fmt, ap);
        va_end(ap);

        log_write(level, error, file, line, func, NULL, msg);
        return -error;
}

int log_security(int level, const char *message_id, const char *fmt, ...) {
        char msg[2048];
        va_list ap;

        if (level > log_max_level)
                return 0;

        va_start(ap, fmt);
        log_format(msg, sizeof(msg), 0, fmt, ap);
        va_end(ap);

        log_write(level, 0, NULL, 0, NULL, message_id, msg);
        return 0;
}

int log_security_fields(
        int level, const char *message_id, char *const *fields, size_t n_fields, const char *fmt, ...) {
        char msg[2048], m[sizeof(msg) + 8], prio[16], ident[128], mid[64];
        struct iovec iov[4 + LOG_FIELDS_MAX];
        size_t n = 0;
        va_list ap;

        if (level > log_max_level)
                return 0;

        va_start(ap, fmt);
        log_format(msg, sizeof(msg), 0, fmt, ap);
        va_end(ap);

        if (log_target != LOG_TARGET_JOURNAL) {
                log_write(level, 0, NULL, 0, NULL, message_id, msg);
                return 0;
        }
        (void) snprintf(m, sizeof(m), "MESSAGE=%s", msg);
        (void) snprintf(prio, sizeof(prio), "PRIORITY=%i", level);
        (void) snprintf(ident, sizeof(ident), "SYSLOG_IDENTIFIER=%s", strna(log_ident));
        (void) snprintf(mid, sizeof(mid), "MESSAGE_ID=%s", strempty(message_id));
        iov[n++] = (struct iovec){.iov_base = m, .iov_len = strlen(m)};
        iov[n++] = (struct iovec){.iov_base = prio, .iov_len = strlen(prio)};
        iov[n++] = (struct iovec){.iov_base = ident, .iov_len = strlen(ident)};
        if (message_id)
                iov[n++] = (struct iovec){.iov_base = mid, .iov_len = strlen(mid)};
        for (size_t i = 0; i < n_fields && i < LOG_FIELDS_MAX; i++)
                if (fields[i])
                        iov[n++] = (struct iovec){.iov_base = fields[i], .iov_len = strlen(fields[i])};
        (void) sd_journal_sendv(iov, (int) n);
        return 0;
}

static bool name_char_is_plain(unsigned char c) {
        return c >= 0x20 && c < 0x7f && c != '\\' && c != '\'' && c != '"';
}

const char *log_name_escape(const char *s, char buf[static LOG_NAME_SIZE]) {
        static const char hex[] = "0123456789abcdef";
        size_t o = 0, need = 0, room = LOG_NAME_SIZE - 1;

        if (!s)
                return "n/a";
        for (const unsigned char *p = (const unsigned char *) s; *p && need <= room; p++)
                need += name_char_is_plain(*p) ? 1 : 4;
        if (need > room)
                room -= 3; /* for "..." */
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                bool plain = name_char_is_plain(*p);

                if (o + (plain ? 1 : 4) > room)
                        break;
                if (plain)
                        buf[o++] = (char) *p;
                else {
                        buf[o++] = '\\';
                        buf[o++] = 'x';
                        buf[o++] = hex[*p >> 4];
                        buf[o++] = hex[*p & 15];
                }
        }
        if (need > LOG_NAME_SIZE - 1) {
                memcpy(buf + o, "...", 3);
                o += 3;
        }
        buf[o] = '\0';
        return buf;
}

bool log_ratelimit_below(LogRateLimit *rl, uint64_t now_usec) {
        if (rl->begin_usec == 0 || now_usec < rl->begin_usec ||
            now_usec - rl->begin_usec >= rl->interval_usec) {
                rl->begin_usec = now_usec ?: 1;
                rl->n = 0;
        }
        if (rl->n < rl->burst) {
                rl->n++;
                return true;
        }
        if (rl->suppressed < UINT_MAX)
                rl->suppressed++;
        return false;
}

unsigned log_ratelimit_take(LogRateLimit *rl) {
        unsigned n = rl->suppressed;

        rl->suppressed = 0;
        return n;
}
