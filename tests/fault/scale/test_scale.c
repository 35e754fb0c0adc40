/*
 * Scale-out on the real broker: 12-partition topics, 3 instances each of reconciliation and
 * ledger while money events flow; one of each is killed -9 and one of each added during the load.
 * Afterwards every event is applied exactly once (flows and balances equal the model), no order is
 * stuck, no dead letter, `topupctl verify` clean. Label integration: about two minutes.
 *
 * SCALE_EVENTS (default 20,000 usage events and refunds) and SCALE_SECONDS (default 40: the load
 * is spread over it) change the size.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define ACCOUNTS   120
#define ORDERS     480
#define STMT_BATCH 60
#define RECEIVERS  4 /* receiving accounts: statement records are keyed by them */
#define PARTS      12
#define HTTP_MS    10000
#define SETTLE_MS  300000
#define STALL_MS   90000
#define INSTANCES  4 /* 3 at first, one more added */

static const char *const receivers[RECEIVERS] = {"6225880200000001", "6225880200000002",
                                                 "6225880200000003", "6225880200000004"};

struct ev {
    char eid[UUID_STR_LEN];
    int acct;
    int64_t amount;
    char type; /* 'c' consume, 'r' usage refund */
    char ref[40];
};

struct order {
    int acct;
    int64_t amount;
    char key[48];
    char code[16];
};

static struct {
    int64_t usage_n;
    int seconds;
    char stack_dir[TL_PATH_MAX];
    char acct[ACCOUNTS][TL_ID_MAX];
    char *token[ACCOUNTS];
    struct ev *evs;
    atomic_llong produced;
    struct order orders[ORDERS];
    atomic_int created;
    int imported;
    struct tl_intake intake;
    struct tl_proc ledger[INSTANCES], recon[INSTANCES];
    char date[11];
    atomic_bool gateway_done, finance_done;
} S;

static void *gateway_thread(void *arg)
{
    (void)arg;
    struct tl_producer *p = tl_producer_new("scale-gateway");
    int last_use[ACCOUNTS];
    int64_t refunded[ACCOUNTS];
    for (int a = 0; a < ACCOUNTS; a++) {
        last_use[a] = -1;
        refunded[a] = 0;
    }
    int64_t span_ms = (int64_t)S.seconds * 900, t0 = tl_now_ms();
    int64_t i = 0;
    while (i < S.usage_n) {
        int64_t due = (tl_now_ms() - t0) * S.usage_n / span_ms;
        due = due > S.usage_n ? S.usage_n : due;
        for (; i < due; i++) {
            struct ev *e = &S.evs[i];
            tl_event_id(e->eid);
            e->acct = (int)(tl_rand() % ACCOUNTS);
            struct ev *u = last_use[e->acct] >= 0 ? &S.evs[last_use[e->acct]] : NULL;
            int64_t left = u != NULL ? -u->amount - refunded[e->acct] : 0;
            if (i % 10 == 9 && left > 0) {
                e->type = 'r';
                e->amount = (int64_t)(1 + tl_rand() % (uint64_t)left);
                snprintf(e->ref, sizeof(e->ref), "sr-%s-%" PRId64, tl_sfx(), i);
                refunded[e->acct] += e->amount;
                tl_produce_refund(p, e->eid, S.acct[e->acct], e->ref, e->amount, 1, u->ref);
            } else {
                e->type = 'c';
                e->amount = -(int64_t)(1 + tl_rand() % 3000);
                snprintf(e->ref, sizeof(e->ref), "su-%s-%" PRId64, tl_sfx(), i);
                tl_produce_usage(p, e->eid, S.acct[e->acct], e->ref, e->amount);
                last_use[e->acct] = (int)i;
                refunded[e->acct] = 0;
            }
            atomic_store(&S.produced, i + 1);
        }
        tl_producer_poll(p, 10);
    }
    tl_producer_flush(p, SETTLE_MS);
    tl_producer_free(p);
    atomic_store(&S.gateway_done, true);
    return NULL;
}

static void create_order(struct order *o)
{
    char body[256], amt[32];
    tl_fen_str(o->amount, amt, sizeof(amt));
    snprintf(body, sizeof(body),
             "{\"amount\":\"%s\",\"channel\":\"bank_transfer\",\"remitter_name\":\"客户%d\","
             "\"remitter_bank\":\"中国银行\",\"agreement_accepted\":true}",
             amt, o->acct);
    struct tl_http_resp r;
    int st = tl_http(S.intake.port, "POST", "/v1/topup-orders", S.token[o->acct], o->key, body, &r,
                     HTTP_MS);
    TL_CHECK_MSG(st == 200 || st == 201, "create order: HTTP %d %s", st,
                 r.body != NULL ? r.body : "");
    snprintf(o->code, sizeof(o->code), "%s", tl_json_str(r.json, "code"));
    tl_http_free(&r);
}

/* Creates the orders over HTTP and imports a statement paying them every STMT_BATCH orders. */
static void *finance_thread(void *arg)
{
    (void)arg;
    struct tl_txn txns[STMT_BATCH];
    int64_t span_ms = (int64_t)S.seconds * 800, t0 = tl_now_ms();
    for (int files = 0; S.imported < ORDERS; files++) {
        for (int k = 0; k < STMT_BATCH; k++) {
            int i = S.imported + k;
            struct order *o = &S.orders[i];
            o->acct = i % ACCOUNTS;
            o->amount = 5000 + (int64_t)(tl_rand() % 200000);
            snprintf(o->key, sizeof(o->key), "scale-%s-%d", tl_sfx(), i);
            create_order(o);
            struct tl_txn *t = &txns[k];
            memset(t, 0, sizeof(*t));
            snprintf(t->txn_id, sizeof(t->txn_id), "S%s%05d", tl_sfx(), i);
            t->amount_fen = o->amount;
            snprintf(t->name, sizeof(t->name), "PAYER %d", o->acct);
            snprintf(t->cp_account, sizeof(t->cp_account), "6222%012d", i);
            snprintf(t->cp_bank, sizeof(t->cp_bank), "BANK OF CHINA");
            snprintf(t->remittance, sizeof(t->remittance), "TOPUP %s", o->code);
            snprintf(t->value_date, sizeof(t->value_date), "%s", S.date);
        }
        atomic_store(&S.created, S.imported + STMT_BATCH);
        const char *recv = receivers[files % RECEIVERS];
        char path[TL_PATH_MAX];
        snprintf(path, sizeof(path), "%s/stmt-%02d.csv", tl_logdir(), files);
        tl_stmt_write(TL_STMT_CSV_CMB, path, recv, txns, STMT_BATCH);
        char *out = NULL;
        int rc = tl_import(path, tl_stmt_import_args(TL_STMT_CSV_CMB, recv), &out);
        TL_CHECK_MSG(rc == 0, "statement-import %s: exit %d\n%s", path, rc, out);
        free(out);
        S.imported += STMT_BATCH;
        while ((tl_now_ms() - t0) * ORDERS / span_ms < S.imported && S.imported < ORDERS) {
            tl_sleep_ms(50);
        }
    }
    atomic_store(&S.finance_done, true);
    return NULL;
}

static const char *const recon_env[] = {
    "RECON_RECEIVING_ACCOUNTS=6225880200000001,6225880200000002,6225880200000003,"
    "6225880200000004",
    "RECON_RELAY_POLL_MS=200", "KAFKA_SESSION_TIMEOUT_MS=6000", NULL};
static const char *const ledger_env[] = {"KAFKA_SESSION_TIMEOUT_MS=6000", NULL};

static void start_instance(int i)
{
    char name[32];
    snprintf(name, sizeof(name), "ledger-%d", i + 1);
    tl_worker_start(&S.ledger[i], "ledger", name, ledger_env);
    snprintf(name, sizeof(name), "reconciliation-%d", i + 1);
    tl_worker_start(&S.recon[i], "reconciliation", name, recon_env);
}

/* Fails when an instance that should run died by itself. */
static void check_running(const bool *up)
{
    for (int i = 0; i < INSTANCES; i++) {
        if (up[i]) {
            tl_proc_check_alive(&S.ledger[i]);
            tl_proc_check_alive(&S.recon[i]);
        }
    }
}

static int64_t q(const char *sql)
{
    return tl_pg_i64(sql, 0, NULL);
}

static void check(const char *what, const char *sql, int64_t want)
{
    int64_t got = q(sql);
    TL_CHECK_MSG(got == want, "CHECK FAILED: %s: %" PRId64 ", want %" PRId64 "\n  (%s)", what, got,
                 want, sql);
    tl_step("CHECK ok: %s (%" PRId64 ")", what, got);
}

static void settle(const bool *up)
{
    int64_t t0 = tl_now_ms(), last_progress = t0, last = -1;
    int64_t want = S.usage_n + ORDERS;
    for (;;) {
        check_running(up);
        int64_t v = q("SELECT (SELECT count(*) FROM account_flows) + (SELECT count(*) FROM "
                      "topup_orders WHERE status <> 'completed') * 1000000000");
        if (v == want) {
            break;
        }
        if (v != last) {
            last = v;
            last_progress = tl_now_ms();
        }
        TL_CHECK_MSG(tl_now_ms() - t0 < SETTLE_MS && tl_now_ms() - last_progress < STALL_MS,
                     "not settled: %" PRId64 " flows of %" PRId64 ", %" PRId64
                     " orders not completed",
                     v % 1000000000, want, v / 1000000000);
        tl_sleep_ms(500);
    }
    tl_step("settled %.1f s after the load: %" PRId64 " flows, every order completed",
            (tl_now_ms() - t0) / 1000.0, want);
    tl_sleep_ms(3000); /* a late duplicate would show now */
}

static void load_model(void)
{
    tl_pg_exec("CREATE TEMP TABLE exp_flows (event_id text, account_id text, flow_type text, "
               "amount_fen bigint, reference text)",
               0, NULL);
    tl_pg_exec("CREATE TEMP TABLE exp_orders (code text, account_id text, amount_fen bigint)", 0,
               NULL);
    size_t cap = (size_t)S.usage_n * 160 + (size_t)ORDERS * 120, n = 0;
    char *buf = malloc(cap);
    TL_CHECK(buf != NULL);
    for (int64_t i = 0; i < S.usage_n; i++) {
        const struct ev *e = &S.evs[i];
        n += (size_t)snprintf(buf + n, cap - n, "%s\t%s\t%s\t%" PRId64 "\t%s\n", e->eid,
                              S.acct[e->acct], e->type == 'c' ? "consume" : "refund", e->amount,
                              e->ref);
    }
    tl_pg_copy("COPY exp_flows FROM STDIN", buf, n);
    n = 0;
    for (int i = 0; i < ORDERS; i++) {
        const struct order *o = &S.orders[i];
        n += (size_t)snprintf(buf + n, cap - n, "%s\t%s\t%" PRId64 "\n", o->code, S.acct[o->acct],
                              o->amount);
    }
    tl_pg_copy("COPY exp_orders FROM STDIN", buf, n);
    free(buf);
}

static void check_all(void)
{
    load_model();
    check("expected usage/refund flows missing",
          "SELECT count(*) FROM exp_flows e LEFT JOIN account_flows f USING (event_id) "
          "WHERE f.id IS NULL",
          0);
    check("flows unlike their event",
          "SELECT count(*) FROM exp_flows e JOIN account_flows f USING (event_id) "
          "WHERE (f.account_id, f.flow_type, f.amount_fen, f.reference) IS DISTINCT FROM "
          "(e.account_id, e.flow_type, e.amount_fen, e.reference)",
          0);
    check("orders without exactly one recharge flow of their amount on their account",
          "SELECT count(*) FROM exp_orders e WHERE (SELECT count(*) FROM account_flows f WHERE "
          "f.flow_type = 'recharge' AND f.reference = e.code AND f.account_id = e.account_id "
          "AND f.amount_fen = e.amount_fen) <> 1",
          0);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM account_flows");
    check("flows in all (each expected flow once, nothing else)", sql, S.usage_n + ORDERS);
    check("accounts whose balance differs from the model",
          "WITH m AS (SELECT account_id, sum(amount_fen) AS b FROM (SELECT account_id, "
          "amount_fen FROM exp_flows UNION ALL SELECT account_id, amount_fen FROM exp_orders) x "
          "GROUP BY account_id) SELECT count(*) FROM m FULL JOIN accounts a USING (account_id) "
          "WHERE m.b IS DISTINCT FROM a.balance_fen",
          0);
    check("orders not completed", "SELECT count(*) FROM topup_orders WHERE status <> 'completed'",
          0);
    check("statement records not matched",
          "SELECT count(*) FROM statement_records WHERE state <> 'matched'", 0);
    check("match decisions per record other than one",
          "SELECT count(*) FROM (SELECT record_id FROM match_decisions GROUP BY record_id "
          "HAVING count(*) <> 1) x",
          0);
    check("ledger rejections", "SELECT count(*) FROM ledger_rejections", 0);
    check("waiting usage refunds", "SELECT count(*) FROM ledger_pending_refunds", 0);
    check("open review items", "SELECT count(*) FROM review_queue", 0);
    static const char *const dlqs[] = {"usage.recorded.dlq",  "refund.issued.dlq",
                                       "payment.matched.dlq", "bank.statement.records.dlq",
                                       "topup.requested.dlq", NULL};
    for (int i = 0; dlqs[i] != NULL; i++) {
        int64_t n = tl_kafka_topic_size(dlqs[i]);
        TL_CHECK_MSG(n == 0, "CHECK FAILED: %s holds %" PRId64 " dead letters", dlqs[i], n);
    }
    tl_step("CHECK ok: every dead-letter topic is empty");
    char *out = NULL;
    int rc = tl_verify(&out);
    TL_CHECK_MSG(rc == 0, "CHECK FAILED: topupctl verify exit %d\n%s", rc, out);
    tl_step("CHECK ok: topupctl verify: %s", strtok(out, "\n"));
    free(out);
}

/* Partitions each instance was given, from their logs (shows the rebalances happened). */
static void report_assignments(void)
{
    for (int i = 0; i < INSTANCES; i++) {
        tl_step("  ledger-%d: %d assignments, %d revocations; reconciliation-%d: %d, %d", i + 1,
                tl_proc_log_count(&S.ledger[i], "kafka partition assigned"),
                tl_proc_log_count(&S.ledger[i], "kafka partition revoked"), i + 1,
                tl_proc_log_count(&S.recon[i], "kafka partition assigned"),
                tl_proc_log_count(&S.recon[i], "kafka partition revoked"));
    }
}

static void scale_atexit(void)
{
    if (S.stack_dir[0] == '\0') {
        return;
    }
    char cmd[TL_PATH_MAX * 2 + 128];
    snprintf(cmd, sizeof(cmd),
             "TOPUP_STACK_DIR='%s' bash '%s/deploy/local/stack.sh' stop >/dev/null 2>&1",
             S.stack_dir, getenv("TOPUP_SOURCE_DIR"));
    if (system(cmd) != 0) {
        fprintf(stderr, "scale: could not stop the private stack in %s\n", S.stack_dir);
    }
}

/* Waits until the share of the load produced reaches pct percent. */
static void wait_load(int pct)
{
    while (atomic_load(&S.produced) * 100 < S.usage_n * pct) {
        tl_sleep_ms(100);
    }
}

int main(void)
{
    tl_init("scale");
    S.usage_n = tl_env_int("SCALE_EVENTS", 20000);
    S.seconds = (int)tl_env_int("SCALE_SECONDS", 40);
    TL_CHECK_MSG(S.usage_n >= 1000 && S.seconds >= 10, "SCALE_EVENTS >= 1000, SCALE_SECONDS >= 10");
    S.evs = calloc((size_t)S.usage_n, sizeof(*S.evs));
    TL_CHECK(S.evs != NULL);
    tl_shanghai_date(S.date, 0);
    snprintf(S.stack_dir, sizeof(S.stack_dir), "%s/stack", tl_logdir());
    atexit(scale_atexit);
    /* A private stack: the suite's topics have 4 partitions; these have 12. */
    static const char *const stack_env[] = {"TOPUP_KAFKA=kafka", "TOPUP_KAFKA_PARTITIONS=12", NULL};
    tl_stack_start(S.stack_dir, stack_env);
    TL_CHECK_MSG(strcmp(getenv("TOPUP_KAFKA"), "kafka") == 0, "the stack's broker is %s",
                 getenv("TOPUP_KAFKA"));
    TL_CHECK_MSG(tl_kafka_partitions("usage.recorded") == PARTS &&
                     tl_kafka_partitions("bank.statement.records") == PARTS &&
                     tl_kafka_partitions("payment.matched") == PARTS,
                 "topics have %d partitions, want %d", tl_kafka_partitions("usage.recorded"),
                 PARTS);
    static const char *const intake_env[] = {"INTAKE_OUTBOX_POLL_MS=200", NULL};
    tl_intake_start(&S.intake, intake_env);
    bool up[INSTANCES] = {true, true, true, false};
    for (int i = 0; i < 3; i++) {
        start_instance(i);
    }
    for (int a = 0; a < ACCOUNTS; a++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "sc-%03d", a);
        tl_id(S.acct[a], prefix);
        S.token[a] = tl_token(S.acct[a]);
    }
    tl_step("load: %" PRId64 " usage events and refunds over %d s, %d orders paid by %d "
            "statements; Apache Kafka, %d partitions, 3 ledgers, 3 reconciliations",
            S.usage_n, S.seconds, ORDERS, ORDERS / STMT_BATCH, PARTS);
    pthread_t gw, fin;
    TL_CHECK(pthread_create(&gw, NULL, gateway_thread, NULL) == 0);
    TL_CHECK(pthread_create(&fin, NULL, finance_thread, NULL) == 0);

    wait_load(30);
    tl_step("kill -9 ledger-2 and reconciliation-2 under load (%lld events produced)",
            (long long)atomic_load(&S.produced));
    tl_proc_kill9(&S.ledger[1]);
    tl_proc_kill9(&S.recon[1]);
    up[1] = false;
    wait_load(55);
    tl_step("add ledger-4 and reconciliation-4 under load (%lld events produced)",
            (long long)atomic_load(&S.produced));
    start_instance(3);
    up[3] = true;
    while (!atomic_load(&S.gateway_done) || !atomic_load(&S.finance_done)) {
        check_running(up);
        tl_sleep_ms(200);
    }
    pthread_join(gw, NULL);
    pthread_join(fin, NULL);
    tl_step("load done: %" PRId64 " usage events and refunds, %d orders", S.usage_n, ORDERS);
    settle(up);
    report_assignments();
    for (int i = 0; i < INSTANCES; i++) {
        TL_CHECK_MSG(!up[i] || tl_proc_log_count(&S.ledger[i], "kafka partition assigned") > 0,
                     "ledger-%d never got a partition", i + 1);
    }
    check_all();
    tl_step("PASS: 12 partitions, instances killed and added under load: every event once");
    tl_proc_kill_all();
    TL_CHECK(tl_stack_sh(S.stack_dir, "clean", "all") == 0);
    S.stack_dir[0] = '\0';
    return 0;
}
