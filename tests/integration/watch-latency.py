#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# watch-latency.py CA TOKEN WRITER_URL WATCHER_URL KEY N: N times, hold a watch on KEY at
# WATCHER_URL (Prefer: wait), add a version to KEY at WRITER_URL once the watch is held, and
# time from the writer's answer to the watcher's. Prints "p50 p99 max n" in ms; exit 1 when
# a watch did not answer with KEY. A figure to read, not a test.
import base64
import http.client
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse

ca, token, writer, watcher, key, n = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
auth = {"Authorization": "0u" + token}


def conn(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)


def call(c, method, path, body=None, headers=None):
    h = dict(auth, **(headers or {}))
    if body is not None:
        h["Content-Type"] = "application/x-www-form-urlencoded"
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, json.loads(r.read())


wc, rc, ac = conn(watcher), conn(watcher), conn(writer)
lat = []
for i in range(int(n)):
    _, got = call(rc, "GET", "/v0/keys/%s/" % key)
    h = got["data"]["hash"]
    done = {}

    def watch():
        st, body = call(wc, "GET", "/v0/keys/?%s=%s" % (key, h), headers={"Prefer": "wait=20"})
        done["t"] = time.monotonic()
        done["body"] = body

    t = threading.Thread(target=watch)
    t.start()
    time.sleep(0.05)  # the watch is in the server's hands (a late one answers at once: no harm)
    data = base64.b64encode(os.urandom(8)).decode()
    call(ac, "POST", "/v0/keys/%s/versions/" % key, body=urllib.parse.urlencode({"data": data}))
    acked = time.monotonic()
    t.join()
    if done.get("body", {}).get("data") != [key]:
        print("the watch answered %r" % done.get("body"), file=sys.stderr)
        sys.exit(1)
    lat.append(max(0.0, done["t"] - acked) * 1000)
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat) + 0.999) - 1)]
print("p50 %.1f p99 %.1f max %.1f n %d" % (p(0.5), p(0.99), lat[-1], len(lat)))
