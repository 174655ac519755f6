/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The audit log's journal entries: structured fields, so that `journalctl -u keywardd` reads
 * like a log and `journalctl KEYWARD_KEY_ID=db:password` finds a key's history.
 *
 * An entry for a request has a short MESSAGE ("GET /v0/keys/db:password/ 200 alice"),
 * MESSAGE_ID=AUDIT_MESSAGE_ID, SYSLOG_IDENTIFIER=keywardd-audit, PRIORITY=6 (5 for 4xx, 4 for
 * 5xx), KEYWARD_METHOD, KEYWARD_PATH, KEYWARD_ROUTE, KEYWARD_STATUS (HTTP), KEYWARD_CODE
 * (Knox's), KEYWARD_PRINCIPAL, KEYWARD_AUTH_TYPE, KEYWARD_KEY_ID, KEYWARD_VERSION_ID,
 * KEYWARD_REMOTE_ADDR (each left out when empty), and the chain: KEYWARD_AUDIT (the whole
 * sealed line, as a file would hold it), KEYWARD_AUDIT_SEQ and KEYWARD_AUDIT_PREV. A
 * checkpoint is an entry of its own with KEYWARD_AUDIT, KEYWARD_AUDIT_SEQ, KEYWARD_AUDIT_PREV
 * and KEYWARD_AUDIT_HMAC. */

#include <stddef.h>

#include "server-audit.h"

#define AUDIT_JOURNAL_FIELDS_MAX 16

/* The request's own fields (everything but the chain), each "NAME=value". */
typedef struct AuditJournalFields {
        char *f[AUDIT_JOURNAL_FIELDS_MAX];
        size_t n;
} AuditJournalFields;

int audit_journal_fields(const AuditRecord *r, AuditJournalFields *ret);
void audit_journal_fields_done(AuditJournalFields *f);

/* Send one sealed line (without its newline) as an entry: with fields for a request's line,
 * NULL for a checkpoint. */
int audit_journal_send(const AuditJournalFields *fields, const char *line, size_t len);
