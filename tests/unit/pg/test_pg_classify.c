/* Unit tests of pg_classify_sqlstate: which SQLSTATEs retry, which are duplicates, which reject. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "topup/pg.h"

struct classify_case {
    const char *sqlstate;
    enum tp_status want;
};

static void test_classify(void **state)
{
    (void)state;
    static const struct classify_case cases[] = {
        {NULL, TP_RETRY},        /* no SQLSTATE: the connection broke */
        {"40001", TP_RETRY},     /* serialization_failure */
        {"40P01", TP_RETRY},     /* deadlock_detected */
        {"55P03", TP_RETRY},     /* lock_not_available (lock_timeout) */
        {"57P01", TP_RETRY},     /* admin_shutdown (pg_terminate_backend) */
        {"57P02", TP_RETRY},     /* crash_shutdown */
        {"57P03", TP_RETRY},     /* cannot_connect_now */
        {"08000", TP_RETRY},     /* connection_exception */
        {"08006", TP_RETRY},     /* connection_failure */
        {"08P01", TP_RETRY},     /* protocol_violation, class 08 */
        {"23505", TP_DUPLICATE}, /* unique_violation */
        {"23514", TP_INVALID},   /* check_violation */
        {"23502", TP_INVALID},   /* not_null_violation */
        {"23503", TP_INVALID},   /* foreign_key_violation */
        {"23P01", TP_INVALID},   /* exclusion_violation */
        {"22P02", TP_INVALID},   /* invalid_text_representation */
        {"22003", TP_INVALID},   /* numeric_value_out_of_range */
        {"22001", TP_INVALID},   /* string_data_right_truncation */
        {"42601", TP_FATAL},     /* syntax_error */
        {"42P01", TP_FATAL},     /* undefined_table */
        {"25P02", TP_FATAL},     /* in_failed_sql_transaction */
        {"40002", TP_FATAL},     /* transaction_integrity_constraint_violation: not a retry */
        {"57014", TP_FATAL},     /* query_canceled */
        {"XX000", TP_FATAL},     /* internal_error */
        {"53100", TP_FATAL},     /* disk_full */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum tp_status got = pg_classify_sqlstate(cases[i].sqlstate);
        if (got != cases[i].want) {
            fail_msg("%s: got %s, want %s", cases[i].sqlstate ? cases[i].sqlstate : "NULL",
                     error_status_name(got), error_status_name(cases[i].want));
        }
    }
}

static void test_classify_malformed(void **state)
{
    (void)state;
    /* Anything that is not a 5-character code came from a broken link, never from the server. */
    assert_int_equal(pg_classify_sqlstate(""), TP_RETRY);
    assert_int_equal(pg_classify_sqlstate("2350"), TP_RETRY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_classify_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
