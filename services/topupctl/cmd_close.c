/* topupctl close: the nightly three-way close of one business day (statement, matches, ledger). */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "days.h"
#include "topup/money.h"
#include "topup/pg.h"

#define CLOSE_CONNECT_TIMEOUT_MS 10000
/* Rows printed per break kind and per section; beyond it the kind says how many it left out. */
#define CLOSE_ROWS_MAX 10000
/* Advisory lock key 1 ("topc"); key 2 is the day number: one close of a day at a time. */
#define CLOSE_LOCK_KEY "1953460323"
/* First line of the canonical content; v2 added the refunds (v1 closes hash without them). */
#define CLOSE_CONTENT_VERSION "close v2"

enum close_exit {
    CLOSE_EXIT_CLEAN = 0,  /* the day closed with no break */
    CLOSE_EXIT_BREAKS = 1, /* the day closed with breaks (listed) */
    CLOSE_EXIT_ERROR = 2,  /* usage, configuration, database, lock: the day was not closed */
};

static const char close_usage[] =
    "usage: topupctl close --date YYYY-MM-DD [--csv FILE] [--by NAME]\n"
    "\n"
    "Closes one business day (Asia/Shanghai calendar day) in one consistent snapshot of\n"
    "PostgreSQL (PG_CONNINFO): the day's statement credits against the match decisions and the\n"
    "recharge flows, every account's balance roll-forward, and the unmatched funds with their "
    "age.\n"
    "Stores the close (table closes, chained by SHA-256 to the previous day's close) and prints\n"
    "every break with the records behind it. Breaks:\n"
    "  credit_not_matched       an unmatched credit older than TOPUPCTL_CLOSE_UNMATCHED_MAX_DAYS\n"
    "  matched_not_credited     a matched record of the day whose order has no recharge flow\n"
    "  recharge_not_as_matched  a recharge flow whose amount (or account) is not its match's\n"
    "  recharge_without_record  a recharge flow of the day without a matched statement record\n"
    "  opening_mismatch         an account's opening (previous close) != its flows before the day\n"
    "  balance_mismatch         an account's closing != its balance less the flows after the day\n"
    "  closed_day_changed       the day was closed before with other content (both hashes)\n"
    "  close_tampered           a stored close whose content no longer has its stored hash\n"
    "  refund_debit_unmatched         a bank debit of the day naming a refund (id or end-to-end\n"
    "                                 id) that is not paid out, or naming no refund at all\n"
    "  refund_paid_without_sent       a refund paid out that was never sent (no payout file)\n"
    "  refund_sent_unreserved         a refund sent without its reservation in the ledger\n"
    "  refund_payout_without_request  a bank payout flow of the day that is no approved\n"
    "                                 request's reservation (no request, other account/amount)\n"
    "  refund_restore_missing         a failed refund whose reserved credit was not restored\n"
    "  refund_restore_wrong           credit restored for a refund that did not fail, twice,\n"
    "                                 or not as the request\n"
    "  refund_outstanding_too_long    sent, neither paid out nor failed after\n"
    "                                 TOPUPCTL_CLOSE_PAYOUT_MAX_DAYS days\n"
    "  refund_state_unaudited         a refund whose state is not its last audited transition\n"
    "  --csv FILE   also write every figure, account, unmatched credit and break as CSV\n"
    "  --by NAME    who runs the close (stored; default $USER)\n"
    "Exit 0: closed, no break; 1: closed with breaks; 2: usage or error (nothing stored).\n";

/* One run: the snapshot's parameters, the outputs and what has been found so far. */
struct close_run {
    struct pg_conn *c;
    int32_t day;
    char date[DAYS_STR_LEN];
    char prev_date[DAYS_STR_LEN];
    char start_ts[40], end_ts[40]; /* the day's bounds as timestamptz text (+08) */
    char age_max[24];
    char payout_max[24];
    FILE *csv;         /* NULL without --csv */
    FILE *content;     /* canonical content (hashed), memstream */
    char *content_buf; /* owned by the memstream until fclose */
    size_t content_len;
    FILE *breaks_out; /* breaks as printed, memstream */
    char *breaks_buf;
    size_t breaks_len;
    long long breaks;
    /* Figures of the day. */
    int64_t credits, credits_fen, matched, matched_fen, recharges, recharge_fen;
    int64_t consume_fen, refund_fen, opening_fen, closing_fen;
    /* Refunds of the day by what happened to them (close_refund_kinds), count and amount. */
    int64_t refunds[6], refunds_fen[6];
    /* Stored closes: the previous day's newest and this day's newest (id 0: none). */
    int64_t prev_id, same_id;
    char prev_sha[65], same_sha[65];
    bool same_old_format; /* this day's stored close has another CLOSE_CONTENT_VERSION */
};

/* CSV columns: keep in the README's order; never reorder, only append. */
static const char close_csv_header[] =
    "date,section,kind,account,record_id,bank_txn_id,order_code,flow_id,amount_fen,expected_fen,"
    "count,age_days,opening_fen,recharge_fen,consume_fen,refund_fen,closing_fen,detail,refund_id\n";
enum close_csv_col {
    CSV_ACCOUNT,
    CSV_RECORD_ID,
    CSV_BANK_TXN_ID,
    CSV_ORDER_CODE,
    CSV_FLOW_ID,
    CSV_AMOUNT,
    CSV_EXPECTED,
    CSV_COUNT,
    CSV_AGE,
    CSV_OPENING,
    CSV_RECHARGE,
    CSV_CONSUME,
    CSV_REFUND,
    CSV_CLOSING,
    CSV_DETAIL,
    CSV_REFUND_ID,
    CSV_NCOLS
};
static const char *const close_csv_names[CSV_NCOLS] = {
    "account",      "record_id",   "bank_txn_id", "order_code",  "flow_id",      "amount_fen",
    "expected_fen", "count",       "age_days",    "opening_fen", "recharge_fen", "consume_fen",
    "refund_fen",   "closing_fen", "detail",      "refund_id"};

static void close_csv_field(FILE *f, const char *v)
{
    if (v == NULL) {
        return;
    }
    if (strpbrk(v, ",\"\r\n") == NULL) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (const char *p = v; *p; p++) {
        if (*p == '"') {
            fputc('"', f);
        }
        fputc(*p, f);
    }
    fputc('"', f);
}

/* One CSV row; cols[i] NULL leaves the cell empty. */
static void close_csv_row(struct close_run *run, const char *section, const char *kind,
                          const char *const cols[CSV_NCOLS])
{
    if (run->csv == NULL) {
        return;
    }
    fprintf(run->csv, "%s,%s,%s", run->date, section, kind);
    for (int i = 0; i < CSV_NCOLS; i++) {
        fputc(',', run->csv);
        close_csv_field(run->csv, cols[i]);
    }
    fputc('\n', run->csv);
}

/* Prints and records one break; cols as for CSV. */
static void close_break(struct close_run *run, const char *kind, const char *const cols[CSV_NCOLS])
{
    run->breaks++;
    FILE *outs[2] = {stdout, run->breaks_out};
    for (int o = 0; o < 2; o++) {
        fprintf(outs[o], "break %s:", kind);
        for (int i = 0; i < CSV_NCOLS; i++) {
            if (cols[i] != NULL) {
                fprintf(outs[o], " %s=%s", close_csv_names[i], cols[i]);
            }
        }
        fputc('\n', outs[o]);
    }
    close_csv_row(run, "break", kind, cols);
}

/*
 * Every query of the close takes the same parameters: $1 day, $2 start, $3 end, $4 age limit
 * (the unmatched credits' or, for the refund queries, the outstanding payouts').
 */
static enum tp_status close_query_ex(struct close_run *run, bool refunds, const char *sql,
                                     PGresult **r, struct tp_error *err)
{
    const char *const params[4] = {run->date, run->start_ts, run->end_ts,
                                   refunds ? run->payout_max : run->age_max};
    return pg_exec(run->c, sql, 4, params, r, err);
}

static enum tp_status close_query(struct close_run *run, const char *sql, PGresult **r,
                                  struct tp_error *err)
{
    return close_query_ex(run, false, sql, r, err);
}

/* The day's credits into a receiving account (statement_records booked that day). */
#define CLOSE_DAY_CREDITS                                                                          \
    "r.direction = 'credit' AND r.state <> 'ignored' AND COALESCE(r.booking_date, r.value_date) "  \
    "= $1::date"

/*
 * Break queries: every row is one break, columns in close_csv_col order from account to detail
 * (count, age and the roll-forward columns excepted: see close_break_cols).
 */
struct close_check {
    const char *kind;
    const char *sql;
    bool refunds; /* $4 is TOPUPCTL_CLOSE_PAYOUT_MAX_DAYS */
};

#define CLOSE_BREAK_COLS                                                                           \
    "account, record_id::text, bank_txn_id, order_code, flow_id::text, amount_fen::text, "         \
    "expected_fen::text, age_days::text, detail, refund_id"

/*
 * Refunds (refund_requests, their audit refund_transitions, and the ledger's refund flows whose
 * reference is a request's refund_id: the reservation, -amount, and after a returned payment the
 * restored credit, +amount). A request's state at the end of the day is the to_state of its last
 * transition before the end, so closing a past day again gives the same content.
 */
#define CLOSE_REFUND_AT_END                                                                        \
    "(SELECT DISTINCT ON (t.request_id) t.request_id, t.to_state, t.created_at FROM "              \
    "refund_transitions t WHERE t.created_at < $3::timestamptz ORDER BY t.request_id, t.id DESC)"
/* A Shanghai calendar date of a timestamptz (UTC+8 all year, days.h). */
#define CLOSE_LOCAL_DATE(ts) "((" ts ") AT TIME ZONE 'UTC' + interval '8 hours')::date"
#define CLOSE_REFUND_COLS                                                                          \
    "q.account_id AS account, q.record_id, NULL::text AS bank_txn_id, l.order_code"
#define CLOSE_RESERVED(q, before)                                                                  \
    "EXISTS (SELECT 1 FROM account_flows rf WHERE rf.flow_type = 'refund' AND rf.reference = " q   \
    ".refund_id AND rf.account_id = " q ".account_id AND rf.amount_fen = -" q ".amount_fen" before \
    ")"

static const struct close_check close_checks[] = {
    {"matched_not_credited",
     "SELECT o.account_id AS account, r.id AS record_id, r.bank_txn_id, o.code AS order_code, "
     "NULL::bigint AS flow_id, r.amount_fen, NULL::bigint AS expected_fen, NULL::int AS age_days, "
     "'decision ' || d.id AS detail, NULL::text AS refund_id FROM statement_records r "
     "JOIN match_decisions d ON d.record_id = r.id AND d.outcome = 'matched' "
     "JOIN topup_orders o ON o.id = d.order_id WHERE " CLOSE_DAY_CREDITS
     " AND NOT EXISTS (SELECT 1 FROM account_flows f WHERE f.flow_type = 'recharge' AND "
     "f.reference = o.code) ORDER BY r.id",
     false},
    {"recharge_not_as_matched",
     "SELECT f.account_id AS account, r.id AS record_id, r.bank_txn_id, o.code AS order_code, "
     "f.id AS flow_id, f.amount_fen, r.amount_fen AS expected_fen, NULL::int AS age_days, "
     "CASE WHEN f.account_id <> o.account_id THEN 'order account ' || o.account_id ELSE "
     "'amount' END AS detail, NULL::text AS refund_id FROM statement_records r "
     "JOIN match_decisions d ON d.record_id = r.id AND d.outcome = 'matched' "
     "JOIN topup_orders o ON o.id = d.order_id "
     "JOIN account_flows f ON f.flow_type = 'recharge' AND f.reference = o.code "
     "WHERE " CLOSE_DAY_CREDITS
     " AND (f.amount_fen <> r.amount_fen OR f.account_id <> o.account_id) ORDER BY r.id",
     false},
    {"recharge_without_record",
     "SELECT f.account_id AS account, NULL::bigint AS record_id, NULL::text AS bank_txn_id, "
     "f.reference AS order_code, f.id AS flow_id, f.amount_fen, NULL::bigint AS expected_fen, "
     "NULL::int AS age_days, 'no matched statement record' AS detail, NULL::text AS refund_id "
     "FROM account_flows f "
     "WHERE f.flow_type = 'recharge' AND f.created_at >= $2::timestamptz AND f.created_at < "
     "$3::timestamptz AND NOT EXISTS (SELECT 1 FROM topup_orders o JOIN match_decisions d ON "
     "d.order_id = o.id AND d.outcome = 'matched' JOIN statement_records r ON r.id = d.record_id "
     "WHERE o.code = f.reference) ORDER BY f.id",
     false},
};

static const struct close_check close_refund_checks[] = {
    /* A bank debit of the day naming a refund (its refund id or the payout's end-to-end id in
     * the remittance) that is not settled: the bank paid what the system does not know as paid.
     * Read against the refund's state now, since settlement follows the import of the debit. */
    {"refund_debit_unmatched",
     "SELECT q.account_id AS account, r.id AS record_id, r.bank_txn_id, l.order_code, "
     "NULL::bigint AS flow_id, r.amount_fen, q.amount_fen AS expected_fen, NULL::int AS age_days, "
     "CASE WHEN q.id IS NULL THEN 'debit names refund ' || substring(r.remittance_info from "
     "'(?i)RF[0-9]{10,}') || ', which does not exist' ELSE 'debit names refund ' || q.refund_id "
     "|| ', which is ' || q.state || ', not paid out' END AS detail, q.refund_id "
     "FROM statement_records r LEFT JOIN LATERAL (SELECT * FROM refund_requests x WHERE "
     "position(x.refund_id IN upper(r.remittance_info)) > 0 OR (x.end_to_end_id <> '' AND "
     "position(upper(x.end_to_end_id) IN upper(r.remittance_info)) > 0) ORDER BY x.id LIMIT 1) "
     "q ON true LEFT JOIN credit_lots l ON l.id = q.lot_id WHERE r.direction = 'debit' AND "
     "COALESCE(r.booking_date, r.value_date) = $1::date AND (q.id IS NOT NULL OR "
     "r.remittance_info ~* 'RF[0-9]{10,}') AND (q.id IS NULL OR q.state NOT IN ('paid_out', "
     "'failed')) ORDER BY r.id",
     true},
    {"refund_paid_without_sent",
     "SELECT " CLOSE_REFUND_COLS ", NULL::bigint AS flow_id, q.amount_fen, NULL::bigint AS "
     "expected_fen, NULL::int AS age_days, 'paid out at ' || t.created_at || ' but never sent' "
     "AS detail, q.refund_id FROM refund_transitions t JOIN refund_requests q ON q.id = "
     "t.request_id LEFT JOIN credit_lots l ON l.id = q.lot_id WHERE t.to_state = 'paid_out' AND "
     "t.created_at >= $2::timestamptz AND t.created_at < $3::timestamptz AND NOT EXISTS (SELECT "
     "1 FROM refund_transitions s WHERE s.request_id = q.id AND s.to_state = 'sent' AND s.id < "
     "t.id) ORDER BY t.id",
     true},
    {"refund_sent_unreserved",
     "SELECT " CLOSE_REFUND_COLS ", NULL::bigint AS flow_id, q.amount_fen, NULL::bigint AS "
     "expected_fen, NULL::int AS age_days, 'sent at ' || t.created_at || ' without its "
     "reservation (a refund flow of -amount) in the ledger' AS detail, q.refund_id FROM "
     "refund_transitions t JOIN refund_requests q ON q.id = t.request_id LEFT JOIN "
     "credit_lots l ON l.id = q.lot_id WHERE t.to_state = 'sent' AND t.created_at >= "
     "$2::timestamptz AND t.created_at < $3::timestamptz AND q.account_id IS NOT NULL AND "
     "NOT " CLOSE_RESERVED("q", " AND rf.created_at < $3::timestamptz") " ORDER BY t.id",
     true},
    {"refund_payout_without_request",
     "SELECT f.account_id AS account, q.record_id, NULL::text AS bank_txn_id, "
     "l.order_code, f.id AS flow_id, f.amount_fen, -q.amount_fen AS expected_fen, NULL::int "
     "AS age_days, CASE WHEN q.id IS NULL THEN 'bank payout ' || f.reference || ' names no "
     "refund request' WHEN q.account_id IS DISTINCT FROM f.account_id THEN 'request of "
     "account ' || COALESCE(q.account_id, '(none: review-queue refund)') WHEN q.amount_fen "
     "<> -f.amount_fen THEN 'amount is not the request''s' ELSE 'event ' || f.event_id || "
     "' is not the request''s reservation' END AS detail, q.refund_id FROM account_flows f "
     "LEFT JOIN refund_requests q ON q.refund_id = f.reference LEFT JOIN credit_lots l ON "
     "l.id = q.lot_id WHERE f.flow_type = 'refund' AND f.amount_fen < 0 AND f.created_at >= "
     "$2::timestamptz AND f.created_at < $3::timestamptz AND (q.id IS NULL OR q.account_id "
     "IS DISTINCT FROM f.account_id OR q.amount_fen <> -f.amount_fen OR q.reserve_event_id "
     "IS DISTINCT FROM f.event_id) ORDER BY f.id",
     true},
    {"refund_restore_missing",
     "SELECT " CLOSE_REFUND_COLS ", NULL::bigint AS flow_id, q.amount_fen, NULL::bigint AS "
     "expected_fen, NULL::int AS age_days, 'failed at ' || e.created_at || ', its reserved "
     "credit not restored (no refund flow of +amount)' AS detail, q.refund_id "
     "FROM " CLOSE_REFUND_AT_END " e JOIN refund_requests q ON q.id = e.request_id LEFT JOIN "
     "credit_lots l ON l.id = q.lot_id WHERE e.to_state = 'failed' AND q.account_id IS NOT "
     "NULL AND " CLOSE_RESERVED(
         "q", "") " AND NOT EXISTS (SELECT 1 FROM account_flows g "
                  "WHERE g.flow_type = 'refund' AND g.reference = q.refund_id AND g.account_id = "
                  "q.account_id AND g.amount_fen = q.amount_fen) ORDER BY q.id",
     true},
    {"refund_restore_wrong",
     "SELECT f.account_id AS account, q.record_id, NULL::text AS bank_txn_id, "
     "l.order_code, f.id AS flow_id, f.amount_fen, q.amount_fen AS expected_fen, NULL::int "
     "AS age_days, CASE WHEN NOT EXISTS (SELECT 1 FROM refund_transitions t WHERE "
     "t.request_id = q.id AND t.to_state = 'failed') THEN 'credit restored for a refund "
     "that did not fail' WHEN q.account_id IS DISTINCT FROM f.account_id OR q.amount_fen <> "
     "f.amount_fen THEN 'not the request''s account and amount' ELSE 'restored more than "
     "once' END AS detail, q.refund_id FROM account_flows f JOIN refund_requests q ON "
     "q.refund_id = f.reference LEFT JOIN credit_lots l ON l.id = q.lot_id WHERE "
     "f.flow_type = 'refund' AND f.amount_fen > 0 AND f.created_at >= $2::timestamptz AND "
     "f.created_at < $3::timestamptz AND (NOT EXISTS (SELECT 1 FROM refund_transitions t "
     "WHERE t.request_id = q.id AND t.to_state = 'failed') OR q.account_id IS DISTINCT FROM "
     "f.account_id OR q.amount_fen <> f.amount_fen OR EXISTS (SELECT 1 FROM account_flows h "
     "WHERE h.flow_type = 'refund' AND h.amount_fen > 0 AND h.reference = f.reference AND "
     "h.id < f.id)) ORDER BY f.id",
     true},
    {"refund_outstanding_too_long",
     "SELECT " CLOSE_REFUND_COLS ", NULL::bigint AS flow_id, q.amount_fen, NULL::bigint AS "
     "expected_fen, $1::date - " CLOSE_LOCAL_DATE(
         "e.created_at") " AS age_days, 'sent "
                         "' || " CLOSE_LOCAL_DATE(
                             "e.created_at") " || ', neither paid out nor failed after "
                                             "more than ' || $4::int || ' days' AS detail, "
                                             "q.refund_id FROM " CLOSE_REFUND_AT_END
                                             " e JOIN refund_requests q ON q.id = "
                                             "e.request_id LEFT JOIN credit_lots l ON l.id = "
                                             "q.lot_id WHERE e.to_state = 'sent' AND "
                                             "$1::date - " CLOSE_LOCAL_DATE(
                                                 "e.created_at") " > $4::int ORDER BY q.id",
     true},
    {"refund_state_unaudited",
     "SELECT " CLOSE_REFUND_COLS ", NULL::bigint AS flow_id, q.amount_fen, NULL::bigint "
     "AS expected_fen, NULL::int AS age_days, 'state ' || q.state || ', its last "
     "audited transition ' || COALESCE(a.to_state, '(none)') AS detail, q.refund_id FROM "
     "refund_requests q LEFT JOIN credit_lots l ON l.id = q.lot_id LEFT JOIN LATERAL "
     "(SELECT t.to_state FROM refund_transitions t WHERE t.request_id = q.id ORDER BY "
     "t.id DESC LIMIT 1) a ON true WHERE a.to_state IS DISTINCT FROM q.state AND "
     "q.created_at < $3::timestamptz ORDER BY q.id",
     true},
};

static void close_cols_clear(const char *cols[CSV_NCOLS])
{
    for (int i = 0; i < CSV_NCOLS; i++) {
        cols[i] = NULL;
    }
}

/* Runs one break query and reports its rows. */
static enum tp_status close_run_check(struct close_run *run, const struct close_check *chk,
                                      struct tp_error *err)
{
    static const int map[] = {CSV_ACCOUNT, CSV_RECORD_ID, CSV_BANK_TXN_ID, CSV_ORDER_CODE,
                              CSV_FLOW_ID, CSV_AMOUNT,    CSV_EXPECTED,    CSV_AGE,
                              CSV_DETAIL,  CSV_REFUND_ID};
    char sql[8192];
    int n = snprintf(sql, sizeof(sql),
                     "SELECT " CLOSE_BREAK_COLS " FROM (%s) b, (SELECT $1::date, $2::timestamptz, "
                     "$3::timestamptz, $4::int) p LIMIT %d",
                     chk->sql, CLOSE_ROWS_MAX + 1);
    assert(n > 0 && (size_t)n < sizeof(sql)); /* the checks are constants of this file */
    PGresult *r = NULL;
    enum tp_status st = close_query_ex(run, chk->refunds, sql, &r, err);
    if (st != TP_OK) {
        error_set(err, st, "check %s: %.400s", chk->kind, err->msg);
        return st;
    }
    int rows = PQntuples(r);
    for (int row = 0; row < rows && row < CLOSE_ROWS_MAX; row++) {
        const char *cols[CSV_NCOLS];
        close_cols_clear(cols);
        for (size_t k = 0; k < sizeof(map) / sizeof(map[0]); k++) {
            cols[map[k]] = pg_is_null(r, row, (int)k) ? NULL : pg_get_str(r, row, (int)k);
        }
        close_break(run, chk->kind, cols);
    }
    if (rows > CLOSE_ROWS_MAX) {
        printf("break %s: more than %d rows, the rest not printed\n", chk->kind, CLOSE_ROWS_MAX);
        run->breaks++;
    }
    PQclear(r);
    return TP_OK;
}

static void close_figure(struct close_run *run, const char *kind, int64_t count, int64_t fen)
{
    char money[MONEY_STR_MAX], n[24], f[24];
    printf("  %-26s %10" PRId64 " %18s\n", kind, count, money_format(fen, money));
    fprintf(run->content, "figure %s %" PRId64 " %" PRId64 "\n", kind, count, fen);
    snprintf(n, sizeof(n), "%" PRId64, count);
    snprintf(f, sizeof(f), "%" PRId64, fen);
    const char *cols[CSV_NCOLS];
    close_cols_clear(cols);
    cols[CSV_COUNT] = n;
    cols[CSV_AMOUNT] = f;
    close_csv_row(run, "figure", kind, cols);
}

/* The day's statement credits (each one in the content) and how many of them are matched. */
static enum tp_status close_statement(struct close_run *run, struct tp_error *err)
{
    PGresult *r = NULL;
    enum tp_status st = close_query(
        run,
        "SELECT r.id, to_json(r.receiving_account)::text, to_json(r.bank_txn_id)::text, "
        "r.amount_fen, (d.id IS NOT NULL) FROM statement_records r LEFT JOIN match_decisions d "
        "ON d.record_id = r.id AND d.outcome = 'matched' WHERE " CLOSE_DAY_CREDITS
        " AND $2::text IS NOT NULL AND $3::text IS NOT NULL AND $4::text IS NOT NULL ORDER BY r.id",
        &r, err);
    if (st != TP_OK) {
        return st;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t fen = pg_get_i64(r, i, 3);
        fprintf(run->content, "credit %s %s %s %" PRId64 "\n", pg_get_str(r, i, 0),
                pg_get_str(r, i, 1), pg_get_str(r, i, 2), fen);
        run->credits++;
        run->credits_fen += fen;
        if (strcmp(pg_get_str(r, i, 4), "t") == 0) {
            run->matched++;
            run->matched_fen += fen;
        }
    }
    PQclear(r);
    return TP_OK;
}

/* The columns of one row of close_unmatched()'s query: record, bank txn id, amount, age, detail. */
static void close_unmatched_cols(const PGresult *r, int i, const char *cols[CSV_NCOLS])
{
    close_cols_clear(cols);
    cols[CSV_RECORD_ID] = pg_get_str(r, i, 1);
    cols[CSV_BANK_TXN_ID] = pg_get_str(r, i, 2);
    cols[CSV_AMOUNT] = pg_get_str(r, i, 3);
    cols[CSV_AGE] = pg_get_str(r, i, 4);
    cols[CSV_DETAIL] = pg_get_str(r, i, 5);
}

/* Every unmatched credit booked up to the day, with its age; past the limit it is a break. */
static enum tp_status close_unmatched(struct close_run *run, struct tp_error *err)
{
    PGresult *r = NULL;
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "SELECT NULL::text, r.id::text, r.bank_txn_id, r.amount_fen::text, "
             "($1::date - r.value_date)::text, r.state || ' since ' || r.value_date || ' from ' "
             "|| r.counterparty_name, ($1::date - r.value_date) > $4::int "
             "FROM statement_records r WHERE r.direction = 'credit' AND r.state IN ('unmatched', "
             "'review') AND COALESCE(r.booking_date, r.value_date) <= $1::date AND NOT EXISTS "
             "(SELECT 1 FROM match_decisions d WHERE d.record_id = r.id AND d.outcome = "
             "'matched') AND $2::text IS NOT NULL AND $3::text IS NOT NULL "
             "ORDER BY r.value_date, r.id LIMIT %d",
             CLOSE_ROWS_MAX + 1);
    enum tp_status st = close_query(run, sql, &r, err);
    if (st != TP_OK) {
        return st;
    }
    int rows = PQntuples(r);
    printf("\nunmatched funds (credits waiting for an order; a break after %s days): %d%s\n",
           run->age_max, rows > CLOSE_ROWS_MAX ? CLOSE_ROWS_MAX : rows,
           rows > CLOSE_ROWS_MAX ? "+" : "");
    for (int i = 0; i < rows && i < CLOSE_ROWS_MAX; i++) {
        char money[MONEY_STR_MAX];
        printf("  record %-8s txn %-24s %14s  age %s days  %s\n", pg_get_str(r, i, 1),
               pg_get_str(r, i, 2), money_format(pg_get_i64(r, i, 3), money), pg_get_str(r, i, 4),
               pg_get_str(r, i, 5));
        const char *cols[CSV_NCOLS];
        close_unmatched_cols(r, i, cols);
        close_csv_row(run, "unmatched", "credit_waiting", cols);
    }
    printf("\n");
    for (int i = 0; i < rows && i < CLOSE_ROWS_MAX; i++) {
        if (strcmp(pg_get_str(r, i, 6), "t") != 0) {
            continue;
        }
        const char *cols[CSV_NCOLS];
        close_unmatched_cols(r, i, cols);
        close_break(run, "credit_not_matched", cols);
    }
    PQclear(r);
    return TP_OK;
}

/* What happened to refunds in the day: figure refunds_<kind>, CSV section refund, kind <kind>. */
static const char *const close_refund_kinds[6] = {"approved", "sent",     "paid_out",
                                                  "failed",   "restored", "outstanding"};
/* Refund rows a close reads (every refund event of one day): above it the day is not closed. */
#define CLOSE_REFUND_ROWS_MAX 1000000

/*
 * Every refund of the day: approved (reserved), sent (in a payout file), paid out (its debit on a
 * statement), failed (returned) and restored (the +amount flow giving the credit back), from the
 * audit rows and flows booked in the day; and outstanding: sent and neither paid out nor failed
 * at the end of the day, with the days since it was sent. Each one is in the content.
 */
static enum tp_status close_refunds(struct close_run *run, struct tp_error *err)
{
    char sql[4096];
    int n = snprintf(
        sql, sizeof(sql),
        "SELECT k.i, q.refund_id, q.account_id, q.record_id::text, l.order_code, "
        "COALESCE(k.amt, q.amount_fen)::text, k.age::text, to_json(q.refund_id)::text, "
        "COALESCE(to_json(q.account_id)::text, 'null') FROM ("
        "SELECT CASE t.to_state WHEN 'approved' THEN 0 WHEN 'sent' THEN 1 WHEN 'paid_out' "
        "THEN 2 ELSE 3 END AS i, t.request_id, NULL::int AS age, t.id AS ord, "
        "NULL::bigint AS amt FROM refund_transitions t WHERE t.to_state IN ('approved', "
        "'sent', 'paid_out', 'failed') AND t.created_at >= $2::timestamptz AND "
        "t.created_at < $3::timestamptz "
        "UNION ALL SELECT 4, q.id, NULL, f.id, f.amount_fen FROM account_flows f JOIN "
        "refund_requests q ON q.refund_id = f.reference WHERE f.flow_type = 'refund' AND "
        "f.amount_fen > 0 AND f.created_at >= $2::timestamptz AND f.created_at < "
        "$3::timestamptz "
        "UNION ALL SELECT 5, e.request_id, $1::date - " CLOSE_LOCAL_DATE(
            "e.created_at") ", e.request_id, NULL FROM " CLOSE_REFUND_AT_END
                            " e WHERE e.to_state = 'sent' "
                            "AND $4::int IS NOT NULL) k JOIN refund_requests q ON q.id = "
                            "k.request_id "
                            "LEFT JOIN credit_lots l ON l.id = q.lot_id ORDER BY k.i, k.ord "
                            "LIMIT %d",
        CLOSE_REFUND_ROWS_MAX + 1);
    assert(n > 0 && (size_t)n < sizeof(sql));
    PGresult *r = NULL;
    enum tp_status st = close_query_ex(run, true, sql, &r, err);
    if (st != TP_OK) {
        return st;
    }
    int rows = PQntuples(r);
    if (rows > CLOSE_REFUND_ROWS_MAX) {
        PQclear(r);
        error_set(err, TP_INVALID, "more than %d refund events in one day: not closed",
                  CLOSE_REFUND_ROWS_MAX);
        return TP_INVALID;
    }
    printf("\nrefunds (paid back to the remitter; outstanding: sent, a break after %s days)\n",
           run->payout_max);
    for (int i = 0; i < rows; i++) {
        int k = (int)pg_get_i64(r, i, 0);
        int64_t fen = pg_get_i64(r, i, 5);
        bool outstanding = k == 5;
        run->refunds[k]++;
        if (!money_add(run->refunds_fen[k], fen, &run->refunds_fen[k])) {
            PQclear(r);
            error_set(err, TP_INVALID, "refunds %s: sum overflows int64", close_refund_kinds[k]);
            return TP_INVALID;
        }
        fprintf(run->content, "refund %s %s %s %" PRId64 " %s\n", close_refund_kinds[k],
                pg_get_str(r, i, 7), pg_get_str(r, i, 8), fen,
                outstanding ? pg_get_str(r, i, 6) : "-");
        const char *acct = pg_is_null(r, i, 2) ? "(review queue)" : pg_get_str(r, i, 2);
        if (i < CLOSE_ROWS_MAX) {
            char money[MONEY_STR_MAX];
            printf("  %-12s %-16s %-24s %14s%s%s%s\n", close_refund_kinds[k], pg_get_str(r, i, 1),
                   acct, money_format(fen, money), outstanding ? "  age " : "",
                   outstanding ? pg_get_str(r, i, 6) : "", outstanding ? " days" : "");
        }
        const char *cols[CSV_NCOLS];
        close_cols_clear(cols);
        cols[CSV_ACCOUNT] = pg_is_null(r, i, 2) ? NULL : pg_get_str(r, i, 2);
        cols[CSV_RECORD_ID] = pg_get_str(r, i, 3);
        cols[CSV_ORDER_CODE] = pg_is_null(r, i, 4) ? NULL : pg_get_str(r, i, 4);
        cols[CSV_AMOUNT] = pg_get_str(r, i, 5);
        cols[CSV_AGE] = outstanding ? pg_get_str(r, i, 6) : NULL;
        cols[CSV_REFUND_ID] = pg_get_str(r, i, 1);
        close_csv_row(run, "refund", close_refund_kinds[k], cols);
    }
    if (rows > CLOSE_ROWS_MAX) {
        printf("  ... %d more (all of them in the CSV)\n", rows - CLOSE_ROWS_MAX);
    }
    if (rows == 0) {
        printf("  none\n");
    }
    PQclear(r);
    return TP_OK;
}

/* The newest stored close of a day: id, stored hash, and whether its content still has it. */
static enum tp_status close_stored(struct close_run *run, const char *date, int64_t *id,
                                   char sha[65], bool *old_format, struct tp_error *err)
{
    PGresult *r = NULL;
    const char *const params[2] = {date, CLOSE_CONTENT_VERSION};
    enum tp_status st = pg_exec(run->c,
                                "SELECT id, content_sha256, "
                                "encode(sha256(convert_to(content, 'UTF8')), 'hex') = "
                                "content_sha256, split_part(content, E'\\n', 1) <> $2 "
                                "FROM closes WHERE business_date = $1::date "
                                "ORDER BY id DESC LIMIT 1",
                                2, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    *id = 0;
    sha[0] = '\0';
    if (PQntuples(r) == 1) {
        *id = pg_get_i64(r, 0, 0);
        snprintf(sha, 65, "%s", pg_get_str(r, 0, 1));
        if (old_format != NULL) {
            *old_format = strcmp(pg_get_str(r, 0, 3), "t") == 0;
        }
        if (strcmp(pg_get_str(r, 0, 2), "t") != 0) {
            const char *cols[CSV_NCOLS];
            close_cols_clear(cols);
            char detail[160];
            snprintf(detail, sizeof(detail), "close %s of %s: content does not hash to %s",
                     pg_get_str(r, 0, 0), date, sha);
            cols[CSV_DETAIL] = detail;
            close_break(run, "close_tampered", cols);
        }
    }
    PQclear(r);
    return TP_OK;
}

/* Every account's roll-forward; opening from the previous day's close when there is one. */
static enum tp_status close_accounts(struct close_run *run, struct tp_error *err)
{
    char prev[24];
    snprintf(prev, sizeof(prev), "%" PRId64, run->prev_id);
    const char *const params[3] = {prev, run->start_ts, run->end_ts};
    PGresult *r = NULL;
    enum tp_status st = pg_exec(
        run->c,
        "WITH f AS (SELECT account_id, "
        "COALESCE(sum(amount_fen) FILTER (WHERE created_at < $2::timestamptz), 0) AS before_fen, "
        "COALESCE(sum(amount_fen) FILTER (WHERE created_at >= $2::timestamptz AND created_at < "
        "$3::timestamptz AND flow_type = 'recharge'), 0) AS recharge_fen, "
        "COALESCE(sum(amount_fen) FILTER (WHERE created_at >= $2::timestamptz AND created_at < "
        "$3::timestamptz AND flow_type = 'consume'), 0) AS consume_fen, "
        "COALESCE(sum(amount_fen) FILTER (WHERE created_at >= $2::timestamptz AND created_at < "
        "$3::timestamptz AND flow_type = 'refund'), 0) AS refund_fen, "
        "COALESCE(sum(amount_fen) FILTER (WHERE created_at >= $3::timestamptz), 0) AS after_fen, "
        "count(*) FILTER (WHERE created_at >= $2::timestamptz AND created_at < $3::timestamptz "
        "AND flow_type = 'recharge') AS recharges, "
        "count(*) FILTER (WHERE created_at < $3::timestamptz) AS flows_to_end "
        "FROM account_flows GROUP BY account_id), "
        "p AS (SELECT account_id, closing_fen FROM close_accounts WHERE close_id = $1::bigint) "
        "SELECT a.account_id, COALESCE(f.before_fen, 0), p.closing_fen, "
        "COALESCE(f.recharge_fen, 0), COALESCE(f.consume_fen, 0), COALESCE(f.refund_fen, 0), "
        "a.balance_fen - COALESCE(f.after_fen, 0), COALESCE(f.recharges, 0), "
        "to_json(a.account_id)::text FROM accounts a LEFT JOIN f USING (account_id) "
        "LEFT JOIN p USING (account_id) WHERE COALESCE(f.flows_to_end, 0) > 0 OR "
        "p.account_id IS NOT NULL OR a.balance_fen <> COALESCE(f.after_fen, 0) "
        "ORDER BY a.account_id COLLATE \"C\"",
        3, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    printf("%-24s %16s %16s %16s %16s %16s\n", "ACCOUNT", "OPENING", "RECHARGE", "CONSUME",
           "REFUND", "CLOSING");
    for (int i = 0; i < PQntuples(r); i++) {
        const char *acct = pg_get_str(r, i, 0);
        int64_t before = pg_get_i64(r, i, 1);
        /* With a previous close, its closing is the opening (0 for an account it did not have). */
        int64_t opening = run->prev_id != 0 ? pg_get_i64(r, i, 2) : before;
        int64_t rec = pg_get_i64(r, i, 3), con = pg_get_i64(r, i, 4), ref = pg_get_i64(r, i, 5);
        int64_t at_end = pg_get_i64(r, i, 6);
        int64_t closing = 0;
        if (!money_add(opening, rec, &closing) || !money_add(closing, con, &closing) ||
            !money_add(closing, ref, &closing)) {
            PQclear(r);
            error_set(err, TP_INVALID, "account %s: roll-forward overflows int64", acct);
            return TP_INVALID;
        }
        run->recharges += pg_get_i64(r, i, 7);
        run->recharge_fen += rec;
        run->consume_fen += con;
        run->refund_fen += ref;
        run->opening_fen += opening;
        run->closing_fen += closing;
        char m[5][MONEY_STR_MAX];
        printf("%-24s %16s %16s %16s %16s %16s\n", acct, money_format(opening, m[0]),
               money_format(rec, m[1]), money_format(con, m[2]), money_format(ref, m[3]),
               money_format(closing, m[4]));
        fprintf(run->content,
                "account %s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n",
                pg_get_str(r, i, 8), opening, rec, con, ref, closing);
        char v[7][24];
        const int64_t vals[7] = {opening, rec, con, ref, closing, before, at_end};
        for (int k = 0; k < 7; k++) {
            snprintf(v[k], sizeof(v[k]), "%" PRId64, vals[k]);
        }
        const char *cols[CSV_NCOLS];
        close_cols_clear(cols);
        cols[CSV_ACCOUNT] = acct;
        cols[CSV_OPENING] = v[0];
        cols[CSV_RECHARGE] = v[1];
        cols[CSV_CONSUME] = v[2];
        cols[CSV_REFUND] = v[3];
        cols[CSV_CLOSING] = v[4];
        close_csv_row(run, "account", "roll_forward", cols);
        if (run->prev_id != 0 && opening != before) {
            close_cols_clear(cols);
            cols[CSV_ACCOUNT] = acct;
            cols[CSV_AMOUNT] = v[0];
            cols[CSV_EXPECTED] = v[5];
            cols[CSV_DETAIL] = "previous close's closing vs flows before the day";
            close_break(run, "opening_mismatch", cols);
        }
        if (closing != at_end) {
            close_cols_clear(cols);
            cols[CSV_ACCOUNT] = acct;
            cols[CSV_AMOUNT] = v[4];
            cols[CSV_EXPECTED] = v[6];
            cols[CSV_DETAIL] = "closing vs accounts.balance less flows booked after the day";
            close_break(run, "balance_mismatch", cols);
        }
    }
    PQclear(r);
    return TP_OK;
}

/* The refund figures of the stored close id (migration 0071), in its transaction. */
static enum tp_status close_store_refunds(struct close_run *run, int64_t id, struct tp_error *err)
{
    char v[13][24];
    for (int k = 0; k < 6; k++) {
        snprintf(v[2 * k], sizeof(v[0]), "%" PRId64, run->refunds[k]);
        snprintf(v[2 * k + 1], sizeof(v[0]), "%" PRId64, run->refunds_fen[k]);
    }
    snprintf(v[12], sizeof(v[12]), "%" PRId64, id);
    const char *p[13];
    for (int k = 0; k < 13; k++) {
        p[k] = v[k];
    }
    return pg_exec(run->c,
                   "UPDATE closes SET refunds_approved = $1::bigint, refunds_approved_fen = "
                   "$2::bigint, refunds_sent = $3::bigint, refunds_sent_fen = $4::bigint, "
                   "refunds_paid_out = $5::bigint, refunds_paid_out_fen = $6::bigint, "
                   "refunds_failed = $7::bigint, refunds_failed_fen = $8::bigint, "
                   "refunds_restored = $9::bigint, refunds_restored_fen = $10::bigint, "
                   "refunds_outstanding = $11::bigint, refunds_outstanding_fen = $12::bigint "
                   "WHERE id = $13::bigint",
                   13, p, NULL, err);
}

/* Stores the run (and its accounts) as a new closes row; *id is its id. */
static enum tp_status close_store(struct close_run *run, const char *by, const char *sha,
                                  int64_t *id, struct tp_error *err)
{
    char n[13][24];
    const int64_t vals[13] = {run->credits,
                              run->credits_fen,
                              run->matched,
                              run->matched_fen,
                              run->recharges,
                              run->recharge_fen,
                              run->consume_fen,
                              run->refund_fen,
                              run->opening_fen,
                              run->closing_fen,
                              run->breaks,
                              run->same_id,
                              0};
    for (int k = 0; k < 13; k++) {
        snprintf(n[k], sizeof(n[k]), "%" PRId64, vals[k]);
    }
    const char *const params[18] = {run->date,
                                    by,
                                    n[0],
                                    n[1],
                                    n[2],
                                    n[3],
                                    n[4],
                                    n[5],
                                    n[6],
                                    n[7],
                                    n[8],
                                    n[9],
                                    n[10],
                                    run->breaks_buf,
                                    run->content_buf,
                                    sha,
                                    run->prev_id != 0 ? run->prev_sha : NULL,
                                    run->same_id != 0 ? n[11] : NULL};
    PGresult *r = NULL;
    enum tp_status st = pg_exec(
        run->c,
        "INSERT INTO closes (business_date, run_by, statement_credits, statement_credits_fen, "
        "matched_records, matched_fen, recharge_flows, recharge_fen, consume_fen, refund_fen, "
        "opening_fen, closing_fen, breaks, breaks_text, content, content_sha256, prev_day_sha256, "
        "supersedes) VALUES ($1::date, $2, $3::bigint, $4::bigint, $5::bigint, $6::bigint, "
        "$7::bigint, $8::bigint, $9::bigint, $10::bigint, $11::bigint, $12::bigint, $13::bigint, "
        "$14, $15, $16, $17, $18::bigint) RETURNING id",
        18, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    *id = pg_get_i64(r, 0, 0);
    PQclear(r);
    if ((st = close_store_refunds(run, *id, err)) != TP_OK) {
        return st;
    }
    /* The accounts, parsed back from the canonical content's account lines by the server. */
    snprintf(n[12], sizeof(n[12]), "%" PRId64, *id);
    const char *const p2[2] = {n[12], run->content_buf};
    return pg_exec(run->c,
                   "INSERT INTO close_accounts (close_id, account_id, opening_fen, recharge_fen, "
                   "consume_fen, refund_fen, closing_fen) SELECT $1::bigint, "
                   "(m[1]::json)#>>'{}', m[2]::bigint, m[3]::bigint, m[4]::bigint, m[5]::bigint, "
                   "m[6]::bigint FROM regexp_matches($2, "
                   "'^account (\"(?:[^\"\\\\]|\\\\.)*\") (-?[0-9]+) (-?[0-9]+) (-?[0-9]+) "
                   "(-?[0-9]+) (-?[0-9]+)$', 'gn') AS m",
                   2, p2, NULL, err);
}

static enum tp_status close_sha256(struct close_run *run, char out[65], struct tp_error *err)
{
    PGresult *r = NULL;
    const char *const params[1] = {run->content_buf};
    enum tp_status st =
        pg_exec(run->c, "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')", 1, params, &r, err);
    if (st == TP_OK) {
        snprintf(out, 65, "%s", pg_get_str(r, 0, 0));
    }
    PQclear(r);
    return st;
}

/* The whole close inside one REPEATABLE READ transaction, taken after the day's lock. */
static enum tp_status close_day(struct close_run *run, const char *by, struct tp_error *err)
{
    enum tp_status st = TP_OK;
    if ((st = pg_begin(run->c, err)) != TP_OK ||
        (st = pg_exec(run->c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", 0, NULL, NULL,
                      err)) != TP_OK) {
        goto out;
    }
    if ((st = close_stored(run, run->prev_date, &run->prev_id, run->prev_sha, NULL, err)) !=
            TP_OK ||
        (st = close_stored(run, run->date, &run->same_id, run->same_sha, &run->same_old_format,
                           err)) != TP_OK) {
        goto out;
    }
    fprintf(run->content, CLOSE_CONTENT_VERSION "\ndate %s\nprev %s\n", run->date,
            run->prev_id != 0 ? run->prev_sha : "none");
    printf("close of %s (Asia/Shanghai, %s .. %s)\n\n", run->date, run->start_ts, run->end_ts);
    if ((st = close_statement(run, err)) != TP_OK) {
        goto out;
    }
    if ((st = close_accounts(run, err)) != TP_OK) {
        goto out;
    }
    if ((st = close_refunds(run, err)) != TP_OK) {
        goto out;
    }
    printf("\n  %-26s %10s %18s\n", "FIGURE", "COUNT", "AMOUNT");
    close_figure(run, "statement_credits", run->credits, run->credits_fen);
    close_figure(run, "matched_records", run->matched, run->matched_fen);
    close_figure(run, "recharge_flows", run->recharges, run->recharge_fen);
    close_figure(run, "consume", 0, run->consume_fen);
    close_figure(run, "refund", 0, run->refund_fen);
    close_figure(run, "opening", 0, run->opening_fen);
    close_figure(run, "closing", 0, run->closing_fen);
    for (int k = 0; k < 6; k++) {
        char name[32];
        snprintf(name, sizeof(name), "refunds_%s", close_refund_kinds[k]);
        close_figure(run, name, run->refunds[k], run->refunds_fen[k]);
    }
    if ((st = close_unmatched(run, err)) != TP_OK) {
        goto out;
    }
    for (size_t i = 0; i < sizeof(close_checks) / sizeof(close_checks[0]); i++) {
        if ((st = close_run_check(run, &close_checks[i], err)) != TP_OK) {
            goto out;
        }
    }
    for (size_t i = 0; i < sizeof(close_refund_checks) / sizeof(close_refund_checks[0]); i++) {
        if ((st = close_run_check(run, &close_refund_checks[i], err)) != TP_OK) {
            goto out;
        }
    }
    fflush(run->content);
    char sha[65];
    if ((st = close_sha256(run, sha, err)) != TP_OK) {
        goto out;
    }
    bool changed = run->same_id != 0 && strcmp(sha, run->same_sha) != 0;
    if (changed) {
        char detail[256], idbuf[24];
        snprintf(idbuf, sizeof(idbuf), "%" PRId64, run->same_id);
        snprintf(detail, sizeof(detail), "close %s stored %s, now %s%s", idbuf, run->same_sha, sha,
                 run->same_old_format ? " (stored in an older content format: see the README)"
                                      : "");
        const char *cols[CSV_NCOLS];
        close_cols_clear(cols);
        cols[CSV_DETAIL] = detail;
        close_break(run, "closed_day_changed", cols);
    }
    fflush(run->breaks_out);
    int64_t id = run->same_id;
    if (run->same_id == 0 || changed) {
        if ((st = close_store(run, by, sha, &id, err)) != TP_OK) {
            goto out;
        }
        st = pg_commit(run->c, err);
        if (st != TP_OK) {
            goto out;
        }
        printf("\nstored close %" PRId64 " of %s: sha256 %s, previous day %s%s\n", id, run->date,
               sha, run->prev_id != 0 ? run->prev_sha : "none (no close of the day before)",
               changed ? ", supersedes the earlier close" : "");
    } else {
        pg_rollback(run->c);
        printf("\nunchanged: the same content as close %" PRId64 " (sha256 %s), nothing stored\n",
               id, sha);
    }
    printf("%lld break%s\n", run->breaks, run->breaks == 1 ? "" : "s");
    return TP_OK;
out:
    pg_rollback(run->c);
    return st;
}

static enum tp_status close_lock(struct close_run *run, bool lock, struct tp_error *err)
{
    char key[24], timeout[48];
    snprintf(key, sizeof(key), "%d", (int)run->day);
    snprintf(timeout, sizeof(timeout), "%" PRId64, topupctl_cfg.close_lock_timeout_ms);
    const char *const params[2] = {key, timeout};
    if (!lock) {
        return pg_exec(run->c, "SELECT pg_advisory_unlock(" CLOSE_LOCK_KEY ", $1::int)", 1, params,
                       NULL, err);
    }
    const char *const tparams[1] = {timeout};
    enum tp_status st = pg_exec(run->c, "SELECT set_config('lock_timeout', $1 || 'ms', false)", 1,
                                tparams, NULL, err);
    if (st == TP_OK) {
        st = pg_exec(run->c, "SELECT pg_advisory_lock(" CLOSE_LOCK_KEY ", $1::int)", 1, params,
                     NULL, err);
        if (st != TP_OK) {
            error_set(err, st,
                      "another close of %s holds its lock (waited %s ms, "
                      "TOPUPCTL_CLOSE_LOCK_TIMEOUT_MS): %.300s",
                      run->date, timeout, err->msg);
        }
    }
    if (st == TP_OK) {
        st = pg_exec(run->c, "SET lock_timeout = 0", 0, NULL, NULL, err);
    }
    return st;
}

/* The day's bounds: Asia/Shanghai is UTC+8 all year (days.h), so a day is [D 00:00+08, D+1). */
static bool close_setup(struct close_run *run, const char *date)
{
    if (!days_parse(date, strlen(date), &run->day)) {
        return false;
    }
    char next[DAYS_STR_LEN];
    days_format(run->day, run->date);
    days_format(run->day - 1, run->prev_date);
    days_format(run->day + 1, next);
    snprintf(run->start_ts, sizeof(run->start_ts), "%s 00:00:00+08", run->date);
    snprintf(run->end_ts, sizeof(run->end_ts), "%s 00:00:00+08", next);
    snprintf(run->age_max, sizeof(run->age_max), "%" PRId64, topupctl_cfg.close_unmatched_max_days);
    snprintf(run->payout_max, sizeof(run->payout_max), "%" PRId64,
             topupctl_cfg.close_payout_max_days);
    return true;
}

static int close_main(struct close_run *run, const char *csv_path, const char *by)
{
    struct tp_error err = {0};
    int rc = CLOSE_EXIT_ERROR;
    char csv_tmp[4096] = "";
    run->content = open_memstream(&run->content_buf, &run->content_len);
    run->breaks_out = open_memstream(&run->breaks_buf, &run->breaks_len);
    if (run->content == NULL || run->breaks_out == NULL) {
        abort(); /* out of memory */
    }
    if (csv_path != NULL) {
        /* Written beside the target and renamed at the end: never half a file for finance. */
        snprintf(csv_tmp, sizeof(csv_tmp), "%s.tmp", csv_path);
        run->csv = fopen(csv_tmp, "w");
        if (run->csv == NULL) {
            error_set(&err, TP_INVALID, "--csv %s: %s", csv_tmp, strerror(errno));
            goto out;
        }
        fputs(close_csv_header, run->csv);
    }
    run->c = pg_conn_new(topupctl_cfg.pg_conninfo, CLOSE_CONNECT_TIMEOUT_MS, &err);
    if (run->c == NULL) {
        goto out;
    }
    if (close_lock(run, true, &err) != TP_OK) {
        goto out;
    }
    if (close_day(run, by, &err) != TP_OK) {
        goto out;
    }
    if (close_lock(run, false, &err) != TP_OK) {
        goto out;
    }
    if (run->csv != NULL) {
        FILE *f = run->csv;
        run->csv = NULL;
        if (fclose(f) != 0 || rename(csv_tmp, csv_path) != 0) {
            error_set(&err, TP_INVALID, "--csv %s: %s", csv_path, strerror(errno));
            goto out;
        }
        csv_tmp[0] = '\0';
    }
    rc = run->breaks > 0 ? CLOSE_EXIT_BREAKS : CLOSE_EXIT_CLEAN;
out:
    if (run->csv != NULL) {
        fclose(run->csv);
    }
    if (csv_tmp[0] != '\0') {
        unlink(csv_tmp);
    }
    if (rc == CLOSE_EXIT_ERROR) {
        fprintf(stderr, "topupctl close: %s\n", err.msg);
    }
    pg_conn_free(run->c);
    fclose(run->content);
    fclose(run->breaks_out);
    free(run->content_buf);
    free(run->breaks_buf);
    return rc;
}

int cmd_close(int argc, char **argv)
{
    static const struct option opts[] = {{"date", required_argument, NULL, 'd'},
                                         {"csv", required_argument, NULL, 'c'},
                                         {"by", required_argument, NULL, 'b'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *date = NULL, *csv = NULL, *by = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            date = optarg;
            break;
        case 'c':
            csv = optarg;
            break;
        case 'b':
            by = optarg;
            break;
        case 'h':
            fputs(close_usage, stdout);
            return CLOSE_EXIT_CLEAN;
        default:
            fputs(close_usage, stderr);
            return CLOSE_EXIT_ERROR;
        }
    }
    if (optind != argc || date == NULL) {
        fputs(close_usage, stderr);
        return CLOSE_EXIT_ERROR;
    }
    if (by == NULL) {
        by = getenv("USER") != NULL && getenv("USER")[0] != '\0' ? getenv("USER") : "topupctl";
    }
    if (strlen(by) > 128) {
        fprintf(stderr, "topupctl close: --by is longer than 128 bytes\n");
        return CLOSE_EXIT_ERROR;
    }
    struct close_run run = {0};
    if (!close_setup(&run, date)) {
        fprintf(stderr, "topupctl close: --date \"%s\" is not a calendar date YYYY-MM-DD\n", date);
        return CLOSE_EXIT_ERROR;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int32_t today = days_local_from_ms((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    if (run.day > today) {
        char t[DAYS_STR_LEN];
        fprintf(stderr, "topupctl close: %s has not begun yet (today is %s in Asia/Shanghai)\n",
                run.date, days_format(today, t));
        return CLOSE_EXIT_ERROR;
    }
    return close_main(&run, csv, by);
}
