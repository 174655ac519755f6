#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward-agent on a host moving from Knox's daemon (issue 14, Knox's host layout): with
# --knox-compat the agent keeps <knox-dir>/v0/keys/<id> in the JSON Knox's client library
# reads, picks up ids that Knox's `knox register -g -k ID` (what knox.NewFileClient runs)
# writes to <knox-dir>/.registered under its flock, updates the files on rotation, removes
# them on unregister, and lets only the knox group read them (never 0666 as Knox did).
# As root: files owned by another group, and readers switched with setpriv.

. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root (group ownership, setpriv)"
need_tools dbus-daemon busctl gdbus setpriv stat find flock
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"
getent group nogroup >/dev/null || skip_all "no group 'nogroup'"
busctl --json=short --version >/dev/null 2>&1 || skip_all "busctl has no --json"

KNOX=$T/knox
KREG=$KEYWARD_TOP_SRCDIR/tests/integration/knox-register.py
# Run as another user: the system's python3, not one under root's home.
PY=/usr/bin/python3
[ -x "$PY" ] || skip_all "no /usr/bin/python3"
# The knox group of this test: nogroup. A member (uid nobody, gid nogroup) and a stranger
# (uid nobody, some other gid, no supplementary groups).
KGID=$(getent group nogroup | cut -d: -f3)
as_member() { setpriv --reuid=65534 --regid="$KGID" --clear-groups "$@"; }
# The readers walk down to the knox directory.
chmod 0711 "$T"

make_pki
kwd_init
kwd_start
bus_start
ALICE=$(kwd_token alice) || bail "cannot mint a token"
HOST=host1.example.com
as_alice() { req none "0u$ALICE" "$@"; }
GRANT='[{"type":"Machine","id":"'$HOST'","access":"Read"}]'
as_alice POST /v0/keys/ -d "id=kden" --data-urlencode "data=$(b64 kden)" >/dev/null
for k in k1 k2 k3 k4; do
        as_alice POST /v0/keys/ -d "id=$k" --data-urlencode "data=$(b64 "$k-first")" --data-urlencode "acl=$GRANT" >/dev/null
done

mode() { stat -c '%a %U:%G' "$1"; }
# keyfield ID EXPR: EXPR over the JSON of Knox's key file of ID (as root).
keyfield() { jget "$(cat "$KNOX/v0/keys/$1" 2>/dev/null)" "$2"; }
b64of() { printf '%s' "$1" | base64 -w0; }

# ---- settings that cannot work stop the start -------------------------------------------------
refused() {
        local what=$1 needle=$2 out rc
        shift 2
        AGENT_STATE=$T/state-refused agent_args "$@"
        out=$(timeout 20 "$KEYWARD_AGENT" "${AGENT_ARGS[@]}" 2>&1 </dev/null)
        rc=$?
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then ok "$what: the agent refuses to start"; else
                not_ok "$what: the agent refuses to start (exit $rc)"
        fi
        like "$what: the error says why" "$out" "$needle"
}
refused "a relative --knox-dir" "--knox-dir must be an absolute path" --knox-compat --knox-dir knox
refused "a --knox-group with a colon" "Invalid --knox-group 'a:b'" --knox-compat --knox-group 'a:b'
touch "$T/not-a-dir"
refused "a --knox-dir that is a file" "Failed to open '$T/not-a-dir': Not a directory" --knox-compat --knox-dir "$T/not-a-dir"

# ---- what Knox's daemon left behind ------------------------------------------------------------
mkdir -p "$KNOX/v0/keys"
chmod 0777 "$KNOX" "$KNOX/v0" "$KNOX/v0/keys"
printf 'k1\nkden\n' >"$KNOX/.registered"
printf '{"id":"k1","acl":[],"versions":[{"id":1,"data":"b2xk","status":"Primary","ts":1}],"hash":"old"}' >"$KNOX/v0/keys/k1"
printf '{"id":"gone","acl":[],"versions":[],"hash":"x"}' >"$KNOX/v0/keys/gone"
# kden: a key this machine may not read (the agent never gets a copy to write).
printf '{"id":"kden","acl":[],"versions":[],"hash":"x"}' >"$KNOX/v0/keys/kden"
chmod 0666 "$KNOX/.registered" "$KNOX/v0/keys/k1" "$KNOX/v0/keys/gone" "$KNOX/v0/keys/kden"

agent_start --knox-compat --knox-dir "$KNOX" --knox-group nogroup --watch-wait 30s --log-level debug
check "the agent owns $DEST" wait_for 10 bus status "$DEST"

# ---- start: Knox's register file is honoured, its 0666 files are replaced ----------------------
K1V1=$(jget "$(body "$(as_alice GET /v0/keys/k1/)")" 'j["data"]["versions"][0]["id"]')
check "k1 (listed in Knox's register file) is fetched into Knox's layout" \
        wait_for 10 bash -c "grep -q '\"$(b64of k1-first)\"' '$KNOX/v0/keys/k1'"
is "Knox's old 0666 key file is replaced: 0640 root:nogroup" "$(mode "$KNOX/v0/keys/k1")" "640 root:nogroup"
is "the register file is tightened to 0660 root:nogroup" "$(mode "$KNOX/.registered")" "660 root:nogroup"
for d in "$KNOX" "$KNOX/v0" "$KNOX/v0/keys"; do
        is "directory ${d#"$T"/} is 0750 root:nogroup" "$(mode "$d")" "750 root:nogroup"
done
is "Knox's 0666 file of a key the agent cannot fetch is tightened to 0640 root:nogroup at start" "$(mode "$KNOX/v0/keys/kden")" "640 root:nogroup"
check "the file of a key nobody registers is removed" test ! -e "$KNOX/v0/keys/gone"
out=$(call ListKeys 2>&1)
like "k1 is registered with the agent" "$out" '"k1"'
is "the key file's id" "$(keyfield k1 'j["id"]')" k1
is "the key file's primary version" "$(keyfield k1 '[v["id"] for v in j["versions"] if v["status"]=="Primary"][0]')" "$K1V1"

# ---- knox.NewFileClient("k2"): `knox register -g -k k2` as an app of the knox group -----------
out=$(as_member "$PY" "$KREG" "$KNOX" register k2 "$(scaled 5)" 2>&1)
rc=$?
is "knox register -g -k k2 (a knox group member) gets the key within Knox's 5 s" "$rc" 0
[ "$rc" -eq 0 ] || diag "$out"
K2=$(body "$(as_alice GET /v0/keys/k2/)")
K2V1=$(jget "$K2" 'j["data"]["versions"][0]["id"]')
is "its output has the key's id" "$(jget "$out" 'j["id"]')" k2
is "the acl is a list (Knox's client refuses null)" "$(jget "$out" 'type(j["acl"]).__name__')" list
is "versions[0].data is the secret in base64" "$(jget "$out" 'j["versions"][0]["data"]')" "$(b64of k2-first)"
is "versions[0].id" "$(jget "$out" 'j["versions"][0]["id"]')" "$K2V1"
is "versions[0].status" "$(jget "$out" 'j["versions"][0]["status"]')" Primary
is "versions[0].ts is the creation time in ns" "$(jget "$out" 'j["versions"][0]["ts"]')" "$(jget "$K2" 'j["data"]["versions"][0]["ts"]')"
is "hash is the server's version hash" "$(jget "$out" 'j["hash"]')" "$(jget "$K2" 'j["data"]["hash"]')"
is "no fields beyond Knox's" "$(jget "$out" '",".join(sorted(j))')" "acl,hash,id,versions"
like "k2 is now registered with the agent" "$(call ListKeys 2>&1)" '"k2"'
like "the register file still lists k2" "$(cat "$KNOX/.registered")" 'k2'

# ---- who may read ------------------------------------------------------------------------------
check "a member of the knox group reads the key file" bash -c "setpriv --reuid=65534 --regid=$KGID --clear-groups cat '$KNOX/v0/keys/k2' >/dev/null"
check "a stranger cannot read the key file" bash -c "! setpriv --reuid=65534 --regid=4242 --clear-groups cat '$KNOX/v0/keys/k2' 2>/dev/null"
check "a stranger cannot write the register file" bash -c "! setpriv --reuid=65534 --regid=4242 --clear-groups sh -c 'echo k3 >>$KNOX/.registered' 2>/dev/null"
is "no file or directory under the knox dir is world-readable or -writable" \
        "$(find "$KNOX" -perm /0007 | wc -l)" 0

# ---- rotation ----------------------------------------------------------------------------------
V2=$(jget "$(body "$(as_alice POST /v0/keys/k2/versions/ --data-urlencode "data=$(b64 k2-second)")")" 'j["data"]')
as_alice PUT "/v0/keys/k2/versions/$V2/" --data-urlencode 'status="Primary"' >/dev/null
check "a rotation reaches Knox's key file" wait_for 10 bash -c \
        "python3 -c 'import json,sys; k=json.load(open(sys.argv[1])); sys.exit(0 if [v for v in k[\"versions\"] if v[\"status\"]==\"Primary\"][0][\"id\"]==int(sys.argv[2]) else 1)' '$KNOX/v0/keys/k2' '$V2'"
is "the new primary's data" "$(keyfield k2 '[v["data"] for v in j["versions"] if v["status"]=="Primary"][0]')" "$(b64of k2-second)"
is "the old primary is Active" "$(keyfield k2 '[v["status"] for v in j["versions"] if v["id"]=='"$K2V1"'][0]')" Active
is "the rotated file is still 0640 root:nogroup" "$(mode "$KNOX/v0/keys/k2")" "640 root:nogroup"

# ---- unregister, both ways ---------------------------------------------------------------------
check "Unregister k2 over D-Bus" call Unregister s k2
check "k2's key file is removed" wait_for 5 test ! -e "$KNOX/v0/keys/k2"
unlike "k2 is taken out of Knox's register file too" "$(cat "$KNOX/.registered")" 'k2'
out=$(as_member "$PY" "$KREG" "$KNOX" unregister k1 2>&1)
is "knox unregister k1 (a knox group member)" "$?" 0
check "k1's key file is removed" wait_for 5 test ! -e "$KNOX/v0/keys/k1"
check "k1 is no longer registered with the agent" wait_for 5 bash -c \
        "! busctl --system call $DEST $OBJ $IFACE ListKeys | grep -q '\"k1\"'"

# ---- a key registered with keyward is in Knox's layout and file too ----------------------------
check "Register k3 over D-Bus" call Register 'sa{sv}' k3 0
check "k3 appears in Knox's layout" wait_for 10 test -s "$KNOX/v0/keys/k3"
like "k3 is listed in Knox's register file" "$(cat "$KNOX/.registered")" 'k3'
# A registration with options serves more than Knox's apps: Knox's file cannot take it away.
check "Register k4 with a reader over D-Bus" call Register 'sa{sv}' k4 1 readers as 1 user:root
check "k4 appears in Knox's layout" wait_for 10 test -s "$KNOX/v0/keys/k4"
out=$(as_member "$PY" "$KREG" "$KNOX" unregister k4 2>&1)
is "knox unregister k4" "$?" 0
# Then a pickup that follows it (the agent reads the file in order): k2 comes back.
out=$(as_member "$PY" "$KREG" "$KNOX" register k2 "$(scaled 5)" 2>&1)
is "knox register -g -k k2 again" "$?" 0
like "k4, registered with a reader, stays registered" "$(call ListKeys 2>&1)" '"k4"'
check "k4's key file stays" test -s "$KNOX/v0/keys/k4"
check "the agent stops" agent_stop

# ---- a restart: the register file is read again ------------------------------------------------
printf 'k1\nk3\n' >"$KNOX/.registered"
# The same settings from the configuration file this time.
printf '[agent]\nknox-compat = yes\nknox-dir = %s\nknox-group = nogroup\n' "$KNOX" >"$T/agent.conf"
agent_start --config "$T/agent.conf" --watch-wait 30s
check "the agent owns $DEST again" wait_for 10 bus status "$DEST"
check "k1, listed again while the agent was down, is back in Knox's layout" wait_for 10 test -s "$KNOX/v0/keys/k1"
check "the agent stops again" agent_stop

# ---- a hostile knox group member (or what one left while Knox's dirs were 0777) -------------------
# Hard links to a root-only file put in Knox's old 0777 layout, at the register file and at a
# name in the keys directory: the start-up tightening must not chown or chmod the file they
# point to (fs.protected_hardlinks stops most users, not all hosts set it, root's own tools may).
KNOX=$T/knox-hostile
AGENT_STATE=$T/state-hostile
mkdir -p "$KNOX/v0/keys" "$T/filedir"
chmod 0777 "$KNOX" "$KNOX/v0" "$KNOX/v0/keys"
printf 'root:secret-hash:1:0\n' >"$T/shadow"
chmod 0600 "$T/shadow"
ln "$T/shadow" "$KNOX/.registered"
ln "$T/shadow" "$KNOX/v0/keys/not-an-id"
ln "$T/shadow" "$KNOX/v0/keys/k3"
agent_start --knox-compat --knox-dir "$KNOX" --knox-group nogroup --file-dir "$T/filedir" --watch-wait 30s
check "the agent owns $DEST (hostile layout)" wait_for 10 bus status "$DEST"
is "a hard link at the register file: its target keeps 0600 root:root" "$(mode "$T/shadow")" "600 root:root"
is "the target's content is untouched" "$(cat "$T/shadow")" "root:secret-hash:1:0"
is "the register file is a file of the agent's own, 0660 root:nogroup" "$(mode "$KNOX/.registered") $(stat -c %h "$KNOX/.registered")" "660 root:nogroup 1"
check "the hard links in the keys directory are gone" bash -c "! test -e '$KNOX/v0/keys/not-an-id' && ! test -e '$KNOX/v0/keys/k3'"
# A registration with a file serves a program that is not a Knox app: Knox's file cannot take
# it away (nor remove its file).
out=$(gdbus call --system --dest "$DEST" --object-path "$OBJ" --method "$IFACE.Register" k3 "{'file': <'$T/filedir/k3'>}" 2>&1)
is "Register k3 with a file" "$out" "()"
check "k3's file is written" wait_for 10 test -s "$T/filedir/k3"
check "k3 is listed in Knox's register file" wait_for 5 grep -qx k3 "$KNOX/.registered"
out=$(as_member "$PY" "$KREG" "$KNOX" unregister k3 2>&1)
is "knox unregister k3 (a knox group member)" "$?" 0
out=$(as_member "$PY" "$KREG" "$KNOX" register k1 "$(scaled 5)" 2>&1)
is "knox register -g -k k1 after it (the agent has read the file)" "$?" 0
like "k3, registered with a file, stays registered" "$(call ListKeys 2>&1)" '"k3"'
check "k3's file stays" test -s "$T/filedir/k3"
# A member holding the register file's lock: Unregister neither waits for it nor is lost. The
# change waits for the lock; once it is free the id leaves the file, and the next pickup does
# not register the key again.
check "Register k4 over D-Bus" call Register 'sa{sv}' k4 0
check "k4 is listed in Knox's register file" wait_for 5 grep -qx k4 "$KNOX/.registered"
setpriv --reuid=65534 --regid="$KGID" --clear-groups \
        bash -c 'exec 9<"$1"; flock -x 9; exec sleep 600' _ "$KNOX/.registered" >/dev/null 2>&1 &
HOLDER=$!
BG_PIDS+=("$HOLDER")
check "the member holds the lock" wait_for 5 bash -c "! flock -n -s '$KNOX/.registered' true"
check "Unregister k4 while the lock is held" call Unregister s k4
check "k4 is still in the file while the lock is held" grep -qx k4 "$KNOX/.registered"
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null
check "once the lock is free k4 leaves Knox's register file" wait_for 5 bash -c "! grep -qx k4 '$KNOX/.registered'"
out=$(as_member "$PY" "$KREG" "$KNOX" register k2 "$(scaled 5)" 2>&1)
is "knox register -g -k k2 after it" "$?" 0
unlike "k4 is not registered again" "$(call ListKeys 2>&1)" '"k4"'
check "the agent stops (hostile layout)" agent_stop

# ---- the knox group does not exist: root only, and a warning -----------------------------------
KNOX=$T/knox-nogroup
AGENT_STATE=$T/state-nogroup
agent_start --knox-compat --knox-dir "$KNOX" --knox-group no-such-group-kw --watch-wait 30s
check "the agent owns $DEST (no knox group)" wait_for 10 bus status "$DEST"
check "Register k3" call Register 'sa{sv}' k3 0
check "k3 appears in Knox's layout" wait_for 10 test -s "$KNOX/v0/keys/k3"
is "without the group the key file is 0600 root:root" "$(mode "$KNOX/v0/keys/k3")" "600 root:root"
like "the agent warns that the group does not exist" "$(cat "$T/agent.log")" "no-such-group-kw"
check "the agent stops (no knox group)" agent_stop

# ---- knox-compat off: nothing under the knox dir -----------------------------------------------
KNOX=$T/knox-off
AGENT_STATE=$T/state-off
agent_start --knox-dir "$KNOX" --watch-wait 30s
check "the agent owns $DEST (compat off)" wait_for 10 bus status "$DEST"
check "Register k3" call Register 'sa{sv}' k3 0
check "k3 is cached" wait_for 10 test -s "$T/state-off/cache/k3"
is "without knox-compat nothing is made under the knox dir" "$(ls -A "$KNOX" 2>/dev/null | wc -l)" 0
check "the agent stops (compat off)" agent_stop

done_testing
