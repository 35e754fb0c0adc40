/*
 * Ledger end to end: duplicates in and across batches, interleaved accounts, a negative balance,
 * recharges completing orders (and the refused ones), account.flows, the Redis balance, SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

static char A[H_ID_MAX], B[H_ID_MAX], C[H_ID_MAX];

static int64_t flows_of(const char *prefix)
{
    char like[H_ID_MAX + 2];
    snprintf(like, sizeof(like), "%s%%", prefix);
    const char *p[1] = {like};
    return h_i64("SELECT count(*) FROM account_flows WHERE account_id LIKE $1", 1, p);
}

static const char *order_field(const char *code, const char *field)
{
    static char out[64];
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT %s::text FROM topup_orders WHERE code = $1", field);
    const char *p[1] = {code};
    PGresult *r = h_sql(sql, 1, p);
    CHECK(PQntuples(r) == 1);
    snprintf(out, sizeof(out), "%s", PQgetisnull(r, 0, 0) ? "NULL" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "ledger_flows");
    char prefix[H_ID_MAX], group[H_ID_MAX];
    h_id(prefix, "lf");
    snprintf(A, sizeof(A), "%.80s-a", prefix);
    snprintf(B, sizeof(B), "%.80s-b", prefix);
    snprintf(C, sizeof(C), "%.80s-c", prefix);
    h_id(group, "ledger-flows");
    h_group_at_end(group); /* see only what is produced from now on */
    h_mark_topics();

    char o1[REFCODE_STR_LEN], o2[REFCODE_STR_LEN], o3[REFCODE_STR_LEN], o4[REFCODE_STR_LEN];
    ids_refcode_new(o1);
    ids_refcode_new(o2);
    ids_refcode_new(o3);
    ids_refcode_new(o4);
    h_order(o1, A, 10000, "processing");
    h_order(o2, A, 5000, "pending"); /* matched while not in processing: credited, flagged */
    h_order(o3, B, 3000, "processing");
    h_order(o4, C, 10000, "processing");

    char e[13][UUID_STR_LEN];
    for (int i = 0; i < 13; i++) {
        h_event_id(e[i]);
    }
    h_step("events produced before the ledger starts: they arrive as one batch");
    h_send_usage(e[1], A, "req-1", -300);
    h_send_usage(e[1], A, "req-1", -300); /* the same event three times, in one batch */
    h_send_usage(e[1], A, "req-1", -300);
    h_send_usage_refund(e[2], A, "rf-2", 100, "req-1"); /* gives back part of req-1 */
    h_send_usage(e[3], B, "req-3", -50); /* B goes negative: usage already happened */
    h_send_matched(e[4], A, o1, 10000, 10000);
    h_send_usage(e[5], A, "req-5", -200);
    h_send_matched(e[6], A, o2, 5000, 5000);
    h_send_matched(e[7], A, o3, 3000, 3000);  /* B's order: refused */
    h_send_matched(e[8], C, o4, 9000, 10000); /* less than asked: credited, flagged */
    h_send_matched(e[9], C, o4, 9000, 10000); /* another event for the same order: refused */
    h_send_matched(e[10], A, "TUNOSUCHORDER", 100, 100); /* no order: refused */
    h_send_refund(e[11], B, "rf-11", -25, 2);

    struct h_proc led;
    h_ledger_start(&led, "ledger", group, NULL);
    h_wait_i64("8 flows", "SELECT count(*) FROM account_flows WHERE account_id LIKE $1 || '%'", 1,
               (const char *const[]){prefix}, 8);
    h_wait_i64("3 rejections",
               "SELECT count(*) FROM ledger_rejections WHERE account_id LIKE $1 || '%'", 1,
               (const char *const[]){prefix}, 3);

    h_step("balances, balance_after in event order, orders");
    CHECK(h_balance(A) == -300 + 100 + 10000 - 200 + 5000);
    CHECK(h_balance(B) == -75);
    CHECK(h_balance(C) == 9000);
    h_check_chain(A);
    h_check_chain(B);
    h_check_chain(C);
    /*
     * Event order is per topic partition: A's usage (e1 before e5) and A's recharges (e4 before
     * e6) keep theirs; across topics the order is the order of arrival, and balance_after follows
     * whatever order the flows were applied in (h_check_chain).
     */
    PGresult *r = h_sql("SELECT event_id FROM account_flows WHERE account_id = $1 ORDER BY id", 1,
                        (const char *const[]){A});
    CHECK(PQntuples(r) == 5);
    int pos[13];
    for (int i = 0; i < 13; i++) {
        pos[i] = -1;
        for (int j = 0; j < PQntuples(r); j++) {
            if (strcmp(PQgetvalue(r, j, 0), e[i]) == 0) {
                pos[i] = j;
            }
        }
    }
    PQclear(r);
    CHECK(pos[1] >= 0 && pos[2] >= 0 && pos[4] >= 0 && pos[5] >= 0 && pos[6] >= 0);
    CHECK(pos[1] < pos[5]);
    CHECK(pos[4] < pos[6]);
    CHECK(strcmp(order_field(o1, "status"), "completed") == 0);
    CHECK(strcmp(order_field(o1, "credited_fen"), "10000") == 0);
    CHECK(strcmp(order_field(o1, "amount_mismatch"), "false") == 0);
    CHECK(strcmp(order_field(o1, "completed_at"), "NULL") != 0);
    CHECK(strcmp(order_field(o2, "status"), "pending") == 0);
    CHECK(strcmp(order_field(o3, "status"), "processing") == 0);
    CHECK(strcmp(order_field(o4, "status"), "completed") == 0);
    CHECK(strcmp(order_field(o4, "credited_fen"), "9000") == 0);
    CHECK(strcmp(order_field(o4, "amount_mismatch"), "true") == 0);

    h_step("refused recharges: in ledger_rejections and on payment.matched.dlq with the reason");
    const char *reasons[3][2] = {
        {e[7], "belongs to another account"}, {e[9], "already credited"}, {e[10], "not found"}};
    for (int i = 0; i < 3; i++) {
        const char *p[2] = {reasons[i][0], reasons[i][1]};
        CHECK_MSG(h_i64("SELECT count(*) FROM ledger_rejections WHERE event_id = $1 AND "
                        "strpos(reason, $2) > 0",
                        2, p) == 1,
                  "rejection %s should say %s", p[0], p[1]);
    }
    const char *dlq_keys[3] = {A, C, A};
    for (int i = 0; i < 3; i++) {
        CHECK_MSG(h_dlq_count("payment.matched", dlq_keys[i], reasons[i][1], 1) == 1,
                  "no dead letter of %s says \"%s\"", dlq_keys[i], reasons[i][1]);
    }
    CHECK(h_log_count(&led, "recharge credited to an order that is not in processing") == 1);

    h_step("the same events again, in later batches: nothing changes");
    h_send_usage(e[1], A, "req-1", -300);
    h_send_matched(e[4], A, o1, 10000, 10000);
    h_send_matched(e[8], C, o4, 9000, 10000);
    /* Sentinels behind the duplicates in the same partitions (key = account). */
    h_send_usage(e[12], A, "req-12", -1);
    h_event_id(e[0]);
    struct h_sent sc = h_send_usage(e[0], C, "req-0", -1);
    h_wait_i64("sentinels applied", "SELECT count(*) FROM account_flows WHERE event_id IN ($1, $2)",
               2, (const char *const[]){e[12], e[0]}, 2);
    CHECK(flows_of(prefix) == 10);
    CHECK(h_balance(A) == 14599);
    CHECK(h_balance(C) == 8999);
    h_check_chain(A);
    h_check_chain(C);
    CHECK(strcmp(order_field(o4, "credited_fen"), "9000") == 0);
    CHECK(h_log_sum(&led, "ledger batch committed", "duplicates") >= 5);

    h_step("account.flows: every flow published once acknowledged, with its balance");
    h_wait_i64("flows published (watermark past them)",
               "SELECT count(*) FROM account_flows f, ledger_flows_publisher p "
               "WHERE f.account_id LIKE $1 || '%' AND f.id > p.published_upto",
               1, (const char *const[]){prefix}, 0);
    /*
     * Other ledgers of concurrent tests see these events on the shared topics too and publish
     * their own flows of them; a flow is matched by (flow id, source event id) and content.
     */
    static struct h_flow flows[16];
    r = h_sql("SELECT id, event_id, amount_fen, balance_after_fen, account_id FROM account_flows "
              "WHERE account_id LIKE $1 || '%' ORDER BY id",
              1, (const char *const[]){prefix});
    int nf = PQntuples(r);
    CHECK(nf == 10);
    for (int i = 0; i < nf; i++) {
        flows[i].flow_id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        snprintf(flows[i].source_event_id, sizeof(flows[i].source_event_id), "%s",
                 PQgetvalue(r, i, 1));
    }
    CHECK_MSG(h_flows_find(prefix, flows, nf) == nf, "not every flow is on account.flows");
    for (int i = 0; i < nf; i++) {
        CHECK_MSG(flows[i].amount_fen == strtoll(PQgetvalue(r, i, 2), NULL, 10) &&
                      flows[i].balance_after_fen == strtoll(PQgetvalue(r, i, 3), NULL, 10) &&
                      strcmp(flows[i].account, PQgetvalue(r, i, 4)) == 0 &&
                      ids_uuid_valid(flows[i].event_id) &&
                      strcmp(flows[i].event_id, flows[i].source_event_id) != 0,
                  "flow %s on account.flows differs from what was committed", PQgetvalue(r, i, 0));
    }
    PQclear(r);
    /* Per account, flows leave in id order (flows[] is in id order). */
    for (int j = 1; j < nf; j++) {
        for (int k = 0; k < j; k++) {
            if (strcmp(flows[j].account, flows[k].account) == 0) {
                CHECK_MSG(flows[j].seq > flows[k].seq, "account.flows out of order for %s",
                          flows[j].account);
            }
        }
    }

    h_step("Redis holds the newest balance and version");
    const char *accts[3] = {A, B, C};
    for (int i = 0; i < 3; i++) {
        const char *p[1] = {accts[i]};
        char want_bal[32], want_ver[32], got[64];
        snprintf(want_bal, sizeof(want_bal), "%lld", (long long)h_balance(accts[i]));
        snprintf(
            want_ver, sizeof(want_ver), "%lld",
            (long long)h_i64("SELECT balance_version FROM accounts WHERE account_id = $1", 1, p));
        int64_t deadline_tries = 100;
        while (
            !(h_cached(accts[i], "balance_fen", got, sizeof(got)) && strcmp(got, want_bal) == 0) &&
            deadline_tries-- > 0) {
            struct timespec ts = {0, 100000000L};
            nanosleep(&ts, NULL);
        }
        CHECK_MSG(h_cached(accts[i], "balance_fen", got, sizeof(got)) && strcmp(got, want_bal) == 0,
                  "Redis balance of %s is %s, want %s", accts[i], got, want_bal);
        CHECK(h_cached(accts[i], "version", got, sizeof(got)) && strcmp(got, want_ver) == 0);
    }

    h_step("SIGTERM: exit 0 and the offsets of what was applied are committed");
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);
    CHECK(h_log_count(&led, "\"msg\":\"ledger stopped\"") == 1);
    int64_t committed = h_committed(group, sc.topic, sc.partition);
    CHECK_MSG(committed > sc.offset, "committed offset %lld, sentinel at %lld",
              (long long)committed, (long long)sc.offset);

    h_step("topupctl verify: only the flagged order (credited while pending) is reported");
    char out[8192];
    int rc = h_topupctl(out, sizeof(out), (const char *const[]){"verify", NULL});
    fprintf(stderr, "%s", out);
    CHECK(rc == 5);
    CHECK(strstr(out, "violation recharge_order_not_completed") != NULL);
    CHECK(strstr(out, o2) != NULL);
    CHECK(strstr(out, "1 violation ") != NULL);
    h_step("ok");
    return 0;
}
