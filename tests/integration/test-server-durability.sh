#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Durability of a real keywardd on SQLite: everything survives a clean restart; every write
# acknowledged to a client survives kill -9 in the middle of a burst of writes; concurrent
# updates of one key either succeed or get code 1, and none that succeeded is lost.

. "$(dirname "$0")/lib.sh"

make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
kwd_start

as_alice() { req none "0u$ALICE" "$@"; }
# snapshot ID: the key with every version, and its ACL, as one line.
snapshot() {
        printf '%s %s' "$(jget "$(body "$(as_alice GET "/v0/keys/$1/?status=\"Inactive\"" -g --path-as-is)")" 'j["data"]')" \
                "$(jget "$(body "$(as_alice GET "/v0/keys/$1/access/")")" 'j["data"]')"
}

# ---- a clean restart ------------------------------------------------------------------

for i in 1 2 3; do
        as_alice POST /v0/keys/ -d "id=keep$i" --data-urlencode "data=$(b64 "keep-secret-$i")" >/dev/null
done
r=$(as_alice POST /v0/keys/keep1/versions/ --data-urlencode "data=$(b64 keep-secret-1b)")
V=$(jget "$(body "$r")" 'j["data"]')
r=$(as_alice PUT "/v0/keys/keep1/versions/$V/" --data-urlencode 'status="Primary"')
expect "promote a version before the restart" "$r" 200 0 ""
r=$(as_alice PUT /v0/keys/keep2/access/ --data-urlencode 'access={"type":"Machine","id":"host1.example.com","access":"Read"}')
expect "change an ACL before the restart" "$r" 200 0 ""
r=$(as_alice DELETE /v0/keys/keep3/)
expect "delete a key before the restart" "$r" 200 0 ""
before1=$(snapshot keep1)
before2=$(snapshot keep2)
like "snapshot of keep1 holds both versions" "$before1" "keep-secret|$(b64 keep-secret-1b)"

kill -TERM "$KWD_PID"
kwd_wait_exit "$KWD_PID" 10
is "SIGTERM: keywardd exits 0" "$?" 0
KWD_PID=
kwd_start
is "clean restart: keep1 (versions and statuses) is intact" "$(snapshot keep1)" "$before1"
is "clean restart: keep2 and its ACL are intact" "$(snapshot keep2)" "$before2"
r=$(as_alice GET /v0/keys/keep3/)
expect "clean restart: the deleted key stays deleted" "$r" 404 4
r=$(req machine 0thost1.example.com GET /v0/keys/keep2/)
expect "clean restart: the ACL change still grants access" "$r" 200 0 ""

# ---- kill -9 in the middle of a burst of creates --------------------------------------

# burst FIRST STEP: creates burst<i> for i = FIRST, FIRST+STEP, ... < 200 until $T/stop
# exists; logs the acknowledged ones as "<id> <version>".
burst() {
        local i r
        for ((i = $1; i < 200; i += $2)); do
                [ -e "$T/stop" ] && break
                r=$(curl -sS --max-time 5 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" \
                        -d "id=burst$i" --data-urlencode "data=$(b64 "burst-secret-$i")" \
                        -w ' %{http_code}' "$KWD_URL/v0/keys/" 2>/dev/null) || continue
                if [[ "$r" =~ ^\{\"status\":\"ok\",\"code\":0,.*\"data\":([0-9]+)\}$'\n'?\ 200$ ]]; then
                        printf 'burst%d %s\n' "$i" "${BASH_REMATCH[1]}" >>"$T/acked"
                fi
        done
}
: >"$T/acked"
burst 0 2 &
B1=$!
burst 1 2 &
B2=$!
BG_PIDS+=("$B1" "$B2")
for _ in $(seq 400); do
        [ "$(wc -l <"$T/acked")" -ge 40 ] && break
        kill -0 "$B1" 2>/dev/null || break
        sleep 0.05
done
kwd_kill9
n_acked_at_kill=$(wc -l <"$T/acked")
touch "$T/stop"
wait "$B1" "$B2"
n_acked=$(wc -l <"$T/acked")
diag "acknowledged $n_acked_at_kill creates before kill -9 ($n_acked in all)"
check "kill -9 came in the middle of the burst" [ "$n_acked_at_kill" -ge 40 ] && [ "$n_acked" -lt 200 ]

kwd_start
# Read every acknowledged key back over one connection, then check them all at once.
args=()
while read -r id version; do
        args+=(-o "$T/got.$id" "$KWD_URL/v0/keys/$id/")
done <"$T/acked"
curl -sS --max-time 30 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" "${args[@]}"
tcheck "kill -9: every acknowledged create is there with its data" python3 - "$T" <<'EOF2'
import base64, json, sys
t = sys.argv[1]
bad = []
for line in open(t + "/acked"):
        key, version = line.split()
        try:
                j = json.load(open("%s/got.%s" % (t, key)))
                v = j["data"]["versions"][0]
                want = base64.b64encode(("burst-secret-" + key[5:]).encode()).decode()
                if j["status"] != "ok" or v["id"] != int(version) or v["data"] != want:
                        bad.append("%s: %r" % (key, j))
        except Exception as e:
                bad.append("%s: %r" % (key, e))
if bad:
        sys.exit("\n".join(bad[:10]) + "\n%d lost or damaged" % len(bad))
EOF2
r=$(as_alice GET /v0/keys/)
like "the store still lists keys after kill -9" "$(jget "$(body "$r")" 'len(j["data"])')" '^[1-9][0-9]*$'
is "kill -9: keys from before the burst are intact" "$(snapshot keep1)" "$before1"

# ---- concurrent updates of one key ----------------------------------------------------

r=$(as_alice POST /v0/keys/ -d id=conc --data-urlencode "data=$(b64 c)")
expect "create the key to update concurrently" "$r" 200 0 ""
: >"$T/granted"
bad=0
n_conflicts=0
for round in $(seq 8); do
        pids=()
        for c in a b c d; do
                (
                        REQ_BODY=$T/body.$c
                        r=$(as_alice PUT /v0/keys/conc/access/ \
                                --data-urlencode "access={\"type\":\"User\",\"id\":\"u$round$c\",\"access\":\"Read\"}")
                        printf 'u%s%s %s\n' "$round" "$c" "$r" >"$T/conc.$c"
                ) &
                pids+=($!)
        done
        BG_PIDS+=("${pids[@]}")
        wait "${pids[@]}"
        for c in a b c d; do
                read -r who code rest <"$T/conc.$c"
                case "$code $rest" in
                '200 {"status":"ok","code":0,'*) echo "$who" >>"$T/granted" ;;
                '500 {"status":"error","code":1,'*) n_conflicts=$((n_conflicts + 1)) ;;
                *)
                        bad=$((bad + 1))
                        diag "unexpected: $who $code $rest"
                        ;;
                esac
        done
done
diag "$(wc -l <"$T/granted") concurrent ACL changes succeeded, $n_conflicts got code 1"
is "concurrent PUT access: each ends in ok or code 1" "$bad" 0
missing=$(jget "$(body "$(as_alice GET /v0/keys/conc/access/)")" \
        '" ".join(sorted(set(open("'"$T/granted"'").read().split()) - {a["id"] for a in j["data"]}))')
is "concurrent PUT access: the final ACL holds every change that got ok" "$missing" ""
check "concurrent PUT access: some changes succeeded" [ -s "$T/granted" ]

# ---- writes by another process while keywardd serves ----------------------------------

# `keywardd token` opens the same database while keywardd runs with two workers. The new
# token must work at once, and writes acknowledged afterwards must survive kill -9. (Closing
# any descriptor of the database file in keywardd drops its SQLite connections' POSIX locks;
# the other process then deletes the WAL under keywardd, and these writes went to a deleted
# file.)
CAROL=$(kwd_token carol) || bail "cannot mint a token"
r=$(req none "0u$CAROL" GET /v0/auth/whoami/)
expect "a token minted while keywardd serves works" "$r" 200 0 ""
for i in 1 2 3 4 5 6; do
        r=$(as_alice POST /v0/keys/ -d "id=late$i" --data-urlencode "data=$(b64 "late-secret-$i")")
        expect "create late$i after another process wrote" "$r" 200 0 ""
done
kwd_kill9
kwd_start
n=0
for i in 1 2 3 4 5 6; do
        r=$(as_alice GET "/v0/keys/late$i/")
        [ "$(jget "$(body "$r")" 'j["data"]["versions"][0]["data"]')" = "$(b64 "late-secret-$i")" ] && n=$((n + 1))
done
is "kill -9: the creates acknowledged after another process wrote are there" "$n" 6
check "kill -9 again: the store still opens and lists" \
        [ "$(jget "$(body "$(as_alice GET /v0/keys/)")" 'j["status"]')" = ok ]

kwd_stop
done_testing
