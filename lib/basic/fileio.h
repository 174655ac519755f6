/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "secret.h"

/* Read fd to its end into p, which has room for max + 1 bytes: -E2BIG when there are more
 * than max (one byte past max is read, so that a file that grew is caught). */
int read_fd_all(int fd, uint8_t *p, size_t max, size_t *ret_size);
/* Write all n bytes to fd, going on after EINTR and short writes: 0, or a negative errno
 * (-EIO when write() takes nothing). */
int write_fd_all(int fd, const void *buf, size_t n);

/* Read a whole regular file of at most max bytes (-E2BIG beyond), NUL-terminated. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size);

/* Read a file holding a secret straight into locked memory: no symlink is followed, it must
 * be a regular file that neither group nor others may read (-EPERM otherwise), and at most
 * max bytes long. */
int read_secret_file(const char *path, size_t max, Secret **ret);

/* Replace path atomically: a temporary file in the same directory, created with mode,
 * written in full, fsync()ed, renamed over path, then the directory fsync()ed. On failure
 * the old file is untouched and no temporary is left behind. */
int write_file_atomic(const char *path, const void *p, size_t n, mode_t mode);
/* The same; with durable false, without the fsync()s: readers see the old content or the new,
 * never part of it, but a crash may leave the old (for figures rewritten anyway). */
int write_file_replace(const char *path, const void *p, size_t n, mode_t mode, bool durable);
