#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent's cache sealed to the host (issue 14, the first item, without a TPM): no
# secret in the clear (nor its base64) anywhere under the state directory; the state
# directory copied to another host opens nothing there and is fetched again; an older copy
# of a key's file put back is refused after a restart with every server down (rollback); the
# host cache key from a systemd credential, and a key file refused when others may read it
# or when it lies inside the state directory; an agent upgraded in place migrates its
# plaintext registry and fetches every key again.

. "$(dirname "$0")/lib.sh"

need_tools dbus-daemon busctl base64 grep
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"
[ -x "$AGENT_UNSEAL" ] || skip_all "agent-unseal is not built"
busctl --json=short --version >/dev/null 2>&1 || skip_all "busctl has no --json"

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
S1=sealed-secret-one-7f3a S2=sealed-secret-two-91bc S3=sealed-secret-three-c04d
as_alice POST /v0/keys/ -d "id=k1" --data-urlencode "data=$(b64 $S1)" --data-urlencode "acl=$GRANT" >/dev/null
as_alice POST /v0/keys/ -d "id=k2" --data-urlencode "data=$(b64 $S2)" --data-urlencode "acl=$GRANT" >/dev/null

served() { [ "$(getkey "$1" | cut -d' ' -f1)" = "$2" ]; }
# no_plaintext DIR SECRET...: neither a secret nor its base64 in any file under DIR.
no_plaintext() {
        local d=$1 s
        shift
        for s in "$@"; do
                grep -r -a -q -F -e "$s" -e "$(b64 "$s")" "$d" && return 1
        done
        return 0
}
start() {
        agent_start --retry-max 1s --watch-wait 30s "$@"
        wait_for 10 bus status "$DEST"
}

# ---- a first agent caches k1 and k2, sealed -----------------------------------------------------
check "the agent starts" start
check "Register k1" call Register 'sa{sv}' k1 0
check "Register k2" call Register 'sa{sv}' k2 0
check "k1 is served" wait_for 10 served k1 $S1
check "k2 is served" wait_for 10 served k2 $S2
is "the cache key file was made 0400" "$(stat -c %a "$T/host/cache.key")" 400
is "the cache key is 32 bytes" "$(stat -c %s "$T/host/cache.key")" 32
check "the source of the cache key is logged" grep -q "Cache key: file:$T/host/cache.key" "$T/agent.log"
check "the record of the files is written" wait_for 10 test -s "$STATE/seen.sealed"
check "(c) no secret nor its base64 under the state directory" no_plaintext "$STATE" $S1 $S2
check "(c) no Knox JSON in the clear either" bash -c "! grep -r -a -q -e '\"versions\"' -e '\"keys\"' '$STATE'"
check "(c) nor in the agent's log" no_plaintext "$T/agent.log" $S1 $S2
check "the files open with this host's cache key" bash -c "unseal_k1() { '$AGENT_UNSEAL' '$T/host/cache.key' '$STATE/cache/k1'; }; unseal_k1 | grep -q '$(b64 $S1)'"

# ---- (b) an older copy of k1's file put back ------------------------------------------------------
cp -p "$STATE/cache/k1" "$T/k1.old"
V3=$(jget "$(body "$(as_alice POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 $S3)")")" 'j["data"]')
as_alice PUT "/v0/keys/k1/versions/$V3/" --data-urlencode 'status="Primary"' >/dev/null
check "the rotation reaches the agent" wait_for 15 served k1 $S3
check "and k1's file is rewritten" wait_for 10 bash -c "! cmp -s '$STATE/cache/k1' '$T/k1.old'"
check "(c) the new primary is not in the clear either" no_plaintext "$STATE" $S1 $S2 $S3
check "the agent stops" agent_stop
kwd_stop
cp -p "$T/k1.old" "$STATE/cache/k1"
: >"$T/agent.log"
check "(b) the agent starts with every server down" start
out=$(call GetKey s k1 2>&1)
like "(b) the older copy of k1 is not served" "$out" "is not cached yet"
unlike "(b) ... not even its old data" "$out" "$(b64 $S1)"
check "(b) the log says rollback" grep -q "Cache file of key 'k1' is not the one the agent last wrote (rollback" "$T/agent.log"
check "(b) k2, untouched, is served" served k2 $S2
kwd_restart_at "$KWD_AT"
check "(b) once the server is back, k1 is fetched again" wait_for 20 served k1 $S3
check "the agent stops" agent_stop

# ---- (a) the state directory copied to another host -------------------------------------------------
cp -a "$STATE" "$T/state2"
kwd_stop
: >"$T/agent2.log"
AGENT_STATE=$T/state2 AGENT_CACHE_KEY=$T/host2/cache.key AGENT_LOG=$T/agent2.log
check "(a) an agent with another cache key starts on the copy, every server down" start
out=$(call GetKey s k1 2>&1)
unlike "(a) k1 is not served from the copy" "$out" "^ayt"
out=$(call GetKey s k2 2>&1)
unlike "(a) nor k2" "$out" "^ayt"
check "(a) the log says why" grep -q "does not open with this host's cache key" "$T/agent2.log"
check "(a) the copied cache files are gone" bash -c "[ -z \"\$(ls -A '$T/state2/cache')\" ]"
kwd_restart_at "$KWD_AT"
check "(a) Register k1 on the new host" call Register 'sa{sv}' k1 0
check "(a) k1 is fetched from the server" wait_for 20 served k1 $S3
check "(a) and sealed under the new host's key" bash -c "'$AGENT_UNSEAL' '$T/host2/cache.key' '$T/state2/cache/k1' >/dev/null"
check "(a) which the first host's key does not open" bash -c "! '$AGENT_UNSEAL' '$T/host/cache.key' '$T/state2/cache/k1' 2>/dev/null"
check "the agent stops" agent_stop

# ---- (d) the cache key from a systemd credential ----------------------------------------------------
mkdir -m 0700 "$T/creds"
head -c 32 /dev/urandom >"$T/creds/kc"
chmod 0400 "$T/creds/kc"
AGENT_STATE=$T/state3 AGENT_LOG=$T/agent3.log AGENT_ENV=(CREDENTIALS_DIRECTORY="$T/creds")
check "(d) --cache-key credential:kc" start --cache-key credential:kc
check "(d) the source is logged" grep -q "Cache key: credential:kc" "$T/agent3.log"
check "(d) Register k2" call Register 'sa{sv}' k2 0
check "(d) k2 is served" wait_for 10 served k2 $S2
check "(d) its file opens with the credential" bash -c "'$AGENT_UNSEAL' '$T/creds/kc' '$T/state3/cache/k2' | grep -q '$(b64 $S2)'"
check "(d) no key file was made" test ! -e "$T/state3/cache.key"
check "the agent stops" agent_stop
cp "$T/creds/kc" "$T/creds/keyward-cache-key"
check "(d) auto takes the credential keyward-cache-key when there is one" start --cache-key auto
check "(d) and says so" grep -q "Cache key: credential:keyward-cache-key (auto)" "$T/agent3.log"
check "(d) k2 is served from its cache, same key" served k2 $S2
check "the agent stops" agent_stop
agent_args --cache-key credential:missing
out=$(env CREDENTIALS_DIRECTORY="$T/creds" timeout 20 "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>&1)
is "(d) a missing credential: exit 1" "$?" 1
like "(d) ... with a clear error" "$out" "Failed to open the cache key credential 'missing'"
head -c 31 /dev/urandom >"$T/creds/short"
chmod 0400 "$T/creds/short"
agent_args --cache-key credential:short
out=$(env CREDENTIALS_DIRECTORY="$T/creds" timeout 20 "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>&1)
like "(d) a credential of 31 bytes is refused" "$out" "is not 32 raw bytes"
agent_args --cache-key credential:kc
out=$(env -u CREDENTIALS_DIRECTORY timeout 20 "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>&1)
like "(d) without \$CREDENTIALS_DIRECTORY: a clear error" "$out" "CREDENTIALS_DIRECTORY is not set"
AGENT_ENV=()

# ---- (e) key files refused ----------------------------------------------------------------------------
head -c 32 /dev/urandom >"$T/loose.key"
chmod 0644 "$T/loose.key"
agent_args --cache-key "file:$T/loose.key"
out=$(timeout 20 "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>&1)
is "(e) a key file of mode 0644: exit 1" "$?" 1
like "(e) ... because group or others may use it" "$out" "mode 0644: group or others may use it; refusing it"
agent_args --cache-key "file:$T/state3/inside.key"
out=$(timeout 20 "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>&1)
like "(e) a key file inside the state directory is refused" "$out" "is inside the state directory"
check "(e) ... and not made" test ! -e "$T/state3/inside.key"
agent_args --cache-key "file:$T/state3/cache/inside.key"
out=$(timeout 20 "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>&1)
like "(e) nor inside the cache directory" "$out" "is inside the state directory"
agent_args --cache-key file:relative.key
out=$(timeout 20 "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>&1)
like "(e) file: needs an absolute path" "$out" "Invalid --cache-key"
agent_args --cache-key tpm3
out=$(timeout 20 "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>&1)
like "(e) an unknown source is refused" "$out" "Invalid --cache-key 'tpm3'"

# ---- migration: an agent upgraded in place, its registry and cache in the clear --------------------------
M=$T/state4
mkdir -p -m 0700 "$M/cache"
printf '{"version":1,"keys":[\n{"id":"k1","readers":[],"units":[],"on_change":"none"},\n{"id":"k2","readers":[],"units":[],"on_change":"none"}\n]}\n' >"$M/registrations.json"
chmod 0600 "$M/registrations.json"
python3 - "$M/cache/k2" "$(b64 $S2)" <<'PY'
import hashlib, sys
body = ('{"id":"k2","acl":[],"versions":[{"id":1,"data":"%s","status":"Primary","ts":1}],'
        '"hash":"%s"}' % (sys.argv[2], "0" * 64)).encode()
open(sys.argv[1], "wb").write(b"keyward-cache-v1 sha256=" + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
PY
chmod 0600 "$M/cache/k2"
kwd_stop
AGENT_STATE=$M AGENT_LOG=$T/agent4.log
check "migration: the agent starts on a plaintext state, servers down" start
check "migration: the plaintext registry is read and sealed" test -s "$M/registrations.sealed"
check "migration: ... and the plaintext one removed" test ! -e "$M/registrations.json"
is "migration: both keys are registered" "$(bus get-property "$DEST" "$OBJ" "$IFACE" KeyCount)" "u 2"
check "migration: the log says so" grep -q "Migrating the plaintext registry" "$T/agent4.log"
out=$(call GetKey s k2 2>&1)
unlike "migration: the plaintext cache file is not served" "$out" "^ayt"
check "migration: it is removed" test ! -e "$M/cache/k2"
check "migration: the log says why" grep -q "Cache file of key 'k2' is a plaintext one of an earlier version" "$T/agent4.log"
kwd_restart_at "$KWD_AT"
both_served() { served k1 $S3 && served k2 $S2; }
check "migration: every key is fetched again" wait_for 20 both_served
check "migration: no secret in the clear left" no_plaintext "$M" $S1 $S2 $S3
check "the agent stops" agent_stop

done_testing
