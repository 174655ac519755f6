/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Where keywardd's master key comes from: a file path, "credential:NAME" (a systemd
 * credential in $CREDENTIALS_DIRECTORY), or an RFC 7512 "pkcs11:" URI. */

#include "cryptor.h"
#include "secret.h"

/* Load the raw key (16, 24 or 32 bytes) and build the cryptor over it. */
int master_key_load(const char *spec, Cryptor **ret);

/* Load an older master key into c, to open what it sealed but never seal with it (while
 * `keywardd rekey` moves the store to c's key). -EEXIST when c has that key already. */
int master_key_add_old(Cryptor *c, const char *spec);

/* For `keywardd init`: make a 32-byte random key file (0600, written atomically) when the
 * file is absent, or on a PKCS#11 token the AES key and the data key it seals
 * (master-key-pkcs11.h); 0 when something was made, 1 when it was all there already. A
 * credential is provisioned outside keywardd (systemd-creds): 1 if it loads. */
int master_key_init(const char *spec);
