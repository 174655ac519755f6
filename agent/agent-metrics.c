/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "strv.h"

/* Written at most this often; figures gathered at least this often. */
#define METRICS_MIN_INTERVAL_USEC (1 * USEC_PER_SEC)
#define METRICS_REFRESH_USEC (15 * USEC_PER_SEC)

struct AgentMetrics {
        sd_event_source *write_timer;   /* a write is due */
        sd_event_source *refresh_timer; /* periodic gathering */
        uint64_t last_write_usec;       /* CLOCK_MONOTONIC */
        char *written;                  /* what the file holds */
        int last_error;                 /* of the last write, logged when it changes */
};

static int put_family(Buf *b, const char *name, const char *type, const char *help) {
        return buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int put_value(Buf *b, const char *name, uint64_t v) {
        return buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

int metrics_label_escape(Buf *out, const char *s) {
        int r = 0;

        for (const char *p = s; *p && r >= 0; p++)
                r = *p == '\\'     ? buf_puts(out, "\\\\") :
                        *p == '"'  ? buf_puts(out, "\\\"") :
                        *p == '\n' ? buf_puts(out, "\\n") :
                                     buf_putc(out, *p);
        return r;
}

static int put_labelled(Buf *b, const char *name, const char *label, const char *value, const char *v) {
        int r = buf_printf(b, "%s{%s=\"", name, label);

        if (r >= 0)
                r = metrics_label_escape(b, value);
        if (r >= 0)
                r = buf_printf(b, "\"} %s\n", v);
        return r;
}

static int put_labelled_u64(Buf *b, const char *name, const char *label, const char *value, uint64_t v) {
        char s[32];

        snprintf(s, sizeof(s), "%" PRIu64, v);
        return put_labelled(b, name, label, value, s);
}

/* A CLOCK_REALTIME time in microseconds as seconds, exactly; 0 for never. */
static void format_seconds(char *s, size_t n, uint64_t usec) {
        if (usec == 0)
                snprintf(s, n, "0");
        else
                snprintf(s, n, "%" PRIu64 ".%06" PRIu64, usec / USEC_PER_SEC, usec % USEC_PER_SEC);
}

int agent_metrics_render(Agent *a, Buf *b) {
        size_t n_state[_KEY_STATE_MAX] = {}, cached = 0, stale = 0, held = 0, unavailable = 0, n_keys;
        AgentCounters cnt;
        ServerState *servers = NULL;
        size_t n_servers;
        uint64_t last_sync;
        bool connected;
        int r = 0;

        /* a.lock held by hand across the walk, the counters and the server states, so that
         * the file is one consistent picture (no accessor gives all three yet). */
        pthread_mutex_lock(&a->lock);
        n_keys = a->n_keys;
        for (size_t i = 0; i < a->n_keys; i++) {
                const AgentKey *k = a->keys[i];

                if (k->state >= 0 && k->state < _KEY_STATE_MAX)
                        n_state[k->state]++;
                if (k->cache.valid)
                        cached++;
                else
                        unavailable++;
                if (k->cache.valid && k->state != KEY_STATE_OK && k->state != KEY_STATE_NEW)
                        stale++;
                if (k->held)
                        held++;
        }
        cnt = a->counters;
        connected = a->connected;
        last_sync = a->last_sync_usec;
        n_servers = a->n_server_states;
        servers = n_servers > 0 ? calloc(n_servers, sizeof(ServerState)) : NULL;
        if (servers)
                for (size_t i = 0; i < n_servers; i++) {
                        servers[i] = a->server_states[i];
                        servers[i].url = strdup(a->server_states[i].url);
                        if (!servers[i].url)
                                r = -ENOMEM;
                }
        else if (n_servers > 0)
                r = -ENOMEM;
        pthread_mutex_unlock(&a->lock);

        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_info", "gauge", "The agent's version, as a label; always 1.");
        if (r >= 0)
                r = put_labelled(b, "keyward_agent_info", "version", PACKAGE_VERSION, "1");
        if (r >= 0)
                r = put_family(b, "keyward_agent_keys_registered", "gauge", "Keys registered on this host.");
        if (r >= 0)
                r = put_value(b, "keyward_agent_keys_registered", n_keys);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_keys_cached", "gauge",
                        "Registered keys with a copy to serve (from the cache file, or from memory).");
        if (r >= 0)
                r = put_value(b, "keyward_agent_keys_cached", cached);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_keys_unavailable", "gauge",
                        "Registered keys with no copy yet: callers and units get none.");
        if (r >= 0)
                r = put_value(b, "keyward_agent_keys_unavailable", unavailable);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_keys_stale", "gauge",
                        "Keys served from an older copy because their last fetch failed or was refused.");
        if (r >= 0)
                r = put_value(b, "keyward_agent_keys_stale", stale);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_keys_held_in_memory", "gauge",
                        "Keys served from memory because their cache file could not be written.");
        if (r >= 0)
                r = put_value(b, "keyward_agent_keys_held_in_memory", held);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_keys", "gauge",
                        "Registered keys by the outcome of their last fetch (new: not fetched yet).");
        for (KeyState s = 0; s < _KEY_STATE_MAX && r >= 0; s++)
                r = put_labelled_u64(b, "keyward_agent_keys", "state", key_state_to_string(s), n_state[s]);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_fetch_failures_total", "counter",
                        "Fetches of a key that failed or that the server refused.");
        if (r >= 0)
                r = put_value(b, "keyward_agent_fetch_failures_total", cnt.fetch_failures);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_sync_failures_total", "counter",
                        "Exchanges with the servers that failed (no server answered, or this machine was refused).");
        if (r >= 0)
                r = put_value(b, "keyward_agent_sync_failures_total", cnt.sync_failures);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_cache_write_failures_total", "counter",
                        "Cache files that could not be written.");
        if (r >= 0)
                r = put_value(b, "keyward_agent_cache_write_failures_total", cnt.cache_write_failures);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_connected", "gauge",
                        "1 when the last exchange with a server succeeded.");
        if (r >= 0)
                r = put_value(b, "keyward_agent_connected", connected);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_last_sync_timestamp_seconds", "gauge",
                        "When a server last answered (Unix time); 0: never since the agent started.");
        if (r >= 0) {
                char s[32];

                format_seconds(s, sizeof(s), last_sync);
                r = buf_printf(b, "keyward_agent_last_sync_timestamp_seconds %s\n", s);
        }
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_server_up", "gauge",
                        "1 when the server answered the last request sent to it; 0 when it did not, or none was sent yet.");
        for (size_t i = 0; i < n_servers && r >= 0; i++)
                r = put_labelled_u64(b, "keyward_agent_server_up", "server", servers[i].url, servers[i].up);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_server_last_success_timestamp_seconds", "gauge",
                        "When the server last answered a request successfully (Unix time); 0: never since the agent started.");
        for (size_t i = 0; i < n_servers && r >= 0; i++) {
                char s[32];

                format_seconds(s, sizeof(s), servers[i].last_ok_usec);
                r = put_labelled(
                        b, "keyward_agent_server_last_success_timestamp_seconds", "server", servers[i].url,
                        s);
        }
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_credential_requests_total", "counter",
                        "Requests on the credential socket (LoadCredential=), by outcome.");
        if (r >= 0)
                r = put_labelled_u64(
                        b, "keyward_agent_credential_requests_total", "result", "delivered",
                        cnt.credentials_delivered);
        if (r >= 0)
                r = put_labelled_u64(
                        b, "keyward_agent_credential_requests_total", "result", "refused",
                        cnt.credentials_refused);
        if (r >= 0)
                r = put_labelled_u64(
                        b, "keyward_agent_credential_requests_total", "result", "failed",
                        cnt.credentials_failed);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_credential_waits_total", "counter",
                        "Credential requests that waited for the first copy of their key (--credential-wait).");
        if (r >= 0)
                r = put_value(b, "keyward_agent_credential_waits_total", cnt.credentials_waited);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_credential_waiting", "gauge",
                        "Credential requests waiting for their key now.");
        if (r >= 0)
                r = put_value(b, "keyward_agent_credential_waiting", a->n_credential_waits);
        if (r >= 0)
                r = put_family(
                        b, "keyward_agent_bus_denials_total", "counter",
                        "D-Bus calls refused: read, GetKey or GetKeyVersions by a caller that is not a reader; manage, Register, Unregister or Sync that polkit did not allow.");
        if (r >= 0)
                r = put_labelled_u64(
                        b, "keyward_agent_bus_denials_total", "kind", "read", cnt.bus_denied_read);
        if (r >= 0)
                r = put_labelled_u64(
                        b, "keyward_agent_bus_denials_total", "kind", "manage", cnt.bus_denied_manage);

        for (size_t i = 0; i < n_servers && servers; i++)
                free(servers[i].url);
        free(servers);
        return r;
}

static void metrics_flush(Agent *a) {
        AgentMetrics *m = a->metrics;
        _cleanup_buf_ Buf b = BUF_INIT;
        int r;

        r = agent_metrics_render(a, &b);
        if (r >= 0)
                r = buf_putc(&b, '\0');
        if (r < 0) {
                log_oom();
                return;
        }
        if (m->written && streq(m->written, b.data))
                return;
        m->last_write_usec = now_usec(CLOCK_MONOTONIC);
        /* 0644 beside the collector's other files; not synced: the figures are rewritten after
         * a crash anyway, and the main loop must not wait on the disk. The temporary name
         * does not end in .prom, so the collector skips it. */
        r = write_file_replace(a->config.metrics_file, b.data, b.len - 1, 0644, false);
        if (r < 0) {
                if (r != m->last_error)
                        log_warning_errno(
                                r, "Cannot write the metrics file '%s', will retry: %m",
                                a->config.metrics_file);
                m->last_error = r;
                /* Try again with the next change, or the next refresh. */
                free(m->written);
                m->written = NULL;
                return;
        }
        if (m->last_error != 0)
                log_info("The metrics file '%s' is written again.", a->config.metrics_file);
        m->last_error = 0;
        free(m->written);
        m->written = buf_steal(&b, NULL);
}

static int on_write_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        metrics_flush(userdata);
        return 0;
}

static int on_refresh_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Agent *a = userdata;

        (void) sd_event_source_set_time_relative(s, METRICS_REFRESH_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        agent_metrics_changed(a);
        return 0;
}

void agent_metrics_changed(Agent *a) {
        AgentMetrics *m = a ? a->metrics : NULL;
        int enabled = SD_EVENT_OFF;

        if (!m || !m->write_timer)
                return;
        (void) sd_event_source_get_enabled(m->write_timer, &enabled);
        if (enabled != SD_EVENT_OFF)
                return; /* due already */
        (void) sd_event_source_set_time(
                m->write_timer,
                MAX(now_usec(CLOCK_MONOTONIC), m->last_write_usec + METRICS_MIN_INTERVAL_USEC));
        (void) sd_event_source_set_enabled(m->write_timer, SD_EVENT_ONESHOT);
}

int agent_metrics_open(Agent *a) {
        AgentMetrics *m;
        int r;

        if (!a->config.metrics_file)
                return 0;
        m = calloc(1, sizeof(AgentMetrics));
        if (!m)
                return log_oom();
        a->metrics = m;
        r = sd_event_add_time(a->event, &m->write_timer, CLOCK_MONOTONIC, 0, 0, on_write_timer, a);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->write_timer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time_relative(
                        a->event, &m->refresh_timer, CLOCK_MONOTONIC, METRICS_REFRESH_USEC, 0,
                        on_refresh_timer, a);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the metrics timers: %m");
        metrics_flush(a);
        log_debug("Writing metrics to '%s'.", a->config.metrics_file);
        return 0;
}

void agent_metrics_close(Agent *a) {
        AgentMetrics *m = a->metrics;

        if (!m)
                return;
        sd_event_source_disable_unref(m->write_timer);
        sd_event_source_disable_unref(m->refresh_timer);
        if (m->written && a->config.metrics_file && unlink(a->config.metrics_file) < 0 && errno != ENOENT)
                log_warning_errno(
                        errno, "Failed to remove the metrics file '%s', ignoring: %m",
                        a->config.metrics_file);
        free(m->written);
        free(m);
        a->metrics = NULL;
}

/* The URL as the client names it: https:// when no scheme is given, no trailing slash. */
static char *server_url(const char *s) {
        size_t n = strlen(s);
        char *u;

        while (n > 0 && s[n - 1] == '/')
                n--;
        if (strstr(s, "://"))
                return strndup(s, n);
        if (asprintf(&u, "https://%.*s", (int) n, s) < 0)
                return NULL;
        return u;
}

int agent_server_states_update(Agent *a) {
        size_t n = strv_length(a->config.servers);
        ServerState *states;

        states = calloc(MAX(n, (size_t) 1), sizeof(ServerState));
        if (!states)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                states[i].url = server_url(a->config.servers[i]);
                if (!states[i].url) {
                        for (size_t j = 0; j < i; j++)
                                free(states[j].url);
                        free(states);
                        return -ENOMEM;
                }
        }

        /* a.lock held by hand: merged with what the sync threads recorded in one step. */
        pthread_mutex_lock(&a->lock);
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < a->n_server_states; j++)
                        if (streq(states[i].url, a->server_states[j].url)) {
                                states[i].up = a->server_states[j].up;
                                states[i].last_ok_usec = a->server_states[j].last_ok_usec;
                        }
        for (size_t j = 0; j < a->n_server_states; j++)
                free(a->server_states[j].url);
        free(a->server_states);
        a->server_states = states;
        a->n_server_states = n;
        pthread_mutex_unlock(&a->lock);
        return 0;
}
