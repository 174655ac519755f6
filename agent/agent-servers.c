/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-servers.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

/* The same failure is logged again after this long (or once another was logged). */
#define FAILURE_RELOG_USEC (60 * 60 * USEC_PER_SEC)

/* What kind of failure a transport errno from the client is. */
static const char *cause_to_string(int cause) {
        switch (cause) {
        case -EHOSTUNREACH:
                return "name not resolved";
        case -ECONNREFUSED:
                return "connection refused";
        case -ETIMEDOUT:
                return "timed out";
        case -EKEYREJECTED:
                return "TLS verification failed";
        case -ECONNABORTED:
                return "TLS handshake failed";
        case -EINVAL:
                return "TLS setup failed (certificate, key or CA file)";
        case -ECONNRESET:
                return "connection lost";
        case -EPROTONOSUPPORT:
                return "unsupported URL scheme";
        default:
                return "request failed";
        }
}

/* Why a request to the servers failed, as one line: the kind, then the details. */
static char *failure_reason(int r, const KnoxError *err) {
        char *s = NULL;
        int k;

        if (r >= 0 && err->code != KNOX_OK)
                k = asprintf(
                        &s, "HTTP status %d, Knox code %d: %s", err->http_status, (int) err->code,
                        strna(err->message));
        else if (err->cause != 0)
                k = asprintf(&s, "%s: %s", cause_to_string(err->cause), strna(err->message));
        else
                k = asprintf(&s, "%s", err->message ?: strerror(-r));
        return k < 0 ? NULL : s;
}

/* A failure with its digits blotted out, so that "after 5001 ms" and "after 5002 ms" are
 * the same failure. */
static char *failure_key(const char *why) {
        char *k = strdup(why), *o = k;

        if (!k)
                return NULL;
        for (const char *p = why; *p; p++) {
                if (*p >= '0' && *p <= '9') {
                        if (o == k || o[-1] != '#')
                                *o++ = '#';
                } else
                        *o++ = *p;
        }
        *o = '\0';
        return k;
}

/* The server this thread's client last got an answer from, as an index into
 * a.server_states (which follows the configured order, as the client does), while the
 * config is that of config_gen. */
static _Thread_local size_t last_answered = SIZE_MAX;
static _Thread_local uint64_t last_answered_gen;

static ssize_t server_state_find(Agent *a, const char *url) {
        for (size_t i = 0; url && i < a->n_server_states; i++)
                if (streq(a->server_states[i].url, url))
                        return (ssize_t) i;
        return -1;
}

/* What a request told of the servers (a.lock held): ok, the client's current server answered
 * it; else reached, whether that server answered at all (an error envelope), and if not,
 * all_down: no server did (the client tried each in turn). */
static void note_servers(Agent *a, KnoxClient *c, bool ok, bool reached, bool all_down) {
        ssize_t i = server_state_find(a, knox_client_current_server(c));
        size_t n = a->n_server_states;
        bool changed = false;

        /* The main loop hears of a server coming or going at once; of times, later. */
        if (all_down) {
                for (size_t j = 0; j < n; j++) {
                        changed = changed || a->server_states[j].up;
                        a->server_states[j].up = false;
                }
                last_answered = SIZE_MAX;
                if (changed)
                        agent_wake(a);
                return;
        }
        if (i < 0)
                return; /* a client of the config before a reload */
        /* The client tries the server that answered last first, then the next ones in order:
         * those between that one and this one did not answer. */
        if (last_answered_gen == a->config_gen && last_answered < n)
                for (size_t j = last_answered; j != (size_t) i; j = (j + 1) % n) {
                        changed = changed || a->server_states[j].up;
                        a->server_states[j].up = false;
                }
        changed = changed || a->server_states[i].up != (ok || reached);
        a->server_states[i].up = ok || reached;
        if (ok)
                a->server_states[i].last_ok_usec = now_usec(CLOCK_REALTIME);
        if (ok || reached) {
                last_answered = (size_t) i;
                last_answered_gen = a->config_gen;
        }
        if (changed)
                agent_wake(a);
}

void sync_set_connected(Agent *a, bool connected, KnoxClient *c, const char *why) {
        if (connected && c)
                note_servers(a, c, true, true, false);
        if (connected) {
                a->last_sync_usec = now_usec(CLOCK_REALTIME);
                /* LastSync is announced at most once a second. */
                if (a->last_sync_usec >= a->last_sync_posted_usec + USEC_PER_SEC) {
                        a->last_sync_posted_usec = a->last_sync_usec;
                        a->status_dirty = true;
                }
        }
        if (c && !streq(strempty(a->current_server), strempty(knox_client_current_server(c)))) {
                char *s = strdup(strempty(knox_client_current_server(c)));
                if (s) {
                        free(a->current_server);
                        a->current_server = s;
                        a->status_dirty = true;
                }
        }
        if (connected && a->last_error) {
                free(a->last_error);
                a->last_error = NULL;
                a->status_dirty = true;
        }
        if (!connected) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                _cleanup_free_ char *key = failure_key(strna(why));
                bool news = a->connected || !key || !a->last_error_logged ||
                        !streq(key, a->last_error_logged) ||
                        now >= a->last_error_logged_usec + FAILURE_RELOG_USEC;

                /* Each kind of failure is logged once (a server down for a day is a line an
                 * hour, not one a retry), and again when it changes. */
                if (news) {
                        log_warning(
                                "Cannot sync with the keyward servers: %s; serving the cache.", strna(why));
                        free(a->last_error_logged);
                        a->last_error_logged = TAKE_PTR(key);
                        a->last_error_logged_usec = now;
                } else
                        log_debug("Still cannot sync with the keyward servers: %s", strna(why));
                if (!streq(strempty(a->last_error), strna(why))) {
                        char *e = strdup(strna(why));
                        if (e) {
                                free(a->last_error);
                                a->last_error = e;
                                a->status_dirty = true;
                        }
                }
        }
        if (a->connected != connected) {
                a->connected = connected;
                a->status_dirty = true;
                if (connected) {
                        log_info("Connected to %s.", strna(a->current_server));
                        /* The next outage is news, whatever it is. */
                        free(a->last_error_logged);
                        a->last_error_logged = NULL;
                }
        }
        if (a->status_dirty) {
                a->last_sync_posted_usec = a->last_sync_usec;
                agent_wake(a);
        }
}

void sync_server_failed(Agent *a, KnoxClient *c, int r, const KnoxError *err) {
        _cleanup_free_ char *why = NULL;

        if (r == -ECANCELED || a->stop)
                return; /* stopping: no failure */
        why = failure_reason(r, err);
        a->counters.sync_failures++;
        /* An envelope is an answer from the current server, if not a welcome one. */
        note_servers(a, c, false, r >= 0, r < 0 && err->cause != 0);

        sync_set_connected(a, false, c, why ?: "out of memory");
}
