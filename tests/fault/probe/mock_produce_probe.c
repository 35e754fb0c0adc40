/* Probe: does librdkafka's mock cluster keep every message an idempotent producer was told is
 * delivered, when Produce requests are answered with injected errors? */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * usage: mock_produce_probe [in-flight 1..5] [REQUEST_TIMED_OUT|NOT_LEADER_FOR_PARTITION]
 *                           [messages] [rtt_ms]
 *
 * A 3-broker mock cluster, an 8-partition topic and an idempotent producer (acks=all) with the
 * given max.in.flight.requests.per.connection. Every 200 ms one Produce request is answered with
 * the error, while a consumer reads the topic concurrently (the mock drops data past ~5 MiB per
 * partition). At the end it prints how many messages were reported delivered but are not in the
 * topic, and how many batches librdkafka "implicitly acked" (a later batch of the same partition
 * succeeded, which on a real broker proves the earlier one was written).
 */

#define PROBE_TOPIC       "probe"
#define PROBE_PARTITIONS  8
#define PROBE_BROKERS     3
#define PROBE_INJECT_US   200000
#define PROBE_FLUSH_MS    300000
#define PROBE_IDLE_POLLS  50
#define PROBE_MAX_MSGS    2000000
#define PROBE_SHOW_LOST   10
#define PROBE_VALUE_BYTES 32
#define PROBE_POLL_EVERY  1000

static struct {
    rd_kafka_mock_cluster_t *mcluster;
    const char *bootstraps;
    rd_kafka_resp_err_t err;
    atomic_bool stop_injecting;
    atomic_bool stop_consuming;
    atomic_int injected;
    atomic_int implicit_acks;
    long messages;
    unsigned char *delivered; /* per message: reported delivered */
    unsigned char *stored;    /* per message: read back from the topic */
} P;

static void probe_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        P.delivered[(long)(intptr_t)m->_private] = 1;
    }
}

static void probe_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    (void)level;
    if (strcmp(fac, "IMPLICITACK") == 0) {
        atomic_fetch_add(&P.implicit_acks, 1);
        fprintf(stderr, "librdkafka: %s\n", buf);
    }
}

static void *probe_inject(void *arg)
{
    (void)arg;
    while (!atomic_load(&P.stop_injecting)) {
        usleep(PROBE_INJECT_US);
        rd_kafka_mock_push_request_errors(P.mcluster, 0 /* Produce */, 1, P.err);
        atomic_fetch_add(&P.injected, 1);
    }
    return NULL;
}

static void *probe_consume(void *arg)
{
    (void)arg;
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", P.bootstraps, NULL, 0);
    rd_kafka_conf_set(conf, "group.id", "probe", NULL, 0);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "consumer: %s\n", errstr);
        exit(2);
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, PROBE_TOPIC, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    int idle = 0;
    while (!atomic_load(&P.stop_consuming) || idle < PROBE_IDLE_POLLS) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL) {
            idle++;
            continue;
        }
        idle = 0;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->len > 1) {
            long id = strtol((const char *)m->payload + 1, NULL, 10);
            if (id >= 0 && id < P.messages) {
                P.stored[id] = 1;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

static rd_kafka_t *probe_producer(const char *in_flight)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[] = {"bootstrap.servers",
                        P.bootstraps,
                        "enable.idempotence",
                        "true",
                        "acks",
                        "all",
                        "linger.ms",
                        "1",
                        "batch.num.messages",
                        "10",
                        "max.in.flight.requests.per.connection",
                        in_flight,
                        "debug",
                        "eos",
                        NULL};
    for (int i = 0; kv[i] != NULL; i += 2) {
        if (rd_kafka_conf_set(conf, kv[i], kv[i + 1], errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            fprintf(stderr, "%s: %s\n", kv[i], errstr);
            exit(2);
        }
    }
    rd_kafka_conf_set_log_cb(conf, probe_log);
    rd_kafka_conf_set_dr_msg_cb(conf, probe_dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "producer: %s\n", errstr);
        exit(2);
    }
    return rk;
}

int main(int argc, char **argv)
{
    const char *in_flight = argc > 1 ? argv[1] : "5";
    const char *err_name = argc > 2 ? argv[2] : "REQUEST_TIMED_OUT";
    P.messages = argc > 3 ? strtol(argv[3], NULL, 10) : 200000;
    int rtt_ms = argc > 4 ? atoi(argv[4]) : 30;
    if (P.messages < 1 || P.messages > PROBE_MAX_MSGS || rtt_ms < 0) {
        fprintf(stderr, "messages 1..%d, rtt_ms >= 0\n", PROBE_MAX_MSGS);
        return 2;
    }
    P.err = strcmp(err_name, "NOT_LEADER_FOR_PARTITION") == 0
                ? RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION
                : RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT;
    P.delivered = calloc((size_t)P.messages, 1);
    P.stored = calloc((size_t)P.messages, 1);
    if (P.delivered == NULL || P.stored == NULL) {
        return 2;
    }

    char errstr[512];
    rd_kafka_conf_t *mconf = rd_kafka_conf_new();
    rd_kafka_conf_set(mconf, "log_level", "0", NULL, 0);
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, errstr, sizeof(errstr));
    if (mrk == NULL) {
        fprintf(stderr, "mock handle: %s\n", errstr);
        return 2;
    }
    P.mcluster = rd_kafka_mock_cluster_new(mrk, PROBE_BROKERS);
    rd_kafka_mock_topic_create(P.mcluster, PROBE_TOPIC, PROBE_PARTITIONS, PROBE_BROKERS);
    /* Latency keeps several requests in flight per connection, as on a real network. */
    for (int b = 1; b <= PROBE_BROKERS; b++) {
        rd_kafka_mock_broker_set_rtt(P.mcluster, b, rtt_ms);
    }
    P.bootstraps = rd_kafka_mock_cluster_bootstraps(P.mcluster);

    pthread_t consumer, injector;
    pthread_create(&consumer, NULL, probe_consume, NULL);
    rd_kafka_t *rk = probe_producer(in_flight);
    pthread_create(&injector, NULL, probe_inject, NULL);
    for (long i = 0; i < P.messages; i++) {
        char value[PROBE_VALUE_BYTES];
        int len = snprintf(value, sizeof(value), "m%07ld", i);
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(PROBE_TOPIC), RD_KAFKA_V_VALUE(value, len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_OPAQUE((void *)(intptr_t)i),
                                 RD_KAFKA_V_END) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_poll(rk, 10);
        }
        if (i % PROBE_POLL_EVERY == 0) {
            rd_kafka_poll(rk, 0);
        }
    }
    atomic_store(&P.stop_injecting, true);
    pthread_join(injector, NULL);
    bool flushed = rd_kafka_flush(rk, PROBE_FLUSH_MS) == RD_KAFKA_RESP_ERR_NO_ERROR;
    atomic_store(&P.stop_consuming, true);
    pthread_join(consumer, NULL);

    long delivered = 0, stored = 0, lost = 0;
    for (long i = 0; i < P.messages; i++) {
        delivered += P.delivered[i];
        stored += P.stored[i];
        if (P.delivered[i] && !P.stored[i]) {
            if (lost < PROBE_SHOW_LOST) {
                fprintf(stderr, "reported delivered, not in the topic: m%07ld\n", i);
            }
            lost++;
        }
    }
    printf("in-flight %s, %d Produce requests answered %s, rtt %d ms: %ld messages, %ld reported "
           "delivered%s, %ld in the topic, %ld reported delivered but not in the topic, %d "
           "implicit acks\n",
           in_flight, atomic_load(&P.injected), rd_kafka_err2name(P.err), rtt_ms, P.messages,
           delivered, flushed ? "" : " (flush timed out)", stored, lost,
           atomic_load(&P.implicit_acks));
    rd_kafka_destroy(rk);
    rd_kafka_mock_cluster_destroy(P.mcluster);
    rd_kafka_destroy(mrk);
    free(P.delivered);
    free(P.stored);
    return lost == 0 ? 0 : 1;
}
