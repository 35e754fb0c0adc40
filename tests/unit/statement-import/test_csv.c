/* Unit tests: the CSV parser on our own fixtures (every case of issue 4 point 1) and bad files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "si_test.h"
#include "topup/mem.h"

/* Header row not first, title and footer lines, account in the header area, "1,234.56", "-",
 * "--", "+500.00", tab padding, debit/credit flag next to separate in/out columns. */
static void test_icbc_corporate_title_footer(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("csv/icbc-corporate-title.csv"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.format, "csv:icbc-corporate");
    assert_int_equal(run.nrecords, 3);
    const struct record *r = si_at_line(&run, 5);
    assert_non_null(r);
    assert_string_equal(r->receiving_account, "6222000011112222333");
    assert_int_equal(r->amount_fen, 50000);
    assert_string_equal(r->booking_date, "2024-03-01");
    assert_string_equal(r->booking_time, "09:15:02");
    assert_string_equal(r->counterparty_name, "张三");
    assert_string_equal(r->counterparty_account, "6212260000000000001");
    assert_string_equal(r->counterparty_bank, "102100099996");
    assert_string_equal(r->remittance, "TU7K3M9Q2X 充值 | 网银转账");
    assert_true(r->id_is_fingerprint);
    r = si_at_line(&run, 6);
    assert_int_equal(r->amount_fen, -100000);
    /* Tab padding around cells (ICBC writes "value<TAB>") is not part of the value. */
    r = si_at_line(&run, 7);
    assert_int_equal(r->amount_fen, 123456);
    assert_string_equal(r->counterparty_account, "6212260000000000003");
    assert_string_equal(r->counterparty_name, "李四");
    si_run_free(&run);
}

static void check_cmb(const struct si_run *run, const char *encoding)
{
    si_dump(run);
    assert_int_equal(run->nproblems, 0);
    assert_string_equal(run->format, "csv:cmb-personal");
    assert_string_equal(run->encoding, encoding);
    assert_int_equal(run->nrecords, 3);
    const struct record *r = &run->records[0];
    assert_int_equal(r->amount_fen, 100000);
    assert_string_equal(r->counterparty_name, "张三");
    assert_string_equal(r->counterparty_account, "6222020000000001");
    assert_string_equal(r->remittance, "转账汇入 | TU7K3M9Q2X");
    assert_string_equal(r->receiving_account, "6214830000001234");
    assert_int_equal(run->records[1].amount_fen, -20000);
    assert_string_equal(run->records[1].counterparty_name, "抖音电商商家");
    assert_int_equal(run->records[2].amount_fen, 5000); /* "+50.00" */
}

/* Encodings: UTF-8 with and without BOM, GBK, GB18030, CRLF, UTF-16LE tab-separated (Excel). */
static void test_encodings(void **state)
{
    (void)state;
    size_t len;
    char *utf8 = si_read(si_fixture("csv/cmb-personal.csv"), &len);
    struct si_opts o = {.account = "6214830000001234"};
    struct si_run run;

    si_run_mem(&run, "plain.csv", utf8, len, &o);
    check_cmb(&run, "utf-8");
    si_run_free(&run);

    char *bom = mem_alloc(len + 3);
    memcpy(bom, "\xEF\xBB\xBF", 3);
    memcpy(bom + 3, utf8, len);
    si_run_mem(&run, "bom.csv", bom, len + 3, &o);
    check_cmb(&run, "utf-8");
    si_run_free(&run);
    free(bom);

    /* CRLF line ends, then the same in GBK (Excel's "CSV" on a Chinese Windows). */
    char *crlf = mem_alloc(len * 2);
    size_t cl = 0;
    for (size_t i = 0; i < len; i++) {
        if (utf8[i] == '\n') {
            crlf[cl++] = '\r';
        }
        crlf[cl++] = utf8[i];
    }
    si_run_mem(&run, "crlf.csv", crlf, cl, &o);
    check_cmb(&run, "utf-8");
    si_run_free(&run);
    size_t gl;
    char *gbk = si_convert(crlf, cl, "GBK", &gl);
    si_run_mem(&run, "gbk.csv", gbk, gl, &o);
    check_cmb(&run, "gb18030");
    si_run_free(&run);
    free(gbk);
    free(crlf);

    char *gb = si_convert(utf8, len, "GB18030", &gl);
    si_run_mem(&run, "gb18030.csv", gb, gl, &o);
    check_cmb(&run, "gb18030");
    si_run_free(&run);
    /* The encoding named explicitly reads the same. */
    struct si_opts named = {.account = o.account, .encoding = "GB18030"};
    si_run_mem(&run, "gb18030.csv", gb, gl, &named);
    check_cmb(&run, "gb18030");
    si_run_free(&run);
    free(gb);

    /* Excel "Unicode text": UTF-16LE with a byte-order mark, tabs between cells. */
    char *tabs = mem_strdup(utf8);
    bool quoted = false;
    for (char *p = tabs; *p; p++) {
        if (*p == '"') {
            quoted = !quoted;
        } else if (*p == ',' && !quoted) {
            *p = '\t';
        }
    }
    char *u16 = si_convert(tabs, len, "UTF-16LE", &gl);
    char *with_bom = mem_alloc(gl + 2);
    memcpy(with_bom, "\xFF\xFE", 2);
    memcpy(with_bom + 2, u16, gl);
    si_run_mem(&run, "unicode.txt", with_bom, gl + 2, &o);
    check_cmb(&run, "utf-16le");
    si_run_free(&run);
    free(with_bom);
    free(u16);
    free(tabs);
    free(utf8);
}

/* Two header rows under a spanning cell ("发生额/元" over 借方 | 贷方), full-width digits and
 * separators, U+3000 inside labels, YYYYMMDD dates, the bank's transaction number as id. */
static void test_ccb_subheader_fullwidth(void **state)
{
    (void)state;
    struct si_run run;
    si_run_file(&run, si_fixture("csv/ccb-corporate-subheader.csv"), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.format, "csv:ccb-corporate");
    assert_int_equal(run.nrecords, 2);
    const struct record *r = &run.records[0];
    assert_int_equal(r->amount_fen, 100000);
    assert_string_equal(r->booking_date, "2024-03-01");
    assert_string_equal(r->receiving_account, "6217000010001234567");
    assert_string_equal(r->bank_txn_id, "3101000012024030100001");
    assert_false(r->id_is_fingerprint);
    assert_string_equal(r->counterparty_name, "王　五"); /* kept as written; matching normalises */
    assert_string_equal(r->remittance, "转账 | TU7K3M9Q2X");
    assert_int_equal(run.records[1].amount_fen, -50000);
    si_run_free(&run);
}

/* A debit/credit flag column written "贷 Cr" / "借 Dr" with unsigned amounts. */
static void test_bocom_flag(void **state)
{
    (void)state;
    struct si_run run;
    struct si_opts o = {.account = "6222600000001111"};
    si_run_file(&run, si_fixture("csv/bocom-personal-flag.csv"), &o);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.format, "csv:bocom-personal");
    assert_int_equal(run.records[0].amount_fen, 10000);
    assert_int_equal(run.records[1].amount_fen, -3050);
    /* Remark columns join in file order: 交易类型 stands before 摘要. */
    assert_string_equal(run.records[0].remittance, "转账 | TU7K3M9Q2X");
    si_run_free(&run);
}

/* A profile declared in a file, detected among the built-in ones, ';' as delimiter. */
static void test_custom_profile(void **state)
{
    (void)state;
    struct tp_error err;
    struct csv_profile_set *set = csv_profiles_load(si_fixture("csv/acme-profile.ini"), &err);
    if (set == NULL) {
        fail_msg("%s", err.msg);
    }
    struct si_opts o = {.custom = set};
    struct si_run run;
    si_run_file(&run, si_fixture("csv/acme-bank.csv"), &o);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.format, "csv:acme");
    assert_int_equal(run.nrecords, 2);
    assert_string_equal(run.records[0].bank_txn_id, "ACME0001");
    assert_string_equal(run.records[0].receiving_account, "6222000099998888");
    assert_string_equal(run.records[0].remittance, "TU7K3M9Q2X | 充值");
    assert_int_equal(run.records[1].amount_fen, -1000);
    si_run_free(&run);
    /* Named explicitly. */
    o.format = "csv:acme";
    si_run_file(&run, si_fixture("csv/acme-bank.csv"), &o);
    assert_int_equal(run.nrecords, 2);
    si_run_free(&run);
    csv_profiles_free(set);
}

static void test_custom_profile_mistakes(void **state)
{
    (void)state;
    struct tp_error err;
    static const struct {
        const char *text;
        const char *error;
    } cases[] = {
        {"amount = 金额\n", "p.ini:1: \"amount = 金额\" before any [profile NAME] section"},
        {"[profile Bad Name]\n", "p.ini:1: expected \"[profile NAME]\" with NAME of a-z 0-9 - _"},
        {"[profile x]\nwhen = 日期\n",
         "p.ini:2: unknown key \"when\" (fields: booking_date txn_date value_date time amount "
         "credit debit flag balance currency counterparty_name counterparty_account "
         "counterparty_bank counterparty_combined payer_* payee_* remittance txn_id "
         "own_account; also description delimiter account_labels currency_labels flag_credit "
         "flag_debit)"},
        {"[profile x]\ntxn_date = 日期\n",
         "p.ini:1: profile \"x\" needs a date column (booking_date, txn_date or time) and an "
         "amount column (amount, credit or debit)"},
        {"[profile x]\ntxn_date = 日期\namount = 金额\ndelimiter = :\n",
         "p.ini:4: delimiter must be one of , ; | tab (got \":\")"},
        {"[profile x]\ntxn_date = 日期\namount = 金额\n[profile x]\n",
         "p.ini:4: profile \"x\" is declared twice"},
        {"# nothing\n", "p.ini: no [profile NAME] section"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct csv_profile_set *set =
            csv_profiles_parse("p.ini", cases[i].text, strlen(cases[i].text), &err);
        assert_null(set);
        assert_string_equal(err.msg, cases[i].error);
    }
}

/* A quoted cell with a line break, doubled quotes and a comma; its record keeps its first line. */
static void test_quoted_multiline(void **state)
{
    (void)state;
    struct si_run run;
    struct si_opts o = {.account = "6214830000001234"};
    si_run_file(&run, si_fixture("csv/quoted-multiline.csv"), &o);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 2);
    assert_string_equal(run.records[0].location, "line 2");
    assert_string_equal(run.records[0].remittance, "转账汇入 | 第一行 第二行, \"引号\" TU7K3M9Q2X");
    assert_string_equal(run.records[1].location, "line 4");
    si_run_free(&run);
}

/* Identical legitimate payments on one day stay two records; re-importing the same or an
 * overlapping file gives the same ids. */
static void test_identical_payments_and_overlap(void **state)
{
    (void)state;
    struct si_run a, again, b;
    si_run_file(&a, si_fixture("csv/identical-payments.csv"), NULL);
    si_dump(&a);
    assert_int_equal(a.nrecords, 3);
    assert_true(a.records[0].id_is_fingerprint);
    size_t l = strlen(a.records[0].bank_txn_id);
    assert_string_equal(a.records[0].bank_txn_id + l - 2, ":1");
    assert_string_equal(a.records[1].bank_txn_id + l - 2, ":2");
    assert_memory_equal(a.records[0].bank_txn_id, a.records[1].bank_txn_id, l - 2);
    assert_string_not_equal(a.records[0].bank_txn_id, a.records[2].bank_txn_id);
    si_run_file(&again, si_fixture("csv/identical-payments.csv"), NULL);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(a.records[i].bank_txn_id, again.records[i].bank_txn_id);
    }
    si_run_file(&b, si_fixture("csv/identical-payments-overlap.csv"), NULL);
    assert_int_equal(b.nrecords, 4);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(a.records[i].bank_txn_id, b.records[i].bank_txn_id);
    }
    /* Pinned: a change of the fingerprint would give old and new imports different ids. */
    assert_string_equal(a.records[0].bank_txn_id, "fp:b071f0789669e72029eb9b2f952bc1d7:1");
    si_run_free(&a);
    si_run_free(&again);
    si_run_free(&b);
}

struct bad_case {
    const char *name;
    const char *text;
    const char *account;
    const char *problem;
};

/* Malformed files: each gives exactly this problem (and nothing is published: see the
 * integration test for that half). */
static void test_malformed(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"bad-amount.csv",
         "记账日期,货币,交易金额,联机余额,交易摘要,对手信息,客户摘要\n"
         "2024-03-01,CNY,12.3.4,100.00,x,y,z\n",
         "6214830000001234",
         "bad-amount.csv:2: column 交易金额: amount \"12.3.4\" has an unexpected character '.'"},
        {"fen.csv",
         "记账日期,货币,交易金额,联机余额,交易摘要,对手信息,客户摘要\n"
         "2024-03-01,CNY,10.001,10.00,x,y,z\n",
         "6214830000001234",
         "fen.csv:2: column 交易金额: amount \"10.001\" has non-zero digits beyond two decimals"},
        {"bad-date.csv",
         "记账日期,货币,交易金额,联机余额,交易摘要,对手信息,客户摘要\n"
         "2024-02-30,CNY,10.00,10.00,x,y,z\n",
         "6214830000001234", "bad-date.csv:2: column 记账日期: \"2024-02-30\" is not a date"},
        {"truncated.csv",
         "记账日期,货币,交易金额,联机余额,交易摘要,对手信息,客户摘要\n"
         "2024-03-01,CNY,10.00,10.00,x,y,\"unfinished remark\n",
         "6214830000001234",
         "truncated.csv:2: quoted cell is not closed before the end of the file"},
        {"no-header.csv", "date,amount,who\n2024-03-01,1.00,x\n", NULL,
         "no-header.csv:2: no header row with known columns in the first 64 lines (profile "
         "detection); name the layout with --format csv:<profile> or a --profile-file"},
        {"both.csv",
         "交易日期,收入金额,支出金额,账户余额,对方户名,摘要\n"
         "2024-03-01,10.00,5.00,105.00,x,y\n",
         "6214830000001234", "both.csv:2: both 收入金额 and 支出金额 hold an amount"},
        {"neither.csv",
         "交易日期,收入金额,支出金额,账户余额,对方户名,摘要\n"
         "2024-03-01,-,--,105.00,x,y\n",
         "6214830000001234", "neither.csv:2: no amount in 收入金额 or 支出金额"},
        {"flag.csv",
         "交易时间,摘要,发生额,币种,余额,对方账号,对方户名,借贷标志\n"
         "2024-03-01 10:00:00,x,10.00,人民币,10.00,1,y,X\n",
         "6214830000001234",
         "flag.csv:2: column 借贷标志: \"X\" is neither a credit mark "
         "(贷|收|来账|转入|存入|入账|c|cr|credit|+) nor a debit mark "
         "(借|支|往账|转出|支取|出账|d|dr|debit|-)"},
        {"after-footer.csv",
         "记账日期,货币,交易金额,联机余额,交易摘要,对手信息,客户摘要\n"
         "2024-03-01,CNY,10.00,10.00,x,y,z\n"
         "合计,,10.00,,,,\n"
         "2024-03-02,CNY,10.00,20.00,x,y,z\n",
         "6214830000001234", "after-footer.csv:4: transaction row after the summary line 3"},
        {"balance.csv",
         "记账日期,货币,交易金额,联机余额,交易摘要,对手信息,客户摘要\n"
         "2024-03-01,CNY,10.00,110.00,x,y,z\n"
         "2024-03-02,CNY,10.00,130.00,x,y,z\n",
         "6214830000001234",
         "balance.csv:3: running balance breaks: balance 130.00 is not the previous balance "
         "110.00 plus the amount 10.00 (= 120.00); in all, a gap of 10.00"},
        {"masked.csv",
         "卡号: 1234****9876\n交易日期,摘要,记账金额(收入),记账金额(支出),记账币种,余额,对方户名\n"
         "2024-03-01,x,10.00,,人民币,,y\n",
         NULL,
         "masked.csv:3: the file's account \"1234****9876\" is masked or partial; pass the full "
         "account with --account"},
        {"currency.csv",
         "记账日期,货币,交易金额,联机余额,交易摘要,对手信息,客户摘要\n"
         "2024-03-01,钞,10.00,10.00,x,y,z\n",
         "6214830000001234", "currency.csv:2: column 货币: unknown currency \"钞\""},
        {"wrong-encoding.csv",
         "记账日期,货币,交易金额,联机余额,交易摘要,对手信息,客户摘要\n"
         "2024-03-01,CNY,10.00,10.00,caf\xE9,y,z\n",
         "6214830000001234", "wrong-encoding.csv:2: invalid UTF-8 byte sequence (0xE9)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct si_run run;
        struct si_opts o = {.account = cases[i].account};
        si_run_mem(&run, cases[i].name, cases[i].text, strlen(cases[i].text), &o);
        if (run.nproblems != 1 || strcmp(run.problems[0], cases[i].problem) != 0) {
            si_dump(&run);
            fail_msg("%s: expected exactly: %s", cases[i].name, cases[i].problem);
        }
        assert_int_equal(run.nrecords, 0);
        si_run_free(&run);
    }
}

/* Every problem is listed, not just the first. */
static void test_all_problems_listed(void **state)
{
    (void)state;
    static const char text[] = "记账日期,货币,交易金额,联机余额,交易摘要,对手信息,客户摘要\n"
                               "2024-03-01,CNY,abc,,x,y,z\n"
                               "2024-03-01,CNY,10.00,,x,y,z\n"
                               "2024-13-01,CNY,10.00,,x,y,z\n";
    struct si_run run;
    struct si_opts o = {.account = "6214830000001234"};
    si_run_mem(&run, "many.csv", text, strlen(text), &o);
    assert_int_equal(run.nproblems, 2);
    assert_string_equal(
        run.problems[0],
        "many.csv:2: column 交易金额: amount \"abc\" has an unexpected character 'a'");
    assert_string_equal(run.problems[1],
                        "many.csv:4: column 记账日期: \"2024-13-01\" is not a date");
    si_run_free(&run);
}

/* A bank transaction number used twice is refused: the consumer would drop the second as a
 * redelivery, losing a transfer. */
/*
 * A bank id on two different transactions (an export whose 流水号 is a batch number) cannot be
 * the identity of either: both are fingerprinted, with the id in the fingerprint, and published.
 */
static void test_repeated_bank_id(void **state)
{
    (void)state;
    static const char text[] =
        "记账日期,交易时间,借方发生额,贷方发生额,余额,币种,对方户名,对方账号,"
        "对方开户机构,摘要,备注,账户明细编号-交易流水号,本方账号\n"
        "20240301,09:00:00,,10.00,10.00,人民币,a,1,b,x,,ID-1,6217000010001234567\n"
        "20240301,09:10:00,,20.00,30.00,人民币,c,2,d,y,,ID-1,6217000010001234567\n"
        "20240301,09:20:00,,5.00,35.00,人民币,e,3,f,z,,ID-2,6217000010001234567\n";
    struct si_run run;
    si_run_mem(&run, "ids.csv", text, strlen(text), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_int_equal(run.nrecords, 3);
    assert_int_equal(run.nshared, 1);
    assert_string_equal(run.shared[0].bank_txn_id, "ID-1");
    assert_int_equal(run.shared[0].first_line, 2);
    assert_int_equal(run.shared[0].second_line, 3);
    assert_int_equal(run.shared[0].count, 2);
    assert_true(run.records[0].id_is_fingerprint);
    assert_true(run.records[1].id_is_fingerprint);
    assert_string_not_equal(run.records[0].bank_txn_id, run.records[1].bank_txn_id);
    assert_int_equal(strncmp(run.records[0].bank_txn_id, "fp:", 3), 0);
    /* A unique id stays the identity. */
    assert_false(run.records[2].id_is_fingerprint);
    assert_string_equal(run.records[2].bank_txn_id, "ID-2");
    char first[RECORD_ID_MAX + 1], second[RECORD_ID_MAX + 1];
    snprintf(first, sizeof first, "%s", run.records[0].bank_txn_id);
    snprintf(second, sizeof second, "%s", run.records[1].bank_txn_id);
    si_run_free(&run);

    /* An overlapping export with only the second transaction, the id known to repeat from the
     * import above: the same fingerprint, so the overlap is not published twice. */
    static const char later[] =
        "记账日期,交易时间,借方发生额,贷方发生额,余额,币种,对方户名,对方账号,"
        "对方开户机构,摘要,备注,账户明细编号-交易流水号,本方账号\n"
        "20240301,09:10:00,,20.00,30.00,人民币,c,2,d,y,,ID-1,6217000010001234567\n"
        "20240302,08:00:00,,1.00,31.00,人民币,g,4,h,w,,ID-3,6217000010001234567\n";
    static const char *const known[][2] = {{"6217000010001234567", "ID-1"}};
    struct si_opts o = {.known_shared = known, .known_shared_n = 1};
    si_run_mem(&run, "later.csv", later, strlen(later), &o);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.records[0].bank_txn_id, second);
    assert_string_not_equal(run.records[0].bank_txn_id, first);
    assert_string_equal(run.records[1].bank_txn_id, "ID-3");
    si_run_free(&run);
}

/* ABC personal: YYYYMMDD dates, HHMMSS times, "+10000.00", "--" placeholders, 对手信息. */
static void test_abc_personal(void **state)
{
    (void)state;
    static const char text[] =
        "交易日期,交易时间,交易摘要,交易金额,本次余额,对手信息,日 志 号,交易渠道,"
        "交易附言\n"
        "20240101,123456,转存,+10000.00,11000.00,哈哈,369396693,超级网银,"
        "TU7K3M9Q2X\n"
        "20240104,,结息,+0.01,11000.01,--,0000000000,,个人活期结息\n"
        "20240104,,利息税,+0.00,11000.01,--,0000000000,,个人活期结息\n";
    struct si_run run;
    struct si_opts o = {.account = "6228480000000000001"};
    si_run_mem(&run, "abc.csv", text, strlen(text), &o);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.format, "csv:abc-personal");
    assert_int_equal(run.nrecords, 2); /* the 0.00 interest tax row is skipped */
    assert_int_equal(run.stats.skipped_zero, 1);
    assert_string_equal(run.records[0].booking_date, "2024-01-01");
    assert_string_equal(run.records[0].booking_time, "12:34:56");
    assert_int_equal(run.records[0].amount_fen, 1000000);
    assert_string_equal(run.records[0].remittance, "转存 | TU7K3M9Q2X");
    assert_string_equal(run.records[1].counterparty_name, "");
    si_run_free(&run);
}

/* CCB personal: the card number in the header area, 对方账号与户名 split into account and name. */
static void test_ccb_personal(void **state)
{
    (void)state;
    static const char text[] = "中国建设银行个人活期账户全部交易明细\n"
                               "卡号/账号:,6217000010009998888,客户名称:,张三\n"
                               "序号,摘要,币别,钞汇,交易日期,交易金额,账户余额,交易地点/附言,"
                               "对方账号与户名\n"
                               "1,转账存入,人民币,钞,20240301,500.00,1500.00,TU7K3M9Q2X,"
                               "6222020000000001/李四\n"
                               "2,消费,人民币,钞,20240302,-20.00,1480.00,超市,\n";
    struct si_run run;
    si_run_mem(&run, "ccb.csv", text, strlen(text), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.format, "csv:ccb-personal");
    assert_int_equal(run.nrecords, 2);
    assert_string_equal(run.records[0].receiving_account, "6217000010009998888");
    assert_string_equal(run.records[0].counterparty_account, "6222020000000001");
    assert_string_equal(run.records[0].counterparty_name, "李四");
    assert_string_equal(run.records[0].remittance, "转账存入 | TU7K3M9Q2X");
    si_run_free(&run);
}

/* BOC corporate: the counterparty is the payer of a credit and the payee of a debit; 来账/往账
 * give the direction of unsigned amounts; the bank's 交易流水号 is the id. */
static void test_boc_corporate_parties(void **state)
{
    (void)state;
    static const char text[] =
        "查询账号[ Inquirer account number ],456789012345\n"
        "交易类型[ Transaction Type ],付款人账号[ Debit Account No. ],付款人名称[ Payer's Name ],"
        "收款人账号[ Payee's Account Number ],收款人名称[ Payee's Name ],交易日期[ Transaction "
        "Date ],"
        "交易货币[ Trade Currency ],交易金额[ Trade Amount ],交易后余额[ After-transaction balance "
        "],"
        "交易流水号[ Transaction reference number ],交易附言[ Remark ]\n"
        "来账,6222020000000001,张三,456789012345,我公司,20240301,CNY,200.00,1200.00,BOC001,"
        "TU7K3M9Q2X\n"
        "往账,456789012345,我公司,6222020000000002,供应商,20240301,CNY,50.00,1150.00,BOC002,货款\n";
    struct si_run run;
    si_run_mem(&run, "boc-corp.csv", text, strlen(text), NULL);
    si_dump(&run);
    assert_int_equal(run.nproblems, 0);
    assert_string_equal(run.format, "csv:boc-corporate");
    assert_int_equal(run.nrecords, 2);
    assert_string_equal(run.records[0].receiving_account, "456789012345");
    assert_int_equal(run.records[0].amount_fen, 20000);
    assert_string_equal(run.records[0].counterparty_name, "张三");
    assert_string_equal(run.records[0].counterparty_account, "6222020000000001");
    assert_string_equal(run.records[0].bank_txn_id, "BOC001");
    assert_int_equal(run.records[1].amount_fen, -5000);
    assert_string_equal(run.records[1].counterparty_name, "供应商");
    si_run_free(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_icbc_corporate_title_footer),
        cmocka_unit_test(test_encodings),
        cmocka_unit_test(test_ccb_subheader_fullwidth),
        cmocka_unit_test(test_bocom_flag),
        cmocka_unit_test(test_custom_profile),
        cmocka_unit_test(test_custom_profile_mistakes),
        cmocka_unit_test(test_quoted_multiline),
        cmocka_unit_test(test_identical_payments_and_overlap),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_all_problems_listed),
        cmocka_unit_test(test_repeated_bank_id),
        cmocka_unit_test(test_abc_personal),
        cmocka_unit_test(test_ccb_personal),
        cmocka_unit_test(test_boc_corporate_parties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
