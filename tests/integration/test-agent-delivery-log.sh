#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent's delivery log under systemd: each key handed out over D-Bus is a journal entry
# with MESSAGE_ID and structured fields (KEYWARD_KEY_ID, KEYWARD_KEY_VERSION,
# KEYWARD_CALLER_UID, KEYWARD_CALLER_PID, KEYWARD_UNIT, KEYWARD_METHOD, KEYWARD_RESULT), so
# that journalctl KEYWARD_KEY_ID=ID lists who got a key; never the key's data. The journal is
# a datagram socket of the test's own at /run/systemd/journal/socket (root: a mount namespace
# with a tmpfs over /run/systemd), and JOURNAL_STREAM names the agent's stderr, as systemd
# does for a service whose output goes to the journal.

if [ -z "${KWD_AUDIT_NS:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
        KWD_AUDIT_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi

. "$(dirname "$0")/lib.sh"

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
busctl --system call "$DEST" "$OBJ" "$IFACE" Register 'sa{sv}' db:password 0 >/dev/null ||
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
if grep -q -e "$SECRET" -e "$(printf '%s' "$SECRET" | base64 -w0)" "$T/journal.json" "$T/agent.log"; then
        not_ok "no key data in the journal or the agent's stderr"
else
        ok "no key data in the journal or the agent's stderr"
fi
agent_stop

done_testing
