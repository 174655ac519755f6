#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Key reads are answered in batches: the lines of one pass of a worker's event loop go out in
# one write, and the answers of that pass wait for it. kill -9 of a real keywardd while
# several keep-alive clients pipeline key reads must leave a line for every answer a client
# received (the bound on what a crash can lose of key reads is zero lines; what it can lose
# of other answers is the last AUDIT_FLUSH_USEC of them, tested in test-server-audit-crash.sh).

. "$(dirname "$0")/lib.sh"

make_pki
kwd_init
ALICE=$(kwd_token alice) || bail "cannot mint a token"
AUDIT=$T/audit.log

as_alice() { req none "0u$ALICE" "$@"; }

# readers N: N keep-alive connections, each sending bursts of 16 pipelined GETs of key
# "readme" (K reads a connection per burst) until its connection fails; every 200 answer with
# the key's data appends a line to $T/answered.
readers() {
        python3 - "$KWD_ADDR" "$T/pki/ca.pem" "$ALICE" "$1" "$T/answered" <<'EOF2'
import os, socket, ssl, sys, threading
addr, ca, token, n, out = sys.argv[1:6]
host, port = addr.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=ca)
fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
request = ("GET /v0/keys/readme/ HTTP/1.1\r\nHost: %s\r\nAuthorization: 0u%s\r\n\r\n" % (host, token)).encode()

def reader():
        try:
                s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname=host)
                f = s.makefile("rb")
                while True:
                        s.sendall(request * 16)
                        for _ in range(16):
                                status = f.readline()
                                if not status:
                                        return
                                length = 0
                                while True:
                                        h = f.readline()
                                        if h in (b"\r\n", b""):
                                                break
                                        k, _, v = h.decode().partition(":")
                                        if k.lower() == "content-length":
                                                length = int(v)
                                body = f.read(length)
                                if len(body) < length:
                                        return
                                if status.split()[1] == b"200" and b'"status":"ok"' in body:
                                        os.write(fd, b"readme\n")
        except Exception:
                return

ts = [threading.Thread(target=reader) for _ in range(int(n))]
for t in ts:
        t.start()
for t in ts:
        t.join()
EOF2
}

read_lines() {
        python3 - "$AUDIT" <<'EOF2'
import json, sys
n = 0
for line in open(sys.argv[1], "rb"):
        j = json.loads(line)
        if "checkpoint" in j:
                continue
        p = j["payload"]
        if p["status_code"] == 200 and p["request"]["path"] == "/v0/keys/readme/":
                n += 1
print(n)
EOF2
}

kwd_start --audit-log "$AUDIT"
r=$(as_alice POST /v0/keys/ -d id=readme --data-urlencode "data=$(b64 read-secret)")
expect "create the key the readers read" "$r" 200 0 ""

for round in 1 2 3; do
        readers 8 &
        pid=$!
        BG_PIDS+=("$pid")
        base=$(cat "$T/answered" 2>/dev/null | wc -l)
        n=0
        for _ in $(seq 600); do
                n=$(($(cat "$T/answered" 2>/dev/null | wc -l) - base))
                [ "$n" -ge 400 ] && break
                sleep 0.05
        done
        kwd_kill9
        wait "$pid"
        check "round $round: kill -9 came while the readers were reading ($n answers before it)" [ "$n" -ge 400 ]
        kwd_start --audit-log "$AUDIT"
done
kwd_stop

n_answers=$(wc -l <"$T/answered")
n_lines=$(read_lines)
diag "$n_answers key reads answered over 3 kills, $n_lines audited"
check "kill -9: every key read a pipelining client received has its audit line" [ "$n_lines" -ge "$n_answers" ]
out=$("$KEYWARDD" audit-verify --master-key "$T/master.key" "$AUDIT" 2>&1)
is "audit-verify: the batched lines form an intact chain (exit 0)" "$?" 0

done_testing
