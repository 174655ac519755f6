#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent with a full disk (issue 15, defect 8), as root: the state directory on a
# small tmpfs, filled up. A key rotated on the server meanwhile cannot reach its cache file:
# the agent serves the new primary from memory (GetKey, GetKeyVersions), says which key and
# why (ListKeyStates, keyward status and --json, Status=), logs it once and retries the write
# with back-off instead of spinning, and writes the file as soon as there is room again.

. "$(dirname "$0")/lib.sh"


[ "$(id -u)" -eq 0 ] || skip_all "needs root (mounts a tmpfs)"
need_tools dbus-daemon busctl mount umount
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"
[ -x "$KEYWARD" ] || skip_all "keyward is not built"
busctl --json=short --version >/dev/null 2>&1 || skip_all "busctl has no --json"

STATE=$T/state

MOUNTED=
disk_cleanup() {
        # The agent must be gone before the unmount.
        [ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
        AGENT_PID=
        [ -n "$MOUNTED" ] && umount "$STATE"
        cleanup
}
trap disk_cleanup EXIT

mkdir -p "$STATE"
mount -t tmpfs -o size=256k,mode=0700 keyward-test "$STATE" 2>/dev/null || skip_all "cannot mount a tmpfs"
MOUNTED=1

make_pki
kwd_init
kwd_start
bus_start
ALICE=$(kwd_token alice) || bail "cannot mint a token"
HOST=host1.example.com
as_alice() { req none "0u$ALICE" "$@"; }
GRANT='[{"type":"Machine","id":"'$HOST'","access":"Read"}]'
as_alice POST /v0/keys/ -d "id=k1" --data-urlencode "data=$(b64 first-secret)" --data-urlencode "acl=$GRANT" >/dev/null
as_alice POST /v0/keys/ -d "id=k2" --data-urlencode "data=$(b64 other-secret)" --data-urlencode "acl=$GRANT" >/dev/null


notify_start

AGENT_ENV=(NOTIFY_SOCKET="$T/notify.sock")
agent_start --retry-max 2s --watch-wait 30s --log-level debug
check "the agent owns $DEST" wait_for 10 bus status "$DEST"
check "Register k1" call Register 'sa{sv}' k1 0
check "Register k2" call Register 'sa{sv}' k2 0
V1=$(jget "$(body "$(as_alice GET /v0/keys/k1/)")" 'j["data"]["versions"][0]["id"]')
check "k1 is cached" wait_for 10 test -s "$STATE/cache/k1"
is "GetKey k1 before the disk fills" "$(getkey k1)" "first-secret $V1"
check "k2 is cached" wait_for 10 test -s "$STATE/cache/k2"
cp "$STATE/cache/k1" "$T/k1.before"

# ---- the disk fills up ------------------------------------------------------------------------
dd if=/dev/zero of="$STATE/filler" bs=4k >/dev/null 2>&1
check "the state directory is full" bash -c "! printf x >>'$STATE/probe' 2>/dev/null"
rm -f "$STATE/probe"

V2=$(jget "$(body "$(as_alice POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 second-secret)")")" 'j["data"]')
as_alice PUT "/v0/keys/k1/versions/$V2/" --data-urlencode 'status="Primary"' >/dev/null
HASH2=$(jget "$(body "$(as_alice GET /v0/keys/k1/)")" 'j["data"]["hash"]')

check "GetKey returns the new primary though its file cannot be written" \
        wait_for 10 bash -c "busctl --system --json=short call $DEST $OBJ $IFACE GetKey s k1 2>/dev/null | grep -q ',$V2\\]'"
is "GetKey k1 from memory" "$(getkey k1)" "second-secret $V2"
out=$(jcall GetKeyVersions s k1)
is "GetKeyVersions k1 from memory: both versions and the new hash" \
        "$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(sorted((v[0], bytes(v[1]).decode(), v[2]) for v in j["data"][0]), j["data"][1])' "$out")" \
        "$(python3 -c 'import sys; print(sorted([(int(sys.argv[1]), "first-secret", "Active"), (int(sys.argv[2]), "second-secret", "Primary")]), sys.argv[3])' "$V1" "$V2" "$HASH2")"
check "the old file is left as it was" cmp -s "$STATE/cache/k1" "$T/k1.before"
is "ListKeys names the new hash and primary" "$(call ListKeys | grep -o "\"k1\" \"[0-9a-f]*\" [0-9]*")" "\"k1\" \"$HASH2\" $V2"
is "GetKey k2 is still served from its file" "$(getkey k2 | cut -d' ' -f1)" "other-secret"

like "ListKeyStates names k1 and the error" "$(call ListKeyStates)" '"k1" "ok" "" "No space left on device"'
like "ListKeyStates: k2 is fine" "$(call ListKeyStates)" '"k2" "ok" "" ""'
st=$("$KEYWARD" status 2>&1)
like "keyward status names k1 and the error" "$st" "k1 primary $V2 .*cache file not written: No space left on device"
like "keyward status says connected (the server is fine)" "$st" "Connected: yes"
st=$("$KEYWARD" status --json 2>&1)
is "keyward status --json: k1's cacheError" "$(jget "$st" '[k["cacheError"] for k in j["Keys"] if k["id"] == "k1"][0]')" \
        "No space left on device"
is "keyward status --json: k2 has none" "$(jget "$st" '[k["cacheError"] for k in j["Keys"] if k["id"] == "k2"][0]')" ""
check "Status= names k1 and the error" \
        wait_for 5 bash -c "grep '^STATUS=' '$T/notify.log' | tail -n1 | grep -q \"cache file not written for 'k1' (No space left on device)\""

# The agent keeps trying, with back-off, and says so once.
retries() { grep -c "Still cannot write the cache file of key 'k1'" "$T/agent.log"; }
start=$(date +%s)
check "the write is retried" wait_for 20 bash -c "[ \$(grep -c \"Still cannot write the cache file of key 'k1'\" '$T/agent.log') -ge 3 ]"
call Sync >/dev/null 2>&1 # a Sync() retries at once, too
sleep 3
elapsed=$(($(date +%s) - start + 1))
n=$(retries)
diag "$n retries in about ${elapsed}s"
# Back-off: doubling from 1 s (with jitter, at least 0.5 s) up to --retry-max; a spinning
# agent would retry thousands of times.
check "the retries back off (at most 2 a second, plus the Sync)" test "$n" -le $((elapsed * 2 + 2))
is "the failure is logged once" "$(grep -c "Cannot write the cache file of key 'k1'" "$T/agent.log")" 1
check "the failure is logged with its reason" \
        grep -q "Cannot write the cache file of key 'k1': No space left on device; serving version" "$T/agent.log"
lines=$(grep -vc -e 'Still cannot write' -e '^keyward-agent: GET ' -e 'Delivered key' "$T/agent.log")
diag "agent log: $(wc -l <"$T/agent.log") lines, $lines of them other than debug retries and deliveries"
check "the agent's log stays short (under 60 lines besides those)" test "$lines" -lt 60
# Whatever the wording: the lines about k1 since the disk filled, debug retries aside.
k1_lines=$(sed -n '/^keyward-agent: Delivered key .k1. version '"$V1"'/,$p' "$T/agent.log" |
        grep "'k1'" | grep -vc -e 'Still cannot write' -e 'Delivered key')
diag "lines about k1 since the disk filled: $k1_lines"
check "at most 3 lines about k1 since the disk filled (new primary, the failure, a fetch)" test "$k1_lines" -le 3
check "no secret in the agent's log" bash -c "! grep -q -e second-secret -e '$(b64 second-secret)' '$T/agent.log'"

# ---- room again ---------------------------------------------------------------------------
rm -f "$STATE/filler"
k1_file_has() { unseal "$STATE/cache/k1" | grep -q "$1"; }
check "the file is written once there is room" wait_for 20 k1_file_has "$HASH2"
check "the recovery is logged" wait_for 5 grep -q "Key 'k1': the cache file is written again" "$T/agent.log"
like "ListKeyStates: k1 is fine again" "$(call ListKeyStates)" '"k1" "ok" "" ""'
check "Status= no longer names k1" \
        wait_for 5 bash -c "! grep '^STATUS=' '$T/notify.log' | tail -n1 | grep -q 'cache file not written'"
is "GetKey k1 from the file" "$(getkey k1)" "second-secret $V2"

# The file written is the one served after a restart.
agent_stop
kwd_stop
AGENT_LOG=$T/agent2.log
agent_start --retry-max 2s
check "the agent restarts with the server down" wait_for 10 bus status "$DEST"
is "GetKey k1 after a restart, from the file" "$(getkey k1)" "second-secret $V2"

check "no failure logged when the agent stops" bash -c "! grep -q 'Cannot sync with the keyward servers' '$T/agent.log'"

done_testing
