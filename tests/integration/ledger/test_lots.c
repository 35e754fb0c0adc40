/*
 * Credit lots: each recharge opens a lot with the remitter as the bank reported it; usage draws
 * the oldest lot first, a usage refund gives back to the newest lot with room, a recharge into a
 * debt keeps only what is left after the debt; many events in one batch keep the lots in step.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "topup/ids.h"

/* A recharge of code as reconciliation sends it, the record naming remitter name/account/bank. */
static void send_recharge(const char *account, const char *code, int64_t amount_fen,
                          const char *name, const char *acct_no, const char *bank)
{
    char eid[UUID_STR_LEN];
    h_event_id(eid);
    h_order(code, account, amount_fen, "processing");
    h_record_match(code, eid, amount_fen);
    h_exec("UPDATE statement_records SET counterparty_name = $2, counterparty_account = $3, "
           "counterparty_bank = $4 WHERE receiving_account = '" H_RECEIVING_ACCOUNT
           "' AND bank_txn_id = $1",
           4, (const char *const[]){eid, name, acct_no, bank});
    h_send_matched_unrecorded(eid, account, code, amount_fen, amount_fen, eid);
}

static void wait_flows(const char *account, int64_t n)
{
    char what[160];
    snprintf(what, sizeof(what), "%lld flows of %s", (long long)n, account);
    h_wait_i64(what, "SELECT count(*) FROM account_flows WHERE account_id = $1", 1,
               (const char *const[]){account}, n);
}

static int64_t lot_left(const char *code)
{
    return h_i64("SELECT left_fen FROM credit_lots WHERE order_code = $1", 1,
                 (const char *const[]){code});
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "ledger_lots");
    char group[H_ID_MAX], a[H_ID_MAX], b[H_ID_MAX];
    h_id(group, "ledger-lots");
    h_id(a, "lots-a");
    h_id(b, "lots-b");
    h_group_at_end(group);
    h_mark_topics();
    struct h_proc led;
    h_ledger_start(&led, "ledger", group, NULL);

    h_step("two recharges open two lots with their remitters");
    char o1[REFCODE_STR_LEN], o2[REFCODE_STR_LEN], o3[REFCODE_STR_LEN];
    ids_refcode_new(o1);
    ids_refcode_new(o2);
    ids_refcode_new(o3);
    send_recharge(a, o1, 10000, "张三", "6217000011112222", "中国工商银行北京分行");
    wait_flows(a, 1);
    send_recharge(a, o2, 5000, "李四", "6228480000000099", "中国农业银行");
    wait_flows(a, 2);
    CHECK(h_i64("SELECT count(*) FROM credit_lots l JOIN account_flows f ON f.id = l.flow_id "
                "WHERE l.order_code = $1 AND l.account_id = $2 AND l.remitter_name = '张三' AND "
                "l.remitter_account = '6217000011112222' AND "
                "l.remitter_bank = '中国工商银行北京分行' AND l.paid_fen = 10000 AND "
                "l.left_fen = 10000 AND f.reference = $1 AND l.record_id IS NOT NULL",
                2, (const char *const[]){o1, a}) == 1);
    CHECK(lot_left(o2) == 5000);
    CHECK(h_i64("SELECT count(*) FROM credit_lots WHERE account_id = $1 AND remitter_name = "
                "'李四' AND remitter_account = '6228480000000099'",
                1, (const char *const[]){a}) == 1);

    h_step("usage of 120.00 empties the older lot first, then takes 70.00 of the newer");
    char e[UUID_STR_LEN];
    h_event_id(e);
    h_send_usage(e, a, "req-1", -12000);
    wait_flows(a, 3);
    CHECK_MSG(lot_left(o1) == 0, "o1 left %lld", (long long)lot_left(o1));
    CHECK_MSG(lot_left(o2) == 3000, "o2 left %lld", (long long)lot_left(o2));

    h_step("a usage refund of 20.00 goes back to the newest lot with room");
    h_event_id(e);
    h_send_usage_refund(e, a, "rf-1", 2000, "req-1");
    wait_flows(a, 4);
    CHECK(lot_left(o1) == 0);
    CHECK_MSG(lot_left(o2) == 5000, "o2 left %lld", (long long)lot_left(o2));

    h_step("usage beyond the balance empties every lot; a recharge then pays the debt first");
    h_event_id(e);
    h_send_usage(e, a, "req-2", -10000);
    wait_flows(a, 5);
    CHECK(h_balance(a) == -5000);
    CHECK(h_i64("SELECT sum(left_fen) FROM credit_lots WHERE account_id = $1", 1,
                (const char *const[]){a}) == 0);
    send_recharge(a, o3, 8000, "张三", "6217000011112222", "中国工商银行北京分行");
    wait_flows(a, 6);
    CHECK(h_balance(a) == 3000);
    CHECK_MSG(lot_left(o3) == 3000, "o3 left %lld", (long long)lot_left(o3));
    CHECK(h_i64("SELECT paid_fen FROM credit_lots WHERE order_code = $1", 1,
                (const char *const[]){o3}) == 8000);

    h_step("a usage refund on a debt-paid lot never raises a lot above what it was paid");
    h_event_id(e);
    h_send_usage_refund(e, a, "rf-2", 6000, "req-2");
    wait_flows(a, 7);
    CHECK(h_balance(a) == 9000);
    /* 6000 back: o3 is refilled to its 8000 paid, the remaining 1000 to o2 (next newest). */
    CHECK_MSG(lot_left(o3) == 8000, "o3 left %lld", (long long)lot_left(o3));
    CHECK_MSG(lot_left(o2) == 1000, "o2 left %lld", (long long)lot_left(o2));
    CHECK(lot_left(o1) == 0);
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);

    h_step("one batch: 20 recharges and 20 usages of account B applied together");
    int64_t credited = 0, used = 0;
    for (int i = 0; i < 20; i++) {
        char code[REFCODE_STR_LEN], req[32];
        ids_refcode_new(code);
        send_recharge(b, code, 5000 + 100 * i, "王五", "6222600000000123", "交通银行");
        credited += 5000 + 100 * i;
        snprintf(req, sizeof(req), "b-req-%d", i);
        h_event_id(e);
        h_send_usage(e, b, req, -(3000 + 250 * i));
        used += 3000 + 250 * i;
    }
    h_ledger_start(&led, "ledger", group, NULL);
    wait_flows(b, 40);
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);
    int64_t balance = h_balance(b);
    CHECK(balance == credited - used);
    CHECK(h_i64("SELECT count(*) FROM credit_lots WHERE account_id = $1", 1,
                (const char *const[]){b}) == 20);
    CHECK(h_i64("SELECT sum(left_fen) FROM credit_lots WHERE account_id = $1", 1,
                (const char *const[]){b}) == (balance > 0 ? balance : 0));
    /* Recharges and usages travel on two topics: which lot keeps what depends on arrival, the
     * sum does not; no lot is ever below 0 or above what was paid (the table's CHECK). */
    CHECK(h_i64("SELECT count(*) FROM credit_lots WHERE account_id = $1 AND "
                "(left_fen < 0 OR left_fen > paid_fen)",
                1, (const char *const[]){b}) == 0);

    h_step("verify: no violations");
    char out[65536];
    int rc = h_topupctl(out, sizeof(out), (const char *const[]){"verify", NULL});
    fprintf(stderr, "%s", out);
    CHECK_MSG(rc == 0, "verify exited %d", rc);
    h_step("ok");
    return 0;
}
