/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Knox's authentication providers (protocol.md §5): the Authorization header is one
 * version character '0', one type character and a payload. Providers, in Knox's order:
 *   mtls            't'  the payload is a hostname the verified client certificate holds
 *   user            'u'  the payload is a user token minted by keywardd
 *   spiffe          's'  the certificate's single spiffe:// URI SAN; the payload is ignored
 *   spiffe-fallback 't'  the same, for machine requests whose certificate is a service's
 * Every provider that matches is tried; each success adds a principal, the first is the
 * default. With none, the message is the last failure's, or Knox's "No matching
 * authentication providers found". */

#include <stdint.h>

#include "acl.h"
#include "peer-cert.h"
#include "store.h"

#define USER_TOKEN_PREFIX "kwt_"

typedef struct AuthRequest {
        const char *authorization; /* the header, NULL if absent */
        const PeerCert *peer;      /* the connection's verified certificate, NULL if none was sent */
        Store *store;              /* for user tokens */
        int64_t now_ns;
} AuthRequest;

/* 0 with *ret filled (at least one principal, and *ret_token_hash set when a user token
 * authenticated), or -EACCES with the message for the 401, or another negative errno when
 * something broke (the store failed: 500). */
int auth_request(
        const AuthRequest *req,
        Principals *ret,
        uint8_t ret_token_hash[TOKEN_HASH_SIZE],
        bool *ret_has_token,
        char **reterr_message);

/* A new user token "kwt_<43 base64url characters>" (256 random bits) in a Secret, and the
 * SHA-256 it is stored under. */
int user_token_new(Secret **ret_token, uint8_t ret_hash[TOKEN_HASH_SIZE]);
int user_token_hash(const char *token, size_t n, uint8_t ret_hash[TOKEN_HASH_SIZE]);
