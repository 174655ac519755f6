#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keywardd allocates with jemalloc when configure found it (--with-jemalloc, the default when
# libjemalloc-dev is installed), with the settings it carries in the binary
# (server/keywardd-alloc.c): freed pages go back to the system within a second, not jemalloc's
# default ten, and no background thread. The agent, the CLI and the PAM module keep glibc's
# malloc. Skipped for a build that is not meant to have it: --without-jemalloc, or a sanitizer
# build, whose allocator is the sanitizer's or glibc's.
set -u
. "$(dirname "$0")/lib.sh"

CONFIG_H=$KEYWARD_TOP_BUILDDIR/config.h
[ -f "$CONFIG_H" ] || skip_all "no config.h in $KEYWARD_TOP_BUILDDIR"
grep -q '^#define HAVE_JEMALLOC 0' "$CONFIG_H" && skip_all "keywardd is built without jemalloc (configure --without-jemalloc or no libjemalloc-dev)"
pkg-config --exists jemalloc 2>/dev/null || skip_all "libjemalloc-dev is not installed"
ldd "$KEYWARDD" 2>/dev/null | grep -Eq 'libasan|libubsan' && skip_all "a sanitizer build keeps the sanitizer's or glibc's allocator"
command -v readelf >/dev/null || skip_all "readelf is not installed"

needs() { readelf -d "$1" 2>/dev/null | grep -q "NEEDED.*\[libjemalloc\.so"; }
lacks() { ! needs "$1"; }
check "keywardd is linked with jemalloc" needs "$KEYWARDD"
PAM_SO=$KEYWARD_TOP_BUILDDIR/.libs/pam_keyward.so
for bin in "$KEYWARD_AGENT" "$KEYWARD" "$PAM_SO"; do
        if [ -f "$bin" ]; then
                check "$(basename "$bin") is not (it keeps glibc's malloc)" lacks "$bin"
        else
                skip "$(basename "$bin") is not linked with jemalloc" "$bin is not built"
        fi
done

# jemalloc prints its settings at exit with stats_print; MALLOC_CONF adds to the binary's
# string, it does not replace the options it does not name.
opt() { sed -n "s/^  opt\.$1: \([^ ]*\).*/\1/p" "$2"; }
MALLOC_CONF=stats_print:true "$KEYWARDD" --version >/dev/null 2>"$T/stats"
like "jemalloc's statistics are printed for keywardd" "$(cat "$T/stats")" "jemalloc statistics"
LIBJE=$(ldd "$KEYWARDD" | awk '/libjemalloc/ { print $3 }')
MALLOC_CONF=stats_print:true LD_PRELOAD=$LIBJE "$KEYWARD" --version >/dev/null 2>"$T/defaults"
DIRTY=$(opt dirty_decay_ms "$T/stats")
DEFAULT_DIRTY=$(opt dirty_decay_ms "$T/defaults")
diag "dirty_decay_ms: keywardd $DIRTY, jemalloc's default $DEFAULT_DIRTY"
check "keywardd's freed pages go back within a second ($DIRTY ms)" test "${DIRTY:-x}" -le 1000 2>/dev/null
check "which is sooner than jemalloc's default ($DEFAULT_DIRTY ms)" test "${DIRTY:-x}" -lt "${DEFAULT_DIRTY:-0}" 2>/dev/null
is "pages are purged, not kept lazily freed (muzzy_decay_ms)" "$(opt muzzy_decay_ms "$T/stats")" 0
is "no background thread" "$(opt background_thread "$T/stats")" false

# The serving process runs on it, and serves.
make_pki
kwd_init
kwd_start
check "the running keywardd maps jemalloc" grep -q libjemalloc "/proc/$KWD_PID/maps"
ADMIN=$(kwd_token admin) || bail "cannot mint a token"
r=$(req none "0u$ADMIN" POST /v0/keys/ -d id=alloc_key -d data=aGk=)
expect "it creates a key" "$r" 200 0
r=$(req none "0u$ADMIN" GET /v0/keys/alloc_key/)
expect "and reads it back" "$r" 200 0

done_testing
