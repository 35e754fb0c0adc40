/* ledger: wires configuration, PostgreSQL, Kafka, Redis and the publisher to the consume loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "topup/config.h"
#include "topup/counters.h"
#include "topup/kafka.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/pg.h"
#include "topup/redis.h"
#include "topup/signals.h"

#define LEDGER_PG_CONNECT_TIMEOUT_MS 30000
/* Consumer prefetch bound (librdkafka queued.max.messages.kbytes) unless KAFKA_ sets it. */
#define LEDGER_PREFETCH_KBYTES "12288"

static struct ledger ledger;

static const struct config_def ledger_config_defs[] = {
    {"LEDGER_GROUP", CONFIG_STR, "ledger", 0, 200, "Kafka consumer group of the ledger instances",
     &ledger.cfg.group},
    {"LEDGER_BATCH_MAX", CONFIG_INT, "1000", 1, LEDGER_BATCH_HARD_MAX,
     "most events applied in one PostgreSQL transaction", &ledger.cfg.batch_max},
    {"LEDGER_BATCH_WAIT_MS", CONFIG_INT, "100", 1, 10000,
     "longest wait for the first event of a batch (a batch takes what is there, then goes)",
     &ledger.cfg.batch_wait_ms},
    {"LEDGER_TX_ATTEMPTS", CONFIG_INT, "5", 1, 100,
     "attempts of a batch transaction on serialization failures and lost connections before "
     "backing off (the batch is retried until it commits)",
     &ledger.cfg.tx_attempts},
    {"LEDGER_DLQ_TIMEOUT_MS", CONFIG_INT, "10000", 100, 600000,
     "wait for a dead letter's acknowledgement before trying again", &ledger.cfg.dlq_timeout_ms},
    {"LEDGER_PUBLISH_BATCH_MAX", CONFIG_INT, "1000", 1, LEDGER_BATCH_HARD_MAX,
     "most account flows published to account.flows per round", &ledger.cfg.publish_batch_max},
    {"LEDGER_PUBLISH_POLL_MS", CONFIG_INT, "200", 10, 60000,
     "publisher round interval when not woken by a commit (e.g. on the standby instance)",
     &ledger.cfg.publish_poll_ms},
    {"LEDGER_CACHE_PENDING_MAX", CONFIG_INT, "8192", 16, 1000000,
     "accounts whose balance may wait for Redis; beyond it updates are dropped (cache.dropped)",
     &ledger.cfg.cache_pending_max},
    {"LEDGER_CACHE_TTL_S", CONFIG_INT, "86400", 0, 31536000,
     "expiry of a cached balance (0: none); a missing key means read PostgreSQL",
     &ledger.cfg.cache_ttl_s},
    {"LEDGER_CACHE_KEY_PREFIX", CONFIG_STR, BALANCE_CACHE_KEY_PREFIX, 1, BALANCE_CACHE_PREFIX_MAX,
     "Redis key prefix of cached balances (<prefix><account>), e.g. per environment",
     &ledger.cfg.cache_key_prefix},
    {"LEDGER_MAX_RECHARGE_FEN", CONFIG_INT, "100000000", 1, 100000000000,
     "largest credit of one PaymentMatched (100000000 = 1,000,000.00 CNY, the largest order); "
     "above it: refused and dead-lettered (refused.ceiling), never credited",
     &ledger.cfg.limits.recharge_max},
    {"LEDGER_MAX_USAGE_FEN", CONFIG_INT, "1000000", 1, 100000000000,
     "largest deduction of one UsageRecorded (1000000 = 10,000.00 CNY); above it: refused",
     &ledger.cfg.limits.usage_max},
    {"LEDGER_MAX_REFUND_FEN", CONFIG_INT, "100000000", 1, 100000000000,
     "largest amount of one RefundIssued, either sign (100000000 = 1,000,000.00 CNY); above it: "
     "refused",
     &ledger.cfg.limits.refund_max},
    {"LEDGER_REFUND_WAIT_S", CONFIG_INT, "86400", 1, 2592000,
     "how long a usage refund waits for the usage it names (usage.recorded is another topic, so "
     "it may come later) before it is refused (refused.provenance); meanwhile it is credited "
     "nothing",
     &ledger.cfg.limits.refund_wait_s},
    {"LEDGER_REFUND_SWEEP_MS", CONFIG_INT, "10000", 100, 86400000,
     "how often waiting usage refunds are decided without an event on their account: applied "
     "once their usage is charged, refused once LEDGER_REFUND_WAIT_S is over",
     &ledger.cfg.refund_sweep_ms},
    {"PG_CONNINFO", CONFIG_STR, "host=127.0.0.1 port=55432 dbname=topup user=topup", 0, 0,
     "PostgreSQL connection string", &ledger.cfg.pg_conninfo},
    {"REDIS_HOST", CONFIG_STR, "127.0.0.1", 0, 255, "Redis for counters and the balance cache",
     &ledger.cfg.redis_host},
    {"REDIS_PORT", CONFIG_INT, "56379", 1, 65535, "Redis port", &ledger.cfg.redis_port},
    REDIS_AUTH_CONFIG_ROWS,
    {"LOG_LEVEL", CONFIG_STR, "info", 0, 10, "debug, info, warn or error", &ledger.cfg.log_level},
    {0},
};

static const char *const ledger_topics[] = {TOPIC_PAYMENT_MATCHED, TOPIC_USAGE_RECORDED,
                                            TOPIC_REFUND_ISSUED};

static int ledger_usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--help-config]\n"
            "Consumes payment.matched, usage.recorded and refund.issued; writes balances and\n"
            "account flows; publishes account.flows. Configuration from the environment\n"
            "(KAFKA_* pass to librdkafka); --help-config prints the table.\n",
            argv0);
    return 2;
}

static enum tp_status ledger_open(struct ledger *l, struct tp_error *err)
{
    l->counters = counters_new("ledger", l->cfg.redis_host, (int)l->cfg.redis_port);
    l->pg = pg_conn_new(l->cfg.pg_conninfo, LEDGER_PG_CONNECT_TIMEOUT_MS, err);
    if (l->pg == NULL) {
        return TP_FATAL;
    }
    enum tp_status st = apply_prepare(l->pg, err);
    if (st != TP_OK) {
        return st;
    }
    l->dlq = kafka_producer_new("ledger-dlq", NULL, NULL, err);
    if (l->dlq == NULL) {
        return TP_FATAL;
    }
    l->publisher = flows_publisher_new(l->cfg.pg_conninfo, (int)l->cfg.publish_batch_max,
                                       (int)l->cfg.publish_poll_ms, l->counters, err);
    if (l->publisher == NULL) {
        return TP_FATAL;
    }
    st = flows_publisher_start(l->publisher, err);
    if (st != TP_OK) {
        return st;
    }
    l->cache = balance_cache_new(l->cfg.redis_host, (int)l->cfg.redis_port, l->cfg.cache_key_prefix,
                                 (size_t)l->cfg.cache_pending_max, (int)l->cfg.cache_ttl_s,
                                 l->cfg.pg_conninfo, l->counters);
    batch_init(&l->batch, (int)l->cfg.batch_max, &l->cfg.limits);
    batch_init(&l->single, 1, &l->cfg.limits);
    l->msgs = mem_calloc((size_t)l->cfg.batch_max, sizeof(*l->msgs));
    l->sources = mem_calloc((size_t)l->cfg.batch_max, sizeof(*l->sources));
    /*
     * librdkafka prefetches up to 64 MiB by default, which after a long pause (a backlog) would
     * be held in memory on top of the ledger's own. A smaller bound still keeps more than a second
     * of work queued, so the fetcher's pause at the bound never starves the loop. Set here,
     * after the producers exist (a consumer property), and only when the operator did not.
     */
    setenv("KAFKA_QUEUED_MAX_MESSAGES_KBYTES", LEDGER_PREFETCH_KBYTES, 0);
    /* Last: joining the group starts the deliveries. */
    l->consumer = kafka_consumer_new(l->cfg.group, ledger_topics, 3, err);
    return l->consumer != NULL ? TP_OK : TP_FATAL;
}

/* Shutdown order: offsets first (the batch in hand is committed), then flows, cache, counters. */
static void ledger_close(struct ledger *l)
{
    kafka_consumer_free(l->consumer);
    flows_publisher_free(l->publisher);
    balance_cache_free(l->cache);
    kafka_producer_free(l->dlq);
    pg_conn_free(l->pg);
    if (l->batch.items != NULL) {
        batch_deinit(&l->batch);
        batch_deinit(&l->single);
    }
    free(l->msgs);
    free(l->sources);
    counters_free(l->counters);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--help-config") == 0) {
        config_print_table(ledger_config_defs, stdout);
        return 0;
    }
    if (argc != 1) {
        return ledger_usage(argv[0]);
    }
    log_init("ledger");
    signals_install();
    struct tp_error err = {0};
    if (config_load(ledger_config_defs, &err) != TP_OK) {
        log_error("configuration invalid", LF_S("error", err.msg));
        return 2;
    }
    int rc = 0;
    if (ledger_open(&ledger, &err) != TP_OK) {
        log_error("ledger cannot start", LF_S("error", err.msg));
        rc = 1;
        goto out;
    }
    log_info("ledger started", LF_S("group", ledger.cfg.group),
             LF_I("batch_max", ledger.cfg.batch_max),
             LF_I("batch_wait_ms", ledger.cfg.batch_wait_ms));
    worker_run(&ledger);
    log_info("ledger stopping: batch in hand done, committing offsets");
out:
    ledger_close(&ledger);
    if (rc == 0) {
        worker_log_stats(&ledger, "ledger stopped");
    }
    return rc;
}
