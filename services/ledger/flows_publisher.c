/* account.flows: the flows table is its own outbox; one publisher per cluster, in id order. */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "ledger.h"
#include "topup/counters.h"
#include "topup/event.h"
#include "topup/kafka.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/pg.h"
#include "topup/signals.h"

/*
 * Leadership: a session advisory lock ("ledger" in ASCII), one active publisher per database. It
 * is checked every round in pg_locks, because a silent reconnect would have dropped it.
 */
#define FLOWS_PUBLISHER_LOCK_KEY "119165742885490"
/* The rows of ledger_flows_publisher and account_flows the publisher reads per round. */
/* A round whose deliveries take longer than this gives up; its rows are published again. */
#define FLOWS_PUBLISHER_DELIVERY_MAX_MS 60000
/* At shutdown, rounds continue this long at most. */
#define FLOWS_PUBLISHER_DRAIN_MAX_MS     10000
#define FLOWS_PUBLISHER_BACKLOG_EVERY_MS 5000

static const char flows_publisher_sql_lock[] =
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
    "AND pid = pg_backend_pid() AND granted AND objsubid = 1 "
    "AND ((classid::bigint << 32) | objid::bigint) = " FLOWS_PUBLISHER_LOCK_KEY ") "
    "THEN true ELSE pg_try_advisory_lock(" FLOWS_PUBLISHER_LOCK_KEY ") END";

static const char flows_publisher_sql_watermark[] =
    "SELECT published_upto FROM ledger_flows_publisher FOR UPDATE";

/*
 * The barrier: every ledger batch transaction holds LEDGER_FLOWS_BARRIER_KEY shared; taking it
 * exclusively waits for the ones running and, once held, no flow can appear below max(id) any
 * more (ids come from one sequence, taken inside those transactions). Held for one query only.
 */
static const char flows_publisher_sql_barrier[] =
    "SELECT pg_advisory_lock(" LEDGER_FLOWS_BARRIER_KEY ")";
static const char flows_publisher_sql_final[] = "SELECT COALESCE(max(id), 0) FROM account_flows";
static const char flows_publisher_sql_unbarrier[] =
    "SELECT pg_advisory_unlock(" LEDGER_FLOWS_BARRIER_KEY ")";

static const char flows_publisher_sql_select[] =
    "SELECT id, event_id, account_id, flow_type, amount_fen, balance_after_fen, reference, "
    "(extract(epoch FROM created_at) * 1000)::bigint FROM account_flows "
    "WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3";

static const char flows_publisher_sql_advance[] =
    "UPDATE ledger_flows_publisher SET published_upto = $1, updated_at = now()";

static const char flows_publisher_sql_backlog[] =
    "SELECT COALESCE((SELECT max(id) FROM account_flows), 0) - published_upto "
    "FROM ledger_flows_publisher";

enum flows_delivery { FLOWS_PENDING = 0, FLOWS_DELIVERED, FLOWS_FAILED };

struct flows_publisher {
    char *conninfo;
    int batch_max;
    int poll_ms;
    struct counters *counters;
    struct pg_conn *pg;
    struct kafka_producer *producer;
    enum flows_delivery *delivery; /* per row of the round in hand */
    int64_t *ids;

    pthread_mutex_t mu; /* guards kicked, stop */
    pthread_cond_t cv;
    bool kicked;
    bool stop;
    pthread_t thread;
    bool started;
    int64_t published_total;
};

static int64_t flows_publisher_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The event id of a flow's AccountFlowRecorded: a UUID (version 8, RFC 9562) derived from the
 * flow id, so a flow published again after a crash carries the same id and consumers dedupe it.
 */
static void flows_publisher_event_id(int64_t flow_id, char out[UUID_STR_LEN])
{
    char name[64];
    int n = snprintf(name, sizeof(name), "topup.account_flows/%" PRId64, flow_id);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(name, (size_t)n, md, &mdlen, EVP_sha256(), NULL);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 15];
    }
    out[o] = '\0';
}

static Topup__V1__FlowType flows_publisher_type(const char *t)
{
    if (strcmp(t, "recharge") == 0) {
        return TOPUP__V1__FLOW_TYPE__FLOW_TYPE_RECHARGE;
    }
    if (strcmp(t, "consume") == 0) {
        return TOPUP__V1__FLOW_TYPE__FLOW_TYPE_CONSUME;
    }
    return TOPUP__V1__FLOW_TYPE__FLOW_TYPE_REFUND;
}

static void flows_publisher_on_delivery(void *ctx, void *opaque, enum tp_status status,
                                        const char *reason)
{
    struct flows_publisher *p = ctx;
    intptr_t i = (intptr_t)opaque - 1;
    if (i < 0 || i >= p->batch_max) {
        return;
    }
    p->delivery[i] = status == TP_OK ? FLOWS_DELIVERED : FLOWS_FAILED;
    if (status != TP_OK) {
        log_warn("account flow not delivered; it will be published again",
                 LF_I("flow_id", p->ids[i]), LF_S("reason", reason != NULL ? reason : ""));
    }
}

/* Encodes row `row` of r and queues it; waits for room when the producer queue is full. */
static enum tp_status flows_publisher_send(struct flows_publisher *p, const PGresult *r, int row,
                                           struct tp_error *err)
{
    Topup__V1__Envelope env;
    topup__v1__envelope__init(&env);
    char event_id[UUID_STR_LEN];
    int64_t id = pg_get_i64(r, row, 0);
    int64_t created_ms = pg_get_i64(r, row, 7);
    flows_publisher_event_id(id, event_id);
    env.event_id = event_id;
    env.occurred_at_ms = created_ms;
    env.producer = "ledger";
    env.schema_version = EVENT_SCHEMA_VERSION;
    env.account_id = (char *)pg_get_str(r, row, 2);

    Topup__V1__AccountFlowRecorded m;
    topup__v1__account_flow_recorded__init(&m);
    m.envelope = &env;
    m.flow_id = id;
    m.flow_type = flows_publisher_type(pg_get_str(r, row, 3));
    m.amount_fen = pg_get_i64(r, row, 4);
    m.balance_after_fen = pg_get_i64(r, row, 5);
    m.reference = (char *)pg_get_str(r, row, 6);
    m.source_event_id = (char *)pg_get_str(r, row, 1);
    m.created_at_ms = created_ms;

    uint8_t buf[1024];
    size_t len = topup__v1__account_flow_recorded__get_packed_size(&m);
    if (len > sizeof(buf)) {
        return error_set(err, TP_FATAL, "flow %" PRId64 " encodes to %zu bytes", id, len);
    }
    topup__v1__account_flow_recorded__pack(&m, buf);
    enum tp_status st;
    for (;;) {
        st =
            kafka_producer_send(p->producer, TOPIC_ACCOUNT_FLOWS, env.account_id,
                                strlen(env.account_id), buf, len, (void *)(intptr_t)(row + 1), err);
        if (st != TP_RETRY) {
            break;
        }
        kafka_producer_poll(p->producer, 100); /* queue full: let deliveries drain */
    }
    return st;
}

/* Reads one bigint (first column of the first row) of an ad-hoc statement without parameters. */
static enum tp_status flows_publisher_i64(struct flows_publisher *p, const char *sql, int64_t *out,
                                          struct tp_error *err)
{
    PGresult *r = NULL;
    enum tp_status st = pg_exec(p->pg, sql, 0, NULL, &r, err);
    if (st == TP_OK) {
        if (PQntuples(r) != 1) {
            st = error_set(err, TP_FATAL, "%s: %d rows", sql, PQntuples(r));
        } else {
            *out = pg_get_i64(r, 0, 0);
        }
    }
    PQclear(r);
    return st;
}

/* The id below which every flow is committed for good (see the barrier above). */
static enum tp_status flows_publisher_final_id(struct flows_publisher *p, int64_t *out,
                                               struct tp_error *err)
{
    enum tp_status st = pg_exec(p->pg, flows_publisher_sql_barrier, 0, NULL, NULL, err);
    if (st != TP_OK) {
        return st; /* a lost connection took the session lock with it */
    }
    st = flows_publisher_i64(p, flows_publisher_sql_final, out, err);
    struct tp_error uerr;
    if (pg_exec(p->pg, flows_publisher_sql_unbarrier, 0, NULL, NULL, &uerr) != TP_OK &&
        st == TP_OK) {
        st = error_set(err, TP_RETRY, "barrier unlock: %s", uerr.msg);
    }
    return st;
}

/*
 * One round: make sure this instance is the publisher (session lock), learn the final id F (the
 * barrier), then in one transaction read the watermark W, produce up to batch_max flows with
 * W < id <= F in id order, wait for every delivery report, and move W past the acknowledged
 * prefix (to F when everything up to F is out: ids of rolled-back batches leave gaps that are
 * simply passed). Rows after a failed one go again, in order, next round. Returns the number
 * published (0 when another instance publishes).
 */
static enum tp_status flows_publisher_round(struct flows_publisher *p, int *published,
                                            struct tp_error *err)
{
    PGresult *r = NULL;
    *published = 0;
    int64_t upto = 0, final_id = 0;
    /* Outside any transaction: a failed statement can never leave the barrier held. */
    enum tp_status st = pg_exec(p->pg, flows_publisher_sql_lock, 0, NULL, &r, err);
    bool leader = st == TP_OK && strcmp(pg_get_str(r, 0, 0), "t") == 0;
    PQclear(r);
    r = NULL;
    if (!leader) {
        return st; /* another ledger instance publishes (or PostgreSQL is away) */
    }
    st = flows_publisher_final_id(p, &final_id, err);
    if (st != TP_OK) {
        return st;
    }
    st = pg_begin(p->pg, err);
    if (st != TP_OK) {
        return st;
    }
    /* FOR UPDATE: should leadership change hands mid-round, the two rounds still serialise. */
    st = flows_publisher_i64(p, flows_publisher_sql_watermark, &upto, err);
    if (st != TP_OK || final_id <= upto) {
        goto out;
    }
    char from[24], to[24], limit[16];
    snprintf(from, sizeof(from), "%" PRId64, upto);
    snprintf(to, sizeof(to), "%" PRId64, final_id);
    snprintf(limit, sizeof(limit), "%d", p->batch_max);
    const char *params[3] = {from, to, limit};
    st = pg_exec_prepared(p->pg, "ledger_flows_unpublished", 3, params, &r, err);
    if (st != TP_OK) {
        goto out;
    }
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        p->ids[i] = pg_get_i64(r, i, 0);
        p->delivery[i] = FLOWS_PENDING;
    }
    int sent = 0;
    for (; sent < n && st == TP_OK; sent++) {
        st = flows_publisher_send(p, r, sent, err);
    }
    for (int i = sent; i < n; i++) {
        p->delivery[i] = FLOWS_FAILED;
    }
    int64_t deadline = flows_publisher_now_ms() + FLOWS_PUBLISHER_DELIVERY_MAX_MS;
    while (kafka_producer_outstanding(p->producer) > 0 && flows_publisher_now_ms() < deadline) {
        kafka_producer_poll(p->producer, 50);
    }
    if (kafka_producer_outstanding(p->producer) > 0) {
        /* Reports still due would land on a later round's rows: start from a fresh producer. */
        log_warn("account flow deliveries unreported; recreating the producer",
                 LF_I("outstanding", kafka_producer_outstanding(p->producer)));
        for (int i = 0; i < n; i++) {
            p->delivery[i] = FLOWS_FAILED;
        }
        kafka_producer_free(p->producer);
        struct tp_error perr;
        p->producer = kafka_producer_new("ledger-flows", flows_publisher_on_delivery, p, &perr);
    }
    int k = 0;
    while (k < n && p->delivery[k] == FLOWS_DELIVERED) {
        k++;
    }
    int64_t next = k == n && n < p->batch_max ? final_id : (k > 0 ? p->ids[k - 1] : upto);
    if (next > upto) {
        char v[24];
        snprintf(v, sizeof(v), "%" PRId64, next);
        const char *ap[1] = {v};
        enum tp_status ast = pg_exec_prepared(p->pg, "ledger_flows_advance", 1, ap, NULL, err);
        if (st == TP_OK) {
            st = ast;
        }
    }
    *published = k;
out:
    PQclear(r);
    if (st == TP_OK) {
        st = pg_commit(p->pg, err);
    } else {
        pg_rollback(p->pg);
    }
    if (st != TP_OK) {
        *published = 0;
    }
    return st;
}

static void flows_publisher_backlog(struct flows_publisher *p)
{
    PGresult *r = NULL;
    struct tp_error err;
    if (pg_exec(p->pg, flows_publisher_sql_backlog, 0, NULL, &r, &err) == TP_OK) {
        counters_gauge(p->counters, "flows.backlog", pg_get_i64(r, 0, 0));
    }
    PQclear(r);
}

/* Waits up to ms or until kicked/stopped. */
static void flows_publisher_wait(struct flows_publisher *p, int ms)
{
    pthread_mutex_lock(&p->mu);
    if (!p->kicked && !p->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += ms / 1000;
        until.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
    }
    p->kicked = false;
    pthread_mutex_unlock(&p->mu);
}

static bool flows_publisher_stopping(struct flows_publisher *p)
{
    pthread_mutex_lock(&p->mu);
    bool s = p->stop;
    pthread_mutex_unlock(&p->mu);
    return s;
}

static void *flows_publisher_main(void *arg)
{
    struct flows_publisher *p = arg;
    int64_t next_backlog = 0;
    int64_t drain_until = 0;
    for (;;) {
        bool stopping = flows_publisher_stopping(p);
        if (stopping && drain_until == 0) {
            drain_until = flows_publisher_now_ms() + FLOWS_PUBLISHER_DRAIN_MAX_MS;
        }
        int published = 0;
        struct tp_error err = {0};
        if (p->producer == NULL) {
            p->producer = kafka_producer_new("ledger-flows", flows_publisher_on_delivery, p, &err);
        }
        enum tp_status st = p->producer != NULL ? flows_publisher_round(p, &published, &err)
                                                : error_set(&err, TP_RETRY, "no producer");
        if (st != TP_OK) {
            log_warn("account flows round failed; retrying", LF_S("error", err.msg));
        }
        if (published > 0) {
            p->published_total += published;
            counters_incr(p->counters, "flows.published", published);
        }
        int64_t now = flows_publisher_now_ms();
        if (now >= next_backlog) {
            flows_publisher_backlog(p);
            next_backlog = now + FLOWS_PUBLISHER_BACKLOG_EVERY_MS;
        }
        if (stopping && (published < p->batch_max || now >= drain_until)) {
            break; /* drained what the last batch committed, or ran out of time */
        }
        if (published < p->batch_max) {
            flows_publisher_wait(p, st == TP_OK ? p->poll_ms : 1000);
        }
    }
    log_info("account flows publisher stopped", LF_I("published", p->published_total));
    return NULL;
}

struct flows_publisher *flows_publisher_new(const char *conninfo, int batch_max, int poll_ms,
                                            struct counters *counters, struct tp_error *err)
{
    struct flows_publisher *p = mem_calloc(1, sizeof(*p));
    p->conninfo = mem_strdup(conninfo);
    p->batch_max = batch_max;
    p->poll_ms = poll_ms;
    p->counters = counters;
    p->delivery = mem_calloc((size_t)batch_max, sizeof(*p->delivery));
    p->ids = mem_calloc((size_t)batch_max, sizeof(*p->ids));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->pg = pg_conn_new(conninfo, 30000, err);
    if (p->pg == NULL ||
        pg_prepare(p->pg, "ledger_flows_unpublished", flows_publisher_sql_select, 3, err) !=
            TP_OK ||
        pg_prepare(p->pg, "ledger_flows_advance", flows_publisher_sql_advance, 1, err) != TP_OK) {
        goto fail;
    }
    p->producer = kafka_producer_new("ledger-flows", flows_publisher_on_delivery, p, err);
    if (p->producer == NULL) {
        goto fail;
    }
    return p;
fail:
    flows_publisher_free(p);
    return NULL;
}

enum tp_status flows_publisher_start(struct flows_publisher *p, struct tp_error *err)
{
    if (pthread_create(&p->thread, NULL, flows_publisher_main, p) != 0) {
        return error_set(err, TP_FATAL, "cannot start the account flows publisher thread");
    }
    p->started = true;
    return TP_OK;
}

void flows_publisher_kick(struct flows_publisher *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->kicked = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void flows_publisher_free(struct flows_publisher *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->started) {
        pthread_join(p->thread, NULL);
    }
    kafka_producer_free(p->producer);
    pg_conn_free(p->pg);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->delivery);
    free(p->ids);
    free(p->conninfo);
    free(p);
}
