#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The fan-out of one write to a few hundred held watches (issue 12), on one worker so that
# they all share one pass: every watcher of the written key gets its own correct list (the
# changed key, in its query's order, never another group's answer), in one TLS record, on a
# connection that then serves the next request; each answer has its own audit line (by the
# watcher's port); watchers of another key stay held until that key is written; SIGTERM then
# answers the rest with "nothing changed". (bench/fleet measures the same with 10,000.)

. "$(dirname "$0")/lib.sh"

need_tools python3
NA=150 # k1 only
NB=60  # k2 and k1: only k1 changes
NC=60  # k1 and a key that does not exist
ND=60  # k2 only: held through the write of k1, answered at the write of k2
NE=30  # a key that does not exist: still held at SIGTERM
TOTAL=$((NA + NB + NC + ND + NE))

make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
as_alice() { req none "0u$ALICE" "$@"; }
b64() { printf '%s' "$1" | base64 -w0; }
hash_of() { jget "$(body "$(as_alice GET "/v0/keys/$1/")")" 'j["data"]["hash"]'; }
watchers() {
        curl -sS --max-time 5 --cacert "$T/pki/ca.pem" "$KWD_URL/metrics" 2>/dev/null |
                sed -n 's/^keyward_watchers \([0-9]*\)$/\1/p'
}
held() { [ "$(watchers)" = "$1" ]; }

kwd_start --workers 1 --max-connections-per-address 0
r=$(as_alice POST /v0/keys/ -d id=k1 --data-urlencode "data=$(b64 one)")
expect "create k1" "$r" 200 0 ""
r=$(as_alice POST /v0/keys/ -d id=k2 --data-urlencode "data=$(b64 two)")
expect "create k2" "$r" 200 0 ""
H1=$(hash_of k1)
H2=$(hash_of k2)
[ -n "$H1" ] && [ -n "$H2" ] || bail "no hashes"

python3 "$(dirname "$0")/watch-fanout.py" "$KWD_ADDR" "$T/pki/ca.pem" "$ALICE" "$T/sent" \
        "A=$NA:k1=$H1:k1=$H1" "B=$NB:k2=$H2&k1=$H1:k2=$H2" "C=$NC:k1=$H1&nosuchkey=x:k1=NONE" \
        "D=$ND:k2=$H2:k2=$H2" "E=$NE:k3=x" >"$T/fanout.out" 2>"$T/fanout.err" &
WPY=$!
BG_PIDS+=("$WPY")
sent() { [ -s "$T/sent" ]; }
wait_for 60 sent
wait_for 60 held "$TOTAL"
is "keywardd holds the $TOTAL watches" "$(watchers)" "$TOTAL"

r=$(as_alice POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 one-b)")
expect "write k1" "$r" 200 0 ""
wait_for 60 held $((ND + NE))
is "the watchers of k2 alone are still held" "$(watchers)" $((ND + NE))
r=$(as_alice POST /v0/keys/k2/versions/ --data-urlencode "data=$(b64 two-b)")
expect "write k2" "$r" 200 0 ""
wait_for 60 held $((NE))
# The last group is answered by the stop: "nothing changed" and Connection: close.
is "only the watches of a missing key are still held" "$(watchers)" "$NE"
pid=$KWD_PID
kill -TERM "$pid"
kwd_wait_exit "$pid" 30
is "keywardd exits 0" "$?" 0
KWD_PID=
kwd_wait_exit "$WPY" 70
[ -s "$T/fanout.err" ] && sed 's/^/# /' "$T/fanout.err" | head -5

# summary GROUP: "answered status data records close again" counts of that group's watchers.
summary() {
        python3 - "$T/fanout.out" "$@" <<'PY'
import json, sys
path, group, data, close = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "close"
rows = [json.loads(l) for l in open(path) if json.loads(l)["group"] == group]
good = [r for r in rows if r["error"] is None and r["status"] == 200 and r["data"] == data
        and r["close"] == close]
one = [r for r in good if r["records"] == 1]
again = [r for r in good if close or r["again"] == 200]
print("watchers=%d right=%d one_record=%d next_request=%d" % (len(rows), len(good), len(one), len(again)))
for r in rows:
        if r not in good:
                print("# wrong: %s" % json.dumps(r), file=sys.stderr)
                break
PY
}
is "k1's watchers get [\"k1\"]" "$(summary A '["k1"]' keep)" \
        "watchers=$NA right=$NA one_record=$NA next_request=$NA"
is "k2+k1's watchers get [\"k1\"]" "$(summary B '["k1"]' keep)" \
        "watchers=$NB right=$NB one_record=$NB next_request=$NB"
is "k1+missing key's watchers get [\"k1\"]" "$(summary C '["k1"]' keep)" \
        "watchers=$NC right=$NC one_record=$NC next_request=$NC"
is "k2's watchers get [\"k2\"] at the second write" "$(summary D '["k2"]' keep)" \
        "watchers=$ND right=$ND one_record=$ND next_request=$ND"
is "SIGTERM answers the rest with [] and Connection: close" "$(summary E '[]' close)" \
        "watchers=$NE right=$NE one_record=$NE next_request=$NE"

# Each answer has its audit line: the watch's query, from the watcher's own port.
check "every audit line is whole JSON" python3 -c '
import json, sys
for line in open(sys.argv[1]):
        json.loads(line)
' "$T/audit.log"
audited=$(python3 - "$T/audit.log" "$T/fanout.out" <<'PY'
import json, sys
want = {}
for l in open(sys.argv[2]):
        r = json.loads(l)
        if r["port"] is not None and r["status"] == 200:
                want[r["port"]] = r["group"]
seen = {}
for l in open(sys.argv[1]):
        a = json.loads(l).get("payload")
        req = a.get("request") if a else None
        if not req:
                continue
        if req["method"] != "GET" or req["path"] != "/v0/keys/":
                continue
        port = int(req["remote_addr"].rsplit(":", 1)[1])
        if port in want and req["parameters"]["queryString"].find("=NONE") < 0 and a["status_code"] == 200:
                seen[port] = seen.get(port, 0) + 1
# The second requests of A, B and D are audited too: two lines for those ports.
ok = sum(1 for p, g in want.items() if seen.get(p, 0) == (1 if g in "CE" else 2))
print("ports=%d audited=%d" % (len(want), ok))
PY
)
is "each watcher's answer (and next request) has its own audit line" "$audited" "ports=$TOTAL audited=$TOTAL"
if grep -Eq 'Sanitizer|runtime error|SEGV' "$T/keywardd.log"; then
        not_ok "no sanitizer report"
else
        ok "no sanitizer report"
fi

done_testing
