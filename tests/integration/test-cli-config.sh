#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keyward finds its server with nothing on its command line or in its environment, as in a
# fresh ssh session: from keyward.conf (KEYWARD_CONFIG names the test's file) and, with nothing
# set at all, from keyward-agent's Servers and ServerCA properties on a private bus. Each of
# the server list and the CA comes from the first of: flags, environment, keyward.conf, agent.
# A broken keyward.conf is a clear error, a missing one is no error.

. "$(dirname "$0")/lib.sh"

[ -x "$KEYWARD" ] || skip_all "$KEYWARD is not built"

make_pki
kwd_init
kwd_start
ALICE=$(kwd_token alice --group eng) || bail "cannot mint a token"
WHOAMI=$'principal: alice\ntype: user\ngroups: eng'

# A port nothing listens on.
CLOSED=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DEAD="https://127.0.0.1:$CLOSED"

# Nothing of the caller's environment leaks in, and no host agent is reachable. The token is
# given: this test is about finding the server (test-pam.sh gets tokens from the agent).
unset KEYWARD_TOKEN KNOX_USER_AUTH KEYWARD_SERVER KEYWARD_SERVER_CA KEYWARD_LOG_LEVEL KEYWARD_CONFIG
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-bus"
export KEYWARD_TOKEN=$ALICE
CONF=$T/keyward.conf
export KEYWARD_CONFIG=$CONF

kw() {
        timeout 30 "$KEYWARD" "$@" </dev/null >"$T/out" 2>"$T/err"
        rc=$?
        OUT=$(cat "$T/out")
        ERR=$(cat "$T/err")
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
conf() {
        printf '%s\n' "$@" >"$CONF"
}

# ---- keyward.conf --------------------------------------------------------------------------

conf '[keyward]' "server = $KWD_URL" "server-ca = $T/pki/ca.pem"
kw whoami
check_rc "keyward.conf alone: whoami exit 0" 0
is "keyward.conf alone: the server answers" "$OUT" "$WHOAMI"

conf '# the fleet' '[keyward]' "server = $DEAD, $KWD_URL" "server-ca = $T/pki/ca.pem"
kw whoami
check_rc "keyward.conf: a list, the dead server skipped" 0

conf '[keyward]' "server = $DEAD" "server =" "server = $KWD_URL" "server-ca = $T/pki/ca.pem"
kw whoami
check_rc "keyward.conf: an empty server= empties the list" 0

conf '[keyward]' "server = $KWD_URL" "server-ca = $T/pki/ca.pem"
KEYWARD_SERVER=$DEAD kw whoami
check_rc "KEYWARD_SERVER overrides keyward.conf: exit 1" 1
like "KEYWARD_SERVER overrides keyward.conf: only its server tried" "$ERR" "Cannot reach any server: $DEAD: [^;]*\$"
KEYWARD_SERVER=$DEAD kw --server "$KWD_URL" whoami
check_rc "--server overrides KEYWARD_SERVER" 0

# The CA: a wrong one in the file fails, the environment's and the flag's win over it.
conf '[keyward]' "server = $KWD_URL" "server-ca = $T/pki/foreign.pem"
kw whoami
check_rc "keyward.conf's server-ca is used (a wrong CA fails)" 1
like "a wrong CA: the server's certificate is refused" "$ERR" "Cannot reach any server: $KWD_URL: .*(certificate|SSL)"
KEYWARD_SERVER_CA=$T/pki/ca.pem kw whoami
check_rc "KEYWARD_SERVER_CA overrides keyward.conf's server-ca" 0
KEYWARD_SERVER_CA=$T/pki/foreign.pem kw --server-ca "$T/pki/ca.pem" whoami
check_rc "--server-ca overrides KEYWARD_SERVER_CA" 0
KEYWARD_SERVER=$KWD_URL KEYWARD_SERVER_CA=$T/pki/ca.pem KEYWARD_CONFIG=$T/pki kw whoami
check_rc "flags and environment complete: keyward.conf is not read" 0

# ---- a broken keyward.conf: a clear error, never a crash --------------------------------------

conf '[keyward]' "server = $KWD_URL" "cert = /etc/keyward/machine.pem"
kw whoami
check_rc "an unknown key: exit 1" 1
like "an unknown key: the file, line and key" "$ERR" "$CONF:3: Unknown key 'cert' in section \[keyward\]"
like "an unknown key: what to do" "$ERR" "Cannot use the config file '$CONF': fix it, or name another with KEYWARD_CONFIG"

conf '[keyward]' "server = $KWD_URL" "server-ca = pki/ca.pem"
kw whoami
check_rc "a relative server-ca: exit 1" 1
like "a relative server-ca: named" "$ERR" "$CONF:3: Invalid value for 'server-ca' in section \[keyward\]: 'pki/ca.pem'"

printf '[keyward]\nserver = https://a.example\001b\n' >"$CONF"
kw whoami
check_rc "a control character in a URL: exit 1" 1
like "a control character in a URL: the line" "$ERR" "$CONF:2: Invalid value for 'server'"

conf '[keyward' "server = $KWD_URL"
kw whoami
check_rc "a syntax error: exit 1" 1
like "a syntax error: the line" "$ERR" "$CONF:1: Syntax error"

conf '[keyward]' "server = $KWD_URL" "server-ca = $T/pki/nonexistent.pem"
kw whoami
check_rc "a server-ca that does not exist: exit 1" 1
like "a server-ca that does not exist: the file and where it was named" "$ERR" \
        "Cannot read the server CA '$T/pki/nonexistent.pem' \(from $CONF\): No such file or directory"

KEYWARD_CONFIG=$T/pki kw whoami
check_rc "a directory as KEYWARD_CONFIG: exit 1" 1
like "a directory as KEYWARD_CONFIG: says so" "$ERR" "Is a directory"

KEYWARD_CONFIG=$T/absent.conf kw whoami
check_rc "no keyward.conf and nothing else: a usage error" 2
like "no server anywhere: every way to name one" "$ERR" "No server given: use --server URL or set KEYWARD_SERVER, or name one in /etc/keyward/keyward.conf \(server=\), or run keyward-agent"

KEYWARD_SERVER=$'https://a.example\001' kw whoami
check_rc "a control character in KEYWARD_SERVER: usage error" 2
like "a control character in KEYWARD_SERVER: says so" "$ERR" "Invalid KEYWARD_SERVER"

# ---- the agent: nothing set at all -----------------------------------------------------------

agent_up() { busctl --address="$DBUS_SYSTEM_BUS_ADDRESS" status org.keyward.Agent1; }
if ! command -v dbus-daemon >/dev/null || ! command -v busctl >/dev/null; then
        diag "dbus-daemon or busctl is not installed: the agent as the source not tested"
elif [ ! -x "$KEYWARD_AGENT" ]; then
        diag "keyward-agent is not built: the agent as the source not tested"
else
        bus_start
        mkdir -p "$T/agent-state" "$T/agent-run"
        AGENT_STATE=$T/agent-state AGENT_RUN=$T/agent-run
        agent_start
        wait_for 10 agent_up || bail "keyward-agent did not take its bus name"

        is "the agent's ServerCA property" \
                "$(busctl --address="$DBUS_SYSTEM_BUS_ADDRESS" get-property org.keyward.Agent1 /org/keyward/Agent1 org.keyward.Agent1 ServerCA)" \
                "s \"$T/pki/ca.pem\""

        # Nothing set: no flags, no KEYWARD_SERVER(_CA), and no keyward.conf (the host's when
        # there is none, else a path that does not exist).
        unset KEYWARD_CONFIG
        [ -e /etc/keyward/keyward.conf ] && export KEYWARD_CONFIG=$T/absent.conf
        KEYWARD_LOG_LEVEL=debug kw whoami
        check_rc "nothing set: whoami finds the server through the agent" 0
        is "nothing set: the server answers" "$OUT" "$WHOAMI"
        like "nothing set: servers and CA from keyward-agent" "$ERR" \
                "Servers from keyward-agent, CA $T/pki/ca.pem from keyward-agent\."

        KEYWARD_SERVER=$DEAD kw whoami
        check_rc "KEYWARD_SERVER overrides the agent: exit 1" 1
        like "KEYWARD_SERVER overrides the agent: only its server tried" "$ERR" "Cannot reach any server: $DEAD: [^;]*\$"

        conf '[keyward]' "server = $DEAD"
        KEYWARD_CONFIG=$CONF KEYWARD_LOG_LEVEL=debug kw whoami
        check_rc "keyward.conf's server overrides the agent's: exit 1" 1
        like "keyward.conf's server overrides the agent's, the agent's CA fills in" "$ERR" \
                "Servers from $CONF, CA $T/pki/ca.pem from keyward-agent\."

        conf '[keyward]' "server-ca = $T/pki/foreign.pem"
        KEYWARD_CONFIG=$CONF kw whoami
        check_rc "keyward.conf's server-ca overrides the agent's (a wrong CA fails)" 1
        like "keyward.conf's server-ca over the agent's: the certificate is refused" "$ERR" \
                "Cannot reach any server: $KWD_URL: .*(certificate|SSL)"

        # A user who cannot read the agent's CA file ($T is 0700) is told which file it is.
        if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
                setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
                        env KEYWARD_TOKEN="$ALICE" "$KEYWARD" whoami </dev/null >"$T/out" 2>"$T/err"
                rc=$?
                ERR=$(cat "$T/err")
                check_rc "the agent's CA unreadable for the user: exit 1" 1
                like "the agent's CA unreadable: which file, from where" "$ERR" \
                        "Cannot read the server CA '$T/pki/ca.pem' \(from keyward-agent\): Permission denied"
        else
                diag "not root: the unreadable CA of the agent not tested"
        fi
fi

done_testing
