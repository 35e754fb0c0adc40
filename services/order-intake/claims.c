/* POST /v1/topup-orders/{code}/claim: the user's "I have paid" claim, stored for support. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "intake.h"
#include "topup/counters.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/money.h"
#include "topup/names.h"
#include "topup/pg.h"

/* How far back a transfer date may lie (a claim is about a recent payment), and ahead (time
 * zones: the bank's day may already be tomorrow in UTC terms). */
#define CLAIM_MAX_AGE_DAYS   400
#define CLAIM_MAX_AHEAD_DAYS 1

/*
 * The claim is filed only for a pending or expired order of the account (a cancelled one was
 * given up by the user, a processing or completed one was credited), at most once per order
 * (unique index: a concurrent second claim loses with a duplicate).
 */
static const char claims_sql_insert[] =
    "WITH o AS (SELECT id, status FROM topup_orders WHERE account_id = $1 AND code = $2"
    " FOR UPDATE),"
    " c AS (INSERT INTO payment_claims (order_id, account_id, payer_name, payer_name_norm,"
    " amount_fen, transfer_date, bank_serial, note, order_status)"
    " SELECT o.id, $1, $3, $4, $5::bigint, $6::date, $7, $8, o.status FROM o"
    " WHERE o.status IN ('pending', 'expired')"
    " AND NOT EXISTS (SELECT 1 FROM payment_claims p WHERE p.order_id = o.id)"
    " RETURNING id)"
    " SELECT o.id, o.status, (SELECT id FROM c),"
    " EXISTS (SELECT 1 FROM payment_claims p WHERE p.order_id = o.id) FROM o";

/* The claim of an order as the API shows it; its status follows the order. */
static const char claims_sql_get[] =
    "SELECT c.id, c.payer_name, c.amount_fen, c.transfer_date::text, c.bank_serial, c.note,"
    " floor(extract(epoch FROM c.created_at) * 1000)::bigint,"
    " CASE WHEN o.status IN ('processing', 'completed') THEN 'matched' ELSE 'open' END"
    " FROM payment_claims c JOIN topup_orders o ON o.id = c.order_id WHERE c.order_id = $1";

static bool claims_text(json_t *body, const char *name, size_t max_chars, bool required, char *out,
                        size_t out_size, struct validate_error *v)
{
    json_t *j = json_object_get(body, name);
    out[0] = '\0';
    if (j == NULL || json_is_null(j)) {
        if (!required) {
            return true;
        }
        v->status = 422;
        v->code = "claim_field_required";
        snprintf(v->field, sizeof(v->field), "%s", name);
        snprintf(v->message, sizeof(v->message), "%s is required", name);
        return false;
    }
    if (!json_is_string(j)) {
        v->status = 400;
        v->code = "wrong_type";
        snprintf(v->field, sizeof(v->field), "%s", name);
        snprintf(v->message, sizeof(v->message), "%s must be a string", name);
        return false;
    }
    const char *s = json_string_value(j);
    while (*s == ' ') {
        s++;
    }
    size_t len = strlen(s);
    while (len > 0 && s[len - 1] == ' ') {
        len--;
    }
    size_t chars = 0;
    bool ctrl = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        chars += (c & 0xC0) != 0x80;
        ctrl |= c < 0x20 || c == 0x7f;
    }
    if (ctrl || (required && len == 0) || chars > max_chars || len >= out_size) {
        v->status = 422;
        v->code = ctrl ? "invalid_characters" : len == 0 ? "claim_field_required" : "too_long";
        snprintf(v->field, sizeof(v->field), "%s", name);
        snprintf(v->message, sizeof(v->message),
                 "%s: 1 to %zu characters without control "
                 "characters",
                 name, max_chars);
        return false;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

static bool claims_fail(struct validate_error *v, unsigned status, const char *code,
                        const char *field, const char *msg)
{
    v->status = status;
    v->code = code;
    snprintf(v->field, sizeof(v->field), "%s", field != NULL ? field : "");
    snprintf(v->message, sizeof(v->message), "%s", msg);
    return false;
}

/* YYYY-MM-DD, a real day, not before CLAIM_MAX_AGE_DAYS ago nor after tomorrow (UTC). */
static bool claims_date(const char *s, struct validate_error *v)
{
    int y = 0, m = 0, d = 0;
    char tail = 0;
    if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || s[4] != '-' ||
        s[7] != '-') {
        return claims_fail(v, 400, "invalid_date", "transfer_date",
                           "transfer_date must be a date YYYY-MM-DD");
    }
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = 12};
    time_t t = timegm(&tm);
    if (m < 1 || m > 12 || d < 1 || tm.tm_mday != d || tm.tm_mon != m - 1) {
        return claims_fail(v, 400, "invalid_date", "transfer_date", "transfer_date is not a day");
    }
    time_t now = time(NULL);
    if (t > now + CLAIM_MAX_AHEAD_DAYS * 86400 || t < now - (time_t)CLAIM_MAX_AGE_DAYS * 86400) {
        return claims_fail(v, 422, "transfer_date_out_of_range", "transfer_date",
                           "transfer_date must lie between 400 days ago and today");
    }
    return true;
}

bool claims_parse(const char *body, size_t len, struct claims_request *out,
                  struct validate_error *v)
{
    memset(v, 0, sizeof(*v));
    if (!validate_utf8(body, len)) {
        return claims_fail(v, 400, "invalid_utf8", NULL, "the body is not valid UTF-8");
    }
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        return claims_fail(v, 400, "invalid_json", NULL, "the body must be a JSON object");
    }
    static const char *const known[] = {"payer_name",  "amount", "transfer_date",
                                        "bank_serial", "note",   NULL};
    const char *key;
    json_t *val;
    bool ok = true;
    json_object_foreach(j, key, val)
    {
        bool k = false;
        for (int i = 0; known[i] != NULL; i++) {
            k |= strcmp(known[i], key) == 0;
        }
        if (!k && ok) {
            char msg[160];
            snprintf(msg, sizeof(msg), "unknown field \"%.64s\"", key);
            ok = claims_fail(v, 400, "unknown_field", key, msg);
        }
    }
    char amount[MONEY_STR_MAX + 8];
    struct tp_error err = {0};
    ok = ok && claims_text(j, "payer_name", VALIDATE_NAME_MAX_CHARS, true, out->payer_name,
                           sizeof(out->payer_name), v);
    ok = ok && claims_text(j, "amount", MONEY_STR_MAX, true, amount, sizeof(amount), v);
    if (ok && (money_parse(amount, &out->amount_fen, &err) != TP_OK || out->amount_fen <= 0)) {
        ok = claims_fail(v, 400, "invalid_amount", "amount",
                         "amount must be a decimal string with at most two decimals, e.g. "
                         "\"100.00\"");
    }
    ok = ok &&
         claims_text(j, "transfer_date", 10, true, out->transfer_date, sizeof(out->transfer_date),
                     v) &&
         claims_date(out->transfer_date, v);
    ok = ok &&
         claims_text(j, "bank_serial", 64, false, out->bank_serial, sizeof(out->bank_serial), v);
    ok = ok &&
         claims_text(j, "note", VALIDATE_REMARKS_MAX_CHARS, false, out->note, sizeof(out->note), v);
    if (ok && names_normalize(out->payer_name, strlen(out->payer_name), out->payer_name_norm,
                              &err) != TP_OK) {
        ok = claims_fail(v, 422, "invalid_characters", "payer_name", "payer_name is not a name");
    }
    json_decref(j);
    return ok;
}

json_t *claims_json(struct pg_conn *pg, int64_t order_id, enum tp_status *st, struct tp_error *err)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, order_id);
    const char *params[1] = {id};
    PGresult *r = NULL;
    *st = pg_exec(pg, claims_sql_get, 1, params, &r, err);
    if (*st != TP_OK) {
        return NULL;
    }
    json_t *j = json_null();
    if (PQntuples(r) == 1) {
        char amount[MONEY_STR_MAX];
        j = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "id",
                      (json_int_t)pg_get_i64(r, 0, 0), "payer_name", pg_get_str(r, 0, 1), "amount",
                      money_format(pg_get_i64(r, 0, 2), amount), "transfer_date",
                      pg_get_str(r, 0, 3), "bank_serial", pg_get_str(r, 0, 4), "note",
                      pg_get_str(r, 0, 5), "filed_at", api_time_json(pg_get_i64(r, 0, 6)), "status",
                      pg_get_str(r, 0, 7));
        if (j == NULL) {
            j = json_null();
        }
    }
    PQclear(r);
    return j;
}

void claims_run(struct intake *app, struct pg_conn *pg, struct intake_job *job)
{
    const struct claims_request *c = job->claim;
    char amount[24];
    snprintf(amount, sizeof(amount), "%" PRId64, c->amount_fen);
    const char *params[8] = {job->account, job->code,        c->payer_name,  c->payer_name_norm,
                             amount,       c->transfer_date, c->bank_serial, c->note};
    PGresult *r = NULL;
    struct tp_error err = {0};
    enum tp_status st = pg_exec(pg, claims_sql_insert, 8, params, &r, &err);
    if (st == TP_DUPLICATE) { /* a concurrent claim of the same order won */
        api_error(app, job->req, 409, "claim_exists", "this order has a claim already", NULL,
                  false);
        return;
    }
    if (st != TP_OK) {
        api_store_failed(app, job->req, st, &err, "file claim");
        return;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        api_error(app, job->req, 404, "not_found", "no such order", NULL, false);
        return;
    }
    int64_t order_id = pg_get_i64(r, 0, 0);
    char status[16];
    snprintf(status, sizeof(status), "%s", pg_get_str(r, 0, 1));
    bool created = !PQgetisnull(r, 0, 2);
    bool existed = strcmp(pg_get_str(r, 0, 3), "t") == 0;
    PQclear(r);
    if (!created && existed) {
        api_error(app, job->req, 409, "claim_exists",
                  "this order has a claim already; support is looking into it", NULL, false);
        return;
    }
    if (!created) {
        char msg[160];
        snprintf(msg, sizeof(msg), "only a pending or expired order can be claimed; this one is %s",
                 status);
        json_t *body = http_error_body("order_not_claimable", msg, NULL);
        json_object_set_new(json_object_get(body, "error"), "status", json_string(status));
        counters_incr(app->counters, "requests.rejected.order_not_claimable", 1);
        http_respond_json(job->req, 409, body);
        return;
    }
    counters_incr(app->counters, "claims.filed", 1);
    log_info("payment claim filed", LF_S("order", job->code), LF_S("account", job->account),
             LF_I("amount_fen", c->amount_fen), LF_S("transfer_date", c->transfer_date));
    json_t *claim = claims_json(pg, order_id, &st, &err);
    if (claim == NULL) {
        claim = json_null();
    }
    http_respond_json(job->req, 201, json_pack("{s:o}", "claim", claim));
}

void api_orders_claim(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    struct api_call *call = ctx;
    struct intake *app = call->app;
    if (!validate_content_type_json(http_request_header(req, "Content-Type"))) {
        api_error(app, req, 415, "unsupported_media_type",
                  "send the body as Content-Type: application/json", NULL, false);
        return;
    }
    char code[16];
    if (!validate_order_code(m->params[0], code)) {
        api_error(app, req, 404, "not_found", "no such order", NULL, false);
        return;
    }
    struct intake_job *job = pool_job_new(JOB_CLAIM, req, call->account);
    job->claim = mem_calloc(1, sizeof(*job->claim));
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    struct validate_error v;
    if (!claims_parse(body, len, job->claim, &v)) {
        pool_job_free(job);
        api_validation_error(app, req, &v, false);
        return;
    }
    memcpy(job->code, code, REFCODE_STR_LEN);
    api_submit(app, job);
}
