/*
 * One batch in one transaction: store new statement records once, re-examine stored unmatched
 * records that a new order (or the sweep) brings back, decide with the matcher, then claim the
 * orders, write the records' states, the decisions, the review items and PaymentMatched rows.
 * Anything a concurrent transaction changed under us (an order cancelled, a record stored by
 * another instance) makes the attempt TP_RETRY: the next attempt reads everything again.
 */
#include "recon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aging.h"
#include "topup/copyw.h"
#include "jsonw.h"
#include "days.h"
#include "topup/event.h"
#include "topup/counters.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/pg.h"

/* The steps of an attempt (reconcile_steps). */
#define RECONCILE_STEPS 8
/* After a batch met stored records (a redelivery), this many batches look identities up first. */
#define RECONCILE_KNOWN_BATCHES 16

struct reconcile_item {
    struct recon_record rec;
    int64_t record_id; /* stored id: loaded, or assigned by the insert */
    bool is_new;
    bool duplicate;
    int mi;             /* index into the matcher arrays; -1 when not matched at all */
    const char *state;  /* the record's state after this batch */
    bool changed;       /* a loaded record whose state changes */
    bool aged;          /* sent to review by aging */
    size_t details_off; /* the decision's details: w_details text [off, off + len) */
    size_t details_len;
};

struct reconcile {
    struct pg_conn *pg;
    struct recon_settings s;
    size_t batch_max;

    /* The batch's input, kept across attempts. */
    const struct recon_record **new_recs;
    size_t n_new;
    char (*codes)[REFCODE_STR_LEN];
    size_t n_codes;
    bool sweep;
    int32_t today;
    int64_t after_id;

    /* One attempt's state. */
    struct reconcile_item *items; /* loaded first (older), then new */
    size_t n_items;
    PGresult *loaded;
    PGresult *orders_res;  /* the orders named by code */
    PGresult *orders_res2; /* the orders of rule 2's names and amounts */
    struct matcher_order *orders;
    size_t n_orders;
    size_t cap_orders;
    struct matcher_record *mrecs;
    struct matcher_decision *decs;
    size_t *m_item;
    size_t n_m;
    bool *dup;
    int64_t *new_ids;
    struct claim_match *claims;
    struct claim_decision *decisions;
    int64_t last_loaded_id;
    size_t n_loaded;
    size_t n_claims;
    struct recon_tally tally;
    int64_t step_us[RECONCILE_STEPS]; /* the last attempt's steps, for the debug line */
    /* Statement parameters (JSON rows) and decision details, reused batch after batch. */
    struct jsonw w_a, w_details;
    struct copyw copy; /* COPY rows (records, decisions) */
    /* Look the new records' identities up before deciding (see reconcile_insert()). */
    bool check_known;
    int known_left; /* batches that still look them up first */
};

struct reconcile *reconcile_new(struct pg_conn *c, const struct recon_settings *settings,
                                struct tp_error *err)
{
    enum tp_status st = records_store_prepare(c, err);
    if (st == TP_OK) {
        st = orders_store_prepare(c, err);
    }
    if (st == TP_OK) {
        st = claim_prepare(c, err);
    }
    if (st != TP_OK) {
        return NULL;
    }
    struct reconcile *r = mem_calloc(1, sizeof(*r));
    r->pg = c;
    r->s = *settings;
    r->batch_max = (size_t)settings->batch_max;
    size_t cap = 2 * r->batch_max; /* loaded records plus new ones */
    r->new_recs = mem_calloc(r->batch_max, sizeof(*r->new_recs));
    r->codes = mem_calloc(r->batch_max, sizeof(*r->codes));
    r->items = mem_calloc(cap, sizeof(*r->items));
    r->mrecs = mem_calloc(cap, sizeof(*r->mrecs));
    r->decs = mem_calloc(cap, sizeof(*r->decs));
    r->m_item = mem_calloc(cap, sizeof(*r->m_item));
    r->dup = mem_calloc(r->batch_max, sizeof(*r->dup));
    r->new_ids = mem_calloc(r->batch_max, sizeof(*r->new_ids));
    r->claims = mem_calloc(cap, sizeof(*r->claims));
    r->decisions = mem_calloc(cap, sizeof(*r->decisions));
    jsonw_init(&r->w_a);
    jsonw_init(&r->w_details);
    copyw_init(&r->copy);
    return r;
}

/* Forgets one attempt's state (results, details), keeping the batch's input. */
static void reconcile_clear_attempt(struct reconcile *r)
{
    for (size_t i = 0; i < r->n_items; i++) {
    }
    r->n_items = 0;
    r->n_m = 0;
    r->n_loaded = 0;
    PQclear(r->loaded);
    r->loaded = NULL;
    PQclear(r->orders_res);
    r->orders_res = NULL;
    PQclear(r->orders_res2);
    r->orders_res2 = NULL;
    r->n_orders = 0;
    memset(&r->tally, 0, sizeof(r->tally));
}

void reconcile_reset(struct reconcile *r)
{
    reconcile_clear_attempt(r);
    r->n_new = 0;
    r->n_codes = 0;
    r->sweep = false;
}

void reconcile_free(struct reconcile *r)
{
    if (r == NULL) {
        return;
    }
    reconcile_reset(r);
    free(r->new_recs);
    free(r->codes);
    free(r->items);
    free(r->mrecs);
    free(r->decs);
    free(r->m_item);
    free(r->dup);
    free(r->new_ids);
    free(r->claims);
    free(r->decisions);
    free(r->orders);
    jsonw_deinit(&r->w_a);
    jsonw_deinit(&r->w_details);
    copyw_deinit(&r->copy);
    free(r);
}

bool reconcile_add_record(struct reconcile *r, const struct recon_record *rec)
{
    if (r->n_new >= r->batch_max) {
        return false;
    }
    r->new_recs[r->n_new++] = rec;
    return true;
}

bool reconcile_add_order(struct reconcile *r, const char *code)
{
    if (r->n_codes >= r->batch_max) {
        return false;
    }
    memcpy(r->codes[r->n_codes++], code, REFCODE_STR_LEN);
    return true;
}

/* ---- loading ---- */

static void reconcile_take_loaded(struct reconcile *r)
{
    int rows = PQntuples(r->loaded);
    for (int row = 0; row < rows && r->n_items < r->batch_max; row++) {
        struct reconcile_item *it = &r->items[r->n_items++];
        memset(it, 0, sizeof(*it));
        records_store_row(r->loaded, row, &it->rec, &it->record_id);
        it->mi = -1;
        it->state = "unmatched";
        r->last_loaded_id = it->record_id;
    }
    r->n_loaded = r->n_items;
}

/* Stored unmatched records to look at again: the sweep's chunk, or those new orders could fit. */
static enum tp_status reconcile_load(struct reconcile *r, struct tp_error *err)
{
    enum tp_status st = TP_OK;
    if (r->sweep) {
        st = records_store_lock_unmatched(r->pg, r->after_id, (int)r->batch_max, &r->loaded, err);
    } else if (r->n_codes > 0) {
        struct jsonw *w = &r->w_a;
        jsonw_reset(w);
        jsonw_array_begin(w);
        for (size_t i = 0; i < r->n_codes; i++) {
            jsonw_str(w, r->codes[i]);
        }
        jsonw_array_end(w);
        st =
            records_store_lock_for_orders(r->pg, jsonw_text(w), (int)r->batch_max, &r->loaded, err);
    }
    if (st == TP_OK && r->loaded != NULL) {
        reconcile_take_loaded(r);
    }
    return st;
}

static int reconcile_cmp_identity(const void *a, const void *b, void *ctx)
{
    const struct reconcile_item *items = ctx;
    const struct reconcile_item *x = &items[*(const size_t *)a];
    const struct reconcile_item *y = &items[*(const size_t *)b];
    int c = strcmp(x->rec.receiving_account, y->rec.receiving_account);
    if (c == 0) {
        c = strcmp(x->rec.bank_txn_id, y->rec.bank_txn_id);
    }
    if (c == 0) {
        c = (*(const size_t *)a > *(const size_t *)b) - (*(const size_t *)a < *(const size_t *)b);
    }
    return c;
}

/* Repeats inside the batch: the first occurrence counts, later ones are duplicates. */
static void reconcile_mark_repeats(struct reconcile *r, size_t first)
{
    size_t n = r->n_items - first;
    if (n < 2) {
        return;
    }
    size_t *idx = mem_alloc(n * sizeof(*idx));
    for (size_t i = 0; i < n; i++) {
        idx[i] = first + i;
    }
    qsort_r(idx, n, sizeof(*idx), reconcile_cmp_identity, r->items);
    for (size_t i = 1; i < n; i++) {
        const struct reconcile_item *p = &r->items[idx[i - 1]];
        struct reconcile_item *q = &r->items[idx[i]];
        if (strcmp(p->rec.receiving_account, q->rec.receiving_account) == 0 &&
            strcmp(p->rec.bank_txn_id, q->rec.bank_txn_id) == 0) {
            q->duplicate = true;
        }
    }
    free(idx);
}

/* The batch's new records, minus identities already stored or repeated in the batch. */
static enum tp_status reconcile_add_new(struct reconcile *r, struct tp_error *err)
{
    size_t first = r->n_items;
    for (size_t i = 0; i < r->n_new; i++) {
        struct reconcile_item *it = &r->items[r->n_items++];
        memset(it, 0, sizeof(*it));
        it->rec = *r->new_recs[i];
        it->is_new = true;
        it->mi = -1;
    }
    reconcile_mark_repeats(r, first);
    if (!r->check_known) {
        return TP_OK; /* reconcile_insert() finds out, should any be stored already */
    }
    struct jsonw *w = &r->w_a;
    jsonw_reset(w);
    jsonw_array_begin(w);
    size_t n_ids = 0;
    for (size_t i = first; i < r->n_items; i++) {
        r->dup[i - first] = false;
        if (!r->items[i].duplicate) {
            jsonw_object_begin(w);
            jsonw_kint(w, "i", (int64_t)(i - first));
            jsonw_kstr(w, "a", r->items[i].rec.receiving_account);
            jsonw_kstr(w, "t", r->items[i].rec.bank_txn_id);
            jsonw_object_end(w);
            n_ids++;
        }
    }
    jsonw_array_end(w);
    enum tp_status st = TP_OK;
    if (n_ids > 0) {
        st = records_store_known(r->pg, jsonw_text(w), r->dup, err);
    }
    for (size_t i = first; st == TP_OK && i < r->n_items; i++) {
        if (r->dup[i - first]) {
            r->items[i].duplicate = true;
            r->known_left = RECONCILE_KNOWN_BATCHES; /* redeliveries come in runs */
        }
    }
    return st;
}

/* ---- deciding ---- */

/* Matcher inputs for every record that can be matched; the ignored get their state here. */
static void reconcile_collect(struct reconcile *r)
{
    r->n_m = 0;
    for (size_t i = 0; i < r->n_items; i++) {
        struct reconcile_item *it = &r->items[i];
        if (it->duplicate) {
            continue;
        }
        if (it->is_new && it->rec.ignore_reason != NULL) {
            it->state = "ignored";
            continue;
        }
        struct matcher_record *m = &r->mrecs[r->n_m];
        memset(m, 0, sizeof(*m));
        m->amount_fen = it->rec.amount_fen;
        m->currency_cny = strcmp(it->rec.currency, "CNY") == 0;
        m->name_norm = it->rec.name_norm;
        m->value_day = it->rec.value_day;
        m->received_at_ms = it->rec.received_at_ms;
        m->ncodes = it->rec.ncodes;
        memcpy(m->codes, it->rec.codes, sizeof(m->codes));
        it->mi = (int)r->n_m;
        r->m_item[r->n_m++] = i;
    }
}

static int reconcile_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int reconcile_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Room for n orders. */
static void reconcile_orders_cap(struct reconcile *r, size_t n)
{
    if (n > r->cap_orders) {
        r->orders = mem_realloc(r->orders, n * sizeof(*r->orders));
        r->cap_orders = n;
    }
}

/* True when one of m's codes names an order of the first n (sorted codes: found_codes). */
static bool reconcile_code_found(const struct matcher_record *m, const char **found_codes, size_t n)
{
    for (int c = 0; c < m->ncodes; c++) {
        const char *key = m->codes[c];
        if (n > 0 && bsearch(&key, found_codes, n, sizeof(*found_codes), reconcile_cmp_str)) {
            return true;
        }
    }
    return false;
}

/* Rule 1's orders: every order (any status) a record of the batch names; r->orders[0..n). */
static enum tp_status reconcile_fetch_by_code(struct reconcile *r, size_t *n, struct tp_error *err)
{
    struct jsonw *w = &r->w_a;
    jsonw_reset(w);
    jsonw_array_begin(w);
    size_t n_codes = 0;
    for (size_t k = 0; k < r->n_m; k++) {
        const struct matcher_record *m = &r->mrecs[k];
        for (int c = 0; c < m->ncodes; c++) {
            jsonw_str(w, m->codes[c]);
            n_codes++;
        }
    }
    jsonw_array_end(w);
    *n = 0;
    if (n_codes == 0) {
        return TP_OK;
    }
    enum tp_status st = orders_store_by_code(r->pg, jsonw_text(w), &r->orders_res, err);
    if (st == TP_OK) {
        *n = (size_t)PQntuples(r->orders_res);
        reconcile_orders_cap(r, *n);
        orders_store_fill(r->orders_res, r->orders);
    }
    return st;
}

/*
 * Rule 2's orders: the pending orders of the name and amount of each record none of whose codes
 * names an order of r->orders[0..n1) (the others rule 1 decides), appended unless among those.
 * *n is the total.
 */
static enum tp_status reconcile_fetch_by_key(struct reconcile *r, size_t n1, size_t *n,
                                             struct tp_error *err)
{
    const char **found = mem_alloc((n1 + 1) * sizeof(*found));
    int64_t *ids = mem_alloc((n1 + 1) * sizeof(*ids));
    for (size_t i = 0; i < n1; i++) {
        found[i] = r->orders[i].code;
        ids[i] = r->orders[i].id;
    }
    qsort(found, n1, sizeof(*found), reconcile_cmp_str);
    qsort(ids, n1, sizeof(*ids), reconcile_cmp_i64);
    struct jsonw *w = &r->w_a;
    jsonw_reset(w);
    jsonw_array_begin(w);
    size_t n_keys = 0;
    for (size_t k = 0; k < r->n_m; k++) {
        const struct matcher_record *m = &r->mrecs[k];
        if (m->name_norm[0] != '\0' && m->amount_fen > 0 && m->currency_cny &&
            !reconcile_code_found(m, found, n1)) {
            jsonw_object_begin(w);
            jsonw_kstr(w, "n", m->name_norm);
            jsonw_kint(w, "a", m->amount_fen);
            jsonw_object_end(w);
            n_keys++;
        }
    }
    jsonw_array_end(w);
    enum tp_status st = TP_OK;
    *n = n1;
    if (n_keys > 0) {
        st = orders_store_by_key(r->pg, jsonw_text(w), &r->orders_res2, err);
    }
    if (st == TP_OK && r->orders_res2 != NULL) {
        size_t n2 = (size_t)PQntuples(r->orders_res2);
        reconcile_orders_cap(r, n1 + n2);
        orders_store_fill(r->orders_res2, r->orders + n1);
        for (size_t i = n1; i < n1 + n2; i++) {
            /* The matcher needs distinct orders; one fetched by code too takes the payer flag. */
            if (n1 == 0 || !bsearch(&r->orders[i].id, ids, n1, sizeof(*ids), reconcile_cmp_i64)) {
                r->orders[(*n)++] = r->orders[i];
            } else if (r->orders[i].payer_verified) {
                for (size_t j = 0; j < n1; j++) {
                    if (r->orders[j].id == r->orders[i].id) {
                        r->orders[j].payer_verified = true;
                    }
                }
            }
        }
    }
    free(found);
    free(ids);
    return st;
}

/*
 * The orders the batch could concern, in two lookups: those its records name by code, then,
 * only for the records none of whose codes names an existing order (the ones rule 2 will look
 * at), the pending orders of their name and amount. Most records carry a code that exists, so
 * the second lookup is small or skipped.
 */
static enum tp_status reconcile_fetch_orders(struct reconcile *r, struct tp_error *err)
{
    size_t n1 = 0;
    enum tp_status st = reconcile_fetch_by_code(r, &n1, err);
    if (st == TP_OK) {
        st = reconcile_fetch_by_key(r, n1, &r->n_orders, err);
    }
    return st;
}

static void reconcile_apply_aging(struct reconcile *r, struct reconcile_item *it,
                                  struct matcher_decision *d)
{
    if (!r->sweep || it->is_new || d->outcome != MATCHER_UNMATCHED) {
        return;
    }
    if (aging_is_due(r->s.calendar, it->rec.value_day, r->s.review_after_business_days, r->today)) {
        d->outcome = MATCHER_REVIEW;
        d->reason = MATCHER_REASON_AGED_UNMATCHED;
        it->aged = true;
    }
}

static enum tp_status reconcile_decide(struct reconcile *r, struct tp_error *err)
{
    reconcile_collect(r);
    if (r->n_m == 0) {
        return TP_OK;
    }
    enum tp_status st = reconcile_fetch_orders(r, err);
    if (st != TP_OK) {
        return st;
    }
    struct matcher_orders set;
    matcher_orders_init(&set, r->orders, r->n_orders);
    matcher_decide_batch(&r->s.matcher, &set, r->mrecs, r->n_m, r->decs);
    matcher_orders_deinit(&set);
    for (size_t k = 0; k < r->n_m; k++) {
        struct reconcile_item *it = &r->items[r->m_item[k]];
        struct matcher_decision *d = &r->decs[k];
        reconcile_apply_aging(r, it, d);
        it->state = d->outcome == MATCHER_MATCHED  ? "matched"
                    : d->outcome == MATCHER_REVIEW ? "review"
                                                   : "unmatched";
        it->changed = !it->is_new && d->outcome != MATCHER_UNMATCHED;
    }
    return TP_OK;
}

/* ---- the decision's details (match_decisions.details, review_queue.details) ---- */

/*
 * An order as the decision saw it. the_match: the order this decision credits (its status was
 * pending, and "taken" is this very decision); dates: the rule-2 window's facts.
 */
static void reconcile_order_json(struct jsonw *w, const struct matcher_order *o, bool the_match,
                                 bool dates)
{
    char created[DAYS_STR_LEN], expires[DAYS_STR_LEN];
    jsonw_object_begin(w);
    jsonw_kint(w, "order_id", o->id);
    jsonw_kstr(w, "code", o->code);
    jsonw_kstr(w, "account_id", o->account_id);
    jsonw_kint(w, "amount_fen", o->amount_fen);
    if (!the_match) {
        jsonw_kstr(w, "status", matcher_order_status_name(o->status));
        if (o->taken) {
            jsonw_kbool(w, "matched_in_this_batch", true); /* by another transfer, just before */
        }
    }
    if (dates) {
        jsonw_kstr(w, "created_date", days_format(o->created_day, created));
        jsonw_kstr(w, "expires_date", days_format(o->expires_day, expires));
    }
    jsonw_object_end(w);
}

static void reconcile_fields(struct jsonw *w, enum matcher_rule rule)
{
    jsonw_key(w, "fields");
    jsonw_array_begin(w);
    if (rule == MATCHER_RULE_REFERENCE) {
        jsonw_str(w, "reference_code");
    } else {
        jsonw_str(w, "counterparty_name_norm");
        jsonw_str(w, "amount_fen");
        jsonw_str(w, "value_date");
    }
    jsonw_array_end(w);
}

static void reconcile_candidates(struct jsonw *w, const struct matcher_decision *d)
{
    if (d->order != NULL && d->candidates_total == 1 && d->candidates[0] == d->order) {
        /* The usual match: the one candidate is the order above; not written twice. */
        jsonw_kint(w, "candidates_total", 1);
        return;
    }
    jsonw_key(w, "candidates");
    jsonw_array_begin(w);
    for (int c = 0; c < d->ncandidates; c++) {
        reconcile_order_json(w, d->candidates[c], false, true);
    }
    jsonw_array_end(w);
    jsonw_kint(w, "candidates_total", d->candidates_total);
}

/* The decision's details object, appended to w (match_decisions.details, review_queue.details). */
static void reconcile_details(const struct reconcile *r, const struct reconcile_item *it,
                              const struct matcher_decision *d, struct jsonw *w)
{
    jsonw_object_begin(w);
    if (d == NULL) {
        jsonw_kstr(w, "why", it->rec.ignore_reason);
        jsonw_object_end(w);
        return;
    }
    bool matched = d->outcome == MATCHER_MATCHED;
    bool by_name = d->rule == MATCHER_RULE_NAME_AMOUNT || d->rule == MATCHER_RULE_NONE;
    jsonw_kstr(w, "why", it->aged ? "aged_unmatched" : d->why);
    /* What was compared, as compared; the rest of the record is in its row (record_id). */
    jsonw_key(w, "reference_codes");
    jsonw_array_begin(w);
    for (int c = 0; c < it->rec.ncodes; c++) {
        jsonw_str(w, it->rec.codes[c]);
    }
    jsonw_array_end(w);
    if (by_name || !matched) {
        jsonw_kstr(w, "counterparty_name_norm", it->rec.name_norm);
        jsonw_kint(w, "amount_fen", it->rec.amount_fen);
        jsonw_kstr(w, "value_date", it->rec.value_date);
    }
    if (matched) {
        reconcile_fields(w, d->rule);
        jsonw_kint(w, "credited_fen", d->credited_fen);
        jsonw_kbool(w, "amount_mismatch", d->amount_mismatch);
    }
    if (d->order != NULL) {
        jsonw_key(w, "order");
        reconcile_order_json(w, d->order, matched, by_name || !matched);
    }
    reconcile_candidates(w, d);
    if (d->rule == MATCHER_RULE_NAME_AMOUNT) {
        jsonw_kint(w, "candidate_accounts", d->candidate_accounts);
        jsonw_kint(w, "early_days", r->s.matcher.early_days);
    }
    if (!it->is_new) {
        jsonw_kbool(w, "reexamined", true);
    }
    if (it->aged) {
        char today[DAYS_STR_LEN];
        jsonw_kint(w, "business_days", r->s.review_after_business_days);
        jsonw_kstr(w, "today", days_format(r->today, today));
    }
    jsonw_object_end(w);
}

/* ---- applying ---- */

static enum tp_status reconcile_claim(struct reconcile *r, size_t *n_claims, struct tp_error *err)
{
    size_t n = 0;
    for (size_t k = 0; k < r->n_m; k++) {
        const struct matcher_decision *d = &r->decs[k];
        if (d->outcome != MATCHER_MATCHED) {
            continue;
        }
        const struct reconcile_item *it = &r->items[r->m_item[k]];
        struct claim_match *m = &r->claims[n++];
        m->record_id = it->record_id; /* new records are inserted by now */
        m->order_id = d->order->id;
        m->order_code = d->order->code;
        m->account_id = d->order->account_id;
        m->order_amount_fen = d->order->amount_fen;
        m->credited_fen = d->credited_fen;
        m->amount_mismatch = d->amount_mismatch;
        m->rule = d->rule == MATCHER_RULE_REFERENCE ? TOPUP__V1__MATCH_RULE__MATCH_RULE_REFERENCE
                                                    : TOPUP__V1__MATCH_RULE__MATCH_RULE_NAME_AMOUNT;
        m->receiving_account = it->rec.receiving_account;
        m->bank_txn_id = it->rec.bank_txn_id;
        m->value_date = it->rec.value_date;
    }
    *n_claims = n;
    size_t claimed = 0;
    enum tp_status st = claim_orders(r->pg, r->claims, n, &claimed, err);
    if (st == TP_OK && claimed != n) {
        /* Someone changed an order since we read it: decide again on fresh data. */
        st = error_set(err, TP_RETRY, "%zu of %zu orders changed while matching", n - claimed, n);
    }
    return st;
}

/*
 * Inserts the new records with their final state, under ids taken first. The first attempt of a
 * batch does not look its identities up beforehand (records_store_known): redeliveries are rare,
 * and the unique identity makes the COPY fail on any of them. Then the attempt is rolled back and
 * run again with the lookup (for this batch and the next few, as redeliveries come in runs).
 */
static enum tp_status reconcile_insert(struct reconcile *r, struct tp_error *err)
{
    size_t first = r->n_loaded;
    size_t want = 0;
    for (size_t i = first; i < r->n_items; i++) {
        want += r->items[i].duplicate ? 0 : 1;
    }
    if (want == 0) {
        return TP_OK;
    }
    enum tp_status st = records_store_ids(r->pg, want, r->new_ids, err);
    if (st != TP_OK) {
        return st;
    }
    copyw_reset(&r->copy);
    size_t k = 0;
    for (size_t i = first; i < r->n_items; i++) {
        struct reconcile_item *it = &r->items[i];
        if (!it->duplicate) {
            it->record_id = r->new_ids[k++];
            records_store_copy_row(&r->copy, it->record_id, &it->rec, it->state);
        }
    }
    st = records_store_copy(r->pg, &r->copy, err);
    if (st == TP_DUPLICATE) {
        r->known_left = RECONCILE_KNOWN_BATCHES;
        r->check_known = true;
        char why[ERROR_MSG_MAX];
        snprintf(why, sizeof(why), "%s", err->msg); /* error_set() writes err->msg */
        st = error_set(err, TP_RETRY, "records of the batch are stored already: %s", why);
    }
    return st;
}

static enum tp_status reconcile_update_loaded(struct reconcile *r, struct tp_error *err)
{
    struct jsonw *w = &r->w_a;
    jsonw_reset(w);
    jsonw_array_begin(w);
    size_t n = 0;
    for (size_t i = 0; i < r->n_loaded; i++) {
        const struct reconcile_item *it = &r->items[i];
        if (it->changed) {
            jsonw_object_begin(w);
            jsonw_kint(w, "i", it->record_id);
            jsonw_kstr(w, "s", it->state);
            jsonw_object_end(w);
            n++;
        }
    }
    jsonw_array_end(w);
    return n > 0 ? records_store_set_states(r->pg, jsonw_text(w), err) : TP_OK;
}

static const char *reconcile_review_reason(const struct matcher_decision *d)
{
    if (d->outcome == MATCHER_REVIEW ||
        (d->outcome == MATCHER_MATCHED && d->reason == MATCHER_REASON_AMOUNT_MISMATCH)) {
        return matcher_reason_name(d->reason);
    }
    return NULL;
}

static enum tp_status reconcile_write_decisions(struct reconcile *r, struct tp_error *err)
{
    size_t n = 0;
    jsonw_reset(&r->w_details);
    for (size_t i = 0; i < r->n_items; i++) {
        struct reconcile_item *it = &r->items[i];
        if (it->duplicate || (!it->is_new && !it->changed)) {
            continue;
        }
        const struct matcher_decision *d = it->mi >= 0 ? &r->decs[it->mi] : NULL;
        jsonw_next_document(&r->w_details);
        it->details_off = r->w_details.len;
        reconcile_details(r, it, d, &r->w_details);
        it->details_len = r->w_details.len - it->details_off;
        struct claim_decision *cd = &r->decisions[n++];
        cd->record_index_ = i;
        cd->record_id = it->record_id;
        cd->order_id = d != NULL && d->order != NULL ? d->order->id : 0;
        cd->outcome = d != NULL ? matcher_outcome_name(d->outcome) : "ignored";
        cd->rule = d != NULL ? matcher_rule_name(d->rule) : "none";
        cd->decided_by = RECON_SOURCE;
        cd->review_reason = d != NULL ? reconcile_review_reason(d) : NULL;
    }
    /* The details text is complete (no more reallocation): point into it now. */
    for (size_t k = 0; k < n; k++) {
        const struct reconcile_item *it = &r->items[r->decisions[k].record_index_];
        r->decisions[k].details = jsonw_text(&r->w_details) + it->details_off;
        r->decisions[k].details_len = it->details_len;
    }
    return claim_write_decisions(r->pg, r->decisions, n, err);
}

static void reconcile_count(struct reconcile *r)
{
    struct recon_tally *t = &r->tally;
    memset(t, 0, sizeof(*t));
    t->seen = (int64_t)r->n_new;
    for (size_t i = 0; i < r->n_items; i++) {
        const struct reconcile_item *it = &r->items[i];
        if (it->duplicate) {
            t->duplicates++;
            continue;
        }
        if (it->mi < 0) {
            t->ignored += it->is_new ? 1 : 0;
            continue;
        }
        const struct matcher_decision *d = &r->decs[it->mi];
        if (!it->is_new && it->changed) {
            t->rematched++;
        }
        if (!it->is_new && !it->changed) {
            continue;
        }
        if (d->outcome == MATCHER_MATCHED) {
            t->matched_reference += d->rule == MATCHER_RULE_REFERENCE;
            t->matched_name_amount += d->rule == MATCHER_RULE_NAME_AMOUNT;
        } else if (d->outcome == MATCHER_UNMATCHED) {
            t->unmatched++;
        }
        if (reconcile_review_reason(d) != NULL) {
            t->review[d->reason]++;
        }
    }
}

static void reconcile_log_decisions(const struct reconcile *r)
{
    for (size_t k = 0; k < r->n_m; k++) {
        const struct reconcile_item *it = &r->items[r->m_item[k]];
        const struct matcher_decision *d = &r->decs[k];
        if (!it->is_new && !it->changed) {
            continue;
        }
        const char *msg = d->outcome == MATCHER_MATCHED  ? "transfer matched"
                          : d->outcome == MATCHER_REVIEW ? "transfer sent to review"
                                                         : "transfer unmatched, waiting";
        log_write(d->outcome == MATCHER_MATCHED && d->reason == MATCHER_REASON_NONE ? LOG_DEBUG
                                                                                    : LOG_INFO,
                  msg,
                  (const struct log_field[]){
                      LF_S("receiving_account", it->rec.receiving_account),
                      LF_S("bank_txn_id", it->rec.bank_txn_id),
                      LF_I("amount_fen", it->rec.amount_fen),
                      LF_S("rule", matcher_rule_name(d->rule)),
                      LF_S("reason", matcher_reason_name(d->reason)),
                      LF_S("why", it->aged ? "aged_unmatched" : d->why),
                      LF_S("order", d->order != NULL ? d->order->code : ""),
                      LF_S("account", d->order != NULL ? d->order->account_id : ""),
                  },
                  8);
    }
}

static int64_t reconcile_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One step of an attempt; its duration goes to the batch's debug line. */
typedef enum tp_status reconcile_step_fn(struct reconcile *r, struct tp_error *err);

static enum tp_status reconcile_step_claim(struct reconcile *r, struct tp_error *err)
{
    return reconcile_claim(r, &r->n_claims, err);
}

static enum tp_status reconcile_step_events(struct reconcile *r, struct tp_error *err)
{
    return claim_write_events(r->pg, r->claims, r->n_claims, err);
}

static const struct {
    const char *name;
    reconcile_step_fn *fn;
} reconcile_steps[RECONCILE_STEPS] = {
    {"load_us", reconcile_load},
    {"known_us", reconcile_add_new},
    {"decide_us", reconcile_decide},
    {"insert_us", reconcile_insert},
    {"claim_us", reconcile_step_claim},
    {"update_us", reconcile_update_loaded},
    {"decisions_us", reconcile_write_decisions},
    {"events_us", reconcile_step_events},
};

static enum tp_status reconcile_attempt(struct pg_conn *c, void *ctx, struct tp_error *err)
{
    struct reconcile *r = ctx;
    (void)c;
    reconcile_clear_attempt(r);
    r->n_claims = 0;
    enum tp_status st = TP_OK;
    for (int i = 0; i < RECONCILE_STEPS && st == TP_OK; i++) {
        int64_t t0 = reconcile_now_us();
        st = reconcile_steps[i].fn(r, err);
        r->step_us[i] = reconcile_now_us() - t0;
    }
    if (st == TP_OK) {
        reconcile_count(r);
    }
    return st;
}

static void reconcile_log_timing(const struct reconcile *r, int64_t total_us)
{
    struct log_field f[RECONCILE_STEPS + 3];
    f[0] = LF_I("records", r->n_new);
    f[1] = LF_I("reexamined", r->n_loaded);
    f[2] = LF_I("total_us", total_us);
    for (int i = 0; i < RECONCILE_STEPS; i++) {
        f[3 + i] = LF_I(reconcile_steps[i].name, r->step_us[i]);
    }
    log_write(LOG_DEBUG, "batch reconciled", f, RECONCILE_STEPS + 3);
}

enum tp_status reconcile_run(struct reconcile *r, int attempts, struct recon_tally *tally,
                             struct tp_error *err)
{
    r->sweep = false;
    if (r->n_new == 0 && r->n_codes == 0) {
        memset(tally, 0, sizeof(*tally));
        return TP_OK;
    }
    r->check_known = r->known_left > 0;
    if (r->known_left > 0) {
        r->known_left--;
    }
    int64_t t0 = reconcile_now_us();
    enum tp_status st = pg_transaction(r->pg, reconcile_attempt, r, attempts, err);
    if (st == TP_OK) {
        reconcile_log_timing(r, reconcile_now_us() - t0);
        reconcile_log_decisions(r);
        *tally = r->tally;
    }
    return st;
}

enum tp_status reconcile_sweep_chunk(struct reconcile *r, int32_t today, int64_t *after_id,
                                     bool *more, struct recon_tally *tally, struct tp_error *err)
{
    reconcile_reset(r);
    r->sweep = true;
    r->today = today;
    r->after_id = *after_id;
    r->last_loaded_id = *after_id;
    enum tp_status st = pg_transaction(r->pg, reconcile_attempt, r, 3, err);
    if (st == TP_OK) {
        reconcile_log_decisions(r);
        *tally = r->tally;
        *after_id = r->last_loaded_id;
        *more = r->n_loaded == r->batch_max;
    }
    reconcile_reset(r);
    return st;
}

void recon_tally_count(const struct recon_tally *t, struct counters *c)
{
    static const char *const review_names[] = {
        [MATCHER_REASON_ORDER_NOT_PENDING] = "recon.review.order_not_pending",
        [MATCHER_REASON_AMBIGUOUS] = "recon.review.ambiguous",
        [MATCHER_REASON_AMOUNT_MISMATCH] = "recon.review.amount_mismatch",
        [MATCHER_REASON_AGED_UNMATCHED] = "recon.review.aged_unmatched",
        [MATCHER_REASON_ABOVE_CEILING] = "recon.review.above_ceiling",
        [MATCHER_REASON_UNVERIFIED_PAYER] = "recon.review.unverified_payer",
        [MATCHER_REASON_LATE_ORDER] = "recon.review.late_order",
    };
    if (c == NULL) {
        return;
    }
    const struct {
        const char *name;
        int64_t v;
    } simple[] = {
        {"recon.records.seen", t->seen},
        {"recon.duplicates", t->duplicates},
        {"recon.ignored", t->ignored},
        {"recon.matched.reference", t->matched_reference},
        {"recon.matched.name_amount", t->matched_name_amount},
        {"recon.unmatched", t->unmatched},
        {"recon.rematched", t->rematched},
    };
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (simple[i].v > 0) {
            counters_incr(c, simple[i].name, simple[i].v);
        }
    }
    for (size_t i = 0; i < sizeof(review_names) / sizeof(review_names[0]); i++) {
        if (review_names[i] != NULL && t->review[i] > 0) {
            counters_incr(c, review_names[i], t->review[i]);
        }
    }
}
