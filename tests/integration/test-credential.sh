#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The agent's credential socket for LoadCredential=: a peer that connects the way systemd
# does (bound to "\0<random>/unit/<unit>/<name>") gets the key registered for that unit
# under that name, as data or as JSON; every other asks is refused and logged. Then, as root,
# a real systemd booted in systemd-nspawn starts units that declare LoadCredential= against
# the agent.

. "$(dirname "$0")/lib.sh"

: "${KEYWARD_AGENT:=$KEYWARD_TOP_BUILDDIR/keyward-agent}"
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"

DEST=org.keyward.Agent1
OBJ=/org/keyward/Agent1
IFACE=org.keyward.Agent1
HOST=host1.example.com

make_pki
kwd_init
kwd_start
ADMIN=$(kwd_token admin) || bail "cannot mint a token"
GRANT='[{"type":"Machine","id":"'$HOST'","access":"Read"}]'
for k in db_password:hunter2 tls_key:tls-secret other:not-yours; do
        r=$(req none "0u$ADMIN" POST /v0/keys/ -d "id=${k%%:*}" --data-urlencode "data=$(printf '%s' "${k#*:}" | base64 -w0)" \
                --data-urlencode "acl=$GRANT")
        expect "create ${k%%:*}" "$r" 200 0 ""
done

bus_start
AGENT_PID=
agent_cleanup() {
        [ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null
        cleanup
}
trap agent_cleanup EXIT
"$KEYWARD_AGENT" --server "$KWD_URL" --cert "$T/pki/machine.pem" --key "$T/pki/machine.key" \
        --server-ca "$T/pki/ca.pem" --hostname "$HOST" --state-dir "$T/state" --runtime-dir "$T/run" \
        --log-level debug 2>>"$T/agent.log" &
AGENT_PID=$!
bus() { timeout 10 busctl --system --timeout=8 "$@"; }
call() { bus call "$DEST" "$OBJ" "$IFACE" "$@"; }
check "the agent is on the bus" wait_for 10 bus status "$DEST"
check "the credential socket exists" test -S "$T/run/credential.sock"
is "credential.sock is 0600" "$(stat -c %a "$T/run/credential.sock")" 600

check "Register db_password for demo.service as credential 'db'" \
        call Register 'sa{sv}' db_password 2 units as 1 demo.service credential s db
check "Register tls_key for demo.service under its own name" call Register 'sa{sv}' tls_key 1 units as 2 demo.service web.service
check "Register other for another unit" call Register 'sa{sv}' other 2 units as 1 else.service credential s db
check "the keys are cached" wait_for 10 bash -c "test -s '$T/state/cache/db_password' && test -s '$T/state/cache/tls_key' && test -s '$T/state/cache/other'"

# ask ADDRESS: connect to the credential socket from the abstract address "\0ADDRESS", as
# systemd does; prints what the agent wrote.
ask() {
        python3 - "$T/run/credential.sock" "$1" <<'PYEOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0" + sys.argv[2])
s.connect(sys.argv[1])
data = b""
while True:
        chunk = s.recv(65536)
        if not chunk:
                break
        data += chunk
sys.stdout.write(data.decode("utf-8", "replace"))
PYEOF
}

is "demo.service's credential 'db': db_password's primary version" "$(ask 1a2b3c4d5e6f7081/unit/demo.service/db)" "hunter2"
is "web.service's credential 'tls_key': the key of that id" "$(ask 99/unit/web.service/tls_key)" "tls-secret"
is "else.service's 'db' is its own key" "$(ask 42/unit/else.service/db)" "not-yours"
out=$(ask 7/unit/demo.service/db.json)
is "'db.json': the version set as Knox's JSON" "$(jget "$out" '[j["id"], len(j["versions"]), j["versions"][0]["status"], j["acl"]]')" \
        '["db_password", 1, "Primary", []]'
check "the delivery is logged with the unit" grep -q "Delivered key 'db_password' version [0-9]* to unit demo.service as credential 'db'" "$T/agent.log"

is "a unit the key is not registered for gets nothing" "$(ask 5/unit/web.service/db)" ""
check "that refusal is logged with the unit and the reason" \
        grep -q "Refused credential 'db' to unit web.service: no key is registered for this unit under this name" "$T/agent.log"
is "an unknown credential name gets nothing" "$(ask 5/unit/demo.service/nope)" ""
is "an address that is not systemd's gets nothing" "$(ask not-systemd)" ""
check "that is logged too" grep -q "the peer is not systemd asking" "$T/agent.log"
is "an empty unit gets nothing" "$(ask 5/unit//db)" ""

# A reader that does not read: the agent goes on serving meanwhile, and the reader gets the
# whole credential once it reads.
head -c 600000 /dev/urandom | base64 -w0 >"$T/big"
r=$(req none "0u$ADMIN" POST /v0/keys/ -d id=big_key --data-urlencode "data@$T/big" --data-urlencode "acl=$GRANT")
expect "create a key of 800 KB" "$r" 200 0 ""
check "Register it for slow.service" call Register 'sa{sv}' big_key 1 units as 1 slow.service
check "it is cached" wait_for 10 test -s "$T/state/cache/big_key"
python3 - "$T/run/credential.sock" "$T/big.got" <<'PYEOF2' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind("\0" + "77/unit/slow.service/big_key")
s.connect(sys.argv[1])
time.sleep(3)
data = b""
while True:
        chunk = s.recv(65536)
        if not chunk:
                break
        data += chunk
open(sys.argv[2], "wb").write(data)
PYEOF2
SLOW_PID=$!
sleep 0.5
check "while it does not read, the agent still answers on the bus" \
        bash -c "timeout 2 busctl --system --timeout=2 call $DEST $OBJ $IFACE GetKey s db_password >/dev/null"
wait "$SLOW_PID"
check "the slow reader got the whole key" cmp -s "$T/big.got" <(base64 -d "$T/big")

# Rotation: a new primary is what the next start gets.
r=$(req none "0u$ADMIN" POST /v0/keys/db_password/versions/ --data-urlencode "data=$(printf 'rotated' | base64 -w0)")
expect "add a version to db_password" "$r" 200 0 ""
V=$(jget "$(body "$r")" 'j["data"]')
r=$(req none "0u$ADMIN" PUT "/v0/keys/db_password/versions/$V/" --data-urlencode 'status="Primary"')
expect "promote it" "$r" 200 0 ""
asks_for() { [ "$(ask "$1")" = "$2" ]; } # ADDRESS EXPECTED
check "the next start gets the new primary" wait_for 10 asks_for abc/unit/demo.service/db rotated

# ---- a real systemd: LoadCredential= against the agent ----------------------------------------
# The host's own tree booted as a container with a throwaway root (--volatile=yes), sharing
# the network namespace, with $T bound in: PID 1 connects to the agent's socket itself.
NSPAWN_TESTS=("systemd runs a unit with the registered credential" "the unit got the key's primary version"
        "the unit got the .json credential" "a unit the key is not registered for gets an empty credential"
        "systemd's attempt for the other unit is refused and logged")
if [ "$(id -u)" -eq 0 ] && command -v systemd-nspawn >/dev/null && [ -x /lib/systemd/systemd ]; then
        mkdir -p "$T/units" "$T/out"
        chmod 0755 "$T" "$T/units" "$T/out"
        cat >"$T/units/demo.service" <<UNIT
[Unit]
Description=keyward test: a unit with credentials from the agent
Wants=web.service
After=web.service
SuccessAction=exit-force
FailureAction=exit-force
[Service]
Type=oneshot
LoadCredential=db:$T/run/credential.sock
LoadCredential=db.json:$T/run/credential.sock
ExecStart=/bin/sh -c 'cat "\$CREDENTIALS_DIRECTORY/db" >$T/out/db; cat "\$CREDENTIALS_DIRECTORY/db.json" >$T/out/db.json'
UNIT
        cat >"$T/units/web.service" <<UNIT
[Unit]
Description=keyward test: a unit asking for a credential it is not registered for
[Service]
Type=oneshot
LoadCredential=db:$T/run/credential.sock
ExecStart=/bin/sh -c 'stat -c "%%s bytes" "\$CREDENTIALS_DIRECTORY/db" >$T/out/web'
UNIT
        timeout 120 systemd-nspawn --directory=/ --volatile=yes --boot --register=no --keep-unit \
                --quiet --bind="$T" --bind-ro="$T/units:/etc/systemd/system" \
                -- --unit=demo.service systemd.firstboot=off </dev/null \
                >"$T/nspawn.log" 2>&1
        rc=$?
        is "${NSPAWN_TESTS[0]}" "$rc" 0 || tail -n 30 "$T/nspawn.log" | sed 's/^/# /'
        is "${NSPAWN_TESTS[1]}" "$(cat "$T/out/db" 2>/dev/null)" "rotated"
        is "${NSPAWN_TESTS[2]}" "$(jget "$(cat "$T/out/db.json" 2>/dev/null)" 'j["id"]')" "db_password"
        is "${NSPAWN_TESTS[3]}" "$(cat "$T/out/web" 2>/dev/null)" "0 bytes"
        check "${NSPAWN_TESTS[4]}" grep -q "Refused credential 'db' to unit web.service" "$T/agent.log"
else
        for t in "${NSPAWN_TESTS[@]}"; do
                ok "$t # SKIP needs root and systemd-nspawn"
        done
fi

if grep -q -e hunter2 -e tls-secret -e rotated "$T/agent.log"; then
        not_ok "no key data in the agent's log"
else
        ok "no key data in the agent's log"
fi

done_testing
