/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "cryptor.h"
#include "store.h"

/* `keywardd init` after the not_after migration: the keys stored before it have no record
 * of their certificates (the column is NULL in their rows). Open every version of each key
 * that has none, and write the notAfter of those that are X.509 certificates, key by key
 * (each its own optimistic update, so an interrupted run loses nothing and the next run
 * finishes it). A key written meanwhile is skipped: its writer recorded it; so is, with a
 * warning, one whose versions do not open. The data is never logged. *ret_n (optional): how
 * many keys got a record. */
int store_backfill_not_after(Store *s, const Cryptor *c, size_t *ret_n);
