/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* --metrics-file: the agent's figures in Prometheus' text exposition format, for
 * node_exporter's textfile collector. Aggregates only: no key id, no key data (keyward-agent.8
 * says why). The file is replaced atomically (a temporary file beside it, mode 0644, renamed
 * over it), when a figure changed: gathered at once when the state changes, at least every
 * 15 seconds for counts and times, and written at most once a second. It is removed when the
 * agent stops, so that a stopped agent does not look healthy. */

#include "agent.h"
#include "buf.h"

/* Set up the file's timers (nothing without --metrics-file) and write it once. Main thread. */
int agent_metrics_open(Agent *a);
/* A figure may have changed: gather them again soon. Main thread; no-op when closed. */
void agent_metrics_changed(Agent *a);
/* Stop, and remove the file. */
void agent_metrics_close(Agent *a);

/* Make a.server_states follow the configured servers (as the client names them), keeping
 * what is known of those that stay. Main thread, after the config was (re)loaded. */
int agent_server_states_update(Agent *a);

/* The figures, as the file holds them. Takes a.lock. */
int agent_metrics_render(Agent *a, Buf *out);
/* Append s as a label value, escaped as the exposition format wants (\\, \", \n). */
int metrics_label_escape(Buf *out, const char *s);
