/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Users and groups through NSS, with the reentrant calls' buffer grown as needed (up to
 * 1 MiB: an entry bigger than that is treated as an NSS failure, -ENOBUFS). Each returns
 * -ESRCH when NSS has no such entry and -errno when NSS fails; the ret_ pointers may be
 * NULL. Nothing here parses numeric ids: callers decide whether "1000" names a user. */

#include <stddef.h>
#include <sys/types.h>

int user_by_name(const char *name, uid_t *ret_uid, gid_t *ret_gid, char **ret_passwd_field);
int user_by_uid(uid_t uid, char **ret_name, gid_t *ret_gid);
int group_by_name(const char *name, gid_t *ret_gid);
int group_by_gid(gid_t gid, char **ret_name);

/* Every group of user, whose primary group is gid (which is in the list), as getgrouplist(3)
 * finds them; at most NGROUPS_MAX of them (-E2BIG past that). *ret is malloc()ed. */
int user_group_ids(const char *user, gid_t gid, gid_t **ret, size_t *ret_n);
