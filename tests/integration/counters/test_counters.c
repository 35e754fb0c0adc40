/* Counters and the Redis client against the stack's Redis, and against a dead or hung Redis. */
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
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "topup/counters.h"
#include "topup/redis.h"

/*
 * Without backoff, each of 1000 flushes against a hung Redis would wait for the 200 ms command
 * timeout (200 s in all); with it they take well under a second. The bound is loose on purpose:
 * it separates "never blocks" from "blocks per call" on any machine.
 */
#define REDIS_DOWN_LOOP_MAX_S 5.0

static const char *redis_host(void)
{
    const char *h = getenv("REDIS_HOST");
    if (h == NULL || h[0] == '\0') {
        fail_msg("REDIS_HOST is not set: run through tests/with-stack.sh (ctest does)");
    }
    return h;
}

static int redis_port(void)
{
    const char *p = getenv("REDIS_PORT");
    if (p == NULL || atoi(p) <= 0) {
        fail_msg("REDIS_PORT is not set: run through tests/with-stack.sh (ctest does)");
    }
    return atoi(p);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void unique_service(char *buf, size_t len, const char *base)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, len, "%s-%d-%ld", base, (int)getpid(), (long)(ts.tv_nsec % 100000000));
}

/* A direct hiredis connection for checking what the library wrote. */
static redisContext *checker(void)
{
    struct timeval tv = {2, 0};
    redisContext *rc = redisConnectWithTimeout(redis_host(), redis_port(), tv);
    if (rc == NULL || rc->err != 0) {
        fail_msg("connect to Redis %s:%d: %s", redis_host(), redis_port(),
                 rc != NULL ? rc->errstr : "oom");
    }
    return rc;
}

static long long get_int(redisContext *rc, const char *key)
{
    redisReply *r = redisCommand(rc, "GET %s", key);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

static long long ttl(redisContext *rc, const char *key)
{
    redisReply *r = redisCommand(rc, "TTL %s", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void bucket_key(char *buf, size_t len, const char *service, const char *name, time_t minute)
{
    time_t t = minute * 60;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "topup:ctr:%s:%s:m:%04d%02d%02d%02d%02d", service, name, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
}

/* A loopback port nobody listens on. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A "hung Redis": accepts TCP connections (kernel backlog) but never reads nor answers. */
static int hung_server(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_totals_buckets_gauges(void **state)
{
    (void)state;
    char svc[64], key[256];
    unique_service(svc, sizeof(svc), "itest-ctr");
    time_t minute_before = time(NULL) / 60;
    struct counters *c = counters_new(svc, NULL, 0);
    counters_incr(c, "orders.created", 1);
    counters_incr(c, "orders.created", 1);
    counters_incr(c, "orders.created", 1);
    counters_incr(c, "bytes_in", 1000);
    counters_gauge(c, "outbox.backlog", 7);
    counters_gauge(c, "outbox.backlog", 9); /* the last one before a flush wins */
    counters_flush(c);
    time_t minute_after = time(NULL) / 60;

    redisContext *rc = checker();
    snprintf(key, sizeof(key), "topup:ctr:%s:orders.created", svc);
    assert_int_equal(get_int(rc, key), 3);
    assert_int_equal(ttl(rc, key), -1); /* totals never expire */
    snprintf(key, sizeof(key), "topup:ctr:%s:bytes_in", svc);
    assert_int_equal(get_int(rc, key), 1000);
    snprintf(key, sizeof(key), "topup:gauge:%s:outbox.backlog", svc);
    assert_int_equal(get_int(rc, key), 9);

    /* The minute bucket (the increments may straddle a minute boundary) with its 48 h TTL. */
    long long in_buckets = 0;
    for (time_t m = minute_before; m <= minute_after; m++) {
        bucket_key(key, sizeof(key), svc, "orders.created", m);
        long long v = get_int(rc, key);
        if (v > 0) {
            in_buckets += v;
            long long t = ttl(rc, key);
            assert_true(t > 0 && t <= COUNTERS_BUCKET_TTL_S);
        }
    }
    assert_int_equal(in_buckets, 3);

    /* Later increments add to the same keys; a flush with nothing buffered sends nothing. */
    counters_incr(c, "orders.created", 2);
    counters_flush(c);
    counters_flush(c);
    snprintf(key, sizeof(key), "topup:ctr:%s:orders.created", svc);
    assert_int_equal(get_int(rc, key), 5);
    assert_int_equal(counters_dropped(c), 0);

    /* counters_free flushes what is left. */
    counters_incr(c, "orders.created", 10);
    counters_free(c);
    assert_int_equal(get_int(rc, key), 15);
    redisFree(rc);
}

struct hammer_arg {
    struct counters *c;
    int n;
};

static void *hammer(void *p)
{
    struct hammer_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        counters_incr(a->c, "hits", 1);
        if (i % 1000 == 0) {
            counters_flush(a->c); /* flushes race with increments from other threads */
        }
    }
    return NULL;
}

static void test_threads_lose_nothing(void **state)
{
    (void)state;
    enum { THREADS = 4, PER_THREAD = 20000 };
    char svc[64], key[256];
    unique_service(svc, sizeof(svc), "itest-thr");
    struct counters *c = counters_new(svc, redis_host(), redis_port());
    pthread_t th[THREADS];
    struct hammer_arg arg = {.c = c, .n = PER_THREAD};
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &arg), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    counters_flush(c);
    assert_int_equal(counters_dropped(c), 0);
    redisContext *rc = checker();
    snprintf(key, sizeof(key), "topup:ctr:%s:hits", svc);
    assert_int_equal(get_int(rc, key), THREADS * PER_THREAD);
    redisFree(rc);
    counters_free(c);
}

static void test_redis_dead_port(void **state)
{
    (void)state;
    struct counters *c = counters_new("itest-dead", "127.0.0.1", dead_port());
    double t0 = now_s();
    for (int i = 0; i < 1000; i++) {
        counters_incr(c, "orders.created", 1);
        counters_gauge(c, "outbox.backlog", i);
        counters_flush(c);
    }
    double took = now_s() - t0;
    printf("1000 incr+gauge+flush with Redis refusing connections: %.3f s\n", took);
    assert_true(took < REDIS_DOWN_LOOP_MAX_S);
    /* Nothing was sent, so nothing was lost: it waits in the buffer for Redis to return. */
    assert_int_equal(counters_dropped(c), 0);
    counters_free(c);
}

static void test_redis_hung(void **state)
{
    (void)state;
    int port = 0;
    int fd = hung_server(&port);
    struct counters *c = counters_new("itest-hung", "127.0.0.1", port);
    double t0 = now_s();
    for (int i = 0; i < 1000; i++) {
        counters_incr(c, "orders.created", 1);
        counters_flush(c);
    }
    double took = now_s() - t0;
    printf("1000 incr+flush with a Redis that never answers: %.3f s\n", took);
    assert_true(took < REDIS_DOWN_LOOP_MAX_S);
    /* Sent but never confirmed: dropped and counted rather than risk counting twice. */
    assert_true(counters_dropped(c) >= 1);
    t0 = now_s();
    counters_free(c);
    assert_true(now_s() - t0 < REDIS_DOWN_LOOP_MAX_S);
    close(fd);
}

static void test_buffer_bound(void **state)
{
    (void)state;
    /* Never connected (dead port): at the maximum, updates are dropped and counted. */
    struct counters *c = counters_new("itest-full", "127.0.0.1", dead_port());
    enum { EXTRA = 476 };
    for (int i = 0; i < COUNTERS_BUFFER_MAX + EXTRA; i++) {
        char name[32];
        snprintf(name, sizeof(name), "n.%d", i);
        counters_incr(c, name, 1);
    }
    assert_int_equal(counters_dropped(c), EXTRA);
    /* Names that would break the key scheme are dropped, not sent. */
    counters_incr(c, "Bad:Name", 1);
    counters_incr(c, "", 1);
    assert_int_equal(counters_dropped(c), EXTRA + 2);
    counters_free(c);
    counters_free(NULL);
}

static void test_drops_are_reported(void **state)
{
    (void)state;
    char svc[64], key[256];
    unique_service(svc, sizeof(svc), "itest-drop");
    struct counters *c = counters_new(svc, redis_host(), redis_port());
    counters_incr(c, "BAD NAME", 1);
    counters_incr(c, "good", 1);
    counters_flush(c);
    redisContext *rc = checker();
    snprintf(key, sizeof(key), "topup:ctr:%s:counters.dropped", svc);
    assert_int_equal(get_int(rc, key), 1);
    snprintf(key, sizeof(key), "topup:ctr:%s:good", svc);
    assert_int_equal(get_int(rc, key), 1);
    redisFree(rc);
    counters_free(c);
}

static long long client_id(struct redis_client *r)
{
    struct tp_error err = {0};
    redisReply *rep = NULL;
    if (redis_command(r, &rep, &err, "CLIENT ID") != TP_OK) {
        fail_msg("CLIENT ID: %s", err.msg);
    }
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    long long id = rep->integer;
    freeReplyObject(rep);
    return id;
}

static void test_client_reconnects_after_kill(void **state)
{
    (void)state;
    struct redis_client *r = redis_new(redis_host(), redis_port(), 0, 0);
    struct tp_error err = {0};
    long long id = client_id(r);
    assert_true(redis_connected(r));

    redisContext *rc = checker();
    redisReply *k = redisCommand(rc, "CLIENT KILL ID %lld", id);
    assert_non_null(k);
    assert_int_equal(k->type, REDIS_REPLY_INTEGER);
    assert_int_equal(k->integer, 1);
    freeReplyObject(k);
    redisFree(rc);

    /* The loss is found by the next command; then the client backs off, then reconnects. */
    enum tp_status st = redis_command(r, NULL, &err, "PING");
    if (st == TP_RETRY) {
        assert_false(redis_connected(r));
        assert_int_equal(redis_command(r, NULL, &err, "PING"), TP_RETRY); /* backing off */
        usleep((REDIS_BACKOFF_MIN_MS + 100) * 1000);
        st = redis_command(r, NULL, &err, "PING");
    }
    if (st != TP_OK) {
        fail_msg("PING after reconnect: %s", err.msg);
    }
    assert_int_not_equal(client_id(r), id);
    redis_free(r);
}

static void test_pipeline(void **state)
{
    (void)state;
    char svc[64], key[128];
    unique_service(svc, sizeof(svc), "itest-pipe");
    snprintf(key, sizeof(key), "topup:test:%s", svc);
    struct redis_client *r = redis_new(redis_host(), redis_port(), 0, 0);
    struct redis_pipeline *p = redis_pipeline_new();
    struct tp_error err = {0};
    assert_int_equal(redis_pipeline_add(p, "SET %s %d", key, 5), TP_OK);
    assert_int_equal(redis_pipeline_add(p, "INCRBY %s %d", key, 2), TP_OK);
    const char *argv[] = {"GET", key};
    assert_int_equal(redis_pipeline_add_argv(p, 2, argv, NULL), TP_OK);
    assert_int_equal(redis_pipeline_add(p, "EXPIRE %s 60", key), TP_OK);
    assert_int_equal(redis_pipeline_len(p), 4);
    assert_int_equal(redis_pipeline_exec(r, p, &err), TP_OK);
    const redisReply *got = redis_pipeline_reply(p, 2);
    assert_non_null(got);
    assert_int_equal(got->type, REDIS_REPLY_STRING);
    assert_string_equal(got->str, "7");
    assert_null(redis_pipeline_reply(p, 4));

    /* An error reply in the middle: every reply read, TP_INVALID, the connection still usable. */
    redis_pipeline_reset(p);
    assert_int_equal(redis_pipeline_add(p, "LPUSH %s x", key), TP_OK); /* WRONGTYPE */
    assert_int_equal(redis_pipeline_add(p, "GET %s", key), TP_OK);
    assert_int_equal(redis_pipeline_exec(r, p, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "WRONGTYPE"));
    assert_string_equal(redis_pipeline_reply(p, 1)->str, "7");
    assert_int_equal(redis_command(r, NULL, &err, "DEL %s", key), TP_OK);
    assert_int_equal(redis_command(r, NULL, &err, "NOSUCHCOMMAND"), TP_INVALID);
    assert_true(redis_connected(r));
    redis_pipeline_free(p);
    redis_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totals_buckets_gauges),
        cmocka_unit_test(test_threads_lose_nothing),
        cmocka_unit_test(test_redis_dead_port),
        cmocka_unit_test(test_redis_hung),
        cmocka_unit_test(test_buffer_bound),
        cmocka_unit_test(test_drops_are_reported),
        cmocka_unit_test(test_client_reconnects_after_kill),
        cmocka_unit_test(test_pipeline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
