/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "fileio.h"
#include "hexdecoct.h"
#include "knox-json.h"
#include "log.h"

#define CACHE_MAGIC "keyward-cache-v1 sha256="
#define CACHE_HEADER_SIZE (STRLEN(CACHE_MAGIC) + 2 * CACHE_SHA256_SIZE + 1)

static int sha256(const void *p, size_t n, uint8_t ret[static CACHE_SHA256_SIZE]) {
        unsigned len = 0;

        if (EVP_Digest(p, n, ret, &len, EVP_sha256(), NULL) != 1 || len != CACHE_SHA256_SIZE)
                return -EIO;
        return 0;
}

/* Key ids ([A-Za-z0-9_:]+) are safe file names; NAME_MAX bounds them. */
static bool cache_id_is_file_name(const char *id) {
        return id && strlen(id) <= 255 && key_id_is_valid(id);
}

static int path_of(const char *dir, const char *id, char **ret) {
        if (!cache_id_is_file_name(id))
                return -EINVAL;
        if (asprintf(ret, "%s/%s", dir, id) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

int cache_dir_setup(const char *dir) {
        struct stat st;

        assert_return(dir, -EINVAL);

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create '%s': %m", dir);
        if (lstat(dir, &st) < 0)
                return log_error_errno(errno, "Failed to stat '%s': %m", dir);
        if (!S_ISDIR(st.st_mode))
                return log_error_errno(ENOTDIR, "'%s' is not a directory.", dir);
        if (st.st_uid != geteuid())
                return log_error_errno(
                        EPERM, "'%s' belongs to uid %u, not to us.", dir, (unsigned) st.st_uid);
        if ((st.st_mode & 07777) != 0700) {
                log_warning("'%s' had mode %04o, setting 0700.", dir, (unsigned) (st.st_mode & 07777));
                if (chmod(dir, 0700) < 0)
                        return log_error_errno(errno, "Failed to chmod '%s': %m", dir);
        }
        return 0;
}

const char *cache_info_hash(const CacheInfo *info, char buf[static KEY_HASH_HEX_SIZE]) {
        if (!info->valid)
                return "";
        hexencode(info->hash, sizeof(info->hash), buf);
        return buf;
}

/* k->hash is 64 lowercase hex digits: knox_key_from_json() refuses anything else. */
static int info_from_key(const Key *k, CacheInfo *info) {
        const KeyVersion *p = key_primary_version(k);

        for (size_t i = 0; i < sizeof(info->hash); i++) {
                int hi = unhexchar(k->hash[2 * i]), lo = hi < 0 ? -1 : unhexchar(k->hash[2 * i + 1]);

                if (lo < 0)
                        return -EBADMSG;
                info->hash[i] = (uint8_t) (hi << 4 | lo);
        }
        info->valid = true;
        info->primary = p ? p->id : 0;
        return 0;
}

int cache_encode(const Key *k, Secret **ret, CacheInfo *ret_info) {
        _cleanup_(buf_donep) Buf body = BUF_INIT_SECURE;
        _cleanup_(secret_freep) Secret *s = NULL;
        CacheInfo info = {};
        char hex[2 * CACHE_SHA256_SIZE + 1];
        int r;

        assert_return(k && k->id, -EINVAL);
        assert_return(ret, -EINVAL);

        if (!key_primary_version(k))
                return -EINVAL;
        r = knox_key_json_append(&body, k, VERSION_STATUS_INACTIVE, false);
        if (r < 0)
                return r;
        if (body.error < 0)
                return body.error;
        if (body.len > CACHE_MEMORY_MAX - CACHE_HEADER_SIZE)
                return -E2BIG;

        r = sha256(body.data, body.len, info.sha256);
        if (r < 0)
                return r;
        hexencode(info.sha256, sizeof(info.sha256), hex);

        s = secret_new(CACHE_HEADER_SIZE + body.len);
        if (!s)
                return -ENOMEM;
        memcpy(s->data, CACHE_MAGIC, STRLEN(CACHE_MAGIC));
        memcpy(s->data + STRLEN(CACHE_MAGIC), hex, 2 * CACHE_SHA256_SIZE);
        s->data[CACHE_HEADER_SIZE - 1] = '\n';
        memcpy(s->data + CACHE_HEADER_SIZE, body.data, body.len);

        r = info_from_key(k, &info);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        if (ret_info)
                *ret_info = info;
        return 0;
}

static int unhex(const uint8_t *s, size_t n, uint8_t *out) {
        for (size_t i = 0; i < n; i++) {
                int v = 0;
                for (int j = 0; j < 2; j++) {
                        uint8_t c = s[2 * i + j];
                        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                        if (d < 0)
                                return -EBADMSG;
                        v = v * 16 + d;
                }
                out[i] = (uint8_t) v;
        }
        return 0;
}

static int corrupt(const char **reterr_reason, const char *reason) {
        if (reterr_reason)
                *reterr_reason = reason;
        return -EBADMSG;
}

int cache_decode(
        const uint8_t *p,
        size_t n,
        const char *id,
        Key **ret_key,
        CacheInfo *ret_info,
        const char **reterr_reason) {
        _cleanup_(key_freep) Key *k = NULL;
        uint8_t want[CACHE_SHA256_SIZE], got[CACHE_SHA256_SIZE];
        CacheInfo info = {};
        const char *msg = NULL;
        int r;

        assert_return(p || n == 0, -EINVAL);

        if (n < CACHE_HEADER_SIZE || memcmp(p, CACHE_MAGIC, STRLEN(CACHE_MAGIC)) != 0 ||
            p[CACHE_HEADER_SIZE - 1] != '\n')
                return corrupt(reterr_reason, "no cache header");
        if (unhex(p + STRLEN(CACHE_MAGIC), CACHE_SHA256_SIZE, want) < 0)
                return corrupt(reterr_reason, "malformed checksum");
        r = sha256(p + CACHE_HEADER_SIZE, n - CACHE_HEADER_SIZE, got);
        if (r < 0)
                return r;
        if (!memeq_secure(want, got, sizeof(want)))
                return corrupt(reterr_reason, "content does not match its checksum");

        r = knox_key_parse((const char *) p + CACHE_HEADER_SIZE, n - CACHE_HEADER_SIZE, &k, &msg);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return corrupt(reterr_reason, "not a Knox key");
        if (!cache_id_is_file_name(k->id))
                return corrupt(reterr_reason, "invalid key id");
        if (id && !streq(k->id, id))
                return corrupt(reterr_reason, "holds another key");
        if (key_versions_validate(k->versions, k->n_versions, &msg) < 0)
                return corrupt(reterr_reason, "invalid version list");

        if (info_from_key(k, &info) < 0)
                return corrupt(reterr_reason, "invalid version hash");
        memcpy(info.sha256, got, sizeof(got));
        if (ret_key)
                *ret_key = TAKE_PTR(k);
        if (ret_info)
                *ret_info = info;
        return 0;
}

static int write_content(const char *dir, const char *id, const Secret *content, bool durable) {
        _cleanup_free_ char *path = NULL;
        int r;

        assert_return(dir && id && content, -EINVAL);

        r = path_of(dir, id, &path);
        if (r < 0)
                return r;
        if (content->size > CACHE_FILE_MAX)
                return -EFBIG;
        return write_file_replace(path, content->data, content->size, 0600, durable);
}

int cache_write_content(const char *dir, const char *id, const Secret *content) {
        return write_content(dir, id, content, true);
}

int cache_write_content_lazy(const char *dir, const char *id, const Secret *content) {
        return write_content(dir, id, content, false);
}

int cache_sync(const char *dir) {
        _cleanup_close_ int fd = -EBADF;

        assert_return(dir, -EINVAL);

        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return RET_NERRNO(syncfs(fd));
}

int cache_write(const char *dir, const Key *k, CacheInfo *ret_info) {
        _cleanup_(secret_freep) Secret *s = NULL;
        CacheInfo info;
        int r;

        assert_return(dir && k, -EINVAL);

        r = cache_encode(k, &s, &info);
        if (r < 0)
                return r;
        r = cache_write_content(dir, k->id, s);
        if (r < 0)
                return r;
        if (ret_info)
                *ret_info = info;
        return 0;
}

int cache_read_stat(
        const char *dir,
        const char *id,
        Key **ret_key,
        CacheInfo *ret_info,
        struct stat *ret_stat,
        const char **reterr_reason) {
        _cleanup_(secret_freep) Secret *s = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        size_t n = 0;
        int r;

        assert_return(dir && id, -EINVAL);

        r = path_of(dir, id, &path);
        if (r < 0)
                return r;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                if (errno == ELOOP) {
                        if (reterr_reason)
                                *reterr_reason = "a symbolic link";
                        return -EPERM;
                }
                return -errno;
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 0077)) {
                if (reterr_reason)
                        *reterr_reason = !S_ISREG(st.st_mode) ? "not a regular file" :
                                st.st_uid != geteuid()        ? "owned by another user" :
                                                                "accessible to group or others";
                return -EPERM;
        }
        if ((uint64_t) st.st_size > CACHE_FILE_MAX)
                return corrupt(reterr_reason, "too large");

        /* One byte more than the size, so that a file that grew is noticed. */
        s = secret_new((size_t) st.st_size + 1);
        if (!s)
                return -ENOMEM;
        r = read_fd_all(fd, s->data, (size_t) st.st_size, &n);
        if (r == -E2BIG)
                return corrupt(reterr_reason, "changed while read");
        if (r < 0)
                return r;
        r = cache_decode(s->data, n, id, ret_key, ret_info, reterr_reason);
        if (r >= 0 && ret_stat)
                *ret_stat = st;
        return r;
}

int cache_read(
        const char *dir, const char *id, Key **ret_key, CacheInfo *ret_info, const char **reterr_reason) {
        return cache_read_stat(dir, id, ret_key, ret_info, NULL, reterr_reason);
}

bool cache_same_file(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
                a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec &&
                a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int cache_remove(const char *dir, const char *id) {
        _cleanup_free_ char *path = NULL;
        int r;

        assert_return(dir && id, -EINVAL);

        r = path_of(dir, id, &path);
        if (r < 0)
                return r;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

int cache_prune(const char *dir, bool (*keep)(const char *id, void *userdata), void *userdata) {
        _cleanup_close_ int dfd = -EBADF;
        DIR *d;
        struct dirent *de;
        int n = 0;

        assert_return(dir && keep, -EINVAL);

        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dfd < 0)
                return -errno;
        d = fdopendir(dfd);
        if (!d)
                return -errno;
        dfd = -EBADF; /* owned by d now */

        while ((de = readdir(d))) {
                const char *name = de->d_name;

                if (streq(name, ".") || streq(name, ".."))
                        continue;
                /* Registered ids are files; anything else (temporaries ".#...") goes. */
                if (cache_id_is_file_name(name) && keep(name, userdata))
                        continue;
                if (unlinkat(dirfd(d), name, 0) < 0) {
                        log_warning_errno(errno, "Failed to remove '%s/%s', ignoring: %m", dir, name);
                        continue;
                }
                log_debug("Removed '%s/%s' from the cache.", dir, name);
                n++;
        }
        closedir(d);
        return n;
}
