/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keywardd's verbs beyond init, serve and token, each parsing its own command line, and the
 * helpers they share with keywardd.c. A verb returns 0, or a negative errno (usage errors
 * as config_parse_argv() gives them), which main() turns into the exit status. */

#include "store.h"

/* A log line and -EINVAL when a required setting is missing. */
int require(const char *value, const char *flag);
/* A credential:NAME master key that is systemd's placeholder is refused with a clear line. */
int check_master_key_credential(const char *spec);
/* store_open_existing(), saying why not: a store never initialised, or one that does not open. */
int open_existing_store(const char *db, Store **ret);

int verb_audit_verify(int argc, char **argv); /* keywardd-verify.c */
int verb_backup(int argc, char **argv);       /* keywardd-ops.c */
int verb_rekey(int argc, char **argv);
int verb_import_knox(int argc, char **argv);
