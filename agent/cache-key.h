/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The host cache key: 32 bytes that seal the agent's state (cache files, registry) to this
 * machine. It comes from the TPM2, a file of its own outside the state directory, or a
 * systemd credential (--cache-key tpm2|file:PATH|credential:NAME|auto); the state directory
 * never holds it, so a copy of that directory opens nowhere else. Purpose keys are derived
 * from it (HKDF-SHA256) and used with AES-256-GCM. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "secret.h"

#define CACHE_KEY_SIZE 32
#define CACHE_KEY_DEFAULT_DIR "/var/lib/keyward-host"
#define CACHE_KEY_DEFAULT_FILE CACHE_KEY_DEFAULT_DIR "/cache.key"
#define CACHE_KEY_DEFAULT_TPM2 CACHE_KEY_DEFAULT_FILE ".tpm2"
#define CACHE_KEY_CREDENTIAL "keyward-cache-key"

#define CACHE_SEAL_NONCE_SIZE 12
#define CACHE_SEAL_TAG_SIZE 16
#define CACHE_SEAL_OVERHEAD (CACHE_SEAL_NONCE_SIZE + CACHE_SEAL_TAG_SIZE)

/* Whether spec is one of auto, tpm2, file:/ABSOLUTE/PATH, credential:NAME. */
bool cache_key_spec_is_valid(const char *spec);
/* A PCR list as "7" or "0,7" (each 0..23) as a mask; "" or NULL is no PCR. -EINVAL. */
int cache_key_parse_pcrs(const char *list, uint32_t *ret_mask);

typedef struct CacheKeyOptions {
        const char *spec;        /* as above; NULL: auto */
        const char *state_dir;   /* a key file inside it is refused */
        const char *tpm2_device; /* TCTI, NULL: the default device */
        uint32_t tpm2_pcrs;
        const char *tpm2_sealed; /* the sealed blob; NULL: CACHE_KEY_DEFAULT_TPM2 */
} CacheKeyOptions;

/* The host cache key in a Secret, with the source used logged once (never the key). The
 * error is logged: a key file readable by group or others, not ours, or inside the state
 * directory (-EPERM), a credential that is missing (-ENOENT, -ENXIO) or not 32 bytes
 * (-EBADMSG), tpm2 without TPM2 support (-EOPNOTSUPP). */
int cache_key_load(const CacheKeyOptions *o, Secret **ret);

/* Read (or create, 0400, atomically) the key file at path. */
int cache_key_file(const char *path, const char *state_dir, Secret **ret);

/* The purpose key for purpose (HKDF-SHA256 of the host key, info "keyward-agent <purpose>"). */
int cache_key_derive(const Secret *host, const char *purpose, Secret **ret);

/* AES-256-GCM under key (CACHE_KEY_SIZE) with associated data ad: out (n +
 * CACHE_SEAL_OVERHEAD bytes) is nonce, ciphertext, tag. */
int cache_seal(const Secret *key, const void *ad, size_t ad_len, const void *p, size_t n, uint8_t *out);
/* The reverse, into a Secret: -EBADMSG when it does not open (another key, changed, cut). */
int cache_unseal(
        const Secret *key, const void *ad, size_t ad_len, const uint8_t *in, size_t n, Secret **ret);

/* A whole file sealed under key: magic (a header line ending in '\n'), nonce, ciphertext,
 * tag, with the magic as associated data. */
int cache_seal_blob(
        const Secret *key, const char *magic, const void *p, size_t n, uint8_t **ret, size_t *ret_size);
/* The reverse: -EBADMSG when it does not open or has another magic. */
int cache_unseal_blob(const Secret *key, const char *magic, const uint8_t *in, size_t n, Secret **ret);

/* p sealed as a blob, written to path atomically and durably, 0600. */
int cache_write_sealed_file(const Secret *key, const char *magic, const char *path, const void *p, size_t n);
/* The reverse, of a file of max bytes at most: read_full_file()'s errors, or -EBADMSG when it
 * does not open. */
int cache_read_sealed_file(const Secret *key, const char *magic, const char *path, size_t max, Secret **ret);
