#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# mem-scan.py PID FILE: how many times the bytes of FILE occur in the readable memory of
# process PID (every readable mapping in /proc/PID/maps, read through /proc/PID/mem; needs
# root for a process that is not dumpable). Prints the count and the mappings scanned.
import re
import sys

pid, path = sys.argv[1], sys.argv[2]
needle = open(path, "rb").read()
found = regions = 0
with open("/proc/%s/maps" % pid) as maps, open("/proc/%s/mem" % pid, "rb", 0) as mem:
    for line in maps:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        start, end, perms = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
        if perms[0] != "r" or line.rstrip().endswith(("[vvar]", "[vsyscall]")):
            continue
        try:
            mem.seek(start)
            data = mem.read(end - start)
        except OSError:
            continue
        regions += 1
        found += data.count(needle)
print("found=%d regions=%d" % (found, regions))
