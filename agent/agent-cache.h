/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The agent's private key cache: a directory (0700) with one file (0600) per registered key,
 * named by the key id. A file is sealed to the host (cache-key.h): a header line, the key's
 * write sequence and version hash, then the key as Knox's GET returned it, encrypted:
 *
 *   keyward-cache-v2\n <seq: 8 bytes, big-endian> <version hash: 32 bytes>
 *   <nonce: 12 bytes> <AES-256-GCM of {"id":"...","acl":[],"versions":[...],"hash":"..."}>
 *   <tag: 16 bytes>
 *
 * under the cache purpose key, with associated data binding the header, the key id, the
 * sequence and the hash. The JSON is in the clear only in memory (a Secret). Files are
 * replaced atomically (temporary file, fsync, rename, fsync of the directory). A file that
 * does not open (another host's key, changed, cut, another key's file), does not parse, or
 * names another key is corrupt: it is never served. The checksum (SHA-256 of the JSON) of
 * every file the agent wrote or loaded is also kept in memory, so a file changed behind the
 * agent's back is caught as well. A keyward-cache-v1 file (plaintext, of an earlier agent)
 * is -EPROTONOSUPPORT: the agent removes it and fetches the key again. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "key.h"
#include "macro.h"
#include "secret.h"

/* The largest cache file. keywardd limits each version (its --max-body-size, 1 MiB by
 * default), not how many versions a key has, so a key may outgrow this: the agent then
 * serves it from memory, up to CACHE_MEMORY_MAX (the largest answer its client accepts),
 * and reports that its file could not be written (-EFBIG). */
#define CACHE_FILE_MAX (8u * 1024 * 1024)
#define CACHE_MEMORY_MAX (64u * 1024 * 1024)
#define CACHE_SHA256_SIZE 32
#define CACHE_HASH_SIZE 32 /* (KEY_HASH_HEX_SIZE - 1) / 2 */

typedef struct CacheInfo {
        uint64_t primary;                  /* the primary version id */
        uint64_t seq;                      /* the file's write sequence (per key, from 1) */
        uint8_t sha256[CACHE_SHA256_SIZE]; /* of the file's JSON */
        uint8_t hash[CACHE_HASH_SIZE];     /* the key's Knox version hash, as bytes */
        bool valid;                        /* a verified file is there */
} CacheInfo;

/* The version hash as Knox writes it (64 lowercase hex digits), or "" without a valid file. */
const char *cache_info_hash(const CacheInfo *info, char buf[static KEY_HASH_HEX_SIZE]);

/* Create dir if needed, mode 0700; a looser mode is tightened (and logged). -ENOTDIR, or
 * -EPERM when it belongs to another user. */
int cache_dir_setup(const char *dir);

/* The plaintext (Knox's JSON) for k, in a Secret, and its checksum; -E2BIG over
 * CACHE_MEMORY_MAX. */
int cache_encode(const Key *k, Secret **ret, CacheInfo *ret_info);
/* Check and parse plaintext. -EBADMSG (with a static reason) when it is corrupt. id may
 * be NULL to accept any key; ret_key may be NULL to check only. */
int cache_decode(
        const uint8_t *p,
        size_t n,
        const char *id,
        Key **ret_key,
        CacheInfo *ret_info,
        const char **reterr_reason);

/* The sealed file for plaintext that cache_encode() made for key id, as write sequence seq
 * with version hash hash (CACHE_HASH_SIZE bytes). seal is the cache purpose key. */
int cache_seal_file(
        const Secret *seal,
        const char *id,
        uint64_t seq,
        const uint8_t *hash,
        const Secret *plain,
        uint8_t **ret,
        size_t *ret_size);
/* Open a sealed file of key id: its plaintext, sequence and version hash. -EBADMSG (reason
 * set) when it does not open; -EPROTONOSUPPORT for a keyward-cache-v1 (plaintext) file. */
int cache_open_file(
        const Secret *seal,
        const char *id,
        const uint8_t *p,
        size_t n,
        Secret **ret_plain,
        uint64_t *ret_seq,
        uint8_t ret_hash[static CACHE_HASH_SIZE],
        const char **reterr_reason);

/* Write k as dir/<k->id>, sealed as sequence seq; or content that cache_encode() made for
 * key id, with info (its hash and seq) from there. -EFBIG when the content is over
 * CACHE_FILE_MAX (nothing is written). */
int cache_write(const char *dir, const Secret *seal, const Key *k, uint64_t seq, CacheInfo *ret_info);
int cache_write_content(
        const char *dir, const Secret *seal, const char *id, const CacheInfo *info, const Secret *content);
/* The same, atomic (a reader finds the old file or the new one) but not yet durable: for a
 * key with no copy on disk before, so that a first sync of many keys waits for the disk once
 * (cache_sync()), not once per key. A crash before cache_sync() may leave such a file short;
 * it then fails its check at start and the key is fetched again, as it would have been. */
int cache_write_content_lazy(
        const char *dir, const Secret *seal, const char *id, const CacheInfo *info, const Secret *content);
/* Make every lazy write under dir durable (syncfs(2) of its file system). */
int cache_sync(const char *dir);
/* Read, open and check dir/<id>: -ENOENT when missing, -EBADMSG when corrupt (reason set),
 * -EPROTONOSUPPORT for a plaintext file of an earlier version, -EPERM when it is not a
 * regular file or is readable by group or others (not trusted: it may have been exposed or
 * planted). ret_info->seq is the file's sequence. */
int cache_read(
        const char *dir,
        const Secret *seal,
        const char *id,
        Key **ret_key,
        CacheInfo *ret_info,
        const char **reterr_reason);
/* The same, also returning the fstat() of the file read (may be NULL). */
int cache_read_stat(
        const char *dir,
        const Secret *seal,
        const char *id,
        Key **ret_key,
        CacheInfo *ret_info,
        struct stat *ret_stat,
        const char **reterr_reason);
/* Whether two stat results are of the same unchanged file (inode, size, times). */
bool cache_same_file(const struct stat *a, const struct stat *b) _pure_;
/* Remove dir/<id>; 0 also when it was not there. */
int cache_remove(const char *dir, const char *id);

/* Remove what does not belong in dir: leftover temporary files, and files of keys for which
 * keep(id, userdata) is false. Returns the number of files removed. */
int cache_prune(const char *dir, bool (*keep)(const char *id, void *userdata), void *userdata);

/* The agent's record of the cache file it last wrote of each key (its write sequence and
 * version hash), sealed in a file of its own (purpose key "seen"): at start, a file that
 * does not match it (an older copy put back) is refused. Plaintext: one line per key,
 * "<seq> <64 hex digits of the hash> <id>\n", sorted by id. */
typedef struct CacheSeen {
        char *id;
        uint64_t seq;
        uint8_t hash[CACHE_HASH_SIZE];
} CacheSeen;

void cache_seen_free(CacheSeen *l, size_t n);
/* Parse the plaintext: -EBADMSG when malformed. The list is sorted by id. */
int cache_seen_parse(const uint8_t *p, size_t n, CacheSeen **ret, size_t *ret_n);
/* The entry of id in a sorted list, or NULL. */
const CacheSeen *cache_seen_find(const CacheSeen *l, size_t n, const char *id);
/* Write the record (entries sorted by id) sealed under seal, atomically; read it back:
 * -ENOENT when there is none, -EBADMSG when it does not open or parse. */
int cache_seen_save(const char *path, const Secret *seal, const CacheSeen *l, size_t n);
int cache_seen_load(const char *path, const Secret *seal, CacheSeen **ret, size_t *ret_n);
