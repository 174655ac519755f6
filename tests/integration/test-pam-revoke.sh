#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every user token keyward-agent lets go of is revoked on keywardd, counted in keywardd's store:
# while every login thread is taken, after a revocation failed (the server frozen), and at
# stop with a hundred tokens held, some of them dead on the server already.

. "$(dirname "$0")/lib.sh"

[ -e "$KEYWARD_AGENT" ] || skip_all "$KEYWARD_AGENT is not built"
PAM_EXEC=$(ls /lib/*/security/pam_exec.so /lib/security/pam_exec.so /usr/lib/*/security/pam_exec.so 2>/dev/null | head -n1)
[ -n "$PAM_EXEC" ] || skip_all "pam_exec.so is not installed"

make_pki
kwd_init
pam_setup
MY_UID=$(id -u)
# dora logs in and gets tokens; the logins of eve, eve1, eve2... hang in keywardd's PAM stack until
# $T/release exists (at most two minutes), then fail (PAM_SYSTEM_ERR, an outage to the agent):
# a login flood through a slow directory.
printf 'dora:explorer:keyward\neve:unused:keyward\n' >"$T/passdb"
printf 'dora:x:%s:%s:Dora:/tmp:/bin/sh\nboss:x:%s:%s:Boss:/tmp:/bin/sh\n' \
        "$MY_UID" "$(id -g)" "$((MY_UID + 4242))" "$(id -g)" >"$T/passwd"
cat >"$T/slow-eve" <<SHEOF
#!/bin/sh
case "\$PAM_USER" in eve*) ;; *) exit 0 ;; esac
i=0
while [ ! -e "$T/release" ] && [ \$i -lt 1200 ]; do sleep 0.1; i=\$((i + 1)); done
exit 1
SHEOF
chmod +x "$T/slow-eve"
modules=$(pkg-config --variable=modules pam_wrapper)
cat >"$T/pam.d/keyward" <<PAMEOF
auth     requisite $PAM_EXEC quiet $T/slow-eve
auth     required $modules/pam_matrix.so passdb=$T/passdb
account  required $modules/pam_matrix.so passdb=$T/passdb
PAMEOF
kwd_start
bus_start

AGENT_ENV=("${AGENT_NSS_ENV[@]}")
AGENT_FLAGS=(--log-level debug)
# pam_agent_start ARGS...: the agent, once its PAM socket is there.
pam_agent_start() {
        rm -f "$T/run/pam.sock"
        agent_start "$@"
        wait_for 10 test -S "$T/run/pam.sock"
}

# pam_sock VERB ARGS...: what pam_keyward does over pam.sock.
#   login N USER PASSWORD: N logins one after another (sudo-style: no session binds them);
#     prints the answers' first fields, one a line.
#   flood N USER PASSWORD READY: N logins at once, as USER1..USERN from N addresses, each on a
#     connection of its own, waiting for their answers; READY is made once all are sent. (As
#     one user they would be slowed down and turned away by keywardd's throttle.)
#   handles N USER PASSWORD FILE: N logins; their handles go to FILE, one a line.
#   bind UID FILE: bind each handle in FILE to UID (with no session); prints the answers.
pam_sock() {
        python3 - "$T/run/pam.sock" "$@" <<'PYEOF'
import socket, sys
path, verb, n, user = sys.argv[1:5]
password = sys.argv[5] if len(sys.argv) > 5 else ""
def send(rhost, who=user):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(path)
        s.send(b"\0".join(x.encode() for x in ("LOGIN", who, password, rhost)) + b"\0")
        return s
if verb == "login":
        for _ in range(int(n)):
                s = send("")
                print(s.recv(8192).split(b"\0")[0].decode())
                s.close()
elif verb == "handles":
        with open(sys.argv[6], "w") as f:
                for _ in range(int(n)):
                        s = send("")
                        a = s.recv(8192).split(b"\0")
                        s.close()
                        if a[0] == b"OK":
                                print(a[1].decode(), file=f)
elif verb == "bind":
        for h in open(user).read().split():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                s.connect(path)
                s.send(b"\0".join(x.encode() for x in ("BIND", h, n, "")) + b"\0")
                print(s.recv(8192).split(b"\0")[0].decode())
                s.close()
else:
        held = [send("192.0.2.%d" % (i + 1), "%s%d" % (user, i + 1)) for i in range(int(n))]
        open(sys.argv[6], "w").close()
        for s in held:
                print(s.recv(8192).split(b"\0")[0].decode())
PYEOF
}
sudo_logins() { pam_sock login "$1" dora explorer | sort | uniq -c | awk '{ print $2 "x" $1 }'; }

live_tokens() {
        python3 -c 'import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT count(*) FROM tokens WHERE \"user\" = ? AND revoked = 0 AND expires > ?",
                 ("dora", time.time_ns())).fetchone()[0])' "$T/keyward.db"
}
no_live_tokens() { [ "$(live_tokens)" = 0 ]; }
too_many_logins() {
        [ "$(pam_sock login 1 eve whatever)" = UNAVAILABLE ] && grep -q "Cannot start a PAM login for 'eve'" "$T/agent.log"
}

# 1. Every login thread is taken (16 logins hang in keywardd's PAM stack) when tokens no
# session bound are let go of: their revocation has a thread of its own.
pam_agent_start --pam-bind-timeout 2s --request-timeout 120s
check "the agent is up, with a bind timeout of 2s" test -S "$T/run/pam.sock"
is "three sudo-style logins" "$(sudo_logins 3)" "OKx3"
is "their tokens are live on the server" "$(live_tokens)" 3
pam_sock flood 16 eve wrong "$T/flood.ready" >"$T/flood.out" &
FLOOD_PID=$!
BG_PIDS+=("$FLOOD_PID")
check "16 logins hang in keywardd's PAM stack" wait_for 10 test -e "$T/flood.ready"
check "every login thread is taken: another login is turned away" wait_for 10 too_many_logins
check "the tokens no session bound are revoked all the same" wait_for 30 no_live_tokens
is "while the 16 logins still hang" "$(wc -l <"$T/flood.out")" 0
touch "$T/release"
check "then the 16 logins are answered" wait_for 60 bash -c "[ \$(wc -l <'$T/flood.out') = 16 ]"
check "and that is logged" grep -q "User token of 'dora' was never bound to a session, revoking it" "$T/agent.log"
check "nothing is left to expire on its own" bash -c "! grep -q 'expire on their own' '$T/agent.log'"
check "the agent stops" agent_stop "$(scaled 30)"

# 2. A revocation that fails (keywardd frozen) is tried again once the server is back.
pam_agent_start --pam-bind-timeout 2s --connect-timeout 1s --request-timeout 2s
check "the agent is back, with short timeouts" test -S "$T/run/pam.sock"
is "two sudo-style logins" "$(sudo_logins 2)" "OKx2"
kill -STOP "$KWD_PID"
check "keywardd frozen: the revocation fails, to be tried again" \
        wait_for 30 grep -Eq "Could not revoke [12] user token\(s\) yet; trying again" "$T/agent.log"
kill -CONT "$KWD_PID"
check "keywardd thawed: the tokens are revoked" wait_for 60 no_live_tokens
check "nothing was left to expire on its own" bash -c "! grep -q 'expire on their own' '$T/agent.log'"
check "the agent stops" agent_stop "$(scaled 30)"

# 3. At stop, a hundred held tokens are all revoked, over one connection (keywardd closes it
# after an error answer: a token it has revoked already answers 401, and the next one goes on a
# new connection).
pam_agent_start
check "the agent is back" test -S "$T/run/pam.sock"
is "a hundred sudo-style logins" "$(sudo_logins 100)" "OKx100"
is "their tokens are live on the server" "$(live_tokens)" 100
# Every tenth one is revoked on the server behind the agent's back.
python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
ids = [r[0] for r in db.execute("SELECT rowid FROM tokens WHERE \"user\" = ? AND revoked = 0 ORDER BY rowid", ("dora",))]
db.executemany("UPDATE tokens SET revoked = 1 WHERE rowid = ?", [(i,) for i in ids[::10]])
db.commit()' "$T/keyward.db"
is "ten of them revoked on the server already" "$(live_tokens)" 90
AUDIT_FROM=$(($(wc -l <"$T/audit.log") + 1))
check "the agent stops" agent_stop "$(scaled 30)"
is "after the agent stopped: no live token" "$(live_tokens)" 0
check "the revocations are logged" grep -q "Revoked 100 user token(s) held for sessions" "$T/agent.log"
# keywardd's audit log has a line for each request, with the client's address and port.
revocations() {
        tail -n +"$AUDIT_FROM" "$T/audit.log" | python3 -c 'import json, sys
conns, errors, n = set(), 0, 0
for line in sys.stdin:
        p = json.loads(line).get("payload", {})
        r = p.get("request", {})
        if r.get("method") != "DELETE" or r.get("path") != "/v0/auth/token/":
                continue
        n += 1
        errors += p.get("status_code", 0) >= 400
        conns.add(r.get("remote_addr"))
print(n, errors, len(conns))'
}
check "keywardd saw the hundred revocations" wait_for 10 bash -c "[ \"\$(tail -n +$AUDIT_FROM '$T/audit.log' | grep -c '/v0/auth/token/')\" -ge 100 ]"
read -r n errors conns <<<"$(revocations)"
diag "revocations at stop: $n requests, $errors error answers, $conns connections"
is "a hundred revocations at stop, ten of them answered 401" "$n $errors" "100 10"
check "over one connection, and one more after each error answer" test "$conns" -le $((1 + errors))

# 4. At most 512 tokens wait for their revocation; past that the log says how many more are
# left to expire. 520 tokens are refused a bind (to boss's uid) while keywardd is frozen.
pam_agent_start --connect-timeout 1s --request-timeout 2s
check "the agent is back, with short timeouts" test -S "$T/run/pam.sock"
pam_sock handles 520 dora explorer "$T/handles"
is "520 sudo-style logins" "$(wc -l <"$T/handles")" 520
kill -STOP "$KWD_PID"
is "keywardd frozen: binding them to boss's uid is refused" \
        "$(pam_sock bind $((MY_UID + 4242)) "$T/handles" | sort | uniq -c | awk '{ print $2 "x" $1 }')" "ERRORx520"
check "their revocation fails, to be tried again" \
        wait_for 30 grep -q "Could not revoke 512 user token(s) yet; trying again" "$T/agent.log"
dropped=$(sed -n 's/.*Too many user tokens wait for their revocation (512): \([0-9]*\) more left to expire on their own\./\1/p' \
        "$T/agent.log" | awk '{ n += $1 } END { print n + 0 }')
is "the log says 8 more are left to expire" "$dropped" 8
kill -CONT "$KWD_PID"
eight_live_tokens() { [ "$(live_tokens)" = 8 ]; }
check "keywardd thawed: the 512 are revoked, the 8 left live" wait_for 60 eight_live_tokens
check "the agent stops" agent_stop "$(scaled 30)"

done_testing
