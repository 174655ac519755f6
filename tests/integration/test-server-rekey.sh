#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keywardd rekey on SQLite: online under a reading and writing load (rekey-lib.sh), resumable
# after kill -9, idempotent, and between each pair of file, credential: and pkcs11: keys.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rekey-lib.sh"

KWD_DB=$T/keyward.db
rekey_under_load

# ---- usage and refusals ----
"$KEYWARDD" rekey --db "$KWD_DB" --new-master-key "$T/new.key" >/dev/null 2>"$T/usage.log"
is "rekey without --master-key: usage error (exit 2)" "$?" 2
like "and says what is missing" "$(cat "$T/usage.log")" "Missing --master-key"
rekey "$T/new.key" "$T/new.key"
is "rekey from a key to itself: exit 1" "$?" 1
like "and says why" "$(cat "$T/rekey.log")" "is the same key as the current one"
head -c 32 /dev/urandom >"$T/stranger.key"
chmod 0600 "$T/stranger.key"
rekey "$T/stranger.key" "$T/master.key"
is "rekey with a wrong old key: exit 1" "$?" 1
like "it reports every version as left" "$(cat "$T/rekey.out")" "versions open with none of the keys given"
like "and names the cause in the log" "$(cat "$T/rekey.log")" "sealed under a master key not given"

# ---- kill -9 and resume: new.key -> third.key ----
head -c 32 /dev/urandom >"$T/third.key"
chmod 0600 "$T/third.key"
total=$(python3 -c 'import sqlite3,sys,json; c=sqlite3.connect(sys.argv[1]); print(sum(len(json.loads(v)) for (v,) in c.execute("SELECT versions FROM secrets")))' "$KWD_DB")
"$KEYWARDD" rekey --db "$KWD_DB" --master-key "$T/new.key" --new-master-key "$T/third.key" >/dev/null 2>"$T/kill.log" &
pid=$!
BG_PIDS+=("$pid")
wait_for 20 grep -q "Re-sealed .* in this batch" "$T/kill.log" || diag "no batch logged: $(cat "$T/kill.log")"
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rekey "$T/new.key" "$T/third.key"
is "rekey after kill -9: exit 0" "$?" 0
resealed=$(sed -n 's/^Re-sealed \([0-9]*\) versions.*/\1/p' "$T/rekey.out")
check "the second run had less to do than all $total versions (got ${resealed:-?})" test "${resealed:-$total}" -lt "$total"
like "and finished it" "$(cat "$T/rekey.out")" "^0 versions remain"
KWD_MASTER_KEY=$T/third.key kwd_start
ADMIN=$(KWD_MASTER_KEY=$T/third.key kwd_token admin)
is "every key opens under the third key" "$(loader check "$T/expect" open 2>&1 | tail -n1)" "keys=$(wc -l <"$T/expect") bad=0"
kwd_stop

# ---- a server with both keys writes a whole key under the new one ----
# k_0 gets a version on a server with master.key current and third.key old; then master.key
# alone opens k_0 (its old versions were sealed again on that write) but not k_1.
w_db=$T/write.db
KWD_DB=$w_db KWD_MASTER_KEY=$T/third.key kwd_init
KWD_DB=$w_db KWD_MASTER_KEY=$T/third.key kwd_start
ADMIN=$(KWD_DB=$w_db KWD_MASTER_KEY=$T/third.key kwd_token admin)
loader populate 2 "$T/write.expect" || bail "cannot create keys"
kwd_stop
KWD_DB=$w_db KWD_MASTER_KEY=$T/master.key kwd_start --old-master-key "$T/third.key"
r=$(req none "0u$ADMIN" POST /v0/keys/k_0/versions/ --data-urlencode "data=$(printf added | base64 -w0)")
expect "add a version to k_0 with both keys" "$r" 200 0
kwd_stop
KWD_DB=$w_db KWD_MASTER_KEY=$T/master.key kwd_start
grep '^k_0 ' "$T/write.expect" >"$T/write0.expect"
grep '^k_1 ' "$T/write.expect" >"$T/write1.expect"
is "the new key alone opens the key written with both" "$(loader check "$T/write0.expect" open 2>&1 | tail -n1)" "keys=1 bad=0"
is "and not one only read" "$(loader check "$T/write1.expect" sealed 2>&1 | tail -n1)" "keys=1 bad=0"
kwd_stop

# ---- between key kinds: file -> credential: -> pkcs11: -> file ----
mkdir -p "$T/creds"
head -c 32 /dev/urandom >"$T/creds/mk"
chmod 0600 "$T/creds/mk"
export CREDENTIALS_DIRECTORY=$T/creds
kinds_db=$T/kinds.db
KWD_DB=$kinds_db KWD_MASTER_KEY=$T/third.key kwd_init
KWD_DB=$kinds_db KWD_MASTER_KEY=$T/third.key kwd_start
ADMIN=$(KWD_DB=$kinds_db KWD_MASTER_KEY=$T/third.key kwd_token admin)
loader populate 5 "$T/kinds.expect" || bail "cannot create keys"
kwd_stop

# step FROM TO NAME: rekey the kinds store, then a server with TO alone opens every key.
step() {
        KWD_DB=$kinds_db rekey "$1" "$2"
        is "$3: rekey exit 0" "$?" 0
        like "$3: nothing left" "$(cat "$T/rekey.out")" "^0 versions remain"
        KWD_DB=$kinds_db KWD_MASTER_KEY=$2 kwd_start
        is "$3: the new key alone opens every key" "$(loader check "$T/kinds.expect" open 2>&1 | tail -n1)" "keys=5 bad=0"
        kwd_stop
}
step "$T/third.key" credential:mk "file -> credential:"

MODULE=
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do
        [ -f "$m" ] && MODULE=$m && break
done
if [ -n "$MODULE" ] && command -v softhsm2-util >/dev/null; then
        mkdir -p "$T/tokens"
        printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$T/tokens" >"$T/softhsm2.conf"
        export SOFTHSM2_CONF=$T/softhsm2.conf
        softhsm2-util --init-token --free --label keyward --pin 4321 --so-pin 87654321 >/dev/null ||
                bail "cannot initialise a SoftHSM2 token"
        printf '4321\n' >"$T/pin"
        chmod 0600 "$T/pin"
        P11="pkcs11:token=keyward;object=master?module-path=$MODULE&pin-source=$T/pin"
        "$KEYWARDD" init --db "$T/p11init.db" --master-key "$P11" 2>"$T/p11init.log" || bail "cannot make the token's key"
        step credential:mk "$P11" "credential: -> pkcs11:"
        step "$P11" "$T/master.key" "pkcs11: -> file"
        step "$T/master.key" "$P11" "file -> pkcs11:"
        step "$P11" credential:mk "pkcs11: -> credential:"
else
        diag "SoftHSM2 is not installed: the pkcs11: pairs are not tested"
fi
# The sixth pair: the store is under the credential now, either way.
step credential:mk "$T/master.key" "credential: -> file"

done_testing
