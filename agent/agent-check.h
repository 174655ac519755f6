/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the agent checks of its settings before it starts (and before SIGHUP takes new
 * ones), so that a typo fails loudly at once instead of leaving an agent that looks active
 * and never syncs: every --server is an https URL, and the certificate, key and CA files
 * read and parse, and the key belongs to the certificate. */

#include "agent-config.h"

/* A --server value: "https://HOST[:PORT][/...]", or "HOST[:PORT]" (https is implied).
 * -EACCES for a user name or password before the host, -EINVAL otherwise. */
int agent_check_url(const char *url);

/* All of the above, each failure logged naming the flag and the file or URL: -EINVAL for a
 * bad URL or a file that does not parse, the errno of a file that cannot be opened, or
 * -EKEYREJECTED when the key does not match the certificate. A certificate that has
 * expired or is not valid yet is logged as a warning only (the server decides). */
int agent_check_config(const AgentConfig *c);
