#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The audit chain's anchor in a PostgreSQL store (table keyward_audit_anchor, one row per host
# name), against a PostgreSQL started by the test: the anchor moves with each checkpoint,
# keywardd audit-verify --db postgresql://... verifies an intact log against it and reports a
# log cut after a checkpoint and a log whose tail was rewritten; two keywardd on one database
# (two host names) each keep their own anchor, and --host picks which one a file is held to.

. "$(dirname "$0")/lib.sh"

need_tools psql
pg_start
export KWD_DB=$PG_URL
make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
AUDIT=$T/audit.log

as_alice() { req none "0u$ALICE" "$@"; }
verify() { "$KEYWARDD" audit-verify --master-key "$T/master.key" "$@" 2>&1; }
sql() { psql -h 127.0.0.1 -p "$PG_PORT" -U keyward -XAtc "$1" keyward 2>/dev/null; }
anchor_of() { sql "SELECT seq || ':' || hash FROM keyward_audit_anchor WHERE name = '$1'"; }
last_seq() { tail -n1 "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["seq"])'; }
# anchor_is HOST SEQ: the store's anchor for HOST is at SEQ.
anchor_is() { [ "$(anchor_of "$1" | cut -d: -f1)" = "$2" ]; }
# sealed FILE: the file's last line is a final checkpoint.
sealed() { tail -n1 "$1" | grep -q '"final":true'; }

kwd_start
r=$(as_alice POST /v0/keys/ -d id=k1 --data-urlencode "data=$(b64 s1)")
expect "a create through a keywardd on PostgreSQL" "$r" 200 0 ""

# SIGHUP seals the file with a final checkpoint, which the anchor then records.
kill -HUP "$KWD_PID"
wait_for 10 sealed "$AUDIT"
check "SIGHUP ends the file in a final checkpoint" sealed "$AUDIT"
seq1=$(last_seq "$AUDIT")
check "the anchor row appears at that checkpoint's seq ($seq1)" wait_for 10 anchor_is testhost "$seq1"
a1=$(anchor_of testhost)
like "the anchor is seq:hash" "$a1" '^[0-9]+:[0-9a-f]{64}$'

for i in 2 3 4; do
        as_alice POST /v0/keys/ -d "id=k$i" --data-urlencode "data=$(b64 "s$i")" >/dev/null
done
as_alice GET /v0/keys/k2/ >/dev/null
kill -HUP "$KWD_PID"
wait_for 10 sealed "$AUDIT"
seq2=$(last_seq "$AUDIT")
check "more lines and a second SIGHUP make a later checkpoint ($seq2 > $seq1)" [ "$seq2" -gt "$seq1" ]
check "the anchor advances to it" wait_for 10 anchor_is testhost "$seq2"
a2=$(anchor_of testhost)
check "with another hash" [ "${a2#*:}" != "${a1#*:}" ]

# A clean stop writes the last final checkpoint; the anchor follows it.
as_alice GET /v0/keys/k3/ >/dev/null
kwd_stop
seq3=$(last_seq "$AUDIT")
check "after a clean stop the anchor is the file's last line ($seq3)" anchor_is testhost "$seq3"
is "the store holds one anchor row, testhost's" "$(sql 'SELECT count(*) FROM keyward_audit_anchor')" 1

out=$(verify --db "$PG_URL" --host testhost "$AUDIT")
is "audit-verify --db postgresql://... passes an intact log (exit 0)" "$?" 0
like "and says it found the anchor" "$out" "anchor at seq $seq3: found"

# Lines removed at the end, back to the SIGHUP checkpoint: chain and checkpoints still hold.
n=$(grep -n "\"seq\":$seq2[,}]" "$AUDIT" | head -n1 | cut -d: -f1)
if [ -n "$n" ]; then
        head -n "$n" "$AUDIT" >"$T/cut.log"
        check "the cut file ends in a final checkpoint" sealed "$T/cut.log"
        out=$(verify "$T/cut.log")
        is "the cut log passes without the anchor (exit 0)" "$?" 0
        out=$(verify --db "$PG_URL" --host testhost "$T/cut.log")
        is "with --db postgresql://... it is broken (exit 1)" "$?" 1
        like "audit-verify says lines were cut from the end" "$out" 'lines were cut from the end'
else
        not_ok "the second checkpoint's line (seq $seq2) is in the file"
fi

# The tail rewritten by someone who can edit the file but holds no master key: a request line
# after the second checkpoint changed and the chain rebuilt from there (each "prev" the
# SHA-256 of the line before), the final checkpoint's HMAC left as it was. The chain holds;
# without the master key only the anchor, the hash of the true last line, tells.
python3 - "$AUDIT" "$T/rewritten.log" "$seq2" <<'EOF'
import hashlib, json, sys
src, dst, after = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(src).read().splitlines()
edited = False
for i, l in enumerate(lines):
        if not edited and json.loads(l).get("seq", 0) > after and "/v0/keys/k3/" in l:
                lines[i] = l.replace("/v0/keys/k3/", "/v0/keys/k4/", 1)
                edited = True
        elif edited:
                prev = hashlib.sha256(lines[i - 1].encode()).hexdigest()
                k = l.rindex(',"prev":"')
                lines[i] = l[:k] + ',"prev":"' + prev + '"' + l[k + 9 + 64 + 1:]
if not edited:
        sys.exit("no read of k3 after seq %d to rewrite" % after)
open(dst, "w").write("\n".join(lines) + "\n")
EOF
if [ -s "$T/rewritten.log" ]; then
        out=$("$KEYWARDD" audit-verify "$T/rewritten.log" 2>&1)
        is "the rewritten log passes the chain alone (exit 0)" "$?" 0
        out=$("$KEYWARDD" audit-verify --db "$PG_URL" --host testhost "$T/rewritten.log" 2>&1)
        is "with --db postgresql://... its rewritten tail is broken (exit 1)" "$?" 1
        like "audit-verify says the last line is not the anchor's" "$out" 'not the line the anchor recorded'
        out=$(verify --db "$PG_URL" --host testhost "$T/rewritten.log")
        is "with the master key too it is broken (exit 1)" "$?" 1
else
        not_ok "a read of k3 after the second checkpoint to rewrite"
fi

kwd_start
kwd_stop
seq4=$(last_seq "$AUDIT")
check "a restart moves the anchor to the new final checkpoint ($seq4)" anchor_is testhost "$seq4"

# A second keywardd on the same database, host name otherhost, with a log of its own.
rm -f "$T/ready"
"$KEYWARDD" serve --listen 127.0.0.1:0 \
        --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key" \
        --client-ca "$T/pki/ca.pem" --db "$PG_URL" --master-key "$T/master.key" \
        --audit-log "$T/other.log" --ready-file "$T/ready" --workers 2 \
        --hostname otherhost 2>>"$T/keywardd-other.log" &
OTHER_PID=$!
BG_PIDS+=("$OTHER_PID")
wait_for 10 test -s "$T/ready" || bail "the second keywardd did not become ready"
OTHER_URL="https://$(head -n1 "$T/ready")"
kwd_start
for i in 1 2 3; do
        curl -sS --max-time 10 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" \
                -o /dev/null "$OTHER_URL/v0/keys/k1/"
        as_alice GET /v0/keys/k2/ >/dev/null
done
kill -TERM "$OTHER_PID"
wait "$OTHER_PID"
kwd_stop

is "the store now holds two anchor rows" "$(sql 'SELECT count(*) FROM keyward_audit_anchor')" 2
check "otherhost's anchor is its own log's last line" anchor_is otherhost "$(last_seq "$T/other.log")"
check "testhost's anchor is its own log's last line" anchor_is testhost "$(last_seq "$AUDIT")"
out=$(verify --db "$PG_URL" --host otherhost "$T/other.log")
is "otherhost's log verifies against otherhost's anchor (exit 0)" "$?" 0
out=$(verify --db "$PG_URL" --host testhost "$AUDIT")
is "testhost's log verifies against testhost's anchor (exit 0)" "$?" 0
out=$(verify --db "$PG_URL" --host testhost "$T/other.log")
is "otherhost's log held to testhost's anchor is broken (exit 1)" "$?" 1
out=$(verify --db "$PG_URL" --host nosuchhost "$AUDIT")
is "a host with no anchor in the PostgreSQL store fails (exit 1)" "$?" 1
like "and says so" "$out" "holds no audit anchor for 'nosuchhost'"

done_testing
