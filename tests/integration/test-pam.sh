#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# pam_keyward end to end: a login through a real PAM stack (pam_wrapper) running the module,
# keyward-agent on a private bus asking a real keywardd (whose own PAM stack is pam_matrix),
# the token bound to the session and handed out by GetUserToken, the keyward CLI using it with
# no token in its environment, and the token released and revoked when the session closes.

. "$(dirname "$0")/lib.sh"

PAM_SESSION=$KEYWARD_TOP_BUILDDIR/tests/integration/pam-session
MODULE=$KEYWARD_TOP_BUILDDIR/.libs/pam_keyward.so
for f in "$KEYWARD" "$KEYWARD_AGENT" "$PAM_SESSION" "$MODULE"; do
        [ -e "$f" ] || skip_all "$f is not built"
done

ME=$(id -un)
MY_UID=$(id -u)

make_pki
kwd_init
pam_setup
# The server knows dora; on this host dora is whoever runs the test, so that the token
# bound to her uid is the test's to ask for.
printf 'dora:explorer:keyward\n' >"$T/passdb"
printf 'dora:x:%s:%s:Dora:/tmp:/bin/sh\nboss:x:%s:%s:Boss:/tmp:/bin/sh\n' \
        "$MY_UID" "$(id -g)" "$((MY_UID + 4242))" "$(id -g)" >"$T/passwd"
printf 'eng:x:6002:dora\n' >"$T/group"
kwd_start
ADMIN=$(kwd_token admin) || bail "cannot mint a token"
r=$(req none "0u$ADMIN" POST /v0/keys/ -d id=eng_key --data-urlencode "data=$(printf 'engdata' | base64 -w0)" \
        --data-urlencode 'acl=[{"type":"UserGroup","id":"eng","access":"Read"}]')
expect "a key readable by the group eng" "$r" 200 0 ""

bus_start
# The agent sees the same users (it checks that a session's uid is the user who logged in).
AGENT_ENV=("${AGENT_NSS_ENV[@]}")
AGENT_FLAGS=(--log-level debug)
token_from_agent() { bus call "$DEST" "$OBJ" "$IFACE" GetUserToken; }

agent_start
check "the agent is on the bus" wait_for 10 bus status "$DEST"
check "the agent made its PAM socket" test -S "$T/run/pam.sock"
is "pam.sock is 0600" "$(stat -c %a "$T/run/pam.sock")" 600

# The host's PAM stack: the module for auth and session, under pam_wrapper.
mkdir -p "$T/host-pam.d"
cat >"$T/host-pam.d/login-test" <<PAMEOF
auth     required $MODULE socket=$T/run/pam.sock timeout=20
account  required $(pkg-config --variable=modules pam_wrapper)/pam_matrix.so passdb=$T/host-passdb
session  required $MODULE socket=$T/run/pam.sock
PAMEOF
printf 'dora:unused:login-test\n' >"$T/host-passdb"
host_login() { # [AS]: login-test as dora (the session AS's), stdin and stdout as given
        env "${KWD_ENV[@]}" PAM_WRAPPER_SERVICE_DIR="$T/host-pam.d" "$PAM_SESSION" login-test dora "$@" 2>>"$T/host-pam.log"
}

out=$(token_from_agent 2>&1)
like "before any login: GetUserToken is Unavailable" "$out" "No user token is held for uid $MY_UID"

# A wrong password: refused, and no token. The agent passes on where the person came from,
# and keywardd, trusting the machine's certificate, counts the failure for that address.
out=$(printf 'wrong\n' | PAM_SESSION_RHOST=192.0.2.7 host_login)
like "a wrong password: PAM_AUTH_ERR" "$out" "^auth: Authentication failure"
check "keywardd counts it for the machine and the address the person came from" \
        grep -q "Login as 'dora' from host1.example.com/192.0.2.7 refused" "$T/keywardd.log"
check "still no token" bash -c "! busctl --system call $DEST $OBJ $IFACE GetUserToken"

# A user name with a newline (typed at a login prompt) stays on one line of the agent's log.
out=$(printf 'wrong\n' | env "${KWD_ENV[@]}" PAM_WRAPPER_SERVICE_DIR="$T/host-pam.d" "$PAM_SESSION" login-test \
        $'mallory\nkeyward-agent: User token of \'dora\' bound to uid 0' 2>>"$T/host-pam.log")
like "a user name with a newline: refused" "$out" "^auth: Authentication failure"
check "the agent logs it escaped, on one line" \
        grep -qF "PAM login of 'mallory\\x0akeyward-agent: User token of \\x27dora\\x27 bound to uid 0': refused" "$T/agent.log"
check "and no forged line" bash -c "! grep -q '^keyward-agent: User token of .dora. bound to uid 0' '$T/agent.log'"

# sudo's way: dora authenticates, the session is boss's. The token is not boss's to hold.
out=$(printf 'explorer\nclose\n' | host_login boss)
like "dora authenticates for boss's session" "$out" "auth: Success"
check "the agent refuses to bind dora's token to boss's uid" \
        grep -q "Refused to bind the user token of 'dora' to uid $((MY_UID + 4242)) (boss)" "$T/agent.log"
check "and no token is held" bash -c "! busctl --system call $DEST $OBJ $IFACE GetUserToken"

# The right one: a session that holds a token, for as long as it is open.
mkfifo "$T/ctl"
host_login <"$T/ctl" >"$T/session.out" &
SESSION_PID=$!
BG_PIDS+=("$SESSION_PID")
exec 7>"$T/ctl"
printf 'explorer\n' >&7
check "login: the session opens" wait_for 20 grep -q '^session: Success' "$T/session.out"
like "login: auth succeeded" "$(cat "$T/session.out")" "auth: Success"
like "the handle does not reach the session's environment" "$(cat "$T/session.out")" "env: clean"

out=$(bus --json=short call "$DEST" "$OBJ" "$IFACE" GetUserToken)
TOKEN=$(jget "$out" 'j["data"][0]')
like "GetUserToken: the session's token" "$TOKEN" '^kwt_[A-Za-z0-9_-]{43}$'
check "the agent logs the delivery" grep -q "User token of 'dora' handed to uid $MY_UID" "$T/agent.log"

# The CLI finds the token through the agent: nothing in its environment.
out=$(env -u KEYWARD_TOKEN -u KNOX_USER_AUTH KEYWARD_SERVER="$KWD_URL" KEYWARD_SERVER_CA="$T/pki/ca.pem" \
        "$KEYWARD" whoami 2>&1)
is "keyward whoami with the agent's token" "$out" $'principal: dora\ntype: user\ngroups: eng'
out=$(env -u KEYWARD_TOKEN -u KNOX_USER_AUTH KEYWARD_SERVER="$KWD_URL" KEYWARD_SERVER_CA="$T/pki/ca.pem" \
        "$KEYWARD" get eng_key 2>&1)
is "keyward get through the group in the agent's token" "$out" "engdata"
# A fresh login shell has nothing of keyward's in its environment: the servers, their CA and
# the token all come from the agent (keyward.conf too when the host has one: not here).
no_conf=()
[ -e /etc/keyward/keyward.conf ] && no_conf=(KEYWARD_CONFIG="$T/absent.conf")
out=$(env -i PATH="$PATH" DBUS_SYSTEM_BUS_ADDRESS="$DBUS_SYSTEM_BUS_ADDRESS" "${no_conf[@]}" "$KEYWARD" whoami 2>&1)
is "keyward whoami with nothing set: servers, CA and token from the agent" "$out" $'principal: dora\ntype: user\ngroups: eng'

# The session ends: the token is released and revoked.
printf 'close\n' >&7
exec 7>&-
check "the session closes" wait_for 10 grep -q '^close: Success' "$T/session.out"
out=$(token_from_agent 2>&1)
like "after logout: GetUserToken is Unavailable again" "$out" "No user token is held"
check "the released token is revoked on the server" wait_for 10 bash -c \
        "curl -s --cacert '$T/pki/ca.pem' -H 'Authorization: 0u$TOKEN' '$KWD_URL/v0/auth/whoami/' | grep -q revoked"

# No password in any log; the token only where it was handed out.
if grep -q explorer "$T/agent.log" "$T/keywardd.log" "$T/audit.log" ||
        grep -q "$TOKEN" "$T/agent.log" "$T/keywardd.log" "$T/audit.log"; then
        not_ok "no password or token in the agent's, the server's or the audit log"
else
        ok "no password or token in the agent's, the server's or the audit log"
fi

# Connections to pam.sock that never send: the agent keeps only a few of them, each for a
# limited time, and logins go on meanwhile.
agent_fds() { find "/proc/$AGENT_PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
BASE_FDS=$(agent_fds)
python3 - "$T/run/pam.sock" "$T/idle.ready" <<'PYEOF' &
import socket, sys, time
held = []
for _ in range(200):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(sys.argv[1])
        held.append(s)
open(sys.argv[2], "w").close()
time.sleep(600)
PYEOF
IDLE_PID=$!
BG_PIDS+=("$IDLE_PID")
check "200 connections that send nothing are made" wait_for 30 test -e "$T/idle.ready"
# The agent answers in the order it accepts: once this login is answered, all 200 are in.
out=$(printf 'wrong\n' | host_login)
like "a login while 200 idle connections are open is answered" "$out" "^auth: Authentication failure"
fds=$(agent_fds)
diag "agent fds: $BASE_FDS before, $fds with 200 idle connections open"
check "the agent holds at most 32 of them (and a few fds of its own)" test "$fds" -le $((BASE_FDS + 32 + 8))
check "the idle connections are closed after their deadline" wait_for 60 \
        bash -c "[ \$(find /proc/$AGENT_PID/fd -mindepth 1 -maxdepth 1 | wc -l) -le $((BASE_FDS + 8)) ]"
check "closing them is logged" grep -q "Closed a PAM socket connection that sent no request" "$T/agent.log"
kill "$IDLE_PID" 2>/dev/null

# A session without a keyward login (root su, a service, an outage) leaves no noise: libpam
# logs an error for removing an environment name that is not there. pam_wrapper writes what
# libpam and the modules send to syslog on stderr.
cat >"$T/host-pam.d/nokw-test" <<PAMEOF
auth     required $(pkg-config --variable=modules pam_wrapper)/pam_matrix.so passdb=$T/nokw-passdb
account  required $(pkg-config --variable=modules pam_wrapper)/pam_matrix.so passdb=$T/nokw-passdb
session  optional $MODULE socket=$T/run/pam.sock
session  required pam_permit.so
PAMEOF
printf 'dora:plain:nokw-test\n' >"$T/nokw-passdb"
out=$(printf 'plain\nclose\n' | env "${KWD_ENV[@]}" PAM_WRAPPER_SERVICE_DIR="$T/host-pam.d" "$PAM_SESSION" nokw-test dora 2>"$T/nokw.log")
like "a session without a keyward login opens" "$out" "session: Success"
check "libpam's own syslog messages are captured (control)" grep -q "SYSLOG(" "$T/nokw.log"
check "no 'pam_putenv: delete non-existent entry' for it" bash -c "! grep -q 'delete non-existent entry' '$T/nokw.log'"

# No loop through keywardd's own PAM stack: pam-auth-update puts pam_keyward in common-auth,
# and keywardd's stack may include common-auth. Inside keywardd the module steps aside, found
# by its executable (here under another service name than the default) ...
logins() { grep -c "PAM login of 'dora'" "$T/agent.log"; }
printf 'dora:explorer:keyward-loop\n' >"$T/passdb-loop"
cat >"$T/pam.d/keyward-loop" <<PAMEOF
auth     sufficient $MODULE socket=$T/run/pam.sock timeout=5
auth     required $(pkg-config --variable=modules pam_wrapper)/pam_matrix.so passdb=$T/passdb-loop
account  required $(pkg-config --variable=modules pam_wrapper)/pam_matrix.so passdb=$T/passdb-loop
PAMEOF
agent_stop
kwd_stop
kwd_start --pam-service keyward-loop
rm -f "$T/run/pam.sock"
agent_start
check "keywardd and the agent restarted" wait_for 10 test -S "$T/run/pam.sock"
before=$(logins)
out=$(printf 'explorer\nclose\n' | host_login)
like "keywardd's stack holds pam_keyward: the login still succeeds" "$out" "session: Success"
is "and the agent was asked once, not again from inside keywardd" "$(logins)" "$((before + 1))"
# The PAM service keywardd ships (/etc/pam.d/keyward) is pam_unix alone: no common-auth.
SHIPPED=$KEYWARD_TOP_SRCDIR/packaging/pam.d/keyward
check "the shipped keyward PAM service includes no other stack" \
        bash -c "! grep -Eiq '^[[:space:]]*[^#[:space:]].*(@include|include|substack|common-)' '$SHIPPED'"
is "and has pam_unix for auth and account, nothing else" \
        "$(grep -Ev '^[[:space:]]*(#|$)' "$SHIPPED" | awk '{ print $1, $2, $3 }' | tr '\n' ';')" \
        "auth required pam_unix.so;account required pam_unix.so;"
# ... and by the service name keywardd uses by default, in any process.
cat >"$T/host-pam.d/keyward" <<PAMEOF
auth     sufficient $MODULE socket=$T/run/pam.sock
auth     required $(pkg-config --variable=modules pam_wrapper)/pam_matrix.so passdb=$T/keyward-passdb
account  required $(pkg-config --variable=modules pam_wrapper)/pam_matrix.so passdb=$T/keyward-passdb
PAMEOF
printf 'dora:matrix:keyward\n' >"$T/keyward-passdb"
before=$(logins)
out=$(printf 'matrix\n' | env "${KWD_ENV[@]}" PAM_WRAPPER_SERVICE_DIR="$T/host-pam.d" "$PAM_SESSION" keyward dora 2>>"$T/host-pam.log")
like "the PAM service 'keyward': the rest of the stack decides" "$out" "auth: Success"
is "and pam_keyward did not ask the agent" "$(logins)" "$before"

# Every token the agent lets go of is revoked on the server, counted in keywardd's store.
# sudo with pam-auth-update's profile runs pam_keyward's auth but not its session (that part
# is interactive-only): no session ever binds the token.
live_tokens() {
        python3 -c 'import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT count(*) FROM tokens WHERE \"user\" = ? AND revoked = 0 AND expires > ?",
                 ("dora", time.time_ns())).fetchone()[0])' "$T/keyward.db"
}
no_live_tokens() { [ "$(live_tokens)" = 0 ]; }
cat >"$T/host-pam.d/sudo-test" <<PAMEOF
auth     required $MODULE socket=$T/run/pam.sock
account  required $(pkg-config --variable=modules pam_wrapper)/pam_matrix.so passdb=$T/sudo-passdb
session  required pam_permit.so
PAMEOF
printf 'dora:unused:sudo-test\n' >"$T/sudo-passdb"
sudo_login() {
        printf 'explorer\nclose\n' | env "${KWD_ENV[@]}" PAM_WRAPPER_SERVICE_DIR="$T/host-pam.d" "$PAM_SESSION" sudo-test dora 2>>"$T/host-pam.log"
}
is "no live token of dora's before" "$(live_tokens)" 0
# A token no session binds within --pam-bind-timeout is revoked.
agent_stop
rm -f "$T/run/pam.sock"
agent_start --pam-bind-timeout 2s
check "the agent is back, with a bind timeout of 2s" wait_for 10 test -S "$T/run/pam.sock"
like "a sudo-style login" "$(sudo_login)" "close: Success"
is "its token is live on the server" "$(live_tokens)" 1
check "no session binds it: it is revoked" wait_for 30 no_live_tokens
check "and that is logged" grep -q "User token of 'dora' was never bound to a session, revoking it" "$T/agent.log"
# The agent stops: every token it holds, bound or not, is revoked.
like "another sudo-style login" "$(sudo_login)" "close: Success"
like "and another" "$(sudo_login)" "close: Success"
mkfifo "$T/ctl2"
host_login <"$T/ctl2" >"$T/session2.out" &
BG_PIDS+=("$!")
exec 8>"$T/ctl2"
printf 'explorer\n' >&8
check "and a session that holds its token" wait_for 20 grep -q '^session: Success' "$T/session2.out"
is "three live tokens" "$(live_tokens)" 3
agent_stop 15
is "the agent stops" "$?" 0
is "after the agent stopped: no live token" "$(live_tokens)" 0
check "the revocations are logged" grep -q "Revoked 3 user token(s) held for sessions" "$T/agent.log"
printf 'close\n' >&8
exec 8>&-
# The server not answering at stop: the agent stops all the same, in bounded time.
rm -f "$T/run/pam.sock"
agent_start
check "the agent is back" wait_for 10 test -S "$T/run/pam.sock"
like "a sudo-style login" "$(sudo_login)" "close: Success"
kill -STOP "$KWD_PID"
agent_stop 30
is "with keywardd stopped (SIGSTOP), the agent still stops" "$?" 0
kill -CONT "$KWD_PID"
check "and says the token is left to expire" grep -q "Could not revoke 1 user token(s) before stopping" "$T/agent.log"
rm -f "$T/run/pam.sock"
agent_start
check "the agent is back" wait_for 10 test -S "$T/run/pam.sock"

# The agent away: PAM_AUTHINFO_UNAVAIL, so that a stack can fall through to other modules.
agent_stop
check "a stopped agent removes its PAM socket" test ! -e "$T/run/pam.sock"
out=$(printf 'explorer\n' | host_login)
like "no agent: PAM_AUTHINFO_UNAVAIL" "$out" "^auth: Authentication service cannot retrieve authentication info"

# The agent up, the server away: the same.
agent_start
check "the agent is back" wait_for 10 test -S "$T/run/pam.sock"
kwd_stop
out=$(printf 'explorer\n' | host_login)
like "no server: PAM_AUTHINFO_UNAVAIL" "$out" "^auth: Authentication service cannot retrieve authentication info"

done_testing
