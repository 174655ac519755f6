/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keywardd's TLS context reading what a client sends first: the ClientHello, whose
 * pre_shared_key identity picks a stateless or a stateful ticket (server-tls.c,
 * client_hello_cb()), and a stateless ticket's key name and sealed session
 * (ticket_key_cb()). The input is the client's bytes, TLS records as sent. */

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"
#include "server-tls.h"

static SSL_CTX *ctx;

/* A self-signed P-256 certificate and its key, in a directory of their own. */
static int make_ctx(void) {
        char dir[] = "/tmp/fuzz-tls-hello.XXXXXX", cert[64], key[64];
        uint8_t seed[TLS_TICKET_SEED_SIZE];
        EVP_PKEY *k = NULL;
        X509 *x = NULL;
        FILE *f;
        int r = -EIO;

        if (!mkdtemp(dir))
                return -errno;
        (void) snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
        (void) snprintf(key, sizeof(key), "%s/key.pem", dir);
        k = EVP_EC_gen("P-256");
        x = X509_new();
        if (!k || !x || X509_set_version(x, 2) != 1 || ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
            !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
            !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || X509_set_pubkey(x, k) != 1 ||
            X509_NAME_add_entry_by_txt(
                    X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *) "localhost", -1,
                    -1, 0) != 1 ||
            X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 || X509_sign(x, k, EVP_sha256()) <= 0)
                goto finish;
        f = fopen(cert, "we");
        if (!f || PEM_write_X509(f, x) != 1 || fclose(f) != 0)
                goto finish;
        f = fopen(key, "we");
        if (!f || PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1 || fclose(f) != 0)
                goto finish;
        /* A fixed seed: the same input takes the same path on every run. */
        memset(seed, 0x4b, sizeof(seed));
        r = tls_set_ticket_seed(seed);
        if (r >= 0)
                r = tls_server_ctx_new(cert, key, &ctx);
finish:
        (void) unlink(cert);
        (void) unlink(key);
        (void) rmdir(dir);
        X509_free(x);
        EVP_PKEY_free(k);
        return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        BIO *in, *out;
        SSL *ssl;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        if (!ctx && make_ctx() < 0)
                abort();

        ssl = SSL_new(ctx);
        in = BIO_new_mem_buf(data, (int) size);
        out = BIO_new(BIO_s_mem());
        if (!ssl || !in || !out)
                abort();
        SSL_set_bio(ssl, in, out);
        SSL_set_accept_state(ssl);
        /* Each step reads what it can; a complete ClientHello is answered, a broken one
         * fails, and the end of the input stops it. */
        for (int i = 0; i < 4; i++) {
                int k = SSL_do_handshake(ssl), e;

                if (k == 1)
                        break;
                e = SSL_get_error(ssl, k);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                        break;
        }
        ERR_clear_error();
        SSL_free(ssl);
        return 0;
}
