/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "agent-check.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "test-pki.h"
#include "tests.h"

static void test_url(void **state) {
        assert_int_equal(agent_check_url("https://keyward.example.com"), 0);
        assert_int_equal(agent_check_url("https://keyward.example.com:8443/"), 0);
        assert_int_equal(agent_check_url("HTTPS://127.0.0.1:1"), 0);
        assert_int_equal(agent_check_url("https://[::1]:8443"), 0);
        assert_int_equal(agent_check_url("keyward.example.com:8443"), 0); /* https implied */

        assert_int_equal(agent_check_url("htps://keyward.example.com"), -EINVAL);
        assert_int_equal(agent_check_url("https://admin:hunter2@keyward.example.com"), -EACCES);
        assert_int_equal(agent_check_url("admin@keyward.example.com:8443/v0"), -EACCES);
        assert_int_equal(agent_check_url("https://keyward.example.com/a@b"), 0);
        assert_int_equal(agent_check_url("http://keyward.example.com"), -EINVAL);
        assert_int_equal(agent_check_url("httpss://keyward.example.com"), -EINVAL);
        assert_int_equal(agent_check_url("ftp://keyward.example.com"), -EINVAL);
        assert_int_equal(agent_check_url("://keyward.example.com"), -EINVAL);
        assert_int_equal(agent_check_url("https://"), -EINVAL);
        assert_int_equal(agent_check_url("https:///path"), -EINVAL);
        assert_int_equal(agent_check_url("https://:8443"), -EINVAL);
        assert_int_equal(agent_check_url("https://@host"), -EINVAL);
        assert_int_equal(agent_check_url(""), -EINVAL);
        assert_int_equal(agent_check_url(NULL), -EINVAL);
}

typedef struct Files {
        char dir[64];
        char cert[96], key[96], other_key[96], locked_key[96], ca[96], expired[96], expired_key[96],
                garbage[96];
} Files;

static void write_cert(const char *path, X509 *x) {
        assert_int_equal(test_pki_write_certs(path, &x, 1), 0);
}

static int setup(void **state) {
        _cleanup_(test_pki_key_freep) EVP_PKEY *ca_key = test_pki_key_new(), *key = test_pki_key_new(),
                                               *other = test_pki_key_new();
        _cleanup_(test_pki_x509_freep) X509 *ca = NULL, *cert = NULL, *expired = NULL;
        TestCertSpec ca_spec = {.cn = "check CA", .ca = true};
        TestCertSpec leaf = {
                .dns = (const char *const[]){"host1.example.com", NULL}, .eku = TEST_EKU_CLIENT};
        TestCertSpec old = {
                .dns = leaf.dns, .eku = TEST_EKU_CLIENT, .not_before = -2 * 86400, .not_after = -3600};
        Files *f = calloc(1, sizeof(Files));
        FILE *g;

        assert_non_null(f);
        (void) snprintf(f->dir, sizeof(f->dir), "/tmp/test-agent-check.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
#define P(field, name) (void) snprintf(f->field, sizeof(f->field), "%s/%s", f->dir, name)
        P(cert, "machine.pem");
        P(key, "machine.key");
        P(other_key, "other.key");
        P(locked_key, "locked.key");
        P(ca, "ca.pem");
        P(expired, "expired.pem");
        P(expired_key, "expired.key");
        P(garbage, "garbage.pem");
#undef P
        assert_non_null(ca_key);
        assert_non_null(key);
        assert_non_null(other);
        ca = test_pki_cert_new(&ca_spec, ca_key, NULL, NULL);
        cert = test_pki_cert_new(&leaf, key, ca, ca_key);
        expired = test_pki_cert_new(&old, key, ca, ca_key);
        assert_non_null(ca);
        assert_non_null(cert);
        assert_non_null(expired);
        write_cert(f->ca, ca);
        write_cert(f->cert, cert);
        write_cert(f->expired, expired);
        assert_int_equal(test_pki_write_key(f->key, key, NULL), 0);
        assert_int_equal(test_pki_write_key(f->expired_key, key, NULL), 0);
        assert_int_equal(test_pki_write_key(f->other_key, other, NULL), 0);
        assert_int_equal(test_pki_write_key(f->locked_key, key, "passphrase"), 0);
        g = fopen(f->garbage, "we");
        assert_non_null(g);
        fputs("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", g);
        fclose(g);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Files *f = *state;

        (void) tests_rm_rf(f->dir);
        free(f);
        return 0;
}

static int check(const Files *f, const char *url, const char *cert, const char *key, const char *ca) {
        char *servers[] = {(char *) url, NULL};
        AgentConfig c = {
                .servers = servers, .cert = (char *) cert, .key = (char *) key, .server_ca = (char *) ca};

        return agent_check_config(&c);
}

static void test_config(void **state) {
        Files *f = *state;
        char missing[128];

        (void) snprintf(missing, sizeof(missing), "%s/missing.pem", f->dir);
        log_set_max_level(LOG_CRIT); /* the refusals are logged at error level */

        assert_int_equal(check(f, "https://k:1", f->cert, f->key, f->ca), 0);
        assert_int_equal(check(f, "https://k:1", f->cert, f->key, NULL), 0); /* the system's CAs */
        assert_int_equal(check(f, "https://k:1", f->expired, f->expired_key, f->ca), 0); /* a warning only */

        assert_int_equal(check(f, "htps://k:1", f->cert, f->key, f->ca), -EINVAL);
        assert_int_equal(check(f, "https://k:1", missing, f->key, f->ca), -ENOENT);
        assert_int_equal(check(f, "https://k:1", f->cert, missing, f->ca), -ENOENT);
        assert_int_equal(check(f, "https://k:1", f->cert, f->key, missing), -ENOENT);
        assert_int_equal(check(f, "https://k:1", f->garbage, f->key, f->ca), -EINVAL);
        assert_int_equal(check(f, "https://k:1", f->cert, f->garbage, f->ca), -EINVAL);
        assert_int_equal(check(f, "https://k:1", f->cert, f->key, f->garbage), -EINVAL);
        assert_int_equal(
                check(f, "https://k:1", f->cert, f->cert, f->ca), -EINVAL); /* a certificate is no key */
        assert_int_equal(
                check(f, "https://k:1", f->key, f->key, f->ca), -EINVAL); /* nor a key a certificate */
        assert_int_equal(check(f, "https://k:1", f->cert, f->other_key, f->ca), -EKEYREJECTED);
        /* A key with a passphrase is refused, without asking for one. */
        assert_int_equal(check(f, "https://k:1", f->cert, f->locked_key, f->ca), -EINVAL);
        log_set_max_level(LOG_INFO);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_url),
                cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
