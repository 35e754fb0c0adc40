/* order-intake: wires configuration, the outbox relay, database workers, expiry and HTTP together.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "intake.h"
#include "topup/counters.h"
#include "topup/log.h"
#include "topup/outbox.h"
#include "topup/pg.h"
#include "topup/signals.h"

#define MAIN_TICK_MS          100
#define MAIN_FLUSH_MS         1000
#define MAIN_DRAIN_CONNECT_MS 2000
#define MAIN_DRAIN_POLL_MS    20

static int main_write_port_file(const char *path, int port)
{
    char tmp[4096 + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        log_error("cannot write the port file", LF_S("path", path), LF_S("error", strerror(errno)));
        return -1;
    }
    return 0;
}

static int main_start(struct intake *app)
{
    struct tp_error err = {0};
    app->counters = counters_new(INTAKE_SERVICE, app->cfg.redis_host, (int)app->cfg.redis_port);
    static_init(app);
    app->relay = outbox_relay_new(INTAKE_OUTBOX_SOURCE, app->cfg.pg_conninfo,
                                  (int)app->cfg.outbox_poll_ms, app->counters, &err);
    if (app->relay == NULL || outbox_relay_start(app->relay, &err) != TP_OK) {
        log_error("outbox relay did not start", LF_S("error", err.msg));
        return -1;
    }
    app->pool = pool_new(app, &err);
    if (app->pool == NULL) {
        log_error("database workers did not start", LF_S("error", err.msg));
        return -1;
    }
    app->expiry = expiry_start(app, &err);
    if (app->expiry == NULL) {
        log_error("expiry sweep did not start", LF_S("error", err.msg));
        return -1;
    }
    struct http_server_config hc = {
        .addr = app->cfg.http_addr,
        .port = (int)app->cfg.http_port,
        .threads = (int)app->cfg.threads,
        .body_max_bytes = (size_t)app->cfg.max_body_bytes,
        .connections_max = (int)app->cfg.connections_max,
        .per_ip_connections_max = (int)app->cfg.per_ip_connections_max,
        .idle_timeout_s = (int)app->cfg.idle_timeout_s,
        .header_timeout_s = (int)app->cfg.header_timeout_s,
        .body_timeout_s = (int)app->cfg.body_timeout_s,
    };
    app->http = http_server_new(&hc, api_handle, app, &err);
    if (app->http == NULL) {
        log_error("cannot listen", LF_S("error", err.msg));
        return -1;
    }
    log_info("order-intake listening", LF_S("addr", app->cfg.http_addr),
             LF_I("port", http_server_port(app->http)), LF_I("http_threads", app->cfg.threads),
             LF_I("db_workers", app->cfg.pg_conns));
    if (app->cfg.port_file[0] != '\0' &&
        main_write_port_file(app->cfg.port_file, http_server_port(app->http)) != 0) {
        return -1;
    }
    return 0;
}

static int64_t main_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Nothing writes to the outbox any more: give the relay until the deadline to publish what this
 * instance wrote, so that every order answered 201 has its event in Kafka when we exit. Past the
 * deadline (broker away) the rows stay for the next instance's relay.
 */
static void main_drain_outbox(struct intake *app, int64_t deadline_ms)
{
    struct tp_error err = {0};
    struct pg_conn *pg = pg_conn_new(app->cfg.pg_conninfo, MAIN_DRAIN_CONNECT_MS, &err);
    int64_t upto = 0;
    int64_t left = 0;
    enum tp_status st = pg != NULL ? store_outbox_unpublished(pg, &upto, &left, &err) : TP_RETRY;
    while (st == TP_OK && left > 0 && main_now_ms() < deadline_ms) {
        usleep(MAIN_DRAIN_POLL_MS * 1000);
        st = store_outbox_unpublished(pg, &upto, &left, &err);
    }
    if (st != TP_OK || left > 0) {
        log_warn("outbox not drained before exit; the next relay publishes the rest",
                 LF_I("rows_left", left), LF_S("error", st != TP_OK ? err.msg : ""));
    }
    pg_conn_free(pg);
}

/*
 * SIGTERM: no new connections, answer every request in hand, let the relay publish what was
 * written (within INTAKE_SHUTDOWN_GRACE_MS in all), then stop it after its batch.
 */
static void main_stop(struct intake *app)
{
    int64_t deadline = main_now_ms() + app->cfg.shutdown_grace_ms;
    if (app->http != NULL) {
        http_server_quiesce(app->http);
    }
    pool_stop(app->pool);
    expiry_stop(app->expiry);
    app->expiry = NULL;
    int64_t left_ms = deadline - main_now_ms();
    http_server_free(app->http, left_ms > 0 ? (int)left_ms : 0);
    app->http = NULL;
    pool_free(app->pool);
    app->pool = NULL;
    if (app->relay != NULL) {
        main_drain_outbox(app, deadline);
    }
    outbox_relay_free(app->relay);
    app->relay = NULL;
    counters_free(app->counters);
    app->counters = NULL;
}

int main(int argc, char **argv)
{
    log_init(INTAKE_SERVICE);
    if (argc > 1 && strcmp(argv[1], "--help-config") == 0) {
        settings_print_table();
        return 0;
    }
    if (argc > 1) {
        fprintf(argc > 1 && strcmp(argv[1], "--help") == 0 ? stdout : stderr,
                "usage: order-intake [--help-config]\n"
                "HTTP/JSON API and Top Up page; configured by environment variables "
                "(--help-config lists them).\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    static struct intake app;
    struct tp_error err = {0};
    if (settings_load(&app.cfg, &err) != TP_OK) {
        fprintf(stderr, "order-intake: configuration: %s\n", err.msg);
        return 2;
    }
    signals_install();
    int rc = main_start(&app);
    int since_flush = 0;
    while (rc == 0 && !signals_stop_requested()) {
        usleep(MAIN_TICK_MS * 1000);
        since_flush += MAIN_TICK_MS;
        if (since_flush >= MAIN_FLUSH_MS) {
            counters_flush(app.counters);
            since_flush = 0;
        }
    }
    log_info("order-intake stopping",
             LF_I("in_flight", app.http ? http_server_inflight(app.http) : 0));
    main_stop(&app);
    log_info("order-intake stopped");
    return rc == 0 ? 0 : 1;
}
