/* Unit tests of event.c: the provenance digest of a bank record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "topup/event.h"

static Topup__V1__BankStatementRecord sample_record(void)
{
    Topup__V1__BankStatementRecord r = TOPUP__V1__BANK_STATEMENT_RECORD__INIT;
    r.receiving_account = "121909510710001";
    r.bank_txn_id = "2026120600001";
    r.value_date = "2026-12-06";
    r.amount_fen = 10000;
    r.currency = "CNY";
    r.direction = TOPUP__V1__DIRECTION__DIRECTION_CREDIT;
    r.counterparty_name = "张三";
    r.remittance_info = "TU7K3M9Q2X";
    r.import_sha256 = "ab";
    return r;
}

/* Two publications of one record differ only in their envelopes: same digest. */
static void test_digest_ignores_envelope(void **state)
{
    (void)state;
    Topup__V1__BankStatementRecord a = sample_record(), b = sample_record();
    struct event_envelope_buf ea, eb;
    a.envelope = event_envelope_init(&ea, "statement-import", "");
    b.envelope = event_envelope_init(&eb, "statement-import", "");
    assert_string_not_equal(ea.event_id, eb.event_id);
    uint8_t da[EVENT_DIGEST_LEN], db[EVENT_DIGEST_LEN], dn[EVENT_DIGEST_LEN];
    event_bsr_digest(&a, da);
    event_bsr_digest(&b, db);
    Topup__V1__BankStatementRecord n = sample_record();
    event_bsr_digest(&n, dn);
    assert_memory_equal(da, db, EVENT_DIGEST_LEN);
    assert_memory_equal(da, dn, EVENT_DIGEST_LEN);
    /* The caller's record keeps its envelope. */
    assert_ptr_equal(a.envelope, &ea.env);
}

/* Any field a forger could change changes the digest, amount and account above all. */
static void test_digest_covers_content(void **state)
{
    (void)state;
    Topup__V1__BankStatementRecord r = sample_record();
    uint8_t base[EVENT_DIGEST_LEN], d[EVENT_DIGEST_LEN];
    event_bsr_digest(&r, base);
    r.amount_fen = 10001;
    event_bsr_digest(&r, d);
    assert_memory_not_equal(base, d, EVENT_DIGEST_LEN);
    r = sample_record();
    r.receiving_account = "121909510710002";
    event_bsr_digest(&r, d);
    assert_memory_not_equal(base, d, EVENT_DIGEST_LEN);
    r = sample_record();
    r.remittance_info = "TU7K3M9Q2Y";
    event_bsr_digest(&r, d);
    assert_memory_not_equal(base, d, EVENT_DIGEST_LEN);
}

/* A decoded event digests like the record it was packed from, and an unknown field a sender
 * adds is covered too. */
static void test_digest_after_decode(void **state)
{
    (void)state;
    Topup__V1__BankStatementRecord r = sample_record();
    struct event_envelope_buf e;
    r.envelope = event_envelope_init(&e, "statement-import", "");
    uint8_t buf[1024];
    size_t n = topup__v1__bank_statement_record__pack(&r, buf);
    uint8_t want[EVENT_DIGEST_LEN], got[EVENT_DIGEST_LEN];
    event_bsr_digest(&r, want);
    Topup__V1__BankStatementRecord *dec = topup__v1__bank_statement_record__unpack(NULL, n, buf);
    assert_non_null(dec);
    event_bsr_digest(dec, got);
    assert_memory_equal(want, got, EVENT_DIGEST_LEN);
    topup__v1__bank_statement_record__free_unpacked(dec, NULL);

    /* Field 99, varint 1: unknown to topup.v1, kept by protobuf-c and packed again. */
    buf[n] = (99 << 3) & 0xff;
    buf[n] |= 0x80;
    buf[n + 1] = 99 >> 4;
    buf[n + 2] = 1;
    dec = topup__v1__bank_statement_record__unpack(NULL, n + 3, buf);
    assert_non_null(dec);
    assert_int_equal(dec->base.n_unknown_fields, 1);
    event_bsr_digest(dec, got);
    assert_memory_not_equal(want, got, EVENT_DIGEST_LEN);
    topup__v1__bank_statement_record__free_unpacked(dec, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_ignores_envelope),
        cmocka_unit_test(test_digest_covers_content),
        cmocka_unit_test(test_digest_after_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
