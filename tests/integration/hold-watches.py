#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# hold-watches.py HOST PORT CA CERT KEY MACHINE QUERY N [MODE]: open N mutual-TLS connections to
# keywardd with the machine certificate CERT/KEY, one after the other, each with a full
# handshake; on each (MODE "watch", the default) send the watch GET /v0/keys/?QUERY (ID=HASH;
# a key that does not exist is waited on too) as machine MACHINE, or (MODE "tls") nothing. Then print "held N" and keep them all open, idle, until stdin closes. A watch
# answered early (the key changed, the server stops) is reported as "answered ID STATUS"
# on stdout; the program exits 1 when a connection fails.
import resource
import selectors
import socket
import ssl
import sys

host, port, ca, cert, key, machine, query, n = sys.argv[1:9]
mode = sys.argv[9] if len(sys.argv) > 9 else "watch"
n = int(n)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < n + 64:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
conns = []
for i in range(n):
    s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=60), server_hostname="localhost")
    if mode == "watch":
        req = "GET /v0/keys/?%s HTTP/1.1\r\nHost: localhost\r\nAuthorization: 0t%s\r\nPrefer: wait=300\r\n\r\n" % (
            query, machine)
        s.sendall(req.encode())
    s.setblocking(False)
    conns.append(s)
print("held %d" % len(conns), flush=True)

# Idle until told to stop; report what the server sends meanwhile.
sel = selectors.DefaultSelector()
sel.register(sys.stdin, selectors.EVENT_READ)
for i, s in enumerate(conns):
    sel.register(s, selectors.EVENT_READ, i)
while True:
    for k, _ in sel.select():
        if k.fileobj is sys.stdin:
            if not sys.stdin.readline():
                sys.exit(0)
            continue
        try:
            d = k.fileobj.recv(65536)
        except ssl.SSLWantReadError:
            continue
        line = d.split(b"\r\n", 1)[0].decode(errors="replace") if d else "closed"
        print("answered %d %s" % (k.data, line), flush=True)
        sel.unregister(k.fileobj)
        k.fileobj.close()
