/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server-audit.h"
#include "audit-chain.h"
#include "audit-verify.h"
#include "fileio.h"
#include "hexdecoct.h"
#include "json-util.h"
#include "store.h"
#include "time-util.h"

/* A record every test starts from: an authenticated GET of a key over TLS 1.3. */
static AuditRecord base_record(void) {
        return (AuditRecord){
                .ts_ns = INT64_C(1795462171123456789),
                .code = 0,
                .status_code = 200,
                .msg = "",
                .user_agent = "Knox_Client/",
                .method = "GET",
                .path = "/v0/keys/k1/",
                .route = "getkey",
                .key_id = "k1",
                .remote_addr = "127.0.0.1:4242",
                .tls_server = "knox",
                .tls_cipher = 4865,
                .tls_version = 772,
        };
}

static Audit *open_stderr(void) {
        Audit *a = NULL;

        assert_int_equal(audit_open("-", "keywardd", "1.0", "h1", &a), 0);
        assert_non_null(a);
        return a;
}

static char *format_line(const Audit *a, const AuditRecord *r) {
        _cleanup_buf_ Buf b = BUF_INIT;
        char *s;

        assert_int_equal(audit_format(a, r, &b), 0);
        s = buf_steal(&b, NULL);
        assert_non_null(s);
        assert_null(strchr(s, '\n'));
        return s;
}

/* "0" in the pattern stands for a digit. */
static bool matches_timestamp(const char *s) {
        static const char pattern[] = "0000-00-00T00:00:00.000000000Z";

        for (size_t i = 0; i < sizeof(pattern) - 1; i++) {
                if (pattern[i] == '0' ? !isdigit((unsigned char) s[i]) : s[i] != pattern[i])
                        return false;
        }
        return true;
}

/* Check the random id and the shape of the timestamp; return what follows the timestamp. */
static const char *skip_envelope_head(const char *line, char ret_ts[static 31]) {
        static const char head[] = "{\"id\":\"";
        static const char mid[] = "\",\"@timestamp\":\"";
        const char *p = line;

        assert_memory_equal(p, head, sizeof(head) - 1);
        p += sizeof(head) - 1;
        for (size_t i = 0; i < 20; i++)
                assert_true(isalnum((unsigned char) p[i]) && (unsigned char) p[i] < 0x80);
        p += 20;
        assert_memory_equal(p, mid, sizeof(mid) - 1);
        p += sizeof(mid) - 1;
        assert_true(matches_timestamp(p));
        memcpy(ret_ts, p, 30);
        ret_ts[30] = '\0';
        p += 30;
        assert_int_equal(*p, '"');
        return p + 1;
}

static json_object *parse_line(const char *line) {
        json_object *o = NULL;
        const char *err = NULL;

        assert_int_equal(json_parse(line, strlen(line), &o, &err), 0);
        return o;
}

static const char *get_str(json_object *o, const char *path0, const char *path1) {
        json_object *v = json_object_object_get(o, path0);

        if (path1)
                v = json_object_object_get(v, path1);
        assert_non_null(v);
        return json_object_get_string(v);
}

static void test_exact_line(void **state) {
        _cleanup_(audit_freep) Audit *a = open_stderr();
        _cleanup_form_ Form q = FORM_NULL;
        Principals ps = {};
        AuditRecord r = base_record();
        _cleanup_free_ char *line = NULL;
        char ts[31];

        assert_int_equal(form_parse("status=\"Primary\"", 16, &q), 0);
        assert_int_equal(principals_add(&ps, PRINCIPAL_KIND_USER, "alice", NULL, "user"), 0);
        r.raw_query = "status=\"Primary\"";
        r.query = &q;
        r.principals = &ps;

        line = format_line(a, &r);
        assert_string_equal(
                skip_envelope_head(line, ts),
                ",\"service\":\"keywardd\",\"host\":\"h1\",\"version\":\"1.0\","
                "\"payload\":{\"type\":\"access\",\"code\":0,\"status_code\":200,"
                "\"request\":{\"method\":\"GET\",\"path\":\"/v0/keys/k1/\","
                "\"parameters\":{\"keyID\":\"k1\",\"status\":\"\\\"Primary\\\"\"},"
                "\"parsed_query_string\":null,\"principal\":\"alice\",\"fallback_principals\":[\"alice\"],"
                "\"auth_type\":\"user\",\"request_uri\":\"\",\"remote_addr\":\"127.0.0.1:4242\","
                "\"tls_server\":\"knox\",\"tls_cipher\":4865,\"tls_version\":772,\"tls_resumed\":false,"
                "\"tls_session_id\":null},\"msg\":\"\",\"userAgent\":\"Knox_Client/\"},"
                "\"payload_encoding\":\"JSON\"}");
        assert_string_equal(ts, "2026-11-23T19:29:31.123456789Z");
        principals_done(&ps);
}

static void test_error_line_unauthenticated(void **state) {
        _cleanup_(audit_freep) Audit *a = NULL;
        AuditRecord r = base_record();
        _cleanup_free_ char *line = NULL;
        char ts[31];

        /* No service, version or host: omitted, as Go's omitempty does. */
        assert_int_equal(audit_open("-", NULL, "", NULL, &a), 0);
        r.route = "deletekey";
        r.method = "DELETE";
        r.code = 5;
        r.status_code = 401;
        r.msg = "No matching authentication providers found";
        r.user_agent = NULL;
        r.tls_server = NULL;
        r.tls_cipher = 49199;
        r.tls_version = 771;
        r.tls_resumed = true;
        r.tls_unique = (const uint8_t *) "\x01\x02\x03\xfe\xff";
        r.tls_unique_size = 5;

        line = format_line(a, &r);
        assert_string_equal(
                skip_envelope_head(line, ts),
                ",\"payload\":{\"type\":\"access\",\"code\":5,\"status_code\":401,"
                "\"request\":{\"method\":\"DELETE\",\"path\":\"/v0/keys/k1/\","
                "\"parameters\":{\"keyID\":\"k1\"},\"parsed_query_string\":null,"
                "\"principal\":\"\",\"fallback_principals\":null,\"auth_type\":\"\",\"request_uri\":\"\","
                "\"remote_addr\":\"127.0.0.1:4242\",\"tls_server\":\"\",\"tls_cipher\":49199,"
                "\"tls_version\":771,\"tls_resumed\":true,\"tls_session_id\":\"AQID/v8=\"},"
                "\"msg\":\"No matching authentication providers found\",\"userAgent\":\"unknown\"},"
                "\"payload_encoding\":\"JSON\"}");
}

static void test_timestamps(void **state) {
        static const struct {
                int64_t ns;
                const char *s;
        } v[] = {
                {-1, "1969-12-31T23:59:59.999999999Z"},
                {1, "1970-01-01T00:00:00.000000001Z"},
                {INT64_C(1709164800000000001), "2024-02-29T00:00:00.000000001Z"},
                {INT64_C(951782400000000000), "2000-02-29T00:00:00.000000000Z"},
                {INT64_C(1735689599999999999), "2024-12-31T23:59:59.999999999Z"},
                {INT64_MAX, "2262-04-11T23:47:16.854775807Z"},
                {INT64_MIN, "1677-09-21T00:12:43.145224192Z"},
        };
        _cleanup_(audit_freep) Audit *a = open_stderr();

        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                AuditRecord r = base_record();
                _cleanup_free_ char *line = NULL;
                char ts[31];

                r.ts_ns = v[i].ns;
                line = format_line(a, &r);
                (void) skip_envelope_head(line, ts);
                assert_string_equal(ts, v[i].s);
        }
}

static void test_now_and_ids(void **state) {
        _cleanup_(audit_freep) Audit *a = open_stderr();
        AuditRecord r = base_record();
        _cleanup_free_ char *l1 = NULL, *l2 = NULL;
        char ts1[31], ts2[31], today[32];
        struct tm tm;
        time_t t;

        r.ts_ns = 0; /* the time of formatting */
        t = time(NULL);
        assert_non_null(gmtime_r(&t, &tm));
        assert_int_not_equal(strftime(today, sizeof(today), "%Y-%m-%dT%H", &tm), 0);
        l1 = format_line(a, &r);
        l2 = format_line(a, &r);
        (void) skip_envelope_head(l1, ts1);
        (void) skip_envelope_head(l2, ts2);
        /* Same hour (a test running across the full hour could flake, so allow the next one). */
        if (strncmp(ts1, today, strlen(today)) != 0) {
                t += 3600;
                assert_non_null(gmtime_r(&t, &tm));
                assert_int_not_equal(strftime(today, sizeof(today), "%Y-%m-%dT%H", &tm), 0);
                assert_memory_equal(ts1, today, strlen(today));
        }
        assert_true(strcmp(ts1, ts2) <= 0);
        /* Fresh ids per line. */
        assert_memory_not_equal(l1 + 7, l2 + 7, 20);
}

/* "parameters":...,"parsed_query_string":... of a record. */
static void check_params(const Audit *a, const AuditRecord *r, const char *params, const char *parsed) {
        _cleanup_free_ char *line = format_line(a, r), *want = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;

        assert_true(
                asprintf(
                        &want, ",\"parameters\":%s,\"parsed_query_string\":%s,\"principal\":", params,
                        parsed) > 0);
        if (!strstr(line, want))
                fail_msg("want %s in %s", want, line);
        o = parse_line(line);
}

static void test_route_parameters(void **state) {
        _cleanup_(audit_freep) Audit *a = open_stderr();
        _cleanup_form_ Form post = FORM_NULL, acc = FORM_NULL, ver = FORM_NULL, st = FORM_NULL,
                            q = FORM_NULL, rep = FORM_NULL, empty = FORM_NULL, login = FORM_NULL;
        static const char post_s[] = "id=k1&data=aGVsbG8%3D&acl=%5B%5D&id=k2&extra=x";
        static const char acc_s[] = "acl=%5B%7B%22type%22%3A%22User%22%7D%5D&access=%7B%7D";
        static const char ver_s[] = "data=aGVsbG8%3D";
        static const char st_s[] = "status=%22Active%22";
        static const char q_s[] = "status=\"Inactive\"&status=\"Active\"";
        static const char rep_s[] = "b=h2&a=h1&a=h3&c%3Cd=%0A";
        static const char login_s[] = "user=alice&password=hunter2";
        AuditRecord r;

        assert_int_equal(form_parse(post_s, strlen(post_s), &post), 0);
        assert_int_equal(form_parse(acc_s, strlen(acc_s), &acc), 0);
        assert_int_equal(form_parse(ver_s, strlen(ver_s), &ver), 0);
        assert_int_equal(form_parse(st_s, strlen(st_s), &st), 0);
        assert_int_equal(form_parse(q_s, strlen(q_s), &q), 0);
        assert_int_equal(form_parse(rep_s, strlen(rep_s), &rep), 0);
        assert_int_equal(form_parse("", 0, &empty), 0);
        assert_int_equal(form_parse(login_s, strlen(login_s), &login), 0);

        /* getkeys: the raw query, and the decoded map, sorted, the last value winning. */
        r = base_record();
        r.route = "getkeys";
        r.key_id = NULL;
        r.raw_query = rep_s;
        r.query = &rep;
        check_params(
                a, &r, "{\"queryString\":\"b=h2\\u0026a=h1\\u0026a=h3\\u0026c%3Cd=%0A\"}",
                "{\"a\":\"h3\",\"b\":\"h2\",\"c\\u003cd\":\"\\n\"}");
        r.query = NULL; /* parsed from raw_query instead */
        check_params(
                a, &r, "{\"queryString\":\"b=h2\\u0026a=h1\\u0026a=h3\\u0026c%3Cd=%0A\"}",
                "{\"a\":\"h3\",\"b\":\"h2\",\"c\\u003cd\":\"\\n\"}");
        r.raw_query = NULL;
        check_params(a, &r, "{\"queryString\":\"\"}", "{}");
        r.raw_query = "";
        r.query = &empty;
        check_params(a, &r, "{\"queryString\":\"\"}", "{}");

        /* postkeys: present fields only, first value, data scrubbed; Go's sorted map order. */
        r = base_record();
        r.route = "postkeys";
        r.method = "POST";
        r.key_id = NULL;
        r.form = &post;
        check_params(a, &r, "{\"acl\":\"[]\",\"data\":\"\\u003cDATA\\u003e\",\"id\":\"k1\"}", "null");
        r.form = &ver;
        check_params(a, &r, "{\"data\":\"\\u003cDATA\\u003e\"}", "null");
        r.form = &empty;
        check_params(a, &r, "{}", "null");
        r.form = NULL;
        check_params(a, &r, "{}", "null");

        /* getkey: keyID, and status (first value) only when the query has it. */
        r = base_record();
        check_params(a, &r, "{\"keyID\":\"k1\"}", "null");
        r.raw_query = q_s;
        r.query = &q;
        check_params(a, &r, "{\"keyID\":\"k1\",\"status\":\"\\\"Inactive\\\"\"}", "null");
        r.form = &post; /* a body on a GET is not a parameter */
        check_params(a, &r, "{\"keyID\":\"k1\",\"status\":\"\\\"Inactive\\\"\"}", "null");

        r = base_record();
        r.route = "deletekey";
        r.form = &post;
        check_params(a, &r, "{\"keyID\":\"k1\"}", "null");
        r.route = "getaccess";
        check_params(a, &r, "{\"keyID\":\"k1\"}", "null");

        r = base_record();
        r.route = "putaccess";
        r.form = &acc;
        check_params(
                a, &r, "{\"access\":\"{}\",\"acl\":\"[{\\\"type\\\":\\\"User\\\"}]\",\"keyID\":\"k1\"}",
                "null");
        r.form = &ver; /* data is no parameter of this route: not logged at all */
        check_params(a, &r, "{\"keyID\":\"k1\"}", "null");

        r = base_record();
        r.route = "postversion";
        r.form = &ver;
        check_params(a, &r, "{\"data\":\"\\u003cDATA\\u003e\",\"keyID\":\"k1\"}", "null");
        r.form = &empty;
        check_params(a, &r, "{\"keyID\":\"k1\"}", "null");

        r = base_record();
        r.route = "putversion";
        r.version_id = "12345";
        r.form = &st;
        check_params(
                a, &r, "{\"keyID\":\"k1\",\"status\":\"\\\"Active\\\"\",\"versionID\":\"12345\"}", "null");
        r.form = NULL;
        check_params(a, &r, "{\"keyID\":\"k1\",\"versionID\":\"12345\"}", "null");

        /* The 404 handler has no parameters at all; our own routes an empty map. */
        r = base_record();
        r.route = "404";
        r.key_id = NULL;
        r.raw_query = rep_s;
        r.query = &rep;
        check_params(a, &r, "null", "null");
        r.route = NULL;
        r.form = &login;
        check_params(a, &r, "{}", "null");
        r.route = "whoami";
        check_params(a, &r, "{}", "null");
        r.route = "deletetoken";
        check_params(a, &r, "{}", "null");
        r.route = "healthz";
        check_params(a, &r, "{}", "null");
}

static void assert_absent(const char *line, const char *needle) {
        if (strstr(line, needle))
                fail_msg("'%s' found in audit line %s", needle, line);
}

/* The middle of the base64 of s at each of the three alignments: whatever precedes the
 * secret in an encoded buffer, one of these appears if the secret does. */
static void base64_variants(const char *s, char ret[3][128]) {
        for (size_t shift = 0; shift < 3; shift++) {
                _cleanup_buf_ Buf in = BUF_INIT, out = BUF_INIT;

                assert_int_equal(buf_put(&in, "xx", shift), 0);
                assert_int_equal(buf_puts(&in, s), 0);
                assert_int_equal(base64_append(&out, in.data, in.len), 0);
                assert_true(out.len > 16 && out.len - 8 < 128);
                memcpy(ret[shift], out.data + 4, out.len - 8);
                ret[shift][out.len - 8] = '\0';
        }
}

static void test_no_secret(void **state) {
        static const char secret[] = "TOPSECRET+s3cr3t/VALUE=1";
        static const char login_secret[] = "hunter2-password";
        static const char *routes[] = {"postkeys",  "postversion", "putversion", "putaccess",   "getkey",
                                       "deletekey", "404",         "whoami",     "deletetoken", NULL};
        _cleanup_(audit_freep) Audit *a = open_stderr();
        _cleanup_buf_ Buf b64 = BUF_INIT, b64url = BUF_INIT, urlraw = BUF_INIT, body = BUF_INIT;
        _cleanup_buf_ Buf login_body = BUF_INIT;
        char variants[3][128], login_variants[3][128];

        assert_int_equal(base64_append(&b64, secret, strlen(secret)), 0);
        assert_int_equal(url_escape_append(&b64url, b64.data, b64.len), 0);
        assert_int_equal(url_escape_append(&urlraw, secret, strlen(secret)), 0);
        base64_variants(secret, variants);
        base64_variants(login_secret, login_variants);
        /* Two data fields (Knox reads the first), and the secret in a field of another name
         * that no route reads. */
        assert_true(
                buf_printf(&body, "id=k1&data=%s&data=%s&dat=%s", b64url.data, urlraw.data, b64url.data) >=
                0);
        assert_true(buf_printf(&login_body, "user=alice&password=%s", login_secret) >= 0);

        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
                _cleanup_form_ Form f = FORM_NULL, lf = FORM_NULL;
                AuditRecord r = base_record();
                _cleanup_free_ char *line = NULL, *line2 = NULL;
                _cleanup_(json_object_putp) json_object *o = NULL;
                json_object *params;

                assert_int_equal(form_parse(body.data, body.len, &f), 0);
                assert_int_equal(form_parse(login_body.data, login_body.len, &lf), 0);
                r.route = routes[i];
                r.method = "POST";
                r.form = &f;
                r.version_id = "1";
                line = format_line(a, &r);
                o = parse_line(line);

                assert_absent(line, secret);
                assert_absent(line, b64.data);
                assert_absent(line, b64url.data);
                assert_absent(line, urlraw.data);
                assert_absent(line, "s3cr3t");
                for (size_t k = 0; k < 3; k++)
                        assert_absent(line, variants[k]);

                /* The decoded value of "data" is the literal "<DATA>". */
                params = json_object_object_get(
                        json_object_object_get(json_object_object_get(o, "payload"), "request"),
                        "parameters");
                if (routes[i] && (streq(routes[i], "postkeys") || streq(routes[i], "postversion")))
                        assert_string_equal(get_str(params, "data", NULL), "<DATA>");
                else
                        assert_null(json_object_object_get(params, "data"));

                /* A password login's form (our extension, route-less here) leaves nothing. */
                r.form = &lf;
                line2 = format_line(a, &r);
                assert_absent(line2, login_secret);
                assert_absent(line2, "password");
                for (size_t k = 0; k < 3; k++)
                        assert_absent(line2, login_variants[k]);
        }
}

static void test_escaping(void **state) {
        static const char ua[] = "evil\"agent\n{\"x\":1}\r\t\\\x01 \xff <script>";
        _cleanup_(audit_freep) Audit *a = open_stderr();
        AuditRecord r = base_record();
        _cleanup_free_ char *line = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;

        r.user_agent = ua;
        r.msg = "line1\nline2\u2028";
        r.path = "/v0/keys/a\nb/";
        r.key_id = "a\nb";
        r.remote_addr = "[::1]:1\n";
        line = format_line(a, &r);
        assert_null(strchr(line, '\r'));
        assert_non_null(strstr(
                line,
                "\"userAgent\":\"evil\\\"agent\\n{\\\"x\\\":1}\\r\\t\\\\\\u0001 \\ufffd \\u003cscript\\u003e\""));
        assert_non_null(strstr(line, "\"msg\":\"line1\\nline2\\u2028\""));

        o = parse_line(line);
        assert_string_equal(
                get_str(o, "payload", "userAgent"),
                "evil\"agent\n{\"x\":1}\r\t\\\x01 \xef\xbf\xbd <script>");
        assert_string_equal(get_str(o, "payload", "msg"), "line1\nline2\u2028");
        assert_string_equal(get_str(o, "payload_encoding", NULL), "JSON");
}

static void test_principals(void **state) {
        _cleanup_(audit_freep) Audit *a = open_stderr();
        Principals ps = {}, none = {};
        AuditRecord r = base_record();
        _cleanup_free_ char *line = NULL, *line2 = NULL;

        assert_int_equal(principals_add(&ps, PRINCIPAL_KIND_MACHINE, "host1.example.com", NULL, "mtls"), 0);
        assert_int_equal(
                principals_add(
                        &ps, PRINCIPAL_KIND_SERVICE, "spiffe://example.com/svc", NULL, "spiffe-fallback"),
                0);
        r.principals = &ps;
        line = format_line(a, &r);
        assert_non_null(
                strstr(line,
                       ",\"principal\":\"host1.example.com\","
                       "\"fallback_principals\":[\"host1.example.com\",\"spiffe://example.com/svc\"],"
                       "\"auth_type\":\"mux[mtls=\\u003emachine,spiffe-fallback=\\u003eservice]\","));

        r.principals = &none;
        line2 = format_line(a, &r);
        assert_non_null(
                strstr(line2, ",\"principal\":\"\",\"fallback_principals\":null,\"auth_type\":\"\","));
        principals_done(&ps);
}

/* A file whose last line a crash stopped mid-write: opening it for more lines cuts the
 * fragment off, so that the next line does not start glued to it. */
static void test_open_cuts_fragment(void **state) {
        char path[] = "/tmp/test-server-audit-frag-XXXXXX";
        static const char whole[] = "{\"id\":\"a\"}\n{\"id\":\"b\"}\n";
        char buf[256] = {};
        Audit *a = NULL;
        int fd;

        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, whole, strlen(whole)), (ssize_t) strlen(whole));
        assert_int_equal(write(fd, "{\"id\":\"G5x8", 11), 11);
        assert_int_equal(close(fd), 0);

        assert_int_equal(audit_open(path, "s", "v", "h", &a), 0);
        a = audit_free(a);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_true(read(fd, buf, sizeof(buf) - 1) >= 0);
        assert_int_equal(close(fd), 0);
        /* The whole lines stay (a final checkpoint may follow them); the fragment is gone. */
        assert_memory_equal(buf, whole, strlen(whole));
        assert_null(strstr(buf, "G5x8"));
        assert_int_equal(unlink(path), 0);
}

static void test_open_errors(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *link = NULL, *target = NULL, *missing = NULL;
        Audit *a = (Audit *) 0x1;

        assert_int_equal(audit_open("", "s", "v", "h", &a), -EINVAL);
        assert_int_equal(audit_open(NULL, "s", "v", "h", &a), -EINVAL);
        assert_ptr_equal(a, (Audit *) 0x1);

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&missing, "%s/no/such/file", dir) > 0);
        assert_int_equal(audit_open(missing, "s", "v", "h", &a), -ENOENT);
        assert_ptr_equal(a, (Audit *) 0x1);

        /* O_NOFOLLOW: a symlink planted in place of the log is refused. */
        assert_true(asprintf(&target, "%s/target", dir) > 0);
        assert_true(asprintf(&link, "%s/link", dir) > 0);
        assert_int_equal(symlink(target, link), 0);
        assert_int_equal(audit_open(link, "s", "v", "h", &a), -ELOOP);
        assert_int_equal(access(target, F_OK), -1);

        assert_int_equal(unlink(link), 0);
        assert_int_equal(rmdir(dir), 0);

        /* stderr and the journal have nothing to reopen; without journald, "journal" is
         * refused rather than losing every line. */
        if (access("/run/systemd/journal/socket", F_OK) == 0) {
                assert_int_equal(audit_open("journal", "s", "v", "h", &a), 0);
                assert_int_equal(audit_reopen(a), 0);
                a = audit_free(a);
                assert_null(a);
        } else {
                assert_int_equal(audit_open("journal", "s", "v", "h", &a), -ENOENT);
                assert_ptr_equal(a, (Audit *) 0x1);
        }
        assert_int_equal(audit_open("-", "s", "v", "h", &a), 0);
        assert_int_equal(audit_reopen(a), 0);
        a = audit_free(a);
        assert_null(audit_free(NULL));
}

static size_t check_lines(const char *path, size_t want) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0, n = 0;
        const char *p;

        assert_int_equal(read_full_file(path, 64 * 1024 * 1024, &data, &size), 0);
        assert_true(size == 0 || data[size - 1] == '\n');
        for (p = data; p < data + size;) {
                const char *nl = memchr(p, '\n', (size_t) (data + size - p));
                json_object *o = NULL;
                const char *err = NULL;

                assert_non_null(nl);
                if (json_parse(p, (size_t) (nl - p), &o, &err) != 0)
                        fail_msg("line %zu of %s does not parse: %s", n + 1, path, err);
                /* Checkpoints are not counted. */
                if (!json_object_object_get_ex(o, "checkpoint", NULL)) {
                        assert_string_equal(get_str(o, "payload", "type"), "access");
                        n++;
                }
                json_object_put(o);
                p = nl + 1;
        }
        if (want != SIZE_MAX) /* SIZE_MAX: just count them */
                assert_int_equal(n, want);
        return n;
}

static void test_file_target(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *path = NULL, *rotated = NULL;
        _cleanup_(audit_freep) Audit *a = NULL;
        AuditRecord r = base_record();
        struct stat st;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/audit.log", dir) > 0);
        assert_true(asprintf(&rotated, "%s/audit.log.1", dir) > 0);

        assert_int_equal(audit_open(path, "keywardd", "1.0", "h1", &a), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(audit_flush(a), 0); /* nothing buffered yet */
        assert_int_equal(audit_write(a, &r), 0);
        assert_int_equal(audit_write(a, &r), 0);
        check_lines(path, 0); /* buffered until the flush */
        assert_int_equal(audit_flush(a), 0);
        check_lines(path, 2);
        assert_int_equal(audit_flush(a), 0);
        check_lines(path, 2);
        /* audit_free() writes out what is still buffered. */
        assert_int_equal(audit_write(a, &r), 0);
        check_lines(path, 2);
        a = audit_free(a);
        check_lines(path, 3);

        /* Reopening an existing file appends. */
        assert_int_equal(audit_open(path, "keywardd", "1.0", "h1", &a), 0);
        assert_int_equal(audit_write(a, &r), 0);
        assert_int_equal(audit_flush(a), 0);
        check_lines(path, 4);

        /* logrotate moves the file; after the reopen, lines go to a new file. A line
         * buffered before the reopen still goes to the old one. */
        assert_int_equal(rename(path, rotated), 0);
        assert_int_equal(audit_write(a, &r), 0);
        check_lines(rotated, 4);
        assert_int_equal(audit_reopen(a), 0);
        check_lines(rotated, 5);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(audit_write(a, &r), 0);
        assert_int_equal(audit_write(a, &r), 0);
        assert_int_equal(audit_flush(a), 0);
        check_lines(path, 2);
        check_lines(rotated, 5);

        /* A failed reopen keeps the old file. */
        assert_int_equal(unlink(rotated), 0);
        assert_int_equal(rename(path, rotated), 0);
        assert_int_equal(symlink("/nonexistent", path), 0);
        assert_int_equal(audit_reopen(a), -ELOOP);
        assert_int_equal(audit_write(a, &r), 0);
        assert_int_equal(audit_flush(a), 0);
        check_lines(rotated, 3);

        a = audit_free(a);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(unlink(rotated), 0);
        assert_int_equal(rmdir(dir), 0);
}

#define N_THREADS 4
#define N_LINES 500

static atomic_int writers_done;

typedef struct Writer {
        Audit *audit;
        int index;
        int failures;
        bool no_flush; /* leave the lines for audit_free() */
} Writer;

static void *writer_thread(void *userdata) {
        Writer *w = userdata;
        char ua[64];
        /* Long lines (several KiB), so that torn writes would show. */
        char big[4096];

        memset(big, 'a' + w->index, sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        for (int i = 0; i < N_LINES; i++) {
                AuditRecord r = base_record();

                (void) snprintf(ua, sizeof(ua), "writer-%d-line-%d\n", w->index, i);
                r.user_agent = ua;
                r.msg = big;
                if (audit_write(w->audit, &r) < 0)
                        w->failures++;
                /* Half the threads flush every few lines too, as an event loop pass would;
                 * the others only when their buffer is full. */
                if (w->index % 2 == 1 && i % 3 == 0 && !w->no_flush && audit_flush(w->audit) < 0)
                        w->failures++;
        }
        /* What a thread buffered goes out before it leaves. */
        if (!w->no_flush && audit_flush(w->audit) < 0)
                w->failures++;
        atomic_fetch_add(&writers_done, 1);
        return NULL;
}

static void test_concurrent_writes(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *path = NULL;
        _cleanup_(audit_freep) Audit *a = NULL;
        pthread_t threads[N_THREADS];
        Writer w[N_THREADS];
        unsigned n_reopens = 0;

        atomic_store(&writers_done, 0);

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/audit.log", dir) > 0);
        assert_int_equal(audit_open(path, "keywardd", "1.0", "h1", &a), 0);

        for (int i = 0; i < N_THREADS; i++) {
                w[i] = (Writer){.audit = a, .index = i};
                assert_int_equal(pthread_create(&threads[i], NULL, writer_thread, &w[i]), 0);
        }
        /* Reopen (the same path) as fast as possible while the writers run: no line may be
         * lost, torn or written to a closed fd. */
        while (atomic_load(&writers_done) < N_THREADS) {
                assert_int_equal(audit_reopen(a), 0);
                n_reopens++;
        }
        for (int i = 0; i < N_THREADS; i++) {
                assert_int_equal(pthread_join(threads[i], NULL), 0);
                assert_int_equal(w[i].failures, 0);
        }
        assert_true(n_reopens > 0);

        /* Every thread flushed before it ended: all lines are there before audit_free(). */
        check_lines(path, N_THREADS * N_LINES);
        a = audit_free(a);
        check_lines(path, N_THREADS * N_LINES);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* Threads that end without flushing leave their lines to audit_free(), which writes them. */
static void test_exited_threads(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *path = NULL;
        Audit *a = NULL;
        pthread_t threads[N_THREADS];
        Writer w[N_THREADS];
        struct stat st;

        atomic_store(&writers_done, 0);
        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/audit.log", dir) > 0);
        assert_int_equal(audit_open(path, "keywardd", "1.0", "h1", &a), 0);

        for (int i = 0; i < N_THREADS; i++) {
                w[i] = (Writer){.audit = a, .index = i, .no_flush = true};
                assert_int_equal(pthread_create(&threads[i], NULL, writer_thread, &w[i]), 0);
        }
        for (int i = 0; i < N_THREADS; i++) {
                assert_int_equal(pthread_join(threads[i], NULL), 0);
                assert_int_equal(w[i].failures, 0);
        }
        /* Full buffers went out on their own (whole lines only); the rest is still held. */
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size > 0);
        assert_true(check_lines(path, SIZE_MAX) < N_THREADS * N_LINES);

        a = audit_free(a);
        check_lines(path, N_THREADS * N_LINES);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* Write syscalls of the calling thread so far, or -1 when the kernel does not count them. */
static long long thread_syscw(void) {
        _cleanup_free_ char *data = NULL;
        const char *p;

        if (read_full_file("/proc/thread-self/io", 4096, &data, NULL) < 0)
                return -1;
        p = strstr(data, "syscw: ");
        if (!p)
                return -1;
        return (long long) strtoull(p + 7, NULL, 10);
}

static off_t file_size(const char *path) {
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        return st.st_size;
}

/* Bytes of n lines of line_len bytes (newline included) once sealed after seq `after`: each
 * gets ,"seq":N,"prev":"<64 hex>". */
static size_t sealed_total(size_t line_len, unsigned after, unsigned n) {
        size_t total = 0;

        for (unsigned i = after + 1; i <= after + n; i++) {
                char digits[16];

                total += line_len + strlen(",\"seq\":,\"prev\":\"\"") + 64 +
                        (size_t) snprintf(digits, sizeof(digits), "%u", i);
        }
        return total;
}

/* Lines are held until a flush, which writes them all with a single write(); a buffer
 * passing AUDIT_BUFFER_SIZE goes out by itself, whole lines only. */
static void test_batching(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *path = NULL;
        _cleanup_(audit_freep) Audit *a = NULL;
        AuditRecord r = base_record();
        size_t line_len, total = 0;
        long long before, after;
        unsigned n;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/audit.log", dir) > 0);
        assert_int_equal(audit_open(path, "keywardd", "1.0", "h1", &a), 0);
        {
                _cleanup_free_ char *line = format_line(a, &r);

                line_len = strlen(line) + 1; /* the same for every line: fixed time, id length */
        }

        for (n = 0; n < 10; n++) {
                assert_int_equal(audit_write(a, &r), 0);
                assert_int_equal(file_size(path), 0);
        }
        before = thread_syscw();
        assert_int_equal(audit_flush(a), 0);
        after = thread_syscw();
        if (before >= 0)
                assert_int_equal(after - before, 1);
        assert_int_equal(file_size(path), sealed_total(line_len, 0, 10));
        check_lines(path, 10);
        /* Nothing left: a second flush writes nothing. */
        before = thread_syscw();
        assert_int_equal(audit_flush(a), 0);
        after = thread_syscw();
        if (before >= 0)
                assert_int_equal(after - before, 0);

        /* Without flushes, the file grows in one step, once the buffer passes the limit, by
         * every line buffered so far. */
        total = sealed_total(line_len, 0, 10);
        for (n = 1;; n++) {
                off_t size;

                assert_int_equal(audit_write(a, &r), 0);
                size = file_size(path);
                if (n * line_len < AUDIT_BUFFER_SIZE)
                        assert_int_equal(size, total);
                else {
                        assert_int_equal(size, total + sealed_total(line_len, 10, n));
                        break;
                }
        }
        check_lines(path, 10 + n);
        assert_int_equal(audit_flush(a), 0);
        check_lines(path, 10 + n);

        a = audit_free(a);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* One thread with two Audits (and a new one where an old one was freed): each line goes to
 * its own Audit's file. */
static void test_two_audits(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *p1 = NULL, *p2 = NULL, *p3 = NULL;
        Audit *a1 = NULL, *a2 = NULL, *a3 = NULL;
        AuditRecord r = base_record();

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&p1, "%s/a1.log", dir) > 0);
        assert_true(asprintf(&p2, "%s/a2.log", dir) > 0);
        assert_true(asprintf(&p3, "%s/a3.log", dir) > 0);
        assert_int_equal(audit_open(p1, "keywardd", "1.0", "h1", &a1), 0);
        assert_int_equal(audit_open(p2, "keywardd", "1.0", "h1", &a2), 0);

        for (int i = 0; i < 5; i++) {
                assert_int_equal(audit_write(a1, &r), 0);
                assert_int_equal(audit_write(a2, &r), 0);
                assert_int_equal(audit_write(a2, &r), 0);
        }
        assert_int_equal(audit_flush(a2), 0);
        check_lines(p1, 0);
        check_lines(p2, 10);
        assert_int_equal(audit_flush(a1), 0);
        check_lines(p1, 5);

        /* a2 freed with a line held; a3 may well get its address. */
        assert_int_equal(audit_write(a2, &r), 0);
        a2 = audit_free(a2);
        check_lines(p2, 11);
        assert_int_equal(audit_open(p3, "keywardd", "1.0", "h1", &a3), 0);
        assert_int_equal(audit_write(a3, &r), 0);
        assert_int_equal(audit_flush(a3), 0);
        check_lines(p3, 1);
        check_lines(p2, 11);

        a1 = audit_free(a1);
        a3 = audit_free(a3);
        check_lines(p1, 5);
        assert_int_equal(unlink(p1), 0);
        assert_int_equal(unlink(p2), 0);
        assert_int_equal(unlink(p3), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* stderr that is a socket or pipe: each write() holds whole lines and at most PIPE_BUF bytes
 * (what such files keep whole), except a longer line, which goes alone. SOCK_SEQPACKET
 * returns one write() per recv(). */
static void test_stderr_socket(void **state) {
        _cleanup_(audit_freep) Audit *a = NULL;
        AuditRecord r = base_record();
        char big[PIPE_BUF + 100];
        _cleanup_free_ char *msg = NULL;
        int sv[2], saved, k;
        size_t n_lines = 0, n_writes = 0, n_multi = 0;

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        msg = malloc(2 * PIPE_BUF);
        assert_non_null(msg);

        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        assert_true(saved >= 0);
        assert_int_equal(dup2(sv[0], STDERR_FILENO), STDERR_FILENO);

        k = audit_open("-", "keywardd", "1.0", "h1", &a);
        if (k == 0) {
                for (int i = 0; i < 12; i++) {
                        r.msg = i == 5 ? big : "";
                        if (audit_write(a, &r) < 0)
                                k = -EIO;
                }
                if (audit_flush(a) < 0)
                        k = -EIO;
        }
        /* stderr back before any assertion can print. */
        assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
        assert_int_equal(close(saved), 0);
        assert_int_equal(k, 0);
        assert_int_equal(close(sv[0]), 0);

        for (;;) {
                ssize_t len = recv(sv[1], msg, 2 * PIPE_BUF, MSG_DONTWAIT);
                size_t lines = 0;

                if (len == 0) /* every writing end is closed: all read */
                        break;
                assert_true(len > 0);
                n_writes++;
                assert_int_equal(msg[len - 1], '\n');
                for (const char *p = msg; p < msg + len;) {
                        const char *nl = memchr(p, '\n', (size_t) (msg + len - p));
                        _cleanup_(json_object_putp) json_object *o = NULL;
                        const char *err = NULL;

                        assert_int_equal(json_parse(p, (size_t) (nl - p), &o, &err), 0);
                        lines++;
                        p = nl + 1;
                }
                assert_true((size_t) len <= PIPE_BUF || lines == 1);
                n_lines += lines;
                if (lines > 1)
                        n_multi++;
        }
        assert_int_equal(close(sv[1]), 0);
        assert_int_equal(n_lines, 12);
        /* Batched, but not into one write: the long line went alone. */
        assert_true(n_multi > 0);
        assert_true(n_writes > 2 && n_writes < 12);
}

/* A failing write is reported by the flush, and the lines are dropped, not kept forever. */
static void test_write_error(void **state) {
        _cleanup_(audit_freep) Audit *a = NULL;
        AuditRecord r = base_record();

        if (access("/dev/full", W_OK) < 0)
                skip();
        assert_int_equal(audit_open("/dev/full", "keywardd", "1.0", "h1", &a), 0);
        assert_int_equal(audit_write(a, &r), 0);
        assert_int_equal(audit_flush(a), -ENOSPC);
        assert_int_equal(audit_flush(a), 0);
        /* A full buffer fails in audit_write() itself. */
        r.msg = "";
        for (int i = 0;; i++) {
                int k = audit_write(a, &r);

                assert_true(i < AUDIT_BUFFER_SIZE);
                if (k < 0) {
                        assert_int_equal(k, -ENOSPC);
                        break;
                }
        }
        assert_int_equal(audit_flush(a), 0);
}

/* A line of about 1.1 KiB, numbered through its user agent. */
static AuditRecord long_record(char *ua, size_t ua_size, char *msg, size_t msg_size, int i) {
        AuditRecord r = base_record();

        (void) snprintf(ua, ua_size, "line-%d", i);
        memset(msg, 'm', msg_size - 1);
        msg[msg_size - 1] = '\0';
        r.user_agent = ua;
        r.msg = msg;
        return r;
}

/* Write lines one flush each until the file refuses one; return how many went in. The file
 * holds exactly those, whole, also after the refusal. */
static size_t fill_until(Audit *a, const char *path, int want_error) {
        char ua[32], msg[1024];
        size_t n = 0;

        for (int i = 0;; i++) {
                AuditRecord r = long_record(ua, sizeof(ua), msg, sizeof(msg), i);
                int k;

                assert_true(i < 100000);
                assert_int_equal(audit_write(a, &r), 0);
                k = audit_flush(a);
                if (k < 0) {
                        assert_int_equal(k, want_error);
                        break;
                }
                n++;
        }
        check_lines(path, n);
        return n;
}

/* A file size limit makes write() stop short in the middle of a line even though room was
 * made (fallocate() does not look at RLIMIT_FSIZE): the file is cut back to its last whole
 * line, and the next line starts on a line of its own. */
static void test_short_write_cut_back(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *path = NULL;
        _cleanup_(audit_freep) Audit *a = NULL;
        struct rlimit old, lim;
        char ua[32], msg[1024];
        AuditRecord r;
        size_t n;
        int k;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/audit.log", dir) > 0);
        assert_int_equal(audit_open(path, "keywardd", "1.0", "h1", &a), 0);

        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(signal(SIGXFSZ, SIG_IGN) == SIG_ERR, false);
        lim = old;
        lim.rlim_cur = 10000; /* not a multiple of the line length */
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

        n = fill_until(a, path, -EFBIG);
        assert_true(n >= 5);
        assert_true(audit_is_failing(a));
        /* Several lines in one write: those that fit stay whole, the torn one goes. */
        for (int i = 0; i < 3; i++) {
                r = long_record(ua, sizeof(ua), msg, sizeof(msg), 1000 + i);
                assert_int_equal(audit_write(a, &r), 0);
        }
        assert_int_equal(audit_flush(a), -EFBIG);
        check_lines(path, n);

        /* Room again: the next line is whole, on its own line, with nothing glued to it. */
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        r = long_record(ua, sizeof(ua), msg, sizeof(msg), 2000);
        assert_int_equal(audit_write(a, &r), 0);
        assert_int_equal(audit_flush(a), 0);
        assert_false(audit_is_failing(a));
        check_lines(path, n + 1);

        /* A line written at once reports its own failure. */
        lim.rlim_cur = 1;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        k = audit_write_mode(a, &r, AUDIT_NOW);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(k, -EFBIG);
        check_lines(path, n + 1);
        assert_int_equal(audit_write_mode(a, &r, AUDIT_DURABLE), 0);
        check_lines(path, n + 2);
        assert_int_equal(signal(SIGXFSZ, SIG_DFL) == SIG_ERR, false);

        a = audit_free(a);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* A probe never ends a failure: only a line that reaches the file does. Past RLIMIT_FSIZE,
 * fallocate() still makes room (it does not look at the limit) while every write() fails, so
 * a probe that trusted fallocate() would call the file healthy and the next request would be
 * answered before its line failed. */
static void test_probe_needs_a_line(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *path = NULL;
        _cleanup_(audit_freep) Audit *a = NULL;
        struct rlimit old, lim;
        char ua[32], msg[1024];
        AuditRecord r;
        size_t n;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/audit.log", dir) > 0);
        assert_int_equal(audit_open(path, "keywardd", "1.0", "h1", &a), 0);
        assert_int_equal(audit_probe(a), 0);

        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(signal(SIGXFSZ, SIG_IGN) == SIG_ERR, false);
        lim = old;
        lim.rlim_cur = 10000;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        n = fill_until(a, path, -EFBIG);
        assert_true(audit_is_failing(a));

        /* The file still takes no line: the probe must say so, and keep the failure. */
        assert_int_equal(audit_probe(a), -EFBIG);
        assert_true(audit_is_failing(a));
        r = long_record(ua, sizeof(ua), msg, sizeof(msg), 1000);
        assert_int_equal(audit_write_mode(a, &r, AUDIT_NOW), -EFBIG);
        assert_true(audit_is_failing(a));

        /* Room again, but no line has gone out yet: still failing, probe or not. */
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(signal(SIGXFSZ, SIG_DFL) == SIG_ERR, false);
        assert_int_equal(audit_probe(a), -EFBIG);
        assert_true(audit_is_failing(a));

        /* A line that reaches the file ends it. */
        assert_int_equal(audit_write_mode(a, &r, AUDIT_NOW), 0);
        assert_false(audit_is_failing(a));
        assert_int_equal(audit_probe(a), 0);
        check_lines(path, n + 1);

        a = audit_free(a);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* Two workers sync the same fd. The kernel reports a writeback error (errseq) to one
 * fdatasync() of the file only: the next one returns 0 although the lines it was to cover may
 * be gone. A real fault (dm-error, dm-flakey) is more than a unit test can set up, so the hook
 * plays the kernel: the first sync fails after both lines reached the file, every later one
 * succeeds. Both writes must fail, and the sink stays failing until a line is synced again. */
typedef struct SyncFault {
        const char *path;
        atomic_int calls;
        atomic_bool entered;
} SyncFault;

static size_t count_newlines(const char *path) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0, n = 0;

        if (read_full_file(path, 64 * 1024 * 1024, &data, &size) < 0)
                return 0;
        for (size_t i = 0; i < size; i++)
                n += data[i] == '\n';
        return n;
}

static int sync_fault_hook(int fd, void *userdata) {
        SyncFault *f = userdata;

        if (atomic_fetch_add(&f->calls, 1) > 0)
                return fdatasync(fd) < 0 ? -errno : 0; /* errseq: reported once, then 0 */
        atomic_store(&f->entered, true);
        /* The other worker's line reaches the page cache while this writeback fails. */
        for (int i = 0; i < 10000 && count_newlines(f->path) < 2; i++)
                (void) usleep(1000);
        return -EIO;
}

typedef struct DurableWriter {
        Audit *a;
        SyncFault *fault;
        bool wait_for_sync;
        int result;
} DurableWriter;

static void *durable_writer(void *userdata) {
        DurableWriter *w = userdata;
        AuditRecord r = base_record();

        for (int i = 0; w->wait_for_sync && !atomic_load(&w->fault->entered) && i < 10000; i++)
                (void) usleep(1000);
        r.method = "POST";
        r.path = "/v0/keys/";
        r.route = "postkeys";
        w->result = audit_write_mode(w->a, &r, AUDIT_DURABLE);
        return NULL;
}

static void test_sync_failure_sticky(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *path = NULL;
        _cleanup_(audit_freep) Audit *a = NULL;
        SyncFault fault = {};
        DurableWriter w1 = {}, w2 = {};
        pthread_t t1, t2;
        AuditRecord r = base_record();

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/audit.log", dir) > 0);
        assert_int_equal(audit_open(path, "keywardd", "1.0", "h1", &a), 0);
        fault.path = path;
        audit_set_sync_hook(a, sync_fault_hook, &fault);

        w1 = (DurableWriter){.a = a, .fault = &fault};
        w2 = (DurableWriter){.a = a, .fault = &fault, .wait_for_sync = true};
        assert_int_equal(pthread_create(&t1, NULL, durable_writer, &w1), 0);
        assert_int_equal(pthread_create(&t2, NULL, durable_writer, &w2), 0);
        assert_int_equal(pthread_join(t1, NULL), 0);
        assert_int_equal(pthread_join(t2, NULL), 0);
        assert_true(atomic_load(&fault.entered));
        assert_int_equal(count_newlines(path), 2);
        /* Neither write may be acknowledged: the failed sync may have covered both lines. */
        assert_int_equal(w1.result, -EIO);
        assert_int_equal(w2.result, -EIO);
        assert_true(audit_is_failing(a));
        assert_int_equal(audit_probe(a), -EIO);

        /* A line that is written and synced ends the failure; later durable lines are fine. */
        assert_int_equal(audit_write_mode(a, &r, AUDIT_NOW), 0);
        assert_false(audit_is_failing(a));
        assert_int_equal(audit_write_mode(a, &r, AUDIT_DURABLE), 0);
        assert_true(atomic_load(&fault.calls) >= 2);

        a = audit_free(a);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* A full file system (a small tmpfs, as root in a mount namespace of our own): lines are
 * refused whole, the file never holds part of one, and lines go out again once there is
 * room, with no reopen. */
static void test_enospc_never_torn(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *path = NULL, *filler = NULL;
        _cleanup_(audit_freep) Audit *a = NULL;
        _cleanup_free_ char *zeros = NULL;
        char ua[32], msg[1024];
        AuditRecord r;
        size_t n;
        int fd;

        if (geteuid() != 0)
                skip();
        if (unshare(CLONE_NEWNS) < 0)
                skip();
        assert_int_equal(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        assert_non_null(mkdtemp(dir));
        assert_int_equal(mount("tmpfs", dir, "tmpfs", 0, "size=40k,mode=0700"), 0);
        assert_true(asprintf(&path, "%s/audit.log", dir) > 0);
        assert_true(asprintf(&filler, "%s/filler", dir) > 0);

        /* Half the room goes to a file that is removed later. */
        zeros = calloc(1, 20 * 1024);
        assert_non_null(zeros);
        fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, zeros, 20 * 1024), 20 * 1024);
        assert_int_equal(close(fd), 0);

        assert_int_equal(audit_open(path, "keywardd", "1.0", "h1", &a), 0);
        n = fill_until(a, path, -ENOSPC);
        assert_true(n >= 5);
        assert_true(audit_is_failing(a));
        /* Batched lines that no longer fit. */
        for (int i = 0; i < 3; i++) {
                r = long_record(ua, sizeof(ua), msg, sizeof(msg), 1000 + i);
                assert_int_equal(audit_write(a, &r), 0);
        }
        assert_int_equal(audit_flush(a), -ENOSPC);
        check_lines(path, n);
        r = long_record(ua, sizeof(ua), msg, sizeof(msg), 2000);
        assert_int_equal(audit_write_mode(a, &r, AUDIT_DURABLE), -ENOSPC);
        check_lines(path, n);

        /* Space comes back: the same Audit writes again. */
        assert_int_equal(unlink(filler), 0);
        assert_int_equal(audit_write_mode(a, &r, AUDIT_DURABLE), 0);
        assert_false(audit_is_failing(a));
        check_lines(path, n + 1);
        assert_int_equal(audit_write(a, &r), 0);
        assert_int_equal(audit_flush(a), 0);
        check_lines(path, n + 2);

        a = audit_free(a);
        assert_int_equal(umount(dir), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* ---- the hash chain and audit-verify ------------------------------------------------- */

static const uint8_t test_key[AUDIT_CHECKPOINT_KEY_SIZE] = "0123456789abcdef0123456789abcdef";

/* The lines of a file, each without its newline; *ret_n of them. */
typedef struct Lines {
        char *l[256];
        size_t n;
} Lines;

static void lines_read(const char *path, Lines *ret) {
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        char *p, *nl;

        assert_int_equal(read_full_file(path, 1024 * 1024, &data, &size), 0);
        ret->n = 0;
        for (p = data; p < data + size; p = nl + 1) {
                nl = memchr(p, '\n', (size_t) (data + size - p));
                assert_non_null(nl);
                assert_true(ret->n < ELEMENTSOF(ret->l));
                ret->l[ret->n++] = strndup(p, (size_t) (nl - p));
        }
}

static void lines_done(Lines *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->l[i]);
        l->n = 0;
}

/* Write lines to path; the last one without its newline when torn. */
static void lines_write(const Lines *l, const char *path, bool torn) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        for (size_t i = 0; i < l->n; i++)
                fprintf(f, i + 1 == l->n && torn ? "%s" : "%s\n", l->l[i]);
        assert_int_equal(fclose(f), 0);
}

/* Verify files (NULL-terminated); returns the verdict, the findings in *ret_out. */
static int verify(const uint8_t *key, char **ret_out, const char *f1, const char *f2) {
        char *files[] = {(char *) f1, (char *) f2, NULL};
        size_t size = 0;
        FILE *out;
        int r;

        *ret_out = NULL;
        out = open_memstream(ret_out, &size);
        assert_non_null(out);
        r = audit_verify_files(files, key, out);
        assert_int_equal(fclose(out), 0);
        return r;
}

static bool line_is_checkpoint(const char *l) {
        return strncmp(l, "{\"checkpoint\":", 14) == 0;
}

static char *mfree(char *p) {
        free(p);
        return NULL;
}

static size_t count_checkpoints(const Buf *b) {
        size_t n = 0;

        for (const char *p = b->data, *end = p + b->len; (p = memmem(p, end - p, "\"checkpoint\"", 12)); p++)
                n++;
        return n;
}

/* Checkpoints come every every_lines lines but no sooner than min_usec after the last one:
 * a burst of lines gets one when the count is reached and the time has passed, not one per
 * every_lines lines. */
static void test_checkpoint_min_interval(void **state) {
        AuditChain c;
        _cleanup_buf_ Buf out = {};
        const char line[] = "{\"a\":1}\n";
        size_t n_cp;

        audit_chain_init(&c);
        assert_int_equal(audit_chain_set_key(&c, test_key), 0);
        c.every_lines = 3;
        c.min_usec = 60 * UINT64_C(1000000);
        c.checkpoint_usec = now_usec(CLOCK_MONOTONIC);
        for (int i = 0; i < 10; i++)
                assert_int_equal(audit_chain_seal(&c, line, sizeof(line) - 1, &out), 0);
        assert_int_equal(count_checkpoints(&out), 0);

        /* The minimum passed (moved back in time): the next line brings one, and the count
         * starts again. */
        c.checkpoint_usec -= c.min_usec;
        assert_int_equal(audit_chain_seal(&c, line, sizeof(line) - 1, &out), 0);
        n_cp = count_checkpoints(&out);
        assert_int_equal(n_cp, 1);
        assert_int_equal(c.since_checkpoint, 0);

        /* No minimum: every 3 lines. */
        c.min_usec = 0;
        buf_done(&out);
        for (int i = 0; i < 6; i++)
                assert_int_equal(audit_chain_seal(&c, line, sizeof(line) - 1, &out), 0);
        n_cp = count_checkpoints(&out);
        assert_int_equal(n_cp, 2);
        audit_chain_done(&c);
        (void) state;
}

static void test_chain(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *f1 = NULL, *f2 = NULL, *t = NULL, *out = NULL;
        Lines l1 = {}, l2 = {};
        uint8_t wrong[AUDIT_CHECKPOINT_KEY_SIZE];
        uint8_t h[AUDIT_HASH_SIZE];
        char hex[AUDIT_HASH_HEX + 1];
        size_t n_cp = 0;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&f1, "%s/audit.log.1", dir) > 0);
        assert_true(asprintf(&f2, "%s/audit.log", dir) > 0);
        assert_true(asprintf(&t, "%s/tampered", dir) > 0);

        /* Rotation by hand: f2 is the live name; the first file ends up as f1. */
        {
                _cleanup_(audit_freep) Audit *a = NULL;
                AuditRecord r = base_record();

                assert_int_equal(audit_open(f2, "keywardd", "1.0", "h1", &a), 0);
                assert_int_equal(audit_set_checkpoint_key(a, test_key), 0);
                audit_set_checkpoint_interval(a, 4, UINT64_MAX);
                for (int i = 0; i < 12; i++) {
                        assert_int_equal(audit_write(a, &r), 0);
                        if (i % 5 == 0)
                                assert_int_equal(audit_flush(a), 0);
                }
                assert_int_equal(audit_flush(a), 0);
                assert_int_equal(rename(f2, f1), 0);
                assert_int_equal(audit_reopen(a), 0);
                for (int i = 0; i < 5; i++)
                        assert_int_equal(audit_write(a, &r), 0);
                a = audit_free(a);
        }
        lines_read(f1, &l1);
        lines_read(f2, &l2);

        /* 12 lines and a checkpoint after each 4 (the 12th's is also the file's end, then the
         * final seal); the next file's first line names the last one. */
        for (size_t i = 0; i < l1.n; i++)
                n_cp += line_is_checkpoint(l1.l[i]);
        assert_int_equal(l1.n, 12 + n_cp);
        assert_true(n_cp >= 3);
        assert_non_null(strstr(l1.l[l1.n - 1], "\"final\":true"));
        assert_non_null(strstr(l1.l[0], ",\"seq\":1,\"prev\":\"0000000000000000"));
        audit_line_hash(l1.l[l1.n - 1], strlen(l1.l[l1.n - 1]), h);
        hexencode(h, sizeof(h), hex);
        assert_non_null(strstr(l2.l[0], hex));
        assert_int_equal(l2.n, 7); /* 4 lines, a checkpoint, 1 line, the final seal */
        assert_true(line_is_checkpoint(l2.l[4]));
        assert_non_null(strstr(l2.l[6], "\"final\":true"));

        /* Intact: with the key, without it, and reopened (the chain goes on from the file). */
        assert_int_equal(verify(test_key, &out, f1, f2), 0);
        assert_non_null(strstr(out, "intact"));
        out = mfree(out);
        assert_int_equal(verify(NULL, &out, f1, f2), 0);
        assert_non_null(strstr(out, "checkpoints not checked"));
        out = mfree(out);
        {
                _cleanup_(audit_freep) Audit *a = NULL;
                AuditRecord r = base_record();

                assert_int_equal(audit_open(f2, "keywardd", "1.0", "h1", &a), 0);
                assert_int_equal(audit_set_checkpoint_key(a, test_key), 0);
                assert_int_equal(audit_write(a, &r), 0);
                a = audit_free(a);
        }
        assert_int_equal(verify(test_key, &out, f1, f2), 0);
        out = mfree(out);
        lines_done(&l2);
        lines_read(f2, &l2);

        /* Another key: the checkpoints do not verify. */
        memset(wrong, 'x', sizeof(wrong));
        assert_int_equal(verify(wrong, &out, f1, f2), 1);
        assert_non_null(strstr(out, "HMAC does not verify"));
        out = mfree(out);

        /* Files out of order, or one missing in between: the first does not start the chain,
         * and told where it starts, the next does not continue it. */
        assert_int_equal(verify(test_key, &out, f2, f1), 1);
        assert_non_null(strstr(out, "the lines before it are missing"));
        out = mfree(out);
        {
                AuditVerifyOptions o = {.key = test_key};
                json_object *j = parse_line(l2.l[0]);
                json_object *v = NULL;
                char *files[] = {f2, f1, NULL};
                size_t size = 0;
                FILE *f;

                assert_true(json_object_object_get_ex(j, "seq", &v));
                o.first_seq = (uint64_t) json_object_get_int64(v);
                json_object_put(j);
                f = open_memstream(&out, &size);
                assert_non_null(f);
                assert_int_equal(audit_verify_files_with(files, &o, f), 1);
                assert_int_equal(fclose(f), 0);
                assert_non_null(strstr(out, "does not continue"));
                out = mfree(out);
        }

        /* Each kind of tampering with the first file, found at the line it breaks. */
        {
                Lines t1 = l1;
                char *saved;
                char want[64];

                /* Deleted: line 3 gone, line 4 (now 3) names the wrong predecessor. */
                memmove(t1.l + 2, t1.l + 3, (t1.n - 3) * sizeof(char *));
                t1.n--;
                lines_write(&t1, t, false);
                assert_int_equal(verify(test_key, &out, t, NULL), 1);
                (void) snprintf(want, sizeof(want), "%s:3: prev is not the hash", t);
                assert_non_null(strstr(out, want));
                out = mfree(out);

                /* Inserted: a copy of line 2 after it. */
                t1 = l1;
                memmove(t1.l + 3, t1.l + 2, (t1.n - 2) * sizeof(char *));
                t1.l[2] = l1.l[1];
                t1.n++;
                lines_write(&t1, t, false);
                assert_int_equal(verify(test_key, &out, t, NULL), 1);
                (void) snprintf(want, sizeof(want), "%s:3: prev is not the hash", t);
                assert_non_null(strstr(out, want));
                out = mfree(out);

                /* Edited: one byte of line 2's user agent; line 3 breaks. */
                t1 = l1;
                saved = strdup(l1.l[1]);
                assert_non_null(saved);
                *strstr(saved, "Knox_Client") = 'k';
                t1.l[1] = saved;
                lines_write(&t1, t, false);
                assert_int_equal(verify(test_key, &out, t, NULL), 1);
                (void) snprintf(want, sizeof(want), "%s:3: prev is not the hash", t);
                assert_non_null(strstr(out, want));
                out = mfree(out);
                free(saved);

                /* Reordered: lines 2 and 3 swapped. */
                t1 = l1;
                t1.l[1] = l1.l[2];
                t1.l[2] = l1.l[1];
                lines_write(&t1, t, false);
                assert_int_equal(verify(test_key, &out, t, NULL), 1);
                (void) snprintf(want, sizeof(want), "%s:2: prev is not the hash", t);
                assert_non_null(strstr(out, want));
                out = mfree(out);

                /* Truncated at the end, right after a checkpoint (the final seal gone). */
                t1 = l1;
                while (t1.n > 0 &&
                       !(line_is_checkpoint(t1.l[t1.n - 1]) && strstr(t1.l[t1.n - 1], "\"final\":false")))
                        t1.n--;
                assert_true(t1.n > 0);
                lines_write(&t1, t, false);
                assert_int_equal(verify(test_key, &out, t, NULL), 1);
                assert_non_null(strstr(out, "does not end in keywardd's final checkpoint"));
                out = mfree(out);
                /* ... also as the first of two files: the second does not continue it. */
                assert_int_equal(verify(test_key, &out, t, f2), 1);
                out = mfree(out);

                /* Cut in the middle of the last line. */
                t1 = l1;
                saved = strndup(l1.l[l1.n - 1], 20);
                t1.l[t1.n - 1] = saved;
                lines_write(&t1, t, true);
                assert_int_equal(verify(test_key, &out, t, NULL), 1);
                assert_non_null(strstr(out, "not whole"));
                out = mfree(out);
                free(saved);

                /* Not a line of ours in the middle. */
                t1 = l1;
                t1.l[4] = (char *) "{\"id\":\"x\"}";
                lines_write(&t1, t, false);
                assert_int_equal(verify(test_key, &out, t, NULL), 1);
                (void) snprintf(want, sizeof(want), "%s:5: no chain members", t);
                assert_non_null(strstr(out, want));
                out = mfree(out);
        }

        /* Rewritten by someone without the key: line 2 edited and the whole chain after it
         * rebuilt. The chain alone cannot tell; the first checkpoint after the edit can. */
        {
                Lines t1 = {};
                uint8_t prev[AUDIT_HASH_SIZE];
                char want[64];

                for (size_t i = 0; i < l1.n; i++)
                        t1.l[t1.n++] = strdup(l1.l[i]);
                *strstr(t1.l[1], "Knox_Client") = 'k';
                audit_line_hash(t1.l[1], strlen(t1.l[1]), prev);
                for (size_t i = 2; i < t1.n; i++) {
                        char *p = strstr(t1.l[i], ",\"prev\":\"");

                        assert_non_null(p);
                        hexencode(prev, sizeof(prev), hex);
                        memcpy(p + 9, hex, AUDIT_HASH_HEX);
                        audit_line_hash(t1.l[i], strlen(t1.l[i]), prev);
                }
                lines_write(&t1, t, false);
                assert_int_equal(verify(NULL, &out, t, NULL), 0);
                out = mfree(out);
                assert_int_equal(verify(test_key, &out, t, NULL), 1);
                for (size_t i = 0; i < t1.n; i++)
                        if (line_is_checkpoint(t1.l[i])) {
                                (void) snprintf(
                                        want, sizeof(want), "%s:%zu: the checkpoint's HMAC", t, i + 1);
                                break;
                        }
                assert_non_null(strstr(out, want));
                out = mfree(out);
                lines_done(&t1);
        }

        lines_done(&l1);
        lines_done(&l2);
        assert_int_equal(unlink(f1), 0);
        assert_int_equal(unlink(f2), 0);
        assert_int_equal(unlink(t), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* A write that fails part way puts the chain back: the next line follows the last one kept. */
/* The anchor: the seq and hash of the last checkpoint, kept outside the file (keywardd keeps
 * it in the store). A file cut back to an earlier final checkpoint, or a newest file that is
 * missing, passes the chain and the checkpoints, and only the anchor catches it. */
typedef struct AnchorRecord {
        uint64_t seq;
        uint8_t hash[AUDIT_HASH_SIZE];
        unsigned calls;
} AnchorRecord;

static int anchor_record(uint64_t seq, const uint8_t hash[32], void *userdata) {
        AnchorRecord *k = userdata;

        k->calls++;
        if (seq > k->seq) {
                k->seq = seq;
                memcpy(k->hash, hash, AUDIT_HASH_SIZE);
        }
        return 0;
}

static int verify_opts(const AuditVerifyOptions *o, char **ret_out, const char *f1, const char *f2) {
        char *files[] = {(char *) f1, (char *) f2, NULL};
        size_t size = 0;
        FILE *out;
        int r;

        *ret_out = NULL;
        out = open_memstream(ret_out, &size);
        assert_non_null(out);
        r = audit_verify_files_with(files, o, out);
        assert_int_equal(fclose(out), 0);
        return r;
}

/* Write n lines to path (a keywardd run: open, lines, stop), anchoring into k. */
static void anchored_run(const char *path, AnchorRecord *k, int n, const char *rotate_to) {
        _cleanup_(audit_freep) Audit *a = NULL;
        AuditRecord r = base_record();

        assert_int_equal(audit_open(path, "keywardd", "1.0", "h1", &a), 0);
        assert_int_equal(audit_set_checkpoint_key(a, test_key), 0);
        audit_set_checkpoint_interval(a, 3, UINT64_MAX);
        audit_set_anchor(a, anchor_record, k);
        for (int i = 0; i < n; i++)
                assert_int_equal(audit_write(a, &r), 0);
        if (rotate_to) {
                assert_int_equal(audit_flush(a), 0);
                assert_int_equal(rename(path, rotate_to), 0);
                assert_int_equal(audit_reopen(a), 0);
                for (int i = 0; i < n; i++)
                        assert_int_equal(audit_write(a, &r), 0);
        }
        a = audit_free(a);
}

static void test_anchor(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *f1 = NULL, *f2 = NULL, *t = NULL, *out = NULL;
        AnchorRecord k = {};
        AuditVerifyOptions o = {.key = test_key};
        Lines l = {};
        size_t first_final = SIZE_MAX;
        uint64_t seq;
        uint8_t h[AUDIT_HASH_SIZE];
        char hex[AUDIT_HASH_HEX + 1], spelled[128];

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&f1, "%s/audit.log.1", dir) > 0);
        assert_true(asprintf(&f2, "%s/audit.log", dir) > 0);
        assert_true(asprintf(&t, "%s/tampered", dir) > 0);

        /* A run that rotates (f1, then f2), a restart that goes on in f2. */
        anchored_run(f2, &k, 5, f1);
        anchored_run(f2, &k, 4, NULL);
        assert_true(k.calls >= 4);
        lines_read(f2, &l);
        /* The anchor is the file's last line, its final checkpoint. */
        audit_line_hash(l.l[l.n - 1], strlen(l.l[l.n - 1]), h);
        assert_memory_equal(h, k.hash, sizeof(h));
        for (size_t i = 0; i < l.n && first_final == SIZE_MAX; i++)
                if (strstr(l.l[i], "\"final\":true"))
                        first_final = i;
        assert_true(first_final < l.n - 1);

        o.have_anchor = true;
        o.anchor_seq = k.seq;
        memcpy(o.anchor_hash, k.hash, sizeof(h));
        assert_int_equal(verify_opts(&o, &out, f1, f2), 0);
        assert_non_null(strstr(out, "anchor at seq"));
        out = mfree(out);

        /* Cut back to the first run's final checkpoint: the chain and the checkpoints are
         * fine, the anchor is not. */
        {
                Lines cut = l;

                cut.n = first_final + 1;
                lines_write(&cut, t, false);
        }
        assert_int_equal(verify(test_key, &out, f1, t), 0);
        out = mfree(out);
        assert_int_equal(verify_opts(&o, &out, f1, t), 1);
        assert_non_null(strstr(out, "lines were cut from the end"));
        out = mfree(out);

        /* The newest file missing. */
        assert_int_equal(verify(test_key, &out, f1, NULL), 0);
        out = mfree(out);
        assert_int_equal(verify_opts(&o, &out, f1, NULL), 1);
        assert_non_null(strstr(out, "newest files are missing"));
        out = mfree(out);

        /* An anchor that names another line at that seq (another log's, or a rewrite). */
        o.anchor_hash[0] ^= 1;
        assert_int_equal(verify_opts(&o, &out, f1, f2), 1);
        assert_non_null(strstr(out, "not the line the anchor recorded"));
        out = mfree(out);
        o.anchor_hash[0] ^= 1;

        /* A first file that does not start the chain is broken, unless told where it starts. */
        assert_int_equal(verify(test_key, &out, f2, NULL), 1);
        assert_non_null(strstr(out, "the lines before it are missing"));
        out = mfree(out);
        {
                json_object *j = parse_line(l.l[0]);
                json_object *v = NULL;

                assert_true(json_object_object_get_ex(j, "seq", &v));
                o.first_seq = (uint64_t) json_object_get_int64(v);
                json_object_put(j);
        }
        assert_true(o.first_seq > 1);
        assert_int_equal(verify_opts(&o, &out, f2, NULL), 0);
        out = mfree(out);
        o.first_seq++;
        assert_int_equal(verify_opts(&o, &out, f2, NULL), 1);
        out = mfree(out);

        /* --anchor's spelling. */
        hexencode(k.hash, sizeof(k.hash), hex);
        (void) snprintf(spelled, sizeof(spelled), "%" PRIu64 ":%s", k.seq, hex);
        assert_int_equal(audit_anchor_parse(spelled, &seq, h), 0);
        assert_int_equal(seq, k.seq);
        assert_memory_equal(h, k.hash, sizeof(h));
        assert_int_equal(audit_anchor_parse("0:00", &seq, h), -EINVAL);
        assert_int_equal(audit_anchor_parse(hex, &seq, h), -EINVAL);
        assert_int_equal(audit_anchor_parse(":x", &seq, h), -EINVAL);
        (void) snprintf(spelled, sizeof(spelled), "12:%.63s", hex);
        assert_int_equal(audit_anchor_parse(spelled, &seq, h), -EINVAL);

        lines_done(&l);
        assert_int_equal(unlink(f1), 0);
        assert_int_equal(unlink(f2), 0);
        assert_int_equal(unlink(t), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* The anchor in the store (keywardd keeps it there): absent until stored, one row per name,
 * replaced by the next store, kept across reopening, and checked on the way in. */
static void test_store_anchor(void **state) {
        static const char h1[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        static const char h2[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
        static const char upper[] = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef";
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *db = NULL;
        char got[STORE_AUDIT_HASH_HEX + 1];
        uint64_t seq = 0;
        Store *s = NULL;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&db, "%s/keyward.db", dir) > 0);
        assert_int_equal(store_open(db, &s), 0);
        assert_int_equal(store_init(s), 0);
        assert_int_equal(store_audit_anchor_get(s, "h1", &seq, got), -ENOENT);
        assert_int_equal(store_audit_anchor_set(s, "h1", 7, h1), 0);
        assert_int_equal(store_audit_anchor_get(s, "h2", &seq, got), -ENOENT);
        assert_int_equal(store_audit_anchor_get(s, "h1", &seq, got), 0);
        assert_int_equal(seq, 7);
        assert_string_equal(got, h1);
        assert_int_equal(store_audit_anchor_set(s, "h2", 3, h2), 0);
        assert_int_equal(store_audit_anchor_set(s, "h1", 1007, h2), 0);
        assert_int_equal(store_audit_anchor_set(s, "h1", 8, "0123"), -EINVAL);
        assert_int_equal(store_audit_anchor_set(s, "h1", 8, upper), -EINVAL);
        assert_int_equal(store_audit_anchor_set(s, "h1", 0, h1), -EINVAL);
        assert_int_equal(store_audit_anchor_set(s, "", 8, h1), -EINVAL);
        s = store_free(s);

        assert_int_equal(store_open_existing(db, &s), 0);
        assert_int_equal(store_audit_anchor_get(s, "h1", &seq, got), 0);
        assert_int_equal(seq, 1007);
        assert_string_equal(got, h2);
        assert_int_equal(store_audit_anchor_get(s, "h2", &seq, got), 0);
        assert_int_equal(seq, 3);
        s = store_free(s);

        /* SQLite's WAL files go with the store. */
        for (const char *suffix = ""; suffix; suffix = streq(suffix, "") ? "-wal" :
                     streq(suffix, "-wal")                               ? "-shm" :
                                                                           NULL) {
                _cleanup_free_ char *f = NULL;

                assert_true(asprintf(&f, "%s%s", db, suffix) > 0);
                (void) unlink(f);
        }
        assert_int_equal(rmdir(dir), 0);
}

static void test_chain_after_failure(void **state) {
        char dir[] = "/tmp/test-server-audit-XXXXXX";
        _cleanup_free_ char *path = NULL, *out = NULL;
        _cleanup_(audit_freep) Audit *a = NULL;
        struct rlimit old, lim;
        char ua[32], msg[1024];
        AuditRecord r;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/audit.log", dir) > 0);
        assert_int_equal(audit_open(path, "keywardd", "1.0", "h1", &a), 0);
        assert_int_equal(audit_set_checkpoint_key(a, test_key), 0);
        audit_set_checkpoint_interval(a, 3, UINT64_MAX);

        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(signal(SIGXFSZ, SIG_IGN) == SIG_ERR, false);
        lim = old;
        lim.rlim_cur = 10000;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        (void) fill_until(a, path, -EFBIG);
        for (int i = 0; i < 3; i++) {
                r = long_record(ua, sizeof(ua), msg, sizeof(msg), 1000 + i);
                assert_int_equal(audit_write(a, &r), 0);
        }
        assert_int_equal(audit_flush(a), -EFBIG);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        assert_int_equal(signal(SIGXFSZ, SIG_DFL) == SIG_ERR, false);
        for (int i = 0; i < 5; i++) {
                r = long_record(ua, sizeof(ua), msg, sizeof(msg), 2000 + i);
                assert_int_equal(audit_write(a, &r), 0);
        }
        a = audit_free(a);

        assert_int_equal(verify(test_key, &out, path, NULL), 0);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exact_line),
                cmocka_unit_test(test_error_line_unauthenticated),
                cmocka_unit_test(test_timestamps),
                cmocka_unit_test(test_now_and_ids),
                cmocka_unit_test(test_route_parameters),
                cmocka_unit_test(test_no_secret),
                cmocka_unit_test(test_escaping),
                cmocka_unit_test(test_principals),
                cmocka_unit_test(test_open_errors),
                cmocka_unit_test(test_file_target),
                cmocka_unit_test(test_concurrent_writes),
                cmocka_unit_test(test_exited_threads),
                cmocka_unit_test(test_batching),
                cmocka_unit_test(test_two_audits),
                cmocka_unit_test(test_stderr_socket),
                cmocka_unit_test(test_write_error),
                cmocka_unit_test(test_short_write_cut_back),
                cmocka_unit_test(test_probe_needs_a_line),
                cmocka_unit_test(test_sync_failure_sticky),
                cmocka_unit_test(test_enospc_never_torn),
                cmocka_unit_test(test_open_cuts_fragment),
                cmocka_unit_test(test_checkpoint_min_interval),
                cmocka_unit_test(test_chain),
                cmocka_unit_test(test_chain_after_failure),
                cmocka_unit_test(test_anchor),
                cmocka_unit_test(test_store_anchor),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
