/* Kafka wrappers through the dev broker: consumer-group resume after a restart, dead letters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>

#include "it_kafka.h"
#include "topup/kafka.h"
#include "topup/log.h"

#define N_MSGS     40
#define N_STORED   23
#define PARTITIONS 3
#define BATCH_MAX  7

struct dr_log {
    int ok;
    int failed;
};

static void on_dr(void *ctx, void *opaque, enum tp_status status, const char *reason)
{
    struct dr_log *d = ctx;
    (void)opaque;
    (void)reason;
    if (status == TP_OK) {
        d->ok++;
    } else {
        d->failed++;
    }
}

/* Produces "k<i>" -> "v<i>" for i in [0, n) and waits for every acknowledgement. */
static void produce_keyed(const char *topic, int n)
{
    struct dr_log d = {0};
    struct tp_error err = {0};
    struct kafka_producer *p = kafka_producer_new("it-kafka", on_dr, &d, &err);
    if (p == NULL) {
        fail_msg("producer: %s", err.msg);
    }
    for (int i = 0; i < n; i++) {
        char key[16], val[16];
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        assert_int_equal(
            kafka_producer_send(p, topic, key, strlen(key), val, strlen(val), NULL, &err), TP_OK);
    }
    assert_int_equal(kafka_producer_flush(p, IT_WAIT_MAX_MS, &err), TP_OK);
    assert_int_equal(d.ok, n);
    assert_int_equal(d.failed, 0);
    kafka_producer_free(p);
}

static int value_of(const struct kafka_message *m)
{
    char buf[16] = "";
    assert_true(m->len > 1 && m->len < sizeof(buf));
    memcpy(buf, m->payload, m->len);
    int v = atoi(buf + 1);
    assert_true(v >= 0 && v < N_MSGS);
    /* The key travelled with it. */
    char key[16];
    snprintf(key, sizeof(key), "k%d", v);
    assert_int_equal(m->key_len, strlen(key));
    assert_memory_equal(m->key, key, m->key_len);
    return v;
}

/*
 * Consumes until `want` arrived plus a quiet second. Stores the offsets of the first `store`
 * messages only (a prefix in arrival order is a prefix of every partition). Counts into seen[].
 */
static void consume(const char *group, const char *topic, int want, int store, int seen[N_MSGS],
                    bool stored[N_MSGS])
{
    const char *topics[] = {topic};
    struct tp_error err = {0};
    struct kafka_consumer *c = kafka_consumer_new(group, topics, 1, &err);
    if (c == NULL) {
        fail_msg("consumer: %s", err.msg);
    }
    int got = 0, nstored = 0;
    int64_t deadline = it_now_ms() + IT_WAIT_MAX_MS;
    int64_t quiet_until = 0;
    while (it_now_ms() < deadline && (quiet_until == 0 || it_now_ms() < quiet_until)) {
        struct kafka_message msgs[BATCH_MAX];
        int n = kafka_consumer_poll_batch(c, msgs, BATCH_MAX, 200);
        assert_true(n >= 0 && n <= BATCH_MAX);
        for (int i = 0; i < n; i++) {
            int v = value_of(&msgs[i]);
            seen[v]++;
            if (nstored < store) {
                kafka_consumer_store(c, &msgs[i], 1);
                stored[v] = true;
                nstored++;
            }
        }
        kafka_consumer_release(c, msgs, n);
        got += n;
        if (got >= want && quiet_until == 0) {
            quiet_until = it_now_ms() + 1000;
        }
    }
    kafka_consumer_free(c);
    assert_int_equal(nstored, store);
}

/* (a) A restarted member of the group resumes exactly after the offsets it stored. */
static void test_group_resumes_after_stored_offsets(void **state)
{
    (void)state;
    char topic[96], group[96];
    it_unique(topic, sizeof(topic), "it.kafka.resume");
    it_unique(group, sizeof(group), "it-kafka-resume");
    it_topic_create(topic, PARTITIONS);
    produce_keyed(topic, N_MSGS);

    int first[N_MSGS] = {0}, second[N_MSGS] = {0};
    bool stored[N_MSGS] = {false}, unused[N_MSGS] = {false};
    consume(group, topic, N_MSGS, N_STORED, first, stored);
    consume(group, topic, N_MSGS - N_STORED, 0, second, unused);
    for (int v = 0; v < N_MSGS; v++) {
        assert_int_equal(first[v], 1);
        /* Stored: never again. Not stored: delivered again, once. */
        assert_int_equal(second[v], stored[v] ? 0 : 1);
    }
}

/* (b) A dead letter lands on <topic>.dlq with the original key, payload and the headers. */
static void test_dead_letter_round_trip(void **state)
{
    (void)state;
    char topic[96], dlq[128], group[96], dgroup[128];
    it_unique(topic, sizeof(topic), "it.kafka.dlq");
    snprintf(dlq, sizeof(dlq), "%s%s", topic, TOPIC_DLQ_SUFFIX);
    it_unique(group, sizeof(group), "it-kafka-dlq");
    snprintf(dgroup, sizeof(dgroup), "%s-reader", group);
    it_topic_create(topic, 2);
    it_topic_create(dlq, 2);
    produce_keyed(topic, 1);

    const char *topics[] = {topic};
    struct tp_error err = {0};
    struct kafka_consumer *c = kafka_consumer_new(group, topics, 1, &err);
    assert_non_null(c);
    struct kafka_producer *p = kafka_producer_new("it-kafka-dlq", NULL, NULL, &err);
    assert_non_null(p);
    struct kafka_message m[1];
    int n = 0;
    for (int64_t deadline = it_now_ms() + IT_WAIT_MAX_MS; n == 0 && it_now_ms() < deadline;) {
        n = kafka_consumer_poll_batch(c, m, 1, 500);
    }
    assert_int_equal(n, 1);
    char want_part[16], want_off[32];
    snprintf(want_part, sizeof(want_part), "%d", (int)m[0].partition);
    snprintf(want_off, sizeof(want_off), "%lld", (long long)m[0].offset);
    const char *reason = "decode: truncated protobuf at byte 3";
    assert_int_equal(kafka_dead_letter(p, &m[0], reason, IT_WAIT_MAX_MS, &err), TP_OK);
    kafka_consumer_store(c, m, 1);
    kafka_consumer_release(c, m, 1);
    kafka_consumer_free(c);
    kafka_producer_free(p);

    const char *dtopics[] = {dlq};
    c = kafka_consumer_new(dgroup, dtopics, 1, &err);
    assert_non_null(c);
    n = 0;
    for (int64_t deadline = it_now_ms() + IT_WAIT_MAX_MS; n == 0 && it_now_ms() < deadline;) {
        n = kafka_consumer_poll_batch(c, m, 1, 500);
    }
    assert_int_equal(n, 1);
    assert_string_equal(m[0].topic, dlq);
    assert_int_equal(m[0].key_len, 2);
    assert_memory_equal(m[0].key, "k0", 2);
    assert_int_equal(m[0].len, 2);
    assert_memory_equal(m[0].payload, "v0", 2);
    rd_kafka_headers_t *hdrs = NULL;
    assert_int_equal(rd_kafka_message_headers(m[0].handle_, &hdrs), RD_KAFKA_RESP_ERR_NO_ERROR);
    const char *names[] = {DLQ_HEADER_REASON, DLQ_HEADER_TOPIC, DLQ_HEADER_PARTITION,
                           DLQ_HEADER_OFFSET};
    const char *values[] = {reason, topic, want_part, want_off};
    for (int i = 0; i < 4; i++) {
        const void *v = NULL;
        size_t len = 0;
        assert_int_equal(rd_kafka_header_get_last(hdrs, names[i], &v, &len),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(len, strlen(values[i]));
        assert_memory_equal(v, values[i], len);
    }
    kafka_consumer_store(c, m, 1);
    kafka_consumer_release(c, m, 1);
    kafka_consumer_free(c);
}

int main(void)
{
    log_init("test_kafka_stack");
    it_env("KAFKA_BOOTSTRAP_SERVERS");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_resumes_after_stored_offsets),
        cmocka_unit_test(test_dead_letter_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
