/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The identity a TLS client proves with its certificate, worked out once per connection
 * (protocol.md §5). Knox verifies the certificate again on every request; the
 * answer cannot change while a connection lives, so keywardd computes it on the first
 * request and keeps it on the connection.
 *
 * Verification follows Go's x509.Certificate.Verify as Knox calls it: the leaf is the
 * client's certificate, the other certificates it sent are untrusted intermediates, the
 * roots are the client CA store (any certificate in it is a trust anchor, as in a Go
 * CertPool), every certificate of the chain must be within its validity dates, and each
 * one that lists extended key usages must allow clientAuth (or any usage); a certificate
 * without the extension passes, and the key usage bits are ignored as Go ignores them.
 * Failures carry Knox's messages, "auth: failed to verify client's certificate: x509: ...",
 * with Go's wording of the x509 part (times in UTC, where Go prints the server's zone).
 *
 * The subjectAltName lists are extracted whether or not the chain verified (for logs);
 * peer_cert_match_host() and peer_cert_spiffe_id() refuse an unverified certificate.
 * A PeerCert never changes once made, so threads may share it (through the cache below). */

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <time.h>

#include "macro.h"

#define PEER_CERT_ERROR_NO_CERT "auth: No peer certs configured"
#define PEER_CERT_ERROR_PREFIX "auth: failed to verify client's certificate: "
#define PEER_CERT_ERROR_NO_SPIFFE "auth: no spiffe identity in certificate"
#define PEER_CERT_ERROR_SPIFFE_MANY "auth: more than one service identity specified in certificate"
#define PEER_CERT_ERROR_SPIFFE_PREFIX "auth: service identity was not a valid SPIFFE ID (bad prefix)"
#define PEER_CERT_ERROR_SPIFFE_FORMAT "auth: service identity was not a valid SPIFFE ID (bad format)"

typedef struct PeerCert PeerCert;

/* OpenSSL's STACK_OF(X509), under a name clang-format can read. */
typedef STACK_OF(X509) X509Chain;

/* The core: verify leaf with the untrusted intermediates (may be NULL, may contain the
 * leaf again) against roots at time now, and extract its names. leaf NULL means the client
 * sent no certificate. 0 with *ret set whether or not the chain verified (see
 * peer_cert_error()); -ENOMEM, or -EIO when OpenSSL fails internally. */
int peer_cert_verify(X509 *leaf, X509Chain *intermediates, X509_STORE *roots, time_t now, PeerCert **ret);

/* The same for an established server-side connection, at the current time: the peer's
 * certificate and the chain it sent (kept in the session, so resumed connections work). */
int peer_cert_from_ssl(SSL *ssl, X509_STORE *roots, PeerCert **ret);

/* Attach a cache of successful verifications to a trust store, for peer_cert_verify() and
 * peer_cert_from_ssl() with that store: a chain verified once (by its SHA-256) is not
 * verified again while all its certificates are within their dates. n_entries bounds it
 * (direct-mapped: a newcomer evicts the chain in its slot). Freed with the store.
 * -EEXIST if the store has one already. Thread-safe once attached. */
int peer_cert_cache_attach(X509_STORE *roots, size_t n_entries);

/* Drops a reference: objects may be shared through the cache (they never change). */
PeerCert *peer_cert_free(PeerCert *pc);
DEFINE_TRIVIAL_CLEANUP_FUNC(PeerCert *, peer_cert_free);

bool peer_cert_verified(const PeerCert *pc);
/* NULL when verified, else Knox's message: PEER_CERT_ERROR_NO_CERT, or
 * PEER_CERT_ERROR_PREFIX followed by Go's x509 error, e.g. "x509: certificate has expired or
 * is not yet valid: current time 2025-05-20T10:00:00Z is after 2023-03-01T00:00:00Z",
 * "x509: certificate signed by unknown authority", "x509: certificate specifies an
 * incompatible key usage". Owned by pc. */
const char *peer_cert_error(const PeerCert *pc);

/* The leaf's subjectAltName entries in certificate order, NULL-terminated, never NULL
 * (possibly empty); IP addresses printed as Go prints them. Owned by pc. */
char *const *peer_cert_dns_names(const PeerCert *pc);
char *const *peer_cert_ip_addresses(const PeerCert *pc);
char *const *peer_cert_uris(const PeerCert *pc);

/* Go's Certificate.VerifyHostname, which Knox's mtls provider calls with the payload of
 * "0t<host>": an IP literal (optionally in [ ]) is compared with the IP SANs only; any
 * other host with the DNS SANs only, ASCII case-insensitively, a "*" pattern label matching
 * exactly one whole leftmost label, one trailing dot ignored; the CN never counts.
 * 0 on a match; -EKEYREJECTED with *reterr_message set (newly allocated; Go's text, which
 * Knox returns unprefixed: "x509: certificate is valid for a, b, not c") on a mismatch or
 * when the certificate did not verify (then the verification error); -ENOMEM. */
int peer_cert_match_host(const PeerCert *pc, const char *host, char **reterr_message);

/* Knox's SPIFFE provider: exactly one URI SAN, "spiffe://" then a domain, a '/' and a path.
 * 0 with *ret_id (owned by pc) set; -EKEYREJECTED with *reterr_message set to one of the
 * PEER_CERT_ERROR_* texts (static) or the verification error (owned by pc). */
int peer_cert_spiffe_id(const PeerCert *pc, const char **ret_id, const char **reterr_message);
