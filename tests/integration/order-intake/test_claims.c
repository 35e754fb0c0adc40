/*
 * "I have paid" claims through real HTTP and topupctl: a claim is filed for a pending order,
 * support sees it in `topupctl review claims` beside the unmatched credit that fits (amount,
 * payer name, date), and in `review show` of that credit's review item; `review match` credits
 * the order and the order's claim shows matched. Refusals: bad bodies, a second claim, a
 * cancelled order, another account's order; nothing stored for any of them.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "topup/names.h"

static struct it_service svc;
static const char *topupctl;

/* Runs topupctl with args, returns its stdout (malloc'd) and exit code. */
static char *ctl(const char *args, int *rc)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s %s 2>&1", topupctl, args);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    size_t cap = 1 << 16, n = 0;
    char *out = calloc(1, cap);
    size_t k;
    while ((k = fread(out + n, 1, cap - 1 - n, p)) > 0) {
        n += k;
    }
    int st = pclose(p);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return out;
}

static void expect(struct it_resp *r, int status, const char *code, const char *what)
{
    CHECK_MSG(r->status == status && strcmp(it_err(r), code) == 0, "%s: got %d %s, want %d %s",
              what, r->status, r->raw.body, status, code);
}

static int64_t claims_of(const char *account)
{
    const char *p[] = {account};
    return it_i64("SELECT count(*) FROM payment_claims WHERE account_id = $1", 1, p);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "order_intake_claims");
    CHECK_MSG(argc >= 3, "usage: test_claims ORDER_INTAKE TOPUPCTL");
    topupctl = argv[2];
    it_start(&svc, NULL);
    it_wait_ready(&svc);
    char a[IT_ID_MAX], b[IT_ID_MAX], ta[TOKEN_STR_MAX], tb[TOKEN_STR_MAX];
    it_id(a, "acct-claim-a");
    it_id(b, "acct-claim-b");
    it_token(ta, a, 3600);
    it_token(tb, b, 3600);
    char code[REFCODE_STR_LEN], cancelled[REFCODE_STR_LEN];
    it_create_ok(&svc, ta, "100.00", code);
    it_create_ok(&svc, ta, "50.00", cancelled);
    char path[128], today[16];
    time_t now = time(NULL);
    strftime(today, sizeof(today), "%Y-%m-%d", gmtime(&now));

    it_step("a transfer the reconciliation could not place: an unmatched credit of 100.00");
    char norm[NAMES_NORM_MAX];
    struct tp_error err = {0};
    CHECK(names_normalize("张 三", strlen("张 三"), norm, &err) == TP_OK);
    char txn[IT_ID_MAX];
    it_id(txn, "TXN");
    const char *rp[] = {txn, today, norm};
    it_exec("INSERT INTO statement_records (receiving_account, bank_txn_id, value_date, amount_fen,"
            " currency, direction, counterparty_name, counterparty_name_norm, remittance_info,"
            " event_id, state) VALUES ('121909510710001', $1, $2::date, 10000, 'CNY', 'credit',"
            " '张 三', $3, 'top-up', gen_random_uuid()::text, 'unmatched')",
            3, rp);

    it_step("refusals: nothing stored");
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/claim", code);
    struct it_resp r;
    static const char *const bad[][3] = {
        {"[]", "400", "invalid_json"},
        {"{\"payer_name\":\"张三\",\"amount\":\"100.00\",\"transfer_date\":\"2026-01-01\","
         "\"x\":1}",
         "400", "unknown_field"},
        {"{\"amount\":\"100.00\",\"transfer_date\":\"2026-01-01\"}", "422", "claim_field_required"},
        {"{\"payer_name\":\"张三\",\"amount\":\"1e3\",\"transfer_date\":\"2026-01-01\"}", "400",
         "invalid_amount"},
        {"{\"payer_name\":\"张三\",\"amount\":100,\"transfer_date\":\"2026-01-01\"}", "400",
         "wrong_type"},
        {"{\"payer_name\":\"张三\",\"amount\":\"100.00\",\"transfer_date\":\"2026-02-30\"}", "400",
         "invalid_date"},
        {"{\"payer_name\":\"张三\",\"amount\":\"100.00\",\"transfer_date\":\"2099-01-01\"}", "422",
         "transfer_date_out_of_range"},
        {NULL, NULL, NULL},
    };
    for (int i = 0; bad[i][0] != NULL; i++) {
        it_call(&svc, "POST", path, ta, NULL, "application/json", bad[i][0], NULL, &r);
        expect(&r, atoi(bad[i][1]), bad[i][2], bad[i][0]);
        it_resp_free(&r);
    }
    char body[512];
    snprintf(body, sizeof(body),
             "{\"payer_name\":\"张三\",\"amount\":\"100.00\",\"transfer_date\":\"%s\","
             "\"bank_serial\":\"SER-1\",\"note\":\"paid from ICBC app\"}",
             today);
    it_call(&svc, "POST", path, ta, NULL, "text/plain", body, NULL, &r);
    expect(&r, 415, "unsupported_media_type", "text/plain");
    it_resp_free(&r);
    it_call(&svc, "POST", path, tb, NULL, "application/json", body, NULL, &r);
    expect(&r, 404, "not_found", "another account's order");
    it_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", cancelled);
    it_call(&svc, "POST", path, ta, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200);
    it_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/claim", cancelled);
    it_call(&svc, "POST", path, ta, NULL, "application/json", body, NULL, &r);
    expect(&r, 409, "order_not_claimable", "a cancelled order");
    CHECK(strstr(r.raw.body, "\"status\":\"cancelled\"") != NULL);
    it_resp_free(&r);
    CHECK(claims_of(a) == 0 && claims_of(b) == 0);

    it_step("the claim: 201, once; the order carries it");
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/claim", code);
    it_call(&svc, "POST", path, ta, NULL, "application/json", body, NULL, &r);
    CHECK_MSG(r.status == 201, "claim: %d %s", r.status, r.raw.body);
    json_t *claim = json_object_get(r.json, "claim");
    CHECK(strcmp(json_string_value(json_object_get(claim, "status")), "open") == 0);
    CHECK(strcmp(json_string_value(json_object_get(claim, "amount")), "100.00") == 0);
    CHECK(strcmp(json_string_value(json_object_get(claim, "transfer_date")), today) == 0);
    it_resp_free(&r);
    it_call(&svc, "POST", path, ta, NULL, "application/json", body, NULL, &r);
    expect(&r, 409, "claim_exists", "a second claim");
    it_resp_free(&r);
    CHECK(claims_of(a) == 1);
    snprintf(path, sizeof(path), "/v1/topup-orders/%s", code);
    it_call(&svc, "GET", path, ta, NULL, NULL, NULL, NULL, &r);
    claim = json_object_get(r.json, "claim");
    CHECK_MSG(json_is_object(claim) &&
                  strcmp(json_string_value(json_object_get(claim, "status")), "open") == 0 &&
                  strcmp(json_string_value(json_object_get(claim, "payer_name")), "张三") == 0,
              "order with claim: %s", r.raw.body);
    it_resp_free(&r);

    it_step("support: review claims lists it beside the fitting credit");
    char args[512];
    int rc = 0;
    char *out = ctl("review claims", &rc);
    const char *rid_p[] = {txn};
    int64_t record = it_i64("SELECT id FROM statement_records WHERE bank_txn_id = $1", 1, rid_p);
    char rec[64];
    snprintf(rec, sizeof(rec), "record %lld\treview -\tstate unmatched", (long long)record);
    CHECK_MSG(rc == 0 && strstr(out, code) != NULL && strstr(out, rec) != NULL &&
                  strstr(out, "fits: amount name") != NULL,
              "review claims (rc %d):\n%s", rc, out);
    free(out);

    it_step("the credit ages into review; review show names the claim; review match credits");
    it_exec("WITH q AS (INSERT INTO review_queue (record_id, reason) SELECT id, 'aged_unmatched'"
            " FROM statement_records WHERE bank_txn_id = $1 RETURNING record_id)"
            " UPDATE statement_records SET state = 'review' WHERE id = (SELECT record_id FROM q)",
            1, rid_p);
    int64_t review = it_i64("SELECT q.id FROM review_queue q JOIN statement_records r ON"
                            " r.id = q.record_id WHERE r.bank_txn_id = $1",
                            1, rid_p);
    snprintf(args, sizeof(args), "review show %lld", (long long)review);
    out = ctl(args, &rc);
    CHECK_MSG(rc == 0 && strstr(out, "claims that fit this transfer: 1") != NULL &&
                  strstr(out, code) != NULL,
              "review show:\n%s", out);
    free(out);
    snprintf(args, sizeof(args),
             "review match %lld --order %s --actor alice --reason 'claim: payer confirmed'",
             (long long)review, code);
    out = ctl(args, &rc);
    CHECK_MSG(rc == 0, "review match (rc %d): %s", rc, out);
    free(out);
    it_call(&svc, "GET", path, ta, NULL, NULL, NULL, NULL, &r);
    claim = json_object_get(r.json, "claim");
    CHECK_MSG(strcmp(it_str(&r, "status"), "processing") == 0 &&
                  strcmp(json_string_value(json_object_get(claim, "status")), "matched") == 0,
              "after the match: %s", r.raw.body);
    it_resp_free(&r);
    out = ctl("review claims", &rc);
    CHECK_MSG(rc == 0 && strstr(out, code) == NULL, "a matched claim is still open:\n%s", out);
    free(out);

    int stop = it_stop(&svc, SIGTERM);
    CHECK_MSG(stop == 0, "order-intake exited with %d", stop);
    it_step("ok");
    return 0;
}
