/*
 * Crediting orders: the conditional claim (pending -> processing), the decision rows and review
 * items, and PaymentMatched in the outbox. Set-based (one statement per kind per batch) so a batch
 * of matches costs a handful of round trips; the caller's transaction makes them one unit.
 */
#include "recon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topup/copyw.h"
#include "jsonw.h"
#include "topup/event.h"
#include "topup/kafka.h"
#include "topup/mem.h"
#include "topup/outbox.h"
#include "topup/pg.h"

/*
 * One pass: the rows are updated (and so locked) in the order of x, which claim_orders() sorts by
 * order id; the nested loop over the few rows of x follows that order, so two transactions
 * claiming overlapping orders wait for each other instead of deadlocking (should a plan ever
 * visit them otherwise, PostgreSQL detects the deadlock and the attempt is retried, 40P01). A row
 * that a concurrent cancel, expiry or match changed meanwhile fails the status check after the
 * wait (the update re-checks the newest version) and is simply not returned.
 *
 * The status every order must still have comes with its row (x.s, always 'pending') rather than
 * as a constant: `status = 'pending'` would let the planner scan the partial indexes of pending
 * orders, which it prices from statistics that go stale after a burst of new orders (it then
 * read every pending order per batch: 100,000 in the benchmark). By id it is one probe per row.
 */
static const char claim_sql_orders[] =
    "UPDATE topup_orders o SET status = 'processing', matched_at = now(), updated_at = now(),"
    " credited_fen = x.c, amount_mismatch = x.m"
    " FROM json_to_recordset($1::json) AS x(id bigint, c bigint, m boolean, s text)"
    " WHERE o.id = x.id AND o.status = x.s RETURNING o.id";

static const char claim_sql_decisions[] =
    "COPY match_decisions (record_id, order_id, outcome, rule, details, decided_by) FROM STDIN";

static const char claim_sql_reviews[] =
    "INSERT INTO review_queue (record_id, order_id, reason, details)"
    " SELECT x.r, x.o, x.re, x.d"
    " FROM json_to_recordset($1::json) AS x(i int, r bigint, o bigint, re text, d jsonb)"
    " ORDER BY x.i"
    " ON CONFLICT (record_id, reason) WHERE status = 'open' DO NOTHING";

enum tp_status claim_prepare(struct pg_conn *c, struct tp_error *err)
{
    static const struct {
        const char *name, *sql;
        int nparams;
    } stmts[] = {
        {"recon_claim_orders", claim_sql_orders, 1},
        {"recon_claim_reviews", claim_sql_reviews, 1},
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        enum tp_status st = pg_prepare(c, stmts[i].name, stmts[i].sql, stmts[i].nparams, err);
        if (st != TP_OK) {
            return st;
        }
    }
    return TP_OK;
}

static enum tp_status claim_exec(struct pg_conn *c, const char *stmt, const struct jsonw *w,
                                 PGresult **res, struct tp_error *err)
{
    const char *const params[1] = {jsonw_text(w)};
    return pg_exec_prepared(c, stmt, 1, params, res, err);
}

static int claim_cmp_order_id(const void *a, const void *b)
{
    int64_t x = (*(const struct claim_match *const *)a)->order_id;
    int64_t y = (*(const struct claim_match *const *)b)->order_id;
    return (x > y) - (x < y);
}

enum tp_status claim_orders(struct pg_conn *c, const struct claim_match *m, size_t n,
                            size_t *claimed, struct tp_error *err)
{
    *claimed = 0;
    if (n == 0) {
        return TP_OK;
    }
    /* In order id order: the order in which the statement locks the rows. */
    const struct claim_match **sorted = mem_alloc(n * sizeof(*sorted));
    for (size_t i = 0; i < n; i++) {
        sorted[i] = &m[i];
    }
    qsort(sorted, n, sizeof(*sorted), claim_cmp_order_id);
    struct jsonw w;
    jsonw_init(&w);
    jsonw_array_begin(&w);
    for (size_t i = 0; i < n; i++) {
        jsonw_object_begin(&w);
        jsonw_kint(&w, "id", sorted[i]->order_id);
        jsonw_kint(&w, "c", sorted[i]->credited_fen);
        jsonw_kbool(&w, "m", sorted[i]->amount_mismatch);
        jsonw_kstr(&w, "s", "pending");
        jsonw_object_end(&w);
    }
    jsonw_array_end(&w);
    free(sorted);
    PGresult *res = NULL;
    enum tp_status st = claim_exec(c, "recon_claim_orders", &w, &res, err);
    if (st == TP_OK) {
        *claimed = (size_t)PQntuples(res);
    }
    PQclear(res);
    jsonw_deinit(&w);
    return st;
}

/* Packs the PaymentMatched of m; returns the payload (caller frees) and fills event_id. */
static uint8_t *claim_pack(const struct claim_match *m, char event_id[UUID_STR_LEN], size_t *len)
{
    Topup__V1__PaymentMatched ev;
    topup__v1__payment_matched__init(&ev);
    struct event_envelope_buf env;
    ev.envelope = event_envelope_init(&env, RECON_SOURCE, m->account_id);
    ev.order_code = (char *)m->order_code;
    ev.credited_fen = m->credited_fen;
    ev.order_amount_fen = m->order_amount_fen;
    ev.amount_mismatch = m->amount_mismatch;
    ev.rule = (Topup__V1__MatchRule)m->rule;
    ev.receiving_account = (char *)m->receiving_account;
    ev.bank_txn_id = (char *)m->bank_txn_id;
    ev.value_date = (char *)m->value_date;
    *len = topup__v1__payment_matched__get_packed_size(&ev);
    uint8_t *buf = mem_alloc(*len + 1);
    topup__v1__payment_matched__pack(&ev, buf);
    memcpy(event_id, env.event_id, UUID_STR_LEN);
    return buf;
}

enum tp_status claim_write_events(struct pg_conn *c, const struct claim_match *m, size_t n,
                                  struct tp_error *err)
{
    if (n == 0) {
        return TP_OK;
    }
    struct outbox_event *ev = mem_calloc(n, sizeof(*ev));
    char(*event_ids)[UUID_STR_LEN] = mem_calloc(n, sizeof(*event_ids));
    for (size_t i = 0; i < n; i++) {
        ev[i].key = m[i].account_id;
        ev[i].event_id = event_ids[i];
        ev[i].payload = claim_pack(&m[i], event_ids[i], &ev[i].len);
    }
    enum tp_status st = outbox_write_many(c, RECON_SOURCE, TOPIC_PAYMENT_MATCHED, ev, n, err);
    for (size_t i = 0; i < n; i++) {
        free((void *)ev[i].payload);
    }
    free(event_ids);
    free(ev);
    return st;
}

/* order_id 0 is SQL NULL. */
static void claim_order_id(struct jsonw *w, int64_t id)
{
    jsonw_key(w, "o");
    if (id > 0) {
        jsonw_int(w, id);
    } else {
        jsonw_null(w);
    }
}

static void claim_details(struct jsonw *w, const struct claim_decision *d)
{
    jsonw_key(w, "d");
    if (d->details != NULL) {
        jsonw_raw(w, d->details, d->details_len);
    } else {
        jsonw_raw(w, "{}", 2);
    }
}

enum tp_status claim_write_decisions(struct pg_conn *c, const struct claim_decision *d, size_t n,
                                     struct tp_error *err)
{
    if (n == 0) {
        return TP_OK;
    }
    struct copyw decisions;
    struct jsonw reviews;
    copyw_init(&decisions);
    jsonw_init(&reviews);
    jsonw_array_begin(&reviews);
    size_t n_reviews = 0;
    for (size_t i = 0; i < n; i++) {
        copyw_int(&decisions, d[i].record_id);
        if (d[i].order_id > 0) {
            copyw_int(&decisions, d[i].order_id);
        } else {
            copyw_null(&decisions);
        }
        copyw_str(&decisions, d[i].outcome);
        copyw_str(&decisions, d[i].rule);
        if (d[i].details != NULL) {
            copyw_strn(&decisions, d[i].details, d[i].details_len);
        } else {
            copyw_str(&decisions, "{}");
        }
        copyw_str(&decisions, d[i].decided_by);
        copyw_end_row(&decisions);
        if (d[i].review_reason != NULL) {
            jsonw_object_begin(&reviews);
            jsonw_kint(&reviews, "i", (int64_t)i);
            jsonw_kint(&reviews, "r", d[i].record_id);
            claim_order_id(&reviews, d[i].order_id);
            jsonw_kstr(&reviews, "re", d[i].review_reason);
            claim_details(&reviews, &d[i]);
            jsonw_object_end(&reviews);
            n_reviews++;
        }
    }
    jsonw_array_end(&reviews);
    enum tp_status st = copyw_send(c, claim_sql_decisions, &decisions, err);
    if (st == TP_OK && n_reviews > 0) {
        st = claim_exec(c, "recon_claim_reviews", &reviews, NULL, err);
    }
    copyw_deinit(&decisions);
    jsonw_deinit(&reviews);
    return st;
}
