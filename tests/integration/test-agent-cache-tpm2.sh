#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent with its host cache key sealed to a TPM2 (swtpm), end to end (issue 14): the
# cache sealed and served from the TPM-unsealed key across a restart with every server down;
# `auto` picks the TPM; another TPM (another host) with a copy of the state directory and blob
# serves nothing from the copy, sets the blob aside and makes a new one; a changed PCR it is
# bound to does the same, and moving the blob back once the PCR is back undoes it; a TPM gone
# costs nothing (the agent refuses to start, the blob stays); tpm2-tss itself says nothing
# in the agent's log.
. "$(dirname "$0")/lib.sh"

HELPER=${CACHE_KEY_TPM2:-$KEYWARD_TOP_BUILDDIR/tests/integration/cache-key-tpm2}
[ -x "$HELPER" ] || skip_all "keyward is built without TPM2 support (libtss2-dev)"
need_tools swtpm dbus-daemon busctl base64 grep cmp
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"
busctl --json=short --version >/dev/null 2>&1 || skip_all "busctl has no --json"

swtpm_start "$T/tpm-a"
TPM_A=$SWTPM_TCTI PID_A=$SWTPM_PID
swtpm_start "$T/tpm-b"
TPM_B=$SWTPM_TCTI

STATE=$T/state
make_pki
kwd_init
kwd_start
bus_start
KWD_AT=$KWD_ADDR
ALICE=$(kwd_token alice) || bail "cannot mint a token"
HOST=host1.example.com
as_alice() { req none "0u$ALICE" "$@"; }
GRANT='[{"type":"Machine","id":"'$HOST'","access":"Read"}]'
S1=tpm-secret-one-5e21 S2=tpm-secret-two-a9d0
as_alice POST /v0/keys/ -d "id=k1" --data-urlencode "data=$(b64 $S1)" --data-urlencode "acl=$GRANT" >/dev/null
as_alice POST /v0/keys/ -d "id=k2" --data-urlencode "data=$(b64 $S2)" --data-urlencode "acl=$GRANT" >/dev/null

served() { [ "$(getkey "$1" | cut -d' ' -f1)" = "$2" ]; }
no_plaintext() {
        local s
        for s in "${@:2}"; do
                grep -r -a -q -F -e "$s" -e "$(b64 "$s")" "$1" && return 1
        done
        return 0
}
start() {
        agent_start --retry-max 1s --watch-wait 30s "$@"
        wait_for 10 bus status "$DEST"
}
BLOB=$T/host/cache.key.tpm2
tpm2() { start --cache-key tpm2 --tpm2-device "$1" --tpm2-sealed-key "$2" "${@:3}"; }

# ---- (1) --cache-key tpm2: the blob made, the keys sealed, served again from the cache -----------
check "(1) the agent starts with --cache-key tpm2" tpm2 "$TPM_A" "$BLOB"
check "(1) Register k1" call Register 'sa{sv}' k1 0
check "(1) Register k2" call Register 'sa{sv}' k2 0
check "(1) k1 is served" wait_for 10 served k1 $S1
check "(1) k2 is served" wait_for 10 served k2 $S2
is "(1) the sealed blob is 0400" "$(stat -c %a "$BLOB")" 400
check "(1) the source of the cache key is logged" grep -q "Cache key: tpm2\." "$T/agent.log"
check "(1) no file key was made" test ! -e "$T/host/cache.key"
check "(1) the record of the files is written" wait_for 10 test -s "$STATE/seen.sealed"
check "(1) no secret nor its base64 under the state directory" no_plaintext "$STATE" $S1 $S2
check "(1) nor in the blob" no_plaintext "$BLOB" $S1 $S2
check "(1) nor in the agent's log" no_plaintext "$T/agent.log" $S1 $S2
check "the agent stops" agent_stop
kwd_stop
cp -p "$BLOB" "$T/blob.orig"
check "(1) the agent starts again, every server down" tpm2 "$TPM_A" "$BLOB"
check "(1) k1 is served from the cache (the TPM unseals)" served k1 $S1
check "(1) k2 too" served k2 $S2
check "(1) the blob is the same" cmp -s "$BLOB" "$T/blob.orig"
check "the agent stops" agent_stop

# ---- (2) auto with --tpm2-device picks the TPM --------------------------------------------------
: >"$T/agent.log"
check "(2) --cache-key auto starts" start --cache-key auto --tpm2-device "$TPM_A" --tpm2-sealed-key "$BLOB"
check "(2) it picks the TPM" grep -q "Cache key: tpm2 (auto)" "$T/agent.log"
check "(2) k1 is served from the cache, servers down" served k1 $S1
check "the agent stops" agent_stop

# ---- (3) another host: the state directory and the blob copied to another TPM ---------------------
mkdir -m 0700 "$T/host2"
cp -a "$STATE" "$T/state2"
cp -p "$BLOB" "$T/host2/cache.key.tpm2"
AGENT_STATE=$T/state2 AGENT_LOG=$T/agent2.log
check "(3) an agent on another TPM starts on the copy, servers down" tpm2 "$TPM_B" "$T/host2/cache.key.tpm2"
out=$(call GetKey s k1 2>&1)
unlike "(3) k1 is not served from the copy" "$out" "^ayt"
out=$(call GetKey s k2 2>&1)
unlike "(3) nor k2" "$out" "^ayt"
check "(3) the log says the key does not unseal" grep -q "does not unseal with this TPM2" "$T/agent2.log"
check "(3) ... what is lost and how to undo it" grep -q "set aside as '$T/host2/cache.key.tpm2.unsealable'" "$T/agent2.log"
check "(3) the old blob is set aside" cmp -s "$T/host2/cache.key.tpm2.unsealable" "$T/blob.orig"
check "(3) a new blob is made" test -s "$T/host2/cache.key.tpm2"
check "(3) ... another one" bash -c "! cmp -s '$T/host2/cache.key.tpm2' '$T/blob.orig'"
is "(3) ... 0400" "$(stat -c %a "$T/host2/cache.key.tpm2")" 400
check "(3) the registry is set aside" test -e "$T/state2/registrations.sealed.unopened"
check "the agent stops" agent_stop
kwd_restart_at "$KWD_AT"
check "(3) the agent restarts under its new key" tpm2 "$TPM_B" "$T/host2/cache.key.tpm2"
check "(3) Register k1 on the new host" call Register 'sa{sv}' k1 0
check "(3) k1 is fetched from the server" wait_for 20 served k1 $S1
check "the agent stops" agent_stop
check "(3) the first host still serves from its own" tpm2 "$TPM_A" "$BLOB"
AGENT_STATE= AGENT_LOG=

# ---- (4) bound to PCR 16: the PCR changes, then comes back -----------------------------------------
P=$T/host3/pcr.tpm2
AGENT_STATE=$T/state3 AGENT_LOG=$T/agent3.log
agent_stop
check "(4) --tpm2-pcrs 16" tpm2 "$TPM_A" "$P" --tpm2-pcrs 16
check "(4) Register k1" call Register 'sa{sv}' k1 0
check "(4) k1 is served" wait_for 10 served k1 $S1
check "the agent stops" agent_stop
kwd_stop
cp -p "$P" "$T/pcr.orig"
is "(4) PCR 16 extended" "$("$HELPER" extend "$TPM_A" 16 2>/dev/null)" extended
check "(4) the agent starts, servers down" tpm2 "$TPM_A" "$P" --tpm2-pcrs 16
out=$(call GetKey s k1 2>&1)
unlike "(4) nothing is served from the old cache" "$out" "^ayt"
check "(4) the blob is set aside as .unsealable" cmp -s "$P.unsealable" "$T/pcr.orig"
check "(4) a new one is made" bash -c "test -s '$P' && ! cmp -s '$P' '$T/pcr.orig'"
check "(4) the log says how to undo" grep -q "move '$P.unsealable' back to '$P'" "$T/agent3.log"
check "the agent stops" agent_stop
# The PCR comes back (swtpm restarted: PCRs reset at startup); the admin undoes.
kill -9 "$PID_A" && wait "$PID_A" 2>/dev/null
swtpm_start "$T/tpm-a"
TPM_A=$SWTPM_TCTI PID_A=$SWTPM_PID
mv "$P.unsealable" "$P"
mv "$T/state3/registrations.sealed.unopened" "$T/state3/registrations.sealed"
kwd_restart_at "$KWD_AT"
: >"$T/agent3.log"
check "(4) the blob moved back, the agent starts" tpm2 "$TPM_A" "$P" --tpm2-pcrs 16
check "(4) it unseals (no new key)" bash -c "! grep -q 'does not unseal' '$T/agent3.log'"
check "(4) the registry opens again: k1 is served" wait_for 20 served k1 $S1
check "(4) the old blob is kept" cmp -s "$P" "$T/pcr.orig"
check "the agent stops" agent_stop
AGENT_STATE= AGENT_LOG=

# ---- (5) the TPM gone: the agent refuses to start, the blob stays -----------------------------------
kill -9 "$PID_A" && wait "$PID_A" 2>/dev/null
agent_args --cache-key tpm2 --tpm2-device "$TPM_A" --tpm2-sealed-key "$BLOB"
out=$(timeout 30 "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>&1)
is "(5) no TPM: exit 1" "$?" 1
like "(5) ... with a clear error" "$out" "No TPM2 found for the cache key"
check "(5) the blob is not set aside" test ! -e "$BLOB.unsealable"
check "(5) ... nor changed" cmp -s "$BLOB" "$T/blob.orig"
agent_args --cache-key auto --tpm2-device "$TPM_A" --tpm2-sealed-key "$BLOB"
out=$(timeout 30 "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>&1)
is "(5) auto, a sealed key there and no TPM: exit 1" "$?" 1
like "(5) ... it does not fall back to another key" "$out" "sealed by a TPM2 .*but no TPM2 answers"
check "(5) ... the blob is neither set aside nor changed" cmp -s "$BLOB" "$T/blob.orig"

# ---- (6) auto where no TPM answers: tpm2-tss says nothing in the agent's log ---------------------------
nothing="swtpm:host=127.0.0.1,port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -m 0700 "$T/creds"
head -c 32 /dev/urandom >"$T/creds/keyward-cache-key"
chmod 0400 "$T/creds/keyward-cache-key"
AGENT_STATE=$T/state6 AGENT_LOG=$T/agent6.log AGENT_ENV=(CREDENTIALS_DIRECTORY="$T/creds")
check "(6) auto with no TPM answering starts" start --cache-key auto --tpm2-device "$nothing" --tpm2-sealed-key "$T/none.tpm2"
check "(6) it takes the credential" grep -q "Cache key: credential:keyward-cache-key (auto)" "$T/agent6.log"
check "(6) no WARNING:/ERROR: lines from tpm2-tss" bash -c "! grep -E '^(WARNING|ERROR):' '$T/agent6.log'"
check "the agent stops" agent_stop
AGENT_ENV=(CREDENTIALS_DIRECTORY="$T/creds" TSS2_LOG=all+warning)
: >"$T/agent6.log"
check "(6) with TSS2_LOG set by the admin" start --cache-key auto --tpm2-device "$nothing" --tpm2-sealed-key "$T/none.tpm2"
check "(6) ... tpm2-tss logs as told" grep -q -E '^(WARNING|ERROR):' "$T/agent6.log"
check "the agent stops" agent_stop
AGENT_ENV=()

done_testing
