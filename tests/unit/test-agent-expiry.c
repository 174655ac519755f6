/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "agent-expiry.h"
#include "secret.h"
#include "test-pki.h"

#define NOW ((int64_t) 1900000000)
#define DAY ((int64_t) 86400)

static EVP_PKEY *pkey;

/* A key with one primary version holding data. */
static Key *key_with(const char *id, uint64_t version, const void *data, size_t size) {
        Key *k = key_new();
        KeyVersion v = {.id = version, .status = VERSION_STATUS_PRIMARY, .ts = 1};

        assert_non_null(k);
        k->id = strdup(id);
        assert_non_null(k->id);
        v.data = secret_new_copy(data, size);
        assert_non_null(v.data);
        assert_int_equal(key_append_version(k, &v), 0);
        return k;
}

static Key *cert_key(const char *id, uint64_t version, int64_t not_after) {
        TestCertSpec spec = {
                .cn = "x.example.com", .not_before_at = NOW - 400 * DAY, .not_after_at = not_after};
        X509 *x = test_pki_cert_new(&spec, pkey, NULL, NULL);
        unsigned char *der = NULL;
        int n;
        Key *k;

        assert_non_null(x);
        n = i2d_X509(x, &der);
        assert_true(n > 0);
        k = key_with(id, version, der, (size_t) n);
        OPENSSL_free(der);
        X509_free(x);
        return k;
}

static void test_once_per_version_per_day(void **state) {
        AgentExpiry *e = agent_expiry_new();
        Key *k = cert_key("tls", 7, NOW + 10 * DAY), *k2 = cert_key("tls", 8, NOW + 20 * DAY),
            *other = cert_key("other", 7, NOW + 10 * DAY);

        assert_non_null(e);
        assert_int_equal(agent_expiry_check(e, k, NOW), 1);
        /* Every further sync the same day: quiet. */
        assert_int_equal(agent_expiry_check(e, k, NOW), 0);
        assert_int_equal(agent_expiry_check(e, k, NOW + 3600), 0);
        assert_int_equal(agent_expiry_check(e, k, NOW + DAY - 1), 0);
        /* Another key with the same version id is its own. */
        assert_int_equal(agent_expiry_check(e, other, NOW + 60), 1);
        /* A new primary version warns at once. */
        assert_int_equal(agent_expiry_check(e, k2, NOW + 120), 1);
        assert_int_equal(agent_expiry_check(e, k2, NOW + 180), 0);
        /* A day later, again. */
        assert_int_equal(agent_expiry_check(e, k, NOW + DAY), 1);
        assert_int_equal(agent_expiry_check(e, k, NOW + DAY + 1), 0);
        key_free(k);
        key_free(k2);
        key_free(other);
        agent_expiry_free(e);
}

static void test_window(void **state) {
        AgentExpiry *e = agent_expiry_new();
        Key *far = cert_key("far", 1, NOW + 31 * DAY), *edge = cert_key("edge", 1, NOW + 30 * DAY),
            *expired = cert_key("expired", 1, NOW - 5 * DAY);
        static const char pem_like[] = "-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n";
        Key *fake = key_with("fake", 1, pem_like, strlen(pem_like)), *plain = key_with("plain", 1, "pw", 2);

        assert_int_equal(agent_expiry_check(e, far, NOW), 0);
        assert_int_equal(agent_expiry_check(e, edge, NOW), 1);
        assert_int_equal(agent_expiry_check(e, expired, NOW), 1);
        assert_int_equal(agent_expiry_check(e, fake, NOW), 0);
        assert_int_equal(agent_expiry_check(e, plain, NOW), 0);
        assert_int_equal(agent_expiry_check(NULL, edge, NOW), 0);
        key_free(far);
        key_free(edge);
        key_free(expired);
        key_free(fake);
        key_free(plain);
        agent_expiry_free(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_once_per_version_per_day),
                cmocka_unit_test(test_window),
        };
        int r;

        pkey = test_pki_key_new();
        if (!pkey)
                return EXIT_FAILURE;
        r = cmocka_run_group_tests(tests, NULL, NULL);
        EVP_PKEY_free(pkey);
        return r;
}
