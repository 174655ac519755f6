#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent --metrics-file: the agent's figures in Prometheus' text format, where
# node_exporter's textfile collector reads them. The file is checked with a parser of the
# exposition format (prom-check.py: HELP and TYPE lines, names, label escaping, one family's
# samples together), its mode, that it is replaced whole, that it follows the agent (keys,
# fetch and cache failures, servers coming and going, credential refusals, D-Bus denials),
# that it names no key and holds no key data, and that it goes when the agent stops.

. "$(dirname "$0")/lib.sh"

[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"
CHECK="python3 $KEYWARD_TOP_SRCDIR/tests/integration/prom-check.py"

HOST=host1.example.com

make_pki
kwd_init
kwd_start --max-body-size 16M # for the key too large for a cache file below
ADMIN=$(kwd_token admin) || bail "cannot mint a token"
GRANT='[{"type":"Machine","id":"'$HOST'","access":"Read"}]'
r=$(req none "0u$ADMIN" POST /v0/keys/ -d id=db_password --data-urlencode "data=$(printf hunter2 | base64 -w0)" \
        --data-urlencode "acl=$GRANT")
expect "create db_password" "$r" 200 0 ""

bus_start

# A path that is not absolute is refused at start.
agent_args --metrics-file keyward.prom
"$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>"$T/bad.log"
is "a relative --metrics-file stops the start (exit 1)" "$?" 1
check "and says why" grep -q "Invalid --metrics-file 'keyward.prom'" "$T/bad.log"

# A second server that never answers, with a quote and a backslash in its URL, which the
# label must escape.
ODD='https://127.0.0.1:1/a"b\c'
# Its directory does not exist yet: the agent says so and goes on.
M=$T/prom/keyward.prom
agent_start --server "$KWD_URL" --server "$ODD" --metrics-file "$M" --retry-max 1s --log-level debug
check "the agent is on the bus" wait_for 10 bus status "$DEST"
check "a metrics directory that does not exist is logged" wait_for 10 \
        grep -q "Cannot write the metrics file '$M', will retry: No such file or directory" "$T/agent.log"
mkdir "$T/prom"
check "Register db_password" call Register 'sa{sv}' db_password 1 units as 1 demo.service
check "once the directory exists, the next change writes the file" wait_for 10 test -s "$M"
is "it is 0644" "$(stat -c %a "$M")" 644

# m QUERY...: the values of samples in the file, which must parse.
m() { $CHECK "$M" "$@"; }
# m_is QUERY WANT: wait until the sample has that value.
m_is() { [ "$(m "$1" 2>/dev/null)" = "$2" ]; }
tcheck "the file is valid exposition format" m
check "the server answered: connected" wait_for 10 m_is keyward_agent_connected 1
check "the server is up" wait_for 10 m_is "keyward_agent_server_up{server=\"$KWD_URL\"}" 1
is "the odd server's URL is a label, escaped" "$(m "keyward_agent_server_up{server=\"https://127.0.0.1:1/a\\\"b\\\\c\"}" 2>&1)" 0
is "one key registered" "$(m keyward_agent_keys_registered)" 1

check "Register a key the server does not have" call Register 'sa{sv}' no_such_key 0
check "the figures follow: 2 registered" wait_for 10 m_is keyward_agent_keys_registered 2
check "1 cached" wait_for 10 m_is keyward_agent_keys_cached 1
check "1 unavailable" wait_for 10 m_is keyward_agent_keys_unavailable 1
check "1 missing on the server" wait_for 10 m_is 'keyward_agent_keys{state="missing"}' 1
check "1 ok" wait_for 10 m_is 'keyward_agent_keys{state="ok"}' 1
check "the missing key's fetch counts as a failure" wait_for 10 bash -c "[ \"\$($CHECK '$M' keyward_agent_fetch_failures_total)\" -ge 1 ]"
ts=$(m "keyward_agent_server_last_success_timestamp_seconds{server=\"$KWD_URL\"}")
# recent TIME: a Unix time of the last hour.
recent() { python3 -c 'import sys, time; t = float(sys.argv[1]); sys.exit(not (time.time() - 3600 < t <= time.time() + 1))' "$1"; }
check "the server's last success is a Unix time (${ts:-none})" recent "${ts:-0}"
sync_ts=$(m keyward_agent_last_sync_timestamp_seconds)
check "so is the last sync (${sync_ts:-none})" recent "${sync_ts:-0}"
is "the odd server was never asked: last success 0" \
        "$(m "keyward_agent_server_last_success_timestamp_seconds{server=\"https://127.0.0.1:1/a\\\"b\\\\c\"}")" 0

# A key larger than a cache file may be (8 MiB): served from memory, a write failure.
head -c 9000000 /dev/urandom | base64 -w0 >"$T/big"
r=$(req none "0u$ADMIN" POST /v0/keys/ -d id=big_key --data-urlencode "data@$T/big" --data-urlencode "acl=$GRANT")
expect "create a key of 9 MB" "$r" 200 0 ""
check "Register it" call Register 'sa{sv}' big_key 0
check "its cache file could not be written: counted" \
        wait_for 30 bash -c "[ \"\$($CHECK '$M' keyward_agent_cache_write_failures_total)\" -ge 1 ]"
check "it is held in memory" wait_for 10 m_is keyward_agent_keys_held_in_memory 1

# A credential request from a process that is not the unit it names: refused and counted.
python3 - "$T/run/credential.sock" <<'PYEOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0" + "m1/unit/demo.service/db_password")
s.connect(sys.argv[1])
while s.recv(65536):
        pass
PYEOF
check "a refused credential request is counted" wait_for 10 m_is 'keyward_agent_credential_requests_total{result="refused"}' 1
is "none delivered" "$(m 'keyward_agent_credential_requests_total{result="delivered"}')" 0

if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
        setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
                timeout 10 busctl --system --timeout=8 call "$DEST" "$OBJ" "$IFACE" GetKey s db_password >/dev/null 2>&1
        check "a D-Bus read by a caller that is not a reader is counted" \
                wait_for 10 m_is 'keyward_agent_bus_denials_total{kind="read"}' 1
else
        ok "a D-Bus read by a caller that is not a reader is counted # SKIP needs root and setpriv"
fi

# The server goes away.
fails=$(m keyward_agent_sync_failures_total)
kwd_kill9
killed=$(date +%s.%N)
call Sync >/dev/null 2>&1
check "no server: not connected" wait_for 20 m_is keyward_agent_connected 0
check "the server is down" wait_for 20 m_is "keyward_agent_server_up{server=\"$KWD_URL\"}" 0
check "failed exchanges are counted" \
        wait_for 20 bash -c "[ \"\$($CHECK '$M' keyward_agent_sync_failures_total)\" -gt $fails ]"
ts=$(m "keyward_agent_server_last_success_timestamp_seconds{server=\"$KWD_URL\"}")
check "its last success is kept, from before it went ($ts <= $killed)" \
        python3 -c 'import sys; sys.exit(not (0 < float(sys.argv[1]) <= float(sys.argv[2])))' "${ts:-0}" "$killed"
is "the cached key is still counted as cached" "$(m keyward_agent_keys_cached)" 2
tcheck "the file is still valid exposition format" m
diag "the file now:"
sed 's/^/#   /' "$M"

is "no other file is left in the directory" "$(ls -A "$T/prom")" keyward.prom
if grep -q -e db_password -e no_such_key -e big_key -e hunter2 -e demo.service "$M"; then
        not_ok "the file names no key or unit and holds no key data"
else
        ok "the file names no key or unit and holds no key data"
fi

agent_stop
is "the agent stops" "$?" 0
check "and removes the file, so that a stopped agent does not look healthy" test ! -e "$M"

if grep -q -e hunter2 "$T/agent.log"; then
        not_ok "no key data in the agent's log"
else
        ok "no key data in the agent's log"
fi

done_testing
