/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* `keywardd backup`: a consistent copy of a live SQLite store (see docs/store.md, "Backup"). */

/* Copy the SQLite store db to dest while other processes read and write it: one read
 * snapshot of db (SQLite's online backup API), written to a temporary file beside dest
 * (0600), checked with PRAGMA quick_check, fsynced, renamed over dest, and the directory
 * fsynced. The copy is in WAL mode like a store `keywardd init` made, in one file.
 * -EOPNOTSUPP for a PostgreSQL URL (pg_dump's job), -ENOMEDIUM for a file that is no
 * initialised store, -EEXIST when dest is db itself or has SQLite's -wal or -shm files
 * beside it (a store in use), -EBUSY when no snapshot could be taken in time. */
int store_backup(const char *db, const char *dest);
