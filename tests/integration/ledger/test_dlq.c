/*
 * Ledger dead letters: every kind of invalid event lands on its topic's .dlq with the reason while
 * the valid events around it are applied; a refused event stays refused when it comes again.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "topup/event.h"
#include "topup/ids.h"
#include "topup/v1/events.pb-c.h"

#define CASES_MAX 32

struct dlq_case {
    const char *topic;
    char key[H_ID_MAX];
    const char *reason; /* part of the expected dlq.reason */
    uint8_t buf[512];
    size_t len;
};

static struct dlq_case cases[CASES_MAX];
static int ncases;
static char prefix[H_ID_MAX];

static Topup__V1__Envelope env(char *eid, const char *account)
{
    Topup__V1__Envelope e;
    topup__v1__envelope__init(&e);
    h_event_id(eid);
    e.event_id = eid;
    e.occurred_at_ms = event_now_ms();
    e.producer = "ledger-test";
    e.schema_version = 1;
    e.account_id = (char *)account;
    return e;
}

static struct dlq_case *add(const char *topic, const char *reason)
{
    CHECK(ncases < CASES_MAX);
    struct dlq_case *c = &cases[ncases];
    c->topic = topic;
    c->reason = reason;
    snprintf(c->key, sizeof(c->key), "%.80s-c%d", prefix, ncases);
    ncases++;
    return c;
}

/* A usage event for c's key; mutate(e, m) spoils one thing. */
typedef void usage_spoil_fn(Topup__V1__Envelope *e, Topup__V1__UsageRecorded *m);

static void usage_case(const char *reason, usage_spoil_fn *spoil)
{
    struct dlq_case *c = add("usage.recorded", reason);
    char eid[UUID_STR_LEN];
    Topup__V1__Envelope e = env(eid, c->key);
    Topup__V1__UsageRecorded m;
    topup__v1__usage_recorded__init(&m);
    m.envelope = &e;
    m.request_id = "req-bad";
    m.amount_fen = -10;
    spoil(&e, &m);
    c->len = topup__v1__usage_recorded__pack(&m, c->buf);
}

static void spoil_event_id(Topup__V1__Envelope *e, Topup__V1__UsageRecorded *m)
{
    (void)m;
    e->event_id = "not-a-uuid";
}
static void spoil_schema(Topup__V1__Envelope *e, Topup__V1__UsageRecorded *m)
{
    (void)m;
    e->schema_version = 2;
}
static void spoil_account(Topup__V1__Envelope *e, Topup__V1__UsageRecorded *m)
{
    (void)m;
    e->account_id = "";
}
static void spoil_key(Topup__V1__Envelope *e, Topup__V1__UsageRecorded *m)
{
    (void)m;
    e->account_id = "someone-else";
}
static void spoil_zero(Topup__V1__Envelope *e, Topup__V1__UsageRecorded *m)
{
    (void)e;
    m->amount_fen = 0;
}
static void spoil_positive(Topup__V1__Envelope *e, Topup__V1__UsageRecorded *m)
{
    (void)e;
    m->amount_fen = 5;
}
static void spoil_request_id(Topup__V1__Envelope *e, Topup__V1__UsageRecorded *m)
{
    (void)e;
    m->request_id = "";
}
static void spoil_time(Topup__V1__Envelope *e, Topup__V1__UsageRecorded *m)
{
    (void)m;
    e->occurred_at_ms = INT64_MAX;
}
static void spoil_reference(Topup__V1__Envelope *e, Topup__V1__UsageRecorded *m)
{
    (void)e;
    m->request_id = "req with spaces";
}

static void refund_case(const char *reason, int64_t amount, int kind)
{
    struct dlq_case *c = add("refund.issued", reason);
    char eid[UUID_STR_LEN];
    Topup__V1__Envelope e = env(eid, c->key);
    Topup__V1__RefundIssued m;
    topup__v1__refund_issued__init(&m);
    m.envelope = &e;
    m.refund_id = "rf-bad";
    m.amount_fen = amount;
    m.kind = (Topup__V1__RefundKind)kind;
    c->len = topup__v1__refund_issued__pack(&m, c->buf);
}

static void matched_case(const char *reason, const char *code, int64_t credited)
{
    struct dlq_case *c = add("payment.matched", reason);
    char eid[UUID_STR_LEN];
    Topup__V1__Envelope e = env(eid, c->key);
    Topup__V1__PaymentMatched m;
    topup__v1__payment_matched__init(&m);
    m.envelope = &e;
    m.order_code = (char *)code;
    m.credited_fen = credited;
    m.order_amount_fen = credited;
    m.receiving_account = H_RECEIVING_ACCOUNT;
    m.bank_txn_id = eid;
    c->len = topup__v1__payment_matched__pack(&m, c->buf);
}

static void raw_case(const char *topic, const char *reason, const void *bytes, size_t len)
{
    struct dlq_case *c = add(topic, reason);
    memcpy(c->buf, bytes, len);
    c->len = len;
}

/* Every case of `topic` has a dead letter with its key, its reason and its original topic. */
static void check_dlq(const char *topic)
{
    int n = 0;
    for (int i = 0; i < ncases; i++) {
        if (strcmp(cases[i].topic, topic) != 0) {
            continue;
        }
        CHECK_MSG(h_dlq_count(topic, cases[i].key, cases[i].reason, 1) == 1,
                  "case %d (%s, want \"%s\") not dead-lettered", i, topic, cases[i].reason);
        n++;
    }
    h_step("%s.dlq: %d dead letters, each with its reason", topic, n);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "ledger_dlq");
    char group[H_ID_MAX], V[H_ID_MAX], X[H_ID_MAX];
    h_id(prefix, "ld");
    h_id(group, "ledger-dlq");
    h_group_at_end(group); /* see only what is produced from now on */
    h_mark_topics();
    snprintf(V, sizeof(V), "%.80s-v", prefix);
    snprintf(X, sizeof(X), "%.80s-x", prefix);

    static const uint8_t garbage[] = {0x0a, 0x10, 0x01};
    raw_case("usage.recorded", "undecodable UsageRecorded", garbage, sizeof(garbage));
    raw_case("refund.issued", "envelope missing", "", 0);
    raw_case("payment.matched", "undecodable PaymentMatched", garbage, sizeof(garbage));
    usage_case("event_id", spoil_event_id);
    usage_case("schema_version", spoil_schema);
    usage_case("account_id", spoil_account);
    usage_case("kafka key", spoil_key);
    usage_case("not negative", spoil_zero);
    usage_case("not negative", spoil_positive);
    usage_case("request_id missing", spoil_request_id);
    usage_case("out of range", spoil_time);
    usage_case("printable", spoil_reference);
    refund_case("is 0", 0, 1);
    refund_case("not positive", -5, 1);
    refund_case("not negative", 5, 2);
    refund_case("kind", 5, 0);
    matched_case("not positive", "TUANYORDER", 0);
    matched_case("order_code missing", "", 100);
    matched_case("not found", "TUNOSUCHORDER", 100); /* valid, refused by the ledger's state */

    h_step("%d invalid events interleaved with valid ones of account %s", ncases, V);
    int v_sent = 0;
    for (int i = 0; i < ncases; i++) {
        char eid[UUID_STR_LEN], req[32];
        h_event_id(eid);
        snprintf(req, sizeof(req), "req-v%d", i);
        h_send_usage(eid, V, req, -1);
        v_sent++;
        h_send_raw(cases[i].topic, cases[i].key, cases[i].buf, cases[i].len);
    }
    char ex_max[UUID_STR_LEN], ex_over[UUID_STR_LEN], code_over[REFCODE_STR_LEN];
    h_event_id(ex_max);
    h_event_id(ex_over);
    /*
     * An account at the top of the range, planted: under the ceilings no event can bring it
     * there (LEDGER_MAX_*_FEN), but the overflow check must hold whatever the balance.
     */
    h_exec("INSERT INTO accounts (account_id, balance_fen, balance_version) "
           "VALUES ($1, 9223372036854775807, 1)",
           1, (const char *const[]){X});
    h_exec("INSERT INTO account_flows (event_id, account_id, flow_type, amount_fen, "
           "balance_after_fen, reference, occurred_at) VALUES ($2, $1, 'refund', "
           "9223372036854775807, 9223372036854775807, 'rf-planted', now())",
           2, (const char *const[]){X, ex_max});
    ids_refcode_new(code_over);
    h_order(code_over, X, 1, "processing");
    /*
     * The safety net: a value no validation foresaw that PostgreSQL refuses (planted here as a
     * CHECK constraint) fails the whole batch; the ledger then applies it event by event and
     * dead-letters only the refused one.
     */
    h_exec("ALTER TABLE account_flows ADD CONSTRAINT test_poison CHECK (reference <> 'poison')", 0,
           NULL);
    char P[H_ID_MAX], ex_poison[UUID_STR_LEN];
    snprintf(P, sizeof(P), "%.80s-p", prefix);
    h_event_id(ex_poison);
    h_send_usage(ex_poison, P, "poison", -1);
    for (int i = 0; i < 3; i++) {
        char eid[UUID_STR_LEN], req[32];
        h_event_id(eid);
        snprintf(req, sizeof(req), "req-p%d", i);
        h_send_usage(eid, V, req, -1);
        v_sent++;
    }
    struct h_sent over = h_send_matched(ex_over, X, code_over, 1, 1); /* would overflow */

    struct h_proc led;
    h_ledger_start(&led, "ledger", group, NULL);
    h_wait_i64("V's flows", "SELECT count(*) FROM account_flows WHERE account_id = $1", 1,
               (const char *const[]){V}, v_sent);
    CHECK(h_balance(V) == -v_sent);
    h_wait_i64("overflow refused", "SELECT count(*) FROM ledger_rejections WHERE event_id = $1", 1,
               (const char *const[]){ex_over}, 1);
    CHECK(h_balance(X) == INT64_MAX);
    {
        char off[24];
        snprintf(off, sizeof(off), "%lld", (long long)over.offset);
        CHECK(h_i64("SELECT count(*) FROM ledger_rejections WHERE event_id = $1 AND "
                    "source_topic = 'payment.matched' AND source_offset = $2 AND strpos(reason, "
                    "'overflow') > 0",
                    2, (const char *const[]){ex_over, off}) == 1);
    }

    h_step("the refused event again, now that it would fit: still refused, never applied");
    char ex_use[UUID_STR_LEN], ex_sent[UUID_STR_LEN];
    h_event_id(ex_use);
    h_send_usage(ex_use, X, "req-x", -1);
    h_wait_i64("X usage", "SELECT count(*) FROM account_flows WHERE event_id = $1", 1,
               (const char *const[]){ex_use}, 1);
    h_send_matched(ex_over, X, code_over, 1, 1);
    h_event_id(ex_sent);
    h_send_refund(ex_sent, X, "rf-sentinel", -1, 2);
    h_wait_i64("X sentinel", "SELECT count(*) FROM account_flows WHERE event_id = $1", 1,
               (const char *const[]){ex_sent}, 1);
    CHECK(h_balance(X) == INT64_MAX - 2);
    CHECK(h_i64("SELECT count(*) FROM account_flows WHERE event_id = $1", 1,
                (const char *const[]){ex_over}) == 0);
    h_check_chain(X);
    h_check_chain(V);

    h_step("nothing of the invalid events reached the ledger tables");
    CHECK(h_i64("SELECT count(*) FROM account_flows WHERE account_id LIKE $1 || '-c%'", 1,
                (const char *const[]){prefix}) == 0);
    /* Only the valid-but-refused recharge reached the transaction (its account row, balance 0). */
    CHECK(h_i64("SELECT count(*) FROM accounts WHERE account_id LIKE $1 || '-c%'", 1,
                (const char *const[]){prefix}) == 1);
    CHECK(h_i64("SELECT count(*) FROM accounts WHERE account_id LIKE $1 || '-c%' AND "
                "balance_fen <> 0",
                1, (const char *const[]){prefix}) == 0);
    CHECK(h_i64("SELECT count(*) FROM ledger_rejections WHERE account_id LIKE $1 || '%'", 1,
                (const char *const[]){prefix}) == 2); /* unknown order, overflow */

    check_dlq("usage.recorded");
    check_dlq("payment.matched");
    check_dlq("refund.issued");
    CHECK(h_dlq_count("usage.recorded", P, "refused by PostgreSQL", 1) == 1);
    CHECK(h_i64("SELECT count(*) FROM account_flows WHERE event_id = $1", 1,
                (const char *const[]){ex_poison}) == 0);
    /* The overflow was dead-lettered the first time and again when it came again. */
    CHECK(h_dlq_count("payment.matched", X, "overflow", 2) == 2);
    CHECK(h_log_sum(&led, "ledger batch committed", "invalid") >= ncases - 1);
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);
    h_step("ok");
    return 0;
}
