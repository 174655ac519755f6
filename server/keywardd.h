/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keywardd's verbs beyond init and token, each parsing its own command line, and the
 * helpers they share with keywardd.c. A verb returns 0, or a negative errno (usage errors
 * as config_parse_argv() gives them), which main() turns into the exit status. */

#include "config.h"
#include "store.h"

/* The [server] settings, serve's and init's (keywardd-options.c). */
extern const ConfigItem server_items[];
extern const size_t server_items_count;

/* A log line and -EINVAL when a required setting is missing. */
int require(const char *value, const char *flag);
/* A credential:NAME master key that is systemd's placeholder is refused with a clear line. */
int check_master_key_credential(const char *spec);
/* store_open_existing(), saying why not: a store never initialised, or one that does not open. */
int open_existing_store(const char *db, Store **ret);
/* log-level = as given, or -EINVAL with a log line. */
int apply_log_level(const char *level);
/* -EACCES, logged with the file, its owner and mode and our user, when this process may not use
 * the SQLite store DB; else 0. */
int check_store_access(const char *db);

int verb_serve(int argc, char **argv); /* keywardd-serve.c */

int verb_audit_verify(int argc, char **argv); /* keywardd-verify.c */
int verb_backup(int argc, char **argv);       /* keywardd-ops.c */
int verb_rekey(int argc, char **argv);
int verb_import_knox(int argc, char **argv);
