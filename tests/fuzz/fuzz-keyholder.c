/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The key holder's side of a request (keyholder_handle): the first input byte picks the op,
 * the rest is the payload as read from the socket. Any bytes give an answer or an error,
 * never a crash, a sealed answer is a version 1 form and a data key has its size. */
#include <errno.h>

#include "fuzz.h"
#include "keyholder.h"

static const uint8_t master[32] = {"keyward fuzz master key, 32 b.."};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Cryptor *c;
        _cleanup_(secret_freep) Secret *out = NULL;
        uint32_t op;
        int r;

        if (size > FUZZ_INPUT_MAX || size < 1)
                return 0;
        if (!c && cryptor_new(master, sizeof(master), &c) < 0)
                __builtin_trap();

        op = data[0] % 4;
        r = keyholder_handle(c, op, data + 1, size - 1, &out);
        if (r >= 0 && !out)
                __builtin_trap();
        if (r < 0 && out)
                __builtin_trap();
        if (r >= 0 && op == KEYHOLDER_OP_SEAL) {
                /* crypt, then sealed: a version 1 form naming this key. */
                if (out->size < CRYPTOR_CRYPT_SIZE_V1 + CRYPTOR_TAG_SIZE ||
                    out->data[0] != CRYPTOR_VERSION_AES_GCM_KEY_ID)
                        __builtin_trap();
        }
        if (r >= 0 && op == KEYHOLDER_OP_DATA_KEY && out->size != CRYPTOR_DATA_KEY_SIZE)
                __builtin_trap();
        return 0;
}
