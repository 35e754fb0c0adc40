/* Unit tests: a record as the published protobuf message and as a dry-run JSON line. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "output_json.h"
#include "publish.h"
#include "record.h"
#include "topup/event.h"
#include "topup/ids.h"
#include "topup/v1/events.pb-c.h"

static void sample_record(struct record *r)
{
    record_reset(r);
    strcpy(r->receiving_account, "6222021234567893167");
    strcpy(r->bank_txn_id, "fp:0123456789abcdef0123456789abcdef:2");
    r->id_is_fingerprint = true;
    strcpy(r->booking_date, "2024-03-01");
    strcpy(r->value_date, "2024-03-02");
    r->amount_fen = -123456;
    strcpy(r->currency, "CNY");
    r->reversal = true;
    strcpy(r->counterparty_name, "北京某某科技有限公司");
    strcpy(r->counterparty_account, "6222020000000001");
    strcpy(r->counterparty_bank, "中国银行");
    strcpy(r->remittance, "TU7K3M9Q2X \"quoted\"");
    strcpy(r->location, "line 12");
}

static const struct record_meta meta = {
    .source_file = "boc.csv", .format = "csv:boc-personal", .sha256 = "ab12"};

/*
 * The digest recorded before publishing is the one a consumer computes from the published bytes:
 * decode, event_bsr_digest() (what reconciliation checks). Also with fields empty, at their
 * maxima, and non-ASCII.
 */
static void test_digest_is_the_consumers(void **state)
{
    (void)state;
    struct record r;
    for (int variant = 0; variant < 4; variant++) {
        sample_record(&r);
        if (variant == 1) {
            record_reset(&r);
            strcpy(r.receiving_account, "A");
            strcpy(r.bank_txn_id, "B");
            strcpy(r.currency, "EUR");
            r.amount_fen = 1;
        } else if (variant == 2) {
            memset(r.remittance, 'x', RECORD_REMIT_MAX);
            r.remittance[RECORD_REMIT_MAX] = '\0';
            memset(r.counterparty_name, 'n', RECORD_NAME_MAX);
            r.counterparty_name[RECORD_NAME_MAX] = '\0';
            r.amount_fen = INT64_MAX;
        } else if (variant == 3) {
            r.reversal = false;
            r.id_is_fingerprint = false;
            r.amount_fen = INT64_MIN + 1;
        }
        uint8_t buf[PUBLISH_MESSAGE_MAX], ours[EVENT_DIGEST_LEN], theirs[EVENT_DIGEST_LEN];
        size_t n = publish_encode(&r, &meta, buf);
        Topup__V1__BankStatementRecord *m = topup__v1__bank_statement_record__unpack(NULL, n, buf);
        assert_non_null(m);
        event_bsr_digest(m, theirs);
        publish_digest(&r, &meta, ours);
        assert_memory_equal(ours, theirs, EVENT_DIGEST_LEN);
        /* A different record has a different digest. */
        r.amount_fen ^= 2;
        publish_digest(&r, &meta, ours);
        assert_memory_not_equal(ours, theirs, EVENT_DIGEST_LEN);
        topup__v1__bank_statement_record__free_unpacked(m, NULL);
    }
}

static void test_protobuf(void **state)
{
    (void)state;
    struct record r;
    sample_record(&r);
    uint8_t buf[PUBLISH_MESSAGE_MAX];
    size_t n = publish_encode(&r, &meta, buf);
    Topup__V1__BankStatementRecord *m = topup__v1__bank_statement_record__unpack(NULL, n, buf);
    assert_non_null(m);
    assert_true(ids_uuid_valid(m->envelope->event_id));
    assert_string_equal(m->envelope->producer, "statement-import");
    assert_string_equal(m->envelope->account_id, "");
    assert_int_equal(m->envelope->schema_version, 1);
    assert_true(m->envelope->occurred_at_ms > 0);
    assert_string_equal(m->receiving_account, "6222021234567893167");
    assert_string_equal(m->bank_txn_id, "fp:0123456789abcdef0123456789abcdef:2");
    assert_true(m->id_is_fingerprint);
    assert_string_equal(m->booking_date, "2024-03-01");
    assert_string_equal(m->value_date, "2024-03-02");
    assert_int_equal(m->amount_fen, -123456);
    assert_int_equal(m->direction, TOPUP__V1__DIRECTION__DIRECTION_DEBIT);
    assert_true(m->reversal);
    assert_string_equal(m->counterparty_name, "北京某某科技有限公司");
    assert_string_equal(m->remittance_info, "TU7K3M9Q2X \"quoted\"");
    assert_string_equal(m->source_file, "boc.csv");
    assert_string_equal(m->source_location, "line 12");
    assert_string_equal(m->format, "csv:boc-personal");
    assert_string_equal(m->import_sha256, "ab12");
    /* Every publication is a new event: event ids differ, the record's identity does not. */
    uint8_t buf2[PUBLISH_MESSAGE_MAX];
    size_t n2 = publish_encode(&r, &meta, buf2);
    Topup__V1__BankStatementRecord *m2 = topup__v1__bank_statement_record__unpack(NULL, n2, buf2);
    assert_string_not_equal(m->envelope->event_id, m2->envelope->event_id);
    assert_string_equal(m->bank_txn_id, m2->bank_txn_id);
    topup__v1__bank_statement_record__free_unpacked(m, NULL);
    topup__v1__bank_statement_record__free_unpacked(m2, NULL);
}

/* The largest record still fits the message buffer. */
static void test_protobuf_maxima(void **state)
{
    (void)state;
    struct record r;
    sample_record(&r);
    memset(r.counterparty_name, 'n', RECORD_NAME_MAX);
    r.counterparty_name[RECORD_NAME_MAX] = '\0';
    memset(r.remittance, 'r', RECORD_REMIT_MAX);
    r.remittance[RECORD_REMIT_MAX] = '\0';
    memset(r.counterparty_bank, 'b', RECORD_BANK_MAX);
    r.counterparty_bank[RECORD_BANK_MAX] = '\0';
    uint8_t buf[PUBLISH_MESSAGE_MAX];
    size_t n = publish_encode(&r, &meta, buf);
    assert_true(n < PUBLISH_MESSAGE_MAX);
}

static void test_json_line(void **state)
{
    (void)state;
    struct record r;
    sample_record(&r);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct tp_error err;
    assert_int_equal(output_json_record(f, &r, &meta, &err), TP_OK);
    fclose(f);
    assert_int_equal(text[len - 1], '\n');
    assert_null(memchr(text, '\n', len - 1)); /* one line */
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "amount")), "-1234.56");
    assert_int_equal(json_integer_value(json_object_get(o, "amount_fen")), -123456);
    assert_string_equal(json_string_value(json_object_get(o, "direction")), "debit");
    assert_string_equal(json_string_value(json_object_get(o, "remittance_info")),
                        "TU7K3M9Q2X \"quoted\"");
    assert_true(json_is_true(json_object_get(o, "reversal")));
    assert_string_equal(json_string_value(json_object_get(o, "source_location")), "line 12");
    json_decref(o);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protobuf),
        cmocka_unit_test(test_digest_is_the_consumers),
        cmocka_unit_test(test_protobuf_maxima),
        cmocka_unit_test(test_json_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
