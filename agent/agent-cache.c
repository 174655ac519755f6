/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "cache-key.h"
#include "fileio.h"
#include "hexdecoct.h"
#include "knox-json.h"
#include "log.h"

#define CACHE_MAGIC_V1 "keyward-cache-v1 "
#define CACHE_MAGIC "keyward-cache-v2\n"
#define CACHE_HEADER_SIZE (STRLEN(CACHE_MAGIC) + 8 + CACHE_HASH_SIZE)

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
        if (body.len > CACHE_MEMORY_MAX - CACHE_HEADER_SIZE - CACHE_SEAL_OVERHEAD)
                return -E2BIG;

        r = sha256(body.data, body.len, info.sha256);
        if (r < 0)
                return r;
        s = secret_new_copy(body.data, body.len);
        if (!s)
                return -ENOMEM;

        r = info_from_key(k, &info);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        if (ret_info)
                *ret_info = info;
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
        uint8_t got[CACHE_SHA256_SIZE];
        CacheInfo info = {};
        const char *msg = NULL;
        int r;

        assert_return(p || n == 0, -EINVAL);

        r = sha256(p, n, got);
        if (r < 0)
                return r;
        r = knox_key_parse((const char *) p, n, &k, &msg);
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

/* What the tag binds besides the ciphertext: the header (magic, seq, hash) and the key id,
 * so that a file renamed to another key's name, or given another header, does not open. */
static int associated_data(const char *id, const uint8_t *header, Buf *ret) {
        (void) buf_put(ret, header, CACHE_HEADER_SIZE);
        (void) buf_puts(ret, id);
        (void) buf_putc(ret, '\0');
        return ret->error;
}

static void put_be64(uint8_t *p, uint64_t v) {
        for (int i = 7; i >= 0; i--, v >>= 8)
                p[i] = (uint8_t) v;
}

static uint64_t get_be64(const uint8_t *p) {
        uint64_t v = 0;

        for (int i = 0; i < 8; i++)
                v = v << 8 | p[i];
        return v;
}

int cache_seal_file(
        const Secret *seal,
        const char *id,
        uint64_t seq,
        const uint8_t *hash,
        const Secret *plain,
        uint8_t **ret,
        size_t *ret_size) {
        _cleanup_buf_ Buf ad = BUF_INIT;
        _cleanup_free_ uint8_t *out = NULL;
        size_t n;
        int r;

        assert_return(seal && id && hash && plain && ret && ret_size, -EINVAL);

        if (plain->size > CACHE_MEMORY_MAX)
                return -E2BIG;
        n = CACHE_HEADER_SIZE + CACHE_SEAL_OVERHEAD + plain->size;
        out = malloc(n);
        if (!out)
                return -ENOMEM;
        memcpy(out, CACHE_MAGIC, STRLEN(CACHE_MAGIC));
        put_be64(out + STRLEN(CACHE_MAGIC), seq);
        memcpy(out + STRLEN(CACHE_MAGIC) + 8, hash, CACHE_HASH_SIZE);
        r = associated_data(id, out, &ad);
        if (r < 0)
                return r;
        r = cache_seal(seal, ad.data, ad.len, plain->data, plain->size, out + CACHE_HEADER_SIZE);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out);
        *ret_size = n;
        return 0;
}

int cache_open_file(
        const Secret *seal,
        const char *id,
        const uint8_t *p,
        size_t n,
        Secret **ret_plain,
        uint64_t *ret_seq,
        uint8_t ret_hash[static CACHE_HASH_SIZE],
        const char **reterr_reason) {
        _cleanup_buf_ Buf ad = BUF_INIT;
        _cleanup_(secret_freep) Secret *plain = NULL;
        int r;

        assert_return(seal && id && (p || n == 0) && ret_plain, -EINVAL);

        if (n >= STRLEN(CACHE_MAGIC_V1) && memcmp(p, CACHE_MAGIC_V1, STRLEN(CACHE_MAGIC_V1)) == 0) {
                if (reterr_reason)
                        *reterr_reason = "a plaintext file of an earlier version";
                return -EPROTONOSUPPORT;
        }
        if (n < CACHE_HEADER_SIZE + CACHE_SEAL_OVERHEAD || memcmp(p, CACHE_MAGIC, STRLEN(CACHE_MAGIC)) != 0)
                return corrupt(reterr_reason, "no cache header");
        if (!cache_id_is_file_name(id))
                return corrupt(reterr_reason, "invalid key id");
        r = associated_data(id, p, &ad);
        if (r < 0)
                return r;
        r = cache_unseal(seal, ad.data, ad.len, p + CACHE_HEADER_SIZE, n - CACHE_HEADER_SIZE, &plain);
        if (r == -EBADMSG)
                return corrupt(
                        reterr_reason,
                        "it does not open with this host's cache key (another host's, changed, cut short, "
                        "or another key's file)");
        if (r < 0)
                return r;
        if (ret_seq)
                *ret_seq = get_be64(p + STRLEN(CACHE_MAGIC));
        if (ret_hash)
                memcpy(ret_hash, p + STRLEN(CACHE_MAGIC) + 8, CACHE_HASH_SIZE);
        *ret_plain = TAKE_PTR(plain);
        return 0;
}

static int write_content(
        const char *dir,
        const Secret *seal,
        const char *id,
        const CacheInfo *info,
        const Secret *content,
        bool durable) {
        _cleanup_free_ uint8_t *sealed = NULL;
        _cleanup_free_ char *path = NULL;
        size_t n = 0;
        int r;

        assert_return(dir && seal && id && info && content, -EINVAL);

        r = path_of(dir, id, &path);
        if (r < 0)
                return r;
        if (content->size > CACHE_FILE_MAX - CACHE_HEADER_SIZE - CACHE_SEAL_OVERHEAD)
                return -EFBIG;
        r = cache_seal_file(seal, id, info->seq, info->hash, content, &sealed, &n);
        if (r < 0)
                return r;
        return write_file_replace(path, sealed, n, 0600, durable);
}

int cache_write_content(
        const char *dir, const Secret *seal, const char *id, const CacheInfo *info, const Secret *content) {
        return write_content(dir, seal, id, info, content, true);
}

int cache_write_content_lazy(
        const char *dir, const Secret *seal, const char *id, const CacheInfo *info, const Secret *content) {
        return write_content(dir, seal, id, info, content, false);
}

int cache_sync(const char *dir) {
        _cleanup_close_ int fd = -EBADF;

        assert_return(dir, -EINVAL);

        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return RET_NERRNO(syncfs(fd));
}

int cache_write(const char *dir, const Secret *seal, const Key *k, uint64_t seq, CacheInfo *ret_info) {
        _cleanup_(secret_freep) Secret *s = NULL;
        CacheInfo info;
        int r;

        assert_return(dir && k, -EINVAL);

        r = cache_encode(k, &s, &info);
        if (r < 0)
                return r;
        info.seq = seq;
        r = cache_write_content(dir, seal, k->id, &info, s);
        if (r < 0)
                return r;
        if (ret_info)
                *ret_info = info;
        return 0;
}

int cache_read_stat(
        const char *dir,
        const Secret *seal,
        const char *id,
        Key **ret_key,
        CacheInfo *ret_info,
        struct stat *ret_stat,
        const char **reterr_reason) {
        _cleanup_(secret_freep) Secret *s = NULL, *plain = NULL;
        _cleanup_(key_freep) Key *k = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint8_t hash[CACHE_HASH_SIZE];
        CacheInfo info = {};
        struct stat st;
        size_t n = 0;
        uint64_t seq = 0;
        int r;

        assert_return(dir && seal && id, -EINVAL);

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
        r = cache_open_file(seal, id, s->data, n, &plain, &seq, hash, reterr_reason);
        if (r < 0)
                return r;
        r = cache_decode(plain->data, plain->size, id, ret_key ? &k : NULL, &info, reterr_reason);
        if (r < 0)
                return r;
        if (memcmp(info.hash, hash, sizeof(hash)) != 0)
                return corrupt(reterr_reason, "its header names another version hash");
        info.seq = seq;
        if (ret_key)
                *ret_key = TAKE_PTR(k);
        if (ret_info)
                *ret_info = info;
        if (ret_stat)
                *ret_stat = st;
        return 0;
}

int cache_read(
        const char *dir,
        const Secret *seal,
        const char *id,
        Key **ret_key,
        CacheInfo *ret_info,
        const char **reterr_reason) {
        return cache_read_stat(dir, seal, id, ret_key, ret_info, NULL, reterr_reason);
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

#define SEEN_MAGIC "keyward-seen-v1\n"
#define SEEN_FILE_MAX (REGISTRY_SEEN_MAX * (size_t) 400)
#define REGISTRY_SEEN_MAX 100000 /* REGISTRY_KEYS_MAX */

void cache_seen_free(CacheSeen *l, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(l[i].id);
        free(l);
}

static int cmp_seen(const void *a, const void *b) {
        return strcmp(((const CacheSeen *) a)->id, ((const CacheSeen *) b)->id);
}

int cache_seen_parse(const uint8_t *p, size_t n, CacheSeen **ret, size_t *ret_n) {
        CacheSeen *l = NULL;
        size_t count = 0, cap = 0;
        const uint8_t *end = p + n;
        int r = -EBADMSG;

        assert_return((p || n == 0) && ret && ret_n, -EINVAL);

        while (p < end) {
                const uint8_t *nl = memchr(p, '\n', (size_t) (end - p)), *sp;
                CacheSeen e = {};
                size_t len;

                if (!nl || count >= REGISTRY_SEEN_MAX)
                        goto fail;
                /* seq */
                for (sp = p; sp < nl && *sp >= '0' && *sp <= '9'; sp++) {
                        uint64_t d = (uint64_t) (*sp - '0');

                        if (e.seq > (UINT64_MAX - d) / 10)
                                goto fail;
                        e.seq = e.seq * 10 + d;
                }
                if (sp == p || sp >= nl || *sp != ' ')
                        goto fail;
                sp++;
                if ((size_t) (nl - sp) < 2 * CACHE_HASH_SIZE + 2 || sp[2 * CACHE_HASH_SIZE] != ' ')
                        goto fail;
                for (size_t i = 0; i < CACHE_HASH_SIZE; i++) {
                        int hi = unhexchar((char) sp[2 * i]), lo = unhexchar((char) sp[2 * i + 1]);
                        if (hi < 0 || lo < 0)
                                goto fail;
                        e.hash[i] = (uint8_t) (hi << 4 | lo);
                }
                sp += 2 * CACHE_HASH_SIZE + 1;
                len = (size_t) (nl - sp);
                e.id = strndup((const char *) sp, len);
                if (!e.id) {
                        r = -ENOMEM;
                        goto fail;
                }
                if (strlen(e.id) != len || !cache_id_is_file_name(e.id)) {
                        free(e.id);
                        goto fail;
                }
                if (count == cap) {
                        size_t c = cap ? cap * 2 : 16;
                        CacheSeen *m = reallocarray(l, c, sizeof(CacheSeen));
                        if (!m) {
                                free(e.id);
                                r = -ENOMEM;
                                goto fail;
                        }
                        l = m;
                        cap = c;
                }
                l[count++] = e;
                p = nl + 1;
        }
        if (count > 0)
                qsort(l, count, sizeof(CacheSeen), cmp_seen);
        for (size_t i = 1; i < count; i++)
                if (streq(l[i - 1].id, l[i].id))
                        goto fail;
        if (!l && !(l = calloc(1, sizeof(CacheSeen))))
                return -ENOMEM;
        *ret = l;
        *ret_n = count;
        return 0;
fail:
        cache_seen_free(l, count);
        return r;
}

const CacheSeen *cache_seen_find(const CacheSeen *l, size_t n, const char *id) {
        CacheSeen key = {.id = (char *) id};

        if (!l || n == 0 || !id)
                return NULL;
        return bsearch(&key, l, n, sizeof(CacheSeen), cmp_seen);
}

int cache_seen_save(const char *path, const Secret *seal, const CacheSeen *l, size_t n) {
        _cleanup_buf_ Buf b = BUF_INIT;

        assert_return(path && seal && (l || n == 0), -EINVAL);

        for (size_t i = 0; i < n; i++) {
                char hex[2 * CACHE_HASH_SIZE + 1];

                hexencode(l[i].hash, CACHE_HASH_SIZE, hex);
                (void) buf_printf(&b, "%" PRIu64 " %s %s\n", l[i].seq, hex, l[i].id);
        }
        if (b.error < 0)
                return b.error;
        return cache_write_sealed_file(seal, SEEN_MAGIC, path, b.data, b.len);
}

int cache_seen_load(const char *path, const Secret *seal, CacheSeen **ret, size_t *ret_n) {
        _cleanup_(secret_freep) Secret *plain = NULL;
        int r;

        assert_return(path && seal && ret && ret_n, -EINVAL);

        r = cache_read_sealed_file(seal, SEEN_MAGIC, path, SEEN_FILE_MAX, &plain);
        if (r < 0)
                return r == -E2BIG ? -EBADMSG : r;
        return cache_seen_parse(plain->data, plain->size, ret, ret_n);
}
