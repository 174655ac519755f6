/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "audit-journal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "audit-chain.h"

static int field_add(AuditJournalFields *f, const char *fmt, ...) _printf_(2, 3);
static int field_add(AuditJournalFields *f, const char *fmt, ...) {
        va_list ap;
        char *s;
        int r;

        if (f->n >= AUDIT_JOURNAL_FIELDS_MAX)
                return -E2BIG;
        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        f->f[f->n++] = s;
        return 0;
}

void audit_journal_fields_done(AuditJournalFields *f) {
        for (size_t i = 0; i < f->n; i++)
                free(f->f[i]);
        f->n = 0;
}

int audit_journal_fields(const AuditRecord *r, AuditJournalFields *ret) {
        const Principals *ps = r->principals;
        const Principal *def = ps && ps->n > 0 ? principals_default(ps) : NULL;
        AuditJournalFields f = {};
        const char *principal = def ? def->id : "";
        int k = 0;

        /* Short, for reading: the rest is in the fields. Never the query or the body. */
        k = k ?:
                field_add(
                        &f, "MESSAGE=%s %s %d%s%s", strna(r->method), strna(r->path), r->status_code,
                        isempty(principal) ? "" : " ", principal);
        k = k ?: field_add(&f, "PRIORITY=%d", r->status_code >= 500 ? 4 : r->status_code >= 400 ? 5 : 6);
        k = k ?: field_add(&f, "KEYWARD_METHOD=%s", strna(r->method));
        k = k ?: field_add(&f, "KEYWARD_PATH=%s", strna(r->path));
        k = k ?: field_add(&f, "KEYWARD_STATUS=%d", r->status_code);
        k = k ?: field_add(&f, "KEYWARD_CODE=%d", r->code);
        if (!isempty(r->route))
                k = k ?: field_add(&f, "KEYWARD_ROUTE=%s", r->route);
        if (!isempty(principal)) {
                k = k ?: field_add(&f, "KEYWARD_PRINCIPAL=%s", principal);
                k = k ?: field_add(&f, "KEYWARD_AUTH_TYPE=%s", principal_kind_to_string(def->kind));
        }
        if (!isempty(r->key_id))
                k = k ?: field_add(&f, "KEYWARD_KEY_ID=%s", r->key_id);
        else if (r->form && r->route && streq(r->route, "postkeys")) {
                const FormField *id = form_get(r->form, "id");

                /* A create names its key in the body. */
                if (id && id->value_len > 0)
                        k = k ?: field_add(&f, "KEYWARD_KEY_ID=%.*s", (int) id->value_len, id->value);
        }
        if (!isempty(r->version_id))
                k = k ?: field_add(&f, "KEYWARD_VERSION_ID=%s", r->version_id);
        if (!isempty(r->remote_addr))
                k = k ?: field_add(&f, "KEYWARD_REMOTE_ADDR=%s", r->remote_addr);
        if (k < 0) {
                audit_journal_fields_done(&f);
                return k;
        }
        *ret = f;
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

int audit_journal_send(const AuditJournalFields *fields, const char *line, size_t len) {
        static const char id[] = "MESSAGE_ID=" AUDIT_MESSAGE_ID;
        static const char ident[] = "SYSLOG_IDENTIFIER=" AUDIT_SYSLOG_IDENTIFIER;
        _cleanup_free_ char *audit = NULL, *seq = NULL, *prev = NULL, *hmac = NULL, *msg = NULL;
        struct iovec iov[AUDIT_JOURNAL_FIELDS_MAX + 8];
        const char *v;
        size_t n = 0, vl;

        if (asprintf(&audit, "KEYWARD_AUDIT=%.*s", (int) len, line) < 0)
                return -ENOMEM;
        iov[n++] = (struct iovec){.iov_base = audit, .iov_len = strlen(audit)};
        iov[n++] = (struct iovec){.iov_base = (void *) id, .iov_len = sizeof(id) - 1};
        iov[n++] = (struct iovec){.iov_base = (void *) ident, .iov_len = sizeof(ident) - 1};
        if (member(line, len, ",\"seq\":", &v, &vl)) {
                if (asprintf(&seq, "KEYWARD_AUDIT_SEQ=%.*s", (int) vl, v) < 0)
                        return -ENOMEM;
                iov[n++] = (struct iovec){.iov_base = seq, .iov_len = strlen(seq)};
        }
        if (member(line, len, ",\"prev\":\"", &v, &vl)) {
                if (asprintf(&prev, "KEYWARD_AUDIT_PREV=%.*s", (int) vl, v) < 0)
                        return -ENOMEM;
                iov[n++] = (struct iovec){.iov_base = prev, .iov_len = strlen(prev)};
        }
        if (fields)
                for (size_t i = 0; i < fields->n; i++)
                        iov[n++] = (struct iovec){.iov_base = fields->f[i], .iov_len = strlen(fields->f[i])};
        else {
                if (member(line, len, ",\"hmac\":\"", &v, &vl)) {
                        if (asprintf(&hmac, "KEYWARD_AUDIT_HMAC=%.*s", (int) vl, v) < 0)
                                return -ENOMEM;
                        iov[n++] = (struct iovec){.iov_base = hmac, .iov_len = strlen(hmac)};
                }
                if (asprintf(
                            &msg, "MESSAGE=audit checkpoint%s",
                            memmem(line, len, "\"final\":true", 12) ? " (final)" : "") < 0)
                        return -ENOMEM;
                iov[n++] = (struct iovec){.iov_base = msg, .iov_len = strlen(msg)};
                iov[n++] =
                        (struct iovec){.iov_base = (void *) "PRIORITY=6", .iov_len = strlen("PRIORITY=6")};
        }
        return sd_journal_sendv(iov, (int) n);
}
