#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Authentication against a real keywardd (protocol.md §5): machine certificates and Go's host
# rules, bad certificates (which must not fail the TLS handshake, protocol.md §1), SPIFFE services, the
# mux principal, and user tokens with expiry and revocation.

. "$(dirname "$0")/lib.sh"

make_pki
kwd_init
kwd_start

ALICE=$(kwd_token alice --group admins) || bail "cannot mint a token"
whoami() {
        local r
        r=$(req "$1" "$2" GET /v0/auth/whoami/)
        jget "$(body "$r")" '" ".join("%s:%s" % (p["type"], p["id"]) for p in j["data"]["principals"])'
}
EXPIRED="auth: failed to verify client's certificate: x509: certificate has expired or is not yet valid: "

# A key that only host1.example.com (exactly) and the service svc2 may read.
r=$(req none "0u$ALICE" POST /v0/keys/ -d id=k1 --data-urlencode "data=$(b64 s3cret)" \
        --data-urlencode 'acl=[{"type":"Machine","id":"host1.example.com","access":"Read"},{"type":"Service","id":"spiffe://example.com/svc2","access":"Read"}]')
expect "create a key readable by host1.example.com and svc2" "$r" 200 0 ""

# ---- machines (0t) ---------------------------------------------------------------------

r=$(req machine 0thost1.example.com GET /v0/auth/whoami/)
expect "machine cert, matching host: authenticated" "$r" 200 0 ""
is "machine cert: a machine principal named as sent" \
        "$(jget "$(body "$r")" '[j["data"]["principal"], j["data"]["type"]]')" '["host1.example.com", "machine"]'
r=$(req machine 0thost1.example.com GET /v0/keys/k1/)
expect "machine reads the key through its Machine entry" "$r" 200 0 ""

r=$(req machine 0tHOST1.example.com GET /v0/auth/whoami/)
expect "host match is case-insensitive" "$r" 200 0 ""
is "the principal keeps the case as sent" "$(jget "$(body "$r")" 'j["data"]["principal"]')" "HOST1.example.com"
r=$(req machine 0tHOST1.example.com GET /v0/keys/k1/)
expect "but the ACL match is exact: 403/6" "$r" 403 6 "Principal HOST1.example.com not authorized to read k1"

# A host the certificate does not name: the answer says so (Knox reports its SPIFFE
# fallback's "no spiffe identity in certificate", which sends people looking in vain).
NOTNAME="is not a name of the client certificate"
r=$(req machine 0thost9.example.com GET /v0/auth/whoami/)
expect "wrong host: 401/5 saying the name is not in the certificate" "$r" 401 5 \
        "auth: 'host9.example.com' $NOTNAME (x509: certificate is valid for host1.example.com, not host9.example.com)"
r=$(req machine 0thost1.example.com.evil GET /v0/auth/whoami/)
expect "host with a suffix: 401/5 saying the name is not in the certificate" "$r" 401 5 \
        "auth: 'host1.example.com.evil' $NOTNAME (x509: certificate is valid for host1.example.com, not host1.example.com.evil)"
r=$(req machine 0t10.0.0.1 GET /v0/auth/whoami/)
expect "an IP the certificate does not hold: 401/5 saying so" "$r" 401 5 \
        "auth: '10.0.0.1' $NOTNAME (x509: cannot validate certificate for 10.0.0.1 because it doesn't contain any IP SANs)"
r=$(req cnonly 0thost1.example.com GET /v0/auth/whoami/)
expect "CN-only cert: 401/5 saying the CN does not count" "$r" 401 5 \
        "auth: 'host1.example.com' $NOTNAME (x509: certificate relies on legacy Common Name field, use SANs instead)"
r=$(req none 0thost1.example.com GET /v0/auth/whoami/)
expect "no client certificate: 401/5 saying none was presented" "$r" 401 5 \
        "auth: no client certificate was presented (0t and 0s need one)"
r=$(req none 0sx GET /v0/auth/whoami/)
expect "0s without a client certificate: 401/5 saying none was presented" "$r" 401 5 \
        "auth: no client certificate was presented (0t and 0s need one)"
r=$(req none 0thost1.example.com GET /v0/nothing/)
expect "no client certificate, unknown route: still 401/5 first" "$r" 401 5

r=$(req expired 0thost1.example.com GET /v0/auth/whoami/)
expect "expired cert: the handshake succeeds and the request gets 401/5" "$r" 401 5
like "expired cert: Go's expiry message" "$(jget "$(body "$r")" 'j["message"]')" \
        "^${EXPIRED}current time [0-9T:-]+Z is after [0-9T:-]+Z\$"
r=$(req notyet 0thost1.example.com GET /v0/auth/whoami/)
expect "not yet valid cert: 401/5" "$r" 401 5
like "not yet valid cert: Go's message" "$(jget "$(body "$r")" 'j["message"]')" \
        "^${EXPIRED}current time [0-9T:-]+Z is before [0-9T:-]+Z\$"
r=$(req foreign 0thost1.example.com GET /v0/auth/whoami/)
expect "cert from an untrusted CA: 401/5" "$r" 401 5
like "untrusted CA: unknown authority" "$(jget "$(body "$r")" 'j["message"]')" \
        "^auth: failed to verify client's certificate: x509: certificate signed by unknown authority"
r=$(req nochain 0thost1.example.com GET /v0/auth/whoami/)
expect "cert sent without its intermediate: 401/5" "$r" 401 5
like "without the intermediate: unknown authority" "$(jget "$(body "$r")" 'j["message"]')" \
        "^auth: failed to verify client's certificate: x509: certificate signed by unknown authority"
r=$(req impostor 0thost1.example.com GET /v0/auth/whoami/)
expect "cert from a CA with the root's name but another key: 401/5" "$r" 401 5
like "impostor CA: unknown authority" "$(jget "$(body "$r")" 'j["message"]')" \
        "^auth: failed to verify client's certificate: x509: certificate signed by unknown authority"
r=$(req serveronly 0thost1.example.com GET /v0/auth/whoami/)
expect "serverAuth-only cert: 401/5" "$r" 401 5 \
        "auth: failed to verify client's certificate: x509: certificate specifies an incompatible key usage"
r=$(req noeku 0thost1.example.com GET /v0/auth/whoami/)
expect "cert without EKU: authenticated" "$r" 200 0 ""

r=$(req wildcard 0tfoo.example.com GET /v0/auth/whoami/)
expect "wildcard cert: one label matches" "$r" 200 0 ""
is "wildcard cert: principal foo.example.com" "$(jget "$(body "$r")" 'j["data"]["principal"]')" "foo.example.com"
r=$(req wildcard 0ta.b.example.com GET /v0/auth/whoami/)
expect "wildcard cert: two labels do not match" "$r" 401 5
r=$(req wildcard 0texample.com GET /v0/auth/whoami/)
expect "wildcard cert: the bare domain does not match" "$r" 401 5

# ---- services (0s) ---------------------------------------------------------------------

r=$(req service 0sanything GET /v0/auth/whoami/)
expect "service cert with 0s<anything>: authenticated" "$r" 200 0 ""
is "service cert: a service principal" "$(jget "$(body "$r")" '[j["data"]["principal"], j["data"]["type"]]')" \
        '["spiffe://example.com/svc", "service"]'
r=$(req service 0sx GET /v0/keys/k1/)
expect "service svc is not in the ACL: 403/6" "$r" 403 6
r=$(req twouris 0sx GET /v0/auth/whoami/)
expect "two URIs: 401/5" "$r" 401 5 "auth: more than one service identity specified in certificate"
r=$(req machine 0sx GET /v0/auth/whoami/)
expect "0s with a cert without URI: 401/5" "$r" 401 5 "auth: no spiffe identity in certificate"
r=$(req service 0thost1.example.com GET /v0/auth/whoami/)
is "0t with a service cert: the SPIFFE fallback authenticates the service" \
        "$(jget "$(body "$r")" '[j["data"]["principal"], j["data"]["type"]]')" '["spiffe://example.com/svc", "service"]'

# ---- both: machine and service at once (the mux principal) ----------------------------

is "both cert with 0t: machine and service principals" "$(whoami both 0thost2.example.com)" \
        "machine:host2.example.com service:spiffe://example.com/svc2"
r=$(req both 0thost2.example.com GET /v0/auth/whoami/)
like "both cert: a mux type" "$(jget "$(body "$r")" 'j["data"]["type"]')" '^mux\[.*mtls=>machine.*spiffe-fallback=>service.*\]$'
r=$(req both 0thost2.example.com GET /v0/keys/k1/)
expect "both cert: the service's ACL entry grants a 0t request" "$r" 200 0 ""
is "both cert: and the default principal is the machine" \
        "$(jget "$(body "$(req both 0thost2.example.com GET /v0/auth/whoami/)")" 'j["data"]["principal"]')" "host2.example.com"
r=$(req both 0thost9.example.com GET /v0/auth/whoami/)
expect "both cert with the wrong host: the service alone" "$r" 200 0 ""
is "both cert with the wrong host: principal is the service" "$(jget "$(body "$r")" 'j["data"]["principal"]')" \
        "spiffe://example.com/svc2"

# ---- users (0u) ------------------------------------------------------------------------

r=$(req none "0u$ALICE" GET /v0/auth/whoami/)
expect "user token: authenticated" "$r" 200 0 ""
is "user token: user alice in group admins" "$(jget "$(body "$r")" \
        '[j["data"]["principal"], j["data"]["type"], j["data"]["principals"][0]["groups"]]')" '["alice", "user", ["admins"]]'
r=$(req none "0u${ALICE}x" GET /v0/auth/whoami/)
expect "bad token: 401/5" "$r" 401 5
r=$(req none "0unot-a-token" GET /v0/keys/)
expect "garbage token: 401/5" "$r" 401 5
r=$(req dev "0u$ALICE" GET /v0/keys/k1/)
expect "user token over a connection with an expired dev cert (protocol.md §1)" "$r" 200 0 ""
r=$(req dev "0u$ALICE" GET /v0/keys/)
expect "user token with the dev cert: list works" "$r" 200 0 ""
r=$(req foreign "0u$ALICE" GET /v0/auth/whoami/)
expect "user token with an untrusted cert: works" "$r" 200 0 ""

# Tokens minted while keywardd serves (as an operator would).
SHORT=$(kwd_token carol --ttl 2s)
r=$(req none "0u$SHORT" GET /v0/auth/whoami/)
expect "short-lived token: works at first" "$r" 200 0 ""
sleep 3
r=$(req none "0u$SHORT" GET /v0/auth/whoami/)
expect "short-lived token: 401/5 once expired" "$r" 401 5
like "short-lived token: the expiry message" "$(jget "$(body "$r")" 'j["message"]')" "expired"

DAVE=$(kwd_token dave)
r=$(req none "0u$DAVE" GET /v0/auth/whoami/)
expect "token to revoke: works" "$r" 200 0 ""
r=$(req none "0u$DAVE" DELETE /v0/auth/token/)
expect "DELETE /v0/auth/token/ revokes it" "$r" 200 0 ""
r=$(req none "0u$DAVE" GET /v0/auth/whoami/)
expect "revoked token: 401/5" "$r" 401 5
like "revoked token: the revocation message" "$(jget "$(body "$r")" 'j["message"]')" "revoked"
r=$(req none "0u$ALICE" GET /v0/auth/whoami/)
expect "other tokens still work" "$r" 200 0 ""
r=$(req machine 0thost1.example.com DELETE /v0/auth/token/)
like "DELETE /v0/auth/token/ as a machine is refused" "$r" '^4[0-9][0-9] .*"status":"error"'

# ---- prefix entries grant by plain string prefix (protocol.md §4.6) ---------------------

r=$(req none "0u$ALICE" POST /v0/keys/ -d id=k2 --data-urlencode "data=$(b64 s3cret2)" \
        --data-urlencode 'acl=[{"type":"MachinePrefix","id":"host1.","access":"Read"},{"type":"ServicePrefix","id":"spiffe://example.com/","access":"Read"}]')
expect "create a key with MachinePrefix and ServicePrefix entries" "$r" 200 0 ""
r=$(req machine 0thost1.example.com GET /v0/keys/k2/)
expect "MachinePrefix host1. grants host1.example.com" "$r" 200 0 ""
r=$(req wildcard 0thost2.example.com GET /v0/keys/k2/)
expect "MachinePrefix host1. does not grant host2.example.com" "$r" 403 6
r=$(req service 0sx GET /v0/keys/k2/)
expect "ServicePrefix spiffe://example.com/ grants spiffe://example.com/svc" "$r" 200 0 ""

# ---- TLS -------------------------------------------------------------------------------

r=$(req machine 0thost1.example.com GET /v0/auth/whoami/ --tls-max 1.2)
expect "TLS 1.2 with a client certificate" "$r" 200 0 ""
r=$(req machine 0thost1.example.com GET /v0/auth/whoami/ --tlsv1.3)
expect "TLS 1.3 with a client certificate" "$r" 200 0 ""
out=$(timeout 10 openssl s_client -connect "$KWD_ADDR" -tls1_1 -cipher 'DEFAULT@SECLEVEL=0' </dev/null 2>&1)
check "TLS 1.1 is refused" bash -c '! grep -q "^ *Protocol *: TLSv1.1" <<<"$1" || grep -qi "alert protocol version" <<<"$1"' _ "$out"
v=$(curl -sS --max-time 10 --http2 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" -o /dev/null \
        -w '%{http_version}' "$KWD_URL/v0/keys/")
is "ALPN: a client offering h2 gets HTTP/1.1" "$v" 1.1

# ---- no provider matches ----------------------------------------------------------------

# Knox's text, then what is wrong with the header.
NOMATCH="No matching authentication providers found: Authorization is not 0u<token>, 0t<host name> or 0s<anything>"
r=$(req service 0s GET /v0/keys/)
expect "'0s' alone: 401/5" "$r" 401 5 "$NOMATCH"
r=$(req machine 0t GET /v0/keys/)
expect "'0t' alone: 401/5" "$r" 401 5 "$NOMATCH"
r=$(req none 0 GET /v0/keys/)
expect "'0': 401/5" "$r" 401 5 "$NOMATCH"
r=$(req machine "" GET /v0/keys/)
expect "no Authorization header: 401/5 saying so" "$r" 401 5 \
        "No matching authentication providers found: no Authorization header"
r=$(req none "1u$ALICE" GET /v0/keys/)
expect "version 1: 401/5" "$r" 401 5 "$NOMATCH"
r=$(req none "0x$ALICE" GET /v0/keys/)
expect "unknown type x: 401/5" "$r" 401 5 "$NOMATCH"
r=$(req none "Bearer $ALICE" GET /v0/keys/)
expect "a Bearer token: 401/5" "$r" 401 5 "$NOMATCH"

kill -0 "$KWD_PID" 2>/dev/null
check "keywardd is still running" [ $? -eq 0 ]

done_testing
