/*
 * order-intake's published events, consumed from the dev broker and decoded: TopUpRequested,
 * TopUpCancelled, TopUpExpired (expiry sweep with two instances racing), exactly once each, in
 * order per key and topic; the Redis counters; SIGTERM with requests in flight.
 */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define SETTLE_MS 3000 /* extra consuming after everything arrived, to catch duplicates */

static int count_events(struct it_consumer *c, enum it_event_kind kind, const char *code,
                        int *first_index)
{
    int n = 0;
    const struct it_event *ev = it_events(c, &n);
    int k = 0;
    *first_index = -1;
    for (int i = 0; i < n; i++) {
        if (ev[i].kind == kind && strcmp(ev[i].code, code) == 0) {
            if (k++ == 0) {
                *first_index = i;
            }
        }
    }
    return k;
}

static const struct it_event *find_event(struct it_consumer *c, enum it_event_kind kind,
                                         const char *code)
{
    int n = 0;
    const struct it_event *ev = it_events(c, &n);
    for (int i = 0; i < n; i++) {
        if (ev[i].kind == kind && strcmp(ev[i].code, code) == 0) {
            return &ev[i];
        }
    }
    return NULL;
}

static void cancel(const struct it_service *s, const char *token, const char *code)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", code);
    struct it_resp r;
    it_call(s, "POST", path, token, NULL, NULL, NULL, NULL, &r);
    CHECK_MSG(r.status == 200, "cancel %s: %d %s", code, r.status, r.raw.body);
    it_resp_free(&r);
}

static long long redis_get(redisContext *rc, const char *key)
{
    redisReply *r = redisCommand(rc, "GET %s", key);
    long long v = -1;
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        v = atoll(r->str);
    }
    freeReplyObject(r);
    return v;
}

static void wait_counter(redisContext *rc, const char *key, long long at_least)
{
    int64_t deadline = it_now_ms() + IT_WAIT_MS;
    long long v;
    while ((v = redis_get(rc, key)) < at_least) {
        CHECK_MSG(it_now_ms() < deadline, "counter %s is %lld, want at least %lld", key, v,
                  at_least);
        it_sleep_ms(100);
    }
}

struct inflight {
    struct hc_conn *conn;
    const char *token;
    char key[IT_ID_MAX];
    int status; /* 0: no response */
    pthread_barrier_t *go;
};

static void *inflight_thread(void *p)
{
    struct inflight *f = p;
    char body[512], auth[TOKEN_STR_MAX + 32], idem[IT_ID_MAX + 32];
    it_body(body, sizeof(body), "66.00", "王五", "建设银行", NULL);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", f->token);
    snprintf(idem, sizeof(idem), "Idempotency-Key: %s", f->key);
    const char *h[] = {auth, idem, "Content-Type: application/json", NULL};
    pthread_barrier_wait(f->go);
    struct hc_response r;
    if (hc_request(f->conn, "POST", "/v1/topup-orders", h, body, strlen(body), &r) == 0) {
        f->status = r.status;
        hc_response_free(&r);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "order_intake_events");
    it_step("consumer joins (a fresh group reads from the beginning)");
    struct it_consumer *cons = it_consumer_new(NULL);

    struct it_service a, b, c;
    it_start(&a, NULL);
    /* Two more instances with a 1 s window and a fast sweep race to expire the same orders. */
    const char *fast[] = {"INTAKE_ORDER_TTL_S=1", "INTAKE_EXPIRY_SWEEP_MS=100",
                          "INTAKE_EXPIRY_BATCH_MAX=7", NULL};
    it_start(&b, fast);
    it_start(&c, fast);
    it_wait_ready(&a);
    it_wait_ready(&b);
    it_wait_ready(&c);

    char x[IT_ID_MAX], y[IT_ID_MAX], z[IT_ID_MAX], w[IT_ID_MAX];
    it_id(x, "acct-ev-x");
    it_id(y, "acct-ev-y");
    it_id(z, "acct-ev-z");
    it_id(w, "acct-ev-w");
    char tx[TOKEN_STR_MAX], ty[TOKEN_STR_MAX], tz[TOKEN_STR_MAX], tw[TOKEN_STR_MAX];
    it_token(tx, x, 3600);
    it_token(ty, y, 3600);
    it_token(tz, z, 3600);
    it_token(tw, w, 3600);

    it_step("orders, cancels and expiries");
    enum { NX = 20, NY = 5, NZ = 30, NC = 3 };
    char cx[NX][REFCODE_STR_LEN], cy[NY][REFCODE_STR_LEN], cz[NZ][REFCODE_STR_LEN];
    for (int i = 0; i < NX; i++) {
        it_create_ok(&a, tx, "100.50", cx[i]);
    }
    for (int i = 0; i < NY; i++) {
        it_create_ok(&a, ty, "50", cy[i]);
    }
    for (int i = 0; i < NC; i++) {
        cancel(&a, tx, cx[i]);
    }
    for (int i = 0; i < NZ; i++) {
        it_create_ok(i % 2 ? &b : &c, tz, "1000", cz[i]);
    }
    /* Past their window but not pending: the sweep must leave them alone. */
    const char *q[] = {cx[0], cx[NC]};
    it_exec("UPDATE topup_orders SET status = 'processing' WHERE code = $1", 1, q + 1);
    it_exec("UPDATE topup_orders SET expires_at = now() - interval '1 hour'"
            " WHERE code = $1 OR code = $2",
            2, q);
    const char *pz[] = {z};
    it_wait_i64("orders of z expired",
                "SELECT count(*) FROM topup_orders WHERE account_id = $1 AND status = 'expired'", 1,
                pz, NZ);
    CHECK(it_i64("SELECT count(*) FROM outbox WHERE topic = 'topup.expired' AND kafka_key = $1", 1,
                 pz) == NZ);
    PGresult *st = it_sql("SELECT status FROM topup_orders WHERE code = $1 OR code = $2"
                          " ORDER BY code = $1 DESC",
                          2, q);
    CHECK(strcmp(PQgetvalue(st, 0, 0), "cancelled") == 0);
    CHECK(strcmp(PQgetvalue(st, 1, 0), "processing") == 0);
    PQclear(st);
    struct it_resp r;
    char path[128];
    snprintf(path, sizeof(path), "/v1/topup-orders/%s", cz[0]);
    it_call(&a, "GET", path, tz, NULL, NULL, NULL, NULL, &r);
    CHECK(strcmp(it_str(&r, "status"), "expired") == 0);
    CHECK(strlen(it_str(&r, "expired_at")) == 24);
    it_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", cz[1]);
    it_call(&a, "POST", path, tz, NULL, NULL, NULL, NULL, &r);
    CHECK(r.status == 409);
    it_resp_free(&r);

    it_step("a rejected and a replayed request for the counters");
    char body[512], key[IT_ID_MAX];
    it_body(body, sizeof(body), "10.00", "a", "b", NULL);
    it_create(&a, tx, it_id(key, "key"), body, &r);
    CHECK(r.status == 422);
    it_resp_free(&r);
    it_body(body, sizeof(body), "70.00", "a", "b", NULL);
    it_create(&a, tx, key, body, &r);
    CHECK(r.status == 201);
    char extra_code[REFCODE_STR_LEN];
    snprintf(extra_code, sizeof(extra_code), "%s", it_str(&r, "code"));
    it_resp_free(&r);
    it_create(&a, tx, key, body, &r);
    CHECK(r.status == 200);
    it_resp_free(&r);

    it_step("events: every one decoded, exactly once, in order per key");
    int want = NX + 1 + NC + NY + 2 * NZ;
    char prefix[IT_ID_MAX];
    snprintf(prefix, sizeof(prefix), "acct-ev-");
    int got = it_collect(cons, prefix, want, IT_WAIT_MS);
    CHECK_MSG(got >= want, "received %d of %d events", got, want);
    it_collect(cons, prefix, want + 1000, SETTLE_MS);
    int n = 0;
    const struct it_event *ev = it_events(cons, &n);
    CHECK_MSG(n == want, "%d events for this run, want exactly %d (duplicates?)", n, want);
    for (int i = 0; i < n; i++) {
        CHECK(strcmp(ev[i].key, ev[i].account) == 0);
        CHECK(strcmp(ev[i].producer, "order-intake") == 0);
        CHECK(ev[i].schema_version == 1);
        CHECK(ids_uuid_valid(ev[i].event_id));
        for (int j = 0; j < i; j++) {
            CHECK_MSG(strcmp(ev[i].event_id, ev[j].event_id) != 0, "event id repeated");
        }
    }
    int prev_req = -1;
    for (int i = 0; i < NX; i++) {
        int first_req = -1, first_can = -1;
        CHECK(count_events(cons, IT_REQUESTED, cx[i], &first_req) == 1);
        const struct it_event *e = find_event(cons, IT_REQUESTED, cx[i]);
        CHECK(strcmp(e->account, x) == 0 && e->amount_fen == 10050);
        CHECK(strcmp(e->remitter_name, "张三") == 0);
        CHECK(e->expires_ms - e->created_ms == 72LL * 3600 * 1000);
        const char *p[] = {cx[i]};
        CHECK(e->created_ms == it_i64("SELECT floor(extract(epoch FROM created_at) * 1000)::bigint"
                                      " FROM topup_orders WHERE code = $1",
                                      1, p));
        int cancels = count_events(cons, IT_CANCELLED, cx[i], &first_can);
        CHECK(cancels == (i < NC ? 1 : 0));
        if (i < NC) {
            /* Kafka orders a key within one topic only; the outbox orders across topics. */
            CHECK(it_i64("SELECT count(*) FROM outbox r, outbox c WHERE r.topic = 'topup.requested'"
                         " AND c.topic = 'topup.cancelled' AND r.id < c.id"
                         " AND position(convert_to($1, 'UTF8') IN r.payload) > 0"
                         " AND position(convert_to($1, 'UTF8') IN c.payload) > 0",
                         1, p) == 1);
            CHECK(find_event(cons, IT_CANCELLED, cx[i])->at_ms >= e->created_ms);
        }
        /* Within topup.requested, x's orders arrive in the order they were created. */
        CHECK_MSG(i == 0 || first_req > prev_req, "requests of %s out of order", x);
        prev_req = first_req;
        CHECK(count_events(cons, IT_EXPIRED, cx[i], &first_can) == 0);
    }
    for (int i = 0; i < NY; i++) {
        int idx;
        CHECK(count_events(cons, IT_REQUESTED, cy[i], &idx) == 1);
        CHECK(strcmp(find_event(cons, IT_REQUESTED, cy[i])->key, y) == 0);
    }
    for (int i = 0; i < NZ; i++) {
        int req = -1, exp = -1;
        CHECK(count_events(cons, IT_REQUESTED, cz[i], &req) == 1);
        CHECK(count_events(cons, IT_EXPIRED, cz[i], &exp) == 1);
        const struct it_event *e = find_event(cons, IT_REQUESTED, cz[i]);
        CHECK(e->expires_ms - e->created_ms == 1000);
        CHECK(find_event(cons, IT_EXPIRED, cz[i])->at_ms >= e->expires_ms);
    }
    int idx;
    CHECK(count_events(cons, IT_REQUESTED, extra_code, &idx) == 1);

    it_step("Redis counters");
    const char *rh = getenv("REDIS_HOST");
    const char *rp = getenv("REDIS_PORT");
    redisContext *rc = redisConnect(rh ? rh : "127.0.0.1", rp ? atoi(rp) : 56379);
    CHECK_MSG(rc != NULL && rc->err == 0, "redis connect");
    wait_counter(rc, "topup:ctr:order-intake:orders.created", NX + NY + NZ + 1);
    wait_counter(rc, "topup:ctr:order-intake:orders.cancelled", NC);
    wait_counter(rc, "topup:ctr:order-intake:orders.expired", NZ);
    wait_counter(rc, "topup:ctr:order-intake:orders.replayed", 1);
    wait_counter(rc, "topup:ctr:order-intake:orders.rejected.amount_below_minimum", 1);
    wait_counter(rc, "topup:ctr:order-intake:requests.rejected.order_not_pending", 1);
    int64_t deadline = it_now_ms() + IT_WAIT_MS;
    while (redis_get(rc, "topup:gauge:order-intake:outbox.backlog") < 0) {
        CHECK_MSG(it_now_ms() < deadline, "no outbox backlog gauge");
        it_sleep_ms(100);
    }
    redisFree(rc);

    it_step("SIGTERM with requests in flight: every request answered, exit 0");
    CHECK(it_stop(&b, SIGTERM) == 0);
    CHECK(it_stop(&c, SIGTERM) == 0);
    enum { NF = 24 };
    struct inflight f[NF];
    pthread_t t[NF];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NF + 1);
    for (int i = 0; i < NF; i++) {
        f[i] = (struct inflight){.conn = hc_connect(NULL, a.port), .token = tw, .go = &go};
        CHECK(f[i].conn != NULL);
        it_id(f[i].key, "inflight");
        pthread_create(&t[i], NULL, inflight_thread, &f[i]);
    }
    pthread_barrier_wait(&go);
    it_sleep_ms(2);
    int rc_a = it_stop(&a, SIGTERM);
    int created = 0;
    for (int i = 0; i < NF; i++) {
        pthread_join(t[i], NULL);
        hc_close(f[i].conn);
        CHECK_MSG(f[i].status == 201 || f[i].status == 503,
                  "in-flight request %d got %d (0: no answer)", i, f[i].status);
        created += f[i].status == 201;
    }
    CHECK_MSG(rc_a == 0, "exit status %d after SIGTERM", rc_a);
    const char *pw[] = {w};
    CHECK(it_i64("SELECT count(*) FROM topup_orders WHERE account_id = $1", 1, pw) == created);
    it_step("%d of %d in-flight creations were accepted before the stop", created, NF);

    it_step("the relay published every event of an accepted order before the exit");
    CHECK(it_i64("SELECT count(*) FROM outbox WHERE kafka_key = $1 AND published_at IS NULL", 1,
                 pw) == 0);
    char wprefix[IT_ID_MAX + 2];
    snprintf(wprefix, sizeof(wprefix), "%s", w);
    CHECK(it_collect(cons, wprefix, created, IT_WAIT_MS) == created);
    it_consumer_free(cons);
    it_step("ok");
    return 0;
}
