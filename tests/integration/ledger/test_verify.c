/*
 * topupctl verify: nothing to report after a clean ledger run; then every kind of violation,
 * planted by SQL, is reported with what it concerns, and the exit code says so.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "topup/ids.h"

#define N_ACCTS 9

static char accts[N_ACCTS][H_ID_MAX];

/* Inserts a flow the way the ledger would (balance and balance_after consistent). */
static void plant_flow(const char *account, const char *type, const char *amount,
                       const char *reference, const char *event_id)
{
    const char *p[5] = {account, type, amount, reference, event_id};
    h_exec("WITH a AS (UPDATE accounts SET balance_fen = balance_fen + $3::bigint "
           "WHERE account_id = $1 RETURNING balance_fen) "
           "INSERT INTO account_flows (event_id, account_id, flow_type, amount_fen, "
           "balance_after_fen, reference, occurred_at) "
           "SELECT $5, $1, $2, $3::bigint, a.balance_fen, $4, now() FROM a",
           5, p);
}

/* The same for a refund flow naming the usage it gives back. */
static void plant_refund(const char *account, const char *amount, const char *reference,
                         const char *refund_of, const char *event_id)
{
    plant_flow(account, "refund", amount, reference, event_id);
    h_exec("UPDATE account_flows SET refund_of = $2 WHERE event_id = $1", 2,
           (const char *const[]){event_id, refund_of});
}

static void completed_order(const char *code, const char *account, const char *credited)
{
    h_order(code, account, 1000, "pending");
    const char *p[2] = {code, credited};
    h_exec("UPDATE topup_orders SET status = 'completed', credited_fen = $2::bigint, "
           "completed_at = now() WHERE code = $1",
           2, p);
}

/* out has a line "violation <kind>: ..." mentioning what. */
static void expect_line(const char *out, const char *kind, const char *what)
{
    char head[96];
    snprintf(head, sizeof(head), "violation %s:", kind);
    for (const char *l = strstr(out, head); l != NULL; l = strstr(l + 1, head)) {
        const char *end = strchr(l, '\n');
        size_t len = end != NULL ? (size_t)(end - l) : strlen(l);
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)(len < 1000 ? len : 1000), l);
        if (strstr(line, what) != NULL) {
            return;
        }
    }
    h_fail("no \"%s\" line mentions %s", head, what);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "ledger_verify");
    char prefix[H_ID_MAX], group[H_ID_MAX];
    h_id(prefix, "lv");
    h_id(group, "ledger-verify");
    h_group_at_end(group); /* see only what is produced from now on */
    h_mark_topics();
    for (int i = 0; i < N_ACCTS; i++) {
        snprintf(accts[i], sizeof(accts[i]), "%.80s-%d", prefix, i);
    }
    char o1[REFCODE_STR_LEN];
    ids_refcode_new(o1);
    h_order(o1, accts[1], 10000, "processing");

    char e_recharge[UUID_STR_LEN], e_use1[UUID_STR_LEN], e_use3[UUID_STR_LEN];
    h_event_id(e_recharge);
    h_send_matched(e_recharge, accts[1], o1, 10000, 10000);
    h_event_id(e_use1);
    h_send_usage(e_use1, accts[1], "req-1", -100);
    char e_refund[UUID_STR_LEN];
    h_event_id(e_refund);
    char e_use2[UUID_STR_LEN];
    h_event_id(e_use2);
    h_send_usage(e_use2, accts[2], "req-2", -80);
    h_send_usage_refund(e_refund, accts[2], "rf-2", 50, "req-2");
    h_event_id(e_use3);
    h_send_usage(e_use3, accts[3], "req-3", -30);
    for (int i = 4; i < N_ACCTS; i++) {
        char eid[UUID_STR_LEN];
        h_event_id(eid);
        h_send_usage(eid, accts[i], "req-x", -1);
    }
    struct h_proc led;
    h_ledger_start(&led, "ledger", group, NULL);
    h_wait_i64("flows", "SELECT count(*) FROM account_flows WHERE account_id LIKE $1 || '%'", 1,
               (const char *const[]){prefix}, 5 + N_ACCTS - 4);
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);

    char out[65536];
    int rc = h_topupctl(out, sizeof(out), (const char *const[]){"verify", NULL});
    fprintf(stderr, "%s", out);
    CHECK_MSG(rc == 0, "verify after a clean run exited %d", rc);
    CHECK(strncmp(out, "ok: no violations", 17) == 0);
    CHECK(strstr(out, "violation") == NULL || strstr(out, "no violations") != NULL);

    h_step("planting one violation of each kind");
    /* balance_mismatch */
    h_exec("UPDATE accounts SET balance_fen = balance_fen + 1 WHERE account_id = $1", 1,
           (const char *const[]){accts[2]});
    /* balance_after_mismatch */
    h_exec("UPDATE account_flows SET balance_after_fen = balance_after_fen + 7 WHERE event_id = $1",
           1, (const char *const[]){e_use3});
    /* order_recharge_count: completed, never credited */
    char o2[REFCODE_STR_LEN];
    ids_refcode_new(o2);
    completed_order(o2, accts[4], "500");
    /* order_recharge_amount */
    h_exec("UPDATE topup_orders SET credited_fen = 9999 WHERE code = $1", 1,
           (const char *const[]){o1});
    /* recharge_without_order */
    char ghost[H_ID_MAX], eid[UUID_STR_LEN];
    snprintf(ghost, sizeof(ghost), "TUGHOST%.8s", h_sfx());
    h_event_id(eid);
    plant_flow(accts[5], "recharge", "300", ghost, eid);
    /* recharge_wrong_account: the order is accts[6]'s, the money went to accts[5] */
    char o3[REFCODE_STR_LEN];
    ids_refcode_new(o3);
    completed_order(o3, accts[6], "700");
    h_event_id(eid);
    plant_flow(accts[5], "recharge", "700", o3, eid);
    /* recharge_order_not_completed */
    char o4[REFCODE_STR_LEN];
    ids_refcode_new(o4);
    h_order(o4, accts[6], 300, "pending");
    h_event_id(eid);
    plant_flow(accts[6], "recharge", "300", o4, eid);
    /* order_recharged_twice (also a wrong count for a completed order) */
    h_exec("DROP INDEX account_flows_one_recharge_per_order", 0, NULL);
    char o5[REFCODE_STR_LEN];
    ids_refcode_new(o5);
    completed_order(o5, accts[7], "200");
    h_event_id(eid);
    plant_flow(accts[7], "recharge", "200", o5, eid);
    h_event_id(eid);
    plant_flow(accts[7], "recharge", "200", o5, eid);
    /* flow_without_source */
    char e_nosrc[UUID_STR_LEN];
    h_event_id(e_nosrc);
    plant_flow(accts[8], "consume", "-5", "", e_nosrc);
    /* duplicate_event_id */
    h_exec("ALTER TABLE account_flows DROP CONSTRAINT account_flows_event_id_key", 0, NULL);
    plant_flow(accts[8], "consume", "-6", "req-dup", e_use3);
    /* event_applied_and_rejected */
    h_exec("INSERT INTO ledger_rejections (event_id, account_id, flow_type, amount_fen, reference, "
           "reason, source_topic, source_partition, source_offset, occurred_at) "
           "VALUES ($1, $2, 'consume', -100, 'req-1', 'planted', 'usage.recorded', 0, 0, now())",
           2, (const char *const[]){e_use1, accts[1]});

    /* recharge_not_as_decided: the decision's record says 100, the flow 500 */
    char o6[REFCODE_STR_LEN];
    ids_refcode_new(o6);
    completed_order(o6, accts[3], "500");
    h_event_id(eid);
    h_record_match(o6, eid, 100);
    plant_flow(accts[3], "recharge", "500", o6, eid);
    /* recharge_without_import: o7's matched record names no recorded import */
    char o7[REFCODE_STR_LEN];
    ids_refcode_new(o7);
    completed_order(o7, accts[3], "400");
    h_event_id(eid);
    h_record_match(o7, eid, 400);
    h_exec("UPDATE statement_records SET import_id = NULL WHERE bank_txn_id = $1", 1,
           (const char *const[]){eid});
    plant_flow(accts[3], "recharge", "400", o7, eid);
    /* usage_refund_above_usage: accts[4] used 1 fen (req-x); 5 given back */
    h_event_id(eid);
    plant_refund(accts[4], "5", "rf-above", "req-x", eid);
    /* usage_refund_without_usage */
    h_event_id(eid);
    plant_refund(accts[8], "3", "rf-nothing", "req-nothing", eid);
    /* amount_above_ceiling: a usage of 20,000.00 (ceiling 10,000.00) */
    h_event_id(eid);
    plant_flow(accts[8], "consume", "-2000000", "req-big", eid);

    /* lots_left_mismatch: accts[1]'s lot (10000 paid, 100 used) says 1 fen less is left */
    h_exec("UPDATE credit_lots SET left_fen = left_fen - 1 WHERE account_id = $1", 1,
           (const char *const[]){accts[1]});

    rc = h_topupctl(out, sizeof(out), (const char *const[]){"verify", NULL});
    fprintf(stderr, "%s", out);
    CHECK_MSG(rc == 5, "verify with violations exited %d, want 5", rc);
    expect_line(out, "balance_mismatch", accts[2]);
    expect_line(out, "balance_after_mismatch", accts[3]);
    expect_line(out, "order_recharge_count", o2);
    expect_line(out, "order_recharge_amount", o1);
    expect_line(out, "recharge_without_order", ghost);
    expect_line(out, "recharge_wrong_account", o3);
    expect_line(out, "recharge_order_not_completed", o4);
    expect_line(out, "order_recharged_twice", o5);
    expect_line(out, "order_recharge_count", o5);
    expect_line(out, "flow_without_source", accts[8]);
    expect_line(out, "duplicate_event_id", e_use3);
    expect_line(out, "event_applied_and_rejected", e_use1);
    /* The planted recharges of o3, o4 and o5 (twice) were never matched to a transfer. */
    expect_line(out, "recharge_without_decision", o3);
    expect_line(out, "recharge_without_decision", o4);
    expect_line(out, "recharge_without_decision", o5);
    expect_line(out, "recharge_not_as_decided", o6);
    expect_line(out, "recharge_without_import", o7);
    expect_line(out, "usage_refund_above_usage", accts[4]);
    expect_line(out, "usage_refund_without_usage", "rf-nothing");
    expect_line(out, "amount_above_ceiling", "req-big");
    /* Credit lots: the planted recharges (ghost, o3, o4, o5 twice, o6) opened no lot, and the
     * accounts whose balance they raised (3, 5, 6, 7) have no lots for it (o7 is accts[3]'s too);
     * accts[4]'s planted refund raised its balance past its lots; accts[1]'s lot was changed. */
    expect_line(out, "lots_left_mismatch", accts[1]);
    expect_line(out, "lots_left_mismatch", accts[3]);
    expect_line(out, "lots_left_mismatch", accts[4]);
    expect_line(out, "lots_left_mismatch", accts[5]);
    expect_line(out, "lots_left_mismatch", accts[6]);
    expect_line(out, "lots_left_mismatch", accts[7]);
    expect_line(out, "recharge_without_lot", ghost);
    expect_line(out, "recharge_without_lot", o3);
    expect_line(out, "recharge_without_lot", o4);
    expect_line(out, "recharge_without_lot", o5);
    expect_line(out, "recharge_without_lot", o6);
    expect_line(out, "recharge_without_lot", o7);
    CHECK_MSG(strstr(out, "\n34 violations (") != NULL, "expected exactly 34 violations");

    h_step("verify cannot run: exit 1, not 0 or 5");
    setenv("PG_CONNINFO", "host=127.0.0.1 port=1 dbname=none connect_timeout=1", 1);
    rc = h_topupctl(out, sizeof(out), (const char *const[]){"verify", NULL});
    CHECK_MSG(rc == 1, "verify without PostgreSQL exited %d", rc);
    h_step("ok");
    return 0;
}
