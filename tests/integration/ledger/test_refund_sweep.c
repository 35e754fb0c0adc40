/*
 * The sweep of waiting usage refunds (LEDGER_REFUND_SWEEP_MS): 150 refunds waiting on one account
 * whose usages came in one batch (which reads back at most 100 of them) and 120 whose usages never
 * come are all decided without any further event: applied when their usage is charged (capped by
 * it), refused once LEDGER_REFUND_WAIT_S is over; nothing waits, nothing applies twice.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "testlib.h"

#define N_CHARGED 150 /* refunds whose usage comes after them */
#define N_OVER    10  /* of them, asking 1 fen more than their usage took: refused */
#define N_NEVER   120 /* refunds whose usage never comes */

static char S1[H_ID_MAX], S2[H_ID_MAX];

static int64_t pending(const char *account)
{
    return h_i64("SELECT count(*) FROM ledger_pending_refunds WHERE account_id = $1", 1,
                 (const char *const[]){account});
}

static int64_t count_flows(const char *account, const char *type)
{
    return h_i64("SELECT count(*) FROM account_flows WHERE account_id = $1 AND flow_type = $2", 2,
                 (const char *const[]){account, type});
}

static int64_t count_rejections(const char *account, const char *reason_part)
{
    return h_i64("SELECT count(*) FROM ledger_rejections WHERE account_id = $1 AND "
                 "strpos(reason, $2) > 0 AND source_topic = 'refund.issued' AND source_offset >= 0",
                 2, (const char *const[]){account, reason_part});
}

static int64_t usage_fen(int i)
{
    return 100 + i;
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "ledger_refund_sweep");
    char group[H_ID_MAX], prefix[H_ID_MAX];
    h_id(prefix, "lsw");
    h_id(group, "ledger-sweep");
    snprintf(S1, sizeof(S1), "%.80s-1", prefix);
    snprintf(S2, sizeof(S2), "%.80s-2", prefix);
    h_group_at_end(group);
    h_mark_topics();
    /* No sweep during the set-up (once a day): only events decide, as before the sweep. */
    static const char *const env_nosweep[] = {"LEDGER_REFUND_WAIT_S=600",
                                              "LEDGER_REFUND_SWEEP_MS=86400000", NULL};
    struct h_proc led;
    h_ledger_start(&led, "ledger-1", group, env_nosweep);

    h_step("%d usage refunds on one account arrive before their usages: all wait", N_CHARGED);
    for (int i = 0; i < N_CHARGED; i++) {
        char eid[UUID_STR_LEN], rf[32], req[32];
        h_event_id(eid);
        snprintf(rf, sizeof(rf), "rf-%d", i);
        snprintf(req, sizeof(req), "req-%d", i);
        h_send_usage_refund(eid, S1, rf, usage_fen(i) + (i >= N_CHARGED - N_OVER ? 1 : 0), req);
    }
    h_wait_i64("the refunds wait",
               "SELECT count(*) FROM ledger_pending_refunds WHERE "
               "account_id = $1",
               1, (const char *const[]){S1}, N_CHARGED);
    CHECK(h_balance(S1) == 0);
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);

    h_step("their %d usages, produced while no ledger runs, come in one batch", N_CHARGED);
    int64_t consumed = 0, refunded = 0;
    for (int i = 0; i < N_CHARGED; i++) {
        char eid[UUID_STR_LEN], req[32];
        h_event_id(eid);
        snprintf(req, sizeof(req), "req-%d", i);
        h_send_usage(eid, S1, req, -usage_fen(i));
        consumed += usage_fen(i);
        if (i < N_CHARGED - N_OVER) {
            refunded += usage_fen(i);
        }
    }
    h_ledger_start(&led, "ledger-2", group, env_nosweep);
    h_wait_i64("the usages applied",
               "SELECT count(*) FROM account_flows WHERE account_id = $1 "
               "AND flow_type = 'consume'",
               1, (const char *const[]){S1}, N_CHARGED);

    h_step("%d usage refunds whose usage never comes wait on another account", N_NEVER);
    for (int i = 0; i < N_NEVER; i++) {
        char eid[UUID_STR_LEN], rf[32], req[32];
        h_event_id(eid);
        snprintf(rf, sizeof(rf), "rf-never-%d", i);
        snprintf(req, sizeof(req), "req-never-%d", i);
        h_send_usage_refund(eid, S2, rf, 50, req);
    }
    h_wait_i64("they wait", "SELECT count(*) FROM ledger_pending_refunds WHERE account_id = $1", 1,
               (const char *const[]){S2}, N_NEVER);
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);
    int64_t left = pending(S1);
    fprintf(stderr, "refunds of charged usages still waiting after the usages' batch: %lld\n",
            (long long)left);
    /* The batch that brought the usages read back at most LEDGER_PENDING_PER_BATCH (100). */
    CHECK_MSG(left >= N_CHARGED - 100,
              "%lld refunds wait: the usages did not come in one batch, the test's premise",
              (long long)left);

    h_step("a ledger with the sweep (500 ms, wait 3 s): no event sent, every refund decided");
    static const char *const env_sweep[] = {"LEDGER_REFUND_WAIT_S=3", "LEDGER_REFUND_SWEEP_MS=500",
                                            NULL};
    h_ledger_start(&led, "ledger-3", group, env_sweep);
    h_wait_i64("no refund of a charged usage waits",
               "SELECT count(*) FROM ledger_pending_refunds WHERE account_id = $1", 1,
               (const char *const[]){S1}, 0);
    h_wait_i64("no refund of a usage that never came waits",
               "SELECT count(*) FROM ledger_pending_refunds WHERE account_id = $1", 1,
               (const char *const[]){S2}, 0);

    h_step("charged: %d applied, %d above their usage refused; never charged: all refused",
           N_CHARGED - N_OVER, N_OVER);
    CHECK(count_flows(S1, "refund") == N_CHARGED - N_OVER);
    CHECK(count_flows(S1, "consume") == N_CHARGED);
    CHECK(count_rejections(S1, "fen left to refund of usage") == N_OVER);
    CHECK(h_balance(S1) == -consumed + refunded);
    CHECK(h_i64("SELECT count(*) FROM account_flows f WHERE f.account_id = $1 AND "
                "f.flow_type = 'refund' AND f.amount_fen <> (SELECT -c.amount_fen FROM "
                "account_flows c WHERE c.account_id = f.account_id AND c.flow_type = 'consume' "
                "AND c.reference = f.refund_of)",
                1, (const char *const[]){S1}) == 0);
    CHECK(h_i64("SELECT count(*) FROM account_flows WHERE account_id = $1", 1,
                (const char *const[]){S2}) == 0);
    CHECK(count_rejections(S2, "not charged within 3 s") == N_NEVER);
    CHECK(h_balance(S2) == 0);
    h_check_chain(S1);
    int64_t swept = h_log_sum(&led, "waiting usage refunds decided by the sweep", "refunds");
    fprintf(stderr, "decided by the sweep: %lld\n", (long long)swept);
    CHECK(swept == left + N_NEVER);
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);

    h_step("topupctl verify: clean");
    char out[65536];
    int rc = h_topupctl(out, sizeof(out), (const char *const[]){"verify", NULL});
    fprintf(stderr, "%s", out);
    CHECK_MSG(rc == 0, "verify exited %d", rc);
    h_step("ok");
    return 0;
}
