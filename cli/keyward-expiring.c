/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keyward expiring: the readable keys whose primary certificate expires soon. */
#include "keyward.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "json-util.h"
#include "parse.h"

#define EXPIRING_DEFAULT_USEC (30ULL * 24 * 3600 * 1000000)

enum {
        ARG_WITHIN = _ARG_COMMON_MAX,
};

/* "2026-12-05 15:00:00 UTC", and the whole days left (or gone, negative). */
static void print_entry(const char *id, uint64_t version, int64_t not_after, int64_t now) {
        char when[64] = "?";
        time_t t = (time_t) not_after;
        struct tm tm;
        int64_t left = not_after - now;

        if (gmtime_r(&t, &tm))
                (void) strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
        if (left >= 0)
                printf("%s\t%" PRIu64 "\t%s\texpires in %" PRId64 " days\n", id, version, when,
                       left / 86400);
        else
                printf("%s\t%" PRIu64 "\t%s\texpired %" PRId64 " days ago\n", id, version, when,
                       -left / 86400);
}

int verb_expiring(int argc, char **argv) {
        static const struct option options[] = {
                {"within", required_argument, NULL, ARG_WITHIN},
                COMMON_OPTIONS,
        };
        _cleanup_knox_error_ KnoxError err = KNOX_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *json = NULL;
        uint64_t within = EXPIRING_DEFAULT_USEC;
        const char *msg = NULL;
        KnoxClient *c;
        int ch, r;

        while ((ch = getopt_long_only(argc, argv, ":", options, NULL)) >= 0)
                switch (ch) {
                case ARG_WITHIN:
                        if (parse_sec(optarg, &within) < 0)
                                return usage_error(
                                        "invalid value \"%s\" for flag -within: a duration such as 30d, 12h or 3600",
                                        optarg);
                        break;
                        COMMON_DEFAULT(ch, argv, "expiring");
                }
        if (optind < argc)
                return usage_error("expiring takes no arguments. See 'keyward help expiring'");

        r = client_get(&c);
        if (r != 0)
                return r;
        r = knox_client_expiring(c, within / 1000000, &json, &err);
        if (r < 0 || err.code != KNOX_OK)
                return fail_call("Error getting expiring certificates", r, &err);
        if (arg_json) {
                printf("%s\n", json);
                return EXIT_OK;
        }

        r = json_parse(json, strlen(json), &o, &msg);
        if (r < 0 || !json_object_is_type(o, json_type_array))
                return fail("Invalid answer: %s", strna(msg));
        for (size_t i = 0; i < json_object_array_length(o); i++) {
                json_object *e = json_object_array_get_idx(o, i);
                const char *id;
                uint64_t version;
                int64_t not_after;

                if (json_get_string(json_get_field(e, "id"), &id, NULL) < 0 ||
                    json_get_uint64(json_get_field(e, "version"), &version) < 0 ||
                    json_get_int64(json_get_field(e, "not_after"), &not_after) < 0)
                        return fail("Invalid answer: an entry without id, version or not_after");
                /* Printed as they come: a key id only, and a date within years 0 to 9999. */
                if (!key_id_is_valid(id) || not_after < -62167219200 || not_after > 253402300799)
                        return fail("Invalid answer: an entry with a malformed id or not_after");
                print_entry(id, version, not_after, (int64_t) time(NULL));
        }
        return EXIT_OK;
}
