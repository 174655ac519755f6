/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's listening sockets (credentials, PAM): accepting without letting a socket that
 * cannot be drained spin the main loop. */
#include "agent-listen.h"

#include <errno.h>
#include <sys/socket.h>

#include "log.h"
#include "macro.h"

int agent_listen_watch(Agent *a, int fd, sd_event_io_handler_t cb, void *userdata, sd_event_source **ret) {
        _cleanup_(sd_event_source_unrefp) sd_event_source *s = NULL;
        int r;

        r = sd_event_add_io(a->event, &s, fd, EPOLLIN, cb, userdata);
        if (r < 0)
                return r;
        r = sd_event_source_set_ratelimit(s, AGENT_LISTEN_RATELIMIT_USEC, AGENT_LISTEN_RATELIMIT_BURST);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int agent_accept(int fd, const char *what) {
        static LogRateLimit rl = LOG_RATELIMIT_INIT(60 * USEC_PER_SEC, 3);
        unsigned n;
        int c;

        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c >= 0)
                return c;
        c = -errno;
        if (c == -EAGAIN || c == -EINTR || c == -ECONNABORTED)
                return c;
        if (log_ratelimit_below(&rl, now_usec(CLOCK_MONOTONIC))) {
                n = log_ratelimit_take(&rl);
                log_warning_errno(
                        c,
                        "Cannot accept a connection on the %s socket: %m. It waits in the queue, "
                        "and the socket is polled at most %u times a second meanwhile%s.",
                        what, AGENT_LISTEN_RATELIMIT_BURST, n > 0 ? " (earlier failures suppressed)" : "");
        }
        return c;
}
