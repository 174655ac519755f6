#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The man pages as an admin reads them: groff finds nothing to warn about, keyward.1 at 80
# columns shows each command's synopsis whole on its tag line (not broken into the text
# below it) and documents every command keyward --help lists, and keywardd.8 names every
# verb keywardd --help lists. And README quotes the exposure scores systemd-analyze security
# gives the units.

. "$(dirname "$0")/lib.sh"

[ -x "$KEYWARD" ] || skip_all "$KEYWARD is not built"
[ -x "$KEYWARDD" ] || skip_all "$KEYWARDD is not built"
command -v groff >/dev/null || skip_all "groff is not installed"

MAN=$KEYWARD_TOP_SRCDIR/man

for page in "$MAN"/*.[0-9]; do
        warnings=$(groff -ww -z -man "$page" 2>&1)
        is "groff -ww finds nothing to warn about in $(basename "$page")" "$warnings" ""
done

# render PAGE: the page as man shows it in an 80-column terminal, without bold or underline.
render() {
        groff -man -Tascii -rLL=80n -P-cbou "$1" 2>/dev/null
}

# Each .TP/.TQ tag of keyward.1 followed by a marker, so that the rendered text shows where
# every tag ends: on its own line, or where a tag no longer than the indent is followed by
# the text on the same line.
awk '{ print } tag { print "@@END@@"; tag = 0 } /^\.(TP|TQ)/ { tag = 1 }' "$MAN/keyward.1" >"$T/keyward.1"
render "$T/keyward.1" >"$T/keyward.txt"
"$KEYWARD" --help >"$T/help.txt"
# The commands, as keyward --help lists them ("    name   summary" lines), and help.
sed -n '/^The commands are:/,/^Use "keyward help/p' "$T/help.txt" | awk 'NF > 1 && /^    [a-z]/ {print $1}' >"$T/verbs"
echo help >>"$T/verbs"
[ "$(wc -l <"$T/verbs")" -gt 15 ] || bail "cannot read the command list of keyward --help"

while read -r verb; do
        usage=
        [ "$verb" != version ] && [ "$verb" != help ] &&
                usage=$("$KEYWARD" help "$verb" | sed -n '1s/^usage: keyward //p')
        verdict=$(python3 - "$T/keyward.txt" "$verb" "$usage" <<'PYEOF'
import re, sys

text, verb, usage = open(sys.argv[1]).read().splitlines(), sys.argv[2], sys.argv[3]
first = text.index("KEY COMMANDS") if "KEY COMMANDS" in text else 0
starts = [i for i, l in enumerate(text) if i > first and re.match(r"^ {7}" + re.escape(verb) + r"( |$)", l)]
if not starts:
        print("no entry for '%s' in keyward.1" % verb)
        sys.exit()
i = starts[0]
line = text[i]
if "@@END@@" in line:
        tag = line[7:line.index("@@END@@")].strip()
elif i + 1 < len(text) and text[i + 1].strip().startswith("@@END@@"):
        tag = line[7:].strip()
else:
        rest = " ".join(l.strip() for l in text[i:i + 4])
        print("tag broken in the middle: '%s'" % rest.split("@@END@@")[0].strip())
        sys.exit()
if tag.count("[") != tag.count("]") or tag.count("{") != tag.count("}"):
        print("tag broken in the middle: '%s'" % tag)
        sys.exit()
# A command that takes operands shows its last one at the end of the tag.
if re.search(r"(<[^>]*>|\.\.\.\])$", usage) and not re.search(r"[A-Z]+(\.\.\.)?\]?$", tag):
        print("tag without its operands: '%s'" % tag)
        sys.exit()
print("ok")
PYEOF
)
        is "keyward.1 at 80 columns: the $verb entry's tag is whole" "$verdict" "ok"
done <"$T/verbs"

render "$MAN/keywardd.8" >"$T/keywardd.txt"
for verb in $("$KEYWARDD" --help | sed -n 's/^  keywardd \([a-z-]*\).*/\1/p'); do
        if grep -qE "keywardd +$verb" "$T/keywardd.txt"; then
                ok "keywardd.8 names 'keywardd $verb'"
        else
                not_ok "keywardd.8 names 'keywardd $verb'"
        fi
done

render "$MAN/keyward-agent.8" >"$T/agent.txt"
like "keyward-agent.8 has --version" "$(cat "$T/agent.txt")" "keyward-agent --version"

# README's exposure scores are what systemd-analyze prints for the units make builds.
UNITS=$KEYWARD_TOP_BUILDDIR/packaging/systemd
if systemd-analyze security --help 2>/dev/null | grep -q -- --offline && [ -f "$UNITS/keywardd.service" ]; then
        readme=$(tr '\n' ' ' <"$KEYWARD_TOP_SRCDIR/README.md")
        for u in keyward-agent.service keywardd.service; do
                measured=$(cd "$UNITS" && systemd-analyze security --offline=yes --no-pager "$u" 2>/dev/null |
                        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
                quoted=$(python3 -c 'import re, sys
m = re.search(r"--offline=yes` on the installed files rates .{0,120}?" + re.escape(sys.argv[2]) + r" ([0-9]+\.[0-9])", sys.argv[1])
print(m.group(1) if m else "")' "$readme" "$u")
                is "README quotes systemd-analyze security --offline=yes for $u" "$quoted" "$measured"
        done
else
        diag "no systemd-analyze security --offline, or units not built: README's scores not checked"
fi

done_testing
