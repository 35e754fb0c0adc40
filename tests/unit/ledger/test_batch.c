/* Unit tests of the ledger's batch.c: duplicates, rejections and balance_after per account. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ledger.h"

/* No ceiling in the way unless a test is about ceilings. */
static const struct ledger_limits no_limits = {INT64_MAX, INT64_MAX, INT64_MAX, 86400};

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

/* What apply.c reads of an event id already committed with its content (a redelivery). */
static struct batch_event_key *set_known(struct batch *b, const struct batch_item *it, bool flow)
{
    struct batch_event_key *k = batch_find_key(b, it->ev.event_id);
    assert_non_null(k);
    k->is_flow = flow;
    k->is_rejection = !flow;
    snprintf(k->account_id, sizeof(k->account_id), "%s", it->ev.account_id);
    k->type = it->ev.type;
    k->amount_fen = it->ev.amount_fen;
    snprintf(k->reference, sizeof(k->reference), "%s", it->ev.reference);
    return k;
}

/* The order's match decision, as apply.c reads it: bank record "ACCT"/"T-<code>" of amount. */
static void set_decision(struct batch *b, const char *code, int64_t amount)
{
    struct batch_order *o = batch_find_order(b, code);
    assert_non_null(o);
    o->has_decision = true;
    o->decision_id = 42;
    snprintf(o->decision_bank_account, sizeof(o->decision_bank_account), "ACCT");
    snprintf(o->decision_bank_txn_id, sizeof(o->decision_bank_txn_id), "T-%s", code);
    o->decision_amount_fen = amount;
}

/* A recharge naming the bank record set_decision() records. */
static struct batch_item *add_recharge(struct batch *b, int id, const char *account, int64_t amount,
                                       const char *code)
{
    struct batch_item *it = add(b, id, account, LEDGER_FLOW_RECHARGE, amount, code);
    snprintf(it->ev.bank_account, sizeof(it->ev.bank_account), "ACCT");
    snprintf(it->ev.bank_txn_id, sizeof(it->ev.bank_txn_id), "T-%s", code);
    return it;
}

static struct batch_item *add_usage_refund(struct batch *b, int id, const char *account,
                                           int64_t amount, const char *ref, const char *usage)
{
    struct batch_item *it = add(b, id, account, LEDGER_FLOW_REFUND, amount, ref);
    it->ev.usage_refund = true;
    snprintf(it->ev.refund_of, sizeof(it->ev.refund_of), "%s", usage);
    return it;
}

/* What apply.c reads for a consume flow committed earlier: account A, reference usage. */
static void set_usage(struct batch *b, const char *account, const char *usage, int64_t consumed,
                      int64_t refunded)
{
    char key[LEDGER_ACCOUNT_MAX + 1 + LEDGER_REFERENCE_MAX + 1];
    snprintf(key, sizeof(key), "%s\x1f%s", account, usage);
    struct batch_usage *u = batch_find_usage(b, key);
    assert_non_null(u);
    snprintf(u->consumed_by, sizeof(u->consumed_by), "0190a5b4-7c3e-7000-8000-000000000777");
    u->consumed_fen = consumed;
    u->refunded_fen = refunded;
}

static void test_interleaved_accounts_and_negative(void **state)
{
    (void)state;
    struct batch b;
    batch_init(&b, 16, &no_limits);
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
    batch_init(&b, 16, &no_limits);
    struct batch_item *x1 = add(&b, 1, "A", LEDGER_FLOW_CONSUME, -10, "u1");
    struct batch_item *x2 = add(&b, 1, "A", LEDGER_FLOW_CONSUME, -10, "u1");
    struct batch_item *y = add(&b, 2, "A", LEDGER_FLOW_CONSUME, -5, "u2");
    struct batch_item *x3 = add(&b, 1, "A", LEDGER_FLOW_CONSUME, -10, "u1");
    struct batch_item *old = add(&b, 3, "A", LEDGER_FLOW_CONSUME, -1000, "u0");
    batch_index(&b);
    assert_int_equal(b.n_keys, 3);
    load_accounts(&b, 100);
    set_known(&b, old, true); /* committed by an earlier batch */
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
    batch_init(&b, 4, &no_limits);
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
    batch_init(&b, 4, &no_limits);
    struct batch_item *x = add(&b, 1, "A", LEDGER_FLOW_REFUND, 10, "r1");
    batch_index(&b);
    load_accounts(&b, 0);
    struct batch_event_key *k = set_known(&b, x, false);
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
    batch_init(&b, 16, &no_limits);
    struct batch_item *ok = add_recharge(&b, 1, "A", 5000, "TUOK");
    struct batch_item *again = add_recharge(&b, 2, "A", 5000, "TUOK");
    struct batch_item *missing = add_recharge(&b, 3, "A", 5000, "TUMISSING");
    struct batch_item *other = add_recharge(&b, 4, "A", 5000, "TUOTHER");
    struct batch_item *done = add_recharge(&b, 5, "A", 5000, "TUDONE");
    struct batch_item *pending = add_recharge(&b, 6, "B", 7000, "TUPENDING");
    struct batch_item *dup = add_recharge(&b, 1, "A", 5000, "TUOK");
    batch_index(&b);
    assert_int_equal(b.n_orders, 5);
    load_accounts(&b, 0);
    set_order(&b, "TUOK", BATCH_ORDER_PROCESSING, "A", "");
    set_order(&b, "TUOTHER", BATCH_ORDER_PROCESSING, "Z", "");
    set_order(&b, "TUDONE", BATCH_ORDER_OTHER, "A", "0190a5b4-7c3e-7000-8000-000000000099");
    set_order(&b, "TUPENDING", BATCH_ORDER_OTHER, "B", "");
    set_decision(&b, "TUOK", 5000);
    set_decision(&b, "TUOTHER", 5000);
    set_decision(&b, "TUDONE", 5000);
    set_decision(&b, "TUPENDING", 7000);
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

    /* Money that was matched (its decision exists) is credited even when the order left
     * processing; it is flagged. */
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
    batch_init(&b, 8, &no_limits);
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

/* A PaymentMatched is credited only as its match decision in PostgreSQL says. */
static void test_recharge_provenance(void **state)
{
    (void)state;
    struct batch b;
    batch_init(&b, 16, &no_limits);
    struct batch_item *forged = add_recharge(&b, 1, "A", 100000000000, "TUNODECISION");
    struct batch_item *other_rec = add_recharge(&b, 2, "A", 5000, "TUOTHERREC");
    snprintf(other_rec->ev.bank_txn_id, sizeof(other_rec->ev.bank_txn_id), "T-SOMETHINGELSE");
    struct batch_item *more = add_recharge(&b, 3, "A", 1000000000, "TUMORE");
    struct batch_item *ok = add_recharge(&b, 4, "A", 5000, "TUFINE");
    batch_index(&b);
    load_accounts(&b, 0);
    set_order(&b, "TUNODECISION", BATCH_ORDER_OTHER, "A", ""); /* pending, never matched */
    set_order(&b, "TUOTHERREC", BATCH_ORDER_PROCESSING, "A", "");
    set_decision(&b, "TUOTHERREC", 5000);
    set_order(&b, "TUMORE", BATCH_ORDER_PROCESSING, "A", "");
    set_decision(&b, "TUMORE", 10000);
    set_order(&b, "TUFINE", BATCH_ORDER_PROCESSING, "A", "");
    set_decision(&b, "TUFINE", 5000);
    batch_plan(&b);
    assert_int_equal(forged->outcome, BATCH_REJECT);
    assert_int_equal(forged->refusal, BATCH_REFUSED_PROVENANCE);
    assert_non_null(strstr(forged->reason, "no match decision"));
    assert_int_equal(other_rec->outcome, BATCH_REJECT);
    assert_non_null(strstr(other_rec->reason, "another bank record"));
    assert_int_equal(more->outcome, BATCH_REJECT);
    assert_non_null(strstr(more->reason, "is not the matched transfer's 10000"));
    assert_int_equal(ok->outcome, BATCH_APPLY);
    assert_int_equal(b.refused[BATCH_REFUSED_PROVENANCE], 3);
    assert_int_equal(batch_find_account(&b, "A")->new_balance_fen, 5000);
    batch_deinit(&b);
}

/* A usage refund gives back at most what its usage took, across batches and within one. */
static void test_usage_refund_capped(void **state)
{
    (void)state;
    struct batch b;
    batch_init(&b, 16, &no_limits);
    struct batch_item *early = add_usage_refund(&b, 10, "A", 20, "rf-0", "req-new"); /* first */
    struct batch_item *none = add_usage_refund(&b, 1, "A", 500000000, "rf-none", "req-never");
    struct batch_item *empty = add_usage_refund(&b, 2, "A", 10, "rf-empty", "");
    struct batch_item *r1 = add_usage_refund(&b, 3, "A", 60, "rf-1", "req-old");
    struct batch_item *r2 = add_usage_refund(&b, 4, "A", 31, "rf-2", "req-old"); /* 30 left */
    struct batch_item *r3 = add_usage_refund(&b, 5, "A", 30, "rf-3", "req-old");
    struct batch_item *use = add(&b, 6, "A", LEDGER_FLOW_CONSUME, -25, "req-new");
    struct batch_item *r5 = add_usage_refund(&b, 8, "A", 6, "rf-5", "req-new");    /* 5 left */
    struct batch_item *wrong = add_usage_refund(&b, 9, "B", 5, "rf-6", "req-old"); /* A's */
    struct batch_item *stale = add_usage_refund(&b, 11, "B", 5, "rf-7", "req-gone");
    stale->from_pending = true; /* waited a day for its usage */
    stale->pending_age_s = 86400;
    batch_index(&b);
    load_accounts(&b, 0);
    set_usage(&b, "A", "req-old", 100, 10); /* took 100, 10 refunded already */
    batch_plan(&b);
    assert_int_equal(early->outcome, BATCH_APPLY); /* its usage came later in the batch */
    assert_int_equal(none->outcome, BATCH_DEFER);  /* its usage may still come */
    assert_int_equal(b.deferred, 2);               /* and B's refund of A's usage */
    assert_int_equal(empty->outcome, BATCH_REJECT);
    assert_int_equal(empty->refusal, BATCH_REFUSED_PROVENANCE);
    assert_non_null(strstr(empty->reason, "names no usage"));
    assert_int_equal(r1->outcome, BATCH_APPLY);
    assert_int_equal(r2->outcome, BATCH_REJECT);
    assert_non_null(strstr(r2->reason, "more than the 30 fen left"));
    assert_int_equal(r3->outcome, BATCH_APPLY);
    assert_int_equal(use->outcome, BATCH_APPLY);
    assert_int_equal(r5->outcome, BATCH_REJECT);
    assert_non_null(strstr(r5->reason, "more than the 5 fen left"));
    assert_int_equal(wrong->outcome, BATCH_DEFER); /* B was never charged req-old */
    assert_int_equal(stale->outcome, BATCH_REJECT);
    assert_non_null(strstr(stale->reason, "not charged within 86400 s"));
    assert_int_equal(batch_find_account(&b, "A")->new_balance_fen, -25 + 20 + 60 + 30);
    assert_int_equal(batch_find_account(&b, "B")->flows, 0);
    /* The consume is planned before the refunds, and flows are written in plan order. */
    assert_int_equal(b.n_planned, 4);
    assert_ptr_equal(&b.items[b.plan_order[0]], use);
    assert_int_equal(use->balance_after_fen, -25);
    assert_ptr_equal(&b.items[b.plan_order[1]], early);
    assert_int_equal(early->balance_after_fen, -5);
    batch_deinit(&b);
}

/* Conflicts are loud: a reused event id with other content, a usage request id charged again. */
static void test_conflicts(void **state)
{
    (void)state;
    struct batch b;
    batch_init(&b, 16, &no_limits);
    struct batch_item *u1 = add(&b, 1, "A", LEDGER_FLOW_CONSUME, -10, "req-1");
    struct batch_item *u1_more = add(&b, 1, "A", LEDGER_FLOW_CONSUME, -99999, "req-1");
    struct batch_item *u1_again = add(&b, 1, "A", LEDGER_FLOW_CONSUME, -10, "req-1");
    struct batch_item *retry = add(&b, 2, "A", LEDGER_FLOW_CONSUME, -10, "req-1");
    struct batch_item *old_retry = add(&b, 3, "A", LEDGER_FLOW_CONSUME, -7, "req-old");
    struct batch_item *reused = add(&b, 4, "A", LEDGER_FLOW_CONSUME, -5, "req-4");
    batch_index(&b);
    load_accounts(&b, 100);
    set_usage(&b, "A", "req-old", 7, 0);
    struct batch_event_key *k = batch_find_key(&b, reused->ev.event_id);
    k->is_flow = true; /* the id is a flow already, of another amount */
    snprintf(k->account_id, sizeof(k->account_id), "A");
    k->type = LEDGER_FLOW_CONSUME;
    k->amount_fen = -1;
    snprintf(k->reference, sizeof(k->reference), "req-4");
    batch_plan(&b);
    assert_int_equal(u1->outcome, BATCH_APPLY);
    assert_int_equal(u1_more->outcome, BATCH_REJECT);
    assert_int_equal(u1_more->refusal, BATCH_REFUSED_CONFLICT);
    assert_true(u1_more->conflict); /* its event id is u1's: dead-lettered, not recorded */
    assert_int_equal(u1_again->outcome, BATCH_DUPLICATE);
    assert_int_equal(retry->outcome, BATCH_REJECT);
    assert_false(retry->conflict); /* a new event id: recorded in ledger_rejections */
    assert_non_null(strstr(retry->reason, "already charged by event"));
    assert_int_equal(old_retry->outcome, BATCH_REJECT);
    assert_non_null(strstr(old_retry->reason, "000000000777"));
    assert_int_equal(reused->outcome, BATCH_REJECT);
    assert_true(reused->conflict);
    assert_non_null(strstr(reused->reason, "reused with other content"));
    assert_int_equal(b.refused[BATCH_REFUSED_CONFLICT], 4);
    assert_int_equal(batch_find_account(&b, "A")->new_balance_fen, 90);
    batch_deinit(&b);
}

/* Above its ceiling an event is refused, at the ceiling it applies; both signs of refunds. */
static void test_ceilings(void **state)
{
    (void)state;
    const struct ledger_limits limits = {1000, 100, 500, 86400};
    struct batch b;
    batch_init(&b, 16, &limits);
    struct batch_item *rc = add_recharge(&b, 1, "A", 1001, "TUBIG");
    struct batch_item *rc_ok = add_recharge(&b, 2, "A", 1000, "TUEDGE");
    struct batch_item *use = add(&b, 3, "A", LEDGER_FLOW_CONSUME, -101, "req-1");
    struct batch_item *use_min = add(&b, 4, "A", LEDGER_FLOW_CONSUME, INT64_MIN, "req-2");
    struct batch_item *use_ok = add(&b, 5, "A", LEDGER_FLOW_CONSUME, -100, "req-3");
    struct batch_item *payout = add(&b, 6, "A", LEDGER_FLOW_REFUND, -501, "rf-1");
    struct batch_item *payout_ok = add(&b, 7, "A", LEDGER_FLOW_REFUND, -500, "rf-2");
    batch_index(&b);
    load_accounts(&b, 0);
    set_order(&b, "TUBIG", BATCH_ORDER_PROCESSING, "A", "");
    set_decision(&b, "TUBIG", 1001);
    set_order(&b, "TUEDGE", BATCH_ORDER_PROCESSING, "A", "");
    set_decision(&b, "TUEDGE", 1000);
    batch_plan(&b);
    assert_int_equal(rc->outcome, BATCH_REJECT);
    assert_int_equal(rc->refusal, BATCH_REFUSED_CEILING);
    assert_non_null(strstr(rc->reason, "above the ceiling of 1000 fen"));
    assert_int_equal(rc_ok->outcome, BATCH_APPLY);
    assert_int_equal(use->outcome, BATCH_REJECT);
    assert_int_equal(use_min->outcome, BATCH_REJECT);
    assert_int_equal(use_ok->outcome, BATCH_APPLY);
    assert_int_equal(payout->outcome, BATCH_REJECT);
    assert_int_equal(payout_ok->outcome, BATCH_APPLY);
    assert_int_equal(b.refused[BATCH_REFUSED_CEILING], 4);
    assert_int_equal(batch_find_account(&b, "A")->new_balance_fen, 1000 - 100 - 500);
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
        cmocka_unit_test(test_recharge_provenance),
        cmocka_unit_test(test_usage_refund_capped),
        cmocka_unit_test(test_conflicts),
        cmocka_unit_test(test_ceilings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
