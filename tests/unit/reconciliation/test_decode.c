/* Unit tests of decode.c: message checks, dead-letter reasons, derived fields, receiving accounts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "recon.h"
#include "topup/event.h"
#include "topup/kafka.h"

static struct recon_accounts accounts;

static void setup_accounts(const char *list)
{
    struct tp_error err = {0};
    assert_int_equal(recon_accounts_parse(list, &accounts, &err), TP_OK);
}

/* A valid credit record; tests change fields before packing. */
static void base(Topup__V1__BankStatementRecord *m, struct event_envelope_buf *env)
{
    topup__v1__bank_statement_record__init(m);
    m->envelope = event_envelope_init(env, "statement-import", "");
    m->receiving_account = "1219 0951 0710 001";
    m->bank_txn_id = "TXN-1";
    m->value_date = "2024-01-05";
    m->booking_date = "2024-01-05";
    m->amount_fen = 10000;
    m->currency = "CNY";
    m->direction = TOPUP__V1__DIRECTION__DIRECTION_CREDIT;
    m->counterparty_name = "支付宝-张 三";
    m->remittance_info = "";
}

static enum tp_status run(Topup__V1__BankStatementRecord *m, struct decoded *d,
                          struct tp_error *err)
{
    uint8_t buf[8192];
    size_t len = topup__v1__bank_statement_record__pack(m, buf);
    return decode_message(TOPIC_BANK_STATEMENT_RECORDS, buf, len, &accounts, d, err);
}

static void test_accounts(void **state)
{
    (void)state;
    struct tp_error err = {0};
    struct recon_accounts a;
    assert_int_equal(recon_accounts_parse("121909510710001", &a, &err), TP_OK);
    assert_int_equal(a.n, 1);
    assert_true(recon_accounts_contains(&a, "121909510710001"));
    assert_int_equal(recon_accounts_parse(" 6222 0212, 12345 ", &a, &err), TP_OK);
    assert_int_equal(a.n, 2);
    assert_true(recon_accounts_contains(&a, "62220212"));
    assert_true(recon_accounts_contains(&a, "12345"));
    assert_false(recon_accounts_contains(&a, "1234"));
    assert_int_equal(recon_accounts_parse("", &a, &err), TP_INVALID);
    assert_int_equal(recon_accounts_parse("1,,2", &a, &err), TP_INVALID);
}

static void test_credit_eligible(void **state)
{
    (void)state;
    setup_accounts("121909510710001");
    Topup__V1__BankStatementRecord m;
    struct event_envelope_buf env;
    base(&m, &env);
    struct decoded d;
    struct tp_error err = {0};
    assert_int_equal(run(&m, &d, &err), TP_OK);
    assert_int_equal(d.kind, DECODE_RECORD);
    assert_null(d.rec.ignore_reason);
    assert_string_equal(d.rec.receiving_account, "121909510710001");
    assert_string_equal(d.rec.name_norm, "张三");
    assert_int_equal(d.rec.ncodes, 0);
    assert_true(d.rec.credit);
    decode_free(&d);
}

static void test_ignored(void **state)
{
    (void)state;
    setup_accounts("121909510710001");
    Topup__V1__BankStatementRecord m;
    struct event_envelope_buf env;
    struct decoded d;
    struct tp_error err = {0};
    base(&m, &env);
    m.receiving_account = "999";
    assert_int_equal(run(&m, &d, &err), TP_OK);
    assert_string_equal(d.rec.ignore_reason, "not_receiving_account");
    decode_free(&d);
    base(&m, &env);
    m.amount_fen = -10000;
    m.direction = TOPUP__V1__DIRECTION__DIRECTION_DEBIT;
    assert_int_equal(run(&m, &d, &err), TP_OK);
    assert_string_equal(d.rec.ignore_reason, "debit");
    decode_free(&d);
    base(&m, &env);
    m.reversal = true;
    assert_int_equal(run(&m, &d, &err), TP_OK);
    assert_string_equal(d.rec.ignore_reason, "reversal");
    decode_free(&d);
}

static void test_codes(void **state)
{
    (void)state;
    setup_accounts("121909510710001");
    char code[REFCODE_STR_LEN], code2[REFCODE_STR_LEN];
    ids_refcode_new(code);
    ids_refcode_new(code2);
    /* Lower case, spaces, hyphens, full-width: found; a mangled code: not found. */
    char text[256];
    char lower[REFCODE_STR_LEN];
    for (int i = 0; i < REFCODE_LEN + 1; i++) {
        lower[i] = (char)((code[i] >= 'A' && code[i] <= 'Z') ? code[i] + 32 : code[i]);
    }
    snprintf(text, sizeof(text), "转账附言：%.3s %.3s-%s 谢谢", lower, lower + 3, lower + 6);
    Topup__V1__BankStatementRecord m;
    struct event_envelope_buf env;
    struct decoded d;
    struct tp_error err = {0};
    base(&m, &env);
    m.remittance_info = text;
    assert_int_equal(run(&m, &d, &err), TP_OK);
    assert_int_equal(d.rec.ncodes, 1);
    assert_string_equal(d.rec.codes[0], code);
    decode_free(&d);
    /* Full-width: "ＴＵ" + the rest in full-width digits/letters. */
    char fw[128];
    size_t o = 0;
    for (int i = 0; i < REFCODE_LEN; i++) {
        unsigned cp = 0xFF00 + ((unsigned char)code[i] - 0x20);
        fw[o++] = (char)(0xE0 | (cp >> 12));
        fw[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        fw[o++] = (char)(0x80 | (cp & 0x3F));
    }
    fw[o] = '\0';
    base(&m, &env);
    m.remittance_info = fw;
    assert_int_equal(run(&m, &d, &err), TP_OK);
    assert_int_equal(d.rec.ncodes, 1);
    assert_string_equal(d.rec.codes[0], code);
    decode_free(&d);
    /* Two codes. */
    snprintf(text, sizeof(text), "%s and %s", code, code2);
    base(&m, &env);
    m.remittance_info = text;
    assert_int_equal(run(&m, &d, &err), TP_OK);
    assert_int_equal(d.rec.ncodes, 2);
    decode_free(&d);
    /* One character changed: the check character refuses it. */
    snprintf(text, sizeof(text), "%s", code);
    text[5] = text[5] == '2' ? '3' : '2';
    base(&m, &env);
    m.remittance_info = text;
    assert_int_equal(run(&m, &d, &err), TP_OK);
    assert_int_equal(d.rec.ncodes, 0);
    decode_free(&d);
}

static void expect_invalid(Topup__V1__BankStatementRecord *m, const char *reason_part)
{
    struct decoded d;
    struct tp_error err = {0};
    if (run(m, &d, &err) != TP_INVALID) {
        fail_msg("accepted, expected a refusal mentioning %s", reason_part);
    }
    if (strstr(err.msg, reason_part) == NULL) {
        fail_msg("reason \"%s\" does not mention %s", err.msg, reason_part);
    }
}

static void test_invalid(void **state)
{
    (void)state;
    setup_accounts("121909510710001");
    Topup__V1__BankStatementRecord m;
    struct event_envelope_buf env;
    base(&m, &env);
    m.value_date = "2024-02-30";
    expect_invalid(&m, "value_date");
    base(&m, &env);
    m.booking_date = "05.01.2024";
    expect_invalid(&m, "booking_date");
    base(&m, &env);
    m.bank_txn_id = "";
    expect_invalid(&m, "bank_txn_id");
    base(&m, &env);
    m.receiving_account = "  ";
    expect_invalid(&m, "receiving_account");
    base(&m, &env);
    m.amount_fen = -5;
    expect_invalid(&m, "credit");
    base(&m, &env);
    m.direction = TOPUP__V1__DIRECTION__DIRECTION_UNSPECIFIED;
    expect_invalid(&m, "direction");
    base(&m, &env);
    m.currency = "cny";
    expect_invalid(&m, "currency");
    base(&m, &env);
    m.counterparty_name = "\xd5\xc5\xc8\xfd"; /* GBK, not UTF-8 */
    expect_invalid(&m, "counterparty_name");
    base(&m, &env);
    m.envelope->event_id = "not-a-uuid";
    expect_invalid(&m, "event_id");
    static char long_text[RECON_REMITTANCE_MAX + 2];
    memset(long_text, 'a', sizeof(long_text) - 1);
    base(&m, &env);
    m.remittance_info = long_text;
    expect_invalid(&m, "remittance_info");
    struct decoded d;
    struct tp_error err = {0};
    assert_int_equal(
        decode_message(TOPIC_BANK_STATEMENT_RECORDS, "\xff\xff\xff", 3, &accounts, &d, &err),
        TP_INVALID);
    assert_int_equal(decode_message("other.topic", "", 0, &accounts, &d, &err), TP_INVALID);
}

static void test_order_events(void **state)
{
    (void)state;
    setup_accounts("1");
    Topup__V1__TopUpRequested m;
    topup__v1__top_up_requested__init(&m);
    struct event_envelope_buf env;
    m.envelope = event_envelope_init(&env, "order-intake", "acct-1");
    char code[REFCODE_STR_LEN];
    ids_refcode_new(code);
    m.order_code = code;
    m.amount_fen = 5000;
    uint8_t buf[1024];
    size_t len = topup__v1__top_up_requested__pack(&m, buf);
    struct decoded d;
    struct tp_error err = {0};
    assert_int_equal(decode_message(TOPIC_TOPUP_REQUESTED, buf, len, &accounts, &d, &err), TP_OK);
    assert_int_equal(d.kind, DECODE_ORDER_REQUESTED);
    assert_string_equal(d.order_code, code);
    decode_free(&d);
    m.order_code = "TU2222222X"; /* wrong check character (or not): refused unless valid */
    len = topup__v1__top_up_requested__pack(&m, buf);
    if (!ids_refcode_valid("TU2222222X")) {
        assert_int_equal(decode_message(TOPIC_TOPUP_REQUESTED, buf, len, &accounts, &d, &err),
                         TP_INVALID);
    }
    Topup__V1__TopUpCancelled c;
    topup__v1__top_up_cancelled__init(&c);
    c.envelope = event_envelope_init(&env, "order-intake", "acct-1");
    c.order_code = code;
    len = topup__v1__top_up_cancelled__pack(&c, buf);
    assert_int_equal(decode_message(TOPIC_TOPUP_CANCELLED, buf, len, &accounts, &d, &err), TP_OK);
    assert_int_equal(d.kind, DECODE_ORDER_CANCELLED);
    decode_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accounts), cmocka_unit_test(test_credit_eligible),
        cmocka_unit_test(test_ignored),  cmocka_unit_test(test_codes),
        cmocka_unit_test(test_invalid),  cmocka_unit_test(test_order_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
