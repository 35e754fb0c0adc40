/*
 * What the Kafka broker can do: one ApiVersions v0 request on a plain TCP connection to a
 * bootstrap server, before any client is made. librdkafka 2.0.2 negotiates versions itself but
 * exposes neither the broker's answer nor a feature check, and a broker without InitProducerId
 * or the group APIs would leave a service running without idempotence or without offsets.
 * ApiVersions is answered before authentication (KIP-35, KIP-152), so PLAINTEXT and
 * SASL_PLAINTEXT listeners both answer; a TLS listener is not probed.
 */
#include "topup/kafka_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "topup/log.h"
#include "topup/mem.h"

#define KAFKA_PROBE_CONNECT_MS    3000
#define KAFKA_PROBE_REPLY_MS      5000
#define KAFKA_PROBE_REPLY_MAX     65536 /* ApiVersions v0 answers are about 400 bytes */
#define KAFKA_PROBE_APIS_MAX      256
#define KAFKA_PROBE_HOST_MAX      256
#define KAFKA_PROBE_BOOTSTRAP_MAX 1024
#define KAFKA_PROBE_CORRELATION   0x746f7075 /* "topu" */

/* Kafka request types (api keys) we depend on. */
enum {
    KAFKA_API_PRODUCE = 0,
    KAFKA_API_FETCH = 1,
    KAFKA_API_OFFSET_COMMIT = 8,
    KAFKA_API_OFFSET_FETCH = 9,
    KAFKA_API_FIND_COORDINATOR = 10,
    KAFKA_API_JOIN_GROUP = 11,
    KAFKA_API_HEARTBEAT = 12,
    KAFKA_API_LEAVE_GROUP = 13,
    KAFKA_API_SYNC_GROUP = 14,
    KAFKA_API_API_VERSIONS = 18,
    KAFKA_API_INIT_PRODUCER_ID = 22,
};

struct kafka_probe_api {
    int16_t key;
    int16_t min;
    int16_t max;
};

struct kafka_probe_answer {
    int n;
    struct kafka_probe_api apis[KAFKA_PROBE_APIS_MAX];
};

static const struct {
    int16_t key;
    const char *name;
    int need;
} kafka_probe_required[] = {
    {KAFKA_API_INIT_PRODUCER_ID, "InitProducerId", KAFKA_PROBE_IDEMPOTENCE},
    {KAFKA_API_FIND_COORDINATOR, "FindCoordinator", KAFKA_PROBE_GROUPS},
    {KAFKA_API_JOIN_GROUP, "JoinGroup", KAFKA_PROBE_GROUPS},
    {KAFKA_API_SYNC_GROUP, "SyncGroup", KAFKA_PROBE_GROUPS},
    {KAFKA_API_HEARTBEAT, "Heartbeat", KAFKA_PROBE_GROUPS},
    {KAFKA_API_LEAVE_GROUP, "LeaveGroup", KAFKA_PROBE_GROUPS},
    {KAFKA_API_OFFSET_COMMIT, "OffsetCommit", KAFKA_PROBE_GROUPS},
    {KAFKA_API_OFFSET_FETCH, "OffsetFetch", KAFKA_PROBE_GROUPS},
};

/* The last bootstrap list whose answer was logged: each process logs it once, not per client. */
static pthread_mutex_t kafka_probe_lock = PTHREAD_MUTEX_INITIALIZER;
static char kafka_probe_logged[KAFKA_PROBE_BOOTSTRAP_MAX];

static void kafka_probe_put16(unsigned char *p, int v)
{
    p[0] = (unsigned char)((v >> 8) & 0xff);
    p[1] = (unsigned char)(v & 0xff);
}

static void kafka_probe_put32(unsigned char *p, int64_t v)
{
    p[0] = (unsigned char)((v >> 24) & 0xff);
    p[1] = (unsigned char)((v >> 16) & 0xff);
    p[2] = (unsigned char)((v >> 8) & 0xff);
    p[3] = (unsigned char)(v & 0xff);
}

static int32_t kafka_probe_get32(const unsigned char *p)
{
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
                     (uint32_t)p[3]);
}

static int16_t kafka_probe_get16(const unsigned char *p)
{
    return (int16_t)(((uint16_t)p[0] << 8) | (uint16_t)p[1]);
}

/* Waits for fd to become ready for events within timeout_ms; false on timeout or error. */
static bool kafka_probe_wait(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int r;
    do {
        r = poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    return r == 1 && (p.revents & events) != 0;
}

/* A connected socket to host:port within KAFKA_PROBE_CONNECT_MS, or -1. */
static int kafka_probe_connect(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int fd = -1;
    if (getaddrinfo(host, port, &hints, &res) != 0) {
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            int soerr = 0;
            socklen_t len = sizeof(soerr);
            if (errno != EINPROGRESS || !kafka_probe_wait(fd, POLLOUT, KAFKA_PROBE_CONNECT_MS) ||
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
                close(fd);
                fd = -1;
            }
        }
    }
    freeaddrinfo(res);
    return fd;
}

static bool kafka_probe_send_all(int fd, const unsigned char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!kafka_probe_wait(fd, POLLOUT, KAFKA_PROBE_REPLY_MS)) {
                return false;
            }
            continue;
        }
        if (w <= 0) {
            return false;
        }
        off += (size_t)w;
    }
    return true;
}

static bool kafka_probe_recv_all(int fd, unsigned char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        if (!kafka_probe_wait(fd, POLLIN, KAFKA_PROBE_REPLY_MS)) {
            return false;
        }
        ssize_t r = recv(fd, buf + off, len - off, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        off += (size_t)r;
    }
    return true;
}

/*
 * One ApiVersions v0 exchange with host:port. Returns TP_OK with the answer, TP_RETRY when the
 * broker could not be asked (unreachable, closed, timed out), TP_FATAL when it answered
 * something that is not an ApiVersions v0 answer.
 */
static enum tp_status kafka_probe_ask(const char *host, const char *port,
                                      struct kafka_probe_answer *out, struct tp_error *err)
{
    static const char client_id[] = "topup-probe";
    unsigned char req[4 + 2 + 2 + 4 + 2 + sizeof(client_id)];
    size_t body = 2 + 2 + 4 + 2 + (sizeof(client_id) - 1);
    unsigned char *reply = NULL;
    enum tp_status st = TP_RETRY;
    kafka_probe_put32(req, (int64_t)body);
    kafka_probe_put16(req + 4, KAFKA_API_API_VERSIONS);
    kafka_probe_put16(req + 6, 0);
    kafka_probe_put32(req + 8, KAFKA_PROBE_CORRELATION);
    kafka_probe_put16(req + 12, (int)(sizeof(client_id) - 1));
    memcpy(req + 14, client_id, sizeof(client_id) - 1);
    int fd = kafka_probe_connect(host, port);
    if (fd < 0) {
        error_set(err, TP_RETRY, "kafka probe: %s:%s does not accept connections", host, port);
        goto out;
    }
    unsigned char head[4];
    if (!kafka_probe_send_all(fd, req, 4 + body) || !kafka_probe_recv_all(fd, head, 4)) {
        error_set(err, TP_RETRY, "kafka probe: %s:%s did not answer ApiVersions", host, port);
        goto out;
    }
    int32_t len = kafka_probe_get32(head);
    if (len < 10 || len > KAFKA_PROBE_REPLY_MAX) {
        st = error_set(err, TP_FATAL, "kafka probe: %s:%s answered a %d-byte frame: not Kafka",
                       host, port, (int)len);
        goto out;
    }
    reply = mem_alloc((size_t)len);
    if (!kafka_probe_recv_all(fd, reply, (size_t)len)) {
        error_set(err, TP_RETRY, "kafka probe: %s:%s closed mid-answer", host, port);
        goto out;
    }
    int32_t n = kafka_probe_get32(reply + 6);
    if (kafka_probe_get32(reply) != KAFKA_PROBE_CORRELATION || n < 0 || n > KAFKA_PROBE_APIS_MAX ||
        10 + (int64_t)n * 6 > len) {
        st = error_set(err, TP_FATAL, "kafka probe: %s:%s answered ApiVersions out of shape", host,
                       port);
        goto out;
    }
    int16_t code = kafka_probe_get16(reply + 4);
    if (code != 0) {
        st = error_set(err, TP_FATAL, "kafka probe: %s:%s refused ApiVersions v0 (error %d)", host,
                       port, (int)code);
        goto out;
    }
    out->n = (int)n;
    for (int i = 0; i < out->n; i++) {
        const unsigned char *a = reply + 10 + i * 6;
        out->apis[i] = (struct kafka_probe_api){kafka_probe_get16(a), kafka_probe_get16(a + 2),
                                                kafka_probe_get16(a + 4)};
    }
    st = TP_OK;
out:
    free(reply);
    if (fd >= 0) {
        close(fd);
    }
    return st;
}

static const struct kafka_probe_api *kafka_probe_find(const struct kafka_probe_answer *a,
                                                      int16_t key)
{
    for (int i = 0; i < a->n; i++) {
        if (a->apis[i].key == key) {
            return &a->apis[i];
        }
    }
    return NULL;
}

static int kafka_probe_max(const struct kafka_probe_answer *a, int16_t key)
{
    const struct kafka_probe_api *api = kafka_probe_find(a, key);
    return api != NULL ? api->max : -1;
}

/*
 * ApiVersions carries no release number; the highest versions of a few requests identify the
 * release line, and the lowest JoinGroup version tells a 4.x broker (KIP-896 dropped v0-v1).
 */
static void kafka_probe_log(const char *where, const struct kafka_probe_answer *a)
{
    const struct kafka_probe_api *join = kafka_probe_find(a, KAFKA_API_JOIN_GROUP);
    const char *line = join == NULL     ? "no consumer groups"
                       : join->min >= 2 ? "Kafka 4.x or later (JoinGroup v0-v1 removed)"
                       : join->max >= 9 ? "Kafka 3.x"
                       : join->max >= 5 ? "Kafka 2.x"
                                        : "Kafka before 2.0";
    log_info("kafka broker answered ApiVersions", LF_S("broker", where), LF_S("release", line),
             LF_I("apis", a->n), LF_I("produce_max", kafka_probe_max(a, KAFKA_API_PRODUCE)),
             LF_I("fetch_max", kafka_probe_max(a, KAFKA_API_FETCH)),
             LF_I("join_group_max", kafka_probe_max(a, KAFKA_API_JOIN_GROUP)),
             LF_I("init_producer_id_max", kafka_probe_max(a, KAFKA_API_INIT_PRODUCER_ID)));
}

enum tp_status kafka_probe_check(const char *bootstrap, const char *security_protocol, int needs,
                                 struct tp_error *err)
{
    if (security_protocol != NULL && (strcasecmp(security_protocol, "ssl") == 0 ||
                                      strcasecmp(security_protocol, "sasl_ssl") == 0)) {
        log_info("kafka broker features not probed: the listener needs TLS first",
                 LF_S("security_protocol", security_protocol));
        return TP_OK;
    }
    if (bootstrap == NULL || bootstrap[0] == '\0' ||
        strlen(bootstrap) >= KAFKA_PROBE_BOOTSTRAP_MAX) {
        return TP_OK; /* librdkafka reports a missing or odd bootstrap list itself */
    }
    char list[KAFKA_PROBE_BOOTSTRAP_MAX];
    snprintf(list, sizeof(list), "%s", bootstrap);
    struct kafka_probe_answer *answer = mem_calloc(1, sizeof(*answer));
    struct tp_error last = {0};
    enum tp_status st = TP_RETRY;
    char where[KAFKA_PROBE_HOST_MAX + 8] = "";
    char *save = NULL;
    for (char *item = strtok_r(list, ", ", &save); item != NULL && st == TP_RETRY;
         item = strtok_r(NULL, ", ", &save)) {
        char *scheme = strstr(item, "://");
        if (scheme != NULL) {
            item = scheme + 3;
        }
        char host[KAFKA_PROBE_HOST_MAX];
        char *colon = strrchr(item, ':');
        if (colon == NULL || (size_t)(colon - item) >= sizeof(host)) {
            continue;
        }
        memcpy(host, item, (size_t)(colon - item));
        host[colon - item] = '\0';
        if (host[0] == '[') { /* [::1]:9092 */
            memmove(host, host + 1, strlen(host));
            host[strcspn(host, "]")] = '\0';
        }
        snprintf(where, sizeof(where), "%s", item);
        st = kafka_probe_ask(host, colon + 1, answer, &last);
    }
    if (st == TP_RETRY) {
        log_warn("kafka broker features not probed: no bootstrap server answered; the client "
                 "will keep trying",
                 LF_S("bootstrap", bootstrap), LF_S("reason", last.msg));
        st = TP_OK;
        goto out;
    }
    if (st != TP_OK) {
        error_set(err, TP_FATAL, "%s", last.msg);
        goto out;
    }
    pthread_mutex_lock(&kafka_probe_lock);
    if (strcmp(kafka_probe_logged, bootstrap) != 0) {
        kafka_probe_log(where, answer);
        snprintf(kafka_probe_logged, sizeof(kafka_probe_logged), "%s", bootstrap);
    }
    pthread_mutex_unlock(&kafka_probe_lock);
    char missing[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof(kafka_probe_required) / sizeof(kafka_probe_required[0]); i++) {
        if ((needs & kafka_probe_required[i].need) != 0 &&
            kafka_probe_find(answer, kafka_probe_required[i].key) == NULL) {
            int w = snprintf(missing + used, sizeof(missing) - used, "%s%s", used ? ", " : "",
                             kafka_probe_required[i].name);
            if (w > 0 && (size_t)w < sizeof(missing) - used) {
                used += (size_t)w;
            }
        }
    }
    if (used > 0) {
        st = error_set(err, TP_FATAL,
                       "kafka broker %s lacks %s: it cannot give an idempotent producer and "
                       "consumer groups with committed offsets; not starting",
                       where, missing);
        goto out;
    }
    st = TP_OK;
out:
    free(answer);
    return st;
}
