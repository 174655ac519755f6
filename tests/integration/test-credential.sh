#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The agent's credential socket for LoadCredential=: a peer that connects the way systemd
# does (bound to "\0<random>/unit/<unit>/<name>") from a process of that unit gets the key
# registered for that unit under that name, as data or as JSON; every other ask is refused
# and logged, whatever address the asker bound. Without root, only refusals can be shown (the
# test is no unit's process). As root, a real systemd booted in systemd-nspawn runs the agent
# and units that declare LoadCredential= against it, forgers of several kinds, a rotation,
# and slow readers up to and beyond the agent's cap on replies in flight.

. "$(dirname "$0")/lib.sh"

[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"

HOST=host1.example.com

make_pki
kwd_init
kwd_start --max-body-size 8M # for the big key below
ADMIN=$(kwd_token admin) || bail "cannot mint a token"
GRANT='[{"type":"Machine","id":"'$HOST'","access":"Read"}]'
for k in db_password:hunter2 tls_key:tls-secret other:not-yours; do
        r=$(req none "0u$ADMIN" POST /v0/keys/ -d "id=${k%%:*}" --data-urlencode "data=$(printf '%s' "${k#*:}" | base64 -w0)" \
                --data-urlencode "acl=$GRANT")
        expect "create ${k%%:*}" "$r" 200 0 ""
done

bus_start
agent_start --log-level debug
check "the agent is on the bus" wait_for 10 bus status "$DEST"
check "the credential socket exists" test -S "$T/run/credential.sock"
is "credential.sock is 0600" "$(stat -c %a "$T/run/credential.sock")" 600

check "Register db_password for demo.service as credential 'db'" \
        call Register 'sa{sv}' db_password 2 units as 1 demo.service credential s db
check "Register tls_key for demo.service under its own name" call Register 'sa{sv}' tls_key 1 units as 2 demo.service web.service
check "Register other for another unit" call Register 'sa{sv}' other 2 units as 1 else.service credential s db
check "the keys are cached" wait_for 10 bash -c "test -s '$T/state/cache/db_password' && test -s '$T/state/cache/tls_key' && test -s '$T/state/cache/other'"

# ask ADDRESS: connect to the credential socket from the abstract address "\0ADDRESS", as
# systemd does; prints what the agent wrote. $T/ask.py ADDRESS SOCKET OUT does it.
credential_ask_py "$T/ask.py"
ask() { python3 "$T/ask.py" "$1" "$T/run/credential.sock" /dev/stdout; }

# The test itself runs in no unit, or in one of its own (a session scope, a CI service): it
# is root, or the agent's own user, and may bind any address, yet it is not demo.service.
is "a root process outside demo.service that claims it in its address gets nothing" \
        "$(ask 1a2b3c4d5e6f7081/unit/demo.service/db)" ""
check "that forgery is logged with the unit and the peer" \
        grep -Eq "Refused credential 'db' to unit demo.service: the peer \(pid [0-9]+\) belongs to (no unit|unit [^ ]+)" "$T/agent.log"
is "a forger gets no .json credential either" "$(ask 7/unit/demo.service/db.json)" ""
is "an address that is not systemd's gets nothing" "$(ask not-systemd)" ""
check "that is logged too" grep -q "the peer is not systemd asking" "$T/agent.log"
is "an empty unit gets nothing" "$(ask 5/unit//db)" ""

# ---- a real systemd: LoadCredential= against the agent ----------------------------------------
# The host's own tree booted as a container with a throwaway root (--volatile=yes), sharing
# the network namespace, with $T bound in. A second agent runs inside, as a unit with its
# socket unit, so that it sees the container's units as sd_pid_get_unit() finds them (from
# outside, a container's cgroups are no unit of this host's). driver.service runs
# $T/driver.sh there and leaves its findings in $T/out; the checks below read them.
NSPAWN_TESTS=("the container ran the driver to success"
        "demo.service got db_password's primary version through LoadCredential="
        "demo.service got the .json credential"
        "the delivery is logged with the unit"
        "systemd asks from the unit's own process, not from PID 1"
        "a unit the key is not registered for gets an empty credential"
        "that refusal is logged with the unit and the reason"
        "a root process of another unit (driver.service) that claims demo.service gets nothing"
        "a root process in a scope of another name gets nothing"
        "a root process outside every unit gets nothing"
        "a process of a Delegate=yes unit, in a cgroup it named demo.service, gets nothing"
        "a root process of the host, outside the container's PID namespace, gets nothing"
        "each forgery is logged with the unit the peer really belongs to"
        "after the forgers, demo.service still gets its key"
        "after a rotation, demo.service's next start gets the new primary"
        "at the cap of slow readers the agent stops accepting"
        "with the cap of slow readers connected and more waiting, GetKey answers on the bus"
        "the agent's memory stays bounded meanwhile (VmRSS)"
        "the slow readers are cut off at the write deadline"
        "the waiting readers were accepted only once slots were free (queued, not refused)"
        "every waiting reader got the whole key"
        "no key data in the container agent's log")
if [ "$(id -u)" -eq 0 ] && command -v systemd-nspawn >/dev/null && [ -x /lib/systemd/systemd ]; then
        NS_RUN=$T/nsrun
        O=$T/out
        # The container sees /usr of this tree and $T, not the build directory.
        mkdir -p "$T/units" "$O" "$NS_RUN" "$T/bin"
        cp "$KEYWARD_AGENT" "$T/bin/keyward-agent"
        chmod 0755 "$T" "$T/units" "$O" "$NS_RUN" "$T/bin"
        head -c 1500000 /dev/urandom | base64 -w0 >"$T/big"
        r=$(req none "0u$ADMIN" POST /v0/keys/ -d id=big_key --data-urlencode "data@$T/big" --data-urlencode "acl=$GRANT")
        expect "create a key of 1.5 MB" "$r" 200 0 ""
        CAP=16     # CREDENTIAL_REPLIES_MAX in agent/agent-credential.c
        WAITING=48 # readers beyond the cap
        # What the bug held: one copy of the key per connection, so the cap of slow readers
        # alone held CAP copies. The bound allows two more copies, 64 KiB per reply and 4 MiB
        # of slack: under half of that.
        KEY_KB=$(($(base64 -d "$T/big" | wc -c) / 1024))
        BOUND_KB=$((4096 + CAP * 64 + 2 * KEY_KB))

        # stall.py N SOCKET READY: N connections of this unit that never read.
        cat >"$T/stall.py" <<'PYEOF'
import socket, sys, time
n, path, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3]
socks = []
for i in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind("\0stall%d/unit/slow.service/big_key" % i)
        s.connect(path)
        socks.append(s)
open(ready, "w").write("%d\n" % n)
time.sleep(600)
PYEOF
        # read.py N SOCKET READY RESULT UNIT: N connections of UNIT that read everything;
        # RESULT gets the size each one received.
        cat >"$T/read.py" <<'PYEOF'
import selectors, socket, sys
n, path, ready, result, unit = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
sel = selectors.DefaultSelector()
got = {}
for i in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("\0wait%d/unit/%s/big_key" % (i, unit))
        s.connect(path)
        got[i] = 0
        sel.register(s, selectors.EVENT_READ, i)
open(ready, "w").write("%d\n" % n)
left = n
while left:
        for key, _ in sel.select():
                chunk = key.fileobj.recv(1 << 20)
                if chunk:
                        got[key.data] += len(chunk)
                else:
                        sel.unregister(key.fileobj)
                        key.fileobj.close()
                        left -= 1
open(result, "w").write("".join("%d\n" % got[i] for i in range(n)))
PYEOF
        # cgexec.py own|top NAME OUT COMMAND...: move into a cgroup NAME below this process's own
        # cgroup (own: what a Delegate=yes unit may do) or at the top of the tree (top: in no
        # unit), in every hierarchy systemd tracks units by; note where it landed in OUT and
        # run COMMAND there.
        cat >"$T/cgexec.py" <<'PYEOF'
import os, sys
where, name, out, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
mounts = {}
for l in open("/proc/self/mountinfo"):
        pre, _, post = l.partition(" - ")
        fstype, _, opts = post.split()[:3]
        if fstype == "cgroup2":
                mounts.setdefault("", pre.split()[4])
        elif fstype == "cgroup" and "name=systemd" in opts.split(","):
                mounts["name=systemd"] = pre.split()[4]
moved = 0
for l in open("/proc/self/cgroup"):
        _, ctl, path = l.rstrip("\n").split(":", 2)
        if ctl not in mounts:
                continue
        d = mounts[ctl] + (path.rstrip("/") if where == "own" else "") + "/" + name
        try:
                os.makedirs(d, exist_ok=True)
                open(d + "/cgroup.procs", "w").write("%d\n" % os.getpid())
                moved += 1
        except OSError as e:
                sys.stderr.write("%s: %s\n" % (d, e))
open(out, "w").write(open("/proc/self/cgroup").read())
if not moved:
        sys.exit(1)
os.execvp(cmd[0], cmd)
PYEOF

        ns_agent_units --server "$KWD_URL" --cert "$T/pki/machine.pem" --key "$T/pki/machine.key" \
                --server-ca "$T/pki/ca.pem" --hostname "$HOST" --state-dir "$T/nsstate" --runtime-dir "$NS_RUN" \
                --log-level debug
        cat >"$T/units/demo.service" <<UNIT
[Unit]
Description=keyward test: a unit with credentials from the agent
[Service]
Type=oneshot
LoadCredential=db:$NS_RUN/credential.sock
LoadCredential=db.json:$NS_RUN/credential.sock
ExecStart=/bin/sh -c 'cat "\$CREDENTIALS_DIRECTORY/db" >$O/db.\$DEMO_RUN; cat "\$CREDENTIALS_DIRECTORY/db.json" >$O/db.json.\$DEMO_RUN'
UNIT
        cat >"$T/units/web.service" <<UNIT
[Unit]
Description=keyward test: a unit asking for a credential it is not registered for
[Service]
Type=oneshot
LoadCredential=db:$NS_RUN/credential.sock
ExecStart=/bin/sh -c 'stat -c "%%s bytes" "\$CREDENTIALS_DIRECTORY/db" >$O/web'
UNIT
        cat >"$T/units/delegate.service" <<UNIT
[Unit]
Description=keyward test: a unit with cgroups of its own, one named like demo.service
[Service]
Type=oneshot
Delegate=yes
ExecStart=python3 $T/cgexec.py own demo.service $O/forge-delegate.cgroup python3 $T/ask.py 4/unit/demo.service/db $NS_RUN/credential.sock $O/forge-delegate
UNIT
        ns_driver_unit "$O"
        cat >"$T/driver.sh" <<DRIVER
set -u
O=$O
SOCK=$NS_RUN/credential.sock
ASK="python3 $T/ask.py"
CALL="busctl call $DEST $OBJ $IFACE"
# until SECONDS COMMAND...: wait for a command to succeed.
until_ok() {
        local n=\$((\$1 * 10))
        shift
        for _ in \$(seq "\$n"); do "\$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
        return 1
}
rss_kb() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/\$(systemctl show -p MainPID --value kwagent.service)/status; }
req() { curl -sS --max-time 10 --cacert $T/pki/ca.pem -H "Authorization: 0u$ADMIN" "\$@"; }

systemctl start kwagent.service || exit 1
\$CALL Register 'sa{sv}' db_password 2 units as 1 demo.service credential s db || exit 1
\$CALL Register 'sa{sv}' tls_key 1 units as 2 demo.service web.service || exit 1
\$CALL Register 'sa{sv}' big_key 1 units as 2 slow.service queued.service || exit 1
for k in db_password tls_key big_key; do until_ok 30 \$CALL GetKey s \$k || exit 1; done

# Forgers first: root processes that are not demo.service.
\$ASK 1/unit/demo.service/db \$SOCK \$O/forge-driver
systemd-run --quiet --scope --unit=fake-demo.scope python3 $T/ask.py 2/unit/demo.service/db \$SOCK \$O/forge-scope
python3 $T/cgexec.py top forger \$O/forge-root.cgroup python3 $T/ask.py 3/unit/demo.service/db \$SOCK \$O/forge-root
# The host's turn: a process of another PID namespace, which the agent cannot place.
touch \$O/host-turn
until_ok 60 test -e \$O/host-done
systemctl start delegate.service
# The real units.
systemctl set-environment DEMO_RUN=1
systemctl start demo.service web.service

# A rotation: the next start gets the new primary, not a copy kept from before.
v=\$(req -X POST $KWD_URL/v0/keys/db_password/versions/ --data-urlencode "data=\$(printf rotated | base64 -w0)" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["data"])')
req -X PUT $KWD_URL/v0/keys/db_password/versions/\$v/ --data-urlencode 'status="Primary"' >/dev/null
rotated() { \$CALL GetKey s db_password | grep -q '^ay 7 114 111 116 97 116 101 100 '; } # "rotated"
until_ok 30 rotated
systemctl set-environment DEMO_RUN=2
systemctl start demo.service

# Slow readers: the cap of them in slow.service, then more in queued.service. One reader
# first, so that the copy the agent keeps is in VmRSS before; VmRSS is sampled from when all
# are connected until the agent says it is at the cap, and once more after GetKey.
systemd-run --quiet --wait --unit=slow.service python3 $T/read.py 1 \$SOCK \$O/warm-ready \$O/warm-result slow.service
rss_kb >\$O/rss-before
systemd-run --quiet --unit=slow.service python3 $T/stall.py $CAP \$SOCK \$O/stall-ready
until_ok 60 test -s \$O/stall-ready
systemd-run --quiet --unit=queued.service python3 $T/read.py $WAITING \$SOCK \$O/read-ready \$O/read-result queued.service
until_ok 60 test -s \$O/read-ready
at_cap() {
        rss_kb >>\$O/rss-during
        grep -q "$CAP credential replies are being written: new connections wait" $T/agent-ns.log
}
until_ok 60 at_cap && touch \$O/at-cap
timeout 10 \$CALL GetKey s db_password >/dev/null && touch \$O/getkey-answered
rss_kb >>\$O/rss-during
until_ok 120 test -s \$O/read-result
systemctl stop slow.service
exit 0
DRIVER
        ns_boot
        host_turn() { [ -e "$O/host-turn" ] || ! kill -0 "$NSPAWN_PID"; }
        wait_for 120 host_turn
        [ -e "$O/host-turn" ] && timeout 20 python3 "$T/ask.py" 5/unit/demo.service/db "$NS_RUN/credential.sock" "$O/forge-host"
        touch "$O/host-done"
        wait "$NSPAWN_PID"
        rc=$?
        BG_PIDS=()
        NL=$T/agent-ns.log
        is "${NSPAWN_TESTS[0]}" "$rc" 0 || { tail -n 30 "$T/nspawn.log"; tail -n 30 "$O/driver.log"; } 2>/dev/null | sed 's/^/# /'
        is "${NSPAWN_TESTS[1]}" "$(cat "$O/db.1" 2>/dev/null)" "hunter2"
        is "${NSPAWN_TESTS[2]}" "$(jget "$(cat "$O/db.json.1" 2>/dev/null)" '[j["id"], j["versions"][0]["status"]]')" '["db_password", "Primary"]'
        check "${NSPAWN_TESTS[3]}" grep -q "Delivered key 'db_password' version [0-9]* to unit demo.service as credential 'db'" "$NL"
        pids=$(sed -n 's/.*The credential peer, pid \([0-9]*\), belongs to unit demo.service\./\1/p' "$NL" | sort -u | tr '\n' ' ')
        diag "demo.service's credential peers: pids ${pids:-none}"
        case " $pids" in
        " " | *" 1 "*) not_ok "${NSPAWN_TESTS[4]}" ;;
        *) ok "${NSPAWN_TESTS[4]}" ;;
        esac
        is "${NSPAWN_TESTS[5]}" "$(cat "$O/web" 2>/dev/null)" "0 bytes"
        check "${NSPAWN_TESTS[6]}" grep -q "Refused credential 'db' to unit web.service: no key is registered for this unit under this name" "$NL"
        is "${NSPAWN_TESTS[7]}" "$(wc -c <"$O/forge-driver" 2>/dev/null)" 0
        is "${NSPAWN_TESTS[8]}" "$(wc -c <"$O/forge-scope" 2>/dev/null)" 0
        is "${NSPAWN_TESTS[9]}" "$(wc -c <"$O/forge-root" 2>/dev/null)" 0
        is "${NSPAWN_TESTS[10]}" "$(wc -c <"$O/forge-delegate" 2>/dev/null)" 0
        is "${NSPAWN_TESTS[11]}" "$(wc -c <"$O/forge-host" 2>/dev/null)" 0
        n=0
        for why in "\(pid [0-9]+\) belongs to unit driver.service" "\(pid [0-9]+\) belongs to unit fake-demo.scope" \
                "\(pid [0-9]+\) belongs to no unit" "\(pid [0-9]+\) belongs to unit delegate.service" \
                "is a process the agent cannot see"; do
                grep -Eq "Refused credential 'db' to unit demo.service: the peer $why" "$NL" && n=$((n + 1))
        done
        is "${NSPAWN_TESTS[12]}" "$n" 5 || diag "the forgers' cgroups: $(cat "$O/forge-delegate.cgroup" "$O/forge-root.cgroup" 2>/dev/null | tr '\n' ' ')"
        last_forged=$(grep -n "Refused credential 'db' to unit demo.service: the peer" "$NL" | tail -n1 | cut -d: -f1)
        first_real=$(grep -n "Delivered key 'db_password' version [0-9]* to unit demo.service as credential 'db'" "$NL" | head -n1 | cut -d: -f1)
        check "${NSPAWN_TESTS[13]}" test -n "$last_forged" -a -n "$first_real" -a "${first_real:-0}" -gt "${last_forged:-0}"
        is "${NSPAWN_TESTS[14]}" "$(cat "$O/db.2" 2>/dev/null)" "rotated"
        check "${NSPAWN_TESTS[15]}" test -e "$O/at-cap"
        check "${NSPAWN_TESTS[16]}" test -e "$O/getkey-answered"
        before=$(cat "$O/rss-before" 2>/dev/null)
        during=$(sort -n "$O/rss-during" 2>/dev/null | tail -n1)
        diag "the agent's VmRSS: ${before:-?} kB before the slow readers, ${during:-?} kB with them; bound: +$BOUND_KB kB"
        check "${NSPAWN_TESTS[17]}" test -n "$before" -a -n "$during" -a "$((${during:-0} - ${before:-0}))" -le "$BOUND_KB"
        is "${NSPAWN_TESTS[18]}" "$(grep -c "Could not deliver key 'big_key' version [0-9]* to unit slow.service as credential 'big_key': the reader took too long" "$NL")" "$CAP"
        first_cut=$(grep -n "to unit slow.service as credential 'big_key': the reader took too long" "$NL" | head -n1 | cut -d: -f1)
        first_queued=$(grep -n "Delivered key 'big_key' version [0-9]* to unit queued.service" "$NL" | head -n1 | cut -d: -f1)
        check "${NSPAWN_TESTS[19]}" test -n "$first_cut" -a -n "$first_queued" -a "${first_queued:-0}" -gt "${first_cut:-0}"
        is "${NSPAWN_TESTS[20]}" "$(sort -u "$O/read-result" 2>/dev/null | tr '\n' ' ')" "$(base64 -d "$T/big" | wc -c) "
        if grep -q -e hunter2 -e rotated -f <(head -c 64 "$T/big"; echo) "$NL"; then
                not_ok "${NSPAWN_TESTS[21]}"
        else
                ok "${NSPAWN_TESTS[21]}"
        fi
else
        for t in "${NSPAWN_TESTS[@]}"; do
                ok "$t # SKIP needs root and systemd-nspawn"
        done
fi

if grep -q -e hunter2 -e tls-secret -e not-yours "$T/agent.log"; then
        not_ok "no key data in the agent's log"
else
        ok "no key data in the agent's log"
fi

done_testing
