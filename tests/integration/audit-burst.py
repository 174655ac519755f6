#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# audit-burst.py HOST PORT CA TOKEN CONNS ROUNDS PATH...: CONNS keep-alive TLS connections; in
# each of ROUNDS rounds every connection sends one GET (the PATHs in turn) before any answer
# is read, so that keywardd finds several requests ready at once. Prints "STATUS COUNT" per
# status seen. Exit 1 when an answer is missing or malformed.
import socket
import ssl
import sys

host, port, ca, token = sys.argv[1:5]
conns, rounds = int(sys.argv[5]), int(sys.argv[6])
paths = sys.argv[7:]
ctx = ssl.create_default_context(cafile=ca)


class Conn:
    def __init__(self):
        self.s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=60),
                                 server_hostname="localhost")
        self.buf = b""

    def fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("the connection closed early")
        self.buf += d

    def answer(self):
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ")[1]
        headers = {}
        for l in lines[1:]:
            k, v = l.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                n = int(self.line().split(";")[0], 16)
                self.take(n + 2)
                if n == 0:
                    break
        else:
            self.take(int(headers.get("content-length", "0")))
        return status

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l.decode("latin-1")

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        self.buf = self.buf[n:]


try:
    cs = [Conn() for _ in range(conns)]
    seen = {}
    n = 0
    for r in range(rounds):
        for c in cs:
            p = paths[n % len(paths)]
            n += 1
            c.s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: 0u%s\r\n\r\n" % (p, token)).encode())
        for c in cs:
            st = c.answer()
            seen[st] = seen.get(st, 0) + 1
    for st in sorted(seen):
        print(st, seen[st])
except (EOFError, ValueError, IndexError, OSError) as e:
    sys.stderr.write("%s\n" % e)
    sys.exit(1)
