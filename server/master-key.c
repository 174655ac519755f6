/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "master-key.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "log.h"
#include "master-key-pkcs11.h"
#include "random-util.h"

#define MASTER_KEY_FILE_MAX 4096

/* A credential name as systemd allows it: no '/', not "." or "..", not empty. */
static bool credential_name_valid(const char *name) {
        return !isempty(name) && !strchr(name, '/') && !streq(name, ".") && !streq(name, "..") &&
                strlen(name) < 256;
}

static int master_key_path(const char *spec, char **ret) {
        const char *name, *dir;

        if (strncmp(spec, "credential:", 11) != 0) {
                *ret = strdup(spec);
                return *ret ? 0 : -ENOMEM;
        }

        name = spec + 11;
        if (!credential_name_valid(name))
                return log_error_errno(EINVAL, "Invalid credential name '%s'.", name);
        dir = secure_getenv("CREDENTIALS_DIRECTORY");
        if (isempty(dir))
                return log_error_errno(
                        ENXIO, "Master key '%s' names a credential, but $CREDENTIALS_DIRECTORY is not set.",
                        spec);
        if (asprintf(ret, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        return 0;
}

static bool is_pkcs11(const char *spec) {
        return strncmp(spec, "pkcs11:", 7) == 0;
}

/* The raw key behind spec (the data key for a pkcs11: URI), with the error logged. */
static int master_key_read(const char *spec, Secret **ret) {
        _cleanup_(secret_freep) Secret *key = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        if (is_pkcs11(spec))
                return pkcs11_data_key_load(spec, false, ret, NULL);

        r = master_key_path(spec, &path);
        if (r < 0)
                return r;

        r = read_secret_file(path, MASTER_KEY_FILE_MAX, &key);
        if (r == -EPERM)
                return log_error_errno(
                        r, "Master key '%s' is readable by group or others; refusing it (chmod 0600).",
                        path);
        if (r < 0)
                return log_error_errno(r, "Failed to read the master key '%s': %m", path);
        if (key->size != 16 && key->size != 24 && key->size != 32)
                return log_error_errno(
                        EINVAL, "Master key '%s' is %zu bytes; it must be 16, 24 or 32 raw bytes.", path,
                        key->size);
        *ret = TAKE_PTR(key);
        return 0;
}

int master_key_load(const char *spec, Cryptor **ret) {
        _cleanup_(secret_freep) Secret *key = NULL;
        int r;

        r = master_key_read(spec, &key);
        if (r < 0)
                return r;
        r = cryptor_new(key->data, key->size, ret);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the cryptor: %m");
        return 0;
}

int master_key_add_old(Cryptor *c, const char *spec) {
        _cleanup_(secret_freep) Secret *key = NULL;
        int r;

        r = master_key_read(spec, &key);
        if (r < 0)
                return r;
        r = cryptor_add_old_key(c, key->data, key->size);
        if (r == -EEXIST)
                return log_error_errno(
                        r, "The old master key '%s' is the same key as the current one or another old one.",
                        spec);
        if (r < 0)
                return log_error_errno(r, "Failed to add the old master key '%s': %m", spec);
        return 0;
}

int master_key_init(const char *spec) {
        _cleanup_(secret_freep) Secret *key = NULL;
        _cleanup_(cryptor_freep) Cryptor *c = NULL;
        _cleanup_free_ char *path = NULL;
        bool created = false;
        int r;

        if (is_pkcs11(spec)) {
                r = pkcs11_data_key_load(spec, true, &key, &created);
                return r < 0 ? r : created ? 0 : 1;
        }

        r = master_key_path(spec, &path);
        if (r < 0)
                return r;
        if (access(path, F_OK) == 0 || strncmp(spec, "credential:", 11) == 0) {
                r = master_key_load(spec, &c);
                return r < 0 ? r : 1;
        }
        if (errno != ENOENT)
                return log_error_errno(errno, "Cannot access '%s': %m", path);

        key = secret_new(MASTER_KEY_SIZE);
        if (!key)
                return log_oom();
        r = random_bytes(key->data, key->size);
        if (r < 0)
                return log_error_errno(r, "Failed to get random bytes: %m");
        r = write_file_atomic(path, key->data, key->size, 0600);
        if (r < 0)
                return log_error_errno(r, "Failed to write the master key '%s': %m", path);
        log_info("Created master key '%s'.", path);
        return 0;
}
