#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent warns about cached certificates close to expiry: a registered key whose
# primary is a certificate (made here with openssl req -x509) expiring within 30 days gets one
# warning with its id, version and date; a sync that fetches the key again (a new active
# version) does not repeat it; a new primary warns at once; a certificate expiring in 90 days,
# and data that only looks like PEM, get none; no key data reaches the log.

. "$(dirname "$0")/lib.sh"

need_tools dbus-daemon busctl
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"

make_pki
kwd_init
kwd_start
ALICE=$(kwd_token alice) || bail "cannot mint a token"
HOST=host1.example.com
GRANT='[{"type":"Machine","id":"'$HOST'","access":"Read"}]'
as_alice() { req none "0u$ALICE" "$@"; }
b64f() { base64 -w0 <"$1"; }
C=$T/certs
mkdir -p "$C"
selfsigned() { # NAME DAYS
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/$1.key" \
                -subj "/CN=$1.example.com" -days "$2" -out "$C/$1.pem" 2>/dev/null || bail "openssl req -x509 failed"
}
selfsigned soon 10
selfsigned soon2 12
selfsigned later 90
printf -- '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n' >"$C/fake.pem"
printf 'plain secret' >"$C/plain.txt"

create() { # ID FILE
        local r
        r=$(as_alice POST /v0/keys/ -d "id=$1" --data-urlencode "data=$(b64f "$2")" --data-urlencode "acl=$GRANT")
        expect "create $1" "$r" 200 0
        jget "$(body "$r")" 'j["data"]' >"$T/vid.$1"
}
create a_soon "$C/soon.pem"
create a_later "$C/later.pem"
create a_fake "$C/fake.pem"

bus_start
call() { timeout 10 busctl --system --timeout=8 call "$DEST" "$OBJ" "$IFACE" "$@"; }
AGENT_FLAGS=(--retry-max 2s --watch-wait 30s)
agent_start
wait_for 10 busctl --system status "$DEST" >/dev/null || bail "the agent did not take its bus name"
for id in a_soon a_later a_fake; do
        check "Register $id" call Register 'sa{sv}' "$id" 0
done
check "the keys are cached" wait_for 20 bash -c "[ -s '$T/state/cache/a_soon' ] && [ -s '$T/state/cache/a_later' ] && [ -s '$T/state/cache/a_fake' ]"
warned() { grep -c "Key '$1': the certificate in primary version $2 expires on" "$T/agent.log"; }
check "a warning for a_soon's primary" wait_for 10 bash -c "grep -q \"Key 'a_soon': the certificate in primary version $(cat "$T/vid.a_soon") expires on .* UTC, in [0-9]* days.\" '$T/agent.log'"
is "... once" "$(warned a_soon "$(cat "$T/vid.a_soon")")" 1
check "no warning for a certificate 90 days out, nor for data that only looks like PEM" \
        bash -c "! grep -q -e \"Key 'a_later': the certificate\" -e \"Key 'a_fake': the certificate\" '$T/agent.log'"

# The agent fetches a_soon again for a new active version: the primary is the same, no new line.
r=$(as_alice POST /v0/keys/a_soon/versions/ --data-urlencode "data=$(b64f "$C/plain.txt")")
V_PLAIN=$(jget "$(body "$r")" 'j["data"]')
versions_cached() { grep -q "$V_PLAIN" <(call GetKeyVersions s a_soon 2>/dev/null); }
check "the agent fetched a_soon's new version" wait_for 20 versions_cached
call Sync >/dev/null 2>&1
is "a fetch of the same primary does not warn again" "$(warned a_soon "$(cat "$T/vid.a_soon")")" 1

# A new primary certificate warns at once.
r=$(as_alice POST /v0/keys/a_soon/versions/ --data-urlencode "data=$(b64f "$C/soon2.pem")")
V2=$(jget "$(body "$r")" 'j["data"]')
r=$(as_alice PUT "/v0/keys/a_soon/versions/$V2/" --data-urlencode 'status="Primary"')
expect "promote a new certificate in a_soon" "$r" 200 0
check "a warning for the new primary" wait_for 20 bash -c "grep -q \"Key 'a_soon': the certificate in primary version $V2 expires on\" '$T/agent.log'"
check "no key data in the agent's log" \
        bash -c "! grep -q -e BEGIN -e '$(sed -n 2p "$C/soon.pem" | cut -c1-40)' '$T/agent.log'"

agent_stop
done_testing
