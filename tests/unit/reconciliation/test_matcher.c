/* Unit tests of matcher.c: rule 1, rule 2, the date window, review reasons, batch consumption. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "days.h"
#include "matcher.h"
#include "topup/ids.h"

#define MAX_ORDERS 16

struct fixture {
    struct matcher_order orders[MAX_ORDERS];
    char codes[MAX_ORDERS][REFCODE_STR_LEN];
    size_t n;
    struct matcher_params params;
};

static int32_t day(const char *s)
{
    int32_t d = 0;
    assert_true(days_parse(s, strlen(s), &d));
    return d;
}

/* Adds a pending order created on `created` (local date) expiring 3 days later. */
static struct matcher_order *add_order(struct fixture *f, const char *account, int64_t amount,
                                       const char *name, const char *created)
{
    assert_true(f->n < MAX_ORDERS);
    struct matcher_order *o = &f->orders[f->n];
    ids_refcode_new(f->codes[f->n]);
    memset(o, 0, sizeof(*o));
    o->id = (int64_t)f->n + 100;
    o->code = f->codes[f->n];
    o->account_id = account;
    o->amount_fen = amount;
    o->name_norm = name;
    o->status = MATCHER_ORDER_PENDING;
    o->created_day = day(created);
    o->expires_day = o->created_day + 3;
    o->payer_verified = true; /* the account owns the name unless a test says otherwise */
    /* Creation instant: noon of the day, plus the index so later orders are younger. */
    o->created_at_ms = ((int64_t)o->created_day * 86400 + 4 * 3600) * 1000 + (int64_t)f->n;
    f->n++;
    return o;
}

static struct matcher_record rec(int64_t amount, const char *name, const char *value_date,
                                 const char *code1, const char *code2)
{
    struct matcher_record r;
    memset(&r, 0, sizeof(r));
    r.amount_fen = amount;
    r.currency_cny = true;
    r.name_norm = name;
    r.value_day = day(value_date);
    r.received_at_ms = INT64_MAX; /* arriving now */
    if (code1 != NULL) {
        strcpy(r.codes[r.ncodes++], code1);
    }
    if (code2 != NULL) {
        strcpy(r.codes[r.ncodes++], code2);
    }
    return r;
}

/* Runs the matcher over recs with the fixture's orders. */
static void decide(struct fixture *f, const struct matcher_record *recs, size_t n,
                   struct matcher_decision *out)
{
    struct matcher_orders set;
    matcher_orders_init(&set, f->orders, f->n);
    matcher_decide_batch(&f->params, &set, recs, n, out);
    matcher_orders_deinit(&set);
}

static void init(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->params.early_days = 3;
    f->params.max_record_fen = 100000000;
}

static void test_reference_match(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    struct matcher_order *o = add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
    add_order(&f, "acct-b", 10000, "李四", "2024-01-05");
    /* The name on the transfer is someone else's: the reference decides. */
    struct matcher_record r = rec(10000, "王五", "2024-01-05", o->code, NULL);
    struct matcher_decision d;
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_MATCHED);
    assert_int_equal(d.rule, MATCHER_RULE_REFERENCE);
    assert_int_equal(d.reason, MATCHER_REASON_NONE);
    assert_ptr_equal(d.order, o);
    assert_int_equal(d.credited_fen, 10000);
    assert_false(d.amount_mismatch);
    assert_true(o->taken);
    assert_int_equal(d.ncandidates, 1);
}

static void test_reference_amount_mismatch(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    struct matcher_order *o = add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
    struct matcher_record r = rec(9999, "张三", "2024-01-05", o->code, NULL);
    struct matcher_decision d;
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_MATCHED);
    assert_int_equal(d.reason, MATCHER_REASON_AMOUNT_MISMATCH);
    assert_true(d.amount_mismatch);
    assert_int_equal(d.credited_fen, 9999); /* the amount actually received */
    assert_ptr_equal(d.order, o);
}

static void test_reference_not_pending(void **state)
{
    (void)state;
    const enum matcher_order_status statuses[] = {MATCHER_ORDER_CANCELLED, MATCHER_ORDER_EXPIRED,
                                                  MATCHER_ORDER_COMPLETED,
                                                  MATCHER_ORDER_PROCESSING};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        struct fixture f;
        init(&f);
        struct matcher_order *o = add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
        o->status = statuses[i];
        /* A pending order with the same name and amount must not be taken instead. */
        add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
        struct matcher_record r = rec(10000, "张三", "2024-01-05", o->code, NULL);
        struct matcher_decision d;
        decide(&f, &r, 1, &d);
        assert_int_equal(d.outcome, MATCHER_REVIEW);
        assert_int_equal(d.reason, MATCHER_REASON_ORDER_NOT_PENDING);
        assert_ptr_equal(d.order, o);
        assert_false(f.orders[1].taken);
    }
}

static void test_two_references_ambiguous(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    struct matcher_order *a = add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
    struct matcher_order *b = add_order(&f, "acct-b", 10000, "张三", "2024-01-05");
    struct matcher_record r = rec(10000, "张三", "2024-01-05", a->code, b->code);
    struct matcher_decision d;
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_REVIEW);
    assert_int_equal(d.reason, MATCHER_REASON_AMBIGUOUS);
    assert_null(d.order);
    assert_int_equal(d.ncandidates, 2);
    assert_false(a->taken);
    assert_false(b->taken);
}

static void test_same_order_twice_in_batch(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    struct matcher_order *o = add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
    struct matcher_record r[2] = {rec(10000, "张三", "2024-01-05", o->code, NULL),
                                  rec(10000, "张三", "2024-01-06", o->code, NULL)};
    struct matcher_decision d[2];
    decide(&f, r, 2, d);
    assert_int_equal(d[0].outcome, MATCHER_MATCHED);
    assert_int_equal(d[1].outcome, MATCHER_REVIEW);
    assert_int_equal(d[1].reason, MATCHER_REASON_ORDER_NOT_PENDING);
    assert_ptr_equal(d[1].order, o);
}

static void test_unknown_reference_falls_to_rule2(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    struct matcher_order *o = add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
    char unknown[REFCODE_STR_LEN];
    ids_refcode_new(unknown);
    struct matcher_record r = rec(10000, "张三", "2024-01-05", unknown, NULL);
    struct matcher_decision d;
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_MATCHED);
    assert_int_equal(d.rule, MATCHER_RULE_NAME_AMOUNT);
    assert_ptr_equal(d.order, o);
    /* With no fitting order it stays unmatched (and waits for a late order). */
    struct matcher_record r2 = rec(10001, "张三", "2024-01-05", unknown, NULL);
    decide(&f, &r2, 1, &d);
    assert_int_equal(d.outcome, MATCHER_UNMATCHED);
    assert_null(d.order);
}

static void test_rule2_oldest_of_one_account(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    struct matcher_order *newer = add_order(&f, "acct-a", 10000, "张三", "2024-01-06");
    struct matcher_order *older = add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
    add_order(&f, "acct-b", 10000, "李四", "2024-01-05");
    add_order(&f, "acct-c", 20000, "张三", "2024-01-05");
    struct matcher_record r[3] = {rec(10000, "张三", "2024-01-06", NULL, NULL),
                                  rec(10000, "张三", "2024-01-06", NULL, NULL),
                                  rec(10000, "张三", "2024-01-06", NULL, NULL)};
    struct matcher_decision d[3];
    decide(&f, r, 3, d);
    assert_int_equal(d[0].outcome, MATCHER_MATCHED);
    assert_int_equal(d[0].rule, MATCHER_RULE_NAME_AMOUNT);
    assert_ptr_equal(d[0].order, older);
    assert_int_equal(d[0].candidates_total, 2);
    assert_int_equal(d[0].candidate_accounts, 1);
    assert_ptr_equal(d[1].order, newer);
    assert_int_equal(d[2].outcome, MATCHER_UNMATCHED);
}

static void test_rule2_two_accounts_ambiguous(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
    add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
    add_order(&f, "acct-b", 10000, "张三", "2024-01-06");
    struct matcher_record r = rec(10000, "张三", "2024-01-06", NULL, NULL);
    struct matcher_decision d;
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_REVIEW);
    assert_int_equal(d.reason, MATCHER_REASON_AMBIGUOUS);
    assert_int_equal(d.candidate_accounts, 2);
    assert_int_equal(d.candidates_total, 3);
    assert_null(d.order);
    for (size_t i = 0; i < f.n; i++) {
        assert_false(f.orders[i].taken);
    }
}

static void test_rule2_window(void **state)
{
    (void)state;
    struct fixture f;
    init(&f); /* early_days 3; orders expire 3 days after creation */
    add_order(&f, "acct-a", 10000, "张三", "2024-01-10");
    const struct {
        const char *value_date;
        enum matcher_outcome want;
    } cases[] = {
        /* Before the order's day the order is late: a candidate, never a match by name. */
        {"2024-01-06", MATCHER_UNMATCHED}, {"2024-01-07", MATCHER_REVIEW},
        {"2024-01-09", MATCHER_REVIEW},    {"2024-01-10", MATCHER_MATCHED},
        {"2024-01-13", MATCHER_MATCHED},   {"2024-01-14", MATCHER_UNMATCHED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        f.orders[0].taken = false;
        struct matcher_record r = rec(10000, "张三", cases[i].value_date, NULL, NULL);
        struct matcher_decision d;
        decide(&f, &r, 1, &d);
        if (d.outcome != cases[i].want) {
            fail_msg("value date %s: outcome %s", cases[i].value_date,
                     matcher_outcome_name(d.outcome));
        }
    }
    /* A candidate outside the window is not a candidate: no ambiguity from it either. */
    add_order(&f, "acct-b", 10000, "张三", "2024-01-20");
    f.orders[0].taken = false;
    struct matcher_record r = rec(10000, "张三", "2024-01-10", NULL, NULL);
    struct matcher_decision d;
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_MATCHED);
    assert_string_equal(d.order->account_id, "acct-a");
}

static void test_rule2_needs_name_amount_pending(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    struct matcher_order *o = add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
    struct matcher_decision d;
    struct matcher_record r = rec(10001, "张三", "2024-01-05", NULL, NULL);
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_UNMATCHED); /* amount must be exact */
    r = rec(10000, "张", "2024-01-05", NULL, NULL);
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_UNMATCHED);
    r = rec(10000, "", "2024-01-05", NULL, NULL);
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_UNMATCHED);
    assert_string_equal(d.why, "no_name");
    o->status = MATCHER_ORDER_CANCELLED;
    r = rec(10000, "张三", "2024-01-05", NULL, NULL);
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_UNMATCHED);
    assert_false(o->taken);
}

static void test_currency_never_matched(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    struct matcher_order *o = add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
    struct matcher_record r = rec(10000, "张三", "2024-01-05", o->code, NULL);
    r.currency_cny = false;
    struct matcher_decision d;
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_UNMATCHED);
    assert_string_equal(d.why, "currency");
    assert_false(o->taken);
}

static void test_references_before_names_in_batch(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    struct matcher_order *older = add_order(&f, "acct-a", 10000, "张三", "2024-01-05");
    struct matcher_order *newer = add_order(&f, "acct-a", 10000, "张三", "2024-01-06");
    /* The name-only record comes first, but the reference to the older order is honoured. */
    struct matcher_record r[2] = {rec(10000, "张三", "2024-01-06", NULL, NULL),
                                  rec(10000, "张三", "2024-01-06", older->code, NULL)};
    struct matcher_decision d[2];
    decide(&f, r, 2, d);
    assert_int_equal(d[1].outcome, MATCHER_MATCHED);
    assert_int_equal(d[1].rule, MATCHER_RULE_REFERENCE);
    assert_ptr_equal(d[1].order, older);
    assert_int_equal(d[0].outcome, MATCHER_MATCHED);
    assert_ptr_equal(d[0].order, newer);
}

/* 王伟 / 500.00: the account that does not own the name never collects a stranger's transfer. */
static void test_rule2_unverified_payer(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    struct matcher_order *squat = add_order(&f, "acct-squat", 50000, "王伟", "2024-01-05");
    squat->payer_verified = false;
    struct matcher_record r = rec(50000, "王伟", "2024-01-05", NULL, NULL);
    struct matcher_decision d;
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_REVIEW);
    assert_int_equal(d.reason, MATCHER_REASON_UNVERIFIED_PAYER);
    assert_string_equal(d.why, "unverified_payer");
    assert_ptr_equal(d.order, squat);
    assert_false(squat->taken);
    /* The account that owns the name collects, the squatter's order is no rival to it. */
    struct matcher_order *owner = add_order(&f, "acct-owner", 50000, "王伟", "2024-01-05");
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_MATCHED);
    assert_int_equal(d.rule, MATCHER_RULE_NAME_AMOUNT);
    assert_ptr_equal(d.order, owner);
    assert_int_equal(d.candidate_accounts, 1);
    assert_int_equal(d.candidates_total, 2);
    assert_false(squat->taken);
}

/* 李娜 / 1000.00: an order created after the transfer waited unmatched never collects it. */
static void test_rule2_late_order(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    struct matcher_order *o = add_order(&f, "acct-a", 100000, "李娜", "2024-01-05");
    struct matcher_record r = rec(100000, "李娜", "2024-01-05", NULL, NULL);
    r.received_at_ms = o->created_at_ms - 1; /* stored before the order existed */
    struct matcher_decision d;
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_REVIEW);
    assert_int_equal(d.reason, MATCHER_REASON_LATE_ORDER);
    assert_ptr_equal(d.order, o);
    assert_false(o->taken);
    /* Received after the order was created: a match. */
    r.received_at_ms = o->created_at_ms + 1;
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_MATCHED);
    assert_ptr_equal(d.order, o);
    /* The reference still collects for a late order: rule 1 is unchanged. */
    o->taken = false;
    struct matcher_record r1 = rec(100000, "李娜", "2024-01-04", o->code, NULL);
    r1.received_at_ms = o->created_at_ms - 1;
    decide(&f, &r1, 1, &d);
    assert_int_equal(d.outcome, MATCHER_MATCHED);
    assert_int_equal(d.rule, MATCHER_RULE_REFERENCE);
}

static void test_above_ceiling(void **state)
{
    (void)state;
    struct fixture f;
    init(&f);
    struct matcher_order *o = add_order(&f, "acct-a", 5000, "张三", "2024-01-05");
    const int64_t amounts[] = {100000001, INT64_MAX};
    for (size_t i = 0; i < 2; i++) {
        struct matcher_record r = rec(amounts[i], "张三", "2024-01-05", o->code, NULL);
        struct matcher_decision d;
        decide(&f, &r, 1, &d);
        assert_int_equal(d.outcome, MATCHER_REVIEW);
        assert_int_equal(d.reason, MATCHER_REASON_ABOVE_CEILING);
        assert_int_equal(d.credited_fen, 0);
        assert_false(o->taken);
    }
    /* At the ceiling it is an ordinary transfer (matched by reference, flagged). */
    struct matcher_record r = rec(100000000, "张三", "2024-01-05", o->code, NULL);
    struct matcher_decision d;
    decide(&f, &r, 1, &d);
    assert_int_equal(d.outcome, MATCHER_MATCHED);
    assert_int_equal(d.reason, MATCHER_REASON_AMOUNT_MISMATCH);
}

static void test_names(void **state)
{
    (void)state;
    enum matcher_order_status st;
    assert_true(matcher_order_status_parse("expired", &st));
    assert_int_equal(st, MATCHER_ORDER_EXPIRED);
    assert_false(matcher_order_status_parse("paid", &st));
    assert_string_equal(matcher_order_status_name(MATCHER_ORDER_PROCESSING), "processing");
    assert_string_equal(matcher_rule_name(MATCHER_RULE_NAME_AMOUNT), "name_amount");
    assert_string_equal(matcher_reason_name(MATCHER_REASON_AGED_UNMATCHED), "aged_unmatched");
    assert_string_equal(matcher_reason_name(MATCHER_REASON_ABOVE_CEILING), "above_ceiling");
    assert_string_equal(matcher_reason_name(MATCHER_REASON_UNVERIFIED_PAYER), "unverified_payer");
    assert_string_equal(matcher_reason_name(MATCHER_REASON_LATE_ORDER), "late_order");
    assert_string_equal(matcher_outcome_name(MATCHER_REVIEW), "review");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_match),
        cmocka_unit_test(test_reference_amount_mismatch),
        cmocka_unit_test(test_reference_not_pending),
        cmocka_unit_test(test_two_references_ambiguous),
        cmocka_unit_test(test_same_order_twice_in_batch),
        cmocka_unit_test(test_unknown_reference_falls_to_rule2),
        cmocka_unit_test(test_rule2_oldest_of_one_account),
        cmocka_unit_test(test_rule2_two_accounts_ambiguous),
        cmocka_unit_test(test_rule2_window),
        cmocka_unit_test(test_rule2_needs_name_amount_pending),
        cmocka_unit_test(test_currency_never_matched),
        cmocka_unit_test(test_references_before_names_in_batch),
        cmocka_unit_test(test_rule2_unverified_payer),
        cmocka_unit_test(test_rule2_late_order),
        cmocka_unit_test(test_above_ceiling),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
