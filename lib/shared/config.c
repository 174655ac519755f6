/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "parse.h"
#include "strv.h"

/* ---- parsers ---------------------------------------------------------------------------- */

int config_parse_string(_unused_ const ConfigItem *item, const char *value, void *data) {
        char **s = data, *c = NULL;

        assert_return(value, -EINVAL);
        assert_return(data, -EINVAL);

        if (!isempty(value)) {
                c = strdup(value);
                if (!c)
                        return -ENOMEM;
        }
        free(*s);
        *s = c;
        return 0;
}

int config_parse_strv(_unused_ const ConfigItem *item, const char *value, void *data) {
        char ***l = data;

        assert_return(value, -EINVAL);
        assert_return(data, -EINVAL);

        if (isempty(value)) {
                *l = strv_free(*l);
                return 0;
        }
        return strv_extend(l, value);
}

int config_parse_bool(_unused_ const ConfigItem *item, const char *value, void *data) {
        bool *b = data;
        int r;

        assert_return(value, -EINVAL);
        assert_return(data, -EINVAL);

        r = parse_boolean(value);
        if (r < 0)
                return r;
        *b = r;
        return 0;
}

int config_parse_unsigned(_unused_ const ConfigItem *item, const char *value, void *data) {
        unsigned *u = data, v;
        int r;

        assert_return(value, -EINVAL);
        assert_return(data, -EINVAL);

        r = safe_atou(value, &v);
        if (r < 0)
                return r;
        *u = v;
        return 0;
}

int config_parse_size(_unused_ const ConfigItem *item, const char *value, void *data) {
        size_t *sz = data;
        uint64_t v;
        int r;

        assert_return(value, -EINVAL);
        assert_return(data, -EINVAL);

        r = parse_size(value, &v);
        if (r < 0)
                return r;
        if (v > SIZE_MAX)
                return -ERANGE;
        *sz = (size_t) v;
        return 0;
}

int config_parse_sec(_unused_ const ConfigItem *item, const char *value, void *data) {
        uint64_t *usec = data, v;
        int r;

        assert_return(value, -EINVAL);
        assert_return(data, -EINVAL);

        r = parse_sec(value, &v);
        if (r < 0)
                return r;
        *usec = v;
        return 0;
}

/* ---- the table -------------------------------------------------------------------------- */

static const char *item_section(const ConfigItem *item) {
        return item->section ?: "";
}

static const ConfigItem *
config_find(const ConfigItem *items, size_t n_items, const char *section, const char *name) {

        FOREACH_ARRAY(i, items, n_items)
                if ((!section || streq(item_section(i), section)) && streq(i->name, name))
                        return i;
        return NULL;
}

static bool config_has_section(const ConfigItem *items, size_t n_items, const char *section) {
        FOREACH_ARRAY(i, items, n_items)
                if (streq(item_section(i), section))
                        return true;
        return false;
}

/* What a valid value of the item looks like, for error messages. */
static const char *item_expect(const ConfigItem *item) {
        if (item->expect)
                return item->expect;
        return item->metavar ?: "yes or no";
}

static int config_apply(const ConfigItem *item, void *userdata, const char *value) {
        return item->parse(item, value, (uint8_t *) userdata + item->offset);
}

int config_set(
        const ConfigItem *items, size_t n_items, void *userdata, const char *name, const char *value) {
        const ConfigItem *item;

        assert_return(items || n_items == 0, -EINVAL);
        assert_return(userdata, -EINVAL);
        assert_return(name, -EINVAL);
        assert_return(value, -EINVAL);

        item = config_find(items, n_items, NULL, name);
        if (!item)
                return -ENOENT;
        return config_apply(item, userdata, value);
}

/* ---- INI files -------------------------------------------------------------------------- */

typedef struct ConfigLoad {
        const char *name; /* the file, for messages */
        const ConfigItem *items;
        size_t n_items;
        void *userdata;

        /* The source: a FILE, or text in memory. */
        FILE *f;
        const char *text;
        size_t size, pos;

        size_t total;  /* bytes read so far */
        unsigned line; /* the line libinih is looking at: it asks the reader once per line */
        int error;     /* the first error */
} ConfigLoad;

static void config_load_error(ConfigLoad *ctx, int r) {
        if (ctx->error == 0)
                ctx->error = r;
}

static int source_getc(ConfigLoad *ctx) {
        if (ctx->f)
                return getc_unlocked(ctx->f);
        if (ctx->pos >= ctx->size)
                return EOF;
        return (unsigned char) ctx->text[ctx->pos++];
}

/* libinih's reader, fgets() style. Each call hands over one whole line, so the count of calls
 * is libinih's line number. A line that does not fit libinih's buffer would come back split,
 * and one with a NUL byte cut short; either is an error and goes to libinih as a blank line. */
static char *config_reader(char *str, int num, void *stream) {
        ConfigLoad *ctx = stream;
        size_t n = 0, max = num > 1 ? (size_t) num - 1 : 0;
        bool too_long = false, nul = false, any = false;
        int c;

        if (num < 2 || ctx->total > CONFIG_FILE_MAX)
                return NULL;

        for (;;) {
                c = source_getc(ctx);
                if (c == EOF)
                        break;
                any = true;
                if (++ctx->total > CONFIG_FILE_MAX) {
                        log_error(
                                "%s: File is larger than %u bytes.", ctx->name, (unsigned) CONFIG_FILE_MAX);
                        config_load_error(ctx, -E2BIG);
                        return NULL;
                }
                if (c == '\0')
                        nul = true;
                /* Leading white space is dropped, so libinih never takes an indented line for
                 * the continuation of the previous value (its multi-line mode, which would
                 * turn "  name = x" into part of another setting). */
                if (n == 0 && (c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'))
                        continue;
                if (n < max)
                        str[n++] = (char) c;
                else
                        too_long = true;
                if (c == '\n')
                        break;
        }
        if (c == EOF && ctx->f && ferror(ctx->f)) {
                int e = errno > 0 ? errno : EIO;

                config_load_error(ctx, log_error_errno(e, "%s: Failed to read: %m", ctx->name));
                return NULL;
        }
        if (!any)
                return NULL;

        ctx->line++;
        str[n] = '\0';

        if (too_long) {
                log_error("%s:%u: Line is longer than %d bytes.", ctx->name, ctx->line, num - 2);
                config_load_error(ctx, -E2BIG);
                str[0] = '\0';
        } else if (nul) {
                log_error("%s:%u: Line contains a NUL byte.", ctx->name, ctx->line);
                config_load_error(ctx, -EBADMSG);
                str[0] = '\0';
        }
        return str;
}

/* Called by libinih for each name=value; errors are recorded, not returned to libinih, so that
 * any nonzero result of ini_parse_stream() is libinih's own syntax error. */
static int config_handler(void *user, const char *section, const char *name, const char *value) {
        ConfigLoad *ctx = user;
        const ConfigItem *item;
        int r;

        if (!name) /* a bare section header, with INI_CALL_HANDLER_ON_NEW_SECTION */
                return 1;
        section = section ?: "";

        if (!value) { /* a key without '=', if someone enabled ini_allow_no_value */
                log_error("%s:%u: Missing value for '%s'.", ctx->name, ctx->line, name);
                config_load_error(ctx, -EINVAL);
                return 1;
        }

        item = config_find(ctx->items, ctx->n_items, section, name);
        if (!item) {
                if (!config_has_section(ctx->items, ctx->n_items, section))
                        log_error("%s:%u: Unknown section [%s].", ctx->name, ctx->line, section);
                else
                        log_error(
                                "%s:%u: Unknown key '%s' in section [%s].", ctx->name, ctx->line, name,
                                section);
                config_load_error(ctx, -EINVAL);
                return 1;
        }

        r = config_apply(item, ctx->userdata, value);
        if (r < 0)
                config_load_error(
                        ctx,
                        log_error_errno(
                                r, "%s:%u: Invalid value for '%s' in section [%s]: '%s': %m. Expected %s.",
                                ctx->name, ctx->line, name, section, value, item_expect(item)));
        return 1;
}

static int config_load(ConfigLoad *ctx) {
        int r;

        r = ini_parse_stream(config_reader, ctx, config_handler, ctx);
        if (r == -2)
                return log_oom();
        if (r > 0) {
                log_error("%s:%d: Syntax error.", ctx->name, r);
                config_load_error(ctx, -EINVAL);
        } else if (r < 0)
                config_load_error(ctx, -EIO);

        return ctx->error;
}

int config_load_file(const char *path, const ConfigItem *items, size_t n_items, void *userdata) {
        ConfigLoad ctx = {
                .name = path,
                .items = items,
                .n_items = n_items,
                .userdata = userdata,
        };
        int r;

        assert_return(path, -EINVAL);
        assert_return(items || n_items == 0, -EINVAL);
        assert_return(userdata, -EINVAL);

        ctx.f = fopen(path, "re");
        if (!ctx.f) {
                r = negative_errno();
                if (r == -ENOENT)
                        return r; /* the caller knows whether the file is optional */
                return log_error_errno(r, "Failed to open config file '%s': %m", path);
        }

        r = config_load(&ctx);
        (void) fclose(ctx.f);
        return r;
}

int config_load_string(
        const char *text,
        size_t size,
        const char *name,
        const ConfigItem *items,
        size_t n_items,
        void *userdata) {

        ConfigLoad ctx = {
                .name = strna(name),
                .items = items,
                .n_items = n_items,
                .userdata = userdata,
                .text = text,
                .size = size,
        };

        assert_return(text || size == 0, -EINVAL);
        assert_return(items || n_items == 0, -EINVAL);
        assert_return(userdata, -EINVAL);

        return config_load(&ctx);
}

/* ---- command line ----------------------------------------------------------------------- */

#define OPT_BASE 0x100 /* getopt values: OPT_BASE + index of the item, then these two */

void config_print_help(const ConfigItem *items, size_t n_items) {
        int width = (int) STRLEN("--config FILE");

        FOREACH_ARRAY(i, items, n_items) {
                int w = 2 + (int) strlen(i->name) + (i->metavar ? 1 + (int) strlen(i->metavar) : 0);

                width = MAX(width, MIN(w, 32));
        }

        FOREACH_ARRAY(i, items, n_items) {
                char opt[128];

                (void) snprintf(
                        opt, sizeof(opt), "--%s%s%s", i->name, i->metavar ? " " : "", strempty(i->metavar));
                printf("  %-*s  %s\n", width, opt, strempty(i->help));
        }
        printf("  %-*s  %s\n", width, "--config FILE", "Read settings from FILE (flags override it)");
        printf("  %-*s  %s\n", width, "--help", "Show this help");
}

static bool item_is_list(const ConfigItem *item) {
        return item->parse == config_parse_strv;
}

int config_parse_argv(
        int argc, char **argv, const ConfigItem *items, size_t n_items, void *userdata, char ***ret_args) {

        _cleanup_free_ struct option *options = NULL;
        _cleanup_free_ char **args = NULL;
        _cleanup_free_ bool *list_set = NULL;
        size_t n_args = 0;
        bool help = false;
        int c, r;

        assert_return(argc >= 0, -EINVAL);
        assert_return(argv || argc == 0, -EINVAL);
        assert_return(items || n_items == 0, -EINVAL);
        assert_return(userdata, -EINVAL);
        assert_return(n_items < INT_MAX - OPT_BASE - 2, -EINVAL);

        if (argc < 1)
                goto done;

        options = calloc(n_items + 3, sizeof(struct option));
        args = calloc((size_t) argc + 1, sizeof(char *));
        list_set = calloc(n_items + 1, sizeof(bool));
        if (!options || !args || !list_set)
                return log_oom();

        for (size_t i = 0; i < n_items; i++)
                options[i] = (struct option){
                        .name = items[i].name,
                        .has_arg = items[i].metavar ? required_argument : optional_argument,
                        .val = OPT_BASE + (int) i,
                };
        options[n_items] = (struct option){"config", required_argument, NULL, OPT_BASE + (int) n_items};
        options[n_items + 1] = (struct option){"help", no_argument, NULL, OPT_BASE + (int) n_items + 1};

        /* Pass 1: check the syntax, collect positional arguments, load the config files.
         * "-" returns positional arguments in place (as 1), ":" reports a missing value as ':'.
         * optind = 0 makes glibc start over. */
        opterr = 0;
        optind = 0;
        while ((c = getopt_long(argc, argv, "-:", options, NULL)) >= 0)
                switch (c) {
                case 1:
                        args[n_args++] = optarg;
                        break;
                case ':':
                        if (optopt >= OPT_BASE && (size_t) (optopt - OPT_BASE) <= n_items)
                                log_error("Option '--%s' needs a value.", options[optopt - OPT_BASE].name);
                        else
                                log_error("Option '%s' needs a value.", argv[optind - 1]);
                        return -EINVAL;
                case '?':
                        if (optopt >= OPT_BASE)
                                log_error("Option '%s' takes no value.", argv[optind - 1]);
                        else if (optopt != 0) /* a short option: we have none */
                                log_error("Unknown option '-%c'.", optopt);
                        else
                                log_error("Unknown option '%s'.", argv[optind - 1]);
                        return -EINVAL;
                default:
                        if (c == OPT_BASE + (int) n_items + 1)
                                help = true;
                        break;
                }
        /* What follows "--" is positional too. */
        for (int i = optind; i < argc; i++)
                args[n_args++] = argv[i];

        if (help) {
                config_print_help(items, n_items);
                return 1;
        }
        if (n_args > 0 && !ret_args) {
                log_error("Unexpected argument '%s'.", args[0]);
                return -EINVAL;
        }

        optind = 0;
        while ((c = getopt_long(argc, argv, "-:", options, NULL)) >= 0)
                if (c == OPT_BASE + (int) n_items) {
                        r = config_load_file(optarg, items, n_items, userdata);
                        if (r == -ENOENT)
                                return log_error_errno(r, "Failed to open config file '%s': %m", optarg);
                        if (r < 0)
                                return r; /* already logged */
                }

        /* Pass 2: the flags, over whatever the files said. */
        optind = 0;
        while ((c = getopt_long(argc, argv, "-:", options, NULL)) >= 0) {
                const ConfigItem *item;
                size_t i;

                if (c < OPT_BASE || (size_t) (c - OPT_BASE) >= n_items)
                        continue;
                i = (size_t) (c - OPT_BASE);
                item = items + i;

                if (item_is_list(item) && !list_set[i]) {
                        char ***l = (char ***) ((uint8_t *) userdata + item->offset);

                        *l = strv_free(*l);
                        list_set[i] = true;
                }

                r = config_apply(item, userdata, optarg ?: "yes");
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0) {
                        log_error_errno(
                                r, "Invalid value for --%s: '%s': %m. Expected %s.", item->name,
                                strempty(optarg), item_expect(item));
                        return -EINVAL;
                }
        }

done:
        if (ret_args) {
                if (!args) {
                        args = calloc(1, sizeof(char *));
                        if (!args)
                                return log_oom();
                }
                args[n_args] = NULL;
                *ret_args = TAKE_PTR(args);
        }
        return 0;
}
