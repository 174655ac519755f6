/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's check of a --server URL (agent_check_url): any string is accepted or refused,
 * never read past its end, and what is accepted is https (or has no scheme). */
#undef NDEBUG
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent-check.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *url = NULL;
        const char *sep;

        if (size > FUZZ_INPUT_MAX)
                return 0;
        url = strndup((const char *) data, size);
        if (!url)
                return 0;
        if (agent_check_url(url) < 0)
                return 0;
        sep = strstr(url, "://");
        assert(!sep || (sep - url == 5 && strncasecmp(url, "https", 5) == 0));
        assert(url[sep ? 8 : 0] != '\0');
        return 0;
}
