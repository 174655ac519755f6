/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/agent-client: the load side of bench/agent, a plain sd-bus client on the system bus
 * (DBUS_SYSTEM_BUS_ADDRESS).
 *
 * --mode call: calls DEST PATH IFACE.METHOD(s id) COUNT times, one after the other (after
 *   WARMUP calls not counted), the id cycling over PREFIX0 .. PREFIX(IDS-1), and prints one
 *   line: calls errors seconds rps p50_us p99_us max_us.
 *
 * --mode changed: subscribes to org.keyward.Agent1.KeyChanged, then for ROUNDS keys spread
 *   over PREFIX0 .. PREFIX(IDS-1): runs "TRIGGER prepare ID" (adds a version: the agent
 *   announces that too, and that KeyChanged is awaited and not counted), then "TRIGGER
 *   promote ID" (makes it the primary), timed from the moment it is started and from the
 *   moment it exits (the server has answered), to the KeyChanged for ID. Prints one line:
 *   rounds errors p50_ms p99_ms max_ms ack_p50_ms ack_p99_ms after_ack_p50_ms
 *   after_ack_p99_ms. --jitter-ms J waits a random 0..J ms before each promote, so that the
 *   promotes do not keep one phase against a periodic poll in the agent.
 *
 * Usage: agent-client --mode call --dest D --path P --iface I --method M --prefix PFX
 *                     --ids N [--count N] [--warmup N]
 *        agent-client --mode changed --trigger PROG --prefix PFX --ids N [--rounds N]
 *                     [--timeout SEC] [--jitter-ms J] */

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"
#include "keyward-bus.h"

extern char **environ;

static double now_sec(void) {
        return (double) bench_now_ns() / 1e9;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return (x > y) - (x < y);
}

/* The p-quantile (0 < p <= 1) of v[0..n), sorted in place; 0 when n is 0. */
static double quantile(double *v, size_t n, double p) {
        size_t i;

        if (n == 0)
                return 0;
        qsort(v, n, sizeof(double), cmp_double);
        i = (size_t) ceil(p * (double) n);
        return v[i > 0 ? i - 1 : 0];
}

static int run_calls(
        sd_bus *bus,
        const char *dest,
        const char *path,
        const char *iface,
        const char *method,
        const char *prefix,
        unsigned long long ids,
        unsigned long long count,
        unsigned long long warmup) {

        double *lat, t0, t_start = 0;
        unsigned long long errors = 0, n = 0;

        lat = calloc(count, sizeof(double));
        if (!lat)
                return -ENOMEM;

        for (unsigned long long i = 0; i < warmup + count; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                char id[256];
                double t;
                int r;

                if ((size_t) snprintf(id, sizeof(id), "%s%llu", prefix, i % ids) >= sizeof(id)) {
                        free(lat);
                        return -ENAMETOOLONG;
                }
                if (i == warmup)
                        t_start = now_sec();
                t0 = now_sec();
                r = sd_bus_call_method(bus, dest, path, iface, method, &error, &reply, "s", id);
                if (r >= 0) {
                        const void *data;
                        size_t size;
                        uint64_t version;

                        r = sd_bus_message_read_array(reply, 'y', &data, &size);
                        if (r >= 0)
                                r = sd_bus_message_read(reply, "t", &version);
                }
                t = now_sec() - t0;
                if (r < 0 && errors < 3)
                        fprintf(stderr, "agent-client: %s(%s): %s\n", method, id,
                                error.message ? error.message : strerror(-r));
                sd_bus_message_unref(reply);
                sd_bus_error_free(&error);
                if (i < warmup)
                        continue;
                if (r < 0)
                        errors++;
                else
                        lat[n++] = t;
        }
        t0 = now_sec() - t_start;

        printf("calls=%llu errors=%llu seconds=%.3f rps=%.0f", count, errors, t0,
               t0 > 0 ? (double) n / t0 : 0.0);
        printf(" p50_us=%.1f p99_us=%.1f max_us=%.1f\n", quantile(lat, n, 0.50) * 1e6,
               quantile(lat, n, 0.99) * 1e6, quantile(lat, n, 1.0) * 1e6);
        free(lat);
        return errors > 0 ? -EIO : 0;
}

typedef struct Waiter {
        const char *id;
        double arrived; /* 0 until KeyChanged(id) arrives */
} Waiter;

static int on_key_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Waiter *w = userdata;
        const char *id, *hash;

        if (sd_bus_message_read(m, "ss", &id, &hash) < 0)
                return 0;
        if (w->id && w->arrived == 0 && strcmp(id, w->id) == 0)
                w->arrived = now_sec();
        return 0;
}

/* Start "trigger verb id", and process the bus until both it has exited and KeyChanged(id)
 * has arrived, or until the deadline. Returns the start time and the exit time. */
static int trigger_and_wait(
        sd_bus *bus,
        Waiter *w,
        const char *trigger,
        const char *verb,
        const char *id,
        double timeout,
        double *ret_started,
        double *ret_exited) {

        char *args[] = {(char *) trigger, (char *) verb, (char *) id, NULL};
        double started, exited = 0, deadline;
        pid_t pid;
        int status, r;

        w->id = id;
        w->arrived = 0;
        started = now_sec();
        r = posix_spawn(&pid, trigger, NULL, NULL, args, environ);
        if (r != 0)
                return -r;
        deadline = started + timeout;

        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        break;
                if (r > 0)
                        continue;
                if (exited == 0) {
                        pid_t p = waitpid(pid, &status, WNOHANG);

                        if (p == pid) {
                                exited = now_sec();
                                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                                        fprintf(stderr, "agent-client: '%s %s %s' failed\n", trigger, verb,
                                                id);
                                        r = -EIO;
                                        break;
                                }
                        }
                }
                if (exited > 0 && w->arrived > 0)
                        break;
                if (now_sec() > deadline) {
                        fprintf(stderr, "agent-client: no KeyChanged for '%s' after %s\n", id, verb);
                        r = -ETIMEDOUT;
                        break;
                }
                /* Short waits so that the trigger's exit is seen within a millisecond; the
                 * signal wakes us at once. */
                r = sd_bus_wait(bus, 1000);
                if (r < 0)
                        break;
        }
        if (exited == 0) {
                (void) waitpid(pid, &status, 0);
                exited = now_sec();
        }
        w->id = NULL;
        if (r < 0)
                return r;
        *ret_started = started;
        *ret_exited = exited;
        return 0;
}

static int run_changed(
        sd_bus *bus,
        const char *trigger,
        const char *prefix,
        unsigned long long ids,
        unsigned long long rounds,
        double timeout,
        unsigned long long jitter_ms) {

        double *e2e = NULL, *ack = NULL, *after = NULL;
        unsigned long long n = 0, errors = 0;
        sd_bus_slot *slot = NULL;
        Waiter w = {};
        int r;

        e2e = calloc(rounds, sizeof(double));
        ack = calloc(rounds, sizeof(double));
        after = calloc(rounds, sizeof(double));
        if (!e2e || !ack || !after) {
                r = -ENOMEM;
                goto finish;
        }
        r = sd_bus_match_signal(
                bus, &slot, AGENT_BUS_NAME, AGENT_BUS_PATH, AGENT_BUS_INTERFACE, "KeyChanged",
                on_key_changed, &w);
        if (r < 0)
                goto finish;

        for (unsigned long long i = 0; i < rounds; i++) {
                double started, exited;
                char id[256];

                /* Spread over the ids: 0, ids/rounds, 2*ids/rounds, ... */
                if ((size_t) snprintf(id, sizeof(id), "%s%llu", prefix, i * ids / rounds % ids) >=
                    sizeof(id)) {
                        r = -ENAMETOOLONG;
                        goto finish;
                }
                r = trigger_and_wait(bus, &w, trigger, "prepare", id, timeout, &started, &exited);
                if (r >= 0 && jitter_ms > 0)
                        (void) usleep((useconds_t) (drand48() * (double) jitter_ms * 1000.0));
                if (r >= 0)
                        r = trigger_and_wait(bus, &w, trigger, "promote", id, timeout, &started, &exited);
                if (r < 0) {
                        errors++;
                        continue;
                }
                e2e[n] = w.arrived - started;
                ack[n] = exited - started;
                after[n] = w.arrived > exited ? w.arrived - exited : 0;
                n++;
        }

        printf("rounds=%llu errors=%llu p50_ms=%.1f p99_ms=%.1f max_ms=%.1f", rounds, errors,
               quantile(e2e, n, 0.50) * 1e3, quantile(e2e, n, 0.99) * 1e3, quantile(e2e, n, 1.0) * 1e3);
        printf(" ack_p50_ms=%.1f ack_p99_ms=%.1f after_ack_p50_ms=%.1f after_ack_p99_ms=%.1f\n",
               quantile(ack, n, 0.50) * 1e3, quantile(ack, n, 0.99) * 1e3, quantile(after, n, 0.50) * 1e3,
               quantile(after, n, 0.99) * 1e3);
        r = errors > 0 ? -EIO : 0;
finish:
        sd_bus_slot_unref(slot);
        free(e2e);
        free(ack);
        free(after);
        return r;
}

static void usage(FILE *f) {
        fputs("Usage: agent-client --mode call --dest D --path P --iface I --method M --prefix PFX\n"
              "                    --ids N [--count N] [--warmup N]\n"
              "       agent-client --mode changed --trigger PROG --prefix PFX --ids N [--rounds N]\n"
              "                    [--timeout SEC] [--jitter-ms J]\n",
              f);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                {"mode", required_argument, NULL, 'm'},
                {"dest", required_argument, NULL, 'd'},
                {"path", required_argument, NULL, 'p'},
                {"iface", required_argument, NULL, 'i'},
                {"method", required_argument, NULL, 'M'},
                {"prefix", required_argument, NULL, 'x'},
                {"ids", required_argument, NULL, 'n'},
                {"count", required_argument, NULL, 'c'},
                {"warmup", required_argument, NULL, 'w'},
                {"trigger", required_argument, NULL, 't'},
                {"rounds", required_argument, NULL, 'r'},
                {"timeout", required_argument, NULL, 'T'},
                {"jitter-ms", required_argument, NULL, 'j'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *mode = NULL, *dest = AGENT_BUS_NAME, *path = AGENT_BUS_PATH,
                   *iface = AGENT_BUS_INTERFACE, *method = "GetKey",
                   *prefix = "bench:fill:", *trigger = NULL;
        unsigned long long ids = 1, count = 10000, warmup = 500, rounds = 50, timeout = 10, jitter_ms = 0;
        unsigned long long *num;
        sd_bus *bus = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                num = NULL;
                switch (c) {
                case 'm':
                        mode = optarg;
                        break;
                case 'd':
                        dest = optarg;
                        break;
                case 'p':
                        path = optarg;
                        break;
                case 'i':
                        iface = optarg;
                        break;
                case 'M':
                        method = optarg;
                        break;
                case 'x':
                        prefix = optarg;
                        break;
                case 't':
                        trigger = optarg;
                        break;
                case 'n':
                        num = &ids;
                        break;
                case 'c':
                        num = &count;
                        break;
                case 'w':
                        num = &warmup;
                        break;
                case 'r':
                        num = &rounds;
                        break;
                case 'T':
                        num = &timeout;
                        break;
                case 'j':
                        num = &jitter_ms;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
                if (num) {
                        uint64_t v;

                        if (bench_parse_u64(optarg, 100000000, &v) < 0) {
                                fprintf(stderr, "agent-client: bad number '%s'\n", optarg);
                                return 2;
                        }
                        *num = v;
                }
        }
        if (!mode || optind != argc || ids == 0 || count == 0 || rounds == 0 || timeout == 0) {
                usage(stderr);
                return 2;
        }

        srand48((long) getpid() ^ (long) time(NULL));
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "agent-client: cannot connect to the system bus: %s\n", strerror(-r));
                return 1;
        }
        if (strcmp(mode, "call") == 0)
                r = run_calls(bus, dest, path, iface, method, prefix, ids, count, warmup);
        else if (strcmp(mode, "changed") == 0 && trigger)
                r = run_changed(bus, trigger, prefix, ids, rounds, (double) timeout, jitter_ms);
        else {
                usage(stderr);
                r = -EINVAL;
        }
        if (r < 0 && r != -EIO)
                fprintf(stderr, "agent-client: %s\n", strerror(-r));
        sd_bus_flush_close_unref(bus);
        return r < 0 ? 1 : 0;
}
