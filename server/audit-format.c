/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An audit record as one line in Knox's access-log shape (audit_format()). */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit-internal.h"
#include "hexdecoct.h"
#include "json-util.h"
#include "random-util.h"
#include "time-util.h"

#define AUDIT_ID_LEN 20

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
