#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# kill -9 of a real keywardd in the middle of bursts of writes and key reads loses no audit
# line of an acknowledged write or of an answer that carried key data: clients on keep-alive
# connections count what was acknowledged, the audit file must hold at least as many lines.
# The lines of other answers (here: lists) follow their answers on their own, with no more
# traffic.

. "$(dirname "$0")/lib.sh"

make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
AUDIT=$T/audit.log

as_alice() { req none "0u$ALICE" "$@"; }

# client NAME MODE: a keep-alive client that loops until its connection fails. MODE "write"
# creates NAME_0, NAME_1, ...; MODE "read" reads key "readme". Each acknowledged request is
# appended to $T/acked.NAME as it is answered.
client() {
        python3 - "$KWD_ADDR" "$T/pki/ca.pem" "$ALICE" "$1" "$2" "$T/acked.$1" <<'EOF2'
import base64, http.client, json, os, ssl, sys, urllib.parse
addr, ca, token, name, mode, out = sys.argv[1:7]
host, port = addr.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=ca)
fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
hdr = {"Authorization": "0u" + token, "Content-Type": "application/x-www-form-urlencoded"}
for i in range(100000):
        try:
                if mode == "write":
                        kid = "%s_%d" % (name, i)
                        body = urllib.parse.urlencode({"id": kid, "data": base64.b64encode(kid.encode()).decode()})
                        conn.request("POST", "/v0/keys/", body=body, headers=hdr)
                else:
                        kid = "readme"
                        conn.request("GET", "/v0/keys/readme/", headers=hdr)
                resp = conn.getresponse()
                j = json.loads(resp.read())
        except Exception:
                break
        if resp.status == 200 and j.get("status") == "ok":
                os.write(fd, (kid + "\n").encode())
EOF2
}

# audited ROUTE: the key ids of the 200 lines of a route, one a line.
audited() {
        python3 - "$AUDIT" "$1" <<'EOF2'
import json, sys
route = sys.argv[2]
for line in open(sys.argv[1], "rb"):
        j = json.loads(line)
        if "checkpoint" in j:
                continue
        p = j["payload"]
        if p["status_code"] != 200:
                continue
        req = p["request"]
        if route == "postkeys" and req["method"] == "POST" and req["path"] == "/v0/keys/":
                print(req["parameters"]["id"])
        elif route == "getkey" and req["method"] == "GET" and req["path"] == "/v0/keys/readme/":
                print("readme")
EOF2
}

kwd_start --audit-log "$AUDIT"
r=$(as_alice POST /v0/keys/ -d id=readme --data-urlencode "data=$(b64 read-secret)")
expect "create the key the readers read" "$r" 200 0 ""

for round in 1 2 3; do
        pids=()
        for c in w1 w2 w3; do
                client "$round$c" write &
                pids+=($!)
        done
        client "${round}r" read &
        pids+=($!)
        BG_PIDS+=("${pids[@]}")
        # kill -9 once the writers are well into their burst.
        n=0
        for _ in $(seq 600); do
                n=$(cat "$T"/acked."$round"w* 2>/dev/null | wc -l)
                [ "$n" -ge 150 ] && break
                sleep 0.05
        done
        kwd_kill9
        wait "${pids[@]}"
        check "round $round: kill -9 came in the middle of a burst ($n writes acknowledged)" [ "$n" -ge 150 ]
        kwd_start --audit-log "$AUDIT"
done

kwd_stop
cat "$T"/acked.*w* | sort >"$T/acked-writes"
missing=$(comm -23 "$T/acked-writes" <(audited postkeys | sort))
diag "$(wc -l <"$T/acked-writes") writes acknowledged over 3 kills"
is "kill -9: every acknowledged create has its audit line" "$(printf '%s' "$missing" | head -n5)" ""
n_reads=$(cat "$T"/acked.*r | wc -l)
n_read_lines=$(audited getkey | wc -l)
diag "$n_reads key reads answered, $n_read_lines audited"
check "kill -9: every answered key read has its audit line" [ "$n_read_lines" -ge "$n_reads" ]
check "kill -9: key reads were answered" [ "$n_reads" -gt 0 ]

# The chain went on across the kills (each restart continues from the file's last line), and
# the clean stop sealed the file.
out=$("$KEYWARDD" audit-verify --master-key "$T/master.key" "$AUDIT" 2>&1)
is "audit-verify: the file is intact after 3 kills and a clean stop (exit 0)" "$?" 0
like "audit-verify says so" "$out" 'lines, [0-9]+ checkpoints: intact$'
"$KEYWARDD" audit-verify "$AUDIT" >/dev/null 2>&1
is "audit-verify without the master key checks the chain (exit 0)" "$?" 0
sed '5d' "$AUDIT" >"$T/tampered"
out=$("$KEYWARDD" audit-verify --master-key "$T/master.key" "$T/tampered" 2>&1)
is "audit-verify: a deleted line breaks the chain (exit 1)" "$?" 1
like "audit-verify names the first line that breaks" "$out" "tampered:5: prev is not the hash of the line before"
"$KEYWARDD" audit-verify --master-key "$T/master.key" >/dev/null 2>&1
is "audit-verify without a file is a usage error (exit 2)" "$?" 2
"$KEYWARDD" audit-verify --no-such-flag "$AUDIT" >/dev/null 2>&1
is "audit-verify with an unknown flag is a usage error (exit 2)" "$?" 2

# A list's line follows its answer with no more traffic, and then survives kill -9.
kwd_start --audit-log "$AUDIT"
before=$(grep -c '"path":"/v0/keys/","parameters":{"queryString":"marker=1"}' "$AUDIT")
r=$(as_alice GET '/v0/keys/?marker=1')
expect "a list is answered" "$r" 200 0
listed() { [ "$(grep -c '"queryString":"marker=1"' "$AUDIT")" -gt "$before" ]; }
check "a list's line goes out after its answer, with no more requests" wait_for 10 listed
kwd_kill9
check "and is there after kill -9" listed

# --audit-log - with stderr a regular file would put keywardd's own log lines between the
# audit lines: refused at start (exit 2) with a message that says why and what to do.
DASH=("$KEYWARDD" serve --listen 127.0.0.1:0 --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key"
        --client-ca "$T/pki/ca.pem" --db "$T/keyward.db" --master-key "$T/master.key"
        --ready-file "$T/dash.ready" --workers 1 --hostname testhost --audit-log -)
timeout 10 "${DASH[@]}" 2>"$T/dash.log"
is "--audit-log - with stderr a regular file is refused (exit 2)" "$?" 2
like "with a message that says why" "$(cat "$T/dash.log")" \
        "stderr is a regular file, where keywardd's own log lines would be mixed into the audit lines"
check "and nothing was audited into it" [ "$(grep -c '"payload"' "$T/dash.log")" = 0 ]
# stderr a pipe: served, the audit lines go to it.
rm -f "$T/dash.ready"
mkfifo "$T/dash.fifo"
cat "$T/dash.fifo" >"$T/dash-pipe.log" 2>/dev/null </dev/null &
BG_PIDS+=($!)
"${DASH[@]}" 2>"$T/dash.fifo" </dev/null >/dev/null &
DASH_PID=$!
BG_PIDS+=("$DASH_PID")
wait_for 10 test -s "$T/dash.ready"
KWD_URL="https://$(head -n1 "$T/dash.ready")"
r=$(as_alice GET /v0/keys/readme/)
expect "--audit-log - with stderr a pipe serves" "$r" 200 0
kill -TERM "$DASH_PID"
wait "$DASH_PID"
dash_line() { grep -q '"path":"/v0/keys/readme/"' "$T/dash-pipe.log"; }
check "and its audit lines go to the pipe" wait_for 10 dash_line

done_testing
