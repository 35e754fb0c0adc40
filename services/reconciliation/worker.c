/*
 * The reconciliation worker's loop: poll a batch, decode it, reconcile it in parallel lanes (one
 * PostgreSQL connection and one transaction each, the batch split by record identity), store the
 * offsets once every lane committed; between batches, the sweep and the counters.
 */
#include "recon.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "days.h"
#include "topup/counters.h"
#include "topup/event.h"
#include "topup/kafka.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/outbox.h"
#include "topup/pg.h"
#include "topup/signals.h"

/* Waits of the loop; none of them is a correctness bound. */
#define WORKER_POLL_MS        200
#define WORKER_PG_CONNECT_MS  30000
#define WORKER_DLQ_TIMEOUT_MS 10000
#define WORKER_TX_ATTEMPTS    5
#define WORKER_BACKOFF_MIN_MS 100
#define WORKER_BACKOFF_MAX_MS 5000
#define WORKER_FLUSH_MS       1000
/* The dead-letter reason of a bank record that belongs to no recorded import. */
#define WORKER_REASON_PROVENANCE                                                                   \
    "provenance: no recorded import (statement_import_records, status publishing or completed) "   \
    "holds this record's digest"

struct worker;

/*
 * One lane: a connection and a batch state of its own. A batch is dealt to the lanes by record
 * identity (or order code), so one identity is only ever written by one lane. Records of a batch
 * are decided concurrently rather than in partition order; offsets still move only after every
 * lane committed. What two lanes can meet on, orders, is arbitrated by PostgreSQL as between two
 * instances: the conditional claim, taken in id order (the loser re-decides on fresh data).
 */
struct lane {
    struct worker *w;
    int index;
    struct pg_conn *pg;
    struct reconcile *rc;
    int *msg_idx; /* this lane's messages in the polled batch */
    int n;
    bool done; /* committed for the batch in hand */
    enum tp_status st;
    struct tp_error err;
    struct recon_tally tally;
};

struct worker {
    const struct recon_config *cfg;
    const struct recon_accounts *accounts;
    struct recon_settings settings;
    struct kafka_consumer *consumer;
    struct kafka_producer *dlq;
    struct counters *counters;
    struct outbox_relay *relay;
    struct lane lanes[RECON_LANES_MAX];
    int nlanes;
    struct kafka_message *msgs;
    struct decoded *dec;
    bool *ok; /* dec[i] holds a decoded message */
    /* The batch's records for the provenance lookup: message index, digest, import found. */
    int *prov_idx;
    const uint8_t **prov_digests;
    int64_t *prov_imports;
    int64_t last_sweep_ms;
    int64_t last_flush_ms;
};

static int64_t worker_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t worker_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sleeps ms, in slices, returning early on a stop request. */
static void worker_sleep(int64_t ms)
{
    while (ms > 0 && !signals_stop_requested()) {
        int64_t slice = ms < 100 ? ms : 100;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slice * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
}

/*
 * Dead-letters msg with reason and counts it under counter; retried until acknowledged or a stop
 * is requested (then false).
 */
static bool worker_dead_letter(struct worker *w, const struct kafka_message *msg,
                               const char *reason, const char *counter)
{
    int64_t backoff = WORKER_BACKOFF_MIN_MS;
    while (true) {
        struct tp_error err = {0};
        if (kafka_dead_letter(w->dlq, msg, reason, WORKER_DLQ_TIMEOUT_MS, &err) == TP_OK) {
            /* kafka_dead_letter logs it with topic, partition, offset and reason. */
            counters_incr(w->counters, counter, 1);
            return true;
        }
        log_warn("dead letter not acknowledged, retrying", LF_S("topic", msg->topic),
                 LF_I("offset", msg->offset), LF_S("error", err.msg));
        if (signals_stop_requested()) {
            return false;
        }
        worker_sleep(backoff);
        backoff = backoff * 2 > WORKER_BACKOFF_MAX_MS ? WORKER_BACKOFF_MAX_MS : backoff * 2;
    }
}

static uint32_t worker_fnv(uint32_t h, const char *s)
{
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
    }
    return (h ^ 0xffu) * 16777619u;
}

/*
 * The lane of a decoded message: a record by its identity (receiving account, bank txn id), an
 * order event by its code. The same identity therefore never meets itself in two lanes, and a
 * batch (usually all from one partition) spreads over every lane.
 */
static int worker_lane_of(const struct worker *w, const struct decoded *d)
{
    uint32_t h = 2166136261u;
    if (d->kind == DECODE_RECORD) {
        h = worker_fnv(worker_fnv(h, d->rec.receiving_account), d->rec.bank_txn_id);
    } else {
        h = worker_fnv(h, d->order_code);
    }
    return (int)(h % (uint32_t)w->nlanes);
}

/* Adds message i to its lane's batch; counts the order events that need no work. */
static void worker_add(struct worker *w, struct lane *l, int i)
{
    struct decoded *d = &w->dec[i];
    switch (d->kind) {
    case DECODE_RECORD:
        (void)reconcile_add_record(l->rc, &d->rec); /* n <= batch_max: always fits */
        break;
    case DECODE_ORDER_REQUESTED:
        (void)reconcile_add_order(l->rc, d->order_code);
        break;
    case DECODE_ORDER_CANCELLED:
    case DECODE_ORDER_EXPIRED:
        /* The conditional claim already keeps such an order from being matched. */
        break;
    }
}

static void worker_count_orders(struct worker *w, int n)
{
    for (int i = 0; i < n; i++) {
        if (!w->ok[i]) {
            continue;
        }
        const char *name = w->dec[i].kind == DECODE_ORDER_REQUESTED   ? "recon.orders.requested"
                           : w->dec[i].kind == DECODE_ORDER_CANCELLED ? "recon.orders.cancelled"
                           : w->dec[i].kind == DECODE_ORDER_EXPIRED   ? "recon.orders.expired"
                                                                      : NULL;
        if (name != NULL) {
            counters_incr(w->counters, name, 1);
        }
    }
}

/*
 * Provenance (README "Trust"): the batch's records are looked up by digest among the recorded
 * imports, in one query on lane 0's connection (the lanes have not started). A record of no
 * recorded import is dead-lettered (recon.refused.provenance) and goes no further: nothing of it
 * is stored or matched. The others carry their import id into statement_records. A failed lookup
 * is retried until it answers; false when a stop came first (the batch is then not committed).
 */
static bool worker_check_provenance(struct worker *w, int n)
{
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (w->ok[i] && w->dec[i].kind == DECODE_RECORD) {
            w->prov_idx[k] = i;
            w->prov_digests[k] = w->dec[i].digest;
            k++;
        }
    }
    int64_t backoff = WORKER_BACKOFF_MIN_MS;
    struct tp_error err = {0};
    while (provenance_lookup(w->lanes[0].pg, w->prov_digests, k, w->prov_imports, &err) != TP_OK) {
        log_warn("provenance lookup failed, retrying", LF_S("error", err.msg),
                 LF_I("retry_in_ms", backoff));
        if (signals_stop_requested()) {
            return false;
        }
        worker_sleep(backoff);
        backoff = backoff * 2 > WORKER_BACKOFF_MAX_MS ? WORKER_BACKOFF_MAX_MS : backoff * 2;
    }
    for (size_t j = 0; j < k; j++) {
        int i = w->prov_idx[j];
        if (w->prov_imports[j] > 0) {
            w->dec[i].rec.import_id = w->prov_imports[j];
            continue;
        }
        log_warn("bank record of no recorded import refused", LF_S("topic", w->msgs[i].topic),
                 LF_I("partition", w->msgs[i].partition), LF_I("offset", w->msgs[i].offset),
                 LF_S("receiving_account", w->dec[i].rec.receiving_account),
                 LF_S("bank_txn_id", w->dec[i].rec.bank_txn_id),
                 LF_I("amount_fen", w->dec[i].rec.amount_fen));
        if (!worker_dead_letter(w, &w->msgs[i], WORKER_REASON_PROVENANCE,
                                "recon.refused.provenance")) {
            return false;
        }
        decode_free(&w->dec[i]);
        w->ok[i] = false;
    }
    return true;
}

/*
 * Decodes msgs[0..n), checks the records' provenance and deals what is left to the lanes; the
 * invalid and the unrecorded are dead-lettered.
 */
static bool worker_decode(struct worker *w, int n)
{
    for (int k = 0; k < w->nlanes; k++) {
        w->lanes[k].n = 0;
        w->lanes[k].done = false;
    }
    for (int i = 0; i < n; i++) {
        struct tp_error err = {0};
        w->ok[i] = decode_message(w->msgs[i].topic, w->msgs[i].payload, w->msgs[i].len, w->accounts,
                                  &w->dec[i], &err) == TP_OK;
        if (!w->ok[i] && !worker_dead_letter(w, &w->msgs[i], err.msg, "recon.dlq")) {
            return false;
        }
    }
    if (!worker_check_provenance(w, n)) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (w->ok[i]) {
            struct lane *l = &w->lanes[worker_lane_of(w, &w->dec[i])];
            l->msg_idx[l->n++] = i;
        }
    }
    return true;
}

/*
 * A lane's batch refused as a whole with TP_INVALID (a value PostgreSQL rejects although decode
 * accepted it): each message alone, so only the offending one is dead-lettered.
 */
static enum tp_status lane_isolate(struct lane *l)
{
    for (int k = 0; k < l->n; k++) {
        int i = l->msg_idx[k];
        reconcile_reset(l->rc);
        worker_add(l->w, l, i);
        struct recon_tally tally;
        enum tp_status st = reconcile_run(l->rc, WORKER_TX_ATTEMPTS, &tally, &l->err);
        if (st == TP_OK) {
            recon_tally_count(&tally, l->w->counters);
        } else if (st == TP_INVALID) {
            if (!worker_dead_letter(l->w, &l->w->msgs[i], l->err.msg, "recon.dlq")) {
                return TP_RETRY;
            }
        } else {
            return st;
        }
    }
    return TP_OK;
}

/* Runs a lane's share of the batch in one transaction (on whatever thread calls it). */
static void *lane_run(void *arg)
{
    struct lane *l = arg;
    reconcile_reset(l->rc);
    for (int k = 0; k < l->n; k++) {
        worker_add(l->w, l, l->msg_idx[k]);
    }
    memset(&l->tally, 0, sizeof(l->tally));
    l->st = reconcile_run(l->rc, WORKER_TX_ATTEMPTS, &l->tally, &l->err);
    if (l->st == TP_OK) {
        recon_tally_count(&l->tally, l->w->counters);
    } else if (l->st == TP_INVALID) {
        log_warn("batch refused, reconciling its messages one by one", LF_I("lane", l->index),
                 LF_S("error", l->err.msg));
        l->st = lane_isolate(l);
    }
    reconcile_reset(l->rc);
    return NULL;
}

/* Runs every lane not done yet, concurrently; lane 0 on this thread. */
static void worker_run_lanes(struct worker *w)
{
    pthread_t threads[RECON_LANES_MAX];
    bool started[RECON_LANES_MAX] = {false};
    for (int k = 1; k < w->nlanes; k++) {
        struct lane *l = &w->lanes[k];
        if (!l->done && l->n > 0) {
            started[k] = pthread_create(&threads[k], NULL, lane_run, l) == 0;
            if (!started[k]) {
                lane_run(l); /* no thread to be had: do it here */
            }
        }
    }
    if (!w->lanes[0].done && w->lanes[0].n > 0) {
        lane_run(&w->lanes[0]);
    }
    for (int k = 1; k < w->nlanes; k++) {
        if (started[k]) {
            pthread_join(threads[k], NULL);
        }
    }
}

/*
 * Reconciles one polled batch until every lane committed, or the worker must stop. A lane that
 * committed is not run again when another one retries.
 */
static enum tp_status worker_batch(struct worker *w, int n)
{
    enum tp_status st = TP_RETRY;
    int64_t backoff = WORKER_BACKOFF_MIN_MS;
    int64_t t0 = worker_now_us();
    int64_t t_decoded = t0, t_committed = t0;
    if (!worker_decode(w, n)) {
        goto out;
    }
    t_decoded = worker_now_us();
    while (true) {
        worker_run_lanes(w);
        st = TP_OK;
        for (int k = 0; k < w->nlanes; k++) {
            struct lane *l = &w->lanes[k];
            if (l->done || l->n == 0) {
                continue;
            }
            if (l->st == TP_OK) {
                l->done = true;
            } else if (st == TP_OK || l->st != TP_RETRY) {
                st = l->st;
                if (l->st != TP_RETRY) {
                    log_error("batch failed, stopping without storing its offsets", LF_I("lane", k),
                              LF_S("error", l->err.msg), LF_S("status", error_status_name(l->st)));
                } else {
                    log_warn("batch not committed, retrying", LF_I("lane", k),
                             LF_S("error", l->err.msg), LF_I("retry_in_ms", backoff));
                }
            }
        }
        if (st != TP_RETRY || signals_stop_requested()) {
            break;
        }
        worker_sleep(backoff);
        backoff = backoff * 2 > WORKER_BACKOFF_MAX_MS ? WORKER_BACKOFF_MAX_MS : backoff * 2;
    }
    t_committed = worker_now_us();
    if (st == TP_OK) {
        /* Durable in PostgreSQL (and the dead letters acknowledged): now the offsets may move. */
        worker_count_orders(w, n);
        kafka_consumer_store(w->consumer, w->msgs, n);
    }
out:
    for (int i = 0; i < n; i++) {
        if (w->ok[i]) {
            decode_free(&w->dec[i]);
            w->ok[i] = false;
        }
    }
    kafka_consumer_release(w->consumer, w->msgs, n);
    log_debug("batch done", LF_I("messages", n), LF_S("status", error_status_name(st)),
              LF_I("decode_us", t_decoded - t0), LF_I("lanes_us", t_committed - t_decoded),
              LF_I("release_us", worker_now_us() - t_committed));
    return st;
}

/* Re-examines every stored unmatched record: late matches, and aging into review. */
static void worker_sweep(struct worker *w)
{
    int32_t today = days_local_from_ms(event_now_ms());
    int64_t after = 0;
    bool more = true;
    struct recon_tally total = {0};
    while (more && !signals_stop_requested()) {
        struct recon_tally tally;
        struct tp_error err = {0};
        if (reconcile_sweep_chunk(w->lanes[0].rc, today, &after, &more, &tally, &err) != TP_OK) {
            log_warn("sweep of unmatched records interrupted", LF_S("error", err.msg));
            break;
        }
        recon_tally_count(&tally, w->counters);
        total.rematched += tally.rematched;
        total.review[MATCHER_REASON_AGED_UNMATCHED] += tally.review[MATCHER_REASON_AGED_UNMATCHED];
    }
    if (total.rematched > 0) {
        log_info("sweep of unmatched records done", LF_I("decided", total.rematched),
                 LF_I("aged_to_review", total.review[MATCHER_REASON_AGED_UNMATCHED]));
    }
}

static void worker_tick(struct worker *w)
{
    int64_t now = worker_now_ms();
    if (now - w->last_sweep_ms >= w->cfg->aging_sweep_ms) {
        worker_sweep(w);
        w->last_sweep_ms = worker_now_ms();
    }
    if (now - w->last_flush_ms >= WORKER_FLUSH_MS) {
        if (w->relay != NULL) {
            counters_gauge(w->counters, "recon.outbox.backlog", outbox_relay_backlog(w->relay));
        }
        counters_flush(w->counters);
        w->last_flush_ms = now;
    }
}

static enum tp_status worker_open_lane(struct worker *w, int k, struct tp_error *err)
{
    struct lane *l = &w->lanes[k];
    l->w = w;
    l->index = k;
    l->msg_idx = mem_calloc((size_t)w->cfg->batch_max, sizeof(*l->msg_idx));
    l->pg = pg_conn_new(w->cfg->pg_conninfo, WORKER_PG_CONNECT_MS, err);
    if (l->pg == NULL) {
        return TP_FATAL;
    }
    l->rc = reconcile_new(l->pg, &w->settings, err);
    if (l->rc == NULL) {
        return TP_FATAL;
    }
    return k == 0 ? provenance_prepare(l->pg, err) : TP_OK;
}

static enum tp_status worker_open(struct worker *w, struct tp_error *err)
{
    static const char *const topics[] = {TOPIC_BANK_STATEMENT_RECORDS, TOPIC_TOPUP_REQUESTED,
                                         TOPIC_TOPUP_CANCELLED, TOPIC_TOPUP_EXPIRED};
    w->counters = counters_new(RECON_SERVICE, w->cfg->redis_host, (int)w->cfg->redis_port);
    for (int k = 0; k < w->nlanes; k++) {
        if (worker_open_lane(w, k, err) != TP_OK) {
            return TP_FATAL;
        }
    }
    w->relay = outbox_relay_new(RECON_SOURCE, w->cfg->pg_conninfo, (int)w->cfg->relay_poll_ms,
                                w->counters, err);
    if (w->relay == NULL || outbox_relay_start(w->relay, err) != TP_OK) {
        return TP_FATAL;
    }
    w->dlq = kafka_producer_new(RECON_SERVICE "-dlq", NULL, NULL, err);
    if (w->dlq == NULL) {
        return TP_FATAL;
    }
    w->consumer = kafka_consumer_new(w->cfg->group, topics, 4, err);
    if (w->consumer == NULL) {
        return TP_FATAL;
    }
    return TP_OK;
}

static void worker_close(struct worker *w)
{
    /* The consumer first: its final commit covers only what PostgreSQL already holds. */
    kafka_consumer_free(w->consumer);
    outbox_relay_free(w->relay);
    kafka_producer_free(w->dlq);
    for (int k = 0; k < w->nlanes; k++) {
        reconcile_free(w->lanes[k].rc);
        pg_conn_free(w->lanes[k].pg);
        free(w->lanes[k].msg_idx);
    }
    counters_free(w->counters);
    free(w->msgs);
    free(w->dec);
    free(w->ok);
    free(w->prov_idx);
    free(w->prov_digests);
    free(w->prov_imports);
}

int worker_run(const struct recon_config *cfg, const struct recon_accounts *accounts,
               const struct aging_calendar *calendar)
{
    static struct worker w; /* the lanes are large; one worker per process */
    memset(&w, 0, sizeof(w));
    w.cfg = cfg;
    w.accounts = accounts;
    w.nlanes = (int)cfg->tx_lanes;
    w.settings.matcher.early_days = (int)cfg->early_days;
    w.settings.review_after_business_days = (int)cfg->review_after_business_days;
    w.settings.calendar = calendar;
    w.settings.batch_max = (int)cfg->batch_max;
    w.msgs = mem_calloc((size_t)cfg->batch_max, sizeof(*w.msgs));
    w.dec = mem_calloc((size_t)cfg->batch_max, sizeof(*w.dec));
    w.ok = mem_calloc((size_t)cfg->batch_max, sizeof(*w.ok));
    w.prov_idx = mem_calloc((size_t)cfg->batch_max, sizeof(*w.prov_idx));
    w.prov_digests = mem_calloc((size_t)cfg->batch_max, sizeof(*w.prov_digests));
    w.prov_imports = mem_calloc((size_t)cfg->batch_max, sizeof(*w.prov_imports));
    w.settings.matcher.max_record_fen = cfg->max_record_fen;
    int code = 0;
    struct tp_error err = {0};
    if (worker_open(&w, &err) != TP_OK) {
        log_error("reconciliation could not start", LF_S("error", err.msg));
        code = 1;
        goto out;
    }
    log_info("reconciliation started", LF_S("group", cfg->group),
             LF_S("receiving_accounts", cfg->receiving_accounts), LF_I("batch_max", cfg->batch_max),
             LF_I("tx_lanes", cfg->tx_lanes));
    while (!signals_stop_requested()) {
        int n = kafka_consumer_poll_batch(w.consumer, w.msgs, (int)cfg->batch_max, WORKER_POLL_MS);
        if (n > 0) {
            enum tp_status st = worker_batch(&w, n);
            if (st != TP_OK && st != TP_RETRY) {
                code = 1;
                break;
            }
        }
        worker_tick(&w);
    }
    log_info("reconciliation stopping");
out:
    worker_close(&w);
    return code;
}
