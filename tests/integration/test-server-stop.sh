#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Stopping keywardd while it is busy (issue 15, defect 1: SIGSEGV on SIGTERM with an agent
# connected). Each round holds watches whose clients ask again the moment they are answered,
# as keyward-agent does, keeps idle keep-alive connections open, has logins in flight (a
# refused password waits a second for its answer) and audit lines not yet written, then
# sends SIGTERM: keywardd must exit 0, with no sanitizer report, and every audit line whole.
# Run it against an ASan build with KEYWARD_TOP_BUILDDIR=<asan build dir>.

. "$(dirname "$0")/lib.sh"

make_pki
kwd_init
pam_setup
printf 'alice:wonderland:keyward\n' >"$T/passdb"
printf 'alice:x:5001:5001:Alice:/home/alice:/bin/sh\n' >"$T/passwd"
printf 'alice:x:5001:\n' >"$T/group"
ALICE=$(kwd_token alice) || bail "cannot mint a token"

as_alice() { req none "0u$ALICE" "$@"; }

# The busy clients: they write "ready" to $T/busy.state once every watch is held, every
# idle connection has had its first answer and every login is sent, and then keep going
# until the server closes their connections (at most 20 s).
cat >"$T/busy.py" <<'EOF'
import socket, ssl, sys, threading, time
host, port = sys.argv[1].rsplit(":", 1)
ca, token, key_hash, state = sys.argv[2:6]
ctx = ssl.create_default_context(cafile=ca)
deadline = time.monotonic() + 20
lock = threading.Lock()
pending = {"n": 0}

def connect():
        s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20), server_hostname="localhost")
        s.settimeout(max(0.1, deadline - time.monotonic()))
        return s

def read_answer(s, buf):
        while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                        return None, buf
                buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                        n = int(v)
        while len(rest) < n:
                d = s.recv(65536)
                if not d:
                        return None, rest
                rest += d
        return head, rest[n:]

def arrived():
        with lock:
                pending["n"] -= 1

def watcher():
        s = connect()
        buf = b""
        first = True
        req = ("GET /v0/keys/?k1=%s HTTP/1.1\r\nHost: localhost\r\nAuthorization: 0u%s\r\n"
               "Prefer: wait=60\r\n\r\n" % (key_hash, token)).encode()
        try:
                while time.monotonic() < deadline:
                        s.sendall(req)
                        if first:
                                first = False
                                arrived()
                        head, buf = read_answer(s, buf)
                        if head is None:
                                return
        except (OSError, ssl.SSLError):
                return

def idle():
        s = connect()
        try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                head, _ = read_answer(s, b"")
                arrived()
                while s.recv(65536):
                        pass
        except (OSError, ssl.SSLError):
                return

def login():
        s = connect()
        body = b"user=alice&password=wrong"
        try:
                s.sendall(b"POST /v0/auth/login/ HTTP/1.1\r\nHost: localhost\r\n"
                          b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body))
                arrived()
                read_answer(s, b"")
        except (OSError, ssl.SSLError):
                return

threads = []
for kind, n in ((watcher, 6), (idle, 6), (login, 3)):
        for _ in range(n):
                with lock:
                        pending["n"] += 1
                threads.append(threading.Thread(target=kind, daemon=True))
for t in threads:
        t.start()
while time.monotonic() < deadline:
        with lock:
                if pending["n"] == 0:
                        break
        time.sleep(0.02)
# The watches are held once the server has had a moment with the last request.
time.sleep(0.3)
open(state, "w").write("ready\n")
for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
EOF

kwd_start
r=$(as_alice POST /v0/keys/ -d id=k1 --data-urlencode "data=$(printf one | base64 -w0)")
expect "create k1" "$r" 200 0 ""
H1=$(jget "$(body "$(as_alice GET /v0/keys/k1/)")" 'j["data"]["hash"]')
[ -n "$H1" ] || bail "no hash for k1"
kwd_stop

busy_ready() { grep -q ready "$T/busy.state" 2>/dev/null; }

for round in 1 2 3; do
        : >"$T/keywardd.log"
        : >"$T/audit.log"
        rm -f "$T/busy.state"
        kwd_start --workers 2
        timeout 30 python3 "$T/busy.py" "$KWD_ADDR" "$T/pki/ca.pem" "$ALICE" "$H1" "$T/busy.state" \
                >"$T/busy.out" 2>&1 &
        busy=$!
        BG_PIDS+=("$busy")
        wait_for 15 busy_ready
        check "round $round: watches held, connections open, logins in flight" busy_ready
        pid=$KWD_PID
        kill -TERM "$pid"
        kwd_wait_exit "$pid" 15
        rc=$?
        KWD_PID=
        is "round $round: SIGTERM while busy: keywardd exits 0" "$rc" 0
        if grep -Eq 'Sanitizer|runtime error|SEGV' "$T/keywardd.log"; then
                not_ok "round $round: no sanitizer report"
                grep -E -A12 'Sanitizer|runtime error|SEGV' "$T/keywardd.log" | head -40 | sed 's/^/# /'
        else
                ok "round $round: no sanitizer report"
        fi
        check "round $round: every audit line is whole JSON" python3 -c '
import json, sys
for line in open(sys.argv[1]):
        json.loads(line)
' "$T/audit.log"
        n=$(grep -c '"method":"GET","path":"/v0/keys/"' "$T/audit.log")
        check "round $round: the held watches were answered and audited ($n lines)" [ "$n" -ge 6 ]
        kwd_wait_exit "$busy" 25
        check "round $round: the clients saw their connections closed" [ $? -ne 124 ]
done

done_testing
