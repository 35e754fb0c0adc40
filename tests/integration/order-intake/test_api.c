/*
 * order-intake over real HTTP against the stack: every endpoint, every validation error, tokens,
 * idempotent replay and conflicting reuse, cancel rules, cross-account access, pagination (also
 * under concurrent inserts), balance, flows, static files and the request limits.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "topup/names.h"

static struct it_service svc;

static void expect_error(struct it_resp *r, int status, const char *code, const char *field,
                         const char *what)
{
    CHECK_MSG(r->status == status && strcmp(it_err(r), code) == 0 &&
                  strcmp(it_err_field(r), field != NULL ? field : "") == 0,
              "%s: got %d %s field \"%s\" (%s), want %d %s field \"%s\"", what, r->status,
              it_err(r), it_err_field(r), r->raw.body, status, code, field != NULL ? field : "");
    json_t *msg = json_object_get(json_object_get(r->json, "error"), "message");
    CHECK_MSG(json_is_string(msg) && strlen(json_string_value(msg)) > 0, "%s: no message", what);
    CHECK_MSG(json_object_get(json_object_get(r->json, "error"), "field") != NULL,
              "%s: the field member is missing", what);
}

static int64_t orders_of(const char *account)
{
    const char *p[] = {account};
    return it_i64("SELECT count(*) FROM topup_orders WHERE account_id = $1", 1, p);
}

static void test_health_and_options(const char *token)
{
    it_step("health, readiness, options");
    struct it_resp r;
    it_call(&svc, "GET", "/healthz", NULL, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200 && strcmp(it_str(&r, "status"), "ok") == 0);
    it_resp_free(&r);
    it_call(&svc, "GET", "/readyz", NULL, NULL, NULL, NULL, NULL, &r);
    CHECK_MSG(r.status == 200 && strcmp(it_str(&r, "status"), "ready") == 0, "readyz: %s",
              r.raw.body);
    it_resp_free(&r);
    it_call(&svc, "POST", "/healthz", NULL, NULL, NULL, "", NULL, &r);
    expect_error(&r, 405, "method_not_allowed", NULL, "POST /healthz");
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/topup-options", token, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200);
    json_t *payee = json_object_get(r.json, "payee");
    CHECK(strcmp(json_string_value(json_object_get(payee, "account_number")),
                 "1219 0951 0710 001") == 0);
    CHECK(strcmp(json_string_value(json_object_get(payee, "bank_name")), "招商银行上海分行") == 0);
    CHECK(strcmp(it_str(&r, "min_amount"), "50.00") == 0);
    CHECK(strcmp(it_str(&r, "max_amount"), "1000000.00") == 0);
    CHECK(json_array_size(json_object_get(r.json, "presets")) == 4);
    it_resp_free(&r);
    /* The page's settings: presets, bounds, payee and support, all from the configuration. */
    it_call(&svc, "GET", "/v1/settings", token, NULL, NULL, NULL, NULL, &r);
    CHECK_MSG(r.status == 200, "settings: %d %s", r.status, r.raw.body);
    CHECK(strcmp(it_str(&r, "min_amount"), "50.00") == 0);
    CHECK(strcmp(it_str(&r, "max_amount"), "1000000.00") == 0);
    CHECK(strcmp(it_str(&r, "currency"), "CNY") == 0);
    json_t *presets = json_object_get(r.json, "presets");
    CHECK(json_array_size(presets) == 4);
    CHECK(strcmp(json_string_value(json_array_get(presets, 0)), "50.00") == 0);
    CHECK(strcmp(json_string_value(json_array_get(presets, 3)), "1000.00") == 0);
    CHECK(strcmp(json_string_value(
                     json_object_get(json_object_get(r.json, "payee"), "account_number")),
                 "1219 0951 0710 001") == 0);
    CHECK(strstr(it_str(&r, "support_url"), "{code}") != NULL);
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/settings", NULL, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 401, "unauthorized", NULL, "settings without a token");
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/nothing-here", token, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 404, "not_found", NULL, "unknown endpoint");
    it_resp_free(&r);
    it_call(&svc, "DELETE", "/v1/topup-orders", token, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 405, "method_not_allowed", NULL, "DELETE orders");
    char allow[64];
    CHECK(hc_header(&r.raw, "Allow", allow, sizeof(allow)) != NULL);
    CHECK(strstr(allow, "GET") != NULL && strstr(allow, "POST") != NULL);
    it_resp_free(&r);
}

static void test_auth(const char *account)
{
    it_step("authentication: missing, malformed, forged, expired, tampered tokens");
    struct it_resp r;
    const char *paths[] = {"/v1/balance", "/v1/topup-orders", "/v1/account-flows",
                           "/v1/topup-options"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        it_call(&svc, "GET", paths[i], NULL, NULL, NULL, NULL, NULL, &r);
        expect_error(&r, 401, "unauthorized", NULL, paths[i]);
        char v[128];
        CHECK(hc_header(&r.raw, "WWW-Authenticate", v, sizeof(v)) != NULL);
        CHECK(strncmp(v, "Bearer", 6) == 0);
        it_resp_free(&r);
    }
    const char *basic[] = {"Authorization: Basic dXNlcjpwYXNz", NULL};
    it_call(&svc, "GET", "/v1/balance", NULL, NULL, NULL, NULL, basic, &r);
    expect_error(&r, 401, "unauthorized", NULL, "basic auth");
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/balance", "not-a-token", NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 401, "unauthorized", NULL, "garbage token");
    it_resp_free(&r);

    /* Signed with another secret. */
    char forged[TOKEN_STR_MAX];
    static const char other[] = "an-attacker-secret-of-more-than-32-bytes";
    struct tp_error err = {0};
    CHECK(token_issue(other, sizeof(other) - 1, account, 4000000000, forged, sizeof(forged),
                      &err) == TP_OK);
    it_call(&svc, "GET", "/v1/balance", forged, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 401, "unauthorized", NULL, "forged token");
    it_resp_free(&r);

    char expired[TOKEN_STR_MAX];
    it_token(expired, account, -10);
    it_call(&svc, "GET", "/v1/balance", expired, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 401, "token_expired", NULL, "expired token");
    it_resp_free(&r);

    /* A valid token of account X with the account part swapped for Y's keeps X's signature. */
    char good[TOKEN_STR_MAX], other_tok[TOKEN_STR_MAX], spliced[TOKEN_STR_MAX * 2];
    char acct2[IT_ID_MAX];
    it_token(good, account, 3600);
    it_token(other_tok, it_id(acct2, "acct-other"), 3600);
    const char *sig = strrchr(good, '.');
    const char *rest = strrchr(other_tok, '.');
    snprintf(spliced, sizeof(spliced), "%.*s%s", (int)(rest - other_tok), other_tok, sig);
    it_call(&svc, "GET", "/v1/balance", spliced, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 401, "unauthorized", NULL, "spliced token");
    it_resp_free(&r);

    it_call(&svc, "GET", "/v1/balance", good, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200);
    CHECK(strcmp(it_str(&r, "account_id"), account) == 0);
    it_resp_free(&r);
    /* The scheme is case-insensitive. */
    char lower[TOKEN_STR_MAX + 32];
    snprintf(lower, sizeof(lower), "Authorization: bearer %s", good);
    const char *lh[] = {lower, NULL};
    it_call(&svc, "GET", "/v1/balance", NULL, NULL, NULL, NULL, lh, &r);
    CHECK(r.status == 200);
    it_resp_free(&r);
}

static void test_create_and_replay(const char *account, const char *token, const char *token_b)
{
    it_step("create, replay, conflicting reuse, keys per account");
    char key[IT_ID_MAX], body[2048];
    it_id(key, "key");
    it_body(body, sizeof(body), "100.00", " 张　三 ", "中国工商银行 上海分行", "家庭充值");
    struct it_resp r;
    int64_t before_ms = it_now_ms();
    it_create(&svc, token, key, body, &r);
    CHECK_MSG(r.status == 201, "create: %d %s", r.status, r.raw.body);
    char code[REFCODE_STR_LEN];
    snprintf(code, sizeof(code), "%s", it_str(&r, "code"));
    CHECK(ids_refcode_valid(code));
    CHECK(strcmp(it_str(&r, "status"), "pending") == 0);
    CHECK(strcmp(it_str(&r, "amount"), "100.00") == 0);
    CHECK(strcmp(it_str(&r, "currency"), "CNY") == 0);
    CHECK(strcmp(it_str(&r, "channel"), "bank_transfer") == 0);
    CHECK(strcmp(it_str(&r, "remitter_name"), "张　三") == 0); /* trimmed, inner space kept */
    CHECK(strcmp(it_str(&r, "remitter_bank"), "中国工商银行 上海分行") == 0);
    CHECK(strcmp(it_str(&r, "remarks"), "家庭充值") == 0);
    CHECK(json_is_null(json_object_get(r.json, "credited_amount")));
    CHECK(json_is_null(json_object_get(r.json, "cancelled_at")));
    CHECK(strstr(it_str(&r, "instructions"), code) != NULL);
    CHECK(strstr(it_str(&r, "instructions_zh"), code) != NULL);
    CHECK(strstr(it_str(&r, "instructions_zh"), "附言") != NULL); /* the bank's field, named */
    char first[16];
    CHECK(hc_header(&r.raw, "Idempotent-Replayed", first, sizeof(first)) == NULL);
    json_t *payee = json_object_get(r.json, "payee");
    CHECK(strcmp(json_string_value(json_object_get(payee, "account_name")),
                 "上海无量智能科技有限公司") == 0);
    const char *created = it_str(&r, "created_at");
    CHECK(strlen(created) == 24 && created[23] == 'Z');
    it_resp_free(&r);

    /* What was stored: the account from the token, the normalised name, the 72 h window. */
    const char *p[] = {code};
    PGresult *q = it_sql("SELECT account_id, amount_fen, remitter_name_norm, status,"
                         " extract(epoch FROM expires_at - created_at)::bigint,"
                         " floor(extract(epoch FROM created_at) * 1000)::bigint"
                         " FROM topup_orders WHERE code = $1",
                         1, p);
    CHECK(PQntuples(q) == 1);
    CHECK(strcmp(PQgetvalue(q, 0, 0), account) == 0);
    CHECK(atoll(PQgetvalue(q, 0, 1)) == 10000);
    char norm[NAMES_NORM_MAX];
    struct tp_error err = {0};
    CHECK(names_normalize("张　三", strlen("张　三"), norm, &err) == TP_OK);
    CHECK(strcmp(PQgetvalue(q, 0, 2), norm) == 0 && strcmp(norm, "张三") == 0);
    CHECK(strcmp(PQgetvalue(q, 0, 3), "pending") == 0);
    CHECK(atoll(PQgetvalue(q, 0, 4)) == 72 * 3600);
    CHECK(atoll(PQgetvalue(q, 0, 5)) >= before_ms - 5000);
    PQclear(q);
    const char *ka[] = {account, key};
    CHECK(it_i64("SELECT count(*) FROM idempotency_keys k JOIN topup_orders o ON o.id = k.order_id"
                 " WHERE k.account_id = $1 AND k.key = $2",
                 2, ka) == 1);

    /* Same key, same request written differently: the same order, 200. */
    char same[2048];
    snprintf(
        same, sizeof(same),
        "{\"remarks\":\"家庭充值\",\"agreement_accepted\":true,\"remitter_bank\":\"中国工商银行 "
        "上海分行\",\"remitter_name\":\"张　三\",\"channel\":\"bank_transfer\",\"amount\":"
        "\"100\"}");
    it_create(&svc, token, key, same, &r);
    CHECK_MSG(r.status == 200, "replay: %d %s", r.status, r.raw.body);
    CHECK(strcmp(it_str(&r, "code"), code) == 0);
    char replayed[16];
    CHECK(hc_header(&r.raw, "Idempotent-Replayed", replayed, sizeof(replayed)) != NULL);
    CHECK(strcmp(replayed, "true") == 0);
    it_resp_free(&r);

    /* Same key, another request: 409, and nothing new. */
    int64_t n = orders_of(account);
    it_body(body, sizeof(body), "100.01", "张三", "中国工商银行 上海分行", "家庭充值");
    it_create(&svc, token, key, body, &r);
    expect_error(&r, 409, "idempotency_key_reused", "Idempotency-Key", "reused key");
    it_resp_free(&r);
    CHECK(orders_of(account) == n);

    /* The same key for another account is that account's own key. */
    it_body(body, sizeof(body), "100.00", "张三", "中国工商银行 上海分行", "家庭充值");
    it_create(&svc, token_b, key, body, &r);
    CHECK(r.status == 201);
    CHECK(strcmp(it_str(&r, "code"), code) != 0);
    it_resp_free(&r);

    /* After a cancel, a replay shows the order as it is now. */
    char path[128];
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", code);
    it_call(&svc, "POST", path, token, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200);
    it_resp_free(&r);
    it_create(&svc, token, key, same, &r);
    CHECK(r.status == 200 && strcmp(it_str(&r, "status"), "cancelled") == 0);
    /* A cancelled order no longer tells anyone where to send money. */
    CHECK(json_is_null(json_object_get(r.json, "instructions")));
    CHECK(json_is_null(json_object_get(r.json, "instructions_zh")));
    CHECK(json_is_null(json_object_get(r.json, "payee")));
    it_resp_free(&r);
}

struct dup_arg {
    const struct it_service *s;
    const char *token;
    const char *key;
    const char *body;
    int status;
    char code[REFCODE_STR_LEN];
};

static void *dup_thread(void *p)
{
    struct dup_arg *a = p;
    struct it_resp r;
    it_create(a->s, a->token, a->key, a->body, &r);
    a->status = r.status;
    snprintf(a->code, sizeof(a->code), "%s", it_str(&r, "code"));
    it_resp_free(&r);
    return NULL;
}

static void test_concurrent_duplicates(const char *account, const char *token)
{
    it_step("concurrent duplicates of one key: one order");
    enum { N = 24, ROUNDS = 5 };
    for (int round = 0; round < ROUNDS; round++) {
        char key[IT_ID_MAX], body_a[1024], body_b[1024];
        it_id(key, "dupkey");
        it_body(body_a, sizeof(body_a), "500.00", "李四", "招商银行", NULL);
        it_body(body_b, sizeof(body_b), "600.00", "李四", "招商银行", NULL);
        pthread_t t[N];
        struct dup_arg a[N];
        for (int i = 0; i < N; i++) {
            /* Round 0..2: identical bodies; 3..4: two different bodies racing. */
            a[i] = (struct dup_arg){.s = &svc,
                                    .token = token,
                                    .key = key,
                                    .body = (round >= 3 && i % 2) ? body_b : body_a};
            pthread_create(&t[i], NULL, dup_thread, &a[i]);
        }
        int created = 0, replayed = 0, conflicts = 0;
        const char *winner = NULL;
        for (int i = 0; i < N; i++) {
            pthread_join(t[i], NULL);
            created += a[i].status == 201;
            replayed += a[i].status == 200;
            conflicts += a[i].status == 409;
            CHECK_MSG(a[i].status == 201 || a[i].status == 200 || a[i].status == 409,
                      "duplicate request got %d", a[i].status);
            if (a[i].status != 409) {
                CHECK_MSG(winner == NULL || strcmp(winner, a[i].code) == 0,
                          "two orders for one key: %s and %s", winner, a[i].code);
                winner = a[i].code;
            }
        }
        CHECK_MSG(created == 1, "round %d: %d orders created for one key", round, created);
        CHECK(created + replayed + conflicts == N);
        if (round < 3) {
            CHECK(conflicts == 0);
        }
        const char *ka[] = {account, key};
        CHECK(it_i64("SELECT count(*) FROM idempotency_keys WHERE account_id = $1 AND key = $2", 2,
                     ka) == 1);
    }
    const char *p[] = {account};
    CHECK(it_i64("SELECT count(*) FROM topup_orders WHERE account_id = $1", 1, p) == ROUNDS);
}

struct bad_case {
    const char *what;
    const char *body;
    const char *content_type;
    const char *key;
    int status;
    const char *code;
    const char *field;
};

static void test_validation(const char *account, const char *token)
{
    it_step("every validation error through HTTP, and nothing stored");
    char long_name[65 * 3 + 1] = "";
    for (int i = 0; i < 65; i++) {
        strcat(long_name, "张");
    }
    char long_remarks[202] = "";
    memset(long_remarks, 'r', 201);
    char b_long_name[1024], b_long_bank[1024], b_long_remarks[1024];
    it_body(b_long_name, sizeof(b_long_name), "100", long_name, "ICBC", NULL);
    it_body(b_long_bank, sizeof(b_long_bank), "100", "张三", long_name, NULL);
    it_body(b_long_remarks, sizeof(b_long_remarks), "100", "张三", "ICBC", long_remarks);
    static const char J[] = "application/json";
    const struct bad_case cases[] = {
        {"not JSON", "{\"amount\":", J, "k", 400, "invalid_json", NULL},
        {"array", "[]", J, "k", 400, "invalid_json", NULL},
        {"empty body", "", J, "k", 400, "invalid_json", NULL},
        {"duplicate member", "{\"amount\":\"100\",\"amount\":\"100\"}", J, "k", 400, "invalid_json",
         NULL},
        {"invalid UTF-8", "{\"remitter_name\":\"\xc3\x28\"}", J, "k", 400, "invalid_utf8", NULL},
        {"unknown field", "{\"amount\":\"100\",\"account_id\":\"victim\"}", J, "k", 400,
         "unknown_field", "account_id"},
        {"amount number",
         "{\"amount\":100,\"channel\":\"bank_transfer\",\"remitter_name\":\"a\","
         "\"remitter_bank\":\"b\",\"agreement_accepted\":true}",
         J, "k", 400, "wrong_type", "amount"},
        {"agreement string",
         "{\"amount\":\"100\",\"channel\":\"bank_transfer\",\"remitter_name\":\"a\","
         "\"remitter_bank\":\"b\",\"agreement_accepted\":\"yes\"}",
         J, "k", 400, "wrong_type", "agreement_accepted"},
        {"name number",
         "{\"amount\":\"100\",\"channel\":\"bank_transfer\",\"remitter_name\":5,"
         "\"remitter_bank\":\"b\",\"agreement_accepted\":true}",
         J, "k", 400, "wrong_type", "remitter_name"},
        {"amount missing",
         "{\"channel\":\"bank_transfer\",\"remitter_name\":\"a\",\"remitter_bank\":\"b\","
         "\"agreement_accepted\":true}",
         J, "k", 400, "invalid_amount", "amount"},
        {"amount 1e3", "{\"amount\":\"1e3\"}", J, "k", 400, "invalid_amount", "amount"},
        {"amount 10.001", "{\"amount\":\"10.001\"}", J, "k", 400, "invalid_amount", "amount"},
        {"amount -5", "{\"amount\":\"-5\"}", J, "k", 400, "invalid_amount", "amount"},
        {"amount space", "{\"amount\":\" 50\"}", J, "k", 400, "invalid_amount", "amount"},
        {"amount 49.99",
         "{\"amount\":\"49.99\",\"channel\":\"bank_transfer\",\"remitter_name\":\"a\","
         "\"remitter_bank\":\"b\",\"agreement_accepted\":true}",
         J, "k", 422, "amount_below_minimum", "amount"},
        {"amount above maximum",
         "{\"amount\":\"1000000.01\",\"channel\":\"bank_transfer\",\"remitter_name\":\"a\","
         "\"remitter_bank\":\"b\",\"agreement_accepted\":true}",
         J, "k", 422, "amount_above_maximum", "amount"},
        {"channel", "{\"amount\":\"100\",\"channel\":\"alipay\"}", J, "k", 422, "invalid_channel",
         "channel"},
        {"remitter missing",
         "{\"amount\":\"100\",\"channel\":\"bank_transfer\",\"remitter_bank\":\"b\","
         "\"agreement_accepted\":true}",
         J, "k", 422, "remitter_name_required", "remitter_name"},
        {"remitter blank",
         "{\"amount\":\"100\",\"channel\":\"bank_transfer\",\"remitter_name\":\" \u3000\","
         "\"remitter_bank\":\"b\",\"agreement_accepted\":true}",
         J, "k", 422, "remitter_name_required", "remitter_name"},
        {"bank missing",
         "{\"amount\":\"100\",\"channel\":\"bank_transfer\",\"remitter_name\":\"a\","
         "\"agreement_accepted\":true}",
         J, "k", 422, "remitter_bank_required", "remitter_bank"},
        {"name too long", b_long_name, J, "k", 422, "remitter_name_too_long", "remitter_name"},
        {"bank too long", b_long_bank, J, "k", 422, "remitter_bank_too_long", "remitter_bank"},
        {"remarks too long", b_long_remarks, J, "k", 422, "remarks_too_long", "remarks"},
        {"control character",
         "{\"amount\":\"100\",\"channel\":\"bank_transfer\",\"remitter_name\":\"a\\u0007\","
         "\"remitter_bank\":\"b\",\"agreement_accepted\":true}",
         J, "k", 422, "invalid_characters", "remitter_name"},
        {"agreement false",
         "{\"amount\":\"100\",\"channel\":\"bank_transfer\",\"remitter_name\":\"a\","
         "\"remitter_bank\":\"b\",\"agreement_accepted\":false}",
         J, "k", 422, "agreement_required", "agreement_accepted"},
        {"agreement missing",
         "{\"amount\":\"100\",\"channel\":\"bank_transfer\",\"remitter_name\":\"a\","
         "\"remitter_bank\":\"b\"}",
         J, "k", 422, "agreement_required", "agreement_accepted"},
        {"no content type", "{}", NULL, "k", 415, "unsupported_media_type", NULL},
        {"form content type", "amount=100", "application/x-www-form-urlencoded", "k", 415,
         "unsupported_media_type", NULL},
        {"no idempotency key", "{}", J, NULL, 400, "idempotency_key_required", "Idempotency-Key"},
        {"bad idempotency key", "{}", J, "has space", 400, "invalid_idempotency_key",
         "Idempotency-Key"},
    };
    int64_t before = orders_of(account);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *c = &cases[i];
        struct it_resp r;
        it_call(&svc, "POST", "/v1/topup-orders", token, c->key, c->content_type, c->body, NULL,
                &r);
        expect_error(&r, c->status, c->code, c->field, c->what);
        it_resp_free(&r);
    }
    CHECK(orders_of(account) == before);

    it_step("413 body too large, 431 headers too large");
    size_t big_len = 20000;
    char *big = malloc(big_len + 1);
    memset(big, ' ', big_len);
    memcpy(big, "{\"amount\":\"100\"", 15);
    big[big_len - 1] = '}';
    big[big_len] = '\0';
    struct it_resp r;
    it_create(&svc, token, "k-big", big, &r);
    expect_error(&r, 413, "body_too_large", NULL, "big body");
    it_resp_free(&r);
    free(big);
    char *hdr = malloc(40000);
    memset(hdr, 'x', 39999);
    memcpy(hdr, "X-Filler: ", 10);
    hdr[39999] = '\0';
    const char *hh[] = {hdr, NULL};
    it_call(&svc, "GET", "/v1/balance", token, NULL, NULL, NULL, hh, &r);
    CHECK_MSG(r.status == 431, "huge header: %d", r.status);
    it_resp_free(&r);
    free(hdr);
    CHECK(orders_of(account) == before);
}

static void test_get_and_cross_account(const char *token, const char *token_b)
{
    it_step("get an order; another account's order is a 404 everywhere");
    char code[REFCODE_STR_LEN];
    it_create_ok(&svc, token, "88.80", code);
    char path[128];
    struct it_resp r;
    snprintf(path, sizeof(path), "/v1/topup-orders/%s", code);
    it_call(&svc, "GET", path, token, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200 && strcmp(it_str(&r, "code"), code) == 0);
    CHECK(strcmp(it_str(&r, "amount"), "88.80") == 0);
    it_resp_free(&r);
    char lower[REFCODE_STR_LEN];
    for (int i = 0; i < REFCODE_STR_LEN; i++) {
        lower[i] = (char)((code[i] >= 'A' && code[i] <= 'Z') ? code[i] + 32 : code[i]);
    }
    snprintf(path, sizeof(path), "/v1/topup-orders/%s", lower);
    it_call(&svc, "GET", path, token, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200 && strcmp(it_str(&r, "code"), code) == 0);
    it_resp_free(&r);

    snprintf(path, sizeof(path), "/v1/topup-orders/%s", code);
    it_call(&svc, "GET", path, token_b, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 404, "not_found", NULL, "other account's order");
    it_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", code);
    it_call(&svc, "POST", path, token_b, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 404, "not_found", NULL, "cancel other account's order");
    it_resp_free(&r);
    const char *p[] = {code};
    PGresult *q = it_sql("SELECT status FROM topup_orders WHERE code = $1", 1, p);
    CHECK(strcmp(PQgetvalue(q, 0, 0), "pending") == 0);
    PQclear(q);
    it_call(&svc, "GET", "/v1/topup-orders?limit=100", token_b, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200);
    json_t *orders = json_object_get(r.json, "orders");
    for (size_t i = 0; i < json_array_size(orders); i++) {
        CHECK(strcmp(json_string_value(json_object_get(json_array_get(orders, i), "code")), code) !=
              0);
    }
    it_resp_free(&r);

    /* Unknown but well-formed codes, and malformed ones. */
    char other[REFCODE_STR_LEN];
    ids_refcode_new(other);
    snprintf(path, sizeof(path), "/v1/topup-orders/%s", other);
    it_call(&svc, "GET", path, token, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 404, "not_found", NULL, "unknown code");
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/topup-orders/TU00000000", token, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 404, "not_found", NULL, "malformed code");
    it_resp_free(&r);
}

/* Pages through the account's orders; returns the codes in order (caller frees). */
static int list_all(const char *token, const char *query, int limit, char (*codes)[REFCODE_STR_LEN],
                    int max, int *pages)
{
    char cursor[64] = "";
    int n = 0;
    *pages = 0;
    for (;;) {
        char path[256];
        snprintf(path, sizeof(path), "/v1/topup-orders?limit=%d%s%s%s", limit, query,
                 cursor[0] ? "&cursor=" : "", cursor);
        struct it_resp r;
        it_call(&svc, "GET", path, token, NULL, NULL, NULL, NULL, &r);
        CHECK_MSG(r.status == 200, "list: %d %s", r.status, r.raw.body);
        json_t *orders = json_object_get(r.json, "orders");
        CHECK((int)json_array_size(orders) <= limit);
        for (size_t i = 0; i < json_array_size(orders); i++) {
            CHECK(n < max);
            snprintf(codes[n++], REFCODE_STR_LEN, "%s",
                     json_string_value(json_object_get(json_array_get(orders, i), "code")));
        }
        (*pages)++;
        json_t *next = json_object_get(r.json, "next_cursor");
        if (json_is_null(next)) {
            it_resp_free(&r);
            return n;
        }
        CHECK(json_array_size(orders) == (size_t)limit);
        snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        it_resp_free(&r);
        if (pages != NULL && *pages % 2 == 0) {
            it_sleep_ms(20); /* let the concurrent inserter interleave */
        }
    }
}

static int64_t id_of(const char *code)
{
    const char *p[] = {code};
    return it_i64("SELECT id FROM topup_orders WHERE code = $1", 1, p);
}

static void test_pagination(const char *token_c)
{
    it_step("list: newest first, pages, status filter, parameters");
    enum { N = 25 };
    char made[N][REFCODE_STR_LEN];
    for (int i = 0; i < N; i++) {
        it_create_ok(&svc, token_c, "50", made[i]);
    }
    char cancel_path[128];
    snprintf(cancel_path, sizeof(cancel_path), "/v1/topup-orders/%s/cancel", made[3]);
    struct it_resp r;
    it_call(&svc, "POST", cancel_path, token_c, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200);
    it_resp_free(&r);
    char got[64][REFCODE_STR_LEN];
    int pages = 0;
    int n = list_all(token_c, "", 10, got, 64, &pages);
    CHECK_MSG(n == N && pages == 3, "listed %d orders in %d pages", n, pages);
    for (int i = 0; i < N; i++) {
        CHECK_MSG(strcmp(got[i], made[N - 1 - i]) == 0, "position %d: %s, want %s", i, got[i],
                  made[N - 1 - i]);
    }
    n = list_all(token_c, "&status=cancelled", 10, got, 64, &pages);
    CHECK(n == 1 && strcmp(got[0], made[3]) == 0);
    n = list_all(token_c, "&status=pending", 7, got, 64, &pages);
    CHECK(n == N - 1 && pages == 4);

    /* A cursor pages the list that returned it: the same status filter, nothing else. */
    it_call(&svc, "GET", "/v1/topup-orders?limit=2&status=pending", token_c, NULL, NULL, NULL, NULL,
            &r);
    CHECK(r.status == 200);
    char cur[128], path[256];
    snprintf(cur, sizeof(cur), "%s", json_string_value(json_object_get(r.json, "next_cursor")));
    it_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/topup-orders?limit=2&status=pending&cursor=%s", cur);
    it_call(&svc, "GET", path, token_c, NULL, NULL, NULL, NULL, &r);
    CHECK_MSG(r.status == 200, "cursor on its own list: %d %s", r.status, r.raw.body);
    it_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/topup-orders?limit=2&cursor=%s", cur);
    it_call(&svc, "GET", path, token_c, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 400, "invalid_cursor", "cursor", "a pending-list cursor on the whole list");
    it_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/account-flows?cursor=%s", cur);
    it_call(&svc, "GET", path, token_c, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 400, "invalid_cursor", "cursor", "an orders cursor on the flows");
    CHECK(strstr(r.raw.body, "another list") != NULL);
    it_resp_free(&r);
    cur[5] = cur[5] == 'A' ? 'B' : 'A'; /* forged: one character changed */
    snprintf(path, sizeof(path), "/v1/topup-orders?limit=2&status=pending&cursor=%s", cur);
    it_call(&svc, "GET", path, token_c, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 400, "invalid_cursor", "cursor", "a forged cursor");
    it_resp_free(&r);

    const char *bad[][3] = {
        {"/v1/topup-orders?limit=0", "invalid_limit", "limit"},
        {"/v1/topup-orders?limit=101", "invalid_limit", "limit"},
        {"/v1/topup-orders?limit=ten", "invalid_limit", "limit"},
        {"/v1/topup-orders?cursor=%21%21", "invalid_cursor", "cursor"},
        {"/v1/topup-orders?cursor=LTE", "invalid_cursor", "cursor"},
        {"/v1/topup-orders?status=paid", "invalid_status", "status"},
        {"/v1/account-flows?type=credit", "invalid_flow_type", "type"},
        {"/v1/account-flows?limit=1000", "invalid_limit", "limit"},
        /* Unknown or repeated query parameters are refused, never silently ignored. */
        {"/v1/topup-orders?limt=5", "unknown_query_parameter", "limt"},
        {"/v1/topup-orders?type=recharge", "unknown_query_parameter", "type"},
        {"/v1/topup-orders?limit=5&limit=6", "duplicate_query_parameter", "limit"},
        {"/v1/account-flows?status=pending", "unknown_query_parameter", "status"},
        {"/v1/balance?account=acct-x", "unknown_query_parameter", "account"},
        {"/v1/settings?x=1", "unknown_query_parameter", "x"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        it_call(&svc, "GET", bad[i][0], token_c, NULL, NULL, NULL, NULL, &r);
        expect_error(&r, 400, bad[i][1], bad[i][2], bad[i][0]);
        it_resp_free(&r);
    }
}

struct inserter {
    const char *token;
    int n;
    char (*codes)[REFCODE_STR_LEN];
};

static void *insert_thread(void *p)
{
    struct inserter *in = p;
    for (int i = 0; i < in->n; i++) {
        it_create_ok(&svc, in->token, "51", in->codes[i]);
        it_sleep_ms(5);
    }
    return NULL;
}

static void test_pagination_concurrent(const char *token_d)
{
    it_step("pagination stays stable while new orders arrive");
    enum { OLD = 40, NEW = 30 };
    char old[OLD][REFCODE_STR_LEN];
    for (int i = 0; i < OLD; i++) {
        it_create_ok(&svc, token_d, "52", old[i]);
    }
    char fresh[NEW][REFCODE_STR_LEN];
    struct inserter in = {.token = token_d, .n = NEW, .codes = fresh};
    pthread_t t;
    pthread_create(&t, NULL, insert_thread, &in);
    char got[OLD + NEW][REFCODE_STR_LEN];
    int pages = 0;
    int n = list_all(token_d, "", 6, got, OLD + NEW, &pages);
    pthread_join(t, NULL);
    /* No order twice, strictly newest first, and every order that existed before is there. */
    int64_t prev = INT64_MAX;
    for (int i = 0; i < n; i++) {
        int64_t id = id_of(got[i]);
        CHECK_MSG(id < prev, "page order broken at %d (%s)", i, got[i]);
        prev = id;
    }
    for (int i = 0; i < OLD; i++) {
        int seen = 0;
        for (int j = 0; j < n; j++) {
            seen += strcmp(got[j], old[i]) == 0;
        }
        CHECK_MSG(seen == 1, "pre-existing order %s seen %d times while paging", old[i], seen);
    }
    CHECK(n >= OLD && pages >= OLD / 6);
    /* Afterwards, a fresh walk shows everything. */
    n = list_all(token_d, "", 50, got, OLD + NEW, &pages);
    CHECK(n == OLD + NEW);
}

static void test_cancel_rules(const char *account, const char *token)
{
    it_step("cancel: pending only; 409 with the status otherwise");
    char code[REFCODE_STR_LEN];
    it_create_ok(&svc, token, "200", code);
    char path[128];
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", code);
    struct it_resp r;
    it_call(&svc, "POST", path, token, NULL, "application/json", "{\"why\":1}", NULL, &r);
    expect_error(&r, 400, "unknown_field", "why", "cancel with a body");
    it_resp_free(&r);
    it_call(&svc, "POST", path, token, NULL, "text/plain", "please", NULL, &r);
    expect_error(&r, 415, "unsupported_media_type", NULL, "cancel with text");
    it_resp_free(&r);
    it_call(&svc, "POST", path, token, NULL, "application/json", "{}", NULL, &r);
    CHECK_MSG(r.status == 200, "cancel: %d %s", r.status, r.raw.body);
    CHECK(strcmp(it_str(&r, "status"), "cancelled") == 0);
    CHECK(strlen(it_str(&r, "cancelled_at")) == 24);
    it_resp_free(&r);
    it_call(&svc, "POST", path, token, NULL, NULL, NULL, NULL, &r);
    expect_error(&r, 409, "order_not_pending", NULL, "cancel twice");
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(r.json, "error"), "status")),
                 "cancelled") == 0);
    it_resp_free(&r);
    const char *p[] = {code};
    CHECK(it_i64("SELECT count(*) FROM outbox o WHERE o.topic = 'topup.cancelled' AND"
                 " o.kafka_key = (SELECT account_id FROM topup_orders WHERE code = $1)",
                 1, p) >= 1);

    const char *states[] = {"processing", "completed", "expired"};
    for (int i = 0; i < 3; i++) {
        it_create_ok(&svc, token, "300", code);
        const char *q[] = {code, states[i]};
        it_exec("UPDATE topup_orders SET status = $2 WHERE code = $1", 2, q);
        snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", code);
        it_call(&svc, "POST", path, token, NULL, NULL, NULL, NULL, &r);
        expect_error(&r, 409, "order_not_pending", NULL, states[i]);
        CHECK(strcmp(json_string_value(json_object_get(json_object_get(r.json, "error"), "status")),
                     states[i]) == 0);
        it_resp_free(&r);
        PGresult *s = it_sql("SELECT status FROM topup_orders WHERE code = $1", 1, q);
        CHECK(strcmp(PQgetvalue(s, 0, 0), states[i]) == 0);
        PQclear(s);
    }
    (void)account;
}

static void test_balance_and_flows(const char *account, const char *token, const char *token_b)
{
    it_step("balance from PostgreSQL; flows newest first, filtered, paged, signed");
    struct it_resp r;
    it_call(&svc, "GET", "/v1/balance", token, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200 && strcmp(it_str(&r, "balance"), "0.00") == 0);
    CHECK(strcmp(it_str(&r, "currency"), "CNY") == 0);
    it_resp_free(&r);
    const char *a[] = {account};
    it_exec("INSERT INTO accounts (account_id, balance_fen) VALUES ($1, 8925)", 1, a);
    static const struct {
        const char *type;
        const char *amount;
        const char *after;
        const char *ref;
    } flows[] = {
        {"recharge", "10000", "10000", "TU-ref-1"}, {"consume", "-125", "9875", "req-1"},
        {"refund", "50", "9925", "refund-1"},       {"consume", "-1000", "8925", "req-2"},
        {"refund", "-100", "8825", "refund-2"},
    };
    for (size_t i = 0; i < sizeof(flows) / sizeof(flows[0]); i++) {
        char eid[IT_ID_MAX];
        it_id(eid, "flow-event");
        const char *p[] = {eid,         account, flows[i].type, flows[i].amount, flows[i].after,
                           flows[i].ref};
        it_exec(
            "INSERT INTO account_flows (event_id, account_id, flow_type, amount_fen,"
            " balance_after_fen, reference, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, now())",
            6, p);
    }
    it_exec("UPDATE accounts SET balance_fen = 8825 WHERE account_id = $1", 1, a);
    it_call(&svc, "GET", "/v1/balance", token, NULL, NULL, NULL, NULL, &r);
    CHECK(strcmp(it_str(&r, "balance"), "88.25") == 0);
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/balance", token_b, NULL, NULL, NULL, NULL, &r);
    CHECK(strcmp(it_str(&r, "balance"), "0.00") == 0);
    it_resp_free(&r);

    it_call(&svc, "GET", "/v1/account-flows", token, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200);
    json_t *arr = json_object_get(r.json, "flows");
    CHECK(json_array_size(arr) == 5);
    json_t *first = json_array_get(arr, 0);
    CHECK(strcmp(json_string_value(json_object_get(first, "type")), "refund") == 0);
    CHECK(strcmp(json_string_value(json_object_get(first, "amount")), "-1.00") == 0);
    CHECK(strcmp(json_string_value(json_object_get(first, "balance_after")), "88.25") == 0);
    CHECK(strcmp(json_string_value(json_object_get(first, "reference")), "refund-2") == 0);
    CHECK(json_is_string(json_object_get(first, "occurred_at")));
    json_t *last = json_array_get(arr, 4);
    CHECK(strcmp(json_string_value(json_object_get(last, "amount")), "100.00") == 0);
    CHECK(json_is_null(json_object_get(r.json, "next_cursor")));
    it_resp_free(&r);

    it_call(&svc, "GET", "/v1/account-flows?type=consume", token, NULL, NULL, NULL, NULL, &r);
    arr = json_object_get(r.json, "flows");
    CHECK(json_array_size(arr) == 2);
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(arr, 0), "amount")), "-10.00") ==
          0);
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(arr, 1), "amount")), "-1.25") ==
          0);
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/account-flows?type=recharge", token, NULL, NULL, NULL, NULL, &r);
    CHECK(json_array_size(json_object_get(r.json, "flows")) == 1);
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/account-flows?type=refund&limit=1", token, NULL, NULL, NULL, NULL,
            &r);
    CHECK(json_array_size(json_object_get(r.json, "flows")) == 1);
    const char *cur = json_string_value(json_object_get(r.json, "next_cursor"));
    CHECK(cur != NULL);
    char path[128];
    snprintf(path, sizeof(path), "/v1/account-flows?type=refund&limit=1&cursor=%s", cur);
    /* Bound to account and list: another account, another type, the orders list: all 400. */
    struct it_resp x;
    it_call(&svc, "GET", path, token_b, NULL, NULL, NULL, NULL, &x);
    expect_error(&x, 400, "invalid_cursor", "cursor", "another account's flows cursor");
    it_resp_free(&x);
    char other[256];
    snprintf(other, sizeof(other), "/v1/account-flows?type=consume&cursor=%s", cur);
    it_call(&svc, "GET", other, token, NULL, NULL, NULL, NULL, &x);
    expect_error(&x, 400, "invalid_cursor", "cursor", "a refund-flows cursor on consume flows");
    it_resp_free(&x);
    snprintf(other, sizeof(other), "/v1/topup-orders?cursor=%s", cur);
    it_call(&svc, "GET", other, token, NULL, NULL, NULL, NULL, &x);
    expect_error(&x, 400, "invalid_cursor", "cursor", "a flows cursor on the orders");
    it_resp_free(&x);
    it_resp_free(&r);
    it_call(&svc, "GET", path, token, NULL, NULL, NULL, NULL, &r);
    arr = json_object_get(r.json, "flows");
    CHECK(json_array_size(arr) == 1);
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(arr, 0), "reference")),
                 "refund-1") == 0);
    CHECK(json_is_null(json_object_get(r.json, "next_cursor")));
    it_resp_free(&r);
    it_call(&svc, "GET", "/v1/account-flows?type=all", token_b, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200 && json_array_size(json_object_get(r.json, "flows")) == 0);
    it_resp_free(&r);
}

static void test_static(void)
{
    it_step("static files: page, content types, no escape from the folder");
    struct it_resp r;
    it_call(&svc, "GET", "/", NULL, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200);
    char v[512];
    CHECK(strcmp(hc_header(&r.raw, "Content-Type", v, sizeof(v)), "text/html; charset=utf-8") == 0);
    CHECK(hc_header(&r.raw, "Content-Security-Policy", v, sizeof(v)) != NULL);
    CHECK(strstr(r.raw.body, "<html") != NULL || strstr(r.raw.body, "<!DOCTYPE") != NULL ||
          strstr(r.raw.body, "<!doctype") != NULL);
    it_resp_free(&r);
    it_call(&svc, "HEAD", "/", NULL, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200 && r.raw.body_len == 0);
    it_resp_free(&r);
    it_call(&svc, "GET", "/index.html", NULL, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 200);
    it_resp_free(&r);
    const char *files[][2] = {
        {"/app.js", "text/javascript; charset=utf-8"},
        {"/styles.css", "text/css; charset=utf-8"},
    };
    for (int i = 0; i < 2; i++) {
        it_call(&svc, "GET", files[i][0], NULL, NULL, NULL, NULL, NULL, &r);
        CHECK_MSG(r.status == 200, "%s: %d", files[i][0], r.status);
        CHECK(strcmp(hc_header(&r.raw, "Content-Type", v, sizeof(v)), files[i][1]) == 0);
        CHECK(r.raw.body_len > 0);
        it_resp_free(&r);
    }
    const char *bad[] = {"/../CMakeLists.txt",
                         "/%2e%2e/CMakeLists.txt",
                         "/..%2fCMakeLists.txt",
                         "/web/../../README.md",
                         "/.hidden",
                         "//etc/passwd",
                         "/nope.html",
                         "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                         "/static/../../main.c"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        it_call(&svc, "GET", bad[i], NULL, NULL, NULL, NULL, NULL, &r);
        CHECK_MSG(r.status == 404, "%s: %d", bad[i], r.status);
        CHECK(strstr(r.raw.body, "cmake_minimum_required") == NULL);
        it_resp_free(&r);
    }
    it_call(&svc, "POST", "/", NULL, NULL, "application/json", "{}", NULL, &r);
    CHECK(r.status == 405);
    it_resp_free(&r);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "order_intake_api");
    it_start(&svc, NULL);
    it_wait_ready(&svc);
    char a[IT_ID_MAX], b[IT_ID_MAX], c[IT_ID_MAX], d[IT_ID_MAX], e[IT_ID_MAX], f[IT_ID_MAX];
    it_id(a, "acct-a");
    it_id(b, "acct-b");
    it_id(c, "acct-c");
    it_id(d, "acct-d");
    it_id(e, "acct-e");
    it_id(f, "acct-f");
    char ta[TOKEN_STR_MAX], tb[TOKEN_STR_MAX], tc[TOKEN_STR_MAX], td[TOKEN_STR_MAX],
        te[TOKEN_STR_MAX], tf[TOKEN_STR_MAX];
    it_token(ta, a, 3600);
    it_token(tb, b, 3600);
    it_token(tc, c, 3600);
    it_token(td, d, 3600);
    it_token(te, e, 3600);
    it_token(tf, f, 3600);

    test_health_and_options(ta);
    test_auth(a);
    test_create_and_replay(a, ta, tb);
    test_concurrent_duplicates(f, tf);
    test_validation(b, tb);
    test_get_and_cross_account(ta, tb);
    test_pagination(tc);
    test_pagination_concurrent(td);
    test_cancel_rules(a, ta);
    test_balance_and_flows(e, te, tb);
    test_static();

    it_step("SIGTERM: exit 0");
    int rc = it_stop(&svc, SIGTERM);
    CHECK_MSG(rc == 0, "order-intake exited with %d", rc);
    it_step("ok");
    return 0;
}
