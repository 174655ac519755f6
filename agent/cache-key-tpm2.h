/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The agent's host cache key sealed to the TPM2 (tpm2-tss). Built only with HAVE_TPM2; without
 * it the functions below are stubs that say there is no TPM, so callers need no #if. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secret.h"

#define CACHE_KEY_TPM2_SIZE 32
/* PCRs 0..23 of the SHA-256 bank. */
#define CACHE_KEY_TPM2_PCR_MAX 23
#define CACHE_KEY_TPM2_PCR_MASK_ALL ((UINT32_C(1) << (CACHE_KEY_TPM2_PCR_MAX + 1)) - 1)

#if HAVE_TPM2

/* Whether a TPM2 answers through tcti (NULL: the default, /dev/tpmrm0). */
bool cache_key_tpm2_present(const char *tcti);
/* The host cache key (32 bytes): unseal the blob at sealed_path with the TPM; when sealed_path
 * does not exist, make a new key with the TPM's RNG mixed with getrandom(), seal it (bound to
 * the PCRs in pcr_mask, SHA-256 bank, when pcr_mask != 0) and write the blob atomically (0400
 * root: temp, fsync, rename, fsync of the directory). -ENODEV: no TPM; -EBADMSG: the blob does
 * not unseal on this TPM (another machine, changed PCRs, edited blob); -EPERM: the blob is
 * not ours alone (another owner, or access for group or others), -ELOOP: a symbolic link,
 * -EBADFD: not a regular file (all three left as they are: not a reason for a new key). */
int cache_key_tpm2_load(const char *sealed_path, const char *tcti, uint32_t pcr_mask, Secret **ret_key);
/* Parse "7" / "0,7" / "" into a mask; -EINVAL on anything else (PCR 0..23). */
int cache_key_tpm2_parse_pcrs(const char *s, uint32_t *ret_mask);

/* The sealed blob's format, for the fuzz target and the tests: a header of our own ("KWTPM2",
 * format version, PCR mask, PCR bank, primary key type, big-endian), then the sealed object's
 * TPM2B_PUBLIC and TPM2B_PRIVATE as the TPM marshals them, and nothing after. */
#        include <tss2/tss2_tpm2_types.h>

typedef struct CacheKeyTpm2Blob {
        uint32_t pcr_mask;
        TPM2B_PUBLIC public;
        TPM2B_PRIVATE private;
} CacheKeyTpm2Blob;

/* Upper bound of a blob's size; larger files are refused unread. */
#        define CACHE_KEY_TPM2_BLOB_MAX (16 + sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE))

/* -EBADMSG on anything but one whole, well-formed blob (a keyed-hash object, PCRs 0..23). */
int cache_key_tpm2_blob_parse(const void *data, size_t size, CacheKeyTpm2Blob *ret);
/* Into buf (CACHE_KEY_TPM2_BLOB_MAX bytes will do), its size in *ret_size; 0 or -errno. */
int cache_key_tpm2_blob_format(
        const CacheKeyTpm2Blob *blob, uint8_t *buf, size_t buf_size, size_t *ret_size);

#else

static inline bool cache_key_tpm2_present(_unused_ const char *tcti) {
        return false;
}
static inline int cache_key_tpm2_load(
        _unused_ const char *sealed_path,
        _unused_ const char *tcti,
        _unused_ uint32_t pcr_mask,
        _unused_ Secret **ret_key) {
        return -ENODEV;
}
/* Without tpm2-tss there are no PCRs to bind to. */
static inline int cache_key_tpm2_parse_pcrs(_unused_ const char *s, _unused_ uint32_t *ret_mask) {
        return -EOPNOTSUPP;
}

#endif
