#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Fan-out by key (issue 12): a write looks again only at the watches held on the key it
# changed, on every worker, and counts each look in keyward_watch_evaluations_total. A watch
# on another key is not answered and costs no evaluation; a write by another keywardd on
# the same store still reaches every watcher (through the store poll).

. "$(dirname "$0")/lib.sh"

make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
kwd_start --workers 2

as_alice() { req none "0u$ALICE" "$@"; }
hash_of() { jget "$(body "$(as_alice GET "/v0/keys/$1/")")" 'j["data"]["hash"]'; }
metric() {
        curl -sS --max-time 5 --cacert "$T/pki/ca.pem" "$KWD_URL/metrics" 2>/dev/null |
                sed -n "s/^$1 \([0-9]*\)\$/\1/p"
}
watchers() { metric keyward_watchers; }
evaluations() { metric keyward_watch_evaluations_total; }
watchers_are() { [ "$(watchers)" = "$1" ]; }
wait_watchers() { wait_for 10 watchers_are "$1"; }
evaluations_are() { [ "$(evaluations)" = "$1" ]; }

# watch NAME QUERY [URL]: a 30 s watch in the background; $T/w.NAME.{code,body}. Sets WPID.
watch() {
        local name=$1 query=$2 url=${3:-$KWD_URL}
        curl -sS --max-time 40 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" \
                -H "Prefer: wait=30" -o "$T/w.$name.body" -w '%{http_code}' \
                "$url/v0/keys/?$query" >"$T/w.$name.code" 2>"$T/w.$name.err" &
        WPID=$!
        BG_PIDS+=("$WPID")
}
wbody() { jget "$(cat "$T/w.$1.body" 2>/dev/null)" '[j["status"], j["data"]]'; }
held() { kill -0 "$1" 2>/dev/null; }

for k in a b c; do
        r=$(as_alice POST /v0/keys/ -d id=$k --data-urlencode "data=$(b64 $k-1)")
        expect "create $k" "$r" 200 0 ""
done
HA=$(hash_of a)
HB=$(hash_of b)
HC=$(hash_of c)

e=$(evaluations)
is "keyward_watch_evaluations_total is exported, 0 at first" "$e" 0

# ---- a write to A answers A's watcher and looks at no other watch ---------------------

watch a1 "a=$HA"
PA=$WPID
pb=()
for i in 1 2 3 4 5 6; do
        watch "b$i" "b=$HB&c=$HC"
        pb+=("$WPID")
done
wait_watchers 7
is "seven watches held" "$(watchers)" 7
e0=$(evaluations)
is "holding them costs no evaluation" "$e0" 0

r=$(as_alice POST /v0/keys/a/versions/ --data-urlencode "data=$(b64 a-2)")
expect "a write to a" "$r" 200 0 ""
kwd_wait_exit "$PA" 20
is "the watch on a is answered" "$(cat "$T/w.a1.code")" 200
is "with a" "$(wbody a1)" '["ok", ["a"]]'
wait_watchers 6
e1=$(evaluations)
is "the write cost one evaluation: the watch on a, none of the six on b and c" "$e1" 1
# The store poll runs every second: it must not take our own write for another's and look
# at every watch.
sleep 1.5
is "still one after the store poll has run" "$(evaluations)" 1
n=0
for p in "${pb[@]}"; do held "$p" && n=$((n + 1)); done
is "the six watches on b and c are all still held" "$n" 6
HA=$(hash_of a)

# An ACL change is a write to the key, but its hash stays: looked at, not answered.
watch a2 "a=$HA"
PA=$WPID
wait_watchers 7
r=$(as_alice PUT /v0/keys/a/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"Read"}')
expect "an ACL change to a" "$r" 200 0 ""
wait_for 10 evaluations_are 2
is "the ACL change looked at the one watch on a" "$(evaluations)" 2
check "and did not answer it (the hash is unchanged)" held "$PA"

# ---- a write to C answers every watcher of C, on both workers, with only c -------------

r=$(as_alice POST /v0/keys/c/versions/ --data-urlencode "data=$(b64 c-2)")
expect "a write to c" "$r" 200 0 ""
woken=0
for i in 1 2 3 4 5 6; do
        kwd_wait_exit "${pb[$((i - 1))]}" 20
        [ "$(wbody "b$i")" = '["ok", ["c"]]' ] && woken=$((woken + 1))
done
is "all six watchers of c are answered with c" "$woken" 6
is "eight evaluations in all: six more, none for the watch on a" "$(evaluations)" 8
check "the watch on a is still held" held "$PA"

# ---- a write by another keywardd on the same store -------------------------------------

HC=$(hash_of c)
watch c1 "c=$HC"
PC=$WPID
wait_watchers 2
A_PID=$KWD_PID A_URL=$KWD_URL
kwd_start --workers 1
B_PID=$KWD_PID
r=$(as_alice POST /v0/keys/c/versions/ --data-urlencode "data=$(b64 c-3)")
expect "another keywardd writes c" "$r" 200 0 ""
kwd_wait_exit "$PC" 20
is "the watcher on the first keywardd is answered (store poll)" "$(wbody c1)" '["ok", ["c"]]'
KWD_PID=$B_PID
kwd_stop
KWD_PID=$A_PID KWD_URL=$A_URL
check "the watch on a is still held" held "$PA"

# ---- a watch that names a key twice: the last hash counts, the key is listed once ------

HB=$(hash_of b)
watch dup "b=stale&b=$HB&a=$HA"
PD=$WPID
wait_watchers 2
check "b=stale&b=<hash> waits (the last value counts)" held "$PD"
r=$(as_alice POST /v0/keys/b/versions/ --data-urlencode "data=$(b64 b-2)")
expect "a write to b" "$r" 200 0 ""
kwd_wait_exit "$PD" 20
is "answered with b once" "$(wbody dup)" '["ok", ["b"]]'

kwd_stop
done_testing
