/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "peer-cert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "strv.h"

/* IP SANs kept per certificate; more are ignored (no host could need them). */
#define IP_SAN_MAX 64

struct PeerCert {
        atomic_uint n_ref; /* shared through the verification cache, across threads */
        bool verified;
        time_t valid_from, valid_until; /* when verified: the chain's common validity */
        char *error;                    /* Knox's message; NULL when verified */
        char **dns;
        char **ips;            /* printed as Go prints them */
        uint8_t (*ip_bin)[16]; /* the same, as IPv6 (IPv4 mapped), for comparisons */
        size_t n_ip_bin;
        char **uris;   /* those without a NUL byte */
        size_t n_uris; /* all of them, for the SPIFFE provider's count */
        bool has_san_ext;
        char *common_name; /* the last CN of the subject, for Go's legacy-CN hint only */
};

static char *const empty_strv[] = {NULL};

DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(X509_STORE_CTX *, X509_STORE_CTX_free, NULL);

static PeerCert *peer_cert_ref(PeerCert *pc) {
        atomic_fetch_add_explicit(&pc->n_ref, 1, memory_order_relaxed);
        return pc;
}

PeerCert *peer_cert_free(PeerCert *pc) {
        if (!pc)
                return NULL;
        if (atomic_fetch_sub_explicit(&pc->n_ref, 1, memory_order_acq_rel) > 1)
                return NULL;
        free(pc->error);
        strv_free(pc->dns);
        strv_free(pc->ips);
        free(pc->ip_bin);
        strv_free(pc->uris);
        free(pc->common_name);
        free(pc);
        return NULL;
}

bool peer_cert_verified(const PeerCert *pc) {
        return pc && pc->verified;
}

const char *peer_cert_error(const PeerCert *pc) {
        if (!pc)
                return PEER_CERT_ERROR_NO_CERT;
        return pc->verified ? NULL : pc->error;
}

char *const *peer_cert_dns_names(const PeerCert *pc) {
        return pc && pc->dns ? pc->dns : empty_strv;
}

char *const *peer_cert_ip_addresses(const PeerCert *pc) {
        return pc && pc->ips ? pc->ips : empty_strv;
}

char *const *peer_cert_uris(const PeerCert *pc) {
        return pc && pc->uris ? pc->uris : empty_strv;
}

/* ---- names ------------------------------------------------------------------------- */

/* An IPv4 or IPv6 literal as Go's net.ParseIP accepts it, as 16 bytes (IPv4 mapped). */
static bool parse_ip(const char *s, uint8_t ret[16]) {
        struct in_addr a4;

        if (inet_pton(AF_INET, s, &a4) == 1) {
                memset(ret, 0, 10);
                ret[10] = ret[11] = 0xff;
                memcpy(ret + 12, &a4, 4);
                return true;
        }
        return inet_pton(AF_INET6, s, ret) == 1;
}

static bool ip_is_v4_mapped(const uint8_t ip[16]) {
        static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

        return memcmp(ip, prefix, sizeof(prefix)) == 0;
}

/* Go's net.IP.String(): dotted quad for IPv4 (mapped ones included), otherwise RFC 5952:
 * lowercase hex groups, the first longest run of two or more zero groups as "::". glibc's
 * inet_ntop() differs for a few addresses (it prints "::1:2" as "::0.1.0.2"). */
static void format_ip(const uint8_t ip[16], char ret[static INET6_ADDRSTRLEN]) {
        int best = -1, best_len = 0;
        size_t n = 0;

        if (ip_is_v4_mapped(ip)) {
                snprintf(ret, INET6_ADDRSTRLEN, "%u.%u.%u.%u", ip[12], ip[13], ip[14], ip[15]);
                return;
        }

        for (int i = 0; i < 8;) {
                int j = i;

                while (j < 8 && ip[2 * j] == 0 && ip[2 * j + 1] == 0)
                        j++;
                if (j - i > best_len) {
                        best = i;
                        best_len = j - i;
                }
                i = j == i ? i + 1 : j;
        }
        if (best_len < 2)
                best = -1;

        ret[0] = '\0';
        for (int i = 0; i < 8; i++) {
                if (i == best) {
                        n += (size_t) snprintf(ret + n, INET6_ADDRSTRLEN - n, "::");
                        i += best_len - 1;
                        continue;
                }
                n += (size_t) snprintf(
                        ret + n, INET6_ADDRSTRLEN - n, "%s%x",
                        i == 0 || n == 0 || ret[n - 1] == ':' ? "" : ":",
                        (unsigned) (ip[2 * i] << 8 | ip[2 * i + 1]));
        }
}

/* An IA5String from the certificate as a C string: 1 with *ret set, or 0 with *ret NULL
 * when it holds a NUL byte, which no C string could match. */
static int asn1_to_cstring(const ASN1_STRING *s, char **ret) {
        const unsigned char *d = ASN1_STRING_get0_data(s);
        int len = ASN1_STRING_length(s);
        char *c;

        if (!d || len < 0 || memchr(d, 0, (size_t) len)) {
                *ret = NULL;
                return 0;
        }
        c = strndup((const char *) d, (size_t) len);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 1;
}

static int push_ip(PeerCert *pc, const ASN1_OCTET_STRING *o) {
        const unsigned char *d = ASN1_STRING_get0_data(o);
        int len = ASN1_STRING_length(o);
        char text[INET6_ADDRSTRLEN];
        uint8_t ip[16] = {};
        void *p;
        int r;

        if (len == 4) {
                ip[10] = ip[11] = 0xff;
                memcpy(ip + 12, d, 4);
        } else if (len == 16)
                memcpy(ip, d, 16);
        else
                return 0; /* not an address; Go refuses such certificates outright */
        if (pc->n_ip_bin >= IP_SAN_MAX)
                return 0;

        p = reallocarray(pc->ip_bin, pc->n_ip_bin + 1, sizeof(pc->ip_bin[0]));
        if (!p)
                return -ENOMEM;
        pc->ip_bin = p;
        memcpy(pc->ip_bin[pc->n_ip_bin++], ip, 16);

        format_ip(ip, text);
        r = strv_extend(&pc->ips, text);
        return r < 0 ? r : 0;
}

static int extract_names(PeerCert *pc, X509 *leaf) {
        X509_NAME *subject = X509_get_subject_name(leaf);
        GENERAL_NAMES *gens;
        int crit = -1, r = 0;

        pc->has_san_ext = X509_get_ext_by_NID(leaf, NID_subject_alt_name, -1) >= 0;

        gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
        for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && r >= 0; i++) {
                const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
                char *s = NULL;

                switch (g->type) {
                case GEN_DNS:
                        r = asn1_to_cstring(g->d.dNSName, &s);
                        if (r > 0)
                                r = strv_push(&pc->dns, s);
                        break;
                case GEN_URI:
                        pc->n_uris++;
                        r = asn1_to_cstring(g->d.uniformResourceIdentifier, &s);
                        if (r > 0)
                                r = strv_push(&pc->uris, s);
                        break;
                case GEN_IPADD:
                        r = push_ip(pc, g->d.iPAddress);
                        break;
                default:
                        break;
                }
                if (r < 0)
                        free(s);
        }
        GENERAL_NAMES_free(gens);
        if (r < 0)
                return r;

        if (subject) {
                int idx = -1, last = -1;

                while ((idx = X509_NAME_get_index_by_NID(subject, NID_commonName, idx)) >= 0)
                        last = idx;
                if (last >= 0) {
                        X509_NAME_ENTRY *e = X509_NAME_get_entry(subject, last);
                        unsigned char *utf8 = NULL;
                        int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));

                        if (len >= 0 && !memchr(utf8, 0, (size_t) len)) {
                                pc->common_name = strndup((const char *) utf8, (size_t) len);
                                if (!pc->common_name)
                                        r = -ENOMEM;
                        }
                        OPENSSL_free(utf8);
                }
        }
        return r;
}

/* ---- verification ------------------------------------------------------------------ */

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
static int verify_chain(
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

/* ---- the verification cache ---------------------------------------------------------- */

/* Verifying an ECDSA chain costs about 0.1 ms, nearly as much as a resumed handshake. The
 * verdict depends only on the certificates sent, the store and the time, so successes are
 * kept, keyed by the SHA-256 of the DER of every certificate the client sent, with the span
 * in which the whole chain is valid: a client that reconnects (resuming or not) costs a
 * digest, about 5 us. */
typedef struct CacheEntry {
        uint8_t digest[SHA256_DIGEST_LENGTH];
        PeerCert *pc;
} CacheEntry;

typedef struct PeerCertCache {
        pthread_mutex_t lock;
        EVP_MD *sha256;
        size_t n_entries;
        CacheEntry entries[];
} PeerCertCache;

static int cache_index = -1;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
        PeerCertCache *c = ptr;

        if (!c)
                return;
        for (size_t i = 0; i < c->n_entries; i++)
                peer_cert_free(c->entries[i].pc);
        EVP_MD_free(c->sha256);
        (void) pthread_mutex_destroy(&c->lock);
        free(c);
}

static void cache_index_init(void) {
        cache_index = X509_STORE_get_ex_new_index(0, NULL, NULL, NULL, cache_free);
}

int peer_cert_cache_attach(X509_STORE *roots, size_t n_entries) {
        PeerCertCache *c;

        assert_return(roots, -EINVAL);
        assert_return(n_entries > 0 && n_entries <= 1024 * 1024, -EINVAL);

        if (pthread_once(&cache_once, cache_index_init) != 0 || cache_index < 0)
                return -ENOMEM;
        if (X509_STORE_get_ex_data(roots, cache_index))
                return -EEXIST;

        c = calloc(1, sizeof(PeerCertCache) + n_entries * sizeof(CacheEntry));
        if (!c)
                return -ENOMEM;
        c->n_entries = n_entries;
        c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (!c->sha256 || pthread_mutex_init(&c->lock, NULL) != 0) {
                EVP_MD_free(c->sha256);
                free(c);
                ERR_clear_error();
                return -ENOMEM;
        }
        if (X509_STORE_set_ex_data(roots, cache_index, c) != 1) {
                cache_free(NULL, c, NULL, 0, 0, NULL);
                ERR_clear_error();
                return -ENOMEM;
        }
        return 0;
}

static PeerCertCache *cache_get(X509_STORE *roots) {
        return cache_index >= 0 && roots ? X509_STORE_get_ex_data(roots, cache_index) : NULL;
}

static int cache_digest(PeerCertCache *c, X509 *leaf, X509Chain *sent, uint8_t ret[SHA256_DIGEST_LENGTH]) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        int n_sent = sent ? sk_X509_num(sent) : 0; /* sk_X509_num(NULL) is -1 */
        unsigned len = 0;
        int r = -EIO;

        if (!md)
                return -ENOMEM;
        if (EVP_DigestInit_ex(md, c->sha256, NULL) != 1)
                goto finish;
        /* The leaf, then what came with it: DER is self-delimiting, so the concatenation is
         * unambiguous. */
        for (int i = -1; i < n_sent; i++) {
                X509 *x = i < 0 ? leaf : sk_X509_value(sent, i);
                unsigned char *der = NULL;
                int n = i2d_X509(x, &der), ok;

                if (n <= 0)
                        goto finish;
                ok = EVP_DigestUpdate(md, der, (size_t) n);
                OPENSSL_free(der);
                if (ok != 1)
                        goto finish;
        }
        if (EVP_DigestFinal_ex(md, ret, &len) == 1 && len == SHA256_DIGEST_LENGTH)
                r = 0;
finish:
        EVP_MD_CTX_free(md);
        ERR_clear_error();
        return r;
}

static CacheEntry *cache_slot(PeerCertCache *c, const uint8_t digest[SHA256_DIGEST_LENGTH]) {
        uint64_t h;

        memcpy(&h, digest, sizeof(h));
        return &c->entries[h % c->n_entries];
}

static PeerCert *cache_lookup(PeerCertCache *c, const uint8_t digest[SHA256_DIGEST_LENGTH], time_t now) {
        CacheEntry *e = cache_slot(c, digest);
        PeerCert *pc = NULL;

        (void) pthread_mutex_lock(&c->lock);
        if (e->pc && memcmp(e->digest, digest, SHA256_DIGEST_LENGTH) == 0 && now >= e->pc->valid_from &&
            now <= e->pc->valid_until)
                pc = peer_cert_ref(e->pc);
        (void) pthread_mutex_unlock(&c->lock);
        return pc;
}

static void cache_store(PeerCertCache *c, const uint8_t digest[SHA256_DIGEST_LENGTH], PeerCert *pc) {
        CacheEntry *e = cache_slot(c, digest);
        PeerCert *old;

        (void) pthread_mutex_lock(&c->lock);
        old = e->pc;
        memcpy(e->digest, digest, SHA256_DIGEST_LENGTH);
        e->pc = peer_cert_ref(pc);
        (void) pthread_mutex_unlock(&c->lock);
        peer_cert_free(old);
}

int peer_cert_verify(X509 *leaf, X509Chain *intermediates, X509_STORE *roots, time_t now, PeerCert **ret) {
        _cleanup_(peer_cert_freep) PeerCert *pc = NULL;
        _cleanup_free_ char *message = NULL;
        uint8_t digest[SHA256_DIGEST_LENGTH];
        PeerCertCache *cache = NULL;
        int r;

        assert_return(ret, -EINVAL);
        assert_return(!leaf || roots, -EINVAL);

        if (leaf) {
                cache = cache_get(roots);
                if (cache && cache_digest(cache, leaf, intermediates, digest) < 0)
                        cache = NULL; /* verify without it */
                if (cache) {
                        pc = cache_lookup(cache, digest, now);
                        if (pc) {
                                *ret = TAKE_PTR(pc);
                                return 0;
                        }
                }
        }

        pc = calloc(1, sizeof(PeerCert));
        if (!pc)
                return -ENOMEM;
        atomic_init(&pc->n_ref, 1);

        if (!leaf) {
                pc->error = strdup(PEER_CERT_ERROR_NO_CERT);
                if (!pc->error)
                        return -ENOMEM;
                *ret = TAKE_PTR(pc);
                return 0;
        }

        r = extract_names(pc, leaf);
        if (r < 0)
                return r;

        r = verify_chain(leaf, intermediates, roots, now, &pc->valid_from, &pc->valid_until, &message);
        if (r < 0)
                return r;
        if (r > 0) {
                if (asprintf(&pc->error, PEER_CERT_ERROR_PREFIX "%s", message) < 0) {
                        pc->error = NULL;
                        return -ENOMEM;
                }
                log_debug("Client certificate refused: %s", pc->error);
        } else {
                pc->verified = true;
                /* Only successes are kept: failures are cheap or rare, and their messages
                 * may name the time. */
                if (cache)
                        cache_store(cache, digest, pc);
        }

        *ret = TAKE_PTR(pc);
        return 0;
}

int peer_cert_from_ssl(SSL *ssl, X509_STORE *roots, PeerCert **ret) {
        assert_return(ssl, -EINVAL);

        /* On the server side the chain excludes the leaf. A resumed session brings both
         * back from the session cache. */
        return peer_cert_verify(
                SSL_get0_peer_certificate(ssl), SSL_get_peer_cert_chain(ssl), roots, time(NULL), ret);
}

/* ---- Go's hostname rules ----------------------------------------------------------- */

static char ascii_lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

/* Go's validHostname(): labels of [A-Za-z0-9_-] (no leading '-'), no empty label; a pattern
 * may have "*" as its whole first label but may not be "*" alone; an input may end in one
 * dot. */
static bool valid_hostname(const char *host, bool is_pattern) {
        size_t len = strlen(host), label = 0, pos = 0;

        if (!is_pattern && len > 0 && host[len - 1] == '.')
                len--;
        if (len == 0)
                return false;
        if (len == 1 && host[0] == '*')
                return false;

        for (size_t i = 0; i <= len; i++) {
                char c = i < len ? host[i] : '.';

                if (c == '.') {
                        if (pos == 0)
                                return false;
                        label++;
                        pos = 0;
                        continue;
                }
                if (is_pattern && label == 0 && pos == 0 && c == '*' &&
                    (i + 1 == len || host[i + 1] == '.')) {
                        pos++;
                        continue;
                }
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    (c == '-' && pos != 0)) {
                        pos++;
                        continue;
                }
                return false;
        }
        return true;
}

/* Go's matchHostnames(): same number of labels, a "*" first pattern label matches any one
 * label, the rest compare ASCII case-insensitively; one trailing dot of host ignored. */
static bool match_hostnames(const char *pattern, const char *host) {
        size_t plen = strlen(pattern), hlen = strlen(host), pi = 0, hi = 0;
        bool first = true;

        if (hlen > 0 && host[hlen - 1] == '.')
                hlen--;
        if (plen == 0 || hlen == 0)
                return false;

        for (;;) {
                size_t pe = pi, he = hi;

                while (pe < plen && pattern[pe] != '.')
                        pe++;
                while (he < hlen && host[he] != '.')
                        he++;

                if (!(first && pe - pi == 1 && pattern[pi] == '*')) {
                        if (pe - pi != he - hi)
                                return false;
                        for (size_t k = 0; k < pe - pi; k++)
                                if (ascii_lower(pattern[pi + k]) != ascii_lower(host[hi + k]))
                                        return false;
                }
                first = false;

                if (pe == plen || he == hlen)
                        return pe == plen && he == hlen;
                pi = pe + 1;
                hi = he + 1;
        }
}

/* Go's matchExactly(). */
static bool match_exactly(const char *a, const char *b) {
        if (isempty(a) || streq(a, ".") || isempty(b) || streq(b, "."))
                return false;
        if (strlen(a) != strlen(b))
                return false;
        for (; *a; a++, b++)
                if (ascii_lower(*a) != ascii_lower(*b))
                        return false;
        return true;
}

static int join(char *const *l, Buf *b) {
        STRV_FOREACH(s, l) {
                if (s != l)
                        (void) buf_puts(b, ", ");
                (void) buf_puts(b, *s);
        }
        return b->error;
}

/* Go's HostnameError.Error(). */
static int hostname_error(const PeerCert *pc, const char *host, char **ret_message) {
        _cleanup_buf_ Buf valid = BUF_INIT;
        uint8_t ip[16];
        int r;

        if (!pc->has_san_ext && pc->common_name && match_hostnames(pc->common_name, host))
                *ret_message =
                        strdup("x509: certificate relies on legacy Common Name field, use SANs instead");
        else {
                if (parse_ip(host, ip)) {
                        if (pc->n_ip_bin == 0)
                                return asprintf(
                                               ret_message,
                                               "x509: cannot validate certificate for %s because it doesn't "
                                               "contain any IP SANs",
                                               host) < 0 ?
                                        -ENOMEM :
                                        -EKEYREJECTED;
                        r = join(peer_cert_ip_addresses(pc), &valid);
                } else
                        r = join(peer_cert_dns_names(pc), &valid);
                if (r < 0)
                        return r;

                if (valid.len == 0)
                        r = asprintf(
                                ret_message,
                                "x509: certificate is not valid for any names, but wanted to match %s",
                                host);
                else
                        r = asprintf(
                                ret_message, "x509: certificate is valid for %s, not %s", valid.data, host);
                if (r < 0)
                        *ret_message = NULL;
        }
        return *ret_message ? -EKEYREJECTED : -ENOMEM;
}

int peer_cert_match_host(const PeerCert *pc, const char *host, char **reterr_message) {
        _cleanup_free_ char *candidate = NULL;
        const char *ip_text = host;
        size_t len;
        uint8_t ip[16];
        bool valid_candidate;

        assert_return(pc, -EINVAL);
        assert_return(host, -EINVAL);
        assert_return(reterr_message, -EINVAL);

        if (!pc->verified) {
                *reterr_message = strdup(strempty(pc->error));
                return *reterr_message ? -EKEYREJECTED : -ENOMEM;
        }

        /* IP literals, optionally in [ ], only against IP SANs. */
        len = strlen(host);
        if (len >= 3 && host[0] == '[' && host[len - 1] == ']') {
                candidate = strndup(host + 1, len - 2);
                if (!candidate)
                        return -ENOMEM;
                ip_text = candidate;
        }
        if (parse_ip(ip_text, ip)) {
                for (size_t i = 0; i < pc->n_ip_bin; i++)
                        if (memcmp(pc->ip_bin[i], ip, 16) == 0)
                                return 0;
                return hostname_error(pc, ip_text, reterr_message);
        }

        /* Names against DNS SANs only; wildcards and the trailing dot only when both sides
         * are valid hostnames, exact (case-insensitive) matches always. */
        valid_candidate = valid_hostname(host, false);
        STRV_FOREACH(m, peer_cert_dns_names(pc)) {
                if (valid_candidate && valid_hostname(*m, true)) {
                        if (match_hostnames(*m, host))
                                return 0;
                } else if (match_exactly(*m, host))
                        return 0;
        }
        return hostname_error(pc, host, reterr_message);
}

int peer_cert_spiffe_id(const PeerCert *pc, const char **ret_id, const char **reterr_message) {
        const char *uri;

        assert_return(pc, -EINVAL);
        assert_return(ret_id, -EINVAL);
        assert_return(reterr_message, -EINVAL);

        if (!pc->verified) {
                *reterr_message = strempty(pc->error);
                return -EKEYREJECTED;
        }
        if (pc->n_uris == 0) {
                *reterr_message = PEER_CERT_ERROR_NO_SPIFFE;
                return -EKEYREJECTED;
        }
        if (pc->n_uris > 1) {
                *reterr_message = PEER_CERT_ERROR_SPIFFE_MANY;
                return -EKEYREJECTED;
        }

        uri = pc->uris ? pc->uris[0] : NULL;
        if (!uri) {
                /* The one URI holds a NUL byte: not a usable identity. */
                *reterr_message = PEER_CERT_ERROR_SPIFFE_FORMAT;
                return -EKEYREJECTED;
        }
        if (!strneq(uri, "spiffe://", STRLEN("spiffe://"))) {
                *reterr_message = PEER_CERT_ERROR_SPIFFE_PREFIX;
                return -EKEYREJECTED;
        }
        if (!strchr(uri + STRLEN("spiffe://"), '/')) {
                *reterr_message = PEER_CERT_ERROR_SPIFFE_FORMAT;
                return -EKEYREJECTED;
        }

        *ret_id = uri;
        return 0;
}
