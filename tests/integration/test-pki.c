/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-pki DIR: write the PKI of the integration tests as PEM files into DIR.
 *
 *   ca.pem                    the trusted root (the server's --client-ca, curl's --cacert)
 *   server.pem, server.key    DNS localhost and IP 127.0.0.1, serverAuth
 *   NAME.pem, NAME.key        client certificates (the leaf, then the CA that signed it
 *                             unless that is the root or "other"), for NAME in the table
 *                             below
 *
 * Keys are written 0600. Any failure exits non-zero. */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test-pki.h"

typedef enum Signer {
        SIGNER_INTER,    /* the intermediate; its certificate follows the leaf */
        SIGNER_OTHER,    /* the untrusted CA */
        SIGNER_IMPOSTOR, /* a CA with the root's name and another key; it follows the leaf */
} Signer;

typedef struct Client {
        const char *name;
        Signer signer;
        bool leaf_only; /* do not append the intermediate */
        TestCertSpec spec;
} Client;

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})
#define DAY 86400

/* clang-format off */
static const Client clients[] = {
        { "machine",    SIGNER_INTER, .spec = { .dns = LIST("host1.example.com"), .eku = TEST_EKU_CLIENT } },
        { "service",    SIGNER_INTER, .spec = { .uris = LIST("spiffe://example.com/svc"), .eku = TEST_EKU_CLIENT } },
        { "both",       SIGNER_INTER, .spec = { .dns = LIST("host2.example.com"),
                                                .uris = LIST("spiffe://example.com/svc2"), .eku = TEST_EKU_CLIENT } },
        { "twouris",    SIGNER_INTER, .spec = { .uris = LIST("spiffe://example.com/a", "spiffe://example.com/b"),
                                                .eku = TEST_EKU_CLIENT } },
        { "expired",    SIGNER_INTER, .spec = { .dns = LIST("host1.example.com"), .eku = TEST_EKU_CLIENT,
                                                .not_before = -2 * DAY, .not_after = -3600 } },
        { "notyet",     SIGNER_INTER, .spec = { .dns = LIST("host1.example.com"), .eku = TEST_EKU_CLIENT,
                                                .not_before = DAY, .not_after = 2 * DAY } },
        { "foreign",    SIGNER_OTHER, .spec = { .dns = LIST("host1.example.com"), .eku = TEST_EKU_CLIENT } },
        { "serveronly", SIGNER_INTER, .spec = { .dns = LIST("host1.example.com"), .eku = TEST_EKU_SERVER } },
        { "noeku",      SIGNER_INTER, .spec = { .dns = LIST("host1.example.com"), .eku = TEST_EKU_NONE } },
        { "cnonly",     SIGNER_INTER, .spec = { .cn = "host1.example.com", .eku = TEST_EKU_CLIENT } },
        { "wildcard",   SIGNER_INTER, .spec = { .dns = LIST("*.example.com"), .eku = TEST_EKU_CLIENT } },
        /* Signed by the intermediate, but sent without it. */
        { "nochain",    SIGNER_INTER, .leaf_only = true,
                                      .spec = { .dns = LIST("host1.example.com"), .eku = TEST_EKU_CLIENT } },
        /* Chains to a self-signed CA that has the trusted root's name but not its key. */
        { "impostor",   SIGNER_IMPOSTOR,
                                      .spec = { .dns = LIST("host1.example.com"), .eku = TEST_EKU_CLIENT } },
        /* Like Knox's dev_client certificate: no EKU, and expired. */
        { "dev",        SIGNER_INTER, .spec = { .cn = "example.com", .dns = LIST("example.com", "www.example.com"),
                                                .uris = LIST("spiffe://example.com/service"), .eku = TEST_EKU_NONE,
                                                .not_before = -3 * DAY, .not_after = -DAY } },
};
/* clang-format on */

static int write_key(const char *dir, const char *name, EVP_PKEY *key) {
        char path[4096];
        mode_t old;
        int r;

        if (snprintf(path, sizeof(path), "%s/%s.key", dir, name) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        (void) unlink(path);
        old = umask(0077);
        r = test_pki_write_key(path, key, NULL);
        umask(old);
        if (r >= 0 && chmod(path, 0600) < 0)
                r = -errno;
        if (r < 0)
                fprintf(stderr, "test-pki: cannot write %s: %s\n", path, strerror(-r));
        return r;
}

static int write_certs(const char *dir, const char *name, X509 *const *certs, size_t n) {
        char path[4096];
        int r;

        if (snprintf(path, sizeof(path), "%s/%s.pem", dir, name) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        r = test_pki_write_certs(path, certs, n);
        if (r < 0)
                fprintf(stderr, "test-pki: cannot write %s: %s\n", path, strerror(-r));
        return r;
}

/* A leaf with a fresh key, written as NAME.pem (with its chain) and NAME.key. */
static int write_leaf(
        const char *dir,
        const TestPki *p,
        const char *name,
        Signer signer,
        bool leaf_only,
        const TestCertSpec *spec) {
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        _cleanup_x509_ X509 *leaf = NULL;
        X509 *certs[2];
        size_t n = 0;
        int r;

        key = test_pki_key_new();
        if (!key)
                return -ENOMEM;
        switch (signer) {
        case SIGNER_INTER:
                leaf = test_pki_leaf(p, spec, key, NULL, NULL);
                break;
        case SIGNER_OTHER:
                leaf = test_pki_leaf(p, spec, key, p->other, p->other_key);
                break;
        case SIGNER_IMPOSTOR:
                leaf = test_pki_leaf(p, spec, key, p->impostor, p->impostor_key);
                break;
        }
        if (!leaf) {
                fprintf(stderr, "test-pki: cannot make the certificate '%s'\n", name);
                return -EINVAL;
        }
        certs[n++] = leaf;
        if (signer == SIGNER_INTER && !leaf_only)
                certs[n++] = p->inter;
        else if (signer == SIGNER_IMPOSTOR)
                certs[n++] = p->impostor;

        r = write_certs(dir, name, certs, n);
        if (r < 0)
                return r;
        return write_key(dir, name, key);
}

int main(int argc, char *argv[]) {
        const TestCertSpec server = {
                .cn = "localhost",
                .dns = LIST("localhost"),
                .ips = LIST("127.0.0.1"),
                .eku = TEST_EKU_SERVER,
        };
        const char *dir;
        TestPki p;
        int r;

        if (argc != 2) {
                fprintf(stderr, "Usage: %s DIR\n", argv[0]);
                return 2;
        }
        dir = argv[1];
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                fprintf(stderr, "test-pki: cannot create %s: %m\n", dir);
                return 1;
        }

        r = test_pki_init(&p);
        if (r < 0) {
                fprintf(stderr, "test-pki: cannot make the CAs: %s\n", strerror(-r));
                return 1;
        }

        r = write_certs(dir, "ca", &p.root, 1);
        if (r >= 0)
                r = write_leaf(dir, &p, "server", SIGNER_INTER, false, &server);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(clients); i++)
                r = write_leaf(
                        dir, &p, clients[i].name, clients[i].signer, clients[i].leaf_only, &clients[i].spec);

        test_pki_done(&p);
        if (r < 0)
                return 1;
        printf("%s\n", dir);
        return 0;
}
