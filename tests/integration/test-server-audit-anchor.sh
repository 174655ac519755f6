#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The audit chain's anchor: a real keywardd records the seq and hash of each checkpoint line in
# its store, and keywardd audit-verify --db (or --anchor SEQ:HASH) catches what the chain and
# the checkpoints cannot: a file cut back to an earlier final checkpoint, and a newest file
# that is missing. A first file that does not start the chain is broken unless --first-seq
# says where it starts. keywardd itself says so when it starts on a file behind the anchor.

. "$(dirname "$0")/lib.sh"

make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
AUDIT=$T/audit.log
DB=$T/keyward.db

as_alice() { req none "0u$ALICE" "$@"; }
verify() { "$KEYWARDD" audit-verify --master-key "$T/master.key" "$@" 2>&1; }

# Two runs of keywardd, the second rotated in the middle: audit.log.1, then audit.log with a
# final checkpoint in the middle (a restart) and one at its end.
kwd_start
r=$(as_alice POST /v0/keys/ -d id=k1 --data-urlencode "data=$(b64 s1)")
expect "a create in the first run" "$r" 200 0 ""
kwd_stop
mv "$AUDIT" "$AUDIT.1"
kwd_start
r=$(as_alice POST /v0/keys/ -d id=k2 --data-urlencode "data=$(b64 s2)")
expect "a create after the rotation" "$r" 200 0 ""
kwd_stop
kwd_start
r=$(as_alice GET /v0/keys/k2/)
expect "a read in the third run" "$r" 200 0
kwd_stop

anchor=$(sqlite3 "$DB" "SELECT seq || ':' || hash FROM audit_anchor WHERE name = 'testhost'")
like "the store holds the anchor of testhost's audit log" "$anchor" '^[0-9]+:[0-9a-f]{64}$'
last_seq=$(tail -n1 "$AUDIT" | python3 -c 'import json, sys; print(json.load(sys.stdin)["seq"])')
is "the anchor is the file's last line, its final checkpoint" "${anchor%%:*}" "$last_seq"

out=$(verify --db "$DB" --host testhost "$AUDIT.1" "$AUDIT")
is "intact files verify against the store's anchor (exit 0)" "$?" 0
like "audit-verify says it found the anchor" "$out" 'anchor at seq [0-9]+: found'
out=$(verify --anchor "$anchor" "$AUDIT.1" "$AUDIT")
is "and against the same anchor given by hand (exit 0)" "$?" 0

# Cut back to the second run's final checkpoint: chain and checkpoints are fine.
first_final=$(grep -n '"final":true' "$AUDIT" | head -n1 | cut -d: -f1)
head -n "$first_final" "$AUDIT" >"$T/cut.log"
check "the cut file ends before the anchor" [ "$(wc -l <"$T/cut.log")" -lt "$(wc -l <"$AUDIT")" ]
out=$(verify "$AUDIT.1" "$T/cut.log")
is "a file cut back to an earlier final checkpoint passes without the anchor" "$?" 0
out=$(verify --db "$DB" --host testhost "$AUDIT.1" "$T/cut.log")
is "with --db it is broken (exit 1)" "$?" 1
like "audit-verify says lines were cut from the end" "$out" 'lines were cut from the end'

# The newest file missing.
out=$(verify "$AUDIT.1")
is "the older file alone passes without the anchor" "$?" 0
out=$(verify --db "$DB" --host testhost "$AUDIT.1")
is "with --db a missing newest file is broken (exit 1)" "$?" 1

# An anchor that names another line at that seq.
other=$(printf '%s' "${anchor#*:}" | tr '0-9a-f' '1-9a-f0')
out=$(verify --anchor "${anchor%%:*}:$other" "$AUDIT.1" "$AUDIT")
is "an anchor whose hash is not the line's is broken (exit 1)" "$?" 1
like "audit-verify names the line" "$out" 'not the line the anchor recorded'

# The first file alone does not start the chain.
out=$(verify "$AUDIT")
is "a first file that does not start at seq 1 is broken (exit 1)" "$?" 1
like "audit-verify says the lines before it are missing" "$out" 'the lines before it are missing'
first_seq=$(head -n1 "$AUDIT" | python3 -c 'import json, sys; print(json.load(sys.stdin)["seq"])')
out=$(verify --first-seq "$first_seq" --db "$DB" --host testhost "$AUDIT")
is "told where it starts (--first-seq), it verifies (exit 0)" "$?" 0

# Usage errors.
verify --db "$DB" --anchor "$anchor" "$AUDIT" >/dev/null
is "--db and --anchor together are a usage error (exit 2)" "$?" 2
verify --anchor 12:zz "$AUDIT" >/dev/null
is "a malformed --anchor is a usage error (exit 2)" "$?" 2
verify --first-seq 0 "$AUDIT" >/dev/null
is "--first-seq 0 is a usage error (exit 2)" "$?" 2
out=$(verify --db "$DB" --host nosuchhost "$AUDIT.1" "$AUDIT")
is "a host with no anchor in the store fails (exit 1)" "$?" 1
like "and says so" "$out" "holds no audit anchor for 'nosuchhost'"

# keywardd started on a file behind the anchor says so loudly.
cp "$T/cut.log" "$AUDIT"
kwd_start
kwd_stop
like "keywardd says the audit log was cut back while it was down" "$(cat "$T/keywardd.log")" \
        'the audit log was cut back or replaced while keywardd was not running'

done_testing
