/*
 * The broker feature check (kafka_probe.c) through kafka_producer_new()/kafka_consumer_new():
 * a listener of the test's own answers ApiVersions v0 like a broker that lacks InitProducerId or
 * the group APIs, and the clients refuse to be made; a full answer, a dead port and a listener
 * that answers garbage are checked too.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "topup/kafka.h"
#include "topup/kafka_probe.h"
#include "topup/log.h"

/* What the fake broker answers. */
struct fake {
    int fd;
    int port;
    const int16_t *keys; /* api keys offered, each with versions 0..9 */
    int n;
    int garbage; /* answer a frame that is not ApiVersions */
    int served;
    pthread_t thread;
};

static void put16(unsigned char *p, int v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Serves one connection: reads one request, answers it, closes. */
static void *fake_run(void *arg)
{
    struct fake *f = arg;
    int c = accept(f->fd, NULL, NULL);
    if (c < 0) {
        return NULL;
    }
    unsigned char req[512];
    ssize_t r = recv(c, req, sizeof(req), 0);
    if (r >= 12) {
        unsigned char out[4 + 4 + 2 + 4 + 64 * 6];
        size_t len = 4 + 2 + 4 + (size_t)f->n * 6;
        put32(out, (uint32_t)len);
        memcpy(out + 4, req + 8, 4); /* correlation id */
        put16(out + 8, 0);
        put32(out + 10, (uint32_t)f->n);
        for (int i = 0; i < f->n; i++) {
            put16(out + 14 + i * 6, f->keys[i]);
            put16(out + 16 + i * 6, 0);
            put16(out + 18 + i * 6, 9);
        }
        if (f->garbage) {
            memcpy(out, "HTTP/1.1 400 Bad\r\n", 18);
            len = 14;
        }
        assert_true(send(c, out, 4 + len, MSG_NOSIGNAL) > 0);
        f->served++;
    }
    close(c);
    return NULL;
}

static void fake_start(struct fake *f, const int16_t *keys, int n, int garbage)
{
    memset(f, 0, sizeof(*f));
    f->keys = keys;
    f->n = n;
    f->garbage = garbage;
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(f->fd, 4), 0);
    socklen_t sl = sizeof(sin);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&sin, &sl), 0);
    f->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_run, f), 0);
    char bs[64];
    snprintf(bs, sizeof(bs), "127.0.0.1:%d", f->port);
    setenv("KAFKA_BOOTSTRAP_SERVERS", bs, 1);
}

static void fake_stop(struct fake *f)
{
    shutdown(f->fd, SHUT_RDWR);
    pthread_join(f->thread, NULL);
    close(f->fd);
    unsetenv("KAFKA_BOOTSTRAP_SERVERS");
}

/* Kafka 3.9's request types that matter here, and a few more. */
static const int16_t all_keys[] = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18, 19, 22};
/* The same without InitProducerId (22). */
static const int16_t no_idempotence[] = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18, 19};
/* The same without JoinGroup (11) and SyncGroup (14). */
static const int16_t no_groups[] = {0, 1, 2, 3, 8, 9, 10, 12, 13, 18, 19, 22};

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void test_producer_refused_without_init_producer_id(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f, no_idempotence, N(no_idempotence), 0);
    struct tp_error err = {0};
    struct kafka_producer *p = kafka_producer_new("probe-test", NULL, NULL, &err);
    assert_null(p);
    assert_int_equal(err.status, TP_FATAL);
    assert_non_null(strstr(err.msg, "lacks InitProducerId"));
    assert_non_null(strstr(err.msg, "not starting"));
    fake_stop(&f);
    assert_int_equal(f.served, 1);
}

static void test_consumer_refused_without_groups(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f, no_groups, N(no_groups), 0);
    struct tp_error err = {0};
    const char *topics[] = {"t"};
    struct kafka_consumer *c = kafka_consumer_new("probe-group", topics, 1, &err);
    assert_null(c);
    assert_int_equal(err.status, TP_FATAL);
    assert_non_null(strstr(err.msg, "JoinGroup, SyncGroup"));
    fake_stop(&f);
    assert_int_equal(f.served, 1);
}

static void test_full_broker_accepted(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f, all_keys, N(all_keys), 0);
    struct tp_error err = {0};
    struct kafka_producer *p = kafka_producer_new("probe-test", NULL, NULL, &err);
    assert_non_null(p);
    fake_stop(&f);
    assert_int_equal(f.served, 1);
    kafka_producer_free(p);
}

static void test_garbage_answer_refused(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f, all_keys, N(all_keys), 1);
    struct tp_error err = {0};
    assert_int_equal(kafka_probe_check(getenv("KAFKA_BOOTSTRAP_SERVERS"), "plaintext",
                                       KAFKA_PROBE_IDEMPOTENCE, &err),
                     TP_FATAL);
    assert_non_null(strstr(err.msg, "not Kafka"));
    fake_stop(&f);
}

/* Nobody listening is no answer: the client is made and librdkafka keeps trying. */
static void test_unreachable_is_not_a_refusal(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f, all_keys, N(all_keys), 0);
    char bs[64];
    snprintf(bs, sizeof(bs), "127.0.0.1:%d", f.port);
    fake_stop(&f); /* the port is closed now */
    struct tp_error err = {0};
    assert_int_equal(
        kafka_probe_check(bs, NULL, KAFKA_PROBE_IDEMPOTENCE | KAFKA_PROBE_GROUPS, &err), TP_OK);
    /* TLS listeners are not probed at all. */
    assert_int_equal(kafka_probe_check(bs, "SASL_SSL", KAFKA_PROBE_GROUPS, &err), TP_OK);
}

int main(void)
{
    log_init("test_kafka_probe");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_producer_refused_without_init_producer_id),
        cmocka_unit_test(test_consumer_refused_without_groups),
        cmocka_unit_test(test_full_broker_accepted),
        cmocka_unit_test(test_garbage_answer_refused),
        cmocka_unit_test(test_unreachable_is_not_a_refusal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
