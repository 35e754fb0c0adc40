/* reconciliation: matches bank statement records to top-up orders (see README.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aging.h"
#include "recon.h"
#include "topup/config.h"
#include "topup/log.h"
#include "topup/redis.h"
#include "topup/signals.h"

/*
 * librdkafka prefetches up to 64 MiB per consumer by default; the worker's memory target is
 * 64 MiB in all, so unless the operator says otherwise the prefetch queue is bounded to this.
 */
#define MAIN_KAFKA_QUEUE_KBYTES "8192"

static struct recon_config cfg;

static const struct config_def defs[] = {
    {"RECON_GROUP", CONFIG_STR, "reconciliation", 0, 200, "Kafka consumer group", &cfg.group},
    {"RECON_RECEIVING_ACCOUNTS", CONFIG_STR, "121909510710001", 0, 4000,
     "our receiving account numbers, comma-separated (spaces ignored); other records are ignored",
     &cfg.receiving_accounts},
    {"RECON_EARLY_DAYS", CONFIG_INT, "3", 0, 30,
     "rule 2: a transfer's value date may precede its order's creation date by this many days",
     &cfg.early_days},
    {"RECON_REVIEW_AFTER_BUSINESS_DAYS", CONFIG_INT, "3", 1, 60,
     "an unmatched record goes to review once it waited more business days than this",
     &cfg.review_after_business_days},
    {"RECON_HOLIDAYS_FILE", CONFIG_STR, "", 0, 4096,
     "bank holidays, one YYYY-MM-DD a line (\"YYYY-MM-DD workday\": a worked weekend day)",
     &cfg.holidays_file},
    {"RECON_AGING_SWEEP_MS", CONFIG_INT, "60000", 100, 86400000,
     "how often unmatched records are re-examined and aged", &cfg.aging_sweep_ms},
    {"RECON_BATCH_MAX", CONFIG_INT, "2000", 1, RECON_BATCH_HARD_MAX,
     "messages per poll and per transaction", &cfg.batch_max},
    {"RECON_TX_LANES", CONFIG_INT, "2", 1, RECON_LANES_MAX,
     "parallel transactions per batch, one PostgreSQL connection each", &cfg.tx_lanes},
    {"RECON_MAX_RECORD_FEN", CONFIG_INT, "100000000", 1, 100000000000,
     "largest transfer matched automatically (100000000 = 1,000,000.00 CNY, as "
     "LEDGER_MAX_RECHARGE_FEN); above it: review above_ceiling, never matched by a rule",
     &cfg.max_record_fen},
    {"RECON_RELAY_POLL_MS", CONFIG_INT, "1000", 10, 60000,
     "outbox relay: poll interval besides its NOTIFY wake-ups", &cfg.relay_poll_ms},
    {"PG_CONNINFO", CONFIG_STR, "host=127.0.0.1 port=55432 dbname=topup user=topup", 0, 4096,
     "PostgreSQL connection string", &cfg.pg_conninfo},
    {"REDIS_HOST", CONFIG_STR, "127.0.0.1", 0, 255, "Redis for the counters", &cfg.redis_host},
    {"REDIS_PORT", CONFIG_INT, "56379", 1, 65535, "Redis port", &cfg.redis_port},
    REDIS_AUTH_CONFIG_ROWS,
    {0},
};

static void main_usage(FILE *out)
{
    fprintf(out,
            "usage: reconciliation [--help | --help-config]\n"
            "Consumes bank.statement.records and topup.requested/cancelled/expired, matches\n"
            "transfers to pending orders and publishes payment.matched through the outbox.\n"
            "Configuration from the environment (--help-config); KAFKA_* pass to librdkafka.\n");
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "--help-config") == 0) {
            config_print_table(defs, stdout);
            return 0;
        }
        main_usage(strcmp(argv[1], "--help") == 0 ? stdout : stderr);
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    log_init(RECON_SERVICE);
    struct tp_error err = {0};
    static struct recon_accounts accounts;
    static struct aging_calendar calendar;
    aging_calendar_init(&calendar);
    if (config_load(defs, &err) != TP_OK ||
        recon_accounts_parse(cfg.receiving_accounts, &accounts, &err) != TP_OK ||
        (cfg.holidays_file[0] != '\0' &&
         aging_calendar_load(&calendar, cfg.holidays_file, &err) != TP_OK)) {
        log_error("bad configuration", LF_S("error", err.msg));
        return 2;
    }
    if (setenv("KAFKA_QUEUED_MAX_MESSAGES_KBYTES", MAIN_KAFKA_QUEUE_KBYTES, 0) != 0) {
        log_warn("could not bound the Kafka prefetch queue");
    }
    signals_install();
    return worker_run(&cfg, &accounts, &calendar);
}
