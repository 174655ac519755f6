# KW_CHECK_CFLAG(FLAG, [ACTION-IF-OK], [ACTION-IF-NOT])
# Compile a trivial program with FLAG and -Werror, so that a flag the
# compiler only warns about is treated as unsupported.
AC_DEFUN([KW_CHECK_CFLAG], [
        AC_MSG_CHECKING([whether $CC accepts $1])
        kw_saved_CFLAGS="$CFLAGS"
        CFLAGS="$CFLAGS -Werror $1"
        AC_COMPILE_IFELSE([AC_LANG_SOURCE([[int main(void) { return 0; }]])],
                [AC_MSG_RESULT([yes]); CFLAGS="$kw_saved_CFLAGS"; $2],
                [AC_MSG_RESULT([no]); CFLAGS="$kw_saved_CFLAGS"; $3])
])

# KW_CHECK_LDFLAG(FLAG, [ACTION-IF-OK], [ACTION-IF-NOT])
AC_DEFUN([KW_CHECK_LDFLAG], [
        AC_MSG_CHECKING([whether $CC links with $1])
        kw_saved_LDFLAGS="$LDFLAGS"
        kw_saved_CFLAGS="$CFLAGS"
        LDFLAGS="$LDFLAGS -Werror $1"
        CFLAGS="$CFLAGS $1"
        AC_LINK_IFELSE([AC_LANG_SOURCE([[int main(void) { return 0; }]])],
                [AC_MSG_RESULT([yes]); LDFLAGS="$kw_saved_LDFLAGS"; CFLAGS="$kw_saved_CFLAGS"; $2],
                [AC_MSG_RESULT([no]); LDFLAGS="$kw_saved_LDFLAGS"; CFLAGS="$kw_saved_CFLAGS"; $3])
])

# KW_REQUIRE_PKG(VARIABLE-PREFIX, MODULES, DEBIAN-PACKAGE)
# PKG_CHECK_MODULES that stops configure with the package to install.
AC_DEFUN([KW_REQUIRE_PKG], [
        PKG_CHECK_MODULES([$1], [$2], [],
                [AC_MSG_ERROR([$2 not found: apt-get install $3])])
])
