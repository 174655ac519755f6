/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "parse.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

/* Parse a run of decimal digits at *p, advancing it. */
static int parse_digits(const char **p, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++)
                if (!MUL_SAFE(&v, v, 10) || !ADD_SAFE(&v, v, (uint64_t) (*s - '0')))
                        return -ERANGE;
        *p = s;
        *ret = v;
        return 0;
}

int safe_atou64(const char *s, uint64_t *ret) {
        uint64_t v;
        int r;

        if (!s)
                return -EINVAL;
        r = parse_digits(&s, &v);
        if (r < 0)
                return r;
        if (*s != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int safe_atoi64(const char *s, int64_t *ret) {
        bool negative = false;
        uint64_t v;
        int r;

        if (!s)
                return -EINVAL;
        if (*s == '-') {
                negative = true;
                s++;
        }
        r = safe_atou64(s, &v);
        if (r < 0)
                return r;
        if (negative) {
                if (v > (uint64_t) INT64_MAX + 1)
                        return -ERANGE;
                *ret = v == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) v;
        } else {
                if (v > (uint64_t) INT64_MAX)
                        return -ERANGE;
                *ret = (int64_t) v;
        }
        return 0;
}

int safe_atou(const char *s, unsigned *ret) {
        uint64_t v;
        int r;

        r = safe_atou64(s, &v);
        if (r < 0)
                return r;
        if (v > UINT_MAX)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

int parse_boolean(const char *s) {
        static const char *const yes[] = {"1", "yes", "true", "on", "y", "t"};
        static const char *const no[] = {"0", "no", "false", "off", "n", "f"};

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

int parse_sec(const char *s, uint64_t *ret_usec) {
        /* clang-format off */
        static const struct { const char *suffix; uint64_t usec; } units[] = {
                { "ms",  USEC_PER_MSEC },
                { "s",   USEC_PER_SEC },
                { "min", 60 * USEC_PER_SEC },
                { "m",   60 * USEC_PER_SEC },
                { "h",   3600 * USEC_PER_SEC },
                { "d",   86400 * USEC_PER_SEC },
        };
        /* clang-format on */
        const char *begin = s;
        uint64_t total = 0;

        if (isempty(s))
                return -EINVAL;

        while (*s != '\0') {
                uint64_t v, mul = USEC_PER_SEC, add;
                const char *start = s;
                size_t i;
                int r;

                r = parse_digits(&s, &v);
                if (r < 0)
                        return r;
                for (i = 0; i < ELEMENTSOF(units); i++) {
                        size_t l = strlen(units[i].suffix);

                        if (strncmp(s, units[i].suffix, l) == 0) {
                                mul = units[i].usec;
                                s += l;
                                break;
                        }
                }
                /* A bare number is allowed only as the whole string. */
                if (i == ELEMENTSOF(units) && (*s != '\0' || start != begin))
                        return -EINVAL;
                if (!MUL_SAFE(&add, v, mul) || !ADD_SAFE(&total, total, add))
                        return -ERANGE;
        }

        *ret_usec = total;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        uint64_t v, mul = 1;
        int r;

        if (!s)
                return -EINVAL;
        r = parse_digits(&s, &v);
        if (r < 0)
                return r;
        switch (*s) {
        case '\0':
                break;
        case 'K':
                mul = UINT64_C(1) << 10;
                break;
        case 'M':
                mul = UINT64_C(1) << 20;
                break;
        case 'G':
                mul = UINT64_C(1) << 30;
                break;
        default:
                return -EINVAL;
        }
        if (*s != '\0' && s[1] != '\0' && !(s[1] == 'B' && s[2] == '\0') &&
            !(s[1] == 'i' && s[2] == 'B' && s[3] == '\0'))
                return -EINVAL;
        if (!MUL_SAFE(&v, v, mul))
                return -ERANGE;
        *ret = v;
        return 0;
}
