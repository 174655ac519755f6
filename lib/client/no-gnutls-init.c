/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keyward and keyward-agent talk TLS through libcurl with OpenSSL and never use GnuTLS. It is
 * loaded all the same, because Debian's libcurl links librtmp and libldap, which link it, and
 * its library constructor initialises it at load: p11-kit modules, the system priority file,
 * its crypto back ends, about 0.9 MB of resident memory and a few milliseconds for nothing.
 * GnuTLS asks this weak, exported hook whether to skip that; the program's definition wins
 * (linked with -Wl,--export-dynamic-symbol, see configure.ac). Should anything in the process
 * ever use GnuTLS, it initialises it explicitly with gnutls_global_init(), as GnuTLS
 * requires of its callers anyway. */

int _gnutls_global_init_skip(void) __attribute__((visibility("default")));

int _gnutls_global_init_skip(void) {
        return 1;
}
