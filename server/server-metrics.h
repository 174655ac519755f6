/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Counters for /metrics in Prometheus's text format. Each worker thread updates its own
 * slot with relaxed atomics; rendering adds the slots up. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

typedef struct Metrics Metrics;

/* n_workers > 0 slots; a worker index at or past n_workers shares the last slot. */
int metrics_new(size_t n_workers, Metrics **ret);
Metrics *metrics_free(Metrics *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Metrics *, metrics_free);

/* One finished request: route is a route id string from the fixed set getkeys postkeys
 * getkey deletekey getaccess putaccess postversion putversion whoami deletetoken login 404
 * healthz metrics expiring; NULL or anything else counts as "unmatched". status is the HTTP status
 * (200 400 401 403 404 405 413 429 500 503 are kept apart, the rest count as "other"); code
 * the Knox sub-code (0..13, else "other"); usec the time from the request's arrival to the
 * reply. The update functions accept m == NULL and do nothing. */
void metrics_request(Metrics *m, size_t worker, const char *route, int status, int code, uint64_t usec);
void metrics_connections_add(Metrics *m, size_t worker, int delta);
void metrics_watchers_add(Metrics *m, size_t worker, int delta);
/* Held watches looked at again (keyward_watch_evaluations_total). */
void metrics_watch_evaluations(Metrics *m, size_t worker, uint64_t n);
void metrics_store_error(Metrics *m, size_t worker);
void metrics_auth_failure(Metrics *m, size_t worker);
void metrics_connection_refused(Metrics *m, size_t worker);
/* A TLS connection's first request: its handshake resumed a session or was a full one
 * (keyward_tls_handshakes_total{resumed}). */
void metrics_tls_handshake(Metrics *m, size_t worker, bool resumed);
/* An audit write failed (see keyward_audit_failures_total). */
void metrics_audit_failure(Metrics *m, size_t worker);

/* Append, in Prometheus's text format (version 0.0.4):
 * keyward_requests_total{route,code,status}, keyward_request_duration_seconds histogram
 * {route,le} per route, keyward_open_connections, keyward_watchers, keyward_store_errors_total,
 * keyward_auth_failures_total, keyward_connections_refused_total,
 * keyward_audit_failures_total, keyward_watch_evaluations_total,
 * keyward_tls_handshakes_total{resumed}, each with # HELP and # TYPE lines. Request
 * series that are still zero (and the histograms of routes never asked for) are left out; the gauges and the
 * plain counters are always there. */
int metrics_render(Metrics *m, Buf *out);

/* Append keyward_certificate_not_after_seconds{key,version}: one gauge per Primary or Active
 * version recorded as a certificate (store_list_certificates()), its notAfter in Unix
 * seconds, with # HELP and # TYPE lines. Reads the store; no key data. */
struct Store;
int metrics_certificates_render(struct Store *store, Buf *out);
