/*
 * Ledger trust boundary (issue #15 items 1 and 5): events anyone could write to Kafka are
 * credited only as far as PostgreSQL vouches for them. Each attack is performed against the real
 * ledger process and shown refused (dead letter with the reason, ledger_rejections, counter),
 * while the genuine events around it are applied exactly once.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "testlib.h"
#include "topup/ids.h"

static char prefix[H_ID_MAX];

static const char *order_status(const char *code)
{
    static char out[32];
    PGresult *r =
        h_sql("SELECT status FROM topup_orders WHERE code = $1", 1, (const char *const[]){code});
    CHECK(PQntuples(r) == 1);
    snprintf(out, sizeof(out), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

static int64_t rejections(const char *eid, const char *reason_part)
{
    return h_i64("SELECT count(*) FROM ledger_rejections WHERE event_id = $1 AND "
                 "strpos(reason, $2) > 0",
                 2, (const char *const[]){eid, reason_part});
}

static void wait_rejection(const char *what, const char *eid, const char *reason_part)
{
    h_wait_i64(what,
               "SELECT count(*) FROM ledger_rejections WHERE event_id = $1 AND "
               "strpos(reason, $2) > 0",
               2, (const char *const[]){eid, reason_part}, 1);
}

static int64_t flows_of(const char *eid)
{
    return h_i64("SELECT count(*) FROM account_flows WHERE event_id = $1", 1,
                 (const char *const[]){eid});
}

static int64_t counter(const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "topup:ctr:ledger:%s", name);
    return tl_redis_counter(key);
}

/* Waits until the ledger's counter `name` is at least want (counters flush every second). */
static void wait_counter(const char *name, int64_t want)
{
    int64_t deadline = tl_now_ms() + H_WAIT_MS;
    while (counter(name) < want) {
        CHECK_MSG(tl_now_ms() < deadline, "counter %s stayed at %lld, want >= %lld", name,
                  (long long)counter(name), (long long)want);
        tl_sleep_ms(100);
    }
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "ledger_trust");
    char group[H_ID_MAX], A[H_ID_MAX], B[H_ID_MAX], C[H_ID_MAX], D[H_ID_MAX];
    h_id(prefix, "lt");
    h_id(group, "ledger-trust");
    h_group_at_end(group);
    h_mark_topics();
    snprintf(A, sizeof(A), "%.80s-a", prefix);
    snprintf(B, sizeof(B), "%.80s-b", prefix);
    snprintf(C, sizeof(C), "%.80s-c", prefix);
    snprintf(D, sizeof(D), "%.80s-d", prefix);
    int64_t provenance0 = counter("refused.provenance");
    int64_t ceiling0 = counter("refused.ceiling");
    int64_t conflict0 = counter("refused.conflict");

    /* A usage refund naming no usage waits this long, then is refused. */
    static const char *const env[] = {"LEDGER_REFUND_WAIT_S=3", NULL};
    struct h_proc led;
    h_ledger_start(&led, "ledger", group, env);

    h_step("forged PaymentMatched for the sender's own pending order: refused, order pending");
    char pending[REFCODE_STR_LEN], e_huge[UUID_STR_LEN], e_forged[UUID_STR_LEN];
    ids_refcode_new(pending);
    h_order(pending, A, 50000, "pending");
    h_event_id(e_huge);
    h_event_id(e_forged);
    /* 1,000,000,000.00 CNY: above the recharge ceiling (1,000,000.00) before anything else. */
    h_send_matched_unrecorded(e_huge, A, pending, 100000000000, 50000, e_huge);
    /* 5,000.00 CNY, under the ceiling: no match decision names this order. */
    h_send_matched_unrecorded(e_forged, A, pending, 500000, 50000, e_forged);
    wait_rejection("huge forged recharge refused", e_huge, "above the ceiling");
    wait_rejection("forged recharge refused", e_forged, "has no match decision");
    CHECK(strcmp(order_status(pending), "pending") == 0);
    CHECK(h_dlq_count("payment.matched", A, "above the ceiling", 1) == 1);
    CHECK(h_dlq_count("payment.matched", A, "has no match decision", 1) == 1);

    h_step("a real match decision: a PaymentMatched naming another amount or record is refused");
    char matched[REFCODE_STR_LEN], e_more[UUID_STR_LEN], e_other[UUID_STR_LEN];
    char e_real[UUID_STR_LEN];
    ids_refcode_new(matched);
    h_order(matched, B, 10000, "processing");
    h_event_id(e_more);
    h_event_id(e_other);
    h_event_id(e_real);
    h_record_match(matched, e_real, 10000); /* what reconciliation recorded: 100.00 */
    h_send_matched_unrecorded(e_more, B, matched, 1000000, 10000, e_real); /* 10,000.00 */
    h_send_matched_unrecorded(e_other, B, matched, 10000, 10000, e_other); /* another record */
    wait_rejection("inflated recharge refused", e_more, "is not the matched transfer's 10000");
    wait_rejection("recharge of another record refused", e_other, "another bank record");
    CHECK(h_balance(B) == 0);
    h_send_matched_unrecorded(e_real, B, matched, 10000, 10000, e_real);
    h_wait_i64("the genuine recharge", "SELECT count(*) FROM account_flows WHERE event_id = $1", 1,
               (const char *const[]){e_real}, 1);
    CHECK(h_balance(B) == 10000);
    CHECK(strcmp(order_status(matched), "completed") == 0);

    h_step("usage refunds: only of a usage the account was charged, at most what it took");
    char e_rhuge[UUID_STR_LEN], e_use[UUID_STR_LEN], e_r150[UUID_STR_LEN], e_r60[UUID_STR_LEN];
    char e_r41[UUID_STR_LEN], e_r40[UUID_STR_LEN], e_rnone[UUID_STR_LEN];
    h_event_id(e_rhuge);
    h_event_id(e_use);
    h_event_id(e_r150);
    h_event_id(e_r60);
    h_event_id(e_r41);
    h_event_id(e_r40);
    h_event_id(e_rnone);
    /* 500,000,000.00 CNY on an account with no usage: above the refund ceiling. */
    h_send_usage_refund(e_rhuge, C, "rf-huge", 50000000000, "req-none");
    wait_rejection("huge usage refund refused", e_rhuge, "above the ceiling");
    h_send_usage(e_use, C, "req-a", -100);
    h_wait_i64("C's usage", "SELECT count(*) FROM account_flows WHERE event_id = $1", 1,
               (const char *const[]){e_use}, 1);
    h_send_usage_refund(e_r150, C, "rf-150", 150, "req-a");
    wait_rejection("refund above the usage refused", e_r150, "more than the 100 fen left");
    h_send_usage_refund(e_r60, C, "rf-60", 60, "req-a");
    h_send_usage_refund(e_r41, C, "rf-41", 41, "req-a");
    h_send_usage_refund(e_r40, C, "rf-40", 40, "req-a");
    wait_rejection("refund above what is left refused", e_r41, "more than the 40 fen left");
    h_wait_i64("the refunds that fit",
               "SELECT count(*) FROM account_flows WHERE event_id IN ($1, $2)", 2,
               (const char *const[]){e_r60, e_r40}, 2);
    CHECK(h_balance(C) == -100 + 60 + 40);
    CHECK(h_dlq_count("refund.issued", C, "fen left", 2) == 2);

    h_step(
        "a usage refund naming a usage that never comes waits, credits nothing, then is refused");
    h_send_usage_refund(e_rnone, C, "rf-none", 100, "req-never");
    h_wait_i64("it waits", "SELECT count(*) FROM ledger_pending_refunds WHERE event_id = $1", 1,
               (const char *const[]){e_rnone}, 1);
    CHECK(flows_of(e_rnone) == 0);
    CHECK(h_balance(C) == 0);
    tl_sleep_ms(3500);
    char e_poke[UUID_STR_LEN];
    h_event_id(e_poke);
    h_send_usage(e_poke, C, "req-poke", -1); /* the account's next batch decides it */
    wait_rejection("the waiting refund refused after LEDGER_REFUND_WAIT_S", e_rnone,
                   "not charged within 3 s");
    CHECK(h_i64("SELECT count(*) FROM ledger_pending_refunds WHERE event_id = $1", 1,
                (const char *const[]){e_rnone}) == 0);
    CHECK(flows_of(e_rnone) == 0);
    CHECK(h_balance(C) == -1);

    h_step("a usage refund that arrives before its usage (another topic) is applied once it comes");
    char e_early[UUID_STR_LEN], e_late[UUID_STR_LEN];
    h_event_id(e_early);
    h_event_id(e_late);
    h_send_usage_refund(e_early, D, "rf-early", 70, "req-late");
    h_wait_i64("the early refund waits",
               "SELECT count(*) FROM ledger_pending_refunds WHERE event_id = $1", 1,
               (const char *const[]){e_early}, 1);
    CHECK(h_balance(D) == 0);
    h_send_usage(e_late, D, "req-late", -90);
    h_wait_i64("usage and refund applied",
               "SELECT count(*) FROM account_flows WHERE event_id IN ($1, $2)", 2,
               (const char *const[]){e_early, e_late}, 2);
    CHECK(h_balance(D) == -90 + 70);
    CHECK(h_i64("SELECT count(*) FROM ledger_pending_refunds WHERE account_id = $1", 1,
                (const char *const[]){D}) == 0);
    h_check_chain(D);

    h_step("conflicts are loud: a reused event id, a usage request id under a new event id");
    char e_u1[UUID_STR_LEN], e_retry[UUID_STR_LEN];
    h_event_id(e_u1);
    h_event_id(e_retry);
    h_send_usage(e_u1, A, "req-1", -10);
    h_wait_i64("A's usage", "SELECT count(*) FROM account_flows WHERE event_id = $1", 1,
               (const char *const[]){e_u1}, 1);
    h_send_usage(e_u1, A, "req-1b", -5000); /* the same event id, another body */
    h_send_usage(e_retry, A, "req-1", -10); /* the gateway's retry made a new event */
    wait_rejection("usage request charged again refused", e_retry, "already charged by event");
    CHECK(h_dlq_count("usage.recorded", A, "reused with other content", 1) == 1);
    CHECK(h_dlq_count("usage.recorded", A, "already charged by event", 1) == 1);
    CHECK(rejections(e_u1, "") == 0); /* the id stays what it was: one flow of -10 */
    CHECK(h_i64("SELECT amount_fen FROM account_flows WHERE event_id = $1", 1,
                (const char *const[]){e_u1}) == -10);
    CHECK(h_balance(A) == -10);

    h_step("each refusal counted: refused.provenance, refused.ceiling, refused.conflict");
    wait_counter("refused.provenance", provenance0 + 6);
    wait_counter("refused.ceiling", ceiling0 + 2);
    wait_counter("refused.conflict", conflict0 + 2);
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);

    h_step("topupctl verify: the refused events left nothing to repair");
    char out[65536];
    int rc = h_topupctl(out, sizeof(out), (const char *const[]){"verify", NULL});
    fprintf(stderr, "%s", out);
    CHECK_MSG(rc == 0, "verify exited %d", rc);
    h_step("ok");
    return 0;
}
