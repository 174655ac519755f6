/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Peers: who is sent KeyChanged.
 * KeyChanged names a key registered here, so it is never broadcast (any local user could
 * add a match rule and learn the registry): it goes as one unicast signal to each connection
 * whose uid may read the key, as agent_key_may_read() decides for GetKey (root, the agent's
 * own uid, the key's reader users and groups, groups as NSS gives them for that uid).
 *
 * The table holds every unique name on the bus: read with ListNames when the agent connects,
 * then kept by NameOwnerChanged (a unique name that appears is added, one that goes is
 * dropped; unique names are never reused, so a cached uid never passes to another
 * connection). A peer's uid is asked of the bus (one local round trip) the first time a
 * KeyChanged goes out after it connected; after that a change costs no round trip. The work
 * is bounded: at most PEERS_MAX peers are tracked (dbus-daemon's system bus allows 2048
 * connections), so one change costs at most PEERS_MAX round trips, and only when every peer
 * is new. */

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "agent-caller.h"
#include "agent.h"

/* A connection on the bus, by unique name; the uid is asked of the bus the first time a
 * KeyChanged goes out after it connected. */
#define PEERS_MAX 4096

typedef struct Peer {
        Caller c; /* sender is the unique name */
        bool resolved;
} Peer;

typedef struct AgentPeers {
        sd_bus *bus;
        Peer *peers;
        size_t n_peers;
        bool full_logged;
        sd_bus_slot *name_owner_slot;
} AgentPeers;

/* List the bus's connections and follow them from now on. */
int agent_peers_start(AgentPeers *b, sd_bus *bus);
void agent_peers_done(AgentPeers *b);
/* KeyChanged(id, hash) to every peer that may read k (to the privileged ones alone when k
 * is NULL: a key no longer, or not yet, registered). */
void agent_peers_key_changed(AgentPeers *b, const char *id, const char *hash, const AgentKey *k);
