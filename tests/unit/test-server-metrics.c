/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server-metrics.h"

/* Each line is "# HELP name text", "# TYPE name type", or "name{labels} value", and the
 * samples of a family follow its # TYPE line. */
static void check_exposition_format(const char *text) {
        char family[128] = "";

        assert_true(text[0] != '\0');
        assert_int_equal(text[strlen(text) - 1], '\n');
        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n'), *q = p;
                size_t n;

                assert_non_null(nl);
                if (strncmp(p, "# HELP ", 7) == 0)
                        ;
                else if (strncmp(p, "# TYPE ", 7) == 0) {
                        const char *sp = memchr(p + 7, ' ', (size_t) (nl - p - 7));

                        assert_non_null(sp);
                        assert_true((size_t) (sp - p - 7) < sizeof(family));
                        memcpy(family, p + 7, (size_t) (sp - p - 7));
                        family[sp - p - 7] = '\0';
                        assert_true(
                                strncmp(sp, " counter\n", 9) == 0 || strncmp(sp, " gauge\n", 7) == 0 ||
                                strncmp(sp, " histogram\n", 11) == 0);
                } else {
                        n = strlen(family);
                        assert_true(n > 0);
                        assert_memory_equal(p, family, n);
                        q = p + n;
                        if (*q == '_') /* _bucket, _sum, _count */
                                while (islower((unsigned char) *q) || *q == '_')
                                        q++;
                        if (*q == '{') {
                                q = memchr(q, '}', (size_t) (nl - q));
                                assert_non_null(q);
                                q++;
                        }
                        assert_int_equal(*q, ' ');
                        q++;
                        assert_true(q < nl && (isdigit((unsigned char) *q) || *q == '-'));
                        for (q++; q < nl; q++)
                                assert_true(isdigit((unsigned char) *q) || *q == '.');
                }
                p = nl + 1;
        }
}

static char *render(Metrics *m) {
        _cleanup_buf_ Buf b = BUF_INIT;
        char *s;

        assert_int_equal(buf_putc(&b, '\n'), 0); /* so that every line can be found as "\nLINE\n" */
        assert_int_equal(metrics_render(m, &b), 0);
        check_exposition_format(b.data + 1);
        s = buf_steal(&b, NULL);
        assert_non_null(s);
        return s;
}

static void assert_line(const char *text, const char *line) {
        _cleanup_free_ char *want = NULL;

        assert_true(asprintf(&want, "\n%s\n", line) > 0);
        if (!strstr(text, want))
                fail_msg("line '%s' missing from:%s", line, text);
}

static void assert_no(const char *text, const char *s) {
        if (strstr(text, s))
                fail_msg("'%s' unexpected in:%s", s, text);
}

static void test_empty(void **state) {
        _cleanup_(metrics_freep) Metrics *m = NULL;
        _cleanup_free_ char *text = NULL;

        assert_int_equal(metrics_new(2, &m), 0);
        text = render(m);
        assert_string_equal(
                text,
                "\n"
                "# HELP keyward_requests_total Requests answered, by route, Knox code and HTTP status.\n"
                "# TYPE keyward_requests_total counter\n"
                "# HELP keyward_request_duration_seconds Time from a request's arrival to its reply, by route.\n"
                "# TYPE keyward_request_duration_seconds histogram\n"
                "# HELP keyward_open_connections Client connections open now.\n"
                "# TYPE keyward_open_connections gauge\n"
                "keyward_open_connections 0\n"
                "# HELP keyward_watchers Watch requests (Prefer: wait) waiting now.\n"
                "# TYPE keyward_watchers gauge\n"
                "keyward_watchers 0\n"
                "# HELP keyward_store_errors_total Requests that failed in the key store.\n"
                "# TYPE keyward_store_errors_total counter\n"
                "keyward_store_errors_total 0\n"
                "# HELP keyward_auth_failures_total Requests whose authentication failed.\n"
                "# TYPE keyward_auth_failures_total counter\n"
                "keyward_auth_failures_total 0\n"
                "# HELP keyward_connections_refused_total Connections closed unserved: their address had its limit of open connections.\n"
                "# TYPE keyward_connections_refused_total counter\n"
                "keyward_connections_refused_total 0\n"
                "# HELP keyward_audit_failures_total Audit writes that failed: a request refused (or answered, with --audit-fail-open) without its line, or a batch of lines lost.\n"
                "# TYPE keyward_audit_failures_total counter\n"
                "keyward_audit_failures_total 0\n"
                "# HELP keyward_watch_evaluations_total Held watches looked at again after a change (or at their end): a write touches only the watches on its key.\n"
                "# TYPE keyward_watch_evaluations_total counter\n"
                "keyward_watch_evaluations_total 0\n"
                "# HELP keyward_tls_handshakes_total TLS connections that sent a request, by whether their handshake resumed a session (a ticket or the cache) or was a full one.\n"
                "# TYPE keyward_tls_handshakes_total counter\n"
                "keyward_tls_handshakes_total{resumed=\"false\"} 0\n"
                "keyward_tls_handshakes_total{resumed=\"true\"} 0\n");
}

static const char getkey_histogram[] =
        "\nkeyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.0005\"} 1\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.001\"} 2\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.0025\"} 3\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.005\"} 3\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.01\"} 3\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.025\"} 3\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.05\"} 3\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.1\"} 3\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.25\"} 3\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.5\"} 3\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"1\"} 3\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"2.5\"} 4\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"5\"} 4\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"10\"} 4\n"
        "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"+Inf\"} 5\n"
        "keyward_request_duration_seconds_sum{route=\"getkey\"} 62.002301\n"
        "keyward_request_duration_seconds_count{route=\"getkey\"} 5\n";

static void test_requests_and_histogram(void **state) {
        _cleanup_(metrics_freep) Metrics *m = NULL;
        _cleanup_free_ char *text = NULL;
        const char *block;

        assert_int_equal(metrics_new(2, &m), 0);
        /* Bucket bounds are inclusive ("le"). */
        metrics_request(m, 0, "getkey", 200, 0, 300);
        metrics_request(m, 1, "getkey", 200, 0, 1000);
        metrics_request(m, 0, "getkey", 200, 0, 1001);
        metrics_request(m, 1, "getkey", 404, 4, 2000000);
        metrics_request(m, 0, "getkey", 200, 0, 60000000);
        metrics_request(m, 0, "postkeys", 400, 9, 20000);
        metrics_request(m, 1, "postkeys", 400, 9, 20000);
        metrics_request(m, 0, "no-such-route", 418, 99, 10);
        metrics_request(m, 0, NULL, 200, -1, 10);
        metrics_request(m, 5, "404", 404, 8, 0); /* worker past the end: shares the last slot */
        metrics_request(m, 0, "healthz", 503, 0, 1);
        metrics_request(m, 0, "login", 429, 0, 1);

        text = render(m);
        assert_line(text, "keyward_requests_total{route=\"getkey\",code=\"0\",status=\"200\"} 4");
        assert_line(text, "keyward_requests_total{route=\"getkey\",code=\"4\",status=\"404\"} 1");
        assert_line(text, "keyward_requests_total{route=\"postkeys\",code=\"9\",status=\"400\"} 2");
        assert_line(text, "keyward_requests_total{route=\"unmatched\",code=\"other\",status=\"other\"} 1");
        assert_line(text, "keyward_requests_total{route=\"unmatched\",code=\"other\",status=\"200\"} 1");
        assert_line(text, "keyward_requests_total{route=\"404\",code=\"8\",status=\"404\"} 1");
        assert_line(text, "keyward_requests_total{route=\"healthz\",code=\"0\",status=\"503\"} 1");
        assert_line(text, "keyward_requests_total{route=\"login\",code=\"0\",status=\"429\"} 1");
        /* Zero series are left out. */
        assert_no(text, "route=\"getkeys\"");
        assert_no(text, "code=\"0\",status=\"404\"");
        assert_no(text, "no-such-route");

        /* The whole histogram of one route: cumulative buckets, then _sum and _count. */
        block = strstr(text, "\nkeyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.0005\"}");
        assert_non_null(block);
        assert_true(strlen(block) >= strlen(getkey_histogram));
        assert_memory_equal(block, getkey_histogram, strlen(getkey_histogram));
        assert_line(text, "keyward_request_duration_seconds_bucket{route=\"postkeys\",le=\"0.01\"} 0");
        assert_line(text, "keyward_request_duration_seconds_bucket{route=\"postkeys\",le=\"0.025\"} 2");
        assert_line(text, "keyward_request_duration_seconds_sum{route=\"postkeys\"} 0.040000");
        assert_line(text, "keyward_request_duration_seconds_count{route=\"postkeys\"} 2");
        assert_line(text, "keyward_request_duration_seconds_bucket{route=\"404\",le=\"0.0005\"} 1");
        assert_line(text, "keyward_request_duration_seconds_sum{route=\"404\"} 0.000000");
        assert_line(text, "keyward_request_duration_seconds_count{route=\"unmatched\"} 2");
        assert_no(text, "keyward_request_duration_seconds_count{route=\"getkeys\"}");
}

static void test_gauges_and_counters(void **state) {
        _cleanup_(metrics_freep) Metrics *m = NULL;
        char *text;

        assert_int_equal(metrics_new(3, &m), 0);
        metrics_connections_add(m, 0, +1);
        metrics_connections_add(m, 1, +1);
        metrics_connections_add(m, 2, +1);
        metrics_watchers_add(m, 1, +1);
        metrics_watchers_add(m, 1, +1);
        metrics_store_error(m, 2);
        metrics_auth_failure(m, 0);
        metrics_auth_failure(m, 99);
        metrics_connection_refused(m, 1);
        metrics_audit_failure(m, 1);
        metrics_audit_failure(m, 99);
        metrics_tls_handshake(m, 0, false);
        metrics_tls_handshake(m, 1, true);
        metrics_tls_handshake(m, 99, true);
        text = render(m);
        assert_line(text, "keyward_tls_handshakes_total{resumed=\"false\"} 1");
        assert_line(text, "keyward_tls_handshakes_total{resumed=\"true\"} 2");
        assert_line(text, "keyward_audit_failures_total 2");
        assert_line(text, "keyward_open_connections 3");
        assert_line(text, "keyward_watchers 2");
        assert_line(text, "keyward_store_errors_total 1");
        assert_line(text, "keyward_auth_failures_total 2");
        assert_line(text, "keyward_connections_refused_total 1");
        free(text);

        metrics_connections_add(m, 1, -1);
        metrics_connections_add(m, 2, -1);
        metrics_watchers_add(m, 1, -1);
        metrics_watchers_add(m, 1, -1);
        metrics_store_error(m, 2);
        text = render(m);
        assert_line(text, "keyward_open_connections 1");
        assert_line(text, "keyward_watchers 0");
        assert_line(text, "keyward_store_errors_total 2");
        assert_line(text, "keyward_auth_failures_total 2");
        free(text);
}

#define N_THREADS 4
#define N_ROUNDS 100000

typedef struct Worker {
        Metrics *m;
        size_t index;
        pthread_barrier_t *start;
} Worker;

static void *worker_thread(void *userdata) {
        Worker *w = userdata;

        (void) pthread_barrier_wait(w->start); /* all at once, so that they really race */
        for (int i = 0; i < N_ROUNDS; i++) {
                metrics_connections_add(w->m, w->index, +1);
                metrics_request(w->m, w->index, "getkey", 200, 0, 700);
                /* All threads also hammer one shared slot. */
                metrics_request(w->m, 0, "putversion", 400, 11, 3);
                metrics_auth_failure(w->m, w->index);
                metrics_watchers_add(w->m, 0, +1);
                metrics_watchers_add(w->m, 0, -1);
                metrics_connections_add(w->m, w->index, -1);
        }
        metrics_connections_add(w->m, w->index, +1);
        return NULL;
}

static void test_concurrent(void **state) {
        _cleanup_(metrics_freep) Metrics *m = NULL;
        _cleanup_free_ char *text = NULL;
        pthread_t threads[N_THREADS];
        Worker w[N_THREADS];
        pthread_barrier_t start;

        assert_int_equal(pthread_barrier_init(&start, NULL, N_THREADS), 0);
        assert_int_equal(metrics_new(N_THREADS, &m), 0);
        for (size_t i = 0; i < N_THREADS; i++) {
                w[i] = (Worker){.m = m, .index = i, .start = &start};
                assert_int_equal(pthread_create(&threads[i], NULL, worker_thread, &w[i]), 0);
        }
        for (size_t i = 0; i < N_THREADS; i++)
                assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(pthread_barrier_destroy(&start), 0);

        text = render(m);
        assert_line(text, "keyward_requests_total{route=\"getkey\",code=\"0\",status=\"200\"} 400000");
        assert_line(text, "keyward_requests_total{route=\"putversion\",code=\"11\",status=\"400\"} 400000");
        assert_line(text, "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.0005\"} 0");
        assert_line(text, "keyward_request_duration_seconds_bucket{route=\"getkey\",le=\"0.001\"} 400000");
        assert_line(text, "keyward_request_duration_seconds_sum{route=\"getkey\"} 280.000000");
        assert_line(text, "keyward_request_duration_seconds_count{route=\"getkey\"} 400000");
        assert_line(text, "keyward_request_duration_seconds_sum{route=\"putversion\"} 1.200000");
        assert_line(text, "keyward_request_duration_seconds_count{route=\"putversion\"} 400000");
        assert_line(text, "keyward_open_connections 4");
        assert_line(text, "keyward_watchers 0");
        assert_line(text, "keyward_auth_failures_total 400000");
}

static void test_errors(void **state) {
        Metrics *m = (Metrics *) 0x1;
        _cleanup_buf_ Buf small = {.max = 64};

        assert_int_equal(metrics_new(0, &m), -EINVAL);
        assert_ptr_equal(m, (Metrics *) 0x1);
        assert_null(metrics_free(NULL));

        /* NULL metrics: updates are no-ops. */
        metrics_request(NULL, 0, "getkey", 200, 0, 1);
        metrics_connections_add(NULL, 0, 1);
        metrics_watchers_add(NULL, 0, 1);
        metrics_store_error(NULL, 0);
        metrics_auth_failure(NULL, 0);

        assert_int_equal(metrics_new(1, &m), 0);
        assert_int_equal(metrics_render(NULL, &small), -EINVAL);
        assert_int_equal(metrics_render(m, &small), -E2BIG);
        m = metrics_free(m);
        assert_null(m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_requests_and_histogram),
                cmocka_unit_test(test_gauges_and_counters),
                cmocka_unit_test(test_concurrent),
                cmocka_unit_test(test_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
