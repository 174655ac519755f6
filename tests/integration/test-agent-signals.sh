#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Who hears KeyChanged: the signal names a key registered on this host, so only the peers
# that may read that key get it (root, the agent's own uid, the key's readers by user or by
# group), each with an ordinary match rule (gdbus monitor), never everyone on the bus. On a
# private bus with keyward's bus policy and a real keywardd behind the agent: a rotation, a
# registration and two unregistrations, heard by nobody, by a reader user, by a reader
# group's member and by root. Needs root (to listen as other uids).

. "$(dirname "$0")/lib.sh"


[ "$(id -u)" -eq 0 ] || skip_all "needs root to listen as other uids"
need_tools dbus-daemon busctl setpriv
command -v gdbus >/dev/null || skip_all "gdbus is not installed (apt-get install libglib2.0-bin)"
for u in nobody daemon bin; do
        id "$u" >/dev/null 2>&1 || skip_all "needs the users nobody, daemon and bin"
done
[ "$(id -gn bin)" = bin ] || skip_all "needs the user bin in the group bin"
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"

HOST=host1.example.com
GRANT='[{"type":"Machine","id":"'$HOST'","access":"Read"}]'

make_pki
kwd_init
kwd_start
ALICE=$(kwd_token alice) || bail "cannot mint a token"
as_alice() { req none "0u$ALICE" "$@"; }
for id in k1 k2 k3; do
        r=$(as_alice POST /v0/keys/ -d "id=$id" --data-urlencode "data=$(b64 "first-$id")" --data-urlencode "acl=$GRANT")
        expect "$id: a key this machine may read" "$r" 200 0 ""
done
hash_of() { jget "$(body "$(as_alice GET "/v0/keys/$1/")")" 'j["data"]["hash"]'; }

bus_start
agent_start --log-level debug
check "the agent is on the bus" wait_for 10 busctl --system status "$DEST"

call() { timeout 10 busctl --system --timeout=8 call "$DEST" "$OBJ" "$IFACE" "$@"; }
# k1 for the user daemon, k3 for the group bin; k2 (later) for root alone.
call Register 'sa{sv}' k1 1 readers as 1 user:daemon >/dev/null || bail "cannot register k1"
call Register 'sa{sv}' k3 1 readers as 1 group:bin >/dev/null || bail "cannot register k3"
for id in k1 k3; do
        check "$id is cached" wait_for 10 call GetKey s "$id"
done

# Listeners: gdbus monitor, as each user, adds a match rule for the agent's signals.
listen() { # USER
        local run=()
        [ "$1" != root ] && run=(setpriv --reuid="$1" --regid="$(id -g "$1")" --clear-groups)
        "${run[@]}" gdbus monitor --system --dest "$DEST" >"$T/heard.$1" 2>&1 &
        BG_PIDS+=("$!")
}
for u in nobody daemon bin root; do
        listen "$u"
done
for u in nobody daemon bin root; do
        # gdbus says who owns the name after its match rule is in place.
        check "$u listens" wait_for 10 grep -q "is owned by" "$T/heard.$u"
done
heard() { grep -q "$IFACE.KeyChanged ('$2', '$3')" "$T/heard.$1"; } # USER ID HASH

# A rotation of k1, then k2 registered and unregistered, then k3 unregistered.
v=$(jget "$(body "$(as_alice POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 second-k1)")")" 'j["data"]')
as_alice PUT "/v0/keys/k1/versions/$v/" --data-urlencode 'status="Primary"' >/dev/null
H1=$(hash_of k1)
check "root hears k1's rotation" wait_for 10 heard root k1 "$H1"
call Register 'sa{sv}' k2 0 >/dev/null || bail "cannot register k2"
H2=$(hash_of k2)
check "root hears k2's registration" wait_for 10 heard root k2 "$H2"
check "Unregister k2" call Unregister s k2
check "root hears k2's unregistration" wait_for 10 heard root k2 ""
check "Unregister k3" call Unregister s k3

# Everyone hears KeyCount fall to 1 (a broadcast) after the last KeyChanged went out: what
# a listener has not heard by then, it was not sent.
for u in nobody daemon bin root; do
        check "$u hears the last KeyCount" wait_for 10 grep -q "'KeyCount': <uint32 1>" "$T/heard.$u"
done

check "nobody hears no KeyChanged at all" bash -c "! grep -q KeyChanged '$T/heard.nobody'"
check "daemon hears k1's rotation" heard daemon k1 "$H1"
check "daemon hears nothing of k2 or k3" bash -c "! grep -q \"KeyChanged ('k[23]'\" '$T/heard.daemon'"
check "bin (by its group) hears k3's unregistration" heard bin k3 ""
check "bin hears nothing of k1 or k2" bash -c "! grep -q \"KeyChanged ('k[12]'\" '$T/heard.bin'"
check "root hears k3's unregistration" heard root k3 ""
# (k1 changed twice: its hash changed with the new version, and again with the promotion.)
is "root hears each change once" "$(grep KeyChanged "$T/heard.root" | sort | uniq -d)" ""

agent_stop
is "the agent stops cleanly" "$?" 0

done_testing
