/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-files.h"

#include <fcntl.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-read.h"
#include "buf.h"
#include "fileio.h"
#include "hexdecoct.h"
#include "knox-json.h"
#include "log.h"
#include "random-util.h"
#include "strv.h"
#include "user-util.h"

/* Whether path is dir or below it (dir's trailing slashes ignored: "--state-dir /x/" is /x). */
static bool path_startswith(const char *path, const char *dir) {
        size_t n = strlen(dir);

        while (n > 1 && dir[n - 1] == '/')
                n--;
        if (!strneq(path, dir, n))
                return false;
        return path[n] == '\0' || path[n] == '/' || (n == 1 && dir[0] == '/');
}

int agent_files_path_allowed(
        const char *path,
        char *const *dirs,
        const char *state_dir,
        const char **ret_dir,
        const char **reterr_message) {
        const char *found = NULL;

        assert_return(path && reterr_message, -EINVAL);

        if (!registry_file_path_is_valid(path)) {
                *reterr_message = "the file must be an absolute path without '.', '..' or empty components";
                return -EPERM;
        }
        if (strv_length((char **) dirs) == 0) {
                *reterr_message = "file delivery is off: the agent has no --file-dir";
                return -EPERM;
        }
        STRV_FOREACH(d, dirs)
                if (path_startswith(path, *d) && !streq(path, *d)) {
                        found = *d;
                        break;
                }
        if (!found) {
                *reterr_message = "the file is not under a directory allowed with --file-dir";
                return -EPERM;
        }
        if (state_dir && path_startswith(path, state_dir)) {
                *reterr_message = "the file is in the agent's state directory";
                return -EPERM;
        }
        if (ret_dir)
                *ret_dir = found;
        return 0;
}

bool agent_files_is_json(const char *path) {
        size_t n = path ? strlen(path) : 0;

        return n > 5 && streq(path + n - 5, ".json");
}

/* agent_files_path_allowed() with the agent's settings, and not its runtime directory either
 * (its sockets). */
static int path_allowed(Agent *a, const char *path, const char **ret_dir, const char **reterr_message) {
        int r;

        r = agent_files_path_allowed(
                path, a->config.file_dirs, a->config.state_dir, ret_dir, reterr_message);
        if (r < 0)
                return r;
        if (a->config.runtime_dir && path_startswith(path, a->config.runtime_dir)) {
                *reterr_message = "the file is in the agent's runtime directory";
                return -EPERM;
        }
        return 0;
}

static unsigned file_mode(const Registration *reg) {
        if (reg->file_mode != 0)
                return reg->file_mode;
        return reg->file_group ? AGENT_FILE_MODE_DEFAULT_GROUP : AGENT_FILE_MODE_DEFAULT;
}

/* The directory that path's file is in, opened from / one component at a time, none of them
 * a symbolic link: the allowed directory dir's own components too, since whoever may write in
 * one of its parents could swap it for a link. Missing ones below dir are made (0755) when
 * create is set. 0 with the fd and the file's name (in path), or -ELOOP (a symbolic link),
 * -ENOTDIR, -ENOENT (not create, or dir missing), with the component in ret_bad (malloc()ed,
 * may be NULL). */
static int open_parent(
        const char *dir, const char *path, bool create, int *ret_fd, const char **ret_name, char **ret_bad) {
        _cleanup_close_ int fd = -EBADF;
        const char *c = path + 1;
        size_t dir_len = strlen(dir);

        fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (;;) {
                const char *e = strchr(c, '/');
                char name[NAME_MAX + 1];
                int nfd, flags;

                if (!e)
                        break;
                if ((size_t) (e - c) > NAME_MAX)
                        return -ENAMETOOLONG;
                memcpy(name, c, (size_t) (e - c));
                name[e - c] = '\0';

                /* Above dir, O_PATH: only search permission is needed there, as for a path
                 * (the agent may run without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH). */
                flags = (size_t) (e - path) < dir_len ? O_PATH : O_RDONLY;
                nfd = openat(fd, name, flags | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (nfd < 0 && errno == ENOENT && create && (size_t) (e - path) > dir_len) {
                        bool made = mkdirat(fd, name, 0755) >= 0;

                        if (!made && errno != EEXIST)
                                return -errno;
                        nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        /* The agent's umask (0077) narrowed it: the file's readers must pass. */
                        if (nfd >= 0 && made && fchmod(nfd, 0755) < 0) {
                                int r = -errno;

                                close(nfd);
                                return r;
                        }
                }
                if (nfd < 0) {
                        int r = -errno;
                        struct stat st;

                        /* O_NOFOLLOW with O_DIRECTORY may say either for a symbolic link. */
                        if (r == -ENOTDIR && fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) >= 0 &&
                            S_ISLNK(st.st_mode))
                                r = -ELOOP;
                        if (ret_bad)
                                *ret_bad = strndup(path, (size_t) (e - path));
                        return r;
                }
                close(fd);
                fd = nfd;
                c = e + 1;
        }
        *ret_fd = TAKE_FD(fd);
        *ret_name = c;
        return 0;
}

/* What is at name in dfd now: 0 nothing, 1 a regular file (its stat in *ret), or -ELOOP (a
 * symbolic link), -EEXIST (something else). */
static int look_at(int dfd, const char *name, struct stat *ret) {
        if (fstatat(dfd, name, ret, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (S_ISLNK(ret->st_mode))
                return -ELOOP;
        if (!S_ISREG(ret->st_mode))
                return -EEXIST;
        return 1;
}

static int resolve_owner(const Registration *reg, uid_t *ret_uid, gid_t *ret_gid, const char **ret_unknown) {
        uid_t uid = 0;
        gid_t gid = 0;
        int r;

        if (reg->file_owner) {
                r = user_by_name(reg->file_owner, &uid, NULL, NULL);
                if (r < 0) {
                        *ret_unknown = "file_owner";
                        return r;
                }
        }
        if (reg->file_group) {
                r = group_by_name(reg->file_group, &gid);
                if (r < 0) {
                        *ret_unknown = "file_group";
                        return r;
                }
        }
        *ret_uid = uid;
        *ret_gid = gid;
        return 0;
}

static int message(char **ret, const char *fmt, ...) _printf_(2, 3);
static int message(char **ret, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(ret, fmt, ap);
        va_end(ap);
        if (r < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

int agent_files_check(Agent *a, Registration *reg, char **reterr_message) {
        _cleanup_close_ int dfd = -EBADF;
        _cleanup_free_ char *bad = NULL;
        const char *dir, *msg = NULL, *name, *unknown = NULL;
        struct stat st;
        uid_t uid;
        gid_t gid;
        int r;

        if (!reg->file)
                return 0;
        r = path_allowed(a, reg->file, &dir, &msg);
        if (r < 0)
                return message(reterr_message, "Refused file '%s': %s.", reg->file, msg);
        if (reg->file_mode == 0)
                reg->file_mode = file_mode(reg);

        r = resolve_owner(reg, &uid, &gid, &unknown);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return message(
                        reterr_message, "Unknown %s '%s'.", unknown,
                        streq(unknown, "file_owner") ? reg->file_owner : reg->file_group);

        r = open_parent(dir, reg->file, false, &dfd, &name, &bad);
        if (r == -ENOENT)
                return 0; /* made at the first write */
        if (r == -ELOOP)
                return message(
                        reterr_message, "Refused file '%s': '%s' is a symbolic link.", reg->file,
                        strna(bad));
        if (r < 0)
                return message(
                        reterr_message, "Refused file '%s': cannot open '%s': %s.", reg->file,
                        bad ? bad : dir, strerror(-r));
        r = look_at(dfd, name, &st);
        if (r == -ELOOP)
                return message(reterr_message, "Refused file '%s': it is a symbolic link.", reg->file);
        if (r == -EEXIST)
                return message(reterr_message, "Refused file '%s': it is not a regular file.", reg->file);
        if (r < 0)
                return message(reterr_message, "Refused file '%s': %s.", reg->file, strerror(-r));
        if (r > 0) {
                /* Only a file a key already writes may be there (another key's is refused by
                 * the caller, naming it): anything else (another program's, root's) would be
                 * replaced now and removed at unregister. */
                const AgentKey *k = agent_find_key(a, reg->id);

                if ((!k || !k->reg.file || !streq(k->reg.file, reg->file)) &&
                    !agent_files_key_of(a, reg->file, reg->id))
                        return message(
                                reterr_message,
                                "Refused file '%s': it already exists and this key does not write it; remove it first.",
                                reg->file);
        }
        return 0;
}

const char *agent_files_key_of(Agent *a, const char *path, const char *except_id) {
        for (size_t i = 0; i < a->n_keys; i++) {
                const Registration *reg = &a->keys[i]->reg;

                if (reg->file && streq(reg->file, path) && !streq(reg->id, except_id))
                        return reg->id;
        }
        return NULL;
}

/* Whether the regular file fd already holds exactly data, with that owner and mode. */
static bool
same_file(int fd, const struct stat *st, const Secret *data, uid_t uid, gid_t gid, unsigned mode) {
        _cleanup_(secret_freep) Secret *old = NULL;
        size_t n = 0;

        if (st->st_uid != uid || st->st_gid != gid || (st->st_mode & 07777) != mode ||
            (uint64_t) st->st_size != data->size)
                return false;
        old = secret_new(data->size + 1);
        if (!old || read_fd_all(fd, old->data, data->size, &n) < 0 || n != data->size)
                return false;
        return memeq_secure(old->data, data->data, n);
}

/* Replace name in dfd with data: 1, or 0 when it already holds it with that owner and mode. */
static int replace_file(int dfd, const char *name, const Secret *data, uid_t uid, gid_t gid, unsigned mode) {
        _cleanup_close_ int fd = -EBADF;
        char tmp[NAME_MAX + 1], hex[17];
        uint8_t rnd[8];
        struct stat st;
        int r;

        r = look_at(dfd, name, &st);
        if (r < 0)
                return r;
        if (r > 0) {
                _cleanup_close_ int old =
                        openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

                if (old >= 0 && fstat(old, &st) >= 0 && S_ISREG(st.st_mode) &&
                    same_file(old, &st, data, uid, gid, mode))
                        return 0;
        }

        r = random_bytes(rnd, sizeof(rnd));
        if (r < 0)
                return r;
        hexencode(rnd, sizeof(rnd), hex);
        if (snprintf(tmp, sizeof(tmp), ".#%s.%s", name, hex) >= (int) sizeof(tmp))
                return -ENAMETOOLONG;

        /* Owner and mode first: no byte is ever in a file that others may read. */
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0000);
        if (fd < 0)
                return -errno;
        /* The mode while root owns it (without CAP_FOWNER, as under the shipped unit, root
         * may not change another user's file's mode). */
        r = RET_NERRNO(fchmod(fd, mode));
        if (r >= 0)
                r = RET_NERRNO(fchown(fd, uid, gid));
        if (r >= 0)
                r = write_fd_all(fd, data->data, data->size);
        if (r >= 0)
                r = RET_NERRNO(fsync(fd));
        if (r >= 0)
                r = RET_NERRNO(renameat(dfd, tmp, dfd, name));
        if (r < 0) {
                (void) unlinkat(dfd, tmp, 0);
                return r;
        }
        (void) RET_NERRNO(fsync(dfd));
        return 1;
}

/* What k's file is to hold, from key. */
static int file_content(const Registration *reg, const Key *key, Secret **ret) {
        _cleanup_buf_ Buf json = BUF_INIT_SECURE;
        const KeyVersion *p;
        Secret *s;
        int r;

        if (agent_files_is_json(reg->file)) {
                r = knox_key_json_append(&json, key, VERSION_STATUS_INACTIVE, false);
                if (r >= 0)
                        r = buf_putc(&json, '\n');
                if (r < 0)
                        return r;
                s = secret_new_copy(json.data, json.len);
        } else {
                p = key_primary_version(key);
                if (!p || !p->data)
                        return -ENODATA;
                s = secret_new_copy(p->data->data, p->data->size);
        }
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Write what reg's file is to hold, checking everything again. */
static int write_checked(Agent *a, const Registration *reg, const Secret *data) {
        _cleanup_close_ int dfd = -EBADF;
        _cleanup_free_ char *bad = NULL;
        const char *dir, *msg = NULL, *name, *unknown = NULL;
        uid_t uid;
        gid_t gid;
        int r;

        r = path_allowed(a, reg->file, &dir, &msg);
        if (r < 0) {
                log_warning("Refusing to write the file of key '%s': %s.", LOG_NAME(reg->id), msg);
                return r;
        }
        r = resolve_owner(reg, &uid, &gid, &unknown);
        if (r < 0) {
                /* Never root instead of an account that went away. */
                log_warning_errno(
                        r, "Refusing to write the file of key '%s': its %s is unknown: %m",
                        LOG_NAME(reg->id), unknown);
                return r;
        }
        r = open_parent(dir, reg->file, true, &dfd, &name, &bad);
        if (r >= 0)
                r = replace_file(dfd, name, data, uid, gid, file_mode(reg));
        if (r == -ELOOP)
                log_warning(
                        "Refusing to write the file of key '%s': a symbolic link is in the way ('%s').",
                        LOG_NAME(reg->id), bad ? bad : reg->file);
        else if (r == -EEXIST)
                log_warning(
                        "Refusing to write the file of key '%s': '%s' is not a regular file.",
                        LOG_NAME(reg->id), reg->file);
        else if (r < 0)
                log_warning_errno(
                        r, "Failed to write the file of key '%s' ('%s'): %m", LOG_NAME(reg->id), reg->file);
        else if (r > 0)
                log_info("Key '%s': wrote '%s'.", LOG_NAME(reg->id), reg->file);
        return r;
}

int agent_files_update(Agent *a, const AgentKey *k) {
        _cleanup_(secret_freep) Secret *data = NULL;
        _cleanup_(caller_done) Caller root = {.uid = 0, .pid = 0};
        const Key *key;
        int r;

        if (!k->reg.file)
                return 0;
        r = agent_key_read(a, &root, k->reg.id, &key, NULL, NULL);
        if (r == -ENOENT)
                return 0; /* no copy yet: written when it comes */
        if (r < 0)
                return log_warning_errno(r, "Cannot read key '%s' for its file: %m", LOG_NAME(k->reg.id));
        r = file_content(&k->reg, key, &data);
        if (r == -ENODATA)
                return 0;
        if (r < 0)
                return log_oom();
        return write_checked(a, &k->reg, data);
}

void agent_files_update_all(Agent *a) {
        for (size_t i = 0; i < a->n_keys; i++)
                (void) agent_files_update(a, a->keys[i]);
}

void agent_files_key_changed(Agent *a, const char *id) {
        AgentKey *k = agent_find_key(a, id);

        if (k)
                (void) agent_files_update(a, k);
}

void agent_files_remove(Agent *a, const Registration *reg) {
        _cleanup_close_ int dfd = -EBADF;
        const char *dir, *msg = NULL, *name;
        struct stat st;
        int r;

        if (!reg->file)
                return;
        if (path_allowed(a, reg->file, &dir, &msg) < 0) {
                log_warning("Not removing the file of key '%s': %s.", LOG_NAME(reg->id), msg);
                return;
        }
        r = open_parent(dir, reg->file, false, &dfd, &name, NULL);
        if (r == -ENOENT)
                return;
        if (r >= 0)
                r = look_at(dfd, name, &st);
        if (r == 0)
                return;
        if (r > 0)
                r = RET_NERRNO(unlinkat(dfd, name, 0));
        if (r < 0) {
                log_warning_errno(
                        r, "Not removing the file of key '%s' ('%s'): %m", LOG_NAME(reg->id), reg->file);
                return;
        }
        (void) RET_NERRNO(fsync(dfd));
        log_info("Key '%s': removed '%s'.", LOG_NAME(reg->id), reg->file);
}
