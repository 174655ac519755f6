/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-knox.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-bus.h"
#include "agent-register.h"
#include "buf.h"
#include "fileio.h"
#include "hexdecoct.h"
#include "knox-json.h"
#include "log.h"
#include "random-util.h"
#include "strv.h"
#include "user-util.h"

#define REGISTERED_NAME ".registered"
/* How long the agent waits for the register file's lock before the next try, to read it or
 * to write its own changes. Knox's CLI holds it only while it rewrites a few lines; its
 * register -g waits 5 s for the key file. */
#define RETRY_USEC (20 * USEC_PER_MSEC)

struct AgentKnox {
        int dir_fd;  /* <knox-dir> */
        int keys_fd; /* <knox-dir>/v0/keys */
        uid_t uid;   /* owner of everything: the agent (root) */
        gid_t gid;   /* the knox group, or the agent's own group without one */
        bool group;  /* the knox group exists: members read */
        char **seen; /* the register file's ids when last read (main thread) */
        /* The agent's own changes to the register file while another holds its lock: written
         * out once the lock is free; until then the file is not read (it still says what the
         * agent changed). Disjoint. */
        char **pending_add;
        char **pending_remove;
        sd_event_source *inotify;
        sd_event_source *retry;
};

static mode_t file_mode(const AgentKnox *x) {
        return x->group ? 0640 : 0600;
}

int knox_registered_parse(const char *text, size_t size, char ***ret_ids, size_t *ret_invalid) {
        _cleanup_strv_free_ char **words = NULL, **ids = NULL;
        size_t invalid = 0, n = 0;
        int r;

        if (size > KNOX_REGISTERED_MAX)
                return -E2BIG;
        r = registry_id_list_parse(text, size, &words);
        if (r < 0)
                return r;
        STRV_FOREACH(w, words) {
                if (!registry_id_is_valid(*w)) {
                        invalid++;
                        continue;
                }
                if (++n > REGISTRY_KEYS_MAX)
                        return -E2BIG;
                r = strv_extend(&ids, *w);
                if (r < 0)
                        return r;
        }
        if (!ids) {
                ids = calloc(1, sizeof(char *));
                if (!ids)
                        return -ENOMEM;
        }
        *ret_ids = TAKE_PTR(ids);
        if (ret_invalid)
                *ret_invalid = invalid;
        return 0;
}

int knox_registered_format(char *const *ids, char **ret, size_t *ret_size) {
        _cleanup_buf_ Buf b = BUF_INIT;

        STRV_FOREACH(id, ids) {
                (void) buf_puts(&b, *id);
                (void) buf_putc(&b, '\n');
        }
        if (b.error < 0)
                return b.error;
        if (!b.data) {
                *ret = strdup("");
                if (!*ret)
                        return -ENOMEM;
                *ret_size = 0;
                return 0;
        }
        *ret = buf_steal(&b, ret_size);
        return *ret ? 0 : -ENOMEM;
}

/* Owner, group and mode of fd as the layout wants them. */
static int fix_owner_mode(const AgentKnox *x, int fd, mode_t mode) {
        if (fchown(fd, x->uid, x->gid) < 0)
                return -errno;
        return RET_NERRNO(fchmod(fd, mode));
}

/* parent/name as a directory of the layout (made if missing), opened; no symlink followed. */
static int open_dir(AgentKnox *x, int parent, const char *name, int *ret) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        r = fix_owner_mode(x, fd, x->group ? 0750 : 0700);
        if (r < 0)
                return r;
        *ret = TAKE_FD(fd);
        return 0;
}

/* The register file, made if missing; opened read-write only to change it (a close after
 * writing is what the agent watches for). */
static int open_registered(const AgentKnox *x, bool fix, bool write, int *ret) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        fd =
                openat(x->dir_fd, REGISTERED_NAME,
                       (write ? O_RDWR | O_CREAT : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        /* A hard link (left while Knox's directory was 0777) shares its inode with a file
         * elsewhere, /etc/shadow say: never chown or chmod that; put a file of our own there. */
        if (fix && st.st_nlink != 1) {
                fd = safe_close(fd);
                log_warning(
                        "Knox's register file has %ju links: replacing it by a new one, empty.",
                        (uintmax_t) st.st_nlink);
                if (unlinkat(x->dir_fd, REGISTERED_NAME, 0) < 0)
                        return -errno;
                fd =
                        openat(x->dir_fd, REGISTERED_NAME,
                               O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
                if (fd < 0)
                        return -errno;
        }
        if (fix) {
                r = fix_owner_mode(x, fd, x->group ? 0660 : 0600);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_FD(fd);
        return 0;
}

static int read_ids(int fd, char ***ret) {
        _cleanup_free_ char *text = NULL;
        size_t n, invalid = 0;
        int r;

        text = malloc(KNOX_REGISTERED_MAX + 1);
        if (!text)
                return -ENOMEM;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        r = read_fd_all(fd, (uint8_t *) text, KNOX_REGISTERED_MAX, &n);
        if (r < 0)
                return r;
        r = knox_registered_parse(text, n, ret, &invalid);
        if (r < 0)
                return r;
        if (invalid > 0)
                log_warning("Knox's register file lists %zu invalid key id(s), ignoring them.", invalid);
        return 0;
}

/* Read the register file under a shared lock: -EAGAIN while a writer holds it. */
static int registered_read(const AgentKnox *x, char ***ret) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = open_registered(x, false, false, &fd);
        if (r < 0)
                return r;
        if (flock(fd, LOCK_SH | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        return read_ids(fd, ret);
}

/* Change the register file as Knox's CLI does: under its exclusive lock, in place (the lock
 * belongs to the file, so it is never replaced). add, or else remove, ids. -EAGAIN while
 * another holds the lock: the main loop does not wait for it (registered_queue()). */
static int registered_update(AgentKnox *x, char *const *ids, bool add) {
        _cleanup_strv_free_ char **cur = NULL, **next = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        bool changed = false;
        size_t n;
        int r;

        r = open_registered(x, false, true, &fd);
        if (r < 0)
                return r;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        r = read_ids(fd, &cur);
        if (r < 0)
                return r;
        STRV_FOREACH(id, cur)
                if (add || !strv_contains(ids, *id)) {
                        r = strv_extend(&next, *id);
                        if (r < 0)
                                return r;
                } else
                        changed = true;
        if (add)
                STRV_FOREACH(id, ids)
                        if (!strv_contains(cur, *id)) {
                                r = strv_extend(&next, *id);
                                if (r < 0)
                                        return r;
                                changed = true;
                        }
        if (!changed)
                return 0;
        r = knox_registered_format(next, &text, &n);
        if (r < 0)
                return r;
        if (ftruncate(fd, 0) < 0 || pwrite(fd, text, n, 0) != (ssize_t) n || fsync(fd) < 0)
                return errno > 0 ? -errno : -EIO;
        /* The agent's own change is no news to it; one by another writer not read yet still
         * is, so only this change is applied to what was seen. */
        if (add) {
                STRV_FOREACH(id, ids)
                        if (!strv_contains(x->seen, *id) && strv_extend(&x->seen, *id) < 0)
                                return -ENOMEM;
        } else {
                char **w = x->seen;

                STRV_FOREACH(id, x->seen)
                        if (strv_contains(ids, *id))
                                free(*id);
                        else
                                *w++ = *id;
                if (w)
                        *w = NULL;
        }
        return 1;
}

static void strv_drop(char **l, const char *s) {
        char **w = l;

        STRV_FOREACH(i, l)
                if (streq(*i, s))
                        free(*i);
                else
                        *w++ = *i;
        if (w)
                *w = NULL;
}

static int retry_soon(AgentKnox *x) {
        if (sd_event_source_set_time_relative(x->retry, RETRY_USEC) < 0 ||
            sd_event_source_set_enabled(x->retry, SD_EVENT_ONESHOT) < 0)
                return -EIO;
        return 0;
}

/* Write out the queued changes: 0 when none is left, -EAGAIN while the lock is held (a retry
 * is armed). Another failure drops the queue: the file cannot take it. */
static int registered_flush(AgentKnox *x) {
        int r = 0;

        /* Lists emptied by registered_queue() are no change: nothing to lock for. */
        if (x->pending_remove && !x->pending_remove[0])
                x->pending_remove = strv_free(x->pending_remove);
        if (x->pending_add && !x->pending_add[0])
                x->pending_add = strv_free(x->pending_add);
        if (x->pending_remove) {
                r = registered_update(x, x->pending_remove, false);
                if (r >= 0)
                        x->pending_remove = strv_free(x->pending_remove);
        }
        if (r >= 0 && x->pending_add) {
                r = registered_update(x, x->pending_add, true);
                if (r >= 0)
                        x->pending_add = strv_free(x->pending_add);
        }
        if (r == -EAGAIN)
                return retry_soon(x) < 0 ? -EIO : -EAGAIN;
        if (r < 0) {
                x->pending_add = strv_free(x->pending_add);
                x->pending_remove = strv_free(x->pending_remove);
                return r;
        }
        return 0;
}

/* The agent's own change of the register file (Register, Unregister): queued, then written
 * out now if the lock is free, else as soon as it is. */
static int registered_queue(AgentKnox *x, char *const *ids, bool add) {
        STRV_FOREACH(id, ids) {
                strv_drop(add ? x->pending_remove : x->pending_add, *id);
                if (!strv_contains(add ? x->pending_add : x->pending_remove, *id) &&
                    strv_extend(add ? &x->pending_add : &x->pending_remove, *id) < 0)
                        return -ENOMEM;
        }
        return registered_flush(x);
}

void agent_knox_store(Agent *a, const Key *key) {
        _cleanup_buf_ Buf b = BUF_INIT_SECURE;
        _cleanup_close_ int fd = -EBADF;
        AgentKnox *x = a->knox;
        char tmp[64];
        uint8_t rnd[8];
        char hex[sizeof(rnd) * 2 + 1];
        ssize_t l;
        int r;

        if (!x || !registry_id_is_valid(key->id))
                return;
        /* What Knox's daemon wrote: the key as GET returned it, primary and active versions. */
        r = knox_key_json_append(&b, key, VERSION_STATUS_ACTIVE, true);
        if (r < 0 || b.error < 0)
                goto fail;
        r = random_bytes(rnd, sizeof(rnd));
        if (r < 0)
                goto fail;
        hexencode(rnd, sizeof(rnd), hex);
        (void) snprintf(tmp, sizeof(tmp), ".keyward.%s.tmp", hex);
        fd = openat(x->keys_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = -errno;
                goto fail;
        }
        r = fix_owner_mode(x, fd, file_mode(x));
        if (r >= 0) {
                l = write(fd, b.data, b.len);
                r = l < 0 ? -errno : (size_t) l != b.len ? -EIO : 0;
        }
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && renameat(x->keys_fd, tmp, x->keys_fd, key->id) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(x->keys_fd, tmp, 0);
                goto fail;
        }
        (void) fsync(x->keys_fd);
        return;
fail:
        log_warning_errno(r, "Failed to write Knox's key file of '%s', ignoring: %m", key->id);
}

void agent_knox_remove(Agent *a, const char *id) {
        if (!a->knox || !key_id_is_valid(id))
                return;
        if (unlinkat(a->knox->keys_fd, id, 0) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Failed to remove Knox's key file of '%s', ignoring: %m", id);
}

void agent_knox_registered(Agent *a, const Registration *const *regs, size_t n) {
        _cleanup_strv_free_ char **ids = NULL;
        int r;

        if (!a->knox || n == 0)
                return;
        for (size_t i = 0; i < n; i++)
                if (strv_extend(&ids, regs[i]->id) < 0) {
                        log_oom();
                        return;
                }
        r = registered_queue(a->knox, ids, true);
        if (r == -EAGAIN)
                log_debug("Knox's register file is locked; adding %zu key(s) to it once it is free.", n);
        else if (r < 0)
                log_warning_errno(r, "Failed to add %zu key(s) to Knox's register file, ignoring: %m", n);
}

void agent_knox_unregistered(Agent *a, const char *id) {
        char *ids[] = {(char *) id, NULL};
        int r;

        if (!a->knox)
                return;
        agent_knox_remove(a, id);
        r = registered_queue(a->knox, ids, false);
        if (r == -EAGAIN)
                log_debug("Knox's register file is locked; taking '%s' out of it once it is free.", id);
        else if (r < 0)
                log_warning_errno(r, "Failed to take '%s' out of Knox's register file, ignoring: %m", id);
}

/* The register file changed (or the agent starts): register the ids added, unregister those
 * taken out since the last read. Main thread. */
static int registered_sync(Agent *a) {
        _cleanup_(register_batch_done) RegisterBatch batch = {};
        _cleanup_(register_failure_done) RegisterFailure f = {};
        _cleanup_strv_free_ char **ids = NULL;
        AgentKnox *x = a->knox;
        size_t removed = 0;
        int r;

        /* The agent's own changes first: until they are in, the file says what the agent
         * already changed, and reading it would undo them. */
        r = registered_flush(x);
        if (r == -EAGAIN)
                return 0;
        if (r < 0)
                log_warning_errno(
                        r, "Failed to write the agent's changes to Knox's register file, ignoring: %m");
        r = registered_read(x, &ids);
        if (r == -EAGAIN) /* a writer is at it: look again shortly */
                return retry_soon(x);
        if (r < 0)
                return log_warning_errno(r, "Failed to read Knox's register file, ignoring: %m");

        STRV_FOREACH(id, x->seen) {
                _cleanup_(agent_key_freep) AgentKey *k = NULL;
                _cleanup_(register_failure_done) RegisterFailure uf = {};
                const AgentKey *cur;

                if (strv_contains(ids, *id))
                        continue;
                cur = agent_find_key(a, *id);
                if (!cur)
                        continue;
                /* Only what the register file can make: a registration with options (readers,
                 * units, a credential, a file) serves more than Knox's apps, and the knox group may
                 * not take it away. */
                if (cur->reg.readers || cur->reg.units || cur->reg.credential || cur->reg.file) {
                        log_notice(
                                "Key '%s' left Knox's register file but is registered with options; keeping it.",
                                *id);
                        continue;
                }
                r = agent_unregister(a, *id, 0, &k, &uf);
                if (r < 0) {
                        log_warning_errno(
                                r, "Failed to unregister '%s' (gone from Knox's register file): %m", *id);
                        continue;
                }
                agent_bus_key_changed(a, *id, "", false);
                removed++;
        }

        STRV_FOREACH(id, ids) {
                _cleanup_(registration_donep) Registration reg = {.on_change = ON_CHANGE_NONE};

                if (agent_find_key(a, *id))
                        continue;
                reg.id = strdup(*id);
                if (!reg.id)
                        return log_oom();
                r = register_batch_add(a, &batch, &reg, false, &f);
                if (r < 0)
                        return log_warning_errno(
                                r, "Failed to register the keys of Knox's register file: %m");
        }
        strv_free(x->seen);
        x->seen = TAKE_PTR(ids);
        r = register_batch_apply(a, &batch, 0, &f);
        if (r < 0)
                return log_warning_errno(r, "Failed to register the keys of Knox's register file: %m");
        if (r > 0)
                log_info("Registered %d key(s) listed in Knox's register file.", r);
        if (r > 0 || removed > 0)
                agent_bus_properties_changed(a, "KeyCount");
        return 0;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) registered_sync(userdata);
        return 0;
}

static int on_inotify(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        if (ev->len > 0 && !streq(ev->name, REGISTERED_NAME))
                return 0;
        (void) registered_sync(userdata);
        return 0;
}

/* Files in the keys directory: Knox's (0666) rewritten from the cache or removed when no
 * key is registered under the name; anything else left alone but made private. */
static int tidy_keys(Agent *a) {
        AgentKnox *x = a->knox;
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        struct dirent *de;
        unsigned removed = 0;

        fd = openat(x->keys_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d)
                return -errno;
        TAKE_FD(fd);
        while ((de = readdir(d))) {
                _cleanup_close_ int f = -EBADF;
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                /* A temporary file of a write the agent did not finish. */
                if (de->d_name[0] == '.' && strlen(de->d_name) > 4 &&
                    streq(de->d_name + strlen(de->d_name) - 4, ".tmp")) {
                        (void) unlinkat(x->keys_fd, de->d_name, 0);
                        continue;
                }
                if (key_id_is_valid(de->d_name) && !agent_find_key(a, de->d_name)) {
                        if (unlinkat(x->keys_fd, de->d_name, 0) >= 0)
                                removed++;
                        continue;
                }
                f = openat(x->keys_fd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
                if (f < 0 || fstat(f, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                /* A hard link to a file elsewhere: the name goes, the file it shares is never
                 * chowned or chmodded. */
                if (st.st_nlink != 1) {
                        (void) unlinkat(x->keys_fd, de->d_name, 0);
                        continue;
                }
                if ((st.st_mode & 07777) != file_mode(x) || st.st_gid != x->gid || st.st_uid != x->uid)
                        (void) fix_owner_mode(x, f, file_mode(x));
        }
        closedir(d);
        if (removed > 0)
                log_info("Removed %u file(s) of unregistered keys from Knox's key directory.", removed);

        /* The keys cached already: their files written afresh. */
        for (size_t i = 0; i < a->n_keys; i++) {
                _cleanup_(key_freep) Key *key = NULL;

                if (!a->keys[i]->cache.valid)
                        continue;
                if (cache_read(a->cache_dir, a->cache_seal, a->keys[i]->reg.id, &key, NULL, NULL) >= 0)
                        agent_knox_store(a, key);
        }
        return 0;
}

int agent_knox_open(Agent *a) {
        _cleanup_free_ AgentKnox *x = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *dir = a->config.knox_dir;
        int v0 = -EBADF, r;

        if (!a->config.knox_compat)
                return 0;
        x = calloc(1, sizeof(AgentKnox));
        if (!x)
                return log_oom();
        *x = (AgentKnox){.dir_fd = -EBADF, .keys_fd = -EBADF, .uid = geteuid(), .gid = getegid()};
        r = group_by_name(a->config.knox_group, &x->gid);
        if (r >= 0)
                x->group = true;
        else {
                x->gid = getegid();
                log_warning_errno(
                        r, "The knox group '%s' does not exist: Knox's key files are readable by root only.",
                        a->config.knox_group);
        }

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create '%s': %m", dir);
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Failed to open '%s': %m", dir);
        r = fix_owner_mode(x, fd, x->group ? 0750 : 0700);
        if (r >= 0) {
                x->dir_fd = TAKE_FD(fd);
                r = open_dir(x, x->dir_fd, "v0", &v0);
        }
        if (r >= 0) {
                r = open_dir(x, v0, "keys", &x->keys_fd);
                safe_close(v0);
        }
        if (r >= 0)
                r = open_registered(x, true, true, &fd);
        fd = safe_close(fd);
        if (r < 0) {
                safe_close(x->dir_fd);
                safe_close(x->keys_fd);
                return log_error_errno(r, "Failed to set up Knox's layout under '%s': %m", dir);
        }
        a->knox = TAKE_PTR(x);

        r = sd_event_add_time(a->event, &a->knox->retry, CLOCK_MONOTONIC, 0, 0, on_retry, a);
        if (r >= 0)
                r = sd_event_source_set_enabled(a->knox->retry, SD_EVENT_OFF);
        if (r >= 0)
                /* Knox's CLI rewrites the file in place; an editor may replace it. */
                r = sd_event_add_inotify_fd(
                        a->event, &a->knox->inotify, a->knox->dir_fd,
                        IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ONLYDIR, on_inotify, a);
        if (r < 0)
                return log_error_errno(r, "Failed to watch Knox's register file: %m");

        (void) registered_sync(a);
        /* Every registered key is in Knox's file too, so that Knox's CLI lists them. */
        if (a->n_keys > 0) {
                _cleanup_strv_free_ char **ids = NULL;

                for (size_t i = 0; i < a->n_keys; i++)
                        if (strv_extend(&ids, a->keys[i]->reg.id) < 0)
                                return log_oom();
                r = registered_update(a->knox, ids, true);
                if (r < 0)
                        log_warning_errno(
                                r,
                                "Failed to list the registered keys in Knox's register file, ignoring: %m");
        }
        r = tidy_keys(a);
        if (r < 0)
                log_warning_errno(r, "Failed to tidy Knox's key directory, ignoring: %m");
        log_info("Keeping Knox's host layout under '%s'.", dir);
        return 0;
}

void agent_knox_close(Agent *a) {
        AgentKnox *x = a->knox;

        if (!x)
                return;
        sd_event_source_disable_unref(x->inotify);
        sd_event_source_disable_unref(x->retry);
        safe_close(x->dir_fd);
        safe_close(x->keys_fd);
        strv_free(x->seen);
        strv_free(x->pending_add);
        strv_free(x->pending_remove);
        free(x);
        a->knox = NULL;
}
