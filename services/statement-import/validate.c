/* Whole-file validation: record checks, statement balances, running balances, repeated ids. */
#include "validate.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topup/mem.h"
#include "topup/money.h"

/* The running balance of a CSV export, checked in both row orders at once. */
struct validate_chain {
    bool any;  /* some row has a balance */
    bool prev; /* the previous row had one */
    int64_t prev_bal, prev_amt;
    uint32_t prev_line;
    uint32_t missing_line; /* first row without a balance after one with */
    char prev_date[11];
    bool asc_ok, desc_ok;
    bool dates_up, dates_down; /* some step went up / down */
    uint32_t asc_line, desc_line;
    int64_t asc_got, asc_prev, asc_amt;
    int64_t desc_got, desc_prev, desc_amt;
    uint32_t desc_prev_line;
    /* The export's ends and the sum of its amounts, for its span and its total gap. */
    char account[RECORD_ACCOUNT_MAX + 1];
    char currency[4];
    int64_t first_bal, first_amt, last_bal, last_amt, sum;
    char first_date[11], last_date[11];
    uint32_t first_line;
    bool sum_overflow;
};

struct validate_stmt_key {
    uint8_t hash[16];
    uint32_t line;
};

struct validator {
    char *label;
    struct identity *identity;
    struct parse_sink sink;
    uint32_t listed_max;
    char **listed;
    uint32_t nlisted;
    uint64_t problems;
    bool identity_full_reported;
    /* The previous record's key: observed one record late, after its prefetch landed. */
    bool key_pending;
    struct identity_key key;
    uint32_t key_line;

    /* The statement being read. */
    bool in_statement;
    struct statement_info stmt;
    int64_t stmt_sum;
    bool stmt_overflow;
    int64_t stmt_debits, stmt_credits;       /* counts */
    int64_t stmt_debit_sum, stmt_credit_sum; /* magnitudes */
    uint64_t stmt_records;

    struct validate_stmt_key *stmt_keys;
    uint32_t nstmt_keys;

    struct validate_chain chain;
    struct validate_stats stats;

    struct validate_gap *gaps; /* VALIDATE_GAPS_MAX, allocated at the first */
    uint32_t ngaps;
    bool gaps_overflow;
    struct validate_span spans[VALIDATE_SPANS_MAX];
    uint32_t nspans;
    struct validate_note notes[VALIDATE_NOTES_MAX];
    uint32_t nnotes;
    char accounts[VALIDATE_SPANS_MAX][RECORD_ACCOUNT_MAX + 1];
    const char *account_ptrs[VALIDATE_SPANS_MAX];
    int naccounts;
    int last_account;
    bool accounts_more;
};

static void validator_add(struct validator *v, uint32_t line, const char *msg)
{
    v->problems++;
    if (v->nlisted >= v->listed_max) {
        return;
    }
    size_t n = strlen(v->label) + strlen(msg) + 24;
    char *s = mem_alloc(n);
    if (line > 0) {
        snprintf(s, n, "%s:%u: %s", v->label, line, msg);
    } else {
        snprintf(s, n, "%s: %s", v->label, msg);
    }
    v->listed[v->nlisted++] = s;
}

void validator_report(struct validator *v, uint32_t line, const char *msg)
{
    validator_add(v, line, msg);
}

static void validator_addf(struct validator *v, uint32_t line, const char *fmt, ...)
    TP_PRINTF(3, 4);
static void validator_addf(struct validator *v, uint32_t line, const char *fmt, ...)
{
    char msg[ERROR_MSG_MAX * 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    validator_add(v, line, msg);
}

const char *validate_gap_kind_name(enum validate_gap_kind k)
{
    switch (k) {
    case GAP_BALANCE:
        return "balance";
    case GAP_PREVIOUS:
        return "previous";
    case GAP_RUNNING:
        return "running";
    case GAP_CONTINUITY:
        return "continuity";
    }
    return "?";
}

/* A gap is a problem like any other (listed, refuses the file) that is also kept for acceptance. */
static void validator_gap(struct validator *v, const struct validate_gap *g, const char *msg)
{
    validator_add(v, g->line, msg);
    if (v->ngaps == VALIDATE_GAPS_MAX) {
        if (!v->gaps_overflow) {
            v->gaps_overflow = true;
            validator_addf(v, g->line,
                           "more than %d balance gaps: too many to accept; get a complete export",
                           VALIDATE_GAPS_MAX);
        }
        return;
    }
    if (v->gaps == NULL) {
        v->gaps = mem_calloc(VALIDATE_GAPS_MAX, sizeof *v->gaps);
    }
    v->gaps[v->ngaps++] = *g;
}

void validator_report_gap(struct validator *v, const struct validate_gap *g)
{
    char a[MONEY_STR_MAX], b[MONEY_STR_MAX], c[MONEY_STR_MAX];
    char msg[ERROR_MSG_MAX * 2];
    snprintf(msg, sizeof msg,
             "%s opens account %s at %s %s, but the last imported closing balance (%s) is %s: a "
             "gap of %s",
             g->statement, g->account, money_format(g->stated_fen, a), g->currency, g->previous,
             money_format(g->expected_fen, b), money_format(g->gap_fen, c));
    validator_gap(v, g, msg);
}

uint32_t validator_gaps(const struct validator *v, const struct validate_gap **gaps)
{
    *gaps = v->gaps;
    return v->ngaps;
}

bool validator_only_gaps(const struct validator *v)
{
    return v->problems > 0 && v->problems == v->ngaps && !v->gaps_overflow;
}

uint32_t validator_spans(const struct validator *v, const struct validate_span **spans)
{
    *spans = v->spans;
    return v->nspans;
}

static void validator_account(struct validator *v, const char *account)
{
    if (v->naccounts > 0 && strcmp(v->accounts[v->last_account], account) == 0) {
        return;
    }
    for (int i = 0; i < v->naccounts; i++) {
        if (strcmp(v->accounts[i], account) == 0) {
            v->last_account = i;
            return;
        }
    }
    if (v->naccounts == VALIDATE_SPANS_MAX) {
        v->accounts_more = true;
        return;
    }
    snprintf(v->accounts[v->naccounts], sizeof v->accounts[0], "%s", account);
    v->account_ptrs[v->naccounts] = v->accounts[v->naccounts];
    v->last_account = v->naccounts++;
}

int validator_accounts(const struct validator *v, const char *const **accounts, bool *more)
{
    *accounts = v->account_ptrs;
    *more = v->accounts_more;
    return v->naccounts;
}

uint32_t validator_notes(const struct validator *v, const struct validate_note **notes)
{
    *notes = v->notes;
    return v->nnotes;
}

static void validator_on_note(void *ctx, uint32_t line, const char *what)
{
    struct validator *v = ctx;
    for (uint32_t i = 0; i < v->nnotes; i++) {
        if (v->notes[i].what == what || strcmp(v->notes[i].what, what) == 0) {
            v->notes[i].count++;
            return;
        }
    }
    if (v->nnotes < VALIDATE_NOTES_MAX) {
        v->notes[v->nnotes++] =
            (struct validate_note){.what = what, .count = 1, .first_line = line};
    }
}

/*
 * The span of account/currency in this file: its earliest opening and its latest closing (a file
 * lists its statements oldest first; the dates decide when they say otherwise).
 */
static void validator_span(struct validator *v, const char *account, const char *currency,
                           const char *statement, uint32_t opening_line, const char *opening_date,
                           int64_t opening_fen, const char *closing_date, int64_t closing_fen)
{
    struct validate_span *sp = NULL;
    for (uint32_t i = 0; i < v->nspans; i++) {
        if (strcmp(v->spans[i].account, account) == 0 &&
            strcmp(v->spans[i].currency, currency) == 0) {
            sp = &v->spans[i];
            break;
        }
    }
    if (sp == NULL) {
        if (v->nspans == VALIDATE_SPANS_MAX) {
            return; /* beyond the maximum, the other accounts' continuity is not checked */
        }
        sp = &v->spans[v->nspans++];
        memset(sp, 0, sizeof *sp);
        snprintf(sp->account, sizeof sp->account, "%s", account);
        snprintf(sp->currency, sizeof sp->currency, "%s", currency);
    } else {
        if (strcmp(opening_date, sp->opening_date) >= 0) {
            opening_date = NULL; /* not earlier: keep the one we have */
        }
        if (strcmp(closing_date, sp->closing_date) < 0) {
            closing_date = NULL;
        }
    }
    if (opening_date != NULL) {
        snprintf(sp->statement, sizeof sp->statement, "%s", statement);
        sp->opening_line = opening_line;
        snprintf(sp->opening_date, sizeof sp->opening_date, "%s", opening_date);
        sp->opening_fen = opening_fen;
    }
    if (closing_date != NULL) {
        snprintf(sp->closing_date, sizeof sp->closing_date, "%s", closing_date);
        sp->closing_fen = closing_fen;
    }
}

/* ---- records ---- */

static struct validate_totals *validator_totals(struct validator *v, const char *ccy)
{
    struct validate_stats *s = &v->stats;
    for (int i = 0; i < s->ncurrencies; i++) {
        if (strcmp(s->totals[i].currency, ccy) == 0) {
            return &s->totals[i];
        }
    }
    if (s->ncurrencies == VALIDATE_CURRENCIES_MAX) {
        /* Beyond the maximum everything lands in the last slot, renamed "***". */
        struct validate_totals *t = &s->totals[VALIDATE_CURRENCIES_MAX - 1];
        memcpy(t->currency, "***", 4);
        return t;
    }
    struct validate_totals *t = &s->totals[s->ncurrencies++];
    memset(t, 0, sizeof *t);
    memcpy(t->currency, ccy, 4);
    return t;
}

static bool validator_currency_ok(const char *c)
{
    return strlen(c) == 3 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z' &&
           c[2] >= 'A' && c[2] <= 'Z';
}

static void validator_chain_step(struct validator *v, const struct record *r)
{
    struct validate_chain *c = &v->chain;
    if (!r->has_balance) {
        if (c->any && c->missing_line == 0) {
            c->missing_line = r->line;
        }
        c->prev = false;
        return;
    }
    if (!c->any) {
        c->any = true;
        c->asc_ok = c->desc_ok = true;
        c->first_bal = r->balance_fen;
        c->first_amt = r->amount_fen;
        c->first_line = r->line;
        memcpy(c->first_date, r->booking_date, sizeof c->first_date);
        memcpy(c->account, r->receiving_account, sizeof c->account);
        memcpy(c->currency, r->currency, sizeof c->currency);
    }
    c->last_bal = r->balance_fen;
    c->last_amt = r->amount_fen;
    memcpy(c->last_date, r->booking_date, sizeof c->last_date);
    if (!money_add(c->sum, r->amount_fen, &c->sum)) {
        c->sum_overflow = true;
    }
    if (c->prev) {
        int64_t want;
        if (!money_add(c->prev_bal, r->amount_fen, &want) || want != r->balance_fen) {
            if (c->asc_ok) {
                c->asc_ok = false;
                c->asc_line = r->line;
                c->asc_got = r->balance_fen;
                c->asc_prev = c->prev_bal;
                c->asc_amt = r->amount_fen;
            }
        }
        if (!money_add(r->balance_fen, c->prev_amt, &want) || want != c->prev_bal) {
            if (c->desc_ok) {
                c->desc_ok = false;
                c->desc_line = r->line;
                c->desc_got = r->balance_fen;
                c->desc_prev = c->prev_bal;
                c->desc_amt = c->prev_amt;
                c->desc_prev_line = c->prev_line;
            }
        }
        int cmp = strcmp(r->booking_date, c->prev_date);
        c->dates_up = c->dates_up || cmp > 0;
        c->dates_down = c->dates_down || cmp < 0;
    }
    c->prev = true;
    c->prev_bal = r->balance_fen;
    c->prev_amt = r->amount_fen;
    c->prev_line = r->line;
    memcpy(c->prev_date, r->booking_date, sizeof c->prev_date);
}

static void validator_observe_pending(struct validator *v)
{
    if (!v->key_pending) {
        return;
    }
    v->key_pending = false;
    if (identity_observe(v->identity, &v->key) == IDENTITY_FULL && !v->identity_full_reported) {
        v->identity_full_reported = true;
        validator_addf(v, v->key_line,
                       "more than %u transactions repeat another one's identity; split the file",
                       IDENTITY_CANDIDATES_MAX);
    }
}

/* Notes r's identity. The filter is large and accessed at random: the key of this record is
 * prefetched now and observed with the next one, which hides the cache miss. */
static void validator_identity(struct validator *v, struct record *r)
{
    if (v->identity == NULL) {
        return;
    }
    struct identity_key k;
    identity_key(r, &k);
    identity_prefetch(v->identity, &k);
    validator_observe_pending(v);
    v->key = k;
    v->key_line = r->line;
    v->key_pending = true;
}

enum validate_verdict validator_check_record(struct validator *v, struct record *r)
{
    bool ok = true;
    for (int f = 0; f < RF_COUNT_; f++) {
        if (r->overflow_mask & (1u << f)) {
            validator_addf(v, r->line, "%s longer than %zu bytes", record_field_name(f),
                           record_field_max(f));
            ok = false;
        }
    }
    if (r->receiving_account[0] == '\0') {
        validator_addf(v, r->line, "no receiving account");
        ok = false;
    }
    if (r->booking_date[0] == '\0' || r->value_date[0] == '\0') {
        validator_addf(v, r->line, "no booking or value date");
        ok = false;
    }
    if (!validator_currency_ok(r->currency)) {
        validator_addf(v, r->line, "currency \"%s\" is not an ISO 4217 code", r->currency);
        ok = false;
    }
    if (!ok) {
        return VALIDATE_INVALID;
    }
    if (r->amount_fen == 0) {
        v->stats.skipped_zero++;
        return VALIDATE_SKIP;
    }
    /* An entry in another currency than its statement's is published in its own; the statement's
     * balances, in the statement's currency, do not cover it. */
    bool foreign = v->in_statement && v->stmt.currency[0] != '\0' &&
                   strcmp(r->currency, v->stmt.currency) != 0;
    if (foreign) {
        v->stats.foreign++;
        validator_on_note(v, r->line,
                          "entry in another currency than its statement's: published in its own");
    } else if (v->in_statement) {
        if (!money_add(v->stmt_sum, r->amount_fen, &v->stmt_sum)) {
            v->stmt_overflow = true;
        }
        if (r->amount_fen < 0) {
            v->stmt_debits++;
            v->stmt_debit_sum -= r->amount_fen;
        } else {
            v->stmt_credits++;
            v->stmt_credit_sum += r->amount_fen;
        }
        v->stmt_records++;
    } else {
        validator_chain_step(v, r);
    }
    struct validate_totals *t = validator_totals(v, r->currency);
    if (r->amount_fen < 0) {
        t->debits++;
        if (!money_add(t->debit_fen, r->amount_fen, &t->debit_fen)) {
            validator_addf(v, r->line, "debit total overflows");
            return VALIDATE_INVALID;
        }
    } else {
        t->credits++;
        if (!money_add(t->credit_fen, r->amount_fen, &t->credit_fen)) {
            validator_addf(v, r->line, "credit total overflows");
            return VALIDATE_INVALID;
        }
    }
    v->stats.records++;
    validator_account(v, r->receiving_account);
    if (r->bank_txn_id[0] == '\0') {
        v->stats.fingerprinted++;
    }
    validator_identity(v, r);
    return VALIDATE_OK;
}

/* ---- statements ---- */

static void validator_stmt_key(struct validator *v, const struct statement_info *s)
{
    uint8_t full[32];
    SHA256((const uint8_t *)s->key, strlen(s->key), full);
    for (uint32_t i = 0; i < v->nstmt_keys; i++) {
        if (memcmp(v->stmt_keys[i].hash, full, 16) == 0) {
            validator_addf(v, s->line, "%s appears twice in the file (first at line %u)", s->label,
                           v->stmt_keys[i].line);
            return;
        }
    }
    if (v->nstmt_keys == VALIDATE_STATEMENTS_MAX) {
        return; /* beyond the maximum, repeats are no longer detected; ids still are */
    }
    if ((v->nstmt_keys & (v->nstmt_keys - 1)) == 0) {
        size_t cap = v->nstmt_keys == 0 ? 16 : v->nstmt_keys * 2;
        v->stmt_keys = mem_realloc(v->stmt_keys, cap * sizeof *v->stmt_keys);
    }
    memcpy(v->stmt_keys[v->nstmt_keys].hash, full, 16);
    v->stmt_keys[v->nstmt_keys].line = s->line;
    v->nstmt_keys++;
}

static void validator_on_statement_begin(void *ctx, const struct statement_info *s)
{
    struct validator *v = ctx;
    v->in_statement = true;
    v->stmt = *s;
    v->stmt_sum = 0;
    v->stmt_overflow = false;
    v->stmt_debits = v->stmt_credits = 0;
    v->stmt_debit_sum = v->stmt_credit_sum = 0;
    v->stmt_records = 0;
}

static void validator_gap_names(struct validate_gap *g, const struct statement_info *s)
{
    snprintf(g->statement, sizeof g->statement, "%s", s->label);
    snprintf(g->account, sizeof g->account, "%s", s->account);
    snprintf(g->currency, sizeof g->currency, "%s", s->opening_ccy);
}

static void validator_balances(struct validator *v, const struct statement_info *s)
{
    char a[MONEY_STR_MAX], b[MONEY_STR_MAX], c[MONEY_STR_MAX], d[MONEY_STR_MAX];
    if (s->balances_required && !s->has_opening) {
        validator_addf(v, s->line, "%s has no opening balance", s->label);
    }
    if (s->balances_required && !s->has_closing) {
        validator_addf(v, s->end_line, "%s has no closing balance", s->label);
    }
    if (!s->has_opening || !s->has_closing) {
        return;
    }
    if (strcmp(s->opening_ccy, s->closing_ccy) != 0) {
        validator_addf(v, s->closing_line,
                       "%s: closing balance currency %s differs from the opening balance's %s",
                       s->label, s->closing_ccy, s->opening_ccy);
        return;
    }
    int64_t want;
    if (v->stmt_overflow || !money_add(s->opening_fen, v->stmt_sum, &want)) {
        validator_addf(v, s->closing_line, "%s: the entries overflow", s->label);
        return;
    }
    if (want != s->closing_fen) {
        char e[MONEY_STR_MAX], msg[ERROR_MSG_MAX * 2];
        struct validate_gap g = {.kind = GAP_BALANCE,
                                 .line = s->closing_line,
                                 .expected_fen = want,
                                 .stated_fen = s->closing_fen,
                                 .gap_fen = s->closing_fen - want};
        validator_gap_names(&g, s);
        snprintf(msg, sizeof msg,
                 "%s: closing balance %s %s is not the opening balance %s plus the %llu entries "
                 "%s (= %s): a gap of %s",
                 s->label, money_format(s->closing_fen, a), s->closing_ccy,
                 money_format(s->opening_fen, b), (unsigned long long)v->stmt_records,
                 money_format(v->stmt_sum, c), money_format(want, d), money_format(g.gap_fen, e));
        validator_gap(v, &g, msg);
    }
}

/* camt: OPBD is the opening; the previous statement's closing (PRCD) must be the same. */
static void validator_previous(struct validator *v, const struct statement_info *s)
{
    char a[MONEY_STR_MAX], b[MONEY_STR_MAX], c[MONEY_STR_MAX], msg[ERROR_MSG_MAX * 2];
    if (!s->has_previous || !s->has_opening) {
        return;
    }
    if (strcmp(s->previous_ccy, s->opening_ccy) != 0) {
        validator_addf(v, s->previous_line,
                       "%s: previously closed balance (PRCD) currency %s differs from the opening "
                       "balance's (OPBD) %s",
                       s->label, s->previous_ccy, s->opening_ccy);
        return;
    }
    if (s->previous_fen == s->opening_fen) {
        return;
    }
    struct validate_gap g = {.kind = GAP_PREVIOUS,
                             .line = s->opening_line,
                             .expected_fen = s->previous_fen,
                             .stated_fen = s->opening_fen,
                             .gap_fen = s->opening_fen - s->previous_fen};
    validator_gap_names(&g, s);
    snprintf(msg, sizeof msg,
             "%s: opening balance (OPBD) %s %s is not the previously closed balance (PRCD) %s: a "
             "gap of %s",
             s->label, money_format(s->opening_fen, a), s->opening_ccy,
             money_format(s->previous_fen, b), money_format(g.gap_fen, c));
    validator_gap(v, &g, msg);
}

static void validator_sums(struct validator *v, const struct statement_info *s)
{
    char a[MONEY_STR_MAX], b[MONEY_STR_MAX];
    if (s->has_debit_sum &&
        (s->debit_count != v->stmt_debits || s->debit_sum_fen != v->stmt_debit_sum)) {
        validator_addf(v, s->end_line,
                       "%s: debit total says %lld entries of %s, the entries are %lld of %s",
                       s->label, (long long)s->debit_count, money_format(s->debit_sum_fen, a),
                       (long long)v->stmt_debits, money_format(v->stmt_debit_sum, b));
    }
    if (s->has_credit_sum &&
        (s->credit_count != v->stmt_credits || s->credit_sum_fen != v->stmt_credit_sum)) {
        validator_addf(v, s->end_line,
                       "%s: credit total says %lld entries of %s, the entries are %lld of %s",
                       s->label, (long long)s->credit_count, money_format(s->credit_sum_fen, a),
                       (long long)v->stmt_credits, money_format(v->stmt_credit_sum, b));
    }
}

static void validator_on_statement_end(void *ctx, const struct statement_info *s)
{
    struct validator *v = ctx;
    v->stats.statements++;
    if (s->key[0] != '\0') {
        validator_stmt_key(v, s);
    }
    if (!s->incomplete) {
        validator_balances(v, s);
        validator_previous(v, s);
        validator_sums(v, s);
    }
    /* Only statements (camt.053, MT940) end a day: a report's interim balance (camt.052 ITBD,
     * MT942) is no closing for the next file to follow on from. */
    if (s->balances_required && s->has_opening && s->has_closing && s->account[0] != '\0' &&
        strcmp(s->opening_ccy, s->closing_ccy) == 0) {
        validator_span(v, s->account, s->opening_ccy, s->label, s->opening_line, s->opening_date,
                       s->opening_fen, s->closing_date, s->closing_fen);
    }
    v->in_statement = false;
}

static void validator_on_record(void *ctx, struct record *r)
{
    (void)validator_check_record(ctx, r);
}

static void validator_on_error(void *ctx, uint32_t line, const char *msg)
{
    validator_add(ctx, line, msg);
}

static void validator_on_skipped(void *ctx, uint32_t line, const char *why)
{
    struct validator *v = ctx;
    (void)line;
    (void)why;
    v->stats.skipped_other++;
}

void validator_finish(struct validator *v)
{
    struct validate_chain *c = &v->chain;
    if (v->identity != NULL) {
        validator_observe_pending(v);
    }
    char a[MONEY_STR_MAX], b[MONEY_STR_MAX], d[MONEY_STR_MAX], e[MONEY_STR_MAX];
    /* Rows with problems were left out, so the chain has gaps: its verdict would mislead. */
    if (!c->any || v->problems > 0) {
        return;
    }
    if (c->missing_line != 0) {
        validator_addf(v, c->missing_line, "no balance on this row while other rows have one");
        return;
    }
    /* Newest-first exports: the reading that fits the dates (or the one whose chain holds). */
    bool desc = c->asc_ok != c->desc_ok ? c->desc_ok : (c->dates_down && !c->dates_up);
    int64_t opening, closing, expected;
    bool figures = !c->sum_overflow &&
                   money_add(desc ? c->last_bal : c->first_bal,
                             -(desc ? c->last_amt : c->first_amt), &opening) &&
                   money_add(opening, c->sum, &expected);
    closing = desc ? c->first_bal : c->last_bal;
    if (figures) {
        validator_span(v, c->account, c->currency, "the export", c->first_line,
                       desc ? c->last_date : c->first_date, opening,
                       desc ? c->first_date : c->last_date, closing);
    }
    if (c->asc_ok || c->desc_ok) {
        return;
    }
    char msg[ERROR_MSG_MAX * 2], total[160] = "";
    struct validate_gap g = {.kind = GAP_RUNNING,
                             .line = desc ? c->desc_line : c->asc_line,
                             .expected_fen = expected,
                             .stated_fen = closing,
                             .gap_fen = closing - expected};
    snprintf(g.statement, sizeof g.statement, "the export");
    snprintf(g.account, sizeof g.account, "%s", c->account);
    snprintf(g.currency, sizeof g.currency, "%s", c->currency);
    if (figures) {
        snprintf(total, sizeof total, "; in all, a gap of %s", money_format(g.gap_fen, a));
    }
    if (desc) {
        int64_t want = c->desc_got + c->desc_amt;
        snprintf(msg, sizeof msg,
                 "running balance breaks: this row's balance %s plus the amount %s of the row "
                 "above (line %u) is %s, not that row's balance %s (rows newest first)%s",
                 money_format(c->desc_got, a), money_format(c->desc_amt, b), c->desc_prev_line,
                 money_format(want, d), money_format(c->desc_prev, e), total);
    } else {
        int64_t want = c->asc_prev + c->asc_amt;
        snprintf(msg, sizeof msg,
                 "running balance breaks: balance %s is not the previous balance %s plus the "
                 "amount %s (= %s)%s",
                 money_format(c->asc_got, a), money_format(c->asc_prev, b),
                 money_format(c->asc_amt, d), money_format(want, e), total);
    }
    if (figures) {
        validator_gap(v, &g, msg);
    } else {
        validator_add(v, g.line, msg);
    }
}

/* ---- lifecycle ---- */

struct validator *validator_new(const char *file_label, struct identity *identity,
                                uint32_t listed_max)
{
    struct validator *v = mem_calloc(1, sizeof *v);
    v->label = mem_strdup(file_label);
    v->identity = identity;
    v->listed_max = listed_max > VALIDATE_LISTED_MAX ? VALIDATE_LISTED_MAX : listed_max;
    v->listed = mem_calloc(v->listed_max + 1, sizeof *v->listed);
    v->sink.ctx = v;
    v->sink.statement_begin = validator_on_statement_begin;
    v->sink.statement_end = validator_on_statement_end;
    v->sink.record = validator_on_record;
    v->sink.error = validator_on_error;
    v->sink.skipped = validator_on_skipped;
    v->sink.note = validator_on_note;
    return v;
}

void validator_free(struct validator *v)
{
    if (v == NULL) {
        return;
    }
    for (uint32_t i = 0; i < v->nlisted; i++) {
        free(v->listed[i]);
    }
    free(v->listed);
    free(v->stmt_keys);
    free(v->gaps);
    free(v->label);
    free(v);
}

const struct parse_sink *validator_sink(struct validator *v)
{
    return &v->sink;
}

uint64_t validator_problems(const struct validator *v)
{
    return v->problems;
}

uint32_t validator_listed(const struct validator *v)
{
    return v->nlisted;
}

const char *validator_problem(const struct validator *v, uint32_t i)
{
    return i < v->nlisted ? v->listed[i] : NULL;
}

const struct validate_stats *validator_stats(const struct validator *v)
{
    return &v->stats;
}
