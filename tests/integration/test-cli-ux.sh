#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What an admin meets at the command line: keyward get reading a registered key from
# keyward-agent (as Knox's get reads its host cache) with -n and --agent, JSON that ends with
# a newline, errors that name the unit or the CA file at fault, keywardd init --help and
# keyward-agent --version. Runs against a real keywardd and keyward-agent on a private bus;
# the refusal by the agent is tested as other uids when run as root.

. "$(dirname "$0")/lib.sh"

[ -x "$KEYWARD" ] || skip_all "$KEYWARD is not built"
[ -x "$KEYWARD_AGENT" ] || skip_all "$KEYWARD_AGENT is not built"

HOST=host1.example.com
VERSION=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"/\1/p' "$KEYWARD_TOP_BUILDDIR/config.h")

unset KEYWARD_TOKEN KNOX_USER_AUTH KEYWARD_SERVER KEYWARD_SERVER_CA KEYWARD_LOG_LEVEL KEYWARD_CONFIG
export KEYWARD_CONFIG="$T/no-keyward.conf"
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-bus"

# kw [ARGS...]: keyward with stdin from $T/in, stdout in $T/out (OUT), stderr in ERR, status rc.
# AS=user runs it as that user (root only).
: >"$T/in"
AS=
kw() {
        local run=()
        [ -n "$AS" ] && run=(setpriv --reuid="$AS" --regid="$(id -g "$AS")" --clear-groups)
        "${run[@]}" timeout 30 "$KEYWARD" "$@" <"$T/in" >"$T/out" 2>"$T/err"
        rc=$?
        OUT=$(tr -d '\000' <"$T/out")
        ERR=$(cat "$T/err")
        : >"$T/in"
}
input() {
        printf '%s' "$1" >"$T/in"
}
check_rc() {
        if [ "$rc" = "$2" ]; then
                ok "$1"
        else
                not_ok "$1"
                diag "exit status $rc, want $2"
                printf '%s\n' "$ERR" | sed 's/^/# stderr: /'
        fi
}
last_byte() {
        tail -c1 "$T/out" | od -An -c | tr -d ' '
}

# ---- usage and messages that need no server ----------------------------------------------------

out=$("$KEYWARDD" init --help 2>&1)
is "keywardd init --help: exit 0" "$?" 0
like "keywardd init --help: init's usage" "$out" "^Usage: keywardd init --db DB --master-key MK"
like "keywardd init --help: init's options" "$out" "--master-key MK"
like "keywardd init --help: --owner, which init takes" "$out" "--owner USER"
if printf '%s' "$out" | grep -qE -- '--listen|--tls-cert|--audit-log'; then
        not_ok "keywardd init --help: none of serve's options"
        printf '%s\n' "$out" | sed 's/^/# /'
else
        ok "keywardd init --help: none of serve's options"
fi
[ -e "$T/keyward.db" ] && not_ok "keywardd init --help: creates nothing" || ok "keywardd init --help: creates nothing"

out=$("$KEYWARD_AGENT" --version 2>&1)
is "keyward-agent --version: exit 0" "$?" 0
is "keyward-agent --version: the version" "$out" "keyward-agent $VERSION"

kw register --unit demo.servce ux:one
check_rc "register --unit with a misspelt suffix: usage error" 2
like "register --unit: names the unit and the rule" "$ERR" \
        "Invalid --unit 'demo.servce': a unit name ends in \.service, \.socket, .*\.slice\.$"
kw register --unit 'my unit.service' ux:one
check_rc "register --unit with a space: usage error" 2
like "register --unit with a space: says which characters" "$ERR" \
        "Invalid --unit 'my unit.service': a unit name has only letters, digits and"
kw register --unit -x.service ux:one
check_rc "register --unit starting with -: usage error" 2
like "register --unit starting with -: says so" "$ERR" "Invalid --unit '-x.service': a unit name does not start with"

# A CA that cannot be used is reported with its name and why, before any connection.
mkdir "$T/ca-dir"
printf 'not a certificate\n' >"$T/garbage.pem"
KEYWARD_TOKEN=x KEYWARD_SERVER_CA="$T/ca-dir" kw --server https://127.0.0.1:1 get -n ux:one
check_rc "a directory as CA: exit 1" 1
like "a directory as CA: names it and says why" "$ERR" \
        "Cannot read the server CA '$T/ca-dir' \(from KEYWARD_SERVER_CA\): a directory"
KEYWARD_TOKEN=x kw --server https://127.0.0.1:1 --server-ca "$T/garbage.pem" get -n ux:one
check_rc "a CA file without a certificate: exit 1" 1
like "a CA file without a certificate: names it and says why" "$ERR" \
        "Cannot read the server CA '$T/garbage.pem' \(from --server-ca\): no PEM certificate"
truncate -s 5M "$T/huge.pem"
KEYWARD_TOKEN=x kw --server https://127.0.0.1:1 --server-ca "$T/huge.pem" get -n ux:one
check_rc "a CA file over 4 MiB: exit 1" 1
like "a CA file over 4 MiB: says so" "$ERR" "Cannot read the server CA '$T/huge.pem' \(from --server-ca\): larger than 4 MiB"
KEYWARD_TOKEN=x kw --server https://127.0.0.1:1 --server-ca "$T/missing.pem" keys
like "a missing CA file: names it and the error" "$ERR" \
        "Cannot read the server CA '$T/missing.pem' \(from --server-ca\): No such file or directory"

# ---- keys on a server, one of them registered with the agent -----------------------------------

make_pki
kwd_init
kwd_start
ALICE=$(kwd_token alice) || bail "cannot mint a token"
export KEYWARD_SERVER="$KWD_URL" KEYWARD_SERVER_CA="$T/pki/ca.pem" KEYWARD_TOKEN="$ALICE"

input first
kw create ux:one
V1=${OUT##* }
input second
kw add ux:one
V2=${OUT##* }
input third
kw add ux:one
V3=${OUT##* }
kw deactivate ux:one "$V3"
check_rc "a key with a primary, an active and an inactive version" 0
input other
kw create ux:two
kw access -r -M ux:one "$HOST"
kw access -r -M ux:two "$HOST"
check_rc "the machine may read both keys" 0

kw get ux:one
is "no agent on the bus: get asks the server" "$OUT" "first"
kw get --agent ux:one
check_rc "no agent on the bus: get --agent fails" 1
like "no agent on the bus: get --agent says why" "$ERR" "Error getting key from agent: cannot connect to the system bus"

bus_start
kw get --agent ux:one
check_rc "no agent: get --agent fails" 1
like "no agent: get --agent says the agent is not running" "$ERR" \
        "Error getting key from agent: keyward-agent is not running"
kw get ux:one
is "no agent: get asks the server" "$OUT" "first"

agent_start
check "the agent is on the bus" wait_for 10 busctl --system status org.keyward.Agent1

READER=
[ "$(id -u)" -eq 0 ] && id daemon >/dev/null 2>&1 && READER=daemon
kw register -g -t 10s -k ux:one ${READER:+--reader "user:$READER"}
check_rc "register -g: exit 0" 0
is "register -g: the key's JSON" "$(jget "$OUT" 'j["id"]')" "ux:one"
is "register -g: the JSON ends with a newline" "$(last_byte)" '\n'

# From here on no server answers: what get prints comes from the agent.
kwd_stop

kw get ux:one
check_rc "server away: get of a registered key: exit 0" 0
is "server away: get prints the agent's primary version, no newline added" "$OUT" "first"
is "server away: nothing on stderr" "$ERR" ""
kw get -v "$V2" ux:one
is "server away: get -v of an active version (GetKeyVersions)" "$OUT" "second"
kw get -a ux:one
is "server away: get -a prints the primary version" "$OUT" "first"
kw get --agent ux:one
check_rc "server away: get --agent: exit 0" 0
is "server away: get --agent prints the primary version" "$OUT" "first"
kw get --agent -j ux:one
check_rc "get --agent -j: exit 0" 0
is "get --agent -j: Knox's key JSON of the cached versions" \
        "$(jget "$OUT" '[j["id"], sorted(v["status"] + " " + str(v["id"]) for v in j["versions"]), len(j["hash"])]')" \
        "[\"ux:one\", [\"Active $V2\", \"Primary $V1\"], 64]"
is "get --agent -j: ends with a newline" "$(last_byte)" '\n'
kw get --agent -v "$V3" -a ux:one
check_rc "get --agent of a version the agent does not have: exit 1" 1
like "get --agent of a version the agent does not have: Knox's message" "$ERR" "Key version not found\.$"
kw get -v "$V3" -a ux:one
check_rc "a version the agent does not have: the server is asked" 1
like "a version the agent does not have: the server's failure" "$ERR" "Error getting key: Cannot reach any server"

kw get -n ux:one
check_rc "get -n: the network only" 1
like "get -n: the server's failure" "$ERR" "Error getting key: Cannot reach any server"
kw get -n --agent ux:one
check_rc "get -n --agent: usage error" 2
kw get ux:two
check_rc "a key not registered with the agent: the server is asked" 1
like "a key not registered with the agent: the server's failure" "$ERR" "Error getting key: Cannot reach any server"
kw get --agent ux:two
check_rc "get --agent of a key not registered: exit 1" 1
like "get --agent of a key not registered: the agent's reason" "$ERR" "Error getting key from agent: .*\(NotRegistered\)$"

if [ -n "$READER" ] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
        AS=$READER kw get ux:one
        check_rc "a reader named at registration: exit 0" 0
        is "a reader named at registration: the key from the agent" "$OUT" "first"
        AS=nobody kw get --agent ux:one
        check_rc "a caller the agent refuses, --agent: exit 1" 1
        like "a caller the agent refuses, --agent: the agent's refusal" "$ERR" \
                "Error getting key from agent: .*\(AccessDenied\)$"
        AS=nobody kw get ux:one
        check_rc "a caller the agent refuses: the server is asked instead" 1
        if [[ $ERR == *AccessDenied* || $ERR == *"from agent"* ]]; then
                not_ok "a caller the agent refuses: no word of the agent, the network's error"
                diag "$ERR"
        else
                ok "a caller the agent refuses: no word of the agent, the network's error"
        fi
        AS=
else
        diag "not root, or no users daemon and nobody: the agent's refusal is not tested"
fi

agent_stop
kw get --agent ux:one
like "the agent stopped: get --agent says it is not running" "$ERR" "keyward-agent is not running"

done_testing
