/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "credential-peer.h"
#include "fuzz.h"

/* A peer address on the credential socket: what parses names a unit and a credential that
 * both lie in the copy, are non-empty and hold no slash in the name. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *unit = NULL, *name = NULL;
        char *buf = NULL;

        if (size > FUZZ_INPUT_MAX ||
            credential_peer_parse((const char *) data, size, &buf, &unit, &name) < 0)
                return 0;
        if (!unit[0] || !name[0] || strchr(name, '/') || unit < buf || name < buf || name >= buf + size ||
            unit >= buf + size)
                __builtin_trap();
        free(buf);
        return 0;
}
