/* /v1/refunds: the user asks for unused paid credit back (idempotent), lists and reads refunds. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"
#include "topup/counters.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/money.h"
#include "topup/pg.h"

#define REFUNDS_TX_ATTEMPTS 3
/* A concurrent request with the same key commits first: the retry reads its refund. */
#define REFUNDS_KEY_RACE_ATTEMPTS 3

#define REFUNDS_MS(col) "floor(extract(epoch FROM " col ") * 1000)::bigint"
#define REFUNDS_COLS                                                                               \
    "q.id, q.refund_id, q.state, q.amount_fen, q.reason, COALESCE(l.order_code, ''), "             \
    "q.dest_name, q.dest_account, q.dest_bank, q.state_reason, " REFUNDS_MS(                       \
        "q.created_at") ", " REFUNDS_MS("q.updated_at")

/*
 * Refunds of a lot still open: requested, or approved with a reservation the ledger has not
 * decided yet (once applied, the lot's left_fen already went down; once refused, the request is
 * 'refused'). The same predicate as topupctl refund's.
 */
#define REFUNDS_SQL_OPEN_OF_LOT                                                                    \
    "(SELECT COALESCE(sum(q.amount_fen), 0) FROM refund_requests q WHERE q.lot_id = l.id AND "     \
    "(q.state = 'requested' OR (q.state = 'approved' AND NOT EXISTS (SELECT 1 FROM "               \
    "account_flows f WHERE f.event_id = q.reserve_event_id) AND NOT EXISTS (SELECT 1 FROM "        \
    "ledger_rejections j WHERE j.event_id = q.reserve_event_id))))"

/*
 * The account's lots, locked first in one order (id) by a statement of their own: what they can
 * still refund is read by the next statement, whose snapshot (READ COMMITTED) sees the refunds
 * that the transactions this one waited for committed. Read in the locking statement itself, the
 * open refunds would come from its older snapshot and two concurrent requests could both take
 * the same credit (intake_refunds races twelve of them).
 */
static const char refunds_sql_lock_lots[] =
    "SELECT count(*) FROM (SELECT l.id FROM credit_lots l WHERE l.account_id = $1 AND "
    "l.left_fen > 0 ORDER BY l.id FOR UPDATE OF l) x";

/* What each of the account's lots can still refund, oldest first. */
static const char refunds_sql_lots[] =
    "SELECT l.id, l.left_fen - " REFUNDS_SQL_OPEN_OF_LOT ", l.remitter_account <> '' "
    "FROM credit_lots l WHERE l.account_id = $1 AND l.left_fen > 0 ORDER BY l.id";

static const char refunds_sql_insert[] =
    "WITH n AS (SELECT nextval(pg_get_serial_sequence('refund_requests', 'id')) AS id), "
    "q AS (INSERT INTO refund_requests (id, refund_id, account_id, lot_id, record_id, amount_fen, "
    "dest_name, dest_account, dest_bank, reason, requested_by) "
    "SELECT n.id, 'RF' || lpad(n.id::text, greatest(10, length(n.id::text)), '0'), "
    "l.account_id, l.id, l.record_id, "
    "$2::bigint, l.remitter_name, l.remitter_account, l.remitter_bank, $3, 'user:' || $4 "
    "FROM n, credit_lots l WHERE l.id = $1::bigint AND l.record_id IS NOT NULL RETURNING id), "
    "t AS (INSERT INTO refund_transitions (request_id, from_state, to_state, actor, reason) "
    "SELECT q.id, NULL, 'requested', 'user:' || $4, $3 FROM q), "
    "k AS (INSERT INTO refund_idempotency_keys (account_id, key, request_hash, request_id) "
    "SELECT $4, $5, decode($6, 'hex'), q.id FROM q) "
    "SELECT id FROM q";

static const char refunds_sql_by_key[] =
    "SELECT encode(k.request_hash, 'hex'), " REFUNDS_COLS " FROM refund_idempotency_keys k "
    "JOIN refund_requests q ON q.id = k.request_id LEFT JOIN credit_lots l ON l.id = q.lot_id "
    "WHERE k.account_id = $1 AND k.key = $2";

/* A refund as rendered. */
struct refund_row {
    int64_t id;
    char refund_id[VALIDATE_REFUND_ID_MAX];
    char state[16];
    int64_t amount_fen;
    char reason[STORE_TEXT_MAX * 2];
    char order_code[REFCODE_STR_LEN + 8];
    char dest_name[STORE_TEXT_MAX];
    char dest_account[STORE_TEXT_MAX];
    char dest_bank[STORE_TEXT_MAX];
    char state_reason[STORE_TEXT_MAX];
    bool has_state_reason;
    int64_t created_ms, updated_ms;
};

/* How a create ended, for the answer. */
enum refunds_outcome {
    REFUNDS_CREATED,
    REFUNDS_REPLAYED,
    REFUNDS_KEY_REUSED,
    REFUNDS_NOTHING_REFUNDABLE, /* no unused paid credit with a remitter account */
    REFUNDS_ABOVE_REFUNDABLE,   /* more than all of it */
    REFUNDS_SPANS_TRANSFERS,    /* within the total, but no one transfer holds it */
};

struct refunds_create_ctx {
    struct intake_job *job;
    enum refunds_outcome outcome;
    int64_t refundable_fen; /* sum of what each lot can still refund */
    int64_t single_max_fen; /* the most one refund can take (one lot) */
    struct refund_row row;
};

static void refunds_copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
}

static void refunds_fill(const PGresult *r, int row, int c, struct refund_row *o)
{
    memset(o, 0, sizeof(*o));
    o->id = pg_get_i64(r, row, c + 0);
    refunds_copy(o->refund_id, sizeof(o->refund_id), pg_get_str(r, row, c + 1));
    refunds_copy(o->state, sizeof(o->state), pg_get_str(r, row, c + 2));
    o->amount_fen = pg_get_i64(r, row, c + 3);
    refunds_copy(o->reason, sizeof(o->reason), pg_get_str(r, row, c + 4));
    refunds_copy(o->order_code, sizeof(o->order_code), pg_get_str(r, row, c + 5));
    refunds_copy(o->dest_name, sizeof(o->dest_name), pg_get_str(r, row, c + 6));
    refunds_copy(o->dest_account, sizeof(o->dest_account), pg_get_str(r, row, c + 7));
    refunds_copy(o->dest_bank, sizeof(o->dest_bank), pg_get_str(r, row, c + 8));
    o->has_state_reason = !pg_is_null(r, row, c + 9);
    refunds_copy(o->state_reason, sizeof(o->state_reason), pg_get_str(r, row, c + 9));
    o->created_ms = pg_get_i64(r, row, c + 10);
    o->updated_ms = pg_get_i64(r, row, c + 11);
}

/*
 * The destination's account number as the user sees it: its last four characters only. It is the
 * user's own account, yet a refund list is no place to show it whole (screens are shared).
 */
static void refunds_mask(const char *account, char *out, size_t size)
{
    size_t n = strlen(account);
    snprintf(out, size, "****%.4s", n > 4 ? account + n - 4 : account);
}

static json_t *refunds_json(const struct refund_row *o)
{
    char amount[MONEY_STR_MAX];
    char masked[32];
    refunds_mask(o->dest_account, masked, sizeof(masked));
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:o, s:{s:s, s:s, s:s}, s:o, s:o, s:o}", "id", o->refund_id,
        "status", o->state, "amount", money_format(o->amount_fen, amount), "currency", "CNY",
        "reason", o->reason, "order_code",
        o->order_code[0] != '\0' ? json_string(o->order_code) : json_null(), "destination", "name",
        o->dest_name, "account_number", masked, "bank", o->dest_bank, "status_reason",
        o->has_state_reason ? json_string(o->state_reason) : json_null(), "created_at",
        api_time_json(o->created_ms), "updated_at", api_time_json(o->updated_ms));
    if (j == NULL) {
        log_error("refund could not be rendered as JSON", LF_S("refund", o->refund_id));
        return json_pack("{s:s, s:s}", "id", o->refund_id, "status", o->state);
    }
    return j;
}

static void refunds_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The key's refund, if the key exists: replayed, or refused as reused with another request. */
static enum tp_status refunds_replay(struct pg_conn *pg, struct refunds_create_ctx *x, bool *found,
                                     struct tp_error *err)
{
    struct intake_job *job = x->job;
    const char *p[2] = {job->account, job->idem_key};
    PGresult *r = NULL;
    enum tp_status st = pg_exec(pg, refunds_sql_by_key, 2, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    *found = PQntuples(r) == 1;
    if (*found) {
        char hash[VALIDATE_HASH_BYTES * 2 + 1];
        refunds_hex(job->refund->hash, VALIDATE_HASH_BYTES, hash);
        bool same = strcmp(pg_get_str(r, 0, 0), hash) == 0;
        x->outcome = same ? REFUNDS_REPLAYED : REFUNDS_KEY_REUSED;
        refunds_fill(r, 0, 1, &x->row);
    }
    PQclear(r);
    return TP_OK;
}

/*
 * Picks the lot a refund of amount_fen pays back: the newest one that can hold all of it (consumes
 * draw the oldest first, so the newest are the last to be used). One refund pays back one bank
 * transfer, to its remitter: an amount no single transfer holds is refused, naming the most one
 * refund can take, rather than split across remitters the user did not choose.
 */
static enum tp_status refunds_pick_lot(struct pg_conn *pg, struct refunds_create_ctx *x,
                                       char lot[24], struct tp_error *err)
{
    const char *p[1] = {x->job->account};
    enum tp_status st = pg_exec(pg, refunds_sql_lock_lots, 1, p, NULL, err);
    if (st != TP_OK) {
        return st;
    }
    PGresult *r = NULL;
    st = pg_exec(pg, refunds_sql_lots, 1, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    lot[0] = '\0';
    x->refundable_fen = 0;
    x->single_max_fen = 0;
    int64_t want = x->job->refund->amount_fen;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t room = pg_get_i64(r, i, 1);
        if (room <= 0 || strcmp(pg_get_str(r, i, 2), "t") != 0) {
            continue; /* fully being refunded, or a transfer without a remitter account */
        }
        x->refundable_fen += room;
        x->single_max_fen = room > x->single_max_fen ? room : x->single_max_fen;
        if (room >= want) {
            snprintf(lot, 24, "%s", pg_get_str(r, i, 0)); /* ascending: the last fit is newest */
        }
    }
    PQclear(r);
    if (lot[0] == '\0') {
        x->outcome = x->refundable_fen == 0     ? REFUNDS_NOTHING_REFUNDABLE
                     : want > x->refundable_fen ? REFUNDS_ABOVE_REFUNDABLE
                                                : REFUNDS_SPANS_TRANSFERS;
    }
    return TP_OK;
}

static enum tp_status refunds_create_tx(struct pg_conn *pg, void *ctx, struct tp_error *err)
{
    struct refunds_create_ctx *x = ctx;
    struct intake_job *job = x->job;
    bool found = false;
    enum tp_status st = refunds_replay(pg, x, &found, err);
    if (st != TP_OK || found) {
        return st;
    }
    char lot[24];
    st = refunds_pick_lot(pg, x, lot, err);
    if (st != TP_OK || lot[0] == '\0') {
        return st;
    }
    char amount[24], hash[VALIDATE_HASH_BYTES * 2 + 1];
    snprintf(amount, sizeof(amount), "%" PRId64, job->refund->amount_fen);
    refunds_hex(job->refund->hash, VALIDATE_HASH_BYTES, hash);
    const char *p[6] = {lot, amount, job->refund->reason, job->account, job->idem_key, hash};
    PGresult *r = NULL;
    st = pg_exec(pg, refunds_sql_insert, 6, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        /* A lot always has its record (the ledger opens it from the match decision's record). */
        return error_set(err, TP_FATAL, "credit lot %s has no statement record", lot);
    }
    PQclear(r);
    x->outcome = REFUNDS_CREATED;
    const char *k[2] = {job->account, job->idem_key};
    st = pg_exec(pg, refunds_sql_by_key, 2, k, &r, err);
    if (st == TP_OK) {
        refunds_fill(r, 0, 1, &x->row);
        PQclear(r);
    }
    return st;
}

/* 422 with what can be refunded, so the page can offer it. */
static void refunds_refuse_amount(struct intake *app, struct http_request *req,
                                  const struct refunds_create_ctx *x)
{
    static const char *const codes[] = {
        [REFUNDS_NOTHING_REFUNDABLE] = "nothing_refundable",
        [REFUNDS_ABOVE_REFUNDABLE] = "amount_above_refundable",
        [REFUNDS_SPANS_TRANSFERS] = "amount_spans_transfers",
    };
    char total[MONEY_STR_MAX], single[MONEY_STR_MAX], msg[256];
    money_format(x->refundable_fen, total);
    money_format(x->single_max_fen, single);
    if (x->outcome == REFUNDS_NOTHING_REFUNDABLE) {
        snprintf(msg, sizeof(msg), "there is no unused paid credit to refund");
    } else if (x->outcome == REFUNDS_ABOVE_REFUNDABLE) {
        snprintf(msg, sizeof(msg), "at most %s CNY of unused paid credit can be refunded", total);
    } else {
        snprintf(msg, sizeof(msg),
                 "a refund pays back one bank transfer: at most %s CNY in one refund (%s CNY in "
                 "all); ask for the rest as another refund",
                 single, total);
    }
    const char *code = codes[x->outcome];
    json_t *body = http_error_body(code, msg, "amount");
    json_t *e = json_object_get(body, "error");
    json_object_set_new(e, "refundable_amount", json_string(total));
    json_object_set_new(e, "max_single_refund", json_string(single));
    char name[COUNTERS_NAME_MAX];
    snprintf(name, sizeof(name), "refunds.rejected.%s", code);
    counters_incr(app->counters, name, 1);
    http_respond_json(req, 422, body);
}

static void refunds_run_create(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    struct refunds_create_ctx *x = mem_calloc(1, sizeof(*x));
    x->job = job;
    struct tp_error err = {0};
    enum tp_status st = TP_DUPLICATE;
    for (int i = 0; i < REFUNDS_KEY_RACE_ATTEMPTS && st == TP_DUPLICATE; i++) {
        st = pg_transaction(pg, refunds_create_tx, x, REFUNDS_TX_ATTEMPTS, &err);
    }
    struct http_request *req = job->req;
    if (st != TP_OK) {
        api_store_failed(app, req, st, &err, "create refund");
    } else if (x->outcome == REFUNDS_KEY_REUSED) {
        api_error(app, req, 409, "idempotency_key_reused",
                  "this Idempotency-Key was used for a different request", "Idempotency-Key",
                  false);
    } else if (x->outcome == REFUNDS_REPLAYED) {
        counters_incr(app->counters, "refunds.replayed", 1);
        http_response_header(req, "Idempotent-Replayed", "true");
        http_respond_json(req, 200, refunds_json(&x->row));
    } else if (x->outcome == REFUNDS_CREATED) {
        counters_incr(app->counters, "refunds.requested", 1);
        log_info("refund requested", LF_S("refund", x->row.refund_id),
                 LF_S("account", job->account), LF_I("amount_fen", x->row.amount_fen),
                 LF_S("order", x->row.order_code));
        http_respond_json(req, 201, refunds_json(&x->row));
    } else {
        refunds_refuse_amount(app, req, x);
    }
    free(x);
}

/* What the account can still ask back: in all, and in one refund. */
static enum tp_status refunds_refundable(struct pg_conn *pg, const char *account, int64_t *total,
                                         int64_t *single, struct tp_error *err)
{
    const char *p[1] = {account};
    PGresult *r = NULL;
    enum tp_status st = pg_exec(pg,
                                "SELECT COALESCE(sum(room), 0), COALESCE(max(room), 0) FROM "
                                "(SELECT l.left_fen - " REFUNDS_SQL_OPEN_OF_LOT
                                " AS room FROM credit_lots l WHERE l.account_id = $1 AND "
                                "l.left_fen > 0 AND l.remitter_account <> '') x WHERE room > 0",
                                1, p, &r, err);
    if (st == TP_OK) {
        *total = pg_get_i64(r, 0, 0);
        *single = pg_get_i64(r, 0, 1);
        PQclear(r);
    }
    return st;
}

static void refunds_run_list(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    char before[24], lim[16];
    snprintf(before, sizeof(before), "%" PRId64, job->before_id);
    snprintf(lim, sizeof(lim), "%d", job->limit + 1);
    const char *p[3] = {job->account, before, lim};
    PGresult *r = NULL;
    struct tp_error err = {0};
    int64_t total = 0, single = 0;
    enum tp_status st = pg_exec(pg,
                                "SELECT " REFUNDS_COLS " FROM refund_requests q LEFT JOIN "
                                "credit_lots l ON l.id = q.lot_id WHERE q.account_id = $1 AND "
                                "q.id < $2::bigint ORDER BY q.id DESC LIMIT $3::int",
                                3, p, &r, &err);
    if (st == TP_OK) {
        st = refunds_refundable(pg, job->account, &total, &single, &err);
        if (st != TP_OK) {
            PQclear(r);
        }
    }
    if (st != TP_OK) {
        api_store_failed(app, job->req, st, &err, "list refunds");
        return;
    }
    struct refund_row *row = mem_calloc(1, sizeof(*row));
    json_t *arr = json_array();
    int n = PQntuples(r);
    int shown = n > job->limit ? job->limit : n;
    for (int i = 0; i < shown; i++) {
        refunds_fill(r, i, 0, row);
        json_array_append_new(arr, refunds_json(row));
    }
    json_t *next = json_null();
    if (n > job->limit) {
        char cursor[VALIDATE_CURSOR_MAX];
        struct validate_cursor_scope sc = {'r', NULL, job->account};
        validate_cursor_encode(app->cfg.cursor_key, &sc, pg_get_i64(r, shown - 1, 0), cursor);
        next = json_string(cursor);
    }
    PQclear(r);
    free(row);
    char t[MONEY_STR_MAX], s[MONEY_STR_MAX];
    http_respond_json(job->req, 200,
                      json_pack("{s:o, s:o, s:{s:s, s:s}}", "refunds", arr, "next_cursor", next,
                                "refundable", "amount", money_format(total, t), "max_single_refund",
                                money_format(single, s)));
}

static void refunds_run_get(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    const char *p[2] = {job->account, job->refund_id};
    PGresult *r = NULL;
    struct tp_error err = {0};
    enum tp_status st = pg_exec(pg,
                                "SELECT " REFUNDS_COLS " FROM refund_requests q LEFT JOIN "
                                "credit_lots l ON l.id = q.lot_id WHERE q.account_id = $1 AND "
                                "q.refund_id = $2",
                                2, p, &r, &err);
    if (st != TP_OK) {
        api_store_failed(app, job->req, st, &err, "get refund");
        return;
    }
    if (PQntuples(r) != 1) {
        api_error(app, job->req, 404, "not_found", "no such refund", NULL, false);
    } else {
        struct refund_row *row = mem_calloc(1, sizeof(*row));
        refunds_fill(r, 0, 0, row);
        http_respond_json(job->req, 200, refunds_json(row));
        free(row);
    }
    PQclear(r);
}

void api_refunds_run(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    switch (job->kind) {
    case JOB_REFUND_CREATE:
        refunds_run_create(app, pg, job);
        break;
    case JOB_REFUND_LIST:
        refunds_run_list(app, pg, job);
        break;
    case JOB_REFUND_GET:
        refunds_run_get(app, pg, job);
        break;
    default:
        log_error("refunds job of an unexpected kind", LF_I("kind", job->kind));
        http_respond_error(job->req, 500, "internal", "internal error", NULL);
        break;
    }
}

void api_refunds_create(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    struct api_call *call = ctx;
    struct intake *app = call->app;
    if (!validate_content_type_json(http_request_header(req, "Content-Type"))) {
        api_error(app, req, 415, "unsupported_media_type",
                  "send the body as Content-Type: application/json", NULL, false);
        return;
    }
    struct validate_error v;
    const char *key = http_request_header(req, "Idempotency-Key");
    if (!validate_idempotency_key(key, &v)) {
        api_validation_error(app, req, &v, false);
        return;
    }
    struct intake_job *job = pool_job_new(JOB_REFUND_CREATE, req, call->account);
    job->refund = mem_calloc(1, sizeof(*job->refund));
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    if (!validate_refund_body(body, len, job->refund, &v)) {
        pool_job_free(job);
        api_validation_error(app, req, &v, false);
        return;
    }
    snprintf(job->idem_key, sizeof(job->idem_key), "%s", key);
    api_submit(app, job);
}

void api_refunds_list(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    struct api_call *call = ctx;
    struct validate_error v;
    struct intake_job *job = pool_job_new(JOB_REFUND_LIST, req, call->account);
    /* The cursor pages this list only: this account's refunds. */
    struct validate_cursor_scope sc = {'r', NULL, call->account};
    if (!validate_limit(http_request_query(req, "limit"), &job->limit, &v) ||
        !validate_cursor_decode(call->app->cfg.cursor_key, &sc, http_request_query(req, "cursor"),
                                &job->before_id, &v)) {
        pool_job_free(job);
        api_validation_error(call->app, req, &v, false);
        return;
    }
    api_submit(call->app, job);
}

void api_refunds_get(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    struct api_call *call = ctx;
    char id[VALIDATE_REFUND_ID_MAX];
    if (!validate_refund_id(m->params[0], id)) {
        api_error(call->app, req, 404, "not_found", "no such refund", NULL, false);
        return;
    }
    struct intake_job *job = pool_job_new(JOB_REFUND_GET, req, call->account);
    memcpy(job->refund_id, id, sizeof(id));
    api_submit(call->app, job);
}
