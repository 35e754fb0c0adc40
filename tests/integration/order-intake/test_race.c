/*
 * Races: a user's cancel against the bank match (the reconciliation worker's conditional claim,
 * run from a second connection) on the same order, many times; exactly one wins each time. And a
 * burst of concurrent creations (group commit): every one answered, no order lost or merged.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PAIRS  12 /* races run at once */
#define ROUNDS 20 /* rounds of PAIRS races */
#define BURST  96 /* concurrent creations */

static struct it_service svc;

/* The reconciliation worker's claim, as it runs it. */
static const char claim_sql[] =
    "UPDATE topup_orders SET status = 'processing', matched_at = now(), updated_at = now()"
    " WHERE code = $1 AND status = 'pending'";

struct race {
    const char *token;
    char code[REFCODE_STR_LEN];
    PGconn *pg;
    pthread_barrier_t *go;
    int cancel_status;
    char cancel_seen[16];
    int claimed;
};

static void *cancel_side(void *p)
{
    struct race *r = p;
    char path[128];
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", r->code);
    pthread_barrier_wait(r->go);
    struct it_resp resp;
    it_call(&svc, "POST", path, r->token, NULL, NULL, NULL, NULL, &resp);
    r->cancel_status = resp.status;
    json_t *st = json_object_get(resp.json, "status");
    if (!json_is_string(st)) {
        st = json_object_get(json_object_get(resp.json, "error"), "status");
    }
    snprintf(r->cancel_seen, sizeof(r->cancel_seen), "%s",
             json_is_string(st) ? json_string_value(st) : "?");
    it_resp_free(&resp);
    return NULL;
}

static void *claim_side(void *p)
{
    struct race *r = p;
    const char *params[] = {r->code};
    pthread_barrier_wait(r->go);
    PGresult *res = PQexecParams(r->pg, claim_sql, 1, NULL, params, NULL, NULL, 0);
    CHECK_MSG(PQresultStatus(res) == PGRES_COMMAND_OK, "claim: %s", PQerrorMessage(r->pg));
    r->claimed = atoi(PQcmdTuples(res));
    PQclear(res);
    return NULL;
}

struct burst_arg {
    const char *token;
    int index;
    int status;
    char code[REFCODE_STR_LEN];
};

static void *burst_thread(void *p)
{
    struct burst_arg *a = p;
    char key[IT_ID_MAX], body[512], amount[32];
    snprintf(key, sizeof(key), "burst-%d", a->index);
    snprintf(amount, sizeof(amount), "%d.%02d", 50 + a->index, a->index % 100);
    it_body(body, sizeof(body), amount, "赵六", "农业银行", NULL);
    struct it_resp r;
    it_create(&svc, a->token, key, body, &r);
    a->status = r.status;
    snprintf(a->code, sizeof(a->code), "%s", it_str(&r, "code"));
    it_resp_free(&r);
    return NULL;
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "order_intake_race");
    /* BURST connections at once from one address: above the default per-address limit. */
    static const char *const env[] = {"INTAKE_PER_IP_CONNECTIONS_MAX=1024", NULL};
    it_start(&svc, env);
    it_wait_ready(&svc);
    char acct[IT_ID_MAX], tok[TOKEN_STR_MAX];
    it_id(acct, "acct-race");
    it_token(tok, acct, 3600);

    PGconn *bank[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        bank[i] = it_pg_connect();
    }
    it_step("cancel versus bank match: %d races", PAIRS * ROUNDS);
    int cancels_won = 0, claims_won = 0;
    for (int round = 0; round < ROUNDS; round++) {
        struct race r[PAIRS];
        pthread_t tc[PAIRS], tm[PAIRS];
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2 * PAIRS);
        for (int i = 0; i < PAIRS; i++) {
            r[i] = (struct race){.token = tok, .pg = bank[i], .go = &go};
            it_create_ok(&svc, tok, "150", r[i].code);
        }
        for (int i = 0; i < PAIRS; i++) {
            /* Alternate who starts first so that neither side always has the head start. */
            if ((round + i) % 2) {
                pthread_create(&tc[i], NULL, cancel_side, &r[i]);
                pthread_create(&tm[i], NULL, claim_side, &r[i]);
            } else {
                pthread_create(&tm[i], NULL, claim_side, &r[i]);
                pthread_create(&tc[i], NULL, cancel_side, &r[i]);
            }
        }
        for (int i = 0; i < PAIRS; i++) {
            pthread_join(tc[i], NULL);
            pthread_join(tm[i], NULL);
            bool cancel_won = r[i].cancel_status == 200;
            bool claim_won = r[i].claimed == 1;
            CHECK_MSG(cancel_won != claim_won,
                      "order %s: cancel %d (%s), claim %d rows: want exactly one winner", r[i].code,
                      r[i].cancel_status, r[i].cancel_seen, r[i].claimed);
            const char *p[] = {r[i].code};
            PGresult *q = it_sql("SELECT status FROM topup_orders WHERE code = $1", 1, p);
            const char *final = PQgetvalue(q, 0, 0);
            int64_t cancel_events =
                it_i64("SELECT count(*) FROM outbox WHERE topic = 'topup.cancelled' AND kafka_key ="
                       " (SELECT account_id FROM topup_orders WHERE code = $1)"
                       " AND position(convert_to($1, 'UTF8') IN payload) > 0",
                       1, p);
            if (cancel_won) {
                cancels_won++;
                CHECK(strcmp(final, "cancelled") == 0 &&
                      strcmp(r[i].cancel_seen, "cancelled") == 0);
                CHECK_MSG(cancel_events == 1, "%s: %lld cancel events", r[i].code,
                          (long long)cancel_events);
            } else {
                claims_won++;
                CHECK(strcmp(final, "processing") == 0);
                CHECK_MSG(r[i].cancel_status == 409 && strcmp(r[i].cancel_seen, "processing") == 0,
                          "%s: losing cancel got %d (%s)", r[i].code, r[i].cancel_status,
                          r[i].cancel_seen);
                CHECK(cancel_events == 0);
            }
            PQclear(q);
        }
        pthread_barrier_destroy(&go);
    }
    it_step("cancel won %d, bank match won %d; exactly one winner every time", cancels_won,
            claims_won);
    for (int i = 0; i < PAIRS; i++) {
        PQfinish(bank[i]);
    }

    it_step("a burst of %d concurrent creations", BURST);
    char acct2[IT_ID_MAX], tok2[TOKEN_STR_MAX];
    it_id(acct2, "acct-burst");
    it_token(tok2, acct2, 3600);
    pthread_t t[BURST];
    struct burst_arg a[BURST];
    for (int i = 0; i < BURST; i++) {
        a[i] = (struct burst_arg){.token = tok2, .index = i};
        pthread_create(&t[i], NULL, burst_thread, &a[i]);
    }
    for (int i = 0; i < BURST; i++) {
        pthread_join(t[i], NULL);
        CHECK_MSG(a[i].status == 201, "burst request %d: %d", i, a[i].status);
        for (int j = 0; j < i; j++) {
            CHECK(strcmp(a[i].code, a[j].code) != 0);
        }
        /* Each order carries its own request's amount: no mix-up inside a group commit. */
        char want[32];
        snprintf(want, sizeof(want), "%d", (50 + i) * 100 + i % 100);
        const char *p[] = {a[i].code};
        PGresult *q = it_sql("SELECT amount_fen FROM topup_orders WHERE code = $1", 1, p);
        CHECK(strcmp(PQgetvalue(q, 0, 0), want) == 0);
        PQclear(q);
    }
    const char *pa[] = {acct2};
    CHECK(it_i64("SELECT count(*) FROM topup_orders WHERE account_id = $1", 1, pa) == BURST);
    CHECK(it_i64("SELECT count(*) FROM outbox WHERE kafka_key = $1 AND topic = 'topup.requested'",
                 1, pa) == BURST);
    CHECK(it_stop(&svc, SIGTERM) == 0);
    it_step("ok");
    return 0;
}
