/* Unit tests: MT940/MT942 fields, dialects, envelope, several statements, and bad files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parser_mt940.h"
#include "si_test.h"

static void test_61(void **state)
{
    (void)state;
    struct mt940_entry e;
    struct tp_error err;
    static const char a[] = "0709070904CR50990,05NTRFNONREF//0724710333343453";
    assert_int_equal(mt940_parse_61(a, strlen(a), &e, &err), TP_OK);
    assert_string_equal(e.value_date, "2007-09-07");
    assert_string_equal(e.entry_date, "2007-09-04");
    assert_string_equal(e.mark, "C");
    assert_int_equal(e.funds_code, 'R'); /* "CR" is credit with funds code R, not a reversal */
    assert_int_equal(e.amount_fen, 5099005);
    assert_string_equal(e.type, "NTRF");
    assert_string_equal(e.customer_ref, "NONREF");
    assert_string_equal(e.bank_ref, "0724710333343453");
    static const char b[] = "1105240524D9,N192NONREF";
    assert_int_equal(mt940_parse_61(b, strlen(b), &e, &err), TP_OK);
    assert_int_equal(e.amount_fen, 900); /* "9," */
    assert_string_equal(e.mark, "D");
    static const char c[] = "130101D000000000025,00N102EREF\nNL70ABNA0987654321";
    assert_int_equal(mt940_parse_61(c, strlen(c), &e, &err), TP_OK);
    assert_int_equal(e.amount_fen, 2500);
    assert_string_equal(e.entry_date, "");
    assert_string_equal(e.supplementary, "NL70ABNA0987654321");
    static const char d[] = "1710111011DF2402,00S   X";
    assert_int_equal(mt940_parse_61(d, strlen(d), &e, &err), TP_OK);
    assert_string_equal(e.type, "S   ");
    assert_string_equal(e.customer_ref, "X");
    static const char rc[] = "240102RCR20,00NTRFNONREF";
    assert_int_equal(mt940_parse_61(rc, strlen(rc), &e, &err), TP_OK);
    assert_string_equal(e.mark, "RC");
    assert_int_equal(e.funds_code, 'R');
    static const char dot[] = "2401150115C12.34NTRF";
    assert_int_equal(mt940_parse_61(dot, strlen(dot), &e, &err), TP_INVALID);
    assert_string_equal(err.msg, "amount \"12\" has no decimal comma");
    static const char nomark[] = "240115X12,34NTRF";
    assert_int_equal(mt940_parse_61(nomark, strlen(nomark), &e, &err), TP_INVALID);
    assert_string_equal(err.msg, ":61: has no debit/credit mark (C, D, RC, RD) at \"X12,34NTRF\"");
}

/* Entry dates carry no year: the one closest to the value date, across New Year both ways. */
static void test_entry_year(void **state)
{
    (void)state;
    char out[11];
    mt940_entry_year("2023-12-31", 1, 2, out);
    assert_string_equal(out, "2024-01-02");
    mt940_entry_year("2024-01-02", 12, 31, out);
    assert_string_equal(out, "2023-12-31");
    mt940_entry_year("2024-06-15", 6, 14, out);
    assert_string_equal(out, "2024-06-14");
    mt940_entry_year("2025-01-01", 2, 29, out); /* only 2024 has it */
    assert_string_equal(out, "2024-02-29");
}

/* The amount forms of betterplace_amount_formats.sta, one balance at a time. */
static void test_balances(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t fen;
    } cases[] = {
        {"C100318EUR380115,12", 38011512},
        {"C100318EUR380115,1", 38011510},
        {"C100318EUR380115,", 38011500},
        {"C100318EUR0,12", 12},
        {"C100318EUR00,12", 12},
        {"C100318EUR001,12", 112},
        {"D070903EUR1970431,87", -197043187},
    };
    char date[11], ccy[4];
    int64_t fen;
    struct tp_error err;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(
            mt940_parse_balance(cases[i].text, strlen(cases[i].text), date, ccy, &fen, &err),
            TP_OK);
        assert_int_equal(fen, cases[i].fen);
        assert_string_equal(ccy, "EUR");
    }
    assert_string_equal(date, "2007-09-03");
    assert_int_equal(mt940_parse_balance("X100318EUR1,00", 14, date, ccy, &fen, &err), TP_INVALID);
    assert_int_equal(mt940_parse_balance("C100318EUR1.00", 14, date, ccy, &fen, &err), TP_INVALID);
}

static void test_86_dialects(void **state)
{
    (void)state;
    struct record r;
    record_reset(&r);
    static const char german[] =
        "166?00GUTSCHRIFT?100399?20EREF+EndToEndId TFNR 22 004?21 00001?22\n"
        "SVWZ+Verw CTSc-01 BC-PPP TF?23Nr 22 004?30DRESDEFF508?31DE1450880\n"
        "0500194785000?32KARL?33        KAUFMANN?70Empfaenger Marta Metzge\n"
        "r";
    mt940_parse_86(german, strlen(german), &r);
    assert_string_equal(r.counterparty_name, "KARL        KAUFMANN");
    assert_string_equal(r.counterparty_account, "DE14508800500194785000");
    assert_string_equal(r.counterparty_bank, "DRESDEFF508");
    assert_string_equal(r.remittance, "Verw CTSc-01 BC-PPP TFNr 22 004");
    record_reset(&r);
    static const char dutch[] = "/TRTP/SEPA OVERBOEKING/IBAN/NL46ABNA0499998748/BIC/ABNANL2A/NAME/"
                                "J DOE/REMI/TU7K3M9Q2X/EREF/NOTPROVIDED";
    mt940_parse_86(dutch, strlen(dutch), &r);
    assert_string_equal(r.counterparty_name, "J DOE");
    assert_string_equal(r.counterparty_account, "NL46ABNA0499998748");
    assert_string_equal(r.counterparty_bank, "ABNANL2A");
    assert_string_equal(r.remittance, "TU7K3M9Q2X");
    record_reset(&r);
    static const char cntp[] = "/CNTP/NL12RABO0123456789/RABONL2U/J JANSEN/AMSTERDAM/"
                               "/REMI/USTD//Factuur 42/";
    mt940_parse_86(cntp, strlen(cntp), &r);
    assert_string_equal(r.counterparty_account, "NL12RABO0123456789");
    assert_string_equal(r.counterparty_bank, "RABONL2U");
    assert_string_equal(r.counterparty_name, "J JANSEN");
    assert_string_equal(r.remittance, "Factuur 42");
    record_reset(&r);
    static const char free_text[] = "0111111111 Hr S Marechal\nROSMALEN Hr S Marechal ROSMALEN";
    mt940_parse_86(free_text, strlen(free_text), &r);
    assert_string_equal(r.remittance, "0111111111 Hr S Marechal ROSMALEN Hr S Marechal ROSMALEN");
    assert_string_equal(r.counterparty_name, "");
}

/* FIN envelope, two messages, German and Dutch :86:, "672,", a reversal (RD is money in),
 * supplementary details, entry dates across New Year in both directions. */
static void test_fin_envelope(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("mt940/fin-envelope.sta"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.format, "mt940");
    assert_int_equal(run.nstatements, 2);
    assert_int_equal(run.nrecords, 4);
    const struct record *r = &run.records[0];
    assert_string_equal(r->receiving_account, "DE89370400440532013000");
    assert_string_equal(r->bank_txn_id, "BANKREF0001");
    assert_int_equal(r->amount_fen, 67200);
    assert_string_equal(r->value_date, "2023-12-31");
    assert_string_equal(r->booking_date, "2023-12-29");
    assert_string_equal(r->counterparty_name, "MAX MUSTERMANN");
    assert_string_equal(r->counterparty_account, "DE02100400000123456789");
    assert_string_equal(r->remittance, "Invoice TU7K3M9Q2X");
    assert_string_equal(r->location, "line 6");
    r = &run.records[1];
    assert_int_equal(r->amount_fen, -10050);
    assert_string_equal(r->booking_date, "2024-01-02"); /* value 2023-12-31, entry 0102 */
    assert_string_equal(r->counterparty_name, "ACME BV");
    assert_string_equal(r->remittance, "Order 42 paid");
    r = &run.records[2];
    assert_int_equal(r->amount_fen, 2000);
    assert_true(r->reversal);
    assert_string_equal(r->booking_date, "2023-12-31"); /* value 2024-01-02, entry 1231 */
    assert_string_equal(r->remittance, "Rueckbuchung Lastschrift TU2345678A");
    r = &run.records[3];
    assert_true(r->id_is_fingerprint);
    assert_int_equal(r->amount_fen, 500);
    si_run_free(&run);
}

static void test_mt942(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("mt940/mt942.sta"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.format, "mt942");
    assert_int_equal(run.nrecords, 2);
    assert_string_equal(run.records[0].currency, "PLN");
    assert_string_equal(run.records[0].remittance, "PRZELEW TU7K3M9Q2X");
    assert_int_equal(run.records[1].amount_fen, -2500);
    si_run_free(&run);
}

struct bad_case {
    const char *name;
    const char *text;
    const char *problem;
};

static void test_malformed(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"no-closing.sta",
         ":20:A\n:25:DE89370400440532013000\n:28C:1\n:60F:C240101EUR10,00\n"
         ":61:240102C5,00NTRFNONREF\n:86:x\n",
         "no-closing.sta:6: statement :20:A :28C:1 (line 1) has no closing balance"},
        {"mismatch.sta",
         ":20:A\n:25:DE89370400440532013000\n:60F:C240101EUR10,00\n"
         ":61:240102C5,00NTRFNONREF\n:62F:C240102EUR16,00\n",
         "mismatch.sta:5: statement :20:A (line 1): closing balance 16.00 EUR is not the opening "
         "balance 10.00 plus the 1 entries 5.00 (= 15.00): a gap of 1.00"},
        {"dot.sta",
         ":20:A\n:25:DE89370400440532013000\n:60F:C240101EUR10,00\n"
         ":61:240102C5.00NTRFNONREF\n:62F:C240102EUR10,00\n",
         "dot.sta:4: amount \"5\" has no decimal comma"},
        {"latin1.sta",
         ":20:A\n:25:DE89370400440532013000\n:60F:C240101EUR10,00\n"
         ":61:240102C5,00NTRFNONREF\n:86:Caf\xE9\n:62F:C240102EUR15,00\n",
         "latin1.sta:5: not UTF-8 text (byte 0xE9); name the encoding with --encoding"},
        {"sums.sta",
         ":20:B\n:25:PL61109010140000071219812874\n:34F:PLN0,\n:13D:2401151200+0100\n"
         ":61:2401150115C100,00NTRFNONREF\n:90C:2PLN100,00\n",
         "sums.sta:6: statement :20:B (line 1): credit total says 2 entries of 100.00, the entries "
         "are 1 of 100.00"},
        {"nocurrency.sta",
         ":20:A\n:25:DE89370400440532013000\n:61:240102C5,00NTRFNONREF\n:60F:C240101EUR10,00\n"
         ":62F:C240102EUR15,00\n",
         "nocurrency.sta:3: :61: before the opening balance (:60F:) that gives the currency"},
        {"noaccount.sta",
         ":20:A\n:60F:C240101EUR10,00\n:61:240102C5,00NTRFNONREF\n:62F:C240102EUR15,00\n",
         "noaccount.sta:3: statement :20:A (line 1) has no usable account (:25:)"},
        {"twice.sta",
         ":20:A\n:25:DE89370400440532013000\n:60F:C240101EUR10,00\n:62F:C240101EUR10,00\n"
         ":20:A\n:25:DE89370400440532013000\n:60F:C240101EUR10,00\n:62F:C240101EUR10,00\n",
         "twice.sta:5: statement :20:A (line 5) appears twice in the file (first at line 1)"},
        {"no20.sta", ":60F:C240101EUR10,00\n:25:DE89370400440532013000\n:62F:C240101EUR10,00\n",
         "no20.sta:1: :60F: before the :20: that opens a statement"},
        {"expected.sta",
         ":20:B\n:25:PL61109010140000071219812874\n:34F:PLN0,\n:13D:2401151200+0100\n"
         ":61:2401150115EC100,00NTRFNONREF\n",
         "expected.sta:5: :61: is an expected credit (EC), not a booked entry; import the "
         "statement that books it"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct si_run run;
        struct si_opts o = {.format = "mt940"};
        si_run_mem(&run, cases[i].name, cases[i].text, strlen(cases[i].text), &o);
        if (run.nproblems != 1 || strcmp(run.problems[0], cases[i].problem) != 0) {
            si_dump(&run);
            fail_msg("%s: expected exactly: %s", cases[i].name, cases[i].problem);
        }
        si_run_free(&run);
    }
}

/* The same Latin-1 file reads with the encoding named. */
static void test_named_encoding(void **state)
{
    (void)state;
    static const char text[] = ":20:A\n:25:DE89370400440532013000\n:60F:C240101EUR10,00\n"
                               ":61:240102C5,00NTRFNONREF\n:86:Caf\xE9 TU7K3M9Q2X\n"
                               ":62F:C240102EUR15,00\n";
    struct si_run run;
    struct si_opts o = {.format = "mt940", .encoding = "ISO-8859-1"};
    si_run_mem(&run, "latin1.sta", text, strlen(text), &o);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.records[0].remittance, "Café TU7K3M9Q2X");
    si_run_free(&run);
}

/* --account must agree with :25:. */
static void test_account_mismatch(void **state)
{
    (void)state;
    struct si_run run;
    struct si_opts o = {.account = "DE00000000000000000000"};
    si_run_file(&run, si_fixture("mt940/mt942.sta"), &o);
    si_dump(&run);
    assert_int_equal(run.nproblems, 1);
    assert_string_equal(run.problems[0],
                        "mt942.sta:2: --account DE00000000000000000000 does not match the file's "
                        "account \"PL61109010140000071219812874\"");
    si_run_free(&run);
}

/*
 * A Danish bank's MT940: "//1234" and "//OVERFOERSEL" are on several different payments. Those
 * ids cannot identify one payment: every record carrying them is fingerprinted (none merged,
 * none dropped), the unique ones keep the bank's id.
 */
static void test_danish_shared_refs(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("mt940/danish-shared-refs.sta"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 5);
    assert_int_equal(run.nshared, 2);
    assert_string_equal(run.shared[0].bank_txn_id, "1234");
    assert_int_equal(run.shared[0].first_line, 5);
    assert_int_equal(run.shared[0].second_line, 8);
    assert_string_equal(run.shared[1].bank_txn_id, "OVERFOERSEL");
    for (int i = 0; i < 4; i++) {
        assert_true(run.records[i].id_is_fingerprint);
        assert_int_equal(strncmp(run.records[i].bank_txn_id, "fp:", 3), 0);
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(run.records[i].bank_txn_id, run.records[j].bank_txn_id);
        }
    }
    /* Two identical transfers of 800.00: the occurrence counter keeps them apart. */
    size_t n = strlen(run.records[2].bank_txn_id);
    assert_string_equal(run.records[2].bank_txn_id + n - 2, ":1");
    assert_string_equal(run.records[3].bank_txn_id + n - 2, ":2");
    assert_int_equal(strncmp(run.records[2].bank_txn_id, run.records[3].bank_txn_id, n - 1), 0);
    assert_false(run.records[4].id_is_fingerprint);
    assert_string_equal(run.records[4].bank_txn_id, "GEBYR0301");
    char ids[5][RECORD_ID_MAX + 1];
    for (int i = 0; i < 5; i++) {
        snprintf(ids[i], sizeof ids[i], "%s", run.records[i].bank_txn_id);
    }
    si_run_free(&run);

    /*
     * The next file repeats statement 59 and adds 60, where "1234" is on one payment only. The
     * ids known to repeat (from the import above) keep it fingerprinted: statement 59 gets the
     * same ids again (an overlap changes nothing) and the new payment is not taken for one of
     * the earlier ones.
     */
    static const char *const known[][2] = {{"DK5030004070910811", "1234"},
                                           {"DK5030004070910811", "OVERFOERSEL"}};
    struct si_opts o = {.known_shared = known, .known_shared_n = 2};
    si_run_file(&run, si_fixture("mt940/danish-overlap.sta"), &o);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 6);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(run.records[i].bank_txn_id, ids[i]);
    }
    assert_true(run.records[5].id_is_fingerprint);
    for (int i = 0; i < 5; i++) {
        assert_string_not_equal(run.records[5].bank_txn_id, ids[i]);
    }
    si_run_free(&run);
}

/* Rabobank's structured export splits one :86: text over several :86: fields: joined. */
static void test_rabobank_split_86(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("mt940/rabobank-split-86.sta"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 2);
    assert_string_equal(run.records[0].counterparty_name, "B. BAKKER");
    assert_string_equal(run.records[0].counterparty_account, "NL44RABO0123456789");
    assert_string_equal(run.records[0].remittance, "TU7K3M9Q2X TOPUP");
    assert_string_equal(run.records[1].counterparty_name, "ENERGIE BV");
    assert_string_equal(run.records[1].remittance, "FACTUUR 2024-03");
    si_run_free(&run);
}

/* ING Poland: ":25:/PL..", ":86:034" and then the text with "~" subfields, ~38 the IBAN. */
static void test_ing_poland(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("mt940/ing-pl-tilde.sta"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 2);
    const struct record *r = &run.records[0];
    assert_string_equal(r->receiving_account, "PL27105010381000002201112233");
    assert_int_equal(r->amount_fen, 120000);
    assert_string_equal(r->counterparty_name, "JAN KOWALSKI");
    assert_string_equal(r->counterparty_account, "PL61109010140000071219812874");
    assert_string_equal(r->counterparty_bank, "10901014");
    assert_string_equal(r->remittance, "TU7K3M9Q2X DOLADOWANIE KONTA");
    r = &run.records[1];
    assert_int_equal(r->amount_fen, -4599);
    assert_string_equal(r->remittance, "BIEDRONKA 4321WARSZAWA");
    assert_string_equal(r->counterparty_name, "");
    si_run_free(&run);
}

/* ABN AMRO's downloads: no :20:, each statement opens with :25: and ends with "-". */
static void test_abnamro_without_20(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("mt940/abnamro-without-20.sta"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nstatements, 2);
    assert_int_equal(run.nrecords, 2);
    assert_string_equal(run.records[0].receiving_account, "417164300");
    assert_string_equal(run.records[0].counterparty_name, "S. DE JONG");
    assert_string_equal(run.records[0].counterparty_account, "NL37ABNA0123456789");
    assert_string_equal(run.records[0].remittance, "TU7K3M9Q2X");
    assert_int_equal(run.records[1].amount_fen, -1250);
    assert_string_equal(run.records[1].counterparty_name, "ZIGGO BV");
    assert_string_equal(run.records[1].remittance, "FACTUUR 0324");
    /* Balances chain over the two statements; the first one's span opens the file. */
    assert_int_equal(run.nspans, 1);
    assert_string_equal(run.spans[0].opening_date, "2024-03-01");
    assert_int_equal(run.spans[0].opening_fen, 150000);
    assert_string_equal(run.spans[0].closing_date, "2024-03-05");
    assert_int_equal(run.spans[0].closing_fen, 173750);
    si_run_free(&run);
}

/* A seven-digit account is an account, not a masked tail; :61: broken after the mark. */
static void test_short_account_line_breaks(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("mt940/short-account-line-breaks.sta"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 2);
    assert_string_equal(run.records[0].receiving_account, "6014578");
    assert_int_equal(run.records[0].amount_fen, 120000);
    assert_string_equal(run.records[0].bank_txn_id, "BK240304001");
    assert_string_equal(run.records[0].remittance, "WIRE FROM ACME LTD TU7K3M9Q2X");
    assert_int_equal(run.records[1].amount_fen, -9995);
    si_run_free(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_61),
        cmocka_unit_test(test_entry_year),
        cmocka_unit_test(test_balances),
        cmocka_unit_test(test_86_dialects),
        cmocka_unit_test(test_fin_envelope),
        cmocka_unit_test(test_mt942),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_named_encoding),
        cmocka_unit_test(test_account_mismatch),
        cmocka_unit_test(test_danish_shared_refs),
        cmocka_unit_test(test_rabobank_split_86),
        cmocka_unit_test(test_ing_poland),
        cmocka_unit_test(test_abnamro_without_20),
        cmocka_unit_test(test_short_account_line_breaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
