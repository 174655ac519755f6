#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# mem-scan.py PID FILE: how many times the bytes of FILE occur in the readable memory of
# process PID (every readable mapping in /proc/PID/maps, read through /proc/PID/mem; needs
# root for a process that is not dumpable). Prints the count and the mappings scanned.
import re
import sys

pid, path = sys.argv[1], sys.argv[2]
needle = open(path, "rb").read()
found = regions = skipped = 0
CHUNK = 1 << 20
SHADOW_MIN = 1 << 36  # 64 GiB
with open("/proc/%s/maps" % pid) as maps, open("/proc/%s/mem" % pid, "rb", 0) as mem:
    for line in maps:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        start, end, perms = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
        if perms[0] != "r" or line.rstrip().endswith(("[vvar]", "[vsyscall]")):
            continue
        # Read in pieces that overlap by the needle's length, so a copy across two pieces
        # counts once. A sanitizer's shadow regions reserve terabytes: they hold no data of
        # the process's own and are left out.
        if end - start > SHADOW_MIN:
            skipped += 1
            continue
        pos, tail, ok = start, b"", True
        while pos < end:
            try:
                mem.seek(pos)
                data = mem.read(min(CHUNK, end - pos))
            except OSError:
                ok = False
                break
            if not data:
                break
            buf = tail + data
            found += buf.count(needle) - tail.count(needle)
            tail = buf[-(len(needle) - 1):] if len(needle) > 1 else b""
            pos += len(data)
        if ok or pos > start:
            regions += 1
print("found=%d regions=%d skipped=%d" % (found, regions, skipped))
