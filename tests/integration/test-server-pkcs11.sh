#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keywardd with its master key on a PKCS#11 token (SoftHSM2, in a token directory of the
# test's own): keywardd init makes the token's AES key and the data key it seals, keys
# round-trip across a restart, the store holds no plaintext, and a wrong PIN, a missing
# token or a missing key stop keywardd with a clear message.

. "$(dirname "$0")/lib.sh"

MODULE=
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do
        [ -f "$m" ] && MODULE=$m && break
done
[ -n "$MODULE" ] && command -v softhsm2-util >/dev/null || skip_all "SoftHSM2 is not installed (apt-get install softhsm2)"

mkdir -p "$T/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$T/tokens" >"$T/softhsm2.conf"
export SOFTHSM2_CONF=$T/softhsm2.conf
softhsm2-util --init-token --free --label keyward --pin 4321 --so-pin 87654321 >/dev/null ||
        bail "cannot initialise a SoftHSM2 token"
printf '4321\n' >"$T/pin"
chmod 0600 "$T/pin"
uri() { printf 'pkcs11:token=%s;object=%s?module-path=%s&pin-source=%s' "$1" "$2" "$MODULE" "$3"; }
export KWD_MASTER_KEY=$(uri keyward master "$T/pin")

make_pki
kwd_init
like "init made the token's key" "$(cat "$T/init.log")" "Generated AES-256 key 'master' on the token"
like "init sealed a data key on the token" "$(cat "$T/init.log")" "Stored a new data key, sealed by the token, as 'master.data-key'"
"$KEYWARDD" init --db "$T/keyward.db" --master-key "$KWD_MASTER_KEY" 2>"$T/init2.log"
is "init again: exit 0" "$?" 0
check "init again makes nothing new" bash -c "! grep -q -e Generated -e 'Stored a new' '$T/init2.log'"

kwd_start
ADMIN=$(kwd_token admin) || bail "cannot mint a token with the token's key"
r=$(req none "0u$ADMIN" POST /v0/keys/ -d id=hsm_key --data-urlencode "data=$(printf 'sealed-by-hsm' | base64 -w0)")
expect "create a key" "$r" 200 0 ""
kwd_stop
kwd_start
r=$(req none "0u$ADMIN" GET /v0/keys/hsm_key/)
expect "read it back after a restart" "$r" 200 0 ""
is "the data round-trips" "$(jget "$(body "$r")" 'j["data"]["versions"][0]["data"]' | base64 -d)" "sealed-by-hsm"
kwd_stop
# Neither the data nor its base64, as the versions column would hold it unsealed.
check "the store holds no plaintext" \
        bash -c "! grep -a -q -e sealed-by-hsm -e '$(printf sealed-by-hsm | base64 -w0 | tr -d =)' '$T/keyward.db'"

# Failures stop keywardd before it serves, with the reason.
serve_fails() { # DESCRIPTION SPEC EXPECTED-MESSAGE
        local out
        out=$("$KEYWARDD" serve --listen 127.0.0.1:0 --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key" \
                --client-ca "$T/pki/ca.pem" --db "$T/keyward.db" --master-key "$2" 2>&1)
        local rc=$?
        if [ $rc -ne 0 ] && [[ "$out" == *"$3"* ]]; then
                ok "$1"
        else
                not_ok "$1"
                diag "exit $rc: $out"
        fi
}
printf '0000\n' >"$T/badpin"
chmod 0600 "$T/badpin"
serve_fails "a wrong PIN" "$(uri keyward master "$T/badpin")" "PKCS#11 login failed"
serve_fails "no such token" "$(uri nosuch master "$T/pin")" "No PKCS#11 token matches the URI"
serve_fails "no such key on the token" "$(uri keyward other "$T/pin")" "The token has no key labelled 'other'"
chmod 0644 "$T/pin"
serve_fails "a PIN file readable by others" "$KWD_MASTER_KEY" "readable by group or others"
chmod 0600 "$T/pin"
serve_fails "a URI without object=" "pkcs11:token=keyward?module-path=$MODULE&pin-source=$T/pin" "must name the key with object="
serve_fails "a URI without module-path=" "pkcs11:token=keyward;object=master?pin-source=$T/pin" "needs module-path="

# A second token is independent: init makes its own key and sealed data key.
softhsm2-util --init-token --free --label spare --pin 4321 --so-pin 87654321 >/dev/null
"$KEYWARDD" init --db "$T/spare.db" --master-key "$(uri spare master "$T/pin")" 2>/dev/null
is "a second token gets its own key and data key" "$?" 0

done_testing
