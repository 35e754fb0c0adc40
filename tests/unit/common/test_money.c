/* Unit tests of money.c: the API amount grammar, bank-file amounts, formatting, overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "topup/money.h"

static int64_t parse_ok(const char *s)
{
    int64_t fen = -1;
    struct tp_error err = {0};
    enum tp_status st = money_parse(s, &fen, &err);
    if (st != TP_OK) {
        fail_msg("money_parse(\"%s\") failed: %s", s, err.msg);
    }
    return fen;
}

static void parse_bad(const char *s)
{
    int64_t fen = 12345;
    struct tp_error err = {0};
    enum tp_status st = money_parse(s, &fen, &err);
    if (st != TP_INVALID) {
        fail_msg("money_parse(\"%s\") should be invalid", s);
    }
    assert_int_equal(fen, 12345); /* output untouched on error */
    assert_true(strlen(err.msg) > 0);
}

static void test_api_accepts(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("100.00"), 10000);
    assert_int_equal(parse_ok("100"), 10000);
    assert_int_equal(parse_ok("100.5"), 10050);
    assert_int_equal(parse_ok("0.01"), 1);
    assert_int_equal(parse_ok("0"), 0);
    assert_int_equal(parse_ok("50.00"), 5000);
    assert_int_equal(parse_ok("1000000.00"), 100000000);
    assert_int_equal(parse_ok("92233720368547758.07"), INT64_MAX);
}

static void test_api_rejects(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "1e3",
                         "10.001",
                         "-5",
                         " 50",
                         "50 ",
                         "+50",
                         "50.",
                         ".5",
                         "05",
                         "00.10",
                         "1,000",
                         "50.0.0",
                         "0x10",
                         "５０",
                         "50\n",
                         "NaN",
                         "inf",
                         "1.-1",
                         "92233720368547758.08",
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parse_bad(bad[i]);
    }
    int64_t fen;
    assert_int_equal(money_parse(NULL, &fen, NULL), TP_INVALID);
}

static int64_t lenient(const char *s, char dec)
{
    int64_t fen = -1;
    struct tp_error err = {0};
    if (money_parse_lenient(s, strlen(s), dec, &fen, &err) != TP_OK) {
        fail_msg("money_parse_lenient(\"%s\") failed: %s", s, err.msg);
    }
    return fen;
}

static void lenient_bad(const char *s, char dec)
{
    int64_t fen;
    struct tp_error err = {0};
    if (money_parse_lenient(s, strlen(s), dec, &fen, &err) != TP_INVALID) {
        fail_msg("money_parse_lenient(\"%s\") should be invalid", s);
    }
}

static void test_lenient_bank_amounts(void **state)
{
    (void)state;
    assert_int_equal(lenient("1,234.56", '.'), 123456);
    assert_int_equal(lenient("-1,234.56", '.'), -123456);
    assert_int_equal(lenient("+50.00", '.'), 5000);
    assert_int_equal(lenient("\t 12.3 \t", '.'), 1230);
    assert_int_equal(lenient("672,", ','), 67200); /* MT940 */
    assert_int_equal(lenient("1234,5", ','), 123450);
    assert_int_equal(lenient("1.234,56", ','), 123456); /* European grouping */
    assert_int_equal(lenient("12.34000", '.'), 1234);   /* zero decimals beyond fen are fine */
    assert_int_equal(lenient("1,234,567.89", '.'), 123456789);
    lenient_bad("12.345", '.');  /* a fraction of a fen */
    lenient_bad("1,23.00", '.'); /* misplaced grouping */
    lenient_bad("12,34", '.');
    lenient_bad("1234,567.00", '.');
    lenient_bad("-", '.');
    lenient_bad("--", '.');
    lenient_bad("", '.');
    lenient_bad("12a", '.');
    lenient_bad("1.2.3", '.');
    lenient_bad("99999999999999999999.00", '.');
    lenient_bad("1e5", '.');
}

static void test_format(void **state)
{
    (void)state;
    char buf[MONEY_STR_MAX];
    assert_string_equal(money_format(0, buf), "0.00");
    assert_string_equal(money_format(5, buf), "0.05");
    assert_string_equal(money_format(-5, buf), "-0.05");
    assert_string_equal(money_format(123456, buf), "1234.56");
    assert_string_equal(money_format(INT64_MAX, buf), "92233720368547758.07");
    assert_string_equal(money_format(INT64_MIN, buf), "-92233720368547758.08");
    /* Round trip of every formatted value through the strict parser. */
    for (int64_t v = 0; v < 100000; v += 37) {
        int64_t back;
        assert_int_equal(money_parse(money_format(v, buf), &back, NULL), TP_OK);
        assert_int_equal(back, v);
    }
}

static void test_checked_arithmetic(void **state)
{
    (void)state;
    int64_t r = 7;
    assert_true(money_add(1, 2, &r));
    assert_int_equal(r, 3);
    assert_false(money_add(INT64_MAX, 1, &r));
    assert_int_equal(r, 3);
    assert_false(money_sub(INT64_MIN, 1, &r));
    assert_true(money_sub(-5, 5, &r));
    assert_int_equal(r, -10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_accepts),          cmocka_unit_test(test_api_rejects),
        cmocka_unit_test(test_lenient_bank_amounts), cmocka_unit_test(test_format),
        cmocka_unit_test(test_checked_arithmetic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
