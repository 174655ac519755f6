#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keywardd on PostgreSQL (a server the test starts itself), two of them sharing the
# database as they would behind a load balancer: writes through one are read through the
# other, a watch held on one answers a write made through the other, concurrent writes to
# one key through both lose nothing, tokens minted once work on both, and a database
# restart costs no request.

. "$(dirname "$0")/lib.sh"

pg_start
export KWD_DB=$PG_URL
make_pki
kwd_init
like "init on PostgreSQL" "$(cat "$T/init.log")" "is ready"
"$KEYWARDD" init --db "$PG_URL" --master-key "$T/master.key" 2>/dev/null
is "init again: exit 0" "$?" 0

kwd_start
A_URL=$KWD_URL
# A second keywardd on the same database.
"$KEYWARDD" serve --listen 127.0.0.1:0 --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key" \
        --client-ca "$T/pki/ca.pem" --db "$PG_URL" --master-key "$T/master.key" \
        --audit-log "$T/audit-b.log" --ready-file "$T/ready-b" --workers 2 --hostname testhost-b 2>>"$T/keywardd-b.log" &
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

ADMIN=$(kwd_token admin) || bail "cannot mint a token"
r=$(on A none "0u$ADMIN" POST /v0/keys/ -d id=pg_key --data-urlencode "data=$(b64 pg-plain-first)")
expect "create through A" "$r" 200 0 ""
r=$(on B none "0u$ADMIN" GET /v0/keys/pg_key/)
expect "read through B" "$r" 200 0 ""
is "B has the data" "$(jget "$(body "$r")" 'j["data"]["versions"][0]["data"]' | base64 -d)" "pg-plain-first"
r=$(on B none "0u$ADMIN" POST /v0/keys/ -d id=pg_key --data-urlencode "data=$(b64 again)")
expect "create the same id through B: 400/2" "$r" 400 2
for i in 2 3; do
        on A none "0u$ADMIN" POST /v0/keys/ -d "id=pg_key$i" --data-urlencode "data=$(b64 pg-plain-k$i)" >/dev/null
done
r=$(on B none "0u$ADMIN" GET /v0/keys/)
is "B lists the keys in creation order" "$(jget "$(body "$r")" 'j["data"]')" '["pg_key", "pg_key2", "pg_key3"]'
# Neither the data nor its base64 (as the versions column would hold it unsealed).
rows=$(psql -h 127.0.0.1 -p "$PG_PORT" -U keyward -Atc 'SELECT versions FROM secrets' keyward)
check "the database holds the versions" test "$(grep -c . <<<"$rows")" -eq 3
check "no plaintext in the database" bash -c "! grep -q -e pg-plain- -e '$(b64 pg-plain-first)' -e '$(b64 pg-plain-k2)' <<<'$rows'"

# A watch held on B answers a write through A (B polls the shared change counter).
HASH=$(jget "$(body "$(on B none "0u$ADMIN" GET /v0/keys/pg_key/)")" 'j["data"]["hash"]')
REQ_BODY=$T/watch.body on B none "0u$ADMIN" GET "/v0/keys/?pg_key=$HASH" -H 'Prefer: wait=20' >"$T/watch.out" &
WATCH_PID=$!
sleep 0.5
r=$(on A none "0u$ADMIN" POST /v0/keys/pg_key/versions/ --data-urlencode "data=$(b64 pg-plain-second)")
expect "add a version through A" "$r" 200 0 ""
wait "$WATCH_PID"
is "the watch on B answers with the key written through A" "$(jget "$(cat "$T/watch.body")" 'j["data"]')" '["pg_key"]'

# Concurrent writes through both servers: every one lands, or is refused and says so.
pids=()
for i in $(seq 1 8); do
        srv=A
        [ $((i % 2)) -eq 0 ] && srv=B
        REQ_BODY=$T/add.$i on $srv none "0u$ADMIN" POST /v0/keys/pg_key/versions/ --data-urlencode "data=$(b64 "v$i")" >"$T/add.out.$i" &
        pids+=($!)
done
wait "${pids[@]}"
ok_adds=$(grep -l '"status":"ok"' "$T"/add.out.* | wc -l)
r=$(on A none "0u$ADMIN" GET "/v0/keys/pg_key/?status=%22Inactive%22")
is "every acknowledged write is there: versions = 2 + acknowledged adds" \
        "$(jget "$(body "$r")" 'len(j["data"]["versions"])')" "$((2 + ok_adds))"
diag "$ok_adds of 8 concurrent adds acknowledged"

r=$(on A none "0u$ADMIN" DELETE /v0/keys/pg_key3/)
expect "delete through A" "$r" 200 0 ""
r=$(on B none "0u$ADMIN" GET /v0/keys/pg_key3/)
expect "gone through B" "$r" 404 4

# Tokens live in the database: revoked through one, refused by the other.
T2=$(kwd_token bob) || bail "cannot mint a token"
r=$(on B none "0u$T2" GET /v0/auth/whoami/)
expect "a token minted into PostgreSQL works on B" "$r" 200 0 ""
r=$(on A none "0u$T2" DELETE /v0/auth/token/)
expect "revoked through A" "$r" 200 0 ""
r=$(on B none "0u$T2" GET /v0/auth/whoami/)
expect "refused by B" "$r" 401 5

# The database restarts: the servers reconnect on their next statement.
pg_ctl -m fast restart || bail "PostgreSQL did not restart"
r=$(on A none "0u$ADMIN" GET /v0/keys/pg_key2/)
expect "after a database restart, A answers" "$r" 200 0 ""
r=$(on B none "0u$ADMIN" GET /v0/keys/pg_key2/)
expect "and B too" "$r" 200 0 ""

# The database away: a clean 500, then service again.
pg_ctl -m fast stop
r=$(on A none "0u$ADMIN" GET /v0/keys/pg_key2/)
expect "database down: 500/1, not a hang" "$r" 500 1
pg_ctl start || bail "PostgreSQL did not start again"
r=$(on A none "0u$ADMIN" GET /v0/keys/pg_key2/)
expect "database back: 200" "$r" 200 0 ""

kill -TERM "$B_PID"
wait "$B_PID" 2>/dev/null
kwd_stop
if grep -q -e pg-plain- -e "$ADMIN" "$T/audit.log" "$T/audit-b.log" "$T/keywardd.log" "$T/keywardd-b.log"; then
        not_ok "no key data or token in the logs"
else
        ok "no key data or token in the logs"
fi

done_testing
