/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Intrusive doubly-linked lists. An item embeds LIST_FIELDS(Type, name), which declares
 * name_next and name_prev, so one item may sit on several lists under different names; the
 * list itself is a pointer to its first item (NULL when empty). Nothing here allocates. */

#include <stdbool.h>

#define LIST_FIELDS(type, name) type *name##_next, *name##_prev

/* Put item first on the list at head. */
#define LIST_PREPEND(name, head, item)                            \
        do {                                                      \
                __typeof__(*(head)) **_h = &(head), *_i = (item); \
                _i->name##_prev = NULL;                           \
                _i->name##_next = *_h;                            \
                if (*_h)                                          \
                        (*_h)->name##_prev = _i;                  \
                *_h = _i;                                         \
        } while (false)

/* Take item off the list at head; it must be on it. Its links are cleared. */
#define LIST_REMOVE(name, head, item)                                   \
        do {                                                            \
                __typeof__(*(head)) **_h = &(head), *_i = (item);       \
                if (_i->name##_next)                                    \
                        _i->name##_next->name##_prev = _i->name##_prev; \
                if (_i->name##_prev)                                    \
                        _i->name##_prev->name##_next = _i->name##_next; \
                else                                                    \
                        *_h = _i->name##_next;                          \
                _i->name##_next = _i->name##_prev = NULL;               \
        } while (false)

/* Whether item is on the list at head (a lone first item has no links, so head decides). */
#define LIST_CONTAINS(name, head, item) ((item)->name##_prev || (head) == (item))

#define LIST_FOREACH(name, i, head) for ((i) = (head); (i); (i) = (i)->name##_next)

/* The same, where the body may remove or free i. */
#define LIST_FOREACH_SAFE(name, i, n, head) \
        for ((i) = (head); (i) && (((n) = (i)->name##_next), true); (i) = (n))
