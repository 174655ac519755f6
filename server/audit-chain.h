/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The audit log's hash chain and its checkpoints (keywardd(8), AUDIT LOG).
 *
 * Every line is a JSON object; sealing it appends two members before its closing brace:
 *     ...,"seq":N,"prev":"<hex SHA-256 of the line before it, without its newline>"}
 * seq counts lines (checkpoints too) from 1, across files: a new file's first line names the
 * previous file's last line. Every AUDIT_CHECKPOINT_LINES lines or AUDIT_CHECKPOINT_USEC, and
 * as the last line of a file that keywardd stops writing (final), a checkpoint line follows:
 *     {"checkpoint":{"final":false},"seq":N,"prev":"<hex>","hmac":"<hex>"}
 * hmac is HMAC-SHA256 under a key derived from the master key, over the line's bytes up to
 * the ,"hmac" member. Without the key nobody can write a checkpoint that verifies, so a file
 * edited before its last checkpoint cannot be made to verify again. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"
#include "secret.h"

#define AUDIT_HASH_SIZE 32
#define AUDIT_HASH_HEX (2 * AUDIT_HASH_SIZE)
#define AUDIT_CHAIN_KEY_SIZE 32
#define AUDIT_CHECKPOINT_LINES 1000
#define AUDIT_CHECKPOINT_USEC (10 * UINT64_C(1000000))
/* No sooner than this after the last one, whatever the line count: each checkpoint costs a sync
 * of the file and a commit of the anchor, and at tens of thousands of lines a second one every
 * 1000 lines would cost a busy worker several per cent of its CPU. */
#define AUDIT_CHECKPOINT_MIN_USEC (100 * UINT64_C(1000))
/* The fixed tail of a checkpoint line: ,"hmac":"<64 hex>"} */
#define AUDIT_HMAC_TAIL_SIZE (sizeof(",\"hmac\":\"") - 1 + AUDIT_HASH_HEX + 2)

typedef struct AuditChain {
        uint8_t head[AUDIT_HASH_SIZE]; /* hash of the last line; zeros before the first */
        uint64_t seq;                  /* seq of the last line; 0 before the first */
        uint64_t since_checkpoint;     /* lines since the last checkpoint */
        uint64_t checkpoint_usec;      /* CLOCK_MONOTONIC of the last checkpoint (or start) */
        uint64_t every_lines;          /* AUDIT_CHECKPOINT_LINES unless changed (tests) */
        uint64_t every_usec;
        uint64_t min_usec;                        /* AUDIT_CHECKPOINT_MIN_USEC unless changed (tests) */
        Secret *key;                              /* AUDIT_CHAIN_KEY_SIZE bytes, or NULL: no checkpoints */
        uint64_t checkpoint_seq;                  /* seq of the last checkpoint line; 0: none yet */
        uint8_t checkpoint_head[AUDIT_HASH_SIZE]; /* and its hash: what the anchor records */
        struct evp_md_ctx_st *hash_ctx;           /* reused for every line's hash; made on first use */
} AuditChain;

void audit_chain_init(AuditChain *c);
void audit_chain_done(AuditChain *c);

/* Take the checkpoint key (copied into locked memory). */
int audit_chain_set_key(AuditChain *c, const uint8_t key[static AUDIT_CHAIN_KEY_SIZE]);

/* Continue the chain of an existing file from its last whole line (read from fd); an empty
 * file keeps the chain as it is (a new file after a rotation). A last line without a seq
 * (written before the chain existed) restarts seq at 0 after it. */
int audit_chain_resume(AuditChain *c, int fd);

/* Seal whole lines p[0..n) (each a JSON object ending in '}' then '\n') into out, in order,
 * with checkpoints where they are due. 0, or -EBADMSG for a line that is not an object. */
int audit_chain_seal(AuditChain *c, const char *p, size_t n, Buf *out);

/* Append a checkpoint line (final: the file's last) to out; nothing without a key. */
int audit_chain_checkpoint(AuditChain *c, bool final, Buf *out);

/* After only out[0..kept) of what audit_chain_seal() or audit_chain_checkpoint() made went
 * out (whole lines): put the chain back to the last line kept. saved is the chain as it was
 * before. */
void audit_chain_rewind(AuditChain *c, const AuditChain *saved, const char *out, size_t kept);

/* The line's hash, for the verifier. */
void audit_line_hash(const char *line, size_t len, uint8_t ret[static AUDIT_HASH_SIZE]);
/* The checkpoint HMAC of prefix[0..len). */
int audit_checkpoint_hmac(
        const uint8_t key[static AUDIT_CHAIN_KEY_SIZE],
        const char *prefix,
        size_t len,
        uint8_t ret[static AUDIT_HASH_SIZE]);
