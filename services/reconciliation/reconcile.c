/*
 * One batch in one transaction: store new statement records once, re-examine stored unmatched
 * records that a new order (or the sweep) brings back, decide with the matcher, then claim the
 * orders, write the records' states, the decisions, the review items and PaymentMatched rows.
 * Anything a concurrent transaction changed under us (an order cancelled, a record stored by
 * another instance) makes the attempt TP_RETRY: the next attempt reads everything again.
 */
#include "recon.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "aging.h"
#include "days.h"
#include "topup/event.h"
#include "topup/counters.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/pg.h"

struct reconcile_item {
    struct recon_record rec;
    int64_t record_id; /* stored id: loaded, or assigned by the insert */
    bool is_new;
    bool duplicate;
    int mi;            /* index into the matcher arrays; -1 when not matched at all */
    const char *state; /* the record's state after this batch */
    bool changed;      /* a loaded record whose state changes */
    bool aged;         /* sent to review by aging */
    json_t *details;   /* owned; built for the decision row */
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
    PGresult *orders_res;
    struct matcher_order *orders;
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
    struct recon_tally tally;
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
    return r;
}

/* Forgets one attempt's state (results, details), keeping the batch's input. */
static void reconcile_clear_attempt(struct reconcile *r)
{
    for (size_t i = 0; i < r->n_items; i++) {
        json_decref(r->items[i].details);
        r->items[i].details = NULL;
    }
    r->n_items = 0;
    r->n_m = 0;
    r->n_loaded = 0;
    PQclear(r->loaded);
    r->loaded = NULL;
    PQclear(r->orders_res);
    r->orders_res = NULL;
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
        json_t *codes = json_array();
        for (size_t i = 0; i < r->n_codes; i++) {
            json_array_append_new(codes, json_string(r->codes[i]));
        }
        st = records_store_lock_for_orders(r->pg, codes, (int)r->batch_max, &r->loaded, err);
        json_decref(codes);
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
    json_t *ids = json_array();
    for (size_t i = first; i < r->n_items; i++) {
        r->dup[i - first] = false;
        if (!r->items[i].duplicate) {
            json_array_append_new(ids, json_pack("{s:I,s:s,s:s}", "i", (json_int_t)(i - first), "a",
                                                 r->items[i].rec.receiving_account, "t",
                                                 r->items[i].rec.bank_txn_id));
        }
    }
    enum tp_status st = TP_OK;
    if (json_array_size(ids) > 0) {
        st = records_store_known(r->pg, ids, r->dup, err);
    }
    json_decref(ids);
    for (size_t i = first; st == TP_OK && i < r->n_items; i++) {
        r->items[i].duplicate = r->items[i].duplicate || r->dup[i - first];
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
        m->ncodes = it->rec.ncodes;
        memcpy(m->codes, it->rec.codes, sizeof(m->codes));
        it->mi = (int)r->n_m;
        r->m_item[r->n_m++] = i;
    }
}

static enum tp_status reconcile_fetch_orders(struct reconcile *r, struct tp_error *err)
{
    json_t *codes = json_array();
    json_t *keys = json_array();
    for (size_t k = 0; k < r->n_m; k++) {
        const struct matcher_record *m = &r->mrecs[k];
        for (int c = 0; c < m->ncodes; c++) {
            json_array_append_new(codes, json_string(m->codes[c]));
        }
        if (m->name_norm[0] != '\0' && m->amount_fen > 0) {
            json_t *key = json_pack("{s:s,s:I}", "n", m->name_norm, "a", (json_int_t)m->amount_fen);
            if (key != NULL) {
                json_array_append_new(keys, key);
            }
        }
    }
    enum tp_status st = orders_store_fetch(r->pg, codes, keys, &r->orders_res, err);
    json_decref(codes);
    json_decref(keys);
    if (st != TP_OK) {
        return st;
    }
    size_t n = (size_t)PQntuples(r->orders_res);
    if (n > r->cap_orders) {
        r->orders = mem_realloc(r->orders, n * sizeof(*r->orders));
        r->cap_orders = n;
    }
    orders_store_fill(r->orders_res, r->orders);
    return TP_OK;
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
    matcher_orders_init(&set, r->orders, (size_t)PQntuples(r->orders_res));
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

static void reconcile_set_str(json_t *o, const char *key, const char *value)
{
    json_t *v = json_string(value != NULL ? value : "");
    json_object_set_new(o, key, v != NULL ? v : json_null());
}

static json_t *reconcile_order_json(const struct matcher_order *o)
{
    char created[DAYS_STR_LEN], expires[DAYS_STR_LEN];
    json_t *j = json_object();
    json_object_set_new(j, "order_id", json_integer((json_int_t)o->id));
    reconcile_set_str(j, "code", o->code);
    reconcile_set_str(j, "account_id", o->account_id);
    json_object_set_new(j, "amount_fen", json_integer((json_int_t)o->amount_fen));
    reconcile_set_str(j, "status", matcher_order_status_name(o->status));
    reconcile_set_str(j, "created_date", days_format(o->created_day, created));
    reconcile_set_str(j, "expires_date", days_format(o->expires_day, expires));
    if (o->taken) {
        json_object_set_new(j, "matched_in_this_batch", json_true());
    }
    return j;
}

static json_t *reconcile_fields(enum matcher_rule rule)
{
    if (rule == MATCHER_RULE_REFERENCE) {
        return json_pack("[s]", "reference_code");
    }
    return json_pack("[s,s,s]", "counterparty_name_norm", "amount_fen", "value_date");
}

static json_t *reconcile_details(const struct reconcile *r, const struct reconcile_item *it,
                                 const struct matcher_decision *d)
{
    json_t *o = json_object();
    if (d == NULL) {
        reconcile_set_str(o, "why", it->rec.ignore_reason);
        return o;
    }
    reconcile_set_str(o, "why", it->aged ? "aged_unmatched" : d->why);
    reconcile_set_str(o, "value_date", it->rec.value_date);
    json_object_set_new(o, "amount_fen", json_integer((json_int_t)it->rec.amount_fen));
    reconcile_set_str(o, "counterparty_name_norm", it->rec.name_norm);
    json_t *codes = json_array();
    for (int c = 0; c < it->rec.ncodes; c++) {
        json_array_append_new(codes, json_string(it->rec.codes[c]));
    }
    json_object_set_new(o, "reference_codes", codes);
    if (d->outcome == MATCHER_MATCHED) {
        json_object_set_new(o, "fields", reconcile_fields(d->rule));
        json_object_set_new(o, "credited_fen", json_integer((json_int_t)d->credited_fen));
        json_object_set_new(o, "amount_mismatch", json_boolean(d->amount_mismatch));
    }
    if (d->order != NULL) {
        json_object_set_new(o, "order", reconcile_order_json(d->order));
    }
    json_t *cands = json_array();
    for (int c = 0; c < d->ncandidates; c++) {
        json_array_append_new(cands, reconcile_order_json(d->candidates[c]));
    }
    json_object_set_new(o, "candidates", cands);
    json_object_set_new(o, "candidates_total", json_integer(d->candidates_total));
    if (d->rule == MATCHER_RULE_NAME_AMOUNT) {
        json_object_set_new(o, "candidate_accounts", json_integer(d->candidate_accounts));
        json_object_set_new(o, "early_days", json_integer(r->s.matcher.early_days));
    }
    if (!it->is_new) {
        json_object_set_new(o, "reexamined", json_true());
    }
    if (it->aged) {
        char today[DAYS_STR_LEN];
        json_object_set_new(o, "business_days", json_integer(r->s.review_after_business_days));
        reconcile_set_str(o, "today", days_format(r->today, today));
    }
    return o;
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
        m->record_id = it->record_id; /* 0 for a new record until inserted; not used by claims */
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

static json_t *reconcile_record_row(size_t i, const struct reconcile_item *it)
{
    const struct recon_record *x = &it->rec;
    json_t *codes = json_array();
    for (int c = 0; c < x->ncodes; c++) {
        json_array_append_new(codes, json_string(x->codes[c]));
    }
    json_t *row = json_pack(
        "{s:I,s:s,s:s,s:b,s:o,s:s,s:I,s:s,s:s,s:b,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o}",
        "i", (json_int_t)i, "receiving_account", x->receiving_account, "bank_txn_id",
        x->bank_txn_id, "id_is_fingerprint", x->id_is_fingerprint, "booking_date",
        x->booking_date[0] != '\0' ? json_string(x->booking_date) : json_null(), "value_date",
        x->value_date, "amount_fen", (json_int_t)x->amount_fen, "currency", x->currency,
        "direction", x->credit ? "credit" : "debit", "reversal", x->reversal, "counterparty_name",
        x->counterparty_name, "counterparty_name_norm", x->name_norm, "counterparty_account",
        x->counterparty_account, "counterparty_bank", x->counterparty_bank, "remittance_info",
        x->remittance_info, "source_file", x->source_file, "source_location", x->source_location,
        "format", x->format, "event_id", x->event_id, "state", it->state, "ref_codes", codes);
    return row;
}

/* Inserts the new records with their final state; every one must be new to us. */
static enum tp_status reconcile_insert(struct reconcile *r, struct tp_error *err)
{
    size_t first = r->n_loaded;
    size_t want = 0;
    json_t *rows = json_array();
    for (size_t i = first; i < r->n_items; i++) {
        const struct reconcile_item *it = &r->items[i];
        r->new_ids[i - first] = 0;
        if (it->duplicate) {
            continue;
        }
        json_t *row = reconcile_record_row(i - first, it);
        if (row == NULL) {
            json_decref(rows);
            /* decode checked every field; a failure here is a bug, not input. */
            return error_set(err, TP_FATAL, "record %s could not be serialised",
                             it->rec.bank_txn_id);
        }
        json_array_append_new(rows, row);
        want++;
    }
    enum tp_status st = TP_OK;
    size_t inserted = 0;
    if (want > 0) {
        st = records_store_insert(r->pg, rows, r->new_ids, &inserted, err);
    }
    json_decref(rows);
    if (st == TP_OK && inserted != want) {
        st = error_set(err, TP_RETRY, "%zu records were stored concurrently", want - inserted);
    }
    for (size_t i = first; st == TP_OK && i < r->n_items; i++) {
        r->items[i].record_id = r->new_ids[i - first];
    }
    return st;
}

static enum tp_status reconcile_update_loaded(struct reconcile *r, struct tp_error *err)
{
    json_t *rows = json_array();
    for (size_t i = 0; i < r->n_loaded; i++) {
        const struct reconcile_item *it = &r->items[i];
        if (it->changed) {
            json_array_append_new(
                rows, json_pack("{s:I,s:s}", "id", (json_int_t)it->record_id, "state", it->state));
        }
    }
    enum tp_status st = TP_OK;
    if (json_array_size(rows) > 0) {
        st = records_store_set_states(r->pg, rows, err);
    }
    json_decref(rows);
    return st;
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
    for (size_t i = 0; i < r->n_items; i++) {
        struct reconcile_item *it = &r->items[i];
        if (it->duplicate || (!it->is_new && !it->changed)) {
            continue;
        }
        const struct matcher_decision *d = it->mi >= 0 ? &r->decs[it->mi] : NULL;
        it->details = reconcile_details(r, it, d);
        struct claim_decision *cd = &r->decisions[n++];
        cd->record_id = it->record_id;
        cd->order_id = d != NULL && d->order != NULL ? d->order->id : 0;
        cd->outcome = d != NULL ? matcher_outcome_name(d->outcome) : "ignored";
        cd->rule = d != NULL ? matcher_rule_name(d->rule) : "none";
        cd->details = it->details;
        cd->decided_by = RECON_SOURCE;
        cd->review_reason = d != NULL ? reconcile_review_reason(d) : NULL;
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

static enum tp_status reconcile_attempt(struct pg_conn *c, void *ctx, struct tp_error *err)
{
    struct reconcile *r = ctx;
    (void)c;
    reconcile_clear_attempt(r);
    size_t n_claims = 0;
    enum tp_status st = reconcile_load(r, err);
    if (st == TP_OK) {
        st = reconcile_add_new(r, err);
    }
    if (st == TP_OK) {
        st = reconcile_decide(r, err);
    }
    if (st == TP_OK) {
        st = reconcile_claim(r, &n_claims, err);
    }
    if (st == TP_OK) {
        st = reconcile_insert(r, err);
    }
    if (st == TP_OK) {
        st = reconcile_update_loaded(r, err);
    }
    if (st == TP_OK) {
        st = reconcile_write_decisions(r, err);
    }
    if (st == TP_OK) {
        st = claim_write_events(r->pg, r->claims, n_claims, err);
    }
    if (st == TP_OK) {
        reconcile_count(r);
    }
    return st;
}

enum tp_status reconcile_run(struct reconcile *r, int attempts, struct recon_tally *tally,
                             struct tp_error *err)
{
    r->sweep = false;
    if (r->n_new == 0 && r->n_codes == 0) {
        memset(tally, 0, sizeof(*tally));
        return TP_OK;
    }
    enum tp_status st = pg_transaction(r->pg, reconcile_attempt, r, attempts, err);
    if (st == TP_OK) {
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
