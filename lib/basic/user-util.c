/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "user-util.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

#define NSS_BUFFER_START 4096
#define NSS_BUFFER_MAX (1024 * 1024)

typedef int (*NssLookup)(const void *key, void *entry, char *buf, size_t size, void **found);

/* Run one reentrant NSS lookup, growing its buffer while it says ERANGE. On success the
 * entry's strings point into *ret_buf, which the caller frees. */
static int nss_lookup(NssLookup lookup, const void *key, void *entry, char **ret_buf) {
        for (size_t size = NSS_BUFFER_START;; size *= 2) {
                _cleanup_free_ char *buf = malloc(size);
                void *found = NULL;
                int r;

                if (!buf)
                        return -ENOMEM;
                r = lookup(key, entry, buf, size, &found);
                if (r == ERANGE) {
                        if (size >= NSS_BUFFER_MAX)
                                return -ENOBUFS;
                        continue;
                }
                /* getpwnam_r(3): "not found" may also come back as one of these. */
                if (r == 0 && !found)
                        return -ESRCH;
                if (r == ENOENT || r == ESRCH || r == EBADF || r == EPERM)
                        return -ESRCH;
                if (r != 0)
                        return -r;
                *ret_buf = TAKE_PTR(buf);
                return 0;
        }
}

static int pw_by_name(const void *key, void *entry, char *buf, size_t size, void **found) {
        struct passwd *p = NULL;
        int r = getpwnam_r(key, entry, buf, size, &p);

        *found = p;
        return r;
}

static int pw_by_uid(const void *key, void *entry, char *buf, size_t size, void **found) {
        struct passwd *p = NULL;
        int r = getpwuid_r(*(const uid_t *) key, entry, buf, size, &p);

        *found = p;
        return r;
}

static int gr_by_name(const void *key, void *entry, char *buf, size_t size, void **found) {
        struct group *g = NULL;
        int r = getgrnam_r(key, entry, buf, size, &g);

        *found = g;
        return r;
}

static int gr_by_gid(const void *key, void *entry, char *buf, size_t size, void **found) {
        struct group *g = NULL;
        int r = getgrgid_r(*(const gid_t *) key, entry, buf, size, &g);

        *found = g;
        return r;
}

static int strdup_to(const char *s, char **ret) {
        char *c;

        if (!ret)
                return 0;
        c = strdup(s ?: "");
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

int user_by_name(const char *name, uid_t *ret_uid, gid_t *ret_gid, char **ret_passwd_field) {
        _cleanup_free_ char *buf = NULL;
        struct passwd pw;
        int r;

        assert_return(name, -EINVAL);
        r = nss_lookup(pw_by_name, name, &pw, &buf);
        if (r < 0)
                return r;
        r = strdup_to(pw.pw_passwd, ret_passwd_field);
        if (r < 0)
                return r;
        if (ret_uid)
                *ret_uid = pw.pw_uid;
        if (ret_gid)
                *ret_gid = pw.pw_gid;
        return 0;
}

int user_by_uid(uid_t uid, char **ret_name, gid_t *ret_gid) {
        _cleanup_free_ char *buf = NULL;
        struct passwd pw;
        int r;

        r = nss_lookup(pw_by_uid, &uid, &pw, &buf);
        if (r < 0)
                return r;
        r = strdup_to(pw.pw_name, ret_name);
        if (r < 0)
                return r;
        if (ret_gid)
                *ret_gid = pw.pw_gid;
        return 0;
}

int group_by_name(const char *name, gid_t *ret_gid) {
        _cleanup_free_ char *buf = NULL;
        struct group gr;
        int r;

        assert_return(name, -EINVAL);
        r = nss_lookup(gr_by_name, name, &gr, &buf);
        if (r < 0)
                return r;
        if (ret_gid)
                *ret_gid = gr.gr_gid;
        return 0;
}

int group_by_gid(gid_t gid, char **ret_name) {
        _cleanup_free_ char *buf = NULL;
        struct group gr;
        int r;

        r = nss_lookup(gr_by_gid, &gid, &gr, &buf);
        if (r < 0)
                return r;
        return strdup_to(gr.gr_name, ret_name);
}

int user_group_ids(const char *user, gid_t gid, gid_t **ret, size_t *ret_n) {
        long max = sysconf(_SC_NGROUPS_MAX);
        int n = 64;

        assert_return(user && ret && ret_n, -EINVAL);
        if (max <= 0 || max > INT_MAX)
                max = 65536;

        for (;;) {
                _cleanup_free_ gid_t *gids = calloc((size_t) n, sizeof(gid_t));
                int want = n;

                if (!gids)
                        return -ENOMEM;
                if (getgrouplist(user, gid, gids, &want) >= 0) {
                        *ret = TAKE_PTR(gids);
                        *ret_n = (size_t) want;
                        return 0;
                }
                /* want is how many there are; some NSS modules leave it as it was. */
                if (want <= n)
                        want = n * 2;
                if (want > max)
                        return -E2BIG;
                n = want;
        }
}
