/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Where keywardd's master key comes from: a file path, "credential:NAME" (a systemd
 * credential in $CREDENTIALS_DIRECTORY), or an RFC 7512 "pkcs11:" URI. */

#include "cryptor.h"
#include "secret.h"

/* Load the raw key (16, 24 or 32 bytes) and build the cryptor over it. */
int master_key_load(const char *spec, Cryptor **ret);

/* For `keywardd init`: make a 32-byte random key file (0600, written atomically) when the
 * file is absent; 0 when it was made, 1 when one was there already. Other kinds of spec are
 * provisioned outside keywardd (systemd-creds, the token's own tools): 1 if they load. */
int master_key_init(const char *spec);
