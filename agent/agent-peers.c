/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent-peers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent-bus.h"
#include "log.h"
#include "strv.h"

static Peer *peer_find(AgentPeers *b, const char *name) {
        for (size_t i = 0; i < b->n_peers; i++)
                if (streq(b->peers[i].c.sender, name))
                        return &b->peers[i];
        return NULL;
}

static int peer_add(AgentPeers *b, const char *name) {
        Peer *n;
        char *copy;

        if (name[0] != ':' || peer_find(b, name))
                return 0;
        if (b->n_peers >= PEERS_MAX) {
                if (!b->full_logged)
                        log_warning(
                                "More than %d connections on the bus: KeyChanged is not sent to the newest.",
                                PEERS_MAX);
                b->full_logged = true;
                return 0;
        }
        copy = strdup(name);
        if (!copy)
                return -ENOMEM;
        n = reallocarray(b->peers, b->n_peers + 1, sizeof(Peer));
        if (!n) {
                free(copy);
                return -ENOMEM;
        }
        b->peers = n;
        n[b->n_peers++] = (Peer){.c.sender = copy};
        return 0;
}

static void peer_drop_at(AgentPeers *b, size_t i) {
        caller_done(&b->peers[i].c);
        b->peers[i] = b->peers[--b->n_peers];
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        AgentPeers *b = userdata;
        const char *name, *old_owner, *new_owner;
        Peer *p;
        int r;

        r = sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner);
        if (r < 0 || name[0] != ':')
                return 0;
        if (new_owner[0] != '\0') {
                if (peer_add(b, name) < 0)
                        log_oom();
                return 0;
        }
        p = peer_find(b, name);
        if (p)
                peer_drop_at(b, (size_t) (p - b->peers));
        return 0;
}

int agent_peers_start(AgentPeers *b, sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_strv_free_ char **names = NULL;
        int r;

        b->bus = bus;
        /* The match first: a peer that connects between the two calls is in one or both. */
        r = sd_bus_match_signal(
                b->bus, &b->name_owner_slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed, b);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the bus for new connections: %m");
        r = sd_bus_call_method(
                b->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ListNames",
                &error, &reply, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to list the bus's connections: %m");
        r = sd_bus_message_read_strv(reply, &names);
        if (r < 0)
                return log_error_errno(r, "Failed to list the bus's connections: %m");
        STRV_FOREACH(n, names)
                if (peer_add(b, *n) < 0)
                        return log_oom();
        return 0;
}

/* Ask the bus for p's uid (the EUID it took when the peer connected, never read from
 * /proc). */
static int peer_resolve(AgentPeers *b, Peer *p) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        r = sd_bus_get_name_creds(b->bus, p->c.sender, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        if (sd_bus_creds_get_augmented_mask(creds) & SD_BUS_CREDS_EUID)
                return -EPERM;
        r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                return r;
        p->c.uid = uid;
        p->resolved = true;
        return 0;
}

static bool peer_may_read(Peer *p, const AgentKey *k) {
        if (!k)
                return agent_uid_is_privileged(p->c.uid);
        if (agent_key_may_read(k, p->c.uid, NULL, 0))
                return true;
        /* The groups only when they can matter: NSS may be slow. Then kept with the peer. */
        if (k->n_reader_gids == 0 || caller_groups(&p->c) < 0)
                return false;
        return agent_key_may_read(k, p->c.uid, p->c.groups, p->c.n_groups);
}

void agent_peers_key_changed(AgentPeers *b, const char *id, const char *hash, const AgentKey *k) {
        const char *self = NULL;
        size_t n_failed = 0;
        int failed = 0, r;

        (void) sd_bus_get_unique_name(b->bus, &self);
        for (size_t i = 0; i < b->n_peers;) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
                Peer *p = &b->peers[i];

                if (self && streq(p->c.sender, self)) {
                        i++;
                        continue;
                }
                if (!p->resolved) {
                        r = peer_resolve(b, p);
                        if (r == -ENXIO || r == -ESRCH) {
                                /* Gone; its NameOwnerChanged is still on the way. */
                                peer_drop_at(b, i);
                                continue;
                        }
                        if (r < 0) {
                                /* Asked again at the next change. */
                                log_debug_errno(
                                        r, "Cannot identify bus peer %s, not telling it: %m", p->c.sender);
                                i++;
                                continue;
                        }
                }
                i++;
                if (!peer_may_read(p, k))
                        continue;
                r = sd_bus_message_new_signal(b->bus, &m, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, "KeyChanged");
                if (r >= 0)
                        r = sd_bus_message_set_destination(m, p->c.sender);
                if (r >= 0)
                        r = sd_bus_message_append(m, "ss", id, hash);
                if (r >= 0)
                        r = sd_bus_send(b->bus, m, NULL);
                if (r < 0) {
                        failed = r;
                        n_failed++;
                }
        }
        /* One line per change, however many peers it missed. */
        if (n_failed > 0)
                log_warning_errno(
                        failed, "Failed to send KeyChanged for '%s' to %zu bus peers, ignoring: %m",
                        LOG_NAME(id), n_failed);
}

void agent_peers_done(AgentPeers *b) {
        while (b->n_peers > 0)
                peer_drop_at(b, b->n_peers - 1);
        free(b->peers);
        sd_bus_slot_unref(b->name_owner_slot);
        *b = (AgentPeers){};
}
