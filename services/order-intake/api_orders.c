/* /v1/topup-orders: create (idempotent, group-committed), list, get, cancel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"
#include "topup/counters.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/pg.h"

void api_orders_create(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    struct api_call *call = ctx;
    struct intake *app = call->app;
    if (!validate_content_type_json(http_request_header(req, "Content-Type"))) {
        api_error(app, req, 415, "unsupported_media_type",
                  "send the body as Content-Type: application/json", NULL, true);
        return;
    }
    struct validate_error v;
    const char *key = http_request_header(req, "Idempotency-Key");
    if (!validate_idempotency_key(key, &v)) {
        api_validation_error(app, req, &v, true);
        return;
    }
    struct intake_job *job = pool_job_new(JOB_CREATE, req, call->account);
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    if (!validate_order_body(body, len, app->cfg.min_amount_fen, app->cfg.max_amount_fen,
                             &job->order, &v)) {
        pool_job_free(job);
        api_validation_error(app, req, &v, true);
        return;
    }
    snprintf(job->idem_key, sizeof(job->idem_key), "%s", key);
    api_submit(app, job);
}

void api_orders_create_batch(struct intake *app, struct pg_conn *pg, struct intake_job **jobs,
                             int n)
{
    struct store_create *items = mem_calloc((size_t)n, sizeof(*items));
    for (int i = 0; i < n; i++) {
        items[i].account = jobs[i]->account;
        items[i].idem_key = jobs[i]->idem_key;
        items[i].req = &jobs[i]->order;
        items[i].ttl_s = app->cfg.order_ttl_s;
    }
    struct tp_error err = {0};
    enum tp_status st = store_create_batch(pg, items, n, ids_refcode_new, &err);
    int created = 0;
    for (int i = 0; i < n; i++) {
        struct http_request *req = jobs[i]->req;
        struct store_create *it = &items[i];
        if (st != TP_OK) {
            api_store_failed(app, req, st, &err, "create order");
        } else if (it->conflict) {
            api_error(app, req, 409, "idempotency_key_reused",
                      "this Idempotency-Key was used for a different request", "Idempotency-Key",
                      true);
        } else if (it->created) {
            created++;
            log_info("order created", LF_S("order", it->order.code), LF_S("account", it->account),
                     LF_I("amount_fen", it->order.amount_fen));
            http_respond_json(req, 201, api_order_json(app, &it->order));
        } else {
            counters_incr(app->counters, "orders.replayed", 1);
            /* RFC-style hint for clients: this answer is the stored one, nothing new happened. */
            http_response_header(req, "Idempotent-Replayed", "true");
            http_respond_json(req, 200, api_order_json(app, &it->order));
        }
    }
    if (created > 0) {
        counters_incr(app->counters, "orders.created", created);
    }
    free(items);
}

void api_orders_list(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    struct api_call *call = ctx;
    struct validate_error v;
    struct intake_job *job = pool_job_new(JOB_LIST_ORDERS, req, call->account);
    const char *status = http_request_query(req, "status");
    if (!validate_limit(http_request_query(req, "limit"), &job->limit, &v) ||
        !validate_order_status(status, &v)) {
        pool_job_free(job);
        api_validation_error(call->app, req, &v, false);
        return;
    }
    static const char *const statuses[] = {"pending", "processing", "completed", "cancelled",
                                           "expired"};
    for (size_t i = 0; status != NULL && i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        if (strcmp(statuses[i], status) == 0) {
            job->filter = statuses[i];
        }
    }
    /* The cursor pages this list only: this account's orders with this status filter. */
    struct validate_cursor_scope sc = {'o', job->filter, call->account};
    if (!validate_cursor_decode(call->app->cfg.cursor_key, &sc, http_request_query(req, "cursor"),
                                &job->before_id, &v)) {
        pool_job_free(job);
        api_validation_error(call->app, req, &v, false);
        return;
    }
    api_submit(call->app, job);
}

/* A code in the URL: a malformed one cannot exist, so it is a 404 like any unknown order. */
static struct intake_job *orders_code_job(struct api_call *call, struct http_request *req,
                                          const struct http_route_match *m,
                                          enum intake_job_kind kind)
{
    char code[16];
    if (!validate_order_code(m->params[0], code)) {
        api_error(call->app, req, 404, "not_found", "no such order", NULL, false);
        return NULL;
    }
    struct intake_job *job = pool_job_new(kind, req, call->account);
    memcpy(job->code, code, REFCODE_STR_LEN); /* a valid code is exactly REFCODE_LEN long */
    return job;
}

void api_orders_get(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    struct api_call *call = ctx;
    struct intake_job *job = orders_code_job(call, req, m, JOB_GET_ORDER);
    if (job != NULL) {
        api_submit(call->app, job);
    }
}

void api_orders_cancel(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    struct api_call *call = ctx;
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    struct validate_error v;
    if (len > 0 && !validate_content_type_json(http_request_header(req, "Content-Type"))) {
        api_error(call->app, req, 415, "unsupported_media_type",
                  "send no body, or {} as Content-Type: application/json", NULL, false);
        return;
    }
    if (!validate_empty_body(body, len, &v)) {
        api_validation_error(call->app, req, &v, false);
        return;
    }
    struct intake_job *job = orders_code_job(call, req, m, JOB_CANCEL);
    if (job != NULL) {
        api_submit(call->app, job);
    }
}

static void orders_run_list(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    struct store_order *rows = mem_calloc((size_t)job->limit + 1, sizeof(*rows));
    int n = 0;
    struct tp_error err = {0};
    enum tp_status st = store_list_orders(pg, job->account, job->before_id, job->filter, job->limit,
                                          rows, &n, &err);
    if (st != TP_OK) {
        api_store_failed(app, job->req, st, &err, "list orders");
        free(rows);
        return;
    }
    json_t *arr = json_array();
    int shown = n > job->limit ? job->limit : n;
    for (int i = 0; i < shown; i++) {
        json_array_append_new(arr, api_order_json(app, &rows[i]));
    }
    json_t *next = json_null();
    if (n > job->limit) {
        char cursor[VALIDATE_CURSOR_MAX];
        struct validate_cursor_scope sc = {'o', job->filter, job->account};
        validate_cursor_encode(app->cfg.cursor_key, &sc, rows[shown - 1].id, cursor);
        next = json_string(cursor);
    }
    http_respond_json(job->req, 200, json_pack("{s:o, s:o}", "orders", arr, "next_cursor", next));
    free(rows);
}

static void orders_run_get(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    struct store_order *o = mem_calloc(1, sizeof(*o));
    struct tp_error err = {0};
    enum tp_status st = store_get_order(pg, job->account, job->code, o, &err);
    json_t *claim = NULL;
    if (st == TP_OK) {
        claim = claims_json(pg, o->id, &st, &err);
    }
    if (st == TP_OK) {
        json_t *j = api_order_json(app, o);
        json_object_set_new(j, "claim", claim); /* the user's "I have paid" claim, or null */
        http_respond_json(job->req, 200, j);
    } else if (st == TP_NOT_FOUND) {
        api_error(app, job->req, 404, "not_found", "no such order", NULL, false);
    } else {
        api_store_failed(app, job->req, st, &err, "get order");
    }
    free(o);
}

static void orders_run_cancel(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    struct store_order *o = mem_calloc(1, sizeof(*o));
    struct tp_error err = {0};
    enum tp_status st = store_cancel_order(pg, job->account, job->code, o, &err);
    if (st == TP_OK) {
        counters_incr(app->counters, "orders.cancelled", 1);
        log_info("order cancelled", LF_S("order", o->code), LF_S("account", job->account));
        http_respond_json(job->req, 200, api_order_json(app, o));
    } else if (st == TP_CONFLICT) {
        char msg[128];
        snprintf(msg, sizeof(msg), "only a pending order can be cancelled; this one is %s",
                 o->status);
        json_t *body = http_error_body("order_not_pending", msg, NULL);
        json_object_set_new(json_object_get(body, "error"), "status", json_string(o->status));
        counters_incr(app->counters, "requests.rejected.order_not_pending", 1);
        http_respond_json(job->req, 409, body);
    } else if (st == TP_NOT_FOUND) {
        api_error(app, job->req, 404, "not_found", "no such order", NULL, false);
    } else {
        api_store_failed(app, job->req, st, &err, "cancel order");
    }
    free(o);
}

void api_orders_run(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    switch (job->kind) {
    case JOB_LIST_ORDERS:
        orders_run_list(app, pg, job);
        break;
    case JOB_GET_ORDER:
        orders_run_get(app, pg, job);
        break;
    case JOB_CANCEL:
        orders_run_cancel(app, pg, job);
        break;
    default:
        log_error("orders job of an unexpected kind", LF_I("kind", job->kind));
        http_respond_error(job->req, 500, "internal", "internal error", NULL);
        break;
    }
}
