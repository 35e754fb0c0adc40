/*
 * The expiry sweep: every INTAKE_EXPIRY_SWEEP_MS, pending orders past their window become expired
 * with a TopUpExpired event, in batches locked FOR UPDATE SKIP LOCKED so that several instances
 * share the work and never wait on (or fight over) the same rows.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "intake.h"
#include "topup/counters.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/pg.h"

#define EXPIRY_CONNECT_TIMEOUT_MS 2000
/* Batches per sweep before yielding to the next tick (bounds one sweep's duration). */
#define EXPIRY_BATCHES_PER_SWEEP_MAX 100

struct intake_expiry {
    struct intake *app;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    struct pg_conn *pg;
};

/* Waits up to ms or until stopped; returns true when stopping. */
static bool expiry_wait(struct intake_expiry *e, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        if (pthread_cond_timedwait(&e->cv, &e->mu, &until) != 0) {
            break;
        }
    }
    bool stop = e->stop;
    pthread_mutex_unlock(&e->mu);
    return stop;
}

static bool expiry_stopping(struct intake_expiry *e)
{
    pthread_mutex_lock(&e->mu);
    bool stop = e->stop;
    pthread_mutex_unlock(&e->mu);
    return stop;
}

static void expiry_sweep(struct intake_expiry *e)
{
    struct intake *app = e->app;
    struct tp_error err = {0};
    if (e->pg == NULL) {
        e->pg = pg_conn_new(app->cfg.pg_conninfo, EXPIRY_CONNECT_TIMEOUT_MS, &err);
        if (e->pg == NULL || store_prepare(e->pg, &err) != TP_OK) {
            log_warn("expiry sweep cannot reach the database; next tick retries",
                     LF_S("error", err.msg));
            pg_conn_free(e->pg);
            e->pg = NULL;
            return;
        }
    }
    int total = 0;
    for (int i = 0; i < EXPIRY_BATCHES_PER_SWEEP_MAX && !expiry_stopping(e); i++) {
        int n = 0;
        enum tp_status st = store_expire_batch(e->pg, (int)app->cfg.expiry_batch_max, &n, &err);
        if (st != TP_OK) {
            log_warn("expiry sweep failed; next tick retries", LF_S("error", err.msg));
            break;
        }
        total += n;
        if (n < app->cfg.expiry_batch_max) {
            break;
        }
    }
    if (total > 0) {
        counters_incr(app->counters, "orders.expired", total);
        log_info("pending orders expired", LF_I("orders", total));
    }
}

static void *expiry_main(void *arg)
{
    struct intake_expiry *e = arg;
    while (!expiry_wait(e, e->app->cfg.expiry_sweep_ms)) {
        expiry_sweep(e);
    }
    pg_conn_free(e->pg);
    e->pg = NULL;
    return NULL;
}

struct intake_expiry *expiry_start(struct intake *app, struct tp_error *err)
{
    struct intake_expiry *e = mem_calloc(1, sizeof(*e));
    e->app = app;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->thread, NULL, expiry_main, e) != 0) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        free(e);
        error_set(err, TP_FATAL, "cannot start the expiry thread");
        return NULL;
    }
    return e;
}

void expiry_stop(struct intake_expiry *e)
{
    if (e == NULL) {
        return;
    }
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}
