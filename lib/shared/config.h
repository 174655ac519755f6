/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Settings from an INI file (libinih) and from command-line flags, described once in a
 * table: each setting has a section and a name in the file and a long option --name. A
 * flag overrides the file; a list setting given as flags replaces the file's list. */

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* Longest config file read, and longest line (libinih's own line buffer, newline included). */
#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_LINE_MAX 200

typedef struct ConfigItem ConfigItem;

/* Parse value into the setting at `data` (userdata + offset). Negative errno on a bad value. */
typedef int (*ConfigParser)(const ConfigItem *item, const char *value, void *data);

struct ConfigItem {
        const char *section; /* INI section, e.g. "server"; NULL or "" for keys before any section */
        const char *name;    /* INI key and long option name, e.g. "listen" */
        ConfigParser parse;
        size_t offset; /* of the field in the settings struct */
        const char *help;
        const char *metavar; /* for --help; NULL for a flag without value (booleans): --name means
                              * "yes", --name=VALUE still works */
        const char *expect;  /* what a valid value is, for error messages; NULL: the metavar */
};

/* Parsers for the usual field types. An empty value resets a string to NULL and empties a
 * list, so "--name=" undoes the file. */
int config_parse_string(const ConfigItem *item, const char *value, void *data);   /* char * */
int config_parse_strv(const ConfigItem *item, const char *value, void *data);     /* char ** (append) */
int config_parse_bool(const ConfigItem *item, const char *value, void *data);     /* bool */
int config_parse_unsigned(const ConfigItem *item, const char *value, void *data); /* unsigned */
int config_parse_size(const ConfigItem *item, const char *value, void *data); /* size_t, K/M/G suffixes */
int config_parse_sec(
        const ConfigItem *item, const char *value, void *data); /* uint64_t usec, "30s" "5m" "1h" */

/* Load an INI file: unknown keys (also keys in an unknown section), bad values, syntax
 * errors, NUL bytes and lines longer than CONFIG_LINE_MAX are errors, each logged with the
 * file and line; every line is checked and the first error is returned. -ENOENT (not logged)
 * when the file is missing, -E2BIG beyond CONFIG_FILE_MAX. */
int config_load_file(const char *path, const ConfigItem *items, size_t n_items, void *userdata);

/* The same over text in memory (need not be NUL-terminated); name is used in messages. */
int config_load_string(
        const char *text,
        size_t size,
        const char *name,
        const ConfigItem *items,
        size_t n_items,
        void *userdata);

/* Apply one setting by its name (as a flag does). -ENOENT for an unknown name. */
int config_set(const ConfigItem *items, size_t n_items, void *userdata, const char *name, const char *value);

/* Parse argv (argv[0] is the program or the verb, and is skipped): every "--config FILE" is
 * loaded first, wherever it stands, then every --name VALUE or --name=VALUE overrides; the
 * first list flag of a name empties the list first. Positional arguments (and everything
 * after "--") are returned in *ret_args, a NULL-terminated array pointing into argv that the
 * caller free()s; with ret_args NULL, a positional argument is a usage error. Returns 0, or 1
 * when --help was given (help printed to stdout, nothing loaded), -EINVAL on a usage error or
 * another negative errno when a config file fails, with a message already logged. Uses
 * getopt_long(), so call it from one thread only. */
int config_parse_argv(
        int argc, char **argv, const ConfigItem *items, size_t n_items, void *userdata, char ***ret_args);

/* Print "  --name METAVAR  help" lines for --help, --config and --help included, to stdout. */
void config_print_help(const ConfigItem *items, size_t n_items);
