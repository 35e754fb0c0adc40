/* The ledger's consume loop: poll a bounded batch, dead-letter, apply, acknowledge after commit. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ledger.h"
#include "topup/counters.h"
#include "topup/kafka.h"
#include "topup/log.h"
#include "topup/pg.h"
#include "topup/signals.h"

#define WORKER_BACKOFF_MIN_MS 100
#define WORKER_BACKOFF_MAX_MS 5000
#define WORKER_FLUSH_EVERY_MS 1000
#define WORKER_STATS_EVERY_MS 10000
/* A sweep of waiting usage refunds: accounts per transaction, transactions per sweep at most (the
 * next sweep goes on; between its transactions the loop is not polling). */
#define WORKER_SWEEP_ACCOUNTS_MAX 100
#define WORKER_SWEEP_ROUNDS_MAX   20

static int64_t worker_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms in short slices; false when a stop was requested meanwhile. */
static bool worker_sleep(int64_t ms)
{
    int64_t until = worker_now_ms() + ms;
    while (!signals_stop_requested()) {
        int64_t left = until - worker_now_ms();
        if (left <= 0) {
            return true;
        }
        struct timespec ts = {0, (left > 50 ? 50 : left) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

static int64_t worker_backoff_next(int64_t b)
{
    return b * 2 > WORKER_BACKOFF_MAX_MS ? WORKER_BACKOFF_MAX_MS : b * 2;
}

/* Sends msg to its .dlq twin; retries until acknowledged. False only when stopping. */
static bool worker_dead_letter(struct ledger *l, const struct kafka_message *msg,
                               const char *reason)
{
    int64_t backoff = WORKER_BACKOFF_MIN_MS;
    for (;;) {
        struct tp_error err = {0};
        enum tp_status st =
            kafka_dead_letter(l->dlq, msg, reason, (int)l->cfg.dlq_timeout_ms, &err);
        if (st == TP_OK) {
            counters_incr(l->counters, "dlq", 1);
            return true;
        }
        log_error("dead letter failed; retrying before the offset moves", LF_S("topic", msg->topic),
                  LF_I("partition", msg->partition), LF_I("offset", msg->offset),
                  LF_S("error", err.msg));
        if (!worker_sleep(backoff)) {
            return false;
        }
        backoff = worker_backoff_next(backoff);
    }
}

/* Decodes the polled messages into l->batch; invalid ones carry their reason. */
static void worker_decode(struct ledger *l, int n)
{
    batch_reset(&l->batch);
    for (int i = 0; i < n; i++) {
        const struct kafka_message *m = &l->msgs[i];
        struct batch_item *it = batch_add(&l->batch);
        struct tp_error err = {0};
        it->msg_index = i;
        l->sources[i] = (struct apply_source){m->topic, m->partition, m->offset};
        if (decode_message(m->topic, m->key, m->key_len, m->payload, m->len, &it->ev, &err) !=
            TP_OK) {
            it->outcome = BATCH_INVALID;
            snprintf(it->reason, sizeof(it->reason), "%.*s", LEDGER_REASON_MAX - 1, err.msg);
        }
    }
}

static void worker_count_commit(struct ledger *l, int64_t ms, int size)
{
    static const struct {
        int64_t le;
        const char *name;
    } buckets[] = {{10, "commit_ms.le_10"},
                   {50, "commit_ms.le_50"},
                   {250, "commit_ms.le_250"},
                   {1000, "commit_ms.le_1000"},
                   {INT64_MAX, "commit_ms.gt_1000"}};
    l->stats.commit_hist[ms < LEDGER_COMMIT_HIST_MS ? ms : LEDGER_COMMIT_HIST_MS]++;
    counters_gauge(l->counters, "commit_ms", ms);
    counters_gauge(l->counters, "batch_size", size);
    counters_incr(l->counters, "batches", 1);
    for (size_t i = 0; i < sizeof(buckets) / sizeof(buckets[0]); i++) {
        if (ms <= buckets[i].le) {
            counters_incr(l->counters, buckets[i].name, 1);
            break;
        }
    }
}

/*
 * What follows a commit of b: rejected events to the DLQ (they are in ledger_rejections already,
 * so a crash here only repeats the dead letter), counters, the balance cache, the publisher.
 * False when stopping before every dead letter was acknowledged.
 */
static bool worker_after_commit(struct ledger *l, struct batch *b)
{
    for (int i = 0; i < b->n; i++) {
        const struct batch_item *it = &b->items[i];
        if (it->outcome == BATCH_REJECT) {
            log_warn("money event rejected", LF_S("event_id", it->ev.event_id),
                     LF_S("account", it->ev.account_id), LF_S("reference", it->ev.reference),
                     LF_S("type", ledger_flow_type_name(it->ev.type)),
                     LF_I("amount_fen", it->ev.amount_fen),
                     LF_S("refusal", batch_refusal_name(it->refusal)), LF_S("reason", it->reason));
            if (!it->rejected_before && it->refusal != BATCH_REFUSED_STATE) {
                /* refused.provenance, refused.ceiling, refused.conflict: each must stay 0. */
                char name[32];
                snprintf(name, sizeof(name), "refused.%s", batch_refusal_name(it->refusal));
                counters_incr(l->counters, name, 1);
            }
            /* A waiting refund's message was acknowledged when it began to wait: its refusal is
             * in ledger_rejections with that message's offset, and in the log. */
            if (!it->from_pending && !worker_dead_letter(l, &l->msgs[it->msg_index], it->reason)) {
                return false;
            }
        } else if (it->outcome == BATCH_DEFER && !it->from_pending) {
            log_info("usage refund waits for the usage it names", LF_S("event_id", it->ev.event_id),
                     LF_S("account", it->ev.account_id), LF_S("refund", it->ev.reference),
                     LF_S("usage", it->ev.refund_of), LF_I("amount_fen", it->ev.amount_fen));
            counters_incr(l->counters, "refund.deferred", 1);
        } else if (it->outcome == BATCH_APPLY && it->order_not_processing) {
            log_warn("recharge credited to an order that is not in processing; order left as is",
                     LF_S("order", it->ev.reference), LF_S("account", it->ev.account_id),
                     LF_S("event_id", it->ev.event_id), LF_I("amount_fen", it->ev.amount_fen));
            counters_incr(l->counters, "recharge.order_not_processing", 1);
        }
    }
    static const char *const applied_names[] = {NULL, "applied.recharge", "applied.consume",
                                                "applied.refund"};
    int applied = 0;
    for (int t = LEDGER_FLOW_RECHARGE; t <= LEDGER_FLOW_REFUND; t++) {
        if (b->applied[t] > 0) {
            counters_incr(l->counters, applied_names[t], b->applied[t]);
            applied += b->applied[t];
        }
    }
    if (b->duplicates > 0) {
        counters_incr(l->counters, "duplicates", b->duplicates);
    }
    if (b->rejects > 0) {
        counters_incr(l->counters, "rejected", b->rejects);
    }
    l->stats.applied += applied;
    l->stats.duplicates += b->duplicates;
    l->stats.rejected += b->rejects;
    for (int i = 0; i < b->n_accounts; i++) {
        const struct batch_account *a = &b->accounts[i];
        if (a->flows > 0) {
            balance_cache_put(l->cache, a->account_id, a->new_balance_fen, a->new_version);
        }
    }
    if (applied > 0) {
        flows_publisher_kick(l->publisher);
    }
    return true;
}

/* Applies b, retrying with backoff; TP_OK, TP_INVALID (PostgreSQL refuses its data) or stop. */
static enum tp_status worker_apply(struct ledger *l, struct batch *b, int64_t *ms_out,
                                   struct tp_error *err)
{
    int64_t backoff = WORKER_BACKOFF_MIN_MS;
    for (;;) {
        int64_t t0 = worker_now_ms();
        enum tp_status st = apply_batch(l->pg, b, l->sources, (int)l->cfg.tx_attempts, err);
        *ms_out = worker_now_ms() - t0;
        if (st == TP_OK) {
            return st;
        }
        if (st == TP_INVALID) {
            log_error("PostgreSQL refused the batch's data", LF_I("events", b->n),
                      LF_S("error", err->msg));
            return st;
        }
        log_error("ledger batch not committed; retrying", LF_I("events", b->n),
                  LF_S("status", error_status_name(st)), LF_S("error", err->msg));
        if (!worker_sleep(backoff)) {
            return TP_RETRY;
        }
        backoff = worker_backoff_next(backoff);
    }
}

static void worker_log_batch(const struct ledger *l, const struct batch *b, int64_t ms)
{
    int applied = b->applied[LEDGER_FLOW_RECHARGE] + b->applied[LEDGER_FLOW_CONSUME] +
                  b->applied[LEDGER_FLOW_REFUND];
    enum log_level level =
        b->duplicates > 0 || b->rejects > 0 || b->invalid > 0 ? LOG_INFO : LOG_DEBUG;
    const struct log_field f[] = {LF_I("events", b->n),
                                  LF_I("applied", applied),
                                  LF_I("duplicates", b->duplicates),
                                  LF_I("rejected", b->rejects),
                                  LF_I("invalid", b->invalid),
                                  LF_I("commit_ms", ms)};
    (void)l;
    log_write(level, "ledger batch committed", f, (int)(sizeof(f) / sizeof(f[0])));
}

/*
 * A batch PostgreSQL refused as a whole (a value no validation foresaw): apply it one event at a
 * time, in order, and dead-letter the events refused on their own, so the partition moves on.
 */
static bool worker_apply_singly(struct ledger *l)
{
    struct batch *b = &l->batch;
    int64_t total_ms = 0;
    memset(b->applied, 0, sizeof(b->applied));
    b->duplicates = b->rejects = b->invalid = 0;
    for (int i = 0; i < l->batch.n; i++) {
        struct batch_item *orig = &l->batch.items[i];
        if (orig->outcome == BATCH_INVALID) {
            b->invalid++;
            continue;
        }
        batch_reset(&l->single);
        struct batch_item *it = batch_add(&l->single);
        it->ev = orig->ev;
        it->msg_index = orig->msg_index;
        int64_t ms = 0;
        struct tp_error err = {0};
        enum tp_status st = worker_apply(l, &l->single, &ms, &err);
        if (st == TP_INVALID) {
            orig->outcome = BATCH_INVALID;
            snprintf(orig->reason, sizeof(orig->reason), "refused by PostgreSQL: %.200s", err.msg);
            l->stats.invalid++;
            b->invalid++;
            if (!worker_dead_letter(l, &l->msgs[orig->msg_index], orig->reason)) {
                return false;
            }
            continue;
        }
        if (st != TP_OK) {
            return false;
        }
        worker_count_commit(l, ms, 1);
        total_ms += ms;
        for (int t = LEDGER_FLOW_RECHARGE; t <= LEDGER_FLOW_REFUND; t++) {
            b->applied[t] += l->single.applied[t];
        }
        b->duplicates += l->single.duplicates;
        b->rejects += l->single.rejects;
        if (!worker_after_commit(l, &l->single)) {
            return false;
        }
    }
    worker_log_batch(l, b, total_ms);
    return true;
}

/* One polled batch, start to end. True when every message may be acknowledged. */
static bool worker_handle(struct ledger *l, int n)
{
    worker_decode(l, n);
    for (int i = 0; i < l->batch.n; i++) {
        struct batch_item *it = &l->batch.items[i];
        if (it->outcome == BATCH_INVALID) {
            l->stats.invalid++;
            if (!worker_dead_letter(l, &l->msgs[it->msg_index], it->reason)) {
                return false;
            }
        }
    }
    int64_t ms = 0;
    struct tp_error err = {0};
    enum tp_status st = worker_apply(l, &l->batch, &ms, &err);
    if (st == TP_INVALID) {
        return worker_apply_singly(l);
    }
    if (st != TP_OK) {
        return false;
    }
    worker_count_commit(l, ms, n);
    worker_log_batch(l, &l->batch, ms);
    return worker_after_commit(l, &l->batch);
}

/*
 * Decides the waiting usage refunds that no event on their account would read back: more than a
 * batch takes (LEDGER_PENDING_PER_BATCH), or whose usage never comes and whose wait is over. Each
 * round is one transaction under the batch's rules (apply_sweep); an error leaves the refunds
 * waiting for the next sweep. Uses l->batch, free between polls.
 */
static void worker_sweep(struct ledger *l)
{
    struct batch *b = &l->batch;
    for (int round = 0; round < WORKER_SWEEP_ROUNDS_MAX && !signals_stop_requested(); round++) {
        struct tp_error err = {0};
        int64_t t0 = worker_now_ms();
        enum tp_status st =
            apply_sweep(l->pg, b, WORKER_SWEEP_ACCOUNTS_MAX, (int)l->cfg.tx_attempts, &err);
        if (st != TP_OK) {
            log_error("refund sweep not committed; the refunds wait for the next sweep",
                      LF_S("status", error_status_name(st)), LF_S("error", err.msg));
            return;
        }
        if (b->n == 0) {
            return;
        }
        int decided = 0;
        for (int i = 0; i < b->n; i++) {
            const struct batch_item *it = &b->items[i];
            if (it->outcome == BATCH_APPLY || (it->outcome == BATCH_REJECT && !it->conflict)) {
                decided++;
            }
        }
        worker_count_commit(l, worker_now_ms() - t0, b->n);
        log_info("waiting usage refunds decided by the sweep", LF_I("refunds", b->n),
                 LF_I("applied", b->applied[LEDGER_FLOW_REFUND]), LF_I("rejected", b->rejects),
                 LF_I("still_waiting", b->deferred), LF_I("accounts", b->n_accounts),
                 LF_I("commit_ms", worker_now_ms() - t0));
        counters_incr(l->counters, "refund.swept", decided);
        if (!worker_after_commit(l, b) || decided == 0) {
            return;
        }
    }
}

static int64_t worker_percentile(const struct ledger_stats *s, int pct)
{
    int64_t total = 0;
    for (int i = 0; i <= LEDGER_COMMIT_HIST_MS; i++) {
        total += s->commit_hist[i];
    }
    if (total == 0) {
        return 0;
    }
    int64_t rank = (total * pct + 99) / 100, seen = 0;
    for (int i = 0; i <= LEDGER_COMMIT_HIST_MS; i++) {
        seen += s->commit_hist[i];
        if (seen >= rank) {
            return i;
        }
    }
    return LEDGER_COMMIT_HIST_MS;
}

void worker_log_stats(const struct ledger *l, const char *msg)
{
    const struct ledger_stats *s = &l->stats;
    log_info(msg, LF_I("batches", s->batches), LF_I("messages", s->messages),
             LF_I("applied", s->applied), LF_I("duplicates", s->duplicates),
             LF_I("rejected", s->rejected), LF_I("invalid", s->invalid),
             LF_I("commit_ms_p50", worker_percentile(s, 50)),
             LF_I("commit_ms_p99", worker_percentile(s, 99)),
             LF_I("commit_ms_max", worker_percentile(s, 100)));
}

void worker_run(struct ledger *l)
{
    int64_t next_flush = worker_now_ms() + WORKER_FLUSH_EVERY_MS;
    int64_t next_stats = worker_now_ms() + WORKER_STATS_EVERY_MS;
    int64_t next_sweep = worker_now_ms() + l->cfg.refund_sweep_ms;
    while (!signals_stop_requested()) {
        int n = kafka_consumer_poll_batch(l->consumer, l->msgs, (int)l->cfg.batch_max,
                                          (int)l->cfg.batch_wait_ms);
        if (n > 0) {
            l->stats.batches++;
            l->stats.messages += n;
            if (worker_handle(l, n)) {
                kafka_consumer_store(l->consumer, l->msgs, n);
            } else {
                log_warn("stopping with a batch not acknowledged; it will be redelivered",
                         LF_I("events", n));
            }
            kafka_consumer_release(l->consumer, l->msgs, n);
        }
        int64_t now = worker_now_ms();
        if (now >= next_flush) {
            counters_flush(l->counters);
            next_flush = now + WORKER_FLUSH_EVERY_MS;
        }
        if (now >= next_stats) {
            worker_log_stats(l, "ledger stats");
            next_stats = now + WORKER_STATS_EVERY_MS;
        }
        if (now >= next_sweep) {
            worker_sweep(l);
            next_sweep = worker_now_ms() + l->cfg.refund_sweep_ms;
        }
    }
}
