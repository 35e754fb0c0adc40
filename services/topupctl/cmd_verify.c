/* topupctl verify: checks the ledger invariants of the SPEC and prints every violation. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "topup/pg.h"

/* Rows printed per check; beyond it the check says how many it did not print. */
#define VERIFY_ROWS_MAX           10000
#define VERIFY_CONNECT_TIMEOUT_MS 10000

static const char verify_usage[] =
    "usage: topupctl verify\n"
    "\n"
    "Checks, in one consistent snapshot of PostgreSQL (PG_CONNINFO), the ledger's invariants and\n"
    "prints one line per violation:\n"
    "  balance_mismatch          an account's balance is not the sum of its flows\n"
    "  balance_after_mismatch    a flow's balance_after is not the running sum of its account\n"
    "  order_recharge_count      a completed order does not have exactly one recharge flow\n"
    "  order_recharge_amount     a completed order's recharge flow is not its credited amount\n"
    "  recharge_without_order    a recharge flow whose reference is no order\n"
    "  recharge_wrong_account    a recharge flow on another account than its order's\n"
    "  recharge_order_not_completed  a recharge flow whose order is not completed\n"
    "  order_recharged_twice     more than one recharge flow for one order\n"
    "  flow_without_source       a flow without event id or reference\n"
    "  duplicate_event_id        an event id on more than one flow\n"
    "  event_applied_and_rejected  an event id both in account_flows and ledger_rejections\n"
    "  recharge_without_decision   a recharge flow whose order has no match decision\n"
    "  recharge_not_as_decided     a recharge flow whose amount is not its matched record's\n"
    "  recharge_without_import     a recharge flow whose matched record has no recorded import\n"
    "                              (no import_id, or its import is missing)\n"
    "  usage_refund_without_usage  a usage refund (positive refund) naming no usage of its\n"
    "                              account\n"
    "  usage_refund_above_usage    usage refunds of one usage giving back more than it took\n"
    "  lots_left_mismatch          an account's credit lots left do not add up to the\n"
    "                              positive part of its balance\n"
    "  recharge_without_lot        a recharge flow that opened no credit lot (or one of\n"
    "                              another account or amount)\n"
    "  amount_above_ceiling        a flow above the ledger's ceiling of its kind\n"
    "                              (LEDGER_MAX_RECHARGE_FEN, _USAGE_FEN, _REFUND_FEN)\n"
    "Exit 0 when there is none, 5 when there are violations, 1 when the check could not run.\n";

struct verify_check {
    const char *kind;
    const char *sql; /* every row is one violation; columns are printed as name=value */
};

static const struct verify_check verify_checks[] = {
    {"balance_mismatch",
     "SELECT a.account_id AS account, a.balance_fen, COALESCE(s.total, 0) AS flows_sum_fen "
     "FROM accounts a LEFT JOIN (SELECT account_id, sum(amount_fen) AS total FROM account_flows "
     "GROUP BY account_id) s USING (account_id) "
     "WHERE a.balance_fen <> COALESCE(s.total, 0) ORDER BY a.account_id"},
    {"balance_after_mismatch",
     "SELECT id AS flow_id, account_id AS account, balance_after_fen, running AS expected_fen "
     "FROM (SELECT id, account_id, balance_after_fen, sum(amount_fen) OVER "
     "(PARTITION BY account_id ORDER BY id) AS running FROM account_flows) f "
     "WHERE balance_after_fen <> running ORDER BY account_id, id"},
    {"order_recharge_count",
     "SELECT o.code AS order_code, count(f.id) AS recharge_flows FROM topup_orders o "
     "LEFT JOIN account_flows f ON f.flow_type = 'recharge' AND f.reference = o.code "
     "WHERE o.status = 'completed' GROUP BY o.code HAVING count(f.id) <> 1 ORDER BY o.code"},
    {"order_recharge_amount",
     "SELECT o.code AS order_code, o.credited_fen, f.amount_fen AS flow_amount_fen, f.id AS "
     "flow_id "
     "FROM topup_orders o JOIN account_flows f ON f.flow_type = 'recharge' AND f.reference = "
     "o.code "
     "WHERE o.status = 'completed' AND o.credited_fen IS DISTINCT FROM f.amount_fen "
     "ORDER BY o.code, f.id"},
    {"recharge_without_order",
     "SELECT f.id AS flow_id, f.account_id AS account, f.reference FROM account_flows f "
     "WHERE f.flow_type = 'recharge' AND NOT EXISTS "
     "(SELECT 1 FROM topup_orders o WHERE o.code = f.reference) ORDER BY f.id"},
    {"recharge_wrong_account",
     "SELECT f.id AS flow_id, f.reference AS order_code, f.account_id AS flow_account, "
     "o.account_id AS order_account FROM account_flows f "
     "JOIN topup_orders o ON o.code = f.reference "
     "WHERE f.flow_type = 'recharge' AND o.account_id <> f.account_id ORDER BY f.id"},
    {"recharge_order_not_completed",
     "SELECT f.id AS flow_id, f.reference AS order_code, o.status FROM account_flows f "
     "JOIN topup_orders o ON o.code = f.reference "
     "WHERE f.flow_type = 'recharge' AND o.status <> 'completed' ORDER BY f.id"},
    {"order_recharged_twice",
     "SELECT reference AS order_code, count(*) AS recharge_flows FROM account_flows "
     "WHERE flow_type = 'recharge' GROUP BY reference HAVING count(*) > 1 ORDER BY reference"},
    {"flow_without_source",
     "SELECT id AS flow_id, account_id AS account, flow_type, event_id, reference "
     "FROM account_flows WHERE btrim(event_id) = '' OR btrim(reference) = '' ORDER BY id"},
    {"duplicate_event_id",
     "SELECT event_id, count(*) AS flows FROM account_flows GROUP BY event_id "
     "HAVING count(*) > 1 ORDER BY event_id"},
    {"event_applied_and_rejected",
     "SELECT r.event_id, f.id AS flow_id, r.reason FROM ledger_rejections r "
     "JOIN account_flows f USING (event_id) ORDER BY r.event_id"},
    /* Provenance (SPEC, Trust): each credit as reconciliation decided it. */
    {"recharge_without_decision",
     "SELECT f.id AS flow_id, f.account_id AS account, f.reference AS order_code "
     "FROM account_flows f JOIN topup_orders o ON o.code = f.reference "
     "WHERE f.flow_type = 'recharge' AND NOT EXISTS (SELECT 1 FROM match_decisions d "
     "WHERE d.order_id = o.id AND d.outcome = 'matched') ORDER BY f.id"},
    {"recharge_not_as_decided",
     "SELECT f.id AS flow_id, f.reference AS order_code, f.amount_fen, "
     "r.amount_fen AS record_amount_fen, d.id AS decision_id FROM account_flows f "
     "JOIN topup_orders o ON o.code = f.reference "
     "JOIN match_decisions d ON d.order_id = o.id AND d.outcome = 'matched' "
     "JOIN statement_records r ON r.id = d.record_id "
     "WHERE f.flow_type = 'recharge' AND r.amount_fen <> f.amount_fen ORDER BY f.id"},
    {"recharge_without_import",
     "SELECT f.id AS flow_id, f.reference AS order_code, r.bank_txn_id, r.import_id "
     "FROM account_flows f JOIN topup_orders o ON o.code = f.reference "
     "JOIN match_decisions d ON d.order_id = o.id AND d.outcome = 'matched' "
     "JOIN statement_records r ON r.id = d.record_id "
     "LEFT JOIN statement_imports si ON si.id = r.import_id "
     "WHERE f.flow_type = 'recharge' AND si.id IS NULL ORDER BY f.id"},
    {"usage_refund_without_usage",
     "SELECT f.id AS flow_id, f.account_id AS account, f.reference, f.refund_of, f.amount_fen "
     "FROM account_flows f WHERE f.flow_type = 'refund' AND f.amount_fen > 0 AND "
     "(f.refund_of IS NULL OR NOT EXISTS (SELECT 1 FROM account_flows c WHERE "
     "c.flow_type = 'consume' AND c.account_id = f.account_id AND c.reference = f.refund_of)) "
     "ORDER BY f.id"},
    {"usage_refund_above_usage",
     "SELECT c.account_id AS account, c.reference AS usage, -c.amount_fen AS consumed_fen, "
     "sum(f.amount_fen) AS refunded_fen FROM account_flows f JOIN account_flows c ON "
     "c.flow_type = 'consume' AND c.account_id = f.account_id AND c.reference = f.refund_of "
     "WHERE f.flow_type = 'refund' GROUP BY c.account_id, c.reference, c.amount_fen "
     "HAVING sum(f.amount_fen) > -c.amount_fen ORDER BY c.account_id, c.reference"},
    /* Credit lots (issue #14): what is left of each recharge adds up to the balance. */
    {"lots_left_mismatch",
     "SELECT a.account_id AS account, a.balance_fen, COALESCE(l.left_fen, 0) AS lots_left_fen "
     "FROM accounts a LEFT JOIN (SELECT account_id, sum(left_fen) AS left_fen FROM credit_lots "
     "GROUP BY account_id) l USING (account_id) "
     "WHERE GREATEST(a.balance_fen, 0) <> COALESCE(l.left_fen, 0) ORDER BY a.account_id"},
    {"recharge_without_lot",
     "SELECT f.id AS flow_id, f.account_id AS account, f.reference AS order_code, f.amount_fen "
     "FROM account_flows f WHERE f.flow_type = 'recharge' AND NOT EXISTS (SELECT 1 FROM "
     "credit_lots l WHERE l.flow_id = f.id AND l.account_id = f.account_id AND "
     "l.paid_fen = f.amount_fen) ORDER BY f.id"},
};

/* Checks whose sql takes $1..$3: the recharge, usage and refund ceilings. */
static const struct verify_check verify_ceiling_checks[] = {
    {"amount_above_ceiling",
     "SELECT id AS flow_id, account_id AS account, flow_type, amount_fen, reference "
     "FROM account_flows WHERE (flow_type = 'recharge' AND amount_fen > $1::bigint) OR "
     "(flow_type = 'consume' AND amount_fen < -$2::bigint) OR (flow_type = 'refund' AND "
     "(amount_fen > $3::bigint OR amount_fen < -$3::bigint)) ORDER BY id"},
};

static const char verify_sql_totals[] =
    "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM account_flows), "
    "(SELECT count(*) FROM topup_orders WHERE status = 'completed')";

/* Runs one check; prints its rows; adds them to *violations. TP_OK unless the query failed. */
static enum tp_status verify_run(struct pg_conn *c, const struct verify_check *chk, bool ceilings,
                                 long long *violations, struct tp_error *err)
{
    char sql[2048];
    snprintf(sql, sizeof(sql), "SELECT * FROM (%s) v LIMIT %d", chk->sql, VERIFY_ROWS_MAX + 1);
    char ceiling[3][24];
    snprintf(ceiling[0], sizeof(ceiling[0]), "%lld", (long long)topupctl_cfg.max_recharge_fen);
    snprintf(ceiling[1], sizeof(ceiling[1]), "%lld", (long long)topupctl_cfg.max_usage_fen);
    snprintf(ceiling[2], sizeof(ceiling[2]), "%lld", (long long)topupctl_cfg.max_refund_fen);
    const char *const params[3] = {ceiling[0], ceiling[1], ceiling[2]};
    PGresult *r = NULL;
    enum tp_status st = pg_exec(c, sql, ceilings ? 3 : 0, ceilings ? params : NULL, &r, err);
    if (st != TP_OK) {
        error_set(err, st, "check %s: %.400s", chk->kind, err->msg);
        return st;
    }
    int rows = PQntuples(r);
    for (int row = 0; row < rows && row < VERIFY_ROWS_MAX; row++) {
        printf("violation %s:", chk->kind);
        for (int col = 0; col < PQnfields(r); col++) {
            printf(" %s=%s", PQfname(r, col),
                   PQgetisnull(r, row, col) ? "NULL" : PQgetvalue(r, row, col));
        }
        printf("\n");
    }
    if (rows > VERIFY_ROWS_MAX) {
        printf("violation %s: more than %d rows, the rest not printed\n", chk->kind,
               VERIFY_ROWS_MAX);
    }
    *violations += rows;
    PQclear(r);
    return TP_OK;
}

static int verify_all(struct pg_conn *c)
{
    struct tp_error err = {0};
    long long violations = 0;
    PGresult *r = NULL;
    int rc = TOPUPCTL_EXIT_FAILURE;
    /* One snapshot for every check, so a ledger committing meanwhile raises no false alarm. */
    if (pg_begin(c, &err) != TP_OK ||
        pg_exec(c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL, NULL,
                &err) != TP_OK) {
        goto out;
    }
    for (size_t i = 0; i < sizeof(verify_checks) / sizeof(verify_checks[0]); i++) {
        if (verify_run(c, &verify_checks[i], false, &violations, &err) != TP_OK) {
            goto out;
        }
    }
    for (size_t i = 0; i < sizeof(verify_ceiling_checks) / sizeof(verify_ceiling_checks[0]); i++) {
        if (verify_run(c, &verify_ceiling_checks[i], true, &violations, &err) != TP_OK) {
            goto out;
        }
    }
    if (pg_exec(c, verify_sql_totals, 0, NULL, &r, &err) != TP_OK) {
        goto out;
    }
    if (violations > 0) {
        printf("%lld violation%s (%s accounts, %s flows, %s completed orders checked)\n",
               violations, violations == 1 ? "" : "s", pg_get_str(r, 0, 0), pg_get_str(r, 0, 1),
               pg_get_str(r, 0, 2));
        rc = TOPUPCTL_EXIT_VIOLATIONS;
    } else {
        printf("ok: no violations (%s accounts, %s flows, %s completed orders checked)\n",
               pg_get_str(r, 0, 0), pg_get_str(r, 0, 1), pg_get_str(r, 0, 2));
        rc = TOPUPCTL_EXIT_OK;
    }
out:
    PQclear(r);
    pg_rollback(c);
    if (rc == TOPUPCTL_EXIT_FAILURE) {
        fprintf(stderr, "topupctl verify: %s\n", err.msg);
    }
    return rc;
}

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'h') {
            fputs(verify_usage, stdout);
            return TOPUPCTL_EXIT_OK;
        }
        fputs(verify_usage, stderr);
        return TOPUPCTL_EXIT_USAGE;
    }
    if (optind != argc) {
        fputs(verify_usage, stderr);
        return TOPUPCTL_EXIT_USAGE;
    }
    struct tp_error err = {0};
    struct pg_conn *c = pg_conn_new(topupctl_cfg.pg_conninfo, VERIFY_CONNECT_TIMEOUT_MS, &err);
    if (c == NULL) {
        fprintf(stderr, "topupctl verify: %s\n", err.msg);
        return TOPUPCTL_EXIT_FAILURE;
    }
    int rc = verify_all(c);
    pg_conn_free(c);
    return rc;
}
