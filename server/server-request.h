/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The parts of an HTTP request keywardd reads itself, apart from the form body
 * (lib/basic/form.c): the request target, Prefer: wait and the Content-Type. */

#include <stdbool.h>

#include "macro.h"

/* Split an origin-form request target ("/path?query") into its percent-decoded path (as Go's
 * url.PathUnescape; a NUL byte is refused) and a pointer to the raw query after '?' (NULL if
 * there is none). -EBADMSG for anything else. */
int http_target_split(const char *target, char **ret_path, const char **ret_query);

/* The N of "Prefer: wait=N" (RFC 7240; other preferences may stand beside it), at most max;
 * 0 when absent or malformed. */
unsigned http_prefer_wait(const char *header, unsigned max);

/* Whether a Content-Type is application/x-www-form-urlencoded (parameters allowed), which is
 * when Go's ParseForm reads the body. */
bool http_content_type_is_form(const char *content_type);
