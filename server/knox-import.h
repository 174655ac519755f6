/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* `keywardd import-knox`: copy every key of a Knox server's database into keyward's store
 * with its id, ACL, version ids, statuses, creation times, data and version hash unchanged.
 *
 * Two passes over Knox's table. The first decodes every row and opens every version with
 * Knox's master key, and writes nothing: a malformed row is reported (each one, with its
 * id and what is wrong), a version that does not open is reported for the first key it
 * happens to (with a wrong key every version fails), and any of these ends the import with
 * nothing written. The second pass compares each key with the store: absent ones are added,
 * equal ones left alone, and different ones updated with `update` or reported otherwise.
 * With `dry_run` the second pass says what it would do and writes nothing. */

#include <stdbool.h>
#include <stdio.h>

#include "cryptor.h"
#include "knox-db.h"
#include "store.h"

typedef struct KnoxImportOptions {
        bool dry_run;
        bool update;
} KnoxImportOptions;

typedef struct KnoxImportStats {
        unsigned read;
        unsigned added;
        unsigned updated;
        unsigned unchanged;
        unsigned differ; /* different in keyward, and not updated */
        unsigned bad;    /* rows that do not decode */
        unsigned sealed; /* keys with a version that does not open */
} KnoxImportStats;

/* One line per key added, updated or differing on out, and a summary line. -EBADMSG when
 * the first pass found bad rows or versions that do not open (nothing written then). */
int knox_import(
        KnoxDb *db,
        const Cryptor *knox_key,
        Store *store,
        const Cryptor *master_key,
        const KnoxImportOptions *o,
        FILE *out,
        KnoxImportStats *ret);
