/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The audit log: one JSON line per request in Knox's access-log shape (protocol.md §6), to a
 * file, stderr or the journal. Never a byte of key data: `data` is logged as "<DATA>".
 *
 * Lines are batched per thread: audit_write() appends to the calling thread's buffer for that
 * Audit, and the buffer goes out with one write() of whole lines (the journal: one entry for
 * up to AUDIT_JOURNAL_BATCH_MAX requests, audit-journal.h) when it passes AUDIT_BUFFER_SIZE,
 * at audit_flush(), audit_reopen() (the caller's buffer only) and audit_free() (every
 * thread's). A thread that writes lines calls audit_flush() regularly (keywardd's workers: at
 * most a millisecond after a line) and before it stops writing. audit_write_mode() writes a
 * line (and what the thread buffered before it) out at once, and can sync it to disk: for
 * answers that must not leave before their line is safe.
 *
 * Every line is sealed into a SHA-256 hash chain as it goes out, with HMAC checkpoints once a
 * key is set (audit-chain.h; keywardd audit-verify checks them).
 *
 * A regular file never holds part of a line: room for the lines is made with fallocate()
 * before a byte is written (a full disk refuses the whole write), and a write() that still
 * stops short is cut back with ftruncate() to the end of the last whole line it took. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "form.h"
#include "buf.h"
#include "macro.h"

/* MESSAGE_ID= of audit lines sent to the journal (journalctl MESSAGE_ID=...). */
#define AUDIT_MESSAGE_ID "d21b9a5ad5dda2a2f6962da3fe394945"
#define AUDIT_SYSLOG_IDENTIFIER "keywardd-audit"

/* A thread's buffered lines are written out once they reach this many bytes. */
#define AUDIT_BUFFER_SIZE (32 * 1024)

typedef struct Audit Audit;

/* Told the seq and hash of each checkpoint line once it is on disk (see audit_set_anchor()). */
typedef int (*AuditAnchorFunc)(uint64_t seq, const uint8_t hash[32], void *userdata);

/* Tests: called instead of fdatasync(fd); 0 or a negative errno. */
typedef int (*AuditSyncHook)(int fd, void *userdata);

typedef enum AuditMode {
        AUDIT_BATCHED, /* into the calling thread's buffer, out at a flush */
        AUDIT_NOW,     /* written out (with the lines buffered before it) before returning */
        AUDIT_DURABLE, /* as AUDIT_NOW, and synced to disk with fdatasync() for a regular file */
        _AUDIT_MODE_MAX,
        _AUDIT_MODE_INVALID = -EINVAL,
} AuditMode;

typedef struct AuditRecord {
        int64_t ts_ns;          /* Unix ns for @timestamp; 0: the time of formatting */
        int code;               /* Knox sub-code, 0 on success */
        int status_code;        /* HTTP status */
        const char *msg;        /* error message, "" or NULL on success */
        const char *user_agent; /* NULL: "unknown" */
        const char *method;
        const char *path;
        const char *route;  /* Knox route id ("getkeys", ..., "404"), NULL for routes outside Knox's API */
        const char *key_id; /* path parameters, NULL when the route has none */
        const char *version_id;
        const char *raw_query;        /* NULL when the target had no '?' */
        const Form *query;            /* parsed raw query, may be NULL */
        const Form *form;             /* parsed body form, may be NULL */
        const Principals *principals; /* NULL or empty when not authenticated */
        const char *remote_addr;      /* "ip:port" */
        const char *tls_server;       /* SNI, may be NULL */
        int tls_cipher;               /* IANA suite id, e.g. 4865 */
        int tls_version;              /* 771 TLS 1.2, 772 TLS 1.3 */
        bool tls_resumed;
        const uint8_t *tls_unique; /* TLS 1.2 tls-unique bytes, NULL on TLS 1.3 */
        size_t tls_unique_size;
} AuditRecord;

/* target: a file path (opened O_APPEND|O_CLOEXEC|O_NOFOLLOW, created 0600), "-" for stderr,
 * or "journal" (-ENOENT when journald's socket is absent, since sd_journal_send() would drop
 * every line silently). service, version and hostname go into every line's envelope
 * (each left out when NULL or empty, as upstream's omitempty does). */
int audit_open(
        const char *target, const char *service, const char *version, const char *hostname, Audit **ret);
/* Writes out every thread's buffered lines, then frees: no other thread may use a any more
 * (threads that have exited may have left lines; they are not lost). */
Audit *audit_free(Audit *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(Audit *, audit_free);

/* Reopen the file (after logrotate moved it; SIGHUP). The calling thread's buffered lines
 * are written to the old file first; those other threads hold go to the new file at their
 * next flush. Safe while other threads write and flush. Only that flush for stderr and the
 * journal. */
int audit_reopen(Audit *a);

/* Format one record and append it as one line to the calling thread's buffer; when that
 * passes AUDIT_BUFFER_SIZE, write it out (see audit_flush()). Safe from several threads.
 * A negative errno when the line could
 * not be formatted (it is dropped) or a write failed (as for audit_flush()); either is
 * logged once until a line goes out again. */
int audit_write(Audit *a, const AuditRecord *r);

/* audit_write() with a mode: AUDIT_BATCHED is audit_write(). With AUDIT_NOW or
 * AUDIT_DURABLE, 0 means the line is in the sink (and on disk, for AUDIT_DURABLE and a
 * regular file); a negative errno means it is not (it is dropped, whole). */
int audit_write_mode(Audit *a, const AuditRecord *r, AuditMode mode);

/* Whether requests are answered while the sink fails (only what the failure's log line says). */
void audit_set_fail_open(Audit *a, bool fail_open);

/* The last attempt to write lines failed, and none has gone out since. */
bool audit_is_failing(Audit *a);

/* The checkpoint key (derived from the master key with cryptor_derive_key() and
 * AUDIT_CHECKPOINT_KEY_INFO): from now on checkpoints are written (see audit-chain.h), and a
 * final one when the file is reopened or the Audit freed. */
#define AUDIT_CHECKPOINT_KEY_SIZE 32
#define AUDIT_CHECKPOINT_KEY_INFO "keyward audit checkpoint v1"
int audit_set_checkpoint_key(Audit *a, const uint8_t key[static AUDIT_CHECKPOINT_KEY_SIZE]);
/* A checkpoint after exactly this many lines (no minimum time between two: tests) or this long
 * (checked as lines are written). */
void audit_set_checkpoint_interval(Audit *a, uint64_t lines, uint64_t usec);

/* 0 when the sink is not failing, else the failure's negative errno. A probe never ends a
 * failure: only a line that goes out does (while failing, every line that goes out to a
 * regular file is synced first, so a line in the page cache after EIO does not count). */
int audit_probe(Audit *a);

/* Write out the calling thread's buffered lines for a, if any: one write() of whole lines
 * (a regular file, where O_APPEND keeps concurrent writes whole), or several, each of whole
 * lines and at most PIPE_BUF bytes (a pipe, socket or terminal, where only such writes are
 * atomic; a longer line goes alone), or the journal's entries. 0 also when there was nothing
 * to write. A failed write drops the buffered lines and returns the negative errno. */
int audit_flush(Audit *a);

/* The line itself, without the trailing newline, appended to out (for tests and for the
 * journal's MESSAGE=). The "id" is 20 fresh random alphanumerics for every line. */
int audit_format(const Audit *a, const AuditRecord *r, Buf *out);

/* Tests only: sync a regular file with hook instead of fdatasync() (NULL: fdatasync() again),
 * to cause the writeback errors a real disk gives rarely. */
void audit_set_sync_hook(Audit *a, AuditSyncHook hook, void *userdata);

/* After each checkpoint line is written and synced, f is called with its seq and hash (from
 * the thread that wrote it, outside the audit's locks; calls may overlap and come out of
 * order, so f keeps the highest seq). keywardd stores them as the chain's anchor, outside the
 * file (store_audit_anchor_set()), so that audit-verify --db catches a file cut back to an
 * earlier checkpoint. A failure of f is logged, never the request's. */
void audit_set_anchor(Audit *a, AuditAnchorFunc f, void *userdata);

/* The chain's head: the seq of the last line that went out (0: none), and its hash. */
void audit_get_head(Audit *a, uint64_t *ret_seq, uint8_t ret_hash[32]);

/* A sink that has no chain yet (a new, empty file; the journal) continues the one that ended
 * at line seq with that hash (the anchor keywardd stored), instead of starting at seq 1. Does
 * nothing once a chain is there. */
void audit_continue(Audit *a, uint64_t seq, const uint8_t hash[32]);
