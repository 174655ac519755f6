/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-check.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "strv.h"

DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(X509 *, X509_free, NULL);
DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(EVP_PKEY *, EVP_PKEY_free, NULL);
DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(FILE *, fclose, NULL);

int agent_check_url(const char *url) {
        const char *host = url, *sep;

        if (!url)
                return -EINVAL;
        sep = strstr(url, "://");
        if (sep) {
                if ((size_t) (sep - url) != 5 || strncasecmp(url, "https", 5) != 0)
                        return -EINVAL;
                host = sep + 3;
        }
        /* A host must follow, and nothing that is not a host may start it. */
        if (host[0] == '\0' || strchr("/:?#@", host[0]))
                return -EINVAL;
        /* No user name or password before the host: the agent authenticates with its
         * certificate, and a password here would reach the log and the metrics file. */
        if (memchr(host, '@', strcspn(host, "/?#")))
                return -EACCES;
        return 0;
}

/* Never prompt for a passphrase: the agent runs unattended. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata) {
        return -1;
}

static int open_file(const char *flag, const char *path, FILE **ret) {
        FILE *f = fopen(path, "re");

        if (!f)
                return log_error_errno(errno, "Cannot read %s '%s': %m", flag, path);
        /* No stdio buffer: it would keep a copy of the private key, unwiped, in the heap. */
        (void) setvbuf(f, NULL, _IONBF, 0);
        *ret = f;
        return 0;
}

static int read_cert(const char *path, X509 **ret) {
        _cleanup_(fclosep) FILE *f = NULL;
        X509 *x;
        int r;

        r = open_file("--cert", path, &f);
        if (r < 0)
                return r;
        ERR_clear_error();
        x = PEM_read_X509(f, NULL, no_passphrase, NULL);
        if (!x)
                return log_error_errno(EINVAL, "--cert '%s' holds no PEM certificate.", path);
        *ret = x;
        return 0;
}

static int read_key(const char *path, EVP_PKEY **ret) {
        _cleanup_(fclosep) FILE *f = NULL;
        EVP_PKEY *k;
        int r;

        r = open_file("--key", path, &f);
        if (r < 0)
                return r;
        ERR_clear_error();
        k = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
        if (!k)
                return log_error_errno(
                        EINVAL, "--key '%s' holds no PEM private key (or one with a passphrase).", path);
        *ret = k;
        return 0;
}

static int check_ca(const char *path) {
        _cleanup_(fclosep) FILE *f = NULL;
        unsigned n = 0;
        int r;

        r = open_file("--server-ca", path, &f);
        if (r < 0)
                return r;
        ERR_clear_error();
        for (;;) {
                X509 *x = PEM_read_X509(f, NULL, no_passphrase, NULL);

                if (!x)
                        break;
                X509_free(x);
                n++;
        }
        ERR_clear_error();
        if (n == 0)
                return log_error_errno(EINVAL, "--server-ca '%s' holds no PEM certificate.", path);
        return 0;
}

static void check_validity(const char *path, const X509 *x) {
        if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
                log_warning("--cert '%s' has expired; keyward servers will refuse it.", path);
        else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
                log_warning("--cert '%s' is not valid yet; keyward servers will refuse it.", path);
}

int agent_check_config(const AgentConfig *c) {
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        int r;

        STRV_FOREACH(s, c->servers) {
                r = agent_check_url(*s);
                if (r == -EACCES) /* not shown: it holds a password */
                        return log_error_errno(
                                EINVAL,
                                "A --server URL holds a user name or password; give https://HOST[:PORT] "
                                "without them (the agent authenticates with its certificate).");
                if (r < 0)
                        return log_error_errno(
                                EINVAL, "--server '%s' is not an https:// URL (https://HOST[:PORT]).", *s);
        }

        r = read_cert(c->cert, &cert);
        if (r < 0)
                return r;
        r = read_key(c->key, &key);
        if (r < 0)
                return r;
        ERR_clear_error();
        if (X509_check_private_key(cert, key) != 1) {
                ERR_clear_error();
                return log_error_errno(
                        EKEYREJECTED, "--key '%s' is not the key of --cert '%s'.", c->key, c->cert);
        }
        check_validity(c->cert, cert);
        if (c->server_ca) {
                r = check_ca(c->server_ca);
                if (r < 0)
                        return r;
        }
        return 0;
}
