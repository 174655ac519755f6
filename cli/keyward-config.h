/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keyward's system config file, /etc/keyward/keyward.conf (KEYWARD_CONFIG names another),
 * so that a login shell with nothing in its environment finds the server:
 *
 *     [keyward]
 *     server = https://keyward1.example.com:8443, https://keyward2.example.com:8443
 *     server-ca = /etc/keyward/ca.pem
 *
 * "server" may repeat and takes a list (commas or white space), like KEYWARD_SERVER; an empty
 * value empties the list. It is the same INI dialect as the other config files (config.c). */

#include <stddef.h>

#include "macro.h"

#define KEYWARD_CONFIG_PATH "/etc/keyward/keyward.conf"
#define KEYWARD_CONFIG_ENV "KEYWARD_CONFIG"
#define KEYWARD_SERVER_URL_MAX 1024
#define KEYWARD_SERVERS_MAX 64

typedef struct KeywardConfig {
        char **servers;
        char *server_ca; /* an absolute path */
} KeywardConfig;

void keyward_config_done(KeywardConfig *c);

/* Append every URL of a list ("a,b c", as KEYWARD_SERVER and --server take it) to *l.
 * -EINVAL for a URL longer than KEYWARD_SERVER_URL_MAX or with control characters, -E2BIG
 * beyond KEYWARD_SERVERS_MAX URLs; *l keeps what came before the bad one. */
int keyward_servers_append(char ***l, const char *list);

/* Load the file at path into *c (empty before), checked: -ENOENT (not logged) when it does
 * not exist, else 0 or a negative errno with the file and line logged. */
int keyward_config_load_file(const char *path, KeywardConfig *c);

/* The same over text in memory; name is used in messages. */
int keyward_config_load_string(const char *text, size_t size, const char *name, KeywardConfig *c);
