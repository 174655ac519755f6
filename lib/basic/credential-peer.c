/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "credential-peer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int credential_peer_parse(
        const char *path, size_t len, char **ret_buf, const char **ret_unit, const char **ret_name) {
        char *buf, *unit, *name;

        /* "<random>/unit/<unit>/<credential>", none of the parts empty. */
        if (len == 0 || memchr(path, '\0', len))
                return -EBADMSG;
        buf = strndup(path, len);
        if (!buf)
                return -ENOMEM;
        unit = strstr(buf, "/unit/");
        if (!unit || unit == buf) {
                free(buf);
                return -EBADMSG;
        }
        unit += strlen("/unit/");
        name = strchr(unit, '/');
        if (!name || name == unit || !name[1] || strchr(name + 1, '/')) {
                free(buf);
                return -EBADMSG;
        }
        *name++ = '\0';
        *ret_buf = buf;
        *ret_unit = unit;
        *ret_name = name;
        return 0;
}
