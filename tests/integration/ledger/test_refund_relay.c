/*
 * A support approval reaches the ledger the way production carries it: `topupctl refund request`
 * and `topupctl refund approve` write the request and its reservation (RefundIssued, kind 2) to
 * the outbox under order-intake's source; order-intake's own outbox relay publishes it to
 * refund.issued; the ledger applies it (a refund flow, the lot's left and the balance reduced).
 * The test sends nothing to Kafka: the credit is seeded in PostgreSQL as the ledger would have
 * written it, and the only producer of the reservation is the relay.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "testlib.h"
#include "topup/ids.h"

static int refund_cmd(char *out, size_t len, const char *const *args)
{
    int rc = h_topupctl(out, len, args);
    fprintf(stderr, "topupctl %s %s -> %d: %s", args[0], args[1], rc, out);
    return rc;
}

/*
 * A 100.00 recharge of account from order code, paid by 张三 (6217000011112222): the order, the
 * bank record and its match decision, the recharge flow, the account's balance and the credit lot,
 * as reconciliation and the ledger would have committed them.
 */
static void seed_credit(const char *account, const char *code)
{
    char txn[UUID_STR_LEN];
    h_event_id(txn);
    h_exec("INSERT INTO accounts (account_id, balance_fen, balance_version) VALUES ($1, 10000, 1)",
           1, (const char *const[]){account});
    h_order(code, account, 10000, "completed");
    h_exec("UPDATE topup_orders SET credited_fen = 10000, matched_at = now(), completed_at = now() "
           "WHERE code = $1",
           1, (const char *const[]){code});
    h_record_match(code, txn, 10000);
    h_exec("UPDATE statement_records SET counterparty_name = '张三', counterparty_account = "
           "'6217000011112222', counterparty_bank = '中国工商银行' WHERE bank_txn_id = $1",
           1, (const char *const[]){txn});
    h_exec("WITH f AS (INSERT INTO account_flows (event_id, account_id, flow_type, amount_fen, "
           "balance_after_fen, reference, occurred_at) VALUES ($3, $1, 'recharge', 10000, 10000, "
           "$2, now()) RETURNING id) "
           "INSERT INTO credit_lots (account_id, flow_id, order_code, record_id, remitter_name, "
           "remitter_account, remitter_bank, paid_fen, left_fen) SELECT $1, f.id, $2, r.id, "
           "'张三', '6217000011112222', '中国工商银行', 10000, 10000 FROM f, statement_records r "
           "WHERE r.bank_txn_id = $3",
           3, (const char *const[]){account, code, txn});
    CHECK(h_i64("SELECT count(*) FROM credit_lots WHERE order_code = $1 AND left_fen = 10000", 1,
                (const char *const[]){code}) == 1);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "ledger_refund_relay");
    char group[H_ID_MAX], acct[H_ID_MAX];
    h_id(group, "ledger-refund-relay");
    h_id(acct, "refund-relay");
    h_group_at_end(group);
    h_mark_topics();
    struct h_proc led;
    h_ledger_start(&led, "ledger", group, NULL);
    struct tl_intake intake;
    tl_intake_start(&intake, NULL);
    tl_intake_wait_ready(&intake, H_WAIT_MS);

    h_step("a 100.00 credit from 张三, seeded in PostgreSQL (nothing sent to Kafka)");
    char code[REFCODE_STR_LEN];
    ids_refcode_new(code);
    seed_credit(acct, code);

    h_step("topupctl refund request + approve: the reservation waits in order-intake's outbox");
    char out[4096], rf[32];
    CHECK(refund_cmd(out, sizeof(out),
                     (const char *const[]){"refund", "request", "--order", code, "--amount",
                                           "60.00", "--reason", "customer asked", "--by",
                                           "support-li", NULL}) == 0);
    CHECK(sscanf(out, "%31s requested", rf) == 1 && strncmp(rf, "RF", 2) == 0);
    CHECK(refund_cmd(out, sizeof(out),
                     (const char *const[]){"refund", "approve", rf, "--reason", "checked the lot",
                                           "--by", "lead-wang", NULL}) == 0);
    PGresult *r = h_sql("SELECT reserve_event_id FROM refund_requests WHERE refund_id = $1 AND "
                        "state = 'approved' AND reserve_event_id IS NOT NULL",
                        1, (const char *const[]){rf});
    CHECK(PQntuples(r) == 1);
    char res[UUID_STR_LEN];
    snprintf(res, sizeof(res), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    CHECK(h_i64("SELECT count(*) FROM outbox WHERE event_id = $1 AND topic = 'refund.issued' AND "
                "source = 'order-intake' AND kafka_key = $2",
                2, (const char *const[]){res, acct}) == 1);

    h_step("order-intake's relay publishes it; the ledger takes 60.00 from the lot, once");
    h_wait_i64("the relay's publication",
               "SELECT count(*) FROM outbox WHERE event_id = $1 AND published_at IS NOT NULL", 1,
               (const char *const[]){res}, 1);
    h_wait_i64("the reservation's refund flow",
               "SELECT count(*) FROM account_flows WHERE event_id = $1 AND account_id = $2 AND "
               "flow_type = 'refund' AND amount_fen = -6000 AND reference = $3",
               3, (const char *const[]){res, acct, rf}, 1);
    h_wait_i64("the lot's left", "SELECT left_fen FROM credit_lots WHERE order_code = $1", 1,
               (const char *const[]){code}, 4000);
    CHECK(h_balance(acct) == 4000);
    h_check_chain(acct);
    CHECK(h_i64("SELECT count(*) FROM ledger_rejections WHERE event_id = $1", 1,
                (const char *const[]){res}) == 0);
    CHECK(h_i64("SELECT count(*) FROM refund_requests WHERE refund_id = $1 AND state = "
                "'approved' AND state_reason IS NULL",
                1, (const char *const[]){rf}) == 1);
    CHECK(h_i64("SELECT count(*) FROM account_flows WHERE account_id = $1", 1,
                (const char *const[]){acct}) == 2); /* the seeded recharge and the refund */

    h_step("the flow is announced on account.flows");
    struct h_flow want = {.source_event_id = ""};
    snprintf(want.source_event_id, sizeof(want.source_event_id), "%s", res);
    want.flow_id =
        h_i64("SELECT id FROM account_flows WHERE event_id = $1", 1, (const char *const[]){res});
    CHECK_MSG(h_flows_find(acct, &want, 1) == 1, "no AccountFlowRecorded for the refund flow");
    CHECK(want.flow_type != 0 && want.amount_fen == -6000 && want.balance_after_fen == 4000);

    CHECK(tl_proc_stop(&intake.proc, SIGTERM, 30000, NULL) == 0);
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);
    h_step("verify: no violations (lots left = balance)");
    int rc = h_topupctl(out, sizeof(out), (const char *const[]){"verify", NULL});
    fprintf(stderr, "%s", out);
    CHECK_MSG(rc == 0, "verify exited %d", rc);
    h_step("ok");
    return 0;
}
