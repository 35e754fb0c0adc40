/*
 * Order code collisions: the group-commit INSERT (store.c) meets a code that already exists, or
 * two orders of one batch drawn the same code; the batch runs again with fresh codes, every order
 * is created once with its own key and event, and idempotency keys keep their meaning.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"
#include "testlib.h"
#include "topup/pg.h"
#include "topup/v1/events.pb-c.h"

#define CODES_SCRIPT_MAX 16

/*
 * The code generator the store gets: the scripted codes first, in order, then random ones as in
 * production. The store is driven from this one thread only.
 */
static struct {
    char script[CODES_SCRIPT_MAX][REFCODE_STR_LEN];
    int n;
    int next;
    int calls;
} codes;

static void codes_script(int n, const char *const *list)
{
    TL_CHECK(n <= CODES_SCRIPT_MAX);
    for (int i = 0; i < n; i++) {
        snprintf(codes.script[i], REFCODE_STR_LEN, "%s", list[i]);
    }
    codes.n = n;
    codes.next = 0;
    codes.calls = 0;
}

static void codes_new(char out[REFCODE_STR_LEN])
{
    codes.calls++;
    if (codes.next < codes.n) {
        memcpy(out, codes.script[codes.next++], REFCODE_STR_LEN);
    } else {
        ids_refcode_new(out);
    }
}

static char account[TL_ID_MAX];

/* A validated request as the API would hand it over (amount in yuan, distinct per order). */
static void request(struct validate_order *o, int yuan, const char *name)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"amount\":\"%d.00\",\"channel\":\"bank_transfer\",\"remitter_name\":\"%s\","
             "\"remitter_bank\":\"招商银行\",\"agreement_accepted\":true}",
             yuan, name);
    struct validate_error v;
    TL_CHECK_MSG(validate_order_body(body, strlen(body), 5000, 100000000, o, &v),
                 "request body refused: %s", v.message);
}

static enum tp_status create(struct pg_conn *pg, struct store_create *items, int n,
                             struct tp_error *err)
{
    return store_create_batch(pg, items, n, codes_new, err);
}

static void item(struct store_create *it, const char *key, const struct validate_order *req)
{
    memset(it, 0, sizeof(*it));
    it->account = account;
    it->idem_key = key;
    it->req = req;
    it->ttl_s = 3600;
}

static int64_t count(const char *sql, const char *arg)
{
    const char *params[2] = {account, arg};
    return tl_pg_i64(sql, arg != NULL ? 2 : 1, params);
}

/*
 * What the database holds for the account's order with this code matches what the caller was
 * told: one order of that id and amount, its key pointing at it, exactly one TopUpRequested
 * outbox row carrying that code and amount.
 */
static void check_stored(const struct store_create *it)
{
    const struct store_order *o = &it->order;
    TL_CHECK(ids_refcode_valid(o->code));
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)o->id);
    const char *p3[3] = {account, o->code, id};
    TL_CHECK_MSG(tl_pg_i64("SELECT count(*) FROM topup_orders WHERE account_id = $1 AND code = $2"
                           " AND id = $3::bigint",
                           3, p3) == 1,
                 "order %s (id %s) is not stored as answered", o->code, id);
    const char *pk[3] = {account, it->idem_key, id};
    TL_CHECK_MSG(tl_pg_i64("SELECT count(*) FROM idempotency_keys WHERE account_id = $1"
                           " AND key = $2 AND order_id = $3::bigint",
                           3, pk) == 1,
                 "key %s does not point at order %s", it->idem_key, o->code);

    int found = 0;
    PGresult *r = tl_pg_query("SELECT encode(payload, 'hex') FROM outbox WHERE kafka_key = $1"
                              " AND topic = 'topup.requested'",
                              1, (const char *const[]){account});
    for (int row = 0; row < PQntuples(r); row++) {
        const char *hex = PQgetvalue(r, row, 0);
        size_t len = strlen(hex) / 2;
        uint8_t *buf = malloc(len + 1);
        for (size_t i = 0; i < len; i++) {
            unsigned v = 0;
            TL_CHECK(sscanf(hex + 2 * i, "%2x", &v) == 1);
            buf[i] = (uint8_t)v;
        }
        Topup__V1__TopUpRequested *ev = topup__v1__top_up_requested__unpack(NULL, len, buf);
        TL_CHECK(ev != NULL);
        if (strcmp(ev->order_code, o->code) == 0) {
            found++;
            TL_CHECK(ev->amount_fen == o->amount_fen);
        }
        topup__v1__top_up_requested__free_unpacked(ev, NULL);
        free(buf);
    }
    PQclear(r);
    TL_CHECK_MSG(found == 1, "order %s has %d TopUpRequested events in the outbox, want 1", o->code,
                 found);
}

static struct pg_conn *connect_store(void)
{
    struct tp_error err = {0};
    struct pg_conn *pg = pg_conn_new(tl_env("PG_CONNINFO"), 10000, &err);
    TL_CHECK_MSG(pg != NULL, "connect: %s", err.msg);
    TL_CHECK_MSG(store_prepare(pg, &err) == TP_OK, "prepare: %s", err.msg);
    return pg;
}

int main(void)
{
    tl_init("intake_codes");
    tl_id(account, "codes");
    struct pg_conn *pg = connect_store();
    struct tp_error err = {0};
    struct validate_order req[6] = {0};
    for (int i = 0; i < 6; i++) {
        request(&req[i], 100 + i, i % 2 == 0 ? "张三" : "李四");
    }

    tl_step("an existing order takes code A");
    char a[REFCODE_STR_LEN], b[REFCODE_STR_LEN];
    ids_refcode_new(a);
    do {
        ids_refcode_new(b);
    } while (strcmp(a, b) == 0);
    struct store_create first;
    item(&first, "k-first", &req[0]);
    codes_script(1, (const char *const[]){a});
    TL_CHECK_MSG(create(pg, &first, 1, &err) == TP_OK, "first order: %s", err.msg);
    TL_CHECK(first.created && strcmp(first.order.code, a) == 0);
    check_stored(&first);

    tl_step("a batch of three whose first order draws A again: retried, all three created");
    struct store_create batch[3];
    item(&batch[0], "k-b0", &req[1]);
    item(&batch[1], "k-b1", &req[2]);
    item(&batch[2], "k-b2", &req[3]);
    /* Batch items are sorted by key, so the first code drawn goes to k-b0. */
    codes_script(1, (const char *const[]){a});
    TL_CHECK_MSG(create(pg, batch, 3, &err) == TP_OK, "batch with a taken code: %s", err.msg);
    TL_CHECK_MSG(codes.calls == 6, "codes drawn: %d, want 3 for the collision and 3 fresh",
                 codes.calls);
    for (int i = 0; i < 3; i++) {
        TL_CHECK(batch[i].created && batch[i].found && !batch[i].conflict);
        TL_CHECK(strcmp(batch[i].order.code, a) != 0);
        TL_CHECK(batch[i].order.amount_fen == req[i + 1].amount_fen);
        check_stored(&batch[i]);
    }
    TL_CHECK(count("SELECT count(*) FROM topup_orders WHERE account_id = $1", NULL) == 4);
    TL_CHECK(count("SELECT count(*) FROM idempotency_keys WHERE account_id = $1", NULL) == 4);
    TL_CHECK(count("SELECT count(*) FROM outbox WHERE kafka_key = $1", NULL) == 4);
    /* The first order is untouched: still code A, same id. */
    check_stored(&first);

    tl_step("two orders of one batch draw the same new code B: retried, both created");
    struct store_create twins[2];
    item(&twins[0], "k-t0", &req[4]);
    item(&twins[1], "k-t1", &req[5]);
    codes_script(2, (const char *const[]){b, b});
    TL_CHECK_MSG(create(pg, twins, 2, &err) == TP_OK, "batch drawing B twice: %s", err.msg);
    TL_CHECK(codes.calls == 4);
    TL_CHECK(strcmp(twins[0].order.code, twins[1].order.code) != 0);
    for (int i = 0; i < 2; i++) {
        TL_CHECK(twins[i].created);
        check_stored(&twins[i]);
    }

    tl_step("replays and a reused key in a batch that collides: keys honoured across the retry");
    struct validate_order other = {0};
    request(&other, 777, "王五");
    struct store_create mixed[4];
    item(&mixed[0], "k-b1", &req[2]);    /* replay: same key, same request */
    item(&mixed[1], "k-b2", &other);     /* same key, another request: 409 */
    item(&mixed[2], "k-m0", &req[0]);    /* new: collides with A on the first attempt */
    item(&mixed[3], "k-first", &req[0]); /* replay of the first order */
    /* Codes go in key order (k-b1, k-b2, k-first, k-m0): only k-m0 would insert, and it draws A. */
    char r[3][REFCODE_STR_LEN];
    for (int i = 0; i < 3; i++) {
        ids_refcode_new(r[i]);
    }
    codes_script(4, (const char *const[]){r[0], r[1], r[2], a});
    TL_CHECK_MSG(create(pg, mixed, 4, &err) == TP_OK, "mixed batch: %s", err.msg);
    TL_CHECK_MSG(codes.calls == 8, "codes drawn: %d, want 4 for the collision and 4 fresh",
                 codes.calls);
    TL_CHECK(!mixed[0].created && mixed[0].found && !mixed[0].conflict);
    TL_CHECK(mixed[0].order.id == batch[1].order.id);
    TL_CHECK(strcmp(mixed[0].order.code, batch[1].order.code) == 0);
    TL_CHECK(!mixed[1].created && mixed[1].conflict);
    TL_CHECK(mixed[1].order.id == batch[2].order.id);
    TL_CHECK(mixed[2].created && strcmp(mixed[2].order.code, a) != 0);
    check_stored(&mixed[2]);
    TL_CHECK(!mixed[3].created && mixed[3].found && !mixed[3].conflict);
    TL_CHECK(mixed[3].order.id == first.order.id && strcmp(mixed[3].order.code, a) == 0);
    TL_CHECK(count("SELECT count(*) FROM topup_orders WHERE account_id = $1", NULL) == 7);
    TL_CHECK(count("SELECT count(*) FROM outbox WHERE kafka_key = $1", NULL) == 7);

    tl_step("collisions on every attempt but the last: still created");
    struct store_create late;
    item(&late, "k-late", &req[1]);
    codes_script(4, (const char *const[]){a, a, a, a});
    TL_CHECK_MSG(create(pg, &late, 1, &err) == TP_OK, "four collisions: %s", err.msg);
    TL_CHECK(codes.calls == 5 && late.created);
    check_stored(&late);

    tl_step("a code that always collides: refused as a duplicate, nothing half-written");
    struct store_create doomed[2];
    item(&doomed[0], "k-d0", &req[2]);
    item(&doomed[1], "k-d1", &req[3]);
    const char *always[CODES_SCRIPT_MAX];
    for (int i = 0; i < CODES_SCRIPT_MAX; i++) {
        always[i] = a;
    }
    codes_script(CODES_SCRIPT_MAX, always);
    enum tp_status st = create(pg, doomed, 2, &err);
    TL_CHECK_MSG(st == TP_DUPLICATE, "always colliding gave %s (%s)", error_status_name(st),
                 err.msg);
    TL_CHECK(count("SELECT count(*) FROM topup_orders WHERE account_id = $1", NULL) == 8);
    TL_CHECK(count("SELECT count(*) FROM idempotency_keys WHERE account_id = $1", NULL) == 8);
    TL_CHECK(count("SELECT count(*) FROM outbox WHERE kafka_key = $1", NULL) == 8);
    TL_CHECK(count("SELECT count(*) FROM idempotency_keys WHERE account_id = $1 AND key = $2",
                   "k-d0") == 0);

    for (int i = 0; i < 6; i++) {
        validate_order_deinit(&req[i]);
    }
    validate_order_deinit(&other);
    pg_conn_free(pg);
    tl_step("ok");
    return 0;
}
