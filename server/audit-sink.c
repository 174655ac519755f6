/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The audit log's sinks: whole lines to a regular file (room made first, a short write cut
 * back), to a pipe or terminal (at most PIPE_BUF per write), or to the journal (audit-journal.c);
 * and the file's syncs, one at a time. */
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit-internal.h"
#include "fileio.h"
#include "log.h"

bool audit_fd_is_regular(int fd) {
        struct stat st;

        return fstat(fd, &st) >= 0 && S_ISREG(st.st_mode);
}

int audit_open_target(const char *path, int *ret, bool *ret_regular) {
        int fd;

        fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return negative_errno();
        *ret = fd;
        *ret_regular = audit_fd_is_regular(fd);
        return 0;
}

/* A pipe, socket or terminal keeps only writes of up to PIPE_BUF whole, so there lines go
 * as many whole ones as fit in PIPE_BUF per write (a longer line alone, as it always did). */
static int write_lines(int fd, const char *p, size_t n, size_t *ret_done) {
        *ret_done = 0;
        while (n > 0) {
                size_t k = 0;
                int r;

                while (k < n) {
                        const char *nl = memchr(p + k, '\n', n - k);
                        size_t end = nl ? (size_t) (nl - p) + 1 : n;

                        if (k > 0 && end > PIPE_BUF)
                                break;
                        k = end;
                }
                r = write_fd_all(fd, p, k);
                if (r < 0)
                        return r;
                p += k;
                n -= k;
                *ret_done += k;
        }
        return 0;
}

/* Make room for n more bytes at the end of the file before writing any of them, so that a
 * full disk refuses whole lines rather than taking half of one. Room is made in chunks, so
 * most lines need no system call for it. Called with file_lock held. */
static int file_reserve(Audit *a, int fd, size_t n) {
        off_t chunk = (off_t) MAX(n, (size_t) AUDIT_RESERVE_CHUNK);

        if (a->no_fallocate)
                return 0;
        if (a->reserved_end == 0) {
                /* A new file, or after a failure: where its end is now. */
                struct stat st;

                if (fstat(fd, &st) < 0)
                        return negative_errno();
                a->end = st.st_size;
        }
        if (a->end + (off_t) n <= a->reserved_end)
                return 0;
        if (fallocate(fd, FALLOC_FL_KEEP_SIZE, a->end, chunk) >= 0) {
                a->reserved_end = a->end + chunk;
                return 0;
        }
        if (errno == EOPNOTSUPP || errno == ENOSYS || errno == ENODEV) {
                a->no_fallocate = true; /* cutting back still keeps the file whole */
                return 0;
        }
        /* Not a whole chunk left: the line alone may still fit. */
        if (fallocate(fd, FALLOC_FL_KEEP_SIZE, a->end, (off_t) n) >= 0) {
                a->reserved_end = a->end + (off_t) n;
                return 0;
        }
        return negative_errno();
}

/* After a write() that took only part of p[0..done): cut the file back to the end of the last
 * whole line it took. Returns how many bytes of p stay in the file. */
static size_t file_cut_back(Audit *a, int fd, const char *p, size_t done) {
        const char *nl = done > 0 ? memrchr(p, '\n', done) : NULL;
        size_t keep = nl ? (size_t) (nl - p) + 1 : 0;
        off_t cut = (off_t) (done - keep);
        struct stat st;

        /* Whatever happened, the hints are stale: ask the file again next time. */
        a->reserved_end = 0;
        if (fstat(fd, &st) < 0) {
                log_error_errno(negative_errno(), "Failed to cut a torn audit line from the file: %m");
                return keep;
        }
        a->end = st.st_size;
        if (cut == 0)
                return keep;
        if (st.st_size < cut || ftruncate(fd, st.st_size - cut) < 0) {
                log_error_errno(
                        st.st_size < cut ? -ESTALE : negative_errno(),
                        "Failed to cut a torn audit line from the file: %m");
                return keep;
        }
        a->end = st.st_size - cut;
        return keep;
}

/* Whole lines p[0..n) to the end of a regular file: each line reaches the file whole or not at
 * all. Room is made first (file_reserve()); should a write() still stop short, the file is cut
 * back to the end of the last whole line it took and the rest fails. Called with file_lock
 * held (one writer at a time, so that the cut never takes another thread's line). */
static int file_write(Audit *a, int fd, const char *p, size_t n, size_t *ret_kept) {
        size_t done = 0;
        int r;

        r = file_reserve(a, fd, n);
        while (r >= 0 && done < n) {
                ssize_t k;

                k = write(fd, p + done, n - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                } else if (k == 0)
                        r = -EIO;
                else
                        done += (size_t) k;
        }
        if (r < 0) {
                *ret_kept = file_cut_back(a, fd, p, done);
                return r;
        }
        a->end += (off_t) n;
        *ret_kept = n;
        return 0;
}

/* Sealed lines to the sink; *ret_kept: how many bytes of them went out, whole lines. Called
 * with a->lock held shared and file_lock held. */
int audit_sink_put(Audit *a, const Buf *fields, const char *p, size_t n, size_t *ret_kept) {
        if (a->target == AUDIT_TARGET_JOURNAL) {
                const char *f = fields ? fields->data : NULL;

                return audit_journal_write(&f, fields ? fields->data + fields->len : NULL, p, n, ret_kept);
        }
        if (a->regular)
                return file_write(a, a->fd, p, n, ret_kept);
        return write_lines(a->fd, p, n, ret_kept);
}

static int fd_sync(Audit *a, int fd) {
        if (a->sync_hook)
                return a->sync_hook(fd, a->sync_hook_userdata);
        return fdatasync(fd) < 0 ? negative_errno() : 0;
}

/* Sync the file for write number gen (written_gen after it). One sync at a time: a sync covers
 * the writes that reached the fd before it began; a failed one fails every write that reached
 * the fd before it returned (its writeback may have held their lines), whichever thread asks,
 * and the kernel will not say so twice. Called with a->lock held (either way). */
int audit_file_sync(Audit *a, uint64_t gen) {
        uint64_t start;
        int r;

        (void) pthread_mutex_lock(&a->sync_lock);
        if (gen > a->lost_from && gen <= a->lost_to)
                r = a->lost_error;
        else if (gen <= a->synced_gen)
                r = 0; /* another thread's sync covered it: group commit */
        else {
                start = atomic_load(&a->written_gen);
                r = fd_sync(a, a->fd);
                if (r < 0) {
                        /* A new run of failures starts where the disk was last known good. */
                        if (a->lost_to == 0 || a->synced_gen > a->lost_to)
                                a->lost_from = a->synced_gen;
                        a->lost_to = atomic_load(&a->written_gen);
                        a->lost_error = r;
                } else
                        a->synced_gen = start;
        }
        (void) pthread_mutex_unlock(&a->sync_lock);
        return r;
}
