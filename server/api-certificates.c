/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GET /v0/certificates/expiring/: the certificates the caller may read that expire soon. */

#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "json-util.h"
#include "log.h"
#include "parse.h"

/* ---- GET /v0/certificates/expiring/?within=SECONDS ---------------------------------- */

#define EXPIRING_DEFAULT_SEC (30 * 24 * 3600)
#define EXPIRING_MAX_SEC (100LL * 366 * 24 * 3600)

typedef struct Expiring {
        char *id;
        uint64_t version;
        int64_t not_after;
} Expiring;

typedef struct ExpiringList {
        Expiring *items;
        size_t n;
        int64_t cutoff;
} ExpiringList;

static void expiring_list_done(ExpiringList *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->items[i].id);
        free(l->items);
        *l = (ExpiringList){};
}

static int
expiring_collect(const char *id, uint64_t version, VersionStatus status, int64_t not_after, void *userdata) {
        ExpiringList *l = userdata;
        Expiring *n;

        if (status != VERSION_STATUS_PRIMARY || not_after > l->cutoff)
                return 0;
        n = reallocarray(l->items, l->n + 1, sizeof(Expiring));
        if (!n)
                return -ENOMEM;
        l->items = n;
        l->items[l->n] = (Expiring){.id = strdup(id), .version = version, .not_after = not_after};
        if (!l->items[l->n].id)
                return -ENOMEM;
        l->n++;
        return 0;
}

static int expiring_compare(const void *a, const void *b) {
        const Expiring *x = a, *y = b;

        if (x->not_after != y->not_after)
                return x->not_after < y->not_after ? -1 : 1;
        return strcmp(x->id, y->id);
}

/* The keys the caller may read whose primary version is a certificate that expires within
 * the window (expired ones included), soonest first: [{"id","version","not_after"}]. The ACL
 * is checked key by key, as GET /v0/keys/{id}/ would; other keys are left out silently. */
int api_handle_expiring(const Api *api, const ApiRequest *req, ApiResult *res) {
        _cleanup_(expiring_list_done) ExpiringList l = {};
        const FormField *within = req->query ? form_get(req->query, "within") : NULL;
        uint64_t sec = EXPIRING_DEFAULT_SEC;
        Buf *b = &res->data;
        bool first = true;
        int r;

        if (within && (safe_atou64(within->value, &sec) < 0 || sec > EXPIRING_MAX_SEC))
                return api_result_error(
                        res, KNOX_BAD_REQUEST_DATA,
                        "Parameter 'within' must be a number of seconds up to %lld", EXPIRING_MAX_SEC);
        l.cutoff = req->now_ns / 1000000000 + (int64_t) sec;

        r = store_list_certificates(api->store, expiring_collect, &l);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_error_errno(r, "Failed to list certificates: %m");
                return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to list certificates");
        }
        if (l.n > 1)
                qsort(l.items, l.n, sizeof(Expiring), expiring_compare);

        (void) buf_putc(b, '[');
        for (size_t i = 0; i < l.n; i++) {
                _cleanup_(key_freep) Key *k = NULL;

                r = store_get(api->store, l.items[i].id, &k, NULL);
                if (r == -ENOKEY)
                        continue; /* removed since */
                if (r < 0) {
                        log_error_errno(r, "Failed to read key '%s': %m", LOG_NAME(l.items[i].id));
                        return api_result_error(res, KNOX_INTERNAL_SERVER_ERROR, "Failed to read key");
                }
                if (!authorized(req, k, ACCESS_READ))
                        continue;
                (void) buf_puts(b, first ? "{\"id\":" : ",{\"id\":");
                (void) json_append_cstring(b, l.items[i].id);
                (void) buf_puts(b, ",\"version\":");
                (void) json_append_uint64(b, l.items[i].version);
                (void) buf_puts(b, ",\"not_after\":");
                (void) json_append_int64(b, l.items[i].not_after);
                (void) buf_putc(b, '}');
                first = false;
        }
        (void) buf_putc(b, ']');
        if (b->error < 0)
                return b->error;
        return api_result_ok(res);
}
