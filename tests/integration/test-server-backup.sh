#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `keywardd backup --db DB FILE` on a live SQLite store: while keywardd serves a burst of
# writes, the copy holds every write acknowledged before the backup began, passes SQLite's
# integrity check, is one 0600 file in WAL mode, and a keywardd serving it with the same
# master key serves every key with its data. Usage errors, a copy onto the live store and a
# PostgreSQL URL get clear errors.

. "$(dirname "$0")/lib.sh"

need_tools sqlite3

make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
kwd_start

PAD=$(head -c 1500 /dev/zero | tr '\0' 'x')
pre_data() { printf 'pre-secret-%s-%s' "$1" "$PAD"; }

# ---- a store with something in it ------------------------------------------------------

: >"$T/pre"
for i in $(seq 150); do
        curl -sS --max-time 10 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" \
                -d "id=pre$i" --data-urlencode "data=$(b64 "$(pre_data "$i")")" "$KWD_URL/v0/keys/" |
                grep -q '"status":"ok"' && echo "pre$i" >>"$T/pre"
done
is "150 keys made before the backup" "$(wc -l <"$T/pre" | tr -d ' ')" 150

# ---- a burst of writes throughout the backup ------------------------------------------

# burst FIRST STEP: creates burst<i> for i = FIRST, FIRST+STEP, ... until $T/stop exists;
# logs the acknowledged ids, one a line.
burst() {
        local i r
        for ((i = $1; i < 100000; i += $2)); do
                [ -e "$T/stop" ] && break
                r=$(curl -sS --max-time 5 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" \
                        -d "id=burst$i" --data-urlencode "data=$(b64 "burst-secret-$i")" \
                        -w ' %{http_code}' "$KWD_URL/v0/keys/" 2>/dev/null) || continue
                [[ "$r" =~ ^\{\"status\":\"ok\",\"code\":0,.*\ 200$ ]] && echo "burst$i" >>"$T/acked"
        done
}
: >"$T/acked"
burst 0 2 &
B1=$!
burst 1 2 &
B2=$!
BG_PIDS+=("$B1" "$B2")
acked_at_least() { [ "$(wc -l <"$T/acked")" -ge "$1" ]; }
wait_for 20 acked_at_least 20 || bail "the write burst did not start"

cp "$T/acked" "$T/acked-before"
"$KEYWARDD" backup --db "$T/keyward.db" "$T/copy.db" 2>"$T/backup.log"
rc=$?
n_before=$(wc -l <"$T/acked-before")
n_at_end=$(wc -l <"$T/acked")
touch "$T/stop"
wait "$B1" "$B2"
is "keywardd backup during the burst: exit 0" "$rc" 0
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/backup.log"
diag "$n_before creates acknowledged before the backup began, $((n_at_end - n_before)) while it ran, $(wc -l <"$T/acked") in all"
like "keywardd backup says what it copied" "$(cat "$T/backup.log")" "Copied the store '.*keyward.db' to '.*copy.db'"

# ---- the copy --------------------------------------------------------------------------

is "the copy is mode 0600" "$(stat -c %a "$T/copy.db" 2>&1)" 600
check "the copy is one file: no -wal, -shm or -journal beside it" \
        bash -c "! ls '$T'/copy.db?* 2>/dev/null | grep -q ."
check "no temporary file is left" bash -c "! ls '$T'/copy.db.tmp* 2>/dev/null | grep -q ."
is "PRAGMA integrity_check of the copy is ok" "$(sqlite3 "$T/copy.db" 'PRAGMA integrity_check' 2>&1)" ok
is "the copy is in WAL mode, like a store keywardd init made" \
        "$(sqlite3 "$T/copy.db" 'PRAGMA journal_mode' 2>&1)" wal
sqlite3 "$T/copy.db" 'SELECT id FROM secrets ORDER BY seq' >"$T/copy.ids" 2>&1
missing=$(sort "$T/pre" "$T/acked-before" | comm -23 - <(sort "$T/copy.ids"))
is "every key acknowledged before the backup began is in the copy" "$missing" ""

# A keywardd serving the copy with the same master key serves every key in it, byte for byte.
kwd_stop
KWD_DB=$T/copy.db kwd_start
args=()
while read -r id; do
        args+=(-o "$T/got.$id" "$KWD_URL/v0/keys/$id/")
done <"$T/copy.ids"
curl -sS --max-time 60 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" "${args[@]}"
tcheck "a keywardd on the copy serves every key with its data" python3 - "$T" "$PAD" <<'EOF'
import base64, json, sys
t, pad = sys.argv[1:3]
bad = []
n = 0
for key in open(t + "/copy.ids").read().split():
        if key.startswith("pre"):
                want = "pre-secret-%s-%s" % (key[3:], pad)
        else:
                want = "burst-secret-" + key[5:]
        try:
                j = json.load(open("%s/got.%s" % (t, key)))
                got = base64.b64decode(j["data"]["versions"][0]["data"]).decode()
                if j["status"] != "ok" or got != want:
                        bad.append("%s: %r" % (key, j)[:200])
        except Exception as e:
                bad.append("%s: %r" % (key, e))
        n += 1
if bad or n < 150:
        sys.exit("\n".join(bad[:10]) + "\n%d of %d keys wrong" % (len(bad), n))
EOF
kwd_stop

# ---- errors ----------------------------------------------------------------------------

"$KEYWARDD" backup --db "$T/keyward.db" 2>"$T/err.log"
is "backup without FILE: exit 2" "$?" 2
"$KEYWARDD" backup "$T/x.db" 2>"$T/err.log"
is "backup without --db: exit 2" "$?" 2
like "backup without --db says so" "$(cat "$T/err.log")" "--db is required"
"$KEYWARDD" backup --db "$T/keyward.db" "$T/keyward.db" 2>"$T/err.log"
is "backup onto the store itself: exit 1" "$?" 1
like "backup onto the store itself says why" "$(cat "$T/err.log")" "it is the store itself"
: >"$T/inuse.db-wal"
"$KEYWARDD" backup --db "$T/keyward.db" "$T/inuse.db" 2>"$T/err.log"
is "backup onto a name with a -wal file beside it: exit 1" "$?" 1
check "... and writes nothing there" test ! -e "$T/inuse.db"
"$KEYWARDD" backup --db "$T/nothere.db" "$T/x.db" 2>"$T/err.log"
is "backup of a missing store: exit 1" "$?" 1
like "backup of a missing store says so" "$(cat "$T/err.log")" "no keyward store"
check "... and writes no copy" test ! -e "$T/x.db"
"$KEYWARDD" backup --db "postgresql://keyward@127.0.0.1:1/keyward" "$T/x.db" 2>"$T/err.log"
is "backup of a PostgreSQL store: exit 1" "$?" 1
like "backup of a PostgreSQL store points at pg_dump" "$(cat "$T/err.log")" "pg_dump"

# A second backup replaces the first copy atomically; the result opens again.
"$KEYWARDD" backup --db "$T/keyward.db" "$T/copy.db" 2>"$T/err.log"
is "backup over an older copy: exit 0" "$?" 0
is "the new copy holds every key" "$(sqlite3 "$T/copy.db" 'SELECT count(*) FROM secrets')" \
        "$(sqlite3 "$T/keyward.db" 'SELECT count(*) FROM secrets')"

done_testing
