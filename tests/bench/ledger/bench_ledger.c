/*
 * Ledger benchmark (label bench): in one run, the batched-SQL ceiling (apply.c directly, one
 * transaction per 1,000 events), the one-transaction-per-event rate, and the ledger binary end to
 * end while events are produced (events/s applied, batch commit p99, peak RSS). Prints figures and
 * the targets: >= 0.6 x ceiling, >= 10 x per-event, RSS <= 64 MB. Like every benchmark here it
 * fails only on a wrong result (an event not applied); speed depends on the machine's load.
 *
 *   bench_ledger <ledger> <topupctl> [end-to-end events] [ceiling events] [per-event events]
 */
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "ledger.h"
#include "topup/event.h"
#include "topup/pg.h"
#include "topup/v1/events.pb-c.h"

#define BENCH_ACCOUNTS 10000
/*
 * Events produced but not yet applied, at most: the dev broker keeps about 5 MiB per partition
 * and drops older data silently, so the producer waits for the ledger beyond this.
 */
#define BENCH_LAG_MAX    40000
#define BENCH_BATCH      1000
#define BENCH_WARMUP     5000
#define BENCH_RSS_MAX_KB (64 * 1024)

static char prefix[H_ID_MAX];
/* The ledger's default ceilings (services/ledger/README.md). */
static const struct ledger_limits bench_limits = {100000000, 1000000, 100000000, 86400};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void account_of(char *out, size_t len, const char *phase, uint64_t n)
{
    snprintf(out, len, "%.40s-%s-%llu", prefix, phase,
             (unsigned long long)((n * 2654435761ULL) % BENCH_ACCOUNTS));
}

/*
 * Creates the phase's accounts up front, so every phase measures the steady state (accounts that
 * exist) rather than the first event of each account.
 */
static void create_accounts(const char *phase)
{
    char p[H_ID_MAX + 16], n[16];
    snprintf(p, sizeof(p), "%.40s-%s-", prefix, phase);
    snprintf(n, sizeof(n), "%d", BENCH_ACCOUNTS - 1);
    h_exec("INSERT INTO accounts (account_id) SELECT $1 || g FROM generate_series(0, $2::int) g "
           "ON CONFLICT DO NOTHING",
           2, (const char *const[]){p, n});
}

/* Fills a batch with count usage events of phase; n0 numbers them. */
static void fill_batch(struct batch *b, const char *phase, uint64_t n0, int count)
{
    batch_reset(b);
    for (int i = 0; i < count; i++) {
        struct batch_item *it = batch_add(b);
        h_event_id(it->ev.event_id);
        account_of(it->ev.account_id, sizeof(it->ev.account_id), phase, n0 + (uint64_t)i);
        snprintf(it->ev.reference, sizeof(it->ev.reference), "req-%llu",
                 (unsigned long long)(n0 + (uint64_t)i));
        it->ev.type = LEDGER_FLOW_CONSUME;
        it->ev.amount_fen = -(int64_t)(1 + (n0 + (uint64_t)i) % 300);
        it->ev.occurred_at_ms = event_now_ms();
        it->msg_index = i;
    }
}

/* Applies total events through apply.c in transactions of per_tx events; returns events/s. */
static double sql_rate(const char *phase, int total, int per_tx)
{
    struct tp_error err = {0};
    struct pg_conn *c = pg_conn_new(getenv("PG_CONNINFO"), 10000, &err);
    CHECK_MSG(c != NULL, "PostgreSQL: %s", err.msg);
    CHECK_MSG(apply_prepare(c, &err) == TP_OK, "prepare: %s", err.msg);
    create_accounts(phase);
    struct batch b;
    batch_init(&b, per_tx, &bench_limits);
    double elapsed = 0;
    for (int done = 0; done < total; done += per_tx) {
        fill_batch(&b, phase, (uint64_t)done, per_tx);
        double t0 = now_s();
        CHECK_MSG(apply_batch(c, &b, NULL, 5, &err) == TP_OK, "apply: %s", err.msg);
        elapsed += now_s() - t0;
        CHECK(b.applied[LEDGER_FLOW_CONSUME] == per_tx);
    }
    batch_deinit(&b);
    pg_conn_free(c);
    return total / elapsed;
}

static rd_kafka_t *producer(void)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", getenv("KAFKA_BOOTSTRAP_SERVERS"), errstr,
                            sizeof(errstr)) == RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ==
          RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    CHECK_MSG(rk != NULL, "producer: %s", errstr);
    return rk;
}

static void produce_usage(rd_kafka_t *rk, uint64_t n)
{
    char account[H_ID_MAX], eid[UUID_STR_LEN], req[32];
    account_of(account, sizeof(account), "e2e", n);
    h_event_id(eid);
    snprintf(req, sizeof(req), "req-%llu", (unsigned long long)n);
    Topup__V1__Envelope e;
    topup__v1__envelope__init(&e);
    e.event_id = eid;
    e.occurred_at_ms = event_now_ms();
    e.producer = "bench";
    e.schema_version = 1;
    e.account_id = account;
    Topup__V1__UsageRecorded m;
    topup__v1__usage_recorded__init(&m);
    m.envelope = &e;
    m.request_id = req;
    m.amount_fen = -(int64_t)(1 + n % 300);
    m.model = "bench-model";
    m.units = 1000;
    uint8_t buf[256];
    size_t len = topup__v1__usage_recorded__pack(&m, buf);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC("usage.recorded"), RD_KAFKA_V_KEY(account, strlen(account)),
            RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 10);
            continue;
        }
        CHECK_MSG(err == RD_KAFKA_RESP_ERR_NO_ERROR, "produce: %s", rd_kafka_err2str(err));
        break;
    }
    rd_kafka_poll(rk, 0);
}

static int64_t e2e_base_id;

/* Flows since the end-to-end phase began: a range scan of the primary key, cheap enough to poll. */
static int64_t applied_e2e(void)
{
    char base[24];
    snprintf(base, sizeof(base), "%lld", (long long)e2e_base_id);
    return h_i64("SELECT count(*) FROM account_flows WHERE id > $1", 1,
                 (const char *const[]){base});
}

static long vm_hwm_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "bench_ledger");
    int e2e_events = argc > 3 ? atoi(argv[3]) : 300000;
    int ceiling_events = argc > 4 ? atoi(argv[4]) : 100000;
    int single_events = argc > 5 ? atoi(argv[5]) : 3000;
    h_id(prefix, "bl");

    h_step("batched SQL ceiling: %d events, one transaction per %d", ceiling_events, BENCH_BATCH);
    double ceiling = sql_rate("sql", ceiling_events, BENCH_BATCH);
    h_step("one transaction per event: %d events", single_events);
    double single = sql_rate("one", single_events, 1);

    h_step("end to end: %d events produced while the ledger consumes", e2e_events);
    char group[H_ID_MAX];
    h_id(group, "bench-ledger");
    /* The ledger starts first and joins its group; the clock starts at the first event. */
    struct h_proc led;
    create_accounts("e2e");
    /* Only events produced from now on: older runs' events stay in the topics (retention). */
    h_group_at_end(group);
    h_ledger_start(&led, "ledger", group, NULL);
    rd_kafka_t *rk = producer();
    for (int i = 0; i < 300 && h_log_count(&led, "kafka partition assigned") == 0; i++) {
        usleep(100000);
    }
    CHECK_MSG(h_log_count(&led, "kafka partition assigned") > 0, "the ledger joined no group");
    /* Warm-up: connections, metadata and the first fetches are not what is measured. */
    e2e_base_id = h_i64("SELECT COALESCE(max(id), 0) FROM account_flows", 0, NULL);
    for (int n = 0; n < BENCH_WARMUP; n++) {
        produce_usage(rk, (uint64_t)(e2e_events + n));
    }
    CHECK(rd_kafka_flush(rk, 60000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int i = 0; i < 600 && applied_e2e() < BENCH_WARMUP; i++) {
        usleep(50000);
    }
    CHECK_MSG(applied_e2e() >= BENCH_WARMUP, "the warm-up events were not applied");
    e2e_base_id = h_i64("SELECT COALESCE(max(id), 0) FROM account_flows", 0, NULL);
    double t0 = now_s();
    int64_t applied = 0;
    for (int n = 0; n < e2e_events; n++) {
        if (n % 10000 == 0) {
            applied = applied_e2e();
            while (n - applied > BENCH_LAG_MAX) {
                rd_kafka_poll(rk, 50);
                applied = applied_e2e();
            }
        }
        produce_usage(rk, (uint64_t)n);
    }
    CHECK(rd_kafka_flush(rk, 60000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    double t_produced = now_s();
    double deadline = now_s() + 600;
    while ((applied = applied_e2e()) < e2e_events && now_s() < deadline) {
        usleep(50000);
    }
    double t_end = now_s();
    char like[H_ID_MAX + 8];
    snprintf(like, sizeof(like), "%s-e2e-%%", prefix);
    int64_t mine = h_i64("SELECT count(*) FROM account_flows WHERE account_id LIKE $1", 1,
                         (const char *const[]){like});
    CHECK_MSG(mine == e2e_events + BENCH_WARMUP, "%lld of our %d events applied", (long long)mine,
              e2e_events + BENCH_WARMUP);
    CHECK_MSG(applied >= e2e_events, "applied %lld of %d end-to-end events", (long long)applied,
              e2e_events);
    long hwm_kb = vm_hwm_kb(h_ledger_pid(&led));
    CHECK(h_ledger_stop(&led, SIGTERM, 60000) == 0);
    rd_kafka_destroy(rk);
    int64_t p99 = h_log_sum(&led, "ledger stopped", "commit_ms_p99");
    int64_t p50 = h_log_sum(&led, "ledger stopped", "commit_ms_p50");
    int64_t batches = h_log_sum(&led, "ledger stopped", "batches");
    int64_t messages = h_log_sum(&led, "ledger stopped", "messages");
    double e2e = e2e_events / (t_end - t0);

    printf("ledger benchmark (%d accounts, usage events)\n", BENCH_ACCOUNTS);
    printf("  batched SQL ceiling     %10.0f events/s  (apply.c, %d events per transaction)\n",
           ceiling, BENCH_BATCH);
    printf("  one transaction/event   %10.0f events/s\n", single);
    printf("  end to end              %10.0f events/s  (%d events in %.2f s; production done "
           "after %.2f s)\n",
           e2e, e2e_events, t_end - t0, t_produced - t0);
    printf("  batches                 %10lld          (%.0f messages per batch)\n",
           (long long)batches, batches > 0 ? (double)messages / (double)batches : 0.0);
    printf("  batch commit p50 / p99  %7lld ms / %lld ms\n", (long long)p50, (long long)p99);
    printf("  peak RSS (VmHWM)        %10.1f MB\n", hwm_kb / 1024.0);
    bool ok_ceiling = e2e >= 0.6 * ceiling;
    bool ok_single = e2e >= 10 * single;
    bool ok_rss = hwm_kb <= BENCH_RSS_MAX_KB;
    printf("  target end to end >= 0.6 x ceiling: %.2f x  %s\n", e2e / ceiling,
           ok_ceiling ? "ok" : "MISSED");
    printf("  target end to end >= 10 x per-event: %.1f x  %s\n", e2e / single,
           ok_single ? "ok" : "MISSED");
    printf("  target peak RSS <= 64 MB: %s\n", ok_rss ? "ok" : "MISSED");
    return 0;
}
