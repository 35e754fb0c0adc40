/* The ledger's batch transaction: lock accounts in order, read what exists, write flows in bulk. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "topup/kafka.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/pg.h"

/*
 * Accounts appear on their first event. Rows are created ahead of the batch transaction, which
 * then locks all its accounts in one statement in one byte order (COLLATE "C", the same in every
 * instance), so two ledgers never wait on each other in a cycle. Orders are locked only after
 * every account lock, so orders cannot close a cycle either.
 */
static const char apply_sql_accounts_ensure[] =
    "INSERT INTO accounts (account_id) SELECT a FROM unnest($1::text[]) AS a "
    "ORDER BY a COLLATE \"C\" ON CONFLICT (account_id) DO NOTHING";

/* Taken first: flows inserted under it are final for the publisher once it is released. */
static const char apply_sql_flows_barrier[] =
    "SELECT pg_advisory_xact_lock_shared(" LEDGER_FLOWS_BARRIER_KEY ")";

static const char apply_sql_accounts_lock[] =
    "SELECT account_id, balance_fen, balance_version FROM accounts "
    "WHERE account_id = ANY($1::text[]) ORDER BY account_id COLLATE \"C\" FOR UPDATE";

/* Read after the account locks: a concurrent batch with the same events has committed by then. */
static const char apply_sql_events_known[] =
    "SELECT event_id, NULL::text, account_id, flow_type, amount_fen, reference FROM account_flows "
    "WHERE event_id = ANY($1::text[]) "
    "UNION ALL SELECT event_id, reason, account_id, flow_type, amount_fen, reference "
    "FROM ledger_rejections WHERE event_id = ANY($1::text[])";

/*
 * Each order with its match decision (at most one 'matched' per order, by a unique index) and
 * the bank record that decision names. Only the order rows are locked.
 */
static const char apply_sql_orders_lock[] =
    "SELECT o.code, o.account_id, o.status, d.id, r.receiving_account, r.bank_txn_id, "
    "r.amount_fen FROM topup_orders o "
    "LEFT JOIN match_decisions d ON d.order_id = o.id AND d.outcome = 'matched' "
    "LEFT JOIN statement_records r ON r.id = d.record_id "
    "WHERE o.code = ANY($1::text[]) ORDER BY o.code COLLATE \"C\" FOR UPDATE OF o";

/*
 * The consume flows named by the batch's consumes and usage refunds, with what was refunded of
 * each so far. Read under the account locks, which every flow of these accounts is written under.
 */
static const char apply_sql_usages[] =
    "SELECT c.account_id, c.reference, c.event_id, -c.amount_fen, "
    "COALESCE((SELECT sum(r.amount_fen) FROM account_flows r WHERE r.account_id = c.account_id "
    "AND r.flow_type = 'refund' AND r.refund_of = c.reference), 0) "
    "FROM unnest($1::text[], $2::text[]) AS k(a, ref) "
    "JOIN account_flows c ON c.flow_type = 'consume' AND c.account_id = k.a AND c.reference = "
    "k.ref";

static const char apply_sql_orders_credited[] =
    "SELECT reference, event_id FROM account_flows "
    "WHERE flow_type = 'recharge' AND reference = ANY($1::text[])";

/* ORDER BY ord: flow ids follow batch order, which is per-account event order. */
static const char apply_sql_flows_insert[] =
    "INSERT INTO account_flows (event_id, account_id, flow_type, amount_fen, balance_after_fen, "
    "reference, occurred_at, refund_of) "
    "SELECT e, a, t, amt, bal, r, to_timestamp(0) + ms * interval '1 millisecond', NULLIF(rf, '') "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], "
    "$7::bigint[], $8::text[]) WITH ORDINALITY AS v(e, a, t, amt, bal, r, ms, rf, ord) "
    "ORDER BY ord ON CONFLICT (event_id) DO NOTHING";

/*
 * Waiting usage refunds of the batch's accounts (read under their locks) that this batch can
 * decide, oldest first: their usage is in the batch ($3) or already charged, or they have waited
 * LEDGER_REFUND_WAIT_S ($4) and are refused. Refunds still waiting for their usage take no slot, so
 * they never crowd out the ones whose usage has come.
 */
static const char apply_sql_pending_read[] =
    "SELECT p.event_id, p.account_id, p.refund_id, p.refund_of, p.amount_fen, "
    "(extract(epoch FROM p.occurred_at) * 1000)::bigint, p.source_partition, p.source_offset, "
    "extract(epoch FROM now() - p.created_at)::bigint FROM ledger_pending_refunds p "
    "WHERE p.account_id = ANY($1::text[]) AND (p.refund_of = ANY($3::text[]) "
    "OR p.created_at <= now() - make_interval(secs => $4::bigint) "
    "OR EXISTS (SELECT 1 FROM account_flows f WHERE f.account_id = p.account_id "
    "AND f.flow_type = 'consume' AND f.reference = p.refund_of)) "
    "ORDER BY p.created_at, p.event_id LIMIT $2";

/*
 * The sweep's accounts: those with a waiting usage refund that can be decided now (its usage is
 * charged, or its wait is over), the longest waiting first. Read without locks: the sweep's
 * transaction then locks them and reads their refunds again with apply_sql_pending_read.
 */
static const char apply_sql_pending_accounts[] =
    "SELECT p.account_id FROM ledger_pending_refunds p "
    "WHERE p.created_at <= now() - make_interval(secs => $2::bigint) "
    "OR EXISTS (SELECT 1 FROM account_flows f WHERE f.account_id = p.account_id "
    "AND f.flow_type = 'consume' AND f.reference = p.refund_of) "
    "GROUP BY p.account_id ORDER BY min(p.created_at), p.account_id LIMIT $1";

static const char apply_sql_pending_insert[] =
    "INSERT INTO ledger_pending_refunds (event_id, account_id, refund_id, refund_of, amount_fen, "
    "occurred_at, source_partition, source_offset) "
    "SELECT e, a, r, o, amt, to_timestamp(0) + ms * interval '1 millisecond', p, off "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], "
    "$7::int[], $8::bigint[]) AS v(e, a, r, o, amt, ms, p, off) "
    "ON CONFLICT (event_id) DO NOTHING";

/* Usage refunds decided in this batch (applied or refused) wait no more. */
static const char apply_sql_pending_delete[] =
    "DELETE FROM ledger_pending_refunds WHERE event_id = ANY($1::text[])";

/* The old balance guards against a plan made from stale rows (impossible under the lock). */
static const char apply_sql_balances_update[] =
    "UPDATE accounts AS a SET balance_fen = v.nb, balance_version = a.balance_version + 1, "
    "updated_at = now() FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(id, ob, nb) "
    "WHERE a.account_id = v.id AND a.balance_fen = v.ob "
    "RETURNING a.account_id, a.balance_version";

static const char apply_sql_orders_complete[] =
    "UPDATE topup_orders AS o SET status = 'completed', credited_fen = v.c, amount_mismatch = v.m, "
    "completed_at = now(), updated_at = now() "
    "FROM unnest($1::text[], $2::bigint[], $3::bool[]) AS v(code, c, m) "
    "WHERE o.code = v.code AND o.status = 'processing'";

static const char apply_sql_rejections_insert[] =
    "INSERT INTO ledger_rejections (event_id, account_id, flow_type, amount_fen, reference, "
    "reason, "
    "source_topic, source_partition, source_offset, occurred_at) "
    "SELECT e, a, t, amt, r, why, tp, p, o, to_timestamp(0) + ms * interval '1 millisecond' "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], "
    "$7::text[], $8::int[], $9::bigint[], $10::bigint[]) AS v(e, a, t, amt, r, why, tp, p, o, ms) "
    "ON CONFLICT (event_id) DO NOTHING";

/*
 * The credit lots of the batch's accounts that hold something, oldest first, and for accounts
 * that may get credit back without a recharge ($2: usage refunds) also those with room. Read under
 * the account locks: lots are written only under them.
 */
static const char apply_sql_lots_read[] =
    "SELECT account_id, id, paid_fen, left_fen FROM credit_lots "
    "WHERE account_id = ANY($1::text[]) AND (left_fen > 0 OR "
    "(account_id = ANY($2::text[]) AND left_fen < paid_fen)) ORDER BY account_id, id";

static const char apply_sql_lots_update[] =
    "UPDATE credit_lots AS l SET left_fen = v.l, updated_at = now() "
    "FROM unnest($1::bigint[], $2::bigint[]) AS v(id, l) WHERE l.id = v.id";

/*
 * A lot per recharge flow of the batch, with its lineage: the order's match decision names the
 * statement record, whose counterparty is the remitter as the bank reported it. ORDER BY ord:
 * lot ids follow flow order, so "oldest first" is id order.
 */
static const char apply_sql_lots_open[] =
    "INSERT INTO credit_lots (account_id, flow_id, order_code, record_id, remitter_name, "
    "remitter_account, remitter_bank, paid_fen, left_fen) "
    "SELECT f.account_id, f.id, f.reference, r.id, r.counterparty_name, r.counterparty_account, "
    "r.counterparty_bank, f.amount_fen, v.l "
    "FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS v(e, l, ord) "
    "JOIN account_flows f ON f.event_id = v.e "
    "JOIN topup_orders o ON o.code = f.reference "
    "JOIN match_decisions d ON d.order_id = o.id AND d.outcome = 'matched' "
    "JOIN statement_records r ON r.id = d.record_id ORDER BY v.ord";

/* The refund requests the batch's bank payouts name (their reference is the refund id). */
static const char apply_sql_payout_requests[] =
    "SELECT refund_id, COALESCE(account_id, ''), amount_fen, state, "
    "COALESCE(reserve_event_id, ''), COALESCE(lot_id, 0) FROM refund_requests "
    "WHERE refund_id = ANY($1::text[])";

/*
 * A refused reservation ends its request: approved -> refused, with the refusal's reason and an
 * audit row (actor 'ledger'), in the batch transaction that records the refusal. Without it the
 * request would stay 'approved' forever, neither reserved nor payable (migration 0062).
 */
static const char apply_sql_requests_refuse[] =
    "WITH u AS (UPDATE refund_requests q SET state = 'refused', state_reason = v.why, "
    "updated_at = now() FROM unnest($1::text[], $2::text[]) AS v(e, why) "
    "WHERE q.reserve_event_id = v.e AND q.state = 'approved' RETURNING q.id, v.why) "
    "INSERT INTO refund_transitions (request_id, from_state, to_state, actor, reason) "
    "SELECT id, 'approved', 'refused', 'ledger', why FROM u";

enum tp_status apply_prepare(struct pg_conn *c, struct tp_error *err)
{
    static const struct {
        const char *name, *sql;
        int nparams;
    } stmts[] = {
        {"ledger_accounts_ensure", apply_sql_accounts_ensure, 1},
        {"ledger_flows_barrier", apply_sql_flows_barrier, 0},
        {"ledger_accounts_lock", apply_sql_accounts_lock, 1},
        {"ledger_events_known", apply_sql_events_known, 1},
        {"ledger_orders_lock", apply_sql_orders_lock, 1},
        {"ledger_orders_credited", apply_sql_orders_credited, 1},
        {"ledger_usages", apply_sql_usages, 2},
        {"ledger_pending_read", apply_sql_pending_read, 4},
        {"ledger_pending_accounts", apply_sql_pending_accounts, 2},
        {"ledger_pending_insert", apply_sql_pending_insert, 8},
        {"ledger_pending_delete", apply_sql_pending_delete, 1},
        {"ledger_flows_insert", apply_sql_flows_insert, 8},
        {"ledger_balances_update", apply_sql_balances_update, 3},
        {"ledger_orders_complete", apply_sql_orders_complete, 3},
        {"ledger_rejections_insert", apply_sql_rejections_insert, 10},
        {"ledger_lots_read", apply_sql_lots_read, 2},
        {"ledger_lots_update", apply_sql_lots_update, 2},
        {"ledger_lots_open", apply_sql_lots_open, 2},
        {"ledger_payout_requests", apply_sql_payout_requests, 1},
        {"ledger_requests_refuse", apply_sql_requests_refuse, 2},
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        enum tp_status st = pg_prepare(c, stmts[i].name, stmts[i].sql, stmts[i].nparams, err);
        if (st != TP_OK) {
            return st;
        }
    }
    return TP_OK;
}

/* ---- PostgreSQL array literals: every value travels as a parameter, quoted and escaped ---- */

#define APPLY_ARRAYS_MAX 10

struct apply_array {
    char *buf;
    size_t len, cap;
    int n;
};

static void apply_array_reserve(struct apply_array *a, size_t more)
{
    if (a->len + more + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 1024;
        while (a->len + more + 1 > cap) {
            cap *= 2;
        }
        a->buf = mem_realloc(a->buf, cap);
        a->cap = cap;
    }
}

static void apply_array_begin(struct apply_array *a)
{
    apply_array_reserve(a, 1);
    a->buf[0] = '{';
    a->len = 1;
    a->n = 0;
}

static void apply_array_sep(struct apply_array *a)
{
    if (a->n++ > 0) {
        apply_array_reserve(a, 1);
        a->buf[a->len++] = ',';
    }
}

static void apply_array_str(struct apply_array *a, const char *s)
{
    size_t n = strlen(s);
    apply_array_sep(a);
    apply_array_reserve(a, 2 * n + 2);
    a->buf[a->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            a->buf[a->len++] = '\\';
        }
        a->buf[a->len++] = s[i];
    }
    a->buf[a->len++] = '"';
}

static void apply_array_i64(struct apply_array *a, int64_t v)
{
    apply_array_sep(a);
    apply_array_reserve(a, 24);
    a->len += (size_t)snprintf(a->buf + a->len, 24, "%" PRId64, v);
}

static void apply_array_bool(struct apply_array *a, bool v)
{
    apply_array_sep(a);
    apply_array_reserve(a, 1);
    a->buf[a->len++] = v ? 't' : 'f';
}

static const char *apply_array_end(struct apply_array *a)
{
    apply_array_reserve(a, 1);
    a->buf[a->len++] = '}';
    a->buf[a->len] = '\0';
    return a->buf;
}

/* The state of one apply_batch call, shared by transaction attempts. */
struct apply_ctx {
    struct batch *b;
    const struct apply_source *sources;
    /* A sweep (apply_sweep): the text[] literal of its accounts; NULL for a polled batch. */
    const char *sweep_accounts;
    struct apply_array arr[APPLY_ARRAYS_MAX];
};

/* Ends arrays 0..n-1 into params. */
static void apply_params(struct apply_ctx *x, int n, const char *params[])
{
    for (int i = 0; i < n; i++) {
        params[i] = apply_array_end(&x->arr[i]);
    }
}

static void apply_begin_arrays(struct apply_ctx *x, int n)
{
    for (int i = 0; i < n; i++) {
        apply_array_begin(&x->arr[i]);
    }
}

/*
 * Locks every account of the batch in one ordered statement. TP_NOT_FOUND when some do not exist
 * yet: the transaction is then rolled back (releasing the locks) and apply_batch creates them
 * outside of it, so every transaction takes all its account locks in one go, in order.
 */
static enum tp_status apply_lock_accounts(struct pg_conn *c, struct apply_ctx *x,
                                          struct tp_error *err)
{
    struct batch *b = x->b;
    apply_begin_arrays(x, 1);
    for (int i = 0; i < b->n_accounts; i++) {
        apply_array_str(&x->arr[0], b->accounts[i].account_id);
    }
    const char *p[1];
    apply_params(x, 1, p);
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(c, "ledger_accounts_lock", 1, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    int found = PQntuples(r);
    for (int row = 0; row < found; row++) {
        struct batch_account *a = batch_find_account(b, pg_get_str(r, row, 0));
        if (a != NULL) {
            a->loaded = true;
            a->balance_fen = pg_get_i64(r, row, 1);
            a->version = pg_get_i64(r, row, 2);
        }
    }
    PQclear(r);
    if (found < b->n_accounts) {
        return error_set(err, TP_NOT_FOUND, "%d of %d accounts do not exist yet",
                         b->n_accounts - found, b->n_accounts);
    }
    return TP_OK;
}

/*
 * Creates the accounts the last attempt did not find, in its own short transaction (autocommit).
 * An account without flows has balance 0, which is consistent on its own, so creating it early
 * is harmless even if the batch then fails.
 */
static enum tp_status apply_create_accounts(struct pg_conn *c, struct apply_ctx *x,
                                            struct tp_error *err)
{
    struct batch *b = x->b;
    apply_begin_arrays(x, 1);
    for (int i = 0; i < b->n_accounts; i++) {
        if (!b->accounts[i].loaded) {
            apply_array_str(&x->arr[0], b->accounts[i].account_id);
        }
    }
    const char *p[1];
    apply_params(x, 1, p);
    return pg_exec_prepared(c, "ledger_accounts_ensure", 1, p, NULL, err);
}

static enum tp_status apply_read_known(struct pg_conn *c, struct apply_ctx *x, struct tp_error *err)
{
    struct batch *b = x->b;
    apply_begin_arrays(x, 1);
    for (int i = 0; i < b->n_keys; i++) {
        apply_array_str(&x->arr[0], b->keys[i].event_id);
    }
    const char *p[1];
    apply_params(x, 1, p);
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(c, "ledger_events_known", 1, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        struct batch_event_key *k = batch_find_key(b, pg_get_str(r, row, 0));
        if (k == NULL) {
            continue;
        }
        if (pg_is_null(r, row, 1)) {
            k->is_flow = true;
        } else {
            k->is_rejection = true;
            snprintf(k->rejection_reason, sizeof(k->rejection_reason), "%s", pg_get_str(r, row, 1));
        }
        snprintf(k->account_id, sizeof(k->account_id), "%s", pg_get_str(r, row, 2));
        const char *type = pg_get_str(r, row, 3);
        k->type = strcmp(type, "recharge") == 0  ? LEDGER_FLOW_RECHARGE
                  : strcmp(type, "consume") == 0 ? LEDGER_FLOW_CONSUME
                                                 : LEDGER_FLOW_REFUND;
        k->amount_fen = pg_get_i64(r, row, 4);
        snprintf(k->reference, sizeof(k->reference), "%s", pg_get_str(r, row, 5));
    }
    PQclear(r);
    return TP_OK;
}

static enum tp_status apply_read_orders(struct pg_conn *c, struct apply_ctx *x,
                                        struct tp_error *err)
{
    struct batch *b = x->b;
    if (b->n_orders == 0) {
        return TP_OK;
    }
    apply_begin_arrays(x, 1);
    for (int i = 0; i < b->n_orders; i++) {
        apply_array_str(&x->arr[0], b->orders[i].code);
    }
    const char *p[1];
    apply_params(x, 1, p);
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(c, "ledger_orders_lock", 1, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        struct batch_order *o = batch_find_order(b, pg_get_str(r, row, 0));
        if (o != NULL) {
            o->status = strcmp(pg_get_str(r, row, 2), "processing") == 0 ? BATCH_ORDER_PROCESSING
                                                                         : BATCH_ORDER_OTHER;
            snprintf(o->account_id, sizeof(o->account_id), "%s", pg_get_str(r, row, 1));
            o->has_decision = !pg_is_null(r, row, 3);
            if (o->has_decision) {
                o->decision_id = pg_get_i64(r, row, 3);
                snprintf(o->decision_bank_account, sizeof(o->decision_bank_account), "%s",
                         pg_get_str(r, row, 4));
                snprintf(o->decision_bank_txn_id, sizeof(o->decision_bank_txn_id), "%s",
                         pg_get_str(r, row, 5));
                o->decision_amount_fen = pg_get_i64(r, row, 6);
            }
        }
    }
    PQclear(r);
    r = NULL;
    st = pg_exec_prepared(c, "ledger_orders_credited", 1, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        struct batch_order *o = batch_find_order(b, pg_get_str(r, row, 0));
        if (o != NULL) {
            snprintf(o->credited_by, sizeof(o->credited_by), "%s", pg_get_str(r, row, 1));
        }
    }
    PQclear(r);
    return TP_OK;
}

static enum tp_status apply_read_usages(struct pg_conn *c, struct apply_ctx *x,
                                        struct tp_error *err)
{
    struct batch *b = x->b;
    if (b->n_usages == 0) {
        return TP_OK;
    }
    apply_begin_arrays(x, 2);
    for (int i = 0; i < b->n_usages; i++) {
        const char *key = b->usages[i].key;
        const char *sep = strchr(key, '\x1f');
        assert(sep != NULL);
        char account[LEDGER_ACCOUNT_MAX + 1];
        snprintf(account, sizeof(account), "%.*s", (int)(sep - key), key);
        apply_array_str(&x->arr[0], account);
        apply_array_str(&x->arr[1], sep + 1);
    }
    const char *p[2];
    apply_params(x, 2, p);
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(c, "ledger_usages", 2, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        char key[LEDGER_ACCOUNT_MAX + 1 + LEDGER_REFERENCE_MAX + 1];
        snprintf(key, sizeof(key), "%s\x1f%s", pg_get_str(r, row, 0), pg_get_str(r, row, 1));
        struct batch_usage *u = batch_find_usage(b, key);
        if (u != NULL) {
            snprintf(u->consumed_by, sizeof(u->consumed_by), "%s", pg_get_str(r, row, 2));
            u->consumed_fen = pg_get_i64(r, row, 3);
            u->refunded_fen = pg_get_i64(r, row, 4);
        }
    }
    PQclear(r);
    return TP_OK;
}

static enum tp_status apply_read_lots(struct pg_conn *c, struct apply_ctx *x, struct tp_error *err)
{
    struct batch *b = x->b;
    lots_reset(b);
    apply_begin_arrays(x, 2);
    for (int i = 0; i < b->n_accounts; i++) {
        apply_array_str(&x->arr[0], b->accounts[i].account_id);
    }
    for (int i = 0; i < b->n; i++) {
        const struct batch_item *it = &b->items[i];
        if (it->outcome != BATCH_INVALID && it->ev.type == LEDGER_FLOW_REFUND &&
            it->ev.amount_fen > 0) {
            apply_array_str(&x->arr[1], it->ev.account_id);
        }
    }
    const char *p[2];
    apply_params(x, 2, p);
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(c, "ledger_lots_read", 2, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        lots_add_read(b, pg_get_str(r, row, 0), pg_get_i64(r, row, 1), pg_get_i64(r, row, 2),
                      pg_get_i64(r, row, 3));
    }
    PQclear(r);
    return TP_OK;
}

static bool apply_is_payout(const struct batch_item *it)
{
    return it->outcome != BATCH_INVALID && it->ev.type == LEDGER_FLOW_REFUND &&
           !it->ev.usage_refund;
}

static enum tp_status apply_read_payouts(struct pg_conn *c, struct apply_ctx *x,
                                         struct tp_error *err)
{
    struct batch *b = x->b;
    int n = 0;
    apply_begin_arrays(x, 1);
    for (int i = 0; i < b->n; i++) {
        struct batch_item *it = &b->items[i];
        it->payout_request = false;
        if (apply_is_payout(it)) {
            apply_array_str(&x->arr[0], it->ev.reference);
            n++;
        }
    }
    if (n == 0) {
        return TP_OK;
    }
    const char *p[1];
    apply_params(x, 1, p);
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(c, "ledger_payout_requests", 1, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        const char *refund_id = pg_get_str(r, row, 0);
        for (int i = 0; i < b->n; i++) {
            struct batch_item *it = &b->items[i];
            if (!apply_is_payout(it) || strcmp(it->ev.reference, refund_id) != 0) {
                continue;
            }
            it->payout_request = true;
            snprintf(it->payout_account, sizeof(it->payout_account), "%s", pg_get_str(r, row, 1));
            it->payout_amount_fen = pg_get_i64(r, row, 2);
            snprintf(it->payout_state, sizeof(it->payout_state), "%s", pg_get_str(r, row, 3));
            snprintf(it->payout_event_id, sizeof(it->payout_event_id), "%s", pg_get_str(r, row, 4));
            it->payout_lot_id = pg_get_i64(r, row, 5);
        }
    }
    PQclear(r);
    return TP_OK;
}

/* After the flows: the lots read that moved, then the lots the recharges open. */
static enum tp_status apply_write_lots(struct pg_conn *c, struct apply_ctx *x, struct tp_error *err)
{
    struct batch *b = x->b;
    apply_begin_arrays(x, 4);
    int moved = 0, opened = 0;
    for (int i = 0; i < b->n_lots; i++) {
        const struct batch_lot *l = &b->lots[i];
        if (l->item < 0 && l->left_fen != l->left_read_fen) {
            apply_array_i64(&x->arr[0], l->id);
            apply_array_i64(&x->arr[1], l->left_fen);
            moved++;
        } else if (l->item >= 0) {
            apply_array_str(&x->arr[2], b->items[l->item].ev.event_id);
            apply_array_i64(&x->arr[3], l->left_fen);
            opened++;
        }
    }
    const char *p[4];
    apply_params(x, 4, p);
    PGresult *r = NULL;
    enum tp_status st = TP_OK;
    if (moved > 0) {
        st = pg_exec_prepared(c, "ledger_lots_update", 2, p, &r, err);
        if (st != TP_OK) {
            return st;
        }
        int rows = atoi(PQcmdTuples(r));
        PQclear(r);
        r = NULL;
        if (rows != moved) {
            return error_set(err, TP_RETRY, "updated %d credit lots of %d planned", rows, moved);
        }
    }
    if (opened > 0) {
        st = pg_exec_prepared(c, "ledger_lots_open", 2, &p[2], &r, err);
        if (st != TP_OK) {
            return st;
        }
        int rows = atoi(PQcmdTuples(r));
        PQclear(r);
        if (rows != opened) {
            /* Every recharge applied had its decision and record, read under the same locks. */
            return error_set(err, TP_RETRY, "opened %d credit lots of %d recharges", rows, opened);
        }
    }
    return TP_OK;
}

static enum tp_status apply_insert_flows(struct pg_conn *c, struct apply_ctx *x, int expected,
                                         struct tp_error *err)
{
    struct batch *b = x->b;
    apply_begin_arrays(x, 8);
    for (int j = 0; j < b->n_planned; j++) {
        const struct batch_item *it = &b->items[b->plan_order[j]];
        assert(it->outcome == BATCH_APPLY);
        apply_array_str(&x->arr[7], it->ev.refund_of);
        apply_array_str(&x->arr[0], it->ev.event_id);
        apply_array_str(&x->arr[1], it->ev.account_id);
        apply_array_str(&x->arr[2], ledger_flow_type_name(it->ev.type));
        apply_array_i64(&x->arr[3], it->ev.amount_fen);
        apply_array_i64(&x->arr[4], it->balance_after_fen);
        apply_array_str(&x->arr[5], it->ev.reference);
        apply_array_i64(&x->arr[6], it->ev.occurred_at_ms);
    }
    const char *p[8];
    apply_params(x, 8, p);
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(c, "ledger_flows_insert", 8, p, &r, err);
    if (st == TP_DUPLICATE) {
        /* Another instance committed a recharge of the same order after our read: read again. */
        return error_set(err, TP_RETRY, "flow insert raced with another ledger: %s", err->msg);
    }
    if (st != TP_OK) {
        return st;
    }
    int inserted = atoi(PQcmdTuples(r));
    PQclear(r);
    if (inserted != expected) {
        /* The final guard fired: balances planned for these flows would be wrong. Start again. */
        return error_set(err, TP_RETRY, "inserted %d flows of %d planned", inserted, expected);
    }
    return TP_OK;
}

static enum tp_status apply_update_balances(struct pg_conn *c, struct apply_ctx *x,
                                            struct tp_error *err)
{
    struct batch *b = x->b;
    apply_begin_arrays(x, 3);
    int expected = 0;
    for (int i = 0; i < b->n_accounts; i++) {
        const struct batch_account *a = &b->accounts[i];
        if (a->flows == 0) {
            continue;
        }
        apply_array_str(&x->arr[0], a->account_id);
        apply_array_i64(&x->arr[1], a->balance_fen);
        apply_array_i64(&x->arr[2], a->new_balance_fen);
        expected++;
    }
    const char *p[3];
    apply_params(x, 3, p);
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(c, "ledger_balances_update", 3, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    int rows = PQntuples(r);
    for (int row = 0; row < rows; row++) {
        struct batch_account *a = batch_find_account(b, pg_get_str(r, row, 0));
        if (a != NULL) {
            a->new_version = pg_get_i64(r, row, 1);
        }
    }
    PQclear(r);
    if (rows != expected) {
        return error_set(err, TP_RETRY, "updated %d balances of %d planned", rows, expected);
    }
    return TP_OK;
}

static enum tp_status apply_complete_orders(struct pg_conn *c, struct apply_ctx *x,
                                            struct tp_error *err)
{
    struct batch *b = x->b;
    apply_begin_arrays(x, 3);
    int expected = 0;
    for (int i = 0; i < b->n; i++) {
        const struct batch_item *it = &b->items[i];
        if (it->outcome != BATCH_APPLY || !it->complete_order) {
            continue;
        }
        apply_array_str(&x->arr[0], it->ev.reference);
        apply_array_i64(&x->arr[1], it->ev.amount_fen);
        apply_array_bool(&x->arr[2], it->ev.amount_mismatch);
        expected++;
    }
    if (expected == 0) {
        return TP_OK;
    }
    const char *p[3];
    apply_params(x, 3, p);
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(c, "ledger_orders_complete", 3, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    int rows = atoi(PQcmdTuples(r));
    PQclear(r);
    if (rows != expected) {
        return error_set(err, TP_RETRY, "completed %d orders of %d planned", rows, expected);
    }
    return TP_OK;
}

static enum tp_status apply_insert_rejections(struct pg_conn *c, struct apply_ctx *x,
                                              struct tp_error *err)
{
    struct batch *b = x->b;
    apply_begin_arrays(x, 10);
    int n = 0;
    for (int i = 0; i < b->n; i++) {
        const struct batch_item *it = &b->items[i];
        if (it->outcome != BATCH_REJECT || it->rejected_before || it->conflict) {
            continue;
        }
        struct apply_source pending_src = {TOPIC_REFUND_ISSUED, it->src_partition, it->src_offset};
        const struct apply_source *src = it->from_pending     ? &pending_src
                                         : x->sources != NULL ? &x->sources[it->msg_index]
                                                              : NULL;
        apply_array_str(&x->arr[0], it->ev.event_id);
        apply_array_str(&x->arr[1], it->ev.account_id);
        apply_array_str(&x->arr[2], ledger_flow_type_name(it->ev.type));
        apply_array_i64(&x->arr[3], it->ev.amount_fen);
        apply_array_str(&x->arr[4], it->ev.reference);
        apply_array_str(&x->arr[5], it->reason);
        apply_array_str(&x->arr[6], src != NULL && src->topic != NULL ? src->topic : "");
        apply_array_i64(&x->arr[7], src != NULL ? src->partition : -1);
        apply_array_i64(&x->arr[8], src != NULL ? src->offset : -1);
        apply_array_i64(&x->arr[9], it->ev.occurred_at_ms);
        n++;
    }
    if (n == 0) {
        return TP_OK;
    }
    const char *p[10];
    apply_params(x, 10, p);
    return pg_exec_prepared(c, "ledger_rejections_insert", 10, p, NULL, err);
}

/* The refund requests whose reservation this batch refused move to 'refused'. */
static enum tp_status apply_refuse_requests(struct pg_conn *c, struct apply_ctx *x,
                                            struct tp_error *err)
{
    struct batch *b = x->b;
    apply_begin_arrays(x, 2);
    int n = 0;
    for (int i = 0; i < b->n; i++) {
        const struct batch_item *it = &b->items[i];
        if (it->outcome != BATCH_REJECT || it->conflict || !it->payout_request) {
            continue;
        }
        apply_array_str(&x->arr[0], it->ev.event_id);
        apply_array_str(&x->arr[1], it->reason);
        n++;
    }
    if (n == 0) {
        return TP_OK;
    }
    const char *p[2];
    apply_params(x, 2, p);
    return pg_exec_prepared(c, "ledger_requests_refuse", 2, p, NULL, err);
}

/*
 * Adds the waiting usage refunds of the batch's accounts as items after the polled ones. They are
 * planned like the others: applied when their usage is known by now, else they keep waiting.
 * *added tells whether any was added (the indexes must then be built again).
 */
static enum tp_status apply_read_pending(struct pg_conn *c, struct apply_ctx *x, bool *added,
                                         struct tp_error *err)
{
    struct batch *b = x->b;
    *added = false;
    apply_begin_arrays(x, 2);
    for (int i = 0; i < b->n_accounts; i++) {
        apply_array_str(&x->arr[0], b->accounts[i].account_id);
    }
    for (int i = 0; i < b->n_polled; i++) {
        if (b->items[i].ev.type == LEDGER_FLOW_CONSUME) {
            apply_array_str(&x->arr[1], b->items[i].ev.reference);
        }
    }
    /* A sweep has no polled items: its refunds fill the whole batch. */
    char limit[16], wait_s[24];
    snprintf(limit, sizeof(limit), "%d",
             x->sweep_accounts != NULL ? b->max : LEDGER_PENDING_PER_BATCH);
    snprintf(wait_s, sizeof(wait_s), "%" PRId64, b->limits.refund_wait_s);
    const char *p[4];
    apply_params(x, 2, p);
    if (x->sweep_accounts != NULL) {
        p[0] = x->sweep_accounts;
    }
    p[2] = p[1];
    p[1] = limit;
    p[3] = wait_s;
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(c, "ledger_pending_read", 4, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        struct batch_item *it = batch_add_pending(b);
        if (it == NULL) {
            break;
        }
        struct ledger_event *ev = &it->ev;
        snprintf(ev->event_id, sizeof(ev->event_id), "%s", pg_get_str(r, row, 0));
        snprintf(ev->account_id, sizeof(ev->account_id), "%s", pg_get_str(r, row, 1));
        snprintf(ev->reference, sizeof(ev->reference), "%s", pg_get_str(r, row, 2));
        snprintf(ev->refund_of, sizeof(ev->refund_of), "%s", pg_get_str(r, row, 3));
        ev->type = LEDGER_FLOW_REFUND;
        ev->usage_refund = true;
        ev->amount_fen = pg_get_i64(r, row, 4);
        ev->occurred_at_ms = pg_get_i64(r, row, 5);
        it->src_partition = (int32_t)pg_get_i64(r, row, 6);
        it->src_offset = pg_get_i64(r, row, 7);
        it->pending_age_s = pg_get_i64(r, row, 8);
        *added = true;
    }
    PQclear(r);
    return TP_OK;
}

/* Deferred usage refunds into ledger_pending_refunds; decided ones out of it. */
static enum tp_status apply_write_pending(struct pg_conn *c, struct apply_ctx *x,
                                          struct tp_error *err)
{
    struct batch *b = x->b;
    apply_begin_arrays(x, 9);
    int deferred = 0, decided = 0;
    for (int i = 0; i < b->n; i++) {
        const struct batch_item *it = &b->items[i];
        if (it->outcome == BATCH_INVALID || it->ev.type != LEDGER_FLOW_REFUND ||
            !it->ev.usage_refund) {
            continue;
        }
        if (it->outcome == BATCH_DEFER && !it->from_pending) {
            const struct apply_source *src = x->sources != NULL ? &x->sources[it->msg_index] : NULL;
            apply_array_str(&x->arr[0], it->ev.event_id);
            apply_array_str(&x->arr[1], it->ev.account_id);
            apply_array_str(&x->arr[2], it->ev.reference);
            apply_array_str(&x->arr[3], it->ev.refund_of);
            apply_array_i64(&x->arr[4], it->ev.amount_fen);
            apply_array_i64(&x->arr[5], it->ev.occurred_at_ms);
            apply_array_i64(&x->arr[6], src != NULL ? src->partition : -1);
            apply_array_i64(&x->arr[7], src != NULL ? src->offset : -1);
            deferred++;
        } else if (it->outcome == BATCH_APPLY || (it->outcome == BATCH_REJECT && !it->conflict)) {
            apply_array_str(&x->arr[8], it->ev.event_id);
            decided++;
        }
    }
    const char *p[9];
    apply_params(x, 9, p);
    enum tp_status st = TP_OK;
    if (deferred > 0) {
        st = pg_exec_prepared(c, "ledger_pending_insert", 8, p, NULL, err);
    }
    if (st == TP_OK && decided > 0) {
        st = pg_exec_prepared(c, "ledger_pending_delete", 1, &p[8], NULL, err);
    }
    return st;
}

static enum tp_status apply_tx(struct pg_conn *c, void *ctx, struct tp_error *err)
{
    struct apply_ctx *x = ctx;
    struct batch *b = x->b;
    b->n = b->n_polled; /* waiting refunds added by an earlier attempt are read again */
    batch_index(b);
    enum tp_status st = pg_exec_prepared(c, "ledger_flows_barrier", 0, NULL, NULL, err);
    if (st == TP_OK && x->sweep_accounts != NULL) {
        /* The same lock statement as a batch (one go, one order): instances never deadlock. */
        const char *p[1] = {x->sweep_accounts};
        st = pg_exec_prepared(c, "ledger_accounts_lock", 1, p, NULL, err);
    } else if (st == TP_OK) {
        st = apply_lock_accounts(c, x, err);
    }
    bool added = false;
    if (st == TP_OK) {
        st = apply_read_pending(c, x, &added, err);
    }
    if (st == TP_OK && !added && x->sweep_accounts != NULL) {
        /* Another instance decided them meanwhile: nothing to write. */
        batch_plan(b);
        return TP_OK;
    }
    if (st == TP_OK && added) {
        /* Same accounts, now with the waiting refunds' keys: index and read again. */
        batch_index(b);
        st = apply_lock_accounts(c, x, err);
    }
    if (st == TP_OK) {
        st = apply_read_known(c, x, err);
    }
    if (st == TP_OK) {
        st = apply_read_orders(c, x, err);
    }
    if (st == TP_OK) {
        st = apply_read_usages(c, x, err);
    }
    if (st == TP_OK) {
        st = apply_read_lots(c, x, err);
    }
    if (st == TP_OK) {
        st = apply_read_payouts(c, x, err);
    }
    if (st != TP_OK) {
        return st;
    }
    batch_plan(b);
    int planned = b->applied[LEDGER_FLOW_RECHARGE] + b->applied[LEDGER_FLOW_CONSUME] +
                  b->applied[LEDGER_FLOW_REFUND];
    if (planned > 0) {
        st = apply_insert_flows(c, x, planned, err);
        if (st == TP_OK) {
            st = apply_update_balances(c, x, err);
        }
        if (st == TP_OK) {
            st = apply_complete_orders(c, x, err);
        }
        if (st == TP_OK) {
            st = apply_write_lots(c, x, err);
        }
    }
    if (st == TP_OK) {
        st = apply_insert_rejections(c, x, err);
    }
    if (st == TP_OK) {
        st = apply_refuse_requests(c, x, err);
    }
    if (st == TP_OK) {
        st = apply_write_pending(c, x, err);
    }
    return st;
}

static void apply_ctx_deinit(struct apply_ctx *x)
{
    for (int i = 0; i < APPLY_ARRAYS_MAX; i++) {
        free(x->arr[i].buf);
        x->arr[i].buf = NULL;
    }
}

/* The batch transaction, retried; accounts missing at the lock are created and it runs again. */
static enum tp_status apply_run(struct pg_conn *c, struct apply_ctx *x, int max_attempts,
                                struct tp_error *err)
{
    struct batch *b = x->b;
    enum tp_status st = TP_OK;
    /* At most twice: the second attempt finds every account, unless one was deleted meanwhile. */
    for (int round = 0; round < 3; round++) {
        st = pg_transaction(c, apply_tx, x, max_attempts, err);
        if (st != TP_NOT_FOUND) {
            break;
        }
        st = apply_create_accounts(c, x, err);
        if (st != TP_OK) {
            break;
        }
        st = error_set(err, TP_RETRY, "accounts vanished after they were created");
    }
    if (st != TP_OK) {
        b->n = b->n_polled; /* what was not committed is read again by the next attempt */
    }
    return st;
}

enum tp_status apply_batch(struct pg_conn *c, struct batch *b, const struct apply_source *sources,
                           int max_attempts, struct tp_error *err)
{
    struct apply_ctx x = {.b = b, .sources = sources};
    enum tp_status st = TP_OK;
    b->n_polled = b->n;
    batch_index(b);
    if (b->n_keys == 0) {
        /* Only invalid messages: nothing to lock or write. */
        batch_plan(b);
        goto out;
    }
    st = apply_run(c, &x, max_attempts, err);
out:
    apply_ctx_deinit(&x);
    return st;
}

enum tp_status apply_sweep(struct pg_conn *c, struct batch *b, int accounts_max, int max_attempts,
                           struct tp_error *err)
{
    struct apply_ctx x = {.b = b};
    batch_reset(b);
    b->n_polled = 0;
    batch_index(b);
    batch_plan(b);
    char limit[16], wait_s[24];
    snprintf(limit, sizeof(limit), "%d", accounts_max);
    snprintf(wait_s, sizeof(wait_s), "%" PRId64, b->limits.refund_wait_s);
    const char *p[2] = {limit, wait_s};
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(c, "ledger_pending_accounts", 2, p, &r, err);
    if (st != TP_OK) {
        goto out;
    }
    int n = PQntuples(r);
    apply_begin_arrays(&x, 1);
    for (int row = 0; row < n; row++) {
        apply_array_str(&x.arr[0], pg_get_str(r, row, 0));
    }
    PQclear(r);
    if (n == 0) {
        goto out;
    }
    /* arr[0] is reused by the transaction: keep the accounts' literal in a copy of its own. */
    char *accounts = mem_strdup(apply_array_end(&x.arr[0]));
    x.sweep_accounts = accounts;
    st = apply_run(c, &x, max_attempts, err);
    free(accounts);
out:
    apply_ctx_deinit(&x);
    return st;
}
