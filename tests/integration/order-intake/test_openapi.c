/*
 * The OpenAPI document against the running service: /v1/openapi.json serves the repo's
 * openapi.json; every route is driven to every status and error code the document lists (but 500
 * and 503, which need a fault), and every answer seen must be in the document: its path, method,
 * status, error code (x-error-codes) and, for a JSON body, the required members of its schema.
 * A route, status or code the service has and the document lacks fails; so does the reverse.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#ifndef OPENAPI_FILE
#error "OPENAPI_FILE must name services/order-intake/openapi.json"
#endif

static struct it_service svc;
static json_t *doc;
/* "METHOD path status code" of every documented answer, and whether it was seen. */
static json_t *seen;

static json_t *doc_operation(const char *tmpl, const char *method)
{
    char m[8];
    size_t i = 0;
    for (; method[i] != '\0' && i < sizeof(m) - 1; i++) {
        m[i] = (char)(method[i] | 0x20);
    }
    m[i] = '\0';
    return json_object_get(json_object_get(json_object_get(doc, "paths"), tmpl), m);
}

/* A schema with its $ref and allOf resolved into the union of their required members. */
static void schema_required(json_t *schema, json_t *out)
{
    const char *ref = json_string_value(json_object_get(schema, "$ref"));
    if (ref != NULL) {
        const char *name = strrchr(ref, '/') + 1;
        schema =
            json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), name);
        CHECK_MSG(schema != NULL, "the document refers to a missing schema %s", ref);
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(schema, "allOf"), i, v)
    {
        schema_required(v, out);
    }
    json_array_foreach(json_object_get(schema, "required"), i, v)
    {
        json_array_append(out, v);
    }
}

static void key_of(char *out, size_t size, const char *method, const char *tmpl, int status,
                   const char *code)
{
    snprintf(out, size, "%s %s %d %s", method, tmpl, status, code);
}

/* Lists every documented answer (500 and 503 aside) as not yet seen. */
static void doc_index(void)
{
    seen = json_object();
    const char *tmpl;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), tmpl, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            if (strcmp(m, "parameters") == 0) {
                continue;
            }
            char method[8];
            size_t k = 0;
            for (; m[k] != '\0' && k < sizeof(method) - 1; k++) {
                method[k] = (char)(m[k] & ~0x20);
            }
            method[k] = '\0';
            const char *st;
            json_t *resp;
            json_object_foreach(json_object_get(op, "responses"), st, resp)
            {
                int status = atoi(st);
                if (status == 500 || status == 503) {
                    continue;
                }
                json_t *codes = json_object_get(resp, "x-error-codes");
                char key[512];
                if (json_array_size(codes) == 0) {
                    key_of(key, sizeof(key), method, tmpl, status, "-");
                    json_object_set_new(seen, key, json_false());
                }
                size_t i;
                json_t *c;
                json_array_foreach(codes, i, c)
                {
                    key_of(key, sizeof(key), method, tmpl, status, json_string_value(c));
                    json_object_set_new(seen, key, json_false());
                }
            }
        }
    }
}

/* Sends one request and checks the answer against the document; returns it (caller frees). */
static void drive(const char *method, const char *path, const char *tmpl, const char *token,
                  const char *idem, const char *ctype, const char *body, struct it_resp *r)
{
    it_call(&svc, method, path, token, idem, ctype, body, NULL, r);
    json_t *op = doc_operation(tmpl, method);
    const char *code = it_err(r);
    if (r->status == 405 && op == NULL) {
        /* A method the path does not have: documented as the path's 405 on its other methods. */
        json_t *item = json_object_get(json_object_get(doc, "paths"), tmpl);
        CHECK_MSG(item != NULL, "%s %s: path %s is not in the document", method, path, tmpl);
        CHECK_MSG(strcmp(code, "method_not_allowed") == 0, "%s %s: 405 %s", method, path, code);
        const char *m;
        json_t *other;
        json_object_foreach(item, m, other)
        {
            char up[8], key[512];
            size_t k = 0;
            for (; m[k] != '\0' && k < sizeof(up) - 1; k++) {
                up[k] = (char)(m[k] & ~0x20);
            }
            up[k] = '\0';
            key_of(key, sizeof(key), up, tmpl, 405, code);
            CHECK_MSG(strcmp(m, "parameters") == 0 || json_object_get(seen, key) != NULL,
                      "%s %s: 405 is not documented for %s %s", method, path, up, tmpl);
            if (strcmp(m, "parameters") != 0) {
                json_object_set_new(seen, key, json_true());
            }
        }
        return;
    }
    CHECK_MSG(op != NULL, "%s %s: the service answers %d, the document has no %s %s", method, path,
              r->status, method, tmpl);
    char st[8];
    snprintf(st, sizeof(st), "%d", r->status);
    json_t *resp = json_object_get(json_object_get(op, "responses"), st);
    CHECK_MSG(resp != NULL, "%s %s: status %d (%s) is not documented for %s %s", method, path,
              r->status, r->raw.body, method, tmpl);
    json_t *codes = json_object_get(resp, "x-error-codes");
    char key[512];
    if (code[0] != '\0') {
        bool listed = false;
        size_t i;
        json_t *c;
        json_array_foreach(codes, i, c)
        {
            listed |= strcmp(json_string_value(c), code) == 0;
        }
        CHECK_MSG(listed, "%s %s: %d %s is not among the document's codes for that status", method,
                  path, r->status, code);
    }
    key_of(key, sizeof(key), method, tmpl, r->status, code[0] != '\0' ? code : "-");
    json_object_set_new(seen, key, json_true());
    /* The body has the required members of the documented schema. */
    json_t *schema = json_object_get(
        json_object_get(json_object_get(resp, "content"), "application/json"), "schema");
    if (schema != NULL && strcmp(method, "HEAD") != 0) {
        CHECK_MSG(r->json != NULL, "%s %s: %d without a JSON body", method, path, r->status);
        json_t *req = json_array();
        schema_required(schema, req);
        size_t i;
        json_t *name;
        json_array_foreach(req, i, name)
        {
            CHECK_MSG(json_object_get(r->json, json_string_value(name)) != NULL,
                      "%s %s: %d body lacks \"%s\" the document requires: %s", method, path,
                      r->status, json_string_value(name), r->raw.body);
        }
        json_decref(req);
    }
}

static void hit(const char *method, const char *path, const char *tmpl, const char *token,
                const char *idem, const char *ctype, const char *body)
{
    struct it_resp r;
    drive(method, path, tmpl, token, idem, ctype, body, &r);
    it_resp_free(&r);
}

#define JSON "application/json"

static void drive_create(const char *tok, const char *bad_tok, const char *old_tok)
{
    it_step("POST /v1/topup-orders: every status and code");
    const char *P = "/v1/topup-orders";
    char body[1024];
    it_body(body, sizeof(body), "100.00", "张三", "中国工商银行", NULL);
    hit("POST", P, P, tok, "k-1", JSON, body);
    hit("POST", P, P, tok, "k-1", JSON, body); /* 200 replay */
    char other[1024];
    it_body(other, sizeof(other), "200.00", "张三", "中国工商银行", NULL);
    hit("POST", P, P, tok, "k-1", JSON, other); /* 409 */
    hit("POST", P, P, NULL, "k-2", JSON, body);
    hit("POST", P, P, bad_tok, "k-2", JSON, body);
    hit("POST", P, P, old_tok, "k-2", JSON, body);
    hit("POST", P, P, tok, "k-2", "text/plain", body);
    hit("POST", P, P, tok, NULL, JSON, body);
    hit("POST", P, P, tok, "", JSON, body);
    hit("POST", "/v1/topup-orders?x=1", P, tok, "k-2", JSON, body);
    hit("POST", "/v1/topup-orders?limit=1&limit=2", P, tok, "k-2", JSON, body);
    static const char *const bodies[] = {
        "[1]",
        "{\"amount\":\"\xff\"}",
        "{\"amount\":\"100.00\",\"x\":1}",
        "{\"amount\":100}",
        "{\"amount\":\"1e3\"}",
        "{\"amount\":\"1.00\"}",
        "{\"amount\":\"99999999999.00\"}",
        "{\"amount\":\"100.00\",\"channel\":\"card\"}",
        "{\"amount\":\"100.00\",\"channel\":\"bank_transfer\"}",
        "{\"amount\":\"100.00\",\"channel\":\"bank_transfer\",\"remitter_name\":"
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        "{\"amount\":\"100.00\",\"channel\":\"bank_transfer\",\"remitter_name\":\"a\"}",
        "{\"amount\":\"100.00\",\"channel\":\"bank_transfer\",\"remitter_name\":\"a\","
        "\"remitter_bank\":"
        "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}",
        "{\"amount\":\"100.00\",\"channel\":\"bank_transfer\",\"remitter_name\":\"a\","
        "\"remitter_bank\":\"b\",\"remarks\":\"\\u0001\"}",
        "{\"amount\":\"100.00\",\"channel\":\"bank_transfer\",\"remitter_name\":\"a\","
        "\"remitter_bank\":\"b\"}",
        NULL,
    };
    for (int i = 0; bodies[i] != NULL; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k-bad-%d", i);
        hit("POST", P, P, tok, key, JSON, bodies[i]);
    }
    char remarks[1024];
    memset(remarks, 'r', 201);
    remarks[201] = '\0';
    it_body(other, sizeof(other), "100.00", "a", "b", remarks);
    hit("POST", P, P, tok, "k-remarks", JSON, other);
    char *big = calloc(1, 20000);
    memset(big, ' ', 19999);
    big[0] = '{';
    big[19998] = '}';
    hit("POST", P, P, tok, "k-big", JSON, big);
    free(big);
    hit("DELETE", P, P, tok, NULL, NULL, NULL);
}

static void drive_reads(const char *tok, const char *tok_b, const char *bad_tok)
{
    it_step("lists, order, cancel, balance, settings, options, document, health");
    const char *P = "/v1/topup-orders";
    char code[REFCODE_STR_LEN], code2[REFCODE_STR_LEN];
    it_create_ok(&svc, tok, "50", code);
    it_create_ok(&svc, tok, "50", code2);
    hit("GET", "/v1/topup-orders?limit=1", P, tok, NULL, NULL, NULL);
    hit("GET", "/v1/topup-orders?limit=0", P, tok, NULL, NULL, NULL);
    hit("GET", "/v1/topup-orders?cursor=abc", P, tok, NULL, NULL, NULL);
    hit("GET", "/v1/topup-orders?status=paid", P, tok, NULL, NULL, NULL);
    hit("GET", "/v1/topup-orders?type=all", P, tok, NULL, NULL, NULL);
    hit("GET", "/v1/topup-orders?status=pending&status=expired", P, tok, NULL, NULL, NULL);
    hit("GET", P, P, NULL, NULL, NULL, NULL);
    hit("GET", P, P, bad_tok, NULL, NULL, NULL);

    const char *O = "/v1/topup-orders/{code}";
    char path[128];
    snprintf(path, sizeof(path), "/v1/topup-orders/%s", code);
    hit("GET", path, O, tok, NULL, NULL, NULL);
    hit("GET", path, O, tok_b, NULL, NULL, NULL); /* another account's: 404 */
    hit("GET", path, O, NULL, NULL, NULL, NULL);
    hit("GET", path, O, bad_tok, NULL, NULL, NULL);
    snprintf(path, sizeof(path), "/v1/topup-orders/%s?expand=1", code);
    hit("GET", path, O, tok, NULL, NULL, NULL);
    snprintf(path, sizeof(path), "/v1/topup-orders/%s", code);
    hit("DELETE", path, O, tok, NULL, NULL, NULL);

    const char *C = "/v1/topup-orders/{code}/cancel";
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", code);
    hit("POST", path, C, tok, NULL, NULL, NULL);
    hit("POST", path, C, tok, NULL, NULL, NULL); /* 409 order_not_pending */
    hit("POST", path, C, tok_b, NULL, NULL, NULL);
    hit("POST", path, C, NULL, NULL, NULL, NULL);
    hit("POST", path, C, bad_tok, NULL, NULL, NULL);
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", code2);
    hit("POST", path, C, tok, NULL, "text/plain", "x");
    hit("POST", path, C, tok, NULL, JSON, "[");
    hit("POST", path, C, tok, NULL, JSON, "{\"a\":\"\xff\"}");
    hit("POST", path, C, tok, NULL, JSON, "{\"reason\":\"x\"}");
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel?force=1", code2);
    hit("POST", path, C, tok, NULL, NULL, NULL);
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", code2);
    hit("GET", path, C, tok, NULL, NULL, NULL);

    const char *CL = "/v1/topup-orders/{code}/claim";
    char day[16], claim[512];
    time_t now = time(NULL);
    strftime(day, sizeof(day), "%Y-%m-%d", gmtime(&now));
    snprintf(claim, sizeof(claim),
             "{\"payer_name\":\"张三\",\"amount\":\"50.00\",\"transfer_date\":\"%s\"}", day);
    char cpath[128];
    snprintf(cpath, sizeof(cpath), "/v1/topup-orders/%s/claim", code2);
    static const char *const claim_bad[] = {
        "[",
        "{\"a\":\"\xff\"}",
        "{\"x\":1}",
        "{\"payer_name\":1}",
        "{\"payer_name\":\"a\",\"amount\":\"1e3\"}",
        "{\"payer_name\":\"a\",\"amount\":\"1.00\",\"transfer_date\":\"2026-13-01\"}",
        "{\"payer_name\":\"a\",\"amount\":\"1.00\",\"transfer_date\":\"2099-01-01\"}",
        "{\"amount\":\"1.00\"}",
        "{\"payer_name\":\"\\u0001\"}",
        "{\"payer_name\":"
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        NULL,
    };
    for (int i = 0; claim_bad[i] != NULL; i++) {
        hit("POST", cpath, CL, tok, NULL, JSON, claim_bad[i]);
    }
    hit("POST", cpath, CL, tok, NULL, "text/plain", claim);
    hit("POST", cpath, CL, NULL, NULL, JSON, claim);
    hit("POST", cpath, CL, bad_tok, NULL, JSON, claim);
    hit("POST", cpath, CL, tok_b, NULL, JSON, claim);
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/claim?x=1", code2);
    hit("POST", path, CL, tok, NULL, JSON, claim);
    hit("GET", cpath, CL, tok, NULL, NULL, NULL);
    hit("POST", cpath, CL, tok, NULL, JSON, claim); /* 201 */
    hit("POST", cpath, CL, tok, NULL, JSON, claim); /* 409 claim_exists */
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/claim", code);
    hit("POST", path, CL, tok, NULL, JSON, claim); /* code was cancelled: order_not_claimable */

    const char *F = "/v1/account-flows";
    hit("GET", F, F, tok, NULL, NULL, NULL);
    hit("GET", "/v1/account-flows?limit=101", F, tok, NULL, NULL, NULL);
    hit("GET", "/v1/account-flows?cursor=abc", F, tok, NULL, NULL, NULL);
    hit("GET", "/v1/account-flows?type=credit", F, tok, NULL, NULL, NULL);
    hit("GET", "/v1/account-flows?status=x", F, tok, NULL, NULL, NULL);
    hit("GET", "/v1/account-flows?type=all&type=all", F, tok, NULL, NULL, NULL);
    hit("GET", F, F, NULL, NULL, NULL, NULL);
    hit("GET", F, F, bad_tok, NULL, NULL, NULL);
    hit("POST", F, F, tok, NULL, NULL, NULL);

    static const char *const simple[] = {"/v1/balance", "/v1/settings", "/v1/topup-options", NULL};
    for (int i = 0; simple[i] != NULL; i++) {
        hit("GET", simple[i], simple[i], tok, NULL, NULL, NULL);
        snprintf(path, sizeof(path), "%s?account=x", simple[i]);
        hit("GET", path, simple[i], tok, NULL, NULL, NULL);
        snprintf(path, sizeof(path), "%s?a=1&a=2", simple[i]);
        hit("GET", path, simple[i], tok, NULL, NULL, NULL);
        hit("GET", simple[i], simple[i], NULL, NULL, NULL, NULL);
        hit("GET", simple[i], simple[i], bad_tok, NULL, NULL, NULL);
        hit("POST", simple[i], simple[i], tok, NULL, NULL, NULL);
    }
    hit("GET", "/v1/openapi.json", "/v1/openapi.json", NULL, NULL, NULL, NULL);
    hit("GET", "/v1/openapi.json?v=2", "/v1/openapi.json", NULL, NULL, NULL, NULL);
    hit("GET", "/v1/openapi.json?v=2&v=3", "/v1/openapi.json", NULL, NULL, NULL, NULL);
    hit("POST", "/v1/openapi.json", "/v1/openapi.json", NULL, NULL, NULL, NULL);
    hit("GET", "/healthz", "/healthz", NULL, NULL, NULL, NULL);
    hit("POST", "/healthz", "/healthz", NULL, NULL, NULL, NULL);
    hit("GET", "/readyz", "/readyz", NULL, NULL, NULL, NULL);
    hit("POST", "/readyz", "/readyz", NULL, NULL, NULL, NULL);
}

/*
 * A paid credit of amount_fen on account from order code, left_fen of it unused, paid by the
 * remitter account racct: the rows the ledger and reconciliation would have written (as
 * test_refunds.c seeds them).
 */
static void seed_lot(const char *account, const char *code, const char *amount_fen,
                     const char *left_fen, const char *racct)
{
    const char *p[5] = {account, code, amount_fen, left_fen, racct};
    it_exec("INSERT INTO accounts (account_id) VALUES ($1) ON CONFLICT DO NOTHING", 1, p);
    it_exec("WITH o AS (INSERT INTO topup_orders (code, account_id, amount_fen, channel, "
            "remitter_name, remitter_name_norm, remitter_bank, status, expires_at, matched_at, "
            "completed_at, credited_fen) VALUES ($2, $1, $3::bigint, 'bank_transfer', '王伟', "
            "'王伟', '招商银行', 'completed', now(), now(), now(), $3::bigint) RETURNING id), "
            "r AS (INSERT INTO statement_records (receiving_account, bank_txn_id, value_date, "
            "amount_fen, currency, direction, event_id, state, counterparty_name, "
            "counterparty_account, counterparty_bank) VALUES ('121909510710001', 'T' || $2, "
            "DATE '2026-11-24', $3::bigint, 'CNY', 'credit', 'E' || $2, 'matched', '王伟', $5, "
            "'招商银行') RETURNING id), "
            "d AS (INSERT INTO match_decisions (record_id, order_id, outcome, rule, decided_by) "
            "SELECT r.id, o.id, 'matched', 'reference', 'openapi-test' FROM r, o), "
            "f AS (INSERT INTO account_flows (event_id, account_id, flow_type, amount_fen, "
            "balance_after_fen, reference, occurred_at) SELECT 'F' || $2, $1, 'recharge', "
            "$3::bigint, $3::bigint, $2, now() RETURNING id) "
            "INSERT INTO credit_lots (account_id, flow_id, order_code, record_id, remitter_name, "
            "remitter_account, remitter_bank, paid_fen, left_fen) SELECT $1, f.id, $2, r.id, "
            "'王伟', $5, '招商银行', $3::bigint, $4::bigint FROM f, r",
            5, p);
}

static void drive_refunds(const char *acct, const char *tok, const char *tok_b, const char *bad_tok,
                          const char *old_tok)
{
    it_step("POST/GET /v1/refunds, GET /v1/refunds/{id}: every status and code");
    const char *P = "/v1/refunds";
    const char *body = "{\"amount\":\"150.00\",\"reason\":\"不再使用\"}";
    hit("POST", P, P, tok, "r-0", JSON, body); /* 422 nothing_refundable: no lot yet */
    char c1[32], c2[32];
    snprintf(c1, sizeof(c1), "TUA%s", acct + strlen(acct) - 6);
    snprintf(c2, sizeof(c2), "TUB%s", acct + strlen(acct) - 6);
    seed_lot(acct, c1, "10000", "10000", "6222020000000001");
    seed_lot(acct, c2, "30000", "30000", "6222020000009876");

    struct it_resp r;
    drive("POST", P, P, tok, "r-1", JSON, body, &r); /* 201 */
    CHECK_MSG(r.status == 201, "refund create: %d %s", r.status, r.raw.body);
    char id[32];
    snprintf(id, sizeof(id), "%s", it_str(&r, "id"));
    it_resp_free(&r);
    drive("POST", P, P, tok, "r-1", JSON, body, &r); /* 200 replay */
    CHECK_MSG(r.status == 200 && strcmp(it_str(&r, "id"), id) == 0, "refund replay: %d %s",
              r.status, r.raw.body);
    it_resp_free(&r);
    hit("POST", P, P, tok, "r-1", JSON,
        "{\"amount\":\"150.01\",\"reason\":\"不再使用\"}"); /* 409 */
    hit("POST", P, P, NULL, "r-2", JSON, body);
    hit("POST", P, P, bad_tok, "r-2", JSON, body);
    hit("POST", P, P, old_tok, "r-2", JSON, body);
    hit("POST", P, P, tok, "r-2", "text/plain", body);
    hit("POST", P, P, tok, NULL, JSON, body);
    hit("POST", P, P, tok, "", JSON, body);
    hit("POST", "/v1/refunds?x=1", P, tok, "r-2", JSON, body);
    char long_reason[700];
    int n = snprintf(long_reason, sizeof(long_reason), "{\"amount\":\"1.00\",\"reason\":\"");
    memset(long_reason + n, 'r', 501);
    snprintf(long_reason + n + 501, sizeof(long_reason) - (size_t)n - 501, "\"}");
    const char *const bodies[] = {
        "[1]",
        "{\"amount\":\"\xff\",\"reason\":\"x\"}",
        "{\"amount\":\"1.00\",\"reason\":\"x\",\"account\":\"6222020000000002\"}",
        "{\"amount\":100,\"reason\":\"x\"}",
        "{\"amount\":\"1e3\",\"reason\":\"x\"}",
        "{\"amount\":\"0.00\",\"reason\":\"x\"}",
        "{\"amount\":\"1.00\"}",
        long_reason,
        "{\"amount\":\"1.00\",\"reason\":\"\\u0001\"}",
        "{\"amount\":\"250.01\",\"reason\":\"x\"}", /* above the 250.00 left less the 150.00 */
        "{\"amount\":\"200.00\",\"reason\":\"x\"}", /* within it, but no one transfer holds it */
        NULL,
    };
    for (int i = 0; bodies[i] != NULL; i++) {
        char key[32];
        snprintf(key, sizeof(key), "r-bad-%d", i);
        hit("POST", P, P, tok, key, JSON, bodies[i]);
    }
    char *big = calloc(1, 20000);
    memset(big, ' ', 19999);
    big[0] = '{';
    big[19998] = '}';
    hit("POST", P, P, tok, "r-big", JSON, big);
    free(big);
    hit("DELETE", P, P, tok, NULL, NULL, NULL);
    const char *p[1] = {acct};
    CHECK_MSG(it_i64("SELECT count(*) FROM refund_requests WHERE account_id = $1 AND amount_fen = "
                     "15000 AND state = 'requested'",
                     1, p) == 1 &&
                  it_i64("SELECT count(*) FROM refund_requests WHERE account_id = $1", 1, p) == 1,
              "the refusals wrote a refund, or the create wrote more than one");

    hit("GET", P, P, tok, NULL, NULL, NULL);
    hit("GET", "/v1/refunds?limit=1", P, tok, NULL, NULL, NULL);
    hit("GET", "/v1/refunds?limit=0", P, tok, NULL, NULL, NULL);
    hit("GET", "/v1/refunds?cursor=abc", P, tok, NULL, NULL, NULL);
    hit("GET", "/v1/refunds?status=requested", P, tok, NULL, NULL, NULL);
    hit("GET", "/v1/refunds?limit=1&limit=2", P, tok, NULL, NULL, NULL);
    hit("GET", P, P, NULL, NULL, NULL, NULL);
    hit("GET", P, P, bad_tok, NULL, NULL, NULL);

    const char *R = "/v1/refunds/{id}";
    char path[128];
    snprintf(path, sizeof(path), "/v1/refunds/%s", id);
    hit("GET", path, R, tok, NULL, NULL, NULL);
    hit("GET", path, R, tok_b, NULL, NULL, NULL); /* another account's: 404 */
    hit("GET", "/v1/refunds/RF9999999999", R, tok, NULL, NULL, NULL);
    hit("GET", "/v1/refunds/XX12", R, tok, NULL, NULL, NULL);
    hit("GET", path, R, NULL, NULL, NULL, NULL);
    hit("GET", path, R, bad_tok, NULL, NULL, NULL);
    hit("GET", path, R, old_tok, NULL, NULL, NULL);
    snprintf(path, sizeof(path), "/v1/refunds/%s?expand=1", id);
    hit("GET", path, R, tok, NULL, NULL, NULL);
    snprintf(path, sizeof(path), "/v1/refunds/%s", id);
    hit("DELETE", path, R, tok, NULL, NULL, NULL);
}

/* The token-expired answer of every route that takes a token. */
static void drive_expired(const char *old_tok)
{
    const char *tmpl;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), tmpl, item)
    {
        if (strstr(tmpl, "{code}") != NULL || json_object_get(item, "get") == NULL ||
            strcmp(tmpl, "/v1/openapi.json") == 0 || strncmp(tmpl, "/v1/", 4) != 0) {
            continue;
        }
        hit("GET", tmpl, tmpl, old_tok, NULL, NULL, NULL);
    }
    char path[64];
    snprintf(path, sizeof(path), "/v1/topup-orders/TU7K3M9Q2X");
    hit("GET", path, "/v1/topup-orders/{code}", old_tok, NULL, NULL, NULL);
    snprintf(path, sizeof(path), "/v1/topup-orders/TU7K3M9Q2X/cancel");
    hit("POST", path, "/v1/topup-orders/{code}/cancel", old_tok, NULL, NULL, NULL);
    snprintf(path, sizeof(path), "/v1/topup-orders/TU7K3M9Q2X/claim");
    hit("POST", path, "/v1/topup-orders/{code}/claim", old_tok, NULL, JSON, "{}");
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "order_intake_openapi");
    json_error_t je;
    doc = json_load_file(OPENAPI_FILE, 0, &je);
    CHECK_MSG(doc != NULL, "%s: %s at line %d", OPENAPI_FILE, je.text, je.line);
    CHECK(strcmp(json_string_value(json_object_get(doc, "openapi")), "3.1.0") == 0);
    doc_index();
    it_start(&svc, NULL);
    it_wait_ready(&svc);

    it_step("GET /v1/openapi.json serves the repo's document, without a token");
    struct it_resp r;
    it_call(&svc, "GET", "/v1/openapi.json", NULL, NULL, NULL, NULL, NULL, &r);
    CHECK_MSG(r.status == 200 && r.json != NULL, "openapi.json: %d", r.status);
    CHECK_MSG(json_equal(r.json, doc), "the served document differs from %s", OPENAPI_FILE);
    it_resp_free(&r);

    char a[IT_ID_MAX], b[IT_ID_MAX];
    it_id(a, "acct-oa");
    it_id(b, "acct-ob");
    char ta[TOKEN_STR_MAX], tb[TOKEN_STR_MAX], old[TOKEN_STR_MAX], bad[TOKEN_STR_MAX];
    it_token(ta, a, 3600);
    it_token(tb, b, 3600);
    it_token(old, a, -60);
    snprintf(bad, sizeof(bad), "%s", ta);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';

    drive_create(ta, bad, old);
    drive_reads(ta, tb, bad);
    drive_refunds(a, ta, tb, bad, old);
    drive_expired(old);

    it_step("every documented route, status and code was seen");
    int missing = 0;
    const char *key;
    json_t *v;
    json_object_foreach(seen, key, v)
    {
        if (!json_is_true(v)) {
            fprintf(stderr, "documented but never answered: %s\n", key);
            missing++;
        }
    }
    CHECK_MSG(missing == 0, "%d documented answers were not produced by the service", missing);
    int rc = it_stop(&svc, SIGTERM);
    CHECK_MSG(rc == 0, "order-intake exited with %d", rc);
    json_decref(seen);
    json_decref(doc);
    it_step("ok");
    return 0;
}
