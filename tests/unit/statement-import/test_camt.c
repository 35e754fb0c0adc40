/* Unit tests: camt.052/053/054 of several versions and namespaces, batches, and bad files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "input.h"
#include "parser.h"
#include "si_test.h"

/* A batch entry split per transaction detail (v08 TxDtls/Amt), charges taken from a credit,
 * a reversal, a pending entry (skipped), an entry without the bank's reference. */
static void test_053_v08_batch(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("camt/camt053-v08-batch.xml"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.format, "camt.053");
    assert_int_equal(run.nskipped, 1);
    assert_int_equal(run.nrecords, 7);
    const struct record *r = run.records;
    assert_string_equal(r[0].receiving_account, "6222000011112222333");
    assert_string_equal(r[0].bank_txn_id, "E1/1");
    assert_int_equal(r[0].amount_fen, 10000);
    assert_string_equal(r[0].counterparty_name, "张三");
    assert_string_equal(r[0].counterparty_account, "6222020000000001");
    assert_string_equal(r[0].counterparty_bank, "ICBKCNBJ");
    assert_string_equal(r[0].remittance, "TU7K3M9Q2X");
    assert_string_equal(r[0].location, "line 21 (Stmt[1]/Ntry[1]/TxDtls[1])");
    assert_string_equal(r[1].bank_txn_id, "E1/2");
    assert_string_equal(r[1].remittance, "TU2345678A 第二行");
    /* A detail with its own bank reference keeps it. */
    assert_string_equal(r[2].bank_txn_id, "E1-X3");
    assert_string_equal(r[2].remittance, "RF18539007547034");
    /* 99.00 booked = 100.00 sent - 1.00 charges: the transfer and the charges, apart. */
    assert_string_equal(r[3].bank_txn_id, "E2");
    assert_int_equal(r[3].amount_fen, 10000);
    assert_string_equal(r[4].bank_txn_id, "E2/charges");
    assert_int_equal(r[4].amount_fen, -100);
    /* The reversal of a credit is money out; its counterparty is the original payer. */
    assert_int_equal(r[5].amount_fen, -5000);
    assert_true(r[5].reversal);
    assert_string_equal(r[5].counterparty_name, "钱七");
    /* No AcctSvcrRef: a fingerprint; the remittance of the detail wins over AddtlNtryInf. */
    assert_true(r[6].id_is_fingerprint);
    assert_string_equal(r[6].booking_date, "2024-03-01");
    assert_string_equal(r[6].value_date, "2024-03-01");
    assert_string_equal(r[6].remittance, "TU5678901D");
    si_run_free(&run);
}

static void test_052_prefixed_interim(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("camt/camt052-prefixed.xml"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.format, "camt.052");
    assert_int_equal(run.nrecords, 1);
    assert_int_equal(run.records[0].amount_fen, -1500);
    assert_string_equal(run.records[0].counterparty_name, "ACME GmbH");
    assert_string_equal(run.records[0].counterparty_account, "DE02100400000123456789");
    assert_string_equal(run.records[0].counterparty_bank, "COBADEFFXXX");
    assert_string_equal(run.records[0].bank_txn_id, "R1-1");
    si_run_free(&run);
}

static void test_054_no_namespace(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("camt/camt054-no-namespace.xml"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.format, "camt.054");
    assert_int_equal(run.nrecords, 1);
    assert_int_equal(run.records[0].amount_fen, 123450);
    assert_string_equal(run.records[0].booking_date, "2024-03-01");
    assert_string_equal(run.records[0].value_date, "2024-03-01"); /* no ValDt: booking date */
    assert_string_equal(run.records[0].counterparty_name, "J Doe");
    si_run_free(&run);
}

#define HEAD                                                                                       \
    "<?xml version=\"1.0\"?>\n"                                                                    \
    "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.054.001.02\">\n"                        \
    "<BkToCstmrDbtCdtNtfctn><Ntfctn><Id>N</Id>\n"                                                  \
    "<Acct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></Acct>\n"
#define TAIL "</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>\n"
#define ENTRY(amt)                                                                                 \
    "<Ntry><Amt Ccy=\"EUR\">" amt "</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>\n"             \
    "<BookgDt><Dt>2024-03-01</Dt></BookgDt></Ntry>\n"

struct bad_case {
    const char *name;
    const char *text;
    const char *problem;
};

static void test_malformed(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"comma.xml", HEAD ENTRY("12,50") TAIL,
         "comma.xml:5: entry amount \"12,50\" is not a decimal amount"},
        {"decimals.xml", HEAD ENTRY("8.851") TAIL,
         "decimals.xml:5: entry amount: amount \"8.851\" has non-zero digits beyond two "
         "decimals"},
        {"broken.xml", HEAD "<Ntry><Amt Ccy=\"EUR\">1.00</Amnt>\n" TAIL,
         "broken.xml:5: broken XML: Opening and ending tag mismatch: Amt line 5 and Amnt"},
        {"truncated.xml", HEAD ENTRY("1.00"),
         "truncated.xml:6: broken XML: the file ends inside <Ntfctn> (line 3): truncated?"},
        {"html.xml", "<html><body>statement</body></html>\n",
         "html.xml:1: not a camt document: the root element is <html>, not <Document>"},
        {"pain.xml",
         "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.03\"><CstmrCdtTrfInitn/>"
         "</Document>\n",
         "pain.xml:1: <Document> holds <CstmrCdtTrfInitn>, not a camt.052/053/054 message "
         "(BkToCstmrAcctRpt, BkToCstmrStmt, BkToCstmrDbtCdtNtfctn)"},
        {"split.xml",
         HEAD "<Ntry><Amt Ccy=\"EUR\">30.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>\n"
              "<BookgDt><Dt>2024-03-01</Dt></BookgDt><NtryDtls>\n"
              "<TxDtls><Amt Ccy=\"EUR\">10.00</Amt></TxDtls>\n"
              "<TxDtls><Amt Ccy=\"EUR\">10.00</Amt></TxDtls></NtryDtls></Ntry>\n" TAIL,
         "split.xml:5: the entry's 2 transaction details add up to 20.00, not the entry amount "
         "30.00"},
        {"nodate.xml",
         HEAD "<Ntry><Amt "
              "Ccy=\"EUR\">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts></Ntry>\n" TAIL,
         "nodate.xml:5: booked entry has no booking date (BookgDt), no value date (ValDt), and "
         "the notification has no date (FrToDt, CreDtTm)"},
        {"cd.xml",
         HEAD "<Ntry><Amt Ccy=\"EUR\">1.00</Amt><CdtDbtInd>CREDIT</CdtDbtInd><Sts>BOOK</Sts>\n"
              "<BookgDt><Dt>2024-03-01</Dt></BookgDt></Ntry>\n" TAIL,
         "cd.xml:5: CdtDbtInd \"CREDIT\" is neither CRDT nor DBIT"},
        {"nobal.xml",
         "<Document><BkToCstmrStmt><Stmt><Id>S9</Id><Acct><Id><IBAN>NL91ABNA0417164300</IBAN>"
         "</Id></Acct>\n" ENTRY("1.00") "</Stmt></BkToCstmrStmt></Document>\n",
         "nobal.xml:1: statement S9 (line 1) has no opening balance"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct si_run run;
        si_run_mem(&run, cases[i].name, cases[i].text, strlen(cases[i].text), NULL);
        if (run.nproblems < 1 || strcmp(run.problems[0], cases[i].problem) != 0) {
            si_dump(&run);
            fail_msg("%s: expected first: %s", cases[i].name, cases[i].problem);
        }
        si_run_free(&run);
    }
}

/* External entities are not fetched nor expanded: a statement is data, not a program. */
static void test_no_external_entities(void **state)
{
    (void)state;
    static const char text[] =
        "<?xml version=\"1.0\"?>\n<!DOCTYPE Document [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n"
        "<Document><BkToCstmrDbtCdtNtfctn><Ntfctn><Id>N</Id>"
        "<Acct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></Acct>\n"
        "<Ntry><Amt Ccy=\"EUR\">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>"
        "<BookgDt><Dt>2024-03-01</Dt></BookgDt><AddtlNtryInf>&x;</AddtlNtryInf></Ntry>\n" TAIL;
    struct si_run run;
    si_run_mem(&run, "xxe.xml", text, strlen(text), NULL);
    si_dump(&run);
    assert_int_equal(run.nparsed, 0);
    assert_int_equal(run.nproblems, 1);
    assert_string_equal(run.problems[0],
                        "xxe.xml:2: refused XML: a document type declaration (<!DOCTYPE) or "
                        "another markup declaration; a statement has none (no DTD, no entities)");
    si_run_free(&run);
}

/* A Swiss batch whose two details share one AcctSvcrRef: both fingerprinted, both published. */
static void test_swiss_batch_shared_ref(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("camt/camt053-swiss-batch-shared-ref.xml"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 3);
    assert_int_equal(run.nshared, 1);
    assert_string_equal(run.shared[0].account, "CH9300762011623852957");
    assert_string_equal(run.shared[0].bank_txn_id, "2024030100001");
    assert_true(run.records[0].id_is_fingerprint);
    assert_true(run.records[1].id_is_fingerprint);
    assert_string_not_equal(run.records[0].bank_txn_id, run.records[1].bank_txn_id);
    assert_int_equal(run.records[0].amount_fen, 10000);
    assert_string_equal(run.records[0].counterparty_name, "Hans Meier");
    assert_int_equal(run.records[1].amount_fen, 20000);
    assert_string_equal(run.records[1].counterparty_name, "Anna Keller");
    assert_false(run.records[2].id_is_fingerprint);
    assert_string_equal(run.records[2].bank_txn_id, "2024030100002");
    si_run_free(&run);
}

#define NOTE_VALDT     "booked entry without BookgDt: booked on its ValDt"
#define NOTE_STMT_DATE "booked entry without BookgDt or ValDt: booked on the statement's date"

/* No BookgDt: booked on the value date, else on the statement's date; the record says so. */
static void test_no_booking_date(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("camt/camt053-no-bookgdt.xml"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 2);
    assert_string_equal(run.records[0].booking_date, "2024-03-30");
    assert_string_equal(run.records[0].value_date, "2024-03-30");
    assert_string_equal(run.records[0].location,
                        "line 22 (Stmt[1]/Ntry[1]/TxDtls[1]; no BookgDt: booked on ValDt)");
    assert_string_equal(run.records[1].booking_date, "2024-03-31");
    assert_string_equal(run.records[1].value_date, "2024-03-31");
    assert_string_equal(run.records[1].location,
                        "line 28 (Stmt[1]/Ntry[2]; no BookgDt: booked on the statement's date)");
    assert_string_equal(run.records[1].remittance, "Intress");
    assert_non_null(si_note_of(&run, NOTE_VALDT));
    assert_int_equal(si_note_of(&run, NOTE_VALDT)->count, 1);
    assert_int_equal(si_note_of(&run, NOTE_STMT_DATE)->first_line, 28);
    si_run_free(&run);

    /* Without FrToDt the statement's CreDtTm, without that the message's. */
    static const char grphdr[] =
        "<Document><BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>M</MsgId>"
        "<CreDtTm>2024-05-06T01:00:00</CreDtTm></GrpHdr><Ntfctn><Id>N</Id>\n"
        "<Acct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></Acct>\n"
        "<Ntry><Amt Ccy=\"EUR\">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts></Ntry>\n"
        "</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>\n";
    si_run_mem(&run, "grphdr.xml", grphdr, strlen(grphdr), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.records[0].booking_date, "2024-05-06");
    si_run_free(&run);
}

#define NOTE_NO_CD "balance without CdtDbtInd: its sign taken from the amount"

/* BAI2 balance codes (010 opening, 015 closing ledger; 040/045 available) and no CdtDbtInd. */
static void test_bai_balances(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("camt/camt053-bai-balances.xml"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 2);
    assert_string_equal(run.records[0].receiving_account, "4056712"); /* seven digits */
    assert_string_equal(run.records[0].currency, "USD");
    assert_int_equal(run.nspans, 1);
    assert_int_equal(run.spans[0].opening_fen, 2500000);
    assert_int_equal(run.spans[0].closing_fen, 2625050);
    assert_int_equal(si_note_of(&run, NOTE_NO_CD)->count, 1); /* the 015; 040/045 unchecked */
    si_run_free(&run);

    /* A wrong 015 is a gap like a wrong CLBD; a minus without CdtDbtInd is a debit balance. */
    static const char gap[] =
        "<Document><BkToCstmrStmt><Stmt><Id>S</Id>\n"
        "<Acct><Id><Othr><Id>4056712</Id></Othr></Id><Ccy>USD</Ccy></Acct>\n"
        "<Bal><Tp><CdOrPrtry><Prtry>010</Prtry></CdOrPrtry></Tp><Amt Ccy=\"USD\">-10.00</Amt>"
        "<Dt><Dt>2024-03-04</Dt></Dt></Bal>\n"
        "<Bal><Tp><CdOrPrtry><Prtry>015</Prtry></CdOrPrtry></Tp><Amt Ccy=\"USD\">5.00</Amt>"
        "<Dt><Dt>2024-03-04</Dt></Dt></Bal>\n"
        "<Ntry><Amt Ccy=\"USD\">10.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>"
        "<BookgDt><Dt>2024-03-04</Dt></BookgDt></Ntry>\n"
        "</Stmt></BkToCstmrStmt></Document>\n";
    si_run_mem(&run, "bai-gap.xml", gap, strlen(gap), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 1);
    assert_string_equal(run.problems[0],
                        "bai-gap.xml:4: statement S (line 1): closing balance 5.00 USD is not the "
                        "opening balance -10.00 plus the 1 entries 10.00 (= 0.00): a gap of 5.00");
    assert_int_equal(run.ngaps, 1);
    assert_int_equal(run.gaps[0].kind, GAP_BALANCE);
    assert_int_equal(run.gaps[0].gap_fen, 500);
    si_run_free(&run);

    static const char both[] =
        "<Document><BkToCstmrStmt><Stmt><Id>S</Id>\n"
        "<Acct><Id><Othr><Id>4056712</Id></Othr></Id></Acct>\n"
        "<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"USD\">-10.00</Amt>\n"
        "<CdtDbtInd>DBIT</CdtDbtInd><Dt><Dt>2024-03-04</Dt></Dt></Bal>\n"
        "</Stmt></BkToCstmrStmt></Document>\n";
    si_run_mem(&run, "both.xml", both, strlen(both), NULL);
    assert_string_equal(run.problems[0], "both.xml:3: balance OPBD has a negative amount and a "
                                         "CdtDbtInd: the sign is ambiguous");
    si_run_free(&run);
}

/* OPBD is the opening; PRCD (the last statement's closing) must agree, or it is a gap. */
static void test_prcd_and_opbd(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("camt/camt053-prcd-opbd.xml"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 1);
    assert_string_equal(run.records[0].counterparty_name, "Stadtwerke Musterstadt");
    assert_string_equal(run.spans[0].opening_date, "2024-03-04");
    si_run_free(&run);

    size_t len;
    char *text = si_read(si_fixture("camt/camt053-prcd-opbd.xml"), &len);
    char *prcd = strstr(text, "<Amt Ccy=\"EUR\">1234.56</Amt>");
    assert_non_null(prcd);
    memcpy(prcd, "<Amt Ccy=\"EUR\">1200.00</Amt>", 28); /* the first one is PRCD's */
    si_run_mem(&run, "prcd.xml", text, len, NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 1);
    assert_string_equal(run.problems[0],
                        "prcd.xml:15: statement 052D2024-03-05T07:01:22.0N240305000000001 (line "
                        "8): opening balance (OPBD) 1234.56 EUR is not the previously closed "
                        "balance (PRCD) 1200.00: a gap of 34.56");
    assert_int_equal(run.ngaps, 1);
    assert_int_equal(run.gaps[0].kind, GAP_PREVIOUS);
    assert_int_equal(run.gaps[0].expected_fen, 120000);
    assert_int_equal(run.gaps[0].stated_fen, 123456);
    assert_int_equal(run.nrecords, 0);
    si_run_free(&run);
    /* Accepted, the file publishes its record. */
    struct si_opts o = {.accept_gaps = true};
    si_run_mem(&run, "prcd.xml", text, len, &o);
    assert_int_equal(run.nrecords, 1);
    si_run_free(&run);
    free(text);
}

/* An entry in another currency is published in its own; a detail's CHF amount beats its EUR. */
static void test_foreign_currency_entry(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("camt/camt053-foreign-entry.xml"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 3);
    assert_string_equal(run.records[0].currency, "EUR");
    assert_int_equal(run.records[0].amount_fen, 8000);
    assert_string_equal(run.records[0].remittance, "TU7K3M9Q2X");
    assert_string_equal(run.records[1].currency, "CHF");
    assert_int_equal(run.records[1].amount_fen, 9700);
    assert_string_equal(run.records[1].counterparty_name, "Marie Curie");
    assert_int_equal(run.records[2].amount_fen, 4850);
    assert_int_equal(run.stats.foreign, 1);
    si_run_free(&run);
}

/* Reversals reported as their own movement: the payer is on the other side. */
static void test_reversal_other_side(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("camt/camt053-reversals.xml"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 2);
    assert_true(run.records[0].reversal);
    assert_int_equal(run.records[0].amount_fen, -5000);
    assert_string_equal(run.records[0].counterparty_name, "J. de Vries");
    assert_string_equal(run.records[0].counterparty_account, "NL20INGB0001234567");
    assert_string_equal(run.records[1].counterparty_name, "A. Jansen");
    assert_string_equal(run.records[1].counterparty_account, "NL39RABO0300065264");
    si_run_free(&run);
}

/* The 2007 version is another shape: refused by name. */
static void test_v01_refused(void **state)
{
    (void)state;
    static const char text[] =
        "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.01\"><BkToCstmrStmtV01>"
        "</BkToCstmrStmtV01></Document>\n";
    struct si_run run;
    si_run_mem(&run, "v01.xml", text, strlen(text), NULL);
    assert_int_equal(run.nproblems, 1);
    assert_string_equal(run.problems[0],
                        "v01.xml:1: <BkToCstmrStmtV01> is the 2007 version 001.01 of camt, which "
                        "has another shape; ask the bank for version 001.02 or later");
    si_run_free(&run);
}

/* Builds HEAD + an element with n attributes + TAIL (caller frees). */
static char *attrs_doc(int n, size_t *len)
{
    size_t cap = (size_t)n * 16 + 1024;
    char *doc = malloc(cap);
    assert_non_null(doc);
    size_t o = (size_t)snprintf(doc, cap, "%s<AddtlNtryInf", HEAD);
    for (int i = 0; i < n; i++) {
        o += (size_t)snprintf(doc + o, cap - o, " a%d=\"x\"", i);
    }
    o += (size_t)snprintf(doc + o, cap - o, ">x</AddtlNtryInf>\n%s", TAIL);
    *len = o;
    return doc;
}

/*
 * The camt reader is bounded before libxml2 sees the bytes: 200,000 attributes on one element
 * (432 s of libxml2's time before) are refused at once, so are a DTD, a huge tag, a huge text.
 */
static void test_xml_bounds(void **state)
{
    (void)state;
    size_t len;
    char *doc = attrs_doc(200000, &len);
    struct si_run run;
    si_run_mem(&run, "attrs.xml", doc, len, NULL);
    assert_int_equal(run.nproblems, 1);
    assert_string_equal(run.problems[0],
                        "attrs.xml:5: refused XML: element with more than 32 attributes");
    si_run_free(&run);
    free(doc);
    doc = attrs_doc(32, &len); /* at the bound: read */
    si_run_mem(&run, "attrs32.xml", doc, len, NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    si_run_free(&run);
    free(doc);

    static const char dtd[] = "<?xml version=\"1.0\"?>\n<!DOCTYPE Document [<!ENTITY a \"aaaa\">"
                              "<!ENTITY b \"&a;&a;&a;&a;\">]>\n<Document/>\n";
    si_run_mem(&run, "dtd.xml", dtd, strlen(dtd), NULL);
    assert_string_equal(run.problems[0],
                        "dtd.xml:2: refused XML: a document type declaration (<!DOCTYPE) or "
                        "another markup declaration; a statement has none (no DTD, no entities)");
    si_run_free(&run);

    size_t big = 70 * 1024;
    char *text = malloc(big + 1024);
    assert_non_null(text);
    size_t o = (size_t)snprintf(text, 1024, "%s<AddtlNtryInf>", HEAD);
    memset(text + o, 'x', big);
    o += big;
    o += (size_t)snprintf(text + o, 1024, "</AddtlNtryInf>%s", TAIL);
    si_run_mem(&run, "text.xml", text, o, NULL);
    assert_string_equal(run.problems[0],
                        "text.xml:5: refused XML: element text longer than 65536 bytes");
    si_run_free(&run);
    o = (size_t)snprintf(text, 1024, "%s<AddtlNtryInf a=\"", HEAD);
    memset(text + o, 'x', 5000);
    o += 5000;
    o += (size_t)snprintf(text + o, 1024, "\"/>%s", TAIL);
    si_run_mem(&run, "tag.xml", text, o, NULL);
    assert_string_equal(run.problems[0],
                        "tag.xml:5: refused XML: element tag longer than 4096 bytes");
    si_run_free(&run);
    free(text);
}

struct stop_ctx {
    int polls;      /* cancelled() calls so far */
    int stop_after; /* cancelled() says true from this call on */
    int records, errors;
    char first_error[512];
};

static void stop_stmt(void *ctx, const struct statement_info *st)
{
    (void)ctx;
    (void)st;
}

static void stop_record(void *ctx, struct record *r)
{
    (void)r;
    ((struct stop_ctx *)ctx)->records++;
}

static void stop_error(void *ctx, uint32_t line, const char *msg)
{
    struct stop_ctx *c = ctx;
    if (c->errors++ == 0) {
        snprintf(c->first_error, sizeof c->first_error, "%u: %s", line, msg);
    }
}

static void stop_skipped(void *ctx, uint32_t line, const char *why)
{
    (void)ctx;
    (void)line;
    (void)why;
}

static bool stop_cancelled(void *ctx)
{
    struct stop_ctx *c = ctx;
    return ++c->polls >= c->stop_after;
}

/* A 4 MB notification of 20,000 entries. */
static char *big_doc(size_t *len)
{
    size_t cap = 8 * 1024 * 1024;
    char *doc = malloc(cap);
    assert_non_null(doc);
    size_t o = (size_t)snprintf(doc, cap, "%s", HEAD);
    for (int i = 0; i < 20000; i++) {
        o += (size_t)snprintf(doc + o, cap - o,
                              "<Ntry><Amt Ccy=\"EUR\">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>"
                              "<Sts>BOOK</Sts><BookgDt><Dt>2024-03-01</Dt></BookgDt>"
                              "<AcctSvcrRef>R%d</AcctSvcrRef><AddtlNtryInf>padding padding "
                              "padding padding padding padding padding</AddtlNtryInf></Ntry>\n",
                              i);
    }
    o += (size_t)snprintf(doc + o, cap - o, "%s", TAIL);
    *len = o;
    return doc;
}

/*
 * A stop request (what SIGTERM sets) ends the camt reading between two reads of the input, not
 * at the end of the document; and a reading that outlasts its time bound is refused.
 */
static void test_xml_stop_and_time(void **state)
{
    (void)state;
    size_t len;
    char *doc = big_doc(&len);
    struct stop_ctx c = {.stop_after = 3};
    struct parse_sink sink = {.ctx = &c,
                              .statement_begin = stop_stmt,
                              .statement_end = stop_stmt,
                              .record = stop_record,
                              .error = stop_error,
                              .skipped = stop_skipped,
                              .cancelled = stop_cancelled};
    struct parse_options po = {0};
    struct tp_error err;
    struct input *in = input_open_mem(doc, len);
    assert_int_equal(parser_camt_run(in, &po, &sink, &err), TP_OK);
    assert_int_equal(c.errors, 0);  /* a stop is not a problem of the file */
    assert_true(c.records < 20000); /* it stopped early */
    assert_true(input_offset(in) < (int64_t)len / 2);
    input_free(in);

    /* 1 ms for 4 MB: the bound is met before the end. */
    struct stop_ctx t = {.stop_after = 1 << 30};
    sink.ctx = &t;
    po.xml_time_limit_ms = 1;
    in = input_open_mem(doc, len);
    assert_int_equal(parser_camt_run(in, &po, &sink, &err), TP_INVALID);
    assert_int_equal(t.errors, 1);
    assert_non_null(strstr(t.first_error, ": refused XML: reading the XML took longer than 0.001 s "
                                          "(IMPORT_XML_TIME_LIMIT_S)"));
    input_free(in);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_053_v08_batch),        cmocka_unit_test(test_052_prefixed_interim),
        cmocka_unit_test(test_054_no_namespace),     cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_no_external_entities), cmocka_unit_test(test_swiss_batch_shared_ref),
        cmocka_unit_test(test_no_booking_date),      cmocka_unit_test(test_bai_balances),
        cmocka_unit_test(test_prcd_and_opbd),        cmocka_unit_test(test_foreign_currency_entry),
        cmocka_unit_test(test_reversal_other_side),  cmocka_unit_test(test_v01_refused),
        cmocka_unit_test(test_xml_bounds),           cmocka_unit_test(test_xml_stop_and_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
