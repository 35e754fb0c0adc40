/* ISO 20022 camt.052/053/054, any version: streamed with libxml2's reader, namespace-agnostic. */
#include <libxml/xmlreader.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "parser.h"
#include "text.h"
#include "topup/mem.h"
#include "topup/money.h"

#define CAMT_DEPTH_MAX 64
#define CAMT_TEXT_MAX  4096
#define CAMT_REF_MAX   128
/*
 * Bounds on the raw XML, checked on the bytes before libxml2 sees them (libxml2 checks an
 * element's attributes against each other: 200,000 on one element took it 432 s). A camt
 * element has one attribute (Ccy), the root a few namespace declarations.
 */
#define CAMT_ATTRS_MAX    32
#define CAMT_TAG_MAX      4096        /* bytes from '<' to '>' */
#define CAMT_RAW_TEXT_MAX (64 * 1024) /* bytes of text (or CDATA) between two tags */

/* Element names we act on (local names; namespaces and versions are ignored). */
enum camt_el {
    E_OTHER,
    E_DOCUMENT,
    E_STMT, /* Stmt, Rpt, Ntfctn */
    E_ID,
    E_ACCT,
    E_IBAN,
    E_OTHR,
    E_CCY,
    E_BAL,
    E_TP,
    E_CDORPRTRY,
    E_CD,
    E_PRTRY,
    E_AMT,
    E_CDTDBTIND,
    E_DT,
    E_DTTM,
    E_NTRY,
    E_NTRYREF,
    E_RVSLIND,
    E_STS,
    E_BOOKGDT,
    E_VALDT,
    E_ACCTSVCRREF,
    E_TXDTLS,
    E_REFS,
    E_AMTDTLS,
    E_TXAMT,
    E_DBTR,
    E_CDTR,
    E_DBTRACCT,
    E_CDTRACCT,
    E_NM,
    E_DBTRAGT,
    E_CDTRAGT,
    E_BIC,
    E_RMTINF,
    E_USTRD,
    E_STRD,
    E_REF,
    E_ADDTLRMTINF,
    E_ADDTLNTRYINF,
    E_ADDTLTXINF,
    E_CHRGS,
    E_TTLCHRGS,
    E_RCRD,
    E_CDTRREFINF,
    E_TXSSUMMRY,
    E_GRPHDR,
    E_CREDTTM,
    E_FRTODT,
    E_TODTTM,
    E_INSTDAMT,
    E_CNTRVALAMT,
    E_COUNT_,
};

static const struct {
    const char *name;
    enum camt_el el;
} camt_names[] = {
    {"Document", E_DOCUMENT},
    {"Stmt", E_STMT},
    {"Rpt", E_STMT},
    {"Ntfctn", E_STMT},
    {"Id", E_ID},
    {"Acct", E_ACCT},
    {"IBAN", E_IBAN},
    {"Othr", E_OTHR},
    {"Ccy", E_CCY},
    {"Bal", E_BAL},
    {"Tp", E_TP},
    {"CdOrPrtry", E_CDORPRTRY},
    {"Cd", E_CD},
    {"Prtry", E_PRTRY},
    {"Amt", E_AMT},
    {"CdtDbtInd", E_CDTDBTIND},
    {"Dt", E_DT},
    {"DtTm", E_DTTM},
    {"Ntry", E_NTRY},
    {"NtryRef", E_NTRYREF},
    {"RvslInd", E_RVSLIND},
    {"Sts", E_STS},
    {"BookgDt", E_BOOKGDT},
    {"ValDt", E_VALDT},
    {"AcctSvcrRef", E_ACCTSVCRREF},
    {"TxDtls", E_TXDTLS},
    {"Refs", E_REFS},
    {"AmtDtls", E_AMTDTLS},
    {"TxAmt", E_TXAMT},
    {"Dbtr", E_DBTR},
    {"Cdtr", E_CDTR},
    {"DbtrAcct", E_DBTRACCT},
    {"CdtrAcct", E_CDTRACCT},
    {"Nm", E_NM},
    {"DbtrAgt", E_DBTRAGT},
    {"CdtrAgt", E_CDTRAGT},
    {"BIC", E_BIC},
    {"BICFI", E_BIC},
    {"RmtInf", E_RMTINF},
    {"Ustrd", E_USTRD},
    {"Strd", E_STRD},
    {"Ref", E_REF},
    {"AddtlRmtInf", E_ADDTLRMTINF},
    {"AddtlNtryInf", E_ADDTLNTRYINF},
    {"AddtlTxInf", E_ADDTLTXINF},
    {"Chrgs", E_CHRGS},
    {"TtlChrgsAndTaxAmt", E_TTLCHRGS},
    {"Rcrd", E_RCRD},
    {"CdtrRefInf", E_CDTRREFINF},
    {"TxsSummry", E_TXSSUMMRY},
    {"GrpHdr", E_GRPHDR},
    {"CreDtTm", E_CREDTTM},
    {"FrToDt", E_FRTODT},
    {"ToDtTm", E_TODTTM},
    {"InstdAmt", E_INSTDAMT},
    {"CntrValAmt", E_CNTRVALAMT},
};

/* One party side of a transaction detail. */
struct camt_party {
    char name[RECORD_NAME_MAX + 1];
    char account[RECORD_ACCOUNT_MAX + 1];
    char bank[RECORD_BANK_MAX + 1];
    bool overflow;
};

struct camt_detail {
    uint32_t line;
    int index;
    bool has_amount;
    int64_t amount; /* magnitude */
    char ccy[4];
    int cd; /* +1 CRDT, -1 DBIT, 0 absent */
    char ref[CAMT_REF_MAX];
    struct camt_party dbtr, cdtr;
    struct record text; /* remittance accumulates here (limits and overflow for free) */
    char ustrd[RECORD_REMIT_MAX + 1];
    char addtl[RECORD_REMIT_MAX + 1];
};

struct camt_entry {
    uint32_t line;
    int index;
    bool has_amount;
    bool bad_amount;
    int64_t amount;
    char ccy[4];
    int cd;
    bool reversal;
    char status[16];
    char booking[11], value[11];
    enum { BOOKED_ON_BOOKGDT, BOOKED_ON_VALDT, BOOKED_ON_STMT_DATE } booked_on;
    char ref[CAMT_REF_MAX];
    char addtl[RECORD_REMIT_MAX + 1];
    bool has_charges;
    int64_t charges;  /* total charges (magnitude) */
    int64_t rcrd_sum; /* sum of charge records when no total is given */
    int ndetails;
    bool held;         /* the first detail waits until we know whether it is alone */
    bool unsplittable; /* some detail without its own amount among several */
    int emitted;
    int64_t emitted_sum;
    bool failed; /* a problem was reported for this entry */
};

struct camt_parser {
    struct parse_options *opt;
    const struct parse_sink *sink;
    struct input *in;
    xmlTextReaderPtr reader;

    enum camt_el stack[CAMT_DEPTH_MAX];
    uint32_t lines[CAMT_DEPTH_MAX]; /* where each open element starts */
    char names[CAMT_DEPTH_MAX][32]; /* local names, for messages */
    int depth;
    char text[CAMT_TEXT_MAX + 1];
    size_t text_len;
    bool text_overflow;
    char attr_ccy[4];

    bool root_ok;
    const char *kind; /* "statement", "report", "notification" */
    bool is_053;

    /* statement */
    bool in_stmt, begun;
    int stmt_index;
    char stmt_id[CAMT_REF_MAX];
    char account[RECORD_ACCOUNT_MAX + 1];
    bool account_ok, account_reported;
    struct statement_info st;
    int entry_index;
    /* The statement's own date, for entries booked without BookgDt: FrToDt/ToDtTm, else the
     * statement's CreDtTm, else the message's (GrpHdr/CreDtTm). */
    char msg_date[11];
    char stmt_to_date[11], stmt_cre_date[11];
    /* balances */
    char bal_code[36]; /* Cd (4) or Prtry (Max35Text) */
    bool bal_has_amount;
    bool bal_negative; /* "-12.00" in a balance without CdtDbtInd */
    int64_t bal_amount;
    char bal_ccy[4];
    int bal_cd;
    char bal_date[11];
    uint32_t bal_line;
    uint32_t bal_amount_line;
    bool has_opbd;
    bool itbd_seen[2];
    int64_t itbd_amount[2];
    char itbd_date[2][11], itbd_ccy[2][4];
    uint32_t itbd_line[2];
    int nitbd;

    struct camt_entry e;
    bool in_entry;
    struct camt_detail d, held;
    bool in_detail;

    struct record rec;
    /* XML errors */
    char xml_error[256];
    uint32_t xml_error_line;
    bool cancelled;
    /* The raw bytes' scanner (camt_scan) and what it refused, with its line. */
    struct camt_scan {
        enum {
            SCAN_TEXT,
            SCAN_LT,    /* after '<' */
            SCAN_TAG,   /* in a start or end tag */
            SCAN_QUOTE, /* in an attribute value */
            SCAN_BANG,  /* after "<!": which markup */
            SCAN_COMMENT,
            SCAN_CDATA,
            SCAN_PI,
        } state;
        char quote;
        char bang[8];
        size_t bang_len;
        uint32_t line;     /* 1-based, of the byte being scanned */
        uint32_t tag_line; /* where the current tag began */
        size_t tag_len, text_len;
        uint32_t attrs;
        char last2[2]; /* the two bytes before, for "-->", "]]>", "?>" */
    } scan;
    char limit_error[256];
    uint32_t limit_line;
    int64_t deadline_ms; /* 0: none */
};

static enum camt_el camt_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof camt_names / sizeof camt_names[0]; i++) {
        if (strcmp(camt_names[i].name, name) == 0) {
            return camt_names[i].el;
        }
    }
    return E_OTHER;
}

/* True when the innermost elements are exactly els[0..n) (outermost first). */
static bool camt_at(const struct camt_parser *p, const enum camt_el *els, int n)
{
    if (p->depth < n) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (p->stack[p->depth - n + i] != els[i]) {
            return false;
        }
    }
    return true;
}
#define CAMT_AT(p, ...)                                                                            \
    camt_at(p, (const enum camt_el[]){__VA_ARGS__},                                                \
            (int)(sizeof((const enum camt_el[]){__VA_ARGS__}) / sizeof(enum camt_el)))

static bool camt_inside(const struct camt_parser *p, enum camt_el el)
{
    for (int i = 0; i < p->depth; i++) {
        if (p->stack[i] == el) {
            return true;
        }
    }
    return false;
}

/* Line of the innermost open element (the reader's own position runs ahead of the nodes). */
static uint32_t camt_line(const struct camt_parser *p)
{
    if (p->depth > 0) {
        return p->lines[p->depth - 1];
    }
    int l = xmlTextReaderGetParserLineNumber(p->reader);
    return l > 0 ? (uint32_t)l : 0;
}

static void camt_copy(char *dst, size_t cap, const char *s, size_t n)
{
    text_trim(&s, &n);
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Amounts: digits with an optional '.' and up to five decimals; the sign is CdtDbtInd's. */
static bool camt_amount(struct camt_parser *p, const char *what, int64_t *fen)
{
    const char *s = p->text;
    size_t n = p->text_len;
    struct tp_error err;
    text_trim(&s, &n);
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) {
            sink_errorf(p->sink, camt_line(p), "%s \"%.*s\" is not a decimal amount", what,
                        (int)(n > 40 ? 40 : n), s);
            return false;
        }
    }
    if (money_parse_lenient(s, n, '.', fen, &err) != TP_OK) {
        sink_errorf(p->sink, camt_line(p), "%s: %s", what, err.msg);
        return false;
    }
    return true;
}

static int camt_cd(struct camt_parser *p)
{
    const char *s = p->text;
    size_t n = p->text_len;
    text_trim(&s, &n);
    if (n == 4 && memcmp(s, "CRDT", 4) == 0) {
        return 1;
    }
    if (n == 4 && memcmp(s, "DBIT", 4) == 0) {
        return -1;
    }
    sink_errorf(p->sink, camt_line(p), "CdtDbtInd \"%.*s\" is neither CRDT nor DBIT",
                (int)(n > 20 ? 20 : n), s);
    return 0;
}

/* Date of <Dt> or the date part of <DtTm>. */
static bool camt_date(struct camt_parser *p, char out[11])
{
    const char *s = p->text;
    size_t n = p->text_len;
    char time[9];
    text_trim(&s, &n);
    /* DtTm: 2007-10-18T10:15:00+01:00; the date is what the bank booked. */
    if (n >= 10 && text_parse_date(s, 10, out, time)) {
        return true;
    }
    sink_errorf(p->sink, camt_line(p), "\"%.*s\" is not a date", (int)(n > 40 ? 40 : n), s);
    return false;
}

/* ---- statement ---- */

static void camt_report_begin(struct camt_parser *p)
{
    if (p->begun) {
        return;
    }
    p->begun = true;
    memcpy(p->st.account, p->account, sizeof p->st.account);
    if (p->st.currency[0] == '\0' && p->st.has_opening) {
        memcpy(p->st.currency, p->st.opening_ccy, 4);
    }
    p->sink->statement_begin(p->sink->ctx, &p->st);
}

static void camt_stmt_start(struct camt_parser *p)
{
    p->in_stmt = true;
    p->begun = false;
    p->stmt_index++;
    p->stmt_id[0] = '\0';
    p->account[0] = '\0';
    p->account_ok = false;
    p->account_reported = false;
    p->entry_index = 0;
    p->nitbd = 0;
    p->has_opbd = false;
    p->stmt_to_date[0] = p->stmt_cre_date[0] = '\0';
    memset(&p->st, 0, sizeof p->st);
    p->st.line = camt_line(p);
    p->st.balances_required = p->is_053;
    snprintf(p->st.label, sizeof p->st.label, "%s %d (line %u)", p->kind, p->stmt_index,
             p->st.line);
}

static void camt_stmt_account(struct camt_parser *p)
{
    char raw[RECORD_ACCOUNT_MAX + 1];
    struct tp_error err;
    const char *s = p->text;
    size_t n = p->text_len;
    text_trim(&s, &n);
    if (p->account[0] != '\0' || p->account_reported) {
        return;
    }
    if (n == 0 || n > RECORD_ACCOUNT_MAX) {
        sink_errorf(p->sink, camt_line(p), "account id \"%.*s\" is empty or too long",
                    (int)(n > 40 ? 40 : n), s);
        p->account_reported = true;
        return;
    }
    memcpy(raw, s, n);
    raw[n] = '\0';
    if (account_resolve(raw, p->opt->account, p->account, &err) != TP_OK) {
        sink_errorf(p->sink, camt_line(p), "%s", err.msg);
        p->account_reported = true;
        p->account[0] = '\0';
        return;
    }
    p->account_ok = true;
}

/* Opening = OPBD/PRCD, closing = CLBD; two interim balances (ITBD) bracket a page. */
static void camt_stmt_balances(struct camt_parser *p)
{
    struct statement_info *st = &p->st;
    if (p->nitbd == 2) {
        int first = strcmp(p->itbd_date[0], p->itbd_date[1]) <= 0 ? 0 : 1;
        if (!st->has_opening) {
            st->has_opening = true;
            st->opening_fen = p->itbd_amount[first];
            memcpy(st->opening_ccy, p->itbd_ccy[first], 4);
            memcpy(st->opening_date, p->itbd_date[first], 11);
            st->opening_line = p->itbd_line[first];
        }
        if (!st->has_closing) {
            st->has_closing = true;
            st->closing_fen = p->itbd_amount[1 - first];
            memcpy(st->closing_ccy, p->itbd_ccy[1 - first], 4);
            memcpy(st->closing_date, p->itbd_date[1 - first], 11);
            st->closing_line = p->itbd_line[1 - first];
        }
    } else if (p->nitbd == 1 && st->has_opening != st->has_closing) {
        if (!st->has_opening) {
            st->has_opening = true;
            st->opening_fen = p->itbd_amount[0];
            memcpy(st->opening_ccy, p->itbd_ccy[0], 4);
            memcpy(st->opening_date, p->itbd_date[0], 11);
            st->opening_line = p->itbd_line[0];
        } else {
            st->has_closing = true;
            st->closing_fen = p->itbd_amount[0];
            memcpy(st->closing_ccy, p->itbd_ccy[0], 4);
            memcpy(st->closing_date, p->itbd_date[0], 11);
            st->closing_line = p->itbd_line[0];
        }
    }
}

static void camt_stmt_end(struct camt_parser *p)
{
    camt_stmt_balances(p);
    camt_report_begin(p);
    p->st.end_line = camt_line(p);
    if (p->st.closing_line == 0) {
        p->st.closing_line = p->st.end_line;
    }
    if (snprintf(p->st.key, sizeof p->st.key, "%s|%s", p->account, p->stmt_id) >=
        (int)sizeof p->st.key) {
        p->st.key[sizeof p->st.key - 1] = '\0';
    }
    if (p->account[0] == '\0' && !p->account_reported) {
        sink_errorf(p->sink, p->st.line, "%s has no account (Acct/Id)", p->st.label);
    }
    p->sink->statement_end(p->sink->ctx, &p->st);
    p->in_stmt = false;
}

enum camt_bal_kind {
    BAL_OTHER,    /* available, forward, information balances: nothing about booked entries */
    BAL_OPENING,  /* OPBD, BAI 010 (opening ledger) */
    BAL_PREVIOUS, /* PRCD: the previous statement's closing */
    BAL_CLOSING,  /* CLBD, BAI 015 (closing ledger) */
    BAL_INTERIM,  /* ITBD */
};

/*
 * The balance type, from Cd or Prtry. North American banks send BAI2 type codes as Prtry: 010
 * opening ledger, 015 closing ledger, 040/045 opening/closing available (like OPAV/CLAV: they
 * include funds not yet booked, so they are not checked against the entries).
 */
static enum camt_bal_kind camt_bal_kind(const char *code)
{
    static const struct {
        const char *code;
        enum camt_bal_kind kind;
    } kinds[] = {
        {"OPBD", BAL_OPENING}, {"010", BAL_OPENING}, {"PRCD", BAL_PREVIOUS},
        {"CLBD", BAL_CLOSING}, {"015", BAL_CLOSING}, {"ITBD", BAL_INTERIM},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(code, kinds[i].code) == 0) {
            return kinds[i].kind;
        }
    }
    return BAL_OTHER;
}

static void camt_note(struct camt_parser *p, uint32_t line, const char *what)
{
    if (p->sink->note != NULL) {
        p->sink->note(p->sink->ctx, line, what);
    }
}

static void camt_bal_opening(struct camt_parser *p, int64_t fen)
{
    struct statement_info *st = &p->st;
    st->has_opening = true;
    st->opening_fen = fen;
    st->opening_line = p->bal_line;
    memcpy(st->opening_ccy, p->bal_ccy, 4);
    memcpy(st->opening_date, p->bal_date, 11);
}

static void camt_bal_end(struct camt_parser *p)
{
    struct statement_info *st = &p->st;
    enum camt_bal_kind kind = camt_bal_kind(p->bal_code);
    if (kind == BAL_OTHER) {
        return;
    }
    if (!p->bal_has_amount) {
        sink_errorf(p->sink, p->bal_line, "balance %s has no amount", p->bal_code);
        return;
    }
    if (p->bal_negative && p->bal_cd != 0) {
        sink_errorf(p->sink, p->bal_amount_line,
                    "balance %s has a negative amount and a CdtDbtInd: the sign is ambiguous",
                    p->bal_code);
        return;
    }
    int sign = p->bal_cd;
    if (sign == 0) {
        /* No CdtDbtInd: the amount's own sign (a minus is a debit balance), else credit. */
        sign = p->bal_negative ? -1 : 1;
        camt_note(p, p->bal_line, "balance without CdtDbtInd: its sign taken from the amount");
    }
    int64_t fen = sign * p->bal_amount;
    switch (kind) {
    case BAL_OPENING:
        if (p->has_opbd) {
            sink_errorf(p->sink, p->bal_line, "second opening balance in %s", st->label);
            return;
        }
        p->has_opbd = true;
        /* OPBD is the opening; a PRCD read before it becomes the one it must agree with. */
        if (st->has_opening) {
            st->has_previous = true;
            st->previous_fen = st->opening_fen;
            memcpy(st->previous_ccy, st->opening_ccy, 4);
            st->previous_line = st->opening_line;
        }
        camt_bal_opening(p, fen);
        break;
    case BAL_PREVIOUS:
        if (st->has_previous || (st->has_opening && !p->has_opbd)) {
            sink_errorf(p->sink, p->bal_line, "second previously closed balance (PRCD) in %s",
                        st->label);
            return;
        }
        if (p->has_opbd) {
            st->has_previous = true;
            st->previous_fen = fen;
            memcpy(st->previous_ccy, p->bal_ccy, 4);
            st->previous_line = p->bal_line;
        } else {
            camt_bal_opening(p, fen);
        }
        break;
    case BAL_CLOSING:
        if (st->has_closing) {
            sink_errorf(p->sink, p->bal_line, "second closing balance in %s", st->label);
            return;
        }
        st->has_closing = true;
        st->closing_fen = fen;
        st->closing_line = p->bal_line;
        memcpy(st->closing_ccy, p->bal_ccy, 4);
        memcpy(st->closing_date, p->bal_date, 11);
        break;
    case BAL_INTERIM:
        if (p->nitbd < 2) {
            p->itbd_amount[p->nitbd] = fen;
            memcpy(p->itbd_date[p->nitbd], p->bal_date, 11);
            memcpy(p->itbd_ccy[p->nitbd], p->bal_ccy, 4);
            p->itbd_line[p->nitbd] = p->bal_line;
            p->nitbd++;
        }
        break;
    case BAL_OTHER:
        break;
    }
}

/* ---- entries and their details ---- */

static bool camt_entry_booked(const struct camt_entry *e)
{
    return e->status[0] == '\0' || strcmp(e->status, "BOOK") == 0;
}

/*
 * A booked entry without BookgDt (LHV, some Swiss banks leave it out): booked on its value date,
 * else on the statement's date. The record's location says which, and so does the summary.
 */
static bool camt_entry_booking_fallback(struct camt_parser *p)
{
    struct camt_entry *e = &p->e;
    const char *stmt_date = p->stmt_to_date[0]    ? p->stmt_to_date
                            : p->stmt_cre_date[0] ? p->stmt_cre_date
                                                  : p->msg_date;
    if (e->value[0] != '\0') {
        memcpy(e->booking, e->value, 11);
        e->booked_on = BOOKED_ON_VALDT;
        camt_note(p, e->line, "booked entry without BookgDt: booked on its ValDt");
        return true;
    }
    if (stmt_date[0] != '\0') {
        memcpy(e->booking, stmt_date, 11);
        e->booked_on = BOOKED_ON_STMT_DATE;
        camt_note(p, e->line,
                  "booked entry without BookgDt or ValDt: booked on the statement's date");
        return true;
    }
    return false;
}

static void camt_location(struct camt_parser *p, struct record *r, uint32_t line, int detail)
{
    static const char *const booked[] = {"", "; no BookgDt: booked on ValDt",
                                         "; no BookgDt: booked on the statement's date"};
    const char *el = p->kind[0] == 's' ? "Stmt" : (p->kind[0] == 'r' ? "Rpt" : "Ntfctn");
    r->line = line;
    if (detail > 0) {
        snprintf(r->location, sizeof r->location, "line %u (%s[%d]/Ntry[%d]/TxDtls[%d]%s)", line,
                 el, p->stmt_index, p->e.index, detail, booked[p->e.booked_on]);
    } else {
        snprintf(r->location, sizeof r->location, "line %u (%s[%d]/Ntry[%d]%s)", line, el,
                 p->stmt_index, p->e.index, booked[p->e.booked_on]);
    }
}

/* Fills the fields every record of the current entry shares. */
static bool camt_record_base(struct camt_parser *p, struct record *r, uint32_t line, int detail)
{
    record_reset(r);
    if (p->e.booking[0] == '\0') {
        (void)camt_entry_booking_fallback(p); /* details come after the dates */
    }
    camt_location(p, r, line, detail);
    if (!p->account_ok) {
        p->st.incomplete = true;
        if (!p->account_reported) {
            p->account_reported = true;
            sink_errorf(p->sink, line, "%s has no usable account (Acct/Id)", p->st.label);
        }
        return false;
    }
    memcpy(r->receiving_account, p->account, sizeof r->receiving_account);
    memcpy(r->currency, p->e.ccy, 4);
    memcpy(r->booking_date, p->e.booking, 11);
    memcpy(r->value_date, p->e.value[0] ? p->e.value : p->e.booking, 11);
    r->reversal = p->e.reversal;
    return true;
}

static void camt_send(struct camt_parser *p, struct record *r)
{
    p->sink->record(p->sink->ctx, r);
    if (p->sink->cancelled != NULL && p->sink->cancelled(p->sink->ctx)) {
        p->cancelled = true;
    }
}

static bool camt_party_empty(const struct camt_party *party)
{
    return party->name[0] == '\0' && party->account[0] == '\0';
}

/* True when party's account is our own (blanks ignored: "NL91 ABNA ..." is NL91ABNA...). */
static bool camt_party_is_us(const struct camt_parser *p, const struct camt_party *party)
{
    const char *a = party->account, *b = p->account;
    if (*a == '\0') {
        return false;
    }
    for (;;) {
        while (*a == ' ') {
            a++;
        }
        if (*a == '\0' || *b == '\0' || *a != *b) {
            return *a == '\0' && *b == '\0';
        }
        a++;
        b++;
    }
}

/*
 * The other party: the debtor pays us, we pay the creditor; a reversal keeps the roles of the
 * original (a returned credit names its payer as debtor). Banks that describe the reversal as a
 * movement of its own name the payer on the other side and leave this side empty or put us
 * there: then the related party on the other side is the counterparty.
 */
static const struct camt_party *camt_counterparty(const struct camt_parser *p,
                                                  const struct camt_detail *d, int64_t amount,
                                                  bool reversal)
{
    bool from_debtor = (amount > 0) != reversal;
    const struct camt_party *cp = from_debtor ? &d->dbtr : &d->cdtr;
    const struct camt_party *other = from_debtor ? &d->cdtr : &d->dbtr;
    if (reversal && (camt_party_empty(cp) || camt_party_is_us(p, cp)) && !camt_party_empty(other) &&
        !camt_party_is_us(p, other)) {
        return other;
    }
    return cp;
}

/* Emits detail d with the signed amount; suffix: its position when the entry is split. */
static void camt_emit_detail(struct camt_parser *p, struct camt_detail *d, int64_t amount,
                             bool split)
{
    struct record *r = &p->rec;
    if (!camt_record_base(p, r, d->line, d->index)) {
        return;
    }
    r->amount_fen = amount;
    if (d->ref[0] != '\0' && strcmp(d->ref, p->e.ref) != 0) {
        record_set(r, RF_BANK_TXN_ID, d->ref, strlen(d->ref));
    } else if (p->e.ref[0] != '\0') {
        char id[CAMT_REF_MAX + 16];
        if (split) {
            snprintf(id, sizeof id, "%s/%d", p->e.ref, d->index);
        } else {
            snprintf(id, sizeof id, "%s", p->e.ref);
        }
        record_set(r, RF_BANK_TXN_ID, id, strlen(id));
    }
    const struct camt_party *cp = camt_counterparty(p, d, amount, r->reversal);
    record_set(r, RF_COUNTERPARTY_NAME, cp->name, strlen(cp->name));
    record_set(r, RF_COUNTERPARTY_ACCOUNT, cp->account, strlen(cp->account));
    record_set(r, RF_COUNTERPARTY_BANK, cp->bank, strlen(cp->bank));
    if (cp->overflow) {
        r->overflow_mask |= 1u << RF_COUNTERPARTY_NAME;
    }
    record_set(r, RF_REMITTANCE, d->ustrd, strlen(d->ustrd));
    record_append(r, RF_REMITTANCE, " | ", d->text.remittance, strlen(d->text.remittance));
    r->overflow_mask |= d->text.overflow_mask;
    if (r->remittance[0] == '\0') {
        record_set(r, RF_REMITTANCE, d->addtl, strlen(d->addtl));
        if (r->remittance[0] == '\0' && !split) {
            record_set(r, RF_REMITTANCE, p->e.addtl, strlen(p->e.addtl));
        }
    }
    camt_send(p, r);
}

/* One record for the whole entry (no details, or details that cannot be split). */
static void camt_emit_entry(struct camt_parser *p, int64_t amount)
{
    struct record *r = &p->rec;
    if (!camt_record_base(p, r, p->e.line, 0)) {
        return;
    }
    r->amount_fen = amount;
    if (p->e.ref[0] != '\0') {
        record_set(r, RF_BANK_TXN_ID, p->e.ref, strlen(p->e.ref));
    }
    record_set(r, RF_REMITTANCE, p->e.addtl, strlen(p->e.addtl));
    camt_send(p, r);
}

static void camt_emit_charges(struct camt_parser *p, int64_t charges)
{
    struct record *r = &p->rec;
    if (!camt_record_base(p, r, p->e.line, 0)) {
        return;
    }
    r->amount_fen = -charges;
    r->reversal = false;
    if (p->e.ref[0] != '\0') {
        char id[CAMT_REF_MAX + 16];
        snprintf(id, sizeof id, "%s/charges", p->e.ref);
        record_set(r, RF_BANK_TXN_ID, id, strlen(id));
    }
    static const char what[] = "charges";
    record_set(r, RF_REMITTANCE, what, sizeof what - 1);
    camt_send(p, r);
}

static int64_t camt_detail_amount(const struct camt_parser *p, const struct camt_detail *d)
{
    int cd = d->cd != 0 ? d->cd : p->e.cd;
    return cd * d->amount;
}

/* A detail's own amount counts only in the entry's currency (else it is an instructed one). */
static bool camt_detail_has_amount(const struct camt_parser *p, const struct camt_detail *d)
{
    return d->has_amount && strcmp(d->ccy, p->e.ccy) == 0;
}

static void camt_detail_end(struct camt_parser *p)
{
    struct camt_entry *e = &p->e;
    struct camt_detail *d = &p->d;
    e->ndetails++;
    if (e->failed || !camt_entry_booked(e)) {
        return;
    }
    if (e->ndetails == 1) {
        p->held = *d;
        e->held = true;
        return;
    }
    if (e->held) {
        e->held = false;
        if (camt_detail_has_amount(p, &p->held) && !e->unsplittable) {
            int64_t a = camt_detail_amount(p, &p->held);
            camt_emit_detail(p, &p->held, a, true);
            e->emitted++;
            e->emitted_sum += a;
        } else {
            e->unsplittable = true;
        }
    }
    if (camt_detail_has_amount(p, d) && !e->unsplittable) {
        int64_t a = camt_detail_amount(p, d);
        camt_emit_detail(p, d, a, true);
        e->emitted++;
        e->emitted_sum += a;
    } else {
        e->unsplittable = true;
    }
}

static void camt_entry_end(struct camt_parser *p)
{
    struct camt_entry *e = &p->e;
    char a[MONEY_STR_MAX], b[MONEY_STR_MAX], c[MONEY_STR_MAX];
    if (!camt_entry_booked(e)) {
        p->sink->skipped(p->sink->ctx, e->line, "entry not booked");
        return;
    }
    if (e->failed || e->bad_amount) {
        p->st.incomplete = true;
        return;
    }
    if (!e->has_amount || e->cd == 0) {
        p->st.incomplete = true;
        sink_errorf(p->sink, e->line, "entry has no %s", !e->has_amount ? "Amt" : "CdtDbtInd");
        return;
    }
    if (e->booking[0] == '\0' && !camt_entry_booking_fallback(p)) {
        p->st.incomplete = true;
        sink_errorf(p->sink, e->line,
                    "booked entry has no booking date (BookgDt), no value date (ValDt), and the "
                    "%s has no date (FrToDt, CreDtTm)",
                    p->kind);
        return;
    }
    int64_t amount = e->cd * e->amount;
    int64_t charges = e->has_charges ? e->charges : e->rcrd_sum;
    if (e->ndetails == 0) {
        camt_emit_entry(p, amount);
        return;
    }
    if (e->ndetails == 1) {
        int64_t own =
            camt_detail_has_amount(p, &p->held) ? camt_detail_amount(p, &p->held) : amount;
        if (own == amount) {
            camt_emit_detail(p, &p->held, amount, false);
        } else if (own - charges == amount) {
            camt_emit_detail(p, &p->held, own, false);
            camt_emit_charges(p, charges);
        } else {
            p->st.incomplete = true;
            sink_errorf(p->sink, p->held.line,
                        "transaction detail amount %s differs from the entry amount %s",
                        money_format(own, a), money_format(amount, b));
        }
        return;
    }
    if (e->unsplittable) {
        if (e->emitted > 0) {
            p->st.incomplete = true;
            sink_errorf(p->sink, e->line,
                        "entry mixes transaction details with and without their own amount");
            return;
        }
        /* No way to split the amount between the details: one record, without guessing whose
         * remittance or name it carries. It will wait for review rather than match. */
        camt_emit_entry(p, amount);
        return;
    }
    if (e->emitted_sum == amount) {
        return;
    }
    if (e->emitted_sum - charges == amount && charges > 0) {
        camt_emit_charges(p, charges);
        return;
    }
    p->st.incomplete = true;
    sink_errorf(p->sink, e->line,
                "the entry's %d transaction details add up to %s, not the entry amount %s%s%s",
                e->ndetails, money_format(e->emitted_sum, a), money_format(amount, b),
                charges > 0 ? " (charges " : "", charges > 0 ? money_format(charges, c) : "");
}

/* ---- element handlers ---- */

static void camt_on_start(struct camt_parser *p, enum camt_el el)
{
    if (el == E_STMT && p->depth == 3) {
        camt_stmt_start(p);
    } else if (el == E_NTRY && p->in_stmt) {
        if (p->cancelled) {
            return;
        }
        camt_stmt_balances(p);
        camt_report_begin(p);
        memset(&p->e, 0, sizeof p->e);
        p->in_entry = true;
        p->e.line = camt_line(p);
        p->e.index = ++p->entry_index;
    } else if (el == E_TXDTLS && p->in_entry) {
        memset(&p->d, 0, sizeof p->d);
        p->in_detail = true;
        p->d.line = camt_line(p);
        p->d.index = p->e.ndetails + 1;
    } else if (el == E_BAL && p->in_stmt) {
        p->bal_code[0] = '\0';
        p->bal_has_amount = false;
        p->bal_negative = false;
        p->bal_cd = 0;
        p->bal_date[0] = '\0';
        p->bal_ccy[0] = '\0';
        p->bal_line = camt_line(p);
    }
    if (el == E_AMT || el == E_TTLCHRGS) {
        xmlChar *ccy = xmlTextReaderGetAttribute(p->reader, (const xmlChar *)"Ccy");
        p->attr_ccy[0] = '\0';
        if (ccy != NULL) {
            (void)text_currency_code((const char *)ccy, strlen((const char *)ccy), p->attr_ccy);
            xmlFree(ccy);
        }
    }
}

static void camt_party_text(struct camt_parser *p, struct camt_party *party)
{
    const char *s = p->text;
    size_t n = p->text_len;
    text_trim(&s, &n);
    /* Name: Dbtr/Nm (v02) or Dbtr/Pty/Nm (v08+); account: IBAN or Othr/Id; agent: BIC or Nm. */
    bool acct = camt_inside(p, E_DBTRACCT) || camt_inside(p, E_CDTRACCT);
    bool agent = camt_inside(p, E_DBTRAGT) || camt_inside(p, E_CDTRAGT);
    char *dst;
    size_t cap;
    if (acct && (p->stack[p->depth - 1] == E_IBAN || CAMT_AT(p, E_OTHR, E_ID))) {
        dst = party->account;
        cap = sizeof party->account;
    } else if (agent && p->stack[p->depth - 1] == E_BIC) {
        dst = party->bank;
        cap = sizeof party->bank;
    } else if (agent && p->stack[p->depth - 1] == E_NM) {
        if (party->bank[0] != '\0') {
            return; /* a BIC says more than a name */
        }
        dst = party->bank;
        cap = sizeof party->bank;
    } else if (!acct && !agent && p->stack[p->depth - 1] == E_NM && party->name[0] == '\0') {
        dst = party->name;
        cap = sizeof party->name;
    } else {
        return;
    }
    if (n >= cap) {
        party->overflow = true;
        return;
    }
    camt_copy(dst, cap, s, n);
}

static void camt_detail_text(struct camt_parser *p)
{
    struct camt_detail *d = &p->d;
    enum camt_el top = p->stack[p->depth - 1];
    const char *s = p->text;
    size_t n = p->text_len;
    text_trim(&s, &n);
    if (camt_inside(p, E_DBTR) || camt_inside(p, E_DBTRACCT) || camt_inside(p, E_DBTRAGT)) {
        camt_party_text(p, &d->dbtr);
    } else if (camt_inside(p, E_CDTR) || camt_inside(p, E_CDTRACCT) || camt_inside(p, E_CDTRAGT)) {
        camt_party_text(p, &d->cdtr);
    } else if (CAMT_AT(p, E_TXDTLS, E_REFS, E_ACCTSVCRREF)) {
        camt_copy(d->ref, sizeof d->ref, s, n);
    } else if (CAMT_AT(p, E_AMTDTLS, E_TXAMT, E_AMT) || CAMT_AT(p, E_TXDTLS, E_AMT) ||
               CAMT_AT(p, E_AMTDTLS, E_CNTRVALAMT, E_AMT)) {
        /* A detail may state its amount in several currencies (v05+ TxDtls/Amt in the account's,
         * AmtDtls/TxAmt in the payer's, CntrValAmt converted): the one in the entry's currency
         * is the one that adds up, whatever the order. */
        int64_t fen;
        if (d->has_amount && strcmp(d->ccy, p->e.ccy) == 0) {
            return;
        }
        if (camt_amount(p, "transaction detail amount", &fen)) {
            d->has_amount = true;
            d->amount = fen;
            memcpy(d->ccy, p->attr_ccy, 4);
        } else {
            p->e.failed = true;
        }
    } else if (CAMT_AT(p, E_TXDTLS, E_CDTDBTIND)) {
        d->cd = camt_cd(p);
        if (d->cd == 0) {
            p->e.failed = true;
        }
    } else if (top == E_USTRD && camt_inside(p, E_RMTINF)) {
        size_t cur = strlen(d->ustrd);
        if (cur + 1 + n > RECORD_REMIT_MAX) {
            d->text.overflow_mask |= 1u << RF_REMITTANCE;
        } else if (n > 0) {
            if (cur > 0) {
                d->ustrd[cur++] = ' ';
            }
            memcpy(d->ustrd + cur, s, n);
            d->ustrd[cur + n] = '\0';
        }
    } else if (camt_inside(p, E_STRD) &&
               (CAMT_AT(p, E_CDTRREFINF, E_REF) || top == E_ADDTLRMTINF)) {
        record_append(&d->text, RF_REMITTANCE, " | ", s, n);
    } else if (CAMT_AT(p, E_TXDTLS, E_ADDTLTXINF)) {
        camt_copy(d->addtl, sizeof d->addtl, s, n);
    }
}

static void camt_entry_text(struct camt_parser *p)
{
    struct camt_entry *e = &p->e;
    const char *s = p->text;
    size_t n = p->text_len;
    text_trim(&s, &n);
    if (CAMT_AT(p, E_NTRY, E_AMT)) {
        if (camt_amount(p, "entry amount", &e->amount)) {
            e->has_amount = true;
            memcpy(e->ccy, p->attr_ccy, 4);
            if (e->ccy[0] == '\0') {
                sink_errorf(p->sink, camt_line(p), "entry amount has no Ccy attribute");
                e->bad_amount = true;
            }
        } else {
            e->bad_amount = true;
        }
    } else if (CAMT_AT(p, E_NTRY, E_CDTDBTIND)) {
        e->cd = camt_cd(p);
        e->failed = e->failed || e->cd == 0;
    } else if (CAMT_AT(p, E_NTRY, E_RVSLIND)) {
        e->reversal = (n == 4 && memcmp(s, "true", 4) == 0) || (n == 1 && s[0] == '1');
    } else if ((CAMT_AT(p, E_NTRY, E_STS) || CAMT_AT(p, E_NTRY, E_STS, E_CD)) && n > 0) {
        /* v08+ wraps the code in <Sts><Cd>; the outer end carries only whitespace. */
        camt_copy(e->status, sizeof e->status, s, n);
    } else if (CAMT_AT(p, E_NTRY, E_BOOKGDT, E_DT) || CAMT_AT(p, E_NTRY, E_BOOKGDT, E_DTTM)) {
        e->failed = !camt_date(p, e->booking) || e->failed;
    } else if (CAMT_AT(p, E_NTRY, E_VALDT, E_DT) || CAMT_AT(p, E_NTRY, E_VALDT, E_DTTM)) {
        e->failed = !camt_date(p, e->value) || e->failed;
    } else if (CAMT_AT(p, E_NTRY, E_ACCTSVCRREF)) {
        camt_copy(e->ref, sizeof e->ref, s, n);
    } else if (CAMT_AT(p, E_NTRY, E_ADDTLNTRYINF)) {
        camt_copy(e->addtl, sizeof e->addtl, s, n);
    } else if (CAMT_AT(p, E_NTRY, E_CHRGS, E_TTLCHRGS)) {
        int64_t fen;
        if (camt_amount(p, "total charges", &fen)) {
            e->has_charges = true;
            e->charges = fen;
        }
    } else if (CAMT_AT(p, E_NTRY, E_CHRGS, E_AMT) || CAMT_AT(p, E_NTRY, E_CHRGS, E_RCRD, E_AMT)) {
        int64_t fen;
        if (camt_amount(p, "charges", &fen)) {
            e->rcrd_sum += fen;
        }
    }
}

static void camt_stmt_text(struct camt_parser *p)
{
    const char *s = p->text;
    size_t n = p->text_len;
    text_trim(&s, &n);
    if (CAMT_AT(p, E_STMT, E_CREDTTM)) {
        (void)camt_date(p, p->stmt_cre_date);
    } else if (CAMT_AT(p, E_STMT, E_FRTODT, E_TODTTM)) {
        (void)camt_date(p, p->stmt_to_date);
    } else if (CAMT_AT(p, E_STMT, E_ID)) {
        camt_copy(p->stmt_id, sizeof p->stmt_id, s, n);
        snprintf(p->st.label, sizeof p->st.label, "%s %s (line %u)", p->kind, p->stmt_id,
                 p->st.line);
    } else if (CAMT_AT(p, E_STMT, E_ACCT, E_ID, E_IBAN) ||
               CAMT_AT(p, E_STMT, E_ACCT, E_ID, E_OTHR, E_ID)) {
        camt_stmt_account(p);
    } else if (CAMT_AT(p, E_STMT, E_ACCT, E_CCY)) {
        if (!text_currency_code(s, n, p->st.currency)) {
            sink_errorf(p->sink, camt_line(p), "account currency \"%.*s\" is not ISO 4217",
                        (int)(n > 10 ? 10 : n), s);
        }
    } else if (CAMT_AT(p, E_BAL, E_TP, E_CDORPRTRY, E_CD) ||
               CAMT_AT(p, E_BAL, E_TP, E_CDORPRTRY, E_PRTRY)) {
        camt_copy(p->bal_code, sizeof p->bal_code, s, n);
    } else if (CAMT_AT(p, E_BAL, E_AMT)) {
        /* A balance without CdtDbtInd may carry its sign in the amount. */
        bool negative = n > 0 && s[0] == '-';
        if (negative) {
            memmove(p->text, s + 1, n - 1);
            p->text_len = n - 1;
            p->text[p->text_len] = '\0';
        }
        if (camt_amount(p, "balance amount", &p->bal_amount)) {
            p->bal_has_amount = true;
            p->bal_negative = negative;
            p->bal_amount_line = camt_line(p);
            memcpy(p->bal_ccy, p->attr_ccy, 4);
        }
    } else if (CAMT_AT(p, E_BAL, E_CDTDBTIND)) {
        p->bal_cd = camt_cd(p);
    } else if (CAMT_AT(p, E_BAL, E_DT, E_DT) || CAMT_AT(p, E_BAL, E_DT, E_DTTM)) {
        (void)camt_date(p, p->bal_date);
    }
}

/* Called at the end of every element with its text. */
static void camt_on_end(struct camt_parser *p)
{
    enum camt_el el = p->stack[p->depth - 1];
    if (p->text_overflow && (p->in_entry || p->in_stmt)) {
        sink_errorf(p->sink, camt_line(p), "element text longer than %d bytes", CAMT_TEXT_MAX);
        p->e.failed = p->in_entry;
    } else if (p->in_detail) {
        camt_detail_text(p);
    } else if (p->in_entry) {
        camt_entry_text(p);
    } else if (p->in_stmt && !camt_inside(p, E_TXSSUMMRY)) {
        camt_stmt_text(p);
    } else if (!p->in_stmt && CAMT_AT(p, E_GRPHDR, E_CREDTTM)) {
        (void)camt_date(p, p->msg_date);
    }
    if (el == E_TXDTLS && p->in_detail) {
        p->in_detail = false;
        camt_detail_end(p);
    } else if (el == E_NTRY && p->in_entry) {
        p->in_entry = false;
        camt_entry_end(p);
    } else if (el == E_BAL && p->in_stmt) {
        camt_bal_end(p);
    } else if (el == E_STMT && p->in_stmt && p->depth == 3) {
        camt_stmt_end(p);
    }
}

/* Checks the root: Document, then one of the three bank-to-customer messages. */
static bool camt_root(struct camt_parser *p, const char *name, uint32_t line)
{
    if (p->depth == 0) {
        if (strcmp(name, "Document") != 0) {
            sink_errorf(p->sink, line,
                        "not a camt document: the root element is <%s>, not <Document>", name);
            return false;
        }
        return true;
    }
    if (strncmp(name, "BkToCstmr", 9) == 0 && strstr(name, "V01") != NULL) {
        sink_errorf(p->sink, line,
                    "<%s> is the 2007 version 001.01 of camt, which has another shape; ask the "
                    "bank for version 001.02 or later",
                    name);
        return false;
    }
    static const struct {
        const char *el, *format, *kind;
    } msgs[] = {{"BkToCstmrStmt", "camt.053", "statement"},
                {"BkToCstmrAcctRpt", "camt.052", "report"},
                {"BkToCstmrDbtCdtNtfctn", "camt.054", "notification"}};
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(name, msgs[i].el) == 0) {
            p->kind = msgs[i].kind;
            p->is_053 = i == 0;
            p->root_ok = true;
            snprintf(p->opt->format_name, sizeof p->opt->format_name, "%s", msgs[i].format);
            return true;
        }
    }
    sink_errorf(p->sink, line,
                "<Document> holds <%s>, not a camt.052/053/054 message (BkToCstmrAcctRpt, "
                "BkToCstmrStmt, BkToCstmrDbtCdtNtfctn)",
                name);
    return false;
}

/* ---- libxml2 plumbing ---- */

static int64_t camt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool camt_limit(struct camt_parser *p, uint32_t line, const char *fmt, ...) TP_PRINTF(3, 4);
static bool camt_limit(struct camt_parser *p, uint32_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->limit_error, sizeof p->limit_error, fmt, ap);
    va_end(ap);
    p->limit_line = line;
    return false;
}

/* "<!" opens a comment, a CDATA section, or what a statement never has (a DTD). */
static bool camt_scan_bang(struct camt_parser *p, char c)
{
    struct camt_scan *sc = &p->scan;
    sc->bang[sc->bang_len++] = c;
    if (sc->bang_len == 2 && memcmp(sc->bang, "--", 2) == 0) {
        sc->state = SCAN_COMMENT;
        sc->last2[0] = sc->last2[1] = 0;
        return true;
    }
    if (sc->bang_len == 7 && memcmp(sc->bang, "[CDATA[", 7) == 0) {
        sc->state = SCAN_CDATA;
        sc->text_len = 0;
        sc->last2[0] = sc->last2[1] = 0;
        return true;
    }
    if ((sc->bang_len <= 2 && memcmp(sc->bang, "--", sc->bang_len) == 0) ||
        memcmp(sc->bang, "[CDATA[", sc->bang_len) == 0) {
        return true; /* not decided yet */
    }
    return camt_limit(p, sc->tag_line,
                      "a document type declaration (<!DOCTYPE) or another markup declaration; a "
                      "statement has none (no DTD, no entities)");
}

/* One raw byte through the scanner; false when it breaks a bound (p->limit_error says which). */
static bool camt_scan_byte(struct camt_parser *p, char c)
{
    struct camt_scan *sc = &p->scan;
    if (c == '\n') {
        sc->line++;
    }
    switch (sc->state) {
    case SCAN_TEXT:
        if (c == '<') {
            sc->state = SCAN_LT;
            sc->tag_line = sc->line;
            sc->tag_len = 1;
            sc->attrs = 0;
        } else if (++sc->text_len > CAMT_RAW_TEXT_MAX) {
            return camt_limit(p, sc->line, "element text longer than %d bytes", CAMT_RAW_TEXT_MAX);
        }
        return true;
    case SCAN_LT:
        sc->tag_len++;
        if (c == '!') {
            sc->state = SCAN_BANG;
            sc->bang_len = 0;
        } else if (c == '?') {
            sc->state = SCAN_PI;
            sc->last2[0] = sc->last2[1] = 0;
        } else {
            sc->state = SCAN_TAG;
        }
        return true;
    case SCAN_BANG:
        return camt_scan_bang(p, c);
    case SCAN_TAG:
    case SCAN_QUOTE:
        if (++sc->tag_len > CAMT_TAG_MAX) {
            return camt_limit(p, sc->tag_line, "element tag longer than %d bytes", CAMT_TAG_MAX);
        }
        if (sc->state == SCAN_QUOTE) {
            if (c == sc->quote) {
                sc->state = SCAN_TAG;
            }
        } else if (c == '"' || c == '\'') {
            sc->state = SCAN_QUOTE;
            sc->quote = c;
        } else if (c == '=' && ++sc->attrs > CAMT_ATTRS_MAX) {
            return camt_limit(p, sc->tag_line, "element with more than %d attributes",
                              CAMT_ATTRS_MAX);
        } else if (c == '>') {
            sc->state = SCAN_TEXT;
            sc->text_len = 0;
        }
        return true;
    case SCAN_COMMENT:
    case SCAN_CDATA:
    case SCAN_PI: {
        bool end = c == '>' &&
                   ((sc->state == SCAN_COMMENT && sc->last2[0] == '-' && sc->last2[1] == '-') ||
                    (sc->state == SCAN_CDATA && sc->last2[0] == ']' && sc->last2[1] == ']') ||
                    (sc->state == SCAN_PI && sc->last2[1] == '?'));
        sc->last2[0] = sc->last2[1];
        sc->last2[1] = c;
        if (end) {
            sc->state = SCAN_TEXT;
            sc->text_len = 0;
        } else if (sc->state == SCAN_CDATA && ++sc->text_len > CAMT_RAW_TEXT_MAX) {
            return camt_limit(p, sc->line, "element text longer than %d bytes", CAMT_RAW_TEXT_MAX);
        } else if (sc->state != SCAN_CDATA && ++sc->tag_len > CAMT_RAW_TEXT_MAX) {
            return camt_limit(p, sc->tag_line,
                              "comment or processing instruction longer than %d "
                              "bytes",
                              CAMT_RAW_TEXT_MAX);
        }
        return true;
    }
    }
    return true;
}

/*
 * libxml2's input: the file's bytes, each one scanned first. A bound broken, the time up, or a
 * stop requested (SIGTERM) ends the input with an error, which ends libxml2's work at once.
 */
static int camt_read(void *ctx, char *buf, int len)
{
    struct camt_parser *p = ctx;
    struct tp_error err;
    if (p->limit_error[0] != '\0') {
        return -1;
    }
    if (p->sink->cancelled != NULL && p->sink->cancelled(p->sink->ctx)) {
        p->cancelled = true;
        return -1;
    }
    if (p->deadline_ms != 0 && camt_now_ms() > p->deadline_ms) {
        camt_limit(p, p->scan.line,
                   "reading the XML took longer than %g s (IMPORT_XML_TIME_LIMIT_S)",
                   (double)p->opt->xml_time_limit_ms / 1000.0);
        return -1;
    }
    ssize_t n = input_read(p->in, buf, (size_t)len, &err);
    for (ssize_t i = 0; i < n; i++) {
        if (!camt_scan_byte(p, buf[i])) {
            return -1;
        }
    }
    return n < 0 ? -1 : (int)n;
}

static int camt_close(void *ctx)
{
    (void)ctx;
    return 0;
}

static void camt_xml_error(void *arg, const char *msg, xmlParserSeverities severity,
                           xmlTextReaderLocatorPtr locator)
{
    struct camt_parser *p = arg;
    if (severity == XML_PARSER_SEVERITY_WARNING ||
        severity == XML_PARSER_SEVERITY_VALIDITY_WARNING || p->xml_error[0] != '\0') {
        return;
    }
    snprintf(p->xml_error, sizeof p->xml_error, "%s", msg);
    size_t n = strlen(p->xml_error);
    while (n > 0 && (p->xml_error[n - 1] == '\n' || p->xml_error[n - 1] == ' ')) {
        p->xml_error[--n] = '\0';
    }
    /* The parser's position: the locator names the node being built, often lines earlier. */
    (void)locator;
    int line = xmlTextReaderGetParserLineNumber(p->reader);
    p->xml_error_line = line > 0 ? (uint32_t)line : 0;
}

static void camt_text_append(struct camt_parser *p, const char *s)
{
    size_t n = strlen(s);
    if (p->text_len + n > CAMT_TEXT_MAX) {
        p->text_overflow = true;
        return;
    }
    memcpy(p->text + p->text_len, s, n);
    p->text_len += n;
    p->text[p->text_len] = '\0';
}

/* One reader step. Returns false when the document cannot go on (reported). */
static bool camt_step(struct camt_parser *p, int type)
{
    if (type == XML_READER_TYPE_ELEMENT) {
        const char *name = (const char *)xmlTextReaderConstLocalName(p->reader);
        long line = xmlGetLineNo(xmlTextReaderCurrentNode(p->reader));
        if (p->depth < 2 && !camt_root(p, name, line > 0 ? (uint32_t)line : 0)) {
            return false;
        }
        if (p->depth == CAMT_DEPTH_MAX) {
            sink_errorf(p->sink, camt_line(p), "elements nested deeper than %d", CAMT_DEPTH_MAX);
            return false;
        }
        enum camt_el el = camt_lookup(name);
        bool empty = xmlTextReaderIsEmptyElement(p->reader) == 1;
        p->lines[p->depth] = line > 0 ? (uint32_t)line : 0;
        snprintf(p->names[p->depth], sizeof p->names[0], "%s", name);
        p->stack[p->depth++] = el;
        p->text_len = 0;
        p->text[0] = '\0';
        p->text_overflow = false;
        camt_on_start(p, el);
        if (empty) {
            camt_on_end(p);
            p->depth--;
        }
    } else if (type == XML_READER_TYPE_END_ELEMENT) {
        if (p->depth > 0) {
            camt_on_end(p);
            p->depth--;
        }
        p->text_len = 0;
        p->text[0] = '\0';
        p->text_overflow = false;
    } else if (type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_CDATA ||
               type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE) {
        const char *v = (const char *)xmlTextReaderConstValue(p->reader);
        if (v != NULL) {
            camt_text_append(p, v);
        }
    }
    return true;
}

enum tp_status parser_camt_run(struct input *in, struct parse_options *o,
                               const struct parse_sink *sink, struct tp_error *err)
{
    struct camt_parser *p = mem_calloc(1, sizeof *p);
    enum tp_status st = TP_OK;
    p->opt = o;
    p->sink = sink;
    p->in = in;
    p->kind = "statement";
    p->scan.line = 1;
    if (o->xml_time_limit_ms > 0) {
        p->deadline_ms = camt_now_ms() + o->xml_time_limit_ms;
    }
    /* No network, no DTD loading, no entity substitution: a statement is data, not a program. */
    p->reader =
        xmlReaderForIO(camt_read, camt_close, p, NULL, NULL, XML_PARSE_NONET | XML_PARSE_BIG_LINES);
    if (p->reader == NULL) {
        st = error_set(err, TP_FATAL, "libxml2 could not create a reader");
        goto out;
    }
    xmlTextReaderSetErrorHandler(p->reader, camt_xml_error, p);
    int r;
    while ((r = xmlTextReaderRead(p->reader)) == 1) {
        if (!camt_step(p, xmlTextReaderNodeType(p->reader))) {
            st = TP_INVALID;
            goto out;
        }
        if (p->cancelled || p->limit_error[0] != '\0') {
            break;
        }
    }
    if (p->cancelled) {
        goto out; /* stopped on request: nothing to report */
    }
    if (p->limit_error[0] != '\0') {
        sink_errorf(sink, p->limit_line, "refused XML: %s", p->limit_error);
        st = TP_INVALID;
        goto out;
    }
    if (r < 0 || p->xml_error[0] != '\0') {
        uint32_t line = p->xml_error_line != 0 ? p->xml_error_line : camt_line(p);
        bool ended = strstr(p->xml_error, "Extra content at the end") != NULL ||
                     strstr(p->xml_error, "Premature end of data") != NULL;
        if (ended && p->depth > 0) {
            /* libxml2's words for a file cut short are misleading; say what happened. */
            sink_errorf(sink, line, "broken XML: the file ends inside <%s> (line %u): truncated?",
                        p->names[p->depth - 1], p->lines[p->depth - 1]);
        } else {
            sink_errorf(sink, line, "broken XML: %s",
                        p->xml_error[0] ? p->xml_error : "unreadable document");
        }
        st = TP_INVALID;
        goto out;
    }
    if (!p->root_ok) {
        sink_errorf(sink, 0, "no camt.052/053/054 message in the document");
        st = TP_INVALID;
        goto out;
    }
    snprintf(o->encoding_used, sizeof o->encoding_used, "xml");
out:
    if (p->reader != NULL) {
        xmlFreeTextReader(p->reader);
    }
    free(p);
    return st;
}
