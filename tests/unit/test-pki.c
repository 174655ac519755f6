/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "test-pki.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

EVP_PKEY *test_pki_key_new(void) {
        return EVP_EC_gen("P-256");
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
        X509V3_CTX v3;
        X509_EXTENSION *e;
        int ok;

        X509V3_set_ctx(&v3, issuer ?: x, x, NULL, NULL, 0);
        e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
        if (!e)
                return -EINVAL;
        ok = X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
        return ok == 1 ? 0 : -ENOMEM;
}

static int push_name(GENERAL_NAMES *gens, int type, const char *value) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_STRING *s;

        if (!g)
                return -ENOMEM;
        if (type == GEN_IPADD)
                s = a2i_IPADDRESS(value);
        else {
                s = ASN1_IA5STRING_new();
                if (s && ASN1_STRING_set(s, value, (int) strlen(value)) != 1) {
                        ASN1_STRING_free(s);
                        s = NULL;
                }
        }
        if (!s) {
                GENERAL_NAME_free(g);
                return -EINVAL;
        }
        GENERAL_NAME_set0_value(g, type, s);
        if (sk_GENERAL_NAME_push(gens, g) <= 0) {
                GENERAL_NAME_free(g);
                return -ENOMEM;
        }
        return 0;
}

static int add_san(X509 *x, const TestCertSpec *spec) {
        static const int types[] = {GEN_DNS, GEN_IPADD, GEN_URI};
        const char *const *lists[] = {spec->dns, spec->ips, spec->uris};
        GENERAL_NAMES *gens;
        bool any = false;
        int r = 0;

        for (size_t i = 0; i < ELEMENTSOF(lists); i++)
                any = any || (lists[i] && lists[i][0]);
        if (!any)
                return 0;

        gens = sk_GENERAL_NAME_new_null();
        if (!gens)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(lists) && r >= 0; i++)
                for (const char *const *v = lists[i]; v && *v && r >= 0; v++)
                        r = push_name(gens, types[i], *v);
        if (r >= 0 && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
                r = -ENOMEM;
        GENERAL_NAMES_free(gens);
        return r;
}

X509 *test_pki_cert_new(const TestCertSpec *spec, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key) {
        static const char *const ekus[_TEST_EKU_MAX] = {
                [TEST_EKU_CLIENT] = "clientAuth",
                [TEST_EKU_SERVER] = "serverAuth",
                [TEST_EKU_CLIENT_SERVER] = "serverAuth,clientAuth",
                [TEST_EKU_ANY] = "anyExtendedKeyUsage",
                [TEST_EKU_CODE_SIGNING] = "codeSigning",
        };
        _cleanup_x509_ X509 *x = NULL;
        X509_NAME *name;
        uint64_t serial;
        time_t now = time(NULL);

        if (!spec || !key || !!issuer != !!issuer_key)
                return NULL;

        x = X509_new();
        if (!x || X509_set_version(x, X509_VERSION_3) != 1 ||
            RAND_bytes((unsigned char *) &serial, sizeof(serial)) != 1 ||
            ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial >> 1) != 1)
                return NULL;

        if (spec->not_before_at != 0 ?
                    !ASN1_TIME_set(X509_getm_notBefore(x), spec->not_before_at) :
                    !X509_time_adj_ex(X509_getm_notBefore(x), 0, spec->not_before ?: -3600, &now))
                return NULL;
        if (spec->not_after_at != 0 ?
                    !ASN1_TIME_set(X509_getm_notAfter(x), spec->not_after_at) :
                    !X509_time_adj_ex(X509_getm_notAfter(x), 0, spec->not_after ?: 86400, &now))
                return NULL;

        name = X509_get_subject_name(x);
        if (spec->org &&
            X509_NAME_add_entry_by_txt(
                    name, "O", MBSTRING_UTF8, (const unsigned char *) spec->org, -1, -1, 0) != 1)
                return NULL;
        if (spec->cn &&
            X509_NAME_add_entry_by_txt(
                    name, "CN", MBSTRING_UTF8, (const unsigned char *) spec->cn, -1, -1, 0) != 1)
                return NULL;
        if (X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) != 1)
                return NULL;
        if (X509_set_pubkey(x, key) != 1)
                return NULL;

        if (spec->ca) {
                if (add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
                    add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign") < 0)
                        return NULL;
        } else if (add_ext(x, issuer, NID_key_usage, "critical,digitalSignature") < 0)
                return NULL;
        if (spec->eku != TEST_EKU_NONE && add_ext(x, issuer, NID_ext_key_usage, ekus[spec->eku]) < 0)
                return NULL;
        if (add_san(x, spec) < 0)
                return NULL;

        if (X509_sign(x, issuer_key ?: key, EVP_sha256()) <= 0)
                return NULL;
        return TAKE_PTR(x);
}

void test_pki_done(TestPki *p) {
        EVP_PKEY_free(p->root_key);
        X509_free(p->root);
        EVP_PKEY_free(p->inter_key);
        X509_free(p->inter);
        EVP_PKEY_free(p->other_key);
        X509_free(p->other);
        EVP_PKEY_free(p->impostor_key);
        X509_free(p->impostor);
        *p = (TestPki){};
}

int test_pki_init(TestPki *p) {
        const TestCertSpec root = {.cn = TEST_PKI_ROOT_CN, .ca = true, .not_after = 10 * 86400};
        const TestCertSpec inter = {.cn = TEST_PKI_INTER_CN, .ca = true, .not_after = 5 * 86400};
        const TestCertSpec other = {.cn = TEST_PKI_OTHER_CN, .ca = true, .not_after = 10 * 86400};

        *p = (TestPki){};
        p->root_key = test_pki_key_new();
        p->inter_key = test_pki_key_new();
        p->other_key = test_pki_key_new();
        p->impostor_key = test_pki_key_new();
        if (!p->root_key || !p->inter_key || !p->other_key || !p->impostor_key)
                goto fail;
        p->root = test_pki_cert_new(&root, p->root_key, NULL, NULL);
        if (!p->root)
                goto fail;
        p->inter = test_pki_cert_new(&inter, p->inter_key, p->root, p->root_key);
        p->other = test_pki_cert_new(&other, p->other_key, NULL, NULL);
        p->impostor = test_pki_cert_new(&root, p->impostor_key, NULL, NULL);
        if (!p->inter || !p->other || !p->impostor)
                goto fail;
        return 0;

fail:
        test_pki_done(p);
        return -ENOMEM;
}

X509_STORE *test_pki_store(const TestPki *p) {
        X509_STORE *s = X509_STORE_new();

        if (s && X509_STORE_add_cert(s, p->root) != 1) {
                X509_STORE_free(s);
                return NULL;
        }
        return s;
}

X509 *test_pki_leaf(
        const TestPki *p, const TestCertSpec *spec, EVP_PKEY *key, X509 *signer, EVP_PKEY *signer_key) {
        return test_pki_cert_new(spec, key, signer ?: p->inter, signer_key ?: p->inter_key);
}

X509Chain *test_pki_chain(X509 *const *certs, size_t n) {
        X509Chain *s = sk_X509_new_null();

        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (X509_up_ref(certs[i]) != 1 || sk_X509_push(s, certs[i]) <= 0) {
                        sk_X509_pop_free(s, X509_free);
                        return NULL;
                }
        return s;
}

int test_pki_write_certs(const char *path, X509 *const *certs, size_t n) {
        FILE *f = fopen(path, "we");
        int r = 0;

        if (!f)
                return -errno;
        for (size_t i = 0; i < n && r == 0; i++)
                if (PEM_write_X509(f, certs[i]) != 1)
                        r = -EIO;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        return r;
}

int test_pki_write_key(const char *path, EVP_PKEY *key, const char *passphrase) {
        FILE *f = fopen(path, "we");
        int ok, r = 0;

        if (!f)
                return -errno;
        if (passphrase)
                ok = PEM_write_PrivateKey(
                        f, key, EVP_aes_256_cbc(), (const unsigned char *) passphrase,
                        (int) strlen(passphrase), NULL, NULL);
        else
                ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
        if (ok != 1)
                r = -EIO;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        return r;
}

int test_pki_ctx_use(SSL_CTX *ctx, X509 *leaf, X509 *const *chain, size_t n_chain, EVP_PKEY *key) {
        if (SSL_CTX_use_certificate(ctx, leaf) != 1)
                return -EINVAL;
        for (size_t i = 0; i < n_chain; i++)
                if (SSL_CTX_add1_chain_cert(ctx, chain[i]) != 1)
                        return -EINVAL;
        if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
                return -EKEYREJECTED;
        return 0;
}
