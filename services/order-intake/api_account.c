/* /v1/balance, /v1/account-flows, /v1/topup-options and the readiness check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/money.h"
#include "topup/outbox.h"
#include "topup/pg.h"

void api_account_balance(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    struct api_call *call = ctx;
    api_submit(call->app, pool_job_new(JOB_BALANCE, req, call->account));
}

void api_account_flows(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    struct api_call *call = ctx;
    struct validate_error v;
    struct intake_job *job = pool_job_new(JOB_LIST_FLOWS, req, call->account);
    bool ok = validate_limit(http_request_query(req, "limit"), &job->limit, &v) &&
              validate_flow_type(http_request_query(req, "type"), &job->filter, &v);
    /* The cursor pages this list only: this account's flows of this type ("all" is no filter). */
    struct validate_cursor_scope sc = {'f', job->filter, call->account};
    if (!ok || !validate_cursor_decode(call->app->cfg.cursor_key, &sc,
                                       http_request_query(req, "cursor"), &job->before_id, &v)) {
        pool_job_free(job);
        api_validation_error(call->app, req, &v, false);
        return;
    }
    api_submit(call->app, job);
}

/* The body both /v1/topup-options and /v1/settings answer with; settings adds currency and the
 * support address. Payee, bounds and presets come from the configuration, never from the page. */
static json_t *account_options_body(const struct intake_settings *cfg)
{
    char min[MONEY_STR_MAX], max[MONEY_STR_MAX], p[MONEY_STR_MAX];
    json_t *presets = json_array();
    for (int i = 0; i < cfg->presets_n; i++) {
        json_array_append_new(presets, json_string(money_format(cfg->presets_fen[i], p)));
    }
    return json_pack(
        "{s:{s:s, s:s, s:s}, s:s, s:s, s:o, s:[s], s:I, s:i, s:i}", "payee", "bank_name",
        cfg->payee_bank_name, "account_name", cfg->payee_account_name, "account_number",
        cfg->payee_account_number, "min_amount", money_format(cfg->min_amount_fen, min),
        "max_amount", money_format(cfg->max_amount_fen, max), "presets", presets, "channels",
        VALIDATE_CHANNEL, "order_ttl_s", (json_int_t)cfg->order_ttl_s, "remarks_max_chars",
        VALIDATE_REMARKS_MAX_CHARS, "name_max_chars", VALIDATE_NAME_MAX_CHARS);
}

void api_account_options(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    struct api_call *call = ctx;
    http_respond_json(req, 200, account_options_body(&call->app->cfg));
}

void api_account_settings(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    struct api_call *call = ctx;
    const struct intake_settings *cfg = &call->app->cfg;
    json_t *body = account_options_body(cfg);
    json_object_set_new(body, "currency", json_string("CNY"));
    json_object_set_new(body, "support_url", json_string(cfg->support_url));
    http_respond_json(req, 200, body);
}

static void account_run_balance(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    int64_t fen = 0;
    struct tp_error err = {0};
    enum tp_status st = store_balance(pg, job->account, &fen, &err);
    if (st != TP_OK) {
        api_store_failed(app, job->req, st, &err, "balance");
        return;
    }
    char bal[MONEY_STR_MAX];
    http_respond_json(job->req, 200,
                      json_pack("{s:s, s:s, s:s}", "account_id", job->account, "balance",
                                money_format(fen, bal), "currency", "CNY"));
}

static void account_run_flows(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    struct store_flow *rows = mem_calloc((size_t)job->limit + 1, sizeof(*rows));
    int n = 0;
    struct tp_error err = {0};
    enum tp_status st =
        store_list_flows(pg, job->account, job->before_id, job->filter, job->limit, rows, &n, &err);
    if (st != TP_OK) {
        api_store_failed(app, job->req, st, &err, "flows");
        free(rows);
        return;
    }
    json_t *arr = json_array();
    int shown = n > job->limit ? job->limit : n;
    for (int i = 0; i < shown; i++) {
        char amount[MONEY_STR_MAX], after[MONEY_STR_MAX];
        json_t *f =
            json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:o}", "id", (json_int_t)rows[i].id, "type",
                      rows[i].type, "amount", money_format(rows[i].amount_fen, amount),
                      "balance_after", money_format(rows[i].balance_after_fen, after), "reference",
                      rows[i].reference, "occurred_at", api_time_json(rows[i].occurred_ms),
                      "created_at", api_time_json(rows[i].created_ms));
        if (f == NULL) {
            log_error("flow could not be rendered as JSON", LF_I("flow", rows[i].id));
            continue;
        }
        json_array_append_new(arr, f);
    }
    json_t *next = json_null();
    if (n > job->limit) {
        char cursor[VALIDATE_CURSOR_MAX];
        struct validate_cursor_scope sc = {'f', job->filter, job->account};
        validate_cursor_encode(app->cfg.cursor_key, &sc, rows[shown - 1].id, cursor);
        next = json_string(cursor);
    }
    http_respond_json(job->req, 200, json_pack("{s:o, s:o}", "flows", arr, "next_cursor", next));
    free(rows);
}

static void account_run_ready(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    bool db = pg_ping(pg);
    bool relay = outbox_relay_healthy(app->relay) != 0;
    json_t *body = json_pack("{s:s, s:b, s:b, s:I}", "status",
                             db && relay ? "ready" : "unavailable", "postgres", db, "outbox_relay",
                             relay, "outbox_backlog", (json_int_t)outbox_relay_backlog(app->relay));
    if (!(db && relay)) {
        http_response_header(job->req, "Retry-After", "1");
    }
    http_respond_json(job->req, db && relay ? 200 : 503, body);
}

void api_account_run(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    switch (job->kind) {
    case JOB_BALANCE:
        account_run_balance(app, pg, job);
        break;
    case JOB_LIST_FLOWS:
        account_run_flows(app, pg, job);
        break;
    case JOB_READY:
        account_run_ready(app, pg, job);
        break;
    default:
        log_error("account job of an unexpected kind", LF_I("kind", job->kind));
        http_respond_error(job->req, 500, "internal", "internal error", NULL);
        break;
    }
}
