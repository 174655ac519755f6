/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* systemd's LoadCredential= connects to an AF_UNIX socket from the abstract address
 * "\0<random>/unit/<unit>/<credential>", so that the server knows whom it answers. */

#include <stddef.h>

/* Split such an address's path (after its leading NUL, len bytes) into the unit and the
 * credential name, pointing into a copy returned in *ret_buf. -EBADMSG when it is not that
 * form (an empty part, a NUL, or a slash in the name). */
int credential_peer_parse(
        const char *path, size_t len, char **ret_buf, const char **ret_unit, const char **ret_name);
