/* Bank statement files for the tests: CMB corporate CSV (UTF-8 and GBK), MT940 and camt.053. */
#include "testlib.h"

#include <errno.h>
#include <iconv.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A statement is built in memory; the largest the tests write is a few thousand transactions. */
struct tl_buf {
    char *p;
    size_t n, cap;
};

static void tl_buf_add(struct tl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void tl_buf_add(struct tl_buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        TL_CHECK(w >= 0);
        if ((size_t)w < b->cap - b->n) {
            b->n += (size_t)w;
            return;
        }
        b->cap = b->cap * 2 + (size_t)w + 1;
        b->p = realloc(b->p, b->cap);
        TL_CHECK(b->p != NULL);
    }
}

static void tl_buf_init(struct tl_buf *b)
{
    b->cap = 65536;
    b->n = 0;
    b->p = malloc(b->cap);
    TL_CHECK(b->p != NULL);
    b->p[0] = '\0';
}

/* CSV field: always quoted, quotes doubled. */
static void tl_csv_field(struct tl_buf *b, const char *s)
{
    tl_buf_add(b, "\"");
    for (const char *c = s; *c != '\0'; c++) {
        tl_buf_add(b, *c == '"' ? "\"\"" : "%c", *c);
    }
    tl_buf_add(b, "\"");
}

/* XML text: the five entities escaped. */
static void tl_xml_text(struct tl_buf *b, const char *s)
{
    for (const char *c = s; *c != '\0'; c++) {
        switch (*c) {
        case '<':
            tl_buf_add(b, "&lt;");
            break;
        case '>':
            tl_buf_add(b, "&gt;");
            break;
        case '&':
            tl_buf_add(b, "&amp;");
            break;
        case '"':
            tl_buf_add(b, "&quot;");
            break;
        case '\'':
            tl_buf_add(b, "&apos;");
            break;
        default:
            tl_buf_add(b, "%c", *c);
        }
    }
}

static void tl_amount(int64_t fen, char *out, size_t len, char sep)
{
    uint64_t a = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
    snprintf(out, len, "%" PRIu64 "%c%02" PRIu64, a / 100, sep, a % 100);
}

static void tl_stmt_csv(struct tl_buf *b, const struct tl_txn *t, size_t n, bool crlf)
{
    const char *eol = crlf ? "\r\n" : "\n";
    /* A title row and a blank row above the table, as the banks' exports have. */
    tl_buf_add(b, "招商银行交易明细%s%s", eol, eol);
    tl_buf_add(b,
               "交易日,交易时间,起息日,借方金额,贷方金额,余额,收(付)方名称,收(付)方账号,"
               "收(付)方开户行名,用途,流水号%s",
               eol);
    int64_t balance = 0;
    for (size_t i = 0; i < n; i++) {
        char amt[32], bal[32];
        balance += t[i].amount_fen;
        tl_amount(t[i].amount_fen, amt, sizeof(amt), '.');
        tl_fen_str(balance, bal, sizeof(bal));
        tl_buf_add(b, "%s,%02d:%02d:%02d,%s,%s,%s,%s,", t[i].value_date, (int)(i / 3600 % 24),
                   (int)(i / 60 % 60), (int)(i % 60), t[i].value_date,
                   t[i].amount_fen < 0 ? amt : "", t[i].amount_fen > 0 ? amt : "", bal);
        tl_csv_field(b, t[i].name);
        tl_buf_add(b, ",");
        tl_csv_field(b, t[i].cp_account);
        tl_buf_add(b, ",");
        tl_csv_field(b, t[i].cp_bank);
        tl_buf_add(b, ",");
        tl_csv_field(b, t[i].remittance);
        tl_buf_add(b, ",%s%s", t[i].txn_id, eol);
    }
}

/* YYMMDD of "YYYY-MM-DD". */
static void tl_yymmdd(const char *d, char out[7])
{
    snprintf(out, 7, "%.2s%.2s%.2s", d + 2, d + 5, d + 8);
}

static void tl_stmt_mt940(struct tl_buf *b, const char *account, const struct tl_txn *t, size_t n)
{
    const char *first = n > 0 ? t[0].value_date : "2000-01-01";
    const char *last = n > 0 ? t[n - 1].value_date : first;
    char d0[7], d1[7], amt[32];
    tl_yymmdd(first, d0);
    tl_yymmdd(last, d1);
    tl_buf_add(b, ":20:TL%s\r\n:25:%s\r\n:28C:1/1\r\n:60F:C%sCNY0,00\r\n", tl_sfx(), account, d0);
    int64_t balance = 0;
    for (size_t i = 0; i < n; i++) {
        char vd[7];
        tl_yymmdd(t[i].value_date, vd);
        tl_amount(t[i].amount_fen, amt, sizeof(amt), ',');
        balance += t[i].amount_fen;
        tl_buf_add(b, ":61:%s%.4s%s%sNTRFNONREF//%s\r\n", vd, vd + 2,
                   t[i].amount_fen < 0 ? "D" : "C", amt, t[i].txn_id);
        tl_buf_add(b, ":86:/NAME/%s/IBAN/%s/REMI/USTD//%s/\r\n", t[i].name, t[i].cp_account,
                   t[i].remittance);
    }
    tl_amount(balance, amt, sizeof(amt), ',');
    tl_buf_add(b, ":62F:%s%sCNY%s\r\n-\r\n", balance < 0 ? "D" : "C", d1, amt);
}

static void tl_camt_balance(struct tl_buf *b, const char *code, int64_t fen, const char *date)
{
    char amt[32];
    tl_amount(fen, amt, sizeof(amt), '.');
    tl_buf_add(b,
               "<Bal><Tp><CdOrPrtry><Cd>%s</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">%s</Amt>"
               "<CdtDbtInd>%s</CdtDbtInd><Dt><Dt>%s</Dt></Dt></Bal>\n",
               code, amt, fen < 0 ? "DBIT" : "CRDT", date);
}

static void tl_stmt_camt(struct tl_buf *b, const char *account, const struct tl_txn *t, size_t n)
{
    const char *first = n > 0 ? t[0].value_date : "2000-01-01";
    const char *last = n > 0 ? t[n - 1].value_date : first;
    tl_buf_add(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\">\n"
                  "<BkToCstmrStmt>\n");
    tl_buf_add(b, "<GrpHdr><MsgId>TL-%s</MsgId><CreDtTm>%sT23:00:00</CreDtTm></GrpHdr>\n", tl_sfx(),
               last);
    tl_buf_add(b,
               "<Stmt><Id>TL-STMT-%s</Id><CreDtTm>%sT23:00:00</CreDtTm>\n"
               "<Acct><Id><Othr><Id>%s</Id></Othr></Id><Ccy>CNY</Ccy></Acct>\n",
               tl_sfx(), last, account);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += t[i].amount_fen;
    }
    tl_camt_balance(b, "OPBD", 0, first);
    tl_camt_balance(b, "CLBD", total, last);
    for (size_t i = 0; i < n; i++) {
        char amt[32];
        bool credit = t[i].amount_fen > 0;
        tl_amount(t[i].amount_fen, amt, sizeof(amt), '.');
        tl_buf_add(b,
                   "<Ntry><Amt Ccy=\"CNY\">%s</Amt><CdtDbtInd>%s</CdtDbtInd><Sts>BOOK</Sts>"
                   "<BookgDt><Dt>%s</Dt></BookgDt><ValDt><Dt>%s</Dt></ValDt>"
                   "<AcctSvcrRef>%s</AcctSvcrRef>\n<NtryDtls><TxDtls><Refs><AcctSvcrRef>%s"
                   "</AcctSvcrRef></Refs>\n<RltdPties><%s><Nm>",
                   amt, credit ? "CRDT" : "DBIT", t[i].value_date, t[i].value_date, t[i].txn_id,
                   t[i].txn_id, credit ? "Dbtr" : "Cdtr");
        tl_xml_text(b, t[i].name);
        tl_buf_add(b, "</Nm></%s><%sAcct><Id><Othr><Id>", credit ? "Dbtr" : "Cdtr",
                   credit ? "Dbtr" : "Cdtr");
        tl_xml_text(b, t[i].cp_account);
        tl_buf_add(b, "</Id></Othr></Id></%sAcct></RltdPties>\n<RltdAgts><%sAgt><FinInstnId><Nm>",
                   credit ? "Dbtr" : "Cdtr", credit ? "Dbtr" : "Cdtr");
        tl_xml_text(b, t[i].cp_bank);
        tl_buf_add(b, "</Nm></FinInstnId></%sAgt></RltdAgts>\n<RmtInf><Ustrd>",
                   credit ? "Dbtr" : "Cdtr");
        tl_xml_text(b, t[i].remittance);
        tl_buf_add(b, "</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n");
    }
    tl_buf_add(b, "</Stmt>\n</BkToCstmrStmt>\n</Document>\n");
}

/* The buffer converted from UTF-8 to GBK (what Excel saves on a Chinese Windows). */
static void tl_to_gbk(struct tl_buf *b)
{
    iconv_t cd = iconv_open("GBK", "UTF-8");
    TL_CHECK_MSG(cd != (iconv_t)-1, "iconv UTF-8 -> GBK: %s", strerror(errno));
    size_t cap = b->n * 2 + 16;
    char *out = malloc(cap);
    TL_CHECK(out != NULL);
    char *in = b->p, *o = out;
    size_t il = b->n, ol = cap;
    TL_CHECK_MSG(iconv(cd, &in, &il, &o, &ol) != (size_t)-1, "a statement text has no GBK form: %s",
                 strerror(errno));
    iconv_close(cd);
    free(b->p);
    b->p = out;
    b->n = cap - ol;
    b->cap = cap;
}

void tl_stmt_write(enum tl_stmt_format f, const char *path, const char *account,
                   const struct tl_txn *txns, size_t n)
{
    struct tl_buf b;
    tl_buf_init(&b);
    switch (f) {
    case TL_STMT_CSV_CMB:
        tl_stmt_csv(&b, txns, n, false);
        break;
    case TL_STMT_CSV_CMB_GBK:
        tl_stmt_csv(&b, txns, n, true);
        tl_to_gbk(&b);
        break;
    case TL_STMT_MT940:
        tl_stmt_mt940(&b, account, txns, n);
        break;
    case TL_STMT_CAMT053:
        tl_stmt_camt(&b, account, txns, n);
        break;
    }
    tl_write_file(path, b.p, b.n);
    free(b.p);
}

const char *tl_stmt_format_name(enum tl_stmt_format f)
{
    switch (f) {
    case TL_STMT_CSV_CMB:
        return "csv-cmb";
    case TL_STMT_CSV_CMB_GBK:
        return "csv-cmb-gbk";
    case TL_STMT_MT940:
        return "mt940";
    case TL_STMT_CAMT053:
        return "camt053";
    }
    return "?";
}

const char *const *tl_stmt_import_args(enum tl_stmt_format f, const char *account)
{
    static char acc[128];
    static const char *args[8];
    snprintf(acc, sizeof(acc), "%s", account);
    switch (f) {
    case TL_STMT_CSV_CMB:
    case TL_STMT_CSV_CMB_GBK:
        /* The CMB export has no column of our own account: name it. */
        args[0] = "--format";
        args[1] = "csv:cmb-corporate";
        args[2] = "--account";
        args[3] = acc;
        args[4] = NULL;
        break;
    case TL_STMT_MT940:
    case TL_STMT_CAMT053:
        args[0] = NULL;
        break;
    }
    return args;
}
