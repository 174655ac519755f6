/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "server-conn-limit.h"

static struct sockaddr_in v4(const char *a) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(1234)};

        assert_int_equal(inet_pton(AF_INET, a, &sa.sin_addr), 1);
        return sa;
}

static struct sockaddr_in6 v6(const char *a) {
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(1234)};

        assert_int_equal(inet_pton(AF_INET6, a, &sa.sin6_addr), 1);
        return sa;
}

static void test_prefix_parse(void **state) {
        AddressPrefix p;

        assert_int_equal(address_prefix_parse("10.0.0.0/8", &p), 0);
        assert_int_equal(p.family, AF_INET);
        assert_int_equal(p.prefixlen, 8);
        assert_int_equal(address_prefix_parse("192.0.2.7", &p), 0);
        assert_int_equal(p.prefixlen, 32);
        assert_int_equal(address_prefix_parse("2001:db8::/32", &p), 0);
        assert_int_equal(p.family, AF_INET6);
        assert_int_equal(p.prefixlen, 32);
        assert_int_equal(address_prefix_parse("::/0", &p), 0);
        assert_int_equal(p.prefixlen, 0);

        /* Bits past the prefix, prefixes too long or malformed, names and junk. */
        assert_int_equal(address_prefix_parse("10.0.0.1/8", &p), -EINVAL);
        assert_int_equal(address_prefix_parse("10.0.0.0/33", &p), -EINVAL);
        assert_int_equal(address_prefix_parse("2001:db8::/129", &p), -EINVAL);
        assert_int_equal(address_prefix_parse("10.0.0.0/", &p), -EINVAL);
        assert_int_equal(address_prefix_parse("10.0.0.0/+8", &p), -EINVAL);
        assert_int_equal(address_prefix_parse("10.0.0.0/8/8", &p), -EINVAL);
        assert_int_equal(address_prefix_parse("lb.example.com", &p), -EINVAL);
        assert_int_equal(address_prefix_parse("", &p), -EINVAL);
        assert_int_equal(address_prefix_parse(NULL, &p), -EINVAL);
}

static void test_limit(void **state) {
        _cleanup_(conn_limit_freep) ConnLimit *l = NULL;
        struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2");
        struct sockaddr_in6 a_mapped = v6("::ffff:192.0.2.1");
        ConnKey k[4], extra;

        assert_int_equal(conn_limit_new(3, NULL, &l), 0);
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &a, sizeof(a), &k[i]), 1);
        /* The fourth from the same address, also written as IPv4-mapped IPv6, is refused. */
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &a, sizeof(a), &extra), 0);
        assert_int_equal(extra.family, AF_UNSPEC);
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &a_mapped, sizeof(a_mapped), &extra), 0);
        assert_int_equal(conn_limit_count(l, (struct sockaddr *) &a, sizeof(a)), 3);
        /* Another address is not affected. */
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &b, sizeof(b), &k[3]), 1);

        /* One closes: one more may come, under either spelling. */
        conn_limit_release(l, &k[0]);
        assert_int_equal(conn_limit_count(l, (struct sockaddr *) &a, sizeof(a)), 2);
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &a_mapped, sizeof(a_mapped), &k[0]), 1);
        assert_int_equal(k[0].family, AF_INET);
        for (size_t i = 0; i < 4; i++)
                conn_limit_release(l, &k[i]);
        assert_int_equal(conn_limit_count(l, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(conn_limit_count(l, (struct sockaddr *) &b, sizeof(b)), 0);
        /* Releasing what was never counted is harmless. */
        conn_limit_release(l, &extra);
        conn_limit_release(l, NULL);
}

static void test_exempt(void **state) {
        _cleanup_(conn_limit_freep) ConnLimit *l = NULL;
        char *exempt[] = {(char *) "10.1.0.0/16", (char *) "2001:db8::1", NULL};
        char *bad[] = {(char *) "10.1.0.0/16", (char *) "10.1.2.3/16", NULL};
        struct sockaddr_in lb = v4("10.1.200.7"), other = v4("10.2.0.1");
        struct sockaddr_in6 lb6 = v6("2001:db8::1"), other6 = v6("2001:db8::2");
        ConnLimit *fail = NULL;
        ConnKey k;

        assert_int_equal(conn_limit_new(1, bad, &fail), -EINVAL);
        assert_null(fail);

        assert_int_equal(conn_limit_new(1, exempt, &l), 0);
        for (size_t i = 0; i < 5; i++) {
                assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &lb, sizeof(lb), &k), 1);
                assert_int_equal(k.family, AF_UNSPEC);
                assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &lb6, sizeof(lb6), &k), 1);
                assert_int_equal(k.family, AF_UNSPEC);
        }
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &other, sizeof(other), &k), 1);
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &other, sizeof(other), &k), 0);
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &other6, sizeof(other6), &k), 1);
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &other6, sizeof(other6), &k), 0);
}

static void test_ipv6_per_64(void **state) {
        _cleanup_(conn_limit_freep) ConnLimit *l = NULL;
        char *exempt[] = {(char *) "2001:db8:0:1::7", NULL};
        struct sockaddr_in6 a = v6("2001:db8::1"), b = v6("2001:db8::ffff:2"), c = v6("2001:db8:0:1::1"),
                            lb = v6("2001:db8:0:1::7");
        ConnKey k;

        assert_int_equal(conn_limit_new(2, exempt, &l), 0);
        /* Two addresses of one /64 share its count. */
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &a, sizeof(a), &k), 1);
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &b, sizeof(b), &k), 1);
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &a, sizeof(a), &k), 0);
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &b, sizeof(b), &k), 0);
        assert_int_equal(conn_limit_count(l, (struct sockaddr *) &b, sizeof(b)), 2);
        /* Another /64 is not affected, and an exempt address inside it is exempt alone. */
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &c, sizeof(c), &k), 1);
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &c, sizeof(c), &k), 1);
        assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &c, sizeof(c), &k), 0);
        for (size_t i = 0; i < 5; i++)
                assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &lb, sizeof(lb), &k), 1);
}

static void test_no_limit(void **state) {
        _cleanup_(conn_limit_freep) ConnLimit *l = NULL;
        struct sockaddr_in a = v4("192.0.2.1");
        ConnKey k;

        assert_int_equal(conn_limit_new(0, NULL, &l), 0);
        for (size_t i = 0; i < 1000; i++)
                assert_int_equal(conn_limit_acquire(l, (struct sockaddr *) &a, sizeof(a), &k), 1);
        assert_int_equal(conn_limit_count(l, (struct sockaddr *) &a, sizeof(a)), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_prefix_parse), cmocka_unit_test(test_limit),
                cmocka_unit_test(test_exempt),       cmocka_unit_test(test_ipv6_per_64),
                cmocka_unit_test(test_no_limit),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
