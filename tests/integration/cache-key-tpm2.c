/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cache-key-tpm2 VERB ARGS...: agent/cache-key-tpm2.c driven from test-cache-key-tpm2.sh,
 * against a TPM the test started (swtpm).
 *   present TCTI            prints "yes" or "no"
 *   load PATH TCTI PCRS     prints the 32-byte key in hex (a test key), and on stderr how long
 *                           the load took ("load: new key|unsealed|failed in N ms"); on
 *                           failure the errno's name (EBADMSG...), exit 1
 *   parse PCRS              prints the mask in hex, or the errno's name (exit 1)
 *   extend TCTI PCR         extends the PCR's SHA-256 bank (as a boot would), through ESYS
 *   hog TCTI N              leaves N transient objects loaded in the TPM (swtpm has no
 *                           resource manager to flush them), as another program might */

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "cache-key-tpm2.h"
#include "hexdecoct.h"
#include "parse.h"

static int fail(int r) {
        printf("%s\n", strerrorname_np(-r) ?: "unknown");
        return 1;
}

static int parse(const char *s) {
        uint32_t mask;
        int r;

        r = cache_key_tpm2_parse_pcrs(s, &mask);
        if (r < 0)
                return fail(r);
        printf("0x%06x\n", (unsigned) mask);
        return 0;
}

static int load(const char *path, const char *tcti, const char *pcrs) {
        _cleanup_(secret_freep) Secret *key = NULL;
        struct timespec a, b;
        const char *what;
        bool existed;
        char hex[2 * CACHE_KEY_TPM2_SIZE + 1];
        uint32_t mask;
        int r;

        r = cache_key_tpm2_parse_pcrs(pcrs, &mask);
        if (r < 0)
                return fail(r);
        existed = access(path, F_OK) == 0;
        clock_gettime(CLOCK_MONOTONIC, &a);
        r = cache_key_tpm2_load(path, tcti, mask, &key);
        clock_gettime(CLOCK_MONOTONIC, &b);
        what = r < 0 ? "failed" : existed ? "unsealed" : "new key";
        fprintf(stderr, "load: %s in %.1f ms\n", what,
                (double) (b.tv_sec - a.tv_sec) * 1e3 + (double) (b.tv_nsec - a.tv_nsec) / 1e6);
        if (r < 0)
                return fail(r);
        if (key->size != CACHE_KEY_TPM2_SIZE)
                return fail(-EMSGSIZE);
        hexencode(key->data, key->size, hex);
        hex[sizeof(hex) - 1] = '\0';
        printf("%s\n", hex);
        return 0;
}

static int extend(const char *tcti, const char *pcr) {
        TSS2_TCTI_CONTEXT *t = NULL;
        ESYS_CONTEXT *esys = NULL;
        TPML_DIGEST_VALUES digests = {
                .count = 1,
                .digests[0] = {.hashAlg = TPM2_ALG_SHA256, .digest.sha256 = {0x6b, 0x77}},
        };
        unsigned n;
        TSS2_RC rc;

        if (safe_atou(pcr, &n) < 0 || n > CACHE_KEY_TPM2_PCR_MAX)
                return fail(-EINVAL);
        if (Tss2_TctiLdr_Initialize(tcti, &t) != TSS2_RC_SUCCESS)
                return fail(-ENODEV);
        rc = Esys_Initialize(&esys, t, NULL);
        if (rc == TSS2_RC_SUCCESS)
                rc = Esys_PCR_Extend(
                        esys, ESYS_TR_PCR0 + n, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &digests);
        Esys_Finalize(&esys);
        Tss2_TctiLdr_Finalize(&t);
        if (rc != TSS2_RC_SUCCESS)
                return fail(-EIO);
        printf("extended\n");
        return 0;
}

static int hog(const char *tcti, const char *count) {
        static const TPM2B_SENSITIVE_CREATE sensitive = {};
        static const TPM2B_DATA outside = {};
        static const TPML_PCR_SELECTION pcrs = {};
        TPM2B_PUBLIC template = {
                .publicArea.type = TPM2_ALG_KEYEDHASH,
                .publicArea.nameAlg = TPM2_ALG_SHA256,
                .publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                        TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                        TPMA_OBJECT_SIGN_ENCRYPT,
                .publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_HMAC,
                .publicArea.parameters.keyedHashDetail.scheme.details.hmac.hashAlg = TPM2_ALG_SHA256,
        };
        TSS2_TCTI_CONTEXT *t = NULL;
        ESYS_CONTEXT *esys = NULL;
        TSS2_RC rc;
        unsigned n;

        if (safe_atou(count, &n) < 0)
                return fail(-EINVAL);
        if (Tss2_TctiLdr_Initialize(tcti, &t) != TSS2_RC_SUCCESS)
                return fail(-ENODEV);
        rc = Esys_Initialize(&esys, t, NULL);
        for (unsigned i = 0; rc == TSS2_RC_SUCCESS && i < n; i++) {
                ESYS_TR handle;

                template.publicArea.unique.keyedHash.size = 1;
                template.publicArea.unique.keyedHash.buffer[0] = (uint8_t) i;
                rc = Esys_CreatePrimary(
                        esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                        &template, &outside, &pcrs, &handle, NULL, NULL, NULL, NULL);
        }
        Esys_Finalize(&esys);
        Tss2_TctiLdr_Finalize(&t);
        if (rc != TSS2_RC_SUCCESS)
                return fail(-EIO);
        printf("hogged\n");
        return 0;
}

int main(int argc, char **argv) {
        if (argc == 3 && streq(argv[1], "present")) {
                printf("%s\n", cache_key_tpm2_present(argv[2]) ? "yes" : "no");
                return 0;
        }
        if (argc == 5 && streq(argv[1], "load"))
                return load(argv[2], argv[3], argv[4]);
        if (argc == 3 && streq(argv[1], "parse"))
                return parse(argv[2]);
        if (argc == 4 && streq(argv[1], "extend"))
                return extend(argv[2], argv[3]);
        if (argc == 4 && streq(argv[1], "hog"))
                return hog(argv[2], argv[3]);
        fprintf(stderr,
                "Usage: %s present TCTI | load PATH TCTI PCRS | parse PCRS | extend TCTI PCR | hog TCTI N\n",
                argv[0]);
        return 2;
}
