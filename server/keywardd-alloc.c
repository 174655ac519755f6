/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keywardd's allocator settings, built in when configure links it with jemalloc
 * (--with-jemalloc). OpenSSL 3.0 makes thousands of small allocations per handshake, and with
 * glibc's malloc a quarter of a new connection's CPU time went to malloc, free and their locks;
 * jemalloc's thread caches serve more connections per core-second (bench/README.md, "The
 * allocator"). jemalloc reads this string at its first allocation, before main(); MALLOC_CONF
 * in the environment still overrides the options it names.
 *
 * dirty_decay_ms:1000   freed pages go back to the system about a second after they are
 *                       freed, not jemalloc's default ten, so that the memory of a burst of
 *                       connections (a fleet's watches, thousands of handshakes) does not
 *                       linger; side by side with the default, no cost to the throughput.
 * muzzy_decay_ms:0      purged pages are returned at once (MADV_DONTNEED), never kept as
 *                       lazily freed pages that still count in RSS until the kernel wants them.
 * background_thread:false  the purging is done by the threads that allocate, as they go:
 *                       one thread fewer. Pages freed just before keywardd falls idle wait
 *                       for its next requests to go back.
 * narenas is left to jemalloc (four per CPU, created as threads need them): each worker thread,
 * one per CPU by default, gets an arena of its own, so workers never share a lock. */

#include <stddef.h>

#include "macro.h"

/* Exported (the tree builds with -fvisibility=hidden) so that libjemalloc finds it. */
_public_ const char *malloc_conf = "dirty_decay_ms:1000,muzzy_decay_ms:0,background_thread:false";
