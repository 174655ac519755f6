#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The shell completions (shell-completion/{bash,zsh,fish}) offer exactly the commands and the
# flags that keyward itself lists: the commands of `keyward --help`, each command's flags from
# the usage line of `keyward help COMMAND`, the global flags of `keyward --help`. So a command
# or flag added to the CLI without its completions fails here. zsh and fish must parse the
# files (zsh -n, fish -n), and fish, which can complete outside a terminal, is asked what it
# offers (complete -C); bash's and zsh's lists are read from the files.

. "$(dirname "$0")/lib.sh"

[ -x "$KEYWARD" ] || skip_all "$KEYWARD is not built"

SC=$KEYWARD_TOP_SRCDIR/shell-completion

# ---- what the CLI says --------------------------------------------------------------------------

"$KEYWARD" --help >"$T/help.txt" || bail "keyward --help failed"
sed -n '/^The commands are:/,/^Use "keyward help/p' "$T/help.txt" | awk 'NF > 1 && /^    [a-z]/ {print $1}' >"$T/commands"
echo help >>"$T/commands"
sort -o "$T/commands" "$T/commands"
[ "$(wc -l <"$T/commands")" -gt 15 ] || bail "cannot read the command list of keyward --help"

# Flags in a text: -x, --long, Knox's -json; not the dashes inside words (reload-or-restart).
flags_in() {
        grep -oE '(^|[][ {|])--?[A-Za-z][-A-Za-z]*' | sed 's/^[][ {|]//' | sort -u
}
sed -n '/^Global flags/,$p' "$T/help.txt" | grep -oE -- '--[a-z][-a-z]*' | sort -u >"$T/global"
echo --help >>"$T/global"
sort -u -o "$T/global" "$T/global"
grep -q -- --server "$T/global" || bail "cannot read the global flags of keyward --help"

while read -r c; do
        case $c in
        version | help) : >"$T/flags.$c" ;;
        *) "$KEYWARD" help "$c" | sed -n '1s/^usage: keyward //p' | flags_in >"$T/flags.$c" ;;
        esac
done <"$T/commands"
is "the CLI's get flags (sanity)" "$(tr '\n' ' ' <"$T/flags.get")" "--agent -a -j -n -v "

# same NAME EXPECTED-FILE GOT-FILE: the two sorted lists are equal (shows the difference).
same() {
        if diff "$2" "$3" >"$T/diff"; then
                ok "$1"
        else
                not_ok "$1"
                sed 's/^/# /' "$T/diff"
        fi
}

# ---- bash -----------------------------------------------------------------------------------------

B=$SC/bash/keyward
bash -n "$B"
is "bash parses the bash completion" "$?" 0
python3 - "$B" "$T" <<'EOF'
import re, sys

text = open(sys.argv[1]).read()
out = sys.argv[2]

def write(name, items):
        with open(out + "/" + name, "w") as f:
                f.writelines(i + "\n" for i in sorted(set(items)))

m = re.search(r'local commands="([^"]*)"', text)
write("bash.commands", m.group(1).split() if m else [])
m = re.search(r'local global="([^"]*)"', text)
write("bash.global", m.group(1).split() if m else [])
arms = dict(re.findall(r'\n\s*([a-z]+)\) flags="([^"]*)"', text))
for c in open(out + "/commands").read().split():
        write("bash." + c, arms.get(c, "").split())
EOF
same "bash: the commands keyward --help lists" "$T/commands" "$T/bash.commands"
same "bash: the global flags" "$T/global" "$T/bash.global"
while read -r c; do
        same "bash: the flags of $c" "$T/flags.$c" "$T/bash.$c"
done <"$T/commands"

# ---- zsh ------------------------------------------------------------------------------------------

Z=$SC/zsh/_keyward
if command -v zsh >/dev/null; then
        zsh -n "$Z"
        is "zsh -n parses the zsh completion" "$?" 0
else
        diag "zsh is not installed (apt-get install zsh): its parse is not checked"
fi
# The lists, read from the file: the commands=( 'name:...' ) array, the global_flags array,
# and the option specs of each "(command)" branch of the case.
python3 - "$Z" "$T" <<'EOF'
import re, sys

text = open(sys.argv[1]).read()
out = sys.argv[2]

def block(name):
        m = re.search(r"\n\s*" + name + r"=\((.*?)\n\s*\)", text, re.S)
        return m.group(1) if m else ""

def specs_flags(s):
        flags = set()
        for spec in re.findall(r"'([^']*)'", s):
                m = re.match(r"^(?:\([^)]*\))?\*?(--?[A-Za-z][-A-Za-z]*)", spec)
                if m:
                        flags.add(m.group(1))
        return flags

def write(name, items):
        with open(out + "/" + name, "w") as f:
                f.writelines(i + "\n" for i in sorted(items))

write("zsh.commands", re.findall(r"'([a-z]+):", block("commands")))
write("zsh.global", specs_flags(block("global_flags")))
cases = text[text.index("case $words[1] in"):]
branches = {}
for m in re.finditer(r"\n\s*\(([-a-z|*]+)\)\n(.*?);;", cases, re.S):
        for name in m.group(1).split("|"):
                branches[name] = specs_flags(m.group(2))
for c in open(out + "/commands").read().split():
        write("zsh." + c, branches.get(c, branches.get("*", set())))
EOF
same "zsh: the commands keyward --help lists" "$T/commands" "$T/zsh.commands"
same "zsh: the global flags" "$T/global" "$T/zsh.global"
while read -r c; do
        same "zsh: the flags of $c" "$T/flags.$c" "$T/zsh.$c"
done <"$T/commands"

# ---- fish -----------------------------------------------------------------------------------------

F=$SC/fish/keyward.fish
if command -v fish >/dev/null; then
        fish -n "$F"
        is "fish -n parses the fish completion" "$?" 0
        # offer LINE: what fish offers to complete LINE, first column, sorted.
        offer() {
                HOME=$T fish --no-config -c "source '$F'; complete -C '$1'" 2>/dev/null | cut -f1 | sort -u
        }
        offer 'keyward ' >"$T/fish.commands"
        same "fish: 'keyward <TAB>' offers the commands keyward --help lists" "$T/commands" "$T/fish.commands"
        offer 'keyward --' | grep -vx -- --version >"$T/fish.global"
        same "fish: the global flags" "$T/global" "$T/fish.global"
        while read -r c; do
                offer "keyward $c -" | grep -vxF -f "$T/global" >"$T/fish.$c"
                same "fish: 'keyward $c -<TAB>' offers its flags" "$T/flags.$c" "$T/fish.$c"
        done <"$T/commands"
        is "fish: versions -s offers the states" "$(offer 'keyward versions -s ' | tr '\n' ' ')" "active inactive primary "
else
        diag "fish is not installed (apt-get install fish): its completion is not checked"
fi

done_testing
