/* Unit tests of order-intake's validate.c: every refusal code of the order body and parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "validate.h"

#define MIN_FEN 5000
#define MAX_FEN 100000000

static const char *ok_body = "{\"amount\":\"100.00\",\"channel\":\"bank_transfer\","
                             "\"remitter_name\":\"张三\",\"remitter_bank\":\"中国工商银行\","
                             "\"remarks\":\"充值\",\"agreement_accepted\":true}";

static void expect_ok(const char *body, struct validate_order *o)
{
    struct validate_error v = {0};
    if (!validate_order_body(body, strlen(body), MIN_FEN, MAX_FEN, o, &v)) {
        fail_msg("refused %s: %s %s", body, v.code, v.message);
    }
}

static void expect_refused(const char *body, unsigned status, const char *code, const char *field)
{
    struct validate_order o;
    struct validate_error v = {0};
    if (validate_order_body(body, strlen(body), MIN_FEN, MAX_FEN, &o, &v)) {
        validate_order_deinit(&o);
        fail_msg("accepted %s, wanted %s", body, code);
    }
    if (strcmp(v.code, code) != 0 || v.status != status ||
        strcmp(v.field, field != NULL ? field : "") != 0) {
        fail_msg("%s: got %u %s field \"%s\" (%s), wanted %u %s field \"%s\"", body, v.status,
                 v.code, v.field, v.message, status, code, field ? field : "");
    }
    assert_true(strlen(v.message) > 0);
}

/* Builds a body with one member replaced (or added) as raw JSON text. */
static const char *with(const char *amount, const char *name, const char *bank, const char *remarks,
                        const char *agreement)
{
    static char buf[8192];
    snprintf(buf, sizeof(buf),
             "{\"amount\":%s,\"channel\":\"bank_transfer\",\"remitter_name\":%s,"
             "\"remitter_bank\":%s,\"remarks\":%s,\"agreement_accepted\":%s}",
             amount, name, bank, remarks, agreement);
    return buf;
}

static void test_accepts(void **state)
{
    (void)state;
    struct validate_order o;
    expect_ok(ok_body, &o);
    assert_int_equal(o.amount_fen, 10000);
    assert_string_equal(o.remitter_name, "张三");
    assert_string_equal(o.remitter_bank, "中国工商银行");
    assert_string_equal(o.remarks, "充值");
    assert_string_equal(o.name_norm, "张三");
    validate_order_deinit(&o);

    /* Trimming (ASCII and ideographic spaces), optional remarks absent or null, minimum, maximum.
     */
    expect_ok("{\"amount\":\"50\",\"channel\":\"bank_transfer\",\"remitter_name\":\"\u3000 Zhang "
              "San \",\"remitter_bank\":\" ICBC\",\"agreement_accepted\":true}",
              &o);
    assert_int_equal(o.amount_fen, 5000);
    assert_string_equal(o.remitter_name, "Zhang San");
    assert_string_equal(o.remitter_bank, "ICBC");
    assert_string_equal(o.remarks, "");
    assert_string_equal(o.name_norm, "zhangsan");
    validate_order_deinit(&o);
    expect_ok(with("\"1000000.00\"", "\"a\"", "\"b\"", "null", "true"), &o);
    assert_int_equal(o.amount_fen, 100000000);
    validate_order_deinit(&o);

    /* 64 Chinese characters is the limit; 200 characters of remarks too. */
    char name[64 * 3 + 3] = "\"";
    for (int i = 0; i < 64; i++) {
        strcat(name, "张");
    }
    strcat(name, "\"");
    char remarks[200 * 3 + 3] = "\"";
    for (int i = 0; i < 200; i++) {
        strcat(remarks, "备");
    }
    strcat(remarks, "\"");
    expect_ok(with("\"50.00\"", name, name, remarks, "true"), &o);
    validate_order_deinit(&o);
}

static void test_hash(void **state)
{
    (void)state;
    struct validate_order a;
    struct validate_order b;
    /* The same validated values, written differently: the same fingerprint. */
    expect_ok(with("\"100\"", "\" 张三\"", "\"ICBC\"", "\"\"", "true"), &a);
    expect_ok("{\"agreement_accepted\":true,\"remitter_bank\":\"ICBC\",\"remitter_name\":\"张三\","
              "\"channel\":\"bank_transfer\",\"amount\":\"100.00\"}",
              &b);
    assert_memory_equal(a.hash, b.hash, VALIDATE_HASH_BYTES);
    validate_order_deinit(&b);
    /* Any value changed: another fingerprint, including moving text between fields. */
    const char *others[] = {
        with("\"100.01\"", "\"张三\"", "\"ICBC\"", "\"\"", "true"),
        with("\"100\"", "\"张四\"", "\"ICBC\"", "\"\"", "true"),
        with("\"100\"", "\"张三\"", "\"ICBC \u5de5\"", "\"\"", "true"),
        with("\"100\"", "\"张三\"", "\"ICBC\"", "\"x\"", "true"),
        with("\"100\"", "\"张三I\"", "\"CBC\"", "\"\"", "true"),
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        expect_ok(others[i], &b);
        assert_memory_not_equal(a.hash, b.hash, VALIDATE_HASH_BYTES);
        validate_order_deinit(&b);
    }
    validate_order_deinit(&a);
}

static void test_json_level(void **state)
{
    (void)state;
    expect_refused("", 400, "invalid_json", NULL);
    expect_refused("{", 400, "invalid_json", NULL);
    expect_refused("[1,2]", 400, "invalid_json", NULL);
    expect_refused("\"x\"", 400, "invalid_json", NULL);
    expect_refused("{\"amount\":\"100\",\"amount\":\"200\"}", 400, "invalid_json", NULL);
    expect_refused("{\"amount\":\"100\"} trailing", 400, "invalid_json", NULL);
    expect_refused("{\"remitter_name\":\"a\\u0000b\"}", 400, "invalid_json", NULL);
    expect_refused("{\"remitter_name\":\"\xff\xfe\"}", 400, "invalid_utf8", NULL);
    expect_refused("{\"remitter_name\":\"\xc0\xaf\"}", 400, "invalid_utf8", NULL); /* overlong */
    expect_refused("{\"remitter_name\":\"\xed\xa0\x80\"}", 400, "invalid_utf8",
                   NULL);                                                          /* surrogate */
    expect_refused("{\"remitter_name\":\"\xe5\xbc\"}", 400, "invalid_utf8", NULL); /* truncated */
    expect_refused("{\"amount\":\"100\",\"currency\":\"CNY\"}", 400, "unknown_field", "currency");
    expect_refused("{\"account_id\":\"someone-else\"}", 400, "unknown_field", "account_id");
    expect_refused(with("100", "\"a\"", "\"b\"", "\"\"", "true"), 400, "wrong_type", "amount");
    expect_refused(with("100.00", "\"a\"", "\"b\"", "\"\"", "true"), 400, "wrong_type", "amount");
    expect_refused(with("\"100\"", "1", "\"b\"", "\"\"", "true"), 400, "wrong_type",
                   "remitter_name");
    expect_refused(with("\"100\"", "\"a\"", "[\"b\"]", "\"\"", "true"), 400, "wrong_type",
                   "remitter_bank");
    expect_refused(with("\"100\"", "\"a\"", "\"b\"", "{}", "true"), 400, "wrong_type", "remarks");
    expect_refused(with("\"100\"", "\"a\"", "\"b\"", "\"\"", "\"true\""), 400, "wrong_type",
                   "agreement_accepted");
    expect_refused(with("\"100\"", "\"a\"", "\"b\"", "\"\"", "1"), 400, "wrong_type",
                   "agreement_accepted");
}

static void test_amounts(void **state)
{
    (void)state;
    const char *bad[] = {
        "\"1e3\"",   "\"10.001\"", "\"-5\"",  "\" 50\"",   "\"50 \"",
        "\"+50\"",   "\"\"",       "\"50.\"", "\".5\"",    "\"050\"",
        "\"5,000\"", "\"５０\"",   "\"NaN\"", "\"1e400\"", "\"99999999999999999999\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_refused(with(bad[i], "\"a\"", "\"b\"", "\"\"", "true"), 400, "invalid_amount",
                       "amount");
    }
    expect_refused("{\"channel\":\"bank_transfer\"}", 400, "invalid_amount", "amount");
    expect_refused(with("null", "\"a\"", "\"b\"", "\"\"", "true"), 400, "invalid_amount", "amount");
    expect_refused(with("\"49.99\"", "\"a\"", "\"b\"", "\"\"", "true"), 422, "amount_below_minimum",
                   "amount");
    expect_refused(with("\"0\"", "\"a\"", "\"b\"", "\"\"", "true"), 422, "amount_below_minimum",
                   "amount");
    expect_refused(with("\"1000000.01\"", "\"a\"", "\"b\"", "\"\"", "true"), 422,
                   "amount_above_maximum", "amount");
}

static void test_fields(void **state)
{
    (void)state;
    expect_refused("{\"amount\":\"100\",\"remitter_name\":\"a\",\"remitter_bank\":\"b\","
                   "\"agreement_accepted\":true}",
                   422, "invalid_channel", "channel");
    expect_refused("{\"amount\":\"100\",\"channel\":\"alipay\",\"remitter_name\":\"a\"}", 422,
                   "invalid_channel", "channel");
    expect_refused(with("\"100\"", "null", "\"b\"", "\"\"", "true"), 422, "remitter_name_required",
                   "remitter_name");
    expect_refused(with("\"100\"", "\" \u3000 \"", "\"b\"", "\"\"", "true"), 422,
                   "remitter_name_required", "remitter_name");
    expect_refused(with("\"100\"", "\"a\"", "\"\"", "\"\"", "true"), 422, "remitter_bank_required",
                   "remitter_bank");
    expect_refused(with("\"100\"", "\"a\\nb\"", "\"b\"", "\"\"", "true"), 422, "invalid_characters",
                   "remitter_name");
    expect_refused(with("\"100\"", "\"a\\u202eb\"", "\"b\"", "\"\"", "true"), 422,
                   "invalid_characters", "remitter_name");
    expect_refused(with("\"100\"", "\"a\"", "\"b\\u0007\"", "\"\"", "true"), 422,
                   "invalid_characters", "remitter_bank");
    expect_refused(with("\"100\"", "\"a\"", "\"b\"", "\"x\\u0085y\"", "true"), 422,
                   "invalid_characters", "remarks");
    char name[65 * 3 + 3] = "\"";
    for (int i = 0; i < 65; i++) {
        strcat(name, "张");
    }
    strcat(name, "\"");
    expect_refused(with("\"100\"", name, "\"b\"", "\"\"", "true"), 422, "remitter_name_too_long",
                   "remitter_name");
    expect_refused(with("\"100\"", "\"a\"", name, "\"\"", "true"), 422, "remitter_bank_too_long",
                   "remitter_bank");
    char remarks[201 + 3] = "\"";
    memset(remarks + 1, 'r', 201);
    strcpy(remarks + 202, "\"");
    expect_refused(with("\"100\"", "\"a\"", "\"b\"", remarks, "true"), 422, "remarks_too_long",
                   "remarks");
    expect_refused(with("\"100\"", "\"a\"", "\"b\"", "\"\"", "false"), 422, "agreement_required",
                   "agreement_accepted");
    expect_refused(with("\"100\"", "\"a\"", "\"b\"", "\"\"", "null"), 422, "agreement_required",
                   "agreement_accepted");
    /* Order of reporting: amount before the remitter, remitter before the agreement. */
    expect_refused(with("\"1\"", "\"\"", "\"\"", "\"\"", "false"), 422, "amount_below_minimum",
                   "amount");
    expect_refused(with("\"100\"", "\"\"", "\"\"", "\"\"", "false"), 422, "remitter_name_required",
                   "remitter_name");
    /* An unknown field's name is reported, cut at a character boundary. */
    char longkey[300] = "{\"";
    for (int i = 0; i < 40; i++) {
        strcat(longkey, "键");
    }
    strcat(longkey, "\":1}");
    struct validate_order o;
    struct validate_error v = {0};
    assert_false(validate_order_body(longkey, strlen(longkey), MIN_FEN, MAX_FEN, &o, &v));
    assert_string_equal(v.code, "unknown_field");
    assert_true(validate_utf8(v.field, strlen(v.field)));
    assert_true(validate_utf8(v.message, strlen(v.message)));
    assert_int_equal(strlen(v.field), 63);
}

static void test_params(void **state)
{
    (void)state;
    struct validate_error v = {0};
    assert_true(validate_content_type_json("application/json"));
    assert_true(validate_content_type_json("application/json; charset=utf-8"));
    assert_true(validate_content_type_json("Application/JSON;charset=\"UTF-8\""));
    assert_false(validate_content_type_json(NULL));
    assert_false(validate_content_type_json("text/plain"));
    assert_false(validate_content_type_json("application/jsonp"));
    assert_false(validate_content_type_json("application/json; charset=gbk"));
    assert_false(validate_content_type_json("application/x-www-form-urlencoded"));

    assert_false(validate_idempotency_key(NULL, &v));
    assert_string_equal(v.code, "idempotency_key_required");
    assert_false(validate_idempotency_key("", &v));
    assert_string_equal(v.code, "invalid_idempotency_key");
    assert_false(validate_idempotency_key("has space", &v));
    assert_false(validate_idempotency_key("键", &v));
    char key[257];
    memset(key, 'k', 256);
    key[256] = '\0';
    assert_false(validate_idempotency_key(key, &v));
    key[255] = '\0';
    assert_true(validate_idempotency_key(key, &v));
    assert_true(validate_idempotency_key("0190f7a2-7b7e-7c3e-9d1a-2b3c4d5e6f70", &v));

    int limit = 0;
    assert_true(validate_limit(NULL, &limit, &v));
    assert_int_equal(limit, 20);
    assert_true(validate_limit("100", &limit, &v));
    assert_int_equal(limit, 100);
    assert_true(validate_limit("1", &limit, &v));
    const char *bad_limits[] = {"0", "101", "-1", "", "abc", "01", "1000", " 5", NULL};
    for (int i = 0; bad_limits[i] != NULL; i++) {
        assert_false(validate_limit(bad_limits[i], &limit, &v));
        assert_string_equal(v.code, "invalid_limit");
    }

    unsigned char ckey[VALIDATE_CURSOR_KEY_BYTES], key2[VALIDATE_CURSOR_KEY_BYTES];
    validate_cursor_key("a-secret-of-at-least-32-bytes-....", 34, ckey);
    validate_cursor_key("another-secret-of-32-bytes-or-more", 34, key2);
    const struct validate_cursor_scope orders = {'o', NULL, "acct-1"};
    const struct validate_cursor_scope pending = {'o', "pending", "acct-1"};
    const struct validate_cursor_scope other = {'o', NULL, "acct-2"};
    const struct validate_cursor_scope flows = {'f', NULL, "acct-1"};
    int64_t ids[] = {1, 9, 10, 99, 123, 1234, 12345, 9007199254740993LL, INT64_MAX};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char c[VALIDATE_CURSOR_MAX];
        validate_cursor_encode(ckey, &orders, ids[i], c);
        int64_t back = 0;
        assert_true(validate_cursor_decode(ckey, &orders, c, &back, &v));
        assert_int_equal(back, ids[i]);
        /* Bound to its list, filter, account and key. */
        assert_false(validate_cursor_decode(ckey, &flows, c, &back, &v));
        assert_string_equal(v.code, "invalid_cursor");
        assert_non_null(strstr(v.message, "another list"));
        assert_false(validate_cursor_decode(ckey, &pending, c, &back, &v));
        assert_false(validate_cursor_decode(ckey, &other, c, &back, &v));
        assert_false(validate_cursor_decode(key2, &orders, c, &back, &v));
        assert_string_equal(v.code, "invalid_cursor");
        /* Every single-character change is refused. */
        for (size_t j = 0; c[j] != '\0'; j++) {
            char f[VALIDATE_CURSOR_MAX];
            memcpy(f, c, sizeof(f));
            f[j] = f[j] == 'A' ? 'B' : 'A';
            assert_false(validate_cursor_decode(ckey, &orders, f, &back, &v));
        }
    }
    int64_t id = 0;
    assert_true(validate_cursor_decode(ckey, &orders, NULL, &id, &v));
    assert_int_equal(id, INT64_MAX);
    /* The unsigned cursors of before (base64url of the id's digits) are refused. */
    const char *bad_cursors[] = {"!!",   "MTIzNA==", "x", "LTE", "MA", "OTIyMzM3MjAzNjg1NDc3NTgwOA",
                                 "YWJj", "MTIzNA",   NULL};
    for (int i = 0; bad_cursors[i] != NULL; i++) {
        assert_false(validate_cursor_decode(ckey, &orders, bad_cursors[i], &id, &v));
        assert_string_equal(v.code, "invalid_cursor");
    }

    assert_true(validate_order_status(NULL, &v));
    assert_true(validate_order_status("pending", &v));
    assert_true(validate_order_status("expired", &v));
    assert_false(validate_order_status("PENDING", &v));
    assert_string_equal(v.code, "invalid_status");
    const char *type = "x";
    assert_true(validate_flow_type(NULL, &type, &v));
    assert_null(type);
    assert_true(validate_flow_type("all", &type, &v));
    assert_null(type);
    assert_true(validate_flow_type("consume", &type, &v));
    assert_string_equal(type, "consume");
    assert_false(validate_flow_type("credit", &type, &v));
    assert_string_equal(v.code, "invalid_flow_type");

    assert_true(validate_empty_body("", 0, &v));
    assert_true(validate_empty_body(" {} ", 4, &v));
    assert_true(validate_empty_body("\n", 1, &v));
    assert_false(validate_empty_body("{\"reason\":\"x\"}", 14, &v));
    assert_string_equal(v.code, "unknown_field");
    assert_false(validate_empty_body("nope", 4, &v));
    assert_string_equal(v.code, "invalid_json");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),    cmocka_unit_test(test_hash),
        cmocka_unit_test(test_json_level), cmocka_unit_test(test_amounts),
        cmocka_unit_test(test_fields),     cmocka_unit_test(test_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
