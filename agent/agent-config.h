/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keyward-agent's settings: flags, or section [agent] of the file given with --config
 * (DESIGN.md, command-line contract). */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "parse.h"

#define AGENT_DEFAULT_STATE_DIR "/var/lib/keyward"
#define AGENT_DEFAULT_RUNTIME_DIR "/run/keyward"
#define AGENT_DEFAULT_FULL_SYNC_USEC (5 * 60 * USEC_PER_SEC)
#define AGENT_DEFAULT_WATCH_WAIT_USEC (60 * USEC_PER_SEC)
#define AGENT_WATCH_WAIT_MAX_USEC (300 * USEC_PER_SEC) /* the server's cap */
#define AGENT_DEFAULT_RETRY_MAX_USEC (60 * USEC_PER_SEC)
#define AGENT_DEFAULT_PAM_BIND_USEC (5 * 60 * USEC_PER_SEC)
#define AGENT_RETRY_MIN_USEC (500 * USEC_PER_MSEC)
#define AGENT_DEFAULT_REQUEST_MAX (128u * 1024) /* below keywardd's default --max-header-size, 256K */
/* Ids named by one watch or comparison: keywardd refuses a request with more than 1,024
 * query parameters (FORM_FIELDS_MAX); some room is left below it. */
#define AGENT_DEFAULT_REQUEST_KEYS 1000u
/* Watch requests held at once, one per --max-request-keys keys: with the defaults, as many
 * as REGISTRY_KEYS_MAX (100,000) keys need, and well below keywardd's default
 * --max-connections-per-address (256). Keys beyond them are polled every second. */
#define AGENT_WATCHES_MAX 100u
/* Well inside systemd's default start timeout (DefaultTimeoutStartSec=90s), which the wait
 * counts against. */
#define AGENT_DEFAULT_KNOX_DIR "/var/lib/knox"
#define AGENT_DEFAULT_KNOX_GROUP "knox"
#define AGENT_DEFAULT_CREDENTIAL_WAIT_USEC (30 * USEC_PER_SEC)
#define AGENT_CREDENTIAL_WAIT_MAX_USEC (10 * 60 * USEC_PER_SEC)

typedef struct AgentConfig {
        char **servers; /* base URLs, tried in order */
        char *cert;
        char *key;
        char *server_ca;
        char *hostname; /* the machine identity: "0t<hostname>"; default: the system's */
        char *state_dir;
        char *runtime_dir;
        char *log_level;
        uint64_t full_sync_usec;
        uint64_t watch_wait_usec;
        uint64_t retry_max_usec;
        uint64_t connect_timeout_usec; /* 0: the client's default */
        uint64_t request_timeout_usec;
        size_t request_max;    /* longest query string of one request listing keys */
        unsigned request_keys; /* most ids one request listing keys names */
        /* A PAM login's token that no session bound for this long is revoked. */
        uint64_t pam_bind_usec;
        /* How long a credential request for a registered key with no copy yet waits for
         * one; 0: it is refused at once. */
        uint64_t credential_wait_usec;
        char **file_dirs;      /* where Register's "file" may be (no trailing '/'); NULL: nowhere */
        char *metrics_file;    /* Prometheus text format for node_exporter; NULL: none */
        char *cache_key;       /* auto, tpm2, file:PATH, credential:NAME (cache-key.h) */
        char *tpm2_device;     /* TCTI; NULL: the default device */
        char *tpm2_pcrs;       /* "7", "0,7"; NULL: none */
        char *tpm2_sealed_key; /* the TPM2-sealed cache key; NULL: the default */
        uint32_t tpm2_pcr_mask;
        bool mlock;
        /* Knox's host layout (agent-knox.h): on or off, where, which group reads it. */
        bool knox_compat;
        char *knox_dir;
        char *knox_group;
} AgentConfig;

void agent_config_done(AgentConfig *c);

/* Parse argv (and any --config file) into c, fill in defaults and check the result: 0, 1 for
 * --help (printed), or a negative errno with the reason logged. c is only written on 0. */
int agent_config_parse(int argc, char **argv, AgentConfig *c);
