#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# For test-server-rekey*.sh: a client of keywardd over one keep-alive HTTPS connection.
#
#   rekey-load.py populate URL CA TOKEN N EXPECT    create keys k_0..k_N-1, write EXPECT
#   rekey-load.py load URL CA TOKEN N EXPECT STOP   until the file STOP exists (or 5000
#       rounds): create a key, add a version to an existing one, read both back; every
#       answer must be 200 and every read must return what was written. Acknowledged keys
#       go to EXPECT; prints "rounds=R failures=F" and exits 1 on any failure.
#   rekey-load.py check URL CA TOKEN EXPECT open|sealed
#       open: every key in EXPECT reads back 200 with its data as primary;
#       sealed: every key answers Knox's internal error (code 1), none 200.
import base64
import http.client
import json
import os
import ssl
import sys
import urllib.parse


class Client:
    def __init__(self, url, ca, token):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.check_hostname = False
        self.token = token
        self.conn = None

    def req(self, method, path, form=None):
        body = urllib.parse.urlencode(form) if form is not None else None
        headers = {"Authorization": "0u" + self.token}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: a new one, once.
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def b64(s):
    return base64.b64encode(s.encode()).decode()


def create(c, kid, value):
    st, body = c.req("POST", "/v0/keys/", {"id": kid, "data": b64(value)})
    return st == 200 and json.loads(body).get("code") == 0, (st, body[:200])


def read(c, kid, primary):
    st, body = c.req("GET", "/v0/keys/%s/" % kid)
    if st != 200:
        return False, (st, body[:200])
    j = json.loads(body)
    vs = j["data"]["versions"]
    p = [v for v in vs if v["status"] == "Primary"]
    ok = len(p) == 1 and base64.b64decode(p[0]["data"]).decode() == primary
    return ok, (st, "primary %r" % [base64.b64decode(v["data"]) for v in p])


def main():
    mode, url, ca, token = sys.argv[1:5]
    c = Client(url, ca, token)
    if mode == "populate":
        n, expect = int(sys.argv[5]), sys.argv[6]
        with open(expect, "w") as f:
            for i in range(n):
                ok, why = create(c, "k_%d" % i, "rekey-value-%d" % i)
                if not ok:
                    sys.exit("create k_%d: %r" % (i, why))
                f.write("k_%d rekey-value-%d\n" % (i, i))
        return
    if mode == "load":
        n, expect, stop = int(sys.argv[5]), sys.argv[6], sys.argv[7]
        rounds = failures = 0
        with open(expect, "a") as f:
            while not os.path.exists(stop) and rounds < 5000:
                kid, value = "load_%d" % rounds, "load-value-%d" % rounds
                old = "k_%d" % (rounds % n)
                steps = [
                    ("create %s" % kid, lambda: create(c, kid, value)),
                    ("add a version to %s" % old, lambda: (lambda r: (r[0] == 200, r))(
                        c.req("POST", "/v0/keys/%s/versions/" % old, {"data": b64("added-%d" % rounds)}))),
                    ("read %s" % kid, lambda: read(c, kid, value)),
                    ("read %s" % old, lambda: read(c, old, "rekey-value-%d" % (rounds % n))),
                ]
                for what, step in steps:
                    ok, why = step()
                    if not ok:
                        failures += 1
                        print("# round %d: %s failed: %r" % (rounds, what, why), file=sys.stderr)
                    elif what.startswith("create"):
                        f.write("%s %s\n" % (kid, value))
                        f.flush()
                rounds += 1
                with open(stop + ".rounds", "w") as r:
                    r.write("%d\n" % rounds)
        print("rounds=%d failures=%d" % (rounds, failures))
        sys.exit(1 if failures else 0)
    if mode == "check":
        expect, want = sys.argv[5], sys.argv[6]
        bad = total = 0
        for line in open(expect):
            kid, value = line.split()
            total += 1
            if want == "open":
                ok, why = read(c, kid, value)
            else:
                st, body = c.req("GET", "/v0/keys/%s/" % kid)
                try:
                    j = json.loads(body)
                except ValueError:
                    j = {}
                ok, why = st == 500 and j.get("code") == 1 and j.get("status") == "error", (st, body[:200])
            if not ok:
                bad += 1
                if bad <= 5:
                    print("# %s: %r" % (kid, why), file=sys.stderr)
        print("keys=%d bad=%d" % (total, bad))
        sys.exit(1 if bad or not total else 0)


main()
