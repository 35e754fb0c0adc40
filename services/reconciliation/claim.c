/*
 * Crediting orders: the conditional claim (pending -> processing), the decision rows and review
 * items, and PaymentMatched in the outbox. Set-based (one statement per kind per batch) so a batch
 * of matches costs a handful of round trips; the caller's transaction makes them one unit.
 */
#include "recon.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topup/event.h"
#include "topup/kafka.h"
#include "topup/mem.h"
#include "topup/pg.h"

static const char claim_sql_orders[] =
    "UPDATE topup_orders o SET status = 'processing', matched_at = now(), updated_at = now(),"
    " credited_fen = x.credited_fen, amount_mismatch = x.amount_mismatch"
    " FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, credited_fen bigint,"
    " amount_mismatch boolean)"
    " WHERE o.id = x.id AND o.status = 'pending' RETURNING o.id";

/*
 * The same row outbox_write() (topup/outbox.h) inserts, many at once, with the same wake-up of
 * the relay ("outbox_" || source). Ids are assigned in x.i order, so per-key order holds.
 */
static const char claim_sql_outbox[] =
    "WITH ins AS (INSERT INTO outbox (source, topic, kafka_key, payload, event_id)"
    " SELECT $1, x.topic, x.kafka_key, decode(x.payload, 'hex'), x.event_id"
    " FROM jsonb_to_recordset($2::jsonb) AS x(i int, topic text, kafka_key text, payload text,"
    " event_id text) ORDER BY x.i RETURNING id)"
    " SELECT pg_notify('outbox_' || $1, '') WHERE EXISTS (SELECT 1 FROM ins)";

static const char claim_sql_decisions[] =
    "INSERT INTO match_decisions (record_id, order_id, outcome, rule, details, decided_by)"
    " SELECT x.record_id, x.order_id, x.outcome, x.rule, x.details, x.decided_by"
    " FROM jsonb_to_recordset($1::jsonb) AS x(i int, record_id bigint, order_id bigint,"
    " outcome text, rule text, details jsonb, decided_by text) ORDER BY x.i";

static const char claim_sql_reviews[] =
    "INSERT INTO review_queue (record_id, order_id, reason, details)"
    " SELECT x.record_id, x.order_id, x.reason, x.details"
    " FROM jsonb_to_recordset($1::jsonb) AS x(i int, record_id bigint, order_id bigint,"
    " reason text, details jsonb) ORDER BY x.i"
    " ON CONFLICT (record_id, reason) WHERE status = 'open' DO NOTHING";

enum tp_status claim_prepare(struct pg_conn *c, struct tp_error *err)
{
    static const struct {
        const char *name, *sql;
        int nparams;
    } stmts[] = {
        {"recon_claim_orders", claim_sql_orders, 1},
        {"recon_claim_outbox", claim_sql_outbox, 2},
        {"recon_claim_decisions", claim_sql_decisions, 1},
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

/* Serialises a JSON array for a statement parameter; the caller frees the text. */
static char *claim_dump(json_t *arr)
{
    char *s = json_dumps(arr, JSON_COMPACT);
    if (s == NULL) {
        /* Only out of memory (every string added was checked UTF-8): the house rule aborts. */
        abort();
    }
    return s;
}

static enum tp_status claim_exec_json(struct pg_conn *c, const char *stmt, json_t *arr,
                                      PGresult **res, struct tp_error *err)
{
    char *text = claim_dump(arr);
    const char *const params[1] = {text};
    enum tp_status st = pg_exec_prepared(c, stmt, 1, params, res, err);
    free(text);
    return st;
}

/* Appends row (NULL when a string was not UTF-8: refused, never silently dropped). */
static enum tp_status claim_append(json_t *arr, json_t *row, struct tp_error *err)
{
    if (row == NULL) {
        return error_set(err, TP_INVALID, "a decision field is not valid UTF-8");
    }
    json_array_append_new(arr, row);
    return TP_OK;
}

enum tp_status claim_orders(struct pg_conn *c, const struct claim_match *m, size_t n,
                            size_t *claimed, struct tp_error *err)
{
    *claimed = 0;
    if (n == 0) {
        return TP_OK;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, json_pack("{s:I,s:I,s:b}", "id", (json_int_t)m[i].order_id,
                                             "credited_fen", (json_int_t)m[i].credited_fen,
                                             "amount_mismatch", m[i].amount_mismatch));
    }
    PGresult *res = NULL;
    enum tp_status st = claim_exec_json(c, "recon_claim_orders", arr, &res, err);
    json_decref(arr);
    if (st == TP_OK) {
        *claimed = (size_t)PQntuples(res);
    }
    PQclear(res);
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

static char *claim_hex(const uint8_t *p, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *out = mem_alloc(len * 2 + 1);
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[len * 2] = '\0';
    return out;
}

enum tp_status claim_write_events(struct pg_conn *c, const struct claim_match *m, size_t n,
                                  struct tp_error *err)
{
    if (n == 0) {
        return TP_OK;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        char event_id[UUID_STR_LEN];
        size_t len = 0;
        uint8_t *payload = claim_pack(&m[i], event_id, &len);
        char *hex = claim_hex(payload, len);
        json_t *row =
            json_pack("{s:i,s:s,s:s,s:s,s:s}", "i", (int)i, "topic", TOPIC_PAYMENT_MATCHED,
                      "kafka_key", m[i].account_id, "payload", hex, "event_id", event_id);
        free(hex);
        free(payload);
        if (claim_append(arr, row, err) != TP_OK) {
            json_decref(arr);
            return error_set(err, TP_INVALID, "order %s: account id is not UTF-8", m[i].order_code);
        }
    }
    char *text = claim_dump(arr);
    json_decref(arr);
    const char *const params[2] = {RECON_SOURCE, text};
    enum tp_status st = pg_exec_prepared(c, "recon_claim_outbox", 2, params, NULL, err);
    free(text);
    return st;
}

/* order_id 0 is SQL NULL. */
static json_t *claim_id_or_null(int64_t id)
{
    return id > 0 ? json_integer((json_int_t)id) : json_null();
}

enum tp_status claim_write_decisions(struct pg_conn *c, const struct claim_decision *d, size_t n,
                                     struct tp_error *err)
{
    if (n == 0) {
        return TP_OK;
    }
    enum tp_status st = TP_OK;
    json_t *decisions = json_array();
    json_t *reviews = json_array();
    json_t *empty = json_object();
    for (size_t i = 0; i < n && st == TP_OK; i++) {
        json_t *details = d[i].details != NULL ? d[i].details : empty;
        st =
            claim_append(decisions,
                         json_pack("{s:i,s:I,s:o,s:s,s:s,s:O,s:s}", "i", (int)i, "record_id",
                                   (json_int_t)d[i].record_id, "order_id",
                                   claim_id_or_null(d[i].order_id), "outcome", d[i].outcome, "rule",
                                   d[i].rule, "details", details, "decided_by", d[i].decided_by),
                         err);
        if (st == TP_OK && d[i].review_reason != NULL) {
            st = claim_append(reviews,
                              json_pack("{s:i,s:I,s:o,s:s,s:O}", "i", (int)i, "record_id",
                                        (json_int_t)d[i].record_id, "order_id",
                                        claim_id_or_null(d[i].order_id), "reason",
                                        d[i].review_reason, "details", details),
                              err);
        }
    }
    if (st == TP_OK) {
        st = claim_exec_json(c, "recon_claim_decisions", decisions, NULL, err);
    }
    if (st == TP_OK && json_array_size(reviews) > 0) {
        st = claim_exec_json(c, "recon_claim_reviews", reviews, NULL, err);
    }
    json_decref(empty);
    json_decref(decisions);
    json_decref(reviews);
    return st;
}
