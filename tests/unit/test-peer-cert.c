/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peer-cert.h"
#include "strv.h"
#include "test-pki.h"

/* clang-format off */
#define T_2018_03_02 ((time_t) 1519948800) /* Knox's dev CA: valid 2018-03-02 .. 2023-03-01 */
#define T_2023_03_01 ((time_t) 1677628800)
#define T_2025_05_20 ((time_t) 1747735200) /* 10:00:00Z */
#define T_2030_01_01 ((time_t) 1893456000)
/* clang-format on */

#define VERIFY_PREFIX "auth: failed to verify client's certificate: "
#define UNKNOWN_AUTHORITY VERIFY_PREFIX "x509: certificate signed by unknown authority"
#define INCOMPATIBLE_USAGE VERIFY_PREFIX "x509: certificate specifies an incompatible key usage"

/* Built once in main(): key generation and signing are the slow part. */
static TestPki pki;
static X509_STORE *roots;

#define STRV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Verify a fresh leaf signed by signer (NULL: the intermediate) and sent with the given
 * intermediates, at time now. */
static PeerCert *verify_with(
        const TestCertSpec *spec,
        X509 *signer,
        EVP_PKEY *signer_key,
        X509 *const *sent,
        size_t n_sent,
        X509_STORE *store,
        time_t now) {
        _cleanup_pkey_ EVP_PKEY *key = test_pki_key_new();
        _cleanup_x509_ X509 *leaf = NULL;
        _cleanup_chain_ X509Chain *chain = NULL;
        PeerCert *pc = NULL;

        assert_non_null(key);
        leaf = test_pki_leaf(&pki, spec, key, signer, signer_key);
        assert_non_null(leaf);
        chain = test_pki_chain(sent, n_sent);
        assert_non_null(chain);
        assert_int_equal(peer_cert_verify(leaf, chain, store ?: roots, now, &pc), 0);
        assert_non_null(pc);
        return pc;
}

/* The usual case: a leaf under the intermediate, sent along with it, checked now. */
static PeerCert *verify_spec(const TestCertSpec *spec) {
        return verify_with(spec, NULL, NULL, &pki.inter, 1, NULL, time(NULL));
}

static void assert_strv_equal(char *const *l, const char *const *expected) {
        size_t i = 0;

        for (; expected[i]; i++) {
                assert_non_null(l[i]);
                assert_string_equal(l[i], expected[i]);
        }
        assert_null(l[i]);
}

static void assert_verified(const PeerCert *pc) {
        assert_null(peer_cert_error(pc));
        assert_true(peer_cert_verified(pc));
}

static void assert_refused(const PeerCert *pc, const char *message) {
        assert_false(peer_cert_verified(pc));
        assert_non_null(peer_cert_error(pc));
        assert_string_equal(peer_cert_error(pc), message);
}

/* ---- verification -------------------------------------------------------------------- */

static void test_no_cert(void **state) {
        _cleanup_(peer_cert_freep) PeerCert *pc = NULL;
        _cleanup_free_ char *msg = NULL;
        const char *id = NULL, *err = NULL;

        assert_int_equal(peer_cert_verify(NULL, NULL, roots, time(NULL), &pc), 0);
        assert_refused(pc, "auth: No peer certs configured");
        assert_null(peer_cert_dns_names(pc)[0]);
        assert_null(peer_cert_uris(pc)[0]);

        /* Neither provider can use it, and both say why. */
        assert_int_equal(peer_cert_match_host(pc, "host1.example.com", &msg), -EKEYREJECTED);
        assert_string_equal(msg, "auth: No peer certs configured");
        assert_int_equal(peer_cert_spiffe_id(pc, &id, &err), -EKEYREJECTED);
        assert_string_equal(err, "auth: No peer certs configured");
        assert_null(id);

        /* A NULL object reads as "no certificate". */
        assert_false(peer_cert_verified(NULL));
        assert_string_equal(peer_cert_error(NULL), "auth: No peer certs configured");
        assert_null(peer_cert_dns_names(NULL)[0]);
        assert_null(peer_cert_free(NULL));
}

static void test_chain_with_intermediate(void **state) {
        const TestCertSpec spec = {.cn = "host1", .dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        _cleanup_(peer_cert_freep) PeerCert *pc = verify_spec(&spec);

        assert_verified(pc);
        assert_strv_equal(peer_cert_dns_names(pc), STRV("host1.example.com"));
        assert_null(peer_cert_ip_addresses(pc)[0]);
        assert_null(peer_cert_uris(pc)[0]);
}

static void test_missing_intermediate(void **state) {
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        _cleanup_(peer_cert_freep) PeerCert *pc = verify_with(&spec, NULL, NULL, NULL, 0, NULL, time(NULL));

        assert_refused(pc, UNKNOWN_AUTHORITY);
        /* The names are still there, for logs. */
        assert_strv_equal(peer_cert_dns_names(pc), STRV("host1.example.com"));
}

static void test_signed_by_root(void **state) {
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        _cleanup_(peer_cert_freep) PeerCert *pc =
                verify_with(&spec, pki.root, pki.root_key, NULL, 0, NULL, time(NULL));

        assert_verified(pc);
}

/* Like a Go CertPool, any certificate of the store anchors a chain. */
static void test_intermediate_as_anchor(void **state) {
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        X509_STORE *store = X509_STORE_new();
        PeerCert *pc;

        assert_non_null(store);
        assert_int_equal(X509_STORE_add_cert(store, pki.inter), 1);
        pc = verify_with(&spec, NULL, NULL, NULL, 0, store, time(NULL));
        assert_verified(pc);
        peer_cert_free(pc);
        X509_STORE_free(store);
}

static void test_unknown_ca(void **state) {
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        PeerCert *pc;

        /* Signed by a CA nobody trusts, sent along or not. */
        pc = verify_with(&spec, pki.other, pki.other_key, &pki.other, 1, NULL, time(NULL));
        assert_refused(pc, UNKNOWN_AUTHORITY);
        peer_cert_free(pc);

        pc = verify_with(&spec, pki.other, pki.other_key, NULL, 0, NULL, time(NULL));
        assert_refused(pc, UNKNOWN_AUTHORITY);
        peer_cert_free(pc);

        /* A self-signed client certificate. */
        {
                _cleanup_pkey_ EVP_PKEY *key = test_pki_key_new();
                _cleanup_x509_ X509 *self = NULL;

                assert_non_null(key);
                self = test_pki_cert_new(&spec, key, NULL, NULL);
                assert_non_null(self);
                assert_int_equal(peer_cert_verify(self, NULL, roots, time(NULL), &pc), 0);
                assert_refused(pc, UNKNOWN_AUTHORITY);
                peer_cert_free(pc);
        }
}

/* An issuer with the root's very name but another key: Go adds a hint. */
static void test_impostor_ca(void **state) {
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        _cleanup_(peer_cert_freep) PeerCert *pc =
                verify_with(&spec, pki.impostor, pki.impostor_key, NULL, 0, NULL, time(NULL));

        assert_refused(
                pc,
                UNKNOWN_AUTHORITY " (possibly because of \"x509: ECDSA verification failure\" while trying "
                                  "to verify candidate authority certificate \"" TEST_PKI_ROOT_CN "\")");
}

static void test_expired(void **state) {
        /* Knox's dev_client certificate: valid 2018-03-02 to 2023-03-01. */
        const TestCertSpec spec = {
                .dns = STRV("host1.example.com"),
                .eku = TEST_EKU_CLIENT,
                .not_before_at = T_2018_03_02,
                .not_after_at = T_2023_03_01,
        };
        PeerCert *pc;

        pc = verify_with(&spec, NULL, NULL, &pki.inter, 1, NULL, T_2025_05_20);
        assert_refused(
                pc,
                VERIFY_PREFIX "x509: certificate has expired or is not yet valid: current time "
                              "2025-05-20T10:00:00Z is after 2023-03-01T00:00:00Z");
        peer_cert_free(pc);

        /* Both ends are inclusive, as in Go. The test CAs start today, so these take a CA
         * of their own that was valid back then. */
        {
                const TestCertSpec old_spec = {
                        .cn = "old CA",
                        .ca = true,
                        .not_before_at = T_2018_03_02 - 86400,
                        .not_after_at = T_2030_01_01,
                };
                _cleanup_pkey_ EVP_PKEY *old_key = test_pki_key_new();
                _cleanup_x509_ X509 *old_ca = NULL;
                X509_STORE *old_store = X509_STORE_new();

                assert_non_null(old_key);
                assert_non_null(old_store);
                old_ca = test_pki_cert_new(&old_spec, old_key, NULL, NULL);
                assert_non_null(old_ca);
                assert_int_equal(X509_STORE_add_cert(old_store, old_ca), 1);

                pc = verify_with(&spec, old_ca, old_key, NULL, 0, old_store, T_2023_03_01);
                assert_verified(pc);
                peer_cert_free(pc);
                pc = verify_with(&spec, old_ca, old_key, NULL, 0, old_store, T_2018_03_02);
                assert_verified(pc);
                peer_cert_free(pc);
                pc = verify_with(&spec, old_ca, old_key, NULL, 0, old_store, T_2023_03_01 + 1);
                assert_refused(
                        pc,
                        VERIFY_PREFIX "x509: certificate has expired or is not yet valid: current time "
                                      "2023-03-01T00:00:01Z is after 2023-03-01T00:00:00Z");
                peer_cert_free(pc);
                pc = verify_with(&spec, old_ca, old_key, NULL, 0, old_store, T_2018_03_02 - 1);
                assert_refused(
                        pc,
                        VERIFY_PREFIX "x509: certificate has expired or is not yet valid: current time "
                                      "2018-03-01T23:59:59Z is before 2018-03-02T00:00:00Z");
                peer_cert_free(pc);
                X509_STORE_free(old_store);
        }

        /* The leaf is judged before any chain is built: an expired certificate from an
         * unknown CA reports the expiry, as Knox does for dev_client's. */
        pc = verify_with(&spec, pki.other, pki.other_key, NULL, 0, NULL, T_2025_05_20);
        assert_refused(
                pc,
                VERIFY_PREFIX "x509: certificate has expired or is not yet valid: current time "
                              "2025-05-20T10:00:00Z is after 2023-03-01T00:00:00Z");
        peer_cert_free(pc);
}

static void test_not_yet_valid(void **state) {
        const TestCertSpec spec = {
                .dns = STRV("host1.example.com"),
                .eku = TEST_EKU_CLIENT,
                .not_before_at = T_2030_01_01,
                .not_after_at = T_2030_01_01 + 86400,
        };
        _cleanup_(peer_cert_freep) PeerCert *pc =
                verify_with(&spec, NULL, NULL, &pki.inter, 1, NULL, T_2025_05_20);

        assert_refused(
                pc,
                VERIFY_PREFIX "x509: certificate has expired or is not yet valid: current time "
                              "2025-05-20T10:00:00Z is before 2030-01-01T00:00:00Z");

        /* Relative to the real clock too. */
        {
                const TestCertSpec later = {.dns = STRV("h"), .not_before = 3600, .not_after = 7200};
                PeerCert *p2 = verify_spec(&later);

                assert_false(peer_cert_verified(p2));
                assert_non_null(
                        strstr(peer_cert_error(p2),
                               "x509: certificate has expired or is not yet valid: current time "));
                assert_non_null(strstr(peer_cert_error(p2), " is before "));
                peer_cert_free(p2);
        }
}

/* Every certificate of the chain must be within its dates. */
static void test_expired_intermediate(void **state) {
        const TestCertSpec inter_spec = {
                .cn = "expired intermediate",
                .ca = true,
                .not_before_at = T_2018_03_02,
                .not_after_at = T_2023_03_01,
        };
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        _cleanup_pkey_ EVP_PKEY *inter_key = test_pki_key_new();
        _cleanup_x509_ X509 *inter = NULL;
        _cleanup_(peer_cert_freep) PeerCert *pc = NULL;

        assert_non_null(inter_key);
        inter = test_pki_cert_new(&inter_spec, inter_key, pki.root, pki.root_key);
        assert_non_null(inter);
        pc = verify_with(&spec, inter, inter_key, &inter, 1, NULL, time(NULL));
        assert_false(peer_cert_verified(pc));
        assert_non_null(
                strstr(peer_cert_error(pc),
                       VERIFY_PREFIX "x509: certificate has expired or is not yet valid: current time "));
        assert_non_null(strstr(peer_cert_error(pc), " is after 2023-03-01T00:00:00Z"));
}

static void test_eku(void **state) {
        static const struct {
                TestEku eku;
                bool ok;
        } cases[] = {
                {TEST_EKU_NONE, true}, /* no extension: any usage, as upstream's test shows */
                {TEST_EKU_CLIENT, true},  {TEST_EKU_CLIENT_SERVER, true}, {TEST_EKU_ANY, true},
                {TEST_EKU_SERVER, false}, {TEST_EKU_CODE_SIGNING, false},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = cases[i].eku};
                _cleanup_(peer_cert_freep) PeerCert *pc = verify_spec(&spec);

                if (cases[i].ok)
                        assert_verified(pc);
                else
                        assert_refused(pc, INCOMPATIBLE_USAGE);
        }
}

/* Go enforces extended key usages down the chain: an intermediate limited to serverAuth
 * cannot vouch for a client. */
static void test_eku_intermediate(void **state) {
        const TestCertSpec inter_spec = {
                .cn = "server-only intermediate", .ca = true, .eku = TEST_EKU_SERVER};
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        _cleanup_pkey_ EVP_PKEY *inter_key = test_pki_key_new();
        _cleanup_x509_ X509 *inter = NULL;
        _cleanup_(peer_cert_freep) PeerCert *pc = NULL;

        assert_non_null(inter_key);
        inter = test_pki_cert_new(&inter_spec, inter_key, pki.root, pki.root_key);
        assert_non_null(inter);
        pc = verify_with(&spec, inter, inter_key, &inter, 1, NULL, time(NULL));
        assert_refused(pc, INCOMPATIBLE_USAGE);
}

/* ---- names ----------------------------------------------------------------------------- */

static void test_san_extraction(void **state) {
        const TestCertSpec spec = {
                .cn = "ignored.example.com",
                .dns = STRV("host1.example.com", "*.example.org", "Mixed.Example.NET"),
                .ips =
                        STRV("10.0.0.1", "2001:db8::1", "::ffff:192.0.2.7", "::1:2", "2001:db8:0:0:1:0:0:1",
                             "2001:db8:0:1:1:1:1:1"),
                .uris = STRV("spiffe://example.org/ns/prod/sa/web"),
                .eku = TEST_EKU_CLIENT,
        };
        _cleanup_(peer_cert_freep) PeerCert *pc = verify_spec(&spec);

        assert_verified(pc);
        assert_strv_equal(
                peer_cert_dns_names(pc), STRV("host1.example.com", "*.example.org", "Mixed.Example.NET"));
        /* As Go prints them: mapped IPv4 as IPv4, the first longest zero run compressed. */
        assert_strv_equal(
                peer_cert_ip_addresses(pc),
                STRV("10.0.0.1", "2001:db8::1", "192.0.2.7", "::1:2", "2001:db8::1:0:0:1",
                     "2001:db8:0:1:1:1:1:1"));
        assert_strv_equal(peer_cert_uris(pc), STRV("spiffe://example.org/ns/prod/sa/web"));
}

static PeerCert *host_cert(void) {
        const TestCertSpec spec = {
                .cn = "cn.example.com",
                .dns = STRV("host1.example.com", "*.example.org", "Mixed.Example.NET"),
                .ips = STRV("10.0.0.1", "2001:db8::1"),
                .eku = TEST_EKU_CLIENT,
        };
        PeerCert *pc = verify_spec(&spec);

        assert_verified(pc);
        return pc;
}

static void assert_host_ok(const PeerCert *pc, const char *host) {
        char *msg = NULL;
        int r = peer_cert_match_host(pc, host, &msg);

        if (r != 0)
                fail_msg("'%s' should match: %d %s", host, r, strna(msg));
        assert_null(msg);
}

static void assert_host_refused(const PeerCert *pc, const char *host, const char *expected) {
        _cleanup_free_ char *msg = NULL;

        assert_int_equal(peer_cert_match_host(pc, host, &msg), -EKEYREJECTED);
        assert_non_null(msg);
        if (expected)
                assert_string_equal(msg, expected);
}

#define VALID_FOR "x509: certificate is valid for host1.example.com, *.example.org, Mixed.Example.NET, not "

static void test_host_exact_and_case(void **state) {
        _cleanup_(peer_cert_freep) PeerCert *pc = host_cert();

        assert_host_ok(pc, "host1.example.com");
        assert_host_ok(pc, "HOST1.Example.COM");
        assert_host_ok(pc, "host1.example.com."); /* one trailing dot */
        assert_host_ok(pc, "mixed.example.net");  /* the SAN's case does not matter either */
        assert_host_ok(pc, "MIXED.EXAMPLE.NET");

        /* The message keeps the host as sent. */
        assert_host_refused(pc, "host2.example.com", VALID_FOR "host2.example.com");
        assert_host_refused(pc, "HOST2.example.com", VALID_FOR "HOST2.example.com");
        assert_host_refused(pc, "host1.example.com..", VALID_FOR "host1.example.com..");
        assert_host_refused(pc, "host1.example", VALID_FOR "host1.example");
        assert_host_refused(pc, "ost1.example.com", VALID_FOR "ost1.example.com");
        assert_host_refused(pc, "", VALID_FOR);
        /* The CN counts for nothing when there are SANs. */
        assert_host_refused(pc, "cn.example.com", VALID_FOR "cn.example.com");
}

static void test_host_wildcard(void **state) {
        _cleanup_(peer_cert_freep) PeerCert *pc = host_cert();

        assert_host_ok(pc, "a.example.org");
        assert_host_ok(pc, "Web-1.EXAMPLE.org");
        assert_host_ok(pc, "a.example.org.");
        /* Exactly one label. */
        assert_host_refused(pc, "example.org", VALID_FOR "example.org");
        assert_host_refused(pc, "a.b.example.org", VALID_FOR "a.b.example.org");
        assert_host_refused(pc, ".example.org", VALID_FOR ".example.org");
        /* A host is never a pattern. */
        assert_host_refused(pc, "*.example.com", VALID_FOR "*.example.com");
}

static void test_host_wildcard_rules(void **state) {
        const TestCertSpec spec = {
                .dns = STRV("f*.example.com", "host.*.example.net", "*", "*.*.example.edu", "*.Example.Org"),
                .eku = TEST_EKU_CLIENT,
        };
        _cleanup_(peer_cert_freep) PeerCert *pc = verify_spec(&spec);

        assert_verified(pc);
        /* No partial-label wildcard, and none but the leftmost label. */
        assert_host_refused(pc, "foo.example.com", NULL);
        assert_host_refused(pc, "f.example.com", NULL);
        assert_host_refused(pc, "host.a.example.net", NULL);
        /* A bare "*" matches nothing, and "*.*" is no pattern at all. */
        assert_host_refused(pc, "localhost", NULL);
        assert_host_refused(pc, "a.b.example.edu", NULL);
        /* An invalid pattern still matches itself exactly, as in Go. */
        assert_host_ok(pc, "F*.EXAMPLE.COM");
        /* The wildcard pattern's case does not matter. */
        assert_host_ok(pc, "x.example.org");
        assert_host_refused(
                pc, "x.y.example.org",
                "x509: certificate is valid for f*.example.com, host.*.example.net, *, *.*.example.edu, "
                "*.Example.Org, not x.y.example.org");
}

static void test_host_ip(void **state) {
        _cleanup_(peer_cert_freep) PeerCert *pc = host_cert();

        assert_host_ok(pc, "10.0.0.1");
        assert_host_ok(pc, "[10.0.0.1]");
        assert_host_ok(pc, "2001:db8::1");
        assert_host_ok(pc, "[2001:db8::1]");
        assert_host_ok(pc, "2001:DB8:0:0::1");
        assert_host_ok(pc, "::ffff:10.0.0.1"); /* the same address, IPv4-mapped */

        assert_host_refused(
                pc, "10.0.0.2", "x509: certificate is valid for 10.0.0.1, 2001:db8::1, not 10.0.0.2");
        assert_host_refused(
                pc, "[10.0.0.2]", "x509: certificate is valid for 10.0.0.1, 2001:db8::1, not 10.0.0.2");
        assert_host_refused(
                pc, "2001:db8::2", "x509: certificate is valid for 10.0.0.1, 2001:db8::1, not 2001:db8::2");
        /* Leading zeros make it no IP literal (Go and inet_pton agree): a name then. */
        assert_host_refused(pc, "010.0.0.1", VALID_FOR "010.0.0.1");
}

/* IP literals are compared with IP SANs only, never with a DNS SAN spelling the same. */
static void test_host_ip_vs_dns(void **state) {
        const TestCertSpec spec = {.dns = STRV("10.0.0.3", "host3.example.com"), .eku = TEST_EKU_CLIENT};
        _cleanup_(peer_cert_freep) PeerCert *pc = verify_spec(&spec);
        const TestCertSpec spec2 = {.ips = STRV("10.0.0.4"), .eku = TEST_EKU_CLIENT};
        _cleanup_(peer_cert_freep) PeerCert *pc2 = verify_spec(&spec2);

        assert_verified(pc);
        assert_host_refused(
                pc, "10.0.0.3",
                "x509: cannot validate certificate for 10.0.0.3 because it doesn't contain any IP SANs");
        assert_host_refused(
                pc, "[10.0.0.3]",
                "x509: cannot validate certificate for 10.0.0.3 because it doesn't contain any IP SANs");
        assert_host_ok(pc, "host3.example.com");

        /* ...and names with DNS SANs only. */
        assert_verified(pc2);
        assert_host_ok(pc2, "10.0.0.4");
        assert_host_refused(
                pc2, "host4.example.com",
                "x509: certificate is not valid for any names, but wanted to match host4.example.com");
}

static void test_host_cn_ignored(void **state) {
        const TestCertSpec spec = {.cn = "legacy.example.com", .eku = TEST_EKU_CLIENT};
        _cleanup_(peer_cert_freep) PeerCert *pc = verify_spec(&spec);
        const TestCertSpec spec2 = {
                .cn = "legacy.example.com", .uris = STRV("spiffe://example.org/x"), .eku = TEST_EKU_CLIENT};
        _cleanup_(peer_cert_freep) PeerCert *pc2 = verify_spec(&spec2);

        assert_verified(pc);
        assert_host_refused(
                pc, "legacy.example.com",
                "x509: certificate relies on legacy Common Name field, use SANs instead");
        assert_host_refused(
                pc, "LEGACY.example.com",
                "x509: certificate relies on legacy Common Name field, use SANs instead");
        assert_host_refused(
                pc, "other.example.com",
                "x509: certificate is not valid for any names, but wanted to match other.example.com");

        /* With a SAN extension (even of URIs only) Go does not even hint at the CN. */
        assert_verified(pc2);
        assert_host_refused(
                pc2, "legacy.example.com",
                "x509: certificate is not valid for any names, but wanted to match legacy.example.com");
}

static void test_host_unverified(void **state) {
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_SERVER};
        _cleanup_(peer_cert_freep) PeerCert *pc = verify_spec(&spec);

        /* The name matches, but the certificate is no client certificate. */
        assert_host_refused(pc, "host1.example.com", INCOMPATIBLE_USAGE);
}

/* ---- SPIFFE -------------------------------------------------------------------------- */

static void assert_spiffe(const char *const *uris, const char *expected_id, const char *expected_err) {
        const TestCertSpec spec = {
                .cn = "svc", .dns = STRV("svc.example.com"), .uris = uris, .eku = TEST_EKU_CLIENT};
        _cleanup_(peer_cert_freep) PeerCert *pc = verify_spec(&spec);
        const char *id = NULL, *err = NULL;
        int r;

        assert_verified(pc);
        r = peer_cert_spiffe_id(pc, &id, &err);
        if (expected_id) {
                assert_int_equal(r, 0);
                assert_non_null(id);
                assert_string_equal(id, expected_id);
                assert_null(err);
        } else {
                assert_int_equal(r, -EKEYREJECTED);
                assert_null(id);
                assert_non_null(err);
                assert_string_equal(err, expected_err);
        }
}

static void test_spiffe(void **state) {
        assert_spiffe(
                STRV("spiffe://example.org/ns/prod/sa/web"), "spiffe://example.org/ns/prod/sa/web", NULL);
        assert_spiffe(STRV("spiffe://example.org/"), "spiffe://example.org/", NULL);
        assert_spiffe(NULL, NULL, "auth: no spiffe identity in certificate");
        assert_spiffe(
                STRV("spiffe://example.org/a", "spiffe://example.org/b"), NULL,
                "auth: more than one service identity specified in certificate");
        assert_spiffe(
                STRV("spiffe://example.org/a", "https://example.org/b"), NULL,
                "auth: more than one service identity specified in certificate");
        assert_spiffe(
                STRV("https://example.org/ns/prod"), NULL,
                "auth: service identity was not a valid SPIFFE ID (bad prefix)");
        assert_spiffe(
                STRV("SPIFFE://example.org/x"), NULL,
                "auth: service identity was not a valid SPIFFE ID (bad prefix)");
        assert_spiffe(
                STRV("spiffe://example.org"), NULL,
                "auth: service identity was not a valid SPIFFE ID (bad format)");
}

static void test_spiffe_unverified(void **state) {
        const TestCertSpec spec = {
                .uris = STRV("spiffe://example.org/x"),
                .eku = TEST_EKU_CLIENT,
                .not_before_at = T_2018_03_02,
                .not_after_at = T_2023_03_01,
        };
        _cleanup_(peer_cert_freep) PeerCert *pc =
                verify_with(&spec, NULL, NULL, &pki.inter, 1, NULL, T_2025_05_20);
        const char *id = NULL, *err = NULL;

        assert_int_equal(peer_cert_spiffe_id(pc, &id, &err), -EKEYREJECTED);
        assert_null(id);
        assert_string_equal(
                err,
                VERIFY_PREFIX
                "x509: certificate has expired or is not yet valid: current time 2025-05-20T10:00:00Z is "
                "after 2023-03-01T00:00:00Z");
        /* The URI is still extracted, for logs. */
        assert_strv_equal(peer_cert_uris(pc), STRV("spiffe://example.org/x"));
}

/* ---- the verification cache ----------------------------------------------------------- */

static X509_STORE *cached_store(size_t n) {
        X509_STORE *store = test_pki_store(&pki);

        assert_non_null(store);
        assert_int_equal(peer_cert_cache_attach(store, n), 0);
        assert_int_equal(peer_cert_cache_attach(store, n), -EEXIST);
        return store;
}

static void test_cache(void **state) {
        const TestCertSpec spec = {
                .dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT, .not_after = 86400};
        const TestCertSpec bad = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_SERVER};
        _cleanup_pkey_ EVP_PKEY *key = test_pki_key_new();
        _cleanup_x509_ X509 *leaf = NULL, *leaf_bad = NULL;
        _cleanup_chain_ X509Chain *chain = test_pki_chain(&pki.inter, 1);
        X509_STORE *store = cached_store(64);
        PeerCert *a = NULL, *b = NULL, *c = NULL;
        time_t now = time(NULL);
        _cleanup_free_ char *msg = NULL;

        assert_non_null(key);
        leaf = test_pki_leaf(&pki, &spec, key, NULL, NULL);
        leaf_bad = test_pki_leaf(&pki, &bad, key, NULL, NULL);
        assert_non_null(leaf);
        assert_non_null(leaf_bad);

        /* The second verification of the same chain is the first one's result. */
        assert_int_equal(peer_cert_verify(leaf, chain, store, now, &a), 0);
        assert_verified(a);
        assert_int_equal(peer_cert_verify(leaf, chain, store, now + 60, &b), 0);
        assert_ptr_equal(a, b);
        b = peer_cert_free(b);
        assert_int_equal(peer_cert_match_host(a, "host1.example.com", &msg), 0);

        /* Another chain for the same leaf is another key: without its intermediate it fails. */
        assert_int_equal(peer_cert_verify(leaf, NULL, store, now, &b), 0);
        assert_ptr_not_equal(a, b);
        assert_refused(b, UNKNOWN_AUTHORITY);
        b = peer_cert_free(b);

        /* Past the leaf's end the cached verdict does not apply. */
        assert_int_equal(peer_cert_verify(leaf, chain, store, now + 2 * 86400, &b), 0);
        assert_ptr_not_equal(a, b);
        assert_false(peer_cert_verified(b));
        assert_non_null(strstr(peer_cert_error(b), "x509: certificate has expired or is not yet valid: "));
        b = peer_cert_free(b);
        /* Nor before the intermediate's start (an hour ago), though the leaf was made then too. */
        assert_int_equal(peer_cert_verify(leaf, chain, store, now - 2 * 3600, &b), 0);
        assert_false(peer_cert_verified(b));
        b = peer_cert_free(b);

        /* Failures are not kept. */
        assert_int_equal(peer_cert_verify(leaf_bad, chain, store, now, &b), 0);
        assert_int_equal(peer_cert_verify(leaf_bad, chain, store, now, &c), 0);
        assert_ptr_not_equal(b, c);
        assert_refused(c, INCOMPATIBLE_USAGE);
        b = peer_cert_free(b);
        c = peer_cert_free(c);

        /* Leaves sent alone: a verified one never vouches for another (the key covers the
         * leaf itself, whatever came with it). */
        {
                const TestCertSpec victim = {.dns = STRV("victim.example.com"), .eku = TEST_EKU_CLIENT};
                const TestCertSpec mallory = {.dns = STRV("victim.example.com"), .eku = TEST_EKU_CLIENT};
                _cleanup_x509_ X509 *v = test_pki_leaf(&pki, &victim, key, pki.root, pki.root_key);
                _cleanup_x509_ X509 *m = test_pki_cert_new(&mallory, key, NULL, NULL); /* self-signed */

                assert_non_null(v);
                assert_non_null(m);
                assert_int_equal(peer_cert_verify(v, NULL, store, now, &b), 0);
                assert_verified(b);
                b = peer_cert_free(b);
                assert_int_equal(peer_cert_verify(m, NULL, store, now, &b), 0);
                assert_refused(b, UNKNOWN_AUTHORITY);
                b = peer_cert_free(b);
        }

        /* The object outlives the store and its cache. */
        X509_STORE_free(store);
        assert_verified(a);
        peer_cert_free(a);
}

static void test_cache_eviction(void **state) {
        const TestCertSpec spec1 = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        const TestCertSpec spec2 = {.dns = STRV("host2.example.com"), .eku = TEST_EKU_CLIENT};
        _cleanup_pkey_ EVP_PKEY *key = test_pki_key_new();
        _cleanup_x509_ X509 *leaf1 = NULL, *leaf2 = NULL;
        X509_STORE *store = cached_store(1);
        PeerCert *a, *b, *c;

        assert_non_null(key);
        leaf1 = test_pki_leaf(&pki, &spec1, key, pki.root, pki.root_key);
        leaf2 = test_pki_leaf(&pki, &spec2, key, pki.root, pki.root_key);
        assert_non_null(leaf1);
        assert_non_null(leaf2);

        /* One slot: the second chain evicts the first. */
        assert_int_equal(peer_cert_verify(leaf1, NULL, store, time(NULL), &a), 0);
        assert_int_equal(peer_cert_verify(leaf2, NULL, store, time(NULL), &b), 0);
        assert_int_equal(peer_cert_verify(leaf1, NULL, store, time(NULL), &c), 0);
        assert_verified(a);
        assert_verified(b);
        assert_verified(c);
        assert_ptr_not_equal(a, b);
        assert_ptr_not_equal(a, c);
        assert_strv_equal(peer_cert_dns_names(b), STRV("host2.example.com"));
        assert_strv_equal(peer_cert_dns_names(c), STRV("host1.example.com"));
        peer_cert_free(a);
        peer_cert_free(b);
        peer_cert_free(c);
        X509_STORE_free(store);
}

typedef struct Hammer {
        X509_STORE *store;
        X509 *leaf;
        X509Chain *chain;
        int failures;
} Hammer;

static void *hammer(void *userdata) {
        Hammer *h = userdata;

        for (int i = 0; i < 300; i++) {
                PeerCert *pc = NULL;

                if (peer_cert_verify(h->leaf, h->chain, h->store, time(NULL), &pc) < 0 ||
                    !peer_cert_verified(pc))
                        h->failures++;
                peer_cert_free(pc);
        }
        return NULL;
}

/* Threads share the cache and its objects. */
static void test_cache_threads(void **state) {
        const TestCertSpec spec = {.dns = STRV("host1.example.com"), .eku = TEST_EKU_CLIENT};
        _cleanup_pkey_ EVP_PKEY *key = test_pki_key_new();
        _cleanup_x509_ X509 *leaf = NULL;
        _cleanup_chain_ X509Chain *chain = test_pki_chain(&pki.inter, 1);
        Hammer h[4];
        pthread_t t[4];
        X509_STORE *store = cached_store(8);

        assert_non_null(key);
        leaf = test_pki_leaf(&pki, &spec, key, NULL, NULL);
        assert_non_null(leaf);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                h[i] = (Hammer){.store = store, .leaf = leaf, .chain = chain};
                assert_int_equal(pthread_create(&t[i], NULL, hammer, &h[i]), 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_int_equal(h[i].failures, 0);
        }
        X509_STORE_free(store);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_cert),
                cmocka_unit_test(test_chain_with_intermediate),
                cmocka_unit_test(test_missing_intermediate),
                cmocka_unit_test(test_signed_by_root),
                cmocka_unit_test(test_intermediate_as_anchor),
                cmocka_unit_test(test_unknown_ca),
                cmocka_unit_test(test_impostor_ca),
                cmocka_unit_test(test_expired),
                cmocka_unit_test(test_not_yet_valid),
                cmocka_unit_test(test_expired_intermediate),
                cmocka_unit_test(test_eku),
                cmocka_unit_test(test_eku_intermediate),
                cmocka_unit_test(test_san_extraction),
                cmocka_unit_test(test_host_exact_and_case),
                cmocka_unit_test(test_host_wildcard),
                cmocka_unit_test(test_host_wildcard_rules),
                cmocka_unit_test(test_host_ip),
                cmocka_unit_test(test_host_ip_vs_dns),
                cmocka_unit_test(test_host_cn_ignored),
                cmocka_unit_test(test_host_unverified),
                cmocka_unit_test(test_spiffe),
                cmocka_unit_test(test_spiffe_unverified),
                cmocka_unit_test(test_cache),
                cmocka_unit_test(test_cache_eviction),
                cmocka_unit_test(test_cache_threads),
        };
        int r;

        if (test_pki_init(&pki) < 0)
                return EXIT_FAILURE;
        roots = test_pki_store(&pki);
        if (!roots)
                return EXIT_FAILURE;

        r = cmocka_run_group_tests(tests, NULL, NULL);

        X509_STORE_free(roots);
        test_pki_done(&pki);
        return r;
}
