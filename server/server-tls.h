/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keywardd's TLS: the server context and the trust store for client certificates.
 *
 * The context speaks TLS 1.2 and 1.3 with forward-secret AEAD suites only, prefers its own
 * order, offers ALPN "http/1.1" alone (protocol.md §1), and asks every client for a
 * certificate without ever failing the handshake over it and without naming any CA
 * (protocol.md §1): Knox checks the certificate per request in its auth providers,
 * and Knox's dev_client must still reach user-token routes with its expired certificate.
 * peer-cert.c verifies the certificate once per connection against the store made by
 * tls_client_roots_new().
 *
 * Reconnecting clients resume. A TLS 1.3 client whose certificate was issued by a CA of
 * --client-ca itself (it sent no intermediate) gets a stateless ticket, sealed with a
 * ticket key derived from the master key (tls_set_ticket_seed()): every keywardd with that
 * master key, a restarted one included, resumes it. A client that sent intermediates gets a
 * stateful ticket from the server-side session cache, as TLS 1.2 clients get session IDs:
 * the cache keeps the client's whole chain, so that a resumed connection is verified
 * exactly like a full one, where a stateless ticket carries the leaf but drops the
 * intermediates. One TLS 1.3 ticket is sent per
 * handshake instead of OpenSSL's two (a stateless one costs about 0.2 ms with client
 * certificates; a cached one much less). Sessions are kept even when a connection ends
 * without close_notify, as it does under libevent (see server-tls.c). Measured on a
 * socketpair: about 0.45 ms of server CPU for a full handshake, 0.13 ms for a resumed one,
 * against 0.83 and 0.40 ms with OpenSSL's defaults and in-handshake chain verification.
 *
 * Errors are negative errno values: -ENOENT, -EACCES... for files that cannot be opened,
 * -EBADMSG for files that hold no usable PEM, -EKEYREJECTED for a key that does not match
 * the certificate, -ENOKEY for a passphrase-protected key, -ENOMEM. OpenSSL's own error
 * strings are logged at debug level only. */

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "macro.h"

/* clang-format off */
#define TLS_SERVER_NUM_TICKETS          1    /* TLS 1.3 tickets per handshake */
#define TLS_SERVER_SESSION_CACHE_SIZE   2048 /* sessions kept: ~9 KiB each with a client chain */
#define TLS_SERVER_SESSION_TIMEOUT_SEC  3600 /* how long a session may be resumed */
#define TLS_SERVER_SESSION_ID_CONTEXT   "keywardd"
#define TLS_ALPN_HTTP_1_1               "http/1.1"
#define TLS_CLIENT_VERIFY_CACHE_SIZE    4096 /* verified client chains remembered */
#define TLS_TICKET_SEED_SIZE            32
#define TLS_TICKET_SEED_INFO            "keywardd TLS session ticket seed v1"
#define TLS_TICKET_KEY_PERIOD_SEC       3600 /* a ticket key seals for this long, then opens one more */
/* clang-format on */

/* The seed of the session ticket keys: the key holder derives it from the master key
 * (HKDF-SHA256, info TLS_TICKET_SEED_INFO), and each period of TLS_TICKET_KEY_PERIOD_SEC
 * since the epoch has its own ticket key derived from it, so keys rotate every hour and a
 * ticket opens for at most two periods (the session itself expires after
 * TLS_SERVER_SESSION_TIMEOUT_SEC). Call once, before any context is made; until then (unit
 * tests, `keywardd` without a key holder) the seed is random, good for this process only.
 * The seed is kept in locked memory. */
int tls_set_ticket_seed(const uint8_t seed[static TLS_TICKET_SEED_SIZE]);

/* A new server context with the certificate chain (PEM: leaf first, then intermediates) and
 * the private key (PEM) at these paths. The paths are remembered for tls_server_ctx_reload(). */
int tls_server_ctx_new(const char *cert_chain_path, const char *key_path, SSL_CTX **ret);

/* A new context built from the paths old was made from (on SIGHUP): the caller swaps it in
 * and drops its reference to old; connections still using old keep it alive. On failure
 * nothing changes and old stays good. Sessions cached by old are not carried over; stateless
 * tickets are, since the ticket keys belong to the process (tls_set_ticket_seed()). */
int tls_server_ctx_reload(SSL_CTX *old, SSL_CTX **ret);

/* The trust store for client certificates: every certificate in the PEM file at ca_path
 * (at least one), with a cache of verified chains attached (peer_cert_cache_attach()), so
 * that a client reconnecting with the same chain is not verified again. Built once, then
 * used by any number of threads. */
int tls_client_roots_new(const char *ca_path, X509_STORE **ret);
