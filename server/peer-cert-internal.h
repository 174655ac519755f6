/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What peer-cert.c and its parts share: the PeerCert object, the names extracted from the
 * leaf (peer-cert-names.c), Go's chain verification (peer-cert-chain.c) and the cache of
 * verified chains (peer-cert-cache.c). Included by peer-cert*.c only. */

#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdint.h>

#include "peer-cert.h"

struct PeerCert {
        atomic_uint n_ref; /* shared through the verification cache, across threads */
        bool verified;
        time_t valid_from, valid_until; /* when verified: the chain's common validity */
        char *error;                    /* Knox's message; NULL when verified */
        char **dns;
        char **ips;            /* printed as Go prints them */
        uint8_t (*ip_bin)[16]; /* the same, as IPv6 (IPv4 mapped), for comparisons */
        size_t n_ip_bin;
        char **uris;   /* those without a NUL byte */
        size_t n_uris; /* all of them, for the SPIFFE provider's count */
        bool has_san_ext;
        char *common_name; /* the last CN of the subject, for Go's legacy-CN hint only */
};

static inline PeerCert *peer_cert_ref(PeerCert *pc) {
        atomic_fetch_add_explicit(&pc->n_ref, 1, memory_order_relaxed);
        return pc;
}

/* An IPv4 or IPv6 literal as Go's net.ParseIP accepts it, as 16 bytes (IPv4 mapped). */
bool peer_cert_parse_ip(const char *s, uint8_t ret[16]);

/* The leaf's subjectAltName entries and last CN into pc. */
int peer_cert_extract_names(PeerCert *pc, X509 *leaf);

/* 0 when the chain verifies, with the span of time in which all its certificates are
 * valid; 1 with Go's x509 message when it does not; -errno. */
int peer_cert_verify_chain(
        X509 *leaf,
        X509Chain *untrusted,
        X509_STORE *roots,
        time_t now,
        time_t *ret_valid_from,
        time_t *ret_valid_until,
        char **ret_message);

/* The cache attached to a trust store (peer_cert_cache_attach()), or NULL. */
typedef struct PeerCertCache PeerCertCache;
PeerCertCache *peer_cert_cache_get(X509_STORE *roots);
/* The SHA-256 of the leaf and every certificate sent with it. */
int peer_cert_cache_digest(PeerCertCache *c, X509 *leaf, X509Chain *sent, uint8_t ret[SHA256_DIGEST_LENGTH]);
/* A new reference to the verified chain of that digest, while it is valid at now; or NULL. */
PeerCert *peer_cert_cache_lookup(PeerCertCache *c, const uint8_t digest[SHA256_DIGEST_LENGTH], time_t now);
void peer_cert_cache_store(PeerCertCache *c, const uint8_t digest[SHA256_DIGEST_LENGTH], PeerCert *pc);
