/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

#include "agent.h"

/* A listening socket's source fires at most this often. When accept() keeps failing (no file
 * descriptors left, no memory) the connection stays queued and the socket stays readable, and
 * a source that fired on every loop pass would take the main loop, D-Bus with it; sd-event
 * pauses it for the rest of the interval instead. */
#define AGENT_LISTEN_RATELIMIT_USEC USEC_PER_SEC
#define AGENT_LISTEN_RATELIMIT_BURST 256U

/* Watches the listening socket fd (not taken) for connections, under that rate limit. */
int agent_listen_watch(Agent *a, int fd, sd_event_io_handler_t cb, void *userdata, sd_event_source **ret);

/* The next connection on fd, non-blocking and close-on-exec, or a negative errno. A failure
 * other than "nothing queued" or "the peer left" is logged, at a bounded rate, naming what
 * (the socket's purpose). */
int agent_accept(int fd, const char *what);
