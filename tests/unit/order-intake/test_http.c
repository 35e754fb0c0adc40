/* Unit tests of http.c over real sockets: limits (413, 431), ambiguous framing, per-address
 * connections, header and body deadlines, deferred answers, routing, draining. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "client.h"
#include "topup/http.h"

#define BODY_MAX 1024

static void route_hello(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    http_respond_json(req, 200, json_pack("{s:s}", "hello", "世界"));
}

static void route_echo(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    const char *ct = http_request_header(req, "Content-Type");
    http_respond_json(req, 200,
                      json_pack("{s:I, s:s%, s:s?}", "len", (json_int_t)len, "body", body, len,
                                "content_type", ct));
}

static void *defer_thread(void *arg)
{
    struct http_request *req = arg;
    usleep(50 * 1000);
    http_response_header(req, "X-Deferred", "yes");
    http_respond_json(req, 202, json_pack("{s:b}", "deferred", 1));
    return NULL;
}

static void route_defer(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, defer_thread, req), 0);
    pthread_detach(t);
}

static void route_order(void *ctx, struct http_request *req, const struct http_route_match *m)
{
    http_respond_json(req, 200, json_pack("{s:s, s:i}", "code", m->params[0], "n", m->n));
}

static const struct http_route routes[] = {
    {"GET", "/hello", route_hello},
    {"POST", "/echo", route_echo},
    {"GET", "/defer", route_defer},
    {"GET", "/orders/{code}", route_order},
    {"POST", "/orders/{code}/cancel", route_order},
    {0},
};

static void handler(void *ctx, struct http_request *req)
{
    const struct http_route *rt = NULL;
    struct http_route_match m;
    char allow[64];
    switch (http_route_find(routes, http_request_method(req), http_request_path(req), &rt, &m,
                            allow, sizeof(allow))) {
    case HTTP_ROUTE_OK:
        rt->fn(ctx, req, &m);
        break;
    case HTTP_ROUTE_METHOD_NOT_ALLOWED:
        http_response_header(req, "Allow", allow);
        http_respond_error(req, 405, "method_not_allowed", "method not allowed", NULL);
        break;
    case HTTP_ROUTE_NOT_FOUND:
        http_respond_error(req, 404, "not_found", "no such path", NULL);
        break;
    }
}

static struct http_server *start(void)
{
    struct http_server_config cfg = {
        .addr = "127.0.0.1",
        .port = 0,
        .threads = 2,
        .body_max_bytes = BODY_MAX,
        .header_max_bytes = 8192,
        .connections_max = 64,
        .idle_timeout_s = 5,
    };
    struct tp_error err = {0};
    struct http_server *s = http_server_new(&cfg, handler, NULL, &err);
    if (s == NULL) {
        fail_msg("http_server_new: %s", err.msg);
    }
    assert_true(http_server_port(s) > 0);
    return s;
}

static json_t *parse(const struct hc_response *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    if (j == NULL) {
        fail_msg("not JSON: %s", r->body);
    }
    return j;
}

/*
 * In-flight count once the server is idle. libmicrohttpd runs the completion callback just after
 * the last byte is sent, so the client can see its answer a moment before the count drops: wait
 * for it, bounded (2 s), instead of reading it once.
 */
static int wait_idle(struct http_server *s)
{
    for (int i = 0; i < 200 && http_server_inflight(s) != 0; i++) {
        usleep(10000);
    }
    return (int)http_server_inflight(s);
}

static void test_basic_and_keepalive(void **state)
{
    (void)state;
    struct http_server *s = start();
    struct hc_conn *c = hc_connect(NULL, http_server_port(s));
    assert_non_null(c);
    for (int i = 0; i < 5; i++) {
        struct hc_response r;
        assert_int_equal(hc_request(c, "GET", "/hello", NULL, NULL, 0, &r), 0);
        assert_int_equal(r.status, 200);
        assert_false(r.closed);
        char v[128];
        assert_string_equal(hc_header(&r, "Content-Type", v, sizeof(v)),
                            "application/json; charset=utf-8");
        assert_string_equal(hc_header(&r, "Cache-Control", v, sizeof(v)), "no-store");
        assert_string_equal(r.body, "{\"hello\":\"世界\"}");
        hc_response_free(&r);
    }
    /* A body, exactly at the limit, with its bytes intact. */
    char body[BODY_MAX];
    memset(body, 'b', sizeof(body));
    const char *hdrs[] = {"Content-Type: application/octet-stream", NULL};
    struct hc_response r;
    assert_int_equal(hc_request(c, "POST", "/echo", hdrs, body, sizeof(body), &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = parse(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "len")), BODY_MAX);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "body"))), BODY_MAX);
    assert_string_equal(json_string_value(json_object_get(j, "content_type")),
                        "application/octet-stream");
    json_decref(j);
    hc_response_free(&r);
    /* Unknown path and wrong method. */
    assert_int_equal(hc_request(c, "GET", "/nope", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    hc_response_free(&r);
    assert_int_equal(hc_request(c, "DELETE", "/echo", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 405);
    char v[64];
    assert_string_equal(hc_header(&r, "Allow", v, sizeof(v)), "POST");
    j = parse(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "method_not_allowed");
    assert_true(json_is_null(json_object_get(json_object_get(j, "error"), "field")));
    json_decref(j);
    hc_response_free(&r);
    /* HEAD on a GET route: headers, no body. */
    assert_int_equal(hc_request(c, "HEAD", "/hello", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    hc_response_free(&r);
    hc_close(c);
    assert_int_equal(wait_idle(s), 0);
    http_server_free(s, 1000);
}

static void test_body_too_large(void **state)
{
    (void)state;
    struct http_server *s = start();
    char *body = malloc(BODY_MAX + 1);
    memset(body, 'x', BODY_MAX + 1);
    struct hc_conn *c = hc_connect(NULL, http_server_port(s));
    struct hc_response r;
    /* Declared length over the limit: refused before the body is read. */
    assert_int_equal(hc_request(c, "POST", "/echo", NULL, body, BODY_MAX + 1, &r), 0);
    assert_int_equal(r.status, 413);
    json_t *j = parse(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "body_too_large");
    json_decref(j);
    hc_response_free(&r);
    hc_close(c);

    /* Chunked body over the limit: read, discarded, then 413. */
    c = hc_connect(NULL, http_server_port(s));
    char raw[4096];
    int n = snprintf(raw, sizeof(raw),
                     "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "%x\r\n%.*s\r\n%x\r\n%.*s\r\n0\r\n\r\n",
                     800, 800, body, 800, 800, body);
    assert_int_equal(hc_raw(c, raw, (size_t)n, &r), 0);
    assert_int_equal(r.status, 413);
    hc_response_free(&r);
    hc_close(c);
    free(body);
    http_server_free(s, 1000);
}

static void test_headers_too_large(void **state)
{
    (void)state;
    struct http_server *s = start();
    char big[12000];
    memset(big, 'h', sizeof(big));
    memcpy(big, "X-Big: ", 7);
    big[sizeof(big) - 1] = '\0';
    const char *hdrs[] = {big, NULL};
    struct hc_response r;
    assert_int_equal(hc_once(NULL, http_server_port(s), "GET", "/hello", hdrs, NULL, &r), 0);
    assert_int_equal(r.status, 431);
    hc_response_free(&r);
    /* The server is fine afterwards. */
    assert_int_equal(hc_once(NULL, http_server_port(s), "GET", "/hello", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    hc_response_free(&r);
    http_server_free(s, 1000);
}

struct defer_arg {
    int port;
    int status;
    char hdr[16];
};

static void *defer_client(void *p)
{
    struct defer_arg *a = p;
    struct hc_response r;
    if (hc_once(NULL, a->port, "GET", "/defer", NULL, NULL, &r) == 0) {
        a->status = r.status;
        hc_header(&r, "X-Deferred", a->hdr, sizeof(a->hdr));
        hc_response_free(&r);
    }
    return NULL;
}

static void test_deferred(void **state)
{
    (void)state;
    struct http_server *s = start();
    enum { N = 32 };
    pthread_t t[N];
    struct defer_arg a[N];
    for (int i = 0; i < N; i++) {
        a[i] = (struct defer_arg){.port = http_server_port(s)};
        pthread_create(&t[i], NULL, defer_client, &a[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].status, 202);
        assert_string_equal(a[i].hdr, "yes");
    }
    for (int i = 0; i < 100 && http_server_inflight(s) > 0; i++) {
        usleep(10000);
    }
    assert_int_equal(wait_idle(s), 0);
    http_server_free(s, 1000);
}

static void test_drain(void **state)
{
    (void)state;
    struct http_server *s = start();
    int port = http_server_port(s);
    struct defer_arg a = {.port = port};
    pthread_t t;
    pthread_create(&t, NULL, defer_client, &a);
    while (http_server_inflight(s) == 0) {
        usleep(1000);
    }
    http_server_quiesce(s);
    /* No new connections... */
    struct hc_conn *c = hc_connect(NULL, port);
    assert_null(c);
    /* ...and the one in flight is answered. */
    pthread_join(t, NULL);
    assert_int_equal(a.status, 202);
    http_server_free(s, 2000);
}

static void test_routes(void **state)
{
    (void)state;
    const struct http_route *rt = NULL;
    struct http_route_match m;
    char allow[64];
    assert_int_equal(http_route_find(routes, "GET", "/orders/TU123", &rt, &m, allow, sizeof(allow)),
                     HTTP_ROUTE_OK);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.params[0], "TU123");
    assert_int_equal(
        http_route_find(routes, "POST", "/orders/TU123/cancel", &rt, &m, allow, sizeof(allow)),
        HTTP_ROUTE_OK);
    assert_string_equal(rt->pattern, "/orders/{code}/cancel");
    assert_int_equal(http_route_find(routes, "GET", "/orders/", &rt, &m, allow, sizeof(allow)),
                     HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(http_route_find(routes, "GET", "/orders/a/b", &rt, &m, allow, sizeof(allow)),
                     HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(http_route_find(routes, "GET", "/hello/", &rt, &m, allow, sizeof(allow)),
                     HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(http_route_find(routes, "POST", "/orders/TU1", &rt, &m, allow, sizeof(allow)),
                     HTTP_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "GET");
    assert_int_equal(http_route_find(routes, "HEAD", "/hello", &rt, &m, allow, sizeof(allow)),
                     HTTP_ROUTE_OK);
    char longp[400] = "/orders/";
    memset(longp + 8, 'a', 300);
    longp[308] = '\0';
    assert_int_equal(http_route_find(routes, "GET", longp, &rt, &m, allow, sizeof(allow)),
                     HTTP_ROUTE_NOT_FOUND);
}

/* A raw TCP connection to the server, for clients that misbehave. */
static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* True when the server closed fd (or answered and closed) within timeout_ms. */
static bool raw_closed_within(int fd, int timeout_ms)
{
    char buf[4096];
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            if (n <= 0) {
                return true;
            }
        }
    }
    return false;
}

/*
 * Slow clients (a request trickled half-way and left) and malformed requests do not hurt the
 * requests of others, and the idle timeout reclaims the stalled connections.
 */
static void test_slow_and_malformed_clients(void **state)
{
    (void)state;
    struct http_server *s = start();
    int port = http_server_port(s);
    enum { SLOW = 16 };
    int slow[SLOW];
    for (int i = 0; i < SLOW; i++) {
        slow[i] = raw_connect(port);
        const char *half =
            i % 2 ? "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab" : "GET /hel";
        assert_true(send(slow[i], half, strlen(half), 0) > 0);
    }
    /* Malformed: a request line that is not HTTP, and a header line without a colon. */
    const char *bad[] = {"GARBAGE\r\n\r\n", "GET /hello HTTP/1.1\r\nHost x\r\nno-colon\r\n\r\n",
                         "GET /hello HTTP/9.9\r\nHost: x\r\n\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int fd = raw_connect(port);
        assert_true(send(fd, bad[i], strlen(bad[i]), 0) > 0);
        /* The server answers (an error) and/or closes; it never hangs on it. */
        assert_true(raw_closed_within(fd, 3000));
        close(fd);
    }
    /* Meanwhile ordinary requests are served at once. */
    for (int i = 0; i < 20; i++) {
        struct hc_response r;
        assert_int_equal(hc_once("127.0.0.1", port, "GET", "/hello", NULL, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        hc_response_free(&r);
    }
    /* The stalled connections are closed by the idle timeout (5 s here), not kept forever. */
    for (int i = 0; i < SLOW; i++) {
        assert_true(raw_closed_within(slow[i], 12000));
        close(slow[i]);
    }
    assert_int_equal(wait_idle(s), 0);
    http_server_free(s, 1000);
}

/*
 * Ambiguous framing never reaches the handler (the echo route would answer 200): 400 bad_framing
 * or 501, then the connection is closed, so the bytes after the headers are never a request.
 */
static void test_framing(void **state)
{
    (void)state;
    struct http_server *s = start();
    int port = http_server_port(s);
    static const struct {
        const char *framing;
        int status;
        const char *code;
    } cases[] = {
        {"Content-Length: 4\r\nContent-Length: 40\r\n", 400, "bad_framing"},
        {"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", 400, "bad_framing"},
        {"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", 400, "bad_framing"},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400, "bad_framing"},
        {"Transfer-Encoding: gzip\r\n", 501, "transfer_encoding_unsupported"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[512];
        snprintf(req, sizeof(req),
                 "POST /echo HTTP/1.1\r\nHost: x\r\n%s\r\n4\r\nabcd\r\n0\r\n\r\n"
                 "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
                 cases[i].framing);
        struct hc_conn *c = hc_connect(NULL, port);
        assert_non_null(c);
        struct hc_response r;
        assert_int_equal(hc_raw(c, req, strlen(req), &r), 0);
        assert_int_equal(r.status, cases[i].status);
        json_t *j = parse(&r);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                            cases[i].code);
        json_decref(j);
        assert_true(r.closed);
        hc_response_free(&r);
        hc_close(c);
    }
    /* The same length twice is one length, and chunked alone is fine. */
    const char *ok[] = {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                        "Content-Length: 4\r\n\r\nabcd",
                        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "4\r\nabcd\r\n0\r\n\r\n"};
    for (size_t i = 0; i < 2; i++) {
        struct hc_conn *c = hc_connect(NULL, port);
        struct hc_response r;
        assert_int_equal(hc_raw(c, ok[i], strlen(ok[i]), &r), 0);
        assert_int_equal(r.status, 200);
        json_t *j = parse(&r);
        assert_int_equal(json_integer_value(json_object_get(j, "len")), 4);
        json_decref(j);
        hc_response_free(&r);
        hc_close(c);
    }
    assert_int_equal(wait_idle(s), 0);
    http_server_free(s, 1000);
}

/* Per-address limit and the two deadlines, with small values (3 s) on an idle timeout of 30 s. */
static void test_client_limits(void **state)
{
    (void)state;
    struct http_server_config cfg = {
        .addr = "127.0.0.1",
        .threads = 2,
        .body_max_bytes = BODY_MAX,
        .connections_max = 64,
        .per_ip_connections_max = 4,
        .idle_timeout_s = 30,
        .header_timeout_s = 3,
        .body_timeout_s = 3,
    };
    struct tp_error err = {0};
    struct http_server *s = http_server_new(&cfg, handler, NULL, &err);
    assert_non_null(s);
    int port = http_server_port(s);
    int fds[6];
    for (int i = 0; i < 6; i++) {
        fds[i] = raw_connect(port);
        const char *part =
            i == 0 ? "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab" : "GET /hel";
        assert_true(send(fds[i], part, strlen(part), 0) > 0);
    }
    /* Beyond 4 from 127.0.0.1: closed at accept, while the first 4 stay open. */
    assert_true(raw_closed_within(fds[4], 2000));
    assert_true(raw_closed_within(fds[5], 2000));
    for (int i = 0; i < 4; i++) {
        assert_false(raw_closed_within(fds[i], 100));
    }
    /* The 4 held ones (3 without headers, 1 without its body) close at their 3 s deadline. */
    for (int i = 0; i < 4; i++) {
        assert_true(raw_closed_within(fds[i], 6000));
    }
    for (int i = 0; i < 6; i++) {
        close(fds[i]);
    }
    /* Served again once the server has freed them (libmicrohttpd does so on its next turn). */
    struct hc_response r;
    int rc = -1;
    for (int i = 0; i < 200 && rc != 0; i++) {
        rc = hc_once("127.0.0.1", port, "GET", "/hello", NULL, NULL, &r);
        if (rc != 0) {
            usleep(10000);
        }
    }
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, 200);
    hc_response_free(&r);
    assert_int_equal(wait_idle(s), 0);
    http_server_free(s, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_and_keepalive),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_headers_too_large),
        cmocka_unit_test(test_deferred),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_slow_and_malformed_clients),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_client_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
