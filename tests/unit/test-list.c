/* SPDX-License-Identifier: LGPL-2.1-or-later */
#undef NDEBUG
#include "list.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

typedef struct Item Item;
struct Item {
        int value;
        LIST_FIELDS(Item, all);
        LIST_FIELDS(Item, odd);
};

static int values(Item *head, int *out) {
        Item *i;
        int n = 0;

        LIST_FOREACH(all, i, head)
        out[n++] = i->value;
        return n;
}

static void test_list(void **state) {
        Item items[4] = {{.value = 0}, {.value = 1}, {.value = 2}, {.value = 3}};
        Item *all = NULL, *odd = NULL, *i, *n;
        int got[4], count = 0;

        (void) state;
        for (int k = 0; k < 4; k++) {
                LIST_PREPEND(all, all, &items[k]);
                if (items[k].value % 2)
                        LIST_PREPEND(odd, odd, &items[k]);
        }
        assert_int_equal(values(all, got), 4);
        assert_int_equal(got[0], 3);
        assert_int_equal(got[3], 0);
        assert_true(LIST_CONTAINS(odd, odd, &items[1]));
        assert_false(LIST_CONTAINS(odd, odd, &items[2]));

        /* Removing the head, the middle and the tail keeps the others linked both ways. */
        LIST_REMOVE(all, all, &items[3]);
        LIST_REMOVE(all, all, &items[1]);
        assert_int_equal(values(all, got), 2);
        assert_int_equal(got[0], 2);
        assert_int_equal(got[1], 0);
        assert_ptr_equal(items[0].all_prev, &items[2]);
        assert_null(items[3].all_next);
        assert_false(LIST_CONTAINS(all, all, &items[3]));
        /* Still on the other list. */
        assert_true(LIST_CONTAINS(odd, odd, &items[1]));

        LIST_FOREACH_SAFE(odd, i, n, odd) {
                LIST_REMOVE(odd, odd, i);
                count++;
        }
        assert_int_equal(count, 2);
        assert_null(odd);
        LIST_REMOVE(all, all, &items[0]);
        LIST_REMOVE(all, all, &items[2]);
        assert_null(all);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_list),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
