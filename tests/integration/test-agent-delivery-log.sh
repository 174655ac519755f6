#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent's delivery log under systemd: each key handed out over D-Bus is a journal entry
# with MESSAGE_ID and structured fields (KEYWARD_KEY_ID, KEYWARD_KEY_VERSION,
# KEYWARD_CALLER_UID, KEYWARD_CALLER_PID, KEYWARD_UNIT, KEYWARD_METHOD, KEYWARD_RESULT), so
# that journalctl KEYWARD_KEY_ID=ID lists who got a key; never the key's data. The journal is
# a datagram socket of the test's own at /run/systemd/journal/socket (root: a mount namespace
# with a tmpfs over /run/systemd), and JOURNAL_STREAM names the agent's stderr, as systemd
# does for a service whose output goes to the journal.
# The same for the credential socket: a process placed in a cgroup named after a unit, as
# systemd places a unit's processes (sd_pid_get_unit() finds the unit there), asks the way
# systemd does for LoadCredential=; each delivery and refusal is an entry with its MESSAGE_ID
# and fields.

if [ -z "${KWD_AUDIT_NS:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
        KWD_AUDIT_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi

. "$(dirname "$0")/lib.sh"

# The cgroups made for the credential asks below, removed at the end (deepest first).
CG_DIRS=()
cg_cleanup() {
        local i
        for ((i = ${#CG_DIRS[@]} - 1; i >= 0; i--)); do
                rmdir "${CG_DIRS[i]}" 2>/dev/null
        done
        return 0
}
trap 'cg_cleanup; cleanup' EXIT

[ "${KWD_AUDIT_NS:-}" = 1 ] || skip_all "needs root and unshare, for a journal socket of its own"
need_tools dbus-daemon busctl
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"
mkdir -p /run/systemd
mount -t tmpfs -o mode=0755 tmpfs /run/systemd || skip_all "cannot mount a tmpfs"
mkdir -p /run/systemd/journal

# The journal: each datagram (native protocol, FIELD=value lines) as one JSON object a line.
python3 -u - /run/systemd/journal/socket "$T/journal.json" <<'PYEOF' &
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
        while True:
                d = s.recv(65536).decode("utf-8", "replace")
                e = {}
                for l in d.split("\n"):
                        if "=" in l:
                                k, v = l.split("=", 1)
                                e[k] = v
                f.write(json.dumps(e) + "\n")
                f.flush()
PYEOF
BG_PIDS+=($!)
wait_for 10 test -S /run/systemd/journal/socket || bail "the journal socket did not appear"

HOST=host1.example.com
SECRET=delivery-log-secret-5f1c
make_pki
kwd_init
kwd_start
ALICE=$(kwd_token alice) || bail "cannot mint a token"
r=$(req none "0u$ALICE" POST /v0/keys/ -d id=db:password --data-urlencode "data=$(printf '%s' "$SECRET" | base64 -w0)" \
        --data-urlencode 'acl=[{"type":"Machine","id":"'$HOST'","access":"Read"}]')
expect "a key this machine may read" "$r" 200 0 ""

bus_start
: >"$T/agent.log"
AGENT_ENV=(JOURNAL_STREAM="$(stat -c '%d:%i' "$T/agent.log")")
agent_start
check "the agent is on the bus" wait_for 10 busctl --system status "$DEST"
CG_UNIT=kwtest-delivery-$$.service
busctl --system call "$DEST" "$OBJ" "$IFACE" Register 'sa{sv}' db:password 2 units as 1 "$CG_UNIT" credential s db >/dev/null ||
        bail "cannot register db:password"
check "GetKey hands out the key" wait_for 10 bash -c "busctl --system call $DEST $OBJ $IFACE GetKey s db:password >/dev/null"
busctl --system call "$DEST" "$OBJ" "$IFACE" GetKeyVersions s db:password >/dev/null
delivered() { [ "$(grep -c '"KEYWARD_METHOD": "GetKeyVersions"' "$T/journal.json")" -ge 1 ]; }
check "the deliveries reach the journal" wait_for 10 delivered

tcheck "each delivery is an entry with its MESSAGE_ID and structured fields" python3 - "$T/journal.json" <<'PYEOF'
import json, sys
es = [json.loads(l) for l in open(sys.argv[1])]
ds = [e for e in es if e.get("MESSAGE_ID") == "5b8e2f0c41d34a7a9f6c3e1d2b7a8c90"]
assert ds, es[-5:]
methods = set()
for e in ds:
        assert e["KEYWARD_KEY_ID"] == "db:password", e
        assert e["KEYWARD_CALLER_UID"] == "0", e
        assert int(e["KEYWARD_CALLER_PID"]) > 0, e
        assert int(e["KEYWARD_KEY_VERSION"]) > 0, e
        assert e["KEYWARD_RESULT"] == "delivered", e
        assert e["SYSLOG_IDENTIFIER"] == "keyward-agent" and e["PRIORITY"] == "6", e
        assert "db:password" in e["MESSAGE"], e
        methods.add(e["KEYWARD_METHOD"])
assert methods == {"GetKey", "GetKeyVersions"}, methods
PYEOF

# ---- the credential socket ---------------------------------------------------------------
# ask ADDRESS OUT: connect to the credential socket from "\0ADDRESS", as systemd does, and
# save what the agent wrote in OUT.
credential_ask_py "$T/ask.py"
ask() { python3 "$T/ask.py" "$1" "$T/run/credential.sock" "$2"; }
# in_unit ADDRESS OUT: ask from a process in $CG_UNIT's cgroups; its pid in $T/unit.pid.
in_unit() {
        bash -c 'p=$1 a=$2 o=$3 t=$4; shift 4
                for d; do echo $$ >"$d/cgroup.procs" || exit 1; done
                echo $$ >"$p"
                exec python3 "$t/ask.py" "$a" "$t/run/credential.sock" "$o"' _ "$T/unit.pid" "$1" "$2" "$T" \
                "${CG_UNIT_DIRS[@]}"
}
# The hierarchies sd_pid_get_unit() may read (systemd's named v1 one, the hybrid and the
# unified v2 ones): a cgroup of the unit's name in each that takes processes.
CG_UNIT_DIRS=()
for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
        [ -e "$h/cgroup.procs" ] || continue
        if [ ! -d "$h/kwtest.slice" ]; then
                mkdir "$h/kwtest.slice" 2>/dev/null || continue
                CG_DIRS+=("$h/kwtest.slice")
        fi
        mkdir "$h/kwtest.slice/$CG_UNIT" 2>/dev/null || continue
        CG_DIRS+=("$h/kwtest.slice/$CG_UNIT")
        CG_UNIT_DIRS+=("$h/kwtest.slice/$CG_UNIT")
done
# unit_of_child: the unit sd_pid_get_unit() finds for a process placed in those cgroups.
unit_of_child() {
        bash -c 'for d; do echo $$ >"$d/cgroup.procs" || exit 1; done
                exec python3 -c "
import ctypes, os
p = ctypes.c_char_p()
r = ctypes.CDLL(\"libsystemd.so.0\").sd_pid_get_unit(os.getpid(), ctypes.byref(p))
print(p.value.decode() if r >= 0 else \"\")"' _ "${CG_UNIT_DIRS[@]}" 2>/dev/null
}
CRED_ID=8d2f6b1a09c44e7d95e3a7c0b4d1f268 # MESSAGE_ID_CREDENTIAL in agent/agent-read.h
if [ "${#CG_UNIT_DIRS[@]}" -gt 0 ] && [ "$(unit_of_child)" = "$CG_UNIT" ]; then
        VERSION=$(busctl --system call "$DEST" "$OBJ" "$IFACE" GetKey s db:password | awk '{print $NF}')
        in_unit "1a2b3c/unit/$CG_UNIT/db" "$T/cred.out"
        is "a process of $CG_UNIT gets db:password as credential 'db'" "$(cat "$T/cred.out")" "$SECRET"
        UNIT_PID=$(cat "$T/unit.pid")
        in_unit "1a2b3d/unit/$CG_UNIT/db.json" "$T/cred.json"
        like "and as credential 'db.json', the version set" "$(cat "$T/cred.json")" '"versions"'
        in_unit "1a2b3e/unit/$CG_UNIT/nosuch" "$T/cred.none"
        is "a name not registered for the unit gets nothing" "$(cat "$T/cred.none")" ""
        ask "1a2b3f/unit/$CG_UNIT/db" "$T/cred.forged"
        is "a process outside the unit that names it gets nothing" "$(cat "$T/cred.forged")" ""
        ask not-systemd "$T/cred.notsd"
        logged() { [ "$(grep -c "\"MESSAGE_ID\": \"$CRED_ID\"" "$T/journal.json")" -ge 5 ]; }
        check "the credential deliveries and refusals reach the journal" wait_for 10 logged

        tcheck "a credential delivery is an entry with its MESSAGE_ID and fields" python3 - "$T/journal.json" \
                "$CRED_ID" "$CG_UNIT" "$UNIT_PID" "$VERSION" <<'PYEOF'
import json, sys
mid, unit, pid, version = sys.argv[2:6]
es = [json.loads(l) for l in open(sys.argv[1])]
ds = [e for e in es if e.get("MESSAGE_ID") == mid and e.get("KEYWARD_RESULT") == "delivered"]
assert len(ds) == 2, ds
for e in ds:
        assert e["KEYWARD_KEY_ID"] == "db:password", e
        assert e["KEYWARD_KEY_VERSION"] == version, (e, version)
        assert e["KEYWARD_CALLER_UID"] == "0", e
        assert int(e["KEYWARD_CALLER_PID"]) > 0, e
        assert e["KEYWARD_UNIT"] == unit, e
        assert e["KEYWARD_METHOD"] == "credential", e
        assert e["SYSLOG_IDENTIFIER"] == "keyward-agent" and e["PRIORITY"] == "6", e
        assert unit in e["MESSAGE"] and "db:password" in e["MESSAGE"], e
assert ds[0]["KEYWARD_CALLER_PID"] == pid, (ds[0], pid)
assert sorted(e["KEYWARD_CREDENTIAL"] for e in ds) == ["db", "db.json"], ds
PYEOF
        tcheck "each refusal is a warning with the credential MESSAGE_ID, the unit and the reason" python3 - \
                "$T/journal.json" "$CRED_ID" "$CG_UNIT" <<'PYEOF'
import json, sys
mid, unit = sys.argv[2:4]
es = [json.loads(l) for l in open(sys.argv[1])]
rs = [e for e in es if e.get("MESSAGE_ID") == mid and e.get("KEYWARD_RESULT") != "delivered"]
assert len(rs) == 3, rs
for e in rs:
        assert e["PRIORITY"] == "4" and e["SYSLOG_IDENTIFIER"] == "keyward-agent", e
msgs = [e["MESSAGE"] for e in rs]
assert "Refused credential 'nosuch' to unit %s: no key is registered for this unit under this name." % unit in msgs, msgs
assert any(m.startswith("Refused credential 'db' to unit %s: the peer (pid " % unit) for m in msgs), msgs
assert any("the peer is not systemd asking" in m for m in msgs), msgs
PYEOF
        tcheck \
                "each refusal names its unit, credential and result in fields" python3 - "$T/journal.json" \
                "$CRED_ID" "$CG_UNIT" <<'PYEOF'
import json, sys
mid, unit = sys.argv[2:4]
es = [json.loads(l) for l in open(sys.argv[1])]
rs = [e for e in es if e.get("MESSAGE_ID") == mid and e.get("PRIORITY") == "4" and "not systemd asking" not in e["MESSAGE"]]
assert len(rs) == 2, rs
for e in rs:
        assert e.get("KEYWARD_UNIT") == unit and e.get("KEYWARD_CREDENTIAL") in ("db", "nosuch"), e
        assert e.get("KEYWARD_METHOD") == "credential" and e.get("KEYWARD_RESULT") == "refused", e
        assert int(e.get("KEYWARD_CALLER_PID", "0")) > 0 and e.get("KEYWARD_CALLER_UID") == "0", e
PYEOF
else
        for t in "a process of its unit gets the credential" "and as JSON" "a name not registered is refused" \
                "a forger is refused" "the credential deliveries and refusals reach the journal" \
                "a credential delivery's fields" "each refusal's message" "each refusal's fields"; do
                skip "$t" "no cgroup that sd_pid_get_unit() reads as a unit could be made"
        done
fi

if grep -q -e "$SECRET" -e "$(printf '%s' "$SECRET" | base64 -w0)" "$T/journal.json" "$T/agent.log"; then
        not_ok "no key data in the journal or the agent's stderr"
else
        ok "no key data in the journal or the agent's stderr"
fi
agent_stop

done_testing
