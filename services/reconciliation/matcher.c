/* Matching decisions for statement records: rule 1 reference, rule 2 name + amount, or review. */
#include "matcher.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "topup/mem.h"

static int matcher_cmp_code(const void *a, const void *b, void *ctx)
{
    const struct matcher_order *v = ctx;
    return strcmp(v[*(const size_t *)a].code, v[*(const size_t *)b].code);
}

static int matcher_cmp_key_parts(const struct matcher_order *o, const char *name, int64_t amount)
{
    int c = strcmp(o->name_norm, name);
    if (c != 0) {
        return c;
    }
    return (o->amount_fen > amount) - (o->amount_fen < amount);
}

static int matcher_cmp_key(const void *a, const void *b, void *ctx)
{
    const struct matcher_order *v = ctx;
    const struct matcher_order *x = &v[*(const size_t *)a];
    const struct matcher_order *y = &v[*(const size_t *)b];
    int c = matcher_cmp_key_parts(x, y->name_norm, y->amount_fen);
    if (c != 0) {
        return c;
    }
    /* Oldest first, so the first candidate of an account is the one rule 2 credits. */
    if (x->created_at_ms != y->created_at_ms) {
        return x->created_at_ms < y->created_at_ms ? -1 : 1;
    }
    return (x->id > y->id) - (x->id < y->id);
}

void matcher_orders_init(struct matcher_orders *set, struct matcher_order *v, size_t n)
{
    set->v = v;
    set->n = n;
    set->by_code = mem_calloc(n + 1, sizeof(size_t));
    set->by_key = mem_calloc(n + 1, sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        set->by_code[i] = i;
        set->by_key[i] = i;
    }
    qsort_r(set->by_code, n, sizeof(size_t), matcher_cmp_code, v);
    qsort_r(set->by_key, n, sizeof(size_t), matcher_cmp_key, v);
}

void matcher_orders_deinit(struct matcher_orders *set)
{
    free(set->by_code);
    free(set->by_key);
    set->by_code = NULL;
    set->by_key = NULL;
    set->n = 0;
}

static struct matcher_order *matcher_find_code(struct matcher_orders *set, const char *code)
{
    size_t lo = 0;
    size_t hi = set->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(set->v[set->by_code[mid]].code, code);
        if (c == 0) {
            return &set->v[set->by_code[mid]];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* First position in by_key whose (name, amount) is not less than the given one. */
static size_t matcher_key_lower_bound(const struct matcher_orders *set, const char *name,
                                      int64_t amount)
{
    size_t lo = 0;
    size_t hi = set->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (matcher_cmp_key_parts(&set->v[set->by_key[mid]], name, amount) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static void matcher_add_candidate(struct matcher_decision *d, const struct matcher_order *o)
{
    if (d->ncandidates < MATCHER_CANDIDATES_MAX) {
        d->candidates[d->ncandidates++] = o;
    }
    d->candidates_total++;
}

static void matcher_set(struct matcher_decision *d, enum matcher_outcome outcome,
                        enum matcher_rule rule, enum matcher_reason reason, const char *why)
{
    d->outcome = outcome;
    d->rule = rule;
    d->reason = reason;
    d->why = why;
}

/* Orders named by the record's reference codes (codes are unique, so orders are distinct). */
static int matcher_referenced(struct matcher_orders *set, const struct matcher_record *r,
                              struct matcher_order *found[MATCHER_CODES_MAX])
{
    int n = 0;
    for (int i = 0; i < r->ncodes && i < MATCHER_CODES_MAX; i++) {
        struct matcher_order *o = matcher_find_code(set, r->codes[i]);
        if (o != NULL) {
            found[n++] = o;
        }
    }
    return n;
}

/* Rule 1: the text names exactly one existing order; it must still be pending. */
static void matcher_by_reference(struct matcher_order *found[], int nfound,
                                 const struct matcher_record *r, struct matcher_decision *d)
{
    for (int i = 0; i < nfound; i++) {
        matcher_add_candidate(d, found[i]);
    }
    if (nfound > 1) {
        /* Two orders named in one transfer: which one was paid is a human's call. */
        matcher_set(d, MATCHER_REVIEW, MATCHER_RULE_REFERENCE, MATCHER_REASON_AMBIGUOUS,
                    "several_orders_referenced");
        return;
    }
    struct matcher_order *o = found[0];
    d->order = o;
    if (o->status != MATCHER_ORDER_PENDING || o->taken) {
        matcher_set(d, MATCHER_REVIEW, MATCHER_RULE_REFERENCE, MATCHER_REASON_ORDER_NOT_PENDING,
                    o->taken ? "order_matched_in_batch" : "order_not_pending");
        return;
    }
    o->taken = true;
    d->credited_fen = r->amount_fen;
    d->amount_mismatch = r->amount_fen != o->amount_fen;
    matcher_set(d, MATCHER_MATCHED, MATCHER_RULE_REFERENCE,
                d->amount_mismatch ? MATCHER_REASON_AMOUNT_MISMATCH : MATCHER_REASON_NONE,
                "reference");
}

static bool matcher_in_window(const struct matcher_params *p, const struct matcher_order *o,
                              int32_t value_day)
{
    return value_day >= o->created_day - p->early_days && value_day <= o->expires_day;
}

static bool matcher_is_candidate(const struct matcher_params *p, const struct matcher_order *o,
                                 const struct matcher_record *r)
{
    return o->status == MATCHER_ORDER_PENDING && !o->taken && matcher_in_window(p, o, r->value_day);
}

/* An order created after the transfer arrived: on a later day than its value date, or after
 * the worker stored the record (it waited unmatched). Such an order never collects by name. */
static bool matcher_is_late(const struct matcher_order *o, const struct matcher_record *r)
{
    return o->created_day > r->value_day || o->created_at_ms > r->received_at_ms;
}

/* A candidate that may collect by name: its account owns the name, and it is not late. */
static bool matcher_may_collect(const struct matcher_params *p, const struct matcher_order *o,
                                const struct matcher_record *r)
{
    return matcher_is_candidate(p, o, r) && o->payer_verified && !matcher_is_late(o, r);
}

/*
 * Rule 2: same normalised name, same amount, value date in the window. Of those candidates only
 * the ones whose account owns the name (a verified payer) and that existed when the transfer
 * arrived may collect: in one account, match; in several, review ambiguous. No such candidate
 * but a late one of a verified payer: review late_order; only candidates of accounts that do not
 * own the name: review unverified_payer (a squatted name never collects a stranger's transfer).
 */
static void matcher_by_name_amount(const struct matcher_params *p, struct matcher_orders *set,
                                   const struct matcher_record *r, struct matcher_decision *d)
{
    if (r->name_norm == NULL || r->name_norm[0] == '\0') {
        matcher_set(d, MATCHER_UNMATCHED, MATCHER_RULE_NONE, MATCHER_REASON_NONE, "no_name");
        return;
    }
    struct matcher_order *first = NULL, *first_late = NULL, *first_unverified = NULL;
    size_t lo = matcher_key_lower_bound(set, r->name_norm, r->amount_fen);
    for (size_t k = lo; k < set->n; k++) {
        struct matcher_order *o = &set->v[set->by_key[k]];
        if (matcher_cmp_key_parts(o, r->name_norm, r->amount_fen) != 0) {
            break;
        }
        if (!matcher_is_candidate(p, o, r)) {
            continue;
        }
        matcher_add_candidate(d, o);
        if (!o->payer_verified) {
            first_unverified = first_unverified != NULL ? first_unverified : o;
            continue;
        }
        if (matcher_is_late(o, r)) {
            first_late = first_late != NULL ? first_late : o;
            continue;
        }
        /* Distinct accounts: is there an earlier collecting candidate of the same account? */
        bool seen = false;
        for (size_t j = lo; j < k && !seen; j++) {
            const struct matcher_order *e = &set->v[set->by_key[j]];
            seen = matcher_may_collect(p, e, r) && strcmp(e->account_id, o->account_id) == 0;
        }
        if (!seen) {
            d->candidate_accounts++;
        }
        if (first == NULL) {
            first = o;
        }
    }
    if (first == NULL && first_late != NULL) {
        d->order = first_late;
        matcher_set(d, MATCHER_REVIEW, MATCHER_RULE_NAME_AMOUNT, MATCHER_REASON_LATE_ORDER,
                    "late_order");
        return;
    }
    if (first == NULL && first_unverified != NULL) {
        d->order = first_unverified;
        matcher_set(d, MATCHER_REVIEW, MATCHER_RULE_NAME_AMOUNT, MATCHER_REASON_UNVERIFIED_PAYER,
                    "unverified_payer");
        return;
    }
    if (first == NULL) {
        matcher_set(d, MATCHER_UNMATCHED, MATCHER_RULE_NONE, MATCHER_REASON_NONE, "no_candidate");
        return;
    }
    if (d->candidate_accounts > 1) {
        /* The same name and amount in two accounts: crediting either could be the wrong one. */
        matcher_set(d, MATCHER_REVIEW, MATCHER_RULE_NAME_AMOUNT, MATCHER_REASON_AMBIGUOUS,
                    "several_accounts");
        return;
    }
    first->taken = true;
    d->order = first;
    d->credited_fen = r->amount_fen;
    matcher_set(d, MATCHER_MATCHED, MATCHER_RULE_NAME_AMOUNT, MATCHER_REASON_NONE, "name_amount");
}

void matcher_decide_batch(const struct matcher_params *p, struct matcher_orders *set,
                          const struct matcher_record *recs, size_t n, struct matcher_decision *out)
{
    bool *done = mem_calloc(n + 1, sizeof(bool));
    for (size_t i = 0; i < n; i++) {
        const struct matcher_record *r = &recs[i];
        struct matcher_decision *d = &out[i];
        memset(d, 0, sizeof(*d));
        matcher_set(d, MATCHER_UNMATCHED, MATCHER_RULE_NONE, MATCHER_REASON_NONE, "no_candidate");
        if (!r->currency_cny || r->amount_fen <= 0) {
            /* Never matched automatically: it waits unmatched and ages into review. */
            d->why = r->currency_cny ? "not_a_credit" : "currency";
            done[i] = true;
            continue;
        }
        if (r->amount_fen > p->max_record_fen) {
            /* Whatever it names: no automatic credit of more than a top-up business takes. */
            matcher_set(d, MATCHER_REVIEW, MATCHER_RULE_NONE, MATCHER_REASON_ABOVE_CEILING,
                        "above_ceiling");
            done[i] = true;
            continue;
        }
        struct matcher_order *found[MATCHER_CODES_MAX];
        int nfound = matcher_referenced(set, r, found);
        if (nfound > 0) {
            matcher_by_reference(found, nfound, r, d);
            done[i] = true;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!done[i]) {
            matcher_by_name_amount(p, set, &recs[i], &out[i]);
        }
    }
    free(done);
}

const char *matcher_rule_name(enum matcher_rule rule)
{
    switch (rule) {
    case MATCHER_RULE_REFERENCE:
        return "reference";
    case MATCHER_RULE_NAME_AMOUNT:
        return "name_amount";
    case MATCHER_RULE_NONE:
        break;
    }
    return "none";
}

const char *matcher_reason_name(enum matcher_reason reason)
{
    switch (reason) {
    case MATCHER_REASON_ORDER_NOT_PENDING:
        return "order_not_pending";
    case MATCHER_REASON_AMBIGUOUS:
        return "ambiguous";
    case MATCHER_REASON_AMOUNT_MISMATCH:
        return "amount_mismatch";
    case MATCHER_REASON_AGED_UNMATCHED:
        return "aged_unmatched";
    case MATCHER_REASON_ABOVE_CEILING:
        return "above_ceiling";
    case MATCHER_REASON_UNVERIFIED_PAYER:
        return "unverified_payer";
    case MATCHER_REASON_LATE_ORDER:
        return "late_order";
    case MATCHER_REASON_NONE:
        break;
    }
    return "none";
}

const char *matcher_outcome_name(enum matcher_outcome outcome)
{
    switch (outcome) {
    case MATCHER_MATCHED:
        return "matched";
    case MATCHER_REVIEW:
        return "review";
    case MATCHER_UNMATCHED:
        break;
    }
    return "unmatched";
}

static const char *const matcher_status_names[] = {
    [MATCHER_ORDER_PENDING] = "pending",     [MATCHER_ORDER_PROCESSING] = "processing",
    [MATCHER_ORDER_COMPLETED] = "completed", [MATCHER_ORDER_CANCELLED] = "cancelled",
    [MATCHER_ORDER_EXPIRED] = "expired",
};

bool matcher_order_status_parse(const char *s, enum matcher_order_status *out)
{
    for (size_t i = 0; i < sizeof(matcher_status_names) / sizeof(matcher_status_names[0]); i++) {
        if (strcmp(s, matcher_status_names[i]) == 0) {
            *out = (enum matcher_order_status)i;
            return true;
        }
    }
    return false;
}

const char *matcher_order_status_name(enum matcher_order_status status)
{
    assert((size_t)status < sizeof(matcher_status_names) / sizeof(matcher_status_names[0]));
    return matcher_status_names[status];
}
