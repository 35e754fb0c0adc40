/* The HTTP entry point: routing, bearer-token authentication, errors, shared JSON rendering. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "intake.h"
#include "topup/counters.h"
#include "topup/log.h"
#include "topup/money.h"
#include "topup/outbox.h"

#define API_RETRY_AFTER_S "1"

/* Every /v1/ route needs the token; ctx of each handler is a struct api_call. */
static const struct http_route api_routes[] = {
    {"POST", "/v1/topup-orders", api_orders_create},
    {"GET", "/v1/topup-orders", api_orders_list},
    {"GET", "/v1/topup-orders/{code}", api_orders_get},
    {"POST", "/v1/topup-orders/{code}/cancel", api_orders_cancel},
    {"POST", "/v1/topup-orders/{code}/claim", api_orders_claim},
    {"GET", "/v1/balance", api_account_balance},
    {"GET", "/v1/account-flows", api_account_flows},
    {"GET", "/v1/topup-options", api_account_options},
    {"GET", "/v1/settings", api_account_settings},
    {"POST", "/v1/refunds", api_refunds_create},
    {"GET", "/v1/refunds", api_refunds_list},
    {"GET", "/v1/refunds/{id}", api_refunds_get},
    {0},
};

/* The query parameters each handler takes (NULL-terminated); any other is 400. */
static const char *const api_no_query[] = {NULL};
static const char *const api_list_orders_query[] = {"limit", "cursor", "status", NULL};
static const char *const api_list_flows_query[] = {"limit", "cursor", "type", NULL};
static const char *const api_list_refunds_query[] = {"limit", "cursor", NULL};
static const struct {
    http_route_fn *fn;
    const char *const *query;
} api_route_queries[] = {
    {api_orders_create, api_no_query},
    {api_orders_list, api_list_orders_query},
    {api_orders_get, api_no_query},
    {api_orders_cancel, api_no_query},
    {api_orders_claim, api_no_query},
    {api_account_balance, api_no_query},
    {api_account_flows, api_list_flows_query},
    {api_account_options, api_no_query},
    {api_account_settings, api_no_query},
    {api_refunds_create, api_no_query},
    {api_refunds_list, api_list_refunds_query},
    {api_refunds_get, api_no_query},
};

/* The query list of a handler; NULL for a handler not listed (it checks its own). */
static const char *const *api_query_of(http_route_fn *fn)
{
    for (size_t i = 0; i < sizeof(api_route_queries) / sizeof(api_route_queries[0]); i++) {
        if (api_route_queries[i].fn == fn) {
            return api_route_queries[i].query;
        }
    }
    return NULL;
}

/* Refuses a query parameter the route does not take, or one given twice (which would be read
 * differently by different layers). True when the request may go on. */
static bool api_query_ok(struct intake *app, struct http_request *req, const struct http_route *rt)
{
    const char *const *known = api_query_of(rt->fn);
    if (known == NULL) {
        return true;
    }
    bool dup = false;
    const char *bad = http_request_query_check(req, known, &dup);
    if (bad == NULL) {
        return true;
    }
    char msg[256];
    if (dup) {
        snprintf(msg, sizeof(msg), "query parameter \"%.64s\" is given more than once", bad);
        api_error(app, req, 400, "duplicate_query_parameter", msg, bad, false);
        return false;
    }
    size_t n = 0;
    int w =
        snprintf(msg, sizeof(msg), "unknown query parameter \"%.64s\"; this endpoint takes ", bad);
    n = w > 0 ? (size_t)w : 0;
    for (int i = 0; known[i] != NULL && n < sizeof(msg); i++) {
        w = snprintf(msg + n, sizeof(msg) - n, "%s%s", i ? ", " : "", known[i]);
        n += w > 0 ? (size_t)w : 0;
    }
    if (known[0] == NULL) {
        snprintf(msg + n, sizeof(msg) - n, "none");
    }
    api_error(app, req, 400, "unknown_query_parameter", msg, bad, false);
    return false;
}

void api_error(struct intake *app, struct http_request *req, unsigned status, const char *code,
               const char *message, const char *field, bool order_create)
{
    char name[COUNTERS_NAME_MAX];
    snprintf(name, sizeof(name), "%s.%s", order_create ? "orders.rejected" : "requests.rejected",
             code);
    counters_incr(app->counters, name, 1);
    http_respond_error(req, status, code, message, field);
}

void api_validation_error(struct intake *app, struct http_request *req,
                          const struct validate_error *v, bool order_create)
{
    api_error(app, req, v->status, v->code, v->message, v->field[0] != '\0' ? v->field : NULL,
              order_create);
}

void api_unavailable(struct intake *app, struct http_request *req, const char *why)
{
    counters_incr(app->counters, "requests.unavailable", 1);
    http_response_header(req, "Retry-After", API_RETRY_AFTER_S);
    http_respond_error(req, 503, "unavailable", why, NULL);
}

void api_store_failed(struct intake *app, struct http_request *req, enum tp_status st,
                      const struct tp_error *err, const char *what)
{
    if (st == TP_RETRY) {
        log_warn("database unavailable", LF_S("op", what), LF_S("error", err->msg));
        api_unavailable(app, req, "the database is unavailable; try again");
        return;
    }
    log_error("request failed", LF_S("op", what), LF_S("status", error_status_name(st)),
              LF_S("error", err->msg));
    counters_incr(app->counters, "requests.failed", 1);
    http_respond_error(req, 500, "internal", "internal error", NULL);
}

bool api_submit(struct intake *app, struct intake_job *job)
{
    struct http_request *req = job->req;
    if (!pool_submit(app->pool, job)) {
        pool_job_free(job);
        api_unavailable(app, req, "the service is overloaded or stopping; try again");
        return false;
    }
    return true;
}

json_t *api_time_json(int64_t ms)
{
    if (ms == 0) {
        return json_null();
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char buf[40];
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
    return json_string(buf);
}

/*
 * How to pay, only while the order waits for the transfer: a cancelled, expired, processing or
 * completed order must not invite another transfer. The bank's field is named as Chinese banks
 * label it (附言, or 备注 / 用途 on some), never as this form's own note.
 */
static void api_order_instructions(json_t *j, const struct intake *app, const struct store_order *o,
                                   const char *amount)
{
    if (strcmp(o->status, "pending") != 0) {
        json_object_set_new(j, "payee", json_null());
        json_object_set_new(j, "instructions", json_null());
        json_object_set_new(j, "instructions_zh", json_null());
        return;
    }
    /* Whole on their own (a gateway may show only this text): the payee is named in them. */
    char en[1024];
    char zh[1024];
    snprintf(en, sizeof(en),
             "Transfer exactly %s CNY to %s, %s, account number %s, and enter the reference code "
             "%s in the transfer's remark field at your bank (附言 / 备注).",
             amount, app->cfg.payee_account_name, app->cfg.payee_bank_name,
             app->cfg.payee_account_number, o->code);
    snprintf(zh, sizeof(zh),
             "请向 %s（%s，账号 %s）转账 %s 元，并在银行转账的“附言”（或“备注”）栏填写参考码 %s。",
             app->cfg.payee_account_name, app->cfg.payee_bank_name, app->cfg.payee_account_number,
             amount, o->code);
    json_object_set_new(j, "payee",
                        json_pack("{s:s, s:s, s:s}", "bank_name", app->cfg.payee_bank_name,
                                  "account_name", app->cfg.payee_account_name, "account_number",
                                  app->cfg.payee_account_number));
    json_object_set_new(j, "instructions", json_string(en));
    json_object_set_new(j, "instructions_zh", json_string(zh));
}

json_t *api_order_json(const struct intake *app, const struct store_order *o)
{
    char amount[MONEY_STR_MAX];
    char credited[MONEY_STR_MAX];
    money_format(o->amount_fen, amount);
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
        "code", o->code, "status", o->status, "amount", amount, "currency", o->currency, "channel",
        o->channel, "remitter_name", o->remitter_name, "remitter_bank", o->remitter_bank, "remarks",
        o->remarks, "credited_amount",
        o->credited_fen >= 0 ? json_string(money_format(o->credited_fen, credited)) : json_null(),
        "amount_mismatch", o->amount_mismatch, "created_at", api_time_json(o->created_ms),
        "expires_at", api_time_json(o->expires_ms), "updated_at", api_time_json(o->updated_ms),
        "cancelled_at", api_time_json(o->cancelled_ms), "expired_at", api_time_json(o->expired_ms),
        "matched_at", api_time_json(o->matched_ms), "completed_at", api_time_json(o->completed_ms));
    if (j == NULL) {
        /* Only invalid UTF-8 from the database could do this: a broken invariant, not input. */
        log_error("order could not be rendered as JSON", LF_S("order", o->code));
        return json_pack("{s:s, s:s}", "code", o->code, "status", o->status);
    }
    api_order_instructions(j, app, o, amount);
    return j;
}

/* Verifies "Authorization: Bearer <token>"; answers 401 itself when it fails. */
static bool api_authenticate(struct intake *app, struct http_request *req, char *account,
                             bool order_create)
{
    const char *h = http_request_header(req, "Authorization");
    static const char scheme[] = "Bearer ";
    if (h == NULL || strncasecmp(h, scheme, sizeof(scheme) - 1) != 0) {
        http_response_header(req, "WWW-Authenticate", "Bearer realm=\"topup\"");
        api_error(app, req, 401, "unauthorized", "a bearer token is required", NULL, order_create);
        return false;
    }
    const char *tok = h + sizeof(scheme) - 1;
    while (*tok == ' ') {
        tok++;
    }
    struct token_claims claims;
    struct tp_error err = {0};
    const char *secret = app->cfg.token_secret;
    if (token_verify(secret, strlen(secret), tok, (int64_t)time(NULL), &claims, &err) != TP_OK) {
        http_response_header(req, "WWW-Authenticate",
                             "Bearer realm=\"topup\", error=\"invalid_token\"");
        if (claims.expired) {
            api_error(app, req, 401, "token_expired", "the token has expired: sign in again", NULL,
                      false);
        } else {
            api_error(app, req, 401, "unauthorized", "the token is not valid", NULL, order_create);
        }
        return false;
    }
    snprintf(account, TOKEN_ACCOUNT_MAX + 1, "%s", claims.account);
    return true;
}

/* The OpenAPI 3.1 document of this API (openapi.json, compiled in by CMake). */
extern const unsigned char intake_openapi_json[];
extern const size_t intake_openapi_json_len;

static void api_openapi(struct intake *app, struct http_request *req)
{
    bool dup = false;
    const char *bad = http_request_query_check(req, api_no_query, &dup);
    if (bad != NULL) {
        api_error(app, req, 400, dup ? "duplicate_query_parameter" : "unknown_query_parameter",
                  "this endpoint takes no query parameter", bad, false);
        return;
    }
    http_respond(req, 200, "application/json", intake_openapi_json, intake_openapi_json_len);
}

static void api_health(struct intake *app, struct http_request *req)
{
    http_respond_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void api_ready(struct intake *app, struct http_request *req)
{
    struct intake_job *job = pool_job_new(JOB_READY, req, NULL);
    if (!pool_submit(app->pool, job)) {
        pool_job_free(job);
        api_unavailable(app, req, "the service is overloaded or stopping");
    }
}

void api_handle(void *ctx, struct http_request *req)
{
    struct intake *app = ctx;
    const char *path = http_request_path(req);
    const char *method = http_request_method(req);
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
        if (!get) {
            http_response_header(req, "Allow", "GET");
            api_error(app, req, 405, "method_not_allowed", "use GET", NULL, false);
        } else if (path[1] == 'h') {
            api_health(app, req);
        } else {
            api_ready(app, req);
        }
        return;
    }
    if (strcmp(path, "/v1/openapi.json") == 0) { /* public, like the page: no token */
        if (!get) {
            http_response_header(req, "Allow", "GET");
            api_error(app, req, 405, "method_not_allowed", "use GET", NULL, false);
        } else {
            api_openapi(app, req);
        }
        return;
    }
    if (strncmp(path, "/v1/", 4) != 0 && strcmp(path, "/v1") != 0) {
        static_serve(app, req);
        return;
    }
    const struct http_route *rt = NULL;
    struct http_route_match m;
    char allow[64];
    switch (http_route_find(api_routes, method, path, &rt, &m, allow, sizeof(allow))) {
    case HTTP_ROUTE_NOT_FOUND:
        api_error(app, req, 404, "not_found", "no such endpoint", NULL, false);
        return;
    case HTTP_ROUTE_METHOD_NOT_ALLOWED:
        http_response_header(req, "Allow", allow);
        api_error(app, req, 405, "method_not_allowed", "method not allowed on this endpoint", NULL,
                  false);
        return;
    case HTTP_ROUTE_OK:
        break;
    }
    struct api_call call = {.app = app};
    /* A refused creation counts as orders.rejected.<code>, whatever refused it. */
    if (!api_authenticate(app, req, call.account, rt->fn == api_orders_create) ||
        !api_query_ok(app, req, rt)) {
        return;
    }
    rt->fn(&call, req, &m);
}
