/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The names a key's registration on a host is made of, as keyward-agent and the keyward CLI
 * both check them: key ids, readers ("user:NAME", "group:NAME"), systemd unit names and
 * credential names. */

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

#define REGISTRY_NAME_MAX 255 /* key ids and credential names become file names */

/* Checks of single values; each is false for NULL. */
bool registry_id_is_valid(const char *id) _pure_;
bool registry_reader_is_valid(const char *reader) _pure_;
bool registry_unit_is_valid(const char *unit) _pure_;
bool registry_credential_is_valid(const char *name) _pure_;

/* Append the whitespace-separated ids of text (keyward register -f's file; a NUL counts as
 * whitespace) to *ids, then drop the repeats of any id in the whole list, keeping each first
 * one in place. The ids are not checked here (the agent does). */
int registry_id_list_parse(const char *text, size_t size, char ***ids);

/* A file a key is written to (Register's "file" option): an absolute path of at most
 * REGISTRY_FILE_PATH_MAX bytes with no empty, "." or ".." component, no trailing '/', no
 * control character, and a last component short enough for a temporary name beside it. */
#define REGISTRY_FILE_PATH_MAX 1024
#define REGISTRY_FILE_NAME_MAX 200
bool registry_file_path_is_valid(const char *path) _pure_;
/* A user or group name for file_owner and file_group (the rules of readers' names). */
bool registry_account_is_valid(const char *name) _pure_;
/* A file's mode: no bit for others, no execute, setuid, setgid or sticky bit (a subset of
 * 0660). */
bool registry_file_mode_is_valid(unsigned mode) _const_;
