/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "audit-journal.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "audit-chain.h"

/* A request's fields at most (audit_journal_fields() makes twelve). */
#define AUDIT_JOURNAL_FIELDS_MAX 16

static void field_add(Buf *out, const char *fmt, ...) _printf_(2, 3);
static void field_add(Buf *out, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) buf_vprintf(out, fmt, ap);
        va_end(ap);
        (void) buf_putc(out, '\0');
}

/* The fields of every request are built by hand: with printf() they cost a tenth of a GET. */
static void put_int(Buf *out, int v) {
        char digits[12];
        size_t n = sizeof(digits);
        unsigned u = v < 0 ? -(unsigned) v : (unsigned) v;

        do
                digits[--n] = (char) ('0' + u % 10);
        while ((u /= 10) > 0);
        if (v < 0)
                digits[--n] = '-';
        (void) buf_put(out, digits + n, sizeof(digits) - n);
}

static void field_str(Buf *out, const char *name_eq, const char *value) {
        (void) buf_puts(out, name_eq);
        (void) buf_puts(out, value);
        (void) buf_putc(out, '\0');
}

static void field_int(Buf *out, const char *name_eq, int value) {
        (void) buf_puts(out, name_eq);
        put_int(out, value);
        (void) buf_putc(out, '\0');
}

int audit_journal_fields(const AuditRecord *r, Buf *out) {
        const Principals *ps = r->principals;
        const Principal *def = ps && ps->n > 0 ? principals_default(ps) : NULL;
        const char *principal = def ? def->id : "";
        size_t start = out->len;

        /* Short, for reading: the rest is in the fields. Never the query or the body. MESSAGE
         * and PRIORITY first: audit_journal_write() takes them apart from the rest. */
        (void) buf_puts(out, "MESSAGE=");
        (void) buf_puts(out, strna(r->method));
        (void) buf_putc(out, ' ');
        (void) buf_puts(out, strna(r->path));
        (void) buf_putc(out, ' ');
        put_int(out, r->status_code);
        if (!isempty(principal)) {
                (void) buf_putc(out, ' ');
                (void) buf_puts(out, principal);
        }
        (void) buf_putc(out, '\0');
        field_int(out, "PRIORITY=", r->status_code >= 500 ? 4 : r->status_code >= 400 ? 5 : 6);
        field_str(out, "KEYWARD_METHOD=", strna(r->method));
        field_str(out, "KEYWARD_PATH=", strna(r->path));
        field_int(out, "KEYWARD_STATUS=", r->status_code);
        field_int(out, "KEYWARD_CODE=", r->code);
        if (!isempty(r->route))
                field_str(out, "KEYWARD_ROUTE=", r->route);
        if (!isempty(principal)) {
                field_str(out, "KEYWARD_PRINCIPAL=", principal);
                field_str(out, "KEYWARD_AUTH_TYPE=", strna(principal_kind_to_string(def->kind)));
        }
        if (!isempty(r->key_id))
                field_str(out, "KEYWARD_KEY_ID=", r->key_id);
        else if (r->form && r->route && streq(r->route, "postkeys")) {
                const FormField *id = form_get(r->form, "id");

                /* A create names its key in the body (up to a NUL, as every value here). */
                if (id && id->value_len > 0) {
                        (void) buf_puts(out, "KEYWARD_KEY_ID=");
                        (void) buf_put(out, id->value, strnlen(id->value, id->value_len));
                        (void) buf_putc(out, '\0');
                }
        }
        if (!isempty(r->version_id))
                field_str(out, "KEYWARD_VERSION_ID=", r->version_id);
        if (!isempty(r->remote_addr))
                field_str(out, "KEYWARD_REMOTE_ADDR=", r->remote_addr);
        (void) buf_putc(out, '\0'); /* the request ends */
        if (out->error < 0) {
                buf_truncate(out, start);
                return out->error;
        }
        return 0;
}

/* The value of "name":"..." or "name":N in the chain members at the end of a sealed line. */
static bool member(const char *line, size_t len, const char *tag, const char **ret, size_t *ret_len) {
        size_t tl = strlen(tag);
        const char *p = NULL;

        for (size_t i = len; i >= tl; i--)
                if (memcmp(line + i - tl, tag, tl) == 0) {
                        p = line + i;
                        break;
                }
        if (!p)
                return false;
        *ret = p;
        *ret_len = strcspn(p, "\",}");
        if (p + *ret_len > line + len)
                return false;
        return true;
}

static bool is_checkpoint(const char *line, size_t len) {
        static const char tag[] = "{\"checkpoint\":";

        return len >= sizeof(tag) - 1 && memcmp(line, tag, sizeof(tag) - 1) == 0;
}

/* The length of the line at p, without its newline. */
static size_t line_len(const char *p, size_t n) {
        const char *nl = memchr(p, '\n', n);

        return nl ? (size_t) (nl - p) : n;
}

static int send_checkpoint(const char *line, size_t len) {
        static const char id[] = "MESSAGE_ID=" AUDIT_MESSAGE_ID;
        static const char ident[] = "SYSLOG_IDENTIFIER=" AUDIT_SYSLOG_IDENTIFIER;
        _cleanup_buf_ Buf s = BUF_INIT;
        size_t off[5], n_off = 0;
        struct iovec iov[8];
        const char *v;
        size_t n = 0, vl;

        off[n_off++] = s.len;
        field_add(&s, "KEYWARD_AUDIT=%.*s", (int) len, line);
        if (member(line, len, ",\"seq\":", &v, &vl)) {
                off[n_off++] = s.len;
                field_add(&s, "KEYWARD_AUDIT_SEQ=%.*s", (int) vl, v);
        }
        if (member(line, len, ",\"prev\":\"", &v, &vl)) {
                off[n_off++] = s.len;
                field_add(&s, "KEYWARD_AUDIT_PREV=%.*s", (int) vl, v);
        }
        if (member(line, len, ",\"hmac\":\"", &v, &vl)) {
                off[n_off++] = s.len;
                field_add(&s, "KEYWARD_AUDIT_HMAC=%.*s", (int) vl, v);
        }
        off[n_off++] = s.len;
        field_add(
                &s, "MESSAGE=audit checkpoint%s", memmem(line, len, "\"final\":true", 12) ? " (final)" : "");
        if (s.error < 0)
                return s.error;

        iov[n++] = (struct iovec){.iov_base = (void *) id, .iov_len = sizeof(id) - 1};
        iov[n++] = (struct iovec){.iov_base = (void *) ident, .iov_len = sizeof(ident) - 1};
        iov[n++] = (struct iovec){.iov_base = (void *) "PRIORITY=6", .iov_len = strlen("PRIORITY=6")};
        for (size_t i = 0; i < n_off; i++)
                iov[n++] = (struct iovec){.iov_base = s.data + off[i], .iov_len = strlen(s.data + off[i])};
        return sd_journal_sendv(iov, (int) n);
}

static bool field_is(const char *f, const char *name_eq) {
        return strncmp(f, name_eq, strlen(name_eq)) == 0;
}

static bool field_in(const char *f, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(f, list[i]))
                        return true;
        return false;
}

/* One entry for the k requests whose sealed lines are p[0..n), their fields taken from *fields. */
static int send_requests(const char **fields, const char *fields_end, const char *p, size_t n, size_t k) {
        static const char id[] = "MESSAGE_ID=" AUDIT_MESSAGE_ID;
        static const char ident[] = "SYSLOG_IDENTIFIER=" AUDIT_SYSLOG_IDENTIFIER;
        struct iovec iov[AUDIT_JOURNAL_BATCH_MAX * (AUDIT_JOURNAL_FIELDS_MAX + 1) + 8];
        const char *prev[AUDIT_JOURNAL_FIELDS_MAX], *cur[AUDIT_JOURNAL_FIELDS_MAX];
        size_t off[AUDIT_JOURNAL_BATCH_MAX + 4], n_off = 0, n_iov = 0, n_prev = 0;
        _cleanup_buf_ Buf s = BUF_INIT;
        const char *f = *fields, *v;
        size_t message, vl;
        int priority = 6;

        assert(k > 0 && k <= AUDIT_JOURNAL_BATCH_MAX);

        iov[n_iov++] = (struct iovec){.iov_base = (void *) id, .iov_len = sizeof(id) - 1};
        iov[n_iov++] = (struct iovec){.iov_base = (void *) ident, .iov_len = sizeof(ident) - 1};

        /* The requests' own fields point into *fields; MESSAGE lines are joined in s. */
        message = s.len;
        (void) buf_puts(&s, "MESSAGE=");
        for (size_t i = 0; i < k; i++) {
                size_t n_cur = 0;

                if (i > 0)
                        (void) buf_putc(&s, '\n');
                while (f && f < fields_end && *f) {
                        size_t fl = strlen(f);

                        if (field_is(f, "MESSAGE="))
                                (void) buf_puts(&s, f + strlen("MESSAGE="));
                        else if (field_is(f, "PRIORITY=") && fl == strlen("PRIORITY=") + 1)
                                priority = MIN(priority, f[fl - 1] - '0');
                        else if (n_cur < AUDIT_JOURNAL_FIELDS_MAX) {
                                cur[n_cur++] = f;
                                /* What the request before shares with it is there already. */
                                if (!field_in(f, prev, n_prev))
                                        iov[n_iov++] = (struct iovec){.iov_base = (void *) f, .iov_len = fl};
                        }
                        f += fl + 1;
                }
                if (f && f < fields_end)
                        f++; /* the request's end */
                memcpy(prev, cur, n_cur * sizeof(cur[0]));
                n_prev = n_cur;
        }
        *fields = f;
        (void) buf_putc(&s, '\0');

        off[n_off++] = s.len;
        field_add(&s, "PRIORITY=%d", priority);
        off[n_off++] = s.len;
        (void) buf_puts(&s, "KEYWARD_AUDIT=");
        (void) buf_put(&s, p, n > 0 && p[n - 1] == '\n' ? n - 1 : n);
        (void) buf_putc(&s, '\0');
        for (size_t i = 0, at = 0; i < k && at < n; i++) {
                size_t len = line_len(p + at, n - at);

                if (member(p + at, len, ",\"seq\":", &v, &vl)) {
                        off[n_off++] = s.len;
                        (void) buf_puts(&s, "KEYWARD_AUDIT_SEQ=");
                        (void) buf_put(&s, v, vl);
                        (void) buf_putc(&s, '\0');
                }
                if (i == 0 && member(p + at, len, ",\"prev\":\"", &v, &vl)) {
                        off[n_off++] = s.len;
                        field_add(&s, "KEYWARD_AUDIT_PREV=%.*s", (int) vl, v);
                }
                at += len + 1;
        }
        if (s.error < 0)
                return s.error;

        iov[n_iov++] = (struct iovec){.iov_base = s.data + message, .iov_len = strlen(s.data + message)};
        for (size_t i = 0; i < n_off; i++)
                iov[n_iov++] =
                        (struct iovec){.iov_base = s.data + off[i], .iov_len = strlen(s.data + off[i])};
        return sd_journal_sendv(iov, (int) n_iov);
}

int audit_journal_write(
        const char **fields, const char *fields_end, const char *p, size_t n, size_t *ret_done) {
        const char *none = NULL;
        int r;

        if (!fields)
                fields = &none;
        *ret_done = 0;
        while (n > 0) {
                size_t len = line_len(p, n), group = 0, k = 0;

                if (is_checkpoint(p, len)) {
                        r = send_checkpoint(p, len);
                        group = MIN(len + 1, n);
                } else {
                        /* The requests up to the next checkpoint, as many as an entry takes. */
                        while (group < n && k < AUDIT_JOURNAL_BATCH_MAX) {
                                size_t l = line_len(p + group, n - group);

                                if (is_checkpoint(p + group, l))
                                        break;
                                group = MIN(group + l + 1, n);
                                k++;
                        }
                        r = send_requests(fields, fields_end, p, group, k);
                }
                if (r < 0)
                        return r;
                p += group;
                n -= group;
                *ret_done += group;
        }
        return 0;
}
