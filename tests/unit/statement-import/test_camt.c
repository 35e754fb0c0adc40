/* Unit tests: camt.052/053/054 of several versions and namespaces, batches, and bad files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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
    for (int i = 0; i < run.nparsed; i++) {
        assert_null(strstr(run.parsed[i].remittance, "root:"));
    }
    si_run_free(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_053_v08_batch),        cmocka_unit_test(test_052_prefixed_interim),
        cmocka_unit_test(test_054_no_namespace),     cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_no_external_entities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
