/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "audit-verify.h"
#include "fuzz.h"

/* An audit file, as keywardd audit-verify reads it: line by line, with the checkpoint key. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const uint8_t key[AUDIT_CHAIN_KEY_SIZE] = "fuzz-audit-verify-key-0123456789";
        const char *p = (const char *) data, *end = p + size;
        AuditVerifier v;
        FILE *out;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        out = fopen("/dev/null", "we");
        if (!out)
                return 0;

        audit_verifier_init(&v, key, out);
        audit_verifier_file(&v, "fuzz");
        /* The first line also as --anchor's SEQ:HASH; when it parses, the file must hold it. */
        {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len = nl ? (size_t) (nl - p) : (size_t) (end - p);
                char spelled[128];

                if (len < sizeof(spelled)) {
                        memcpy(spelled, p, len);
                        spelled[len] = '\0';
                        if (audit_anchor_parse(spelled, &v.anchor_seq, v.anchor_hash) == 0) {
                                v.have_anchor = true;
                                v.first_seq = 0; /* any start */
                                p += len + (nl ? 1 : 0);
                        }
                }
        }
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len = nl ? (size_t) (nl - p) : (size_t) (end - p);

                if (audit_verifier_line(&v, p, len, nl != NULL) != 0)
                        break;
                p += len + (nl ? 1 : 0);
        }
        if (p >= end && audit_verifier_end(&v) == 0)
                (void) audit_verifier_finish(&v);
        /* A break is always reported as one. */
        if (p < end && !v.broken)
                __builtin_trap();
        fclose(out);
        return 0;
}
