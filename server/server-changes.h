/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A worker's ear on the store's change notifications (store_listener_*): it keeps the
 * listening connection in the worker's event loop, passes each change on, and when the
 * connection drops, connects again with a growing, jittered delay (CHANGE_FEED_RETRY_*).
 * While it is down the worker's poll of the change counter is all there is. */

#include <event2/event.h>
#include <stdbool.h>

#include "macro.h"
#include "parse.h"
#include "store.h"

#define CHANGE_FEED_RETRY_MIN_USEC (100 * USEC_PER_MSEC)
#define CHANGE_FEED_RETRY_MAX_USEC (5 * USEC_PER_SEC)

typedef struct ChangeFeed ChangeFeed;

/* f gets every change (see StoreChangeFunc), and (NULL, 0) each time the feed is up again:
 * changes made while it was down were not heard of, so the caller looks at the counter.
 * Returns -EOPNOTSUPP for a store without notifications. */
int change_feed_new(
        struct event_base *base, const char *url, StoreChangeFunc f, void *userdata, ChangeFeed **ret);
ChangeFeed *change_feed_free(ChangeFeed *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(ChangeFeed *, change_feed_free);

/* Whether the listening connection is up. */
bool change_feed_up(const ChangeFeed *c);
