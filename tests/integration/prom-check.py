#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# prom-check.py FILE [QUERY...]: check that FILE is valid Prometheus text exposition format
# (version 0.0.4, as node_exporter's textfile collector reads it) and print, for each QUERY
# ("name" or 'name{label="value"}', labels in any order), the sample's value, one a line.
# Exit 1 with the reasons on stderr when the file is invalid or a QUERY has no sample.
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_labels(s, i, errs, where):
    """Parse '{a="b",...}' from s[i] == '{'; return (labels, index after '}')."""
    labels = {}
    i += 1
    while True:
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            errs.append("%s: bad label name at %r" % (where, s[i:]))
            return None, i
        name = m.group(0)
        i = m.end()
        if s[i : i + 2] != '="':
            errs.append("%s: label %s has no quoted value" % (where, name))
            return None, i
        i += 2
        value = []
        while True:
            if i >= len(s):
                errs.append("%s: unterminated value of label %s" % (where, name))
                return None, i
            c = s[i]
            if c == "\\":
                e = s[i + 1 : i + 2]
                if e not in ("\\", '"', "n"):
                    errs.append("%s: bad escape \\%s in label %s" % (where, e, name))
                    return None, i
                value.append("\n" if e == "n" else e)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                errs.append("%s: raw newline in label %s" % (where, name))
                return None, i
            else:
                value.append(c)
                i += 1
        if name in labels:
            errs.append("%s: label %s twice" % (where, name))
        labels[name] = "".join(value)
        if s[i : i + 1] == ",":
            i += 1
        elif s[i : i + 1] != "}":
            errs.append("%s: expected , or } after label %s" % (where, name))
            return None, i


def family_of(name, types):
    """The family a sample belongs to: a histogram's _bucket, _sum and _count samples and a
    summary's _sum and _count samples are its own, under the family's name."""
    if name in types:
        return name
    for suffix, kinds in (("_bucket", ("histogram",)), ("_sum", ("histogram", "summary")),
                          ("_count", ("histogram", "summary"))):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) in kinds:
            return name[: -len(suffix)]
    return name


def check_histogram_sample(name, family, labels, v, hists, errs, where):
    """Record one histogram sample: buckets by their other labels, for check_histograms."""
    suffix = name[len(family):]
    if suffix not in ("_bucket", "_sum", "_count"):
        errs.append("%s: histogram %s has a sample %s (only _bucket, _sum, _count)" % (where, family, name))
        return
    rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
    h = hists.setdefault((family, rest), {"buckets": [], "count": None, "sum": None, "where": where})
    if suffix == "_bucket":
        if "le" not in labels:
            errs.append("%s: bucket of %s has no le label" % (where, family))
            return
        try:
            le = float(labels["le"])
        except ValueError:
            errs.append("%s: bucket of %s has a bad le %r" % (where, family, labels["le"]))
            return
        h["buckets"].append((le, v))
    elif "le" in labels:
        errs.append("%s: %s has an le label" % (where, name))
    else:
        h[suffix[1:]] = v


def check_histograms(hists, errs):
    """Each histogram series: a +Inf bucket, counts that never fall as le grows, and a
    _count equal to the +Inf bucket."""
    for (family, rest), h in hists.items():
        what = "histogram %s%s" % (family, dict(rest) if rest else "")
        b = h["buckets"]
        if not b:
            errs.append("%s has no bucket" % what)
            continue
        if [le for le, _ in b] != sorted(le for le, _ in b):
            errs.append("%s: buckets are not in increasing le order" % what)
        b = sorted(b)
        if b[-1][0] != math.inf:
            errs.append("%s has no le=\"+Inf\" bucket" % what)
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            errs.append("%s: bucket counts are not cumulative" % what)
        if h["count"] is None or h["sum"] is None:
            errs.append("%s lacks its _count or _sum" % what)
        elif b[-1][0] == math.inf and h["count"] != b[-1][1]:
            errs.append("%s: _count %r is not the +Inf bucket's %r" % (what, h["count"], b[-1][1]))


def parse(text):
    errs, samples, types, helps, hists = [], {}, {}, {}, {}
    if text and not text.endswith("\n"):
        errs.append("the file does not end with a newline")
    done = set()  # families whose samples ended
    current = None
    for n, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):
        where = "line %d" % n
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.fullmatch(name):
                    errs.append("%s: bad metric name %r" % (where, name))
                table = helps if parts[1] == "HELP" else types
                if name in table:
                    errs.append("%s: second %s for %s" % (where, parts[1], name))
                if name in samples_families:
                    errs.append("%s: %s for %s after its samples" % (where, parts[1], name))
                text_ = parts[3] if len(parts) > 3 else ""
                if parts[1] == "TYPE":
                    if text_ not in TYPES:
                        errs.append("%s: bad type %r" % (where, text_))
                else:
                    if re.search(r"\\[^\\n]", text_):
                        errs.append("%s: bad escape in HELP of %s" % (where, name))
                table[name] = text_
            continue
        m = NAME.match(line)
        if not m:
            errs.append("%s: bad sample line %r" % (where, line))
            continue
        name, i, labels = m.group(0), m.end(), {}
        if line[i : i + 1] == "{":
            labels, i = parse_labels(line, i, errs, where)
            if labels is None:
                continue
        rest = line[i:]
        if not rest.startswith(" "):
            errs.append("%s: no space before the value" % where)
            continue
        fields = rest.split()
        if len(fields) not in (1, 2):
            errs.append("%s: bad value part %r" % (where, rest))
            continue
        try:
            v = float(fields[0])
        except ValueError:
            errs.append("%s: bad value %r" % (where, fields[0]))
            continue
        family = family_of(name, types)
        if family not in types:
            errs.append("%s: sample of %s with no TYPE before it" % (where, name))
        if family in done:
            errs.append("%s: samples of %s are not together" % (where, name))
        if current is not None and current != family:
            done.add(current)
        current = family
        samples_families.add(family)
        if types.get(family) == "histogram":
            check_histogram_sample(name, family, labels, v, hists, errs, where)
        elif types.get(family) == "summary" and name == family and "quantile" not in labels:
            errs.append("%s: summary %s sample has no quantile label" % (where, name))
        if types.get(family) == "counter" and not name.endswith("_total"):
            errs.append("%s: counter %s does not end in _total" % (where, name))
        if types.get(family) == "counter" and (v < 0 or math.isnan(v)):
            errs.append("%s: counter %s is %r" % (where, name, v))
        key = (name, tuple(sorted(labels.items())))
        if key in samples:
            errs.append("%s: sample %s%r twice" % (where, name, labels))
        samples[key] = v
    check_histograms(hists, errs)
    for name in types:
        if name not in helps:
            errs.append("%s has a TYPE but no HELP" % name)
        if name not in samples_families:
            errs.append("%s has no sample" % name)
    return errs, samples


samples_families = set()


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    errs, samples = parse(text)
    out = []
    for q in sys.argv[2:]:
        m = NAME.match(q)
        labels = {}
        if m.end() < len(q):
            e = []
            labels, _ = parse_labels(q, m.end(), e, "query")
            if e:
                errs += e
                continue
        key = (m.group(0), tuple(sorted(labels.items())))
        if key not in samples:
            errs.append("no sample %s" % q)
            continue
        v = samples[key]
        out.append("%d" % v if math.isfinite(v) and v == int(v) else repr(v))
    if errs:
        sys.stderr.write("\n".join(errs) + "\n")
        sys.exit(1)
    print("\n".join(out))


main()
