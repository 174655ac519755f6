#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Certificate expiry: keywardd records the notAfter of versions that are X.509 certificates
# (PEM, DER, a chain's first certificate; made here with openssl) when they are written, and
# nothing for other data, even data that starts like PEM. /metrics lists
# keyward_certificate_not_after_seconds for primary and active versions with
# --certificate-metrics (and not without). GET /v0/certificates/expiring/ and
# `keyward expiring` list the keys the caller may read whose primary expires within the
# window, and no other key.

. "$(dirname "$0")/lib.sh"

[ -x "$KEYWARD" ] || skip_all "$KEYWARD is not built"

make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
BOB=$(kwd_token bob) || bail "cannot mint a token"
kwd_start --certificate-metrics

b64f() { base64 -w0 <"$1"; }
as_alice() { req none "0u$ALICE" "$@"; }
# not_after FILE [der]: the certificate's notAfter in Unix seconds, as openssl reads it.
not_after() {
        local d
        d=$(openssl x509 -in "$1" ${2:+-inform DER} -noout -enddate) || return 1
        date -u -d "${d#notAfter=}" +%s
}
C=$T/certs
mkdir -p "$C"
selfsigned() { # NAME DAYS
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/$1.key" \
                -subj "/CN=$1.example.com" -days "$2" -out "$C/$1.pem" 2>/dev/null || bail "openssl req -x509 failed"
}

selfsigned soon 10
selfsigned later 90
selfsigned der 20
openssl x509 -in "$C/der.pem" -outform DER -out "$C/der.der" || bail "openssl x509 -outform DER failed"
selfsigned ca 365
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/leaf.key" \
        -subj /CN=leaf.example.com -out "$C/leaf.csr" 2>/dev/null || bail "openssl req -new failed"
openssl x509 -req -in "$C/leaf.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial -days 5 \
        -out "$C/leaf.pem" 2>/dev/null || bail "openssl x509 -req failed"
cat "$C/leaf.pem" "$C/ca.pem" >"$C/chain.pem"
# An expired certificate: openssl req cannot date one in the past, openssl ca can.
cat >"$C/ca.cnf" <<EOF
[ca]
default_ca = d
[d]
database = $C/index.txt
new_certs_dir = $C
serial = $C/serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
EOF
: >"$C/index.txt"
echo 01 >"$C/serial"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/expired.key" \
        -subj /CN=expired.example.com -out "$C/expired.csr" 2>/dev/null || bail "openssl req -new failed"
openssl ca -batch -config "$C/ca.cnf" -selfsign -keyfile "$C/expired.key" -in "$C/expired.csr" \
        -startdate 20200101000000Z -enddate 20200601000000Z -notext -out "$C/expired.pem" 2>/dev/null ||
        bail "openssl ca failed"
printf -- '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n' >"$C/fake.pem"
printf -- '-----BEGIN PGP MESSAGE-----\nhQEMA1234\n-----END PGP MESSAGE-----\n' >"$C/pgp.txt"

NA_SOON=$(not_after "$C/soon.pem")
NA_LATER=$(not_after "$C/later.pem")
NA_DER=$(not_after "$C/der.der" der)
NA_LEAF=$(not_after "$C/leaf.pem")
NA_EXPIRED=$(not_after "$C/expired.pem")
check "the leaf of the chain expires before its CA" [ "$NA_LEAF" -lt "$(not_after "$C/ca.pem")" ]

create() { # ID FILE
        local r
        r=$(as_alice POST /v0/keys/ -d "id=$1" --data-urlencode "data=$(b64f "$2")")
        expect "create $1" "$r" 200 0
        jget "$(body "$r")" 'j["data"]' >"$T/vid.$1"
}
create c_soon "$C/soon.pem"
create c_later "$C/later.pem"
create c_der "$C/der.der"
create c_chain "$C/chain.pem"
create c_expired "$C/expired.pem"
create c_fake "$C/fake.pem"
create c_pgp "$C/pgp.txt"
create c_key "$C/soon.key" # a private key alone is no certificate
# A key whose second version is a certificate: primary only once promoted.
printf 'plain secret' >"$C/plain.txt"
create c_rot "$C/plain.txt"
r=$(as_alice POST /v0/keys/c_rot/versions/ --data-urlencode "data=$(b64f "$C/soon.pem")")
expect "add a certificate version to c_rot" "$r" 200 0
V_ROT=$(jget "$(body "$r")" 'j["data"]')
vid() { cat "$T/vid.$1"; }

# ---- /metrics -------------------------------------------------------------------------

metrics() { curl -sS --max-time 10 --cacert "$T/pki/ca.pem" "$KWD_URL/metrics"; }
metrics >"$T/metrics"
series() { grep '^keyward_certificate_not_after_seconds{' "$T/metrics" | sort; }
want=$(sort <<EOF
keyward_certificate_not_after_seconds{key="c_soon",version="$(vid c_soon)"} $NA_SOON
keyward_certificate_not_after_seconds{key="c_later",version="$(vid c_later)"} $NA_LATER
keyward_certificate_not_after_seconds{key="c_der",version="$(vid c_der)"} $NA_DER
keyward_certificate_not_after_seconds{key="c_chain",version="$(vid c_chain)"} $NA_LEAF
keyward_certificate_not_after_seconds{key="c_expired",version="$(vid c_expired)"} $NA_EXPIRED
keyward_certificate_not_after_seconds{key="c_rot",version="$V_ROT"} $NA_SOON
EOF
)
is "/metrics: one series per certificate version (PEM, DER, chain leaf, expired, an active version), none for other data" \
        "$(series)" "$want"
like "/metrics: the series has HELP and TYPE gauge" "$(cat "$T/metrics")" \
        "# TYPE keyward_certificate_not_after_seconds gauge"
tcheck "the whole /metrics, the certificate family with the request histograms, is valid Prometheus text" \
        python3 "$KEYWARD_TOP_SRCDIR/tests/integration/prom-check.py" "$T/metrics" \
        "keyward_certificate_not_after_seconds{key=\"c_der\",version=\"$(vid c_der)\"}"

# Deactivating a version drops its series; promoting keeps it (now primary).
r=$(as_alice PUT "/v0/keys/c_rot/versions/$V_ROT/" --data-urlencode 'status="Primary"')
expect "promote the certificate version of c_rot" "$r" 200 0
r=$(as_alice POST /v0/keys/c_later/versions/ --data-urlencode "data=$(b64f "$C/plain.txt")")
V_LATER2=$(jget "$(body "$r")" 'j["data"]')
r=$(as_alice PUT "/v0/keys/c_later/versions/$V_LATER2/" --data-urlencode 'status="Primary"')
expect "promote a plain version over c_later's certificate" "$r" 200 0
r=$(as_alice PUT "/v0/keys/c_later/versions/$(vid c_later)/" --data-urlencode 'status="Inactive"')
expect "deactivate c_later's certificate version" "$r" 200 0
metrics >"$T/metrics"
check "/metrics: an inactive certificate version has no series" bash -c "! grep -q 'key=\"c_later\"' '$T/metrics'"
like "/metrics: the promoted certificate keeps its series" "$(series)" "key=\"c_rot\",version=\"$V_ROT\"\\} $NA_SOON"

# ---- GET /v0/certificates/expiring/ ---------------------------------------------------

ids() { jget "$(body "$1")" '" ".join(e["id"] for e in j["data"])'; }
r=$(as_alice GET /v0/certificates/expiring/)
expect "expiring: 200 ok" "$r" 200 0
is "expiring (default 30 days): expired first, then soonest; chains by their leaf; no other data" \
        "$(ids "$r")" "c_expired c_chain c_rot c_soon c_der"
is "expiring: each entry has id, version and not_after" \
        "$(jget "$(body "$r")" '[e for e in j["data"] if e["id"] == "c_chain"][0]')" \
        "{\"id\": \"c_chain\", \"version\": $(vid c_chain), \"not_after\": $NA_LEAF}"
r=$(as_alice GET '/v0/certificates/expiring/?within=864000')
is "expiring within 10 days" "$(ids "$r")" "c_expired c_chain c_rot c_soon"
r=$(as_alice GET '/v0/certificates/expiring/?within=0')
is "expiring within 0: the expired one only" "$(ids "$r")" "c_expired"
r=$(as_alice GET '/v0/certificates/expiring/?within=soon')
expect "expiring with a bad window: 400/11" "$r" 400 11
r=$(as_alice POST /v0/certificates/expiring/)
expect "POST expiring: 405" "$r" 405 8

# Bob reads nothing of alice's until she grants him c_soon.
r=$(req none "0u$BOB" GET '/v0/certificates/expiring/?within=31536000')
expect "bob: expiring answers" "$r" 200 0
is "bob, who may read no key, sees none" "$(ids "$r")" ""
r=$(as_alice PUT /v0/keys/c_soon/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"Read"}')
expect "grant bob read on c_soon" "$r" 200 0
r=$(req none "0u$BOB" GET '/v0/certificates/expiring/?within=31536000')
is "bob sees the one key he may read" "$(ids "$r")" "c_soon"
r=$(req machine 0thost1.example.com GET /v0/certificates/expiring/)
is "a machine with no grants sees none" "$(ids "$r")" ""
r=$(req none "" GET /v0/certificates/expiring/)
expect "expiring without authentication: 401" "$r" 401 5

# ---- keyward expiring -----------------------------------------------------------------

kw() { env KEYWARD_SERVER="$KWD_URL" KEYWARD_SERVER_CA="$T/pki/ca.pem" KEYWARD_TOKEN="$ALICE" \
        timeout 30 "$KEYWARD" "$@" >"$T/out" 2>"$T/err"; }
kw expiring
is "keyward expiring: exit 0" "$?" 0
is "keyward expiring lists the keys, soonest first" "$(cut -f1 "$T/out" | tr '\n' ' ')" \
        "c_expired c_chain c_rot c_soon c_der "
like "keyward expiring shows version, date and days" "$(grep '^c_expired' "$T/out")" \
        "^c_expired	$(vid c_expired)	2020-06-01 00:00:00 UTC	expired [0-9]+ days ago$"
like "keyward expiring shows the days left" "$(grep '^c_soon' "$T/out")" "expires in (9|10) days$"
kw expiring --within 90d --json
is "keyward expiring --within 90d --json: the server's list" \
        "$(jget "$(cat "$T/out")" '" ".join(e["id"] for e in j)')" "c_expired c_chain c_rot c_soon c_der"
kw expiring --within 1h
is "keyward expiring --within 1h" "$(cut -f1 "$T/out" | tr '\n' ' ')" "c_expired "
kw expiring --within soon
is "keyward expiring --within soon: exit 2" "$?" 2
like "... says what a duration is" "$(cat "$T/err")" "duration"
KEYWARD_TOKEN=$BOB
env KEYWARD_SERVER="$KWD_URL" KEYWARD_SERVER_CA="$T/pki/ca.pem" KEYWARD_TOKEN="$BOB" \
        timeout 30 "$KEYWARD" expiring --within 365d >"$T/out" 2>"$T/err"
is "keyward expiring as bob: only what bob may read" "$(cut -f1 "$T/out" | tr '\n' ' ')" "c_soon "

# ---- without --certificate-metrics; and nothing in the logs ----------------------------

kwd_stop
kwd_start
metrics >"$T/metrics"
check "/metrics without --certificate-metrics lists no certificate" \
        bash -c "! grep -q keyward_certificate_not_after_seconds '$T/metrics'"
r=$(as_alice GET /v0/certificates/expiring/)
is "expiring works without --certificate-metrics" "$(ids "$r")" "c_expired c_chain c_rot c_soon c_der"
kwd_stop

# ---- certificates stored before the not_after column: keywardd init records them -------
# A store from before schema 3 (the column dropped, user_version 2), as an upgrade finds it:
# init migrates it and reads the certificates already there, so that they are listed too.
# One row moved to another id, so that its versions no longer open (the id is in their
# associated data): init warns about it and records the rest.
sqlite3 "$T/keyward.db" "DROP INDEX secrets_not_after; ALTER TABLE secrets DROP COLUMN not_after; PRAGMA user_version = 2;
        UPDATE secrets SET id = 'c_moved' WHERE id = 'c_pgp'" || bail "cannot make a schema 2 store"
"$KEYWARDD" init --db "$T/keyward.db" --master-key "$T/master.key" 2>"$T/init-old.log"
is "keywardd init on the old store: exit 0" "$?" 0
like "... warns of the key that does not open, and goes on" "$(cat "$T/init-old.log")" "Cannot open the versions of key 'c_moved'"
is "schema 3 now" "$(sqlite3 "$T/keyward.db" "PRAGMA user_version")" 3
is "init recorded the notAfter of the six certificate keys already stored" \
        "$(sqlite3 "$T/keyward.db" "SELECT count(*) FROM secrets WHERE not_after IS NOT NULL")" 6
kwd_start
r=$(as_alice GET /v0/certificates/expiring/)
is "expiring lists the certificates stored before the migration" "$(ids "$r")" "c_expired c_chain c_rot c_soon c_der"
r=$(as_alice GET /v0/keys/c_soon/)
is "their data is intact" "$(jget "$(body "$r")" 'j["data"]["versions"][0]["data"]')" "$(b64f "$C/soon.pem")"
kwd_stop
"$KEYWARDD" init --db "$T/keyward.db" --master-key "$T/master.key" 2>"$T/init-again.log"
is "init again: exit 0, nothing to record" "$?" 0
check "no certificate or key data in keywardd's log or the audit log" \
        bash -c "! grep -q -e 'BEGIN' -e '$(sed -n 2p "$C/soon.pem" | cut -c1-40)' '$T/keywardd.log' '$T/audit.log'"

done_testing
