/* The plan of one ledger batch: duplicates, rejections and the balance after every flow. */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "topup/mem.h"
#include "topup/money.h"

const char *batch_refusal_name(enum batch_refusal r)
{
    switch (r) {
    case BATCH_REFUSED_STATE:
        return "state";
    case BATCH_REFUSED_PROVENANCE:
        return "provenance";
    case BATCH_REFUSED_CEILING:
        return "ceiling";
    case BATCH_REFUSED_CONFLICT:
        return "conflict";
    }
    return "unknown";
}

void batch_init(struct batch *b, int max, const struct ledger_limits *limits)
{
    assert(max > 0 && max <= LEDGER_BATCH_HARD_MAX);
    assert(limits->recharge_max > 0 && limits->usage_max > 0 && limits->refund_max > 0 &&
           limits->refund_wait_s > 0);
    memset(b, 0, sizeof(*b));
    b->max = max;
    b->limits = *limits;
    size_t cap = (size_t)max + LEDGER_PENDING_PER_BATCH;
    b->items = mem_calloc(cap, sizeof(*b->items));
    b->accounts = mem_calloc(cap, sizeof(*b->accounts));
    b->keys = mem_calloc(cap, sizeof(*b->keys));
    b->orders = mem_calloc(cap, sizeof(*b->orders));
    b->usages = mem_calloc(cap, sizeof(*b->usages));
    b->plan_order = mem_calloc(cap, sizeof(*b->plan_order));
}

void batch_deinit(struct batch *b)
{
    free(b->items);
    free(b->accounts);
    free(b->keys);
    free(b->orders);
    free(b->usages);
    free(b->plan_order);
    free(b->lots);
    memset(b, 0, sizeof(*b));
}

void batch_reset(struct batch *b)
{
    b->n = 0;
    b->n_accounts = 0;
    b->n_keys = 0;
    b->n_orders = 0;
    b->n_usages = 0;
}

struct batch_item *batch_add(struct batch *b)
{
    if (b->n >= b->max) {
        return NULL;
    }
    struct batch_item *it = &b->items[b->n++];
    memset(it, 0, sizeof(*it));
    return it;
}

struct batch_item *batch_add_pending(struct batch *b)
{
    if (b->n >= b->max + LEDGER_PENDING_PER_BATCH) {
        return NULL;
    }
    struct batch_item *it = &b->items[b->n++];
    memset(it, 0, sizeof(*it));
    it->from_pending = true;
    it->msg_index = -1;
    return it;
}

/* The first member of each index entry is its key string, so one comparator serves all three. */
static int batch_cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts n entries of size sz whose first member is a const char *, and drops repeated keys. */
static int batch_sort_unique(void *base, int n, size_t sz)
{
    if (n == 0) {
        return 0;
    }
    qsort(base, (size_t)n, sz, batch_cmp_key);
    char *p = base;
    int out = 1;
    for (int i = 1; i < n; i++) {
        const char *prev = *(const char **)(p + (size_t)(out - 1) * sz);
        const char *cur = *(const char **)(p + (size_t)i * sz);
        if (strcmp(prev, cur) != 0) {
            memmove(p + (size_t)out * sz, p + (size_t)i * sz, sz);
            out++;
        }
    }
    return out;
}

/* "<account>\x1f<reference>": account ids and references are printable ASCII, never 0x1f. */
static void batch_usage_key(struct batch_item *it)
{
    const char *ref = NULL;
    if (it->ev.type == LEDGER_FLOW_CONSUME) {
        ref = it->ev.reference;
    } else if (it->ev.type == LEDGER_FLOW_REFUND && it->ev.usage_refund &&
               it->ev.refund_of[0] != '\0') {
        ref = it->ev.refund_of;
    }
    if (ref == NULL) {
        it->usage_key[0] = '\0';
        return;
    }
    snprintf(it->usage_key, sizeof(it->usage_key), "%s\x1f%s", it->ev.account_id, ref);
}

void batch_index(struct batch *b)
{
    int na = 0, nk = 0, no = 0, nu = 0;
    for (int i = 0; i < b->n; i++) {
        struct batch_item *it = &b->items[i];
        if (it->outcome == BATCH_INVALID) {
            continue;
        }
        memset(&b->accounts[na], 0, sizeof(b->accounts[na]));
        b->accounts[na++].account_id = it->ev.account_id;
        memset(&b->keys[nk], 0, sizeof(b->keys[nk]));
        b->keys[nk++].event_id = it->ev.event_id;
        if (it->ev.type == LEDGER_FLOW_RECHARGE) {
            memset(&b->orders[no], 0, sizeof(b->orders[no]));
            b->orders[no++].code = it->ev.reference;
        }
        batch_usage_key(it);
        if (it->usage_key[0] != '\0') {
            memset(&b->usages[nu], 0, sizeof(b->usages[nu]));
            b->usages[nu++].key = it->usage_key;
        }
    }
    b->n_accounts = batch_sort_unique(b->accounts, na, sizeof(b->accounts[0]));
    b->n_keys = batch_sort_unique(b->keys, nk, sizeof(b->keys[0]));
    b->n_orders = batch_sort_unique(b->orders, no, sizeof(b->orders[0]));
    b->n_usages = batch_sort_unique(b->usages, nu, sizeof(b->usages[0]));
    /* Lots point at accounts by index: those read for another index are gone. */
    b->n_lots = b->n_lots_read = 0;
}

struct batch_account *batch_find_account(struct batch *b, const char *account_id)
{
    return bsearch(&account_id, b->accounts, (size_t)b->n_accounts, sizeof(b->accounts[0]),
                   batch_cmp_key);
}

struct batch_event_key *batch_find_key(struct batch *b, const char *event_id)
{
    return bsearch(&event_id, b->keys, (size_t)b->n_keys, sizeof(b->keys[0]), batch_cmp_key);
}

struct batch_order *batch_find_order(struct batch *b, const char *code)
{
    return bsearch(&code, b->orders, (size_t)b->n_orders, sizeof(b->orders[0]), batch_cmp_key);
}

struct batch_usage *batch_find_usage(struct batch *b, const char *key)
{
    return bsearch(&key, b->usages, (size_t)b->n_usages, sizeof(b->usages[0]), batch_cmp_key);
}

static void batch_reject(struct batch *b, struct batch_item *it, enum batch_refusal why,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void batch_reject(struct batch *b, struct batch_item *it, enum batch_refusal why,
                         const char *fmt, ...)
{
    it->outcome = BATCH_REJECT;
    it->refusal = why;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->reason, sizeof(it->reason), fmt, ap);
    va_end(ap);
    b->rejects++;
    b->refused[why]++;
}

/* True when ev carries what the flow or rejection k holds: a redelivery, not a reused id. */
static bool batch_same_event(const struct ledger_event *ev, const struct batch_event_key *k)
{
    return strcmp(ev->account_id, k->account_id) == 0 && ev->type == k->type &&
           ev->amount_fen == k->amount_fen && strcmp(ev->reference, k->reference) == 0;
}

static bool batch_same_content(const struct ledger_event *a, const struct ledger_event *b)
{
    return strcmp(a->account_id, b->account_id) == 0 && a->type == b->type &&
           a->amount_fen == b->amount_fen && strcmp(a->reference, b->reference) == 0;
}

/* The absolute amount above its kind's ceiling, or false. */
static bool batch_above_ceiling(const struct batch *b, const struct ledger_event *ev,
                                int64_t *ceiling)
{
    int64_t amount = ev->amount_fen;
    switch (ev->type) {
    case LEDGER_FLOW_RECHARGE:
        *ceiling = b->limits.recharge_max;
        break;
    case LEDGER_FLOW_CONSUME:
        *ceiling = b->limits.usage_max;
        break;
    case LEDGER_FLOW_REFUND:
        *ceiling = b->limits.refund_max;
        break;
    }
    /* Compared without negating amount, which may be INT64_MIN. */
    return amount > *ceiling || amount < -*ceiling;
}

/*
 * Why a recharge cannot be applied, or NULL. The order is the source of the flow: without it, or
 * when it names another account, crediting would be a guess; a second recharge of one order could
 * be a replay or a second transfer, which only a person can tell apart. A credit also needs its
 * match decision in PostgreSQL (SPEC, Trust): reconciliation writes it in the transaction that
 * queues the PaymentMatched, so an event without one, or naming another bank record or amount,
 * was not written by reconciliation. Each of these is kept in ledger_rejections and the DLQ for
 * finance, never applied and never silently dropped.
 */
static bool batch_check_recharge(struct batch *b, struct batch_item *it, const char *applied_by[],
                                 int oi)
{
    struct batch_order *o = &b->orders[oi];
    if (o->status == BATCH_ORDER_MISSING) {
        batch_reject(b, it, BATCH_REFUSED_PROVENANCE, "order %s not found", o->code);
        return false;
    }
    if (strcmp(o->account_id, it->ev.account_id) != 0) {
        batch_reject(b, it, BATCH_REFUSED_PROVENANCE, "order %s belongs to another account",
                     o->code);
        return false;
    }
    const char *by = o->credited_by[0] != '\0' ? o->credited_by : applied_by[oi];
    if (by != NULL) {
        batch_reject(b, it, BATCH_REFUSED_STATE, "order %s already credited by event %s", o->code,
                     by);
        return false;
    }
    if (!o->has_decision) {
        batch_reject(b, it, BATCH_REFUSED_PROVENANCE,
                     "order %s has no match decision: no bank transfer was matched to it", o->code);
        return false;
    }
    if (strcmp(o->decision_bank_account, it->ev.bank_account) != 0 ||
        strcmp(o->decision_bank_txn_id, it->ev.bank_txn_id) != 0) {
        batch_reject(b, it, BATCH_REFUSED_PROVENANCE,
                     "order %s was matched (decision %" PRId64 ") to another bank record than "
                     "the event names",
                     o->code, o->decision_id);
        return false;
    }
    if (o->decision_amount_fen != it->ev.amount_fen) {
        batch_reject(b, it, BATCH_REFUSED_PROVENANCE,
                     "credited_fen %" PRId64 " of order %s is not the matched transfer's %" PRId64
                     " (decision %" PRId64 ")",
                     it->ev.amount_fen, o->code, o->decision_amount_fen, o->decision_id);
        return false;
    }
    return true;
}

/*
 * Consumes and usage refunds against the usage they name. A usage request id is charged once
 * per account: another event id for it is a gateway retry that made a new event, refused so the
 * charge applies once. A usage refund gives back at most what its usage took, less what earlier
 * refunds of it gave back. used[] holds, per usage key, what this batch applied so far.
 */
struct batch_usage_plan {
    const char *consumed_by; /* this batch's consume event id, NULL if none */
    int64_t consumed_fen;
    int64_t refunded_fen;
};

static bool batch_check_usage(struct batch *b, struct batch_item *it,
                              struct batch_usage_plan used[])
{
    if (it->ev.type == LEDGER_FLOW_REFUND && it->ev.usage_refund && it->ev.refund_of[0] == '\0') {
        batch_reject(b, it, BATCH_REFUSED_PROVENANCE,
                     "usage refund %s names no usage (original_reference is empty)",
                     it->ev.reference);
        return false;
    }
    if (it->usage_key[0] == '\0') {
        return true;
    }
    struct batch_usage *u = batch_find_usage(b, it->usage_key);
    assert(u != NULL);
    struct batch_usage_plan *p = &used[u - b->usages];
    const char *by = u->consumed_by[0] != '\0' ? u->consumed_by : p->consumed_by;
    if (it->ev.type == LEDGER_FLOW_CONSUME) {
        if (by != NULL) {
            batch_reject(b, it, BATCH_REFUSED_CONFLICT,
                         "usage request %s already charged by event %s", it->ev.reference, by);
            return false;
        }
        return true;
    }
    if (by == NULL) {
        if (it->pending_age_s < b->limits.refund_wait_s) {
            /* Its usage is on another topic and may come later: wait, credit nothing. */
            it->outcome = BATCH_DEFER;
            b->deferred++;
            return false;
        }
        batch_reject(b, it, BATCH_REFUSED_PROVENANCE,
                     "usage refund %s names usage %s, which this account was not charged within "
                     "%" PRId64 " s",
                     it->ev.reference, it->ev.refund_of, b->limits.refund_wait_s);
        return false;
    }
    int64_t consumed = u->consumed_by[0] != '\0' ? u->consumed_fen : p->consumed_fen;
    int64_t left = consumed - u->refunded_fen - p->refunded_fen;
    if (it->ev.amount_fen > left) {
        batch_reject(b, it, BATCH_REFUSED_PROVENANCE,
                     "usage refund %s of %" PRId64 " fen is more than the %" PRId64
                     " fen left to refund of usage %s",
                     it->ev.reference, it->ev.amount_fen, left < 0 ? 0 : left, it->ev.refund_of);
        return false;
    }
    return true;
}

/* Records what an applied consume or usage refund took from its usage, for later items. */
static void batch_note_usage(struct batch *b, const struct batch_item *it,
                             struct batch_usage_plan used[])
{
    if (it->usage_key[0] == '\0') {
        return;
    }
    struct batch_usage_plan *p = &used[batch_find_usage(b, it->usage_key) - b->usages];
    if (it->ev.type == LEDGER_FLOW_CONSUME) {
        p->consumed_by = it->ev.event_id;
        p->consumed_fen = -it->ev.amount_fen;
    } else {
        p->refunded_fen += it->ev.amount_fen;
    }
}

/*
 * A bank payout naming a refund request is the reservation its approval queued: it must be that
 * request's event, account and amount, and the request's credit lot must still hold the amount
 * (a consume applied between the approval and now may have spent it: then nothing is reserved
 * and the request cannot be paid out). A payout naming no request is taken as before.
 */
static bool batch_check_payout(struct batch *b, struct batch_item *it)
{
    if (it->ev.type != LEDGER_FLOW_REFUND || it->ev.usage_refund || !it->payout_request) {
        return true;
    }
    if (strcmp(it->payout_account, it->ev.account_id) != 0 ||
        strcmp(it->payout_event_id, it->ev.event_id) != 0 ||
        it->payout_amount_fen != -it->ev.amount_fen || strcmp(it->payout_state, "requested") == 0 ||
        strcmp(it->payout_state, "rejected") == 0) {
        batch_reject(b, it, BATCH_REFUSED_PROVENANCE,
                     "bank payout %s is not the reservation of refund request %s (%s, %" PRId64
                     " fen on %s, reserved by event %s)",
                     it->ev.event_id, it->ev.reference, it->payout_state, it->payout_amount_fen,
                     it->payout_account[0] != '\0' ? it->payout_account : "no account",
                     it->payout_event_id[0] != '\0' ? it->payout_event_id : "none");
        return false;
    }
    int64_t left = lots_left_now(b, it->ev.account_id, it->payout_lot_id);
    if (left < -it->ev.amount_fen) {
        batch_reject(b, it, BATCH_REFUSED_STATE,
                     "refund %s of %" PRId64 " fen: its credit lot %" PRId64 " has only %" PRId64
                     " fen left (used since the approval); nothing reserved",
                     it->ev.reference, -it->ev.amount_fen, it->payout_lot_id, left);
        return false;
    }
    return true;
}

/* Decides one item (see batch_plan). */
static void batch_plan_item(struct batch *b, struct batch_item *it, int i, int first[],
                            const char *applied_by[], struct batch_usage_plan used[])
{
    it->outcome = BATCH_PENDING;
    it->reason[0] = '\0';
    it->balance_after_fen = 0;
    it->complete_order = it->order_not_processing = it->rejected_before = false;
    it->conflict = false;
    it->refusal = BATCH_REFUSED_STATE;

    struct batch_event_key *k = batch_find_key(b, it->ev.event_id);
    assert(k != NULL);
    int ki = (int)(k - b->keys);
    /* An event id is one event: the same id with other content is refused loudly. */
    if (k->is_flow || k->is_rejection) {
        if (!batch_same_event(&it->ev, k)) {
            batch_reject(b, it, BATCH_REFUSED_CONFLICT,
                         "event id reused with other content: the event already %s is %s "
                         "%" PRId64 " fen on %s (%s)",
                         k->is_flow ? "applied" : "rejected", ledger_flow_type_name(k->type),
                         k->amount_fen, k->account_id, k->reference);
            it->conflict = true;
            return;
        }
    } else if (first[ki] >= 0 && !batch_same_content(&it->ev, &b->items[first[ki]].ev)) {
        const struct ledger_event *f = &b->items[first[ki]].ev;
        batch_reject(b, it, BATCH_REFUSED_CONFLICT,
                     "event id reused with other content in the same batch (%s %" PRId64
                     " fen, reference %s first)",
                     ledger_flow_type_name(f->type), f->amount_fen, f->reference);
        it->conflict = true;
        return;
    }
    if (first[ki] >= 0 || k->is_flow) {
        it->outcome = BATCH_DUPLICATE;
        b->duplicates++;
        return;
    }
    first[ki] = i;
    if (k->is_rejection) {
        batch_reject(b, it, BATCH_REFUSED_STATE, "%s", k->rejection_reason);
        it->rejected_before = true;
        return;
    }
    int64_t ceiling = 0;
    if (batch_above_ceiling(b, &it->ev, &ceiling)) {
        batch_reject(b, it, BATCH_REFUSED_CEILING,
                     "%s of %" PRId64 " fen is above the ceiling of %" PRId64
                     " fen: refused for review, never applied",
                     ledger_flow_type_name(it->ev.type), it->ev.amount_fen, ceiling);
        return;
    }
    int oi = -1;
    if (it->ev.type == LEDGER_FLOW_RECHARGE) {
        struct batch_order *o = batch_find_order(b, it->ev.reference);
        assert(o != NULL);
        oi = (int)(o - b->orders);
        if (!batch_check_recharge(b, it, applied_by, oi)) {
            return;
        }
    }
    if (!batch_check_usage(b, it, used)) {
        return;
    }
    if (!batch_check_payout(b, it)) {
        return;
    }
    struct batch_account *a = batch_find_account(b, it->ev.account_id);
    assert(a != NULL);
    int64_t after;
    if (!money_add(a->new_balance_fen, it->ev.amount_fen, &after)) {
        batch_reject(b, it, BATCH_REFUSED_STATE, "balance of account %s would overflow",
                     a->account_id);
        return;
    }
    a->new_balance_fen = after;
    a->flows++;
    it->balance_after_fen = after;
    it->outcome = BATCH_APPLY;
    b->applied[it->ev.type]++;
    b->plan_order[b->n_planned++] = i;
    lots_apply(b, i);
    batch_note_usage(b, it, used);
    if (oi >= 0) {
        applied_by[oi] = it->ev.event_id;
        it->complete_order = b->orders[oi].status == BATCH_ORDER_PROCESSING;
        it->order_not_processing = !it->complete_order;
    }
}

/* Whether item it is planned in pass (0: all but usage refunds, 1: usage refunds). */
static bool batch_in_pass(const struct batch_item *it, int pass)
{
    bool usage_refund = it->ev.type == LEDGER_FLOW_REFUND && it->ev.usage_refund;
    return usage_refund == (pass == 1);
}

void batch_plan(struct batch *b)
{
    memset(b->applied, 0, sizeof(b->applied));
    memset(b->refused, 0, sizeof(b->refused));
    b->duplicates = b->rejects = b->invalid = b->deferred = 0;
    b->n_planned = 0;
    /* first[k]: the item that first carried event key k in this batch, -1 before. */
    int *first = mem_alloc(((size_t)b->n_keys + 1) * sizeof(int));
    for (int i = 0; i < b->n_keys; i++) {
        first[i] = -1;
    }
    const char **applied_by = mem_calloc((size_t)b->n_orders + 1, sizeof(char *));
    struct batch_usage_plan *used = mem_calloc((size_t)b->n_usages + 1, sizeof(*used));
    lots_begin(b);
    for (int i = 0; i < b->n_accounts; i++) {
        struct batch_account *a = &b->accounts[i];
        assert(a->loaded);
        a->new_balance_fen = a->balance_fen;
        a->new_version = a->version;
        a->flows = 0;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < b->n; i++) {
            struct batch_item *it = &b->items[i];
            if (it->outcome == BATCH_INVALID) {
                b->invalid += pass == 0;
                continue;
            }
            if (!batch_in_pass(it, pass)) {
                continue;
            }
            batch_plan_item(b, it, i, first, applied_by, used);
        }
    }
    free(first);
    free(applied_by);
    free(used);
}
