/* Credit lots: which recharge each fen of a positive balance is left from, planned per batch. */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "topup/log.h"
#include "topup/mem.h"

void lots_reset(struct batch *b)
{
    b->n_lots = b->n_lots_read = 0;
    b->lots_short_fen = 0;
    for (int i = 0; i < b->n_accounts; i++) {
        struct batch_account *a = &b->accounts[i];
        a->lot_first = a->lot_n = 0;
        a->new_first = a->new_last = -1;
    }
}

static struct batch_lot *lots_push(struct batch *b)
{
    if (b->n_lots == b->lots_cap) {
        b->lots_cap = b->lots_cap > 0 ? 2 * b->lots_cap : 256;
        b->lots = mem_realloc(b->lots, (size_t)b->lots_cap * sizeof(*b->lots));
    }
    struct batch_lot *l = &b->lots[b->n_lots++];
    memset(l, 0, sizeof(*l));
    l->item = l->next = l->prev = -1;
    return l;
}

void lots_add_read(struct batch *b, const char *account_id, int64_t id, int64_t paid_fen,
                   int64_t left_fen)
{
    struct batch_account *a = batch_find_account(b, account_id);
    if (a == NULL) {
        return;
    }
    assert(b->n_lots == b->n_lots_read); /* read ones come before any opened one */
    if (a->lot_n == 0) {
        a->lot_first = b->n_lots;
    }
    assert(a->lot_first + a->lot_n == b->n_lots); /* grouped by account */
    struct batch_lot *l = lots_push(b);
    l->id = id;
    l->account = (int)(a - b->accounts);
    l->paid_fen = paid_fen;
    l->left_read_fen = l->left_fen = left_fen;
    a->lot_n++;
    b->n_lots_read++;
}

static int64_t lots_positive(int64_t v)
{
    return v > 0 ? v : 0;
}

/* Takes up to need from a's lots, oldest first (read ones, then those opened in this batch). */
static int64_t lots_draw(struct batch *b, struct batch_account *a, int64_t need)
{
    for (int i = a->lot_first; need > 0 && i < a->lot_first + a->lot_n; i++) {
        struct batch_lot *l = &b->lots[i];
        int64_t take = l->left_fen < need ? l->left_fen : need;
        l->left_fen -= take;
        need -= take;
    }
    for (int i = a->new_first; need > 0 && i >= 0; i = b->lots[i].next) {
        struct batch_lot *l = &b->lots[i];
        int64_t take = l->left_fen < need ? l->left_fen : need;
        l->left_fen -= take;
        need -= take;
    }
    return need;
}

/* Gives up to give back to a's lots, newest first, none above what it was paid. */
static int64_t lots_give_back(struct batch *b, struct batch_account *a, int64_t give)
{
    for (int i = a->new_last; give > 0 && i >= 0; i = b->lots[i].prev) {
        struct batch_lot *l = &b->lots[i];
        int64_t room = l->paid_fen - l->left_fen;
        int64_t put = room < give ? room : give;
        l->left_fen += put;
        give -= put;
    }
    for (int i = a->lot_first + a->lot_n - 1; give > 0 && i >= a->lot_first; i--) {
        struct batch_lot *l = &b->lots[i];
        int64_t room = l->paid_fen - l->left_fen;
        int64_t put = room < give ? room : give;
        l->left_fen += put;
        give -= put;
    }
    return give;
}

static void lots_open(struct batch *b, struct batch_account *a, int item, int64_t paid_fen,
                      int64_t left_fen)
{
    struct batch_lot *l = lots_push(b);
    int li = b->n_lots - 1;
    l->item = item;
    l->account = (int)(a - b->accounts);
    l->paid_fen = paid_fen;
    l->left_fen = left_fen;
    l->prev = a->new_last;
    if (a->new_last >= 0) {
        b->lots[a->new_last].next = li;
    } else {
        a->new_first = li;
    }
    a->new_last = li;
}

void lots_begin(struct batch *b)
{
    b->n_lots = b->n_lots_read;
    b->lots_short_fen = 0;
    for (int i = 0; i < b->n_lots; i++) {
        b->lots[i].left_fen = b->lots[i].left_read_fen;
    }
    for (int i = 0; i < b->n_accounts; i++) {
        b->accounts[i].new_first = b->accounts[i].new_last = -1;
    }
}

static struct batch_lot *lots_find(struct batch *b, struct batch_account *a, int64_t lot_id)
{
    for (int i = a->lot_first; i < a->lot_first + a->lot_n; i++) {
        if (b->lots[i].id == lot_id) {
            return &b->lots[i];
        }
    }
    return NULL;
}

int64_t lots_left_now(struct batch *b, const char *account_id, int64_t lot_id)
{
    struct batch_account *a = batch_find_account(b, account_id);
    struct batch_lot *l = a != NULL ? lots_find(b, a, lot_id) : NULL;
    return l != NULL ? l->left_fen : 0;
}

void lots_apply(struct batch *b, int i)
{
    const struct batch_item *it = &b->items[i];
    assert(it->outcome == BATCH_APPLY);
    struct batch_account *a = batch_find_account(b, it->ev.account_id);
    assert(a != NULL);
    /* balance_after - amount cannot overflow: it is the balance before, an int64. */
    int64_t before = it->balance_after_fen - it->ev.amount_fen;
    int64_t delta = lots_positive(it->balance_after_fen) - lots_positive(before);
    int64_t short_fen = 0;
    if (it->ev.type == LEDGER_FLOW_RECHARGE) {
        assert(delta >= 0 && delta <= it->ev.amount_fen);
        lots_open(b, a, i, it->ev.amount_fen, delta);
    } else if (delta < 0 && it->payout_request) {
        /* The plan checked that the request's lot holds the amount: it is what is paid back. */
        struct batch_lot *l = lots_find(b, a, it->payout_lot_id);
        assert(l != NULL && l->left_fen >= -delta);
        l->left_fen += delta;
    } else if (delta < 0) {
        short_fen = lots_draw(b, a, -delta);
    } else if (delta > 0) {
        short_fen = lots_give_back(b, a, delta);
    }
    if (short_fen > 0) {
        b->lots_short_fen += short_fen;
        log_warn("credit lots out of step with the balance; topupctl verify reports it",
                 LF_S("account", a->account_id), LF_S("event_id", it->ev.event_id),
                 LF_I("short_fen", short_fen));
    }
}
