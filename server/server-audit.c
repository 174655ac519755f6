/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-audit.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit-chain.h"
#include "audit-journal.h"
#include "hexdecoct.h"
#include "json-util.h"
#include "log.h"
#include "random-util.h"
#include "time-util.h"

typedef enum AuditTarget {
        AUDIT_TARGET_FILE,
        AUDIT_TARGET_STDERR,
        AUDIT_TARGET_JOURNAL,
        _AUDIT_TARGET_MAX,
        _AUDIT_TARGET_INVALID = -EINVAL,
} AuditTarget;

/* One thread's lines for one Audit. Only that thread touches it (audit_free() aside, when
 * no thread writes any more); a new thread may take over the buffer of an exited one that
 * had the same pthread_t, lines and all. */
typedef struct AuditBuffer AuditBuffer;
struct AuditBuffer {
        AuditBuffer *next;
        pthread_t thread;
        Buf lines; /* whole lines only, each ending in '\n' */
};

struct Audit {
        AuditTarget target;
        char *path;
        char *service;
        char *version;
        char *host;
        uint64_t serial; /* unique per Audit ever opened: thread caches never match a reused address */
        /* Writers of lines hold it shared, audit_reopen() exclusive: no line ever goes to a
         * closed (or reused) fd, and concurrent lines do not wait for each other. */
        pthread_rwlock_t lock;
        int fd;
        bool regular; /* fd is a regular file: one write() of any size stays whole */
        /* Lines go out one writer at a time: the chain seals them in file order, and a failed write can
         * be cut back to where its lines began without cutting another thread's. */
        pthread_mutex_t file_lock;
        AuditChain chain;   /* under file_lock: lines are sealed in the order they go out */
        Buf sealed;         /* under file_lock: the lines of the write at hand, sealed */
        off_t end;          /* where our next line lands, as far as we know (a hint) */
        off_t reserved_end; /* fallocate() made room up to here (a hint) */
        bool no_fallocate;  /* the file system has no fallocate(): cutting back alone */
        /* Syncs go one at a time, and a failed one fails every write it may have covered:
         * the kernel reports a writeback error (errseq) to one fdatasync() of the fd only,
         * so a second thread's sync right after it returns 0 for lines that are lost. */
        pthread_mutex_t sync_lock;
        atomic_uint_least64_t written_gen; /* writes (of lines) that reached the fd so far */
        uint64_t synced_gen;               /* under sync_lock: writes up to here are on disk */
        uint64_t lost_from, lost_to;       /* under sync_lock: writes in (from, to] met a failed sync */
        int lost_error;                    /* under sync_lock: its negative errno */
        AuditSyncHook sync_hook;           /* tests: stands in for fdatasync() */
        AuditAnchorFunc anchor;            /* told of each checkpoint once it is on disk */
        void *anchor_userdata;
        uint64_t anchored_seq; /* under file_lock: the last checkpoint handed to anchor */
        void *sync_hook_userdata;
        atomic_bool failing;          /* a write failed and was logged; log again only after a success */
        atomic_int last_error;        /* the failure's negative errno, while failing */
        pthread_mutex_t buffers_lock; /* the list, not the buffers' contents */
        AuditBuffer *buffers;
};

/* A buffer keeps up to this much memory between flushes; more (after huge lines) is freed. */
#define AUDIT_BUFFER_KEEP (4 * AUDIT_BUFFER_SIZE)

static atomic_uint_least64_t audit_serial_last;

/* The calling thread's buffer of the Audit it used last, valid while that Audit's serial is
 * thread_serial (an Audit frees its buffers only in audit_free()). */
static _Thread_local uint64_t thread_serial;
static _Thread_local AuditBuffer *thread_buffer;

#define AUDIT_ID_LEN 20
/* Room is made in the file this much at a time (file_reserve()). */
#define AUDIT_RESERVE_CHUNK (64 * 1024)
#define AUDIT_JOURNAL_SOCKET "/run/systemd/journal/socket"

/* The line id only has to be unique in practice (Knox uses math/rand), so a per-thread
 * xorshift128+ seeded once from the kernel saves a getrandom() per request. */
static _Thread_local uint64_t id_state[2];
static _Thread_local bool id_seeded;

static uint64_t id_next(void) {
        uint64_t s1 = id_state[0];
        const uint64_t s0 = id_state[1];

        id_state[0] = s0;
        s1 ^= s1 << 23;
        id_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        return id_state[1] + s0;
}

static void id_append(Buf *b) {
        static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        char id[AUDIT_ID_LEN];
        size_t n = 0;

        if (!id_seeded) {
                if (random_bytes(id_state, sizeof(id_state)) < 0) {
                        id_state[0] = (uint64_t) now_nsec(CLOCK_REALTIME);
                        id_state[1] = (uint64_t) gettid() * UINT64_C(0x9e3779b97f4a7c15);
                }
                if (id_state[0] == 0 && id_state[1] == 0)
                        id_state[1] = 1;
                id_seeded = true;
        }

        /* Rejection sampling keeps the 62 letters equally likely. */
        while (n < AUDIT_ID_LEN) {
                uint64_t v = id_next();

                for (size_t i = 0; i < 8 && n < AUDIT_ID_LEN; i++, v >>= 8) {
                        uint8_t c = (uint8_t) v;

                        if (c < 248)
                                id[n++] = letters[c % 62];
                }
        }
        (void) buf_put(b, id, sizeof(id));
}

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days), so
 * that formatting needs no gmtime_r() and its time zone lock. */
static void civil_from_days(int64_t z, int64_t *ret_y, unsigned *ret_m, unsigned *ret_d) {
        int64_t era, y;
        unsigned doe, yoe, doy, mp, m;

        z += 719468;
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = (unsigned) (z - era * 146097);
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        y = (int64_t) yoe + era * 400;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp = (5 * doy + 2) / 153;
        m = mp < 10 ? mp + 3 : mp - 9;
        *ret_y = y + (m <= 2);
        *ret_m = m;
        *ret_d = doy - (153 * mp + 2) / 5 + 1;
}

/* v as exactly width decimal digits at p (the leading ones zeros); v < 10^width. */
static void put_digits(char *p, uint64_t v, unsigned width) {
        while (width > 0) {
                p[--width] = (char) ('0' + v % 10);
                v /= 10;
        }
}

/* RFC 3339 in UTC with all nine digits of nanoseconds: "2026-11-23T19:29:31.123456789Z".
 * (Go's RFC3339Nano drops trailing zeros; a fixed width sorts as text and parses the same.)
 * Nanoseconds in an int64_t span the years 1677 to 2262: four digits always do. */
static void timestamp_append(Buf *b, int64_t ns) {
        int64_t secs, days, y;
        unsigned mo, d, sod;
        long nsec;
        char s[sizeof("YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ") - 1];

        secs = ns / 1000000000;
        nsec = (long) (ns % 1000000000);
        if (nsec < 0) {
                nsec += 1000000000;
                secs--;
        }
        days = secs / 86400;
        if (secs % 86400 < 0)
                days--;
        sod = (unsigned) (secs - days * 86400);
        civil_from_days(days, &y, &mo, &d);

        put_digits(s, (uint64_t) y, 4);
        s[4] = '-';
        put_digits(s + 5, mo, 2);
        s[7] = '-';
        put_digits(s + 8, d, 2);
        s[10] = 'T';
        put_digits(s + 11, sod / 3600, 2);
        s[13] = ':';
        put_digits(s + 14, sod / 60 % 60, 2);
        s[16] = ':';
        put_digits(s + 17, sod % 60, 2);
        s[19] = '.';
        put_digits(s + 20, (uint64_t) nsec, 9);
        s[29] = 'Z';
        (void) buf_put(b, s, sizeof(s));
}

/* One "name":value member of an object; *first tracks the comma. */
static void member_begin(Buf *b, bool *first, const char *name) {
        if (!*first)
                (void) buf_putc(b, ',');
        *first = false;
        (void) json_append_cstring(b, name);
        (void) buf_putc(b, ':');
}

static void param_string(Buf *b, bool *first, const char *name, const char *value, size_t len) {
        member_begin(b, first, name);
        (void) json_append_string(b, value, len);
}

static void param_cstring(Buf *b, bool *first, const char *name, const char *value) {
        if (!value)
                return;
        param_string(b, first, name, value, strlen(value));
}

static void param_field(Buf *b, bool *first, const char *name, const Form *f) {
        const FormField *field = f ? form_get(f, name) : NULL;

        /* Knox's parameters take the first value of a repeated field. */
        if (field)
                param_string(b, first, name, field->value, field->value_len);
}

/* Key data is never logged, whatever it holds: only its presence. */
static void param_data(Buf *b, bool *first, const Form *f) {
        if (f && form_get(f, "data"))
                param_cstring(b, first, "data", "<DATA>");
}

/* Knox's route parameters (server/routes.go). They are a Go map there, which encoding/json
 * writes with its keys sorted, so each route lists its members in byte order of the names. */
static void parameters_append(Buf *b, const AuditRecord *r) {
        const char *route = r->route;
        bool first = true;

        if (route && streq(route, "404")) {
                (void) buf_puts(b, "null");
                return;
        }

        (void) buf_putc(b, '{');
        if (!route)
                ; /* our extension routes: no parameters */
        else if (streq(route, "getkeys"))
                param_cstring(b, &first, "queryString", strempty(r->raw_query));
        else if (streq(route, "postkeys")) {
                param_field(b, &first, "acl", r->form);
                param_data(b, &first, r->form);
                param_field(b, &first, "id", r->form);
        } else if (streq(route, "getkey")) {
                param_cstring(b, &first, "keyID", r->key_id);
                param_field(b, &first, "status", r->query);
        } else if (streq(route, "deletekey") || streq(route, "getaccess"))
                param_cstring(b, &first, "keyID", r->key_id);
        else if (streq(route, "putaccess")) {
                param_field(b, &first, "access", r->form);
                param_field(b, &first, "acl", r->form);
                param_cstring(b, &first, "keyID", r->key_id);
        } else if (streq(route, "postversion")) {
                param_data(b, &first, r->form);
                param_cstring(b, &first, "keyID", r->key_id);
        } else if (streq(route, "login"))
                param_field(b, &first, "user", r->form); /* never the password */
        else if (streq(route, "putversion")) {
                param_cstring(b, &first, "keyID", r->key_id);
                param_field(b, &first, "status", r->form);
                param_cstring(b, &first, "versionID", r->version_id);
        }
        (void) buf_putc(b, '}');
}

static int field_cmp(const void *x, const void *y) {
        const FormField *a = *(const FormField *const *) x, *b = *(const FormField *const *) y;
        int c;

        c = memcmp(a->key, b->key, MIN(a->key_len, b->key_len));
        if (c != 0)
                return c;
        if (a->key_len != b->key_len)
                return a->key_len < b->key_len ? -1 : 1;
        /* Equal keys keep their input order, so that the last one can win. */
        return a < b ? -1 : a > b;
}

/* The list route's query as a Go map[string]string: keys sorted, the last value of a
 * repeated key wins. */
static int parsed_query_append(Buf *b, const AuditRecord *r) {
        _cleanup_form_ Form own = FORM_NULL;
        _cleanup_free_ const FormField **v = NULL;
        const Form *q = r->query;
        bool first = true;

        if (!q) {
                const char *raw = strempty(r->raw_query);

                /* A skipped bad pair still leaves the good ones, as url.ParseQuery does. */
                if (form_parse(raw, strlen(raw), &own) == -E2BIG)
                        own = FORM_NULL;
                q = &own;
        }

        (void) buf_putc(b, '{');
        if (q->n > 0) {
                v = calloc(q->n, sizeof(v[0]));
                if (!v)
                        return -ENOMEM;
                for (size_t i = 0; i < q->n; i++)
                        v[i] = &q->fields[i];
                qsort(v, q->n, sizeof(v[0]), field_cmp);
                for (size_t i = 0; i < q->n; i++) {
                        if (i + 1 < q->n && v[i]->key_len == v[i + 1]->key_len &&
                            memcmp(v[i]->key, v[i + 1]->key, v[i]->key_len) == 0)
                                continue;
                        if (!first)
                                (void) buf_putc(b, ',');
                        first = false;
                        (void) json_append_string(b, v[i]->key, v[i]->key_len);
                        (void) buf_putc(b, ':');
                        (void) json_append_string(b, v[i]->value, v[i]->value_len);
                }
        }
        (void) buf_putc(b, '}');
        return 0;
}

static int principals_append(Buf *b, const AuditRecord *r) {
        const Principals *ps = r->principals;
        const Principal *def = ps && ps->n > 0 ? principals_default(ps) : NULL;
        _cleanup_buf_ Buf type = BUF_INIT;
        int k;

        (void) buf_puts(b, ",\"principal\":");
        (void) json_append_cstring(b, def ? def->id : "");

        (void) buf_puts(b, ",\"fallback_principals\":");
        if (def) {
                (void) buf_putc(b, '[');
                for (size_t i = 0; i < ps->n; i++) {
                        if (i > 0)
                                (void) buf_putc(b, ',');
                        (void) json_append_cstring(b, ps->items[i].id);
                }
                (void) buf_putc(b, ']');
        } else
                (void) buf_puts(b, "null");

        (void) buf_puts(b, ",\"auth_type\":");
        if (ps && ps->n == 1) /* the common case, a kind name: no scratch buffer */
                return json_append_cstring(b, principal_kind_to_string(def->kind));
        if (def) {
                k = principals_type_append(ps, &type);
                if (k < 0)
                        return k;
        }
        (void) json_append_string(b, strempty(type.data), type.len);
        return 0;
}

int audit_format(const Audit *a, const AuditRecord *r, Buf *out) {
        int k;

        assert_return(a, -EINVAL);
        assert_return(r, -EINVAL);
        assert_return(out, -EINVAL);

        /* Knox's log.LogMessage, in its field order; service, host and version are omitempty. */
        (void) buf_puts(out, "{\"id\":\"");
        id_append(out);
        (void) buf_puts(out, "\",\"@timestamp\":\"");
        timestamp_append(out, r->ts_ns != 0 ? r->ts_ns : now_nsec(CLOCK_REALTIME));
        (void) buf_putc(out, '"');
        if (!isempty(a->service)) {
                (void) buf_puts(out, ",\"service\":");
                (void) json_append_cstring(out, a->service);
        }
        if (!isempty(a->host)) {
                (void) buf_puts(out, ",\"host\":");
                (void) json_append_cstring(out, a->host);
        }
        if (!isempty(a->version)) {
                (void) buf_puts(out, ",\"version\":");
                (void) json_append_cstring(out, a->version);
        }

        /* Knox's reqLog and request (server/decorators.go), in their field order. */
        (void) buf_puts(out, ",\"payload\":{\"type\":\"access\",\"code\":");
        (void) json_append_int64(out, r->code);
        (void) buf_puts(out, ",\"status_code\":");
        (void) json_append_int64(out, r->status_code);
        (void) buf_puts(out, ",\"request\":{\"method\":");
        (void) json_append_cstring(out, r->method);
        (void) buf_puts(out, ",\"path\":");
        (void) json_append_cstring(out, r->path);
        (void) buf_puts(out, ",\"parameters\":");
        parameters_append(out, r);
        (void) buf_puts(out, ",\"parsed_query_string\":");
        if (r->route && streq(r->route, "getkeys")) {
                k = parsed_query_append(out, r);
                if (k < 0)
                        return k;
        } else
                (void) buf_puts(out, "null");
        k = principals_append(out, r);
        if (k < 0)
                return k;
        /* Upstream never fills request_uri. We keep it "": the list route's query is already
         * in parameters.queryString, and a query a client puts on any other route (where
         * nothing reads it) then cannot carry anything into the log. */
        (void) buf_puts(out, ",\"request_uri\":\"\",\"remote_addr\":");
        (void) json_append_cstring(out, r->remote_addr);
        (void) buf_puts(out, ",\"tls_server\":");
        (void) json_append_cstring(out, r->tls_server);
        (void) buf_puts(out, ",\"tls_cipher\":");
        (void) json_append_int64(out, r->tls_cipher);
        (void) buf_puts(out, ",\"tls_version\":");
        (void) json_append_int64(out, r->tls_version);
        (void) buf_puts(out, r->tls_resumed ? ",\"tls_resumed\":true" : ",\"tls_resumed\":false");
        (void) buf_puts(out, ",\"tls_session_id\":");
        if (r->tls_unique) {
                (void) buf_putc(out, '"');
                (void) base64_append(out, r->tls_unique, r->tls_unique_size);
                (void) buf_putc(out, '"');
        } else
                (void) buf_puts(out, "null");
        (void) buf_puts(out, "},\"msg\":");
        (void) json_append_cstring(out, r->msg);
        (void) buf_puts(out, ",\"userAgent\":");
        (void) json_append_cstring(out, isempty(r->user_agent) ? "unknown" : r->user_agent);
        (void) buf_puts(out, "},\"payload_encoding\":\"JSON\"}");

        return out->error;
}

static bool fd_is_regular(int fd) {
        struct stat st;

        return fstat(fd, &st) >= 0 && S_ISREG(st.st_mode);
}

static int open_target(const char *path, int *ret, bool *ret_regular) {
        int fd;

        fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return negative_errno();
        *ret = fd;
        *ret_regular = fd_is_regular(fd);
        return 0;
}

static int strdup_or_null(const char *s, char **ret) {
        char *c = NULL;

        if (s) {
                c = strdup(s);
                if (!c)
                        return -ENOMEM;
        }
        *ret = c;
        return 0;
}

int audit_open(
        const char *target, const char *service, const char *version, const char *hostname, Audit **ret) {
        _cleanup_(audit_freep) Audit *a = NULL;
        pthread_rwlockattr_t attr;
        int r;

        assert_return(!isempty(target), -EINVAL);
        assert_return(ret, -EINVAL);

        a = calloc(1, sizeof(Audit));
        if (!a)
                return -ENOMEM;
        a->fd = -EBADF;
        a->sync_lock = (pthread_mutex_t) PTHREAD_MUTEX_INITIALIZER;
        audit_chain_init(&a->chain);
        a->serial = atomic_fetch_add(&audit_serial_last, 1) + 1;
        r = pthread_mutex_init(&a->buffers_lock, NULL);
        if (r != 0) {
                free(TAKE_PTR(a));
                return -r;
        }
        r = pthread_mutex_init(&a->file_lock, NULL);
        if (r != 0) {
                (void) pthread_mutex_destroy(&a->buffers_lock);
                free(TAKE_PTR(a));
                return -r;
        }

        /* Prefer the writer, so that a reopen is not starved by a steady stream of lines. */
        if (pthread_rwlockattr_init(&attr) != 0) {
                (void) pthread_mutex_destroy(&a->buffers_lock);
                (void) pthread_mutex_destroy(&a->file_lock);
                free(TAKE_PTR(a));
                return -ENOMEM;
        }
        (void) pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        r = pthread_rwlock_init(&a->lock, &attr);
        (void) pthread_rwlockattr_destroy(&attr);
        if (r != 0) {
                (void) pthread_mutex_destroy(&a->buffers_lock);
                (void) pthread_mutex_destroy(&a->file_lock);
                free(TAKE_PTR(a));
                return -r;
        }

        if (streq(target, "-")) {
                a->target = AUDIT_TARGET_STDERR;
                a->fd = STDERR_FILENO;
                a->regular = fd_is_regular(a->fd);
        } else if (streq(target, "journal")) {
                /* sd_journal_send() drops messages silently when journald is not there; an
                 * audit log must not, so refuse to start instead. */
                if (access(AUDIT_JOURNAL_SOCKET, F_OK) < 0)
                        return negative_errno();
                a->target = AUDIT_TARGET_JOURNAL;
        } else {
                a->target = AUDIT_TARGET_FILE;
                a->path = strdup(target);
                if (!a->path)
                        return -ENOMEM;
                r = open_target(a->path, &a->fd, &a->regular);
                if (r < 0)
                        return r;
                /* The chain goes on from the file's last line. */
                r = audit_chain_resume(&a->chain, a->fd);
                if (r < 0)
                        return r;
        }

        if (strdup_or_null(service, &a->service) < 0 || strdup_or_null(version, &a->version) < 0 ||
            strdup_or_null(hostname, &a->host) < 0)
                return -ENOMEM;

        *ret = TAKE_PTR(a);
        return 0;
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k;

                k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -EIO;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* A pipe, socket or terminal keeps only writes of up to PIPE_BUF whole, so there lines go
 * as many whole ones as fit in PIPE_BUF per write (a longer line alone, as it always did). */
static int write_lines(int fd, const char *p, size_t n, size_t *ret_done) {
        *ret_done = 0;
        while (n > 0) {
                size_t k = 0;
                int r;

                while (k < n) {
                        const char *nl = memchr(p + k, '\n', n - k);
                        size_t end = nl ? (size_t) (nl - p) + 1 : n;

                        if (k > 0 && end > PIPE_BUF)
                                break;
                        k = end;
                }
                r = write_all(fd, p, k);
                if (r < 0)
                        return r;
                p += k;
                n -= k;
                *ret_done += k;
        }
        return 0;
}

/* Make room for n more bytes at the end of the file before writing any of them, so that a
 * full disk refuses whole lines rather than taking half of one. Room is made in chunks, so
 * most lines need no system call for it. Called with file_lock held. */
static int file_reserve(Audit *a, int fd, size_t n) {
        off_t chunk = (off_t) MAX(n, (size_t) AUDIT_RESERVE_CHUNK);

        if (a->no_fallocate)
                return 0;
        if (a->reserved_end == 0) {
                /* A new file, or after a failure: where its end is now. */
                struct stat st;

                if (fstat(fd, &st) < 0)
                        return negative_errno();
                a->end = st.st_size;
        }
        if (a->end + (off_t) n <= a->reserved_end)
                return 0;
        if (fallocate(fd, FALLOC_FL_KEEP_SIZE, a->end, chunk) >= 0) {
                a->reserved_end = a->end + chunk;
                return 0;
        }
        if (errno == EOPNOTSUPP || errno == ENOSYS || errno == ENODEV) {
                a->no_fallocate = true; /* cutting back still keeps the file whole */
                return 0;
        }
        /* Not a whole chunk left: the line alone may still fit. */
        if (fallocate(fd, FALLOC_FL_KEEP_SIZE, a->end, (off_t) n) >= 0) {
                a->reserved_end = a->end + (off_t) n;
                return 0;
        }
        return negative_errno();
}

/* After a write() that took only part of p[0..done): cut the file back to the end of the last
 * whole line it took. Returns how many bytes of p stay in the file. */
static size_t file_cut_back(Audit *a, int fd, const char *p, size_t done) {
        const char *nl = done > 0 ? memrchr(p, '\n', done) : NULL;
        size_t keep = nl ? (size_t) (nl - p) + 1 : 0;
        off_t cut = (off_t) (done - keep);
        struct stat st;

        /* Whatever happened, the hints are stale: ask the file again next time. */
        a->reserved_end = 0;
        if (fstat(fd, &st) < 0) {
                log_error_errno(negative_errno(), "Failed to cut a torn audit line from the file: %m");
                return keep;
        }
        a->end = st.st_size;
        if (cut == 0)
                return keep;
        if (st.st_size < cut || ftruncate(fd, st.st_size - cut) < 0) {
                log_error_errno(
                        st.st_size < cut ? -ESTALE : negative_errno(),
                        "Failed to cut a torn audit line from the file: %m");
                return keep;
        }
        a->end = st.st_size - cut;
        return keep;
}

/* Whole lines p[0..n) to the end of a regular file: each line reaches the file whole or not at
 * all. Room is made first (file_reserve()); should a write() still stop short, the file is cut
 * back to the end of the last whole line it took and the rest fails. Called with file_lock
 * held (one writer at a time, so that the cut never takes another thread's line). */
static int file_write(Audit *a, int fd, const char *p, size_t n, size_t *ret_kept) {
        size_t done = 0;
        int r;

        r = file_reserve(a, fd, n);
        while (r >= 0 && done < n) {
                ssize_t k;

                k = write(fd, p + done, n - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                } else if (k == 0)
                        r = -EIO;
                else
                        done += (size_t) k;
        }
        if (r < 0) {
                *ret_kept = file_cut_back(a, fd, p, done);
                return r;
        }
        a->end += (off_t) n;
        *ret_kept = n;
        return 0;
}

/* Each of the lines p[0..n) as an entry of its own: the first with the request's fields (if
 * any), the rest (checkpoints) without. */
static int journal_write(const AuditJournalFields *fields, const char *p, size_t n, size_t *ret_done) {
        *ret_done = 0;
        while (n > 0) {
                const char *nl = memchr(p, '\n', n);
                size_t len = nl ? (size_t) (nl - p) : n;
                int r;

                r = audit_journal_send(*ret_done == 0 ? fields : NULL, p, len);
                if (r < 0)
                        return r;
                len += nl ? 1 : 0;
                p += len;
                n -= len;
                *ret_done += len;
        }
        return 0;
}

/* Sealed lines to the sink; *ret_kept: how many bytes of them went out, whole lines. Called
 * with a->lock held shared and file_lock held. */
static int sink_put(Audit *a, const AuditJournalFields *fields, const char *p, size_t n, size_t *ret_kept) {
        if (a->target == AUDIT_TARGET_JOURNAL)
                return journal_write(fields, p, n, ret_kept);
        if (a->regular)
                return file_write(a, a->fd, p, n, ret_kept);
        return write_lines(a->fd, p, n, ret_kept);
}

static int fd_sync(Audit *a, int fd) {
        if (a->sync_hook)
                return a->sync_hook(fd, a->sync_hook_userdata);
        return fdatasync(fd) < 0 ? negative_errno() : 0;
}

/* Sync the file for write number gen (written_gen after it). One sync at a time: a sync covers
 * the writes that reached the fd before it began; a failed one fails every write that reached
 * the fd before it returned (its writeback may have held their lines), whichever thread asks,
 * and the kernel will not say so twice. Called with a->lock held (either way). */
static int file_sync(Audit *a, uint64_t gen) {
        uint64_t start;
        int r;

        (void) pthread_mutex_lock(&a->sync_lock);
        if (gen > a->lost_from && gen <= a->lost_to)
                r = a->lost_error;
        else if (gen <= a->synced_gen)
                r = 0; /* another thread's sync covered it: group commit */
        else {
                start = atomic_load(&a->written_gen);
                r = fd_sync(a, a->fd);
                if (r < 0) {
                        /* A new run of failures starts where the disk was last known good. */
                        if (a->lost_to == 0 || a->synced_gen > a->lost_to)
                                a->lost_from = a->synced_gen;
                        a->lost_to = atomic_load(&a->written_gen);
                        a->lost_error = r;
                } else
                        a->synced_gen = start;
        }
        (void) pthread_mutex_unlock(&a->sync_lock);
        return r;
}

/* Under file_lock, after lines went out: the checkpoint among them not yet anchored, if any. */
static uint64_t anchor_claim(Audit *a, uint8_t ret_hash[static AUDIT_HASH_SIZE]) {
        if (!a->anchor || a->chain.checkpoint_seq <= a->anchored_seq)
                return 0;
        a->anchored_seq = a->chain.checkpoint_seq;
        memcpy(ret_hash, a->chain.checkpoint_head, AUDIT_HASH_SIZE);
        return a->anchored_seq;
}

/* Hand a checkpoint that is on the sink to the anchor: a file is synced first, so that the
 * anchor is never ahead of what a crash leaves in the file. */
static void anchor_put(Audit *a, uint64_t gen, uint64_t seq, const uint8_t hash[static AUDIT_HASH_SIZE]) {
        int r = 0;

        if (seq == 0)
                return;
        if (a->regular)
                r = file_sync(a, gen);
        if (r >= 0)
                r = a->anchor(seq, hash, a->anchor_userdata);
        if (r < 0)
                log_warning_errno(
                        r, "Failed to record the audit chain's anchor at seq %" PRIu64 ", ignoring: %m",
                        seq);
}

/* Whole lines p[0..n) to the sink, sealed into the hash chain in the order they go out. With
 * durable, a file is synced before returning (outside file_lock: a sync covers every line
 * written before it). Called with a->lock held shared. */
static int sink_write(Audit *a, const AuditJournalFields *fields, const char *p, size_t n, bool durable) {
        Buf *sealed = &a->sealed;
        AuditChain saved;
        uint64_t gen = 0, anchor_seq = 0;
        uint8_t anchor_hash[AUDIT_HASH_SIZE];
        size_t kept = 0;
        int r;

        (void) pthread_mutex_lock(&a->file_lock);
        /* One buffer for every writer (they take turns): no allocation per write. */
        if (sealed->error < 0 || sealed->cap > AUDIT_BUFFER_KEEP)
                buf_done(sealed);
        else
                buf_truncate(sealed, 0);
        saved = a->chain;
        r = audit_chain_seal(&a->chain, p, n, sealed);
        if (r >= 0)
                r = sink_put(a, fields, sealed->data, sealed->len, &kept);
        if (r < 0)
                audit_chain_rewind(&a->chain, &saved, sealed->data, kept);
        if (kept > 0)
                gen = atomic_fetch_add(&a->written_gen, 1) + 1;
        if (r >= 0)
                anchor_seq = anchor_claim(a, anchor_hash);
        (void) pthread_mutex_unlock(&a->file_lock);

        if (r >= 0 && durable && a->regular)
                r = file_sync(a, gen);
        if (r >= 0)
                anchor_put(a, gen, anchor_seq, anchor_hash);
        return r;
}

/* A checkpoint line to the sink now (final: the last line this file gets from us). Called
 * with a->lock held (either way). */
static int sink_checkpoint(Audit *a, bool final) {
        _cleanup_buf_ Buf b = BUF_INIT;
        AuditChain saved;
        uint64_t gen = 0, anchor_seq = 0;
        uint8_t anchor_hash[AUDIT_HASH_SIZE];
        size_t kept = 0;
        int r;

        (void) pthread_mutex_lock(&a->file_lock);
        saved = a->chain;
        r = audit_chain_checkpoint(&a->chain, final, &b);
        if (r >= 0 && b.len > 0)
                r = sink_put(a, NULL, b.data, b.len, &kept);
        if (r < 0)
                audit_chain_rewind(&a->chain, &saved, b.data, kept);
        if (kept > 0)
                gen = atomic_fetch_add(&a->written_gen, 1) + 1;
        if (r >= 0)
                anchor_seq = anchor_claim(a, anchor_hash);
        (void) pthread_mutex_unlock(&a->file_lock);

        if (r >= 0 && b.len > 0 && a->regular)
                r = file_sync(a, gen);
        if (r >= 0)
                anchor_put(a, gen, anchor_seq, anchor_hash);
        return r;
}

/* Log the first failure of a run only, so that a full disk does not flood the log. */
static int note_result(Audit *a, int r) {
        if (r < 0) {
                atomic_store_explicit(&a->last_error, r, memory_order_relaxed);
                if (!atomic_exchange_explicit(&a->failing, true, memory_order_relaxed))
                        log_warning_errno(r, "Failed to write an audit line, ignoring: %m");
                return r;
        }
        if (atomic_load_explicit(&a->failing, memory_order_relaxed))
                atomic_store_explicit(&a->failing, false, memory_order_relaxed);
        return 0;
}

/* Empty the buffer for its next lines. Its memory stays for reuse, unless it grew large or
 * an append failed (a failed Buf takes no more appends until buf_done()). */
static void buffer_clear(AuditBuffer *b) {
        if (b->lines.error < 0 || b->lines.cap > AUDIT_BUFFER_KEEP)
                buf_done(&b->lines);
        else
                buf_truncate(&b->lines, 0);
}

/* Write out b's whole lines (and drop them, written or not). 0 when there were none. */
static int buffer_write(Audit *a, AuditBuffer *b, bool durable) {
        int r;

        if (b->lines.len == 0) {
                buffer_clear(b);
                return 0;
        }

        (void) pthread_rwlock_rdlock(&a->lock);
        r = sink_write(a, NULL, b->lines.data, b->lines.len, durable);
        (void) pthread_rwlock_unlock(&a->lock);

        buffer_clear(b);
        return r;
}

/* The calling thread's buffer for a, made on first use. NULL on ENOMEM. */
static AuditBuffer *buffer_get(Audit *a) {
        pthread_t self = pthread_self();
        AuditBuffer *b;

        if (thread_serial == a->serial)
                return thread_buffer;

        (void) pthread_mutex_lock(&a->buffers_lock);
        for (b = a->buffers; b; b = b->next)
                if (pthread_equal(b->thread, self))
                        break;
        if (!b) {
                b = calloc(1, sizeof(AuditBuffer));
                if (b) {
                        b->thread = self;
                        b->next = a->buffers;
                        a->buffers = b;
                }
        }
        (void) pthread_mutex_unlock(&a->buffers_lock);

        if (b) {
                thread_serial = a->serial;
                thread_buffer = b;
        }
        return b;
}

Audit *audit_free(Audit *a) {
        AuditBuffer *b;
        int r = 0;

        if (!a)
                return NULL;

        /* Nobody writes any more: every thread's lines go out, also those of exited threads. */
        while ((b = a->buffers)) {
                int k;

                a->buffers = b->next;
                k = buffer_write(a, b, false);
                if (k < 0 && r == 0)
                        r = k;
                buf_done(&b->lines);
                free(b);
        }
        /* The file's last line: the seal that says nothing was cut from its end. */
        if (r == 0 && (a->fd >= 0 || a->target == AUDIT_TARGET_JOURNAL))
                r = sink_checkpoint(a, true);
        (void) note_result(a, r);
        if (thread_serial == a->serial) {
                thread_serial = 0;
                thread_buffer = NULL;
        }

        if (a->target == AUDIT_TARGET_FILE)
                (void) safe_close(a->fd);
        audit_chain_done(&a->chain);
        buf_done(&a->sealed);
        (void) pthread_rwlock_destroy(&a->lock);
        (void) pthread_mutex_destroy(&a->buffers_lock);
        (void) pthread_mutex_destroy(&a->file_lock);
        (void) pthread_mutex_destroy(&a->sync_lock);
        free(a->path);
        free(a->service);
        free(a->version);
        free(a->host);
        free(a);
        return NULL;
}

int audit_flush(Audit *a) {
        AuditBuffer *b;

        assert_return(a, -EINVAL);

        if (a->target == AUDIT_TARGET_JOURNAL)
                return 0;

        /* A thread that never wrote gets an empty buffer, so that its next call is as quick. */
        b = buffer_get(a);
        if (!b)
                return 0; /* nothing was buffered: audit_write() wrote directly */
        if (b->lines.len == 0)
                return 0;
        /* While failing, the lines that end the failure must be on disk (see below). */
        return note_result(a, buffer_write(a, b, audit_is_failing(a)));
}

int audit_reopen(Audit *a) {
        bool regular;
        int fd, old, r;

        assert_return(a, -EINVAL);

        /* This thread's lines predate the reopen: they still go to the old file. */
        (void) audit_flush(a);

        if (a->target != AUDIT_TARGET_FILE)
                return 0;

        /* Open first: on failure the old file keeps getting the lines. */
        r = open_target(a->path, &fd, &regular);
        if (r < 0)
                return r;

        (void) pthread_rwlock_wrlock(&a->lock);
        /* Nobody writes now: the old file's last line is its seal, and the new file's first
         * line names it (or, the same file reopened, follows it). */
        (void) note_result(a, sink_checkpoint(a, true));
        old = a->fd;
        a->fd = fd;
        a->regular = regular;
        a->reserved_end = 0; /* file_reserve() looks at the new file's end */
        r = audit_chain_resume(&a->chain, fd);
        if (r < 0)
                log_warning_errno(
                        r, "Failed to read the last line of the audit log '%s', ignoring: %m", a->path);
        (void) pthread_rwlock_unlock(&a->lock);

        (void) safe_close(old);
        return 0;
}

/* Without a buffer (out of memory, or the journal, which takes each line as an entry of its
 * own): the line alone, right away. */
static int write_unbuffered(Audit *a, const AuditRecord *rec, bool durable) {
        _cleanup_buf_ Buf b = BUF_INIT;
        AuditJournalFields fields = {};
        int r;

        r = audit_format(a, rec, &b);
        if (r >= 0)
                r = buf_putc(&b, '\n');
        if (r >= 0 && a->target == AUDIT_TARGET_JOURNAL)
                r = audit_journal_fields(rec, &fields);
        if (r < 0)
                return r;

        (void) pthread_rwlock_rdlock(&a->lock);
        r = sink_write(a, &fields, b.data, b.len, durable);
        (void) pthread_rwlock_unlock(&a->lock);
        audit_journal_fields_done(&fields);
        return r;
}

int audit_write(Audit *a, const AuditRecord *rec) {
        return audit_write_mode(a, rec, AUDIT_BATCHED);
}

int audit_write_mode(Audit *a, const AuditRecord *rec, AuditMode mode) {
        AuditBuffer *b;
        size_t start;
        int r;

        assert_return(a, -EINVAL);
        assert_return(rec, -EINVAL);
        assert_return(mode >= 0 && mode < _AUDIT_MODE_MAX, -EINVAL);

        /* While the sink fails, a line that goes out ends the failure only once it is on disk:
         * after EIO, a write() into the page cache proves nothing (the sync would fail). */
        if (mode == AUDIT_NOW && audit_is_failing(a))
                mode = AUDIT_DURABLE;

        /* The journal takes each line at once, as its own entry. */
        b = a->target == AUDIT_TARGET_JOURNAL ? NULL : buffer_get(a);
        if (!b)
                return note_result(a, write_unbuffered(a, rec, mode == AUDIT_DURABLE));

        start = b->lines.len;
        r = audit_format(a, rec, &b->lines);
        if (r >= 0)
                r = buf_putc(&b->lines, '\n');
        if (r < 0) {
                /* Drop the partial line. The lines before it are whole: out with them now,
                 * since the failed Buf must be started afresh. */
                buf_truncate(&b->lines, start);
                if (b->lines.error < 0)
                        (void) buffer_write(a, b, false);
                return note_result(a, r);
        }

        if (mode == AUDIT_BATCHED && b->lines.len < AUDIT_BUFFER_SIZE)
                return 0;
        return note_result(a, buffer_write(a, b, mode == AUDIT_DURABLE || audit_is_failing(a)));
}

bool audit_is_failing(Audit *a) {
        return a && atomic_load_explicit(&a->failing, memory_order_relaxed);
}

int audit_probe(Audit *a) {
        assert_return(a, -EINVAL);

        /* Room in the file (fallocate()) says nothing of EIO, a size limit or a sync that
         * fails: only a line that goes out (and is synced, see audit_write_mode()) ends it. */
        if (!audit_is_failing(a))
                return 0;
        return atomic_load_explicit(&a->last_error, memory_order_relaxed) ?: -EIO;
}

int audit_set_checkpoint_key(Audit *a, const uint8_t key[static AUDIT_CHECKPOINT_KEY_SIZE]) {
        int r;

        assert_return(a, -EINVAL);
        assert_return(key, -EINVAL);

        (void) pthread_mutex_lock(&a->file_lock);
        r = audit_chain_set_key(&a->chain, key);
        (void) pthread_mutex_unlock(&a->file_lock);
        return r;
}

void audit_set_checkpoint_interval(Audit *a, uint64_t lines, uint64_t usec) {
        (void) pthread_mutex_lock(&a->file_lock);
        a->chain.every_lines = lines;
        a->chain.every_usec = usec;
        (void) pthread_mutex_unlock(&a->file_lock);
}

void audit_set_sync_hook(Audit *a, AuditSyncHook hook, void *userdata) {
        (void) pthread_mutex_lock(&a->sync_lock);
        a->sync_hook = hook;
        a->sync_hook_userdata = userdata;
        (void) pthread_mutex_unlock(&a->sync_lock);
}

void audit_set_anchor(Audit *a, AuditAnchorFunc f, void *userdata) {
        (void) pthread_mutex_lock(&a->file_lock);
        a->anchor = f;
        a->anchor_userdata = userdata;
        a->anchored_seq = a->chain.checkpoint_seq; /* only checkpoints from now on */
        (void) pthread_mutex_unlock(&a->file_lock);
}

void audit_get_head(Audit *a, uint64_t *ret_seq, uint8_t ret_hash[32]) {
        (void) pthread_mutex_lock(&a->file_lock);
        *ret_seq = a->chain.seq;
        memcpy(ret_hash, a->chain.head, AUDIT_HASH_SIZE);
        (void) pthread_mutex_unlock(&a->file_lock);
}

void audit_continue(Audit *a, uint64_t seq, const uint8_t hash[32]) {
        (void) pthread_mutex_lock(&a->file_lock);
        if (a->chain.seq == 0) {
                a->chain.seq = seq;
                memcpy(a->chain.head, hash, AUDIT_HASH_SIZE);
        }
        (void) pthread_mutex_unlock(&a->file_lock);
}
