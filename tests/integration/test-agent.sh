#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent against a real keywardd and a private dbus-daemon (the agent takes
# DBUS_SYSTEM_BUS_ADDRESS): the D-Bus contract (live introspection against
# dbus/org.keyward.Agent1.xml), register and cache (file modes), GetKey, rotation announced
# by KeyChanged, keys the server does not have or will not give, last-known-good with the
# server stopped and across an agent restart, a corrupted cache file (never served, logged,
# fetched again), a key too big for a cache file (served from memory, reported), readers by
# uid (as root), sd_notify, SIGHUP and SIGTERM.

. "$(dirname "$0")/lib.sh"

XML=$KEYWARD_TOP_SRCDIR/dbus/org.keyward.Agent1.xml

need_tools dbus-daemon gdbus busctl
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"
busctl --json=short --version >/dev/null 2>&1 || skip_all "busctl has no --json"

make_pki
kwd_init
kwd_start
ALICE=$(kwd_token alice) || bail "cannot mint a token"
HOST=host1.example.com # the machine certificate's DNS name

as_alice() { req none "0u$ALICE" "$@"; }
create_key() { # ID DATA ACL
        as_alice POST /v0/keys/ -d "id=$1" --data-urlencode "data=$(b64 "$2")" --data-urlencode "acl=$3" >/dev/null
}
GRANT='[{"type":"Machine","id":"'$HOST'","access":"Read"}]'

create_key k1 first-secret "$GRANT"
create_key k_denied not-for-this-host '[]'

# ---- a private bus ------------------------------------------------------------------------
bus_start

prop() { bus get-property "$DEST" "$OBJ" "$IFACE" "$1"; }



# ---- sd_notify: a datagram socket that records what the agent says ------------------------
notify_start

STATE=$T/state
AGENT_ENV=(NOTIFY_SOCKET="$T/notify.sock")
AGENT_FLAGS=(--retry-max 2s --watch-wait 30s --max-request-size 1K --log-level debug)
agent_ready() { grep -q '^READY=1' "$T/notify.log"; }

: >"$T/notify.log"
agent_start
check "the agent says READY=1" wait_for 10 agent_ready
check "the agent owns $DEST" wait_for 5 bus status "$DEST"
check "STATUS= is sent" grep -q '^STATUS=' "$T/notify.log"

# GnuTLS, loaded through libcurl's dependencies and unused, must not initialise itself.
if command -v nm >/dev/null; then
        check "the agent exports GnuTLS's skip-initialisation hook" \
                bash -c "nm -D '$KEYWARD_AGENT' | grep -q ' T _gnutls_global_init_skip$'"
fi

# ---- the contract: live introspection against the XML ---------------------------------------
compare_introspection() {
        local live
        live=$(bus --json=short call "$DEST" "$OBJ" org.freedesktop.DBus.Introspectable Introspect) || return 1
        python3 - "$XML" "$live" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET

def iface(root):
        for i in root.iter("interface"):
                if i.get("name") == "org.keyward.Agent1":
                        return i
        sys.exit("no org.keyward.Agent1 interface")

def describe(i):
        out = set()
        for m in i.findall("method"):
                ins = "".join(a.get("type") for a in m.findall("arg") if a.get("direction", "in") == "in")
                outs = "".join(a.get("type") for a in m.findall("arg") if a.get("direction") == "out")
                names = ",".join(a.get("name") or "" for a in m.findall("arg"))
                out.add(("method", m.get("name"), ins, outs, names))
        for s in i.findall("signal"):
                out.add(("signal", s.get("name"), "".join(a.get("type") for a in s.findall("arg")),
                         ",".join(a.get("name") or "" for a in s.findall("arg"))))
        for p in i.findall("property"):
                out.add(("property", p.get("name"), p.get("type"), p.get("access")))
        return out

want = describe(iface(ET.parse(sys.argv[1]).getroot()))
xml = json.loads(sys.argv[2])["data"][0]
got = describe(iface(ET.fromstring(xml.split("\n", 2)[2] if xml.startswith("<!DOCTYPE") else xml)))
if want != got:
        for x in sorted(want - got):
                print("only in the XML file:", x)
        for x in sorted(got - want):
                print("only in the live agent:", x)
        sys.exit(1)
EOF
}
tcheck "live introspection matches dbus/org.keyward.Agent1.xml" compare_introspection

like "Version property" "$(prop Version)" '^s "[0-9]+\.[0-9]+'
is "Servers property" "$(prop Servers)" "as 1 \"$KWD_URL\""
is "KeyCount is 0" "$(prop KeyCount)" "u 0"

# ---- register and cache ----------------------------------------------------------------------
out=$(call GetKey s k1 2>&1)
like "GetKey of an unregistered key: NotRegistered" "$out" "not registered"
check "Register k1" call Register 'sa{sv}' k1 0
check "k1 is fetched and served" wait_for 5 getkey k1
V1=$(jget "$(body "$(as_alice GET /v0/keys/k1/)")" 'j["data"]["versions"][0]["id"]')
is "GetKey returns the primary data and version id" "$(getkey k1)" "first-secret $V1"
is "KeyCount is 1" "$(prop KeyCount)" "u 1"
is "state directory is 0700" "$(stat -c %a "$STATE")" 700
is "cache directory is 0700" "$(stat -c %a "$STATE/cache")" 700
is "cache file is 0600" "$(stat -c %a "$STATE/cache/k1")" 600
is "registry file is 0600" "$(stat -c %a "$STATE/registrations.sealed")" 600
check "the cache file is sealed (keyward-cache-v2)" bash -c "head -c 17 '$STATE/cache/k1' | grep -q '^keyward-cache-v2$'"
check "the cache file opens with the host's cache key" bash -c "'$AGENT_UNSEAL' '$T/host/cache.key' '$STATE/cache/k1' | grep -q '\"id\":\"k1\"'"
check "the delivery is logged with uid, pid and version" \
        grep -q "Delivered key 'k1' version $V1 to uid $(id -u) pid [0-9]* unit .* (GetKey)" "$T/agent.log"
check "no secret in the agent's log" bash -c "! grep -q -e first-secret -e '$(b64 first-secret)' '$T/agent.log'"
HASH1=$(jget "$(body "$(as_alice GET /v0/keys/k1/)")" 'j["data"]["hash"]')
is "ListKeys: id, hash, primary version" "$(call ListKeys)" "a(sst) 1 \"k1\" \"$HASH1\" $V1"
out=$(jcall GetKeyVersions s k1)
is "GetKeyVersions" "$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print([(v[0], bytes(v[1]).decode(), v[2]) for v in j["data"][0]], j["data"][1])' "$out")" \
        "[($V1, 'first-secret', 'Primary')] $HASH1"
out=$(call Register 'sa{sv}' k1 1 bogus s x 2>&1)
like "Register with an unknown option: InvalidArgs" "$out" "Unknown option 'bogus'"
out=$(call Register 'sa{sv}' 'bad/id' 0 2>&1)
like "Register with an invalid id: InvalidArgs" "$out" "Invalid key id"
out=$(call Register 'sa{sv}' k1 1 readers as 1 user:no-such-user-kw 2>&1)
like "Register with an unknown reader: InvalidArgs" "$out" "Unknown reader 'user:no-such-user-kw'"

# ---- rotation: KeyChanged and the new primary ------------------------------------------------
# KeyChanged goes only to peers that may read the key: a listener, not a bus monitor.
timeout 20 gdbus monitor --system --dest "$DEST" >"$T/monitor.log" 2>&1 &
MON_PID=$!
BG_PIDS+=("$MON_PID")
check "a KeyChanged listener" wait_for 10 grep -q "is owned by" "$T/monitor.log"
V2=$(jget "$(body "$(as_alice POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 second-secret)")")" 'j["data"]')
start=$(date +%s%N)
as_alice PUT "/v0/keys/k1/versions/$V2/" --data-urlencode 'status="Primary"' >/dev/null
HASH2=$(jget "$(body "$(as_alice GET /v0/keys/k1/)")" 'j["data"]["hash"]')
check "KeyChanged(k1, new hash) is emitted" wait_for 5 grep -q "KeyChanged ('k1', '$HASH2')" "$T/monitor.log"
elapsed=$((($(date +%s%N) - start) / 1000000))
diag "promote to KeyChanged: ${elapsed} ms"
check "KeyChanged within 3 seconds of the promotion" test "$elapsed" -lt 3000
is "GetKey returns the new primary" "$(getkey k1)" "second-secret $V2"
kill "$MON_PID" 2>/dev/null

# ---- keys the server does not have, or will not give ------------------------------------------
check "Register k_denied" call Register 'sa{sv}' k_denied 0
check "Register k_later (not on the server)" call Register 'sa{sv}' k_later 0
check "k_later: NoSuchKey" wait_for 5 bash -c "busctl --system call $DEST $OBJ $IFACE GetKey s k_later 2>&1 | grep -q 'does not exist on the server'"
out=$(call GetKey s k_denied 2>&1)
like "k_denied: Unavailable, the server refuses this machine" "$out" "does not let this machine read key 'k_denied'"
create_key k_later later-secret "$GRANT"
check "k_later is cached once it exists on the server" wait_for 5 getkey k_later
is "k_later's data" "$(getkey k_later | cut -d' ' -f1)" "later-secret"
is "KeyCount is 3" "$(prop KeyCount)" "u 3"

# ---- Sync and the other methods ---------------------------------------------------------------
check "Sync succeeds with the server up" call Sync
is "Connected is true" "$(prop Connected)" "b true"
like "LastSync is set" "$(prop LastSync)" '^t [1-9][0-9]{15}$'
out=$(call GetUserToken 2>&1)
like "GetUserToken without a login: Unavailable" "$out" "No user token is held"

# ---- more keys than one request may name (--max-request-size 1K) ------------------------------
# About 12 of these fit in the watch; the others are polled in further requests, each going
# on in id order from where the last one ended.
MANY=$(seq -f 'many:key:%02g' 1 30)
for id in $MANY; do
        create_key "$id" "data-$id" "$GRANT"
        call Register 'sa{sv}' "$id" 0 >/dev/null || not_ok "Register $id"
done
check "30 more keys registered" test "$(prop KeyCount)" = "u 33"
many_cached() { [ "$(call ListKeys | grep -o '"many:key:[0-9]*" "[0-9a-f]\{64\}"' | wc -l)" = 30 ]; }
check "all of them cached" wait_for 20 many_cached
check "no request names more than 1K of keys" \
        bash -c "! grep -q 'GET .*/v0/keys/?.\{1100,\}' '$T/agent.log'"
rotate() { # ID DATA: a new primary version; prints its id
        local v
        v=$(jget "$(body "$(as_alice POST "/v0/keys/$1/versions/" --data-urlencode "data=$(b64 "$2")")")" 'j["data"]')
        as_alice PUT "/v0/keys/$1/versions/$v/" --data-urlencode 'status="Primary"' >/dev/null
        echo "$v"
}
serves() { [ "$(getkey "$1")" = "$2" ]; } # ID "DATA VERSION"
for id in many:key:30 many:key:17; do
        v=$(rotate "$id" "rotated-$id")
        check "$id, beyond the watch, follows a rotation" wait_for 10 serves "$id" "rotated-$id $v"
done
check "Sync over all the requests it takes" call Sync
for id in $MANY; do
        call Unregister s "$id" >/dev/null || not_ok "Unregister $id"
done
is "KeyCount is 3 again" "$(prop KeyCount)" "u 3"

# ---- last-known-good: server stopped ---------------------------------------------------------
KWD_ADDR_SAVED=$KWD_ADDR
kwd_stop
check "Connected turns false with the server gone" wait_for 5 bash -c "[ \"\$(busctl --system get-property $DEST $OBJ $IFACE Connected)\" = 'b false' ]"
is "server stopped: GetKey still serves k1" "$(getkey k1)" "second-secret $V2"
out=$(call Sync 2>&1)
like "Sync with no server: Unavailable" "$out" "No keyward server could be reached"

# ---- agent restart with the server down -------------------------------------------------------
check "SIGTERM: the agent exits 0" agent_stop
: >"$T/notify.log"
WATCHDOG_USEC=400000 agent_start
check "restarted agent is READY with no server" wait_for 10 agent_ready
check "WATCHDOG=1 is sent when WATCHDOG_USEC is set" wait_for 5 grep -q '^WATCHDOG=1' "$T/notify.log"
is "restarted with no server: GetKey serves the cache at once" "$(getkey k1)" "second-secret $V2"
is "restarted with no server: k_later too" "$(getkey k_later | cut -d' ' -f1)" "later-secret"

# ---- a corrupted cache file: not served, logged, refetched ------------------------------------
# One byte of the sealed data flipped: the file no longer opens.
python3 - "$STATE/cache/k1" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) - 20] ^= 1
open(p, "wb").write(bytes(b))
EOF
out=$(call GetKey s k1 2>&1)
like "corrupt cache file: not served" "$out" "damaged"
check "corrupt cache file: logged" grep -q "Cache file of key 'k1' is corrupt" "$T/agent.log"
check "corrupt cache file: removed" test ! -e "$STATE/cache/k1"

# The server comes back on the same address; the agent fetches k1 again.
kwd_restart_at "$KWD_ADDR_SAVED" || bail "keywardd did not come back on $KWD_ADDR_SAVED"
check "server back: k1 is fetched again" wait_for 10 getkey k1
is "server back: the refetched k1 is right" "$(getkey k1)" "second-secret $V2"

# ---- a key larger than a cache file may be (8 MiB): served from memory, and said so ------------
# keywardd limits each version (1 MiB bodies by default), not the key: ten versions of 690 KiB
# (920 KiB of base64 that needs no URL escaping) make a key of about 9 MiB.
python3 -c 'import sys; sys.stdout.write("QUFB" * (230 * 1024))' >"$T/big.b64"
as_alice POST /v0/keys/ -d "id=k_big" --data-urlencode "data@$T/big.b64" --data-urlencode "acl=$GRANT" >/dev/null
for i in $(seq 9); do
        as_alice POST /v0/keys/k_big/versions/ --data-urlencode "data@$T/big.b64" >/dev/null
done
# (The answers are read from files: they are too long for an argument.)
as_alice GET /v0/keys/k_big/ >/dev/null
VBIG=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print([v["id"] for v in j["data"]["versions"] if v["status"] == "Primary"][0])' "$T/body")
check "Register k_big" call Register 'sa{sv}' k_big 0
check "k_big is served though it is too big for a cache file" wait_for 20 bash -c \
        "busctl --system --json=short call $DEST $OBJ $IFACE GetKey s k_big 2>/dev/null | grep -q ',$VBIG\]'"
jcall GetKeyVersions s k_big >"$T/big.out"
is "GetKeyVersions k_big: all ten versions, from memory" \
        "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["data"][0]))' "$T/big.out")" 10
check "k_big has no cache file" test ! -e "$STATE/cache/k_big"
like "ListKeyStates: k_big's file is too large" "$(call ListKeyStates)" '"k_big" "ok" "" "File too large"'
is "the failure is logged once" "$(grep -c "Cannot write the cache file of key 'k_big': File too large" "$T/agent.log")" 1
is "and not retried (its size would not change)" "$(grep -c "Still cannot write the cache file of key 'k_big'" "$T/agent.log")" 0
check "Unregister k_big" call Unregister s k_big

# Another key's valid sealed file put in the place of k_later's does not open as k_later's:
# the key id is bound into the seal.
cp "$STATE/cache/k1" "$STATE/cache/k_later.new" && mv "$STATE/cache/k_later.new" "$STATE/cache/k_later"
out=$(call GetKey s k_later 2>&1)
like "another key's sealed file in its place is not served" "$out" "damaged"
check "and it is fetched again" wait_for 10 getkey k_later
is "k_later refetched" "$(getkey k_later | cut -d' ' -f1)" "later-secret"

# ---- readers by uid ---------------------------------------------------------------------------
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1 && id daemon >/dev/null 2>&1; then
        as_uid() { local u=$1 g=$2; shift 2; timeout 10 setpriv --reuid="$u" --regid="$g" --clear-groups busctl --system --timeout=8 call "$DEST" "$OBJ" "$IFACE" "$@"; }
        out=$(as_uid nobody "$(id -g nobody)" GetKey s k1 2>&1)
        like "uid nobody without a grant: AccessDenied" "$out" "may not read key 'k1'"
        check "the refusal is logged" grep -q "Refused GetKey of key 'k1' to uid $(id -u nobody)" "$T/agent.log"
        out=$(as_uid nobody "$(id -g nobody)" Register 'sa{sv}' k1 0 2>&1)
        like "uid nobody may not Register (no polkit on this bus)" "$out" "Only root may do this here"
        check "grant user:nobody" call Register 'sa{sv}' k1 1 readers as 1 user:nobody
        out=$(as_uid nobody "$(id -g nobody)" GetKey s k1 2>&1)
        like "uid nobody with the grant: GetKey works" "$out" "^ayt 13 115 101 99"
        out=$(as_uid daemon "$(id -g daemon)" GetKey s k1 2>&1)
        like "another uid (daemon) still gets AccessDenied" "$out" "may not read key 'k1'"
        is "ListKeys as nobody shows only the granted key" "$(as_uid nobody "$(id -g nobody)" ListKeys 2>&1 | cut -d' ' -f1-3)" 'a(sst) 1 "k1"'
        grp=$(id -gn daemon)
        check "grant group:$grp" call Register 'sa{sv}' k_later 1 readers as 1 "group:$grp"
        out=$(as_uid daemon "$(id -g daemon)" GetKey s k_later 2>&1)
        like "a member of a reader group may read" "$out" "^ayt 12 "
        out=$(as_uid nobody "$(id -g nobody)" GetKey s k_later 2>&1)
        like "a non-member may not" "$out" "may not read key 'k_later'"
        check "readers are kept in the registry" bash -c "'$AGENT_UNSEAL' '$T/host/cache.key' '$STATE/registrations.sealed' | grep -q '\"user:nobody\"'"
else
        for t in "AccessDenied without a grant" "refusal logged" "Register needs polkit" "grant user" \
                "grant works" "other uid denied" "ListKeys filtered" "grant group" "group member" "non-member" \
                "registry keeps readers"; do
                ok "$t # SKIP needs root, setpriv and the users nobody and daemon"
        done
fi

# ---- SIGHUP, Unregister, SIGTERM ---------------------------------------------------------------
: >"$T/notify.log"
kill -HUP "$AGENT_PID"
check "SIGHUP: RELOADING=1 then READY=1" wait_for 5 bash -c "grep -q RELOADING=1 '$T/notify.log' && grep -q READY=1 '$T/notify.log'"
check "SIGHUP: still serving" wait_for 2 getkey k1
timeout 10 gdbus monitor --system --dest "$DEST" >"$T/monitor2.log" 2>&1 &
BG_PIDS+=("$!")
check "a KeyChanged listener" wait_for 10 grep -q "is owned by" "$T/monitor2.log"
check "Unregister k_later" call Unregister s k_later
check "its cache file is gone" test ! -e "$STATE/cache/k_later"
check "KeyChanged(k_later, \"\") is emitted" wait_for 5 grep -q "KeyChanged ('k_later', '')" "$T/monitor2.log"
out=$(call Unregister s k_later 2>&1)
like "Unregister again: NotRegistered" "$out" "not registered"
check "k_later is gone from the registry" bash -c "'$AGENT_UNSEAL' '$T/host/cache.key' '$STATE/registrations.sealed' >'$T/reg.txt' && ! grep -q k_later '$T/reg.txt'"
start=$(date +%s%N)
check "SIGTERM: the agent exits 0" agent_stop
elapsed=$((($(date +%s%N) - start) / 1000000))
diag "SIGTERM to exit, with a watch held: ${elapsed} ms"
check "SIGTERM ends the held watch: out within 2 s" test "$elapsed" -lt 2000
check "SIGTERM: every thread stopped (no forced exit)" bash -c "! grep -q 'did not stop in time' '$T/agent.log'"
check "a clean exit releases the bus name" wait_for 5 bash -c "! busctl --system status $DEST"

# ---- the bus goes away: the agent exits with an error (systemd restarts it) --------------------
agent_start
check "agent up again" wait_for 10 bash -c "busctl --system status $DEST"
kill "$BUS_PID"
wait "$BUS_PID" 2>/dev/null
BUS_PID=
kwd_wait_exit "$AGENT_PID" 10
is "losing the bus: the agent exits 1" "$?" 1
AGENT_PID=
check "losing the bus is logged" grep -q "Lost the connection to the bus" "$T/agent.log"

done_testing
