/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The keys registered on this host and their options, as the agent keeps them in its state
 * directory (registrations.json, 0600, replaced atomically):
 *
 *   {"version":1,"keys":[{"id":"db_password","readers":["user:alice","group:web"],
 *     "units":["web.service"],"credential":"db","on_change":"restart"}, ...]}
 *
 * Everything in here is checked on the way in, from D-Bus and from the file alike. */

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"
#include "registry-names.h"
#include "secret.h"

#define REGISTRY_FILE_MAX (32u * 1024 * 1024)
#define REGISTRY_LIST_MAX 64 /* readers or units of one key */
#define REGISTRY_KEYS_MAX 100000

typedef enum OnChange {
        ON_CHANGE_NONE,
        ON_CHANGE_RESTART,
        ON_CHANGE_RELOAD_OR_RESTART,
        ON_CHANGE_RELOAD, /* for programs that read a file (agent-files.c) again on reload */
        _ON_CHANGE_MAX,
        _ON_CHANGE_INVALID = -EINVAL,
} OnChange;

const char *on_change_to_string(OnChange c) _const_;
OnChange on_change_from_string(const char *s) _pure_;

typedef struct Registration {
        char *id;
        char **readers;   /* "user:NAME" or "group:NAME"; NULL when none */
        char **units;     /* systemd unit names; NULL when none */
        char *credential; /* LoadCredential= name, or NULL */
        OnChange on_change;
        /* A file the key is written to (agent-files.c), or NULL; its owner and group by name
         * (NULL: root), and its mode (0: the default, given at registration). */
        char *file;
        char *file_owner;
        char *file_group;
        unsigned file_mode;
} Registration;

void registration_done(Registration *r);
int registration_copy(const Registration *src, Registration *ret);
static inline void registration_donep(Registration *r) {
        registration_done(r);
}

/* Every field of r valid (lists at most REGISTRY_LIST_MAX long, no duplicates); -EINVAL with
 * a static message naming the problem otherwise. */
int registration_validate(const Registration *r, const char **reterr_message);

/* Fold src into dst (same id): readers and units are added to dst's, credential and
 * on_change replace dst's when src sets them (credential non-NULL, on_change_set), and so do
 * the file's owner, group and mode when src names dst's file (or dst has none). Returns 1
 * when dst changed, 0 when not, -E2BIG past REGISTRY_LIST_MAX, -EEXIST when src names
 * another file than dst's, -ENOMEM. */
int registration_merge(Registration *dst, const Registration *src, bool on_change_set);

/* Read the registry file: -ENOENT when there is none (*ret untouched). Entries that fail
 * registration_validate() are logged and skipped, duplicates are merged. -EBADMSG when the
 * file is not a registry at all. The result is sorted by id. */
int registry_load(const char *path, Registration **ret, size_t *ret_n);

/* Write the registry file atomically (mode 0600), entries in the order given. */
int registry_save(const char *path, const Registration *const *regs, size_t n);

/* The same, sealed to the host (cache-key.h) under seal, the "registry" purpose key:
 * "keyward-registry-v2\n", nonce, AES-256-GCM of the JSON text, tag. registry_load_sealed()
 * is -EBADMSG (logged) when the file does not open with seal. */
#define REGISTRY_SEALED_MAGIC "keyward-registry-v2\n"
int registry_load_sealed(const char *path, const Secret *seal, Registration **ret, size_t *ret_n);
int registry_save_sealed(const char *path, const Secret *seal, const Registration *const *regs, size_t n);

/* The JSON text of the registry (exposed for tests). */
int registry_format(const Registration *const *regs, size_t n, char **ret, size_t *ret_size);
int registry_parse(const char *text, size_t size, Registration **ret, size_t *ret_n);
