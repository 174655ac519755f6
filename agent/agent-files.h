/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Files for programs that are not units (Register's "file" option): the primary version of a
 * key, or its version set as Knox's JSON for a path ending in ".json", written to a path under
 * a directory the admin allowed (--file-dir), with the owner, group and mode registered;
 * rewritten when that content changes, removed at unregister, written again at start.
 *
 * Every write walks from the allowed directory down with O_NOFOLLOW on each component and
 * replaces the file through the directory's fd (a temporary file made with the final owner
 * and mode before any byte is written, fsync, rename, fsync of the directory), so that a
 * symbolic link planted at any time never makes the agent write elsewhere. Main thread. */

#include "agent.h"

/* The mode of a file when Register gives none: 0400, or 0440 when a group is named. */
#define AGENT_FILE_MODE_DEFAULT 0400u
#define AGENT_FILE_MODE_DEFAULT_GROUP 0440u

/* Whether path may be a key's file (pure): strictly below one of dirs (each without a
 * trailing '/'), and neither state_dir nor below it. 0 with the allowed directory in
 * *ret_dir (may be NULL), or -EPERM with a static message. */
int agent_files_path_allowed(
        const char *path,
        char *const *dirs,
        const char *state_dir,
        const char **ret_dir,
        const char **reterr_message);

/* Whether a path ends in ".json" (the version set is written). */
bool agent_files_is_json(const char *path) _pure_;

/* Check reg's file at registration: allowed (as above), no symbolic link on its way or in its
 * place, no file there that no key writes, its owner and group known to NSS; a mode of 0
 * becomes the default. 0, or -EINVAL with
 * a message for the caller in *reterr_message (malloc()ed), or -ENOMEM. */
int agent_files_check(Agent *a, Registration *reg, char **reterr_message);

/* The registered key other than except_id that writes path, or NULL. */
const char *agent_files_key_of(Agent *a, const char *path, const char *except_id);

/* Write k's file from its current copy when the file's content, owner or mode differ from
 * what they should be: 1 written, 0 nothing to do (no file, no copy yet, or up to date), or a
 * negative errno (logged). */
int agent_files_update(Agent *a, const AgentKey *k);
/* The same for every registered key (at start). */
void agent_files_update_all(Agent *a);
/* Key id changed (the main loop's news from the sync threads). */
void agent_files_key_changed(Agent *a, const char *id);
/* Remove reg's file, if it is a regular file where the checks allow (unregister). */
void agent_files_remove(Agent *a, const Registration *reg);
