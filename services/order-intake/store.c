/* order-intake's SQL: orders, idempotency keys, cancellation, expiry, balance and flows reads. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "intake.h"
#include "topup/event.h"
#include "topup/kafka.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/outbox.h"
#include "topup/pg.h"

/* A code collision (unique violation on topup_orders.code) is retried with new codes this often. */
#define STORE_CODE_ATTEMPTS 5
/* Whole-transaction attempts on retryable failures (serialization, deadlock, lost connection). */
#define STORE_TX_ATTEMPTS      3
#define STORE_RETRY_BACKOFF_MS 50

#define STORE_MS(col) "floor(extract(epoch FROM " col ") * 1000)::bigint"
#define STORE_ORDER_COLS                                                                                                                                                    \
    "o.id, o.code, o.account_id, o.amount_fen, o.currency, o.channel, o.remitter_name, "                                                                                    \
    "o.remitter_bank, o.remarks, o.status, o.credited_fen, o.amount_mismatch, " STORE_MS(                                                                                   \
        "o."                                                                                                                                                                \
        "created"                                                                                                                                                           \
        "_at") ", " STORE_MS("o.expires_at") ", " STORE_MS("o.updated_at") ", " STORE_MS("o."                                                                               \
                                                                                         "cancell"                                                                          \
                                                                                         "ed_at") ", " STORE_MS("o.expired_at") ","                                         \
                                                                                                                                " " STORE_MS("o.matched_at") ", " STORE_MS( \
                                                                                                                                    "o.completed_at")
#define STORE_ORDER_NCOLS 19

/*
 * A whole batch of creations in one statement: the key rows take their orders' ids from the
 * sequence, so a key that already exists (ON CONFLICT DO NOTHING, which waits for a concurrent
 * inserter of the same key to commit or abort) inserts neither an order nor an event. Foreign
 * keys are checked at the end of the statement, when every row exists. The outbox rows are
 * exactly what outbox_write() (topup/outbox.h) inserts, with its wake-up of the relay, written
 * set-based so that a batch costs one round trip instead of two per order; ids follow x.i, so
 * the order per key holds.
 */
static const char store_sql_create[] =
    "WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(i int, a text, k text, h text,"
    " c text, m bigint, n text, nn text, b text, r text, t0 bigint, t1 bigint, e text, p text)),"
    " k AS (INSERT INTO idempotency_keys (account_id, key, request_hash, order_id)"
    " SELECT x.a, x.k, decode(x.h, 'hex'), nextval('topup_orders_id_seq') FROM x ORDER BY x.i"
    " ON CONFLICT (account_id, key) DO NOTHING RETURNING account_id, key, order_id),"
    " n AS (SELECT x.*, k.order_id FROM x JOIN k ON k.account_id = x.a AND k.key = x.k),"
    " o AS (INSERT INTO topup_orders (id, code, account_id, amount_fen, channel, remitter_name,"
    " remitter_name_norm, remitter_bank, remarks, created_at, expires_at, updated_at)"
    " SELECT n.order_id, n.c, n.a, n.m, 'bank_transfer', n.n, n.nn, n.b, n.r,"
    " 'epoch'::timestamptz + n.t0 * interval '1 millisecond',"
    " 'epoch'::timestamptz + n.t1 * interval '1 millisecond',"
    " 'epoch'::timestamptz + n.t0 * interval '1 millisecond' FROM n ORDER BY n.i RETURNING id),"
    " ob AS (INSERT INTO outbox (source, topic, kafka_key, payload, event_id)"
    " SELECT '" INTAKE_OUTBOX_SOURCE "', '" TOPIC_TOPUP_REQUESTED "', n.a, decode(n.p, 'hex'), n.e"
    " FROM n ORDER BY n.i RETURNING id)"
    " SELECT n.i, n.order_id, (SELECT count(*) FROM o), (SELECT count(*) FROM ob),"
    " (SELECT pg_notify('outbox_" INTAKE_OUTBOX_SOURCE "', '') WHERE EXISTS (SELECT 1 FROM ob))"
    " FROM n";

static const char store_sql_by_key[] =
    "SELECT encode(k.request_hash, 'hex'), " STORE_ORDER_COLS
    " FROM idempotency_keys k JOIN topup_orders o ON o.id = k.order_id"
    " WHERE k.account_id = $1 AND k.key = $2";

static const char store_sql_get[] =
    "SELECT " STORE_ORDER_COLS " FROM topup_orders o WHERE o.account_id = $1 AND o.code = $2";

static const char store_sql_list[] =
    "SELECT " STORE_ORDER_COLS " FROM topup_orders o"
    " WHERE o.account_id = $1 AND o.id < $2 AND ($3::text IS NULL OR o.status = $3)"
    " ORDER BY o.id DESC LIMIT $4";

/* The conditional transition: exactly one of a cancel and a claim (status = 'processing') wins. */
static const char store_sql_cancel[] =
    "UPDATE topup_orders o SET status = 'cancelled', cancelled_at = now(), updated_at = now()"
    " WHERE o.account_id = $1 AND o.code = $2 AND o.status = 'pending'"
    " RETURNING " STORE_ORDER_COLS;

static const char store_sql_balance[] = "SELECT balance_fen FROM accounts WHERE account_id = $1";

static const char store_sql_flows[] =
    "SELECT id, flow_type, amount_fen, balance_after_fen, reference, " STORE_MS(
        "occurred_at") ", " STORE_MS("created_at") " FROM account_flows"
                                                   " WHERE account_id = $1 AND id < $2"
                                                   " AND ($3::text IS NULL OR flow_type = $3)"
                                                   " ORDER BY id DESC LIMIT $4";

/* Due orders locked by this sweep only; rows another instance holds are skipped, not waited on. */
static const char store_sql_expire[] =
    "WITH due AS (SELECT id FROM topup_orders WHERE status = 'pending' AND expires_at <= now()"
    " ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
    " UPDATE topup_orders o SET status = 'expired', expired_at = now(), updated_at = now()"
    " FROM due WHERE o.id = due.id AND o.status = 'pending'"
    " RETURNING o.code, o.account_id, " STORE_MS("o.expired_at");

enum tp_status store_prepare(struct pg_conn *pg, struct tp_error *err)
{
    static const struct {
        const char *name;
        const char *sql;
        int nparams;
    } stmts[] = {
        {"intake_create", store_sql_create, 1}, {"intake_by_key", store_sql_by_key, 2},
        {"intake_get", store_sql_get, 2},       {"intake_list", store_sql_list, 4},
        {"intake_cancel", store_sql_cancel, 2}, {"intake_balance", store_sql_balance, 1},
        {"intake_flows", store_sql_flows, 4},   {"intake_expire", store_sql_expire, 1},
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        enum tp_status st = pg_prepare(pg, stmts[i].name, stmts[i].sql, stmts[i].nparams, err);
        if (st != TP_OK) {
            return st;
        }
    }
    return TP_OK;
}

static void store_copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
}

static int64_t store_ms(const PGresult *r, int row, int col)
{
    return pg_is_null(r, row, col) ? 0 : pg_get_i64(r, row, col);
}

static void store_fill_order(const PGresult *r, int row, int c, struct store_order *o)
{
    memset(o, 0, sizeof(*o));
    o->id = pg_get_i64(r, row, c + 0);
    store_copy(o->code, sizeof(o->code), pg_get_str(r, row, c + 1));
    store_copy(o->account, sizeof(o->account), pg_get_str(r, row, c + 2));
    o->amount_fen = pg_get_i64(r, row, c + 3);
    store_copy(o->currency, sizeof(o->currency), pg_get_str(r, row, c + 4));
    store_copy(o->channel, sizeof(o->channel), pg_get_str(r, row, c + 5));
    store_copy(o->remitter_name, sizeof(o->remitter_name), pg_get_str(r, row, c + 6));
    store_copy(o->remitter_bank, sizeof(o->remitter_bank), pg_get_str(r, row, c + 7));
    store_copy(o->remarks, sizeof(o->remarks), pg_get_str(r, row, c + 8));
    store_copy(o->status, sizeof(o->status), pg_get_str(r, row, c + 9));
    o->credited_fen = pg_is_null(r, row, c + 10) ? -1 : pg_get_i64(r, row, c + 10);
    o->amount_mismatch = strcmp(pg_get_str(r, row, c + 11), "t") == 0;
    o->created_ms = store_ms(r, row, c + 12);
    o->expires_ms = store_ms(r, row, c + 13);
    o->updated_ms = store_ms(r, row, c + 14);
    o->cancelled_ms = store_ms(r, row, c + 15);
    o->expired_ms = store_ms(r, row, c + 16);
    o->matched_ms = store_ms(r, row, c + 17);
    o->completed_ms = store_ms(r, row, c + 18);
}

static void store_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- create ---- */

struct store_batch {
    struct store_create **items; /* sorted by (account, key) */
    int n;
    store_code_fn *new_code;
};

static int store_cmp_items(const void *a, const void *b)
{
    const struct store_create *x = *(struct store_create *const *)a;
    const struct store_create *y = *(struct store_create *const *)b;
    int c = strcmp(x->account, y->account);
    return c != 0 ? c : strcmp(x->idem_key, y->idem_key);
}

/* Fills the order an item would create (a new code each attempt) and adds it to the batch JSON. */
static void store_create_item(struct store_create *it, int i, store_code_fn *new_code,
                              int64_t now_ms, json_t *arr)
{
    struct store_order *o = &it->order;
    memset(o, 0, sizeof(*o));
    new_code(o->code);
    store_copy(o->account, sizeof(o->account), it->account);
    o->amount_fen = it->req->amount_fen;
    store_copy(o->currency, sizeof(o->currency), "CNY");
    store_copy(o->channel, sizeof(o->channel), VALIDATE_CHANNEL);
    store_copy(o->remitter_name, sizeof(o->remitter_name), it->req->remitter_name);
    store_copy(o->remitter_bank, sizeof(o->remitter_bank), it->req->remitter_bank);
    store_copy(o->remarks, sizeof(o->remarks), it->req->remarks);
    store_copy(o->status, sizeof(o->status), "pending");
    o->credited_fen = -1;
    o->created_ms = now_ms;
    o->updated_ms = now_ms;
    o->expires_ms = now_ms + it->ttl_s * 1000;

    char hash[VALIDATE_HASH_BYTES * 2 + 1];
    store_hex(it->req->hash, VALIDATE_HASH_BYTES, hash);
    char event_id[UUID_STR_LEN];
    size_t len = 0;
    uint8_t *payload = events_pack_requested(o, event_id, &len);
    char *payload_hex = mem_alloc(len * 2 + 1);
    store_hex(payload, len, payload_hex);
    free(payload);
    json_array_append_new(
        arr, json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}",
                       "i", i, "a", it->account, "k", it->idem_key, "h", hash, "c", o->code, "m",
                       (json_int_t)o->amount_fen, "n", it->req->remitter_name, "nn",
                       it->req->name_norm, "b", it->req->remitter_bank, "r", it->req->remarks, "t0",
                       (json_int_t)o->created_ms, "t1", (json_int_t)o->expires_ms, "e", event_id,
                       "p", payload_hex));
    free(payload_hex);
}

static enum tp_status store_create_tx(struct pg_conn *pg, struct store_batch *b,
                                      struct tp_error *err)
{
    int64_t now_ms = event_now_ms();
    json_t *arr = json_array();
    for (int i = 0; i < b->n; i++) {
        b->items[i]->created = b->items[i]->found = b->items[i]->conflict = false;
        store_create_item(b->items[i], i, b->new_code, now_ms, arr);
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (text == NULL) {
        /* Every string was checked as UTF-8 by validation: this is a bug, not input. */
        return error_set(err, TP_FATAL, "batch could not be encoded as JSON");
    }
    const char *params[1] = {text};
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(pg, "intake_create", 1, params, &r, err);
    free(text);
    if (st != TP_OK) {
        return st;
    }
    int rows = PQntuples(r);
    for (int row = 0; row < rows; row++) {
        int i = (int)pg_get_i64(r, row, 0);
        if (i < 0 || i >= b->n || pg_get_i64(r, row, 2) != rows || pg_get_i64(r, row, 3) != rows) {
            PQclear(r);
            return error_set(err, TP_FATAL, "batch insert returned inconsistent rows");
        }
        b->items[i]->order.id = pg_get_i64(r, row, 1);
        b->items[i]->created = true;
        b->items[i]->found = true;
    }
    PQclear(r);
    return TP_OK;
}

/* Reads the order a key already points to; conflict when it was made by another request. */
static enum tp_status store_replay(struct pg_conn *pg, struct store_create *it,
                                   struct tp_error *err)
{
    const char *params[2] = {it->account, it->idem_key};
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(pg, "intake_by_key", 2, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        /* The insert saw the key, so it was committed: a vanished key is a broken invariant. */
        return error_set(err, TP_FATAL, "idempotency key seen by the insert but not found after");
    }
    char hash[VALIDATE_HASH_BYTES * 2 + 1];
    store_hex(it->req->hash, VALIDATE_HASH_BYTES, hash);
    it->conflict = strcmp(pg_get_str(r, 0, 0), hash) != 0;
    store_fill_order(r, 0, 1, &it->order);
    it->found = true;
    PQclear(r);
    return TP_OK;
}

enum tp_status store_create_batch(struct pg_conn *pg, struct store_create *items, int n,
                                  store_code_fn *new_code, struct tp_error *err)
{
    struct store_batch b = {
        .items = mem_calloc((size_t)n, sizeof(*b.items)), .n = n, .new_code = new_code};
    for (int i = 0; i < n; i++) {
        b.items[i] = &items[i];
    }
    /* One lock order for every batch: two batches never wait on each other's keys in a cycle. */
    qsort(b.items, (size_t)n, sizeof(*b.items), store_cmp_items);
    /*
     * The batch is one statement, so it runs as its own transaction (no BEGIN/COMMIT round
     * trips). Retrying it is safe whatever happened to the previous attempt: keys that did commit
     * make the retry insert nothing for them, and their requests read the committed orders.
     */
    enum tp_status st = TP_RETRY;
    int retries = 0, collisions = 0;
    while (st == TP_RETRY || st == TP_DUPLICATE) {
        st = store_create_tx(pg, &b, err);
        if (st == TP_DUPLICATE && ++collisions < STORE_CODE_ATTEMPTS) {
            log_warn("order code collision, retrying the batch with new codes",
                     LF_S("error", err->msg), LF_I("orders", n));
        } else if (st == TP_RETRY && ++retries < STORE_TX_ATTEMPTS) {
            log_warn("order batch failed, retrying", LF_S("error", err->msg), LF_I("orders", n));
            usleep((useconds_t)(STORE_RETRY_BACKOFF_MS * retries * 1000));
        } else {
            break;
        }
    }
    for (int i = 0; st == TP_OK && i < n; i++) {
        if (!items[i].created) {
            st = store_replay(pg, &items[i], err);
        }
    }
    free(b.items);
    return st;
}

/* ---- reads, cancel ---- */

enum tp_status store_get_order(struct pg_conn *pg, const char *account, const char *code,
                               struct store_order *out, struct tp_error *err)
{
    const char *params[2] = {account, code};
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(pg, "intake_get", 2, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    if (PQntuples(r) == 1) {
        store_fill_order(r, 0, 0, out);
    } else {
        st = error_set(err, TP_NOT_FOUND, "no order %s for this account", code);
    }
    PQclear(r);
    return st;
}

enum tp_status store_list_orders(struct pg_conn *pg, const char *account, int64_t before_id,
                                 const char *status, int limit, struct store_order *out, int *n_out,
                                 struct tp_error *err)
{
    char before[24], lim[16];
    snprintf(before, sizeof(before), "%" PRId64, before_id);
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *params[4] = {account, before, status, lim};
    PGresult *r = NULL;
    *n_out = 0;
    enum tp_status st = pg_exec_prepared(pg, "intake_list", 4, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    int rows = PQntuples(r);
    for (int i = 0; i < rows && i <= limit; i++) {
        store_fill_order(r, i, 0, &out[i]);
        (*n_out)++;
    }
    PQclear(r);
    return TP_OK;
}

struct store_cancel_ctx {
    const char *account;
    const char *code;
    struct store_order *out;
};

static enum tp_status store_cancel_tx(struct pg_conn *pg, void *ctx, struct tp_error *err)
{
    struct store_cancel_ctx *c = ctx;
    const char *params[2] = {c->account, c->code};
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(pg, "intake_cancel", 2, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        st = pg_exec_prepared(pg, "intake_get", 2, params, &r, err);
        if (st != TP_OK) {
            return st;
        }
        if (PQntuples(r) != 1) {
            st = error_set(err, TP_NOT_FOUND, "no order %s for this account", c->code);
        } else {
            store_fill_order(r, 0, 0, c->out);
            st =
                error_set(err, TP_CONFLICT, "order %s is %s, not pending", c->code, c->out->status);
        }
        PQclear(r);
        return st;
    }
    store_fill_order(r, 0, 0, c->out);
    PQclear(r);
    char event_id[UUID_STR_LEN];
    size_t len = 0;
    uint8_t *payload =
        events_pack_cancelled(c->account, c->out->code, c->out->cancelled_ms, event_id, &len);
    st = outbox_write(pg, INTAKE_OUTBOX_SOURCE, TOPIC_TOPUP_CANCELLED, c->account, event_id,
                      payload, len, err);
    free(payload);
    return st;
}

enum tp_status store_cancel_order(struct pg_conn *pg, const char *account, const char *code,
                                  struct store_order *out, struct tp_error *err)
{
    struct store_cancel_ctx c = {.account = account, .code = code, .out = out};
    return pg_transaction(pg, store_cancel_tx, &c, STORE_TX_ATTEMPTS, err);
}

enum tp_status store_balance(struct pg_conn *pg, const char *account, int64_t *balance_fen,
                             struct tp_error *err)
{
    const char *params[1] = {account};
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(pg, "intake_balance", 1, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    *balance_fen = PQntuples(r) == 1 ? pg_get_i64(r, 0, 0) : 0;
    PQclear(r);
    return TP_OK;
}

enum tp_status store_list_flows(struct pg_conn *pg, const char *account, int64_t before_id,
                                const char *type, int limit, struct store_flow *out, int *n_out,
                                struct tp_error *err)
{
    char before[24], lim[16];
    snprintf(before, sizeof(before), "%" PRId64, before_id);
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *params[4] = {account, before, type, lim};
    PGresult *r = NULL;
    *n_out = 0;
    enum tp_status st = pg_exec_prepared(pg, "intake_flows", 4, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    int rows = PQntuples(r);
    for (int i = 0; i < rows && i <= limit; i++) {
        struct store_flow *f = &out[i];
        f->id = pg_get_i64(r, i, 0);
        store_copy(f->type, sizeof(f->type), pg_get_str(r, i, 1));
        f->amount_fen = pg_get_i64(r, i, 2);
        f->balance_after_fen = pg_get_i64(r, i, 3);
        store_copy(f->reference, sizeof(f->reference), pg_get_str(r, i, 4));
        f->occurred_ms = store_ms(r, i, 5);
        f->created_ms = store_ms(r, i, 6);
        (*n_out)++;
    }
    PQclear(r);
    return TP_OK;
}

/* ---- expiry ---- */

struct store_expire_ctx {
    int batch_max;
    int expired;
};

static enum tp_status store_expire_tx(struct pg_conn *pg, void *ctx, struct tp_error *err)
{
    struct store_expire_ctx *c = ctx;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", c->batch_max);
    const char *params[1] = {lim};
    PGresult *r = NULL;
    c->expired = 0;
    enum tp_status st = pg_exec_prepared(pg, "intake_expire", 1, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    int rows = PQntuples(r);
    for (int i = 0; i < rows && st == TP_OK; i++) {
        const char *code = pg_get_str(r, i, 0);
        const char *account = pg_get_str(r, i, 1);
        char event_id[UUID_STR_LEN];
        size_t len = 0;
        uint8_t *payload = events_pack_expired(account, code, pg_get_i64(r, i, 2), event_id, &len);
        st = outbox_write(pg, INTAKE_OUTBOX_SOURCE, TOPIC_TOPUP_EXPIRED, account, event_id, payload,
                          len, err);
        free(payload);
    }
    PQclear(r);
    if (st == TP_OK) {
        c->expired = rows;
    }
    return st;
}

enum tp_status store_expire_batch(struct pg_conn *pg, int batch_max, int *expired_out,
                                  struct tp_error *err)
{
    struct store_expire_ctx c = {.batch_max = batch_max};
    enum tp_status st = pg_transaction(pg, store_expire_tx, &c, STORE_TX_ATTEMPTS, err);
    *expired_out = st == TP_OK ? c.expired : 0;
    return st;
}

/* ---- shutdown ---- */

enum tp_status store_outbox_unpublished(struct pg_conn *pg, int64_t *upto_id, int64_t *count,
                                        struct tp_error *err)
{
    char upto[24];
    snprintf(upto, sizeof(upto), "%" PRId64, *upto_id > 0 ? *upto_id : INT64_MAX);
    const char *params[2] = {INTAKE_OUTBOX_SOURCE, upto};
    PGresult *r = NULL;
    enum tp_status st = pg_exec(pg,
                                "SELECT count(*), coalesce(max(id), 0) FROM outbox"
                                " WHERE source = $1 AND published_at IS NULL AND id <= $2::bigint",
                                2, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    *count = pg_get_i64(r, 0, 0);
    if (*upto_id <= 0) {
        *upto_id = pg_get_i64(r, 0, 1);
    }
    PQclear(r);
    return TP_OK;
}
