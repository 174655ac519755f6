/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Go's x509 chain verification as Knox runs it, with Go's error messages. */

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "peer-cert-internal.h"

DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(X509_STORE_CTX *, X509_STORE_CTX_free, NULL);

static int asn1_time_to_time_t(const ASN1_TIME *a, time_t *ret) {
        struct tm tm = {};

        if (!a || ASN1_TIME_to_tm(a, &tm) != 1)
                return -EBADMSG;
        *ret = timegm(&tm);
        return 0;
}

/* Go's time.RFC3339 for a UTC time. */
static void format_rfc3339(time_t t, char ret[static 32]) {
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(ret, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(ret, 32, "@%lld", (long long) t);
}

static int cert_validity(X509 *x, time_t *ret_not_before, time_t *ret_not_after) {
        if (asn1_time_to_time_t(X509_get0_notBefore(x), ret_not_before) < 0 ||
            asn1_time_to_time_t(X509_get0_notAfter(x), ret_not_after) < 0)
                return -EBADMSG;
        return 0;
}

/* Go's check of the validity period (both ends inclusive): 0, or 1 with Go's message. */
static int check_validity(X509 *x, time_t now, char **ret_message) {
        time_t not_before, not_after;
        char a[32], b[32];

        if (cert_validity(x, &not_before, &not_after) < 0) {
                *ret_message =
                        strdup("x509: certificate has expired or is not yet valid: malformed validity");
                return *ret_message ? 1 : -ENOMEM;
        }

        format_rfc3339(now, a);
        if (now < not_before) {
                format_rfc3339(not_before, b);
                return asprintf(
                               ret_message,
                               "x509: certificate has expired or is not yet valid: current time %s is before %s",
                               a, b) < 0 ?
                        -ENOMEM :
                        1;
        }
        if (now > not_after) {
                format_rfc3339(not_after, b);
                return asprintf(
                               ret_message,
                               "x509: certificate has expired or is not yet valid: current time %s is after %s",
                               a, b) < 0 ?
                        -ENOMEM :
                        1;
        }
        return 0;
}

/* Go's rule: a certificate that lists extended key usages must list clientAuth or
 * anyExtendedKeyUsage (unknown OIDs alone do not do); one without the extension passes. */
static bool eku_allows_client_auth(X509 *x) {
        if (!(X509_get_extension_flags(x) & EXFLAG_XKUSAGE))
                return true;
        return (X509_get_extended_key_usage(x) & (XKU_SSL_CLIENT | XKU_ANYEKU)) != 0;
}

/* The checks Go's isValid() makes on each certificate, in its order. */
static int check_cert(X509 *x, time_t now, char **ret_message) {
        int r;

        if (X509_get_extension_flags(x) & EXFLAG_CRITICAL) {
                *ret_message = strdup("x509: unhandled critical extension");
                return *ret_message ? 1 : -ENOMEM;
        }
        r = check_validity(x, now, ret_message);
        if (r != 0)
                return r;
        if (!eku_allows_client_auth(x)) {
                *ret_message = strdup("x509: certificate specifies an incompatible key usage");
                return *ret_message ? 1 : -ENOMEM;
        }
        return 0;
}

/* Go's UnknownAuthorityError hint for an issuer found by name whose signature does not
 * verify the child. */
static int unknown_authority_hint(X509 *issuer, char **ret_message) {
        _cleanup_free_ char *name = NULL;
        X509_NAME *subject = issuer ? X509_get_subject_name(issuer) : NULL;
        const char *why = "x509: ECDSA verification failure";
        EVP_PKEY *pkey;

        if (!issuer) {
                *ret_message = strdup("x509: certificate signed by unknown authority");
                return *ret_message ? 1 : -ENOMEM;
        }

        pkey = X509_get0_pubkey(issuer);
        if (pkey && EVP_PKEY_is_a(pkey, "RSA"))
                why = "crypto/rsa: verification error";
        else if (pkey && EVP_PKEY_is_a(pkey, "ED25519"))
                why = "x509: Ed25519 verification failure";

        /* CommonName, else the first Organization, else the serial number. */
        for (int nid_i = 0; subject && !name && nid_i < 2; nid_i++) {
                int idx = X509_NAME_get_index_by_NID(
                        subject, nid_i == 0 ? NID_commonName : NID_organizationName, -1);
                unsigned char *utf8 = NULL;
                int len;

                if (idx < 0)
                        continue;
                len = ASN1_STRING_to_UTF8(
                        &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx)));
                if (len > 0) {
                        name = strndup((const char *) utf8, (size_t) len);
                        if (!name) {
                                OPENSSL_free(utf8);
                                return -ENOMEM;
                        }
                }
                OPENSSL_free(utf8);
        }
        if (!name) {
                BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(issuer), NULL);
                char *dec = bn ? BN_bn2dec(bn) : NULL;
                int k;

                BN_free(bn);
                if (!dec)
                        return -ENOMEM;
                k = asprintf(&name, "serial:%s", dec);
                OPENSSL_free(dec);
                if (k < 0) {
                        name = NULL;
                        return -ENOMEM;
                }
        }

        if (asprintf(
                    ret_message,
                    "x509: certificate signed by unknown authority (possibly because of \"%s\" while "
                    "trying to verify candidate authority certificate \"%s\")",
                    why, name) < 0)
                return -ENOMEM;
        return 1;
}

/* OpenSSL's verdict on the chain, in Go's words. */
static int chain_error_message(X509_STORE_CTX *store_ctx, char **ret_message) {
        int err = X509_STORE_CTX_get_error(store_ctx);
        const char *m;

        switch (err) {
        case X509_V_ERR_OUT_OF_MEM:
                return -ENOMEM;
        case X509_V_ERR_CERT_SIGNATURE_FAILURE: {
                X509Chain *chain = X509_STORE_CTX_get0_chain(store_ctx);
                int depth = X509_STORE_CTX_get_error_depth(store_ctx);

                return unknown_authority_hint(
                        chain && depth + 1 < sk_X509_num(chain) ? sk_X509_value(chain, depth + 1) : NULL,
                        ret_message);
        }
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_CERT_UNTRUSTED:
        case X509_V_ERR_CERT_REJECTED:
        case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
        case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
                m = "x509: certificate signed by unknown authority";
                break;
        case X509_V_ERR_INVALID_CA:
        case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
                m = "x509: certificate is not authorized to sign other certificates";
                break;
        case X509_V_ERR_PATH_LENGTH_EXCEEDED:
                m = "x509: too many intermediates for path length constraint";
                break;
        case X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION:
                m = "x509: unhandled critical extension";
                break;
        case X509_V_ERR_INVALID_PURPOSE:
                m = "x509: certificate specifies an incompatible key usage";
                break;
        case X509_V_ERR_PERMITTED_VIOLATION:
        case X509_V_ERR_EXCLUDED_VIOLATION:
        case X509_V_ERR_SUBTREE_MINMAX:
        case X509_V_ERR_UNSUPPORTED_CONSTRAINT_TYPE:
        case X509_V_ERR_UNSUPPORTED_CONSTRAINT_SYNTAX:
        case X509_V_ERR_UNSUPPORTED_NAME_SYNTAX:
                return asprintf(
                               ret_message,
                               "x509: a root or intermediate certificate is not authorized to sign for this "
                               "name: %s",
                               X509_verify_cert_error_string(err)) < 0 ?
                        -ENOMEM :
                        1;
        default:
                return asprintf(ret_message, "x509: %s", X509_verify_cert_error_string(err)) < 0 ? -ENOMEM :
                                                                                                   1;
        }

        *ret_message = strdup(m);
        return *ret_message ? 1 : -ENOMEM;
}

/* 0 when the chain verifies, with the span of time in which all its certificates are
 * valid; 1 with Go's x509 message when it does not; -errno. */
int peer_cert_verify_chain(
        X509 *leaf,
        X509Chain *untrusted,
        X509_STORE *roots,
        time_t now,
        time_t *ret_valid_from,
        time_t *ret_valid_until,
        char **ret_message) {
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *store_ctx = NULL;
        time_t from = 0, until = 0;
        X509Chain *chain;
        int k, r;

        /* Go looks at the leaf on its own before building any chain. */
        r = check_cert(leaf, now, ret_message);
        if (r != 0)
                return r;

        store_ctx = X509_STORE_CTX_new();
        if (!store_ctx)
                return -ENOMEM;
        if (X509_STORE_CTX_init(store_ctx, roots, leaf, untrusted) != 1)
                return -ENOMEM;
        /* Any certificate of the store anchors a chain, as in a Go CertPool; dates and
         * usages are checked below in Go's way (no purpose set: OpenSSL's purposes also
         * judge key usage bits and Netscape types, which Go ignores). */
        X509_STORE_CTX_set_flags(store_ctx, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME);

        k = X509_verify_cert(store_ctx);
        if (k < 0) {
                int err = X509_STORE_CTX_get_error(store_ctx);

                ERR_clear_error();
                return err == X509_V_ERR_OUT_OF_MEM ? -ENOMEM : -EIO;
        }
        if (k == 0) {
                ERR_clear_error();
                return chain_error_message(store_ctx, ret_message);
        }

        chain = X509_STORE_CTX_get0_chain(store_ctx);
        for (int i = 0; i < sk_X509_num(chain); i++) {
                X509 *x = sk_X509_value(chain, i);
                time_t nb, na;

                if (i > 0) {
                        r = check_cert(x, now, ret_message);
                        if (r != 0)
                                return r;
                }
                if (cert_validity(x, &nb, &na) < 0)
                        return -EBADMSG; /* cannot happen: check_cert() read them */
                if (i == 0 || nb > from)
                        from = nb;
                if (i == 0 || na < until)
                        until = na;
        }
        *ret_valid_from = from;
        *ret_valid_until = until;
        return 0;
}
