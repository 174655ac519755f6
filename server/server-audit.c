/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The audit log: per-thread buffers of lines, sealed into the chain as they go out, checkpoints
 * and their anchor, failure tracking, and the public API (server-audit.h). The line itself is
 * audit-format.c's, the sinks audit-sink.c's. */
#include "server-audit.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit-chain.h"
#include "audit-internal.h"
#include "audit-journal.h"
#include "log.h"
#include "time-util.h"

static atomic_uint_least64_t audit_serial_last;

/* The calling thread's buffer of the Audit it used last, valid while that Audit's serial is
 * thread_serial (an Audit frees its buffers only in audit_free()). */
static _Thread_local uint64_t thread_serial;
static _Thread_local AuditBuffer *thread_buffer;

static int strdup_or_null(const char *s, char **ret) {
        char *c = NULL;

        if (s) {
                c = strdup(s);
                if (!c)
                        return -ENOMEM;
        }
        *ret = c;
        return 0;
}

int audit_open(
        const char *target, const char *service, const char *version, const char *hostname, Audit **ret) {
        _cleanup_(audit_freep) Audit *a = NULL;
        pthread_rwlockattr_t attr;
        int r;

        assert_return(!isempty(target), -EINVAL);
        assert_return(ret, -EINVAL);

        a = calloc(1, sizeof(Audit));
        if (!a)
                return -ENOMEM;
        a->fd = -EBADF;
        a->sync_lock = (pthread_mutex_t) PTHREAD_MUTEX_INITIALIZER;
        audit_chain_init(&a->chain);
        a->serial = atomic_fetch_add(&audit_serial_last, 1) + 1;
        r = pthread_mutex_init(&a->buffers_lock, NULL);
        if (r != 0) {
                free(TAKE_PTR(a));
                return -r;
        }
        r = pthread_mutex_init(&a->file_lock, NULL);
        if (r != 0) {
                (void) pthread_mutex_destroy(&a->buffers_lock);
                free(TAKE_PTR(a));
                return -r;
        }

        /* Prefer the writer, so that a reopen is not starved by a steady stream of lines. */
        if (pthread_rwlockattr_init(&attr) != 0) {
                (void) pthread_mutex_destroy(&a->buffers_lock);
                (void) pthread_mutex_destroy(&a->file_lock);
                free(TAKE_PTR(a));
                return -ENOMEM;
        }
        (void) pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        r = pthread_rwlock_init(&a->lock, &attr);
        (void) pthread_rwlockattr_destroy(&attr);
        if (r != 0) {
                (void) pthread_mutex_destroy(&a->buffers_lock);
                (void) pthread_mutex_destroy(&a->file_lock);
                free(TAKE_PTR(a));
                return -r;
        }

        if (streq(target, "-")) {
                a->target = AUDIT_TARGET_STDERR;
                a->fd = STDERR_FILENO;
                a->regular = audit_fd_is_regular(a->fd);
        } else if (streq(target, "journal")) {
                /* sd_journal_send() drops messages silently when journald is not there; an
                 * audit log must not, so refuse to start instead. */
                if (access(AUDIT_JOURNAL_SOCKET, F_OK) < 0)
                        return negative_errno();
                a->target = AUDIT_TARGET_JOURNAL;
        } else {
                a->target = AUDIT_TARGET_FILE;
                a->path = strdup(target);
                if (!a->path)
                        return -ENOMEM;
                r = audit_open_target(a->path, &a->fd, &a->regular);
                if (r < 0)
                        return r;
                /* The chain goes on from the file's last line. */
                r = audit_chain_resume(&a->chain, a->fd);
                if (r < 0)
                        return r;
        }

        if (strdup_or_null(service, &a->service) < 0 || strdup_or_null(version, &a->version) < 0 ||
            strdup_or_null(hostname, &a->host) < 0)
                return -ENOMEM;

        *ret = TAKE_PTR(a);
        return 0;
}

/* Under file_lock, after lines went out: the checkpoint among them not yet anchored, if any. */
static uint64_t anchor_claim(Audit *a, uint8_t ret_hash[static AUDIT_HASH_SIZE]) {
        if (!a->anchor || a->chain.checkpoint_seq <= a->anchored_seq)
                return 0;
        a->anchored_seq = a->chain.checkpoint_seq;
        memcpy(ret_hash, a->chain.checkpoint_head, AUDIT_HASH_SIZE);
        return a->anchored_seq;
}

/* Hand a checkpoint that is on the sink to the anchor: a file is synced first, so that the
 * anchor is never ahead of what a crash leaves in the file. */
static void anchor_put(Audit *a, uint64_t gen, uint64_t seq, const uint8_t hash[static AUDIT_HASH_SIZE]) {
        int r = 0;

        if (seq == 0)
                return;
        if (a->regular)
                r = audit_file_sync(a, gen);
        if (r >= 0)
                r = a->anchor(seq, hash, a->anchor_userdata);
        if (r < 0)
                log_warning_errno(
                        r, "Failed to record the audit chain's anchor at seq %" PRIu64 ", ignoring: %m",
                        seq);
}

/* Whole lines p[0..n) to the sink, sealed into the hash chain in the order they go out. With
 * durable, a file is synced before returning (outside file_lock: a sync covers every line
 * written before it). Called with a->lock held shared. */
static int sink_write(Audit *a, const Buf *fields, const char *p, size_t n, bool durable) {
        Buf *sealed = &a->sealed;
        AuditChain saved;
        uint64_t gen = 0, anchor_seq = 0;
        uint8_t anchor_hash[AUDIT_HASH_SIZE];
        size_t kept = 0;
        int r;

        (void) pthread_mutex_lock(&a->file_lock);
        /* One buffer for every writer (they take turns): no allocation per write. */
        if (sealed->error < 0 || sealed->cap > AUDIT_BUFFER_KEEP)
                buf_done(sealed);
        else
                buf_truncate(sealed, 0);
        saved = a->chain;
        r = audit_chain_seal(&a->chain, p, n, sealed);
        if (r >= 0)
                r = audit_sink_put(a, fields, sealed->data, sealed->len, &kept);
        if (r < 0)
                audit_chain_rewind(&a->chain, &saved, sealed->data, kept);
        if (kept > 0)
                gen = atomic_fetch_add(&a->written_gen, 1) + 1;
        if (r >= 0)
                anchor_seq = anchor_claim(a, anchor_hash);
        (void) pthread_mutex_unlock(&a->file_lock);

        if (r >= 0 && durable && a->regular)
                r = audit_file_sync(a, gen);
        if (r >= 0)
                anchor_put(a, gen, anchor_seq, anchor_hash);
        return r;
}

/* A checkpoint line to the sink now (final: the last line this file gets from us). Called
 * with a->lock held (either way). */
static int sink_checkpoint(Audit *a, bool final) {
        _cleanup_buf_ Buf b = BUF_INIT;
        AuditChain saved;
        uint64_t gen = 0, anchor_seq = 0;
        uint8_t anchor_hash[AUDIT_HASH_SIZE];
        size_t kept = 0;
        int r;

        (void) pthread_mutex_lock(&a->file_lock);
        saved = a->chain;
        r = audit_chain_checkpoint(&a->chain, final, &b);
        if (r >= 0 && b.len > 0)
                r = audit_sink_put(a, NULL, b.data, b.len, &kept);
        if (r < 0)
                audit_chain_rewind(&a->chain, &saved, b.data, kept);
        if (kept > 0)
                gen = atomic_fetch_add(&a->written_gen, 1) + 1;
        if (r >= 0)
                anchor_seq = anchor_claim(a, anchor_hash);
        (void) pthread_mutex_unlock(&a->file_lock);

        if (r >= 0 && b.len > 0 && a->regular)
                r = audit_file_sync(a, gen);
        if (r >= 0)
                anchor_put(a, gen, anchor_seq, anchor_hash);
        return r;
}

/* Log where a run of failures begins and ends, once each (whichever thread meets it), so that
 * a full disk does not flood the log. */
static int note_result(Audit *a, int r) {
        if (r < 0) {
                atomic_store_explicit(&a->last_error, r, memory_order_relaxed);
                if (atomic_exchange_explicit(&a->failing, true, memory_order_relaxed))
                        return r;
                if (a->fail_open)
                        log_error_errno(
                                r,
                                "AUDIT LOG UNAVAILABLE, answering requests without their audit lines (--audit-fail-open): %m");
                else
                        log_error_errno(
                                r,
                                "Audit log unavailable, refusing requests until it takes lines again: %m");
                return r;
        }
        if (atomic_load_explicit(&a->failing, memory_order_relaxed) &&
            atomic_exchange_explicit(&a->failing, false, memory_order_relaxed))
                log_info("The audit log takes lines again.");
        return 0;
}

/* Empty the buffer for its next lines. Its memory stays for reuse, unless it grew large or
 * an append failed (a failed Buf takes no more appends until buf_done()). */
static void buffer_clear(AuditBuffer *b) {
        if (b->lines.error < 0 || b->lines.cap > AUDIT_BUFFER_KEEP)
                buf_done(&b->lines);
        else
                buf_truncate(&b->lines, 0);
        if (b->journal.error < 0 || b->journal.cap > AUDIT_BUFFER_KEEP)
                buf_done(&b->journal);
        else
                buf_truncate(&b->journal, 0);
}

/* Write out b's whole lines (and drop them, written or not). 0 when there were none. */
static int buffer_write(Audit *a, AuditBuffer *b, bool durable) {
        int r;

        if (b->lines.len == 0) {
                buffer_clear(b);
                return 0;
        }

        (void) pthread_rwlock_rdlock(&a->lock);
        r = sink_write(
                a, a->target == AUDIT_TARGET_JOURNAL ? &b->journal : NULL, b->lines.data, b->lines.len,
                durable);
        (void) pthread_rwlock_unlock(&a->lock);

        buffer_clear(b);
        return r;
}

/* The calling thread's buffer for a, made on first use. NULL on ENOMEM. */
static AuditBuffer *buffer_get(Audit *a) {
        pthread_t self = pthread_self();
        AuditBuffer *b;

        if (thread_serial == a->serial)
                return thread_buffer;

        (void) pthread_mutex_lock(&a->buffers_lock);
        for (b = a->buffers; b; b = b->next)
                if (pthread_equal(b->thread, self))
                        break;
        if (!b) {
                b = calloc(1, sizeof(AuditBuffer));
                if (b) {
                        b->thread = self;
                        b->next = a->buffers;
                        a->buffers = b;
                }
        }
        (void) pthread_mutex_unlock(&a->buffers_lock);

        if (b) {
                thread_serial = a->serial;
                thread_buffer = b;
        }
        return b;
}

Audit *audit_free(Audit *a) {
        AuditBuffer *b;
        int r = 0;

        if (!a)
                return NULL;

        /* Nobody writes any more: every thread's lines go out, also those of exited threads. */
        while ((b = a->buffers)) {
                int k;

                a->buffers = b->next;
                k = buffer_write(a, b, false);
                if (k < 0 && r == 0)
                        r = k;
                buf_done(&b->lines);
                buf_done(&b->journal);
                free(b);
        }
        /* The file's last line: the seal that says nothing was cut from its end. */
        if (r == 0 && (a->fd >= 0 || a->target == AUDIT_TARGET_JOURNAL))
                r = sink_checkpoint(a, true);
        (void) note_result(a, r);
        if (thread_serial == a->serial) {
                thread_serial = 0;
                thread_buffer = NULL;
        }

        if (a->target == AUDIT_TARGET_FILE)
                (void) safe_close(a->fd);
        audit_chain_done(&a->chain);
        buf_done(&a->sealed);
        (void) pthread_rwlock_destroy(&a->lock);
        (void) pthread_mutex_destroy(&a->buffers_lock);
        (void) pthread_mutex_destroy(&a->file_lock);
        (void) pthread_mutex_destroy(&a->sync_lock);
        free(a->path);
        free(a->service);
        free(a->version);
        free(a->host);
        free(a);
        return NULL;
}

int audit_flush(Audit *a) {
        AuditBuffer *b;

        assert_return(a, -EINVAL);

        /* A thread that never wrote gets an empty buffer, so that its next call is as quick. */
        b = buffer_get(a);
        if (!b)
                return 0; /* nothing was buffered: audit_write() wrote directly */
        if (b->lines.len == 0)
                return 0;
        /* While failing, the lines that end the failure must be on disk (see below). */
        return note_result(a, buffer_write(a, b, audit_is_failing(a)));
}

int audit_reopen(Audit *a) {
        bool regular;
        int fd, old, r;

        assert_return(a, -EINVAL);

        /* This thread's lines predate the reopen: they still go to the old file. */
        (void) audit_flush(a);

        if (a->target != AUDIT_TARGET_FILE)
                return 0;

        /* Open first: on failure the old file keeps getting the lines. */
        r = audit_open_target(a->path, &fd, &regular);
        if (r < 0)
                return r;

        (void) pthread_rwlock_wrlock(&a->lock);
        /* Nobody writes now: the old file's last line is its seal, and the new file's first
         * line names it (or, the same file reopened, follows it). */
        (void) note_result(a, sink_checkpoint(a, true));
        old = a->fd;
        a->fd = fd;
        a->regular = regular;
        a->reserved_end = 0; /* file_reserve() looks at the new file's end */
        r = audit_chain_resume(&a->chain, fd);
        if (r < 0)
                log_warning_errno(
                        r, "Failed to read the last line of the audit log '%s', ignoring: %m", a->path);
        (void) pthread_rwlock_unlock(&a->lock);

        (void) safe_close(old);
        return 0;
}

/* Without a buffer (out of memory): the line alone, right away. */
static int write_unbuffered(Audit *a, const AuditRecord *rec, bool durable) {
        _cleanup_buf_ Buf b = BUF_INIT, fields = BUF_INIT;
        bool journal = a->target == AUDIT_TARGET_JOURNAL;
        int r;

        r = audit_format(a, rec, &b);
        if (r >= 0)
                r = buf_putc(&b, '\n');
        if (r >= 0 && journal)
                r = audit_journal_fields(rec, &fields);
        if (r < 0)
                return r;

        (void) pthread_rwlock_rdlock(&a->lock);
        r = sink_write(a, journal ? &fields : NULL, b.data, b.len, durable);
        (void) pthread_rwlock_unlock(&a->lock);
        return r;
}

int audit_write(Audit *a, const AuditRecord *rec) {
        return audit_write_mode(a, rec, AUDIT_BATCHED);
}

int audit_write_mode(Audit *a, const AuditRecord *rec, AuditMode mode) {
        AuditBuffer *b;
        size_t start, start_fields;
        int r;

        assert_return(a, -EINVAL);
        assert_return(rec, -EINVAL);
        assert_return(mode >= 0 && mode < _AUDIT_MODE_MAX, -EINVAL);

        /* While the sink fails, a line that goes out ends the failure only once it is on disk:
         * after EIO, a write() into the page cache proves nothing (the sync would fail). */
        if (mode == AUDIT_NOW && audit_is_failing(a))
                mode = AUDIT_DURABLE;

        b = buffer_get(a);
        if (!b)
                return note_result(a, write_unbuffered(a, rec, mode == AUDIT_DURABLE));

        start = b->lines.len;
        start_fields = b->journal.len;
        r = audit_format(a, rec, &b->lines);
        if (r >= 0)
                r = buf_putc(&b->lines, '\n');
        if (r >= 0 && a->target == AUDIT_TARGET_JOURNAL)
                r = audit_journal_fields(rec, &b->journal);
        if (r < 0) {
                /* Drop the partial line. The lines before it are whole: out with them now,
                 * since the failed Buf must be started afresh. */
                buf_truncate(&b->lines, start);
                buf_truncate(&b->journal, start_fields);
                if (b->lines.error < 0 || b->journal.error < 0)
                        (void) buffer_write(a, b, false);
                return note_result(a, r);
        }

        if (mode == AUDIT_BATCHED && b->lines.len < AUDIT_BUFFER_SIZE)
                return 0;
        return note_result(a, buffer_write(a, b, mode == AUDIT_DURABLE || audit_is_failing(a)));
}

bool audit_is_failing(Audit *a) {
        return a && atomic_load_explicit(&a->failing, memory_order_relaxed);
}

int audit_probe(Audit *a) {
        assert_return(a, -EINVAL);

        /* Room in the file (fallocate()) says nothing of EIO, a size limit or a sync that
         * fails: only a line that goes out (and is synced, see audit_write_mode()) ends it. */
        if (!audit_is_failing(a))
                return 0;
        return atomic_load_explicit(&a->last_error, memory_order_relaxed) ?: -EIO;
}

int audit_set_checkpoint_key(Audit *a, const uint8_t key[static AUDIT_CHECKPOINT_KEY_SIZE]) {
        int r;

        assert_return(a, -EINVAL);
        assert_return(key, -EINVAL);

        (void) pthread_mutex_lock(&a->file_lock);
        r = audit_chain_set_key(&a->chain, key);
        (void) pthread_mutex_unlock(&a->file_lock);
        return r;
}

void audit_set_checkpoint_interval(Audit *a, uint64_t lines, uint64_t usec) {
        (void) pthread_mutex_lock(&a->file_lock);
        a->chain.every_lines = lines;
        a->chain.every_usec = usec;
        a->chain.min_usec = 0; /* exactly every `lines` lines, as asked */
        (void) pthread_mutex_unlock(&a->file_lock);
}

void audit_set_fail_open(Audit *a, bool fail_open) {
        a->fail_open = fail_open;
}

void audit_set_sync_hook(Audit *a, AuditSyncHook hook, void *userdata) {
        (void) pthread_mutex_lock(&a->sync_lock);
        a->sync_hook = hook;
        a->sync_hook_userdata = userdata;
        (void) pthread_mutex_unlock(&a->sync_lock);
}

void audit_set_anchor(Audit *a, AuditAnchorFunc f, void *userdata) {
        (void) pthread_mutex_lock(&a->file_lock);
        a->anchor = f;
        a->anchor_userdata = userdata;
        a->anchored_seq = a->chain.checkpoint_seq; /* only checkpoints from now on */
        (void) pthread_mutex_unlock(&a->file_lock);
}

void audit_get_head(Audit *a, uint64_t *ret_seq, uint8_t ret_hash[32]) {
        (void) pthread_mutex_lock(&a->file_lock);
        *ret_seq = a->chain.seq;
        memcpy(ret_hash, a->chain.head, AUDIT_HASH_SIZE);
        (void) pthread_mutex_unlock(&a->file_lock);
}

void audit_continue(Audit *a, uint64_t seq, const uint8_t hash[32]) {
        (void) pthread_mutex_lock(&a->file_lock);
        if (a->chain.seq == 0) {
                a->chain.seq = seq;
                memcpy(a->chain.head, hash, AUDIT_HASH_SIZE);
        }
        (void) pthread_mutex_unlock(&a->file_lock);
}
