#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Two keywardd on one PostgreSQL learn of each other's writes through LISTEN/NOTIFY, and
# poll the change counter only as a fallback. B polls once an hour here, so whatever B
# learns within a few seconds it learned from a notification: a watch on B answers a write
# on A, and a principal whose ACL entry A revoked is refused by B (whose cached copy of the
# key is dropped). A polls every second: with its listening connection killed and the
# database refusing new ones, A still learns of B's writes by polling; once connections
# are allowed again, A listens again and B does too after its own connection was killed.

. "$(dirname "$0")/lib.sh"

pg_start
export KWD_DB=$PG_URL
make_pki
kwd_init
kwd_start --poll-interval 1s
A_URL=$KWD_URL
"$KEYWARDD" serve --listen 127.0.0.1:0 --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key" \
        --client-ca "$T/pki/ca.pem" --db "$PG_URL" --master-key "$T/master.key" \
        --audit-log "$T/audit-b.log" --ready-file "$T/ready-b" --workers 2 --hostname testhost-b \
        --poll-interval 1h 2>>"$T/keywardd-b.log" &
B_PID=$!
BG_PIDS+=("$B_PID")
for _ in $(seq $((100 * KW_TEST_TIMEOUT_FACTOR))); do [ -s "$T/ready-b" ] && break; sleep 0.05; done
[ -s "$T/ready-b" ] || { cat "$T/keywardd-b.log" >&2; bail "the second keywardd did not start"; }
B_URL="https://$(head -n1 "$T/ready-b")"
on() { # A|B, then req's arguments
        local url=$A_URL
        [ "$1" = B ] && url=$B_URL
        shift
        KWD_URL=$url req "$@"
}
# sql STATEMENT: run as PostgreSQL's superuser, in the "postgres" database (the test closes
# "keyward" to new connections for a while).
sql() { psql -h 127.0.0.1 -p "$PG_PORT" -U keyward -Atc "$1" postgres; }
# listeners PID: how many of that keywardd's listening connections are up (LISTEN done),
# its backends told apart from the other keywardd's by their client ports.
listeners() {
        sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'keywardd-listen'
             AND state = 'idle' AND query LIKE 'LISTEN%' AND client_port IN ($(client_ports "$1"))"
}
# client_ports PID: the local ports of that process's TCP connections to PostgreSQL.
client_ports() {
        local ports
        ports=$(ss -Htnp state established "( dport = :$PG_PORT )" 2>/dev/null |
                awk -v pid="pid=$1," 'index($0, pid) { n = split($3, a, ":"); print a[n] }' | paste -sd,)
        echo "${ports:-0}"
}
listening_workers() { # PID N: that keywardd has N listening connections
        [ "$(listeners "$1")" = "$2" ]
}

ADMIN=$(kwd_token admin) || bail "cannot mint a token"
BOB=$(kwd_token bob) || bail "cannot mint a token"
check "A listens on a connection per worker" wait_for 10 listening_workers "$KWD_PID" 2
check "B too" wait_for 10 listening_workers "$B_PID" 2

r=$(on A none "0u$ADMIN" POST /v0/keys/ -d id=nk --data-urlencode "data=$(b64 first)")
expect "create through A" "$r" 200 0 ""
r=$(on A none "0u$ADMIN" PUT /v0/keys/nk/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"Read"}')
expect "A grants bob Read" "$r" 200 0 ""
# B's poll is an hour away: only a notification tells B. Read as bob on both workers (each
# request goes to either), so that B's caches hold the key with bob's entry.
bob_reads_on_b() {
        local i
        for i in 1 2 3 4; do
                [ "$(on B none "0u$BOB" GET /v0/keys/nk/ | cut -d' ' -f1)" = 200 ] || return 1
        done
}
check "B serves bob" wait_for 10 bob_reads_on_b

# Revoke on A: B must refuse bob, its cached copies dropped by the notification.
r=$(on A none "0u$ADMIN" PUT /v0/keys/nk/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"None"}')
expect "A revokes bob's entry" "$r" 200 0 ""
bob_refused_on_b() {
        local i
        for i in 1 2 3 4; do
                [ "$(on B none "0u$BOB" GET /v0/keys/nk/ | cut -d' ' -f1)" = 403 ] || return 1
        done
}
check "B refuses bob after A revoked him (notification)" wait_for 5 bob_refused_on_b
r=$(on B none "0u$BOB" GET /v0/keys/nk/)
expect "B's refusal is Knox's unauthorized" "$r" 403 6

# Watches on B answer writes on A: the time from A's answer to B's is printed (a figure,
# not a check: watch-latency.py times it in one process).
out=$(python3 "$KEYWARD_TOP_SRCDIR/tests/integration/watch-latency.py" "$T/pki/ca.pem" "$ADMIN" \
        "$A_URL" "$B_URL" nk 50 2>&1)
is "50 watches on B answered 50 writes on A (notifications)" "$?" 0
diag "write acknowledged by A -> watch answered by B, ms: $out"

# ---- the fallback: A's listening connections killed, and no new ones allowed ------------
sql "ALTER DATABASE keyward ALLOW_CONNECTIONS false" >/dev/null
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'keywardd-listen'
     AND client_port IN ($(client_ports "$KWD_PID"))" >/dev/null
check "A's listening connections are gone" wait_for 10 listening_workers "$KWD_PID" 0
r=$(on B none "0u$ADMIN" PUT /v0/keys/nk/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"Read"}')
expect "B grants bob Read again" "$r" 200 0 ""
bob_reads_on_a() {
        local i
        for i in 1 2 3 4; do
                [ "$(on A none "0u$BOB" GET /v0/keys/nk/ | cut -d' ' -f1)" = 200 ] || return 1
        done
}
check "A learns of B's write by polling while it cannot listen" wait_for 10 bob_reads_on_a
like "A says it fell back to polling" "$(cat "$T/keywardd.log")" "polling"
check "A is still not listening" listening_workers "$KWD_PID" 0

# ---- and the reconnection ---------------------------------------------------------------
sql "ALTER DATABASE keyward ALLOW_CONNECTIONS true" >/dev/null
check "A listens again once it can connect" wait_for 15 listening_workers "$KWD_PID" 2
like "A says the notifications are back" "$(cat "$T/keywardd.log")" "notifications are back"
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'keywardd-listen'
     AND client_port IN ($(client_ports "$B_PID"))" >/dev/null
check "B listens again after its connections were killed" wait_for 15 listening_workers "$B_PID" 2
check "B serves bob (and caches the key with his entry)" wait_for 10 bob_reads_on_b
r=$(on A none "0u$ADMIN" PUT /v0/keys/nk/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"None"}')
expect "A revokes bob again" "$r" 200 0 ""
check "B, listening again, refuses bob (its poll is an hour away)" wait_for 5 bob_refused_on_b

# ---- forged notifications ---------------------------------------------------------------
# Any client of the database can NOTIFY on keywardd's channel. What it sends may cost B a
# look at the counter, never a revocation gone unheard: B's poll is an hour away, so a
# forged counter that B believed would leave bob served from B's cache.
kwsql() { psql -h 127.0.0.1 -p "$PG_PORT" -U keyward -Atc "$1" keyward; }
counter() { kwsql "SELECT value FROM keyward_meta WHERE name = 'change_counter'"; }
forge_then_revoke() { # PAYLOAD WHAT: the forger sends PAYLOAD before A's revocation
        r=$(on A none "0u$ADMIN" PUT /v0/keys/nk/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"Read"}')
        expect "A grants bob Read ($2)" "$r" 200 0 ""
        check "B serves bob ($2)" wait_for 10 bob_reads_on_b
        kwsql "NOTIFY keyward_changes, '$1'" >/dev/null
        check "B serves bob after the forged notification, its caches filled again ($2)" bob_reads_on_b
        r=$(on A none "0u$ADMIN" PUT /v0/keys/nk/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"None"}')
        expect "A revokes bob ($2)" "$r" 200 0 ""
        check "B refuses bob after a forged notification: $2" wait_for 5 bob_refused_on_b
}
forge_then_revoke "9000000000000000000 other" "a counter far ahead"
forge_then_revoke "$(($(counter) + 1)) other" "the next counter, naming another key"
check "B still listens on every worker" listening_workers "$B_PID" 2

# Notifications carry ids, never data.
r=$(on A none "0u$ADMIN" POST /v0/keys/ -d id=nk2 --data-urlencode "data=$(b64 secret-plain)")
expect "create another key" "$r" 200 0 ""

kill -TERM "$B_PID"
wait "$B_PID" 2>/dev/null
kwd_stop
if grep -q -e secret-plain -e "$ADMIN" -e "$BOB" "$T/keywardd.log" "$T/keywardd-b.log"; then
        not_ok "no key data or token in the logs"
else
        ok "no key data or token in the logs"
fi

done_testing
