#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Backing up a PostgreSQL store as keywardd(8) says: `keywardd backup` refuses a postgresql://
# URL and points at pg_dump; a pg_dump of a store keywardd serves and writes, restored with
# pg_restore into a new database, is served by a keywardd with the same master key, every key
# with its data and ACL.

. "$(dirname "$0")/lib.sh"

pg_start
export KWD_DB=$PG_URL
make_pki
kwd_init
ADMIN=$(kwd_token admin) || bail "cannot mint a token"
kwd_start

as_admin() { req none "0u$ADMIN" "$@"; }

"$KEYWARDD" backup --db "$PG_URL" "$T/copy.db" 2>"$T/err.log"
is "keywardd backup of a PostgreSQL store: exit 1" "$?" 1
like "... and the message points at pg_dump and keywardd(8)" "$(cat "$T/err.log")" "pg_dump.*keywardd\(8\)"
check "... and writes nothing" test ! -e "$T/copy.db"

n=0
for i in $(seq 30); do
        r=$(as_admin POST /v0/keys/ -d "id=pgb$i" --data-urlencode "data=$(b64 "pg-backup-secret-$i")")
        [[ "$r" == '200 {"status":"ok"'* ]] && n=$((n + 1))
done
is "30 keys made" "$n" 30
r=$(as_admin POST /v0/keys/pgb1/versions/ --data-urlencode "data=$(b64 pg-backup-secret-1b)")
V=$(jget "$(body "$r")" 'j["data"]')
r=$(as_admin PUT "/v0/keys/pgb1/versions/$V/" --data-urlencode 'status="Primary"')
expect "promote a second version of pgb1" "$r" 200 0 ""
r=$(as_admin PUT /v0/keys/pgb2/access/ --data-urlencode 'access={"type":"Machine","id":"host1.example.com","access":"Read"}')
expect "grant host1 read on pgb2" "$r" 200 0 ""
before1=$(jget "$(body "$(as_admin GET '/v0/keys/pgb1/?status="Inactive"' -g --path-as-is)")" 'j["data"]')

# The dump, while the server goes on writing.
(
        for i in $(seq 31 60); do
                [ -e "$T/stop" ] && break
                REQ_BODY=$T/body.w as_admin POST /v0/keys/ -d "id=pgb$i" --data-urlencode "data=$(b64 "pg-backup-secret-$i")" >/dev/null
        done
) &
W=$!
BG_PIDS+=("$W")
"$PG_BIN/pg_dump" -h 127.0.0.1 -p "$PG_PORT" -U keyward --format=custom --file="$T/keyward.dump" keyward 2>"$T/dump.log"
is "pg_dump while keywardd writes: exit 0" "$?" 0
touch "$T/stop"
wait "$W"
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U keyward keyward_restored || bail "createdb failed"
"$PG_BIN/pg_restore" -h 127.0.0.1 -p "$PG_PORT" -U keyward --dbname=keyward_restored "$T/keyward.dump" 2>"$T/restore.log"
is "pg_restore into a new database: exit 0" "$?" 0
[ -s "$T/restore.log" ] && sed 's/^/# /' "$T/restore.log"

psql -h 127.0.0.1 -p "$PG_PORT" -U keyward -Atc 'SELECT id FROM secrets ORDER BY seq' keyward_restored >"$T/restored.ids"
kwd_stop
KWD_DB="postgresql://keyward@127.0.0.1:$PG_PORT/keyward_restored" kwd_start
args=()
while read -r id; do
        args+=(-o "$T/got.$id" "$KWD_URL/v0/keys/$id/")
done <"$T/restored.ids"
curl -sS --max-time 60 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ADMIN" "${args[@]}"
tcheck "a keywardd on the restored database serves every key with its data" python3 - "$T" <<'EOF2'
import base64, json, sys
t = sys.argv[1]
ids = open(t + "/restored.ids").read().split()
bad = []
for key in ids:
        want = "pg-backup-secret-" + key[3:] + ("b" if key == "pgb1" else "")
        try:
                j = json.load(open("%s/got.%s" % (t, key)))
                got = [base64.b64decode(v["data"]).decode() for v in j["data"]["versions"] if v["status"] == "Primary"][0]
                if j["status"] != "ok" or got != want:
                        bad.append("%s: %r" % (key, j)[:200])
        except Exception as e:
                bad.append("%s: %r" % (key, e))
if bad or not all("pgb%d" % i in ids for i in range(1, 31)):
        sys.exit("\n".join(bad[:10]) + "\n%d wrong of %d; ids %r" % (len(bad), len(ids), ids[:40]))
EOF2
is "pgb1 on the restored database: both versions and statuses as before" \
        "$(jget "$(body "$(as_admin GET '/v0/keys/pgb1/?status="Inactive"' -g --path-as-is)")" 'j["data"]')" "$before1"
r=$(req machine 0thost1.example.com GET /v0/keys/pgb2/)
expect "pgb2's ACL came along: host1 reads it" "$r" 200 0 ""

kwd_stop
done_testing
