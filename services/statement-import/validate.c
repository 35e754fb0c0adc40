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
    if (v->in_statement && v->stmt.currency[0] != '\0' && ok &&
        strcmp(r->currency, v->stmt.currency) != 0) {
        validator_addf(v, r->line, "currency %s differs from the statement's %s", r->currency,
                       v->stmt.currency);
        ok = false;
    }
    if (!ok) {
        return VALIDATE_INVALID;
    }
    if (r->amount_fen == 0) {
        v->stats.skipped_zero++;
        return VALIDATE_SKIP;
    }
    if (v->in_statement) {
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
        validator_addf(v, s->closing_line,
                       "%s: closing balance %s %s is not the opening balance %s plus the %llu "
                       "entries %s (= %s)",
                       s->label, money_format(s->closing_fen, a), s->closing_ccy,
                       money_format(s->opening_fen, b), (unsigned long long)v->stmt_records,
                       money_format(v->stmt_sum, c), money_format(want, d));
    }
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
        validator_sums(v, s);
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
    if (c->asc_ok || c->desc_ok) {
        return;
    }
    /* Newest-first exports: report the break of the reading that fits the dates. */
    if (c->dates_down && !c->dates_up) {
        int64_t want = c->desc_got + c->desc_amt;
        validator_addf(v, c->desc_line,
                       "running balance breaks: this row's balance %s plus the amount %s of the "
                       "row above (line %u) is %s, not that row's balance %s (rows newest first)",
                       money_format(c->desc_got, a), money_format(c->desc_amt, b),
                       c->desc_prev_line, money_format(want, d), money_format(c->desc_prev, e));
    } else {
        int64_t want = c->asc_prev + c->asc_amt;
        validator_addf(v, c->asc_line,
                       "running balance breaks: balance %s is not the previous balance %s plus "
                       "the amount %s (= %s)",
                       money_format(c->asc_got, a), money_format(c->asc_prev, b),
                       money_format(c->asc_amt, d), money_format(want, e));
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
