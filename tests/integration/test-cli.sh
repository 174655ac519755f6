#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The keyward CLI against a real keywardd: every command with the output of Knox's CLI
# on stdout, errors as log lines on stderr, and the exit codes (0 success, 1 failure, 2 usage).
# The agent commands run against a private dbus-daemon: without an agent they fail cleanly,
# and with keyward-agent built they register, list, sync and unregister for real.

. "$(dirname "$0")/lib.sh"

[ -x "$KEYWARD" ] || skip_all "$KEYWARD is not built"

make_pki
kwd_init
pam_setup
printf 'dora:explorer:keyward\n' >"$T/passdb"
printf 'dora:x:5004:5004:Dora:/home/dora:/bin/sh\n' >"$T/passwd"
printf 'dora:x:5004:\neng:x:6002:dora\n' >"$T/group"
kwd_start

ALICE=$(kwd_token alice --group eng) || bail "cannot mint a token"
BOB=$(kwd_token bob --group other) || bail "cannot mint a token"
CAROL=$(kwd_token carol --group eng) || bail "cannot mint a token"

# A port nothing listens on.
CLOSED=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Nothing of the caller's environment leaks in; the system bus is one that does not exist,
# so that no test ever talks to the host's agent.
unset KEYWARD_TOKEN KNOX_USER_AUTH KEYWARD_SERVER KEYWARD_SERVER_CA KEYWARD_LOG_LEVEL
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-bus"
export KEYWARD_SERVER="$KWD_URL" KEYWARD_SERVER_CA="$T/pki/ca.pem" KEYWARD_TOKEN="$ALICE"

# kw [ARGS...]: run keyward with stdin from $T/in (empty unless written), stdout in $T/out,
# stderr in $T/err, exit status in $rc; OUT and ERR hold the text.
: >"$T/in"
kw() {
        timeout 30 "$KEYWARD" "$@" <"$T/in" >"$T/out" 2>"$T/err"
        rc=$?
        OUT=$(tr -d '\000' <"$T/out")
        ERR=$(cat "$T/err")
        : >"$T/in"
}
input() {
        printf '%s' "$1" >"$T/in"
}
# The log-line prefix of Knox's errors: "YYYY/MM/DD HH:MM:SS ".
LOGLINE='^[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} '
# check_run DESCRIPTION RC: the last kw exited with RC (shows stderr when not).
check_rc() {
        if [ "$rc" = "$2" ]; then
                ok "$1"
        else
                not_ok "$1"
                diag "exit status $rc, want $2"
                printf '%s\n' "$ERR" | sed 's/^/# stderr: /'
        fi
}

# ---- help and usage ----------------------------------------------------------------------

kw help
check_rc "help: exit 0" 0
like "help: the command list on stdout" "$OUT" "The commands are:"
like "help: lists every command" "$(printf '%s' "$OUT" | tr '\n' ' ')" "register.*unregister.*keys.*get.*versions.*acl.*promote.*create.*add.*deactivate.*reactivate.*access.*delete"
kw --help
check_rc "--help: exit 0" 0
like "--help: usage on stdout" "$OUT" "^keyward is a tool"
kw
check_rc "no command: usage error" 2
like "no command: usage on stderr" "$ERR" "The commands are:"
kw frobnicate
check_rc "unknown command: exit 2" 2
is "unknown command: Knox's message" "$ERR" $'keyward: unknown subcommand "frobnicate"\nRun \'keyward help\' for usage.'
kw help get
check_rc "help get: exit 0" 0
like "help get: the usage line" "$OUT" "^usage: keyward get \[-v key_version\] \[-n\] \[-j\] \[-a\] \[--agent\] <key_identifier>"
kw get --help
check_rc "get --help: exit 0" 0
like "get --help: the command's help" "$OUT" "^usage: keyward get"
kw help nosuchtopic
check_rc "help for an unknown topic: exit 2" 2
kw version
is "version" "$OUT" "keyward CLI version $(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"/\1/p' "$KEYWARD_TOP_BUILDDIR/config.h")"

kw get
check_rc "get without an id: exit 2" 2
like "get without an id: Knox's message as a log line" "$ERR" "${LOGLINE}get takes only one argument. See 'keyward help get'\$"
kw get -x some:key
check_rc "an unknown flag: exit 2" 2
like "an unknown flag: Go's flag message" "$ERR" "${LOGLINE}flag provided but not defined: -x"
kw get -v
check_rc "a flag without its value: exit 2" 2
like "a flag without its value: Go's message" "$ERR" "flag needs an argument: -v"
kw versions -s sideways some:key
check_rc "versions -s with an unknown state: exit 2" 2
kw promote some:key
check_rc "promote with one argument: exit 2" 2
like "promote with one argument: Knox's message" "$ERR" "promote takes exactly two argument"
kw access some:key someone
check_rc "access without an access flag: exit 2" 2
like "access without an access flag: Knox's message" "$ERR" "access requires \{-n,-r,-w,-a\}"
kw access -r some:key someone
check_rc "access without a type flag: exit 2" 2
like "access without a type flag: Knox's message" "$ERR" "access requires \{-M\|-U\|-G\|-P\|-S\|-N\}"
KEYWARD_SERVER='' kw keys
check_rc "no server given: exit 2" 2
like "no server given: says how to give one" "$ERR" "No server given: use --server URL or set KEYWARD_SERVER"
kw --cert "$T/pki/machine.pem" keys
check_rc "--cert without --key: exit 2" 2

# ---- create, get, add, versions, promote, deactivate, reactivate --------------------------

input "hunter2"
kw create cli:one
check_rc "create: exit 0" 0
like "create: Knox's two lines on stdout" "$OUT" $'^Reading from stdin...\nCreated key with initial version [0-9]+$'
V1=${OUT##* }
is "create: nothing on stderr" "$ERR" ""

kw get cli:one
check_rc "get: exit 0" 0
is "get: the data, with no newline added" "$(od -An -c "$T/out" | tr -s ' ')" " h u n t e r 2"

kw get -j cli:one
check_rc "get -j: exit 0" 0
is "get -j: Knox's key JSON, exact 64-bit version id" \
        "$(jget "$OUT" '[j["id"], j["acl"], [str(v["id"]) for v in j["versions"]], j["versions"][0]["data"], j["versions"][0]["status"], len(j["hash"])]')" \
        "[\"cli:one\", [], [\"$V1\"], \"aHVudGVyMg==\", \"Primary\", 64]"
is "get -j: ends with a newline" "$(tail -c2 "$T/out" | od -An -c | tr -d ' ')" '}\n'
kw --json get cli:one
is "get --json is get -j" "$(jget "$OUT" 'j["id"]')" "cli:one"

printf '\000\001\377 tail\n' >"$T/bin.in"
cp "$T/bin.in" "$T/in"
kw create cli:binary
check_rc "create with binary data: exit 0" 0
kw get cli:binary
check "get: binary data comes back byte for byte" cmp -s "$T/out" "$T/bin.in"

input "second"
kw add cli:one
check_rc "add: exit 0" 0
like "add: Knox's two lines on stdout" "$OUT" $'^Reading from stdin...\nAdded key version [0-9]+$'
V2=${OUT##* }

kw versions cli:one
check_rc "versions: exit 0" 0
is "versions: ids one per line" "$OUT" "$V1"$'\n'"$V2"
kw versions -v cli:one
is "versions -v: id and quoted status" "$OUT" "$V1 \"Primary\""$'\n'"$V2 \"Active\""
kw versions -s primary cli:one
is "versions -s primary" "$OUT" "$V1"
kw versions --json cli:one
is "versions --json" "$(jget "$OUT" '[[str(v["id"]), v["status"], v["ts"] > 10**18] for v in j]')" \
        "[[\"$V1\", \"Primary\", true], [\"$V2\", \"Active\", true]]"

kw promote cli:one "$V2"
check_rc "promote: exit 0" 0
is "promote: Knox's line" "$OUT" "Promoted $V2 successfully."
kw get cli:one
is "get after promote: the new primary" "$OUT" "second"
kw get -v "$V1" cli:one
is "get -v: an older version" "$OUT" "hunter2"

kw deactivate cli:one "$V1"
check_rc "deactivate: exit 0" 0
is "deactivate: Knox's line" "$OUT" "Deactivated $V1 successfully."
kw versions cli:one
is "versions: the inactive one is gone" "$OUT" "$V2"
kw versions -s inactive cli:one
is "versions -s inactive: all of them" "$OUT" "$V1"$'\n'"$V2"
kw get -v "$V1" cli:one
check_rc "get -v of an inactive version without -a: exit 1" 1
like "get -v of an inactive version: Knox's message" "$ERR" "${LOGLINE}Key version not found\.\$"
kw get -a -v "$V1" cli:one
is "get -a -v: the inactive version" "$OUT" "hunter2"
kw get -a -j cli:one
is "get -a -j: both versions" "$(jget "$OUT" 'len(j["versions"])')" "2"

kw reactivate cli:one "$V1"
check_rc "reactivate: exit 0" 0
is "reactivate: Knox's line" "$OUT" "Reactivated $V1 successfully."

kw deactivate cli:one "$V2"
check_rc "deactivate the primary: exit 1" 1
like "deactivate the primary: the server's message as a log line" "$ERR" \
        "${LOGLINE}Error updating version: Version must be Active to demote to Inactive\$"
is "deactivate the primary: nothing on stdout" "$OUT" ""
kw promote cli:one 12345
check_rc "promote an unknown version: exit 1" 1
like "promote an unknown version: Knox's message" "$ERR" "Error promoting version: Key version not found"
kw promote cli:one notanumber
check_rc "promote a malformed version: exit 1" 1

input "again"
kw create cli:one
check_rc "create an existing key: exit 1" 1
like "create an existing key: the server's message" "$ERR" "${LOGLINE}Error adding version: Key cli:one already exists\$"
kw create 'bad id!'
check_rc "create with a bad id: exit 1" 1

# ---- keys, acl, access ---------------------------------------------------------------------

kw keys
check_rc "keys: exit 0" 0
is "keys: every id, one per line" "$(printf '%s\n' "$OUT" | sort | tr '\n' ' ')" "cli:binary cli:one "
kw keys cli:one cli:nope
is "keys with ids: those that exist" "$OUT" "cli:one"
kw keys --json
is "keys --json" "$(jget "$OUT" 'sorted(j)')" '["cli:binary", "cli:one"]'

kw acl cli:one
check_rc "acl: exit 0" 0
is "acl: one JSON entry per line" "$OUT" '{"type":"User","id":"alice","access":"Admin"}'
kw acl -json cli:one
is "acl -json: one array" "$OUT" '[{"type":"User","id":"alice","access":"Admin"}]'
kw acl --json cli:one
is "acl --json: the same" "$OUT" '[{"type":"User","id":"alice","access":"Admin"}]'

kw access -r -M cli:one host1.example.com
check_rc "access -r -M: exit 0" 0
is "access: Knox's line" "$OUT" "Successfully updated Access"
kw access -w -G cli:one eng
check_rc "access -w -G: exit 0" 0
kw acl cli:one
is "acl after access: the new entries" "$OUT" '{"type":"User","id":"alice","access":"Admin"}
{"type":"Machine","id":"host1.example.com","access":"Read"}
{"type":"UserGroup","id":"eng","access":"Write"}'

printf '[{"type":"User","id":"bob","access":"Read"},{"type":"UserGroup","id":"eng","access":"None"}]' >"$T/acl.json"
kw access -acl "$T/acl.json" cli:one
check_rc "access -acl FILE: exit 0" 0
kw acl -json cli:one
is "access -acl: entries added and removed" "$OUT" \
        '[{"type":"User","id":"alice","access":"Admin"},{"type":"Machine","id":"host1.example.com","access":"Read"},{"type":"User","id":"bob","access":"Read"}]'
printf '[{"type":"User","id":"bob","access":"Sometimes"}]' >"$T/bad-acl.json"
kw access -acl "$T/bad-acl.json" cli:one
check_rc "access -acl with a bad file: exit 1" 1
like "access -acl with a bad file: Knox's message" "$ERR" "${LOGLINE}Could not decode access list properly: "
kw access -acl "$T/missing.json" cli:one
check_rc "access -acl with a missing file: exit 1" 1
like "access -acl with a missing file: Knox's message" "$ERR" "Could not read acl file"
kw access -r -S cli:one not-a-spiffe-id
check_rc "access with an invalid principal: exit 1" 1

# ---- identities: machine, other users, none -------------------------------------------------

KEYWARD_TOKEN='' kw --cert "$T/pki/machine.pem" --key "$T/pki/machine.key" --hostname host1.example.com get cli:one
check_rc "a machine (certificate, no token) reads a key it may read" 0
is "the machine gets the data" "$OUT" "second"
KEYWARD_TOKEN='' kw --cert "$T/pki/machine.pem" --key "$T/pki/machine.key" --hostname host1.example.com whoami
is "whoami as the machine" "$(printf '%s\n' "$OUT" | head -2 | tr '\n' ' ')" "principal: host1.example.com type: machine "
KEYWARD_TOKEN='' kw --cert "$T/pki/machine.pem" --key "$T/pki/machine.key" --hostname host1.example.com get cli:binary
check_rc "the machine reading a key it may not: exit 1" 1
like "the machine reading a key it may not: not authorized" "$ERR" "${LOGLINE}Error getting key: .*not authorized"

KEYWARD_TOKEN=$BOB kw get cli:one
check_rc "bob, granted Read: exit 0" 0
KEYWARD_TOKEN=$BOB kw get cli:binary
check_rc "unauthorized: exit 1" 1
like "unauthorized: the server's message as a log line" "$ERR" "${LOGLINE}Error getting key: Principal bob not authorized to read cli:binary\$"
is "unauthorized: nothing on stdout" "$OUT" ""
KEYWARD_TOKEN=$BOB kw delete cli:one
check_rc "delete without Admin: exit 1" 1

KEYWARD_TOKEN='' kw get cli:one
check_rc "no token at all (and no agent): exit 1" 1
like "no token: unauthenticated, with a hint" "$ERR" "${LOGLINE}Error getting key: .*no user token: run 'keyward login', or set KEYWARD_TOKEN"
KEYWARD_TOKEN=not-a-token kw get cli:one
check_rc "a bad token: exit 1" 1

KEYWARD_TOKEN='' KNOX_USER_AUTH=$BOB kw get cli:one
check_rc "Knox's KNOX_USER_AUTH is a user token too" 0
KEYWARD_TOKEN='' kw --token "$BOB" get cli:one
check_rc "--token works" 0
like "--token: a warning about the process list" "$ERR" "${LOGLINE}Warning: --token .*KEYWARD_TOKEN"

kw whoami
check_rc "whoami: exit 0" 0
is "whoami: principal, type, groups" "$OUT" $'principal: alice\ntype: user\ngroups: eng'
kw whoami --json
is "whoami --json" "$(jget "$OUT" '[j["principal"], j["type"], j["principals"][0]["groups"]]')" '["alice", "user", ["eng"]]'

# ---- errors: no such key, no server ------------------------------------------------------------

kw get cli:nope
check_rc "no such key: exit 1" 1
is "no such key: Knox's line" "$(printf '%s' "$ERR" | sed -E "s#${LOGLINE}##")" "Error getting key: No such key cli:nope"
kw versions cli:nope
check_rc "versions of no such key: exit 1" 1
kw acl cli:nope
check_rc "acl of no such key: exit 1" 1
like "acl of no such key: Knox's prefix" "$ERR" "Error getting key ACL: No such key cli:nope"

kw --server "https://127.0.0.1:$CLOSED" get cli:one
check_rc "no server reachable: exit 1" 1
like "no server reachable: a clear message" "$ERR" "${LOGLINE}Error getting key: Cannot reach any server: https://127.0.0.1:$CLOSED: "
input "x"
kw --server "https://127.0.0.1:$CLOSED" create cli:unreachable
check_rc "create with no server reachable: exit 1" 1
KEYWARD_SERVER="https://127.0.0.1:$CLOSED, $KWD_URL" kw get cli:one
check_rc "failover: the second server answers" 0
is "failover: the data" "$OUT" "second"
kw --server "127.0.0.1:$CLOSED" --server "${KWD_URL#https://}" get cli:one
check_rc "failover with repeated --server and bare host:port" 0
kw --server-ca "$T/pki/foreign.pem" get cli:one
check_rc "a server whose certificate does not verify: exit 1" 1
like "a server whose certificate does not verify: says so" "$ERR" "Cannot reach any server"

# ---- delete, logout, login ------------------------------------------------------------------------

kw delete cli:binary
check_rc "delete: exit 0" 0
is "delete: Knox's line" "$OUT" "Successfully deleted key"
kw get cli:binary
check_rc "get after delete: exit 1" 1
kw delete cli:binary
check_rc "delete again: exit 1" 1

KEYWARD_TOKEN=$CAROL kw logout
check_rc "logout: exit 0" 0
is "logout: confirms" "$OUT" "Successfully revoked token"
KEYWARD_TOKEN=$CAROL kw whoami
check_rc "the revoked token no longer works" 1
like "the revoked token: the server says so" "$ERR" "revoked"
KEYWARD_TOKEN='' kw logout
check_rc "logout without a token: exit 1" 1

# Password logins: the server asks PAM (pam_wrapper's pam_matrix here).
input $'explorer\n'
KEYWARD_TOKEN='' kw login dora
check_rc "login: exit 0" 0
like "login: the token on stdout" "$OUT" '^kwt_[A-Za-z0-9_-]{43}$'
DORA=$OUT
KEYWARD_TOKEN=$DORA kw whoami
is "the login's token works: whoami" "$OUT" $'principal: dora\ntype: user\ngroups: dora eng'
input $'explorer\n'
KEYWARD_TOKEN='' kw login --json dora
check_rc "login --json: exit 0" 0
is "login --json: the whole answer" "$(jget "$OUT" '[j["user"], j["groups"], j["token"][:4], type(j["expires"]).__name__]')" \
        '["dora", ["dora", "eng"], "kwt_", "int"]'
input $'wrong\n'
KEYWARD_TOKEN='' kw login dora
check_rc "login with a wrong password: exit 1" 1
like "login refused: the server's reason" "$ERR" "${LOGLINE}Fail to authenticate: Invalid user name or password"
is "login refused: no token on stdout" "$OUT" ""
input $'explorer\n'
KEYWARD_TOKEN='' kw --server "127.0.0.1:$CLOSED" login dora
check_rc "login with no server reachable: exit 1" 1
like "login with no server: says so" "$ERR" "Cannot reach any server"
kw login a b
check_rc "login with two arguments: exit 2" 2

# No secret in the audit log, whatever the commands did.
if grep -q -e hunter2 -e aHVudGVyMg -e "$ALICE" -e explorer -e "$DORA" "$T/audit.log"; then
        not_ok "no key data, password or token in the audit log"
else
        ok "no key data, password or token in the audit log"
fi

# ---- the agent's commands ------------------------------------------------------------------------

kw status
check_rc "status without a system bus: exit 1" 1
like "status without a system bus: says so" "$ERR" "${LOGLINE}Cannot connect to the system bus"
kw register -k cli:one
check_rc "register without a system bus: exit 1" 1
kw register
check_rc "register without a key: exit 2" 2
kw register --on-change sometimes cli:one
check_rc "register --on-change with a bad value: exit 2" 2
kw register --reader alice cli:one
check_rc "register --reader without user: or group:: exit 2" 2
kw unregister
check_rc "unregister without a key: exit 2" 2

if command -v dbus-daemon >/dev/null; then
        cat >"$T/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$T/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
EOF
        dbus-daemon --config-file="$T/bus.conf" --nofork --nopidfile 2>"$T/dbus.log" &
        BUS_PID=$!
        BG_PIDS+=("$BUS_PID")
        for _ in $(seq $((100 * KW_TEST_TIMEOUT_FACTOR))); do [ -S "$T/bus.sock" ] && break; sleep 0.05; done
        export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/bus.sock"

        kw status
        check_rc "status without an agent on the bus: exit 1" 1
        like "status without an agent: says the agent is not running" "$ERR" "keyward-agent is not running"
        kw sync
        check_rc "sync without an agent: exit 1" 1
        kw unregister cli:one
        check_rc "unregister without an agent: exit 1" 1
        KEYWARD_TOKEN='' kw get cli:one
        check_rc "no agent on the bus: commands go on without its token (401)" 1
        like "no agent on the bus: the server's 401 with the hint" "$ERR" "no user token"

        if [ -x "$KEYWARD_AGENT" ]; then
                # The machine may read cli:one (granted above).
                mkdir -p "$T/agent-state" "$T/agent-run"
                AGENT_STATE=$T/agent-state AGENT_RUN=$T/agent-run
                agent_start
                wait_for 5 busctl --address="$DBUS_SYSTEM_BUS_ADDRESS" status "$DEST"

                kw register -k cli:one --reader "user:$(id -un)"
                check_rc "register: exit 0" 0
                like "register: Knox's success line on stderr" "$ERR" "${LOGLINE}Successfully registered keys \[cli:one\]"
                kw register -g -t 10s cli:one
                check_rc "register -g: exit 0" 0
                is "register -g: the cached key as JSON" \
                        "$(jget "$OUT" '[j["id"], sorted(v["status"] for v in j["versions"]), len(j["hash"])]')" \
                        '["cli:one", ["Active", "Primary"], 64]'
                kw status
                check_rc "status: exit 0" 0
                like "status: the registered key" "$OUT" "cli:one"
                kw status --json
                is "status --json: the key" "$(jget "$OUT" '[k["id"] for k in j["Keys"]]')" '["cli:one"]'
                kw sync
                check_rc "sync: exit 0" 0
                kw unregister cli:one
                check_rc "unregister: exit 0" 0
                is "unregister: Knox's line" "$OUT" "Unregistered key successfully"
                kw status --json
                is "status after unregister: no keys" "$(jget "$OUT" 'j["Keys"]')" "[]"
                kw register -k cli:one
                kw register -r
                check_rc "register -r: exit 0" 0
                like "register -r: all unregistered" "$ERR" "Successfully unregistered all keys"
                kw unregister cli:one
                check_rc "unregister a key that is not registered: exit 1" 1
                agent_stop
        else
                diag "keyward-agent is not built: register/status/sync against a live agent not tested"
        fi
        kill "$BUS_PID" 2>/dev/null
        wait "$BUS_PID" 2>/dev/null
else
        diag "dbus-daemon is not installed: the agent's commands tested without a bus only"
fi

done_testing
