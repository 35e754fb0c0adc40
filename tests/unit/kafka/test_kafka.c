/* Unit tests of kafka.c against an in-process librdkafka mock cluster (no stack needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "topup/kafka.h"
#include "topup/log.h"

#define N_MSGS    30
#define N_STORED  17
#define BATCH_MAX 8
/* Upper bound of any loop waiting for the cluster, so a broken wrapper fails instead of hanging. */
#define WAIT_MAX_MS 60000

static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;
static char bootstrap[256];

struct dr_log {
    int count;
    int ok;
    int retry;
    int fatal;
    uintptr_t last_opaque;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_dr(void *ctx, void *opaque, enum tp_status status, const char *reason)
{
    struct dr_log *d = ctx;
    assert_non_null(reason);
    d->count++;
    d->ok += status == TP_OK;
    d->retry += status == TP_RETRY;
    d->fatal += status == TP_FATAL;
    d->last_opaque = (uintptr_t)opaque;
}

static void clear_kafka_env(void)
{
    unsetenv("KAFKA_MESSAGE_TIMEOUT_MS");
    unsetenv("KAFKA_QUEUE_BUFFERING_MAX_MESSAGES");
    unsetenv("KAFKA_MESSAGE_MAX_BYTES");
    setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap, 1);
}

static int group_setup(void **state)
{
    (void)state;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (mock_rk == NULL) {
        return -1;
    }
    mock = rd_kafka_mock_cluster_new(mock_rk, 1);
    if (mock == NULL) {
        return -1;
    }
    snprintf(bootstrap, sizeof(bootstrap), "%s", rd_kafka_mock_cluster_bootstraps(mock));
    clear_kafka_env();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mock_rk);
    return 0;
}

static void unique_name(char *buf, size_t len, const char *prefix)
{
    static int seq;
    snprintf(buf, len, "%s.%d.%d", prefix, (int)getpid(), ++seq);
}

static void produce_keyed(const char *topic, int n)
{
    struct dr_log d = {0};
    struct tp_error err = {0};
    struct kafka_producer *p = kafka_producer_new("ut-producer", on_dr, &d, &err);
    assert_non_null(p);
    for (int i = 0; i < n; i++) {
        char key[16], val[32];
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        assert_int_equal(kafka_producer_send(p, topic, key, strlen(key), val, strlen(val),
                                             (void *)(uintptr_t)(i + 1), &err),
                         TP_OK);
    }
    assert_int_equal(kafka_producer_flush(p, WAIT_MAX_MS, &err), TP_OK);
    assert_int_equal(d.count, n);
    assert_int_equal(d.ok, n);
    assert_int_equal(kafka_producer_outstanding(p), 0);
    kafka_producer_free(p);
}

/* Polls until `want` messages arrived (or WAIT_MAX_MS), copying their values into seen[]. */
static int consume_values(struct kafka_consumer *c, int want, int seen[N_MSGS], int store_first,
                          int *stored)
{
    int got = 0;
    int64_t deadline = now_ms() + WAIT_MAX_MS;
    while (got < want && now_ms() < deadline) {
        struct kafka_message msgs[BATCH_MAX];
        int n = kafka_consumer_poll_batch(c, msgs, BATCH_MAX, 500);
        assert_true(n >= 0 && n <= BATCH_MAX);
        for (int i = 0; i < n; i++) {
            int v = atoi((const char *)msgs[i].payload + 1);
            assert_true(v >= 0 && v < N_MSGS);
            seen[v]++;
            char key[16];
            snprintf(key, sizeof(key), "k%d", v);
            assert_int_equal(msgs[i].key_len, strlen(key));
            assert_memory_equal(msgs[i].key, key, strlen(key));
            /* Store a prefix of what arrived: per partition that is a prefix too. */
            if (*stored < store_first) {
                kafka_consumer_store(c, &msgs[i], 1);
                seen[v] += 100;
                (*stored)++;
            }
        }
        got += n;
        kafka_consumer_release(c, msgs, n);
    }
    return got;
}

static void test_resume_after_stored_offsets(void **state)
{
    (void)state;
    char topic[64], group[64];
    unique_name(topic, sizeof(topic), "ut.resume");
    unique_name(group, sizeof(group), "ut-group");
    assert_int_equal(rd_kafka_mock_topic_create(mock, topic, 3, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
    produce_keyed(topic, N_MSGS);

    const char *topics[] = {topic};
    struct tp_error err = {0};
    struct kafka_consumer *c = kafka_consumer_new(group, topics, 1, &err);
    assert_non_null(c);
    int first[N_MSGS] = {0};
    int stored = 0;
    assert_int_equal(consume_values(c, N_MSGS, first, N_STORED, &stored), N_MSGS);
    assert_int_equal(stored, N_STORED);
    kafka_consumer_free(c);

    c = kafka_consumer_new(group, topics, 1, &err);
    assert_non_null(c);
    int second[N_MSGS] = {0};
    int none = 0;
    assert_int_equal(consume_values(c, N_MSGS - N_STORED, second, 0, &none), N_MSGS - N_STORED);
    /* A straggler from a fully stored partition would show up here. */
    struct kafka_message extra[BATCH_MAX];
    int n = kafka_consumer_poll_batch(c, extra, BATCH_MAX, 1500);
    kafka_consumer_release(c, extra, n);
    assert_int_equal(n, 0);
    kafka_consumer_free(c);
    for (int v = 0; v < N_MSGS; v++) {
        bool was_stored = first[v] >= 100;
        assert_int_equal(first[v] % 100, 1);
        assert_int_equal(second[v], was_stored ? 0 : 1);
    }
}

static void test_poll_batch_bounds(void **state)
{
    (void)state;
    char topic[64], group[64];
    unique_name(topic, sizeof(topic), "ut.batch");
    unique_name(group, sizeof(group), "ut-batch");
    assert_int_equal(rd_kafka_mock_topic_create(mock, topic, 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
    const char *topics[] = {topic};
    struct tp_error err = {0};
    struct kafka_consumer *c = kafka_consumer_new(group, topics, 1, &err);
    assert_non_null(c);
    struct kafka_message msgs[3];
    /* Nothing there: returns 0 after waiting, not before. */
    int64_t t0 = now_ms();
    assert_int_equal(kafka_consumer_poll_batch(c, msgs, 3, 300), 0);
    assert_true(now_ms() - t0 >= 290);
    produce_keyed(topic, 10);
    int total = 0;
    int64_t deadline = now_ms() + WAIT_MAX_MS;
    while (total < 10 && now_ms() < deadline) {
        int n = kafka_consumer_poll_batch(c, msgs, 3, 500);
        assert_true(n <= 3);
        kafka_consumer_store(c, msgs, n);
        kafka_consumer_release(c, msgs, n);
        total += n;
    }
    assert_int_equal(total, 10);
    kafka_consumer_free(c);
}

static void test_dead_letter_headers(void **state)
{
    (void)state;
    char topic[64], dlq[80], group[64];
    unique_name(topic, sizeof(topic), "ut.dlq");
    snprintf(dlq, sizeof(dlq), "%s%s", topic, TOPIC_DLQ_SUFFIX);
    unique_name(group, sizeof(group), "ut-dlq");
    assert_int_equal(rd_kafka_mock_topic_create(mock, topic, 2, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_mock_topic_create(mock, dlq, 2, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
    produce_keyed(topic, 1);

    struct dr_log d = {0};
    struct tp_error err = {0};
    struct kafka_producer *p = kafka_producer_new("ut-dlq", on_dr, &d, &err);
    assert_non_null(p);
    const char *topics[] = {topic};
    struct kafka_consumer *c = kafka_consumer_new(group, topics, 1, &err);
    assert_non_null(c);
    struct kafka_message m[1];
    int n = 0;
    for (int64_t deadline = now_ms() + WAIT_MAX_MS; n == 0 && now_ms() < deadline;) {
        n = kafka_consumer_poll_batch(c, m, 1, 500);
    }
    assert_int_equal(n, 1);
    int32_t part = m[0].partition;
    int64_t off = m[0].offset;
    assert_int_equal(kafka_dead_letter(p, &m[0], "bad \"payload\"", WAIT_MAX_MS, &err), TP_OK);
    /* A dead letter's report is not the caller's: on_delivery never saw it. */
    assert_int_equal(d.count, 0);
    assert_int_equal(kafka_producer_outstanding(p), 0);
    kafka_consumer_store(c, m, 1);
    kafka_consumer_release(c, m, 1);
    kafka_consumer_free(c);
    kafka_producer_free(p);

    char dgroup[80];
    snprintf(dgroup, sizeof(dgroup), "%s-reader", group);
    const char *dtopics[] = {dlq};
    c = kafka_consumer_new(dgroup, dtopics, 1, &err);
    assert_non_null(c);
    n = 0;
    for (int64_t deadline = now_ms() + WAIT_MAX_MS; n == 0 && now_ms() < deadline;) {
        n = kafka_consumer_poll_batch(c, m, 1, 500);
    }
    assert_int_equal(n, 1);
    assert_int_equal(m[0].key_len, 2);
    assert_memory_equal(m[0].key, "k0", 2);
    assert_memory_equal(m[0].payload, "v0", 2);
    rd_kafka_headers_t *hdrs = NULL;
    assert_int_equal(rd_kafka_message_headers(m[0].handle_, &hdrs), RD_KAFKA_RESP_ERR_NO_ERROR);
    char want_part[16], want_off[24];
    snprintf(want_part, sizeof(want_part), "%d", (int)part);
    snprintf(want_off, sizeof(want_off), "%lld", (long long)off);
    const char *names[] = {DLQ_HEADER_REASON, DLQ_HEADER_TOPIC, DLQ_HEADER_PARTITION,
                           DLQ_HEADER_OFFSET};
    const char *values[] = {"bad \"payload\"", topic, want_part, want_off};
    for (int i = 0; i < 4; i++) {
        const void *v = NULL;
        size_t len = 0;
        assert_int_equal(rd_kafka_header_get_last(hdrs, names[i], &v, &len),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(len, strlen(values[i]));
        assert_memory_equal(v, values[i], len);
    }
    kafka_consumer_release(c, m, 1);
    kafka_consumer_free(c);
}

static void test_unreachable_broker_is_retriable(void **state)
{
    (void)state;
    /* Port 1 on loopback: nothing listens, connections are refused at once. */
    setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1", 1);
    setenv("KAFKA_MESSAGE_TIMEOUT_MS", "1000", 1);
    setenv("KAFKA_QUEUE_BUFFERING_MAX_MESSAGES", "3", 1);
    struct dr_log d = {0};
    struct tp_error err = {0};
    struct kafka_producer *p = kafka_producer_new("ut-down", on_dr, &d, &err);
    assert_non_null(p);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            kafka_producer_send(p, "ut.down", "k", 1, "v", 1, (void *)(uintptr_t)(i + 7), &err),
            TP_OK);
    }
    /* The local queue is full: the caller is told to poll and come back. */
    assert_int_equal(kafka_producer_send(p, "ut.down", "k", 1, "v", 1, NULL, &err), TP_RETRY);
    assert_int_equal(kafka_producer_outstanding(p), 3);
    assert_int_equal(kafka_producer_flush(p, WAIT_MAX_MS, &err), TP_OK);
    assert_int_equal(d.count, 3);
    assert_int_equal(d.retry, 3);
    assert_int_equal(d.ok, 0);
    assert_int_equal(d.last_opaque, 9);
    assert_int_equal(kafka_producer_outstanding(p), 0);
    kafka_producer_free(p);
    clear_kafka_env();
}

static void test_oversized_message_is_fatal(void **state)
{
    (void)state;
    setenv("KAFKA_MESSAGE_MAX_BYTES", "1000", 1);
    struct dr_log d = {0};
    struct tp_error err = {0};
    struct kafka_producer *p = kafka_producer_new("ut-big", on_dr, &d, &err);
    assert_non_null(p);
    static char big[5000];
    assert_int_equal(kafka_producer_send(p, "ut.big", "k", 1, big, sizeof(big), NULL, &err),
                     TP_FATAL);
    assert_true(strlen(err.msg) > 0);
    assert_int_equal(kafka_producer_outstanding(p), 0);
    kafka_producer_free(p);
    clear_kafka_env();
}

static void test_bad_config_is_invalid(void **state)
{
    (void)state;
    setenv("KAFKA_MESSAGE_MAX_BYTES", "not-a-number", 1);
    struct tp_error err = {0};
    assert_null(kafka_producer_new("ut-bad", NULL, NULL, &err));
    assert_int_equal(err.status, TP_INVALID);
    assert_non_null(strstr(err.msg, "KAFKA_MESSAGE_MAX_BYTES"));
    const char *topics[] = {"ut.x"};
    assert_null(kafka_consumer_new("ut-bad", topics, 1, &err));
    assert_int_equal(err.status, TP_INVALID);
    clear_kafka_env();
}

/* Closing while the coordinator is down must end (bounded), not hang for minutes. */
static void test_close_with_broker_down(void **state)
{
    (void)state;
    char topic[64], group[64];
    unique_name(topic, sizeof(topic), "ut.close");
    unique_name(group, sizeof(group), "ut-close");
    assert_int_equal(rd_kafka_mock_topic_create(mock, topic, 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
    produce_keyed(topic, 3);
    const char *topics[] = {topic};
    struct tp_error err = {0};
    struct kafka_consumer *c = kafka_consumer_new(group, topics, 1, &err);
    assert_non_null(c);
    int seen[N_MSGS] = {0};
    int stored = 0;
    assert_int_equal(consume_values(c, 3, seen, 3, &stored), 3);
    assert_int_equal(rd_kafka_mock_broker_set_down(mock, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
    int64_t t0 = now_ms();
    kafka_consumer_free(c);
    print_message("consumer closed %lld ms after the broker went down\n",
                  (long long)(now_ms() - t0));
    assert_int_equal(rd_kafka_mock_broker_set_up(mock, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
}

int main(void)
{
    log_init("test_kafka");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_config_is_invalid),
        cmocka_unit_test(test_oversized_message_is_fatal),
        cmocka_unit_test(test_unreachable_broker_is_retriable),
        cmocka_unit_test(test_resume_after_stored_offsets),
        cmocka_unit_test(test_poll_batch_bounds),
        cmocka_unit_test(test_dead_letter_headers),
        cmocka_unit_test(test_close_with_broker_down),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
