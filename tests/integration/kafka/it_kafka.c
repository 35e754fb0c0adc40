/* Helpers of the Kafka and outbox integration tests: unique names, dev broker control, consuming.
 */
#include "it_kafka.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>

#define IT_CONTROL_LINE_MAX 1024
#define IT_CONTROL_REPLY_MS 10000
#define IT_POLL_BATCH       64

int64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void it_unique(char *buf, size_t len, const char *prefix)
{
    static unsigned seed;
    if (seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (unsigned)ts.tv_nsec ^ (unsigned)getpid();
    }
    snprintf(buf, len, "%s.%d.%08x", prefix, (int)getpid(), (unsigned)rand_r(&seed));
}

const char *it_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fail_msg("%s is not set: run through tests/with-stack.sh (ctest does)", name);
    }
    return v;
}

static int it_control_connect(const char *addr)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host)) {
        fail_msg("DEVBROKER_CONTROL=%s is not ip:port", addr);
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fail_msg("DEVBROKER_CONTROL=%s is not ip:port", addr);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        fail_msg("dev broker control %s: %s", addr, strerror(errno));
    }
    return fd;
}

void it_devbroker(const char *fmt, ...)
{
    char line[IT_CONTROL_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && n < (int)sizeof(line) - 1);
    line[n++] = '\n';
    int fd = it_control_connect(it_env("DEVBROKER_CONTROL"));
    assert_int_equal(send(fd, line, (size_t)n, MSG_NOSIGNAL), n);
    char reply[IT_CONTROL_LINE_MAX];
    size_t got = 0;
    char *nl = NULL;
    while (nl == NULL && got + 1 < sizeof(reply)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, IT_CONTROL_REPLY_MS) <= 0) {
            fail_msg("dev broker control: no reply to %.*s", n - 1, line);
        }
        ssize_t r = recv(fd, reply + got, sizeof(reply) - 1 - got, 0);
        if (r <= 0) {
            fail_msg("dev broker control: connection closed on %.*s", n - 1, line);
        }
        got += (size_t)r;
        reply[got] = '\0';
        nl = strchr(reply, '\n');
    }
    close(fd);
    if (nl != NULL) {
        *nl = '\0';
    }
    if (strncmp(reply, "ok", 2) != 0) {
        fail_msg("dev broker control: %.*s -> %s", n - 1, line, reply);
    }
}

static bool it_topic_ready(rd_kafka_t *rk, const char *topic, int partitions)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    bool ready = false;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ready = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                md->topics[0].partition_cnt == partitions;
        for (int i = 0; ready && i < md->topics[0].partition_cnt; i++) {
            ready = md->topics[0].partitions[i].leader >= 0;
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return ready;
}

void it_topic_create(const char *topic, int partitions)
{
    const char *kind = getenv("TOPUP_KAFKA");
    if (kind == NULL || strcmp(kind, "kafka") != 0) {
        it_devbroker("topic-create %s %d", topic, partitions);
        return;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", it_env("KAFKA_BOOTSTRAP_SERVERS"), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fail_msg("admin client: %s", errstr);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fail_msg("admin client: %s", errstr);
    }
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, errstr, sizeof(errstr));
    if (nt == NULL) {
        fail_msg("new topic %s: %s", topic, errstr);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opt, 30000, errstr, sizeof(errstr));
    rd_kafka_CreateTopics(rk, &nt, 1, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, IT_WAIT_MAX_MS);
    if (ev == NULL) {
        fail_msg("create topic %s: no answer in %d ms", topic, IT_WAIT_MAX_MS);
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t cnt = 0;
    const rd_kafka_topic_result_t **tr =
        res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fail_msg("create topic %s: %s", topic, rd_kafka_event_error_string(ev));
    }
    if (cnt != 1 || rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fail_msg("create topic %s: %s", topic,
                 cnt == 1 ? rd_kafka_topic_result_error_string(tr[0]) : "no result");
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    int64_t deadline = it_now_ms() + IT_WAIT_MAX_MS;
    while (!it_topic_ready(rk, topic, partitions)) {
        if (it_now_ms() > deadline) {
            fail_msg("topic %s: not every partition has a leader after %d ms", topic,
                     IT_WAIT_MAX_MS);
        }
        it_sleep_ms(100);
    }
    rd_kafka_destroy(rk);
}

static void it_copy(struct it_msg *out, const struct kafka_message *m)
{
    memset(out, 0, sizeof(*out));
    assert_true(m->key_len < IT_KEY_MAX);
    assert_true(m->len <= IT_PAYLOAD_MAX);
    memcpy(out->key, m->key, m->key_len);
    memcpy(out->payload, m->payload, m->len);
    out->len = m->len;
    out->partition = m->partition;
    out->offset = m->offset;
}

int it_consume(const char *group, const char *topic, int want, int quiet_ms, struct it_msg *out,
               int cap)
{
    const char *topics[] = {topic};
    struct tp_error err = {0};
    struct kafka_consumer *c = kafka_consumer_new(group, topics, 1, &err);
    if (c == NULL) {
        fail_msg("consumer %s: %s", group, err.msg);
    }
    int total = 0;
    int64_t deadline = it_now_ms() + IT_WAIT_MAX_MS;
    int64_t quiet_until = 0;
    for (;;) {
        int64_t now = it_now_ms();
        if (total >= want && quiet_until == 0) {
            quiet_until = now + quiet_ms;
        }
        if ((quiet_until != 0 && now >= quiet_until) || now >= deadline) {
            break;
        }
        struct kafka_message msgs[IT_POLL_BATCH];
        int n = kafka_consumer_poll_batch(c, msgs, IT_POLL_BATCH, 200);
        for (int i = 0; i < n; i++) {
            if (total < cap) {
                it_copy(&out[total], &msgs[i]);
            }
            total++;
        }
        kafka_consumer_store(c, msgs, n);
        kafka_consumer_release(c, msgs, n);
    }
    kafka_consumer_free(c);
    return total;
}

int it_find(const struct it_msg *msgs, int n, int from, const char *key, const void *payload,
            size_t len)
{
    for (int i = from; i < n; i++) {
        if (strcmp(msgs[i].key, key) == 0 && msgs[i].len == len &&
            memcmp(msgs[i].payload, payload, len) == 0) {
            return i;
        }
    }
    return -1;
}
