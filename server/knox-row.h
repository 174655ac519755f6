/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One row of a Knox server's `secrets` table (id, acl, version_hash, versions, as Knox's
 * keydb writes them for MySQL and PostgreSQL alike: TEXT columns holding JSON) decoded into
 * a Key whose versions are still sealed under Knox's master key. */

#include <stddef.h>

#include "key.h"

/* Everything a stored keyward key must satisfy is checked (key_validate: id pattern, ACL,
 * one Primary, unique version ids) and the stored hash must be the one Knox computes from
 * the versions. -EBADMSG with a message in *reterr_message (never key data) otherwise. */
int knox_row_decode(
        const char *id,
        const char *acl,
        size_t acl_size,
        const char *hash,
        const char *versions,
        size_t versions_size,
        Key **ret,
        const char **reterr_message);
