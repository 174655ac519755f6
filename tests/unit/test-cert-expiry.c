/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cert-expiry.h"
#include "test-pki.h"

#define T_2030_01_01 ((time_t) 1893456000)
#define T_2031_06_15_12 ((time_t) 1939291200) /* 2031-06-15 12:00:00Z */
#define T_2001_02_03 ((time_t) 981158400)
#define T_2060_02_29 ((time_t) 2845324800) /* past 2050: a GeneralizedTime */

static EVP_PKEY *key;

static X509 *cert_until(time_t not_after, EVP_PKEY *issuer_key, X509 *issuer) {
        TestCertSpec spec = {
                .cn = "leaf.example.com", .not_before_at = T_2001_02_03 - 86400, .not_after_at = not_after};
        X509 *x = test_pki_cert_new(&spec, key, issuer, issuer_key);

        assert_non_null(x);
        return x;
}

/* Append x as PEM to b. */
static void pem_append(Buf *b, X509 *x) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *p;
        long n;

        assert_non_null(bio);
        assert_int_equal(PEM_write_bio_X509(bio, x), 1);
        n = BIO_get_mem_data(bio, &p);
        assert_true(n > 0);
        assert_int_equal(buf_put(b, p, (size_t) n), 0);
        BIO_free(bio);
}

static void der_append(Buf *b, X509 *x) {
        unsigned char *p = NULL;
        int n = i2d_X509(x, &p);

        assert_true(n > 0);
        assert_int_equal(buf_put(b, p, (size_t) n), 0);
        OPENSSL_free(p);
}

static int64_t expect_cert(const Buf *b) {
        int64_t t = -1;

        assert_int_equal(cert_not_after((const uint8_t *) b->data, b->len, &t), 1);
        return t;
}

static void expect_none(const void *p, size_t n) {
        int64_t t = 42;

        assert_int_equal(cert_not_after(p, n, &t), 0);
        assert_int_equal(t, 42); /* untouched */
}

static void test_pem(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        X509 *x = cert_until(T_2031_06_15_12, NULL, NULL);

        pem_append(&b, x);
        assert_int_equal(expect_cert(&b), T_2031_06_15_12);
        /* Leading white space is fine. */
        buf_done(&b);
        assert_int_equal(buf_puts(&b, "\n  \r\n"), 0);
        pem_append(&b, x);
        assert_int_equal(expect_cert(&b), T_2031_06_15_12);
        X509_free(x);
}

static void test_der(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        X509 *x = cert_until(T_2060_02_29, NULL, NULL);

        der_append(&b, x);
        assert_int_equal(expect_cert(&b), T_2060_02_29);
        /* Cut short: no certificate. */
        expect_none(b.data, b.len - 1);
        X509_free(x);
}

static void test_expired(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        X509 *x = cert_until(T_2001_02_03, NULL, NULL);

        pem_append(&b, x);
        assert_int_equal(expect_cert(&b), T_2001_02_03);
        X509_free(x);
}

/* A chain: the leaf first, then its CA, which expires later or earlier. The leaf counts. */
static void test_chain(void **state) {
        _cleanup_buf_ Buf pem = BUF_INIT, der = BUF_INIT, ca_first = BUF_INIT;
        EVP_PKEY *ca_key = test_pki_key_new();
        TestCertSpec ca_spec = {
                .cn = "ca", .ca = true, .not_before_at = T_2001_02_03 - 86400, .not_after_at = T_2060_02_29};
        X509 *ca, *leaf;

        assert_non_null(ca_key);
        ca = test_pki_cert_new(&ca_spec, ca_key, NULL, NULL);
        assert_non_null(ca);
        leaf = cert_until(T_2030_01_01, ca_key, ca);
        pem_append(&pem, leaf);
        pem_append(&pem, ca);
        assert_int_equal(expect_cert(&pem), T_2030_01_01);
        der_append(&der, leaf);
        der_append(&der, ca);
        assert_int_equal(expect_cert(&der), T_2030_01_01);
        /* The first certificate is the one that counts, whatever it is. */
        pem_append(&ca_first, ca);
        pem_append(&ca_first, leaf);
        assert_int_equal(expect_cert(&ca_first), T_2060_02_29);
        X509_free(leaf);
        X509_free(ca);
        EVP_PKEY_free(ca_key);
}

/* A private key in front of the certificate (haproxy's bundle): the certificate counts. */
static void test_key_then_cert(void **state) {
        _cleanup_buf_ Buf b = BUF_INIT;
        X509 *x = cert_until(T_2030_01_01, NULL, NULL);
        BIO *bio = BIO_new(BIO_s_mem());
        char *p;
        long n;

        assert_int_equal(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
        n = BIO_get_mem_data(bio, &p);
        assert_int_equal(buf_put(&b, p, (size_t) n), 0);
        BIO_free(bio);
        expect_none(b.data, b.len); /* a key alone is no certificate */
        pem_append(&b, x);
        assert_int_equal(expect_cert(&b), T_2030_01_01);
        X509_free(x);
}

static void test_not_certificates(void **state) {
        static const char *const texts[] = {
                "",
                "hunter2",
                "-----BEGIN",
                "-----BEGIN CERTIFICATE-----\n",
                "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
                "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n",
                "-----BEGIN PGP MESSAGE-----\nhQEMA\n-----END PGP MESSAGE-----\n",
                "secret text, then -----BEGIN CERTIFICATE-----",
        };
        static const uint8_t der_junk[] = {0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x00};
        _cleanup_buf_ Buf late = BUF_INIT;
        X509 *x = cert_until(T_2030_01_01, NULL, NULL);
        BIO *bio;
        char *p;
        long n;

        FOREACH_ARRAY(t, texts, ELEMENTSOF(texts))
                expect_none(*t, strlen(*t));
        /* A private key alone, in the format of its algorithm (made here: no key is committed). */
        bio = BIO_new(BIO_s_mem());
        assert_non_null(bio);
        assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, key, NULL, NULL, 0, NULL, NULL), 1);
        n = BIO_get_mem_data(bio, &p);
        expect_none(p, (size_t) n);
        BIO_free(bio);
        expect_none(der_junk, sizeof(der_junk));
        expect_none(NULL, 0);
        /* A real certificate after text that is no PEM: the data is text, not a certificate. */
        assert_int_equal(buf_puts(&late, "password: x\n"), 0);
        pem_append(&late, x);
        expect_none(late.data, late.len);
        X509_free(x);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pem),           cmocka_unit_test(test_der),
                cmocka_unit_test(test_expired),       cmocka_unit_test(test_chain),
                cmocka_unit_test(test_key_then_cert), cmocka_unit_test(test_not_certificates),
        };
        int r;

        key = test_pki_key_new();
        if (!key)
                return EXIT_FAILURE;
        r = cmocka_run_group_tests(tests, NULL, NULL);
        EVP_PKEY_free(key);
        return r;
}
