#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The watch of a real keywardd (DESIGN.md: GET /v0/keys/?<id>=<hash> with Prefer: wait=N):
# it returns soon after a change, [] once the wait is over, at once when the caller is
# already behind; one write wakes every watcher on every worker; a watcher that goes away
# does no harm; SIGTERM answers held watches and exits 0. Timing bounds are loose on purpose.

. "$(dirname "$0")/lib.sh"

make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
kwd_start --workers 2

as_alice() { req none "0u$ALICE" "$@"; }
now_ms() { date +%s%3N; }
hash_of() { jget "$(body "$(as_alice GET "/v0/keys/$1/")")" 'j["data"]["hash"]'; }
watchers() {
        curl -sS --max-time 5 --cacert "$T/pki/ca.pem" "$KWD_URL/metrics" 2>/dev/null |
                sed -n 's/^keyward_watchers \([0-9]*\)$/\1/p'
}
# wait_watchers N: until the server holds N watches (at most 10 s).
wait_watchers() {
        local n
        for _ in $(seq 200); do
                n=$(watchers)
                [ "$n" = "$1" ] && return 0
                sleep 0.05
        done
        diag "keyward_watchers is $n, not $1"
        return 1
}

# watch NAME WAIT QUERY [curl args...]: a watch in the background; $T/w.NAME.{code,body,end}
# get its HTTP status, body and end time (ms). Sets WPID.
watch() {
        local name=$1 wait=$2 query=$3
        shift 3
        (
                curl -sS --max-time 30 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" \
                        -H "Prefer: wait=$wait" -o "$T/w.$name.body" -w '%{http_code}' "$@" \
                        "$KWD_URL/v0/keys/?$query" >"$T/w.$name.code" 2>"$T/w.$name.err"
                now_ms >"$T/w.$name.end"
        ) &
        WPID=$!
        BG_PIDS+=("$WPID")
}
wbody() { jget "$(cat "$T/w.$1.body" 2>/dev/null)" '[j["status"], j["data"]]'; }

r=$(as_alice POST /v0/keys/ -d id=k1 --data-urlencode "data=$(b64 one)")
expect "create k1" "$r" 200 0 ""
r=$(as_alice POST /v0/keys/ -d id=k2 --data-urlencode "data=$(b64 two)")
expect "create k2" "$r" 200 0 ""
H1=$(hash_of k1)
H2=$(hash_of k2)

# ---- a change wakes the watcher ------------------------------------------------------

start=$(now_ms)
watch one 10 "k1=$H1&k2=$H2"
wait_watchers 1
check "the watch is held" kill -0 "$WPID"
sleep 0.5
check "and still held after half a second" kill -0 "$WPID"
t_write=$(now_ms)
r=$(as_alice POST /v0/keys/k2/versions/ --data-urlencode "data=$(b64 two-b)")
expect "another client adds a version to k2" "$r" 200 0 ""
kwd_wait_exit "$WPID" 10
is "the watch returns" "$?" 0
delay=$(($(cat "$T/w.one.end") - t_write))
diag "watch answered ${delay} ms after the write was sent"
check "within 3 s of the write (${delay} ms)" [ "$delay" -lt 3000 ]
is "with HTTP 200" "$(cat "$T/w.one.code")" 200
is "listing the changed key only" "$(wbody one)" '["ok", ["k2"]]'
H2=$(hash_of k2)

# ---- the wait expires ------------------------------------------------------------------

start=$(now_ms)
watch two 2 "k1=$H1&k2=$H2"
kwd_wait_exit "$WPID" 10
elapsed=$(($(cat "$T/w.two.end") - start))
diag "wait=2 with no change answered after ${elapsed} ms"
check "wait=2 with no change: returns after about 2 s (${elapsed} ms)" [ "$elapsed" -ge 1500 ] && [ "$elapsed" -lt 6000 ]
is "with []" "$(wbody two)" '["ok", []]'

# ---- already behind: at once -------------------------------------------------------------

start=$(now_ms)
watch three 10 "k1=$H1&k2=stale"
kwd_wait_exit "$WPID" 10
elapsed=$(($(cat "$T/w.three.end") - start))
check "a stale hash returns at once (${elapsed} ms)" [ "$elapsed" -lt 2000 ]
is "with the stale key" "$(wbody three)" '["ok", ["k2"]]'
watch threeb 10 "k1=NONE"
kwd_wait_exit "$WPID" 10
is "NONE returns at once with the key" "$(wbody threeb)" '["ok", ["k1"]]'
watch threec 0 "k1=$H1"
kwd_wait_exit "$WPID" 10
is "Prefer: wait=0 does not wait" "$(wbody threec)" '["ok", []]'
r=$(as_alice GET "/v0/keys/?k1=$H1")
expect "no Prefer header: no wait" "$r" 200 0 ""
watch threed 10 ""
kwd_wait_exit "$WPID" 10
is "a list of every key does not wait" "$(wbody threed)" '["ok", ["k1", "k2"]]'

# ---- one write wakes every watcher, on both workers -----------------------------------

pids=()
for i in 1 2 3 4 5 6 7 8; do
        watch "many$i" 15 "k1=$H1&k2=$H2"
        pids+=("$WPID")
done
wait_watchers 8
check "eight watches are held" [ "$(watchers)" = 8 ]
t_write=$(now_ms)
r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"Read"}')
expect "an ACL change does not wake them (the hash is unchanged)" "$r" 200 0 ""
sleep 0.5
is "all eight still wait" "$(watchers)" 8
r=$(as_alice POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 one-b)")
expect "one write" "$r" 200 0 ""
woken=0
slow=0
for i in 1 2 3 4 5 6 7 8; do
        kwd_wait_exit "${pids[$((i - 1))]}" 10
        [ "$(wbody "many$i")" = '["ok", ["k1"]]' ] && woken=$((woken + 1))
        [ $(($(cat "$T/w.many$i.end" 2>/dev/null || echo 0) - t_write)) -lt 3500 ] || slow=$((slow + 1))
done
is "every watcher is woken with the changed key" "$woken" 8
is "every watcher within 3 s" "$slow" 0
H1=$(hash_of k1)

# A watch for a key that does not exist yet wakes when it is created.
watch born 10 "k3=NONE"
wait_watchers 1
r=$(as_alice POST /v0/keys/ -d id=k3 --data-urlencode "data=$(b64 three)")
expect "create k3" "$r" 200 0 ""
kwd_wait_exit "$WPID" 10
is "a watch on a missing key wakes when it is created" "$(wbody born)" '["ok", ["k3"]]'

# ---- watchers that go away ------------------------------------------------------------

for i in 1 2 3; do
        watch "gone$i" 10 "k1=$H1" --max-time 1
        pids[$i]=$WPID
done
for i in 1 2 3; do
        kwd_wait_exit "${pids[$i]}" 10
done
is "the impatient clients gave up (curl timeout)" "$(cat "$T"/w.gone?.code)" "000000000"
wait_watchers 0
check "the server forgets watchers that went away" [ "$(watchers)" = 0 ]
r=$(as_alice POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 one-c)")
expect "a write after they left" "$r" 200 0 ""
H1=$(hash_of k1)
watch gone4 10 "k1=$H1" --max-time 1
sleep 0.5
r=$(as_alice POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 one-d)")
kwd_wait_exit "$WPID" 10
kill -0 "$KWD_PID" 2>/dev/null
check "keywardd is still running" [ $? -eq 0 ]
r=$(as_alice GET /v0/keys/k1/)
expect "and answers" "$r" 200 0 ""
H1=$(hash_of k1)

# ---- SIGTERM with a watch held ----------------------------------------------------------

watch term 30 "k1=$H1"
wait_watchers 1
start=$(now_ms)
kill -TERM "$KWD_PID"
kwd_wait_exit "$WPID" 10
is "SIGTERM answers the held watch" "$(cat "$T/w.term.code")" 200
is "with what is there ([])" "$(wbody term)" '["ok", []]'
kwd_wait_exit "$KWD_PID" 10
rc=$?
elapsed=$(($(now_ms) - start))
is "keywardd exits 0" "$rc" 0
check "promptly (${elapsed} ms < 5 s)" [ "$elapsed" -lt 5000 ]
KWD_PID=

# ---- --max-watch caps the wait ---------------------------------------------------------

kwd_start --max-watch 2
start=$(now_ms)
watch capped 300 "k1=$H1"
kwd_wait_exit "$WPID" 15
elapsed=$(($(cat "$T/w.capped.end") - start))
check "Prefer: wait=300 is capped by --max-watch 2 (${elapsed} ms)" [ "$elapsed" -ge 1500 ] && [ "$elapsed" -lt 6000 ]
is "and answers []" "$(wbody capped)" '["ok", []]'

kwd_stop
done_testing
