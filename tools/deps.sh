# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by tools/quickstart and tools/check: the Debian 12 packages keyward needs, and
# a function that installs the missing ones (apt-get update once, then install).

KW_BUILD_PACKAGES=(
        build-essential autoconf automake libtool pkg-config make xz-utils git
        libssl-dev libevent-dev libcurl4-openssl-dev libjson-c-dev libsystemd-dev
        libpam0g-dev libsqlite3-dev libpq-dev libp11-kit-dev libinih-dev
        libmariadb-dev libtss2-dev libjemalloc-dev
)
KW_RUN_PACKAGES=(openssl curl dbus sqlite3 python3 libjemalloc2)
KW_TEST_PACKAGES=(
        libcmocka-dev clang libclang-rt-14-dev clang-format
        libpam-wrapper libpamtest0-dev libnss-wrapper
        softhsm2 systemd-container postgresql debhelper rpm pamtester
        zsh fish libglib2.0-bin mariadb-server-core mariadb-client-core
        swtpm swtpm-tools valgrind
)

kw_install_packages() {
        local missing=() p
        for p in "$@"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
        done
        [ ${#missing[@]} -eq 0 ] && return 0

        echo "==> installing: ${missing[*]}"
        local sudo=()
        if [ "$(id -u)" -ne 0 ]; then
                command -v sudo >/dev/null || { echo "need root (or sudo) to install ${missing[*]}" >&2; return 1; }
                sudo=(sudo)
        fi
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Bootstrap (if needed) and configure the tree into build directory $1 with the rest as flags.
kw_configure() {
        local builddir=$1
        shift
        if [ ! -x "$KW_TOP/configure" ] || [ "$KW_TOP/configure.ac" -nt "$KW_TOP/configure" ] ||
                [ "$KW_TOP/Makefile.am" -nt "$KW_TOP/Makefile.in" ]; then
                echo "==> autoreconf"
                (cd "$KW_TOP" && autoreconf -fi)
        fi
        mkdir -p "$builddir"
        if [ ! -f "$builddir/config.status" ] || [ "$builddir/config.status" -ot "$KW_TOP/configure" ]; then
                echo "==> configure $* (in ${builddir#"$KW_TOP"/})"
                (cd "$builddir" && "$KW_TOP/configure" -q "$@")
        fi
}

KW_JOBS=$(nproc 2>/dev/null || echo 2)
