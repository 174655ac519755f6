/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keywardd audit-verify: check audit files against their hash chain and, given the
 * checkpoint key, their checkpoints (audit-chain.h for the format). Files are given in the
 * order they were written (oldest first); each must continue the one before it. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "audit-chain.h"

typedef struct AuditVerifier {
        const uint8_t *key; /* AUDIT_CHAIN_KEY_SIZE bytes, or NULL: checkpoints are not checked */
        FILE *out;          /* where findings go */
        const char *file;   /* the file being read, for messages */
        uint64_t line;      /* its line number */
        bool have_prev;     /* a line came before (in this file or an earlier one) */
        uint8_t prev[AUDIT_HASH_SIZE];
        uint64_t prev_seq;
        bool last_final;  /* the last line was a final checkpoint */
        uint64_t n_lines; /* in this file */
        uint64_t n_checkpoints;
        bool broken;
        uint64_t
                first_seq; /* the seq the first file must start at (1 unless older files are gone; 0: any) */
        bool have_anchor;  /* the chain must hold this line (the store's record of the head) */
        uint64_t anchor_seq;
        uint8_t anchor_hash[AUDIT_HASH_SIZE];
        bool anchor_seen;
} AuditVerifier;

/* What audit_verify_files_with() checks besides the chain. */
typedef struct AuditVerifyOptions {
        const uint8_t *key; /* AUDIT_CHAIN_KEY_SIZE bytes, or NULL: checkpoints are not checked */
        uint64_t first_seq; /* 0 or 1: the files start at the chain's beginning */
        bool have_anchor;
        uint64_t anchor_seq;
        uint8_t anchor_hash[AUDIT_HASH_SIZE];
} AuditVerifyOptions;

void audit_verifier_init(AuditVerifier *v, const uint8_t *key, FILE *out);

/* Begin the next file (name for messages). */
void audit_verifier_file(AuditVerifier *v, const char *name);

/* One line without its newline (newline: whether it had one). 0 when it fits, 1 when it
 * breaks the chain (printed to out: the file, the line and why). */
int audit_verifier_line(AuditVerifier *v, const char *line, size_t len, bool newline);

/* The file ended: 1 when it does not end in keywardd's final seal. */
int audit_verifier_end(AuditVerifier *v);

/* After the last file: 1 when an anchor was set and the files did not hold its line (they
 * end before it: cut back, or the newest file is missing; or begin after it). */
int audit_verifier_finish(AuditVerifier *v);

/* Check every file in order, stopping at the first break. 0 intact, 1 broken, or a negative
 * errno when a file cannot be read (logged). */
int audit_verify_files(char *const *files, const uint8_t *key, FILE *out);
int audit_verify_files_with(char *const *files, const AuditVerifyOptions *o, FILE *out);

/* "SEQ:HEX" as --anchor takes it. -EINVAL when it is not that. */
int audit_anchor_parse(const char *s, uint64_t *ret_seq, uint8_t ret_hash[static AUDIT_HASH_SIZE]);
