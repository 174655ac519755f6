/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server-metrics.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "store.h"

/* clang-format off */
static const char *const route_names[] = {
        "getkeys", "postkeys", "getkey", "deletekey", "getaccess", "putaccess", "postversion",
        "putversion", "whoami", "deletetoken", "login", "404", "healthz", "metrics",
        "expiring",
        "unmatched", /* last: everything else */
};
#define N_ROUTES ELEMENTSOF(route_names)
#define ROUTE_UNMATCHED (N_ROUTES - 1)

/* Knox codes 0..13, then one bucket for anything else. */
static const char *const code_labels[] = {
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "other",
};
#define N_CODES ELEMENTSOF(code_labels)
#define CODE_OTHER (N_CODES - 1)

/* The HTTP statuses keywardd sends, then one bucket for anything else. */
static const int statuses[] = { 200, 400, 401, 403, 404, 405, 413, 429, 500, 503 };
static const char *const status_labels[] = {
        "200", "400", "401", "403", "404", "405", "413", "429", "500", "503", "other",
};
#define N_STATUSES ELEMENTSOF(status_labels)
#define STATUS_OTHER (N_STATUSES - 1)

/* Upper bounds in microseconds, and as Prometheus "le" labels; +Inf is the last bucket. */
static const uint64_t bucket_usec[] = {
        500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
        1000000, 2500000, 5000000, 10000000,
};
static const char *const bucket_le[] = {
        "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
        "1", "2.5", "5", "10",
};
/* clang-format on */
_Static_assert(ELEMENTSOF(statuses) + 1 == ELEMENTSOF(status_labels), "statuses");
_Static_assert(ELEMENTSOF(bucket_usec) == ELEMENTSOF(bucket_le), "buckets");
#define N_BUCKETS (ELEMENTSOF(bucket_usec) + 1)

/* One worker's counters. Only that worker writes them (others may too, harmlessly: they
 * are atomics); the renderer reads them all with relaxed loads and adds them up. */
typedef struct MetricsSlot {
        _Alignas(64) atomic_uint_fast64_t requests[N_ROUTES][N_CODES][N_STATUSES];
        atomic_uint_fast64_t buckets[N_ROUTES][N_BUCKETS]; /* per bucket, not cumulative */
        atomic_uint_fast64_t sum_usec[N_ROUTES];
        atomic_int_fast64_t connections;
        atomic_int_fast64_t watchers;
        atomic_uint_fast64_t store_errors;
        atomic_uint_fast64_t auth_failures;
        atomic_uint_fast64_t connections_refused;
        atomic_uint_fast64_t audit_failures;
        atomic_uint_fast64_t watch_evaluations;
        atomic_uint_fast64_t tls_handshakes[2]; /* full, resumed */
} MetricsSlot;

struct Metrics {
        size_t n_slots;
        MetricsSlot *slots;
};

int metrics_new(size_t n_workers, Metrics **ret) {
        Metrics *m;
        size_t size;

        assert_return(n_workers > 0, -EINVAL);
        assert_return(ret, -EINVAL);

        if (!MUL_SAFE(&size, n_workers, sizeof(MetricsSlot)))
                return -ENOMEM;
        m = calloc(1, sizeof(Metrics));
        if (!m)
                return -ENOMEM;
        /* Slots on their own cache lines, so that workers do not share lines they write. */
        m->slots = aligned_alloc(_Alignof(MetricsSlot), size);
        if (!m->slots) {
                free(m);
                return -ENOMEM;
        }
        memset(m->slots, 0, size); /* all-zero bits are zero atomics on Linux's ABIs */
        m->n_slots = n_workers;

        *ret = m;
        return 0;
}

Metrics *metrics_free(Metrics *m) {
        if (!m)
                return NULL;
        free(m->slots);
        free(m);
        return NULL;
}

static MetricsSlot *slot(Metrics *m, size_t worker) {
        /* A caller outside the workers (or a bad index) shares the last slot. */
        return &m->slots[worker < m->n_slots ? worker : m->n_slots - 1];
}

static size_t route_index(const char *route) {
        if (route)
                for (size_t i = 0; i < ROUTE_UNMATCHED; i++)
                        if (streq(route, route_names[i]))
                                return i;
        return ROUTE_UNMATCHED;
}

static size_t status_index(int status) {
        for (size_t i = 0; i < ELEMENTSOF(statuses); i++)
                if (statuses[i] == status)
                        return i;
        return STATUS_OTHER;
}

static size_t bucket_index(uint64_t usec) {
        for (size_t i = 0; i < ELEMENTSOF(bucket_usec); i++)
                if (usec <= bucket_usec[i])
                        return i;
        return N_BUCKETS - 1;
}

static int certificate_series(
        const char *id, uint64_t version, VersionStatus status, int64_t not_after, void *userdata) {
        Buf *out = userdata;

        if (status != VERSION_STATUS_PRIMARY && status != VERSION_STATUS_ACTIVE)
                return 0;
        /* Key ids are [A-Za-z0-9_:]: nothing in them needs escaping in a label. */
        if (!key_id_is_valid(id))
                return 0;
        (void) buf_printf(
                out,
                "keyward_certificate_not_after_seconds{key=\"%s\",version=\"%" PRIu64 "\"} %" PRId64 "\n",
                id, version, not_after);
        return out->error;
}

int metrics_certificates_render(struct Store *store, Buf *out) {
        (void) buf_puts(
                out,
                "# HELP keyward_certificate_not_after_seconds notAfter of the X.509 certificate (a chain's first) in a key's primary or active version, in seconds since the epoch.\n"
                "# TYPE keyward_certificate_not_after_seconds gauge\n");
        if (out->error < 0)
                return out->error;
        return store_list_certificates(store, certificate_series, out);
}

void metrics_request(Metrics *m, size_t worker, const char *route, int status, int code, uint64_t usec) {
        MetricsSlot *s;
        size_t r;

        if (!m)
                return;
        s = slot(m, worker);
        r = route_index(route);
        atomic_fetch_add_explicit(
                &s->requests[r][code >= 0 && (size_t) code < CODE_OTHER ? (size_t) code : CODE_OTHER]
                            [status_index(status)],
                1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->buckets[r][bucket_index(usec)], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->sum_usec[r], usec, memory_order_relaxed);
}

void metrics_connections_add(Metrics *m, size_t worker, int delta) {
        if (m)
                atomic_fetch_add_explicit(&slot(m, worker)->connections, delta, memory_order_relaxed);
}

void metrics_watchers_add(Metrics *m, size_t worker, int delta) {
        if (m)
                atomic_fetch_add_explicit(&slot(m, worker)->watchers, delta, memory_order_relaxed);
}

void metrics_watch_evaluations(Metrics *m, size_t worker, uint64_t n) {
        if (m)
                atomic_fetch_add_explicit(&slot(m, worker)->watch_evaluations, n, memory_order_relaxed);
}

void metrics_store_error(Metrics *m, size_t worker) {
        if (m)
                atomic_fetch_add_explicit(&slot(m, worker)->store_errors, 1, memory_order_relaxed);
}

void metrics_connection_refused(Metrics *m, size_t worker) {
        if (m)
                atomic_fetch_add_explicit(&slot(m, worker)->connections_refused, 1, memory_order_relaxed);
}

void metrics_auth_failure(Metrics *m, size_t worker) {
        if (m)
                atomic_fetch_add_explicit(&slot(m, worker)->auth_failures, 1, memory_order_relaxed);
}

void metrics_tls_handshake(Metrics *m, size_t worker, bool resumed) {
        if (m)
                atomic_fetch_add_explicit(
                        &slot(m, worker)->tls_handshakes[resumed], 1, memory_order_relaxed);
}

void metrics_audit_failure(Metrics *m, size_t worker) {
        if (m)
                atomic_fetch_add_explicit(&slot(m, worker)->audit_failures, 1, memory_order_relaxed);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void header(Buf *b, const char *name, const char *type, const char *help) {
        (void) buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_requests(Metrics *m, Buf *b) {
        header(b, "keyward_requests_total", "counter",
               "Requests answered, by route, Knox code and HTTP status.");
        for (size_t r = 0; r < N_ROUTES; r++)
                for (size_t c = 0; c < N_CODES; c++)
                        for (size_t st = 0; st < N_STATUSES; st++) {
                                uint64_t n = 0;

                                for (size_t i = 0; i < m->n_slots; i++)
                                        n += LOAD(m->slots[i].requests[r][c][st]);
                                if (n == 0) /* keep the page short: only what happened */
                                        continue;
                                (void) buf_printf(
                                        b,
                                        "keyward_requests_total{route=\"%s\",code=\"%s\",status=\"%s\"} %" PRIu64
                                        "\n",
                                        route_names[r], code_labels[c], status_labels[st], n);
                        }
}

static void render_durations(Metrics *m, Buf *b) {
        header(b, "keyward_request_duration_seconds", "histogram",
               "Time from a request's arrival to its reply, by route.");
        for (size_t r = 0; r < N_ROUTES; r++) {
                uint64_t counts[N_BUCKETS] = {}, sum = 0, cumulative = 0;

                for (size_t i = 0; i < m->n_slots; i++) {
                        for (size_t k = 0; k < N_BUCKETS; k++)
                                counts[k] += LOAD(m->slots[i].buckets[r][k]);
                        sum += LOAD(m->slots[i].sum_usec[r]);
                }
                for (size_t k = 0; k < N_BUCKETS; k++)
                        cumulative += counts[k];
                if (cumulative == 0) /* a route never asked for */
                        continue;

                cumulative = 0;
                for (size_t k = 0; k < N_BUCKETS; k++) {
                        cumulative += counts[k];
                        (void) buf_printf(
                                b,
                                "keyward_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"} %" PRIu64
                                "\n",
                                route_names[r], k < ELEMENTSOF(bucket_le) ? bucket_le[k] : "+Inf",
                                cumulative);
                }
                /* The sum is kept in integer microseconds, so it prints exactly. */
                (void) buf_printf(
                        b, "keyward_request_duration_seconds_sum{route=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n",
                        route_names[r], sum / 1000000, sum % 1000000);
                (void) buf_printf(
                        b, "keyward_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n",
                        route_names[r], cumulative);
        }
}

int metrics_render(Metrics *m, Buf *out) {
        int64_t connections = 0, watchers = 0;
        uint64_t store_errors = 0, auth_failures = 0, connections_refused = 0;
        uint64_t audit_failures = 0, watch_evaluations = 0;
        uint64_t tls_handshakes[2] = {};

        assert_return(m, -EINVAL);
        assert_return(out, -EINVAL);

        for (size_t i = 0; i < m->n_slots; i++) {
                connections += LOAD(m->slots[i].connections);
                watchers += LOAD(m->slots[i].watchers);
                store_errors += LOAD(m->slots[i].store_errors);
                auth_failures += LOAD(m->slots[i].auth_failures);
                connections_refused += LOAD(m->slots[i].connections_refused);
                audit_failures += LOAD(m->slots[i].audit_failures);
                watch_evaluations += LOAD(m->slots[i].watch_evaluations);
                tls_handshakes[0] += LOAD(m->slots[i].tls_handshakes[0]);
                tls_handshakes[1] += LOAD(m->slots[i].tls_handshakes[1]);
        }

        render_requests(m, out);
        render_durations(m, out);
        header(out, "keyward_open_connections", "gauge", "Client connections open now.");
        (void) buf_printf(out, "keyward_open_connections %" PRIi64 "\n", connections);
        header(out, "keyward_watchers", "gauge", "Watch requests (Prefer: wait) waiting now.");
        (void) buf_printf(out, "keyward_watchers %" PRIi64 "\n", watchers);
        header(out, "keyward_store_errors_total", "counter", "Requests that failed in the key store.");
        (void) buf_printf(out, "keyward_store_errors_total %" PRIu64 "\n", store_errors);
        header(out, "keyward_auth_failures_total", "counter", "Requests whose authentication failed.");
        (void) buf_printf(out, "keyward_auth_failures_total %" PRIu64 "\n", auth_failures);
        header(out, "keyward_connections_refused_total", "counter",
               "Connections closed unserved: their address had its limit of open connections.");
        (void) buf_printf(out, "keyward_connections_refused_total %" PRIu64 "\n", connections_refused);
        header(out, "keyward_audit_failures_total", "counter",
               "Audit writes that failed: a request refused (or answered, with --audit-fail-open) without its line, or a batch of lines lost.");
        (void) buf_printf(out, "keyward_audit_failures_total %" PRIu64 "\n", audit_failures);
        header(out, "keyward_watch_evaluations_total", "counter",
               "Held watches looked at again after a change (or at their end): a write touches only the watches on its key.");
        (void) buf_printf(out, "keyward_watch_evaluations_total %" PRIu64 "\n", watch_evaluations);
        header(out, "keyward_tls_handshakes_total", "counter",
               "TLS connections that sent a request, by whether their handshake resumed a session (a ticket or the cache) or was a full one.");
        (void) buf_printf(
                out, "keyward_tls_handshakes_total{resumed=\"false\"} %" PRIu64 "\n", tls_handshakes[0]);
        (void) buf_printf(
                out, "keyward_tls_handshakes_total{resumed=\"true\"} %" PRIu64 "\n", tls_handshakes[1]);

        return out->error;
}
