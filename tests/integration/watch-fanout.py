#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Watchers for test-server-watch-fanout.sh: each group of watchers holds one watch per TLS
# connection with its own query; once the caller writes, every watcher reads its answer
# record by record (TLS runs over memory BIOs, so each record that carries answer bytes is
# counted), then asks once more on the same connection (keep-alive must still work after the
# answer) and prints one JSON line per watcher.
#
# usage: watch-fanout.py HOST:PORT CA TOKEN READY_FILE GROUP=N:QUERY[:AFTER_QUERY]...
# Prints, once every watcher is done (or 60 s have passed):
#   {"group": G, "port": local port, "status": 200, "data": [...], "records": n,
#    "close": bool, "again": status of the second request or null, "error": null or text}

import asyncio
import json
import ssl
import sys

host, port = sys.argv[1].rsplit(":", 1)
ca, token, ready_file = sys.argv[2], sys.argv[3], sys.argv[4]
groups = []
for spec in sys.argv[5:]:
        name, _, rest = spec.partition("=")
        n, _, queries = rest.partition(":")
        query, _, after = queries.partition(":")
        groups.append((name, int(n), query, after or None))

ctx = ssl.create_default_context(cafile=ca)
results = []
held = 0
all_held = asyncio.Event()
total = sum(g[1] for g in groups)


class Tls:
        def __init__(self, r, w):
                self.r, self.w = r, w
                self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
                self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")

        async def flush(self):
                data = self.out.read()
                if data:
                        self.w.write(data)
                        await self.w.drain()

        async def handshake(self):
                while True:
                        try:
                                self.obj.do_handshake()
                                break
                        except ssl.SSLWantReadError:
                                await self.flush()
                                data = await self.r.read(65536)
                                if not data:
                                        raise EOFError("closed during the handshake")
                                self.inc.write(data)
                await self.flush()

        async def send(self, data):
                self.obj.write(data)
                await self.flush()

        async def record(self):
                """One TLS record off the wire: the application bytes it carried (maybe none)."""
                head = await self.r.readexactly(5)
                body = await self.r.readexactly(int.from_bytes(head[3:5], "big"))
                self.inc.write(head + body)
                got = b""
                while True:
                        try:
                                chunk = self.obj.read(65536)
                        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                                break
                        if not chunk:
                                break
                        got += chunk
                await self.flush()
                return got

        async def response(self):
                """An HTTP response: (status, headers, body, records that carried it)."""
                buf, records = b"", 0
                while b"\r\n\r\n" not in buf:
                        got = await self.record()
                        records += got != b""
                        buf += got
                head, _, rest = buf.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                headers = {}
                for line in lines[1:]:
                        k, _, v = line.partition(b":")
                        headers[k.strip().lower().decode()] = v.strip().decode()
                length = int(headers.get("content-length", "0"))
                while len(rest) < length:
                        got = await self.record()
                        records += got != b""
                        rest += got
                return int(lines[0].split(b" ")[1]), headers, rest[:length], records


def request(query, wait):
        prefer = "Prefer: wait=%d\r\n" % wait if wait else ""
        return ("GET /v0/keys/?%s HTTP/1.1\r\nHost: localhost\r\nAuthorization: 0u%s\r\n%s\r\n" %
                (query, token, prefer)).encode()


async def watcher(name, query, after):
        global held
        res = {"group": name, "port": None, "status": None, "data": None, "records": None,
               "close": None, "again": None, "error": None}
        counted = False
        try:
                r, w = await asyncio.open_connection(host, int(port))
                res["port"] = w.get_extra_info("sockname")[1]
                tls = Tls(r, w)
                await tls.handshake()
                await tls.send(request(query, 60))
                held += 1
                counted = True
                if held == total:
                        all_held.set()
                status, headers, body, records = await tls.response()
                res["status"], res["records"] = status, records
                res["data"] = json.loads(body).get("data")
                res["close"] = headers.get("connection", "").lower() == "close"
                if after is not None and not res["close"]:
                        await tls.send(request(after, 0))
                        res["again"] = (await tls.response())[0]
                w.close()
        except Exception as e:
                res["error"] = repr(e)
                if not counted:
                        held += 1
                        if held == total:
                                all_held.set()
        results.append(res)


async def main():
        tasks = [asyncio.create_task(watcher(name, query, after))
                 for name, n, query, after in groups for _ in range(n)]
        await asyncio.wait_for(all_held.wait(), 60)
        # Every request is sent; the caller waits for keywardd to hold them all.
        with open(ready_file, "w") as f:
                f.write("sent\n")
        await asyncio.wait(tasks, timeout=60)


try:
        asyncio.run(main())
except asyncio.TimeoutError:
        pass
for res in results:
        print(json.dumps(res))
