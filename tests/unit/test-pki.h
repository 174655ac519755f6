/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A test PKI made at test time with OpenSSL's API: ECDSA P-256 keys (fast), SHA-256
 * signatures, dates relative to now. For unit tests only: failures return NULL or -errno
 * and the caller asserts. */

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "macro.h"

/* OpenSSL's STACK_OF(X509), under a name clang-format can read (peer-cert.h has the same). */
typedef STACK_OF(X509) X509Chain;

typedef enum TestEku {
        TEST_EKU_NONE, /* no extendedKeyUsage extension */
        TEST_EKU_CLIENT,
        TEST_EKU_SERVER,
        TEST_EKU_CLIENT_SERVER,
        TEST_EKU_ANY,          /* anyExtendedKeyUsage */
        TEST_EKU_CODE_SIGNING, /* a known usage that is neither */
        _TEST_EKU_MAX,
} TestEku;

typedef struct TestCertSpec {
        const char *cn;         /* subject CN; NULL for none */
        const char *org;        /* subject O; NULL for none */
        const char *const *dns; /* NULL-terminated lists of subjectAltName entries; NULL */
        const char *const *ips; /* for none. No entry at all means no SAN extension. */
        const char *const *uris;
        int64_t not_before;   /* seconds from now; 0 means an hour ago */
        int64_t not_after;    /* seconds from now; 0 means in a day */
        time_t not_before_at; /* absolute dates instead, when not 0 */
        time_t not_after_at;
        bool ca; /* basicConstraints CA:TRUE and keyCertSign */
        TestEku eku;
} TestCertSpec;

EVP_PKEY *test_pki_key_new(void);

/* A certificate for key, signed by issuer_key as issuer (both NULL: self-signed). */
X509 *test_pki_cert_new(const TestCertSpec *spec, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key);

/* A root CA, an intermediate CA under it, and an unrelated CA ("other") that nothing
 * trusts; "impostor" is a CA with the root's very subject name but another key. */
typedef struct TestPki {
        EVP_PKEY *root_key;
        X509 *root;
        EVP_PKEY *inter_key;
        X509 *inter;
        EVP_PKEY *other_key;
        X509 *other;
        EVP_PKEY *impostor_key;
        X509 *impostor;
} TestPki;

#define TEST_PKI_ROOT_CN "keyward test root CA"
#define TEST_PKI_INTER_CN "keyward test intermediate CA"
#define TEST_PKI_OTHER_CN "some other CA"

int test_pki_init(TestPki *p);
void test_pki_done(TestPki *p);

/* A store holding the root only, as tls_client_roots_new() would make from its PEM. */
X509_STORE *test_pki_store(const TestPki *p);

/* A leaf signed by the intermediate (signer NULL) or by the given CA. */
X509 *
test_pki_leaf(const TestPki *p, const TestCertSpec *spec, EVP_PKEY *key, X509 *signer, EVP_PKEY *signer_key);

/* A stack of up-referenced certificates, for the untrusted intermediates. */
X509Chain *test_pki_chain(X509 *const *certs, size_t n);

/* PEM files: certificates in order, or one private key (unencrypted, or with a
 * passphrase). */
int test_pki_write_certs(const char *path, X509 *const *certs, size_t n);
int test_pki_write_key(const char *path, EVP_PKEY *key, const char *passphrase);

/* A client or server SSL_CTX with this certificate chain and key, for handshake tests. */
int test_pki_ctx_use(SSL_CTX *ctx, X509 *leaf, X509 *const *chain, size_t n_chain, EVP_PKEY *key);

static inline void test_pki_x509_freep(X509 **x) {
        X509_free(*x);
}
static inline void test_pki_key_freep(EVP_PKEY **k) {
        EVP_PKEY_free(*k);
}
static inline void test_pki_chain_freep(X509Chain **c) {
        sk_X509_pop_free(*c, X509_free);
}
#define _cleanup_x509_ _cleanup_(test_pki_x509_freep)
#define _cleanup_pkey_ _cleanup_(test_pki_key_freep)
#define _cleanup_chain_ _cleanup_(test_pki_chain_freep)
