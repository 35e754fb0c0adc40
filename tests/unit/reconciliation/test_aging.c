/* Unit tests of days.c and aging.c: dates, weekdays, business days over weekends and holidays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "aging.h"
#include "days.h"

static int32_t day(const char *s)
{
    int32_t d = 0;
    if (!days_parse(s, strlen(s), &d)) {
        fail_msg("bad date in test: %s", s);
    }
    return d;
}

static void assert_day(int32_t got, const char *want)
{
    char buf[DAYS_STR_LEN];
    if (strcmp(days_format(got, buf), want) != 0) {
        fail_msg("got %s, want %s", buf, want);
    }
}

static void test_parse_format(void **state)
{
    (void)state;
    int32_t d;
    assert_true(days_parse("1970-01-01", 10, &d));
    assert_int_equal(d, 0);
    assert_true(days_parse("2024-02-29", 10, &d)); /* leap year */
    assert_day(d, "2024-02-29");
    assert_false(days_parse("2023-02-29", 10, &d));
    assert_false(days_parse("2024-02-30", 10, &d));
    assert_false(days_parse("2024-13-01", 10, &d));
    assert_false(days_parse("2024-00-10", 10, &d));
    assert_false(days_parse("2024-1-05", 9, &d));
    assert_false(days_parse("2024/01/05", 10, &d));
    assert_false(days_parse(" 2024-01-5", 10, &d));
    assert_false(days_parse("20240105", 8, &d));
    assert_false(days_parse("1899-12-31", 10, &d));
    assert_true(days_parse("2000-02-29", 10, &d)); /* divisible by 400 */
    assert_false(days_parse("1900-02-29", 10, &d));
    assert_day(day("2024-12-31") + 1, "2025-01-01");
    assert_day(day("2024-03-01") - 1, "2024-02-29");
}

static void test_weekday(void **state)
{
    (void)state;
    assert_int_equal(days_weekday(day("1970-01-01")), 3); /* Thursday */
    assert_int_equal(days_weekday(day("2024-01-01")), 0); /* Monday */
    assert_int_equal(days_weekday(day("2024-01-06")), 5); /* Saturday */
    assert_int_equal(days_weekday(day("2024-01-07")), 6); /* Sunday */
    assert_int_equal(days_weekday(day("1969-12-31")), 2); /* Wednesday, before the epoch */
}

static void test_local_day(void **state)
{
    (void)state;
    /* 2024-01-05T15:59:59.999Z is 23:59:59 in Shanghai; one ms later it is the 6th there. */
    int64_t ms = (int64_t)day("2024-01-05") * 86400000LL + 15LL * 3600000 + 59 * 60000 + 59999;
    assert_day(days_local_from_ms(ms), "2024-01-05");
    assert_day(days_local_from_ms(ms + 1), "2024-01-06");
    /* 2024-01-05T00:00Z is already 08:00 on the 5th in Shanghai; 2024-01-04T16:00Z too. */
    assert_day(days_local_from_ms((int64_t)day("2024-01-05") * 86400000LL), "2024-01-05");
    assert_day(days_local_from_ms((int64_t)day("2024-01-05") * 86400000LL - 8 * 3600000LL),
               "2024-01-05");
    assert_day(days_local_from_ms((int64_t)day("2024-01-05") * 86400000LL - 8 * 3600000LL - 1),
               "2024-01-04");
    assert_day(days_local_from_ms(-9 * 3600000LL), "1969-12-31");
}

static void test_weekends(void **state)
{
    (void)state;
    struct aging_calendar cal;
    aging_calendar_init(&cal);
    assert_true(aging_is_business_day(&cal, day("2024-01-05")));
    assert_false(aging_is_business_day(&cal, day("2024-01-06")));
    assert_false(aging_is_business_day(&cal, day("2024-01-07")));
    /* Friday + 1 business day = Monday; + 3 = Wednesday; + 0 = itself. */
    assert_day(aging_add_business_days(&cal, day("2024-01-05"), 1), "2024-01-08");
    assert_day(aging_add_business_days(&cal, day("2024-01-05"), 3), "2024-01-10");
    assert_day(aging_add_business_days(&cal, day("2024-01-05"), 0), "2024-01-05");
    /* A Saturday value date counts from the Monday. */
    assert_day(aging_add_business_days(&cal, day("2024-01-06"), 1), "2024-01-08");
    assert_day(aging_add_business_days(&cal, day("2024-01-03"), 5), "2024-01-10");
    /* The README example: due from Thursday, not Wednesday. */
    assert_false(aging_is_due(&cal, day("2024-01-05"), 3, day("2024-01-10")));
    assert_true(aging_is_due(&cal, day("2024-01-05"), 3, day("2024-01-11")));
    assert_false(aging_is_due(&cal, day("2024-01-05"), 3, day("2024-01-05")));
}

static void test_new_year_and_holidays(void **state)
{
    (void)state;
    static const char file[] = "# PRC bank holidays (sample)\n"
                               "2025-01-01   # New Year's Day\n"
                               "\n"
                               "2025-01-26 workday  # Sunday, worked before Spring Festival\n"
                               "2025-01-28\n2025-01-29\r\n2025-01-30\n2025-01-31\n"
                               "2025-02-03\n2025-02-04\n"
                               "2025-02-08 workday\n";
    struct aging_calendar cal;
    struct tp_error err = {0};
    assert_int_equal(aging_calendar_parse(&cal, file, strlen(file), &err), TP_OK);
    assert_int_equal(cal.nholidays, 7);
    assert_int_equal(cal.nworkdays, 2);
    /* Tuesday 2024-12-31 + 1: New Year's Day is skipped -> Thursday. */
    assert_day(aging_add_business_days(&cal, day("2024-12-31"), 1), "2025-01-02");
    /* Monday 2024-12-30 + 3 -> Tue 31, Thu 2, Fri 3. */
    assert_day(aging_add_business_days(&cal, day("2024-12-30"), 3), "2025-01-03");
    /* Without the holiday list the same sum lands a day earlier. */
    struct aging_calendar plain;
    aging_calendar_init(&plain);
    assert_day(aging_add_business_days(&plain, day("2024-12-30"), 3), "2025-01-02");
    /* Spring Festival: Friday 24th + 1 is the make-up Sunday 26th, + 2 Monday 27th, + 3 Feb 5th. */
    assert_day(aging_add_business_days(&cal, day("2025-01-24"), 1), "2025-01-26");
    assert_day(aging_add_business_days(&cal, day("2025-01-24"), 2), "2025-01-27");
    assert_day(aging_add_business_days(&cal, day("2025-01-24"), 3), "2025-02-05");
    assert_true(aging_is_business_day(&cal, day("2025-02-08")));
    assert_false(aging_is_business_day(&cal, day("2025-02-09")));
    assert_false(aging_is_due(&cal, day("2025-01-24"), 3, day("2025-02-05")));
    assert_true(aging_is_due(&cal, day("2025-01-24"), 3, day("2025-02-06")));
}

static void test_calendar_errors(void **state)
{
    (void)state;
    struct aging_calendar cal;
    struct tp_error err = {0};
    const char *bad[] = {"2025-01-01\n2025-13-01\n", "2025-01-01 holiday\n", "01/01/2025\n",
                         "2025-01-02 workday\n" /* a Thursday */, "2025-01-26workday\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (aging_calendar_parse(&cal, bad[i], strlen(bad[i]), &err) != TP_INVALID) {
            fail_msg("accepted: %s", bad[i]);
        }
        assert_int_equal(cal.nholidays, 0);
    }
    assert_int_equal(aging_calendar_parse(&cal, "2025-13-01", 10, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "line 1"));
    assert_int_equal(aging_calendar_parse(&cal, "", 0, &err), TP_OK);
    assert_int_equal(aging_calendar_load(&cal, "/nonexistent/holidays.txt", &err), TP_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_format),
        cmocka_unit_test(test_weekday),
        cmocka_unit_test(test_local_day),
        cmocka_unit_test(test_weekends),
        cmocka_unit_test(test_new_year_and_holidays),
        cmocka_unit_test(test_calendar_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
