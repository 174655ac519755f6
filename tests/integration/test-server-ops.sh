#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Operating a real keywardd: /healthz, /metrics, the audit log (one line per request, Knox's
# fields, and never a secret byte in any encoding, nor in the daemon's own log), SIGHUP
# reopening the audit log, SIGTERM, `keywardd init` and `token`, the master key's mode,
# usage errors, and a --config file in place of flags.

. "$(dirname "$0")/lib.sh"

make_pki
kwd_init
ALICE=$(kwd_token alice --group admins) || bail "cannot mint a token"
kwd_start

as_alice() { req none "0u$ALICE" "$@"; }
# Audit lines, the chain's checkpoint lines aside.
lines() { grep -vc '^{"checkpoint":' "$1" | tr -d ' '; }
metric() {
        awk -v m="$1" '$1 == m { print $2 }' "$T/metrics"
}
N_REQ=0 # requests made, for the audit line count

# ---- /healthz and /metrics ------------------------------------------------------------

h=$(curl -sS --max-time 10 --cacert "$T/pki/ca.pem" -D "$T/h.headers" "$KWD_URL/healthz")
N_REQ=$((N_REQ + 1))
is "/healthz answers ok without authentication" "$h" "ok"
like "/healthz is text/plain" "$(tr -d '\r' <"$T/h.headers")" '^Content-Type: text/plain'

# Two distinctive secrets; their bytes make '+', '/' and '=' appear in base64.
SECRET1="kw-secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '\xfb\xef\xbe%s\xff\xfe' "$SECRET1" >"$T/secret1"
SECRET2="kw-other-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\x00\xfa\xfb' "$SECRET2" >"$T/secret2"
D1=$(base64 -w0 <"$T/secret1")
D2=$(base64 -w0 <"$T/secret2")

r=$(as_alice POST /v0/keys/ -d id=k1 --data-urlencode "data=$D1" --data-urlencode 'acl=[]')
N_REQ=$((N_REQ + 1))
expect "create a key with a distinctive secret" "$r" 200 0 ""
r=$(as_alice POST /v0/keys/k1/versions/ --data-urlencode "data=$D2")
N_REQ=$((N_REQ + 1))
expect "add a version with another" "$r" 200 0 ""
for i in 1 2 3; do
        r=$(as_alice GET '/v0/keys/k1/?status="Inactive"' -g --path-as-is)
        N_REQ=$((N_REQ + 1))
done
cp "$T/body" "$T/get.body"
is "the secrets read back" "$(jget "$(body "$r")" '" ".join(v["data"] for v in j["data"]["versions"])')" "$D1 $D2"
r=$(as_alice GET /v0/keys/nokey/)
N_REQ=$((N_REQ + 1))
r=$(req none "" GET /v0/keys/k1/)
N_REQ=$((N_REQ + 1))
r=$(req none "0ubogus" GET /v0/keys/k1/)
N_REQ=$((N_REQ + 1))
r=$(as_alice PATCH /v0/keys/k1/)
N_REQ=$((N_REQ + 1))
r=$(as_alice GET /v0/nothing/)
N_REQ=$((N_REQ + 1))
r=$(as_alice POST /v0/keys/ -d id=k1 --data-urlencode "data=$D1")
N_REQ=$((N_REQ + 1))
expect "a create that fails still carries the secret in its request" "$r" 400 2
r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"Read"}')
N_REQ=$((N_REQ + 1))
r=$(as_alice GET "/v0/keys/?k1=NONE&nokey=x")
N_REQ=$((N_REQ + 1))
# For the TLS and principal fields of the audit log: SNI, TLS 1.2, and a mux principal.
r=$(curl -sS --max-time 10 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" \
        --resolve "localhost:${KWD_ADDR##*:}:127.0.0.1" "https://localhost:${KWD_ADDR##*:}/v0/auth/whoami/")
N_REQ=$((N_REQ + 1))
expect "a request with SNI localhost" "200 $r" 200 0 ""
r=$(as_alice GET /v0/auth/whoami/ --tls-max 1.2)
N_REQ=$((N_REQ + 1))
expect "a request over TLS 1.2" "$r" 200 0 ""
r=$(req both 0thost2.example.com GET /v0/auth/whoami/)
N_REQ=$((N_REQ + 1))
expect "a request as machine and service at once" "$r" 200 0 ""

curl -sS --max-time 10 --cacert "$T/pki/ca.pem" "$KWD_URL/metrics" >"$T/metrics"
N_REQ=$((N_REQ + 1))
is "/metrics: requests of GET key with code 0" "$(metric 'keyward_requests_total{route="getkey",code="0",status="200"}')" 3
is "/metrics: GET key of a missing key (code 4)" "$(metric 'keyward_requests_total{route="getkey",code="4",status="404"}')" 1
is "/metrics: GET key without authentication (code 5)" "$(metric 'keyward_requests_total{route="getkey",code="5",status="401"}')" 2
is "/metrics: creates, ok and failed" "$(awk '$1 ~ /^keyward_requests_total\{route="postkeys",/ { s += $2 } END { print s }' "$T/metrics")" 2
is "/metrics: a latency histogram of the six GET key" \
        "$(metric 'keyward_request_duration_seconds_bucket{route="getkey",le="+Inf"}') $(metric 'keyward_request_duration_seconds_count{route="getkey"}')" "6 6"
like "/metrics: open connections" "$(cat "$T/metrics")" '^keyward_open_connections [0-9]+$'
like "/metrics: watchers" "$(cat "$T/metrics")" '^keyward_watchers 0$'
like "/metrics: auth failures (two 401s)" "$(cat "$T/metrics")" '^keyward_auth_failures_total 2$'
like "/metrics: TYPE lines" "$(cat "$T/metrics")" '^# TYPE keyward_requests_total counter$'
tcheck "/metrics: the whole page is valid Prometheus text, its histogram families included" \
        python3 "$KEYWARD_TOP_SRCDIR/tests/integration/prom-check.py" "$T/metrics" \
        'keyward_request_duration_seconds_count{route="getkey"}' 'keyward_open_connections'

# ---- the audit log -----------------------------------------------------------------------

# Audit lines are written after the reply: give the last one a moment.
for _ in $(seq 40); do
        [ "$(lines "$T/audit.log")" -ge "$N_REQ" ] && break
        sleep 0.05
done
is "one audit line per request" "$(lines "$T/audit.log")" "$N_REQ"
tcheck "every audit line has Knox's fields" python3 - "$T/audit.log" <<'EOF'
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
req_fields = ["method", "path", "parameters", "parsed_query_string", "principal", "fallback_principals",
              "auth_type", "request_uri", "remote_addr", "tls_server", "tls_cipher", "tls_version",
              "tls_resumed", "tls_session_id"]
for n, line in enumerate(lines, 1):
        j = json.loads(line)
        if "checkpoint" in j:
                continue
        for f in ["id", "@timestamp", "service", "version", "host", "payload", "payload_encoding"]:
                assert f in j, "line %d: no %s" % (n, f)
        assert re.fullmatch(r"[A-Za-z0-9]{20}", j["id"]), j["id"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", j["@timestamp"]), j["@timestamp"]
        assert j["payload_encoding"] == "JSON" and j["host"] == "testhost"
        p = j["payload"]
        for f in ["type", "code", "status_code", "msg", "userAgent", "request"]:
                assert f in p, "line %d: no payload.%s" % (n, f)
        assert p["type"] == "access" and p["userAgent"].startswith("curl/")
        for f in req_fields:
                assert f in p["request"], "line %d: no request.%s" % (n, f)
        assert re.fullmatch(r"127\.0\.0\.1:\d+", p["request"]["remote_addr"])
        assert p["request"]["request_uri"] == ""
        assert p["request"]["tls_version"] in (771, 772)
EOF
tcheck "audit: the create is logged with its parameters, data as <DATA>" python3 - "$T/audit.log" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if not l.startswith('{"checkpoint":')]
creates = [l["payload"] for l in lines if l["payload"]["request"]["method"] == "POST"
           and l["payload"]["request"]["path"] == "/v0/keys/"]
assert len(creates) == 2, creates
p = creates[0]
assert p["code"] == 0 and p["status_code"] == 200 and p["msg"] == ""
assert p["request"]["parameters"] == {"acl": "[]", "data": "<DATA>", "id": "k1"}, p["request"]["parameters"]
assert p["request"]["principal"] == "alice" and p["request"]["fallback_principals"] == ["alice"]
assert p["request"]["auth_type"] == "user"
assert creates[1]["code"] == 2 and creates[1]["status_code"] == 400 and creates[1]["msg"] == "Key k1 already exists"
gets = [l["payload"] for l in lines if l["payload"]["request"]["path"] == "/v0/keys/k1/"
        and l["payload"]["request"]["method"] == "GET"]
ok = [g for g in gets if g["code"] == 0]
assert len(ok) == 3 and ok[0]["request"]["parameters"] == {"keyID": "k1", "status": '"Inactive"'}, ok
fails = [g for g in gets if g["code"] == 5]
assert len(fails) == 2 and all(f["status_code"] == 401 and f["request"]["principal"] == "" for f in fails), fails
lists = [l["payload"] for l in lines if l["payload"]["request"]["path"] == "/v0/keys/"
         and l["payload"]["request"]["method"] == "GET"]
assert lists[0]["request"]["parsed_query_string"] == {"k1": "NONE", "nokey": "x"}, lists
EOF
tcheck "audit: SNI, TLS 1.2 session id and the mux principal" python3 - "$T/audit.log" <<'EOF'
import base64, json, sys
lines = [json.loads(l)["payload"] for l in open(sys.argv[1]) if not l.startswith('{"checkpoint":')]
who = [l["request"] for l in lines if l["request"]["path"] == "/v0/auth/whoami/"]
assert len(who) == 3, who
sni, tls12, mux = who
assert sni and sni["tls_server"] == "localhost", sni
assert sni["tls_version"] == 772 and sni["tls_session_id"] is None and sni["tls_cipher"] > 0, sni
assert tls12 and tls12["tls_version"] == 771 and tls12["tls_server"] == "", tls12
assert len(base64.b64decode(tls12["tls_session_id"])) == 12, tls12
assert mux and mux["principal"] == "host2.example.com", mux
assert mux["fallback_principals"] == ["host2.example.com", "spiffe://example.com/svc2"], mux
assert mux["auth_type"].startswith("mux[") and "mtls=>machine" in mux["auth_type"], mux
EOF
like 'audit: "<DATA>" as Go escapes it' "$(grep -c 'u003cDATA\\u003e' "$T/audit.log")" '^[1-9]'

# No secret byte, in any encoding, in the audit log or in keywardd's own log.
cat >"$T/nosecret.py" <<'EOF'
import base64, sys, urllib.parse
t = sys.argv[1]
needles = {}
for name in ("secret1", "secret2"):
        s = open("%s/%s" % (t, name), "rb").read()
        text = s.strip(bytes(range(0, 32)) + bytes(range(0x80, 0x100)))
        needles[name + " raw"] = text
        needles[name + " hex"] = s.hex().encode()
        std = base64.b64encode(s)
        for enc, b in (("std", std), ("url", base64.urlsafe_b64encode(s))):
                needles["%s base64 %s" % (name, enc)] = b
                needles["%s base64 %s unpadded" % (name, enc)] = b.rstrip(b"=")
                # The secret at any alignment inside a longer value: the stable middle part.
                for shift in range(3):
                        e = base64.b64encode(bytes(shift) + s) if enc == "std" else \
                                base64.urlsafe_b64encode(bytes(shift) + s)
                        needles["%s base64 %s shift %d" % (name, enc, shift)] = e[4:-4]
        needles[name + " percent-encoded base64"] = urllib.parse.quote(std.decode(), safe="").encode()
        needles[name + " percent-encoded base64 (+ kept)"] = urllib.parse.quote(std.decode(), safe="+").encode()
        needles[name + " percent-encoded raw"] = urllib.parse.quote(s, safe="").encode()
        needles[name + " JSON-escaped raw"] = "".join(
                c if 32 <= ord(c) < 127 else "\\u%04x" % ord(c) for c in s.decode("latin-1")).encode()
bad = []
for f in sys.argv[2:]:
        try:
                data = open(f, "rb").read()
        except FileNotFoundError:
                continue
        for what, n in needles.items():
                if len(n) >= 8 and n.lower() in data.lower():
                        bad.append("%s in %s" % (what, f))
if bad:
        sys.exit("\n".join(sorted(set(bad))))
EOF
tcheck "the secrets appear nowhere in the audit log or the daemon's log" \
        python3 "$T/nosecret.py" "$T" "$T/audit.log" "$T/keywardd.log" "$T/token.log" "$T/init.log"
check "that check finds the secrets where they are (a GET reply)" \
        bash -c '! python3 "$1/nosecret.py" "$1" "$1/get.body" 2>/dev/null' _ "$T"

# ---- SIGHUP reopens the audit log --------------------------------------------------------

mv "$T/audit.log" "$T/audit.log.1"
kill -HUP "$KWD_PID"
for _ in $(seq 100); do
        [ -e "$T/audit.log" ] && break
        sleep 0.05
done
check "SIGHUP: a new audit.log is created" [ -e "$T/audit.log" ]
old=$(lines "$T/audit.log.1")
for i in 1 2 3; do
        as_alice GET /v0/keys/k1/ >/dev/null
done
for _ in $(seq 40); do
        [ "$(lines "$T/audit.log")" -ge 3 ] && break
        sleep 0.05
done
is "SIGHUP: new requests go to the new file" "$(lines "$T/audit.log")" 3
is "SIGHUP: the old file gets no more lines" "$(lines "$T/audit.log.1")" "$old"
kill -0 "$KWD_PID" 2>/dev/null
check "SIGHUP: keywardd keeps running" [ $? -eq 0 ]

# SIGHUP also reloads the server certificate: swap in one from another CA.
"$TEST_PKI" "$T/pki2" >/dev/null || bail "cannot make a second PKI"
cp "$T/pki/server.pem" "$T/server-old.pem"
cp "$T/pki/server.key" "$T/server-old.key"
cp "$T/pki2/server.pem" "$T/pki/server.pem"
cp "$T/pki2/server.key" "$T/pki/server.key"
kill -HUP "$KWD_PID"
for _ in $(seq 100); do
        curl -sS --max-time 5 --cacert "$T/pki2/ca.pem" -o /dev/null "$KWD_URL/healthz" 2>/dev/null && break
        sleep 0.05
done
check "SIGHUP: new connections get the new server certificate" \
        curl -sS --max-time 5 --cacert "$T/pki2/ca.pem" -o /dev/null "$KWD_URL/healthz"
check "SIGHUP: the old one is gone" bash -c '! curl -sS --max-time 5 --cacert "$1" -o /dev/null "$2" 2>/dev/null' \
        _ "$T/pki/ca.pem" "$KWD_URL/healthz"
r=$(curl -sS --max-time 5 --cacert "$T/pki2/ca.pem" --cert "$T/pki/machine.pem" --key "$T/pki/machine.key" \
        -H "Authorization: 0u$ALICE" "$KWD_URL/v0/keys/k1/")
expect "SIGHUP: and serving keys" "200 $r" 200 0 ""
# Put the first certificate back for the rest.
cp "$T/server-old.pem" "$T/pki/server.pem"
cp "$T/server-old.key" "$T/pki/server.key"
kill -HUP "$KWD_PID"
for _ in $(seq 100); do
        curl -sS --max-time 5 --cacert "$T/pki/ca.pem" -o /dev/null "$KWD_URL/healthz" 2>/dev/null && break
        sleep 0.05
done

# ---- SIGTERM, init, token, the master key --------------------------------------------

kill -TERM "$KWD_PID"
kwd_wait_exit "$KWD_PID" 10
is "SIGTERM: keywardd exits 0" "$?" 0
KWD_PID=
check "the daemon's log says nothing of the secrets after a clean stop either" \
        bash -c '! grep -qF "$1" "$2"' _ "$SECRET1" "$T/keywardd.log"

is "the master key file is 0600" "$(stat -c %a "$T/master.key")" 600
sum=$(sha256sum <"$T/master.key")
"$KEYWARDD" init --db "$T/keyward.db" --master-key "$T/master.key" 2>"$T/init2.log"
is "keywardd init a second time succeeds" "$?" 0
is "and keeps the master key" "$(sha256sum <"$T/master.key")" "$sum"
kwd_start
r=$(as_alice GET /v0/keys/k1/)
expect "and the keys still decrypt" "$r" 200 0 ""
kwd_stop

tok=$(kwd_token carol --group g1 --group g2)
is "keywardd token prints exactly one line" "$(printf '%s\n' "$tok" | wc -l)" 1
like "a token of at least 256 bits" "$tok" '^[A-Za-z0-9_=+/-]{43,}$'
"$KEYWARDD" token --db "$T/keyward.db" --master-key "$T/master.key" --user dave >"$T/tok.out" 2>/dev/null
is "keywardd token: one line on stdout, ended by a newline" "$(wc -l <"$T/tok.out") $(tail -c 1 "$T/tok.out" | od -An -tx1 | tr -d ' ')" "1 0a"
check "two tokens differ" [ "$tok" != "$(cat "$T/tok.out")" ]

cp "$T/master.key" "$T/mk644"
chmod 0644 "$T/mk644"
timeout 10 "$KEYWARDD" serve --listen 127.0.0.1:0 --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key" \
        --client-ca "$T/pki/ca.pem" --db "$T/keyward.db" --master-key "$T/mk644" 2>"$T/mk644.log"
rc=$?
check "serve refuses a master key of mode 0644 (exit $rc)" [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
like "with a message naming the file" "$(cat "$T/mk644.log")" 'mk644'
timeout 10 "$KEYWARDD" token --db "$T/keyward.db" --master-key "$T/mk644" --user x >/dev/null 2>&1
rc=$?
check "token refuses it too (exit $rc)" [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]

timeout 10 "$KEYWARDD" serve --listen 127.0.0.1:0 --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key" \
        --client-ca "$T/pki/ca.pem" --db "$T/empty.db" --master-key "$T/master.key" 2>"$T/empty.log"
rc=$?
check "serve refuses an uninitialised database (exit $rc)" [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
like "with a clear message" "$(cat "$T/empty.log")" "not initiali[sz]ed.*keywardd init"
check "and leaves no file behind" test ! -e "$T/empty.db"
timeout 10 "$KEYWARDD" token --db "$T/empty.db" --master-key "$T/master.key" --user x >/dev/null 2>"$T/empty-token.log"
rc=$?
check "token refuses an uninitialised database (exit $rc)" [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
like "with the same message" "$(cat "$T/empty-token.log")" "not initiali[sz]ed.*keywardd init"
check "and leaves no file either" test ! -e "$T/empty.db"

# ---- usage errors exit 2 ---------------------------------------------------------------

usage() {
        local rc
        timeout 10 "$KEYWARDD" "$@" >/dev/null 2>&1
        rc=$?
        is "usage error exits 2: keywardd $(printf '%s ' "$@" | sed "s|$T/||g")" "$rc" 2
}
usage
usage bogus
usage serve --no-such-flag
usage serve --workers abc
usage token --db "$T/keyward.db" --master-key "$T/master.key"
usage token --db "$T/keyward.db" --master-key "$T/master.key" --user x --ttl forever
usage init --db "$T/keyward.db"
usage serve --listen 127.0.0.1:0 --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key" \
        --client-ca "$T/pki/ca.pem" --db "$T/keyward.db" --master-key "$T/master.key" --default-acl Bogus
timeout 10 "$KEYWARDD" --help >/dev/null 2>&1
is "keywardd --help exits 0" "$?" 0

# ---- --config FILE ---------------------------------------------------------------------

cat >"$T/keywardd.conf" <<EOF
# keywardd settings for the test
[server]
listen = 127.0.0.1:0
tls-cert = $T/pki/server.pem
tls-key = $T/pki/server.key
client-ca = $T/pki/ca.pem
db = $T/keyward.db
master-key = $T/master.key
audit-log = $T/audit-config.log
ready-file = $T/ready
hostname = confighost
workers = 1
EOF
start_config() {
        rm -f "$T/ready"
        "$KEYWARDD" serve --config "$T/keywardd.conf" "$@" 2>>"$T/keywardd.log" &
        KWD_PID=$!
        for _ in $(seq 100); do
                [ -s "$T/ready" ] && break
                kill -0 "$KWD_PID" 2>/dev/null || break
                sleep 0.05
        done
        KWD_ADDR=$(head -n1 "$T/ready" 2>/dev/null)
        KWD_URL="https://$KWD_ADDR"
}
start_config
r=$(as_alice GET /v0/keys/k1/)
expect "serve --config FILE alone works" "$r" 200 0 ""
is "the file's hostname is used" "$(jget "$(body "$r")" 'j["host"]')" confighost
for _ in $(seq 100); do # audit lines go out within a millisecond or so
        [ -s "$T/audit-config.log" ] && break
        sleep 0.05
done
check "the file's audit log is used" [ -s "$T/audit-config.log" ]
kwd_stop
start_config --hostname flaghost
r=$(as_alice GET /v0/keys/k1/)
is "a flag overrides the file" "$(jget "$(body "$r")" 'j["host"]')" flaghost
kwd_stop
timeout 10 "$KEYWARDD" serve --config "$T/no-such.conf" >/dev/null 2>&1
rc=$?
check "a missing --config file is an error (exit $rc)" [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]

done_testing
