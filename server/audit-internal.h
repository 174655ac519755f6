/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the audit log's files share (server-audit.c: buffers, chain and the public API;
 * audit-format.c: a record as Knox's line; audit-sink.c: lines to a file, pipe or the journal,
 * whole, and synced). Not for use outside them. */

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "audit-chain.h"
#include "audit-journal.h"
#include "server-audit.h"

typedef enum AuditTarget {
        AUDIT_TARGET_FILE,
        AUDIT_TARGET_STDERR,
        AUDIT_TARGET_JOURNAL,
        _AUDIT_TARGET_MAX,
        _AUDIT_TARGET_INVALID = -EINVAL,
} AuditTarget;

/* One thread's lines for one Audit. Only that thread touches it (audit_free() aside, when
 * no thread writes any more); a new thread may take over the buffer of an exited one that
 * had the same pthread_t, lines and all. */
typedef struct AuditBuffer AuditBuffer;
struct AuditBuffer {
        AuditBuffer *next;
        pthread_t thread;
        Buf lines;   /* whole lines only, each ending in '\n' */
        Buf journal; /* the journal: the fields of those lines' requests (audit_journal_fields()) */
};

struct Audit {
        AuditTarget target;
        char *path;
        char *service;
        char *version;
        char *host;
        uint64_t serial; /* unique per Audit ever opened: thread caches never match a reused address */
        /* Writers of lines hold it shared, audit_reopen() exclusive: no line ever goes to a
         * closed (or reused) fd, and concurrent lines do not wait for each other. */
        pthread_rwlock_t lock;
        int fd;
        bool regular; /* fd is a regular file: one write() of any size stays whole */
        /* Lines go out one writer at a time: the chain seals them in file order, and a failed write can
         * be cut back to where its lines began without cutting another thread's. */
        pthread_mutex_t file_lock;
        AuditChain chain;   /* under file_lock: lines are sealed in the order they go out */
        Buf sealed;         /* under file_lock: the lines of the write at hand, sealed */
        off_t end;          /* where our next line lands, as far as we know (a hint) */
        off_t reserved_end; /* fallocate() made room up to here (a hint) */
        bool no_fallocate;  /* the file system has no fallocate(): cutting back alone */
        /* Syncs go one at a time, and a failed one fails every write it may have covered:
         * the kernel reports a writeback error (errseq) to one fdatasync() of the fd only,
         * so a second thread's sync right after it returns 0 for lines that are lost. */
        pthread_mutex_t sync_lock;
        atomic_uint_least64_t written_gen; /* writes (of lines) that reached the fd so far */
        uint64_t synced_gen;               /* under sync_lock: writes up to here are on disk */
        uint64_t lost_from, lost_to;       /* under sync_lock: writes in (from, to] met a failed sync */
        int lost_error;                    /* under sync_lock: its negative errno */
        AuditSyncHook sync_hook;           /* tests: stands in for fdatasync() */
        AuditAnchorFunc anchor;            /* told of each checkpoint once it is on disk */
        void *anchor_userdata;
        uint64_t anchored_seq; /* under file_lock: the last checkpoint handed to anchor */
        void *sync_hook_userdata;
        bool fail_open;               /* only for the log: requests are answered without their lines */
        atomic_bool failing;          /* a write failed and was logged; log again only after a success */
        atomic_int last_error;        /* the failure's negative errno, while failing */
        pthread_mutex_t buffers_lock; /* the list, not the buffers' contents */
        AuditBuffer *buffers;
};

/* A buffer keeps up to this much memory between flushes; more (after huge lines) is freed. */
#define AUDIT_BUFFER_KEEP (4 * AUDIT_BUFFER_SIZE)

/* Room is made in the file this much at a time (file_reserve()). */
#define AUDIT_RESERVE_CHUNK (1024 * 1024)
#define AUDIT_JOURNAL_SOCKET "/run/systemd/journal/socket"

/* audit-sink.c */
bool audit_fd_is_regular(int fd);
/* Open (or create, 0600) the audit file at path for appending. */
int audit_open_target(const char *path, int *ret, bool *ret_regular);
/* Sealed lines to the sink; *ret_kept: how many bytes of them went out, whole lines. Called
 * with a->lock held shared and file_lock held. */
int audit_sink_put(Audit *a, const Buf *fields, const char *p, size_t n, size_t *ret_kept);
/* Sync the file for write number gen (see audit-sink.c). Called with a->lock held. */
int audit_file_sync(Audit *a, uint64_t gen);
