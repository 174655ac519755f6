#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# What Knox's client library does on a host when an app calls knox.NewFileClient(ID): it
# runs `knox register -g -k ID`, which (client/register.go, client/daemon.go in Knox):
#   1. opens the register file <knox-dir>/.registered read-write and takes an exclusive
#      flock(2) on it, trying without blocking every 50 ms for up to 10 s;
#   2. reads the ids in it (separated by white space), adds ID and, when the set changed,
#      rewrites the file in place (open with O_TRUNC, write one id a line);
#   3. lets go of the lock;
#   4. reads <knox-dir>/v0/keys/ID every 10 ms until it parses as a key with a non-empty id,
#      an acl and versions that are not null and a non-empty hash, for at most 5 s (-t);
#   5. prints the key as JSON on stdout, which NewFileClient decodes.
# Usage: knox-register.py KNOX_DIR register|unregister ID [TIMEOUT_SECONDS]
# ("unregister" is `knox unregister ID`: the id taken out of the file under the same lock.)
import fcntl
import json
import os
import sys
import time

knox_dir, verb, key_id = sys.argv[1:4]
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
reg = os.path.join(knox_dir, ".registered")

fd = os.open(reg, os.O_RDWR)
deadline = time.monotonic() + 10
while True:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except BlockingIOError:
        if time.monotonic() > deadline:
            sys.exit("unable to obtain lock on file '%s'" % reg)
        time.sleep(0.05)

with open(reg, "rb") as f:
    ids = f.read().decode().split()
if verb == "register":
    new = sorted(set(ids) | {key_id})
else:
    new = sorted(set(ids) - {key_id})
if set(new) != set(ids) or verb != "register":
    with open(reg, "wb") as f:  # os.WriteFile: O_WRONLY|O_CREATE|O_TRUNC, in place
        f.write("".join(i + "\n" for i in new).encode())
fcntl.flock(fd, fcntl.LOCK_UN)
os.close(fd)

if verb != "register":
    print("Unregistered key successfully")
    sys.exit(0)

path = os.path.join(knox_dir, "v0", "keys", key_id)
deadline = time.monotonic() + timeout
err = None
while True:
    try:
        with open(path, "rb") as f:
            k = json.loads(f.read())
        if not k.get("id") or k.get("acl") is None or k.get("versions") is None or not k.get("hash"):
            raise ValueError("invalid key content for the cached key")
        break
    except (OSError, ValueError) as e:
        err = e
    if time.monotonic() > deadline:
        sys.exit("Error getting key from daemon (hit timeout after %ss): %s" % (timeout, err))
    time.sleep(0.01)
sys.stdout.write(json.dumps(k))
