/*
 * POST/GET /v1/refunds over real HTTP: capped at the unused paid credit (lots left less refunds
 * still open), paid back to the lot's remitter as the bank reported it (no field can name another
 * account), Idempotency-Key replays and conflicts, concurrent requests never over-commit a lot,
 * accounts see only their own refunds, cursor pages, every refusal with its code.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct it_service svc;

static void expect_error(struct it_resp *r, int status, const char *code, const char *field,
                         const char *what)
{
    CHECK_MSG(r->status == status && strcmp(it_err(r), code) == 0 &&
                  strcmp(it_err_field(r), field != NULL ? field : "") == 0,
              "%s: got %d %s field \"%s\" (%s), want %d %s field \"%s\"", what, r->status,
              it_err(r), it_err_field(r), r->raw.body, status, code, field != NULL ? field : "");
}

/*
 * A credit of amount_fen on account from order code, paid by remitter (name, account, bank as
 * the bank reported them), with left_fen of it unused: the rows the ledger and reconciliation
 * would have written (order, statement record, match decision, recharge flow, credit lot).
 */
static void seed_lot(const char *account, const char *code, const char *amount_fen,
                     const char *left_fen, const char *rname, const char *racct, const char *rbank)
{
    const char *p[7] = {account, code, amount_fen, left_fen, rname, racct, rbank};
    it_exec("INSERT INTO accounts (account_id) VALUES ($1) ON CONFLICT DO NOTHING", 1, p);
    it_exec("WITH o AS (INSERT INTO topup_orders (code, account_id, amount_fen, channel, "
            "remitter_name, remitter_name_norm, remitter_bank, status, expires_at, matched_at, "
            "completed_at, credited_fen) VALUES ($2, $1, $3::bigint, 'bank_transfer', $5, $5, $7, "
            "'completed', now(), now(), now(), $3::bigint) RETURNING id), "
            "r AS (INSERT INTO statement_records (receiving_account, bank_txn_id, value_date, "
            "amount_fen, currency, direction, event_id, state, counterparty_name, "
            "counterparty_account, counterparty_bank) VALUES ('121909510710001', 'T' || $2, "
            "DATE '2026-11-24', $3::bigint, 'CNY', 'credit', 'E' || $2, 'matched', $5, $6, $7) "
            "RETURNING id), "
            "d AS (INSERT INTO match_decisions (record_id, order_id, outcome, rule, decided_by) "
            "SELECT r.id, o.id, 'matched', 'reference', 'refund-test' FROM r, o), "
            "f AS (INSERT INTO account_flows (event_id, account_id, flow_type, amount_fen, "
            "balance_after_fen, reference, occurred_at) SELECT 'F' || $2, $1, 'recharge', "
            "$3::bigint, $3::bigint, $2, now() RETURNING id) "
            "INSERT INTO credit_lots (account_id, flow_id, order_code, record_id, remitter_name, "
            "remitter_account, remitter_bank, paid_fen, left_fen) SELECT $1, f.id, $2, r.id, $5, "
            "$6, $7, $3::bigint, $4::bigint FROM f, r",
            7, p);
}

static void post_refund(const char *token, const char *key, const char *body, struct it_resp *r)
{
    it_call(&svc, "POST", "/v1/refunds", token, key, "application/json", body, NULL, r);
}

static int64_t refunds_of(const char *account)
{
    const char *p[1] = {account};
    return it_i64("SELECT count(*) FROM refund_requests WHERE account_id = $1", 1, p);
}

static const char *err_member(const struct it_resp *r, const char *name)
{
    json_t *v = json_object_get(json_object_get(r->json, "error"), name);
    return json_is_string(v) ? json_string_value(v) : "";
}

static void test_caps_and_destination(const char *acct, const char *tok, char first_id[32])
{
    struct it_resp r;
    it_step("no unused paid credit: nothing_refundable, nothing written");
    post_refund(tok, "k0", "{\"amount\":\"1.00\",\"reason\":\"x\"}", &r);
    expect_error(&r, 422, "nothing_refundable", "amount", "no lots");
    it_resp_free(&r);
    CHECK(refunds_of(acct) == 0);

    char old_code[32], new_code[32];
    snprintf(old_code, sizeof(old_code), "TUO%s", acct + strlen(acct) - 6);
    snprintf(new_code, sizeof(new_code), "TUN%s", acct + strlen(acct) - 6);
    seed_lot(acct, old_code, "10000", "10000", "王伟", "6222020000000001", "中国工商银行");
    seed_lot(acct, new_code, "30000", "30000", "王伟", "6222020000009876", "招商银行");

    it_step("201: the newest lot that holds it, paid to its remitter as the bank reported it");
    post_refund(tok, "k1", "{\"amount\":\"150.00\",\"reason\":\"不再使用\"}", &r);
    CHECK_MSG(r.status == 201, "create: %d %s", r.status, r.raw.body);
    snprintf(first_id, 32, "%s", it_str(&r, "id"));
    CHECK(strncmp(first_id, "RF", 2) == 0);
    CHECK(strcmp(it_str(&r, "status"), "requested") == 0);
    CHECK(strcmp(it_str(&r, "amount"), "150.00") == 0);
    CHECK(strcmp(it_str(&r, "order_code"), new_code) == 0);
    json_t *dest = json_object_get(r.json, "destination");
    CHECK(strcmp(json_string_value(json_object_get(dest, "account_number")), "****9876") == 0);
    CHECK(strcmp(json_string_value(json_object_get(dest, "bank")), "招商银行") == 0);
    CHECK(strcmp(json_string_value(json_object_get(dest, "name")), "王伟") == 0);
    it_resp_free(&r);
    const char *p[2] = {first_id, acct};
    CHECK(it_i64("SELECT count(*) FROM refund_requests q JOIN credit_lots l ON l.id = q.lot_id "
                 "WHERE q.refund_id = $1 AND q.account_id = $2 AND q.state = 'requested' AND "
                 "q.amount_fen = 15000 AND q.dest_account = '6222020000009876' AND "
                 "q.requested_by = 'user:' || $2 AND l.order_code LIKE 'TUN%'",
                 2, p) == 1);
    CHECK(it_i64("SELECT count(*) FROM refund_transitions t JOIN refund_requests q ON q.id = "
                 "t.request_id WHERE q.refund_id = $1 AND t.to_state = 'requested' AND "
                 "t.from_state IS NULL AND t.reason = '不再使用'",
                 1, p) == 1);

    it_step("same key, same body: the same refund, Idempotent-Replayed; other body: 409");
    post_refund(tok, "k1", "{\"reason\":\"不再使用\",\"amount\":\"150\"}", &r);
    CHECK_MSG(r.status == 200, "replay: %d %s", r.status, r.raw.body);
    CHECK(strcmp(it_str(&r, "id"), first_id) == 0);
    char h[32];
    CHECK(hc_header(&r.raw, "Idempotent-Replayed", h, sizeof(h)) != NULL && strcmp(h, "true") == 0);
    it_resp_free(&r);
    post_refund(tok, "k1", "{\"amount\":\"150.01\",\"reason\":\"不再使用\"}", &r);
    expect_error(&r, 409, "idempotency_key_reused", "Idempotency-Key", "reused key");
    it_resp_free(&r);
    CHECK(refunds_of(acct) == 1);

    it_step("above the unused paid credit less open refunds: refused with what is refundable");
    post_refund(tok, "k2", "{\"amount\":\"250.01\",\"reason\":\"all\"}", &r);
    expect_error(&r, 422, "amount_above_refundable", "amount", "above total");
    CHECK(strcmp(err_member(&r, "refundable_amount"), "250.00") == 0);
    it_resp_free(&r);
    post_refund(tok, "k3", "{\"amount\":\"200.00\",\"reason\":\"most\"}", &r);
    expect_error(&r, 422, "amount_spans_transfers", "amount", "spans lots");
    CHECK(strcmp(err_member(&r, "max_single_refund"), "150.00") == 0);
    it_resp_free(&r);
    CHECK(refunds_of(acct) == 1);

    it_step("a body cannot name the destination, and bad amounts are refused");
    static const struct {
        const char *body;
        int status;
        const char *code, *field;
    } bad[] = {
        {"{\"amount\":\"10.00\",\"reason\":\"x\",\"dest_account\":\"6200000000000000\"}", 400,
         "unknown_field", "dest_account"},
        {"{\"amount\":10,\"reason\":\"x\"}", 400, "wrong_type", "amount"},
        {"{\"amount\":\"10.001\",\"reason\":\"x\"}", 400, "invalid_amount", "amount"},
        {"{\"amount\":\"-5\",\"reason\":\"x\"}", 400, "invalid_amount", "amount"},
        {"{\"amount\":\"0.00\",\"reason\":\"x\"}", 422, "amount_below_minimum", "amount"},
        {"{\"amount\":\"10.00\"}", 422, "reason_required", "reason"},
        {"{\"amount\":\"10.00\",\"reason\":\"   \"}", 422, "reason_required", "reason"},
        {"{\"amount\":\"10.00\",\"reason\":5}", 400, "wrong_type", "reason"},
        {"[1]", 400, "invalid_json", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char key[32];
        snprintf(key, sizeof(key), "bad-%zu", i);
        post_refund(tok, key, bad[i].body, &r);
        expect_error(&r, bad[i].status, bad[i].code, bad[i].field, bad[i].body);
        it_resp_free(&r);
    }
    it_call(&svc, "POST", "/v1/refunds", tok, NULL, "application/json",
            "{\"amount\":\"10.00\",\"reason\":\"x\"}", NULL, &r);
    expect_error(&r, 400, "idempotency_key_required", "Idempotency-Key", "no key");
    it_resp_free(&r);
    it_call(&svc, "POST", "/v1/refunds", NULL, "k9", "application/json",
            "{\"amount\":\"10.00\",\"reason\":\"x\"}", NULL, &r);
    expect_error(&r, 401, "unauthorized", NULL, "no token");
    it_resp_free(&r);
    CHECK(refunds_of(acct) == 1);
}

struct race_arg {
    const char *token;
    char key[32];
    const char *body;
    int status;
    char id[32];
};

static void *race_thread(void *p)
{
    struct race_arg *a = p;
    struct it_resp r;
    post_refund(a->token, a->key, a->body, &r);
    a->status = r.status;
    snprintf(a->id, sizeof(a->id), "%s", it_str(&r, "id"));
    it_resp_free(&r);
    return NULL;
}

static void test_races(const char *acct, const char *tok)
{
    enum { N = 12 };
    pthread_t t[N];
    struct race_arg a[N];
    it_step("concurrent requests with distinct keys never commit more than a lot holds");
    /* Left to refund now: the old lot 100.00, the new one 150.00; each asks 90.00. */
    for (int i = 0; i < N; i++) {
        a[i] = (struct race_arg){.token = tok, .body = "{\"amount\":\"90.00\",\"reason\":\"r\"}"};
        snprintf(a[i].key, sizeof(a[i].key), "race-%d", i);
        pthread_create(&t[i], NULL, race_thread, &a[i]);
    }
    int created = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_MSG(a[i].status == 201 || a[i].status == 422, "race %d: %d", i, a[i].status);
        created += a[i].status == 201;
    }
    CHECK_MSG(created == 2, "%d of the 90.00 refunds were accepted, want 2 (one per lot)", created);
    const char *p[1] = {acct};
    CHECK(it_i64("SELECT count(*) FROM credit_lots l WHERE l.account_id = $1 AND l.left_fen < "
                 "(SELECT sum(amount_fen) FROM refund_requests q WHERE q.lot_id = l.id)",
                 1, p) == 0);

    it_step("the same key from many clients at once: one refund");
    for (int i = 0; i < N; i++) {
        a[i] = (struct race_arg){.token = tok, .body = "{\"amount\":\"10.00\",\"reason\":\"s\"}"};
        snprintf(a[i].key, sizeof(a[i].key), "same-key");
        pthread_create(&t[i], NULL, race_thread, &a[i]);
    }
    int made = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_MSG(a[i].status == 201 || a[i].status == 200, "same key %d: %d", i, a[i].status);
        made += a[i].status == 201;
        CHECK(strcmp(a[i].id, a[0].id) == 0);
    }
    CHECK(made == 1);
    CHECK(it_i64("SELECT count(*) FROM refund_requests WHERE account_id = $1 AND amount_fen = "
                 "1000",
                 1, p) == 1);
}

static void test_reads(const char *acct, const char *tok, const char *tok_b, const char *first_id)
{
    struct it_resp r;
    it_step("GET one, another account's is 404, pages by cursor newest first");
    char path[128];
    snprintf(path, sizeof(path), "/v1/refunds/%s", first_id);
    it_call(&svc, "GET", path, tok, NULL, NULL, NULL, NULL, &r);
    CHECK_MSG(r.status == 200 && strcmp(it_str(&r, "id"), first_id) == 0, "get: %d %s", r.status,
              r.raw.body);
    it_resp_free(&r);
    it_call(&svc, "GET", path, tok_b, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 404, "not_found", NULL, "other account's refund");
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/refunds/RF9999999999", tok, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 404, "not_found", NULL, "unknown refund");
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/refunds/nonsense", tok, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 404, "not_found", NULL, "malformed id");
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/refunds", tok_b, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200 && json_array_size(json_object_get(r.json, "refunds")) == 0);
    it_resp_free(&r);

    int64_t total = refunds_of(acct), seen = 0, last_id = INT64_MAX;
    char cursor[64] = "";
    for (int page = 0; page < 10; page++) {
        snprintf(path, sizeof(path), "/v1/refunds?limit=2%s%s", cursor[0] ? "&cursor=" : "",
                 cursor);
        it_call(&svc, "GET", path, tok, NULL, NULL, NULL, NULL, &r);
        CHECK_MSG(r.status == 200, "list: %d %s", r.status, r.raw.body);
        json_t *arr = json_object_get(r.json, "refunds");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            int64_t id =
                atoll(json_string_value(json_object_get(json_array_get(arr, i), "id")) + 2);
            CHECK(id < last_id);
            last_id = id;
            seen++;
        }
        json_t *refundable = json_object_get(r.json, "refundable");
        /* 400.00 - 150.00 - 2 x 90.00 - 10.00 = 60.00 left (10.00 old lot, 50.00 new). */
        CHECK(strcmp(json_string_value(json_object_get(refundable, "amount")), "60.00") == 0);
        json_t *next = json_object_get(r.json, "next_cursor");
        bool more = json_is_string(next);
        if (more) {
            snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        }
        it_resp_free(&r);
        if (!more) {
            break;
        }
    }
    CHECK_MSG(seen == total, "pages showed %lld of %lld refunds", (long long)seen,
              (long long)total);
    it_call(&svc, "GET", "/v1/refunds?cursor=%%%", tok, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 400, "invalid_cursor", "cursor", "bad cursor");
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/refunds?limit=0", tok, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 400, "invalid_limit", "limit", "bad limit");
    it_resp_free(&r);
    it_call(&svc, "DELETE", "/v1/refunds", tok, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 405);
    it_resp_free(&r);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "order_intake_refunds");
    it_start(&svc, NULL);
    it_wait_ready(&svc);
    char a[IT_ID_MAX], b[IT_ID_MAX];
    it_id(a, "acct-rf-a");
    it_id(b, "acct-rf-b");
    char ta[TOKEN_STR_MAX], tb[TOKEN_STR_MAX];
    it_token(ta, a, 3600);
    it_token(tb, b, 3600);
    char first[32];
    test_caps_and_destination(a, ta, first);
    test_races(a, ta);
    test_reads(a, ta, tb, first);
    CHECK(it_stop(&svc, SIGTERM) == 0);
    printf("order_intake_refunds: ok\n");
    return 0;
}
