/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cache-key.h"

#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "random-util.h"

#if defined(HAVE_TPM2) && HAVE_TPM2
#        include "cache-key-tpm2.h"
#endif

static bool credential_name_is_valid(const char *name) {
        return !isempty(name) && !strchr(name, '/') && !streq(name, ".") && !streq(name, "..") &&
                strlen(name) < 256;
}

/* A "." or ".." among path's components: the state directory check wants plain names. */
static bool path_has_dot_component(const char *path) {
        for (const char *c = path; c; c = strchr(c, '/')) {
                size_t l;

                c += *c == '/';
                l = strcspn(c, "/");
                if ((l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
                        return true;
                c += l;
                if (*c == '\0')
                        break;
        }
        return false;
}

bool cache_key_spec_is_valid(const char *spec) {
        if (!spec)
                return false;
        if (streq(spec, "auto") || streq(spec, "tpm2"))
                return true;
        if (strncmp(spec, "file:", 5) == 0)
                return spec[5] == '/' && strlen(spec + 5) < PATH_MAX - 64 && spec[strlen(spec) - 1] != '/' &&
                        !path_has_dot_component(spec + 5);
        if (strncmp(spec, "credential:", 11) == 0)
                return credential_name_is_valid(spec + 11);
        return false;
}

int cache_key_parse_pcrs(const char *list, uint32_t *ret_mask) {
        uint32_t mask = 0;
        const char *p = list;

        assert_return(ret_mask, -EINVAL);

        if (isempty(list)) {
                *ret_mask = 0;
                return 0;
        }
        for (;;) {
                unsigned v = 0;
                size_t digits = 0;

                while (*p >= '0' && *p <= '9' && digits < 3) {
                        v = v * 10 + (unsigned) (*p++ - '0');
                        digits++;
                }
                if (digits == 0 || v > 23)
                        return -EINVAL;
                mask |= UINT32_C(1) << v;
                if (*p == '\0')
                        break;
                if (*p++ != ',')
                        return -EINVAL;
        }
        *ret_mask = mask;
        return 0;
}

/* Whether path lies in dir (dir itself included), both made canonical: path's directory as
 * far as it exists (a symlink in it resolved), the components not made yet appended as they
 * are ("." or ".." among them counts as inside: refused rather than guessed). */
static bool path_is_inside(const char *path, const char *dir) {
        _cleanup_free_ char *d = NULL, *parent = NULL, *p = NULL, *a = NULL;
        const char *rest = "";
        char *slash;
        size_t n;

        if (!dir)
                return false;
        d = realpath(dir, NULL);
        parent = strdup(path);
        if (!parent)
                return true; /* out of memory: refuse rather than guess */
        slash = strrchr(parent, '/');
        if (slash)
                *(slash == parent ? slash + 1 : slash) = '\0';
        for (;;) {
                p = realpath(parent, NULL);
                if (p || (errno != ENOENT && errno != ENOTDIR))
                        break;
                slash = strrchr(parent, '/');
                if (!slash || slash == parent)
                        break;
                if (streq(slash + 1, ".") || streq(slash + 1, ".."))
                        return true;
                /* parent ends where rest starts: "<parent>\0<rest>" */
                *slash = '\0';
                rest = path + (slash - parent);
        }
        if (p && !isempty(rest)) {
                if (asprintf(&a, "%s%s", streq(p, "/") ? "" : p, rest) < 0)
                        return true;
        }
        /* Compare what exists; fall back to the names as given. */
        const char *x = a ?: p ?: parent, *b = d ?: dir;
        n = strlen(b);
        while (n > 1 && b[n - 1] == '/')
                n--;
        return strncmp(x, b, n) == 0 && (x[n] == '\0' || x[n] == '/' || streq(b, "/"));
}

static int make_parent(const char *path) {
        _cleanup_free_ char *parent = strdup(path);
        char *slash;

        if (!parent)
                return -ENOMEM;
        slash = strrchr(parent, '/');
        if (!slash || slash == parent)
                return 0;
        *slash = '\0';
        if (mkdir(parent, 0700) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int read_key_fd(int fd, const char *what, Secret **ret) {
        _cleanup_(secret_freep) Secret *buf = NULL, *key = NULL;
        size_t n = 0;
        int r;

        buf = secret_new(CACHE_KEY_SIZE + 1);
        if (!buf)
                return -ENOMEM;
        r = read_fd_all(fd, buf->data, CACHE_KEY_SIZE, &n);
        if (r < 0 && r != -E2BIG)
                return log_error_errno(r, "Failed to read the cache key %s: %m", what);
        if (r == -E2BIG || n != CACHE_KEY_SIZE)
                return log_error_errno(
                        EBADMSG, "The cache key %s is not %u raw bytes.", what, CACHE_KEY_SIZE);
        key = secret_new_copy(buf->data, CACHE_KEY_SIZE);
        if (!key)
                return -ENOMEM;
        *ret = TAKE_PTR(key);
        return 0;
}

int cache_key_file(const char *path, const char *state_dir, Secret **ret) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        assert_return(path && ret, -EINVAL);

        if (path_is_inside(path, state_dir))
                return log_error_errno(
                        EPERM,
                        "Cache key file '%s' is inside the state directory '%s'; refusing it (a copy of "
                        "the state directory would carry the key).",
                        path, state_dir);

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 && errno == ENOENT) {
                _cleanup_(secret_freep) Secret *fresh = secret_new(CACHE_KEY_SIZE);

                if (!fresh)
                        return -ENOMEM;
                r = make_parent(path);
                if (r < 0)
                        return log_error_errno(r, "Failed to create the directory of '%s': %m", path);
                r = random_bytes(fresh->data, fresh->size);
                if (r < 0)
                        return log_error_errno(r, "Failed to make a cache key: %m");
                r = write_file_atomic(path, fresh->data, fresh->size, 0400);
                if (r < 0)
                        return log_error_errno(r, "Failed to write the cache key file '%s': %m", path);
                log_notice("Made a new cache key in '%s'.", path);
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        }
        if (fd < 0)
                return log_error_errno(errno, "Failed to open the cache key file '%s': %m", path);
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Failed to stat '%s': %m", path);
        if (!S_ISREG(st.st_mode))
                return log_error_errno(
                        EPERM, "Cache key file '%s' is not a regular file; refusing it.", path);
        if (st.st_uid != geteuid())
                return log_error_errno(
                        EPERM, "Cache key file '%s' belongs to uid %u, not to us; refusing it.", path,
                        (unsigned) st.st_uid);
        if (st.st_mode & 0077)
                return log_error_errno(
                        EPERM,
                        "Cache key file '%s' has mode %04o: group or others may use it; refusing it "
                        "(chmod 0400).",
                        path, (unsigned) (st.st_mode & 07777));
        return read_key_fd(fd, path, ret);
}

static int credential_path(const char *name, bool quiet, char **ret) {
        const char *dir = secure_getenv("CREDENTIALS_DIRECTORY");

        if (isempty(dir)) {
                if (quiet)
                        return -ENXIO;
                return log_error_errno(
                        ENXIO, "Cache key credential '%s' is named, but $CREDENTIALS_DIRECTORY is not set.",
                        name);
        }
        if (asprintf(ret, "%s/%s", dir, name) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

static int credential_load(const char *name, Secret **ret) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        r = credential_path(name, false, &path);
        if (r < 0)
                return r;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return log_error_errno(errno, "Failed to open the cache key credential '%s': %m", name);
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || (st.st_mode & 0077))
                return log_error_errno(
                        EPERM, "Cache key credential '%s' is not a private regular file; refusing it.",
                        name);
        return read_key_fd(fd, name, ret);
}

#if defined(HAVE_TPM2) && HAVE_TPM2
/* The blob does not unseal (another machine's TPM, a TPM cleared, a PCR it is bound to
 * changed, or the blob edited): the TPM answered and said no, so the key is gone for this
 * boot. Set the blob aside (never removed: a PCR change may be undone) and make a new key.
 * Only ever on -EBADMSG; a busy or absent TPM says nothing about the blob. */
static int tpm2_replace(const CacheKeyOptions *o, const char *sealed, Secret **ret) {
        _cleanup_free_ char *aside = NULL;
        const char *state = o->state_dir ?: "the state directory";
        int r;

        if (asprintf(&aside, "%s.unsealable", sealed) < 0)
                return -ENOMEM;
        if (rename(sealed, aside) < 0)
                return log_error_errno(
                        errno,
                        "The cache key '%s' does not unseal with this TPM2, and setting it aside as '%s' "
                        "failed: %m",
                        sealed, aside);
        log_error(
                "The cache key '%s' does not unseal with this TPM2 (another machine's TPM, a TPM "
                "cleared, a PCR it is bound to changed, or the file edited). It is set aside as '%s' "
                "and a new cache key is made: every cached key is fetched again from the server, and "
                "the registrations, sealed under the old key, are set aside in '%s' as "
                "registrations.sealed.unopened and must be made again. To undo (when the PCRs are "
                "back as they were): stop the agent, move '%s' back to '%s' and "
                "registrations.sealed.unopened back to registrations.sealed, and start it again.",
                sealed, aside, state, aside, sealed);
        r = cache_key_tpm2_load(sealed, o->tpm2_device, o->tpm2_pcrs, ret);
        if (r == -EBADMSG) /* a key just sealed that does not unseal: the TPM is at fault */
                return log_error_errno(r, "A new cache key sealed to this TPM2 does not unseal either.");
        return r;
}
#endif

static int tpm2_load(const CacheKeyOptions *o, Secret **ret) {
#if defined(HAVE_TPM2) && HAVE_TPM2
        const char *sealed = o->tpm2_sealed ?: CACHE_KEY_DEFAULT_TPM2;
        int r;

        if (path_is_inside(sealed, o->state_dir))
                return log_error_errno(
                        EPERM, "The TPM2-sealed cache key '%s' is inside the state directory; refusing it.",
                        sealed);
        r = make_parent(sealed);
        if (r < 0)
                return log_error_errno(r, "Failed to create the directory of '%s': %m", sealed);
        r = cache_key_tpm2_load(sealed, o->tpm2_device, o->tpm2_pcrs, ret);
        if (r == -EBADMSG)
                r = tpm2_replace(o, sealed, ret);
        if (r == -ENODEV)
                return log_error_errno(r, "No TPM2 found for the cache key.");
        if (r < 0)
                return log_error_errno(r, "Failed to load the cache key from the TPM2: %m");
        return 0;
#else
        (void) o;
        (void) ret;
        return log_error_errno(EOPNOTSUPP, "This keyward-agent was built without TPM2 support.");
#endif
}

static bool tpm2_present(const CacheKeyOptions *o) {
#if defined(HAVE_TPM2) && HAVE_TPM2
        return cache_key_tpm2_present(o->tpm2_device);
#else
        (void) o;
        return false;
#endif
}

int cache_key_load(const CacheKeyOptions *o, Secret **ret) {
        _cleanup_(secret_freep) Secret *key = NULL;
        const char *spec;
        int r;

        assert_return(o && ret, -EINVAL);

        spec = o->spec ?: "auto";
        if (!cache_key_spec_is_valid(spec))
                return log_error_errno(EINVAL, "Invalid --cache-key '%s'.", spec);

        if (streq(spec, "auto")) {
                _cleanup_free_ char *cred = NULL;

                if (tpm2_present(o)) {
                        r = tpm2_load(o, &key);
                        spec = "tpm2 (auto)";
                } else if (access(o->tpm2_sealed ?: CACHE_KEY_DEFAULT_TPM2, F_OK) >= 0)
                        /* The TPM held the key before and does not answer now (a dead resource
                         * manager, a wrong --tpm2-device): another key would set the registrations
                         * aside for a fault that may pass. */
                        return log_error_errno(
                                ENODEV,
                                "The cache key is sealed by a TPM2 (%s), but no TPM2 answers; not falling back "
                                "to another key. Bring the TPM2 back, or choose --cache-key explicitly.",
                                o->tpm2_sealed ?: CACHE_KEY_DEFAULT_TPM2);
                else if (
                        credential_path(CACHE_KEY_CREDENTIAL, true, &cred) >= 0 && access(cred, F_OK) >= 0) {
                        r = credential_load(CACHE_KEY_CREDENTIAL, &key);
                        spec = "credential:" CACHE_KEY_CREDENTIAL " (auto)";
                } else {
                        r = cache_key_file(CACHE_KEY_DEFAULT_FILE, o->state_dir, &key);
                        spec = "file:" CACHE_KEY_DEFAULT_FILE " (auto)";
                }
        } else if (streq(spec, "tpm2"))
                r = tpm2_load(o, &key);
        else if (strncmp(spec, "file:", 5) == 0)
                r = cache_key_file(spec + 5, o->state_dir, &key);
        else
                r = credential_load(spec + 11, &key);
        if (r < 0)
                return r;

        log_info("Cache key: %s.", spec);
        *ret = TAKE_PTR(key);
        return 0;
}

static int openssl_fail(int r, const char *what) {
        unsigned long e = ERR_get_error();
        char buf[256];

        if (e) {
                ERR_error_string_n(e, buf, sizeof(buf));
                log_debug("%s: %s", what, buf);
        }
        ERR_clear_error();
        return r;
}

int cache_key_derive(const Secret *host, const char *purpose, Secret **ret) {
        _cleanup_(secret_freep) Secret *k = NULL;
        _cleanup_free_ char *info = NULL;
        EVP_PKEY_CTX *ctx;
        size_t len = CACHE_KEY_SIZE;
        int ok;

        assert_return(host && host->size == CACHE_KEY_SIZE && purpose && ret, -EINVAL);

        if (asprintf(&info, "keyward-agent %s", purpose) < 0)
                return -ENOMEM;
        k = secret_new(CACHE_KEY_SIZE);
        if (!k)
                return -ENOMEM;
        ERR_clear_error();
        ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
        if (!ctx)
                return -ENOMEM;
        ok = EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0 &&
                EVP_PKEY_CTX_set1_hkdf_key(ctx, host->data, (int) host->size) > 0 &&
                EVP_PKEY_CTX_add1_hkdf_info(ctx, (const unsigned char *) info, (int) strlen(info)) > 0 &&
                EVP_PKEY_derive(ctx, k->data, &len) > 0 && len == CACHE_KEY_SIZE;
        EVP_PKEY_CTX_free(ctx);
        if (!ok)
                return openssl_fail(-EIO, "HKDF");
        *ret = TAKE_PTR(k);
        return 0;
}

static void EVP_CIPHER_CTX_freep(EVP_CIPHER_CTX **p) {
        EVP_CIPHER_CTX_free(*p);
}

int cache_seal(const Secret *key, const void *ad, size_t ad_len, const void *p, size_t n, uint8_t *out) {
        _cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
        uint8_t *nonce = out, *ct = out + CACHE_SEAL_NONCE_SIZE, *tag = ct + n;
        int len = 0, r;

        assert_return(key && key->size == CACHE_KEY_SIZE && out, -EINVAL);
        assert_return((ad || ad_len == 0) && (p || n == 0), -EINVAL);
        assert_return(n <= INT_MAX && ad_len <= INT_MAX, -E2BIG);

        r = random_bytes(nonce, CACHE_SEAL_NONCE_SIZE);
        if (r < 0)
                return r;
        ERR_clear_error();
        ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->data, nonce) != 1 ||
            (ad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &len, ad, (int) ad_len) != 1) ||
            (n > 0 && EVP_EncryptUpdate(ctx, ct, &len, p, (int) n) != 1) ||
            EVP_EncryptFinal_ex(ctx, ct + n, &len) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CACHE_SEAL_TAG_SIZE, tag) != 1)
                return openssl_fail(-EIO, "AES-256-GCM seal");
        return 0;
}

int cache_unseal(
        const Secret *key, const void *ad, size_t ad_len, const uint8_t *in, size_t n, Secret **ret) {
        _cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
        _cleanup_(secret_freep) Secret *plain = NULL;
        const uint8_t *nonce = in, *ct = in + CACHE_SEAL_NONCE_SIZE;
        size_t ct_len;
        int len = 0;

        assert_return(key && key->size == CACHE_KEY_SIZE && ret, -EINVAL);
        assert_return((ad || ad_len == 0) && (in || n == 0), -EINVAL);

        if (n < CACHE_SEAL_OVERHEAD)
                return -EBADMSG;
        ct_len = n - CACHE_SEAL_OVERHEAD;
        if (ct_len > INT_MAX || ad_len > INT_MAX)
                return -E2BIG;
        plain = secret_new(ct_len);
        if (!plain)
                return -ENOMEM;
        ERR_clear_error();
        ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->data, nonce) != 1 ||
            (ad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &len, ad, (int) ad_len) != 1) ||
            (ct_len > 0 && EVP_DecryptUpdate(ctx, plain->data, &len, ct, (int) ct_len) != 1) ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CACHE_SEAL_TAG_SIZE, (void *) (ct + ct_len)) != 1)
                return openssl_fail(-EIO, "AES-256-GCM open");
        if (EVP_DecryptFinal_ex(ctx, plain->data + ct_len, &len) != 1) {
                ERR_clear_error();
                return -EBADMSG;
        }
        *ret = TAKE_PTR(plain);
        return 0;
}

int cache_seal_blob(
        const Secret *key, const char *magic, const void *p, size_t n, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *out = NULL;
        size_t m;
        int r;

        assert_return(key && magic && ret && ret_size, -EINVAL);

        m = strlen(magic);
        if (n > SIZE_MAX - m - CACHE_SEAL_OVERHEAD)
                return -E2BIG;
        out = malloc(m + CACHE_SEAL_OVERHEAD + n);
        if (!out)
                return -ENOMEM;
        memcpy(out, magic, m);
        r = cache_seal(key, magic, m, p, n, out + m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out);
        *ret_size = m + CACHE_SEAL_OVERHEAD + n;
        return 0;
}

int cache_unseal_blob(const Secret *key, const char *magic, const uint8_t *in, size_t n, Secret **ret) {
        size_t m;

        assert_return(key && magic && (in || n == 0) && ret, -EINVAL);

        m = strlen(magic);
        if (n < m + CACHE_SEAL_OVERHEAD || memcmp(in, magic, m) != 0)
                return -EBADMSG;
        return cache_unseal(key, magic, m, in + m, n - m, ret);
}

int cache_write_sealed_file(
        const Secret *key, const char *magic, const char *path, const void *p, size_t n) {
        _cleanup_free_ uint8_t *sealed = NULL;
        size_t size = 0;
        int r;

        r = cache_seal_blob(key, magic, p, n, &sealed, &size);
        if (r < 0)
                return r;
        return write_file_atomic(path, sealed, size, 0600);
}

int cache_read_sealed_file(
        const Secret *key, const char *magic, const char *path, size_t max, Secret **ret) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        r = read_full_file(path, max, &text, &size);
        if (r < 0)
                return r;
        return cache_unseal_blob(key, magic, (const uint8_t *) text, size, ret);
}
