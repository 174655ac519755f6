#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A client that dies while its watches wait: keywardd lets go of them (the watches, their
# connections, their TLS state) when the client's end closes, not when the watches' time is up
# (Prefer: wait=300 here), and leaves no socket in CLOSE_WAIT. The watches of a client that
# lives on are not touched, and a change still answers them.

. "$(dirname "$0")/lib.sh"

DEAD=40
LIVE=10

make_pki
kwd_init
kwd_start --workers 1 --max-connections-per-address 0

metric() {
        curl -sS --max-time 10 --cacert "$T/pki/ca.pem" "$KWD_URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
watchers_are() { [ "$(metric keyward_watchers)" = "$1" ]; }
# close_wait: keywardd's sockets in CLOSE_WAIT on its port.
close_wait() { ss -Htn state close-wait "( sport = :${KWD_ADDR##*:} )" | wc -l; }

# hold COUNT NAME: hold-watches.py with COUNT watches, fed from a FIFO (it keeps them until the
# FIFO closes or it is killed); its pid in HOLD_PID, its output in $T/NAME.out.
hold() {
        mkfifo "$T/$2.fifo"
        python3 "$KEYWARD_TOP_SRCDIR/tests/integration/hold-watches.py" "${KWD_ADDR%:*}" "${KWD_ADDR##*:}" \
                "$T/pki/ca.pem" "$T/pki/machine.pem" "$T/pki/machine.key" host1.example.com \
                "dead:watched=$(printf '0%.0s' $(seq 64))" "$1" <"$T/$2.fifo" >"$T/$2.out" 2>&1 &
        HOLD_PID=$!
        BG_PIDS+=("$HOLD_PID")
        exec {fd}>"$T/$2.fifo"
}

hold "$LIVE" live
check "$LIVE watches of a client that lives on are held" wait_for 30 watchers_are "$LIVE"
hold "$DEAD" dead
check "$DEAD more watches are held" wait_for 60 watchers_are $((LIVE + DEAD))

kill -9 "$HOLD_PID"
check "the dead client's watches are let go at once, not after their 300 s" wait_for 20 watchers_are "$LIVE"
is "no socket of keywardd is left in CLOSE_WAIT" "$(close_wait)" 0
# The live client's and the metrics request's own.
conns_down() { [ "$(metric keyward_open_connections)" -le $((LIVE + 1)) ]; }
check "keywardd counts their connections closed" wait_for 20 conns_down
is "none of the live client's watches was answered meanwhile" "$(grep -c '^answered' "$T/live.out")" 0

# The live watches still work: a change answers all of them.
ALICE=$(kwd_token alice) || bail "cannot mint a token"
r=$(req none "0u$ALICE" POST /v0/keys/ -d id=dead:watched -d data=aGk=)
expect "the watched key is created" "$r" 200 0 ""
answered() { [ "$(grep -c '^answered .* 200' "$T/live.out")" = "$LIVE" ]; }
check "every live watch is answered 200 after the change" wait_for 30 answered

kwd_stop
done_testing
