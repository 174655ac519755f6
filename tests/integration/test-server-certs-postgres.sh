#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Certificate expiry on PostgreSQL (a server the test starts itself): a store from before the
# not_after column (schema version 1) is refused by serve until keywardd init migrates it,
# keeping its keys and recording the certificate among them; then a certificate written through keywardd is listed by
# /v0/certificates/expiring/ and /metrics, and an update keeps its record.

. "$(dirname "$0")/lib.sh"

pg_start
export KWD_DB=$PG_URL
make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
as_alice() { req none "0u$ALICE" "$@"; }
sql() { psql -h 127.0.0.1 -p "$PG_PORT" -U keyward -Atc "$1" keyward; }

# A store as the previous keywardd left it: a key, no not_after column, schema version 1.
kwd_start
r=$(as_alice POST /v0/keys/ -d id=old_key --data-urlencode "data=$(printf old-secret | base64 -w0)")
expect "a key made before the migration" "$r" 200 0
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/old.key" \
        -subj /CN=old.example.com -days 5 -out "$T/old.pem" 2>/dev/null || bail "openssl req -x509 failed"
NA_OLD=$(date -u -d "$(openssl x509 -in "$T/old.pem" -noout -enddate | cut -d= -f2)" +%s)
r=$(as_alice POST /v0/keys/ -d id=old_cert --data-urlencode "data=$(base64 -w0 <"$T/old.pem")")
expect "a certificate key made before the migration" "$r" 200 0
V_OLD=$(jget "$(body "$r")" 'j["data"]')
kwd_stop
sql "ALTER TABLE secrets DROP COLUMN not_after; UPDATE keyward_meta SET value = 1 WHERE name = 'schema_version'" >/dev/null ||
        bail "cannot make a version 1 store"
"$KEYWARDD" serve --listen 127.0.0.1:0 --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key" \
        --client-ca "$T/pki/ca.pem" --db "$PG_URL" --master-key "$T/master.key" --audit-log - 2>"$T/old.log"
is "serve on the old schema: exit 1" "$?" 1
like "... and says to run keywardd init" "$(cat "$T/old.log")" "not initialised; run 'keywardd init'"
"$KEYWARDD" init --db "$PG_URL" --master-key "$T/master.key" 2>"$T/init2.log"
is "keywardd init migrates it: exit 0" "$?" 0
is "schema version 2 now" "$(sql "SELECT value FROM keyward_meta WHERE name = 'schema_version'")" 2
is "the old key's row has no certificate record" "$(sql "SELECT id FROM secrets WHERE not_after IS NULL")" old_key
is "init recorded the old certificate's" "$(sql "SELECT id FROM secrets WHERE not_after IS NOT NULL")" old_cert

kwd_start --certificate-metrics
r=$(as_alice GET /v0/keys/old_key/)
is "the old key is served after the migration" \
        "$(jget "$(body "$r")" 'j["data"]["versions"][0]["data"]' | base64 -d)" old-secret
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/c.key" \
        -subj /CN=pg.example.com -days 7 -out "$T/c.pem" 2>/dev/null || bail "openssl req -x509 failed"
NA=$(date -u -d "$(openssl x509 -in "$T/c.pem" -noout -enddate | cut -d= -f2)" +%s)
r=$(as_alice POST /v0/keys/ -d id=pg_cert --data-urlencode "data=$(base64 -w0 <"$T/c.pem")")
expect "create a certificate key" "$r" 200 0
V=$(jget "$(body "$r")" 'j["data"]')
r=$(as_alice GET /v0/certificates/expiring/)
is "expiring lists it, after the certificate stored before the migration" "$(jget "$(body "$r")" 'j["data"]')" \
        "[{\"id\": \"old_cert\", \"version\": $V_OLD, \"not_after\": $NA_OLD}, {\"id\": \"pg_cert\", \"version\": $V, \"not_after\": $NA}]"
r=$(as_alice PUT /v0/keys/pg_cert/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"Read"}')
expect "an ACL change" "$r" 200 0
metrics=$(curl -sS --max-time 10 --cacert "$T/pki/ca.pem" "$KWD_URL/metrics")
like "/metrics has its series after the update" "$metrics" \
        "keyward_certificate_not_after_seconds\\{key=\"pg_cert\",version=\"$V\"\\} $NA"
is "two rows hold a certificate record" "$(sql "SELECT count(*) FROM secrets WHERE not_after IS NOT NULL")" 2

kwd_stop
done_testing
