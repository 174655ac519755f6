/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A master key on a PKCS#11 token (RFC 7512 URI with module-path= and pin-value= or
 * pin-source=). The token holds an AES-256 key that never leaves it (sensitive, not
 * extractable), and, as a private data object labelled "<object>.data-key", the data key
 * keywardd encrypts with, sealed by that key with AES-GCM on the token. Loading asks the token
 * to open the data key; keywardd never sees the token's key. */

#include <stdbool.h>

#include "secret.h"

/* The data key. With create set (keywardd init), make the token key and the sealed data key
 * when they are missing; *ret_created tells whether anything was made. */
int pkcs11_data_key_load(const char *uri, bool create, Secret **ret_key, bool *ret_created);
