/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "peer-cert-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strv.h"

static char *const empty_strv[] = {NULL};

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

int peer_cert_verify(X509 *leaf, X509Chain *intermediates, X509_STORE *roots, time_t now, PeerCert **ret) {
        _cleanup_(peer_cert_freep) PeerCert *pc = NULL;
        _cleanup_free_ char *message = NULL;
        uint8_t digest[SHA256_DIGEST_LENGTH];
        PeerCertCache *cache = NULL;
        int r;

        assert_return(ret, -EINVAL);
        assert_return(!leaf || roots, -EINVAL);

        if (leaf) {
                cache = peer_cert_cache_get(roots);
                if (cache && peer_cert_cache_digest(cache, leaf, intermediates, digest) < 0)
                        cache = NULL; /* verify without it */
                if (cache) {
                        pc = peer_cert_cache_lookup(cache, digest, now);
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

        r = peer_cert_extract_names(pc, leaf);
        if (r < 0)
                return r;

        r = peer_cert_verify_chain(
                leaf, intermediates, roots, now, &pc->valid_from, &pc->valid_until, &message);
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
                        peer_cert_cache_store(cache, digest, pc);
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
