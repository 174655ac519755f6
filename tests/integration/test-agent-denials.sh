#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent's answers to callers that may not read a key, on a private bus with a real
# keywardd behind the agent: a caller that is neither root nor a reader gets one answer
# whether or not the key is registered here (so it cannot probe the registry), the refusals
# it causes are logged at a bounded rate with a count of the rest, and a key id holding
# control characters cannot split or forge a log line; a listening socket the agent cannot
# accept from (no file descriptors left) does not take its main loop. Needs root (to call as
# other uids).

. "$(dirname "$0")/lib.sh"


[ "$(id -u)" -eq 0 ] || skip_all "needs root to call the agent as other uids"
need_tools dbus-daemon dbus-send busctl setpriv
id nobody >/dev/null 2>&1 && id daemon >/dev/null 2>&1 || skip_all "needs the users nobody and daemon"
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"

HOST=host1.example.com

make_pki
kwd_init
kwd_start
ALICE=$(kwd_token alice) || bail "cannot mint a token"
r=$(req none "0u$ALICE" POST /v0/keys/ -d id=k1 --data-urlencode "data=$(printf 'first' | base64 -w0)" \
        --data-urlencode 'acl=[{"type":"Machine","id":"'$HOST'","access":"Read"}]')
expect "a key this machine may read" "$r" 200 0 ""

bus_start
agent_start --log-level debug
check "the agent is on the bus" wait_for 10 busctl --system status "$DEST"

# call AS METHOD ID: the error name and message (or the reply), as dbus-send prints them.
call() {
        local as=$1 method=$2 id=$3
        local run=()
        [ "$as" != root ] && run=(setpriv --reuid="$as" --regid="$(id -g "$as")" --clear-groups)
        "${run[@]}" timeout 10 dbus-send --system --print-reply --reply-timeout=8000 --dest="$DEST" "$OBJ" \
                "$IFACE.$method" "string:$id" 2>&1
}
# same ID: what a caller gets, with the id it asked for taken out.
strip_id() { printf '%s' "${2//"$1"/ID}"; }

busctl --system call "$DEST" "$OBJ" "$IFACE" Register 'sa{sv}' k1 1 readers as 1 user:daemon >/dev/null ||
        bail "cannot register k1"
check "k1 is cached" wait_for 10 bash -c "busctl --system call $DEST $OBJ $IFACE GetKey s k1"

# ---- one answer for registered and unknown keys ------------------------------------------------
N_REFUSED=0
for method in GetKey GetKeyVersions; do
        reg=$(call nobody "$method" k1)
        unknown=$(call nobody "$method" k_unknown)
        N_REFUSED=$((N_REFUSED + 3)) # nobody twice, daemon once
        like "$method as nobody of a registered key: AccessDenied" "$reg" \
                "^Error org\.keyward\.Agent1\.Error\.AccessDenied: uid 65534 may not read key 'k1' on this host\.$"
        is "$method as nobody: an unknown key gets the same answer" \
                "$(strip_id k_unknown "$unknown")" "$(strip_id k1 "$reg")"
        # A reader of one key is no reader of another: the same answer there too.
        unknown=$(call daemon "$method" k_unknown)
        like "$method as a reader of k1, of an unknown key: AccessDenied" "$unknown" \
                "^Error org\.keyward\.Agent1\.Error\.AccessDenied: uid 1 may not read key 'k_unknown'"
        like "$method as root of an unknown key: NotRegistered" "$(call root "$method" k_unknown)" \
                "^Error org\.keyward\.Agent1\.Error\.NotRegistered:"
done
like "GetKey as the reader daemon: the key" "$(call daemon GetKey k1)" "method return"

# ---- names from callers are escaped in the log ---------------------------------------------------
NL=$'\n'
out=$(call nobody GetKey "evil${NL}keyward-agent: Delivered key 'k1' to uid 0")
N_REFUSED=$((N_REFUSED + 1))
like "a key id with a newline: AccessDenied" "$out" "AccessDenied"
check "the refusal is logged on one line, the newline escaped" \
        grep -qF "Refused GetKey of key 'evil\\x0akeyward-agent: Delivered key \\x27k1\\x27 to uid 0' to uid 65534" "$T/agent.log"
check "no forged line" bash -c "! grep -q '^keyward-agent: Delivered key .k1. to uid 0' '$T/agent.log'"

# A credential name from the socket's peer address, refused: escaped as well.
check "the agent serves credentials" test -S "$T/run/credential.sock"
python3 - "$T/run/credential.sock" <<'PYEOF'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0" + os.urandom(8).hex() + "/unit/evil.service/cred\nkeyward-agent: Delivered key 'k1'")
s.connect(sys.argv[1])
s.settimeout(10)
s.recv(4096)
PYEOF
check "a refused credential name is logged on one line, escaped" \
        grep -qF "Refused credential 'cred\x0akeyward-agent: Delivered key \x27k1\x27' to unit evil.service" "$T/agent.log"
check "no forged line" bash -c "! grep -q '^keyward-agent: Delivered key .k1.\$' '$T/agent.log'"

# ---- refusals are logged at a bounded rate -------------------------------------------------------
for i in $(seq 100); do
        call nobody GetKey k1 >/dev/null
done
N_REFUSED=$((N_REFUSED + 100))
lines=$(grep -c "Refused GetKey.* to uid 65534" "$T/agent.log")
diag "refusal lines after $N_REFUSED refusals: $lines"
check "100 refusals more do not write 100 lines more" test "$lines" -lt 50

# ---- a socket that cannot be drained does not take the main loop -------------------------------
# With no file descriptor left, accept() fails and the connection stays queued: the listening
# socket stays readable. The agent must not spin on it, and must say why it does not accept.
if command -v prlimit >/dev/null; then
        cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
        soft=$(awk '/^Max open files/ { print $4 }' "/proc/$AGENT_PID/limits")
        # The lowest free descriptor, which the next accept() would take: the limit goes there.
        free=$(ls "/proc/$AGENT_PID/fd" | sort -n | awk '$1 != NR - 1 { print NR - 1; found = 1; exit } END { if (!found) print NR }')
        # The soft limit only: raising a hard limit back needs CAP_SYS_RESOURCE.
        prlimit --pid "$AGENT_PID" --nofile="$free:"
        python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
time.sleep(float(sys.argv[2]))
' "$T/run/pam.sock" "$(scaled 6)" &
        HOLDER=$!
        sleep 1
        before=$(cpu_ticks "$AGENT_PID") t0=$(date +%s%N)
        sleep "$(scaled 3)"
        after=$(cpu_ticks "$AGENT_PID") t1=$(date +%s%N)
        used=$((after - before)) wall=$(((t1 - t0) / 10000000)) # both in 1/100 s
        diag "out of fds with a connection queued: $used of $wall ticks of CPU"
        check "the agent does not spin on a socket it cannot accept from" test $((used * 10)) -lt "$wall"
        prlimit --pid "$AGENT_PID" --nofile="$soft:"
        check "it says why it does not accept" grep -q "Cannot accept a connection on the PAM socket: Too many open files" "$T/agent.log"
        n=$(grep -c "Cannot accept a connection" "$T/agent.log")
        check "and says it a bounded number of times ($n)" test "$n" -le 3
        python3 - "$T/run/credential.sock" <<'PYEOF'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0" + os.urandom(8).hex() + "/unit/after.service/cred")
s.connect(sys.argv[1])
s.settimeout(10)
s.recv(4096)
PYEOF
        check "with descriptors back, connections are accepted again" \
                grep -q "Refused credential 'cred' to unit after.service" "$T/agent.log"
        like "D-Bus answers meanwhile" "$(call root GetKey k1)" "method return"
        wait "$HOLDER"
fi

# The count of what was left out is told when the interval ends, or when the agent stops.
agent_stop
is "the agent stops cleanly" "$?" 0
check "the rest are told as one count" grep -q "more suppressed" "$T/agent.log"
told=$(grep -c "Refused \(GetKey\|GetKeyVersions\) of key" "$T/agent.log")
suppressed=$(sed -n 's/.*Refused calls to read keys: \([0-9]*\) more suppressed\..*/\1/p' "$T/agent.log" |
        awk '{ n += $1 } END { print n + 0 }')
is "logged and suppressed refusals add up to every refusal" "$((told + suppressed))" "$N_REFUSED"

done_testing
