/*
 * Chaos run on a 3-node Apache Kafka cluster (replication 3, min.insync.replicas 2, unclean leader
 * election off): a load of money events while the services are killed -9 and restarted, brokers
 * (a partition leader, the active controller) are killed -9 and restarted, one is stopped with
 * SIGSTOP past the session timeouts, one is cut off the network, PostgreSQL restarts and Redis is
 * away; afterwards every expected flow exists exactly once and the ledger's invariants hold.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

/*
 * Size: CHAOS_EVENTS money events in all (default 50,000: usage and refunds produced as a gateway
 * does, plus recharges from imported statements), faults for CHAOS_SECONDS (default 120).
 * CHAOS_KILLS kills of each service (default 3), CHAOS_BROKER_FAULTS broker faults (default 4:
 * kill -9 of a partition leader, kill -9 of the active controller, SIGSTOP, network partition,
 * then round again). The stack is private (its own PostgreSQL and Redis on free ports, its own
 * Kafka cluster from deploy/local/kafka-cluster.sh) because PostgreSQL restarts and broker faults
 * would hurt the tests that share the suite's stack.
 */

#define ACCOUNTS       100
#define RECHARGES_MAX  2000 /* statement records share one partition (key = our account) */
#define STMT_BATCH     100
#define HTTP_MS        10000
#define SETTLE_MS      300000
#define STALL_MS       90000 /* no progress at all for this long: stuck */
#define RECEIVING      "6225880212345678"
#define ACTIONS_MAX    128
#define RESTART_MIN_MS 300
#define RESTART_MAX_MS 3000
#define REPLICAS       3
/* A broker fault waits (at most this long) for every partition to have its 3 in-sync replicas:
 * one broker at a time is hurt, as min.insync.replicas 2 allows without stopping writes. */
#define HEALTHY_MS 240000
/* SIGSTOP and partition last past broker.session.timeout.ms (9 s) and the services' consumer
 * session.timeout.ms (10 s), so that the cluster and the groups act on it. */
#define NODE_AWAY_MIN_MS 20000
#define NODE_AWAY_MAX_MS 25000
#define NODE_DOWN_MIN_MS 3000
#define NODE_DOWN_MAX_MS 8000

struct ev {
    char eid[UUID_STR_LEN];
    int acct;
    int64_t amount;
    char type; /* 'c' consume, 'r' refund */
    char ref[40];
};

struct order {
    int acct;
    int64_t amount;
    char key[48];
    char code[16];
};

enum svc { SVC_INTAKE, SVC_RECON, SVC_LEDGER, NSVC };

static struct {
    int64_t events, recharges, usage_n;
    int seconds, kills, broker_faults;
    char stack_dir[TL_PATH_MAX];
    char acct[ACCOUNTS][TL_ID_MAX];
    char *token[ACCOUNTS];
    struct ev *evs;
    atomic_llong produced;
    struct order *orders;
    atomic_int created;
    atomic_int http_retries, http_500;
    int imported_orders, import_retries, files;
    struct tl_intake intake;
    struct tl_proc recon, ledger;
    struct tl_proc *svc[NSVC];
    bool killed[NSVC]; /* down on purpose: a restart is scheduled */
    int self_exits;
    char date[11];
    atomic_bool gateway_done, console_done, finance_done, brokers_done;
    int broker_injected[4];
    int64_t t0;
} C;

/* ------------------------------------------------------------------ load */

static void *gateway_thread(void *arg)
{
    (void)arg;
    struct tl_producer *p = tl_producer_new("chaos-gateway");
    int last_use[ACCOUNTS];     /* index in C.evs of each account's last usage, -1: none */
    int64_t refunded[ACCOUNTS]; /* of that usage, by usage refunds so far */
    for (int a = 0; a < ACCOUNTS; a++) {
        last_use[a] = -1;
        refunded[a] = 0;
    }
    /* Spread over 80% of the fault window, so that faults hit a system under load. */
    int64_t span_ms = (int64_t)C.seconds * 800, t0 = tl_now_ms();
    int64_t i = 0;
    while (i < C.usage_n) {
        int64_t due = (tl_now_ms() - t0) * C.usage_n / (span_ms > 0 ? span_ms : 1);
        if (due > C.usage_n) {
            due = C.usage_n;
        }
        for (; i < due; i++) {
            struct ev *e = &C.evs[i];
            tl_event_id(e->eid);
            e->acct = (int)(tl_rand() % ACCOUNTS);
            int kind = (int)(i % 20);
            if (kind < 18) {
                e->type = 'c';
                e->amount = -(int64_t)(1 + tl_rand() % 3000);
                snprintf(e->ref, sizeof(e->ref), "cu-%s-%" PRId64, tl_sfx(), i);
                tl_produce_usage(p, e->eid, C.acct[e->acct], e->ref, e->amount);
                last_use[e->acct] = (int)i;
                refunded[e->acct] = 0;
            } else {
                e->type = 'r';
                /* A usage refund gives back part of the account's last usage, never more than
                 * is left of it (the ledger refuses more); without one, a bank payout. */
                struct ev *u = last_use[e->acct] >= 0 ? &C.evs[last_use[e->acct]] : NULL;
                int64_t left = u != NULL ? -u->amount - refunded[e->acct] : 0;
                int refund_kind = kind == 18 && left > 0 ? 1 : 2;
                e->amount = refund_kind == 1 ? (int64_t)(1 + tl_rand() % (uint64_t)left)
                                             : -(int64_t)(100 + tl_rand() % 5000);
                snprintf(e->ref, sizeof(e->ref), "cr-%s-%" PRId64, tl_sfx(), i);
                if (refund_kind == 1) {
                    refunded[e->acct] += e->amount;
                }
                tl_produce_refund(p, e->eid, C.acct[e->acct], e->ref, e->amount, refund_kind,
                                  refund_kind == 1 ? u->ref : "");
            }
            atomic_store(&C.produced, i + 1);
        }
        tl_producer_poll(p, 10);
    }
    /* Brokers may be down right now: the producer (and its re-sends) wait them out. */
    tl_producer_flush(p, SETTLE_MS);
    tl_step("gateway: %" PRId64 " usage and refund events acknowledged (%" PRId64
            " deliveries failed and were sent again with the same event id; client recreated "
            "after a fatal error %d times)",
            C.usage_n, tl_producer_resent(p), tl_producer_recreated(p));
    tl_producer_free(p);
    atomic_store(&C.gateway_done, true);
    return NULL;
}

static void create_until_done(struct order *o)
{
    char body[256], amt[32];
    tl_fen_str(o->amount, amt, sizeof(amt));
    snprintf(body, sizeof(body),
             "{\"amount\":\"%s\",\"channel\":\"bank_transfer\",\"remitter_name\":\"客户%d\","
             "\"remitter_bank\":\"中国银行\",\"agreement_accepted\":true}",
             amt, o->acct);
    for (;;) {
        struct tl_http_resp r;
        int st = tl_http(C.intake.port, "POST", "/v1/topup-orders", C.token[o->acct], o->key, body,
                         &r, HTTP_MS);
        if (st == 200 || st == 201) {
            snprintf(o->code, sizeof(o->code), "%s", tl_json_str(r.json, "code"));
            tl_http_free(&r);
            return;
        }
        if (st == 500) {
            /* 500 is "a bug" in the API's contract; PostgreSQL away is 503. Counted, reported. */
            atomic_fetch_add(&C.http_500, 1);
            fprintf(stderr, "chaos: HTTP 500 on create: %s\n", r.body != NULL ? r.body : "");
        } else {
            TL_CHECK_MSG(st == 0 || st == 503, "create order: HTTP %d %s", st,
                         r.body != NULL ? r.body : "");
        }
        tl_http_free(&r);
        atomic_fetch_add(&C.http_retries, 1);
        tl_sleep_ms(100);
    }
}

static void *console_thread(void *arg)
{
    (void)arg;
    int64_t span_ms = (int64_t)C.seconds * 500, t0 = tl_now_ms();
    for (int i = 0; i < C.recharges; i++) {
        while ((tl_now_ms() - t0) * C.recharges / span_ms < i) {
            tl_sleep_ms(10);
        }
        struct order *o = &C.orders[i];
        o->acct = i % ACCOUNTS;
        o->amount = 5000 + (int64_t)(tl_rand() % 200000);
        snprintf(o->key, sizeof(o->key), "chaos-%s-%d", tl_sfx(), i);
        create_until_done(o);
        atomic_store(&C.created, i + 1);
    }
    atomic_store(&C.console_done, true);
    return NULL;
}

static void import_until_done(const char *path, enum tl_stmt_format f)
{
    for (;;) {
        char *out = NULL;
        int rc = tl_import(path, tl_stmt_import_args(f, RECEIVING), &out);
        free(out);
        if (rc == 0 || rc == 3) {
            return;
        }
        /* 4: PostgreSQL or Kafka away; the importer says running it again is safe. */
        TL_CHECK_MSG(rc == 4 || rc == 5 || rc == -1, "statement-import %s: exit %d", path, rc);
        C.import_retries++;
        tl_sleep_ms(500);
    }
}

static void *finance_thread(void *arg)
{
    (void)arg;
    static const enum tl_stmt_format fmts[] = {TL_STMT_CSV_CMB, TL_STMT_CSV_CMB_GBK, TL_STMT_MT940,
                                               TL_STMT_CAMT053};
    static const char *const ext[] = {"csv", "csv", "sta", "xml"};
    struct tl_txn *txns = calloc(STMT_BATCH, sizeof(*txns));
    TL_CHECK(txns != NULL);
    while (C.imported_orders < C.recharges) {
        int created = atomic_load(&C.created);
        bool last = atomic_load(&C.console_done);
        if (created - C.imported_orders < STMT_BATCH && !last) {
            tl_sleep_ms(200);
            continue;
        }
        int n = created - C.imported_orders;
        n = n > STMT_BATCH ? STMT_BATCH : n;
        enum tl_stmt_format f = fmts[C.files % 4];
        for (int k = 0; k < n; k++) {
            const struct order *o = &C.orders[C.imported_orders + k];
            struct tl_txn *t = &txns[k];
            memset(t, 0, sizeof(*t));
            snprintf(t->txn_id, sizeof(t->txn_id), "C%s%05d", tl_sfx(), C.imported_orders + k);
            t->amount_fen = o->amount;
            snprintf(t->name, sizeof(t->name), "PAYER %d", o->acct);
            snprintf(t->cp_account, sizeof(t->cp_account), "6222%012d", C.imported_orders + k);
            snprintf(t->cp_bank, sizeof(t->cp_bank), "BANK OF CHINA");
            snprintf(t->remittance, sizeof(t->remittance), "TOPUP %s", o->code);
            snprintf(t->value_date, sizeof(t->value_date), "%s", C.date);
        }
        char path[TL_PATH_MAX];
        snprintf(path, sizeof(path), "%s/stmt-%03d.%s", tl_logdir(), C.files, ext[C.files % 4]);
        tl_stmt_write(f, path, RECEIVING, txns, (size_t)n);
        import_until_done(path, f);
        C.imported_orders += n;
        C.files++;
    }
    free(txns);
    atomic_store(&C.finance_done, true);
    return NULL;
}

/* ------------------------------------------------------------------ faults */

enum act_kind { A_KILL, A_RESTART, A_PG_RESTART, A_REDIS_STOP, A_REDIS_START };

struct action {
    int64_t at_ms;
    enum act_kind kind;
    int svc;
};

static struct action acts[ACTIONS_MAX];
static int nacts;
static const char *const svc_names[NSVC] = {"order-intake", "reconciliation", "ledger"};

static void plan(int64_t at, enum act_kind k, int svc)
{
    TL_CHECK(nacts < ACTIONS_MAX);
    acts[nacts] = (struct action){.at_ms = at, .kind = k, .svc = svc};
    nacts++;
}

static int act_cmp(const void *a, const void *b)
{
    const struct action *x = a, *y = b;
    return x->at_ms < y->at_ms ? -1 : x->at_ms > y->at_ms;
}

static void plan_faults(void)
{
    int64_t w = (int64_t)C.seconds * 1000;
    /* Kills: each service's window cut in slots, one kill at a random moment of each. */
    for (int s = 0; s < NSVC; s++) {
        int64_t slot = w / C.kills;
        for (int k = 0; k < C.kills; k++) {
            int64_t at = k * slot + tl_rand_range(slot / 10, slot / 2);
            plan(at, A_KILL, s);
            plan(at + tl_rand_range(RESTART_MIN_MS, RESTART_MAX_MS), A_RESTART, s);
        }
    }
    /* The brokers' faults are the broker thread's (broker_thread). */
    plan(tl_rand_range(w * 3 / 10, w * 6 / 10), A_PG_RESTART, 0);
    int64_t r = tl_rand_range(w / 10, w / 2);
    plan(r, A_REDIS_STOP, 0);
    plan(r + tl_rand_range(5000, 10000), A_REDIS_START, 0);
    qsort(acts, (size_t)nacts, sizeof(acts[0]), act_cmp);
}

static void restart_svc(int s)
{
    tl_proc_restart(C.svc[s]);
    C.killed[s] = false;
}

/*
 * A service that exits by itself is a finding when it crashed (a signal); a clean exit with a
 * non-zero code (e.g. PostgreSQL away while it started) is restarted as a supervisor would.
 */
static void supervise(void)
{
    for (int s = 0; s < NSVC; s++) {
        int code = 0;
        if (C.killed[s] || tl_proc_alive(C.svc[s], &code)) {
            continue;
        }
        if (code >= 128) {
            tl_proc_log_tail(C.svc[s], 25);
            tl_fail("%s crashed by itself (exit %d) during the chaos run", svc_names[s], code);
        }
        C.self_exits++;
        tl_step("  %s exited by itself with code %d; restarted as a supervisor would", svc_names[s],
                code);
        restart_svc(s);
    }
}

static void run_action(const struct action *a)
{
    double t = (double)a->at_ms / 1000.0;
    switch (a->kind) {
    case A_KILL:
        supervise();
        if (C.svc[a->svc]->pid > 0) {
            tl_proc_kill9(C.svc[a->svc]);
            C.killed[a->svc] = true;
            tl_step("INJECT t=%5.1fs kill -9 %s", t, svc_names[a->svc]);
        }
        break;
    case A_RESTART:
        if (C.killed[a->svc]) {
            restart_svc(a->svc);
            tl_step("INJECT t=%5.1fs restart %s", t, svc_names[a->svc]);
        }
        break;
    case A_PG_RESTART: {
        int64_t t0 = tl_now_ms();
        int rc = tl_stack_sh(C.stack_dir, "restart", "pg");
        TL_CHECK_MSG(rc == 0, "stack.sh restart pg: exit %d", rc);
        tl_step("INJECT t=%5.1fs PostgreSQL restarted (down %.1f s)", t,
                (double)(tl_now_ms() - t0) / 1000.0);
        break;
    }
    case A_REDIS_STOP:
        TL_CHECK(tl_stack_sh(C.stack_dir, "stop", "redis") == 0);
        tl_step("INJECT t=%5.1fs Redis stopped", t);
        break;
    case A_REDIS_START:
        TL_CHECK(tl_stack_sh(C.stack_dir, "start", "redis") == 0);
        tl_step("INJECT t=%5.1fs Redis started again", t);
        break;
    }
}

/*
 * Broker faults, one broker at a time, each after the cluster is whole again (every partition
 * led, 3 in-sync replicas): kill -9 of the leader of a partition, kill -9 of the active
 * controller, SIGSTOP past the session timeouts, a network partition (the node's bridge port drops
 * everything: no other node and no client reaches it). Spread over the fault window.
 */
enum bfault { BF_KILL_LEADER, BF_KILL_CONTROLLER, BF_PAUSE, BF_PARTITION, NBF };
static const char *const bfault_names[NBF] = {"kill -9 partition leader",
                                              "kill -9 active controller", "SIGSTOP", "partition"};

static void wait_cluster_whole(const char *why)
{
    int64_t t0 = tl_now_ms();
    int bad = -1;
    while ((bad = tl_kafka_under_replicated(REPLICAS)) != 0) {
        TL_CHECK_MSG(tl_now_ms() - t0 < HEALTHY_MS,
                     "the Kafka cluster is not whole %d ms %s: %d partitions without a leader or "
                     "with fewer than %d in-sync replicas",
                     HEALTHY_MS, why, bad, REPLICAS);
        tl_sleep_ms(500);
    }
    if (tl_now_ms() - t0 > 1000) {
        tl_step("  cluster whole again (every partition led, %d in-sync replicas) after %.1f s %s",
                REPLICAS, (double)(tl_now_ms() - t0) / 1000.0, why);
    }
}

static void broker_cmd(const char *cmd, int node)
{
    int rc = tl_kcluster(cmd, node);
    TL_CHECK_MSG(rc == 0, "kafka-cluster.sh %s %d: exit %d (see %s/kcluster.log)", cmd, node, rc,
                 tl_logdir());
}

static void *broker_thread(void *arg)
{
    (void)arg;
    static const char *const topics[] = {"usage.recorded", "refund.issued", "topup.requested",
                                         "payment.matched"};
    int64_t w = (int64_t)C.seconds * 1000, slot = w / C.broker_faults;
    int64_t t0 = tl_now_ms();
    for (int i = 0; i < C.broker_faults; i++) {
        int64_t at = i * slot + tl_rand_range(0, slot / 5);
        while (tl_now_ms() - t0 < at) {
            tl_sleep_ms(100);
        }
        wait_cluster_whole("before the next broker fault");
        enum bfault k = (enum bfault)(i % NBF);
        if (k == BF_PARTITION && strcmp(tl_env("TOPUP_KCLUSTER_NET"), "netns") != 0) {
            /* On loopback (no root, no namespaces) a partition cannot be made: say so. */
            tl_step("  no network partition on a loopback cluster: SIGSTOP instead");
            k = BF_PAUSE;
        }
        const char *topic = topics[i % 4];
        int part = (int)(tl_rand() % (uint64_t)tl_kafka_partitions(topic));
        int ctl = tl_kcluster_controller();
        int leader = tl_kafka_leader(topic, part);
        int node = k == BF_KILL_CONTROLLER ? ctl : leader;
        if (node < 1) {
            node = 1 + (int)(tl_rand() % REPLICAS);
        }
        char what[160];
        snprintf(what, sizeof(what), "node %d (leader of %s[%d]: %d, active controller: %d)", node,
                 topic, part, leader, ctl);
        double t = (double)(tl_now_ms() - t0) / 1000.0;
        int64_t away;
        switch (k) {
        case BF_KILL_LEADER:
        case BF_KILL_CONTROLLER:
            broker_cmd("kill", node);
            away = tl_rand_range(NODE_DOWN_MIN_MS, NODE_DOWN_MAX_MS);
            break;
        case BF_PAUSE:
            broker_cmd("pause", node);
            away = tl_rand_range(NODE_AWAY_MIN_MS, NODE_AWAY_MAX_MS);
            break;
        default:
            broker_cmd("partition", node);
            away = tl_rand_range(NODE_AWAY_MIN_MS, NODE_AWAY_MAX_MS);
            break;
        }
        C.broker_injected[k]++;
        tl_step("INJECT t=%5.1fs broker %s: %s, for %.1f s, %" PRId64 " events produced so far", t,
                bfault_names[k], what, (double)away / 1000.0, (int64_t)atomic_load(&C.produced));
        tl_sleep_ms((int)away);
        static const char *const undo[NBF] = {"restart", "restart", "resume", "heal"};
        broker_cmd(undo[k], node);
        tl_step("INJECT t=%5.1fs broker %s node %d done", (double)(tl_now_ms() - t0) / 1000.0,
                undo[k], node);
    }
    wait_cluster_whole("after the last broker fault");
    atomic_store(&C.brokers_done, true);
    return NULL;
}

static void run_faults(void)
{
    int64_t t0 = tl_now_ms();
    for (int i = 0; i < nacts; i++) {
        while (tl_now_ms() - t0 < acts[i].at_ms) {
            supervise();
            tl_sleep_ms(50);
        }
        run_action(&acts[i]);
    }
    /* Whatever is still down comes back; pending request errors are dropped. */
    for (int s = 0; s < NSVC; s++) {
        if (C.killed[s]) {
            restart_svc(s);
        }
    }
    tl_step("fault window over after %.1f s: %d actions injected", (tl_now_ms() - t0) / 1000.0,
            nacts);
}

/* ------------------------------------------------------------------ checks */

/* The model into temporary tables: every usage/refund flow, every recharge, every balance. */
static void load_model(void)
{
    tl_pg_exec("CREATE TEMP TABLE exp_flows (event_id text, account_id text, flow_type text, "
               "amount_fen bigint, reference text)",
               0, NULL);
    tl_pg_exec("CREATE TEMP TABLE exp_orders (code text, account_id text, amount_fen bigint)", 0,
               NULL);
    size_t cap = (size_t)C.usage_n * 160 + 1024, n = 0;
    char *buf = malloc(cap);
    TL_CHECK(buf != NULL);
    for (int64_t i = 0; i < C.usage_n; i++) {
        const struct ev *e = &C.evs[i];
        n += (size_t)snprintf(buf + n, cap - n, "%s\t%s\t%s\t%" PRId64 "\t%s\n", e->eid,
                              C.acct[e->acct], e->type == 'c' ? "consume" : "refund", e->amount,
                              e->ref);
    }
    tl_pg_copy("COPY exp_flows FROM STDIN", buf, n);
    n = 0;
    for (int i = 0; i < C.recharges; i++) {
        const struct order *o = &C.orders[i];
        n += (size_t)snprintf(buf + n, cap - n, "%s\t%s\t%" PRId64 "\n", o->code, C.acct[o->acct],
                              o->amount);
    }
    tl_pg_copy("COPY exp_orders FROM STDIN", buf, n);
    free(buf);
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

/*
 * Where did the missing flows go? Events the gateway had acknowledged but that are not in Kafka
 * were lost before the services saw them (broker or client); events in Kafka without a flow were
 * lost by the services.
 */
static void diagnose(void)
{
    struct tl_ids model = {0}, in_kafka = {0}, usage = {0}, flows = {0};
    for (int64_t i = 0; i < C.usage_n; i++) {
        tl_ids_add(&model, C.evs[i].eid);
    }
    tl_ids_sort(&model);
    tl_kafka_ids(NULL, "usage.recorded", &usage);
    tl_kafka_ids(NULL, "refund.issued", &in_kafka);
    for (size_t i = 0; i < usage.n; i++) {
        tl_ids_add(&in_kafka, usage.v[i]);
    }
    tl_ids_sort(&in_kafka);
    tl_pg_ids("SELECT event_id FROM account_flows WHERE flow_type <> 'recharge'", 0, NULL, &flows);
    fprintf(stderr, "diagnosis: acknowledged events vs what Kafka holds (usage.recorded, "
                    "refund.issued):\n");
    size_t lost_before = tl_ids_diff(&model, "acknowledged to the gateway", &in_kafka, "Kafka");
    fprintf(stderr, "diagnosis: Kafka vs the ledger's flows:\n");
    size_t lost_by_services = tl_ids_diff(&in_kafka, "Kafka", &flows, "flows");
    fprintf(stderr,
            "diagnosis: %zu event ids differ between the gateway's acknowledgements and Kafka "
            "(lost or added before the services), %zu between Kafka and the flows (the "
            "services)\n",
            lost_before, lost_by_services);
    tl_ids_free(&model);
    tl_ids_free(&in_kafka);
    tl_ids_free(&usage);
    tl_ids_free(&flows);
}

static void settle(void)
{
    int64_t t0 = tl_now_ms(), last_progress = t0, last = -1;
    char want[32];
    snprintf(want, sizeof(want), "%" PRId64, C.usage_n + C.recharges);
    for (;;) {
        supervise();
        PGresult *r = tl_pg_try("SELECT (SELECT count(*) FROM account_flows) + "
                                "(SELECT count(*) FROM topup_orders WHERE status <> 'completed') "
                                "* 1000000000 + (SELECT count(*) FROM outbox WHERE published_at "
                                "IS NULL) * 1000000000",
                                0, NULL);
        int64_t v = -1;
        if (r != NULL) {
            v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            PQclear(r);
        }
        if (v == C.usage_n + C.recharges) {
            break;
        }
        if (v != last) {
            last = v;
            last_progress = tl_now_ms();
        }
        if (tl_now_ms() - t0 > SETTLE_MS || tl_now_ms() - last_progress > STALL_MS) {
            diagnose();
            tl_fail("the system did not settle within %d ms: flows %" PRId64 " (want %s), "
                    "no progress for %.1f s",
                    SETTLE_MS, v % 1000000000, want, (tl_now_ms() - last_progress) / 1000.0);
        }
        tl_sleep_ms(500);
    }
    tl_step("settled %.1f s after the load: %s flows, every order completed, outbox empty",
            (tl_now_ms() - t0) / 1000.0, want);
    /* Nothing more may arrive: a late duplicate would show now. */
    tl_sleep_ms(3000);
}

static void check_all(void)
{
    load_model();
    check("expected usage/refund flows missing",
          "SELECT count(*) FROM exp_flows e LEFT JOIN account_flows f USING (event_id) "
          "WHERE f.id IS NULL",
          0);
    check("flows whose account, type, amount or reference differ from the event",
          "SELECT count(*) FROM exp_flows e JOIN account_flows f USING (event_id) "
          "WHERE (f.account_id, f.flow_type, f.amount_fen, f.reference) IS DISTINCT FROM "
          "(e.account_id, e.flow_type, e.amount_fen, e.reference)",
          0);
    check("orders not completed", "SELECT count(*) FROM topup_orders WHERE status <> 'completed'",
          0);
    check("orders stuck in processing",
          "SELECT count(*) FROM topup_orders WHERE status = 'processing'", 0);
    check("orders of the model missing or with another account/amount",
          "SELECT count(*) FROM exp_orders e LEFT JOIN topup_orders o ON o.code = e.code "
          "WHERE o.id IS NULL OR o.account_id <> e.account_id OR o.amount_fen <> e.amount_fen "
          "OR o.credited_fen IS DISTINCT FROM e.amount_fen",
          0);
    check("orders without exactly one recharge flow of their amount on their account",
          "SELECT count(*) FROM exp_orders e WHERE (SELECT count(*) FROM account_flows f WHERE "
          "f.flow_type = 'recharge' AND f.reference = e.code AND f.account_id = e.account_id "
          "AND f.amount_fen = e.amount_fen) <> 1",
          0);
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM account_flows");
    check("flows in all (each expected flow exactly once, nothing else)", sql,
          C.usage_n + C.recharges);
    check("accounts whose balance differs from the model",
          "WITH m AS (SELECT account_id, sum(amount_fen) AS b FROM (SELECT account_id, "
          "amount_fen FROM exp_flows UNION ALL SELECT account_id, amount_fen FROM exp_orders) x "
          "GROUP BY account_id) SELECT count(*) FROM m FULL JOIN accounts a USING (account_id) "
          "WHERE m.b IS DISTINCT FROM a.balance_fen",
          0);
    check("statement records not matched",
          "SELECT count(*) FROM statement_records WHERE state <> "
          "'matched'",
          0);
    check("statement records stored", "SELECT count(*) FROM statement_records", C.recharges);
    check("ledger rejections", "SELECT count(*) FROM ledger_rejections", 0);
    check("open review items", "SELECT count(*) FROM review_queue", 0);

    /* Dead letters: a message the services could not handle would be here. */
    static const char *const dlqs[] = {"usage.recorded.dlq",  "refund.issued.dlq",
                                       "payment.matched.dlq", "bank.statement.records.dlq",
                                       "topup.requested.dlq", NULL};
    for (int i = 0; dlqs[i] != NULL; i++) {
        int64_t n = tl_kafka_topic_size(dlqs[i]);
        TL_CHECK_MSG(n == 0, "CHECK FAILED: %s holds %" PRId64 " dead letters", dlqs[i], n);
    }
    tl_step("CHECK ok: every dead-letter topic is empty");

    /*
     * Counters of loss: the services' dead-letter and rejection counters, named, plus any other
     * counter whose name says loss. Best effort by design (Redis was away a while, and a kill -9
     * loses a second of aggregates): the dead-letter topics above are the authoritative check.
     */
    static const char *const named[] = {"topup:ctr:ledger:dlq", "topup:ctr:ledger:rejected",
                                        "topup:ctr:reconciliation:recon.dlq", NULL};
    int loss_counters = 0;
    for (int i = 0; named[i] != NULL; i++) {
        int64_t v = tl_redis_counter(named[i]);
        TL_CHECK_MSG(v == 0, "CHECK FAILED: loss counter %s = %" PRId64, named[i], v);
        loss_counters++;
    }
    static char keys[512][TL_ID_MAX * 2];
    int nk = tl_redis_keys("topup:ctr:*", keys, 512);
    for (int i = 0; i < nk; i++) {
        if (strstr(keys[i], ":m:") != NULL) {
            continue;
        }
        bool loss = strstr(keys[i], "dlq") != NULL || strstr(keys[i], "lost") != NULL ||
                    strstr(keys[i], "rejected") != NULL || strstr(keys[i], "invalid") != NULL;
        int64_t v = tl_redis_counter(keys[i]);
        if (loss) {
            loss_counters++;
            TL_CHECK_MSG(v == 0, "CHECK FAILED: loss counter %s = %" PRId64, keys[i], v);
        }
        tl_step("  counter %-55s %10" PRId64 "%s", keys[i], v, loss ? "  (loss: must be 0)" : "");
    }
    tl_step("CHECK ok: %d loss counters (ledger dlq and rejected, reconciliation dlq, any other "
            "dlq/lost/rejected/invalid), all zero",
            loss_counters);

    /* At-least-once publishing after kill -9: duplicates in Kafka are allowed, applied once. */
    tl_step("  Kafka: payment.matched holds %" PRId64 " events for %" PRId64
            " orders, topup.requested %" PRId64 " (re-publications after kill -9 are deduplicated"
            " by the consumers)",
            tl_kafka_topic_size("payment.matched"), C.recharges,
            tl_kafka_topic_size("topup.requested"));
    char *out = NULL;
    int rc = tl_verify(&out);
    TL_CHECK_MSG(rc == 0, "CHECK FAILED: topupctl verify exit %d\n%s", rc, out);
    tl_step("CHECK ok: topupctl verify: %s", strtok(out, "\n"));
    free(out);
    TL_CHECK_MSG(atomic_load(&C.http_500) == 0,
                 "CHECK FAILED: order-intake answered %d creates with HTTP 500 (want 503 while "
                 "PostgreSQL is away)",
                 atomic_load(&C.http_500));
}

/* The private stack's daemons run in their own sessions: stop them however the test ends. */
static void chaos_atexit(void)
{
    tl_kcluster_stop();
    if (C.stack_dir[0] == '\0') {
        return;
    }
    char cmd[TL_PATH_MAX * 2 + 128];
    snprintf(cmd, sizeof(cmd),
             "TOPUP_STACK_DIR='%s' bash '%s/deploy/local/stack.sh' stop "
             ">/dev/null 2>&1",
             C.stack_dir, getenv("TOPUP_SOURCE_DIR"));
    if (system(cmd) != 0) {
        fprintf(stderr, "chaos: could not stop the private stack in %s\n", C.stack_dir);
    }
}

int main(void)
{
    tl_init("chaos");
    C.events = tl_env_int("CHAOS_EVENTS", 50000);
    C.seconds = (int)tl_env_int("CHAOS_SECONDS", 120);
    C.kills = (int)tl_env_int("CHAOS_KILLS", 3);
    C.broker_faults = (int)tl_env_int("CHAOS_BROKER_FAULTS", NBF);
    TL_CHECK_MSG(C.events >= 1000 && C.seconds >= 10 && C.kills >= 1 && C.broker_faults >= 1,
                 "CHAOS_EVENTS >= 1000, CHAOS_SECONDS >= 10, CHAOS_KILLS >= 1, "
                 "CHAOS_BROKER_FAULTS >= 1");
    C.recharges = C.events / 25 < RECHARGES_MAX ? C.events / 25 : RECHARGES_MAX;
    C.usage_n = C.events - C.recharges;
    C.evs = calloc((size_t)C.usage_n, sizeof(*C.evs));
    C.orders = calloc((size_t)C.recharges, sizeof(*C.orders));
    TL_CHECK(C.evs != NULL && C.orders != NULL);
    tl_shanghai_date(C.date, 0);
    tl_step("chaos run: %" PRId64 " money events (%" PRId64 " usage/refunds produced, %" PRId64
            " recharges from statements), %d s of faults, %d kills per service, %d broker faults",
            C.events, C.usage_n, C.recharges, C.seconds, C.kills, C.broker_faults);

    /* The services and the gateway here run the production producer settings: nothing of
     * KAFKA_* is overridden (idempotent, acks=all, 5 requests in flight). */
    TL_CHECK_MSG(getenv("KAFKA_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION") == NULL &&
                     getenv("KAFKA_ACKS") == NULL && getenv("KAFKA_ENABLE_IDEMPOTENCE") == NULL,
                 "the chaos run uses the production producer settings: unset KAFKA_* overrides");
    snprintf(C.stack_dir, sizeof(C.stack_dir), "%s/stack", tl_logdir());
    atexit(chaos_atexit);
    /* PostgreSQL and Redis from the stack, Kafka from the cluster. */
    TL_CHECK_MSG(tl_stack_sh(C.stack_dir, "start", "pg") == 0 &&
                     tl_stack_sh(C.stack_dir, "start", "redis") == 0,
                 "stack.sh start pg/redis in %s failed; see %s/stack.log", C.stack_dir,
                 tl_logdir());
    tl_stack_load_env(C.stack_dir);
    char kc_dir[TL_PATH_MAX + 16];
    snprintf(kc_dir, sizeof(kc_dir), "%s/kcluster", tl_logdir());
    tl_kcluster_start(kc_dir);
    static const char *const recon_env[] = {"RECON_RECEIVING_ACCOUNTS=" RECEIVING,
                                            "RECON_RELAY_POLL_MS=200", NULL};
    static const char *const intake_env[] = {"INTAKE_OUTBOX_POLL_MS=200", NULL};
    tl_worker_start(&C.ledger, "ledger", "ledger", NULL);
    tl_worker_start(&C.recon, "reconciliation", "reconciliation", recon_env);
    tl_intake_start(&C.intake, intake_env);
    C.svc[SVC_INTAKE] = &C.intake.proc;
    C.svc[SVC_RECON] = &C.recon;
    C.svc[SVC_LEDGER] = &C.ledger;
    for (int a = 0; a < ACCOUNTS; a++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "ch-%03d", a);
        tl_id(C.acct[a], prefix);
        C.token[a] = tl_token(C.acct[a]);
    }
    plan_faults();

    pthread_t gw, con, fin, brk;
    TL_CHECK(pthread_create(&brk, NULL, broker_thread, NULL) == 0);
    TL_CHECK(pthread_create(&gw, NULL, gateway_thread, NULL) == 0);
    TL_CHECK(pthread_create(&con, NULL, console_thread, NULL) == 0);
    TL_CHECK(pthread_create(&fin, NULL, finance_thread, NULL) == 0);
    run_faults();
    while (!atomic_load(&C.gateway_done) || !atomic_load(&C.finance_done) ||
           !atomic_load(&C.brokers_done)) {
        supervise();
        tl_sleep_ms(200);
    }
    pthread_join(gw, NULL);
    pthread_join(con, NULL);
    pthread_join(fin, NULL);
    pthread_join(brk, NULL);
    tl_step("load done: %" PRId64 " usage/refund events produced, %" PRId64 " orders over HTTP (%d "
            "retries), %d statement files imported (%d retries), services exited by themselves "
            "%d times",
            C.usage_n, C.recharges, atomic_load(&C.http_retries), C.files, C.import_retries,
            C.self_exits);
    settle();
    check_all();
    tl_step("injected: %d service kills -9 (with restarts), PostgreSQL restart, Redis stop/start; "
            "brokers: %d kill -9 of a partition leader, %d kill -9 of the active controller, %d "
            "SIGSTOP, %d network partitions (%s)",
            C.kills * NSVC, C.broker_injected[BF_KILL_LEADER],
            C.broker_injected[BF_KILL_CONTROLLER], C.broker_injected[BF_PAUSE],
            C.broker_injected[BF_PARTITION], getenv("TOPUP_KCLUSTER_NET"));
    tl_step("PASS: %" PRId64 " money events under %d injected faults: every flow exactly once, "
            "no order stuck, no dead letter, no loss counter, ledger invariants hold",
            C.events, nacts + C.broker_faults);
    tl_proc_kill_all();
    tl_kcluster_stop();
    /* Success: the stack's data is not needed any more (a failure keeps it for a look). */
    TL_CHECK(tl_stack_sh(C.stack_dir, "clean", "all") == 0);
    C.stack_dir[0] = '\0';
    return 0;
}
