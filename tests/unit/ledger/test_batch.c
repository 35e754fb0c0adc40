/* Unit tests of the ledger's batch.c: duplicates, rejections and balance_after per account. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ledger.h"

static struct batch_item *add(struct batch *b, int id, const char *account,
                              enum ledger_flow_type type, int64_t amount, const char *ref)
{
    struct batch_item *it = batch_add(b);
    assert_non_null(it);
    snprintf(it->ev.event_id, sizeof(it->ev.event_id), "0190a5b4-7c3e-7000-8000-%012d", id);
    snprintf(it->ev.account_id, sizeof(it->ev.account_id), "%s", account);
    snprintf(it->ev.reference, sizeof(it->ev.reference), "%s", ref);
    it->ev.type = type;
    it->ev.amount_fen = amount;
    it->ev.occurred_at_ms = 1700000000000 + id;
    it->msg_index = b->n - 1;
    return it;
}

/* What apply.c does after locking: every account read, with the given starting balance. */
static void load_accounts(struct batch *b, int64_t balance)
{
    for (int i = 0; i < b->n_accounts; i++) {
        b->accounts[i].loaded = true;
        b->accounts[i].balance_fen = balance;
        b->accounts[i].version = 7;
    }
}

static void set_order(struct batch *b, const char *code, enum batch_order_status st,
                      const char *account, const char *credited_by)
{
    struct batch_order *o = batch_find_order(b, code);
    assert_non_null(o);
    o->status = st;
    snprintf(o->account_id, sizeof(o->account_id), "%s", account);
    snprintf(o->credited_by, sizeof(o->credited_by), "%s", credited_by);
}

static void test_interleaved_accounts_and_negative(void **state)
{
    (void)state;
    struct batch b;
    batch_init(&b, 16);
    struct batch_item *a1 = add(&b, 1, "A", LEDGER_FLOW_REFUND, 100, "r1");
    struct batch_item *b1 = add(&b, 2, "B", LEDGER_FLOW_CONSUME, -50, "u1");
    struct batch_item *a2 = add(&b, 3, "A", LEDGER_FLOW_CONSUME, -30, "u2");
    struct batch_item *b2 = add(&b, 4, "B", LEDGER_FLOW_REFUND, 20, "r2");
    struct batch_item *a3 = add(&b, 5, "A", LEDGER_FLOW_CONSUME, -200, "u3");
    batch_index(&b);
    assert_int_equal(b.n_accounts, 2);
    assert_int_equal(b.n_keys, 5);
    assert_int_equal(b.n_orders, 0);
    load_accounts(&b, 0);
    batch_plan(&b);
    assert_int_equal(a1->outcome, BATCH_APPLY);
    assert_int_equal(a1->balance_after_fen, 100);
    assert_int_equal(a2->balance_after_fen, 70);
    assert_int_equal(a3->balance_after_fen, -130); /* usage already happened: may go negative */
    assert_int_equal(b1->balance_after_fen, -50);
    assert_int_equal(b2->balance_after_fen, -30);
    assert_int_equal(batch_find_account(&b, "A")->new_balance_fen, -130);
    assert_int_equal(batch_find_account(&b, "A")->flows, 3);
    assert_int_equal(batch_find_account(&b, "B")->new_balance_fen, -30);
    assert_int_equal(b.applied[LEDGER_FLOW_CONSUME], 3);
    assert_int_equal(b.applied[LEDGER_FLOW_REFUND], 2);
    assert_int_equal(b.duplicates + b.rejects + b.invalid, 0);
    batch_deinit(&b);
}

static void test_duplicates_in_batch_and_in_db(void **state)
{
    (void)state;
    struct batch b;
    batch_init(&b, 16);
    struct batch_item *x1 = add(&b, 1, "A", LEDGER_FLOW_CONSUME, -10, "u1");
    struct batch_item *x2 = add(&b, 1, "A", LEDGER_FLOW_CONSUME, -10, "u1");
    struct batch_item *y = add(&b, 2, "A", LEDGER_FLOW_CONSUME, -5, "u2");
    struct batch_item *x3 = add(&b, 1, "A", LEDGER_FLOW_CONSUME, -10, "u1");
    struct batch_item *old = add(&b, 3, "A", LEDGER_FLOW_CONSUME, -1000, "u0");
    batch_index(&b);
    assert_int_equal(b.n_keys, 3);
    load_accounts(&b, 100);
    batch_find_key(&b, old->ev.event_id)->is_flow = true; /* committed by an earlier batch */
    batch_plan(&b);
    assert_int_equal(x1->outcome, BATCH_APPLY);
    assert_int_equal(x1->balance_after_fen, 90);
    assert_int_equal(x2->outcome, BATCH_DUPLICATE);
    assert_int_equal(x3->outcome, BATCH_DUPLICATE);
    assert_int_equal(y->balance_after_fen, 85);
    assert_int_equal(old->outcome, BATCH_DUPLICATE);
    assert_int_equal(b.duplicates, 3);
    assert_int_equal(batch_find_account(&b, "A")->new_balance_fen, 85);
    batch_deinit(&b);
}

static void test_replan_is_repeatable(void **state)
{
    (void)state;
    struct batch b;
    batch_init(&b, 4);
    struct batch_item *x = add(&b, 1, "A", LEDGER_FLOW_CONSUME, -10, "u1");
    struct batch_item *bad = add(&b, 2, "A", LEDGER_FLOW_CONSUME, -10, "u2");
    bad->outcome = BATCH_INVALID;
    add(&b, 3, "A", LEDGER_FLOW_CONSUME, -10, "u3");
    add(&b, 4, "B", LEDGER_FLOW_CONSUME, -10, "u4");
    assert_null(batch_add(&b)); /* the named maximum holds */
    for (int attempt = 0; attempt < 2; attempt++) {
        batch_index(&b);
        assert_int_equal(b.n_keys, 3); /* invalid items are not indexed */
        load_accounts(&b, 1000 * (attempt + 1));
        batch_plan(&b);
        assert_int_equal(x->outcome, BATCH_APPLY);
        assert_int_equal(x->balance_after_fen, 1000 * (attempt + 1) - 10);
        assert_int_equal(bad->outcome, BATCH_INVALID);
        assert_int_equal(b.invalid, 1);
        assert_int_equal(b.applied[LEDGER_FLOW_CONSUME], 3);
    }
    batch_deinit(&b);
}

static void test_rejected_before_stays_rejected(void **state)
{
    (void)state;
    struct batch b;
    batch_init(&b, 4);
    struct batch_item *x = add(&b, 1, "A", LEDGER_FLOW_REFUND, 10, "r1");
    batch_index(&b);
    load_accounts(&b, 0);
    struct batch_event_key *k = batch_find_key(&b, x->ev.event_id);
    k->is_rejection = true;
    snprintf(k->rejection_reason, sizeof(k->rejection_reason), "balance would overflow");
    batch_plan(&b);
    assert_int_equal(x->outcome, BATCH_REJECT);
    assert_true(x->rejected_before);
    assert_string_equal(x->reason, "balance would overflow");
    assert_int_equal(batch_find_account(&b, "A")->flows, 0);
    batch_deinit(&b);
}

static void test_recharges(void **state)
{
    (void)state;
    struct batch b;
    batch_init(&b, 16);
    struct batch_item *ok = add(&b, 1, "A", LEDGER_FLOW_RECHARGE, 5000, "TUOK");
    struct batch_item *again = add(&b, 2, "A", LEDGER_FLOW_RECHARGE, 5000, "TUOK");
    struct batch_item *missing = add(&b, 3, "A", LEDGER_FLOW_RECHARGE, 5000, "TUMISSING");
    struct batch_item *other = add(&b, 4, "A", LEDGER_FLOW_RECHARGE, 5000, "TUOTHER");
    struct batch_item *done = add(&b, 5, "A", LEDGER_FLOW_RECHARGE, 5000, "TUDONE");
    struct batch_item *pending = add(&b, 6, "B", LEDGER_FLOW_RECHARGE, 7000, "TUPENDING");
    struct batch_item *dup = add(&b, 1, "A", LEDGER_FLOW_RECHARGE, 5000, "TUOK");
    batch_index(&b);
    assert_int_equal(b.n_orders, 5);
    load_accounts(&b, 0);
    set_order(&b, "TUOK", BATCH_ORDER_PROCESSING, "A", "");
    set_order(&b, "TUOTHER", BATCH_ORDER_PROCESSING, "Z", "");
    set_order(&b, "TUDONE", BATCH_ORDER_OTHER, "A", "0190a5b4-7c3e-7000-8000-000000000099");
    set_order(&b, "TUPENDING", BATCH_ORDER_OTHER, "B", "");
    batch_plan(&b);

    assert_int_equal(ok->outcome, BATCH_APPLY);
    assert_true(ok->complete_order);
    assert_false(ok->order_not_processing);
    assert_int_equal(ok->balance_after_fen, 5000);

    assert_int_equal(again->outcome, BATCH_REJECT);
    assert_non_null(strstr(again->reason, "already credited by event"));
    assert_non_null(strstr(again->reason, ok->ev.event_id));

    assert_int_equal(missing->outcome, BATCH_REJECT);
    assert_non_null(strstr(missing->reason, "not found"));
    assert_int_equal(other->outcome, BATCH_REJECT);
    assert_non_null(strstr(other->reason, "another account"));
    assert_int_equal(done->outcome, BATCH_REJECT);
    assert_non_null(strstr(done->reason, "000000000099"));

    /* Money that was matched is credited even when the order left processing; it is flagged. */
    assert_int_equal(pending->outcome, BATCH_APPLY);
    assert_false(pending->complete_order);
    assert_true(pending->order_not_processing);

    assert_int_equal(dup->outcome, BATCH_DUPLICATE);
    assert_int_equal(b.rejects, 4);
    assert_int_equal(b.duplicates, 1);
    assert_int_equal(b.applied[LEDGER_FLOW_RECHARGE], 2);
    assert_int_equal(batch_find_account(&b, "A")->new_balance_fen, 5000);
    assert_int_equal(batch_find_account(&b, "B")->new_balance_fen, 7000);
    batch_deinit(&b);
}

static void test_overflow_rejected_rest_goes_on(void **state)
{
    (void)state;
    struct batch b;
    batch_init(&b, 8);
    struct batch_item *over = add(&b, 1, "A", LEDGER_FLOW_REFUND, 20, "r1");
    struct batch_item *after = add(&b, 2, "A", LEDGER_FLOW_CONSUME, -5, "u1");
    struct batch_item *under = add(&b, 3, "B", LEDGER_FLOW_CONSUME, INT64_MIN, "u2");
    batch_index(&b);
    load_accounts(&b, 0);
    batch_find_account(&b, "A")->balance_fen = INT64_MAX - 10;
    batch_find_account(&b, "B")->balance_fen = -1;
    batch_plan(&b);
    assert_int_equal(over->outcome, BATCH_REJECT);
    assert_non_null(strstr(over->reason, "overflow"));
    assert_int_equal(after->outcome, BATCH_APPLY);
    assert_true(after->balance_after_fen == INT64_MAX - 15);
    assert_int_equal(under->outcome, BATCH_REJECT);
    assert_int_equal(batch_find_account(&b, "B")->flows, 0);
    assert_int_equal(batch_find_account(&b, "B")->new_balance_fen, -1);
    batch_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interleaved_accounts_and_negative),
        cmocka_unit_test(test_duplicates_in_batch_and_in_db),
        cmocka_unit_test(test_replan_is_repeatable),
        cmocka_unit_test(test_rejected_before_stays_rejected),
        cmocka_unit_test(test_recharges),
        cmocka_unit_test(test_overflow_rejected_rest_goes_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
