#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What a fleet reconnecting to a restarted keywardd meets (issue 12). Its listening sockets
# queue as many connections as the kernel allows (net.core.somaxconn), not a fixed 1024 that
# drops the SYNs of a larger fleet. A TLS 1.3 client whose certificate the client CA issued
# itself resumes, with a ticket from before the restart, the session of a keywardd restarted
# with the same master key, and is still authenticated by its certificate there; a keywardd
# with another master key does not open that ticket. Checked with openssl s_client
# -sess_out/-sess_in, which says "Reused" or "New".

. "$(dirname "$0")/lib.sh"

# A CA that signs the server's and the machine's certificates itself (no intermediate).
P=$T/pki
mkdir -p "$P"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/ca.key" -out "$P/ca.pem" \
        -days 2 -subj /CN=keyward-resume-ca 2>/dev/null || bail "cannot make a CA"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$P/server.ext"
printf 'subjectAltName=DNS:host1.example.com\nextendedKeyUsage=clientAuth\n' >"$P/machine.ext"
for n in server machine; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/$n.key" -out "$P/$n.csr" \
                -subj "/CN=$n" 2>/dev/null &&
                openssl x509 -req -in "$P/$n.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
                        -extfile "$P/$n.ext" -out "$P/$n.pem" 2>/dev/null || bail "cannot make the $n certificate"
done

kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
kwd_start

# tls NAME [s_client options...]: one TLS 1.3 connection with the machine certificate that asks
# for the machine's view of the key list; its output in $T/NAME.out.
tls() {
        local name=$1
        shift
        printf 'GET /v0/keys/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: 0thost1.example.com\r\nConnection: close\r\n\r\n' |
                timeout "$(scaled 20)" openssl s_client -connect "$KWD_ADDR" -servername localhost -tls1_3 \
                        -CAfile "$P/ca.pem" -cert "$P/machine.pem" -key "$P/machine.key" -ign_eof "$@" \
                        >"$T/$name.out" 2>&1
}
session() { grep -Eo '^(New|Reused), TLSv1\.3' "$T/$1.out" | head -n1; }
# metrics: the running keywardd's /metrics; $T/reads counts these reads since its start (a
# full handshake each: a curl process has no session to offer).
metrics() {
        echo r >>"$T/reads"
        curl -sS --max-time "$(scaled 10)" --cacert "$P/ca.pem" "$KWD_URL/metrics"
}
reads() { if [ -f "$T/reads" ]; then wc -l <"$T/reads"; else echo 0; fi; }
# handshakes true|false: keyward_tls_handshakes_total{resumed=...} of the running keywardd.
handshakes() { metrics | awk -v l="keyward_tls_handshakes_total{resumed=\"$1\"}" '$1 == l { print $2 }'; }
status() { grep -Eo '^HTTP/1\.1 [0-9]+' "$T/$1.out" | head -n1; }

# ---- the accept queue ----------------------------------------------------------------------
# ss shows a listening socket's backlog in Send-Q.
if command -v ss >/dev/null; then
        somaxconn=$(cat /proc/sys/net/core/somaxconn)
        backlog=$(ss -Hltn "sport = :${KWD_ADDR##*:}" | awk '{ print $3 }' | sort -u)
        is "each listening socket queues net.core.somaxconn ($somaxconn) connections" "$backlog" "$somaxconn"
else
        skip "the listening sockets' backlog" "ss is not installed"
fi

# ---- resumption across a restart ----------------------------------------------------------
r=$(req none "0u$ALICE" POST /v0/keys/ -d id=resume:k --data-urlencode "data=$(printf v1 | base64)" \
        --data-urlencode 'acl=[{"type":"Machine","id":"host1.example.com","access":"Read"}]')
expect "a key the machine may read" "$r" 200 0 ""

tls first -sess_out "$T/s1.pem"
is "the first connection is a full handshake" "$(session first)" "New, TLSv1.3"
is "and is served" "$(status first)" "HTTP/1.1 200"
check "it left a session with a ticket" test -s "$T/s1.pem"

tls again -sess_in "$T/s1.pem" -sess_out "$T/s2.pem"
is "the same keywardd resumes it" "$(session again)" "Reused, TLSv1.3"
check "and hands out a fresh ticket" test -s "$T/s2.pem"

addr=$KWD_ADDR
kwd_stop
kwd_restart_at "$addr" || bail "keywardd did not come back"
KWD_ADDR=$addr
rm -f "$T/reads"

tls restarted -sess_in "$T/s2.pem" -sess_out "$T/s3.pem"
is "a restarted keywardd resumes a session from before its restart" "$(session restarted)" "Reused, TLSv1.3"
is "the resumed connection is authenticated by its certificate" "$(status restarted)" "HTTP/1.1 200"
like "the machine sees its key" "$(cat "$T/restarted.out")" '"resume:k"'
# Each metric read is itself a full handshake, counted before it is answered.
is "keyward_tls_handshakes_total counts the resumed one" "$(handshakes true)" 1
is "and the full ones of the metric reads" "$(handshakes false)" 2

# ---- the agent resumes its sessions after a restart ----------------------------------------
# keyward-agent watching the key (and comparing every key each second, from its other
# thread); keywardd restarted with the same master key on the same address: both of the
# agent's connections to the restarted keywardd resume the sessions they had before it, none
# is a full handshake. The test's own metric reads are the only full ones.
watching() { metrics | grep -qx 'keyward_watchers 1'; }
# agent_connections N: the agent has made at least N connections that asked something.
agent_connections() {
        local full
        full=$(handshakes false)
        [ -n "$full" ] && [ $((full - $(reads))) -ge "$1" ]
}
agent_resumed() { [ "$(handshakes true)" -ge "$1" ]; }
agent_section() {
        local full resumed
        bus_start
        agent_start --log-level debug --full-sync-interval 1s
        wait_for 10 busctl --system status "$DEST" || bail "the agent is not on the bus"
        timeout "$(scaled 10)" busctl --system call "$DEST" "$OBJ" "$IFACE" Register 'sa{sv}' resume:k 0 \
                >/dev/null || bail "cannot register resume:k"
        check "the agent holds a watch" wait_for 10 watching
        check "from its two threads, two connections" wait_for 10 agent_connections 2

        # Twice: a session resumed once must be resumable again (a client holding one
        # session resumes with it only once in TLS 1.3; it needs the fresh ticket each
        # resumption brings).
        for restart in first second; do
                kwd_stop
                kwd_restart_at "$addr" || bail "keywardd did not come back"
                rm -f "$T/reads"
                check "the agent's watch is back after the $restart restart" wait_for 20 watching
                check "both of the agent's threads came back, resuming their sessions" wait_for 10 agent_resumed 2
                resumed=$(handshakes true)
                full=$(handshakes false)
                is "the restarted keywardd made no full handshake for the agent ($resumed resumed)" "$full" "$(reads)"
        done
        agent_stop
}
if [ ! -x "$KEYWARD_AGENT" ]; then
        skip "the agent's resumption" "keyward-agent is not built"
elif ! command -v dbus-daemon >/dev/null || ! command -v busctl >/dev/null; then
        skip "the agent's resumption" "dbus-daemon or busctl is not installed"
else
        agent_section
fi

# Another master key: another ticket key, so a full handshake.
kwd_stop
KWD_DB=$T/other.db KWD_MASTER_KEY=$T/other.key kwd_init
KWD_DB=$T/other.db KWD_MASTER_KEY=$T/other.key kwd_restart_at "$addr" || bail "keywardd did not start again"
tls other -sess_in "$T/s3.pem"
is "a keywardd with another master key does not resume it" "$(session other)" "New, TLSv1.3"
is "and serves the connection after a full handshake" "$(status other)" "HTTP/1.1 200"
kwd_stop

done_testing
