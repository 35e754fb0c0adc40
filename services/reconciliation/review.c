/*
 * The review queue as support works it: list, show, and the actions match (through the same
 * claim path and PaymentMatched as an automatic match), refund and ignore, each audited.
 */
#include "recon.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "topup/event.h"
#include "topup/money.h"
#include "topup/pg.h"

#define REVIEW_ACTOR_MAX  100
#define REVIEW_REASON_MAX 1000

/* The item and its record, locked; columns read by review_apply_locked. */
static const char review_sql_lock[] =
    "SELECT q.id, q.record_id, q.reason, q.status, r.state, r.amount_fen, r.currency,"
    " r.direction, r.receiving_account, r.bank_txn_id, r.value_date::text"
    " FROM review_queue q JOIN statement_records r ON r.id = q.record_id"
    " WHERE q.id = $1::bigint FOR UPDATE OF q, r";

static const char review_sql_order[] =
    "SELECT id, code, account_id, amount_fen, status FROM topup_orders WHERE code = $1";

static const char review_sql_resolve[] =
    "UPDATE review_queue SET status = 'resolved', resolution = $2, resolved_at = now(),"
    " resolved_by = $3 WHERE id = $1::bigint";

static const char review_sql_action[] =
    "INSERT INTO review_actions (review_id, actor, action, reason, order_id)"
    " VALUES ($1::bigint, $2, $3, $4, $5::bigint)";

static const char review_sql_record_state[] =
    "UPDATE statement_records SET state = $2, updated_at = now() WHERE id = $1::bigint";

struct review_tx {
    const struct review_request *req;
    char code[REFCODE_STR_LEN];
    char *summary;
    size_t summary_len;
};

/* The item as locked. Strings point into res. */
struct review_item {
    PGresult *res;
    int64_t id, record_id;
    const char *reason, *status, *state, *currency, *direction;
    const char *receiving_account, *bank_txn_id, *value_date;
    int64_t amount_fen;
};

static const char *review_action_name(enum review_action a)
{
    return a == REVIEW_MATCH ? "match" : a == REVIEW_REFUND ? "refund" : "ignore";
}

static enum tp_status review_lock(struct pg_conn *c, int64_t id, struct review_item *it,
                                  struct tp_error *err)
{
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    const char *const params[1] = {ids};
    enum tp_status st = pg_exec(c, review_sql_lock, 1, params, &it->res, err);
    if (st != TP_OK) {
        return st;
    }
    if (PQntuples(it->res) == 0) {
        return error_set(err, TP_NOT_FOUND, "review item %lld does not exist", (long long)id);
    }
    it->id = pg_get_i64(it->res, 0, 0);
    it->record_id = pg_get_i64(it->res, 0, 1);
    it->reason = pg_get_str(it->res, 0, 2);
    it->status = pg_get_str(it->res, 0, 3);
    it->state = pg_get_str(it->res, 0, 4);
    it->amount_fen = pg_get_i64(it->res, 0, 5);
    it->currency = pg_get_str(it->res, 0, 6);
    it->direction = pg_get_str(it->res, 0, 7);
    it->receiving_account = pg_get_str(it->res, 0, 8);
    it->bank_txn_id = pg_get_str(it->res, 0, 9);
    it->value_date = pg_get_str(it->res, 0, 10);
    if (strcmp(it->status, "open") != 0) {
        return error_set(err, TP_CONFLICT, "review item %lld is resolved already", (long long)id);
    }
    return TP_OK;
}

static enum tp_status review_audit(struct pg_conn *c, const struct review_item *it,
                                   const struct review_request *req, const char *resolution,
                                   int64_t order_id, struct tp_error *err)
{
    char ids[24], oid[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)it->id);
    snprintf(oid, sizeof(oid), "%lld", (long long)order_id);
    const char *const p1[3] = {ids, resolution, req->actor};
    enum tp_status st = pg_exec(c, review_sql_resolve, 3, p1, NULL, err);
    if (st == TP_OK) {
        const char *const p2[5] = {ids, req->actor, review_action_name(req->action), req->reason,
                                   order_id > 0 ? oid : NULL};
        st = pg_exec(c, review_sql_action, 5, p2, NULL, err);
    }
    return st;
}

static enum tp_status review_set_state(struct pg_conn *c, int64_t record_id, const char *state,
                                       struct tp_error *err)
{
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)record_id);
    const char *const params[2] = {ids, state};
    return pg_exec(c, review_sql_record_state, 2, params, NULL, err);
}

/* The decision row of a manual action (outcome matched, refund or dismissed). */
static enum tp_status review_decision(struct pg_conn *c, const struct review_item *it,
                                      const struct review_request *req, const char *outcome,
                                      int64_t order_id, json_t *extra, struct tp_error *err)
{
    json_t *details = extra != NULL ? extra : json_object();
    json_object_set_new(details, "review_id", json_integer((json_int_t)it->id));
    json_object_set_new(details, "review_reason", json_string(it->reason));
    json_object_set_new(details, "action", json_string(review_action_name(req->action)));
    json_t *why = json_string(req->reason);
    json_object_set_new(details, "why", why != NULL ? why : json_null());
    char *text = json_dumps(details, JSON_COMPACT);
    if (text == NULL) {
        abort(); /* out of memory only: every string was checked UTF-8 or is ours */
    }
    struct claim_decision d = {
        .record_id = it->record_id,
        .order_id = order_id,
        .outcome = outcome,
        .rule = "manual",
        .details = text,
        .details_len = strlen(text),
        .decided_by = req->actor,
        .review_reason = NULL,
    };
    enum tp_status st = claim_write_decisions(c, &d, 1, err);
    free(text);
    json_decref(details);
    return st;
}

/*
 * The ceilings (issue #15): nothing above the ledger's recharge ceiling is ever matched (the
 * ledger would refuse the PaymentMatched and the order would stay processing); an item sent to
 * review for being above RECON_MAX_RECORD_FEN is matched only when support confirms the amount.
 */
static enum tp_status review_check_ceiling(const struct review_request *req,
                                           const struct review_item *it, struct tp_error *err)
{
    char amount[MONEY_STR_MAX], max[MONEY_STR_MAX];
    if (req->max_credit_fen <= 0 || it->amount_fen > req->max_credit_fen) {
        return error_set(err, TP_CONFLICT,
                         "review item %lld: the transfer of %s CNY is above the ledger's recharge "
                         "ceiling (LEDGER_MAX_RECHARGE_FEN, %s CNY), which would refuse the "
                         "credit; nothing was changed: pay it back with `review refund`",
                         (long long)it->id, money_format(it->amount_fen, amount),
                         money_format(req->max_credit_fen > 0 ? req->max_credit_fen : 0, max));
    }
    if (strcmp(it->reason, "above_ceiling") == 0 && !req->over_ceiling) {
        return error_set(err, TP_CONFLICT,
                         "review item %lld: the transfer of %s CNY is above the automatic ceiling "
                         "(RECON_MAX_RECORD_FEN); nothing was changed: confirm the amount with "
                         "--over-ceiling (audited), or pay it back with `review refund`",
                         (long long)it->id, money_format(it->amount_fen, amount));
    }
    return TP_OK;
}

static enum tp_status review_match(struct pg_conn *c, struct review_tx *tx,
                                   const struct review_item *it, struct tp_error *err)
{
    const struct review_request *req = tx->req;
    if (strcmp(it->reason, "amount_mismatch") == 0) {
        return error_set(err, TP_CONFLICT,
                         "review item %lld: the transfer is credited already (amount mismatch); "
                         "acknowledge it with `ignore`",
                         (long long)it->id);
    }
    if (strcmp(it->state, "review") != 0 || strcmp(it->direction, "credit") != 0 ||
        strcmp(it->currency, "CNY") != 0) {
        return error_set(err, TP_CONFLICT,
                         "review item %lld: record is %s %s %s; only a CNY credit in review can be "
                         "matched",
                         (long long)it->id, it->state, it->direction, it->currency);
    }
    enum tp_status st = review_check_ceiling(req, it, err);
    if (st != TP_OK) {
        return st;
    }
    const char *const p[1] = {tx->code};
    PGresult *ores = NULL;
    st = pg_exec(c, review_sql_order, 1, p, &ores, err);
    if (st != TP_OK) {
        goto out;
    }
    if (PQntuples(ores) == 0) {
        st = error_set(err, TP_NOT_FOUND, "order %s does not exist", tx->code);
        goto out;
    }
    struct claim_match m = {
        .record_id = it->record_id,
        .order_id = pg_get_i64(ores, 0, 0),
        .order_code = pg_get_str(ores, 0, 1),
        .account_id = pg_get_str(ores, 0, 2),
        .order_amount_fen = pg_get_i64(ores, 0, 3),
        .credited_fen = it->amount_fen,
        .rule = TOPUP__V1__MATCH_RULE__MATCH_RULE_MANUAL,
        .receiving_account = it->receiving_account,
        .bank_txn_id = it->bank_txn_id,
        .value_date = it->value_date,
    };
    m.amount_mismatch = m.credited_fen != m.order_amount_fen;
    size_t claimed = 0;
    st = claim_orders(c, &m, 1, &claimed, err);
    if (st == TP_OK && claimed != 1) {
        st = error_set(err, TP_CONFLICT, "order %s is %s, not pending: nothing was changed",
                       m.order_code, pg_get_str(ores, 0, 4));
    }
    json_t *extra =
        json_pack("{s:s,s:s,s:I,s:I,s:b,s:b}", "order_code", m.order_code, "account_id",
                  m.account_id, "order_amount_fen", (json_int_t)m.order_amount_fen, "credited_fen",
                  (json_int_t)m.credited_fen, "amount_mismatch", m.amount_mismatch, "over_ceiling",
                  strcmp(it->reason, "above_ceiling") == 0);
    if (st == TP_OK) {
        st = review_decision(c, it, req, "matched", m.order_id, extra, err);
    } else {
        json_decref(extra);
    }
    if (st == TP_OK) {
        st = review_set_state(c, it->record_id, "matched", err);
    }
    if (st == TP_OK) {
        st = claim_write_events(c, &m, 1, err);
    }
    if (st == TP_OK) {
        st = review_audit(c, it, req, "matched", m.order_id, err);
    }
    if (st == TP_OK && tx->summary != NULL) {
        char amount[MONEY_STR_MAX];
        snprintf(tx->summary, tx->summary_len,
                 "review %lld: transfer %s matched to order %s of account %s, %s CNY credited%s; "
                 "PaymentMatched queued",
                 (long long)it->id, it->bank_txn_id, m.order_code, m.account_id,
                 money_format(m.credited_fen, amount),
                 m.amount_mismatch ? " (differs from the order: flagged)" : "");
    }
out:
    PQclear(ores);
    return st;
}

/* refund, or ignore: the record leaves the queue without a credit. */
static enum tp_status review_close(struct pg_conn *c, struct review_tx *tx,
                                   const struct review_item *it, struct tp_error *err)
{
    const struct review_request *req = tx->req;
    bool credited = strcmp(it->reason, "amount_mismatch") == 0;
    enum tp_status st = TP_OK;
    if (credited && req->action == REVIEW_REFUND) {
        return error_set(err, TP_CONFLICT,
                         "review item %lld: the transfer is credited already; refund it through "
                         "the ledger (refund.issued), then acknowledge this item with `ignore`",
                         (long long)it->id);
    }
    const char *resolution = req->action == REVIEW_REFUND ? "refund" : "ignored";
    if (!credited) {
        const char *state = req->action == REVIEW_REFUND ? "refund" : "dismissed";
        if (strcmp(it->state, "review") != 0) {
            return error_set(err, TP_CONFLICT, "review item %lld: record is %s, not in review",
                             (long long)it->id, it->state);
        }
        st = review_decision(c, it, req, state, 0, NULL, err);
        if (st == TP_OK) {
            st = review_set_state(c, it->record_id, state, err);
        }
    }
    if (st == TP_OK) {
        st = review_audit(c, it, req, resolution, 0, err);
    }
    if (st == TP_OK && tx->summary != NULL) {
        snprintf(tx->summary, tx->summary_len, "review %lld: %s (%s)", (long long)it->id,
                 credited                       ? "acknowledged, the credit stands"
                 : req->action == REVIEW_REFUND ? "transfer marked for refund"
                                                : "transfer dismissed",
                 it->bank_txn_id);
    }
    return st;
}

static enum tp_status review_tx_fn(struct pg_conn *c, void *ctx, struct tp_error *err)
{
    struct review_tx *tx = ctx;
    struct review_item it = {0};
    enum tp_status st = review_lock(c, tx->req->review_id, &it, err);
    if (st == TP_OK) {
        st = tx->req->action == REVIEW_MATCH ? review_match(c, tx, &it, err)
                                             : review_close(c, tx, &it, err);
    }
    PQclear(it.res);
    return st;
}

static bool review_text_ok(const char *s, size_t max)
{
    return s != NULL && s[0] != '\0' && strlen(s) <= max && decode_text_ok(s, strlen(s));
}

enum tp_status review_apply(struct pg_conn *c, const struct review_request *req, char *summary,
                            size_t summary_len, struct tp_error *err)
{
    struct review_tx tx = {.req = req, .summary = summary, .summary_len = summary_len};
    if (!review_text_ok(req->actor, REVIEW_ACTOR_MAX)) {
        return error_set(err, TP_INVALID, "--actor must be 1..%d characters of text",
                         REVIEW_ACTOR_MAX);
    }
    if (!review_text_ok(req->reason, REVIEW_REASON_MAX)) {
        return error_set(err, TP_INVALID, "--reason must be 1..%d characters of text",
                         REVIEW_REASON_MAX);
    }
    if (req->action == REVIEW_MATCH &&
        (req->order_code == NULL ||
         ids_refcode_find(req->order_code, strlen(req->order_code), tx.code) == false)) {
        return error_set(err, TP_INVALID, "--order \"%s\" is not a valid order code",
                         req->order_code != NULL ? req->order_code : "");
    }
    enum tp_status st = claim_prepare(c, err);
    if (st != TP_OK) {
        return st;
    }
    return pg_transaction(c, review_tx_fn, &tx, 3, err);
}

/* ---- reading ---- */

static void review_print_row(FILE *out, const PGresult *res, int row)
{
    char amount[MONEY_STR_MAX];
    fprintf(out, "%s\t%s\t%s\t%s\t%s\t%s %s\t%s\t%.40s\t%.60s\t%s\n", pg_get_str(res, row, 0),
            pg_get_str(res, row, 1), pg_get_str(res, row, 2), pg_get_str(res, row, 3),
            pg_get_str(res, row, 4), money_format(pg_get_i64(res, row, 5), amount),
            pg_get_str(res, row, 6), pg_get_str(res, row, 7), pg_get_str(res, row, 8),
            pg_get_str(res, row, 9), pg_get_str(res, row, 10));
}

enum tp_status review_list(struct pg_conn *c, const struct review_filter *f, FILE *out,
                           struct tp_error *err)
{
    static const char sql[] =
        "SELECT q.id, to_char(q.created_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI'),"
        " q.status, q.reason, r.bank_txn_id, r.amount_fen, r.currency, r.value_date::text,"
        " r.counterparty_name, r.remittance_info, coalesce(o.code, '-')"
        " FROM review_queue q JOIN statement_records r ON r.id = q.record_id"
        " LEFT JOIN topup_orders o ON o.id = q.order_id"
        " WHERE ($1 = 'all' OR q.status = 'open') AND ($2 = '' OR q.reason = $2)"
        " ORDER BY q.id LIMIT $3::int";
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", f->limit);
    const char *const params[3] = {f->all ? "all" : "open", f->reason ? f->reason : "", limit};
    PGresult *res = NULL;
    enum tp_status st = pg_exec(c, sql, 3, params, &res, err);
    if (st == TP_OK) {
        fprintf(out, "id\tcreated\tstatus\treason\tbank_txn_id\tamount\tvalue_date\t"
                     "counterparty\tremittance\torder\n");
        for (int row = 0; row < PQntuples(res); row++) {
            review_print_row(out, res, row);
        }
    }
    PQclear(res);
    return st;
}

/* Prints every row of res as "label: value" lines under a heading. */
static void review_print_block(FILE *out, const char *heading, const PGresult *res)
{
    for (int row = 0; row < PQntuples(res); row++) {
        fprintf(out, "%s%s\n", heading, PQntuples(res) > 1 ? "" : "");
        for (int col = 0; col < PQnfields(res); col++) {
            fprintf(out, "  %-22s %s\n", PQfname(res, col), pg_get_str(res, row, col));
        }
    }
}

enum tp_status review_show(struct pg_conn *c, int64_t review_id, FILE *out, struct tp_error *err)
{
    static const char *const sqls[] = {
        "SELECT q.id AS review_id, q.status, q.reason, q.resolution, q.resolved_by,"
        " q.created_at, q.resolved_at, q.details::text AS details FROM review_queue q"
        " WHERE q.id = $1::bigint",
        "SELECT r.id AS record_id, r.state, r.receiving_account, r.bank_txn_id, r.value_date,"
        " r.booking_date, r.amount_fen, r.currency, r.direction, r.counterparty_name,"
        " r.counterparty_name_norm, r.counterparty_account, r.counterparty_bank,"
        " r.remittance_info, r.ref_codes, r.source_file, r.source_location, r.format"
        " FROM review_queue q JOIN statement_records r ON r.id = q.record_id"
        " WHERE q.id = $1::bigint",
        "SELECT o.code AS order_code, o.account_id, o.amount_fen, o.status, o.remitter_name,"
        " o.created_at, o.expires_at FROM review_queue q JOIN topup_orders o ON o.id = q.order_id"
        " WHERE q.id = $1::bigint",
        "SELECT d.id AS decision_id, d.outcome, d.rule, d.decided_by, d.created_at,"
        " d.details::text AS details FROM review_queue q"
        " JOIN match_decisions d ON d.record_id = q.record_id WHERE q.id = $1::bigint"
        " ORDER BY d.id",
        ("SELECT a.id AS action_id, a.action, a.actor, a.reason, a.created_at FROM review_actions a"
         " WHERE a.review_id = $1::bigint ORDER BY a.id"),
    };
    static const char *const headings[] = {"review item", "statement record", "order referenced",
                                           "decision", "action"};
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)review_id);
    const char *const params[1] = {ids};
    enum tp_status st = TP_OK;
    for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]) && st == TP_OK; i++) {
        PGresult *res = NULL;
        st = pg_exec(c, sqls[i], 1, params, &res, err);
        if (st == TP_OK && i == 0 && PQntuples(res) == 0) {
            st = error_set(err, TP_NOT_FOUND, "review item %s does not exist", ids);
        }
        if (st == TP_OK) {
            review_print_block(out, headings[i], res);
        }
        PQclear(res);
    }
    return st;
}
