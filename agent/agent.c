/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keyward-agent: keeps the keys registered on this host in a private cache, in step with
 * keywardd, and serves them over D-Bus. */

#include "agent.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "agent-bus.h"
#include "agent-check.h"
#include "agent-files.h"
#include "agent-credential.h"
#include "agent-knox.h"
#include "agent-metrics.h"
#include "agent-pam.h"
#include "agent-read.h"
#include "agent-sync.h"
#include "cache-key.h"
#include "log.h"
#include "secret.h"
#include "strv.h"

/* How long SIGTERM waits for a sync thread inside a request. */
#define STOP_TIMEOUT_USEC (2 * USEC_PER_SEC)

static void apply_log_level(const AgentConfig *c) {
        int l = c->log_level ? log_level_from_string(c->log_level) : LOG_INFO;

        if (l >= 0)
                log_set_max_level(l);
}

static Agent *agent_free(Agent *a) {
        if (!a)
                return NULL;
        agent_bus_close(a);
        (void) agent_pam_close(a);
        agent_credential_close(a);
        agent_read_close(a);
        agent_metrics_close(a);
        agent_knox_close(a);
        sd_event_source_unref(a->wake_source);
        sd_event_source_unref(a->status_timer);
        sd_event_unref(a->event);
        safe_close(a->wake_fd);
        for (size_t i = 0; i < a->n_keys; i++)
                agent_key_free(a->keys[i]);
        free(a->keys);
        for (size_t i = 0; i < a->n_changes; i++)
                free(a->changes[i].id);
        free(a->changes);
        free(a->current_server);
        for (size_t i = 0; i < a->n_server_states; i++)
                free(a->server_states[i].url);
        free(a->server_states);
        free(a->last_error);
        free(a->last_error_logged);
        free(a->last_error_posted);
        free(a->cache_dir);
        free(a->registry_path);
        free(a->registry_v1_path);
        free(a->seen_path);
        secret_free(a->cache_seal);
        secret_free(a->registry_seal);
        secret_free(a->seen_seal);
        agent_config_done(&a->config);
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->lock);
        pthread_mutex_destroy(&a->commit_lock);
        free(a);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Agent *, agent_free);

static int agent_new(AgentConfig *config, int argc, char **argv, Agent **ret) {
        _cleanup_(agent_freep) Agent *a = NULL;
        pthread_condattr_t ca;

        a = calloc(1, sizeof(Agent));
        if (!a)
                return -ENOMEM;
        a->wake_fd = -EBADF;
        pthread_mutex_init(&a->lock, NULL);
        pthread_mutex_init(&a->commit_lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&a->cond, &ca);
        pthread_condattr_destroy(&ca);

        a->config = *config;
        *config = (AgentConfig){};
        a->argc = argc;
        a->argv = argv;
        if (asprintf(&a->cache_dir, "%s/cache", a->config.state_dir) < 0 ||
            asprintf(&a->registry_path, "%s/registrations.sealed", a->config.state_dir) < 0 ||
            asprintf(&a->registry_v1_path, "%s/registrations.json", a->config.state_dir) < 0 ||
            asprintf(&a->seen_path, "%s/seen.sealed", a->config.state_dir) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(a);
        return 0;
}

static bool keep_cached(const char *id, void *userdata) {
        return agent_find_key(userdata, id) != NULL;
}

/* The host cache key, and the purpose keys derived from it. */
static int load_cache_key(Agent *a) {
        _cleanup_(secret_freep) Secret *host = NULL;
        const CacheKeyOptions o = {
                .spec = a->config.cache_key,
                .state_dir = a->config.state_dir,
                .tpm2_device = a->config.tpm2_device,
                .tpm2_pcrs = a->config.tpm2_pcr_mask,
                .tpm2_sealed = a->config.tpm2_sealed_key,
        };
        int r;

        r = cache_key_load(&o, &host);
        if (r < 0)
                return r;
        if ((r = cache_key_derive(host, "cache", &a->cache_seal)) < 0 ||
            (r = cache_key_derive(host, "registry", &a->registry_seal)) < 0 ||
            (r = cache_key_derive(host, "seen", &a->seen_seal)) < 0)
                return log_error_errno(r, "Failed to derive the cache keys: %m");
        return 0;
}

/* The registry: sealed, or the plaintext one of an earlier agent (*ret_migrated), or none.
 * A sealed registry that does not open (a state directory copied from another host, or a
 * changed cache key) is set aside and the agent starts with no registrations. */
static int load_registry(Agent *a, Registration **regs, size_t *n, bool *ret_migrated) {
        _cleanup_free_ char *aside = NULL;
        int r;

        *ret_migrated = false;
        r = registry_load_sealed(a->registry_path, a->registry_seal, regs, n);
        if (r != -ENOENT && r != -EBADMSG)
                return r;
        if (r == -EBADMSG) {
                if (asprintf(&aside, "%s.unopened", a->registry_path) < 0)
                        return log_oom();
                log_security(
                        LOG_ERR, "5b0d9c1e7a2f4e38b6c4d2a1f09e7c35",
                        "The registry does not open with this host's cache key (the state directory comes "
                        "from another host, or the cache key changed): no cached key is served; starting "
                        "with no registrations, the file kept as '%s'.",
                        aside);
                if (rename(a->registry_path, aside) < 0)
                        return log_error_errno(errno, "Failed to set '%s' aside: %m", a->registry_path);
                *n = 0;
                return 0;
        }
        r = registry_load(a->registry_v1_path, regs, n);
        if (r == -ENOENT) {
                *n = 0;
                return 0;
        }
        if (r < 0)
                return r;
        log_notice(
                "Migrating the plaintext registry '%s' to '%s' (sealed); every key is fetched again.",
                a->registry_v1_path, a->registry_path);
        *ret_migrated = true;
        return 0;
}

/* Registrations, then every cache file checked, before the bus name is taken. */
static int load_state(Agent *a) {
        Registration *regs = NULL;
        CacheSeen *seen = NULL;
        size_t n = 0, cached = 0, n_seen = 0;
        bool migrated;
        int r;

        /* The state directory is private like the cache (0700, ours). */
        r = cache_dir_setup(a->config.state_dir);
        if (r < 0)
                return r;
        r = cache_dir_setup(a->cache_dir);
        if (r < 0)
                return r;

        r = load_cache_key(a);
        if (r < 0)
                return r;
        r = load_registry(a, &regs, &n, &migrated);
        if (r < 0)
                return r;

        a->keys = calloc(n ? n : 1, sizeof(AgentKey *));
        if (!a->keys) {
                for (size_t i = 0; i < n; i++)
                        registration_done(&regs[i]);
                free(regs);
                return log_oom();
        }
        /* registry_load() sorted them. */
        for (size_t i = 0; i < n; i++) {
                AgentKey *k = agent_key_new(&regs[i]);

                if (!k) {
                        for (size_t j = i; j < n; j++)
                                registration_done(&regs[j]);
                        free(regs);
                        return log_oom();
                }
                a->keys[a->n_keys++] = k;
        }
        free(regs);

        r = cache_seen_load(a->seen_path, a->seen_seal, &seen, &n_seen);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0 && r != -ENOENT)
                log_security(
                        LOG_ERR, "5b0d9c1e7a2f4e38b6c4d2a1f09e7c35",
                        "The record of the cache files does not open with this host's cache key (%s); no "
                        "cached key is served, every key is fetched again.",
                        r == -EBADMSG ? "another host's, or changed" : strerror(-r));

        for (size_t i = 0; i < a->n_keys; i++) {
                AgentKey *k = a->keys[i];
                const CacheSeen *s = cache_seen_find(seen, n_seen, k->reg.id);
                const char *reason = NULL;

                r = agent_key_resolve_readers(k, NULL);
                if (r < 0) {
                        cache_seen_free(seen, n_seen);
                        return log_oom();
                }
                if (s)
                        k->last_seq = s->seq;

                r = cache_read(a->cache_dir, a->cache_seal, k->reg.id, NULL, &k->cache, &reason);
                if (r >= 0)
                        k->last_seq = MAX(k->last_seq, k->cache.seq);
                if (r >= 0 &&
                    (!s || s->seq != k->cache.seq || memcmp(s->hash, k->cache.hash, CACHE_HASH_SIZE) != 0)) {
                        log_security(
                                LOG_ERR, "9e3f6b2c0d1a4c57a8e2b7d4c6f10a93",
                                "Cache file of key '%s' is not the one the agent last wrote (rollback: write "
                                "%" PRIu64 ", the record says %s%" PRIu64 "); it is not served and will be "
                                "fetched again.",
                                k->reg.id, k->cache.seq, s ? "" : "none, ", s ? s->seq : 0);
                        r = -ESTALE;
                } else if (r >= 0) {
                        k->state = KEY_STATE_OK;
                        cached++;
                        continue;
                }
                if (r == -ENOMEM) {
                        cache_seen_free(seen, n_seen);
                        return log_oom();
                }
                k->cache = (CacheInfo){};
                k->need_fetch = true;
                if (r == -ENOENT)
                        continue;
                if (r == -EPROTONOSUPPORT) {
                        log_info(
                                "Cache file of key '%s' is a plaintext one of an earlier version; removed, "
                                "the key is fetched again.",
                                k->reg.id);
                        (void) cache_remove(a->cache_dir, k->reg.id);
                        continue;
                }
                if (r == -ESTALE) {
                        (void) cache_remove(a->cache_dir, k->reg.id);
                        continue;
                }
                log_security(
                        LOG_ERR, "a1c0f3e2d6b94b7c8e5f2a9d0c4b6e81",
                        "Cache file of key '%s' is corrupt (%s); it is not served and will be fetched again.",
                        k->reg.id, reason ?: strerror(-r));
                (void) cache_remove(a->cache_dir, k->reg.id);
        }

        cache_seen_free(seen, n_seen);

        if (migrated) {
                r = agent_save_registry(a, NULL, NULL, NULL);
                if (r < 0)
                        return log_error_errno(
                                r, "Failed to write the sealed registry '%s': %m", a->registry_path);
                if (unlink(a->registry_v1_path) < 0 && errno != ENOENT)
                        log_warning_errno(errno, "Failed to remove '%s', ignoring: %m", a->registry_v1_path);
        }

        r = cache_prune(a->cache_dir, keep_cached, a);
        if (r > 0)
                log_info("Removed %d stale file(s) from the cache.", r);

        log_info("%zu key(s) registered, %zu served from the cache.", a->n_keys, cached);
        return 0;
}

typedef struct StatusCounts {
        size_t n_keys, cached, held;
        char *held_id; /* the first key held in memory */
        int held_error;
} StatusCounts;

static int status_count(const AgentKey *k, void *userdata) {
        StatusCounts *s = userdata;

        s->n_keys++;
        if (k->cache.valid)
                s->cached++;
        if (k->held && s->held++ == 0) {
                s->held_id = strdup(k->reg.id);
                s->held_error = k->disk_error;
        }
        return 0;
}

/* Status= for systemctl status: the counts, whether a server answers (or why not), and the
 * keys whose cache file could not be written. Main thread. */
static void notify_status(Agent *a) {
        _cleanup_(agent_status_done) AgentStatus st = {};
        StatusCounts s = {};
        _cleanup_free_ char *error = NULL, *held_id = NULL;
        size_t cached, held, n_keys;
        int held_error;
        bool connected;

        (void) agent_keys_foreach(a, status_count, &s);
        (void) agent_status_snapshot(a, &st); /* without memory, no LastError */
        n_keys = s.n_keys;
        cached = s.cached;
        held = s.held;
        held_id = s.held_id;
        held_error = s.held_error;
        connected = st.connected;
        error = TAKE_PTR(st.last_error);

        /* LastError is announced when it changes. */
        if (!streq(strempty(error), strempty(a->last_error_posted))) {
                free(a->last_error_posted);
                a->last_error_posted = error ? strdup(error) : NULL;
                agent_bus_properties_changed(a, "LastError");
        }

        (void) sd_notifyf(
                false, "STATUS=%zu key(s) registered, %zu cached; %s%s%s%s%s%s%s%s", n_keys, cached,
                connected     ? "in step with the server" :
                        error ? "no server usable, serving the cache: " :
                                "no server reachable yet, serving the cache",
                connected ? "" : strempty(error), held > 0 ? "; cache file not written for '" : "",
                held > 0 ? strna(held_id) : "", held > 0 ? "' (" : "",
                held > 0 ? strerror(held_error < 0 ? -held_error : EIO) : "",
                held > 1         ? ") and others" :
                        held > 0 ? ")" :
                                   "",
                held > 0 ? ", served from memory" : "");
}

/* Status= counts the keys, and a first sync wakes the main loop once a key: at 100,000 keys
 * the counting took 59% of the agent's CPU in that sync (bench/fleet). So the first change
 * after a quiet interval is told at once, the others when the interval ends. */
#define STATUS_INTERVAL_USEC (250 * USEC_PER_MSEC)

static int status_timer_arm(Agent *a);

static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Agent *a = userdata;

        if (a->status_pending) {
                a->status_pending = false;
                notify_status(a);
                (void) status_timer_arm(a); /* changes keep coming: another interval */
        }
        return 0;
}

static int status_timer_arm(Agent *a) {
        int r;

        if (!a->status_timer)
                return sd_event_add_time_relative(
                        a->event, &a->status_timer, CLOCK_MONOTONIC, STATUS_INTERVAL_USEC, 0,
                        on_status_timer, a);
        r = sd_event_source_set_time_relative(a->status_timer, STATUS_INTERVAL_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(a->status_timer, SD_EVENT_ONESHOT);
        return r;
}

static void notify_status_soon(Agent *a) {
        int enabled = SD_EVENT_OFF;

        if (a->status_timer && sd_event_source_get_enabled(a->status_timer, &enabled) >= 0 &&
            enabled != SD_EVENT_OFF) {
                a->status_pending = true;
                return;
        }
        notify_status(a);
        /* Without a timer every change is told at once, as before. */
        (void) status_timer_arm(a);
}

/* The sync threads reported something. */
static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Agent *a = userdata;
        AgentStatus st;
        KeyChange *changes;
        size_t n_changes;
        uint64_t v;

        if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                log_debug_errno(errno, "Failed to read the eventfd: %m");

        agent_take_changes(a, &changes, &n_changes, &st);

        for (size_t i = 0; i < n_changes; i++) {
                /* The file first: units reloaded for the rotation read the new one. */
                agent_files_key_changed(a, changes[i].id);
                agent_bus_key_changed(a, changes[i].id, changes[i].hash, changes[i].rotated);
                free(changes[i].id);
        }
        free(changes);
        if (n_changes > 0)
                agent_credential_trim(a);
        agent_credential_wake(a);
        agent_metrics_changed(a);
        agent_bus_status_changed(a, st.connected, st.last_sync_usec);
        agent_bus_sync_finished(a, st.sync_done, st.sync_error);
        notify_status_soon(a);
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        _cleanup_(agent_config_done) AgentConfig c = {};
        Agent *a = userdata;
        bool servers_changed;
        int r;

        (void) sd_notify(false, "RELOADING=1");
        log_info("Reloading the configuration.");
        r = agent_config_parse(a->argc, a->argv, &c);
        if (r == 0)
                r = agent_check_config(&c);
        if (r != 0) {
                log_error("The new configuration is unusable; keeping the old one.");
                (void) sd_notify(false, "READY=1");
                return 0;
        }
        if (!streq(c.state_dir, a->config.state_dir))
                log_warning("--state-dir cannot change without a restart, ignoring.");
        free(c.state_dir);
        c.state_dir = TAKE_PTR(a->config.state_dir);
        if (!streq(strempty(c.metrics_file), strempty(a->config.metrics_file)))
                log_warning("--metrics-file cannot change without a restart, ignoring.");
        free(c.metrics_file);
        c.metrics_file = TAKE_PTR(a->config.metrics_file);
        if (!streq(strempty(c.cache_key), strempty(a->config.cache_key)) ||
            !streq(strempty(c.tpm2_device), strempty(a->config.tpm2_device)) ||
            c.tpm2_pcr_mask != a->config.tpm2_pcr_mask)
                log_warning("--cache-key and the TPM2 settings cannot change without a restart, ignoring.");
        if (c.knox_compat != a->config.knox_compat || !streq(c.knox_dir, a->config.knox_dir) ||
            !streq(c.knox_group, a->config.knox_group))
                log_warning(
                        "--knox-compat, --knox-dir and --knox-group cannot change without a restart, ignoring.");
        c.knox_compat = a->config.knox_compat;
        free(c.knox_dir);
        c.knox_dir = TAKE_PTR(a->config.knox_dir);
        free(c.knox_group);
        c.knox_group = TAKE_PTR(a->config.knox_group);

        servers_changed = strv_length(c.servers) != strv_length(a->config.servers);
        for (size_t i = 0; !servers_changed && c.servers[i]; i++)
                servers_changed = !streq(c.servers[i], a->config.servers[i]);

        agent_config_replace(a, &c);
        apply_log_level(&a->config);
        if (agent_server_states_update(a) < 0)
                log_oom();
        agent_metrics_changed(a);

        /* NSS may know other users and groups now. */
        for (size_t i = 0; i < a->n_keys; i++) {
                AgentKey tmp = {.reg = a->keys[i]->reg};

                if (agent_key_resolve_readers(&tmp, NULL) < 0)
                        continue;
                agent_key_install_readers(a, a->keys[i], &tmp);
        }
        if (servers_changed)
                agent_bus_properties_changed(a, "Servers");
        (void) sd_notify(false, "READY=1");
        return 0;
}

/* Locked memory is never given back from the middle of the heap (madvise(MADV_DONTNEED)
 * refuses locked pages), so the agent keeps its heap from fragmenting: one arena for all
 * threads instead of one each, and the long lists of a watch or a full comparison in their
 * own mappings, returned whole when freed, instead of holes the size of the last one (glibc
 * otherwise raises its mmap threshold to the largest block freed). */
static void tune_malloc(void) {
        (void) mallopt(M_ARENA_MAX, 1);
        (void) mallopt(M_MMAP_THRESHOLD, 64 * 1024);
        (void) mallopt(M_TRIM_THRESHOLD, 128 * 1024);
}

static int run(int argc, char **argv) {
        _cleanup_(agent_config_done) AgentConfig config = {};
        _cleanup_(agent_freep) Agent *a = NULL;
        sigset_t mask;
        int r;

        log_setup("keyward-agent", LOG_TARGET_AUTO);
        for (int i = 1; i < argc && !streq(argv[i], "--"); i++)
                if (streq(argv[i], "--version")) {
                        printf("keyward-agent %s\n", PACKAGE_VERSION);
                        return 0;
                }
        r = agent_config_parse(argc, argv, &config);
        if (r != 0)
                return r > 0 ? 0 : r;
        apply_log_level(&config);
        /* A setting that cannot work fails the start, naming the file or URL. */
        r = agent_check_config(&config);
        if (r < 0)
                return r;
        umask(0077);

        r = secret_harden_process();
        if (r < 0)
                return log_error_errno(r, "Failed to harden the process: %m");
        tune_malloc();
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return log_error_errno(EIO, "Failed to initialize libcurl.");

        r = agent_new(&config, argc, argv, &a);
        if (r < 0)
                return log_oom();
        r = load_state(a);
        if (r < 0)
                return r;
        r = agent_server_states_update(a);
        if (r < 0)
                return log_oom();
        /* Loading left freed heap behind; give it back before memory is locked. */
        (void) malloc_trim(0);
        if (a->config.mlock) {
                /* Every page the agent touches stays in RAM (libcurl, OpenSSL and json-c keep
                 * copies of key material we cannot wipe). MCL_ONFAULT locks pages as they are
                 * used instead of pulling in every mapped page of every library. */
                if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0)
                        log_warning_errno(errno, "Failed to lock memory (mlockall), continuing: %m");
        }

        /* Signals go to the event loop; the sync threads inherit the mask. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);

        r = sd_event_default(&a->event);
        if (r < 0)
                return log_error_errno(r, "Failed to create the event loop: %m");
        r = sd_event_add_signal(a->event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(a->event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(a->event, NULL, SIGHUP, on_sighup, a);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");
        a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (a->wake_fd < 0)
                return log_error_errno(errno, "Failed to create an eventfd: %m");
        r = sd_event_add_io(a->event, &a->wake_source, a->wake_fd, EPOLLIN, on_wake, a);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the eventfd: %m");
        r = sd_event_set_watchdog(a->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");

        r = agent_pam_open(a);
        if (r < 0)
                return r;
        r = agent_read_open(a);
        if (r < 0)
                return r;
        /* Files for programs, from the cache, before the bus name is taken. */
        agent_files_update_all(a);
        r = agent_credential_open(a);
        if (r < 0)
                return r;
        r = agent_knox_open(a);
        if (r < 0)
                return r;
        r = agent_bus_open(a);
        if (r < 0)
                return r;
        r = agent_metrics_open(a);
        if (r < 0)
                return r;
        r = agent_sync_start(a);
        if (r < 0)
                return r;

        (void) sd_notify(false, "READY=1");
        notify_status(a);
        log_info("keyward-agent %s serving %s on the bus.", PACKAGE_VERSION, AGENT_BUS_NAME);

        r = sd_event_loop(a->event);
        if (r < 0)
                log_error_errno(r, "Event loop failed: %m");
        else if (r > 0) /* sd-bus ends the loop with a positive code when the bus goes away */
                r = log_error_errno(ECONNRESET, "Lost the connection to the bus.");

        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping.");
        log_info("Stopping.");
        /* First, so that no stale figures outlive the agent, however it exits. */
        agent_metrics_close(a);
        agent_bus_close(a);
        if (agent_sync_stop(a, STOP_TIMEOUT_USEC) < 0) {
                /* Requests in flight are cancelled within a second, so this is a thread
                 * stuck elsewhere (a slow disk, NSS). Everything on disk is complete (files
                 * are replaced atomically): leave without tearing down what it still uses. */
                log_warning("A sync thread did not stop in time; exiting without waiting for it.");
                _exit(r < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
        }
        if (!agent_pam_close(a)) {
                /* As for the sync threads: nothing on disk is half-written; just leave. */
                log_warning("Exiting without waiting for it.");
                _exit(r < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
        }
        agent_credential_close(a);
        curl_global_cleanup();
        return r < 0 ? r : 0;
}

int main(int argc, char **argv) {
        int r;

        /* tpm2-tss writes its own WARNING/ERROR lines to stderr (e.g. when `auto` probes a
         * machine with no TPM); the agent says what matters itself. The admin's setting wins. */
        if (setenv("TSS2_LOG", "all+none", 0) < 0)
                return EXIT_FAILURE;
        r = run(argc, argv);

        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
