/* Transactional outbox against the real PostgreSQL and dev broker: relay, failover, outages. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "it_kafka.h"
#include "testlib.h"
#include "topup/log.h"
#include "topup/outbox.h"
#include "topup/pg.h"

#define KEYS          6
#define ROUNDS_MAX    12
#define EVENTS_MAX    (KEYS * ROUNDS_MAX * 2)
#define POLL_MS       200
#define PG_CONNECT_MS 10000

/* What one scenario wrote: per key, the committed payloads in commit order. */
struct expect {
    char source[48];
    char topic[96];
    char keys[KEYS][IT_KEY_MAX];
    unsigned char payload[KEYS][ROUNDS_MAX * 2][IT_PAYLOAD_MAX];
    size_t len[KEYS][ROUNDS_MAX * 2];
    int count[KEYS];
    /* Payloads of rolled-back transactions: must never reach Kafka. */
    unsigned char rolled[EVENTS_MAX][IT_PAYLOAD_MAX];
    size_t rolled_len[EVENTS_MAX];
    int nrolled;
    int total;
    int seq;
};

static struct it_msg consumed[EVENTS_MAX * 3];

static struct pg_conn *connect_pg(void)
{
    struct tp_error err = {0};
    struct pg_conn *c = pg_conn_new(it_env("PG_CONNINFO"), PG_CONNECT_MS, &err);
    if (c == NULL) {
        fail_msg("connect: %s", err.msg);
    }
    return c;
}

static int64_t unpublished(struct pg_conn *c, const char *source)
{
    const char *const params[] = {source};
    PGresult *r = NULL;
    struct tp_error err = {0};
    if (pg_exec(c, "SELECT count(*) FROM outbox WHERE source = $1 AND published_at IS NULL", 1,
                params, &r, &err) != TP_OK) {
        fail_msg("count: %s", err.msg);
    }
    int64_t n = pg_get_i64(r, 0, 0);
    PQclear(r);
    return n;
}

static int64_t rows_of(struct pg_conn *c, const char *source)
{
    const char *const params[] = {source};
    PGresult *r = NULL;
    struct tp_error err = {0};
    if (pg_exec(c, "SELECT count(*) FROM outbox WHERE source = $1", 1, params, &r, &err) != TP_OK) {
        fail_msg("count: %s", err.msg);
    }
    int64_t n = pg_get_i64(r, 0, 0);
    PQclear(r);
    return n;
}

static void expect_init(struct expect *e, const char *name, int partitions)
{
    memset(e, 0, sizeof(*e));
    char tmp[96];
    it_unique(tmp, sizeof(tmp), name);
    snprintf(e->source, sizeof(e->source), "%.47s", tmp);
    it_unique(e->topic, sizeof(e->topic), "it.outbox");
    for (int k = 0; k < KEYS; k++) {
        snprintf(e->keys[k], IT_KEY_MAX, "acct-%d-%s", k, e->source);
    }
    it_topic_create(e->topic, partitions);
}

/* A payload with a NUL and a 0xff byte in it: the bytea must travel as binary, intact. */
static size_t make_payload(unsigned char *buf, const char *key, int seq, const char *tag)
{
    buf[0] = 0x00;
    buf[1] = 0xff;
    int n = snprintf((char *)buf + 2, IT_PAYLOAD_MAX - 2, "%s|%d|%s", key, seq, tag);
    return (size_t)n + 2;
}

/*
 * One transaction writing one event for each of keys k and k+1; committed unless rollback, in
 * which case its payloads go to the must-never-appear list.
 */
static void write_tx(struct pg_conn *c, struct expect *e, int k, bool rollback)
{
    struct tp_error err = {0};
    assert_int_equal(pg_begin(c, &err), TP_OK);
    int ks[2] = {k % KEYS, (k + 1) % KEYS};
    unsigned char payload[2][IT_PAYLOAD_MAX];
    size_t len[2];
    for (int i = 0; i < 2; i++) {
        int seq = e->seq++;
        len[i] = make_payload(payload[i], e->keys[ks[i]], seq, rollback ? "rolled-back" : "ok");
        char event_id[96];
        snprintf(event_id, sizeof(event_id), "%s-%d", e->source, seq);
        enum tp_status st = outbox_write(c, e->source, e->topic, e->keys[ks[i]], event_id,
                                         payload[i], len[i], &err);
        if (st != TP_OK) {
            fail_msg("outbox_write: %s", err.msg);
        }
    }
    if (rollback) {
        pg_rollback(c);
        for (int i = 0; i < 2; i++) {
            memcpy(e->rolled[e->nrolled], payload[i], len[i]);
            e->rolled_len[e->nrolled++] = len[i];
        }
        return;
    }
    assert_int_equal(pg_commit(c, &err), TP_OK);
    for (int i = 0; i < 2; i++) {
        int key = ks[i];
        memcpy(e->payload[key][e->count[key]], payload[i], len[i]);
        e->len[key][e->count[key]++] = len[i];
        e->total++;
    }
}

/*
 * One transaction writing, with outbox_write_many(), two events for each of keys k, k+1, k+2 (two
 * calls of three), payloads with the bytes COPY escapes; committed unless rollback.
 */
static void write_many_tx(struct pg_conn *c, struct expect *e, int k, bool rollback)
{
    struct tp_error err = {0};
    assert_int_equal(pg_begin(c, &err), TP_OK);
    unsigned char payload[6][IT_PAYLOAD_MAX];
    size_t len[6];
    char event_id[6][96];
    int key[6];
    for (int call = 0; call < 2; call++) {
        struct outbox_event ev[3];
        for (int j = 0; j < 3; j++) {
            int i = call * 3 + j;
            key[i] = (k + j) % KEYS;
            int seq = e->seq++;
            len[i] = make_payload(payload[i], e->keys[key[i]], seq,
                                  rollback ? "rb\\\t\n" : "ok\t\\\r\n");
            snprintf(event_id[i], sizeof(event_id[i]), "%s-m%d", e->source, seq);
            ev[j] = (struct outbox_event){.key = e->keys[key[i]],
                                          .event_id = event_id[i],
                                          .payload = payload[i],
                                          .len = len[i]};
        }
        enum tp_status st = outbox_write_many(c, e->source, e->topic, ev, 3, &err);
        if (st != TP_OK) {
            fail_msg("outbox_write_many: %s", err.msg);
        }
    }
    if (rollback) {
        pg_rollback(c);
        for (int i = 0; i < 6; i++) {
            memcpy(e->rolled[e->nrolled], payload[i], len[i]);
            e->rolled_len[e->nrolled++] = len[i];
        }
        return;
    }
    assert_int_equal(pg_commit(c, &err), TP_OK);
    for (int i = 0; i < 6; i++) {
        memcpy(e->payload[key[i]][e->count[key[i]]], payload[i], len[i]);
        e->len[key[i]][e->count[key[i]]++] = len[i];
        e->total++;
    }
}

/* rounds x KEYS transactions; every fourth is rolled back. */
static void write_rounds(struct pg_conn *c, struct expect *e, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < KEYS; k++) {
            write_tx(c, e, k, (r * KEYS + k) % 4 == 3);
        }
    }
    assert_true(e->total <= KEYS * ROUNDS_MAX * 2);
}

static void wait_published(struct pg_conn *c, const char *source)
{
    int64_t deadline = it_now_ms() + IT_WAIT_MAX_MS;
    while (unpublished(c, source) > 0 && it_now_ms() < deadline) {
        it_sleep_ms(50);
    }
    assert_int_equal(unpublished(c, source), 0);
}

static struct outbox_relay *start_relay(const char *source)
{
    struct tp_error err = {0};
    struct outbox_relay *r = outbox_relay_new(source, it_env("PG_CONNINFO"), POLL_MS, NULL, &err);
    if (r == NULL) {
        fail_msg("relay: %s", err.msg);
    }
    assert_int_equal(outbox_relay_start(r, &err), TP_OK);
    return r;
}

/*
 * Consumes the scenario's topic and checks: every committed event arrived, per key in commit
 * order (by first occurrence), nothing rolled back arrived. Returns the number of duplicates.
 */
static int verify_topic(const struct expect *e)
{
    char group[96];
    it_unique(group, sizeof(group), "it-outbox-reader");
    int n = it_consume(group, e->topic, e->total, 1500, consumed,
                       (int)(sizeof(consumed) / sizeof(consumed[0])));
    assert_true(n <= (int)(sizeof(consumed) / sizeof(consumed[0])));
    for (int i = 0; i < e->nrolled; i++) {
        for (int k = 0; k < KEYS; k++) {
            assert_int_equal(it_find(consumed, n, 0, e->keys[k], e->rolled[i], e->rolled_len[i]),
                             -1);
        }
    }
    int seen = 0;
    for (int k = 0; k < KEYS; k++) {
        int last = -1;
        for (int j = 0; j < e->count[k]; j++) {
            int at = it_find(consumed, n, 0, e->keys[k], e->payload[k][j], e->len[k][j]);
            if (at < 0) {
                fail_msg("key %s event %d of %d never arrived", e->keys[k], j, e->count[k]);
            }
            /* First occurrences per key in commit order. */
            assert_true(at > last);
            last = at;
            seen++;
        }
    }
    assert_int_equal(seen, e->total);
    return n - e->total;
}

/* (c) Written in transactions (before and while the relay runs): each event once, in order. */
static void test_relay_publishes_in_order_exactly_once(void **state)
{
    (void)state;
    static struct expect e;
    expect_init(&e, "c", 3);
    struct pg_conn *c = connect_pg();
    write_rounds(c, &e, 4); /* a backlog before the relay starts */
    struct outbox_relay *r = start_relay(e.source);
    write_rounds(c, &e, 4); /* and events while it runs (NOTIFY path) */
    wait_published(c, e.source);
    assert_int_equal(rows_of(c, e.source), e.total);
    int64_t deadline = it_now_ms() + IT_WAIT_MAX_MS;
    while ((outbox_relay_backlog(r) != 0 || !outbox_relay_healthy(r)) && it_now_ms() < deadline) {
        it_sleep_ms(20);
    }
    assert_int_equal(outbox_relay_backlog(r), 0);
    assert_true(outbox_relay_healthy(r));
    outbox_relay_free(r);
    assert_int_equal(verify_topic(&e), 0);
    pg_conn_free(c);
}

/*
 * outbox_write_many(): rows in array order, keys and payloads with tabs, newlines and backslashes
 * intact, nothing of a rolled-back transaction, a duplicate event id refused as a whole.
 */
static void test_write_many_publishes_in_order_exactly_once(void **state)
{
    (void)state;
    static struct expect e;
    expect_init(&e, "m", 3);
    for (int k = 0; k < KEYS; k++) {
        snprintf(e.keys[k], IT_KEY_MAX, "acct\t%d\\%s\n", k, e.source);
    }
    struct pg_conn *c = connect_pg();
    for (int t = 0; t < 6; t++) {
        write_many_tx(c, &e, t, t % 3 == 2);
    }
    struct outbox_relay *r = start_relay(e.source);
    wait_published(c, e.source);
    assert_int_equal(rows_of(c, e.source), e.total);
    outbox_relay_free(r);
    assert_int_equal(verify_topic(&e), 0);

    struct tp_error err = {0};
    char id[64];
    it_unique(id, sizeof(id), "ev-many-dup");
    struct outbox_event dup[2] = {{.key = "k", .event_id = id, .payload = "p", .len = 1},
                                  {.key = "k", .event_id = id, .payload = "q", .len = 1}};
    assert_int_equal(pg_begin(c, &err), TP_OK);
    assert_int_equal(outbox_write_many(c, e.source, e.topic, dup, 2, &err), TP_DUPLICATE);
    pg_rollback(c);
    assert_int_equal(outbox_write_many(c, "", e.topic, dup, 1, &err), TP_INVALID);
    assert_int_equal(outbox_write_many(c, e.source, e.topic, dup, 0, &err), TP_OK);
    assert_int_equal(rows_of(c, e.source), e.total);
    pg_conn_free(c);
}

/* Only the lock holder publishes; when it stops, the standby takes over. */
static void test_standby_takes_over(void **state)
{
    (void)state;
    static struct expect e;
    expect_init(&e, "e", 2);
    struct pg_conn *c = connect_pg();
    struct outbox_relay *a = start_relay(e.source);
    write_rounds(c, &e, 2);
    wait_published(c, e.source);
    struct outbox_relay *b = start_relay(e.source);
    write_rounds(c, &e, 2);
    wait_published(c, e.source);
    /* The standby counts as healthy: it checked the lock and the backlog. */
    int64_t deadline = it_now_ms() + IT_WAIT_MAX_MS;
    while (!outbox_relay_healthy(b) && it_now_ms() < deadline) {
        it_sleep_ms(20);
    }
    assert_true(outbox_relay_healthy(b));
    outbox_relay_free(a);
    write_rounds(c, &e, 3);
    wait_published(c, e.source);
    outbox_relay_free(b);
    assert_int_equal(verify_topic(&e), 0);
    pg_conn_free(c);
}

/* Ends the server sessions holding relay locks in this database (pg.c then reconnects). */
static int64_t kill_relay_sessions(struct pg_conn *c)
{
    PGresult *r = NULL;
    struct tp_error err = {0};
    if (pg_exec(c,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                " WHERE locktype = 'advisory' AND classid = 1329748017 AND objsubid = 2"
                " AND granted AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())",
                0, NULL, &r, &err) != TP_OK) {
        fail_msg("terminate: %s", err.msg);
    }
    int64_t n = pg_get_i64(r, 0, 0);
    PQclear(r);
    return n;
}

/* The relay's session dies: it reconnects, takes its lock and LISTEN again, and goes on. */
static void test_relay_survives_session_loss(void **state)
{
    (void)state;
    static struct expect e;
    expect_init(&e, "s", 2);
    struct pg_conn *c = connect_pg();
    struct outbox_relay *r = start_relay(e.source);
    write_rounds(c, &e, 2);
    wait_published(c, e.source);
    assert_int_equal(kill_relay_sessions(c), 1);
    write_rounds(c, &e, 2);
    wait_published(c, e.source);
    /* Back on a new session it holds the lock again (and so is the one to kill). */
    int64_t deadline = it_now_ms() + IT_WAIT_MAX_MS;
    while (kill_relay_sessions(c) != 1 && it_now_ms() < deadline) {
        it_sleep_ms(50);
    }
    write_rounds(c, &e, 1);
    wait_published(c, e.source);
    outbox_relay_free(r);
    assert_int_equal(verify_topic(&e), 0);
    pg_conn_free(c);
}

/* Waits (bounded) until the relay reports itself unhealthy with the whole backlog in view. */
static void wait_unhealthy(struct outbox_relay *r, int64_t backlog)
{
    int64_t deadline = it_now_ms() + IT_WAIT_MAX_MS;
    while ((outbox_relay_healthy(r) || outbox_relay_backlog(r) != backlog) &&
           it_now_ms() < deadline) {
        it_sleep_ms(50);
    }
    assert_false(outbox_relay_healthy(r));
    assert_int_equal(outbox_relay_backlog(r), backlog);
}

/* (d) Broker unreachable: rows stay unpublished; a relay started after the outage sends them. */
static void test_unreachable_broker_then_new_relay(void **state)
{
    (void)state;
    static struct expect e;
    expect_init(&e, "d1", 3);
    struct pg_conn *c = connect_pg();
    /* A bound, never-listening socket: connections to it are refused for as long as we hold it. */
    int dead = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(dead, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t slen = sizeof(sin);
    assert_int_equal(getsockname(dead, (struct sockaddr *)&sin, &slen), 0);
    char dead_addr[64];
    snprintf(dead_addr, sizeof(dead_addr), "127.0.0.1:%d", ntohs(sin.sin_port));

    char good[512];
    snprintf(good, sizeof(good), "%s", it_env("KAFKA_BOOTSTRAP_SERVERS"));
    setenv("KAFKA_BOOTSTRAP_SERVERS", dead_addr, 1);
    setenv("KAFKA_MESSAGE_TIMEOUT_MS", "2000", 1);
    struct outbox_relay *r = start_relay(e.source);
    setenv("KAFKA_BOOTSTRAP_SERVERS", good, 1);
    unsetenv("KAFKA_MESSAGE_TIMEOUT_MS");

    write_rounds(c, &e, 3);
    wait_unhealthy(r, e.total);
    assert_int_equal(unpublished(c, e.source), e.total);
    outbox_relay_free(r);
    close(dead);
    assert_int_equal(unpublished(c, e.source), e.total);

    r = start_relay(e.source);
    wait_published(c, e.source);
    outbox_relay_free(r);
    /* Nothing reached Kafka while it was away: no duplicates either. */
    assert_int_equal(verify_topic(&e), 0);
    pg_conn_free(c);
}

/* (d) The topic's partitions lose their leader for a while: the same relay recovers. */
static void test_outage_then_same_relay_recovers(void **state)
{
    (void)state;
    static struct expect e;
    expect_init(&e, "d2", 2);
    struct pg_conn *c = connect_pg();
    it_devbroker("leader %s 0 -1", e.topic);
    it_devbroker("leader %s 1 -1", e.topic);
    /* Short message timeouts: the relay goes through failed deliveries and retries. */
    setenv("KAFKA_MESSAGE_TIMEOUT_MS", "1500", 1);
    struct outbox_relay *r = start_relay(e.source);
    unsetenv("KAFKA_MESSAGE_TIMEOUT_MS");
    write_rounds(c, &e, 3);
    wait_unhealthy(r, e.total);
    /*
     * Long enough for deliveries to time out and be retried more than once. On a slow machine
     * fewer retries happen before the leaders return; the assertions hold either way.
     */
    it_sleep_ms(5000);
    assert_false(outbox_relay_healthy(r));
    assert_int_equal(unpublished(c, e.source), e.total);

    it_devbroker("leader %s 0 1", e.topic);
    it_devbroker("leader %s 1 1", e.topic);
    wait_published(c, e.source);
    int64_t deadline = it_now_ms() + IT_WAIT_MAX_MS;
    while (!outbox_relay_healthy(r) && it_now_ms() < deadline) {
        it_sleep_ms(20);
    }
    assert_true(outbox_relay_healthy(r));
    outbox_relay_free(r);
    int dups = verify_topic(&e);
    print_message("outage scenario: %d events, %d duplicates on the topic\n", e.total, dups);
    assert_true(dups >= 0);
    pg_conn_free(c);
}

static void test_write_rejects_bad_source(void **state)
{
    (void)state;
    struct pg_conn *c = connect_pg();
    struct tp_error err = {0};
    char long_source[80];
    memset(long_source, 's', sizeof(long_source) - 1);
    long_source[sizeof(long_source) - 1] = '\0';
    assert_int_equal(outbox_write(c, long_source, "t", "k", "ev-long", "p", 1, &err), TP_INVALID);
    assert_null(outbox_relay_new("", NULL, POLL_MS, NULL, &err));
    assert_int_equal(err.status, TP_INVALID);
    assert_null(outbox_relay_new("x", NULL, 0, NULL, &err));
    assert_int_equal(err.status, TP_INVALID);
    /* The same event id twice is a duplicate, not a second row. */
    char id[64];
    it_unique(id, sizeof(id), "ev-dup");
    assert_int_equal(outbox_write(c, "dup", "t", "k", id, "p", 1, &err), TP_OK);
    assert_int_equal(outbox_write(c, "dup", "t", "k", id, "p", 1, &err), TP_DUPLICATE);
    pg_conn_free(c);
}

int main(void)
{
    log_init("test_outbox");
    it_env("KAFKA_BOOTSTRAP_SERVERS");
    /*
     * Scenario (d) takes partition leaders away through the dev broker's control channel: on a
     * stack with Apache Kafka the whole file runs against a dev broker of its own.
     */
    static struct tl_broker own;
    const char *control = getenv("DEVBROKER_CONTROL");
    if (control == NULL || control[0] == '\0') {
        tl_broker_start(&own, 1, NULL);
    }
    it_env("DEVBROKER_CONTROL");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_rejects_bad_source),
        cmocka_unit_test(test_relay_publishes_in_order_exactly_once),
        cmocka_unit_test(test_write_many_publishes_in_order_exactly_once),
        cmocka_unit_test(test_standby_takes_over),
        cmocka_unit_test(test_relay_survives_session_loss),
        cmocka_unit_test(test_unreachable_broker_then_new_relay),
        cmocka_unit_test(test_outage_then_same_relay_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
