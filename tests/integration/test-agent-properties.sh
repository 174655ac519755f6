#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent's properties that dbus/org.keyward.Agent1.xml marks EmitsChangedSignal=true
# announce each change with org.freedesktop.DBus.Properties.PropertiesChanged, as sd-bus and
# GDBus clients that cache properties expect: Connected and LastSync when the agent reaches
# its server and when it loses it, KeyCount at each Register and Unregister, each with the
# value a Get then reads. LastSync is announced at most once a second: after a burst of
# fetches the last value announced must still catch up with the property (it did not: the
# change the limit held back was never announced). A listener (gdbus monitor) hears them on a private bus. With
# valgrind installed, the agent runs under it through many changes and must lose no memory
# (a bus message or slot left behind per change).

. "$(dirname "$0")/lib.sh"

need_tools dbus-daemon busctl
command -v gdbus >/dev/null || skip_all "gdbus is not installed (apt-get install libglib2.0-bin)"
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"

HOST=host1.example.com
GRANT='[{"type":"Machine","id":"'$HOST'","access":"Read"}]'

make_pki
kwd_init
kwd_start
ALICE=$(kwd_token alice) || bail "cannot mint a token"
for id in k1 k2; do
        r=$(req none "0u$ALICE" POST /v0/keys/ -d "id=$id" --data-urlencode "data=$(printf 's-%s' "$id" | base64 -w0)" \
                --data-urlencode "acl=$GRANT")
        expect "$id: a key this machine may read" "$r" 200 0 ""
done
ADDR=$KWD_ADDR
kwd_stop

# The agent under valgrind when it is there: no definite leak, or exit status 42.
VALGRIND=
if command -v valgrind >/dev/null && ! ldd "$KEYWARD_AGENT" | grep -q libasan; then
        VALGRIND=1
        cat >"$T/agent-vg" <<EOF
#!/bin/sh
exec valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
        --error-exitcode=42 --log-file="$T/valgrind.log" "$KEYWARD_AGENT" "\$@"
EOF
        chmod +x "$T/agent-vg"
        KEYWARD_AGENT=$T/agent-vg
fi

# The agent starts with its server away: Connected is false.
bus_start
agent_start --metrics-file "$T/agent.prom"
call() { timeout "$(scaled 30)" busctl --system --timeout="$(scaled 25)" call "$DEST" "$OBJ" "$IFACE" "$@"; }
get() { timeout "$(scaled 30)" busctl --system --timeout="$(scaled 25)" get-property "$DEST" "$OBJ" "$IFACE" "$1"; }
check "the agent is on the bus" wait_for 60 busctl --system status "$DEST"
is "Connected is false while the server is away" "$(get Connected)" "b false"

gdbus monitor --system --dest "$DEST" >"$T/heard" 2>&1 &
BG_PIDS+=("$!")
check "a listener" wait_for 10 grep -q "is owned by" "$T/heard"
heard() { grep -q "$1" "$T/heard"; }

# The server comes back where the agent expects it.
kwd_restart_at "$ADDR" || bail "keywardd did not start again at $ADDR"
check "Sync succeeds once the server is back" wait_for 60 call Sync
check "PropertiesChanged says Connected is true" wait_for 20 heard "'Connected': <true>"
check "PropertiesChanged carries LastSync" wait_for 20 heard "'LastSync': <uint64 [1-9]"
is "Get Connected agrees" "$(get Connected)" "b true"
last=$(grep -o "'LastSync': <uint64 [0-9]*>" "$T/heard" | tail -n1 | grep -o '[0-9]*>' | tr -d '>')
now=$(get LastSync | cut -d' ' -f2)
check "the LastSync announced ($last) is the one Get reads, or an earlier one ($now)" [ -n "$last" ] && [ "$last" -le "$now" ] && [ "$last" -gt 0 ]

# KeyCount, at each change.
call Register 'sa{sv}' k1 0 >/dev/null
check "Register k1: PropertiesChanged KeyCount 1" wait_for 20 heard "'KeyCount': <uint32 1>"
call Register 'sa{sv}' k2 0 >/dev/null
check "Register k2: PropertiesChanged KeyCount 2" wait_for 20 heard "'KeyCount': <uint32 2>"
is "Get KeyCount agrees" "$(get KeyCount)" "u 2"
call Unregister s k1 >/dev/null
check "Unregister k1: KeyCount goes back to 1" wait_for 20 bash -c \
        "grep -o \"'KeyCount': <uint32 [0-9]*>\" '$T/heard' | tail -n1 | grep -q 'uint32 1>'"

# The metrics file follows KeyCount too (at most a second behind).
metric_is() { [ "$(awk -v n="$1" '$1 == n {print $2}' "$T/agent.prom" 2>/dev/null)" = "$2" ]; }
check "Unregister k1: the metrics file says keyward_agent_keys_registered 1" wait_for 10 \
        metric_is keyward_agent_keys_registered 1

# Many changes, for the leak check.
for i in $(seq 25); do
        call Register 'sa{sv}' k1 0 >/dev/null
        call Unregister s k1 >/dev/null
done
n=$(grep -c "'KeyCount'" "$T/heard")
check "each of the 50 changes after was announced ($n KeyCount signals)" wait_for 20 bash -c \
        "[ \$(grep -c \"'KeyCount'\" '$T/heard') -ge 53 ]"

# LastSync moved with each fetch; the last value announced must catch up with what Get
# reads (a client that caches properties would else keep an older time for good).
announced() { grep -o "'LastSync': <uint64 [0-9]*>" "$T/heard" | tail -n1 | sed 's/.*uint64 //; s/>//'; }
caught_up() { [ "$(announced)" = "$(get LastSync | cut -d' ' -f2)" ]; }
check "the last LastSync announced is the one Get reads" wait_for 10 caught_up
diag "announced $(announced), Get reads $(get LastSync)"
is "Get KeyCount says 1 after them" "$(get KeyCount)" "u 1"
check "and so does the metrics file" wait_for 10 metric_is keyward_agent_keys_registered 1

# The server goes away again: Connected false.
kwd_stop
check "PropertiesChanged says Connected is false when the server is gone" wait_for 60 heard "'Connected': <false>"
is "Get Connected agrees" "$(get Connected)" "b false"

agent_stop 60
rc=$?
if [ -n "$VALGRIND" ]; then
        is "the agent stops cleanly under valgrind, with no definite leak (exit 0, not 42)" "$rc" 0
        [ -s "$T/valgrind.log" ] && sed 's/^/# /' "$T/valgrind.log" | head -n 60
else
        skip "no definite leak under valgrind" "valgrind is not installed (or the agent is built with ASan)"
fi

done_testing
