/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "knox-cryptor.h"

#include <errno.h>

#include "fileio.h"
#include "log.h"

#define KNOX_CRYPT_SIZE (1 + CRYPTOR_NONCE_SIZE)

int knox_master_key_load(const char *path, Cryptor **ret) {
        _cleanup_(secret_freep) Secret *key = NULL;
        int r;

        r = read_secret_file(path, 64, &key);
        if (r == -E2BIG)
                return log_error_errno(
                        EINVAL,
                        "The Knox master key '%s' is too long; Knox's AES-GCM key is 16, 24 or 32 raw bytes.",
                        path);
        if (r < 0)
                return log_error_errno(r, "Failed to read the Knox master key '%s': %m", path);
        r = cryptor_new(key->data, key->size, ret);
        if (r == -EINVAL)
                return log_error_errno(
                        r,
                        "The Knox master key '%s' holds %zu bytes; Knox's AES-GCM key is 16, 24 or 32 raw "
                        "bytes (no trailing newline).",
                        path, key->size);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Knox master key: %m");
        return 0;
}

int knox_open_version(const Cryptor *c, const char *key_id, KeyVersion *v) {
        uint8_t version_byte;
        int r;

        if (!c || !key_id || !v)
                return -EINVAL;
        if (!v->crypt || v->crypt_size != KNOX_CRYPT_SIZE || !v->sealed || v->sealed_size < CRYPTOR_TAG_SIZE)
                return -EINVAL;

        /* keyward's cryptor knows Knox's own byte only; the byte is not authenticated, so
         * opening under it is opening under the deployment's byte. */
        version_byte = v->crypt[0];
        v->crypt[0] = CRYPTOR_VERSION_AES_GCM;
        r = cryptor_open_version(c, key_id, v);
        v->crypt[0] = version_byte;
        return r;
}
