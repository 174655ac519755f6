#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# http-pipeline.py HOST PORT CA TOKEN PATH...: send one GET per PATH on one TLS connection,
# all at once before reading anything (HTTP/1.1 pipelining; the last asks to close), then
# read the answers in order, chunked or not, and print "STATUS BODYLENGTH SHA256" for each.
# Exit 1 when an answer is missing or malformed.
import hashlib
import socket
import ssl
import sys

host, port, ca, token = sys.argv[1:5]
paths = sys.argv[5:]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=60), server_hostname="localhost")
reqs = []
for i, p in enumerate(paths):
    close = "Connection: close\r\n" if i == len(paths) - 1 else ""
    reqs.append("GET %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: 0u%s\r\n%s\r\n" % (p, token, close))
s.sendall("".join(reqs).encode())

buf = b""


def fill():
    global buf
    d = s.recv(65536)
    if not d:
        raise EOFError("the connection closed early")
    buf += d


def line():
    global buf
    while b"\r\n" not in buf:
        fill()
    l, buf = buf.split(b"\r\n", 1)
    return l.decode("latin-1")


def take(n):
    global buf
    while len(buf) < n:
        fill()
    d, buf = buf[:n], buf[n:]
    return d


try:
    for p in paths:
        status = line().split(" ")[1]
        headers = {}
        while True:
            l = line()
            if l == "":
                break
            k, v = l.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                n = int(line().split(";")[0], 16)
                if n == 0:
                    while line() != "":
                        pass
                    break
                body += take(n)
                if take(2) != b"\r\n":
                    raise ValueError("a chunk is not followed by CRLF")
        else:
            body = take(int(headers.get("content-length", "0")))
        print(status, len(body), hashlib.sha256(body).hexdigest())
except (EOFError, ValueError, IndexError, OSError) as e:
    sys.stderr.write("%s\n" % e)
    sys.exit(1)
