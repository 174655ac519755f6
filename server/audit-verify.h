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
} AuditVerifier;

void audit_verifier_init(AuditVerifier *v, const uint8_t *key, FILE *out);

/* Begin the next file (name for messages). */
void audit_verifier_file(AuditVerifier *v, const char *name);

/* One line without its newline (newline: whether it had one). 0 when it fits, 1 when it
 * breaks the chain (printed to out: the file, the line and why). */
int audit_verifier_line(AuditVerifier *v, const char *line, size_t len, bool newline);

/* The file ended: 1 when it does not end in keywardd's final seal. */
int audit_verifier_end(AuditVerifier *v);

/* Check every file in order, stopping at the first break. 0 intact, 1 broken, or a negative
 * errno when a file cannot be read (logged). */
int audit_verify_files(char *const *files, const uint8_t *key, FILE *out);
