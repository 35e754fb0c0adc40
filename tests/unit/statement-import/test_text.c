/* Unit tests: text helpers (dates, amounts, header names, encodings) and profile tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "csv_profiles.h"
#include "parser.h"
#include "text.h"
#include "topup/money.h"

static void test_dates(void **state)
{
    (void)state;
    char d[11], t[9];
    assert_true(text_parse_date("2024-01-02", 10, d, t));
    assert_string_equal(d, "2024-01-02");
    assert_string_equal(t, "");
    assert_true(text_parse_date("2024/1/2", 8, d, t));
    assert_string_equal(d, "2024-01-02");
    assert_true(text_parse_date("20240102", 8, d, t));
    assert_string_equal(d, "2024-01-02");
    assert_true(text_parse_date("2024年01月02日", strlen("2024年01月02日"), d, t));
    assert_string_equal(d, "2024-01-02");
    assert_true(text_parse_date(" 2024-01-02 10:15:00 \t", 22, d, t));
    assert_string_equal(t, "10:15:00");
    assert_true(text_parse_date("2024-01-02T10:15", 16, d, t));
    assert_string_equal(t, "10:15:00");
    assert_true(text_parse_date("2024-02-29", 10, d, t));
    assert_false(text_parse_date("2023-02-29", 10, d, t));
    assert_false(text_parse_date("2024-13-01", 10, d, t));
    assert_false(text_parse_date("人民币合计", strlen("人民币合计"), d, t));
    assert_false(text_parse_date("2024-01-02x", 11, d, t));
    assert_true(text_parse_time("123456", 6, t));
    assert_string_equal(t, "12:34:56");
    assert_true(text_parse_time("17:57:17", 8, t));
    assert_false(text_parse_time("25:00", 5, t));
}

/* Folds a cell and parses it as the CSV parser does. */
static int64_t fold_parse(const char *cell, bool *ok)
{
    char buf[64];
    int64_t fen = 0;
    struct tp_error err;
    int n = text_fold_amount(cell, strlen(cell), buf, sizeof buf);
    *ok = n >= 0 && money_parse_lenient(buf, (size_t)n, '.', &fen, &err) == TP_OK;
    return fen;
}

static void test_amount_cells(void **state)
{
    (void)state;
    bool ok;
    assert_int_equal(fold_parse("\"1,234.56\"", &ok), 0); /* quotes are the CSV layer's job */
    assert_false(ok);
    assert_int_equal(fold_parse("1,234.56", &ok), 123456);
    assert_true(ok);
    assert_int_equal(fold_parse("+1,234.56", &ok), 123456);
    assert_int_equal(fold_parse("-2,600.00", &ok), -260000);
    assert_int_equal(fold_parse("１，２３４．５６", &ok), 123456); /* full width */
    assert_true(ok);
    assert_int_equal(fold_parse("－５０．００", &ok), -5000);
    assert_int_equal(fold_parse("¥1,000.00", &ok), 100000);
    assert_int_equal(fold_parse("￥1,000.00元", &ok), 100000);
    assert_int_equal(fold_parse("RMB 12.50", &ok), 1250);
    assert_int_equal(fold_parse("100.00-", &ok), -10000); /* trailing sign */
    assert_int_equal(fold_parse("13.40   \t", &ok), 1340);
    assert_int_equal(fold_parse("12.3400", &ok), 1234); /* zeros beyond fen are fine */
    (void)fold_parse("10.001", &ok);
    assert_false(ok); /* a non-zero third decimal is not a fen amount */
    (void)fold_parse("xx,yyyy.zz", &ok);
    assert_false(ok);
    assert_true(text_is_placeholder("-", 1));
    assert_true(text_is_placeholder("--", 2));
    assert_true(text_is_placeholder("-------------------", 19));
    assert_true(text_is_placeholder("   \t", 4));
    assert_true(text_is_placeholder("—", strlen("—")));
    assert_false(text_is_placeholder("-5", 2));
}

static void test_header_names(void **state)
{
    (void)state;
    char out[128];
    assert_true(text_normalize_header("借方发生额（支取）", strlen("借方发生额（支取）"), out,
                                      sizeof out) > 0);
    assert_string_equal(out, "借方发生额(支取)");
    text_normalize_header("交易日期[ Transaction Date ]", strlen("交易日期[ Transaction Date ]"),
                          out, sizeof out);
    assert_string_equal(out, "交易日期");
    text_normalize_header("账　　号", strlen("账　　号"), out, sizeof out);
    assert_string_equal(out, "账号");
    text_normalize_header("余额/元", strlen("余额/元"), out, sizeof out);
    assert_string_equal(out, "余额");
    text_normalize_header("发生额（元）", strlen("发生额（元）"), out, sizeof out);
    assert_string_equal(out, "发生额");
    text_normalize_header("日 志 号", strlen("日 志 号"), out, sizeof out);
    assert_string_equal(out, "日志号");
    text_normalize_header("贷 Cr", strlen("贷 Cr"), out, sizeof out);
    assert_string_equal(out, "贷cr");
}

/* Every alias in the built-in tables must already be in normalised form, or it never matches. */
static void test_profile_aliases_normalised(void **state)
{
    (void)state;
    int n;
    const struct csv_profile *b = csv_profiles_builtin(&n);
    assert_true(n >= 12);
    for (int i = 0; i < n; i++) {
        for (int f = CF_NONE + 1; f < CF_COUNT_; f++) {
            const char *list = b[i].columns[f];
            while (list != NULL && *list != '\0') {
                const char *bar = strchr(list, '|');
                size_t len = bar != NULL ? (size_t)(bar - list) : strlen(list);
                char norm[256];
                size_t w = text_normalize_header(list, len, norm, sizeof norm);
                if (w != len || memcmp(norm, list, len) != 0) {
                    fail_msg("profile %s field %s alias \"%.*s\" is not normalised (\"%s\")",
                             b[i].name, csv_field_key(f), (int)len, list, norm);
                }
                list = bar != NULL ? bar + 1 : list + len;
            }
        }
    }
    assert_non_null(csv_profiles_find(NULL, "icbc-personal"));
    assert_non_null(csv_profiles_find(NULL, "bocom-corporate"));
    assert_null(csv_profiles_find(NULL, "nope"));
}

static void test_currency_codes(void **state)
{
    (void)state;
    char c[4];
    assert_true(text_currency_code("人民币", strlen("人民币"), c));
    assert_string_equal(c, "CNY");
    assert_true(text_currency_code(" RMB ", 5, c));
    assert_string_equal(c, "CNY");
    assert_true(text_currency_code("usd", 3, c));
    assert_string_equal(c, "USD");
    assert_true(text_currency_code("美元", strlen("美元"), c));
    assert_string_equal(c, "USD");
    assert_false(text_currency_code("钞", strlen("钞"), c));
}

static void test_utf8(void **state)
{
    (void)state;
    bool inc;
    const unsigned char ok[] = "abc\xE4\xB8\xAD";
    assert_int_equal(text_utf8_valid_prefix(ok, 6, &inc), 6);
    assert_int_equal(text_utf8_valid_prefix(ok, 5, &inc), 3);
    assert_true(inc);
    const unsigned char bad[] = "ab\xC0\xAF";
    assert_int_equal(text_utf8_valid_prefix(bad, 4, &inc), 2);
    assert_false(inc);
    const unsigned char sur[] = "\xED\xA0\x80";
    assert_int_equal(text_utf8_valid_prefix(sur, 3, &inc), 0);
}

static void test_accounts(void **state)
{
    (void)state;
    char out[RECORD_ACCOUNT_MAX + 1];
    struct tp_error err;
    assert_int_equal(account_resolve("1234****9876", "1234567890129876", out, &err), TP_OK);
    assert_string_equal(out, "1234567890129876");
    assert_int_equal(account_resolve("3167", "6222021234567893167", out, &err), TP_OK);
    assert_int_equal(account_resolve("1234****9876", NULL, out, &err), TP_INVALID);
    assert_string_equal(err.msg, "the file's account \"1234****9876\" is masked or partial; pass "
                                 "the full account with --account");
    assert_int_equal(account_resolve("1234****9876", "1234567890129877", out, &err), TP_INVALID);
    assert_string_equal(err.msg, "--account 1234567890129877 does not match the file's account "
                                 "\"1234****9876\"");
    assert_int_equal(account_resolve(NULL, NULL, out, &err), TP_INVALID);
    assert_string_equal(err.msg, "no receiving account: the file names none; pass --account");
    assert_int_equal(account_resolve("NL71 RABO 0123 4567 89", NULL, out, &err), TP_OK);
    assert_string_equal(out, "NL71RABO0123456789");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dates),          cmocka_unit_test(test_amount_cells),
        cmocka_unit_test(test_header_names),   cmocka_unit_test(test_profile_aliases_normalised),
        cmocka_unit_test(test_currency_codes), cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_accounts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
