/* The plan of one ledger batch: duplicates, rejections and the balance after every flow. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "topup/mem.h"
#include "topup/money.h"

void batch_init(struct batch *b, int max)
{
    assert(max > 0 && max <= LEDGER_BATCH_HARD_MAX);
    memset(b, 0, sizeof(*b));
    b->max = max;
    b->items = mem_calloc((size_t)max, sizeof(*b->items));
    b->accounts = mem_calloc((size_t)max, sizeof(*b->accounts));
    b->keys = mem_calloc((size_t)max, sizeof(*b->keys));
    b->orders = mem_calloc((size_t)max, sizeof(*b->orders));
}

void batch_deinit(struct batch *b)
{
    free(b->items);
    free(b->accounts);
    free(b->keys);
    free(b->orders);
    memset(b, 0, sizeof(*b));
}

void batch_reset(struct batch *b)
{
    b->n = 0;
    b->n_accounts = 0;
    b->n_keys = 0;
    b->n_orders = 0;
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

void batch_index(struct batch *b)
{
    int na = 0, nk = 0, no = 0;
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
    }
    b->n_accounts = batch_sort_unique(b->accounts, na, sizeof(b->accounts[0]));
    b->n_keys = batch_sort_unique(b->keys, nk, sizeof(b->keys[0]));
    b->n_orders = batch_sort_unique(b->orders, no, sizeof(b->orders[0]));
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

static void batch_reject(struct batch *b, struct batch_item *it, const char *fmt, const char *a,
                         const char *c)
{
    it->outcome = BATCH_REJECT;
    snprintf(it->reason, sizeof(it->reason), fmt, a, c);
    b->rejects++;
}

/*
 * Why a recharge cannot be applied, or NULL. The order is the source of the flow: without it, or
 * when it names another account, crediting would be a guess; a second recharge of one order could
 * be a replay or a second transfer, which only a person can tell apart. Each of these is kept in
 * ledger_rejections and the DLQ for finance, never applied and never silently dropped.
 */
static bool batch_check_recharge(struct batch *b, struct batch_item *it, const char *applied_by[],
                                 int oi)
{
    struct batch_order *o = &b->orders[oi];
    if (o->status == BATCH_ORDER_MISSING) {
        batch_reject(b, it, "order %s not found%s", o->code, "");
        return false;
    }
    if (strcmp(o->account_id, it->ev.account_id) != 0) {
        batch_reject(b, it, "order %s belongs to another account%s", o->code, "");
        return false;
    }
    const char *by = o->credited_by[0] != '\0' ? o->credited_by : applied_by[oi];
    if (by != NULL) {
        batch_reject(b, it, "order %s already credited by event %s", o->code, by);
        return false;
    }
    return true;
}

void batch_plan(struct batch *b)
{
    memset(b->applied, 0, sizeof(b->applied));
    b->duplicates = b->rejects = b->invalid = 0;
    bool *seen = mem_calloc((size_t)b->n_keys + 1, sizeof(bool));
    const char **applied_by = mem_calloc((size_t)b->n_orders + 1, sizeof(char *));
    for (int i = 0; i < b->n_accounts; i++) {
        struct batch_account *a = &b->accounts[i];
        assert(a->loaded);
        a->new_balance_fen = a->balance_fen;
        a->new_version = a->version;
        a->flows = 0;
    }
    for (int i = 0; i < b->n; i++) {
        struct batch_item *it = &b->items[i];
        if (it->outcome == BATCH_INVALID) {
            b->invalid++;
            continue;
        }
        it->outcome = BATCH_PENDING;
        it->reason[0] = '\0';
        it->balance_after_fen = 0;
        it->complete_order = it->order_not_processing = it->rejected_before = false;

        struct batch_event_key *k = batch_find_key(b, it->ev.event_id);
        assert(k != NULL);
        if (seen[k - b->keys] || k->is_flow) {
            it->outcome = BATCH_DUPLICATE;
            b->duplicates++;
            continue;
        }
        seen[k - b->keys] = true;
        if (k->is_rejection) {
            batch_reject(b, it, "%s%s", k->rejection_reason, "");
            it->rejected_before = true;
            continue;
        }
        int oi = -1;
        if (it->ev.type == LEDGER_FLOW_RECHARGE) {
            struct batch_order *o = batch_find_order(b, it->ev.reference);
            assert(o != NULL);
            oi = (int)(o - b->orders);
            if (!batch_check_recharge(b, it, applied_by, oi)) {
                continue;
            }
        }
        struct batch_account *a = batch_find_account(b, it->ev.account_id);
        assert(a != NULL);
        int64_t after;
        if (!money_add(a->new_balance_fen, it->ev.amount_fen, &after)) {
            batch_reject(b, it, "balance of account %s would overflow%s", a->account_id, "");
            continue;
        }
        a->new_balance_fen = after;
        a->flows++;
        it->balance_after_fen = after;
        it->outcome = BATCH_APPLY;
        b->applied[it->ev.type]++;
        if (oi >= 0) {
            applied_by[oi] = it->ev.event_id;
            it->complete_order = b->orders[oi].status == BATCH_ORDER_PROCESSING;
            it->order_not_processing = !it->complete_order;
        }
    }
    free(seen);
    free(applied_by);
}
