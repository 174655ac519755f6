/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cryptor's reading of a stored version: the input is crypt (its first byte says how
 * long, at most 32) and then the sealed data, opened by a cryptor with a current and an old
 * master key, as keywardd does during a rekey. Nothing but a failure may come out of bytes
 * that were not sealed by one of those keys, and a version re-sealed must open again. */
#include <errno.h>

#include "cryptor.h"
#include "fuzz.h"

static const uint8_t master_new[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                       17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t master_old[16] = {"testtesttesttest"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Cryptor *c;
        _cleanup_(key_freep) Key *k = NULL;
        KeyVersion v = {.id = 1, .ts = 10};
        size_t n_crypt;
        int r;

        if (size > FUZZ_INPUT_MAX || size < 1)
                return 0;
        if (!c &&
            (cryptor_new(master_new, sizeof(master_new), &c) < 0 ||
             cryptor_add_old_key(c, master_old, sizeof(master_old)) < 0))
                __builtin_trap();

        n_crypt = data[0] % 33;
        if (n_crypt > size - 1)
                return 0;
        v.crypt = malloc(n_crypt ?: 1);
        v.sealed = malloc(size - 1 - n_crypt ?: 1);
        if (!v.crypt || !v.sealed) {
                key_version_done(&v);
                return 0;
        }
        memcpy(v.crypt, data + 1, n_crypt);
        v.crypt_size = n_crypt;
        memcpy(v.sealed, data + 1 + n_crypt, size - 1 - n_crypt);
        v.sealed_size = size - 1 - n_crypt;

        r = cryptor_open_version(c, "test:key", &v);
        if (r >= 0 ? !v.data :
                     (v.data ||
                      (r != -EINVAL && r != -EBADMSG && r != -ENOKEY && r != -EPROTONOSUPPORT &&
                       r != -ENOMEM)))
                __builtin_trap();

        /* The same bytes as a key's only version: re-sealing it leaves a version under the
         * current key that opens, or the version as it was. */
        k = key_new();
        if (!k || !(k->id = strdup("test:key")))
                goto finish;
        v.data = secret_free(v.data);
        v.status = VERSION_STATUS_PRIMARY;
        if (key_append_version(k, &v) < 0)
                goto finish;
        v = (KeyVersion){};
        r = cryptor_reseal_key(c, k, NULL);
        if (r == 1 &&
            (!cryptor_sealed_by_current(c, k->versions) || cryptor_open_version(c, k->id, k->versions) < 0))
                __builtin_trap();

finish:
        key_version_done(&v);
        return 0;
}
