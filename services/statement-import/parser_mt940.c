/* SWIFT MT940/MT942: FIN envelope, statements, :61: lines, :86: dialects, balances. */
#include "parser_mt940.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parser.h"
#include "text.h"
#include "topup/mem.h"
#include "topup/money.h"

/* One tag's text, continuation lines included (6 x 65 characters for :86: in the standard;
 * banks write more). Longer fields are refused. */
#define MT940_FIELD_MAX (16 * 1024)

struct mt940_field {
    bool active;
    char tag[5];
    uint32_t line;
    size_t len;
    char text[MT940_FIELD_MAX + 1];
    bool overflow;
};

struct mt940_parser {
    struct parse_options *opt;
    const struct parse_sink *sink;
    struct input_lines *lines;
    struct tp_error *err;

    struct mt940_field field;

    /* Statement in progress. */
    bool in_stmt;
    bool begun; /* statement_begin reported */
    bool is_942;
    bool account_ok;
    bool account_reported;
    bool no_currency_reported;
    bool twice_reported;
    char ref20[MT940_REF_MAX];
    char seq28[MT940_REF_MAX];
    char dt13[MT940_REF_MAX];
    char opening_text[MT940_REF_MAX];
    char account[RECORD_ACCOUNT_MAX + 1];
    struct statement_info st;
    uint32_t last_line;

    /* The pending transaction: :61: and its :86:. */
    bool txn;
    uint32_t txn_line;
    char f61[MT940_FIELD_MAX + 1];
    size_t len61;
    bool has86;
    char f86[MT940_FIELD_MAX + 1];
    size_t len86;

    struct record rec;
    bool cancelled;
    uint32_t n940, n942;
};

/* ---- small field parsers ---- */

static bool mt940_digits(const char *s, size_t n, size_t at, size_t k, int *v)
{
    if (at + k > n) {
        return false;
    }
    int acc = 0;
    for (size_t i = 0; i < k; i++) {
        if (s[at + i] < '0' || s[at + i] > '9') {
            return false;
        }
        acc = acc * 10 + (s[at + i] - '0');
    }
    *v = acc;
    return true;
}

/* YYMMDD: SWIFT two-digit years; 70..99 are the 1900s. */
static bool mt940_date(const char *s, size_t n, size_t at, char out[11])
{
    int v;
    if (!mt940_digits(s, n, at, 6, &v)) {
        return false;
    }
    int yy = v / 10000, m = v / 100 % 100, d = v % 100;
    int y = yy >= 70 ? 1900 + yy : 2000 + yy;
    if (!text_date_valid(y, m, d)) {
        return false;
    }
    if (snprintf(out, 11, "%04d-%02d-%02d", y, m, d) != 10) {
        return false;
    }
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t mt940_days(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void mt940_entry_year(const char value_date[11], int month, int day, char out[11])
{
    int vy = atoi(value_date), vm = atoi(value_date + 5), vd = atoi(value_date + 8);
    int64_t vdays = mt940_days(vy, vm, vd);
    int best_y = 0;
    int64_t best = INT64_MAX;
    for (int y = vy - 1; y <= vy + 1; y++) {
        if (!text_date_valid(y, month, day)) {
            continue;
        }
        int64_t diff = mt940_days(y, month, day) - vdays;
        if (diff < 0) {
            diff = -diff;
        }
        if (diff < best) {
            best = diff;
            best_y = y;
        }
    }
    if (best_y == 0) {
        out[0] = '\0';
        return;
    }
    if (snprintf(out, 11, "%04d-%02d-%02d", best_y, month, day) != 10) {
        out[0] = '\0';
    }
}

/* Amount with a decimal comma: "380115,12", "672,", "000000001000,00". */
static bool mt940_amount(const char *s, size_t n, size_t *at, int64_t *fen, struct tp_error *err)
{
    size_t b = *at;
    size_t e = b;
    while (e < n && ((s[e] >= '0' && s[e] <= '9') || s[e] == ',')) {
        e++;
    }
    if (e == b || memchr(s + b, ',', e - b) == NULL) {
        error_set(err, TP_INVALID, "amount \"%.*s\" has no decimal comma", (int)(e - b), s + b);
        return false;
    }
    if (e - b > 15) {
        error_set(err, TP_INVALID, "amount \"%.*s\" is longer than 15 characters", (int)(e - b),
                  s + b);
        return false;
    }
    if (money_parse_lenient(s + b, e - b, ',', fen, err) != TP_OK) {
        return false;
    }
    *at = e;
    return true;
}

enum tp_status mt940_parse_balance(const char *s, size_t n, char date[11], char currency[4],
                                   int64_t *fen, struct tp_error *err)
{
    text_trim(&s, &n);
    if (n < 1 || (s[0] != 'C' && s[0] != 'D')) {
        return error_set(err, TP_INVALID, "balance \"%.*s\" does not start with C or D",
                         (int)(n > 40 ? 40 : n), s);
    }
    if (!mt940_date(s, n, 1, date)) {
        return error_set(err, TP_INVALID, "balance \"%.*s\" has no valid YYMMDD date",
                         (int)(n > 40 ? 40 : n), s);
    }
    if (n < 10 || !text_currency_code(s + 7, 3, currency) || s[7] < 'A' || s[7] > 'Z') {
        return error_set(err, TP_INVALID, "balance \"%.*s\" has no currency code",
                         (int)(n > 40 ? 40 : n), s);
    }
    size_t at = 10;
    if (!mt940_amount(s, n, &at, fen, err)) {
        return TP_INVALID;
    }
    if (at != n) {
        return error_set(err, TP_INVALID, "balance \"%.*s\" has extra text after the amount",
                         (int)(n > 40 ? 40 : n), s);
    }
    if (s[0] == 'D') {
        *fen = -*fen;
    }
    return TP_OK;
}

static void mt940_copy(char *dst, size_t cap, const char *s, size_t n)
{
    text_trim(&s, &n);
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Length of "YYMMDD[MMDD]R?[CD][A-Z]?" at s when that is all of s[0..n) (blanks allowed). */
static bool mt940_61_head_only(const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\r')) {
        n--;
    }
    size_t at = 0;
    while (at < n && at < 10 && s[at] >= '0' && s[at] <= '9') {
        at++;
    }
    if (at != 6 && at != 10) {
        return false;
    }
    at += at < n && s[at] == 'R';
    if (at >= n || (s[at] != 'C' && s[at] != 'D')) {
        return false;
    }
    at++;
    at += at < n && s[at] >= 'A' && s[at] <= 'Z';
    return at == n;
}

enum tp_status mt940_parse_61(const char *s, size_t n, struct mt940_entry *e, struct tp_error *err)
{
    memset(e, 0, sizeof *e);
    const char *nl = memchr(s, '\n', n);
    /* Sparkassen break the line after the mark: ":61:2403010301C" then "100,00NTRF...". */
    char joined[MT940_61_JOIN_MAX];
    if (nl != NULL && mt940_61_head_only(s, (size_t)(nl - s)) && n < sizeof joined) {
        size_t head = (size_t)(nl - s);
        while (head > 0 && (s[head - 1] == ' ' || s[head - 1] == '\r')) {
            head--;
        }
        memcpy(joined, s, head);
        memcpy(joined + head, nl + 1, n - (size_t)(nl - s) - 1);
        n = head + n - (size_t)(nl - s) - 1;
        joined[n] = '\0';
        s = joined;
        nl = memchr(s, '\n', n);
    }
    size_t first = nl != NULL ? (size_t)(nl - s) : n;
    if (nl != NULL) {
        mt940_copy(e->supplementary, sizeof e->supplementary, nl + 1, n - first - 1);
    }
    n = first;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\r')) {
        n--;
    }
    if (!mt940_date(s, n, 0, e->value_date)) {
        return error_set(err, TP_INVALID, ":61: \"%.*s\" does not start with a YYMMDD value date",
                         (int)(n > 40 ? 40 : n), s);
    }
    size_t at = 6;
    int md;
    if (mt940_digits(s, n, at, 4, &md)) {
        if (!text_date_valid(2000, md / 100, md % 100)) {
            return error_set(err, TP_INVALID, ":61: entry date %04d is not a MMDD date", md);
        }
        mt940_entry_year(e->value_date, md / 100, md % 100, e->entry_date);
        at += 4;
    }
    if (at + 1 < n && s[at] == 'E' && (s[at + 1] == 'C' || s[at + 1] == 'D')) {
        /* MT942's expected credits and debits: announced, not booked, not money received. */
        return error_set(err, TP_INVALID,
                         ":61: is an expected %s (%.2s), not a booked entry; import the statement "
                         "that books it",
                         s[at + 1] == 'C' ? "credit" : "debit", s + at);
    }
    if (at + 1 < n && s[at] == 'R' && (s[at + 1] == 'C' || s[at + 1] == 'D')) {
        e->mark[0] = 'R';
        e->mark[1] = s[at + 1];
        at += 2;
    } else if (at < n && (s[at] == 'C' || s[at] == 'D')) {
        e->mark[0] = s[at];
        at += 1;
    } else {
        return error_set(err, TP_INVALID,
                         ":61: has no debit/credit mark (C, D, RC, RD) at \"%.*s\"",
                         (int)(n - at > 20 ? 20 : n - at), s + at);
    }
    /* Funds code: the third letter of the currency code, before the amount. */
    if (at < n && s[at] >= 'A' && s[at] <= 'Z') {
        e->funds_code = s[at];
        at++;
    }
    /* Some banks (Cuscal) put a blank before the amount. */
    if (at < n && s[at] == ' ') {
        at++;
    }
    if (!mt940_amount(s, n, &at, &e->amount_fen, err)) {
        return TP_INVALID;
    }
    if (at + 4 > n || (s[at] != 'N' && s[at] != 'F' && s[at] != 'S')) {
        return error_set(err, TP_INVALID,
                         ":61: has no transaction type (N, F or S and three characters) after "
                         "the amount");
    }
    memcpy(e->type, s + at, 4);
    e->type[4] = '\0';
    at += 4;
    const char *rest = s + at;
    size_t rn = n - at;
    const char *sl = rn >= 2 ? memmem(rest, rn, "//", 2) : NULL;
    size_t cl = sl != NULL ? (size_t)(sl - rest) : rn;
    mt940_copy(e->customer_ref, sizeof e->customer_ref, rest, cl);
    if (sl != NULL) {
        mt940_copy(e->bank_ref, sizeof e->bank_ref, sl + 2, rn - cl - 2);
    }
    return TP_OK;
}

/* ---- :86: ---- */

/* Copies s without line breaks (structured dialects wrap at 65 characters mid-word). */
static size_t mt940_unwrap(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\n' && s[i] != '\r') {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return o;
}

static const char *const mt940_sepa_keys[] = {"EREF+", "KREF+", "MREF+", "CRED+", "DEBT+", "SVWZ+",
                                              "ABWA+", "ABWE+", "COAM+", "OAMT+", "IBAN+", "BIC+"};

/* The SVWZ+ (purpose) part of a German purpose text, or the whole text. */
static void mt940_sepa_purpose(const char *p, size_t n, struct record *r)
{
    const char *sv = memmem(p, n, "SVWZ+", 5);
    if (sv == NULL) {
        record_set(r, RF_REMITTANCE, p, n);
        return;
    }
    const char *b = sv + 5;
    const char *e = p + n;
    for (size_t k = 0; k < sizeof mt940_sepa_keys / sizeof mt940_sepa_keys[0]; k++) {
        const char *hit =
            memmem(b, (size_t)(e - b), mt940_sepa_keys[k], strlen(mt940_sepa_keys[k]));
        if (hit != NULL && hit < e) {
            e = hit;
        }
    }
    record_set(r, RF_REMITTANCE, b, (size_t)(e - b));
}

static void mt940_86_german(const char *s, size_t n, char sep, struct record *r)
{
    char *buf = mem_alloc(n + 1);
    char *purpose = mem_alloc(n + 1);
    char *name = mem_alloc(n + 1);
    size_t len = mt940_unwrap(s, n, buf);
    size_t pl = 0, nl = 0;
    bool iban = false;
    const char *p = memchr(buf, sep, len);
    while (p != NULL) {
        const char *end = buf + len;
        if (p + 3 > end || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9') {
            p = memchr(p + 1, sep, (size_t)(end - p - 1));
            continue;
        }
        int code = (p[1] - '0') * 10 + (p[2] - '0');
        const char *v = p + 3;
        const char *q = v;
        /* The next "?NN" ends the subfield. */
        while ((q = memchr(q, sep, (size_t)(end - q))) != NULL) {
            if (q + 2 < end && q[1] >= '0' && q[1] <= '9' && q[2] >= '0' && q[2] <= '9') {
                break;
            }
            q++;
        }
        const char *ve = q != NULL ? q : end;
        size_t vn = (size_t)(ve - v);
        if ((code >= 20 && code <= 29) || (code >= 60 && code <= 63)) {
            memcpy(purpose + pl, v, vn);
            pl += vn;
        } else if (code == 32 || code == 33) {
            memcpy(name + nl, v, vn);
            nl += vn;
        } else if (code == 31 && !iban) {
            record_set(r, RF_COUNTERPARTY_ACCOUNT, v, vn);
        } else if (code == 38 && vn > 0) {
            /* ?38 / Polish ~38: the counterparty's IBAN, which says more than ?31's number. */
            record_set(r, RF_COUNTERPARTY_ACCOUNT, v, vn);
            iban = true;
        } else if (code == 30) {
            record_set(r, RF_COUNTERPARTY_BANK, v, vn);
        }
        p = q;
    }
    record_set(r, RF_COUNTERPARTY_NAME, name, nl);
    mt940_sepa_purpose(purpose, pl, r);
    free(buf);
    free(purpose);
    free(name);
}

static const char *const mt940_slash_keys[] = {
    "EREF", "KREF",    "MARF",      "CSID", "TRTP", "IBAN", "BIC",  "NAME", "REMI",
    "ISDT", "BENM",    "ORDP",      "CNTP", "RTRN", "ULTC", "ULTD", "PURP", "SVCL",
    "ADDR", "CDTRREF", "CDTRREFTP", "RTYP", "EXCH", "OCMT", "CHGS", "BUSP", "ID",
};

/* Length of a known "/KEY/" at s (0 when none). */
static size_t mt940_slash_key_at(const char *s, size_t n, const char **key, size_t *key_len)
{
    if (n < 3 || s[0] != '/') {
        return 0;
    }
    for (size_t k = 0; k < sizeof mt940_slash_keys / sizeof mt940_slash_keys[0]; k++) {
        size_t kl = strlen(mt940_slash_keys[k]);
        if (n >= kl + 2 && memcmp(s + 1, mt940_slash_keys[k], kl) == 0 && s[kl + 1] == '/') {
            *key = mt940_slash_keys[k];
            *key_len = kl;
            return kl + 2;
        }
    }
    return 0;
}

static void mt940_86_slash(const char *buf, size_t len, struct record *r)
{
    size_t i = 0;
    const char *key = NULL;
    size_t kl = 0;
    size_t adv = mt940_slash_key_at(buf, len, &key, &kl);
    while (adv > 0) {
        size_t vb = i + adv;
        size_t j = vb;
        const char *next = NULL;
        size_t nkl = 0, nadv = 0;
        while (j < len && (nadv = mt940_slash_key_at(buf + j, len - j, &next, &nkl)) == 0) {
            j++;
        }
        size_t ve = j;
        while (ve > vb && buf[ve - 1] == '/') {
            ve--;
        }
        const char *v = buf + vb;
        size_t vn = ve - vb;
        if (strcmp(key, "NAME") == 0 && r->counterparty_name[0] == '\0') {
            record_set(r, RF_COUNTERPARTY_NAME, v, vn);
        } else if (strcmp(key, "IBAN") == 0 && r->counterparty_account[0] == '\0') {
            record_set(r, RF_COUNTERPARTY_ACCOUNT, v, vn);
        } else if (strcmp(key, "BIC") == 0 && r->counterparty_bank[0] == '\0') {
            record_set(r, RF_COUNTERPARTY_BANK, v, vn);
        } else if (strcmp(key, "REMI") == 0) {
            /* "/REMI/USTD//text/" and "/REMI/STRD/CUR/ref/" carry a type first. */
            if (vn >= 6 && memcmp(v, "USTD//", 6) == 0) {
                v += 6;
                vn -= 6;
            } else if (vn >= 9 && memcmp(v, "STRD/CUR/", 9) == 0) {
                v += 9;
                vn -= 9;
            }
            record_set(r, RF_REMITTANCE, v, vn);
        } else if (strcmp(key, "CNTP") == 0) {
            /* account/BIC/name/city */
            const char *parts[4] = {v, NULL, NULL, NULL};
            size_t lens[4] = {vn, 0, 0, 0};
            int np = 1;
            for (size_t k = 0; k < vn && np < 4; k++) {
                if (v[k] == '/') {
                    lens[np - 1] = (size_t)(v + k - parts[np - 1]);
                    parts[np] = v + k + 1;
                    lens[np] = (size_t)(v + vn - parts[np]);
                    np++;
                }
            }
            if (np >= 3) {
                lens[2] = memchr(parts[2], '/', lens[2]) != NULL
                              ? (size_t)((const char *)memchr(parts[2], '/', lens[2]) - parts[2])
                              : lens[2];
            }
            record_set(r, RF_COUNTERPARTY_ACCOUNT, parts[0], lens[0]);
            if (np >= 2) {
                record_set(r, RF_COUNTERPARTY_BANK, parts[1], lens[1]);
            }
            if (np >= 3) {
                record_set(r, RF_COUNTERPARTY_NAME, parts[2], lens[2]);
            }
        }
        i = j;
        key = next;
        kl = nkl;
        adv = nadv;
    }
}

/* The separator of a ZKA-style text ("166?00...", Polish "020~00...", "020<00..."), or 0. */
static char mt940_86_separator(const char *s, size_t n)
{
    if (n < 4 || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9') {
        return 0;
    }
    return s[3] == '?' || s[3] == '~' || s[3] == '<' ? s[3] : 0;
}

void mt940_parse_86(const char *s, size_t n, struct record *r)
{
    text_trim(&s, &n);
    char sep = mt940_86_separator(s, n);
    if (sep != 0) {
        mt940_86_german(s, n, sep, r);
        return;
    }
    char *buf = mem_alloc(n + 1);
    size_t len = mt940_unwrap(s, n, buf);
    const char *key;
    size_t kl;
    if (mt940_slash_key_at(buf, len, &key, &kl) > 0) {
        mt940_86_slash(buf, len, r);
        free(buf);
        return;
    }
    free(buf);
    /* Free text: lines joined by a space (a reference code split over two lines still reads). */
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t ln = nl != NULL ? (size_t)(nl - (s + i)) : n - i;
        record_append(r, RF_REMITTANCE, " ", s + i, ln);
        i += ln + 1;
    }
}

/* ---- the statement driver ---- */

/* How messages name the statement: ":20:REF :28C:SEQ (line N)". */
static void mt940_label(struct mt940_parser *p)
{
    if (p->ref20[0] == '\0') {
        snprintf(p->st.label, sizeof p->st.label, "statement without :20: (line %u)", p->st.line);
    } else if (snprintf(p->st.label, sizeof p->st.label, "statement :20:%s%s%s (line %u)", p->ref20,
                        p->seq28[0] ? " :28C:" : "", p->seq28,
                        p->st.line) >= (int)sizeof p->st.label) {
        p->st.label[sizeof p->st.label - 1] = '\0';
    }
}

static void mt940_stmt_begin(struct mt940_parser *p, uint32_t line)
{
    memset(&p->st, 0, sizeof p->st);
    p->in_stmt = true;
    p->begun = false;
    p->is_942 = false;
    p->account_ok = false;
    p->account_reported = false;
    p->no_currency_reported = false;
    p->ref20[0] = p->seq28[0] = p->dt13[0] = p->opening_text[0] = '\0';
    p->account[0] = '\0';
    p->st.line = line;
    mt940_label(p);
}

/* statement_begin is reported once the account and currency are known (first entry or end). */
static void mt940_report_begin(struct mt940_parser *p)
{
    if (p->begun) {
        return;
    }
    p->begun = true;
    p->sink->statement_begin(p->sink->ctx, &p->st);
}

/* An IBAN or account number: 8..34 letters and digits, at least 6 digits. */
static bool mt940_looks_like_account(const char *s)
{
    size_t n = strlen(s), digits = 0;
    if (n < 8 || n > 34) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        bool digit = s[i] >= '0' && s[i] <= '9';
        if (!digit && !(s[i] >= 'A' && s[i] <= 'Z')) {
            return false;
        }
        digits += digit;
    }
    return digits >= 6;
}

static void mt940_emit(struct mt940_parser *p)
{
    if (!p->txn) {
        return;
    }
    p->txn = false;
    mt940_report_begin(p);
    struct mt940_entry e;
    struct tp_error err;
    if (mt940_parse_61(p->f61, p->len61, &e, &err) != TP_OK) {
        sink_errorf(p->sink, p->txn_line, "%s", err.msg);
        p->st.incomplete = true;
        return;
    }
    if (!p->account_ok || p->st.currency[0] == '\0') {
        p->st.incomplete = true;
    }
    if (!p->account_ok) {
        if (!p->account_reported) {
            p->account_reported = true;
            sink_errorf(p->sink, p->txn_line, "%s has no usable account (:25:)", p->st.label);
        }
        return;
    }
    if (p->st.currency[0] == '\0') {
        if (!p->no_currency_reported) {
            p->no_currency_reported = true;
            sink_errorf(p->sink, p->txn_line,
                        ":61: before the opening balance (:60F:) that gives the currency");
        }
        return;
    }
    struct record *r = &p->rec;
    record_reset(r);
    r->line = p->txn_line;
    snprintf(r->location, sizeof r->location, "line %u", p->txn_line);
    memcpy(r->receiving_account, p->account, sizeof r->receiving_account);
    memcpy(r->currency, p->st.currency, 4);
    memcpy(r->value_date, e.value_date, 11);
    memcpy(r->booking_date, e.entry_date[0] ? e.entry_date : e.value_date, 11);
    bool debit = e.mark[0] == 'D' || (e.mark[0] == 'R' && e.mark[1] == 'C');
    r->reversal = e.mark[0] == 'R';
    r->amount_fen = debit ? -e.amount_fen : e.amount_fen;
    if (e.bank_ref[0] != '\0' && strcmp(e.bank_ref, "NONREF") != 0) {
        record_set(r, RF_BANK_TXN_ID, e.bank_ref, strlen(e.bank_ref));
    }
    if (p->has86) {
        mt940_parse_86(p->f86, p->len86, r);
    }
    /* Rabobank puts the counter account in the supplementary details of :61:. */
    if (r->counterparty_account[0] == '\0' && mt940_looks_like_account(e.supplementary)) {
        record_set(r, RF_COUNTERPARTY_ACCOUNT, e.supplementary, strlen(e.supplementary));
    }
    p->sink->record(p->sink->ctx, r);
    if (p->sink->cancelled != NULL && p->sink->cancelled(p->sink->ctx)) {
        p->cancelled = true;
    }
}

static void mt940_stmt_end(struct mt940_parser *p)
{
    if (!p->in_stmt) {
        return;
    }
    mt940_emit(p);
    mt940_report_begin(p);
    p->in_stmt = false;
    p->st.end_line = p->last_line;
    if (p->st.closing_line == 0) {
        p->st.closing_line = p->last_line;
    }
    p->st.balances_required = !p->is_942;
    if (p->is_942) {
        p->n942++;
    } else {
        p->n940++;
    }
    memcpy(p->st.account, p->account, sizeof p->st.account);
    /* A key that does not fit is cut; it still tells statements apart in practice. */
    if (snprintf(p->st.key, sizeof p->st.key, "%s|%s|%s|%s|%s", p->account, p->ref20, p->seq28,
                 p->opening_text, p->dt13) >= (int)sizeof p->st.key) {
        p->st.key[sizeof p->st.key - 1] = '\0';
    }
    p->sink->statement_end(p->sink->ctx, &p->st);
}

static void mt940_set_currency(struct mt940_parser *p, const char *ccy, uint32_t line)
{
    if (p->st.currency[0] == '\0') {
        memcpy(p->st.currency, ccy, 4);
    } else if (strcmp(p->st.currency, ccy) != 0) {
        sink_errorf(p->sink, line, "currency %s differs from the statement's %s", ccy,
                    p->st.currency);
    }
}

static void mt940_balance(struct mt940_parser *p, const char *tag, const char *s, size_t n,
                          uint32_t line)
{
    char date[11], ccy[4];
    int64_t fen;
    struct tp_error err;
    if (mt940_parse_balance(s, n, date, ccy, &fen, &err) != TP_OK) {
        sink_errorf(p->sink, line, ":%s: %s", tag, err.msg);
        return;
    }
    if (tag[0] == '6' && tag[1] == '0') {
        if (p->st.has_opening) {
            sink_errorf(p->sink, line, "second opening balance (:%s:) in %s", tag, p->st.label);
            return;
        }
        p->st.has_opening = true;
        p->st.opening_fen = fen;
        p->st.opening_line = line;
        memcpy(p->st.opening_ccy, ccy, 4);
        memcpy(p->st.opening_date, date, 11);
        mt940_copy(p->opening_text, sizeof p->opening_text, s, n);
        mt940_set_currency(p, ccy, line);
    } else {
        if (p->st.has_closing) {
            sink_errorf(p->sink, line, "second closing balance (:%s:) in %s", tag, p->st.label);
            return;
        }
        p->st.has_closing = true;
        p->st.closing_fen = fen;
        p->st.closing_line = line;
        memcpy(p->st.closing_ccy, ccy, 4);
        memcpy(p->st.closing_date, date, 11);
    }
}

/* :90D:/:90C: "3PLN0,03": number of entries, currency, sum. */
static void mt940_sum(struct mt940_parser *p, bool debit, const char *s, size_t n, uint32_t line)
{
    text_trim(&s, &n);
    size_t i = 0;
    int64_t count = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9' && i < 5) {
        count = count * 10 + (s[i] - '0');
        i++;
    }
    char ccy[4];
    int64_t fen;
    struct tp_error err;
    if (i == 0 || i + 3 > n || !text_currency_code(s + i, 3, ccy)) {
        sink_errorf(p->sink, line, ":90%c: \"%.*s\" is not a count, currency and amount",
                    debit ? 'D' : 'C', (int)(n > 40 ? 40 : n), s);
        return;
    }
    size_t at = i + 3;
    if (!mt940_amount(s, n, &at, &fen, &err) || at != n) {
        sink_errorf(p->sink, line, ":90%c: %s", debit ? 'D' : 'C',
                    at != n ? "extra text after the amount" : err.msg);
        return;
    }
    mt940_set_currency(p, ccy, line);
    if (debit) {
        p->st.has_debit_sum = true;
        p->st.debit_count = count;
        p->st.debit_sum_fen = fen;
    } else {
        p->st.has_credit_sum = true;
        p->st.credit_count = count;
        p->st.credit_sum_fen = fen;
    }
}

static void mt940_account(struct mt940_parser *p, const char *s, size_t n, uint32_t line)
{
    char raw[RECORD_ACCOUNT_MAX + 1];
    struct tp_error err;
    text_trim(&s, &n);
    /* Polish banks write ":25:/PL27...": the slash is no part of the IBAN. */
    if (n > 1 && s[0] == '/') {
        s++;
        n--;
    }
    if (n == 0 || n > RECORD_ACCOUNT_MAX) {
        sink_errorf(p->sink, line, ":25: account \"%.*s\" is empty or longer than %d characters",
                    (int)(n > 40 ? 40 : n), s, RECORD_ACCOUNT_MAX);
        p->account_reported = true;
        return;
    }
    memcpy(raw, s, n);
    raw[n] = '\0';
    if (account_resolve(raw, p->opt->account, p->account, &err) != TP_OK) {
        sink_errorf(p->sink, line, "%s", err.msg);
        p->account_reported = true;
        return;
    }
    p->account_ok = true;
}

/*
 * A :86: of the pending transaction. Several in a row (Rabobank splits its structured text over
 * :86: lines; ING Poland sends ":86:020" and then ":86:020~00...") are one text, joined by line
 * breaks as if they were continuation lines.
 */
static void mt940_add_86(struct mt940_parser *p, const char *s, size_t n, uint32_t line)
{
    if (!p->has86) {
        memcpy(p->f86, s, n + 1);
        p->len86 = n;
        p->has86 = true;
        return;
    }
    /* A lone transaction code repeated at the start of the next :86: is said once. */
    if (p->len86 == 3 && n > 3 && memcmp(p->f86, s, 3) == 0 && mt940_86_separator(s, n) != 0) {
        p->len86 = 0;
    }
    if (p->len86 + 1 + n > MT940_FIELD_MAX) {
        sink_errorf(p->sink, line, "the :86: texts of the :61: at line %u are longer than %d bytes",
                    p->txn_line, MT940_FIELD_MAX);
        p->st.incomplete = true;
        p->txn = false;
        return;
    }
    if (p->len86 > 0) {
        p->f86[p->len86++] = '\n';
    }
    memcpy(p->f86 + p->len86, s, n + 1);
    p->len86 += n;
}

static void mt940_field_done(struct mt940_parser *p)
{
    struct mt940_field *f = &p->field;
    if (!f->active) {
        return;
    }
    f->active = false;
    const char *tag = f->tag;
    const char *s = f->text;
    size_t n = f->len;
    if (f->overflow) {
        sink_errorf(p->sink, f->line, ":%s: longer than %d bytes", tag, MT940_FIELD_MAX);
        return;
    }
    if (strcmp(tag, "20") == 0) {
        mt940_stmt_end(p);
        mt940_stmt_begin(p, f->line);
        mt940_copy(p->ref20, sizeof p->ref20, s, n);
        mt940_label(p);
        return;
    }
    if (!p->in_stmt && strcmp(tag, "25") == 0) {
        /* ABN AMRO's downloads open each statement with :25: and have no :20: at all. */
        mt940_stmt_begin(p, f->line);
    } else if (!p->in_stmt) {
        /* A statement must open with :20:; carry on so later problems are found too. */
        sink_errorf(p->sink, f->line, ":%s: before the :20: that opens a statement", tag);
        mt940_stmt_begin(p, f->line);
    }
    if (strcmp(tag, "61") == 0) {
        mt940_emit(p);
        p->txn = true;
        p->txn_line = f->line;
        memcpy(p->f61, s, n + 1);
        p->len61 = n;
        p->has86 = false;
        return;
    }
    if (strcmp(tag, "86") == 0) {
        if (p->txn) {
            mt940_add_86(p, s, n, f->line);
        }
        /* After the closing balance it is information for the account owner, not an entry's. */
        return;
    }
    if (strcmp(tag, "NS") == 0 || strcmp(tag, "21") == 0) {
        return;
    }
    mt940_emit(p);
    if (strcmp(tag, "25") == 0) {
        mt940_account(p, s, n, f->line);
    } else if (strcmp(tag, "28") == 0 || strcmp(tag, "28C") == 0) {
        mt940_copy(p->seq28, sizeof p->seq28, s, n);
        mt940_label(p);
    } else if (strcmp(tag, "60F") == 0 || strcmp(tag, "60M") == 0 || strcmp(tag, "62F") == 0 ||
               strcmp(tag, "62M") == 0) {
        mt940_balance(p, tag, s, n, f->line);
    } else if (strcmp(tag, "34F") == 0) {
        char ccy[4];
        p->is_942 = true;
        if (n >= 3 && text_currency_code(s, 3, ccy)) {
            mt940_set_currency(p, ccy, f->line);
        } else {
            sink_errorf(p->sink, f->line, ":34F: \"%.*s\" does not start with a currency",
                        (int)(n > 40 ? 40 : n), s);
        }
    } else if (strcmp(tag, "13D") == 0 || strcmp(tag, "13") == 0) {
        p->is_942 = p->is_942 || !p->st.has_opening;
        mt940_copy(p->dt13, sizeof p->dt13, s, n);
    } else if (strcmp(tag, "90D") == 0 || strcmp(tag, "90C") == 0) {
        mt940_sum(p, tag[2] == 'D', s, n, f->line);
    }
    /* :64:, :65: (available balances) and unknown tags carry nothing we publish. */
}

/* ":20:", ":28C:", ":NS:" at the start of a line: tag length including both colons. */
static size_t mt940_tag_len(const char *s, size_t n)
{
    if (n >= 4 && s[0] == ':' && s[1] == 'N' && s[2] == 'S' && s[3] == ':') {
        return 4;
    }
    if (n < 4 || s[0] != ':' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9') {
        return 0;
    }
    if (s[3] == ':') {
        return 4;
    }
    if (n >= 5 && s[3] >= 'A' && s[3] <= 'Z' && s[4] == ':') {
        return 5;
    }
    return 0;
}

static void mt940_field_append(struct mt940_field *f, const char *s, size_t n, bool newline)
{
    size_t need = f->len + (newline ? 1 : 0) + n;
    if (need > MT940_FIELD_MAX) {
        f->overflow = true;
        return;
    }
    if (newline) {
        f->text[f->len++] = '\n';
    }
    memcpy(f->text + f->len, s, n);
    f->len += n;
    f->text[f->len] = '\0';
}

static void mt940_line(struct mt940_parser *p, const char *s, size_t n, uint32_t line)
{
    /* SOH/ETX framing bytes of transmission files. */
    while (n > 0 && (s[0] == 0x01 || s[0] == 0x03)) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == 0x03 || s[n - 1] == 0x01)) {
        n--;
    }
    /* FIN envelope: "{1:...}{2:...}{4:" opens block 4, "-}" closes it. */
    if (n > 0 && s[0] == '{') {
        const char *b4 = memmem(s, n, "{4:", 3);
        mt940_field_done(p);
        if (b4 == NULL) {
            return;
        }
        size_t skip = (size_t)(b4 + 3 - s);
        s += skip;
        n -= skip;
    }
    const char *t = s;
    size_t tn = n;
    text_trim(&t, &tn);
    if (tn == 0) {
        return;
    }
    if ((tn == 1 && t[0] == '-') || (tn >= 2 && t[0] == '-' && t[1] == '}')) {
        /* End of a message, and so of its statement (an MT940 message carries one). */
        mt940_field_done(p);
        mt940_stmt_end(p);
        return;
    }
    size_t tl = mt940_tag_len(s, n);
    if (tl > 0) {
        mt940_field_done(p);
        struct mt940_field *f = &p->field;
        f->active = true;
        f->overflow = false;
        memcpy(f->tag, s + 1, tl - 2);
        f->tag[tl - 2] = '\0';
        f->line = line;
        f->len = 0;
        f->text[0] = '\0';
        mt940_field_append(f, s + tl, n - tl, false);
        return;
    }
    if (p->field.active) {
        mt940_field_append(&p->field, s, n, true);
    }
    /* Anything else outside a field is a transmission header ("ABNANL2A", "940"): skipped. */
}

enum tp_status parser_mt940_run(struct input *in, struct parse_options *o,
                                const struct parse_sink *sink, struct tp_error *err)
{
    struct mt940_parser *p = mem_calloc(1, sizeof *p);
    enum tp_status st = TP_OK;
    p->opt = o;
    p->sink = sink;
    p->err = err;
    p->lines = input_lines_new(in, o->encoding, INPUT_FALLBACK_NONE, err);
    if (p->lines == NULL) {
        sink_errorf(sink, 0, "%s", err->msg);
        st = TP_INVALID;
        goto out;
    }
    bool any = false;
    for (;;) {
        const char *line;
        size_t len;
        uint32_t no;
        int r = input_lines_next(p->lines, &line, &len, &no, err);
        if (r < 0) {
            if (err->status == TP_FATAL) {
                st = TP_FATAL;
                goto out;
            }
            sink_errorf(sink, no, "%s", err->msg);
            st = TP_INVALID;
            goto out;
        }
        if (r == 0) {
            break;
        }
        p->last_line = no;
        any = true;
        mt940_line(p, line, len, no);
        if (p->cancelled) {
            goto out;
        }
    }
    mt940_field_done(p);
    mt940_stmt_end(p);
    if (!any) {
        sink_errorf(sink, 0, "the file is empty");
        st = TP_INVALID;
    }
    snprintf(o->encoding_used, sizeof o->encoding_used, "%s", input_lines_encoding(p->lines));
    /* Named at the end, so both passes label their records alike. */
    snprintf(o->format_name, sizeof o->format_name, "%s",
             p->n942 > 0 && p->n940 == 0 ? "mt942" : "mt940");
out:
    input_lines_free(p->lines);
    free(p);
    return st;
}
