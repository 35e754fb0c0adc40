/*
 * order-intake's HTTP edge against the attacks of issue 15 over raw sockets: ambiguous framing
 * (request smuggling) answered 400/501 with the connection closed and nothing created; one
 * client's slow connections beyond the per-address limit closed while a client from another
 * address (127.0.0.2) is served; headers trickled in never outlive the header deadline, nor a
 * body trickled in the body deadline (and the order it carried is not created).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define GUARD_HEADER_TIMEOUT_S 6
#define GUARD_BODY_TIMEOUT_S   3
#define GUARD_PER_IP_MAX       64   /* order-intake's default, not set in the test */
#define GUARD_SLOW_CONNS       1100 /* the attack: 1,100 slow connections from one client */
#define GUARD_READ_MS          3000

static struct it_service svc;

/* A TCP connection to the service from source address src (any 127.x.y.z is local on Linux). */
static int guard_connect(const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_MSG(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET};
    CHECK(inet_pton(AF_INET, src, &a.sin_addr) == 1);
    CHECK_MSG(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind %s: %s", src, strerror(errno));
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)svc.port)};
    CHECK(inet_pton(AF_INET, "127.0.0.1", &to.sin_addr) == 1);
    CHECK_MSG(connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0, "connect from %s: %s", src,
              strerror(errno));
    return fd;
}

static bool guard_send(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return false;
        }
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/*
 * Reads what the server sends until it closes the connection or timeout_ms passes. Returns the
 * bytes read (NUL-terminated in buf); *closed tells whether the server closed (EOF or reset).
 */
static size_t guard_read_all(int fd, char *buf, size_t size, int timeout_ms, bool *closed)
{
    size_t got = 0;
    int64_t deadline = it_now_ms() + timeout_ms;
    *closed = false;
    for (;;) {
        int left = (int)(deadline - it_now_ms());
        if (left <= 0) {
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left) <= 0) {
            break;
        }
        char tmp[4096];
        ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
        if (n <= 0) {
            *closed = true;
            break;
        }
        size_t take = (size_t)n < size - 1 - got ? (size_t)n : size - 1 - got;
        memcpy(buf + got, tmp, take);
        got += take;
    }
    buf[got] = '\0';
    return got;
}

static int guard_status(const char *resp)
{
    int status = 0;
    return sscanf(resp, "HTTP/1.%*d %d", &status) == 1 ? status : 0;
}

/* Status lines in resp whose status is not want (a smuggled request answered shows as one). */
static int guard_other_statuses(const char *resp, int want)
{
    int n = 0;
    for (const char *p = strstr(resp, "HTTP/1."); p != NULL; p = strstr(p + 1, "HTTP/1.")) {
        if (guard_status(p) != want) {
            n++;
        }
    }
    return n;
}

static int64_t orders_of(const char *account)
{
    const char *p[] = {account};
    return it_i64("SELECT count(*) FROM topup_orders WHERE account_id = $1", 1, p);
}

struct smuggle_case {
    const char *what;
    const char *framing; /* header lines, each ending in \r\n */
    int status;
    const char *code; /* NULL: libmicrohttpd (0.9.75) refuses it itself, with its own body */
};

/*
 * Each request is an order creation whose body carries a second, smuggled request after what one
 * reading of its length would take. Refused whole: status and code as expected, the connection
 * closed with exactly one response on it, and no order created by either request.
 */
static void test_smuggling(const char *account, const char *token)
{
    it_step("ambiguous framing: 400/501 with the connection closed, nothing created");
    char body[512], smuggled[512];
    it_body(body, sizeof(body), "100.00", "张三", "中国工商银行", NULL);
    snprintf(smuggled, sizeof(smuggled),
             "POST /v1/topup-orders/x/cancel HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
             "Content-Length: 0\r\n\r\n",
             token);
    char cl_real[64], cl_twice[128], cl_list[64], cl_te[128];
    size_t blen = strlen(body);
    snprintf(cl_real, sizeof(cl_real), "Content-Length: %zu\r\n", blen);
    snprintf(cl_twice, sizeof(cl_twice), "Content-Length: %zu\r\nContent-Length: %zu\r\n", blen,
             blen + strlen(smuggled));
    snprintf(cl_list, sizeof(cl_list), "Content-Length: %zu, %zu\r\n", blen,
             blen + strlen(smuggled));
    snprintf(cl_te, sizeof(cl_te), "Content-Length: %zu\r\nTransfer-Encoding: chunked\r\n", blen);
    const struct smuggle_case cases[] = {
        {"two Content-Length that differ", cl_twice, 400, "bad_framing"},
        {"a Content-Length list", cl_list, 400, NULL},
        {"Content-Length with chunked", cl_te, 400, "bad_framing"},
        {"Transfer-Encoding twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
         400, "bad_framing"},
        {"Transfer-Encoding gzip, chunked", "Transfer-Encoding: gzip, chunked\r\n", 501,
         "transfer_encoding_unsupported"},
        {"Transfer-Encoding identity", "Transfer-Encoding: identity\r\n", 501,
         "transfer_encoding_unsupported"},
    };
    int64_t before = orders_of(account);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct smuggle_case *c = &cases[i];
        char idem[IT_ID_MAX];
        it_id(idem, "smuggle");
        static char req[8192];
        snprintf(req, sizeof(req),
                 "POST /v1/topup-orders HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
                 "Idempotency-Key: %s\r\nContent-Type: application/json\r\n%s\r\n%s%s",
                 token, idem, c->framing, body, smuggled);
        int fd = guard_connect("127.0.0.1");
        CHECK(guard_send(fd, req, strlen(req)));
        static char resp[16384];
        bool closed = false;
        guard_read_all(fd, resp, sizeof(resp), GUARD_READ_MS, &closed);
        close(fd);
        CHECK_MSG(guard_status(resp) == c->status, "%s: status %d, want %d: %s", c->what,
                  guard_status(resp), c->status, resp);
        if (c->code != NULL) {
            char want_code[96];
            snprintf(want_code, sizeof(want_code), "\"code\":\"%s\"", c->code);
            CHECK_MSG(strstr(resp, want_code) != NULL, "%s: no %s in %s", c->what, c->code, resp);
        }
        CHECK_MSG(closed, "%s: the connection stayed open after the refusal", c->what);
        /* libmicrohttpd 0.9.75 writes its own 400's status line and headers twice; what matters
         * is that nothing but the refusal came back, so the smuggled request was never read. */
        CHECK_MSG(guard_other_statuses(resp, c->status) == 0, "%s: another response: %s", c->what,
                  resp);
        it_step("  %s: %d %s, connection closed", c->what, c->status,
                c->code != NULL ? c->code : "(refused by libmicrohttpd)");
    }
    CHECK_MSG(orders_of(account) == before, "a refused request created an order (%lld -> %lld)",
              (long long)before, (long long)orders_of(account));

    it_step("the same order with one Content-Length (and the same value twice) is created");
    const char *framings[] = {cl_real, NULL};
    char twice_same[128];
    snprintf(twice_same, sizeof(twice_same), "%s%s", cl_real, cl_real);
    framings[1] = twice_same;
    for (int i = 0; i < 2; i++) {
        char idem[IT_ID_MAX];
        it_id(idem, "framed");
        static char req[8192];
        snprintf(req, sizeof(req),
                 "POST /v1/topup-orders HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
                 "Idempotency-Key: %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 "%s\r\n%s",
                 token, idem, framings[i], body);
        int fd = guard_connect("127.0.0.1");
        CHECK(guard_send(fd, req, strlen(req)));
        static char resp[16384];
        bool closed = false;
        guard_read_all(fd, resp, sizeof(resp), GUARD_READ_MS, &closed);
        close(fd);
        CHECK_MSG(guard_status(resp) == 201, "well-framed order %d: %s", i, resp);
    }
    CHECK(orders_of(account) == before + 2);
}

/* Answers GET /healthz on a fresh connection from src within GUARD_READ_MS: the status. */
static int guard_health_from(const char *src)
{
    int fd = guard_connect(src);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    int status = 0;
    if (guard_send(fd, req, strlen(req))) {
        char resp[4096];
        bool closed = false;
        guard_read_all(fd, resp, sizeof(resp), GUARD_READ_MS, &closed);
        status = guard_status(resp);
    }
    close(fd);
    return status;
}

/* True when the server closes fd within timeout_ms (without sending a response). */
static bool guard_closed_within(int fd, int timeout_ms)
{
    char buf[256];
    bool closed = false;
    guard_read_all(fd, buf, sizeof(buf), timeout_ms, &closed);
    return closed;
}

/* True when the server has already closed fd (no wait). */
static bool guard_closed_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) {
        return false;
    }
    char buf[256];
    return recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0;
}

/*
 * The attack needs GUARD_SLOW_CONNS descriptors in this process: raises the soft limit to it and
 * returns how many slow connections the hard limit allows (never fewer than 4 x the per-address
 * limit, or the test fails saying so).
 */
static int guard_fd_limit(void)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rlim_t want = GUARD_SLOW_CONNS + 256;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    }
    int n = rl.rlim_cur >= want ? GUARD_SLOW_CONNS : (int)rl.rlim_cur - 256;
    CHECK_MSG(n >= 4 * GUARD_PER_IP_MAX, "open files limited to %llu: too few for the attack",
              (unsigned long long)rl.rlim_cur);
    return n;
}

static void test_slowloris(void)
{
    int nslow = guard_fd_limit();
    it_step("slowloris: %d slow connections from 127.0.0.1 (limit %d per address)", nslow,
            GUARD_PER_IP_MAX);
    static int fds[GUARD_SLOW_CONNS];
    const char *start = "GET /healthz HTTP/1.1\r\nHost: t\r\n";
    int64_t opened_ms = it_now_ms();
    for (int i = 0; i < nslow; i++) {
        fds[i] = guard_connect("127.0.0.1");
        (void)guard_send(fds[i], start, strlen(start));
    }
    /* Whatever is over the limit is closed at accept (on a busy machine within a few seconds,
     * still well before the header deadline); the first GUARD_PER_IP_MAX stay open. */
    int refused = 0, open_conns = nslow;
    while (open_conns > GUARD_PER_IP_MAX && it_now_ms() - opened_ms < 4000) {
        it_sleep_ms(100);
        for (int i = 0; i < nslow; i++) {
            if (fds[i] >= 0 && guard_closed_now(fds[i])) {
                close(fds[i]);
                fds[i] = -1;
                refused++;
                open_conns--;
            }
        }
    }
    it_step("  %d held open, %d closed by the server at once", open_conns, refused);
    CHECK_MSG(open_conns == GUARD_PER_IP_MAX, "%d slow connections held, want %d", open_conns,
              GUARD_PER_IP_MAX);

    it_step("another client (127.0.0.2) is served meanwhile; 127.0.0.1 is not");
    int64_t t0 = it_now_ms();
    CHECK_MSG(guard_health_from("127.0.0.2") == 200, "127.0.0.2 was not served");
    int64_t served_ms = it_now_ms() - t0;
    CHECK_MSG(served_ms < 3000, "127.0.0.2 waited %lld ms", (long long)served_ms);
    CHECK_MSG(guard_health_from("127.0.0.1") == 0, "127.0.0.1 got a connection over its limit");

    it_step("the held connections trickle a header byte every 500 ms: closed at the header "
            "deadline (%d s), not kept alive by the trickle",
            GUARD_HEADER_TIMEOUT_S);
    int still_open = open_conns;
    int64_t closed_at = 0;
    while (still_open > 0 && it_now_ms() - opened_ms < (GUARD_HEADER_TIMEOUT_S + 5) * 1000) {
        for (int i = 0; i < nslow; i++) {
            if (fds[i] < 0) {
                continue;
            }
            if (!guard_send(fds[i], "X", 1) || guard_closed_now(fds[i])) {
                close(fds[i]);
                fds[i] = -1;
                still_open--;
                closed_at = it_now_ms() - opened_ms;
            }
        }
        it_sleep_ms(500);
    }
    CHECK_MSG(still_open == 0, "%d trickling connections still open after %d s", still_open,
              GUARD_HEADER_TIMEOUT_S + 5);
    CHECK_MSG(closed_at >= GUARD_HEADER_TIMEOUT_S * 1000 - 500,
              "closed after %lld ms, before the %d s deadline", (long long)closed_at,
              GUARD_HEADER_TIMEOUT_S);
    it_step("  all closed by %lld ms after they opened", (long long)closed_at);
    CHECK_MSG(guard_health_from("127.0.0.1") == 200, "127.0.0.1 not served after the deadline");
}

static void test_silent_headers(void)
{
    it_step("a connection that never finishes its headers (and then sends nothing) is closed");
    int fd = guard_connect("127.0.0.2");
    const char *part = "POST /v1/topup-orders HTTP/1.1\r\nHost: t\r\n";
    CHECK(guard_send(fd, part, strlen(part)));
    int64_t t0 = it_now_ms();
    CHECK_MSG(guard_closed_within(fd, (GUARD_HEADER_TIMEOUT_S + 3) * 1000),
              "the connection was still open after %d s", GUARD_HEADER_TIMEOUT_S + 3);
    int64_t took = it_now_ms() - t0;
    close(fd);
    CHECK_MSG(took >= GUARD_HEADER_TIMEOUT_S * 1000 - 500, "closed after %lld ms", (long long)took);
    it_step("  closed after %lld ms", (long long)took);
}

/*
 * An order whose body trickles in a byte every 500 ms (2 KB declared): closed without an answer at
 * the body deadline although the idle timeout is far away, and no order created.
 */
static void test_slow_body(const char *account, const char *token)
{
    it_step("a body trickled in: closed at the body deadline (%d s), nothing created",
            GUARD_BODY_TIMEOUT_S);
    int64_t before = orders_of(account);
    char idem[IT_ID_MAX], head[4096];
    it_id(idem, "slowbody");
    snprintf(head, sizeof(head),
             "POST /v1/topup-orders HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
             "Idempotency-Key: %s\r\nContent-Type: application/json\r\n"
             "Content-Length: 2048\r\n\r\n{\"amount\": \"100.00\", ",
             token, idem);
    int fd = guard_connect("127.0.0.2");
    CHECK(guard_send(fd, head, strlen(head)));
    int64_t t0 = it_now_ms();
    bool closed = false;
    size_t answered = 0;
    while (!closed && it_now_ms() - t0 < (GUARD_BODY_TIMEOUT_S + 5) * 1000) {
        char buf[1024];
        closed = !guard_send(fd, " ", 1);
        if (!closed) {
            answered += guard_read_all(fd, buf, sizeof(buf), 500, &closed);
        }
    }
    CHECK_MSG(answered == 0, "the server answered a request whose body never arrived");
    int64_t took = it_now_ms() - t0;
    close(fd);
    CHECK_MSG(closed, "the trickling body was still accepted after %d s", GUARD_BODY_TIMEOUT_S + 5);
    CHECK_MSG(took >= GUARD_BODY_TIMEOUT_S * 1000 - 500,
              "closed after %lld ms, before the deadline", (long long)took);
    CHECK(orders_of(account) == before);
    it_step("  closed after %lld ms", (long long)took);
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "intake_http_guard");
    char header_timeout[64];
    snprintf(header_timeout, sizeof(header_timeout), "INTAKE_HEADER_TIMEOUT_S=%d",
             GUARD_HEADER_TIMEOUT_S);
    /* An idle timeout far beyond the header deadline, so that only the deadline can close. */
    char body_timeout[64];
    snprintf(body_timeout, sizeof(body_timeout), "INTAKE_BODY_TIMEOUT_S=%d", GUARD_BODY_TIMEOUT_S);
    const char *env[] = {header_timeout, body_timeout, "INTAKE_IDLE_TIMEOUT_S=60", NULL};
    it_start(&svc, env);
    it_wait_ready(&svc);
    char account[IT_ID_MAX], token[TOKEN_STR_MAX];
    it_id(account, "guard");
    it_token(token, account, 3600);
    test_smuggling(account, token);
    test_slowloris();
    test_silent_headers();
    test_slow_body(account, token);
    CHECK_MSG(it_stop(&svc, SIGTERM) == 0, "order-intake did not exit 0 on SIGTERM");
    printf("intake_http_guard: ok\n");
    return 0;
}
