/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-credential.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include "agent-listen.h"
#include "agent.h"
#include "agent-metrics.h"
#include "agent-read.h"
#include "buf.h"
#include "credential-peer.h"
#include "knox-json.h"
#include "list.h"
#include "log.h"
#include "strv.h"

#define CREDENTIAL_SOCKET_NAME "credential.sock"
#define CREDENTIAL_SEND_TIMEOUT_SEC 10
/* Replies being written at once; further connections wait in the socket's backlog. */
#define CREDENTIAL_REPLIES_MAX 16
/* Copies of credentials kept for the next start, beyond those being written. */
#define CREDENTIAL_COPIES_MAX 8
/* Requests waiting for the first copy of their key (--credential-wait). They hold a
 * connection each and no key data, and have a bound of their own, apart from the replies
 * being written: units waiting at boot never keep others from keys that are cached. Beyond
 * it, a request for a key with no copy yet is refused at once. */
#define CREDENTIAL_WAITS_MAX 128
/* Linux 6.5; glibc 2.36's headers lack it. The generic value, which alpha, parisc and sparc
 * do not share: there the check goes without it. */
#if !defined(SO_PEERPIDFD) && !defined(__alpha__) && !defined(__hppa__) && !defined(__sparc__)
#        define SO_PEERPIDFD 77
#endif

static void refuse(Agent *a, uid_t uid, pid_t pid, const char *unit, const char *name, const char *why) {
        char *f[6] = {};

        a->counters.credentials_refused++;
        agent_metrics_changed(a);
        /* The fields of a delivery (agent_log_delivery()), so that journalctl KEYWARD_UNIT=...
         * lists a unit's refusals beside its deliveries. NULL where a field could not be made. */
        if (asprintf(&f[0], "KEYWARD_CALLER_UID=%u", (unsigned) uid) < 0)
                f[0] = NULL;
        if (asprintf(&f[1], "KEYWARD_CALLER_PID=%u", (unsigned) pid) < 0)
                f[1] = NULL;
        if (unit && asprintf(&f[2], "KEYWARD_UNIT=%s", unit) < 0)
                f[2] = NULL;
        if (name && asprintf(&f[3], "KEYWARD_CREDENTIAL=%s", name) < 0)
                f[3] = NULL;
        f[4] = strdup("KEYWARD_METHOD=credential");
        f[5] = strdup("KEYWARD_RESULT=refused");
        log_security_fields(
                LOG_WARNING, MESSAGE_ID_CREDENTIAL, f, ELEMENTSOF(f),
                "Refused credential '%s' to unit %s: %s.", LOG_NAME(name), LOG_NAME(unit), why);
        for (size_t i = 0; i < ELEMENTSOF(f); i++)
                free(f[i]);
}

/* What one version of a key (the cache file with this checksum) gives as a credential, read
 * and checked once, then shared by every reply that writes it and kept for the next start:
 * a burst of units asking for the same key costs one copy, not one per connection. The list
 * holds a reference, each reply another. */
typedef struct CredentialCopy CredentialCopy;
struct CredentialCopy {
        CredentialCopy *next; /* in Agent.credential_copies, most recently used first */
        unsigned n_ref;
        char *id;
        uint8_t sha256[CACHE_SHA256_SIZE];
        uint64_t version; /* the primary version's id, for the log */
        Secret *primary;  /* the primary version's data, once asked for */
        Secret *json;     /* the versions as Knox's JSON, once asked for */
};

static CredentialCopy *copy_unref(CredentialCopy *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        secret_free(c->primary);
        secret_free(c->json);
        free(c->id);
        free(c);
        return NULL;
}

/* Drop the list's reference to the copy that *pp points to. */
static void copy_unlist(CredentialCopy **pp) {
        CredentialCopy *c = *pp;

        *pp = c->next;
        c->next = NULL;
        copy_unref(c);
}

/* The listed copy of key id at checksum sha256, moved to the front, or NULL. Copies of the
 * key's other versions are dropped: they are no longer what the key is. */
static CredentialCopy *copy_find(Agent *a, const char *id, const uint8_t *sha256) {
        CredentialCopy *found = NULL;

        for (CredentialCopy **pp = &a->credential_copies; *pp;) {
                CredentialCopy *c = *pp;

                if (!streq(c->id, id)) {
                        pp = &c->next;
                        continue;
                }
                if (found || memcmp(c->sha256, sha256, CACHE_SHA256_SIZE) != 0) {
                        copy_unlist(pp);
                        continue;
                }
                *pp = c->next;
                found = c;
        }
        if (found) {
                found->next = a->credential_copies;
                a->credential_copies = found;
        }
        return found;
}

/* Drop the copies of keys that are no longer registered or cached as they were (replies
 * writing one keep it until they end), and keep at most CREDENTIAL_COPIES_MAX copies that no
 * reply is writing. Main thread. */
static void copy_trim(Agent *a) {
        size_t idle = 0;

        for (CredentialCopy **pp = &a->credential_copies; *pp;) {
                AgentKeyStatus st;

                if (agent_key_status(a, (*pp)->id, &st) <= 0 || !st.cached ||
                    memcmp(st.sha256, (*pp)->sha256, CACHE_SHA256_SIZE) != 0 ||
                    ((*pp)->n_ref == 1 && ++idle > CREDENTIAL_COPIES_MAX)) {
                        copy_unlist(pp);
                        continue;
                }
                pp = &(*pp)->next;
        }
}

/* Why agent_key_read() gave no copy, for the refusal's log line (NULL: strerror's word). */
static const char *read_failure(int r) {
        switch (r) {
        case -ENOENT:
                return "the key is not cached yet";
        case -EBADMSG:
                return "the cached copy is damaged; it is being fetched again";
        case -EAGAIN:
                return "the key keeps changing";
        case -ENOKEY:
        case -EACCES:
                return "the key is no longer registered";
        }
        return NULL;
}

/* The copy of key id that a credential (as_json: the version set) is written from, with a
 * reference for the caller: from memory when the agent's record of the cache file is still
 * what the copy was read from, else read from the cache and checked. */
static int copy_get(
        Agent *a, Caller *reader, const char *id, bool as_json, CredentialCopy **ret, const char **ret_why) {
        _cleanup_buf_ Buf json = BUF_INIT_SECURE;
        uint8_t sha256[CACHE_SHA256_SIZE];
        const KeyVersion *p;
        AgentKeyStatus st;
        const Key *key;
        CredentialCopy *c;
        int r;

        if (agent_key_status(a, id, &st) <= 0 || !st.cached) {
                *ret_why = "the key is not cached yet";
                return -ENOENT;
        }

        c = copy_find(a, id, st.sha256);
        if (!c || !(as_json ? c->json : c->primary)) {
                r = agent_key_read(a, reader, id, &key, sha256, NULL);
                if (r < 0) {
                        *ret_why = read_failure(r);
                        return r;
                }
                c = copy_find(a, id, sha256);
                if (!c) {
                        c = calloc(1, sizeof(CredentialCopy));
                        if (!c)
                                return -ENOMEM;
                        c->id = strdup(id);
                        if (!c->id) {
                                free(c);
                                return -ENOMEM;
                        }
                        c->n_ref = 1;
                        memcpy(c->sha256, sha256, sizeof(sha256));
                        c->next = a->credential_copies;
                        a->credential_copies = c;
                }
                p = key_primary_version(key);
                c->version = p ? p->id : 0;
                if (as_json && !c->json) {
                        r = knox_key_json_append(&json, key, VERSION_STATUS_INACTIVE, false);
                        if (r >= 0)
                                r = buf_putc(&json, '\n');
                        if (r < 0)
                                return r;
                        c->json = secret_new_copy(json.data, json.len);
                        if (!c->json)
                                return -ENOMEM;
                } else if (!as_json && !c->primary) {
                        if (!p || !p->data) {
                                *ret_why = "the key has no primary version";
                                return -ENODATA;
                        }
                        c->primary = secret_new_copy(p->data->data, p->data->size);
                        if (!c->primary)
                                return -ENOMEM;
                }
        }
        c->n_ref++;
        copy_trim(a);
        *ret = c;
        return 0;
}

/* Whether the peer is a process of unit, as sd_pid_get_unit() finds it from the pid that
 * SO_PEERCRED gave: the address is the peer's word, its cgroup is not. A cgroup path prefix
 * would not do (a unit with Delegate=yes may name its own cgroups after other units). Where
 * the kernel gives a pidfd of the peer (SO_PEERPIDFD, Linux 6.5), it shows the process still
 * alive after the look, so that its pid was not reused meanwhile. systemd connects from the
 * unit's own process, forked for it, before it runs the unit's command. 0, or -EPERM with the
 * reason in why. */
static int verify_peer_unit(int fd, pid_t pid, const char *unit, char *why, size_t why_size) {
        _cleanup_free_ char *peer_unit = NULL;
        _cleanup_close_ int pidfd = -EBADF;
        int r;

        if (pid <= 0) {
                snprintf(
                        why, why_size, "the peer is a process the agent cannot see (another PID namespace)");
                return -EPERM;
        }
#ifdef SO_PEERPIDFD
        socklen_t len = sizeof(pidfd);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) {
                r = -errno;
                pidfd = -EBADF;
                /* An older kernel does not know the option: the pid alone. Anything else (the
                 * peer is gone: ESRCH, or EINVAL on 6.5 to 6.8; no peer pid: ENODATA) means its
                 * pid may already name another process. */
                if (r != -ENOPROTOOPT && r != -EOPNOTSUPP) {
                        snprintf(why, why_size, "the peer (pid %d) is gone (%s)", (int) pid, strerror(-r));
                        return -EPERM;
                }
        }
#endif

        r = sd_pid_get_unit(pid, &peer_unit);
        if (r < 0) {
                snprintf(why, why_size, "the peer (pid %d) belongs to no unit", (int) pid);
                return -EPERM;
        }
        if (!streq(peer_unit, unit)) {
                snprintf(why, why_size, "the peer (pid %d) belongs to unit %s", (int) pid, peer_unit);
                return -EPERM;
        }
        if (pidfd >= 0 && pidfd_send_signal(pidfd, 0, NULL, 0) < 0) {
                snprintf(why, why_size, "the peer (pid %d) went away while it was checked", (int) pid);
                return -EPERM;
        }
        log_debug("The credential peer, pid %d, belongs to unit %s.", (int) pid, peer_unit);
        return 0;
}

/* A credential on its way out: systemd reads it at once, but the main loop never waits for
 * a slow reader, and gives up after CREDENTIAL_SEND_TIMEOUT_SEC. Before that, a request for
 * a registered key that has no copy yet may wait for one (waiting: in Agent.credential_waits,
 * not credential_replies), until the key arrives, the peer hangs up or the deadline. */
typedef struct CredentialReply CredentialReply;
struct CredentialReply {
        Agent *agent;
        LIST_FIELDS(CredentialReply, replies); /* in Agent.credential_replies or credential_waits */
        int fd;
        CredentialCopy *copy;
        const Secret *data; /* in copy */
        size_t sent;
        pid_t pid; /* the peer, systemd's process for the unit */
        uid_t uid;
        sd_event_source *io;
        sd_event_source *timer;
        bool waiting;
        bool as_json;
        uint64_t wait_usec; /* how long it may wait, as configured when it began */
        char *id;           /* the key */
        char *unit;         /* who asks, and for what (with the key's name without ".json") */
        char *name;
        char *key_name;
};

/* At most CREDENTIAL_REPLIES_MAX replies are written at once: at the cap the agent stops
 * accepting, and connections wait in the socket's backlog until a reply ends. */
static void accept_more(Agent *a) {
        size_t n = 0;
        int enabled = SD_EVENT_OFF, want;

        if (!a->credential_source)
                return;
        for (CredentialReply *rep = a->credential_replies; rep; rep = rep->replies_next)
                n++;
        want = n < CREDENTIAL_REPLIES_MAX ? SD_EVENT_ON : SD_EVENT_OFF;
        (void) sd_event_source_get_enabled(a->credential_source, &enabled);
        if (enabled == want)
                return;
        if (want == SD_EVENT_OFF)
                log_debug(
                        "%u credential replies are being written: new connections wait.",
                        (unsigned) CREDENTIAL_REPLIES_MAX);
        else
                log_debug("Accepting credential connections again.");
        (void) sd_event_source_set_enabled(a->credential_source, want);
}

/* Tell the sync threads whether credential requests wait (they retry fetches sooner then). */
static void waiting_changed(Agent *a) {
        agent_set_credential_waiting(a, a->n_credential_waits > 0);
}

/* Take rep out of the list it is in. */
static void reply_unlink(CredentialReply *rep) {
        Agent *a = rep->agent;
        CredentialReply **head = rep->waiting ? &a->credential_waits : &a->credential_replies;

        if (LIST_CONTAINS(replies, *head, rep))
                LIST_REMOVE(replies, *head, rep);
        if (rep->waiting) {
                rep->waiting = false;
                if (--a->n_credential_waits == 0)
                        waiting_changed(a);
        }
}

static void reply_link(CredentialReply *rep, bool waiting) {
        Agent *a = rep->agent;
        CredentialReply **head = waiting ? &a->credential_waits : &a->credential_replies;

        rep->waiting = waiting;
        LIST_PREPEND(replies, *head, rep);
        if (waiting && a->n_credential_waits++ == 0)
                waiting_changed(a);
}

static void reply_free(CredentialReply *rep) {
        Agent *a = rep->agent;

        if (a)
                reply_unlink(rep);
        sd_event_source_disable_unref(rep->io);
        sd_event_source_disable_unref(rep->timer);
        safe_close(rep->fd);
        copy_unref(rep->copy);
        free(rep->id);
        free(rep->unit);
        free(rep->name);
        free(rep->key_name);
        free(rep);
        if (a) {
                copy_trim(a);
                accept_more(a);
        }
}

/* Send what the socket takes: 1 when all is out, 0 to wait for room, or a negative errno. */
static int reply_send(CredentialReply *rep) {
        while (rep->sent < rep->data->size) {
                ssize_t n =
                        send(rep->fd, rep->data->data + rep->sent, rep->data->size - rep->sent,
                             MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0)
                        return -errno;
                rep->sent += (size_t) n;
        }
        return 1;
}

static void reply_finish(CredentialReply *rep, int r) {
        Agent *a = rep->agent;

        if (r > 0)
                a->counters.credentials_delivered++;
        else
                a->counters.credentials_failed++;
        agent_metrics_changed(a);
        if (r > 0)
                (void) shutdown(rep->fd, SHUT_RDWR);
        agent_log_delivery(
                &(Caller){.uid = rep->uid, .pid = rep->pid, .unit = rep->unit}, rep->id,
                rep->copy ? rep->copy->version : 0, NULL, rep->name, r > 0 ? 0 : r);
        reply_free(rep);
}

static int on_reply_writable(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        CredentialReply *rep = userdata;
        int r = reply_send(rep);

        if (r != 0)
                reply_finish(rep, r);
        return 0;
}

static int on_reply_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        reply_finish(userdata, -ETIME);
        return 0;
}

/* Why a request for a key that has no copy yet (in state) gets none by waiting, or NULL when
 * it may wait for one. */
static const char *no_wait_reason(const Agent *a, KeyState state) {
        if (state == KEY_STATE_MISSING)
                return "the server has no such key";
        if (state == KEY_STATE_DENIED)
                return "the server does not let this machine read the key";
        if (a->config.credential_wait_usec == 0)
                return "the key is not cached yet";
        if (a->n_credential_waits >= CREDENTIAL_WAITS_MAX)
                return "the key is not cached yet, and too many requests wait for keys already";
        return NULL;
}

/* Take the copy of rep's key to send: 0, or a negative errno after logging the refusal. */
static int reply_prepare(Agent *a, CredentialReply *rep) {
        const char *why = NULL;
        CredentialCopy *c = NULL;
        int r;

        r = copy_get(
                a, &(Caller){.uid = rep->uid, .pid = rep->pid, .unit = rep->unit}, rep->id, rep->as_json, &c,
                &why);
        if (r < 0) {
                refuse(a, rep->uid, rep->pid, rep->unit, rep->name, why ?: strerror(-r));
                return r;
        }
        rep->copy = c;
        rep->data = rep->as_json ? c->json : c->primary;
        return 0;
}

/* Check the peer and find what it may have: 0 with a reference to the copy to send in rep,
 * the bytes in it, and the delivery's description for the log; 1 when the key has no copy
 * yet and the request is to wait for one; or a negative errno after logging the refusal. */
static int serve(Agent *a, CredentialReply *rep) {
        _cleanup_free_ char *buf = NULL;
        struct sockaddr_un sa = {};
        socklen_t salen = sizeof(sa);
        struct ucred cred = {};
        socklen_t len = sizeof(cred);
        const char *unit = NULL, *name = NULL, *why = NULL;
        char peer_why[384];
        AgentKeyStatus st;
        size_t name_len;
        int fd = rep->fd, r;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || !agent_uid_is_privileged(cred.uid)) {
                a->counters.credentials_refused++;
                agent_metrics_changed(a);
                log_warning(
                        "Refused a credential socket connection from uid %u (pid %d): only the service manager may ask.",
                        (unsigned) cred.uid, (int) cred.pid);
                return -EPERM;
        }
        if (getpeername(fd, (struct sockaddr *) &sa, &salen) < 0 ||
            salen <= offsetof(struct sockaddr_un, sun_path) + 1 || sa.sun_path[0] != '\0' ||
            credential_peer_parse(
                    sa.sun_path + 1, salen - offsetof(struct sockaddr_un, sun_path) - 1, &buf, &unit,
                    &name) < 0) {
                refuse(a, cred.uid, cred.pid, NULL, NULL,
                       "the peer is not systemd asking for a unit's credential (no /unit/ address)");
                return -EPERM;
        }
        r = verify_peer_unit(fd, cred.pid, unit, peer_why, sizeof(peer_why));
        if (r < 0) {
                refuse(a, cred.uid, cred.pid, unit, name, peer_why);
                return r;
        }

        rep->uid = cred.uid;
        rep->pid = cred.pid;
        name_len = strlen(name);
        rep->as_json = name_len > 5 && streq(name + name_len - 5, ".json");
        rep->unit = strdup(unit);
        rep->name = strdup(name);
        rep->key_name = rep->as_json ? strndup(name, name_len - 5) : strdup(name);
        if (!rep->unit || !rep->name || !rep->key_name) {
                refuse(a, cred.uid, cred.pid, unit, name, "out of memory");
                return -ENOMEM;
        }

        r = agent_key_find_for_unit(a, unit, rep->key_name, &rep->id, &st);
        if (r == 0) {
                refuse(a, cred.uid, cred.pid, unit, name,
                       "no key is registered for this unit under this name");
                return -ENOKEY;
        }
        if (r < 0) {
                refuse(a, cred.uid, cred.pid, unit, name, "out of memory");
                return -ENOMEM;
        }
        if (!st.cached) {
                why = no_wait_reason(a, st.state);
                if (why) {
                        refuse(a, cred.uid, cred.pid, unit, name, why);
                        return -ENOENT;
                }
                return 1;
        }
        return reply_prepare(a, rep);
}

/* Write rep (prepared) out, as far as the socket takes it now, and the rest as it drains. */
static void reply_start(Agent *a, CredentialReply *rep) {
        int r;

        rep->agent = a;
        r = reply_send(rep);
        if (r != 0) {
                reply_finish(rep, r);
                return;
        }
        reply_link(rep, false);
        r = sd_event_add_io(a->event, &rep->io, rep->fd, EPOLLOUT, on_reply_writable, rep);
        if (r >= 0)
                r = sd_event_add_time_relative(
                        a->event, &rep->timer, CLOCK_MONOTONIC, CREDENTIAL_SEND_TIMEOUT_SEC * USEC_PER_SEC,
                        0, on_reply_timeout, rep);
        if (r < 0) {
                reply_finish(rep, r);
                return;
        }
        accept_more(a);
}

/* A waiting request ends without its key: logged as a refusal with the reason. */
static void wait_end(CredentialReply *rep, const char *why) {
        refuse(rep->agent, rep->uid, rep->pid, rep->unit, rep->name, why);
        reply_free(rep);
}

/* The key of a waiting request arrived: send it. */
static void wait_deliver(CredentialReply *rep) {
        Agent *a = rep->agent;

        reply_unlink(rep);
        rep->io = sd_event_source_disable_unref(rep->io);
        rep->timer = sd_event_source_disable_unref(rep->timer);
        if (reply_prepare(a, rep) < 0) {
                reply_free(rep);
                return;
        }
        log_debug("Credential '%s' for unit %s: the key arrived.", LOG_NAME(rep->name), LOG_NAME(rep->unit));
        reply_start(a, rep);
}

/* systemd closed its end (the unit's start was cancelled or timed out). Only a hang-up is
 * asked for: systemd shuts down its sending side at once, so EOF alone means nothing. */
static int on_wait_hangup(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        wait_end(userdata, "the unit stopped waiting for it");
        return 0;
}

static int on_wait_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        CredentialReply *rep = userdata;
        char why[96];

        snprintf(
                why, sizeof(why), "the key did not arrive within %" PRIu64 " ms",
                rep->wait_usec / USEC_PER_MSEC);
        wait_end(rep, why);
        return 0;
}

/* Park rep until its key has a copy, it hangs up, or --credential-wait passes. */
static void wait_start(Agent *a, CredentialReply *rep) {
        uint64_t w = a->config.credential_wait_usec;
        int r;

        rep->agent = a;
        rep->wait_usec = w;
        reply_link(rep, true);
        a->counters.credentials_waited++;
        agent_metrics_changed(a);
        r = sd_event_add_io(a->event, &rep->io, rep->fd, EPOLLHUP, on_wait_hangup, rep);
        if (r >= 0)
                r = sd_event_add_time_relative(
                        a->event, &rep->timer, CLOCK_MONOTONIC, w, 0, on_wait_timeout, rep);
        if (r < 0) {
                wait_end(rep, "the agent cannot watch the request");
                return;
        }
        log_info(
                "Credential '%s' for unit %s: key '%s' has no copy yet; waiting up to %" PRIu64
                " ms for it.",
                LOG_NAME(rep->name), LOG_NAME(rep->unit), LOG_NAME(rep->id), w / USEC_PER_MSEC);
}

static int on_connection(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Agent *a = userdata;
        CredentialReply *rep;
        int r;

        rep = calloc(1, sizeof(CredentialReply));
        if (!rep)
                return 0;
        rep->fd = agent_accept(fd, "credential");
        r = rep->fd < 0 ? rep->fd : serve(a, rep);
        if (r < 0) {
                reply_free(rep);
                copy_trim(a);
                return 0;
        }
        if (r > 0)
                wait_start(a, rep);
        else
                reply_start(a, rep);
        return 0;
}

void agent_credential_wake(Agent *a) {
        CredentialReply *next;

        for (CredentialReply *rep = a->credential_waits; rep; rep = next) {
                _cleanup_free_ char *id = NULL;
                AgentKeyStatus st;
                int r;

                next = rep->replies_next;
                /* Still registered for the unit under that name, as the same key? */
                r = agent_key_find_for_unit(a, rep->unit, rep->key_name, &id, &st);
                if (r == -ENOMEM)
                        continue; /* asked again at the next wake-up */
                if (r == 0 || !streq(id, rep->id))
                        wait_end(rep, "the key is no longer registered for this unit under this name");
                else if (st.cached)
                        wait_deliver(rep);
                else if (st.state == KEY_STATE_MISSING || st.state == KEY_STATE_DENIED)
                        wait_end(rep, no_wait_reason(a, st.state));
        }
}

int agent_credential_open(Agent *a) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        int n, r;

        if (asprintf(&path, "%s/%s", a->config.runtime_dir, CREDENTIAL_SOCKET_NAME) < 0) {
                path = NULL;
                return log_oom();
        }

        /* Socket-activated: systemd made the socket, with the permissions of its unit. */
        n = sd_listen_fds(true);
        for (int i = 0; i < MAX(n, 0); i++)
                if (sd_is_socket_unix(SD_LISTEN_FDS_START + i, SOCK_STREAM, 1, path, 0) > 0) {
                        fd = SD_LISTEN_FDS_START + i;
                        log_debug("Serving credentials on '%s' (from systemd).", path);
                        break;
                }

        if (fd < 0) {
                if (strlen(path) >= sizeof(sa.sun_path))
                        return log_error_errno(ENAMETOOLONG, "The socket path '%s' is too long.", path);
                memcpy(sa.sun_path, path, strlen(path) + 1);
                if (mkdir(a->config.runtime_dir, 0755) < 0 && errno != EEXIST)
                        return log_error_errno(errno, "Failed to create '%s': %m", a->config.runtime_dir);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd < 0)
                        return log_error_errno(errno, "Failed to create the credential socket: %m");
                (void) unlink(path);
                if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                        return log_error_errno(errno, "Failed to bind '%s': %m", path);
                if (chmod(path, 0600) < 0 || listen(fd, 64) < 0)
                        return log_error_errno(errno, "Failed to set up '%s': %m", path);
                a->credential_path = TAKE_PTR(path);
                log_debug("Serving credentials on '%s'.", a->credential_path);
        }

        r = agent_listen_watch(a, fd, on_connection, a, &a->credential_source);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the credential socket: %m");
        (void) sd_event_source_set_io_fd_own(a->credential_source, true);
        TAKE_FD(fd);
        return 0;
}

void agent_credential_trim(Agent *a) {
        copy_trim(a);
}

void agent_credential_close(Agent *a) {
        a->credential_source = sd_event_source_disable_unref(a->credential_source);
        while (a->credential_waits)
                wait_end(a->credential_waits, "the agent is stopping");
        while (a->credential_replies)
                reply_finish(a->credential_replies, -ECANCELED);
        while (a->credential_copies)
                copy_unlist(&a->credential_copies);
        /* A socket of our own goes with us; systemd's stays for the next start. */
        if (a->credential_path) {
                (void) unlink(a->credential_path);
                free(a->credential_path);
                a->credential_path = NULL;
        }
}
