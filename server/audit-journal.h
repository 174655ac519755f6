/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The audit log's journal entries: structured fields, so that `journalctl -u keywardd` reads
 * like a log and `journalctl KEYWARD_KEY_ID=db:password` finds a key's history.
 *
 * A request's fields are a short MESSAGE ("GET /v0/keys/db:password/ 200 alice"), PRIORITY=6 (5
 * for 4xx, 4 for 5xx), KEYWARD_METHOD, KEYWARD_PATH, KEYWARD_ROUTE, KEYWARD_STATUS (HTTP),
 * KEYWARD_CODE (Knox's), KEYWARD_PRINCIPAL, KEYWARD_AUTH_TYPE, KEYWARD_KEY_ID,
 * KEYWARD_VERSION_ID and KEYWARD_REMOTE_ADDR (each left out when empty).
 *
 * An entry carries the requests whose lines went out together (see server-audit.h; one when
 * requests come one at a time): MESSAGE_ID=AUDIT_MESSAGE_ID, SYSLOG_IDENTIFIER=keywardd-audit,
 * one MESSAGE line per request, the most urgent PRIORITY, every request's other fields (one
 * the request before it has too is not sent again), and the chain: KEYWARD_AUDIT (the sealed
 * lines, as a file would hold them, one per request), KEYWARD_AUDIT_SEQ for each line and
 * KEYWARD_AUDIT_PREV of the first. A checkpoint is an entry of its own with KEYWARD_AUDIT,
 * KEYWARD_AUDIT_SEQ, KEYWARD_AUDIT_PREV and KEYWARD_AUDIT_HMAC. */

#include <stddef.h>

#include "buf.h"
#include "server-audit.h"

/* Requests per entry at most: journald takes at most 1024 fields an entry, and
 * sd_journal_sendv() hands them to one sendmsg() (at most IOV_MAX iovecs). */
#define AUDIT_JOURNAL_BATCH_MAX 24

/* Append r's fields to out, each "NAME=value" and its NUL, then an empty one (a lone NUL)
 * that ends the request. */
int audit_journal_fields(const AuditRecord *r, Buf *out);

/* Send the sealed lines p[0..n) (each ending in '\n') to the journal: consecutive requests'
 * lines together (at most AUDIT_JOURNAL_BATCH_MAX an entry), with their fields from *fields
 * (audit_journal_fields()' output for those lines, in order; consumed as they go; NULL when
 * there are none), each checkpoint as an entry of its own. *ret_done: how many bytes of p went
 * out, whole lines. */
int audit_journal_write(
        const char **fields, const char *fields_end, const char *p, size_t n, size_t *ret_done);
