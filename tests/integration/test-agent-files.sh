#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Files for programs that are not units (Register's "file" option, keyward register --file),
# with a real keywardd and keyward-agent on a private bus: the primary version (or, for a
# path ending in .json, the version set) is written under an allowed --file-dir with the
# owner, group and mode asked for, a non-root reader reads it and follows a rotation, it is
# removed at unregister and written again at start from the cache; paths outside the allowed
# directories, symbolic links (planted before or after the registration), modes that give
# others anything, a file named twice and the agent's own state directory are refused. Needs
# root (to chown and to read as another uid).

. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root to give files to other users"
need_tools dbus-daemon busctl setpriv stat
id nobody >/dev/null 2>&1 && getent group nogroup >/dev/null && id daemon >/dev/null 2>&1 ||
        skip_all "needs the user nobody, the group nogroup and the user daemon"
[ -x "$KEYWARD_AGENT" ] || skip_all "keyward-agent is not built"

# Outside $T (0700): other uids must reach the files.
FILES=$(mktemp -d "${TMPDIR:-/tmp}/keyward-files.XXXXXX")
chmod 0755 "$FILES"
trap 'rm -rf "$FILES"; cleanup' EXIT
ALLOWED=$FILES/allowed
mkdir -m 0755 "$ALLOWED" "$ALLOWED/app" "$FILES/elsewhere"
# An allowed directory in a directory that someone other than root may change ($FILES/swap).
mkdir -m 0755 "$FILES/swap" "$FILES/swap/allowed"

HOST=host1.example.com
make_pki
kwd_init
kwd_start
ALICE=$(kwd_token alice) || bail "cannot mint a token"
ACL='[{"type":"Machine","id":"'$HOST'","access":"Read"}]'
as_alice() { req none "0u$ALICE" "$@"; }
create() { # ID DATA
        expect "key $1 created" "$(as_alice POST /v0/keys/ -d "id=$1" --data-urlencode "data=$(b64 "$2")" \
                --data-urlencode "acl=$ACL")" 200 0 ""
}
rotate() { # ID DATA: a new primary version
        local v
        v=$(jget "$(body "$(as_alice POST "/v0/keys/$1/versions/" --data-urlencode "data=$(b64 "$2")")")" 'j["data"]')
        as_alice PUT "/v0/keys/$1/versions/$v/" --data-urlencode 'status="Primary"' >/dev/null
}
for k in k1 k2 k4 k5 k6; do create "$k" "$k-first"; done

bus_start
ln -s "$FILES/swap" "$FILES/swaplink"
agent_start --file-dir "$ALLOWED/" --file-dir "$T" --file-dir "$FILES/swap/allowed" --file-dir "$FILES/swaplink/allowed"
check "the agent is on the bus" wait_for 10 busctl --system status "$DEST"

call() { busctl --system call "$DEST" "$OBJ" "$IFACE" "$@"; }
# register ID PATH [OPTIONS]: Register with option file PATH and further options (GVariant
# text, e.g. "'file_mode': <uint32 420>"); prints the reply, or the error's name and message.
register() {
        gdbus call --system --dest "$DEST" --object-path "$OBJ" --method "$IFACE.Register" "$1" \
                "{'file': <'$2'>${3:+, $3}}" 2>&1
}
# has ID: the agent lists key ID with the hash the server has now.
has() {
        local h
        h=$(jget "$(body "$(as_alice GET "/v0/keys/$1/")")" 'j["data"]["hash"]')
        call ListKeys | grep -q "\"$1\" \"$h\""
}
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
owner() { stat -c '%U %G %a %F' "$1"; }

# ---- a file for a non-root reader, through the CLI ------------------------------------------------
F1=$ALLOWED/app/k1.secret
out=$("$KEYWARD" register --file "$F1" --file-owner nobody --file-group nogroup --file-mode 0440 k1 2>&1)
like "keyward register --file: registered" "$out" "Successfully registered"
check "the file is written" wait_for 10 test -f "$F1"
is "owner nobody, group nogroup, mode 0440" "$(owner "$F1")" "nobody nogroup 440 regular file"
is "nobody reads the primary version" "$(as_nobody cat "$F1")" "k1-first"
check "another uid (daemon) cannot read it" bash -c "! setpriv --reuid=daemon --regid=daemon --clear-groups cat '$F1' 2>/dev/null"
reg=$(unseal "$T/state/registrations.sealed")
check "the registry keeps the file's options" \
        grep -qF '"file":"'"$F1"'","file_owner":"nobody","file_group":"nogroup","file_mode":288' <<<"$reg"

rotate k1 k1-second
nobody_reads() { [ "$(as_nobody cat "$F1")" = "$2" ]; }
check "rotation: nobody reads the new primary" wait_for 10 nobody_reads "$F1" k1-second
is "rotation: same owner, group and mode" "$(owner "$F1")" "nobody nogroup 440 regular file"
is "no temporary file is left behind" "$(ls -A "$ALLOWED/app")" "k1.secret"
out=$(register k1 "$F1" "'file_owner': <'nobody'>, 'file_group': <'nogroup'>, 'file_mode': <uint32 288>")
is "registering k1 again with its own file is fine" "$out" "()"

# An added version that does not become primary leaves the file alone.
ino=$(stat -c %i "$F1")
as_alice POST /v0/keys/k1/versions/ --data-urlencode "data=$(b64 k1-third)" >/dev/null
check "the agent has the new version set" wait_for 10 has k1
is "a new active version alone does not rewrite the file" "$(stat -c %i "$F1")" "$ino"

# Directories missing below the allowed one are made, and others may pass them.
F3=$ALLOWED/new/sub/k6.secret
out=$(register k6 "$F3" "'file_owner': <'nobody'>")
is "Register with missing directories on the way" "$out" "()"
check "the file is written, its directories made" wait_for 10 test -f "$F3"
is "the directories made are 0755 root" "$(stat -c '%a %U' "$ALLOWED/new" "$ALLOWED/new/sub" | xargs)" "755 root 755 root"
is "nobody reads it through them (mode 0400)" "$(as_nobody cat "$F3")" "k6-first"
call Unregister s k6 >/dev/null
check "Unregister removes it" test ! -e "$F3"

# ---- the version set, for a path ending in .json ----------------------------------------------------
F2=$ALLOWED/k2.json
out=$(register k2 "$F2")
is "Register k2 with a .json file" "$out" "()"
check "the .json file is written" wait_for 10 test -f "$F2"
is "default owner and mode: root, 0400" "$(owner "$F2")" "root root 400 regular file"
is ".json: the version set as Knox's JSON" \
        "$(python3 -c 'import json,sys,base64; j=json.load(open(sys.argv[1])); print(j["id"], [(base64.b64decode(v["data"]).decode(), v["status"]) for v in j["versions"]])' "$F2")" \
        "k2 [('k2-first', 'Primary')]"

# ---- refusals ------------------------------------------------------------------------------------
out=$(register k6 "$FILES/elsewhere/k6")
like "a path outside every --file-dir: InvalidArgs" "$out" \
        "org\.freedesktop\.DBus\.Error\.InvalidArgs: Refused file '[^']*/elsewhere/k6': the file is not under a directory allowed with --file-dir"
out=$(register k6 "$ALLOWED/app/../../elsewhere/k6")
like "a path with '..': InvalidArgs" "$out" "InvalidArgs.*absolute UTF-8 path without"
out=$(register k6 "app/k6")
like "a relative path: InvalidArgs" "$out" "InvalidArgs.*absolute UTF-8 path without"
ln -s "$FILES/elsewhere" "$ALLOWED/linkdir"
out=$(register k6 "$ALLOWED/linkdir/k6")
like "a symlinked directory in the path: InvalidArgs" "$out" "InvalidArgs.*symbolic link"
echo untouched >"$FILES/elsewhere/victim"
ln -s "$FILES/elsewhere/victim" "$ALLOWED/k6.secret"
out=$(register k6 "$ALLOWED/k6.secret")
like "a path that is a symlink: InvalidArgs" "$out" "InvalidArgs.*symbolic link"
out=$(register k6 "$ALLOWED/k6.ok" "'file_mode': <uint32 420>")
like "mode 0644 (others read): InvalidArgs" "$out" "InvalidArgs.*file_mode"
out=$(register k6 "$ALLOWED/k6.ok" "'file_mode': <uint32 488>")
like "mode 0750 (execute): InvalidArgs" "$out" "InvalidArgs.*file_mode"
out=$(register k6 "$ALLOWED/k6.ok" "'file_mode': <uint32 2336>")
like "mode 04440 (setuid): InvalidArgs" "$out" "InvalidArgs.*file_mode"
out=$(register k6 "$F1")
like "a file another key writes: InvalidArgs" "$out" "InvalidArgs.*already written for key 'k1'"
out=$(register k6 "$T/state/registrations.sealed")
like "the agent's state directory: InvalidArgs" "$out" "InvalidArgs.*state directory"
out=$(register k6 "$T/run/credential.sock")
like "the agent's runtime directory: InvalidArgs" "$out" "InvalidArgs.*runtime directory"
out=$(gdbus call --system --dest "$DEST" --object-path "$OBJ" --method "$IFACE.RegisterMany" \
        "[('k6', {'file': <'$ALLOWED/same'>}), ('k7', {'file': <'$ALLOWED/same'>})]" 2>&1)
like "RegisterMany naming one file for two keys: InvalidArgs" "$out" "InvalidArgs.*already written for key 'k6'"
out=$(register k6 "$ALLOWED/k6.ok" "'file_owner': <'no-such-user-kw'>")
like "an unknown file_owner: InvalidArgs" "$out" "InvalidArgs.*Unknown file_owner 'no-such-user-kw'"
out=$(gdbus call --system --dest "$DEST" --object-path "$OBJ" --method "$IFACE.Register" k6 "{'file_mode': <uint32 256>}" 2>&1)
like "file_mode without file: InvalidArgs" "$out" "InvalidArgs.*need the option file"
# A file the agent did not write (another program's, root's) is neither replaced nor, at
# unregister, removed: Register is no way to overwrite what is already there.
echo "root's own" >"$ALLOWED/app/preexisting.conf"
out=$(register k6 "$ALLOWED/app/preexisting.conf")
like "a file already there that no key writes: InvalidArgs" "$out" "InvalidArgs.*already exists"
is "nothing was registered by the refusals" "$(call ListKeys | grep -c k6)" "0"
is "the file already there is untouched" "$(cat "$ALLOWED/app/preexisting.conf")" "root's own"
rm -f "$ALLOWED/app/preexisting.conf"
is "the symlink's target is untouched" "$(cat "$FILES/elsewhere/victim")" "untouched"
out=$("$KEYWARD" register --file "$F1" k1 k2 2>&1)
like "keyward register --file with two keys: usage error" "$out" "one key"
out=$("$KEYWARD" register --file "$ALLOWED/x" --file-mode 0644 k6 2>&1)
like "keyward register --file-mode 0644: usage error" "$out" "Invalid --file-mode"

# ---- a symlink planted after the registration is not followed -----------------------------------
F4=$ALLOWED/k4.secret
out=$(register k4 "$F4")
check "k4's file is written" wait_for 10 test -f "$F4"
rm -f "$F4"
ln -s "$FILES/elsewhere/victim" "$F4"
mkdir -m 0755 "$ALLOWED/d5"
F5=$ALLOWED/d5/k5.secret
out=$(register k5 "$F5")
check "k5's file is written" wait_for 10 test -f "$F5"
mv "$ALLOWED/d5" "$ALLOWED/d5.real"
ln -s "$FILES/elsewhere" "$ALLOWED/d5"
rotate k4 k4-second
rotate k5 k5-second
check "the agent has k4's new primary" wait_for 10 has k4
check "the agent has k5's new primary" wait_for 10 has k5
check "the refused write of k4 is logged" wait_for 10 grep -q "Refusing to write the file of key 'k4'.*symbolic link" "$T/agent.log"
check "the refused write of k5 is logged" wait_for 10 grep -q "Refusing to write the file of key 'k5'.*symbolic link" "$T/agent.log"
is "the planted symlink's target is untouched" "$(cat "$FILES/elsewhere/victim")" "untouched"
check "the planted symlink is still a symlink" test -L "$F4"
check "nothing is written through the symlinked directory" test ! -e "$FILES/elsewhere/k5.secret"
is "the old directory's file is left as it was" "$(cat "$ALLOWED/d5.real/k5.secret")" "k5-first"

# The allowed directory itself swapped for a symlink (by whoever may write in its parent):
# the agent walks from / without following one, so nothing lands where the link points.
F8=$FILES/swap/allowed/k8.secret
create k8 k8-first
out=$(register k8 "$F8")
check "k8's file is written" wait_for 10 test -f "$F8"
mv "$FILES/swap/allowed" "$FILES/swap/allowed.real"
ln -s "$FILES/elsewhere" "$FILES/swap/allowed"
rotate k8 k8-second
check "the agent has k8's new primary" wait_for 10 has k8
check "the refused write of k8 is logged" wait_for 10 grep -q "Refusing to write the file of key 'k8'.*symbolic link" "$T/agent.log"
check "nothing is written through the symlinked --file-dir" test ! -e "$FILES/elsewhere/k8.secret"
out=$(register k9 "$FILES/swap/allowed/k9.secret")
like "Register under a --file-dir that is a symlink: InvalidArgs" "$out" "InvalidArgs.*symbolic link"
out=$(register k9 "$FILES/swaplink/allowed/k9.secret")
like "Register under a --file-dir with a symlink above it: InvalidArgs" "$out" "InvalidArgs.*'$FILES/swaplink' is a symbolic link"
echo decoy >"$FILES/elsewhere/k8.secret"
call Unregister s k8 >/dev/null
is "Unregister removes nothing through the symlinked --file-dir" "$(cat "$FILES/elsewhere/k8.secret")" "decoy"
is "the real directory's file is left as it was" "$(cat "$FILES/swap/allowed.real/k8.secret")" "k8-first"

# A hard link to a root file, or a FIFO, put in a registered file's place: the agent never
# opens the path for writing, so the linked file keeps its bytes, owner and mode (the path
# gets a new file), and a FIFO is refused without the agent waiting on it.
create k10 k10-first
create k11 k11-first
F10=$ALLOWED/k10.secret
F11=$ALLOWED/k11.secret
register k10 "$F10" "'file_owner': <'nobody'>" >/dev/null
register k11 "$F11" >/dev/null
check "k10's file is written" wait_for 10 test -f "$F10"
check "k11's file is written" wait_for 10 test -f "$F11"
printf 'root:secret-hash\n' >"$FILES/elsewhere/shadow"
chmod 0640 "$FILES/elsewhere/shadow"
rm -f "$F10" "$F11"
ln "$FILES/elsewhere/shadow" "$F10"
mkfifo -m 0600 "$F11"
rotate k10 k10-second
rotate k11 k11-second
nobody_reads_k10() { [ "$(as_nobody cat "$F10" 2>/dev/null)" = k10-second ]; }
check "the hard link's path gets the new primary, for nobody" wait_for 10 nobody_reads_k10
is "the linked root file keeps its bytes" "$(cat "$FILES/elsewhere/shadow")" "root:secret-hash"
is "the linked root file keeps its owner and mode, and is linked once again" \
        "$(stat -c '%U %G %a %h' "$FILES/elsewhere/shadow")" "root root 640 1"
check "the agent has k11's new primary" wait_for 10 has k11
check "the refused write over a FIFO is logged" wait_for 10 grep -q "Refusing to write the file of key 'k11'.*not a regular file" "$T/agent.log"
check "the FIFO is left alone" test -p "$F11"
check "the agent still answers" call ListKeys
call Unregister s k10 >/dev/null
call Unregister s k11 >/dev/null
check "Unregister leaves the FIFO alone" test -p "$F11"

# ---- unregister removes the file ------------------------------------------------------------------
call Unregister s k1 >/dev/null
check "Unregister removes the file" test ! -e "$F1"
call Unregister s k4 >/dev/null
check "Unregister leaves a planted symlink alone" test -L "$F4"

# ---- written again at start, from the cache ---------------------------------------------------------
agent_stop
kwd_stop
rm -f "$F2"
printf '[agent]\nfile-dir = %s\nfile-dir = %s\n' "$FILES/elsewhere" "$ALLOWED" >"$T/agent.conf"
agent_start --config "$T/agent.conf"
check "the agent is back on the bus (file-dir= twice in its configuration file)" wait_for 10 busctl --system status "$DEST"
check "with every server down, the .json file is written again from the cache" test -f "$F2"
is "its contents are the cached version set" \
        "$(python3 -c 'import json,sys,base64; j=json.load(open(sys.argv[1])); print([base64.b64decode(v["data"]).decode() for v in j["versions"]])' "$F2")" \
        "['k2-first']"

# ---- no --file-dir: file delivery is off -------------------------------------------------------------
agent_stop
rm -f "$F2"
agent_start
check "the agent without --file-dir is on the bus" wait_for 10 busctl --system status "$DEST"
out=$(register k6 "$ALLOWED/k6.ok")
like "Register with a file and no --file-dir: InvalidArgs" "$out" "InvalidArgs.*no --file-dir"
check "a registered file outside every --file-dir is not written at start" test ! -e "$F2"
check "that is logged" grep -q "Refusing to write the file of key 'k2'" "$T/agent.log"

# ---- without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (as under the shipped unit) ----------------
# The walk from / opens the directories above the allowed one with O_PATH: it needs only the
# search permission a path needs, here through a directory of nobody's that is 0711.
agent_stop
rm -f "$F2"
chown nobody:nogroup "$FILES"
chmod 0711 "$FILES"
printf '#!/bin/sh\nexec setpriv --bounding-set=-dac_override,-dac_read_search -- "%s" "$@"\n' "$KEYWARD_AGENT" >"$T/agent-nodac"
chmod 0755 "$T/agent-nodac"
KEYWARD_AGENT=$T/agent-nodac agent_start --file-dir "$ALLOWED"
check "the agent without CAP_DAC_OVERRIDE is on the bus" wait_for 10 busctl --system status "$DEST"
check "it writes a file below a directory it may only search (nobody's, 0711)" wait_for 10 test -f "$F2"
chown root:root "$FILES"
chmod 0755 "$FILES"

check "no secret in the agent's log" bash -c "! grep -q -e k1-first -e k1-second -e '$(b64 k1-first)' '$T/agent.log'"
done_testing
