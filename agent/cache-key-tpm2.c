/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host cache key sealed to the TPM2, through tpm2-tss's ESYS.
 *
 * The key is a keyed-hash "sealed data" object under a primary key of the owner hierarchy.
 * The primary (the TCG's ECC P-256 storage key template) is made anew each time: the TPM
 * derives it from its own seed, so it is the same key on the same TPM and a different one on
 * any other, which is what ties the blob to this machine. Every command that carries the key
 * runs in a session salted to that primary with AES-128-CFB parameter encryption, so the
 * key never crosses the bus in clear. With a PCR mask the object has no authValue use at all
 * (no userWithAuth): only a policy session that passed PolicyPCR over the same PCRs, with
 * the values they had at sealing, unseals it. */
#include "cache-key-tpm2.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "fileio.h"
#include "log.h"

#define DEFAULT_TCTI "device:/dev/tpmrm0"
#define BLOB_MAGIC "KWTPM2"
#define BLOB_VERSION 1
#define BLOB_HEADER_SIZE (6 + 2 + 4 + 2 + 2)

int cache_key_tpm2_parse_pcrs(const char *s, uint32_t *ret_mask) {
        uint32_t mask = 0;

        assert_return(s, -EINVAL);
        assert_return(ret_mask, -EINVAL);

        if (*s == '\0') {
                *ret_mask = 0;
                return 0;
        }
        for (;;) {
                unsigned v = 0, digits = 0;

                while (*s >= '0' && *s <= '9' && digits < 3) {
                        v = v * 10 + (unsigned) (*s - '0');
                        s++;
                        digits++;
                }
                if (digits == 0 || digits > 2 || v > CACHE_KEY_TPM2_PCR_MAX)
                        return -EINVAL;
                mask |= UINT32_C(1) << v;
                if (*s == '\0')
                        break;
                if (*s != ',')
                        return -EINVAL;
                s++;
        }
        *ret_mask = mask;
        return 0;
}

/* ---- the blob ---- */

static void put_be16(uint8_t *p, uint16_t v) {
        p[0] = v >> 8;
        p[1] = v;
}

static void put_be32(uint8_t *p, uint32_t v) {
        put_be16(p, v >> 16);
        put_be16(p + 2, v);
}

static uint16_t get_be16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) get_be16(p) << 16 | get_be16(p + 2);
}

int cache_key_tpm2_blob_parse(const void *data, size_t size, CacheKeyTpm2Blob *ret) {
        CacheKeyTpm2Blob blob = {};
        const uint8_t *p = data;
        uint8_t again[CACHE_KEY_TPM2_BLOB_MAX];
        size_t offset = BLOB_HEADER_SIZE, n;

        assert_return(data || size == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        if (size < BLOB_HEADER_SIZE || size > CACHE_KEY_TPM2_BLOB_MAX)
                return -EBADMSG;
        if (memcmp(p, BLOB_MAGIC, 6) != 0 || get_be16(p + 6) != BLOB_VERSION)
                return -EBADMSG;
        blob.pcr_mask = get_be32(p + 8);
        if (blob.pcr_mask & ~CACHE_KEY_TPM2_PCR_MASK_ALL)
                return -EBADMSG;
        if (get_be16(p + 12) != TPM2_ALG_SHA256 || get_be16(p + 14) != TPM2_ALG_ECC)
                return -EBADMSG;

        if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(p, size, &offset, &blob.public) != TSS2_RC_SUCCESS ||
            Tss2_MU_TPM2B_PRIVATE_Unmarshal(p, size, &offset, &blob.private) != TSS2_RC_SUCCESS ||
            offset != size)
                return -EBADMSG;
        if (blob.public.publicArea.type != TPM2_ALG_KEYEDHASH ||
            blob.public.publicArea.nameAlg != TPM2_ALG_SHA256 || blob.private.size == 0)
                return -EBADMSG;
        /* Only the bytes we would write: a size field that disagrees with what follows it,
         * or anything else the unmarshalling lets pass, is an edited blob. */
        if (cache_key_tpm2_blob_format(&blob, again, sizeof(again), &n) < 0 || n != size ||
            memcmp(again, data, size) != 0)
                return -EBADMSG;

        *ret = blob;
        return 0;
}

int cache_key_tpm2_blob_format(
        const CacheKeyTpm2Blob *blob, uint8_t *buf, size_t buf_size, size_t *ret_size) {
        size_t offset = BLOB_HEADER_SIZE;

        assert_return(blob, -EINVAL);
        assert_return(buf, -EINVAL);
        assert_return(ret_size, -EINVAL);

        if (buf_size < BLOB_HEADER_SIZE)
                return -ENOBUFS;
        memcpy(buf, BLOB_MAGIC, 6);
        put_be16(buf + 6, BLOB_VERSION);
        put_be32(buf + 8, blob->pcr_mask);
        put_be16(buf + 12, TPM2_ALG_SHA256);
        put_be16(buf + 14, TPM2_ALG_ECC);
        if (Tss2_MU_TPM2B_PUBLIC_Marshal(&blob->public, buf, buf_size, &offset) != TSS2_RC_SUCCESS ||
            Tss2_MU_TPM2B_PRIVATE_Marshal(&blob->private, buf, buf_size, &offset) != TSS2_RC_SUCCESS)
                return -ENOBUFS;
        *ret_size = offset;
        return 0;
}

/* ---- the TPM ---- */

typedef struct Tpm2 {
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
        ESYS_TR primary;
        ESYS_TR session;
        ESYS_TR policy;
        ESYS_TR object;
} Tpm2;

#define TPM2_NULL \
        { .primary = ESYS_TR_NONE, .session = ESYS_TR_NONE, .policy = ESYS_TR_NONE, .object = ESYS_TR_NONE, }

static void flush(Tpm2 *t, ESYS_TR *handle) {
        if (*handle != ESYS_TR_NONE)
                (void) Esys_FlushContext(t->esys, *handle);
        *handle = ESYS_TR_NONE;
}

/* Transient objects and sessions stay in the TPM until flushed (a TPM without a resource
 * manager in front, such as swtpm, keeps them after we are gone). */
static void tpm2_done(Tpm2 *t) {
        if (t->esys) {
                flush(t, &t->object);
                flush(t, &t->policy);
                flush(t, &t->session);
                flush(t, &t->primary);
                Esys_Finalize(&t->esys);
        }
        if (t->tcti)
                Tss2_TctiLdr_Finalize(&t->tcti);
}

/* Whether the TPM refused the object itself: an error about a parameter, handle or session
 * (format 1: the private part's integrity, a policy that does not hold, a value out of
 * range), or authValue use that the object does not allow. Not its warnings (out of object
 * or session memory, lockout, rate limits) nor its own failures: those say nothing about
 * the blob, and a blob declared bad is replaced by a new key. */
static bool tpm2_rc_refuses_object(TSS2_RC rc) {
        if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER)
                return false;
        if (rc & TPM2_RC_FMT1)
                return true;
        return (rc & 0xfff) == TPM2_RC_AUTH_UNAVAILABLE;
}

/* Errors of the transport (nothing listening, device gone) mean there is no TPM. With
 * refusal set, the TPM refusing the object is -EBADMSG; anything else the TPM or ESYS says
 * is -EIO. */
static int tpm2_errno(TSS2_RC rc, const char *what, bool refusal) {
        log_debug("TPM2 %s failed: %s", what, Tss2_RC_Decode(rc));
        if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER)
                return -ENODEV;
        if (refusal && tpm2_rc_refuses_object(rc))
                return -EBADMSG;
        return -EIO;
}

static int tpm2_open(Tpm2 *t, const char *tcti) {
        TSS2_RC rc;

        rc = Tss2_TctiLdr_Initialize(tcti ?: DEFAULT_TCTI, &t->tcti);
        if (rc != TSS2_RC_SUCCESS) {
                log_debug("TPM2 TCTI '%s' did not start: %s", tcti ?: DEFAULT_TCTI, Tss2_RC_Decode(rc));
                return -ENODEV;
        }
        rc = Esys_Initialize(&t->esys, t->tcti, NULL);
        if (rc != TSS2_RC_SUCCESS) {
                log_debug("TPM2 ESYS did not start: %s", Tss2_RC_Decode(rc));
                return -ENODEV;
        }
        return 0;
}

/* The TCG's ECC P-256 storage root key template: restricted, decrypt, AES-128-CFB. */
static int tpm2_make_primary(Tpm2 *t) {
        static const TPM2B_SENSITIVE_CREATE sensitive = {};
        static const TPM2B_DATA outside = {};
        static const TPML_PCR_SELECTION creation_pcrs = {};
        TPM2B_PUBLIC template = {
                .publicArea.type = TPM2_ALG_ECC,
                .publicArea.nameAlg = TPM2_ALG_SHA256,
                .publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                        TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA |
                        TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
                .publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES,
                .publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128,
                .publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB,
                .publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL,
                .publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256,
                .publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL,
        };
        TSS2_RC rc;

        rc = Esys_CreatePrimary(
                t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                &template, &outside, &creation_pcrs, &t->primary, NULL, NULL, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_errno(rc, "CreatePrimary", false);
        return 0;
}

static const TPMT_SYM_DEF session_symmetric = {
        .algorithm = TPM2_ALG_AES,
        .keyBits.aes = 128,
        .mode.aes = TPM2_ALG_CFB,
};

/* A session salted to the primary (only this TPM can read the salt), which encrypts the
 * first parameter of commands and responses. */
static int tpm2_start_session(Tpm2 *t, TPM2_SE type, ESYS_TR *ret) {
        ESYS_TR s = ESYS_TR_NONE;
        TSS2_RC rc;

        rc = Esys_StartAuthSession(
                t->esys, t->primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, type,
                &session_symmetric, TPM2_ALG_SHA256, &s);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_errno(rc, "StartAuthSession", false);
        if (type != TPM2_SE_TRIAL) {
                rc = Esys_TRSess_SetAttributes(
                        t->esys, s,
                        TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION, 0xff);
                if (rc != TSS2_RC_SUCCESS) {
                        (void) Esys_FlushContext(t->esys, s);
                        return tpm2_errno(rc, "TRSess_SetAttributes", false);
                }
        }
        *ret = s;
        return 0;
}

static void pcr_selection(uint32_t mask, TPML_PCR_SELECTION *ret) {
        *ret = (TPML_PCR_SELECTION){
                .count = 1,
                .pcrSelections[0].hash = TPM2_ALG_SHA256,
                .pcrSelections[0].sizeofSelect = 3,
                .pcrSelections[0].pcrSelect = {mask & 0xff, (mask >> 8) & 0xff, (mask >> 16) & 0xff},
        };
}

/* PolicyPCR over the PCRs' current values, in a trial session (for the policy digest to seal
 * with) or a policy session (to unseal). */
static int tpm2_policy_pcr(Tpm2 *t, ESYS_TR session, uint32_t mask, bool refusal) {
        static const TPM2B_DIGEST current = {};
        TPML_PCR_SELECTION sel;
        TSS2_RC rc;

        pcr_selection(mask, &sel);
        rc = Esys_PolicyPCR(t->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current, &sel);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_errno(rc, "PolicyPCR", refusal);
        return 0;
}

static int tpm2_pcr_policy_digest(Tpm2 *t, uint32_t mask, TPM2B_DIGEST *ret) {
        TPM2B_DIGEST *digest = NULL;
        ESYS_TR trial = ESYS_TR_NONE;
        TSS2_RC rc;
        int r;

        r = tpm2_start_session(t, TPM2_SE_TRIAL, &trial);
        if (r < 0)
                return r;
        r = tpm2_policy_pcr(t, trial, mask, false);
        if (r >= 0) {
                rc = Esys_PolicyGetDigest(t->esys, trial, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &digest);
                if (rc != TSS2_RC_SUCCESS)
                        r = tpm2_errno(rc, "PolicyGetDigest", false);
                else {
                        *ret = *digest;
                        Esys_Free(digest);
                }
        }
        (void) Esys_FlushContext(t->esys, trial);
        return r;
}

/* 32 bytes from the TPM's RNG (through the encrypting session) XORed with 32 from the
 * kernel's: either alone would do, so a weak or watched source does not make a weak key. */
static int tpm2_random_key(Tpm2 *t, Secret *key) {
        TPM2B_DIGEST *tpm_random = NULL;
        TSS2_RC rc;
        ssize_t n;

        n = getrandom(key->data, key->size, 0);
        if (n < 0)
                return -errno;
        if ((size_t) n != key->size)
                return -EIO;
        rc = Esys_GetRandom(t->esys, t->session, ESYS_TR_NONE, ESYS_TR_NONE, key->size, &tpm_random);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_errno(rc, "GetRandom", false);
        if (tpm_random->size != key->size) {
                explicit_bzero(tpm_random, sizeof(*tpm_random));
                Esys_Free(tpm_random);
                return -EIO;
        }
        for (size_t i = 0; i < key->size; i++)
                key->data[i] ^= tpm_random->buffer[i];
        explicit_bzero(tpm_random, sizeof(*tpm_random));
        Esys_Free(tpm_random);
        return 0;
}

static int tpm2_seal(Tpm2 *t, const Secret *key, uint32_t mask, CacheKeyTpm2Blob *ret) {
        static const TPM2B_DATA outside = {};
        static const TPML_PCR_SELECTION creation_pcrs = {};
        TPM2B_SENSITIVE_CREATE sensitive = {};
        CLEANUP_ERASE(sensitive);
        /* No authValue use when a policy guards it: an empty password would unseal it
         * whatever the PCRs say. noDA: there is no password to guess, and a TPM in lockout
         * still unseals it. */
        TPM2B_PUBLIC template = {
                .publicArea.type = TPM2_ALG_KEYEDHASH,
                .publicArea.nameAlg = TPM2_ALG_SHA256,
                .publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                        TPMA_OBJECT_NODA | (mask == 0 ? TPMA_OBJECT_USERWITHAUTH : 0),
                .publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
        };
        TPM2B_PRIVATE *private = NULL;
        TPM2B_PUBLIC *public = NULL;
        TSS2_RC rc;
        int r;

        if (mask != 0) {
                r = tpm2_pcr_policy_digest(t, mask, &template.publicArea.authPolicy);
                if (r < 0)
                        return r;
        }
        sensitive.sensitive.data.size = key->size;
        memcpy(sensitive.sensitive.data.buffer, key->data, key->size);

        rc = Esys_Create(
                t->esys, t->primary, t->session, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &template, &outside,
                &creation_pcrs, &private, &public, NULL, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_errno(rc, "Create", false);
        *ret = (CacheKeyTpm2Blob){.pcr_mask = mask, .public = *public, .private = *private};
        Esys_Free(public);
        Esys_Free(private);
        return 0;
}

/* The TPM refusing to load or unseal the object (integrity, a policy that does not hold, a
 * foreign seed) means this blob is not for this TPM: -EBADMSG. */
static int tpm2_unseal(Tpm2 *t, const CacheKeyTpm2Blob *blob, Secret **ret) {
        TPM2B_SENSITIVE_DATA *data = NULL;
        ESYS_TR auth;
        TSS2_RC rc;
        Secret *key;
        int r;

        rc = Esys_Load(
                t->esys, t->primary, t->session, ESYS_TR_NONE, ESYS_TR_NONE, &blob->private, &blob->public,
                &t->object);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_errno(rc, "Load", true);

        auth = t->session;
        if (blob->pcr_mask != 0) {
                r = tpm2_start_session(t, TPM2_SE_POLICY, &t->policy);
                if (r < 0)
                        return r;
                r = tpm2_policy_pcr(t, t->policy, blob->pcr_mask, true);
                if (r < 0)
                        return r;
                auth = t->policy;
        }

        rc = Esys_Unseal(t->esys, t->object, auth, ESYS_TR_NONE, ESYS_TR_NONE, &data);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_errno(rc, "Unseal", true);
        if (data->size != CACHE_KEY_TPM2_SIZE) {
                explicit_bzero(data, sizeof(*data));
                Esys_Free(data);
                return -EBADMSG;
        }
        key = secret_new_copy(data->buffer, data->size);
        explicit_bzero(data, sizeof(*data));
        Esys_Free(data);
        if (!key)
                return -ENOMEM;
        *ret = key;
        return 0;
}

static int tpm2_start(Tpm2 *t, const char *tcti) {
        int r;

        r = tpm2_open(t, tcti);
        if (r < 0)
                return r;
        r = tpm2_make_primary(t);
        if (r < 0)
                return r;
        return tpm2_start_session(t, TPM2_SE_HMAC, &t->session);
}

bool cache_key_tpm2_present(const char *tcti) {
        Tpm2 t = TPM2_NULL;
        TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more;
        TSS2_RC rc = TSS2_BASE_RC_GENERAL_FAILURE;

        if (tpm2_open(&t, tcti) >= 0) {
                rc = Esys_GetCapability(
                        t.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                        TPM2_PT_MANUFACTURER, 1, &more, &cap);
                Esys_Free(cap);
        }
        tpm2_done(&t);
        return rc == TSS2_RC_SUCCESS;
}

static int load_existing(
        Tpm2 *t,
        const char *sealed_path,
        const char *tcti,
        uint32_t pcr_mask,
        const uint8_t *data,
        size_t size,
        Secret **ret) {
        CacheKeyTpm2Blob blob;
        int r;

        /* The TPM first: without one, -ENODEV whatever the file holds. */
        r = tpm2_start(t, tcti);
        if (r < 0)
                return r;
        r = cache_key_tpm2_blob_parse(data, size, &blob);
        if (r < 0) {
                log_debug("'%s' is not a sealed cache key.", sealed_path);
                return r;
        }
        if (blob.pcr_mask != pcr_mask)
                log_debug(
                        "'%s' is bound to PCR mask 0x%06" PRIx32 ", not 0x%06" PRIx32
                        ": it keeps its binding.",
                        sealed_path, blob.pcr_mask, pcr_mask);
        return tpm2_unseal(t, &blob, ret);
}

static int make_new(Tpm2 *t, const char *sealed_path, const char *tcti, uint32_t pcr_mask, Secret **ret) {
        _cleanup_(secret_freep) Secret *key = NULL;
        CacheKeyTpm2Blob blob;
        uint8_t buf[CACHE_KEY_TPM2_BLOB_MAX];
        size_t n;
        int r;

        r = tpm2_start(t, tcti);
        if (r < 0)
                return r;
        key = secret_new(CACHE_KEY_TPM2_SIZE);
        if (!key)
                return -ENOMEM;
        r = tpm2_random_key(t, key);
        if (r < 0)
                return r;
        r = tpm2_seal(t, key, pcr_mask, &blob);
        if (r < 0)
                return r;
        r = cache_key_tpm2_blob_format(&blob, buf, sizeof(buf), &n);
        if (r < 0)
                return r;
        r = write_file_atomic(sealed_path, buf, n, 0400);
        if (r < 0)
                return log_debug_errno(r, "Cannot write '%s': %m", sealed_path);
        *ret = TAKE_PTR(key);
        return 0;
}

/* The blob at path: no symbolic link (-ELOOP), a regular file (-EBADFD), of our own uid and
 * with no access for group or others (-EPERM: whoever reads an unbound blob and may use the
 * TPM unseals the key; whoever may replace it chooses the key). A file too large for a blob
 * is read as an empty one (refused by the parser). */
static int read_blob(const char *path, uint8_t *buf, size_t max, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        size_t n = 0;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_uid != geteuid() || (st.st_mode & 0077) != 0)
                return log_debug_errno(
                        EPERM, "'%s' is owned by uid %u with mode %04o: not ours alone, refused.", path,
                        (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777));
        if ((uint64_t) st.st_size > max) {
                *ret_size = 0;
                return 0;
        }
        r = read_fd_all(fd, buf, max, &n); /* reads up to max + 1 bytes */
        if (r == -E2BIG)
                n = 0;
        else if (r < 0)
                return r;
        *ret_size = n;
        return 0;
}

int cache_key_tpm2_load(const char *sealed_path, const char *tcti, uint32_t pcr_mask, Secret **ret_key) {
        _cleanup_free_ uint8_t *data = NULL;
        Secret *key = NULL;
        Tpm2 t = TPM2_NULL;
        size_t size = 0;
        int r;

        assert_return(sealed_path, -EINVAL);
        assert_return(ret_key, -EINVAL);
        assert_return(!(pcr_mask & ~CACHE_KEY_TPM2_PCR_MASK_ALL), -EINVAL);

        data = malloc(CACHE_KEY_TPM2_BLOB_MAX + 1);
        if (!data)
                return -ENOMEM;
        r = read_blob(sealed_path, data, CACHE_KEY_TPM2_BLOB_MAX, &size);
        if (r == -ENOENT)
                r = make_new(&t, sealed_path, tcti, pcr_mask, &key);
        else if (r >= 0)
                r = load_existing(&t, sealed_path, tcti, pcr_mask, data, size, &key);
        tpm2_done(&t);
        if (r < 0)
                return r;
        *ret_key = key;
        return 0;
}
