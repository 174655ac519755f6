/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Opening the versions of a Knox server's database with Knox's master key. Knox's AES-GCM
 * cryptor is keyward's (knox-api.md §7.2) except that a Knox deployment may use any version
 * byte; the byte is not part of the associated data, so it only names the key. */

#include "cryptor.h"
#include "key.h"

/* The raw key in FILE (16, 24 or 32 bytes, no newline: what Knox's NewAESGCMCryptor takes).
 * -EINVAL with a logged message for another size; the file's errors otherwise. */
int knox_master_key_load(const char *path, Cryptor **ret);

/* Open v->sealed into v->data whatever v->crypt's version byte is. -EBADMSG when the tag
 * does not verify (the wrong key, or a row changed by hand), -EINVAL for malformed metadata. */
int knox_open_version(const Cryptor *c, const char *key_id, KeyVersion *v);
