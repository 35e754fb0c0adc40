/*
 * Ledger scale-out benchmark (label bench): events/s applied by 1, 2 and 3 ledger instances in one
 * group against the same Apache Kafka broker (a private local stack, 12-partition topics). Each
 * round: a new group positioned at the end of the topics, k instances started and their group
 * settled, then BENCH_SCALE_EVENTS usage events produced as fast as the broker takes them; the
 * clock runs from the first event produced to the last one applied. Prints figures; fails only on
 * a wrong result (an event not applied exactly once), never on speed.
 */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define ACCOUNTS      10000
#define INSTANCES_MAX 3
#define PARTS         12
#define SETTLE_MS     600000
#define QUIET_MS      3000 /* no new assignment for this long: the group has settled */

static struct tl_proc led[INSTANCES_MAX];
static char stack_dir[TL_PATH_MAX];

static void stack_stop(void)
{
    if (stack_dir[0] == '\0') {
        return;
    }
    char cmd[TL_PATH_MAX * 2 + 128];
    snprintf(cmd, sizeof(cmd),
             "TOPUP_STACK_DIR='%s' bash '%s/deploy/local/stack.sh' stop >/dev/null 2>&1", stack_dir,
             getenv("TOPUP_SOURCE_DIR"));
    if (system(cmd) != 0) {
        fprintf(stderr, "bench: could not stop the private stack in %s\n", stack_dir);
    }
}

/* Commits, for the new group, the current end of the ledger's input topics. */
static void group_at_end(const char *group)
{
    static const char *const topics[] = {"payment.matched", "usage.recorded", "refund.issued"};
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    TL_CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", getenv("KAFKA_BOOTSTRAP_SERVERS"), errstr,
                               sizeof(errstr)) == RD_KAFKA_CONF_OK);
    TL_CHECK(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ==
             RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    TL_CHECK_MSG(rk != NULL, "consumer: %s", errstr);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3 * PARTS);
    for (int t = 0; t < 3; t++) {
        for (int p = 0; p < PARTS; p++) {
            int64_t lo = 0, hi = 0, deadline = tl_now_ms() + 60000;
            rd_kafka_resp_err_t e;
            /* A broker just reported ready may still be electing leaders: retry a while. */
            while ((e = rd_kafka_query_watermark_offsets(rk, topics[t], p, &lo, &hi, 10000)) !=
                       RD_KAFKA_RESP_ERR_NO_ERROR &&
                   tl_now_ms() < deadline) {
                tl_sleep_ms(200);
            }
            TL_CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR, "watermarks of %s/%d: %s", topics[t], p,
                         rd_kafka_err2str(e));
            rd_kafka_topic_partition_list_add(l, topics[t], p)->offset = hi;
        }
    }
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
    TL_CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR, "positioning group %s: %s", group,
                 rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

static int assignments(int k)
{
    int n = 0;
    for (int i = 0; i < k; i++) {
        n += tl_proc_log_count(&led[i], "kafka partition assigned");
    }
    return n;
}

/* Waits until every instance holds partitions and no assignment came for QUIET_MS. */
static void wait_group(int k)
{
    int64_t deadline = tl_now_ms() + 120000, quiet_since = tl_now_ms();
    int last = -1;
    for (;;) {
        int n = assignments(k);
        bool all = true;
        for (int i = 0; i < k; i++) {
            tl_proc_check_alive(&led[i]);
            all = all && tl_proc_log_count(&led[i], "kafka partition assigned") > 0;
        }
        if (n != last) {
            last = n;
            quiet_since = tl_now_ms();
        }
        if (all && tl_now_ms() - quiet_since >= QUIET_MS) {
            return;
        }
        TL_CHECK_MSG(tl_now_ms() < deadline, "the group of %d ledgers did not settle", k);
        tl_sleep_ms(100);
    }
}

static double round_rate(int k, int64_t events, double *produce_s)
{
    char group[TL_ID_MAX], gname[32], prefix[TL_ID_MAX], acct[TL_ID_MAX + 16];
    snprintf(gname, sizeof(gname), "bench-scale-%d", k);
    tl_id(group, gname);
    snprintf(gname, sizeof(gname), "bs%d", k);
    tl_id(prefix, gname);
    group_at_end(group);
    char env_group[TL_ID_MAX + 16];
    snprintf(env_group, sizeof(env_group), "LEDGER_GROUP=%s", group);
    const char *const env[] = {env_group, NULL};
    for (int i = 0; i < k; i++) {
        char name[32];
        snprintf(name, sizeof(name), "ledger-%dof%d", i + 1, k);
        tl_worker_start(&led[i], "ledger", name, env);
    }
    wait_group(k);
    /* The round's accounts exist beforehand: the steady state, not first events, is measured. */
    char p[TL_ID_MAX + 2], last[16];
    snprintf(p, sizeof(p), "%s-", prefix);
    snprintf(last, sizeof(last), "%d", ACCOUNTS - 1);
    tl_pg_exec(
        "INSERT INTO accounts (account_id) SELECT $1 || g FROM generate_series(0, $2::int) g "
        "ON CONFLICT DO NOTHING",
        2, (const char *const[]){p, last});
    int64_t base = tl_pg_i64("SELECT COALESCE(max(id), 0) FROM account_flows", 0, NULL);
    char base_s[24];
    snprintf(base_s, sizeof(base_s), "%" PRId64, base);
    struct tl_producer *pr = tl_producer_new("bench-scale");
    int64_t t0 = tl_now_ms();
    for (int64_t n = 0; n < events; n++) {
        char eid[UUID_STR_LEN], req[32];
        tl_event_id(eid);
        snprintf(acct, sizeof(acct), "%s-%" PRIu64, prefix,
                 (uint64_t)((uint64_t)n * 2654435761ULL) % ACCOUNTS);
        snprintf(req, sizeof(req), "req-%" PRId64, n);
        tl_produce_usage(pr, eid, acct, req, -(1 + n % 300));
        if (n % 1000 == 999) {
            tl_producer_poll(pr, 0);
        }
    }
    tl_producer_flush(pr, SETTLE_MS);
    int64_t t_produced = tl_now_ms();
    tl_producer_free(pr);
    int64_t applied = 0;
    while ((applied = tl_pg_i64("SELECT count(*) FROM account_flows WHERE id > $1", 1,
                                (const char *const[]){base_s})) < events) {
        TL_CHECK_MSG(tl_now_ms() - t0 < SETTLE_MS,
                     "%d ledgers: %" PRId64 " of %" PRId64 " events applied", k, applied, events);
        for (int i = 0; i < k; i++) {
            tl_proc_check_alive(&led[i]);
        }
        tl_sleep_ms(20);
    }
    int64_t t_end = tl_now_ms();
    char like[TL_ID_MAX + 8];
    snprintf(like, sizeof(like), "%s-%%", prefix);
    int64_t mine = tl_pg_i64("SELECT count(DISTINCT event_id) FROM account_flows WHERE account_id "
                             "LIKE $1",
                             1, (const char *const[]){like});
    TL_CHECK_MSG(mine == events && applied == events,
                 "%d ledgers: %" PRId64 " flows for %" PRId64 " events", k, applied, events);
    for (int i = 0; i < k; i++) {
        TL_CHECK(tl_proc_stop(&led[i], SIGTERM, 60000, NULL) == 0);
    }
    *produce_s = (double)(t_produced - t0) / 1000.0;
    return (double)events * 1000.0 / (double)(t_end - t0);
}

int main(void)
{
    tl_init("bench_ledger_scale");
    int64_t events = tl_env_int("BENCH_SCALE_EVENTS", 100000);
    TL_CHECK(events >= 1000);
    snprintf(stack_dir, sizeof(stack_dir), "%s/stack", tl_logdir());
    atexit(stack_stop);
    static const char *const stack_env[] = {"TOPUP_KAFKA=kafka", "TOPUP_KAFKA_PARTITIONS=12", NULL};
    tl_stack_start(stack_dir, stack_env);
    TL_CHECK(tl_kafka_partitions("usage.recorded") == PARTS);
    double rate[INSTANCES_MAX + 1], produce_s[INSTANCES_MAX + 1];
    for (int k = 1; k <= INSTANCES_MAX; k++) {
        tl_step("%d ledger instance(s): %" PRId64 " usage events on %d partitions", k, events,
                PARTS);
        rate[k] = round_rate(k, events, &produce_s[k]);
        tl_step("  %d: %.0f events/s (production done after %.1f s)", k, rate[k], produce_s[k]);
    }
    printf("ledger scale-out (Apache Kafka, one local KRaft broker, %d partitions, %d accounts, "
           "%" PRId64 " usage events a round, one group)\n",
           PARTS, ACCOUNTS, events);
    for (int k = 1; k <= INSTANCES_MAX; k++) {
        printf("  %d instance%s  %10.0f events/s  (%.2f x one instance)\n", k, k > 1 ? "s" : " ",
               rate[k], rate[k] / rate[1]);
    }
    tl_proc_kill_all();
    TL_CHECK(tl_stack_sh(stack_dir, "clean", "all") == 0);
    stack_dir[0] = '\0';
    return 0;
}
