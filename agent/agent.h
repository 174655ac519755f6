/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* keyward-agent's shared state. Three threads use it: the main thread runs the sd-event loop
 * and the D-Bus service and is the only one that adds or removes keys; two sync threads
 * (agent-sync*.c) talk to keywardd and update the cache. Agent.lock guards the key table and
 * everything the sync threads touch; the main thread may read what only it writes (the
 * table's shape, registrations, the config) without it. Sync threads report to the main
 * thread through Agent.changes and an eventfd. Other files use the accessors of
 * agent-keys.c and agent-state.c, which take the lock themselves (docs/agent.md says who
 * still holds it by hand, and why). */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "agent-cache.h"
#include "agent-config.h"
#include "agent-registry.h"
#include "time-util.h"

typedef enum KeyState {
        KEY_STATE_NEW,     /* not fetched since it was registered (or since the agent started) */
        KEY_STATE_OK,      /* the last fetch succeeded, or a valid cache file was loaded */
        KEY_STATE_MISSING, /* the server has no such key */
        KEY_STATE_DENIED,  /* the server does not let this machine read it */
        KEY_STATE_FAILED,  /* no answer, a bad answer, or the cache could not be written */
        _KEY_STATE_MAX,
        _KEY_STATE_INVALID = -EINVAL,
} KeyState;

const char *key_state_to_string(KeyState s) _const_;

/* One per registered key, ten thousand of them on a busy host: kept small (the members are
 * ordered so that no padding is needed). */
typedef struct AgentKey {
        Registration reg;   /* reg.id names the key */
        uid_t *reader_uids; /* readers resolved through NSS */
        gid_t *reader_gids;
        uint32_t n_reader_uids;
        uint32_t n_reader_gids;

        CacheInfo cache;     /* the verified file on disk, if any */
        uint64_t retry_usec; /* CLOCK_MONOTONIC: no fetch before; 0 when not backing off */
        uint64_t committed_seq;
        /* The highest cache write sequence of the key: the next write's is above it. */
        uint64_t last_seq;
        char *error; /* why the last fetch failed */
        /* What the server sent last, encoded for the cache, while its file could not be
         * written (a full disk, or over CACHE_FILE_MAX): served from here, and written when
         * the disk allows. cache describes it then, not the (older, or absent) file. */
        Secret *held;
        uint64_t disk_retry_usec; /* CLOCK_MONOTONIC: next try to write held; UINT64_MAX: never */
        int disk_error;           /* the last write's negative errno, or 0 */
        uint16_t disk_failures;   /* writes failed in a row */

        int8_t state;      /* a KeyState, in a byte */
        uint16_t failures; /* fetches failed in a row (stops counting at UINT16_MAX) */
        bool need_fetch;   /* fetch as soon as possible */
        uint8_t watcher;   /* 1 + the watch whose request in flight names it; 0: none */
        bool overflow;     /* in no watch: past AGENT_WATCHES_MAX requests of keys */
} AgentKey;

/* A new cached version of a key (hash empty: no longer registered), for the main thread. */
typedef struct KeyChange {
        char *id;
        char hash[KEY_HASH_HEX_SIZE];
        bool rotated; /* the cached primary version changed: units with on_change act */
} KeyChange;

typedef struct AgentSync AgentSync;
typedef struct AgentBus AgentBus;
typedef struct AgentPam AgentPam;
typedef struct AgentMetrics AgentMetrics;
typedef struct AgentReads AgentReads;
typedef struct AgentKnox AgentKnox;

/* What one server was like when last used (agent-metrics.c reports it). Under Agent.lock. */
typedef struct ServerState {
        char *url;
        uint64_t last_ok_usec; /* CLOCK_REALTIME of its last answer; 0: none yet */
        bool up;               /* it answered the last request sent to it */
} ServerState;

/* Counts since the agent started, for --metrics-file. The main thread keeps the first ones;
 * the sync threads keep the rest under Agent.lock. */
typedef struct AgentCounters {
        uint64_t credentials_delivered;
        uint64_t credentials_refused;
        uint64_t credentials_failed; /* served, but the reader went away or was too slow */
        uint64_t credentials_waited; /* requests that waited for their key's first copy */
        uint64_t bus_denied_read;    /* GetKey/GetKeyVersions from a caller that is no reader */
        uint64_t bus_denied_manage;  /* Register/Unregister/Sync that polkit did not allow */
        /* under Agent.lock: */
        uint64_t fetch_failures;       /* fetches of a key that the server failed or refused */
        uint64_t sync_failures;        /* exchanges with the servers that failed */
        uint64_t cache_write_failures; /* cache files that could not be written */
} AgentCounters;

typedef struct Agent {
        AgentConfig config;
        int argc;
        char **argv; /* kept for SIGHUP */
        char *cache_dir;
        char *registry_path;    /* sealed (registrations.sealed) */
        char *registry_v1_path; /* plaintext registrations.json of an earlier agent: migrated */
        char *seen_path;        /* the record of the cache files written (seen.sealed) */
        /* Purpose keys derived from the host cache key (cache-key.h); read-only after start. */
        Secret *cache_seal;
        Secret *registry_seal;
        Secret *seen_seal;

        sd_event *event;
        sd_event_source *wake_source;
        int wake_fd;                   /* eventfd: sync threads poke the main loop */
        sd_event_source *status_timer; /* Status= at most once an interval (agent.c) */
        bool status_pending;           /* a change came since the last Status= */
        AgentBus *bus;
        AgentReads *reads; /* agent-read.c: keys read lately, parsed */
        AgentPam *pam;     /* the PAM socket and the user tokens */
        sd_event_source *credential_source;
        char *credential_path;                      /* the credential socket, when the agent made it */
        struct CredentialReply *credential_replies; /* being written, doubly linked */
        struct CredentialCopy *credential_copies;   /* what they write, shared (agent-credential.c) */
        struct CredentialReply *credential_waits;   /* waiting for their key's first copy */
        size_t n_credential_waits;
        AgentMetrics *metrics; /* --metrics-file */
        AgentKnox *knox;       /* knox-compat: Knox's host layout (agent-knox.c) */
        AgentCounters counters;
        AgentSync *sync;

        pthread_mutex_t lock; /* guards what follows */
        pthread_cond_t cond;  /* CLOCK_MONOTONIC; broadcast on any change sync threads wait for */
        AgentKey **keys;      /* sorted by id */
        size_t n_keys;
        uint64_t gen;        /* bumped whenever the set of keys or their states change */
        uint64_t config_gen; /* bumped when the config changed (SIGHUP) */
        uint64_t fetch_seq;
        bool stop;
        uint64_t sync_requested; /* Sync() calls: the worker runs a full comparison */
        uint64_t sync_done;
        int sync_error; /* of the last one: 0 or a negative errno */
        bool connected;
        bool credential_waiting; /* credential requests wait for keys: retry fetches soon */
        unsigned cache_unsynced; /* lazy cache writes not yet made durable (agent-commit.c) */
        uint64_t last_sync_usec; /* CLOCK_REALTIME of the last successful exchange */
        uint64_t last_sync_posted_usec;
        char *current_server;
        char *last_error; /* why the last exchange with the servers failed; NULL after a success */
        ServerState *server_states;
        size_t n_server_states;
        uint64_t last_error_logged_usec; /* CLOCK_MONOTONIC */
        char *last_error_logged;         /* the failure last logged at warning level */
        char *last_error_posted;         /* main thread: LastError as last announced */
        KeyChange *changes;
        size_t n_changes;
        bool status_dirty;

        pthread_mutex_t commit_lock; /* serializes writes and removals of cache files */
        /* The one key whose file a sync thread is replacing (commit_lock allows no second),
         * and the checksum of what it writes; under lock. */
        const AgentKey *writing;
        uint8_t writing_sha256[CACHE_SHA256_SIZE];
        atomic_bool cancel; /* stopping: requests in flight end (KnoxClientConfig) */
} Agent;

/* ---- agent-keys.c: the key table. Lookups need a.lock or the main thread. ---- */

AgentKey *agent_key_new(Registration *reg); /* takes the contents of *reg */
AgentKey *agent_key_free(AgentKey *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentKey *, agent_key_free);

AgentKey *agent_find_key(Agent *a, const char *id);
/* Main thread, with a.lock held: k must not be in the table yet. */
int agent_insert_key(Agent *a, AgentKey *k);
/* Main thread, with a.lock held: detach and return the key, or NULL. */
AgentKey *agent_detach_key(Agent *a, const char *id);

/* What a reader needs to know of a key, copied out under a.lock. */
typedef struct AgentKeyStatus {
        KeyState state;
        bool cached; /* a verified copy is served (cache.valid) */
        uint8_t sha256[CACHE_SHA256_SIZE];
} AgentKeyStatus;

/* The following take a.lock themselves, so that other files need not walk the table. */
/* Key id's status: 1, or 0 when it is not registered. */
int agent_key_status(Agent *a, const char *id, AgentKeyStatus *ret);
/* The key registered for unit under credential name (its "credential" option, else its
 * id): 1 with its id (malloc()ed) and status, 0 when there is none, or -ENOMEM. */
int agent_key_find_for_unit(
        Agent *a, const char *unit, const char *name, char **ret_id, AgentKeyStatus *ret);
/* Call fn for each key, in id order, with a.lock held, until it returns a negative errno
 * (returned). */
int agent_keys_foreach(Agent *a, int (*fn)(const AgentKey *k, void *userdata), void *userdata);

/* Resolve k->reg.readers through NSS into uids and gids. Names that do not resolve are left
 * out; with reterr_unknown set, the first one is returned there and -ESRCH. Main thread,
 * without the lock (NSS may block); the result is installed under the lock. */
int agent_key_resolve_readers(AgentKey *k, const char **reterr_unknown);
/* root, or the uid the agent runs as: may do anything. */
bool agent_uid_is_privileged(uid_t uid);
/* Whether a caller may read k: a privileged uid, a reader uid, or a member of a reader group. */
bool agent_key_may_read(const AgentKey *k, uid_t uid, const gid_t *groups, size_t n_groups);

/* Write the registry file from the table, with replace (may be NULL) standing in for the
 * entry of the same id, and extra (may be NULL) added. Main thread. */
int agent_save_registry(
        Agent *a, const Registration *replace, const Registration *extra, const char *skip_id);
/* The same for a batch: replace (n_replace entries of registered ids) and extra (n_extra new
 * ids), each sorted by id; the file is written once. Main thread. */
int agent_save_registry_many(
        Agent *a,
        const Registration *const *replace,
        size_t n_replace,
        const Registration *const *extra,
        size_t n_extra);

/* The cache file of key id was not what the agent wrote (its checksum was expected): stop
 * serving it, remove it and fetch the key again, and log the event. Main thread. */
void agent_cache_corrupt(Agent *a, const char *id, const uint8_t *expected, int r, const char *reason);

/* A reader (D-Bus, credentials) that found k->cache.valid with checksum expected: when the
 * key is served from memory (its file could not be written), its parsed copy in *ret and 1;
 * 0 when the file is to be read. Takes a.lock. */
int agent_key_read_held(Agent *a, const char *id, const uint8_t *expected, Key **ret);

/* Write the record of the cache files (seen.sealed) from the table: commit_lock held, a.lock
 * not. A failure is logged; the files it would vouch for are refused at the next start and
 * fetched again. */
void agent_seen_save(Agent *a);

/* Sync threads, with a.lock held: queue a change for the main thread. */
int agent_post_change(Agent *a, const char *id, const char *hash, bool rotated);
/* Wake the main loop (any thread). */
void agent_wake(Agent *a);

/* Resolved readers (agent_key_resolve_readers() on a scratch key from) installed in k, which
 * must be in the table; from's arrays are taken. Main thread; takes a.lock. */
void agent_key_install_readers(Agent *a, AgentKey *k, AgentKey *from);
/* Take key id out of the table and wake the sync threads: the key, or NULL. Main thread;
 * takes a.lock (commit_lock may be held, never the other way round). */
AgentKey *agent_remove_key(Agent *a, const char *id);

/* ---- agent-state.c: the rest of the shared state, for the other files. Each takes a.lock
 * itself; agent-keys.c, the sync threads (agent-sync*.c, agent-commit.c, agent-servers.c),
 * agent-read.c and agent-metrics.c still hold it by hand across several steps. ---- */

/* The sync status, copied out. */
typedef struct AgentStatus {
        bool connected;
        uint64_t last_sync_usec; /* CLOCK_REALTIME of the last successful exchange */
        char *last_error;        /* agent_status_snapshot() only; NULL after a success */
        uint64_t sync_done;      /* the last Sync() request a full comparison covered */
        int sync_error;          /* of that comparison: 0 or a negative errno */
} AgentStatus;

void agent_status_done(AgentStatus *s);
/* Connected, LastSync, LastError and the last Sync()'s outcome: 0, or -ENOMEM. */
int agent_status_snapshot(Agent *a, AgentStatus *ret);
/* Main thread, woken by the sync threads: the changes they queued (the caller frees them
 * and their ids) and the status without last_error; clears status_dirty. */
void agent_take_changes(Agent *a, KeyChange **ret, size_t *ret_n, AgentStatus *ret_status);
/* Sync(): ask the worker for a full comparison. The request's number, which
 * AgentStatus.sync_done reaches once it is done. */
uint64_t agent_request_sync(Agent *a);
/* Whether credential requests wait for keys (the sync threads retry fetches sooner). */
void agent_set_credential_waiting(Agent *a, bool waiting);
/* SIGHUP: c's contents replace the configuration; the sync threads build new clients. */
void agent_config_replace(Agent *a, AgentConfig *c);

/* A back-off delay for the n-th failure in a row (n >= 1): a window doubling from 1s up to
 * max, and a delay drawn evenly between an eighth of the window and all of it. */
#define BACKOFF_FLOOR_DIVISOR 8
uint64_t backoff_usec(unsigned n, uint64_t max_usec);
