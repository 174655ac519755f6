/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PostgreSQL store's change notifications: a connection of their own that LISTENs,
 * driven by the caller's event loop. */

#include <stdlib.h>

#include "log.h"
#include "store-postgres.h"

/* ---- change notifications ---- */

typedef enum PgListenState {
        PG_LISTEN_IDLE,       /* no connection */
        PG_LISTEN_CONNECTING, /* PQconnectPoll() under way */
        PG_LISTEN_SENT,       /* LISTEN sent, its answer awaited */
        PG_LISTEN_UP,
} PgListenState;

typedef struct PgListener {
        StoreListener base;
        char *url;
        PGconn *conn;
        PgListenState state;
        PostgresPollingStatusType polling;
} PgListener;

static PgListener *pg_listener(StoreListener *l) {
        return (PgListener *) l;
}

static void pg_listener_close(PgListener *l) {
        if (l->conn)
                PQfinish(l->conn);
        l->conn = NULL;
        l->state = PG_LISTEN_IDLE;
}

static void pg_listener_free(StoreListener *base) {
        PgListener *l = pg_listener(base);

        pg_listener_close(l);
        free(l->url);
        free(l);
}

static void pg_notice_ignore(void *arg, const char *message) {
        log_debug("PostgreSQL (change listener): %s", message);
}

static int pg_listener_fail(PgListener *l, const char *what) {
        log_debug("PostgreSQL: change listener: %s: %s", what, l->conn ? PQerrorMessage(l->conn) : "");
        pg_listener_close(l);
        return -ECONNRESET;
}

static int pg_listener_connect(StoreListener *base, int *ret_fd, bool *ret_write) {
        PgListener *l = pg_listener(base);

        if (l->state == PG_LISTEN_IDLE) {
                /* Later keywords override what the URL says. Keepalives notice a peer that
                 * vanished without closing the connection, which nothing else would. */
                static const char *const keys[] = {
                        "dbname",
                        "application_name",
                        "keepalives",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "connect_timeout",
                        NULL,
                };
                const char *const values[] = {l->url, "keywardd-listen", "1", "10", "5", "3", "10", NULL};

                l->conn = PQconnectStartParams(keys, values, 1);
                if (!l->conn)
                        return -ENOMEM;
                if (PQstatus(l->conn) == CONNECTION_BAD)
                        return pg_listener_fail(l, "cannot start connecting");
                (void) PQsetNoticeProcessor(l->conn, pg_notice_ignore, NULL);
                l->state = PG_LISTEN_CONNECTING;
                l->polling = PGRES_POLLING_WRITING; /* as libpq says to begin */
        } else if (l->state == PG_LISTEN_CONNECTING) {
                l->polling = PQconnectPoll(l->conn);
                if (l->polling == PGRES_POLLING_FAILED)
                        return pg_listener_fail(l, "cannot connect");
                if (l->polling == PGRES_POLLING_OK) {
                        if (PQsetnonblocking(l->conn, 1) < 0 ||
                            !PQsendQuery(l->conn, "LISTEN " STORE_PG_CHANNEL) || PQflush(l->conn) < 0)
                                return pg_listener_fail(l, "cannot send LISTEN");
                        l->state = PG_LISTEN_SENT;
                }
        } else if (l->state == PG_LISTEN_SENT) {
                PGresult *res;
                bool ok = false;

                if (!PQconsumeInput(l->conn))
                        return pg_listener_fail(l, "LISTEN failed");
                if (PQisBusy(l->conn))
                        goto wait;
                while ((res = PQgetResult(l->conn))) {
                        ok = ok || PQresultStatus(res) == PGRES_COMMAND_OK;
                        PQclear(res);
                }
                if (!ok)
                        return pg_listener_fail(l, "LISTEN refused");
                l->state = PG_LISTEN_UP;
        }

wait:
        *ret_fd = PQsocket(l->conn);
        if (*ret_fd < 0)
                return pg_listener_fail(l, "no socket");
        *ret_write = l->state == PG_LISTEN_CONNECTING && l->polling == PGRES_POLLING_WRITING;
        return l->state == PG_LISTEN_UP;
}

static void pg_notification_pass(const char *payload, StoreChangeFunc f, void *userdata) {
        const char *id;
        uint64_t c;

        /* Not ours (someone else wrote to the channel) is taken as "anything may have
         * changed": it costs a look at the counter, never a change gone unheard. */
        if (store_change_parse(payload, &id, &c) < 0) {
                log_debug(
                        "PostgreSQL: a change notification that is not keywardd's; looking at the counter.");
                f(NULL, 0, userdata);
                return;
        }
        f(id, c, userdata);
}

static int pg_listener_dispatch(StoreListener *base, StoreChangeFunc f, void *userdata) {
        PgListener *l = pg_listener(base);
        PGnotify *n;
        bool lost;

        if (l->state != PG_LISTEN_UP)
                return -ENOTCONN;
        /* What arrived before the connection broke is still passed on. */
        lost = !PQconsumeInput(l->conn) || PQstatus(l->conn) == CONNECTION_BAD;
        while ((n = PQnotifies(l->conn))) {
                if (streq(n->relname, STORE_PG_CHANNEL))
                        pg_notification_pass(n->extra, f, userdata);
                PQfreemem(n);
        }
        if (lost)
                return pg_listener_fail(l, "connection lost");
        return 0;
}

static const StoreListenerVTable pg_listener_vtable = {
        .free = pg_listener_free,
        .connect = pg_listener_connect,
        .dispatch = pg_listener_dispatch,
};

int store_postgres_listener_new(const char *url, StoreListener **ret) {
        PgListener *l;

        l = calloc(1, sizeof(PgListener));
        if (!l)
                return -ENOMEM;
        l->base.vtable = &pg_listener_vtable;
        l->url = strdup(url);
        if (!l->url) {
                free(l);
                return -ENOMEM;
        }
        *ret = &l->base;
        return 0;
}
