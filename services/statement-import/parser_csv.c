/* CSV/text exports of Chinese banks: header detection, title/footer lines, amounts, encodings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parser.h"
#include "text.h"
#include "topup/mem.h"
#include "topup/money.h"

#define CSV_CELLS_MAX         256
#define CSV_RECORD_MAX        (64 * 1024) /* one row, quoted line breaks included */
#define CSV_HEADER_SCAN_LINES 64          /* the header row must be among the first lines */
#define CSV_REMIT_COLS_MAX    16
#define CSV_NORM_MAX          256
#define CSV_AMOUNT_MAX        64

/* A row that names a total, not a transaction: it starts the footer. */
static const char *const csv_footer_words[] = {
    "合计", "总计", "小计", "汇总", "累计", "共计", "笔数", "以下空白", "以下为空", "本页", "total",
};
/* A row without amount that only states a balance. */
static const char *const csv_balance_words[] = {"期初余额", "上日余额", "承前页",
                                                "期末余额", "本日余额", "过次页"};

struct csv_cell {
    const char *s;
    size_t n;
};

struct csv_layout {
    const struct csv_profile *prof;
    char delim;
    int col[CF_COUNT_];
    int remit[CSV_REMIT_COLS_MAX];
    int nremit;
    int score;
};

struct csv_parser {
    struct parse_options *opt;
    const struct parse_sink *sink;
    struct input_lines *lines;
    struct tp_error *err;
    struct arena *arena;

    /* Current row. */
    const char *line;
    size_t line_len;
    uint32_t line_no;
    char *joined; /* rows with quoted line breaks are joined here */
    char *cellbuf;
    struct csv_cell cells[CSV_CELLS_MAX];
    int ncells;

    /* Lines before the header (title, account, period), kept for the header area. */
    char *scan[CSV_HEADER_SCAN_LINES];
    size_t scan_len[CSV_HEADER_SCAN_LINES];
    int nscan;

    struct csv_layout lay;
    char *col_name[CSV_CELLS_MAX]; /* header text per column, for messages */
    int ncols;
    int primary_col;
    enum csv_field primary;
    uint32_t header_line;
    uint32_t footer_line;

    char file_account[RECORD_ACCOUNT_MAX + 1];
    char file_currency[4];
    char default_currency[4];

    /* The last own-account cell and what it resolved to (the same value on every row). */
    bool own_cached;
    char own_raw[RECORD_ACCOUNT_MAX + 1];
    char own_resolved[RECORD_ACCOUNT_MAX + 1];
    bool own_ok;
    bool own_reported; /* the account problem is listed once, at its first row */
    char own_err[ERROR_MSG_MAX];

    struct record rec;
    bool cancelled;
};

/* ---- splitting ---- */

/* Splits s into cells. Returns 1, 0 when a quoted cell is still open at the end, -1 when the
 * row has too many cells. */
static int csv_split(struct csv_parser *p, const char *s, size_t n, char delim)
{
    size_t i = 0;
    size_t cb = 0;
    p->ncells = 0;
    for (;;) {
        if (p->ncells == CSV_CELLS_MAX) {
            return -1;
        }
        struct csv_cell *c = &p->cells[p->ncells++];
        size_t j = i;
        while (j < n && (s[j] == ' ' || s[j] == '\t') && s[j] != delim) {
            j++;
        }
        if (j < n && s[j] == '"') {
            size_t start = cb;
            size_t k = j + 1;
            for (;;) {
                if (k >= n) {
                    return 0;
                }
                if (s[k] == '"') {
                    if (k + 1 < n && s[k + 1] == '"') {
                        p->cellbuf[cb++] = '"';
                        k += 2;
                        continue;
                    }
                    k++;
                    break;
                }
                p->cellbuf[cb++] = s[k++];
            }
            /* Text after the closing quote up to the delimiter is kept (lenient). */
            while (k < n && s[k] != delim) {
                p->cellbuf[cb++] = s[k++];
            }
            c->s = p->cellbuf + start;
            c->n = cb - start;
            i = k;
        } else {
            const char *d = delim != 0 ? memchr(s + i, delim, n - i) : NULL;
            size_t e = d != NULL ? (size_t)(d - s) : n;
            c->s = s + i;
            c->n = e - i;
            i = e;
        }
        if (i >= n) {
            return 1;
        }
        i++; /* the delimiter */
    }
}

/* Cell text of column col in the current row ("" when the row is short). */
static struct csv_cell csv_cell(const struct csv_parser *p, int col)
{
    struct csv_cell c = {"", 0};
    if (col >= 0 && col < p->ncells) {
        c = p->cells[col];
        text_trim(&c.s, &c.n);
        /* Excel text guards: ="123" and a leading apostrophe. */
        if (c.n >= 3 && c.s[0] == '=' && c.s[1] == '"' && c.s[c.n - 1] == '"') {
            c.s += 2;
            c.n -= 3;
        }
        text_trim(&c.s, &c.n);
    }
    return c;
}

static bool csv_row_blank(const struct csv_parser *p)
{
    if (p->ncells > 0 && p->cells[0].n > 0 && (unsigned char)p->cells[0].s[0] > ' ' &&
        (unsigned char)p->cells[0].s[0] < 0x80) {
        return false;
    }
    for (int i = 0; i < p->ncells; i++) {
        struct csv_cell c = csv_cell(p, i);
        if (c.n > 0) {
            return false;
        }
    }
    return true;
}

static bool csv_row_has_word(const struct csv_parser *p, const char *const *words, size_t nw)
{
    for (int i = 0; i < p->ncells; i++) {
        for (size_t w = 0; w < nw; w++) {
            if (text_contains(p->cells[i].s, p->cells[i].n, words[w])) {
                return true;
            }
        }
    }
    return false;
}

/* ---- header detection ---- */

static void csv_layout_match(const struct csv_parser *p, const struct csv_profile *prof, char delim,
                             struct csv_layout *lay)
{
    memset(lay, 0, sizeof *lay);
    lay->prof = prof;
    lay->delim = delim;
    for (int f = 0; f < CF_COUNT_; f++) {
        lay->col[f] = -1;
    }
    char norm[CSV_NORM_MAX];
    for (int i = 0; i < p->ncells; i++) {
        size_t n = text_normalize_header(p->cells[i].s, p->cells[i].n, norm, sizeof norm);
        if (n == 0) {
            continue;
        }
        for (int f = CF_NONE + 1; f < CF_COUNT_; f++) {
            if (!csv_list_has(prof->columns[f], norm, n)) {
                continue;
            }
            if (f == CF_REMITTANCE) {
                if (lay->nremit < CSV_REMIT_COLS_MAX) {
                    lay->remit[lay->nremit++] = i;
                    lay->score++;
                }
            } else if (lay->col[f] < 0) {
                lay->col[f] = i;
                lay->score++;
            }
            break;
        }
    }
    bool date =
        lay->col[CF_BOOKING_DATE] >= 0 || lay->col[CF_TXN_DATE] >= 0 || lay->col[CF_TIME] >= 0;
    bool amount = lay->col[CF_AMOUNT] >= 0 || lay->col[CF_CREDIT] >= 0 || lay->col[CF_DEBIT] >= 0;
    if (!date || !amount || lay->score < 3) {
        lay->score = 0;
    }
}

/* Ranks a candidate: more matched columns wins; the generic profile loses ties. */
static int csv_layout_rank(const struct csv_layout *l)
{
    return l->score * 2 - (l->prof->generic ? 1 : 0);
}

static void csv_try_profiles(struct csv_parser *p, char delim, struct csv_layout *best)
{
    struct csv_layout cand;
    if (p->opt->csv_profile != NULL) {
        csv_layout_match(p, p->opt->csv_profile, delim, &cand);
        if (cand.score > 0 &&
            (best->score == 0 || csv_layout_rank(&cand) > csv_layout_rank(best))) {
            *best = cand;
        }
        return;
    }
    const struct csv_profile_set *custom = p->opt->csv_custom;
    for (int i = 0; custom != NULL && i < custom->n; i++) {
        csv_layout_match(p, &custom->profiles[i], delim, &cand);
        if (cand.score > 0 &&
            (best->score == 0 || csv_layout_rank(&cand) > csv_layout_rank(best))) {
            *best = cand;
        }
    }
    int nb;
    const struct csv_profile *b = csv_profiles_builtin(&nb);
    for (int i = 0; i < nb; i++) {
        csv_layout_match(p, &b[i], delim, &cand);
        if (cand.score > 0 &&
            (best->score == 0 || csv_layout_rank(&cand) > csv_layout_rank(best))) {
            *best = cand;
        }
    }
}

/* Tries the current line as the header row with every delimiter. */
static bool csv_detect_header(struct csv_parser *p)
{
    static const char delims[] = {',', '\t', ';', '|'};
    struct csv_layout best;
    memset(&best, 0, sizeof best);
    for (size_t d = 0; d < sizeof delims; d++) {
        char delim = delims[d];
        if (p->opt->csv_profile != NULL && p->opt->csv_profile->delimiter != 0 &&
            p->opt->csv_profile->delimiter != delim) {
            continue;
        }
        if (memchr(p->line, delim, p->line_len) == NULL) {
            continue;
        }
        if (csv_split(p, p->line, p->line_len, delim) != 1 || p->ncells < 3) {
            continue;
        }
        csv_try_profiles(p, delim, &best);
    }
    if (best.score == 0) {
        return false;
    }
    p->lay = best;
    return true;
}

/* Remembers the column names of the header row (split with the chosen delimiter). */
static void csv_keep_names(struct csv_parser *p)
{
    p->ncols = p->ncells;
    for (int i = 0; i < p->ncells; i++) {
        struct csv_cell c = csv_cell(p, i);
        p->col_name[i] = arena_strndup(p->arena, c.s, c.n);
    }
}

static const char *csv_col_name(const struct csv_parser *p, int col)
{
    if (col >= 0 && col < p->ncols && p->col_name[col][0] != '\0') {
        return p->col_name[col];
    }
    return "?";
}

static void csv_choose_primary(struct csv_parser *p)
{
    static const enum csv_field order[] = {CF_BOOKING_DATE, CF_TXN_DATE, CF_TIME};
    for (size_t i = 0; i < 3; i++) {
        if (p->lay.col[order[i]] >= 0) {
            p->primary = order[i];
            p->primary_col = p->lay.col[order[i]];
            return;
        }
    }
}

/*
 * A second header row under a spanning cell (CCB: "发生额/元" over "借方 | 贷方"): merge the
 * names ("发生额借方") and match again. True when the merged header matches better.
 */
static bool csv_try_subheader(struct csv_parser *p)
{
    bool has_side = false;
    char norm[CSV_NORM_MAX];
    for (int i = 0; i < p->ncells; i++) {
        size_t n = text_normalize_header(p->cells[i].s, p->cells[i].n, norm, sizeof norm);
        if (n > 0 && (strcmp(norm, "借方") == 0 || strcmp(norm, "贷方") == 0 ||
                      strcmp(norm, "借") == 0 || strcmp(norm, "贷") == 0)) {
            has_side = true;
        }
    }
    if (!has_side) {
        return false;
    }
    int n = p->ncols > p->ncells ? p->ncols : p->ncells;
    char *merged[CSV_CELLS_MAX];
    const char *parent = "";
    for (int i = 0; i < n; i++) {
        const char *h = i < p->ncols ? p->col_name[i] : "";
        if (h[0] != '\0') {
            parent = h;
        }
        struct csv_cell sub = csv_cell(p, i);
        const char *base = h[0] != '\0' ? h : (sub.n > 0 ? parent : "");
        size_t bl = strlen(base);
        merged[i] = arena_alloc(p->arena, bl + sub.n + 1);
        memcpy(merged[i], base, bl);
        memcpy(merged[i] + bl, sub.s, sub.n);
        merged[i][bl + sub.n] = '\0';
    }
    struct csv_cell saved[CSV_CELLS_MAX];
    int saved_n = p->ncells;
    memcpy(saved, p->cells, sizeof(struct csv_cell) * (size_t)saved_n);
    for (int i = 0; i < n; i++) {
        p->cells[i].s = merged[i];
        p->cells[i].n = strlen(merged[i]);
    }
    p->ncells = n;
    /* The merged names may fit another profile better (one that needs 借方/贷方 columns). */
    struct csv_layout best;
    memset(&best, 0, sizeof best);
    csv_try_profiles(p, p->lay.delim, &best);
    if (best.score > 0 && csv_layout_rank(&best) > csv_layout_rank(&p->lay)) {
        p->lay = best;
        csv_keep_names(p);
        return true;
    }
    memcpy(p->cells, saved, sizeof(struct csv_cell) * (size_t)saved_n);
    p->ncells = saved_n;
    return false;
}

/* Reads "卡号: 1234****9876", "账号 | | 6222..." and "币种：人民币" from the lines above. */
static void csv_header_area(struct csv_parser *p)
{
    const struct csv_profile *prof = p->lay.prof;
    char norm[CSV_NORM_MAX];
    for (int li = 0; li < p->nscan; li++) {
        if (csv_split(p, p->scan[li], p->scan_len[li], p->lay.delim) != 1) {
            continue;
        }
        for (int i = 0; i < p->ncells; i++) {
            struct csv_cell c = csv_cell(p, i);
            const char *colon = NULL;
            for (size_t k = 0; k < c.n; k++) {
                if (c.s[k] == ':') {
                    colon = c.s + k;
                    break;
                }
                if (k + 3 <= c.n && memcmp(c.s + k, "：", 3) == 0) {
                    colon = c.s + k;
                    break;
                }
            }
            size_t label_len = colon != NULL ? (size_t)(colon - c.s) : c.n;
            size_t nn = text_normalize_header(c.s, label_len, norm, sizeof norm);
            if (nn == 0) {
                continue;
            }
            bool is_account = csv_list_has(prof->account_labels, norm, nn);
            bool is_currency = csv_list_has(prof->currency_labels, norm, nn);
            if (!is_account && !is_currency) {
                continue;
            }
            struct csv_cell v = {"", 0};
            if (colon != NULL) {
                v.s = colon + (colon[0] == ':' ? 1 : 3);
                v.n = (size_t)(c.s + c.n - v.s);
                text_trim(&v.s, &v.n);
            }
            if (v.n == 0 && i + 1 < p->ncells) {
                /* The value is the next non-empty cell, unless that is another label. */
                for (int j = i + 1; j < p->ncells; j++) {
                    struct csv_cell w = csv_cell(p, j);
                    if (w.n == 0) {
                        continue;
                    }
                    bool label = (w.n >= 1 && w.s[w.n - 1] == ':') ||
                                 (w.n >= 3 && memcmp(w.s + w.n - 3, "：", 3) == 0);
                    if (!label) {
                        v = w;
                    }
                    break;
                }
            }
            if (v.n == 0) {
                continue;
            }
            if (is_currency && p->file_currency[0] == '\0') {
                (void)text_currency_code(v.s, v.n, p->file_currency);
            } else if (is_account && p->file_account[0] == '\0' && v.n <= RECORD_ACCOUNT_MAX) {
                bool ok = true;
                for (size_t k = 0; k < v.n; k++) {
                    char ch = v.s[k];
                    ok = ok && ((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') ||
                                (ch >= 'a' && ch <= 'z') || ch == '*' || ch == '-' || ch == ' ');
                }
                if (ok) {
                    memcpy(p->file_account, v.s, v.n);
                    p->file_account[v.n] = '\0';
                }
            }
        }
    }
}

/* ---- rows ---- */

/* 1 with *fen, 0 when the cell is empty or a placeholder, -1 after reporting an error. */
static int csv_amount(struct csv_parser *p, int col, int64_t *fen, bool *negative)
{
    struct csv_cell c = csv_cell(p, col);
    if (text_is_placeholder(c.s, c.n)) {
        return 0;
    }
    char buf[CSV_AMOUNT_MAX];
    int len = text_fold_amount(c.s, c.n, buf, sizeof buf);
    struct tp_error e;
    if (len < 0) {
        sink_errorf(p->sink, p->line_no, "column %s: amount \"%.*s\" is too long",
                    csv_col_name(p, col), (int)(c.n > 40 ? 40 : c.n), c.s);
        return -1;
    }
    if (money_parse_lenient(buf, (size_t)len, '.', fen, &e) != TP_OK) {
        sink_errorf(p->sink, p->line_no, "column %s: %s", csv_col_name(p, col), e.msg);
        return -1;
    }
    *negative = buf[0] == '-';
    return 1;
}

/* +1 credit, -1 debit, 0 when the cell is empty; -2 after reporting an unknown value. */
static int csv_flag(struct csv_parser *p, int col)
{
    struct csv_cell c = csv_cell(p, col);
    if (c.n == 0) {
        return 0;
    }
    char norm[CSV_NORM_MAX];
    size_t n = text_normalize_header(c.s, c.n, norm, sizeof norm);
    if (n > 0 && csv_list_prefix(p->lay.prof->flag_credit, norm, n)) {
        return 1;
    }
    if (n > 0 && csv_list_prefix(p->lay.prof->flag_debit, norm, n)) {
        return -1;
    }
    sink_errorf(p->sink, p->line_no,
                "column %s: \"%.*s\" is neither a credit mark (%s) nor a debit mark (%s)",
                csv_col_name(p, col), (int)c.n, c.s, p->lay.prof->flag_credit,
                p->lay.prof->flag_debit);
    return -2;
}

/* Works out the signed amount; false after reporting a problem. */
static bool csv_row_amount(struct csv_parser *p, struct record *r)
{
    const int *col = p->lay.col;
    int flag = 0;
    if (col[CF_FLAG] >= 0) {
        flag = csv_flag(p, col[CF_FLAG]);
        if (flag == -2) {
            return false;
        }
    }
    int64_t fen = 0;
    bool neg = false;
    if (col[CF_CREDIT] >= 0 || col[CF_DEBIT] >= 0) {
        int64_t cr = 0, dr = 0;
        bool crneg = false, drneg = false;
        int hc = col[CF_CREDIT] >= 0 ? csv_amount(p, col[CF_CREDIT], &cr, &crneg) : 0;
        int hd = col[CF_DEBIT] >= 0 ? csv_amount(p, col[CF_DEBIT], &dr, &drneg) : 0;
        if (hc < 0 || hd < 0) {
            return false;
        }
        if (hc == 1 && hd == 1 && cr != 0 && dr != 0) {
            sink_errorf(p->sink, p->line_no, "both %s and %s hold an amount",
                        csv_col_name(p, col[CF_CREDIT]), csv_col_name(p, col[CF_DEBIT]));
            return false;
        }
        if (hc == 1 && (cr != 0 || hd != 1 || dr == 0)) {
            /* A negative income is a reversal of an income: money out. */
            fen = cr;
            r->reversal = crneg;
            if (flag == -1) {
                sink_errorf(p->sink, p->line_no, "column %s says debit but the amount is in %s",
                            csv_col_name(p, col[CF_FLAG]), csv_col_name(p, col[CF_CREDIT]));
                return false;
            }
        } else if (hd == 1) {
            fen = -dr;
            r->reversal = drneg;
            if (flag == 1) {
                sink_errorf(p->sink, p->line_no, "column %s says credit but the amount is in %s",
                            csv_col_name(p, col[CF_FLAG]), csv_col_name(p, col[CF_DEBIT]));
                return false;
            }
        } else if (col[CF_AMOUNT] < 0) {
            sink_errorf(p->sink, p->line_no, "no amount in %s or %s",
                        col[CF_CREDIT] >= 0 ? csv_col_name(p, col[CF_CREDIT]) : "(credit)",
                        col[CF_DEBIT] >= 0 ? csv_col_name(p, col[CF_DEBIT]) : "(debit)");
            return false;
        }
        if (hc == 1 || hd == 1) {
            r->amount_fen = fen;
            return true;
        }
    }
    int h = csv_amount(p, col[CF_AMOUNT], &fen, &neg);
    if (h < 0) {
        return false;
    }
    if (h == 0) {
        sink_errorf(p->sink, p->line_no, "column %s: amount is empty",
                    csv_col_name(p, col[CF_AMOUNT]));
        return false;
    }
    if (col[CF_FLAG] >= 0) {
        if (flag == 0) {
            sink_errorf(p->sink, p->line_no, "column %s: debit/credit mark is empty",
                        csv_col_name(p, col[CF_FLAG]));
            return false;
        }
        /* The flag gives the direction; a minus sign on top of it marks a reversal. */
        int64_t mag = fen < 0 ? -fen : fen;
        fen = flag > 0 ? mag : -mag;
        if (neg) {
            fen = -fen;
            r->reversal = true;
        }
    }
    r->amount_fen = fen;
    return true;
}

/* Splits "张三 6222..." / "北京...中心1111111111" / "6222.../张三" into name and account. */
static void csv_split_combined(struct record *r, const char *s, size_t n)
{
    text_trim(&s, &n);
    size_t e = n;
    size_t digits = 0;
    while (e > 0 && ((s[e - 1] >= '0' && s[e - 1] <= '9') || s[e - 1] == '*')) {
        e--;
        digits++;
    }
    if (digits >= 5) {
        record_set(r, RF_COUNTERPARTY_ACCOUNT, s + e, n - e);
        while (e > 0 && (s[e - 1] == ' ' || s[e - 1] == '/' || s[e - 1] == ',')) {
            e--;
        }
        record_set(r, RF_COUNTERPARTY_NAME, s, e);
        return;
    }
    size_t b = 0;
    while (b < n && ((s[b] >= '0' && s[b] <= '9') || s[b] == '*')) {
        b++;
    }
    if (b >= 5) {
        record_set(r, RF_COUNTERPARTY_ACCOUNT, s, b);
        while (b < n && (s[b] == ' ' || s[b] == '/' || s[b] == ',')) {
            b++;
        }
        record_set(r, RF_COUNTERPARTY_NAME, s + b, n - b);
        return;
    }
    record_set(r, RF_COUNTERPARTY_NAME, s, n);
}

static void csv_set_text(struct csv_parser *p, struct record *r, enum record_field f, int col)
{
    struct csv_cell c = csv_cell(p, col);
    if (col >= 0 && !text_is_placeholder(c.s, c.n)) {
        record_set(r, f, c.s, c.n);
    }
}

static void csv_row_parties(struct csv_parser *p, struct record *r)
{
    const int *col = p->lay.col;
    bool credit = r->amount_fen >= 0;
    int name = credit ? col[CF_PAYER_NAME] : col[CF_PAYEE_NAME];
    int acct = credit ? col[CF_PAYER_ACCOUNT] : col[CF_PAYEE_ACCOUNT];
    int bank = credit ? col[CF_PAYER_BANK] : col[CF_PAYEE_BANK];
    csv_set_text(p, r, RF_COUNTERPARTY_NAME, name >= 0 ? name : col[CF_CP_NAME]);
    csv_set_text(p, r, RF_COUNTERPARTY_ACCOUNT, acct >= 0 ? acct : col[CF_CP_ACCOUNT]);
    csv_set_text(p, r, RF_COUNTERPARTY_BANK, bank >= 0 ? bank : col[CF_CP_BANK]);
    if (col[CF_CP_COMBINED] >= 0 && r->counterparty_name[0] == '\0' &&
        r->counterparty_account[0] == '\0') {
        struct csv_cell c = csv_cell(p, col[CF_CP_COMBINED]);
        if (!text_is_placeholder(c.s, c.n)) {
            csv_split_combined(r, c.s, c.n);
        }
    }
    /* Remittance: every remark column, in file order, without repeating a value. */
    for (int i = 0; i < p->lay.nremit; i++) {
        struct csv_cell c = csv_cell(p, p->lay.remit[i]);
        if (text_is_placeholder(c.s, c.n)) {
            continue;
        }
        bool dup = false;
        for (int j = 0; j < i && !dup; j++) {
            struct csv_cell d = csv_cell(p, p->lay.remit[j]);
            dup = d.n == c.n && memcmp(d.s, c.s, c.n) == 0;
        }
        if (!dup) {
            record_append(r, RF_REMITTANCE, " | ", c.s, c.n);
        }
    }
}

/* Fills the dates; false after reporting. */
static bool csv_row_dates(struct csv_parser *p, struct record *r)
{
    const int *col = p->lay.col;
    char booking[11] = "", txn[11] = "", value[11] = "", time[9] = "", t2[9];
    struct csv_cell c;
    if (col[CF_BOOKING_DATE] >= 0) {
        c = csv_cell(p, col[CF_BOOKING_DATE]);
        if (!text_is_placeholder(c.s, c.n) && !text_parse_date(c.s, c.n, booking, time)) {
            sink_errorf(p->sink, p->line_no, "column %s: \"%.*s\" is not a date",
                        csv_col_name(p, col[CF_BOOKING_DATE]), (int)c.n, c.s);
            return false;
        }
    }
    if (col[CF_TXN_DATE] >= 0) {
        c = csv_cell(p, col[CF_TXN_DATE]);
        if (!text_is_placeholder(c.s, c.n) && !text_parse_date(c.s, c.n, txn, t2)) {
            sink_errorf(p->sink, p->line_no, "column %s: \"%.*s\" is not a date",
                        csv_col_name(p, col[CF_TXN_DATE]), (int)c.n, c.s);
            return false;
        }
        if (t2[0] != '\0') {
            memcpy(time, t2, sizeof t2);
        }
    }
    if (col[CF_TIME] >= 0) {
        c = csv_cell(p, col[CF_TIME]);
        char d2[11];
        if (text_is_placeholder(c.s, c.n)) {
            /* no time */
        } else if (text_parse_date(c.s, c.n, d2, t2)) {
            if (txn[0] == '\0') {
                memcpy(txn, d2, sizeof d2);
            }
            if (t2[0] != '\0') {
                memcpy(time, t2, sizeof t2);
            }
        } else if (text_parse_time(c.s, c.n, t2)) {
            memcpy(time, t2, sizeof t2);
        } else {
            sink_errorf(p->sink, p->line_no, "column %s: \"%.*s\" is not a time",
                        csv_col_name(p, col[CF_TIME]), (int)c.n, c.s);
            return false;
        }
    }
    if (col[CF_VALUE_DATE] >= 0) {
        c = csv_cell(p, col[CF_VALUE_DATE]);
        if (!text_is_placeholder(c.s, c.n) && !text_parse_date(c.s, c.n, value, t2)) {
            sink_errorf(p->sink, p->line_no, "column %s: \"%.*s\" is not a date",
                        csv_col_name(p, col[CF_VALUE_DATE]), (int)c.n, c.s);
            return false;
        }
    }
    const char *b = booking[0] ? booking : txn;
    const char *v = value[0] ? value : (txn[0] ? txn : booking);
    if (b[0] == '\0') {
        sink_errorf(p->sink, p->line_no, "no date");
        return false;
    }
    memcpy(r->booking_date, b, 11);
    memcpy(r->value_date, v, 11);
    memcpy(r->booking_time, time, 9);
    return true;
}

static bool csv_row_account(struct csv_parser *p, struct record *r)
{
    int col = p->lay.col[CF_OWN_ACCOUNT];
    struct csv_cell c = csv_cell(p, col);
    const char *file = p->file_account;
    char raw[RECORD_ACCOUNT_MAX + 1];
    if (col >= 0 && !text_is_placeholder(c.s, c.n)) {
        if (c.n > RECORD_ACCOUNT_MAX) {
            sink_errorf(p->sink, p->line_no, "column %s: account longer than %d characters",
                        csv_col_name(p, col), RECORD_ACCOUNT_MAX);
            return false;
        }
        memcpy(raw, c.s, c.n);
        raw[c.n] = '\0';
        file = raw;
    }
    if (!p->own_cached || strcmp(file, p->own_raw) != 0) {
        struct tp_error e;
        snprintf(p->own_raw, sizeof p->own_raw, "%s", file);
        p->own_ok = account_resolve(file, p->opt->account, p->own_resolved, &e) == TP_OK;
        if (!p->own_ok) {
            snprintf(p->own_err, sizeof p->own_err, "%s", e.msg);
        }
        p->own_cached = true;
        p->own_reported = false;
    }
    if (!p->own_ok) {
        if (!p->own_reported) {
            sink_errorf(p->sink, p->line_no, "%s", p->own_err);
            p->own_reported = true;
        }
        return false;
    }
    memcpy(r->receiving_account, p->own_resolved, sizeof r->receiving_account);
    return true;
}

static void csv_row(struct csv_parser *p)
{
    if (csv_row_blank(p)) {
        return;
    }
    struct csv_cell d = csv_cell(p, p->primary_col);
    char date[11], time[9];
    bool is_date = text_parse_date(d.s, d.n, date, time);
    if (!is_date) {
        if (p->footer_line != 0) {
            return;
        }
        if (csv_row_has_word(p, csv_footer_words,
                             sizeof csv_footer_words / sizeof csv_footer_words[0])) {
            p->footer_line = p->line_no;
            return;
        }
        sink_errorf(p->sink, p->line_no, "column %s: \"%.*s\" is not a date",
                    csv_col_name(p, p->primary_col), (int)(d.n > 60 ? 60 : d.n), d.s);
        return;
    }
    if (p->footer_line != 0) {
        sink_errorf(p->sink, p->line_no, "transaction row after the summary line %u",
                    p->footer_line);
        return;
    }
    struct record *r = &p->rec;
    record_reset(r);
    r->line = p->line_no;
    record_location_line(r, p->line_no);
    const int *col = p->lay.col;
    /* A row with no amount at all that states a balance ("期初余额") is not a transaction. */
    bool any_amount = false;
    const int amount_cols[] = {col[CF_AMOUNT], col[CF_CREDIT], col[CF_DEBIT]};
    for (size_t i = 0; i < 3; i++) {
        struct csv_cell c = csv_cell(p, amount_cols[i]);
        any_amount = any_amount || (amount_cols[i] >= 0 && !text_is_placeholder(c.s, c.n));
    }
    if (!any_amount && csv_row_has_word(p, csv_balance_words,
                                        sizeof csv_balance_words / sizeof csv_balance_words[0])) {
        return;
    }
    bool ok = csv_row_dates(p, r);
    ok = csv_row_amount(p, r) && ok;
    ok = csv_row_account(p, r) && ok;
    if (col[CF_CURRENCY] >= 0) {
        struct csv_cell c = csv_cell(p, col[CF_CURRENCY]);
        if (text_is_placeholder(c.s, c.n)) {
            memcpy(r->currency, p->file_currency[0] ? p->file_currency : p->default_currency, 4);
        } else if (!text_currency_code(c.s, c.n, r->currency)) {
            sink_errorf(p->sink, p->line_no, "column %s: unknown currency \"%.*s\"",
                        csv_col_name(p, col[CF_CURRENCY]), (int)c.n, c.s);
            ok = false;
        }
    } else {
        memcpy(r->currency, p->file_currency[0] ? p->file_currency : p->default_currency, 4);
    }
    if (col[CF_BALANCE] >= 0) {
        int64_t bal;
        bool neg;
        struct csv_cell c = csv_cell(p, col[CF_BALANCE]);
        char buf[CSV_AMOUNT_MAX];
        int len = text_fold_amount(c.s, c.n, buf, sizeof buf);
        struct tp_error e;
        /* Masked balances ("xx,yyyy.zz") and empty cells only mean "no balance here". */
        if (!text_is_placeholder(c.s, c.n) && len > 0 &&
            money_parse_lenient(buf, (size_t)len, '.', &bal, &e) == TP_OK) {
            (void)neg;
            r->has_balance = true;
            r->balance_fen = bal;
        }
    }
    if (!ok) {
        return;
    }
    if (col[CF_TXN_ID] >= 0) {
        struct csv_cell c = csv_cell(p, col[CF_TXN_ID]);
        bool zeros = c.n > 0;
        for (size_t i = 0; i < c.n; i++) {
            zeros = zeros && c.s[i] == '0';
        }
        if (!text_is_placeholder(c.s, c.n) && !zeros) {
            record_set(r, RF_BANK_TXN_ID, c.s, c.n);
        }
    }
    csv_row_parties(p, r);
    p->sink->record(p->sink->ctx, r);
    if (p->sink->cancelled != NULL && p->sink->cancelled(p->sink->ctx)) {
        p->cancelled = true;
    }
}

/* ---- driver ---- */

/* Reads the next physical line. 1, 0 at the end, -1 on an error (reported or in err). */
static int csv_next_line(struct csv_parser *p, enum tp_status *st)
{
    int r = input_lines_next(p->lines, &p->line, &p->line_len, &p->line_no, p->err);
    if (r < 0) {
        if (p->err->status == TP_FATAL) {
            *st = TP_FATAL;
        } else {
            sink_errorf(p->sink, p->line_no, "%s", p->err->msg);
            *st = TP_INVALID;
        }
    }
    return r;
}

/* Splits the current row, joining following lines while a quoted cell is open. */
static int csv_read_row(struct csv_parser *p, enum tp_status *st)
{
    int r = csv_split(p, p->line, p->line_len, p->lay.delim);
    if (r == 1) {
        return 1;
    }
    if (r < 0) {
        sink_errorf(p->sink, p->line_no, "more than %d columns", CSV_CELLS_MAX);
        return -1;
    }
    uint32_t first = p->line_no;
    size_t len = p->line_len;
    memcpy(p->joined, p->line, len);
    for (;;) {
        int nr = csv_next_line(p, st);
        if (nr < 0) {
            return -1;
        }
        if (nr == 0) {
            sink_errorf(p->sink, first, "quoted cell is not closed before the end of the file");
            *st = TP_INVALID;
            return -1;
        }
        if (len + 1 + p->line_len > CSV_RECORD_MAX) {
            sink_errorf(p->sink, first, "row longer than %d bytes (unclosed quote?)",
                        CSV_RECORD_MAX);
            *st = TP_INVALID;
            return -1;
        }
        p->joined[len++] = '\n';
        memcpy(p->joined + len, p->line, p->line_len);
        len += p->line_len;
        r = csv_split(p, p->joined, len, p->lay.delim);
        if (r != 0) {
            p->line_no = first;
            return r == 1 ? 1 : -1;
        }
    }
}

static void csv_format_name(struct csv_parser *p)
{
    snprintf(p->opt->format_name, sizeof p->opt->format_name, "csv:%s", p->lay.prof->name);
    snprintf(p->opt->encoding_used, sizeof p->opt->encoding_used, "%s",
             input_lines_encoding(p->lines));
}

static enum tp_status csv_find_header(struct csv_parser *p)
{
    enum tp_status st = TP_OK;
    for (;;) {
        int r = csv_next_line(p, &st);
        if (r < 0) {
            return st;
        }
        if (r == 0 || p->nscan == CSV_HEADER_SCAN_LINES) {
            sink_errorf(p->sink, r == 0 ? p->line_no : 0,
                        "no header row with known columns in the first %d lines (profile %s); "
                        "name the layout with --format csv:<profile> or a --profile-file",
                        CSV_HEADER_SCAN_LINES,
                        p->opt->csv_profile != NULL ? p->opt->csv_profile->name : "detection");
            return TP_INVALID;
        }
        if (csv_detect_header(p)) {
            p->header_line = p->line_no;
            /* Detection tried several delimiters; split again with the chosen one. */
            (void)csv_split(p, p->line, p->line_len, p->lay.delim);
            return TP_OK;
        }
        p->scan[p->nscan] = arena_strndup(p->arena, p->line, p->line_len);
        p->scan_len[p->nscan] = p->line_len;
        p->nscan++;
    }
}

enum tp_status parser_csv_run(struct input *in, struct parse_options *o,
                              const struct parse_sink *sink, struct tp_error *err)
{
    struct csv_parser *p = mem_calloc(1, sizeof *p);
    enum tp_status st = TP_OK;
    p->opt = o;
    p->sink = sink;
    p->err = err;
    p->arena = arena_new(64 * 1024);
    p->joined = mem_alloc(CSV_RECORD_MAX + 1);
    p->cellbuf = mem_alloc(CSV_RECORD_MAX + 1);
    snprintf(p->default_currency, sizeof p->default_currency, "%s",
             o->default_currency != NULL ? o->default_currency : "CNY");
    p->lines = input_lines_new(in, o->encoding, INPUT_FALLBACK_GB18030, err);
    if (p->lines == NULL) {
        sink_errorf(sink, 0, "%s", err->msg);
        st = TP_INVALID;
        goto out;
    }
    st = csv_find_header(p);
    if (st != TP_OK) {
        goto out;
    }
    csv_keep_names(p);
    csv_choose_primary(p);
    csv_header_area(p);
    csv_format_name(p);
    bool first = true;
    for (;;) {
        int r = csv_next_line(p, &st);
        if (r < 0) {
            goto out;
        }
        if (r == 0) {
            break;
        }
        if (csv_read_row(p, &st) < 0) {
            if (st != TP_OK) {
                goto out;
            }
            continue;
        }
        if (first) {
            first = false;
            if (csv_try_subheader(p)) {
                csv_choose_primary(p);
                continue;
            }
        }
        csv_row(p);
        if (p->cancelled) {
            goto out;
        }
    }
    csv_format_name(p);
out:
    input_lines_free(p->lines);
    arena_free(p->arena);
    free(p->joined);
    free(p->cellbuf);
    free(p);
    return st;
}
