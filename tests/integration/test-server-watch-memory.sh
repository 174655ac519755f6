#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What a held watch costs keywardd in memory. A few hundred machines each hold a watch on
# their own mutual-TLS connection, idle; keywardd's RSS growth per connection must stay under
# 32 KiB, some 1.2 times what it is (27 KiB a watch here and in bench/fleet, nearly all of it
# OpenSSL's per-connection state: see keywardd(8), "WATCHES AND LIMITS"). The bound is tight
# on purpose: connections that kept their TLS record buffers once idle (no
# SSL_MODE_RELEASE_BUFFERS) measured 36 KiB, as only the pages a buffer touched count. RSS
# figures mean nothing under AddressSanitizer: the bound is skipped there.

. "$(dirname "$0")/lib.sh"

N=300
WARM=20
BOUND_KIB=32

make_pki
kwd_init
kwd_start --workers 1 --max-connections 1000 --max-connections-per-address 0

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$KWD_PID/status"; }
metric() {
        curl -sS --max-time 10 --cacert "$T/pki/ca.pem" "$KWD_URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
watchers_are() { [ "$(metric keyward_watchers)" = "$1" ]; }
# idle: keywardd used less than 10 ms of CPU over the last half second.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$KWD_PID/stat"; }
idle() {
        local a b
        a=$(cpu_ticks)
        sleep 0.5
        b=$(cpu_ticks)
        [ $((b - a)) -le 1 ]
}

# hold COUNT FIFO: hold-watches.py with COUNT watches as the machine, fed from FIFO (it keeps
# them until the FIFO closes); its output in $T/hold-COUNT.out.
hold() {
        mkfifo "$2"
        python3 "$KEYWARD_TOP_SRCDIR/tests/integration/hold-watches.py" "${KWD_ADDR%:*}" "${KWD_ADDR##*:}" \
                "$T/pki/ca.pem" "$T/pki/machine.pem" "$T/pki/machine.key" host1.example.com \
                "memory:watched=$(printf '0%.0s' $(seq 64))" "$1" <"$2" >"$T/hold-$1.out" 2>&1 &
        BG_PIDS+=($!)
        exec {fd}>"$2"
        HOLD_FDS+=("$fd")
}
HOLD_FDS=()

# A few first, so that what keywardd sets up once (its caches, the first handshakes) is not
# counted; then the fleet.
hold "$WARM" "$T/warm.fifo"
check "$WARM watches are held" wait_for 30 watchers_are "$WARM"
wait_for 10 idle
BEFORE=$(rss_kb)
hold "$N" "$T/fleet.fifo"
check "$N more watches are held, each on its own connection" wait_for 60 watchers_are $((WARM + N))
check "every connection is open" test "$(metric keyward_open_connections)" -ge $((WARM + N))
check "keywardd goes idle with them held" wait_for 10 idle
AFTER=$(rss_kb)
PER=$(((AFTER - BEFORE) / N))
diag "RSS before ${BEFORE} kB, with $N more watches held ${AFTER} kB: ${PER} KiB per watch"
if kwd_has_asan; then
        skip "a held watch costs keywardd less than $BOUND_KIB KiB" "RSS under AddressSanitizer"
else
        check "a held watch costs keywardd less than $BOUND_KIB KiB (${PER} KiB)" test "$PER" -lt "$BOUND_KIB"
fi
is "no watch was answered while held" "$(grep -c '^answered' "$T/hold-$N.out")" 0

# The watches still work: a change to the key answers all of them.
ALICE=$(kwd_token alice) || bail "cannot mint a token"
r=$(req none "0u$ALICE" POST /v0/keys/ -d id=memory:watched -d data=aGk=)
expect "the watched key is created" "$r" 200 0 ""
answered() { [ "$(grep -c '^answered .* 200' "$T/hold-$N.out")" = "$N" ]; }
check "every held watch is answered 200 after the change" wait_for 30 answered

for fd in "${HOLD_FDS[@]}"; do exec {fd}>&-; done
kwd_stop
done_testing
