/* Unit tests of the ledger's decode.c: which input events are applied and why others go to DLQ. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ledger.h"
#include "topup/kafka.h"
#include "topup/v1/events.pb-c.h"

#define EVENT_ID "0190a5b4-7c3e-7000-8000-0000000000a1"
#define ACCOUNT  "acct-42"

struct packed {
    uint8_t *buf;
    size_t len;
};

static void envelope(Topup__V1__Envelope *e)
{
    topup__v1__envelope__init(e);
    e->event_id = EVENT_ID;
    e->occurred_at_ms = 1700000000123;
    e->producer = "test";
    e->schema_version = 1;
    e->account_id = ACCOUNT;
}

static struct packed pack_usage(const Topup__V1__UsageRecorded *m)
{
    struct packed p = {.len = topup__v1__usage_recorded__get_packed_size(m)};
    p.buf = malloc(p.len + 1);
    topup__v1__usage_recorded__pack(m, p.buf);
    return p;
}

static struct packed pack_refund(const Topup__V1__RefundIssued *m)
{
    struct packed p = {.len = topup__v1__refund_issued__get_packed_size(m)};
    p.buf = malloc(p.len + 1);
    topup__v1__refund_issued__pack(m, p.buf);
    return p;
}

static struct packed pack_matched(const Topup__V1__PaymentMatched *m)
{
    struct packed p = {.len = topup__v1__payment_matched__get_packed_size(m)};
    p.buf = malloc(p.len + 1);
    topup__v1__payment_matched__pack(m, p.buf);
    return p;
}

/* Decodes p from topic with key ACCOUNT; frees p. Returns the status, reason in err. */
static enum tp_status run(const char *topic, struct packed p, struct ledger_event *ev,
                          struct tp_error *err)
{
    enum tp_status st = decode_message(topic, ACCOUNT, strlen(ACCOUNT), p.buf, p.len, ev, err);
    free(p.buf);
    return st;
}

static void expect_invalid(const char *topic, struct packed p, const char *reason_part)
{
    struct ledger_event ev;
    struct tp_error err = {0};
    enum tp_status st = run(topic, p, &ev, &err);
    if (st != TP_INVALID) {
        fail_msg("expected invalid (%s), got %d", reason_part, (int)st);
    }
    if (strstr(err.msg, reason_part) == NULL) {
        fail_msg("reason \"%s\" does not mention \"%s\"", err.msg, reason_part);
    }
}

static Topup__V1__UsageRecorded usage(Topup__V1__Envelope *e, int64_t amount)
{
    Topup__V1__UsageRecorded m;
    topup__v1__usage_recorded__init(&m);
    envelope(e);
    m.envelope = e;
    m.request_id = "req-1";
    m.amount_fen = amount;
    m.model = "m";
    m.units = 10;
    return m;
}

static Topup__V1__RefundIssued refund(Topup__V1__Envelope *e, int64_t amount,
                                      Topup__V1__RefundKind kind)
{
    Topup__V1__RefundIssued m;
    topup__v1__refund_issued__init(&m);
    envelope(e);
    m.envelope = e;
    m.refund_id = "rf-1";
    m.amount_fen = amount;
    m.kind = kind;
    return m;
}

static Topup__V1__PaymentMatched matched(Topup__V1__Envelope *e, int64_t credited)
{
    Topup__V1__PaymentMatched m;
    topup__v1__payment_matched__init(&m);
    envelope(e);
    m.envelope = e;
    m.order_code = "TU7K3M9Q2X";
    m.credited_fen = credited;
    m.order_amount_fen = 10000;
    m.amount_mismatch = credited != 10000;
    m.receiving_account = "6222000000000001";
    m.bank_txn_id = "CMB-2026-0001";
    return m;
}

static void test_valid_events(void **state)
{
    (void)state;
    Topup__V1__Envelope e;
    struct ledger_event ev;
    struct tp_error err = {0};

    Topup__V1__UsageRecorded u = usage(&e, -125);
    assert_int_equal(run(TOPIC_USAGE_RECORDED, pack_usage(&u), &ev, &err), TP_OK);
    assert_int_equal(ev.type, LEDGER_FLOW_CONSUME);
    assert_int_equal(ev.amount_fen, -125);
    assert_string_equal(ev.reference, "req-1");
    assert_string_equal(ev.event_id, EVENT_ID);
    assert_string_equal(ev.account_id, ACCOUNT);
    assert_int_equal(ev.occurred_at_ms, 1700000000123);

    u = usage(&e, INT64_MIN); /* extreme but well-formed; overflow is judged against the balance */
    assert_int_equal(run(TOPIC_USAGE_RECORDED, pack_usage(&u), &ev, &err), TP_OK);
    assert_true(ev.amount_fen == INT64_MIN);

    Topup__V1__RefundIssued r = refund(&e, 500, TOPUP__V1__REFUND_KIND__REFUND_KIND_USAGE);
    assert_int_equal(run(TOPIC_REFUND_ISSUED, pack_refund(&r), &ev, &err), TP_OK);
    assert_int_equal(ev.type, LEDGER_FLOW_REFUND);
    assert_int_equal(ev.amount_fen, 500);
    assert_string_equal(ev.reference, "rf-1");
    assert_true(ev.usage_refund);
    assert_string_equal(ev.refund_of, ""); /* names no usage: refused by the plan, recorded */
    r.original_reference = "req-1";
    assert_int_equal(run(TOPIC_REFUND_ISSUED, pack_refund(&r), &ev, &err), TP_OK);
    assert_string_equal(ev.refund_of, "req-1");

    r = refund(&e, -700, TOPUP__V1__REFUND_KIND__REFUND_KIND_BANK_PAYOUT);
    assert_int_equal(run(TOPIC_REFUND_ISSUED, pack_refund(&r), &ev, &err), TP_OK);
    assert_int_equal(ev.amount_fen, -700);

    Topup__V1__PaymentMatched m = matched(&e, 9900);
    assert_int_equal(run(TOPIC_PAYMENT_MATCHED, pack_matched(&m), &ev, &err), TP_OK);
    assert_int_equal(ev.type, LEDGER_FLOW_RECHARGE);
    assert_int_equal(ev.amount_fen, 9900);
    assert_true(ev.amount_mismatch);
    assert_string_equal(ev.reference, "TU7K3M9Q2X");
    assert_string_equal(ev.bank_account, "6222000000000001");
    assert_string_equal(ev.bank_txn_id, "CMB-2026-0001");
}

/* The bank record a PaymentMatched names is required, bounded and text. */
static void test_matched_bank_record(void **state)
{
    (void)state;
    Topup__V1__Envelope e;
    struct ledger_event ev;
    struct tp_error err = {0};
    Topup__V1__PaymentMatched m = matched(&e, 100);
    m.bank_txn_id = "";
    assert_int_equal(run(TOPIC_PAYMENT_MATCHED, pack_matched(&m), &ev, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "bank_txn_id missing"));
    m = matched(&e, 100);
    m.receiving_account = NULL;
    assert_int_equal(run(TOPIC_PAYMENT_MATCHED, pack_matched(&m), &ev, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "receiving_account missing"));
    char long_id[LEDGER_TXN_ID_MAX + 2];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    m = matched(&e, 100);
    m.bank_txn_id = long_id;
    assert_int_equal(run(TOPIC_PAYMENT_MATCHED, pack_matched(&m), &ev, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "longer than"));
    m = matched(&e, 100);
    m.bank_txn_id = "bad\x01id";
    assert_int_equal(run(TOPIC_PAYMENT_MATCHED, pack_matched(&m), &ev, &err), TP_INVALID);
    m.bank_txn_id = "bad\xff";
    assert_int_equal(run(TOPIC_PAYMENT_MATCHED, pack_matched(&m), &ev, &err), TP_INVALID);
    m.bank_txn_id = "流水号-001";
    assert_int_equal(run(TOPIC_PAYMENT_MATCHED, pack_matched(&m), &ev, &err), TP_OK);
    assert_string_equal(ev.bank_txn_id, "流水号-001");
}

static void test_undecodable_and_unknown_topic(void **state)
{
    (void)state;
    static const uint8_t garbage[] = {0x0a, 0x10, 0x01}; /* field 1: 16 bytes promised, 1 given */
    const char *topics[] = {TOPIC_USAGE_RECORDED, TOPIC_REFUND_ISSUED, TOPIC_PAYMENT_MATCHED};
    for (size_t i = 0; i < 3; i++) {
        struct packed p = {.buf = malloc(sizeof(garbage)), .len = sizeof(garbage)};
        memcpy(p.buf, garbage, sizeof(garbage));
        expect_invalid(topics[i], p, "undecodable");
        /* An empty value decodes to an empty message: no envelope. */
        struct packed empty = {.buf = malloc(1), .len = 0};
        expect_invalid(topics[i], empty, "envelope missing");
    }
    Topup__V1__Envelope e;
    Topup__V1__UsageRecorded u = usage(&e, -1);
    expect_invalid("topup.requested", pack_usage(&u), "not a ledger input");

    struct ledger_event ev;
    struct tp_error err = {0};
    assert_int_equal(
        decode_message(TOPIC_USAGE_RECORDED, ACCOUNT, strlen(ACCOUNT), NULL, 0, &ev, &err),
        TP_INVALID);
}

static void test_bad_envelope(void **state)
{
    (void)state;
    Topup__V1__Envelope e;
    Topup__V1__UsageRecorded u = usage(&e, -1);
    e.event_id = "not-a-uuid";
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "event_id");
    u = usage(&e, -1);
    e.event_id = "";
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "event_id");
    u = usage(&e, -1);
    e.schema_version = 2;
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "schema_version");
    u = usage(&e, -1);
    e.occurred_at_ms = 0;
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "occurred_at");
    u = usage(&e, -1);
    e.occurred_at_ms = INT64_MAX; /* would overflow timestamptz and poison the batch */
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "out of range");
    u = usage(&e, -1);
    e.occurred_at_ms = 253402300799999LL; /* the last millisecond of 9999 is still a time */
    struct ledger_event ev;
    struct tp_error err = {0};
    assert_int_equal(run(TOPIC_USAGE_RECORDED, pack_usage(&u), &ev, &err), TP_OK);
    u = usage(&e, -1);
    e.account_id = "";
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "account_id");
    u = usage(&e, -1);
    e.account_id = "acct with space";
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "account_id");
}

static void test_key_must_be_account(void **state)
{
    (void)state;
    Topup__V1__Envelope e;
    Topup__V1__UsageRecorded u = usage(&e, -1);
    struct packed p = pack_usage(&u);
    struct ledger_event ev;
    struct tp_error err = {0};
    assert_int_equal(decode_message(TOPIC_USAGE_RECORDED, "acct-4", 6, p.buf, p.len, &ev, &err),
                     TP_INVALID);
    assert_non_null(strstr(err.msg, "key"));
    assert_int_equal(decode_message(TOPIC_USAGE_RECORDED, "acct-420", 8, p.buf, p.len, &ev, &err),
                     TP_INVALID);
    assert_int_equal(decode_message(TOPIC_USAGE_RECORDED, NULL, 0, p.buf, p.len, &ev, &err),
                     TP_INVALID);
    assert_int_equal(
        decode_message(TOPIC_USAGE_RECORDED, ACCOUNT, strlen(ACCOUNT), p.buf, p.len, &ev, &err),
        TP_OK);
    free(p.buf);
}

static void test_amount_signs(void **state)
{
    (void)state;
    Topup__V1__Envelope e;
    Topup__V1__UsageRecorded u = usage(&e, 0);
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "not negative");
    u = usage(&e, 5);
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "not negative");

    Topup__V1__RefundIssued r = refund(&e, 0, TOPUP__V1__REFUND_KIND__REFUND_KIND_USAGE);
    expect_invalid(TOPIC_REFUND_ISSUED, pack_refund(&r), "is 0");
    r = refund(&e, -5, TOPUP__V1__REFUND_KIND__REFUND_KIND_USAGE);
    expect_invalid(TOPIC_REFUND_ISSUED, pack_refund(&r), "not positive");
    r = refund(&e, 5, TOPUP__V1__REFUND_KIND__REFUND_KIND_BANK_PAYOUT);
    expect_invalid(TOPIC_REFUND_ISSUED, pack_refund(&r), "not negative");
    r = refund(&e, 5, TOPUP__V1__REFUND_KIND__REFUND_KIND_UNSPECIFIED);
    expect_invalid(TOPIC_REFUND_ISSUED, pack_refund(&r), "kind");
    r = refund(&e, 5, (Topup__V1__RefundKind)7);
    expect_invalid(TOPIC_REFUND_ISSUED, pack_refund(&r), "kind");

    Topup__V1__PaymentMatched m = matched(&e, 0);
    expect_invalid(TOPIC_PAYMENT_MATCHED, pack_matched(&m), "not positive");
    m = matched(&e, -100);
    expect_invalid(TOPIC_PAYMENT_MATCHED, pack_matched(&m), "not positive");
}

static void test_references(void **state)
{
    (void)state;
    Topup__V1__Envelope e;
    Topup__V1__UsageRecorded u = usage(&e, -1);
    u.request_id = "";
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "request_id missing");
    Topup__V1__RefundIssued r = refund(&e, 5, TOPUP__V1__REFUND_KIND__REFUND_KIND_USAGE);
    r.refund_id = "";
    expect_invalid(TOPIC_REFUND_ISSUED, pack_refund(&r), "refund_id missing");
    Topup__V1__PaymentMatched m = matched(&e, 10000);
    m.order_code = "";
    expect_invalid(TOPIC_PAYMENT_MATCHED, pack_matched(&m), "order_code missing");

    char long_ref[LEDGER_REFERENCE_MAX + 2];
    memset(long_ref, 'r', sizeof(long_ref) - 1);
    long_ref[sizeof(long_ref) - 1] = '\0';
    u = usage(&e, -1);
    u.request_id = long_ref;
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "longer than");
    long_ref[LEDGER_REFERENCE_MAX] = '\0'; /* exactly the maximum is fine */
    u = usage(&e, -1);
    u.request_id = long_ref;
    struct ledger_event ev;
    struct tp_error err = {0};
    assert_int_equal(run(TOPIC_USAGE_RECORDED, pack_usage(&u), &ev, &err), TP_OK);
    assert_int_equal(strlen(ev.reference), LEDGER_REFERENCE_MAX);

    u = usage(&e, -1);
    u.request_id = "req 1";
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "printable");
    u = usage(&e, -1);
    u.request_id = "req-\xe4\xb8\x80"; /* UTF-8 is fine in general, not in an id */
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "printable");
    u = usage(&e, -1);
    u.request_id = "req-\xff"; /* invalid UTF-8 must never reach PostgreSQL */
    expect_invalid(TOPIC_USAGE_RECORDED, pack_usage(&u), "printable");
}

static void test_flow_type_names(void **state)
{
    (void)state;
    assert_string_equal(ledger_flow_type_name(LEDGER_FLOW_RECHARGE), "recharge");
    assert_string_equal(ledger_flow_type_name(LEDGER_FLOW_CONSUME), "consume");
    assert_string_equal(ledger_flow_type_name(LEDGER_FLOW_REFUND), "refund");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_events),
        cmocka_unit_test(test_matched_bank_record),
        cmocka_unit_test(test_undecodable_and_unknown_topic),
        cmocka_unit_test(test_bad_envelope),
        cmocka_unit_test(test_key_must_be_account),
        cmocka_unit_test(test_amount_signs),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_flow_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
