#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every Knox v0 route of a real keywardd, driven with curl as a user (token) and as a machine
# and a service (client certificates): each success and each error code of protocol.md §2,
# with the exact messages protocol.md §3 gives, the envelope byte for byte, exact 64-bit ids, the raw
# quoted status filter, headers and keep-alive.

. "$(dirname "$0")/lib.sh"

make_pki
kwd_init
kwd_start --default-acl UserGroup:security-team:Admin

ALICE=$(kwd_token alice --group admins) || bail "cannot mint a token"
BOB=$(kwd_token bob --group devs) || bail "cannot mint a token"
SECTEAM=$(kwd_token sam --group security-team) || bail "cannot mint a token"
MACHINE=0thost1.example.com
SERVICE=0sanything

# as_alice METHOD PATH [curl args...], and friends.
as_alice() { req none "0u$ALICE" "$@"; }
as_bob() { req none "0u$BOB" "$@"; }
as_machine() { req machine "$MACHINE" "$@"; }
as_service() { req service "$SERVICE" "$@"; }


# The raw body of the last request (req leaves it in $T/body): one JSON object in Knox's field
# order, then a newline.
envelope_shape() {
        python3 - "$T/body" "$1" <<'EOF'
import re, sys
raw = open(sys.argv[1], "rb").read().decode()
kind = sys.argv[2]
if kind == "ok":
        pat = r'\{"status":"ok","code":0,"host":"testhost","ts":[1-9][0-9]{18},"message":"","data":.*\}\n'
else:
        pat = r'\{"status":"error","code":[1-9][0-9]*,"host":"testhost","ts":[1-9][0-9]{18},"message":"[^"]+","data":null\}\n'
if not re.fullmatch(pat, raw, re.S):
        sys.exit("bad envelope: %r" % raw)
if raw.count("\n") != 1:
        sys.exit("more than one line: %r" % raw)
EOF
}

# ---- create (POST /v0/keys/) ----------------------------------------------------------

r=$(as_alice POST /v0/keys/ -d id=k1 --data-urlencode "data=$(b64 first-secret)" --data-urlencode 'acl=[]')
expect "create k1 as a user" "$r" 200 0 ""
tcheck "create: the envelope's exact shape and trailing newline" envelope_shape ok
V1=$(jget "$(body "$r")" 'j["data"]')
like "create: data is a version id (a JSON integer)" "$V1" '^[1-9][0-9]*$'

r=$(as_alice POST /v0/keys/ --data-urlencode "data=$(b64 x)")
expect "create without id: 400/9" "$r" 400 9
tcheck "error envelope: exact shape and trailing newline" envelope_shape error
r=$(as_alice POST /v0/keys/ -d id=k2)
expect "create without data: 400/10" "$r" 400 10
r=$(as_alice POST /v0/keys/ -d id=k2 -d data=)
expect "create with empty data: 400/10" "$r" 400 10
r=$(as_alice POST /v0/keys/ -d id=k2 --data-urlencode 'data=not*base64!')
expect "create with bad base64: 400/11" "$r" 400 11
r=$(as_alice POST /v0/keys/ -d id=k2 --data-urlencode "data=$(b64 x)" --data-urlencode 'acl=[{"type":')
expect "create with bad acl JSON: 400/11" "$r" 400 11
r=$(as_alice POST /v0/keys/ --data-urlencode 'id=bad-id!' --data-urlencode "data=$(b64 x)")
expect "create with a bad key id: 400/12" "$r" 400 12 "KeyID includes unsupported characters bad-id!"
r=$(as_alice POST /v0/keys/ -d id= --data-urlencode "data=$(b64 x)")
expect "create with an empty key id: 400/12" "$r" 400 12
r=$(as_alice POST /v0/keys/ -d id=k1 --data-urlencode "data=$(b64 x)")
expect "create an existing key: 400/2" "$r" 400 2 "Key k1 already exists"
r=$(as_machine POST /v0/keys/ -d id=k2 --data-urlencode "data=$(b64 x)")
expect "create as a machine: 403/6" "$r" 403 6 "Must be a user to create keys, principal is host1.example.com"
r=$(as_service POST /v0/keys/ -d id=k2 --data-urlencode "data=$(b64 x)")
expect "create as a service: 403/6" "$r" 403 6 "Must be a user to create keys, principal is spiffe://example.com/svc"
r=$(as_alice POST /v0/keys/ -d id=k2 --data-urlencode "data=$(b64 x)" \
        --data-urlencode 'acl=[{"type":"User","id":"bob","access":"None"}]')
like "create with a None ACL entry is refused (code 1 or 11)" "$r" '^(400|500) .*"code":(1|11),'

# The ACL of a new key (protocol.md §4.5): the request's entries, the creator merged in as
# Admin, then the server's defaults (--default-acl).
r=$(as_alice POST /v0/keys/ -d id=k2 --data-urlencode "data=$(b64 second)" \
        --data-urlencode 'acl=[{"type":"User","id":"alice","access":"Read"},{"type":"Machine","id":"host9","access":"Read"}]')
expect "create k2 with an ACL" "$r" 200 0 ""
r=$(as_alice GET /v0/keys/k2/access/)
is "create: the request ACL, the creator as Admin in place, the default entry" \
        "$(jget "$(body "$r")" '[(a["type"], a["id"], a["access"]) for a in j["data"]]')" \
        '[["User", "alice", "Admin"], ["Machine", "host9", "Read"], ["UserGroup", "security-team", "Admin"]]'
r=$(req none "0u$SECTEAM" GET /v0/keys/k2/)
expect "the default ACL entry grants the security team" "$r" 200 0 ""
r=$(as_alice POST /v0/keys/ -d id=k3 --data-urlencode "data=$(b64 x)" --data-urlencode 'acl=null')
expect "create with acl=null" "$r" 200 0 ""
r=$(as_alice POST /v0/keys/ -d id=k4 --data-urlencode "data=$(b64 x)" -H 'Content-Type: text/plain')
expect "create with a body that is not a form: 400/9 (Go reads no form)" "$r" 400 9
r=$(as_alice POST /v0/keys/ -d id=k4 --data-urlencode "data=$(b64 x)" \
        -H 'Content-Type: application/x-www-form-urlencoded; charset=utf-8')
expect "create with a form Content-Type that has parameters" "$r" 200 0 ""
r=$(as_alice POST "/v0/keys/?id=k5&data=$(b64 x)")
expect "create with id and data in the query only: 400/9 (Knox reads the body)" "$r" 400 9
r=$(as_alice DELETE /v0/keys/k4/)
expect "delete k4" "$r" 200 0 ""
r=$(as_alice POST /v0/keys/ -d id=k4 --data-urlencode "data=$(b64 again)")
expect "create k4 again after its deletion" "$r" 200 0 ""
r=$(as_alice GET /v0/keys/k4/)
is "the new k4 has one version, the new data" "$(jget "$(body "$r")" '[len(j["data"]["versions"]), j["data"]["versions"][0]["data"]]')" \
        "[1, \"$(b64 again)\"]"

# ---- get key (GET /v0/keys/{id}/) -----------------------------------------------------

r=$(as_alice GET /v0/keys/k1/)
expect "get k1" "$r" 200 0 ""
tcheck "get: the envelope's exact shape" envelope_shape ok
like 'get: "acl":[] in the key' "$(body "$r")" '"data":\{"id":"k1","acl":\[\],"versions":\['
is "get: the data reads back" "$(jget "$(body "$r")" 'j["data"]["versions"][0]["data"]')" "$(b64 first-secret)"
is "get: the version id is exactly the one create returned" \
        "$(jget "$(body "$r")" 'j["data"]["versions"][0]["id"]')" "$V1"
like "get: the version id appears as the same integer in the raw JSON" "$(body "$r")" "\"id\":$V1,"
r=$(as_alice GET /v0/keys/k%31/ --path-as-is)
is "get: the path is matched percent-decoded (k%31 is k1)" "$(jget "$(body "$r")" 'j["data"]["id"]')" k1
r=$(as_alice GET /v0/keys/nokey/)
expect "get an unknown key: 404/4" "$r" 404 4 "No such key nokey"
r=$(as_bob GET /v0/keys/k1/)
expect "get without Read: 403/6" "$r" 403 6 "Principal bob not authorized to read k1"
r=$(as_machine GET /v0/keys/k1/)
expect "get as a machine not in the ACL: 403/6" "$r" 403 6 "Principal host1.example.com not authorized to read k1"

# ---- versions: add (POST /v0/keys/{id}/versions/) -------------------------------------

r=$(as_alice POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 second-secret)")
expect "add a version" "$r" 200 0 ""
V2=$(jget "$(body "$r")" 'j["data"]')
r=$(as_alice POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 third-secret)")
expect "add another version" "$r" 200 0 ""
V3=$(jget "$(body "$r")" 'j["data"]')
like "add version: data is a version id" "$V2 $V3" '^[1-9][0-9]* [1-9][0-9]*$'
r=$(as_alice POST /v0/keys/k1/versions/)
expect "add version without data: 400/11" "$r" 400 11
r=$(as_alice POST /v0/keys/k1/versions/ -d data=)
expect "add version with empty data: 400/11" "$r" 400 11
r=$(as_alice POST /v0/keys/k1/versions/ --data-urlencode 'data=@@@@')
expect "add version with bad base64: 400/11" "$r" 400 11
r=$(as_alice POST /v0/keys/nokey/versions/ --data-urlencode "data=$(b64 x)")
expect "add version to an unknown key: 404/4" "$r" 404 4
r=$(as_bob POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 x)")
expect "add version without Write: 403/6" "$r" 403 6 "Principal bob not authorized to write k1"

# ---- versions: status (PUT /v0/keys/{id}/versions/{v}/) -------------------------------

putv() { as_alice PUT "/v0/keys/k1/versions/$1/" --data-urlencode "status=\"$2\""; }
statuses() {
        jget "$(body "$(as_alice GET '/v0/keys/k1/?status="Inactive"' -g --path-as-is)")" \
                '" ".join("%d=%s" % (v["id"], v["status"]) for v in j["data"]["versions"])'
}
is "three versions: Primary, Active, Active" "$(statuses)" "$V1=Primary $V2=Active $V3=Active"

r=$(putv "$V2" Primary)
expect "promote an Active version to Primary" "$r" 200 0 ""
is "promote: the old Primary became Active" "$(statuses)" "$V1=Active $V2=Primary $V3=Active"
r=$(putv "$V3" Inactive)
expect "deactivate an Active version" "$r" 200 0 ""
is "deactivate: it is Inactive" "$(statuses)" "$V1=Active $V2=Primary $V3=Inactive"
r=$(putv "$V3" Active)
expect "reactivate an Inactive version" "$r" 200 0 ""
r=$(putv "$V3" Inactive)
expect "deactivate it again" "$r" 200 0 ""
is "statuses now: Active, Primary, Inactive" "$(statuses)" "$V1=Active $V2=Primary $V3=Inactive"

r=$(putv "$V2" Inactive)
expect "Primary to Inactive: 400/11" "$r" 400 11 "Version must be Active to demote to Inactive"
r=$(putv "$V3" Inactive)
expect "Inactive to Inactive: 400/11" "$r" 400 11 "Version must be Active to demote to Inactive"
r=$(putv "$V2" Active)
expect "Primary to Active: 400/11" "$r" 400 11 "Primary Key can not be demoted. Specify Active key to promote."
r=$(putv "$V1" Active)
expect "Active to Active: 400/11" "$r" 400 11 "Primary Key can not be demoted. Specify Active key to promote."
r=$(putv "$V3" Primary)
expect "Inactive to Primary: 400/11" "$r" 400 11 "Version must be Active to promote to Primary"
r=$(putv "$V2" Primary)
expect "Primary to Primary: 400/11" "$r" 400 11 "Version must be Active to promote to Primary"
is "failed transitions changed nothing" "$(statuses)" "$V1=Active $V2=Primary $V3=Inactive"
r=$(putv 12345 Primary)
expect "unknown version id: 404/3" "$r" 404 3 "Key version not found"
r=$(putv abc Primary)
expect "bad version id: 400/11" "$r" 400 11 'strconv.ParseUint: parsing "abc": invalid syntax'
r=$(putv 99999999999999999999 Primary)
expect "version id out of range: 400/11" "$r" 400 11 'strconv.ParseUint: parsing "99999999999999999999": value out of range'
r=$(as_alice PUT "/v0/keys/k1/versions/$V1/")
expect "status missing: 400/11" "$r" 400 11 "Missing parameter 'status'"
r=$(as_alice PUT "/v0/keys/k1/versions/$V1/" -d status=Primary)
expect "status without quotes: 400/11" "$r" 400 11
r=$(putv "$V1" Bogus)
expect "unknown status: 400/11" "$r" 400 11 "json: Invalid VersionStatus to convert"
r=$(as_alice PUT "/v0/keys/nokey/versions/$V1/" --data-urlencode 'status="Primary"')
expect "status of an unknown key: 404/4" "$r" 404 4
r=$(as_bob PUT "/v0/keys/k1/versions/$V1/" --data-urlencode 'status="Primary"')
expect "status without Write: 403/6" "$r" 403 6 "Principal bob not authorized to write k1"

# ---- get key: the status filter, with raw quotes in the request target ----------------

verbose_target() {
        curl -sS -v -g --path-as-is --max-time 10 -o /dev/null --cacert "$T/pki/ca.pem" \
                -H "Authorization: 0u$ALICE" "$KWD_URL$1" 2>&1 | sed -n 's/^> \(GET .*\) HTTP\/1.1\r*$/\1/p'
}
is 'curl sends the raw double quotes' "$(verbose_target '/v0/keys/k1/?status="Inactive"')" \
        'GET /v0/keys/k1/?status="Inactive"'

filtered() {
        jget "$(body "$(as_alice GET "/v0/keys/k1/$1" -g --path-as-is)")" \
                '" ".join("%d=%s" % (v["id"], v["status"]) for v in j["data"]["versions"])'
}
is 'status="Primary": the primary only' "$(filtered '?status="Primary"')" "$V2=Primary"
is 'status="Active": primary and active' "$(filtered '?status="Active"')" "$V1=Active $V2=Primary"
is 'status="Inactive": every version' "$(filtered '?status="Inactive"')" "$V1=Active $V2=Primary $V3=Inactive"
is 'no status: primary and active' "$(filtered '')" "$V1=Active $V2=Primary"
is 'status %22Primary%22 (escaped quotes) works too' "$(filtered '?status=%22Primary%22')" "$V2=Primary"
r=$(as_alice GET '/v0/keys/k1/?status=Inactive' -g --path-as-is)
expect "status=Inactive without quotes: 400/11" "$r" 400 11
r=$(as_alice GET '/v0/keys/k1/?status="Deleted"' -g --path-as-is)
expect 'status="Deleted": 400/11' "$r" 400 11 "json: Invalid VersionStatus to convert"

# The hash is the stored one (of every version, protocol.md §4.3), whatever the filter.
hashes() {
        local s
        for s in '?status="Primary"' '' '?status="Inactive"'; do
                jget "$(body "$(as_alice GET "/v0/keys/k1/$s" -g --path-as-is)")" 'j["data"]["hash"]'
        done | sort -u
}
H1=$(hashes)
expected_hash=$(python3 - "$V1" "$V2" "$V3" <<'EOF'
import hashlib, struct, sys
v1, v2, v3 = map(int, sys.argv[1:])
# Primary v2, then the Active v1, then the Inactive v3 as 8 zero bytes.
print(hashlib.sha256(struct.pack("<Q", v2) + struct.pack("<Q", v1) + bytes(8)).hexdigest())
EOF
)
is "the hash is Knox's version hash of the whole list, for every filter" "$H1" "$expected_hash"

# ---- exact 64-bit integers ------------------------------------------------------------

for i in 1 2 3 4 5 6 7 8; do
        r=$(as_alice POST /v0/keys/ -d "id=many$i" --data-urlencode "data=$(b64 "v$i")")
        printf '%s\n' "$(jget "$(body "$r")" 'j["data"]')"
done >"$T/ids"
r=$(as_alice GET /v0/keys/k1/)
tcheck "ids are exact 63-bit integers, some above 2^53, ts in nanoseconds now" python3 - "$T/ids" "$(body "$r")" <<'EOF'
import json, sys, time
ids = [int(x) for x in open(sys.argv[1]).read().split()]
assert len(ids) == 8, ids
assert all(0 < i < 2**63 for i in ids), ids
assert any(i > 2**53 for i in ids), "no id above 2^53: %r" % ids
j = json.loads(sys.argv[2])
assert isinstance(j["ts"], int) and abs(j["ts"] - time.time_ns()) < 120 * 10**9, j["ts"]
for v in j["data"]["versions"]:
        assert isinstance(v["id"], int) and isinstance(v["ts"], int)
        assert abs(v["ts"] - time.time_ns()) < 120 * 10**9, v
# A double would have rounded these; the raw text must hold the very digits.
raw = sys.argv[2]
for v in j["data"]["versions"]:
        assert ('"id":%d,' % v["id"]) in raw
EOF

# ---- delete (DELETE /v0/keys/{id}/) ---------------------------------------------------

r=$(as_bob DELETE /v0/keys/many1/)
expect "delete without Admin: 403/6" "$r" 403 6 "Principal bob not authorized to delete many1"
r=$(as_alice DELETE /v0/keys/many1/)
expect "delete" "$r" 200 0 ""
is "delete: data is null" "$(jget "$(body "$r")" 'j["data"]')" "null"
r=$(as_alice GET /v0/keys/many1/)
expect "a deleted key is gone: 404/4" "$r" 404 4
r=$(as_alice DELETE /v0/keys/many1/)
expect "delete an unknown key: 404/4" "$r" 404 4

# ---- access: GET and PUT /v0/keys/{id}/access/ ----------------------------------------

acl_of() {
        jget "$(body "$(as_alice GET "/v0/keys/$1/access/")")" \
                '" ".join("%s:%s:%s" % (a["type"], a["id"], a["access"]) for a in j["data"])'
}
r=$(as_bob GET /v0/keys/k1/access/)
expect "get access needs no ACL entry (bob)" "$r" 200 0 ""
is "get access: the stored ACL" "$(jget "$(body "$r")" 'j["data"]')" \
        '[{"type": "User", "id": "alice", "access": "Admin"}, {"type": "UserGroup", "id": "security-team", "access": "Admin"}]'
r=$(as_machine GET /v0/keys/k1/access/)
expect "get access as a machine" "$r" 200 0 ""
r=$(as_alice GET /v0/keys/nokey/access/)
expect "get access of an unknown key: 404/4" "$r" 404 4

r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"Read"}')
expect "put access (one entry as JSON)" "$r" 200 0 ""
is "put access: data is null" "$(jget "$(body "$r")" 'j["data"]')" "null"
r=$(as_bob GET /v0/keys/k1/)
expect "bob can read k1 now" "$r" 200 0 ""

acc=$(printf '%s' '{"type":"Machine","id":"host1.example.com","access":"Read"}' | base64 -w0 | tr '+/' '-_' | tr -d '=')
r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode "access=$acc")
expect "put access (URL-safe base64 without padding)" "$r" 200 0 ""
r=$(as_machine GET /v0/keys/k1/)
expect "the machine can read k1 now" "$r" 200 0 ""

r=$(as_alice PUT /v0/keys/k1/access/ \
        --data-urlencode 'acl=[{"type":"UserGroup","id":"devs","access":"Write"},{"type":"Service","id":"spiffe://example.com/svc","access":"Read"},{"type":"User","id":"bob","access":"Admin"}]')
expect "put access (acl array)" "$r" 200 0 ""
is "ACL after the merges (replaced in place, appended)" "$(acl_of k1)" \
        "User:alice:Admin UserGroup:security-team:Admin User:bob:Admin Machine:host1.example.com:Read UserGroup:devs:Write Service:spiffe://example.com/svc:Read"
r=$(as_service GET /v0/keys/k1/)
expect "the service can read k1 now" "$r" 200 0 ""

r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"None"}')
expect "put access None removes an entry" "$r" 200 0 ""
is "ACL without bob" "$(acl_of k1)" \
        "User:alice:Admin UserGroup:security-team:Admin Machine:host1.example.com:Read UserGroup:devs:Write Service:spiffe://example.com/svc:Read"
r=$(as_bob POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 by-group)")
expect "bob writes through his group devs" "$r" 200 0 ""
r=$(as_bob GET /v0/keys/k1/)
expect "Write covers Read: bob reads through devs" "$r" 200 0 ""
r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode 'access={"type":"UserGroup","id":"devs","access":"None"}')
expect "remove the group" "$r" 200 0 ""
r=$(as_bob GET /v0/keys/k1/)
expect "bob cannot read k1 any more: 403/6" "$r" 403 6
r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode 'access={"type":"User","id":"nobody","access":"None"}')
expect "None for an absent entry is ignored" "$r" 200 0 ""

r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode 'access={"type":"Service","id":"not-a-spiffe-id","access":"Read"}')
expect "put access with a bad service id: 400/13" "$r" 400 13 \
        "Service prefix is invalid URL, must conform to 'spiffe://<domain>/<path>/' format."
r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode 'access={"type":"User","id":"","access":"Read"}')
expect "put access with an empty user id: 400/13" "$r" 400 13 \
        "Principals of type user, user group, machine, or machine prefix may not be empty."
r=$(as_alice PUT /v0/keys/k1/access/)
expect "put access without parameters: 400/11" "$r" 400 11 "Missing acl and access parameters"
r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode 'acl=[{"type":"User"')
expect "put access with bad acl JSON: 400/11" "$r" 400 11
r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode 'access=!!not json or base64!!')
expect "put access with bad access: 400/11" "$r" 400 11
r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode 'access={"type":"User","id":"x","access":"Everything"}')
expect "put access with an unknown access type: 400/11" "$r" 400 11
r=$(as_alice PUT /v0/keys/k1/access/ --data-urlencode 'access={"type":"Martian","id":"x","access":"Read"}')
like "put access with an unknown principal type is refused" "$r" '^4[0-9][0-9] .*"status":"error"'
r=$(as_alice GET /v0/keys/k1/access/)
expect "get access still answers an envelope after that" "$r" 200 0 ""
r=$(as_bob PUT /v0/keys/k1/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"Admin"}')
expect "put access without Admin: 403/6" "$r" 403 6 "Principal bob not authorized to update access for k1"
r=$(as_alice PUT /v0/keys/nokey/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"Read"}')
expect "put access to an unknown key: 404/4" "$r" 404 4

# ---- list (GET /v0/keys/) --------------------------------------------------------------

list() {
        jget "$(body "$(as_alice GET "/v0/keys/$1" -g --path-as-is)")" '" ".join(sorted(j["data"]))'
}
ALL="k1 k2 k3 k4 many2 many3 many4 many5 many6 many7 many8"
r=$(as_machine GET /v0/keys/)
expect "list as a machine" "$r" 200 0 ""
is "list: every key id" "$(jget "$(body "$r")" '" ".join(sorted(j["data"]))')" "$ALL"
is "list with an empty query (GET /v0/keys/?)" "$(list '?')" "$ALL"
K1=$(jget "$(body "$(as_alice GET /v0/keys/k1/)")" 'j["data"]["hash"]')
K2=$(jget "$(body "$(as_alice GET /v0/keys/k2/)")" 'j["data"]["hash"]')
is "list with current hashes: nothing changed" "$(list "?k1=$K1&k2=$K2")" ""
is "list with one stale hash" "$(list "?k1=$K1&k2=0000")" "k2"
is "list with NONE and empty values" "$(list "?k1=NONE&k2=")" "k1 k2"
is "list: unknown ids are left out" "$(list "?nokey=NONE&k1=NONE")" "k1"
is "list: the last value of a repeated id wins" "$(list "?k1=NONE&k1=$K1")" ""
r=$(as_alice GET "/v0/keys/?nokey=NONE")
expect "list of unknown ids only" "$r" 200 0 ""
is "list of unknown ids only: data is []" "$(jget "$(body "$r")" 'j["data"]')" "[]"
r=$(as_alice PUT /v0/keys/k2/access/ --data-urlencode 'access={"type":"User","id":"bob","access":"Read"}')
is "list: an ACL change does not change the hash" "$(list "?k2=$K2")" ""

# ---- routes, methods, slashes ---------------------------------------------------------

r=$(as_alice GET /v0/nothing/)
expect "unknown route after authentication: 404/8" "$r" 404 8
r=$(req none "" GET /v0/nothing/)
expect "unknown route without authentication: 401/5" "$r" 401 5 \
        "No matching authentication providers found: no Authorization header"
r=$(as_alice GET /v0/keys/k1)
expect "no trailing slash: 404/8 (no redirect)" "$r" 404 8
r=$(as_alice GET /v0/keys)
expect "/v0/keys without slash: 404/8" "$r" 404 8
r=$(as_alice GET /v0/keys/k1/access)
expect "/v0/keys/k1/access without slash: 404/8" "$r" 404 8
r=$(as_alice GET /v0/keys/k1/bogus/)
expect "unknown sub-route: 404/8" "$r" 404 8
r=$(as_alice PATCH /v0/keys/)
like "PATCH /v0/keys/: 405 with an envelope" "$r" '^405 \{"status":"error","code":[0-9]+,"host":"testhost",'
r=$(as_alice DELETE /v0/keys/)
like "DELETE /v0/keys/: 405 with an envelope" "$r" '^405 \{"status":"error",'
r=$(as_alice POST /v0/keys/k1/)
like "POST /v0/keys/k1/: 405 with an envelope" "$r" '^405 \{"status":"error",'
r=$(req none "" PUT /v0/keys/k1/versions/)
like "PUT /v0/keys/k1/versions/: 405 with an envelope" "$r" '^405 \{"status":"error",'

r=$(as_alice GET /v0/auth/whoami/)
expect "whoami" "$r" 200 0 ""
is "whoami: alice with her group" "$(jget "$(body "$r")" '[j["data"]["principal"], j["data"]["type"], j["data"]["principals"][0]["groups"]]')" \
        '["alice", "user", ["admins"]]'

# ---- headers and keep-alive -----------------------------------------------------------

headers() {
        curl -sS --max-time 10 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" -D - -o /dev/null "$@" | tr -d '\r'
}
h=$(headers "$KWD_URL/v0/keys/k1/")
like "Content-Type: application/json on success" "$h" '^Content-Type: application/json$'
like "X-Content-Type-Options: nosniff on success" "$h" '^X-Content-Type-Options: nosniff$'
like "HTTP/1.1 200" "$h" '^HTTP/1.1 200 '
h=$(headers "$KWD_URL/v0/keys/nokey/")
like "Content-Type: application/json on error" "$h" '^Content-Type: application/json$'
like "X-Content-Type-Options: nosniff on error" "$h" '^X-Content-Type-Options: nosniff$'

n=$(curl -sS --max-time 20 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" \
        -w '%{num_connects} %{http_code}\n' -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
        "$KWD_URL/v0/keys/" "$KWD_URL/v0/keys/k1/" "$KWD_URL/v0/keys/k2/" "$KWD_URL/v0/keys/k2/access/")
is "keep-alive: four requests over one connection" "$(printf '%s' "$n" | tr '\n' ' ')" "1 200 0 200 0 200 0 200"
# An error answer closes its connection, the API's own errors too: the next request needs a
# new one.
n=$(curl -sS --max-time 20 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" \
        -w '%{num_connects} %{http_code}\n' -o /dev/null -o /dev/null -o /dev/null \
        "$KWD_URL/v0/keys/k1/" "$KWD_URL/v0/keys/nokey/" "$KWD_URL/v0/keys/k1/")
is "an error answer closes the connection" "$(printf '%s' "$n" | tr '\n' ' ')" "1 200 0 404 1 200"
h=$(headers "$KWD_URL/v0/keys/nokey/")
like "an error answer says Connection: close" "$h" '^Connection: close$'
h=$(headers "$KWD_URL/v0/keys/k1/")
unlike "a success keeps the connection" "$h" '^Connection: close$'
n=$(curl -sS --max-time 20 --cacert "$T/pki/ca.pem" -H "Authorization: 0u$ALICE" \
        -w '%{num_connects} %{http_code}\n' -o /dev/null -o /dev/null -X POST --data-urlencode "data=$(b64 ka)" \
        "$KWD_URL/v0/keys/k1/versions/" "$KWD_URL/v0/keys/k1/versions/")
is "keep-alive: two POSTs with bodies over one connection" "$(printf '%s' "$n" | tr '\n' ' ')" "1 200 0 200"

# ---- bad input is the caller's error, never the server's ------------------------------

# no5xx DESCRIPTION RESPONSE: an answer below 500 in a Knox envelope whose code is not 1
# (InternalServerError): oversized or malformed input is a 4xx with Knox's code.
no5xx() {
        local what=$1 resp=$2
        python3 - "$resp" <<'EOF' && ok "$what" || not_ok "$what"
import json, sys
code, _, body = sys.argv[1].partition(" ")
if not code.isdigit() or not 200 <= int(code) < 500:
        sys.exit("HTTP %s: %.300s" % (code, body))
try:
        j = json.loads(body)
except ValueError:
        sys.exit("HTTP %s, not JSON: %.300s" % (code, body))
if j["status"] not in ("ok", "error") or j["code"] == 1:
        sys.exit("envelope %.300s" % body)
if j["status"] == "error" and not j["message"]:
        sys.exit("an error without a message")
EOF
}
rep() { head -c "$2" /dev/zero | tr '\0' "$1"; }

r=$(as_alice POST /v0/keys/ -d id=sw --data-urlencode "data=$(b64 sweep)")
expect "sweep: a key to poke at" "$r" 200 0 ""
SWV=$(jget "$(body "$r")" 'j["data"]')
ID512=$(rep a 512)
ID513=$(rep b 513)
ID5K=$(rep c 5000)

r=$(as_alice POST /v0/keys/ -d "id=$ID5K" --data-urlencode "data=$(b64 x)")
expect "create with a 5000-byte id: 400/12 saying the id is too long" "$r" 400 12 \
        "KeyID is longer than 512 bytes"
r=$(as_alice POST /v0/keys/ -d "id=$ID513" --data-urlencode "data=$(b64 x)")
expect "create with a 513-byte id: 400/12" "$r" 400 12 "KeyID is longer than 512 bytes"
r=$(as_alice POST /v0/keys/ -d "id=$ID512" --data-urlencode "data=$(b64 x)")
expect "create with a 512-byte id: created" "$r" 200 0 ""
r=$(as_alice GET "/v0/keys/$ID512/")
expect "and the 512-byte id reads back" "$r" 200 0 ""

# Every key route with an oversized or odd id in the path.
for id in "$ID5K" "$ID513" "%C3%A9" "%FF%FE" "a%20b" "%01" "a.b" "-" "$(rep '%7F' 40)"; do
        tag=${id:0:12}
        no5xx "GET key, id '$tag'" "$(as_alice GET "/v0/keys/$id/")"
        no5xx "DELETE key, id '$tag'" "$(as_alice DELETE "/v0/keys/$id/")"
        no5xx "GET access, id '$tag'" "$(as_alice GET "/v0/keys/$id/access/")"
        no5xx "PUT access, id '$tag'" "$(as_alice PUT "/v0/keys/$id/access/" \
                --data-urlencode 'acl=[{"type":"User","id":"bob","access":"Read"}]')"
        no5xx "POST version, id '$tag'" "$(as_alice POST "/v0/keys/$id/versions/" --data-urlencode "data=$(b64 v)")"
        no5xx "PUT version, id '$tag'" "$(as_alice PUT "/v0/keys/$id/versions/1/" --data-urlencode 'status="Active"')"
        no5xx "create, id '$tag'" "$(as_alice POST /v0/keys/ --data-urlencode "id=$id" --data-urlencode "data=$(b64 x)")"
done
for id in "" "a%00b" "%00" "$(rep '%FF' 600)" "a/b" "$(rep '%0A' 10)"; do
        no5xx "create, id field '${id:0:12}'" "$(as_alice POST /v0/keys/ -d "id=$id" --data-urlencode "data=$(b64 x)")"
done

# Version ids.
for v in "$(rep 9 5000)" 18446744073709551616 18446744073709551615 -1 abc 0x10 "%20" "1%00" "$(rep 1 20)" 0; do
        no5xx "PUT version '${v:0:12}'" "$(as_alice PUT "/v0/keys/sw/versions/$v/" --data-urlencode 'status="Active"')"
done
r=$(as_alice PUT "/v0/keys/sw/versions/$(rep 9 5000)/" --data-urlencode 'status="Active"')
expect "a 5000-digit version id: 400/11" "$r" 400 11

# Status values, in the body and in the query.
for st in "$(rep x 5000)" "\"$(rep x 5000)\"" '"' '""' '"Primary' 'Primary"' '"primary"' '"Inactive"x' "$(rep '"' 3000)" '%ZZ'; do
        no5xx "PUT version status '${st:0:12}'" "$(as_alice PUT "/v0/keys/sw/versions/$SWV/" -d "status=$st")"
        no5xx "GET key ?status='${st:0:12}'" "$(as_alice GET "/v0/keys/sw/?status=$st")"
done
r=$(as_alice PUT "/v0/keys/sw/versions/$SWV/" --data-urlencode "status=\"$(rep x 100000)\"")
expect "a 100000-byte quoted status: 400/11" "$r" 400 11 "json: Invalid VersionStatus to convert"
r=$(as_alice GET "/v0/keys/sw/?status=\"$(rep x 100000)\"")
expect "a 100000-byte quoted status filter: 400/11" "$r" 400 11 "json: Invalid VersionStatus to convert"

# ACL bodies, on create and on PUT access.
DEEP=$(rep '[' 5000)
MANY=$(python3 -c 'import json; print(json.dumps([{"type":"User","id":"u%d" % i,"access":"Read"} for i in range(8000)]))')
for acl in "$DEEP" "$MANY" '[{"type":"User","id":"'"$ID5K"'","access":"Read"}]' 'not json' '{}' '[1]' 'null' '[null]' \
        '[{"type":"Nope","id":"x","access":"Read"}]' '[{"type":"User","id":"x","access":"Root"}]' \
        '[{"type":"User","id":"x","access":"None"}]' \
        '[{"type":"User","id":"x","access":"Read"},{"type":"User","id":"x","access":"Write"}]' \
        '[{"type":"User","id":"","access":"Read"}]' '[{"type":"Service","id":"http://x","access":"Read"}]' \
        '[{"type":"User","id":"a\u0000b","access":"Read"}]' '[{"type":1,"id":2,"access":3}]' '[{}]' \
        "[$(rep '{"type":"User","id":"x","access":"Read"},' 3000){}]" "\"$(rep x 5000)\""; do
        tag=${acl:0:16}
        printf '%s' "$acl" >"$T/value" # from a file: some are longer than one argument may be
        no5xx "create with acl '$tag'" "$(as_alice POST /v0/keys/ -d id=swacl --data-urlencode "data=$(b64 x)" \
                --data-urlencode "acl@$T/value")"
        as_alice DELETE /v0/keys/swacl/ >/dev/null
        no5xx "PUT acl '$tag'" "$(as_alice PUT /v0/keys/sw/access/ --data-urlencode "acl@$T/value")"
        no5xx "PUT access '$tag'" "$(as_alice PUT /v0/keys/sw/access/ --data-urlencode "access@$T/value")"
done
for access in "$(printf '%s' '{"type":"User","id":"bob","access":"Read"' | base64 -w0 | tr '+/' '-_' | tr -d =)" \
        '!!!!' "$(rep A 5001)" "$(printf '\xff\xfe' | base64 -w0)"; do
        no5xx "PUT access (base64) '${access:0:12}'" "$(as_alice PUT /v0/keys/sw/access/ --data-urlencode "access=$access")"
done

# Form fields.
for data in '%ZZ' '!!!!' "$(rep A 5001)" '====' 'QQ' "$(rep '%00' 100)" "$(head -c 600000 /dev/zero | base64 -w0)"; do
        printf '%s' "$data" >"$T/value"
        no5xx "create with data '${data:0:12}'" "$(as_alice POST /v0/keys/ -d id=swdata -d "data@$T/value")"
        as_alice DELETE /v0/keys/swdata/ >/dev/null
        no5xx "add version with data '${data:0:12}'" "$(as_alice POST /v0/keys/sw/versions/ -d "data@$T/value")"
done
for body in 'id' '=' '&&&' '%' 'id=%' 'a=%G0' "$(rep '&' 5000)" "$(rep 'x=1&' 20000)" "id=a;data=b"; do
        no5xx "create with body '${body:0:12}'" "$(as_alice POST /v0/keys/ --data-binary "$body")"
        no5xx "PUT access with body '${body:0:12}'" "$(as_alice PUT /v0/keys/sw/access/ --data-binary "$body")"
        no5xx "PUT version with body '${body:0:12}'" "$(as_alice PUT "/v0/keys/sw/versions/$SWV/" --data-binary "$body")"
done
no5xx "create with a JSON Content-Type" "$(as_alice POST /v0/keys/ -H 'Content-Type: application/json' \
        --data-binary '{"id":"j","data":"eA=="}')"

# Query strings.
for q in "$ID5K=x" "$(rep '&' 5000)" "$(rep 'a=1&' 20000)" "%ZZ" "=x" "a=%" "$(rep '%FF' 1000)=1" "a%00b=1" \
        "sw=$(rep f 64)" "sw=$(rep f 5000)" "sw"; do
        no5xx "list ?'${q:0:12}'" "$(as_alice GET "/v0/keys/?$q")"
        no5xx "whoami ?'${q:0:12}'" "$(as_alice GET "/v0/auth/whoami/?$q")"
done

# Logins whose fields are refused before PAM is asked.
for body in "user=$ID5K&password=x" "user=a&password=$(rep x 5000)" "user=%00&password=x" 'user=a' '%ZZ' \
        "$(rep 'x=1&' 20000)"; do
        no5xx "login with '${body:0:12}'" "$(req none "" POST /v0/auth/login/ --data-binary "$body")"
done

kill -0 "$KWD_PID" 2>/dev/null
check "keywardd is still running" [ $? -eq 0 ]

done_testing
