/* Control channel: a line protocol on a loopback TCP port that injects faults into the cluster. */
#include "devbroker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "topup/log.h"
#include "topup/mem.h"

/* Clients served at once; one more is told "err busy" and closed. */
#define CONTROL_CLIENTS_MAX 16
#define CONTROL_ARGS_MAX    8
/* Injected errors per command: enough for any chaos scenario, small enough to allocate. */
#define CONTROL_ERRORS_MAX 10000
#define CONTROL_RTT_MAX_MS 600000
/* Kafka's ApiKey of Produce requests. */
#define CONTROL_APIKEY_PRODUCE 0
/*
 * The mock checks idempotent sequences only for transactional producers, so an injected Produce
 * error followed by an accepted request makes a client with several requests in flight report
 * the errored batch delivered ("implicitly acked"): said with every Produce injection.
 */
#define CONTROL_PRODUCE_NOTE                                                                       \
    " (note: the mock does not check idempotent sequences; clients must run with "                 \
    "max.in.flight.requests.per.connection=1 or they may lose implicitly acked messages)"

struct control_client {
    int fd; /* -1 when the slot is free */
    size_t len;
    char buf[CONTROL_LINE_MAX];
};

struct control_server {
    int listen_fd;
    struct control_client clients[CONTROL_CLIENTS_MAX];
};

typedef void control_cmd_fn(struct devbroker *db, char **argv, char *reply, size_t reply_len);

struct control_cmd {
    const char *name;
    int argc_min, argc_max; /* arguments after the command word */
    const char *usage;
    control_cmd_fn *fn;
};

/* Kafka protocol request types that the mock cluster implements, by their protocol names. */
static const struct {
    const char *name;
    int16_t key;
} control_apikeys[] = {
    {"Produce", 0},          {"Fetch", 1},
    {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8},     {"OffsetFetch", 9},
    {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},       {"LeaveGroup", 13},
    {"SyncGroup", 14},       {"DescribeGroups", 15},
    {"ListGroups", 16},      {"ApiVersions", 18},
    {"InitProducerId", 22},  {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25}, {"EndTxn", 26},
    {"TxnOffsetCommit", 28}, {"OffsetForLeaderEpoch", 23},
};

static int control_parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Accepts a protocol name (case-insensitive) or a number. */
static int control_parse_apikey(const char *s, int16_t *out)
{
    long v;
    if (control_parse_long(s, 0, 100, &v) == 0) {
        *out = (int16_t)v;
        return 0;
    }
    for (size_t i = 0; i < sizeof(control_apikeys) / sizeof(control_apikeys[0]); i++) {
        if (strcasecmp(s, control_apikeys[i].name) == 0) {
            *out = control_apikeys[i].key;
            return 0;
        }
    }
    return -1;
}

/* Accepts a number or a librdkafka error name, with or without the RD_KAFKA_RESP_ERR_ prefix. */
static int control_parse_err(const char *s, rd_kafka_resp_err_t *out)
{
    long v;
    if (control_parse_long(s, -200, 1000, &v) == 0) {
        *out = (rd_kafka_resp_err_t)v;
        return 0;
    }
    if (strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0) {
        s += 18;
    }
    const struct rd_kafka_err_desc *descs = NULL;
    size_t cnt = 0;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        if (descs[i].name != NULL && strcasecmp(s, descs[i].name) == 0) {
            *out = descs[i].code;
            return 0;
        }
    }
    return -1;
}

static int control_parse_broker(struct devbroker *db, const char *s, int32_t *out)
{
    long v;
    if (control_parse_long(s, 1, db->broker_cnt, &v) != 0) {
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

static void control_reply_err(rd_kafka_resp_err_t e, char *reply, size_t reply_len)
{
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(reply, reply_len, "ok");
    } else {
        snprintf(reply, reply_len, "err %s", rd_kafka_err2name(e));
    }
}

static void control_cmd_ping(struct devbroker *db, char **argv, char *reply, size_t reply_len)
{
    snprintf(reply, reply_len, "ok pong");
}

static void control_cmd_info(struct devbroker *db, char **argv, char *reply, size_t reply_len)
{
    snprintf(reply, reply_len, "ok brokers=%d topics=%d bootstrap=%s", db->broker_cnt,
             db->topic_cnt, db->bootstrap);
}

static void control_cmd_broker_updown(struct devbroker *db, char **argv, char *reply,
                                      size_t reply_len)
{
    int32_t id;
    if (control_parse_broker(db, argv[1], &id) != 0) {
        snprintf(reply, reply_len, "err broker id must be 1..%d", db->broker_cnt);
        return;
    }
    rd_kafka_resp_err_t e = strcmp(argv[0], "broker-down") == 0
                                ? rd_kafka_mock_broker_set_down(db->mcluster, id)
                                : rd_kafka_mock_broker_set_up(db->mcluster, id);
    control_reply_err(e, reply, reply_len);
}

static void control_cmd_rtt(struct devbroker *db, char **argv, char *reply, size_t reply_len)
{
    int32_t id;
    long ms;
    if (control_parse_broker(db, argv[1], &id) != 0 ||
        control_parse_long(argv[2], 0, CONTROL_RTT_MAX_MS, &ms) != 0) {
        snprintf(reply, reply_len, "err usage: rtt <broker 1..%d> <ms 0..%d>", db->broker_cnt,
                 CONTROL_RTT_MAX_MS);
        return;
    }
    control_reply_err(rd_kafka_mock_broker_set_rtt(db->mcluster, id, (int)ms), reply, reply_len);
}

static void control_cmd_push_errors(struct devbroker *db, char **argv, char *reply,
                                    size_t reply_len)
{
    int16_t key;
    long cnt;
    rd_kafka_resp_err_t e;
    if (control_parse_apikey(argv[1], &key) != 0 ||
        control_parse_long(argv[2], 1, CONTROL_ERRORS_MAX, &cnt) != 0 ||
        control_parse_err(argv[3], &e) != 0) {
        snprintf(reply, reply_len, "err usage: push-errors <apikey> <count 1..%d> <errcode>",
                 CONTROL_ERRORS_MAX);
        return;
    }
    rd_kafka_resp_err_t *errs = mem_calloc((size_t)cnt, sizeof(*errs));
    for (long i = 0; i < cnt; i++) {
        errs[i] = e;
    }
    rd_kafka_mock_push_request_errors_array(db->mcluster, key, (size_t)cnt, errs);
    free(errs);
    snprintf(reply, reply_len, "ok apikey=%d count=%ld err=%s%s", key, cnt, rd_kafka_err2name(e),
             key == CONTROL_APIKEY_PRODUCE ? CONTROL_PRODUCE_NOTE : "");
}

static void control_cmd_broker_push_errors(struct devbroker *db, char **argv, char *reply,
                                           size_t reply_len)
{
    int32_t id;
    int16_t key;
    long cnt;
    long rtt_ms = 0;
    rd_kafka_resp_err_t e;
    if (control_parse_broker(db, argv[1], &id) != 0 || control_parse_apikey(argv[2], &key) != 0 ||
        control_parse_long(argv[3], 1, CONTROL_ERRORS_MAX, &cnt) != 0 ||
        control_parse_err(argv[4], &e) != 0 ||
        (argv[5] != NULL && control_parse_long(argv[5], 0, CONTROL_RTT_MAX_MS, &rtt_ms) != 0)) {
        snprintf(reply, reply_len,
                 "err usage: broker-push-errors <broker> <apikey> <count> <errcode> [rtt_ms]");
        return;
    }
    rd_kafka_resp_err_t r = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (long i = 0; i < cnt && r == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        r = rd_kafka_mock_broker_push_request_error_rtts(db->mcluster, id, key, 1, e, (int)rtt_ms);
    }
    control_reply_err(r, reply, reply_len);
    if (r == RD_KAFKA_RESP_ERR_NO_ERROR && key == CONTROL_APIKEY_PRODUCE) {
        snprintf(reply, reply_len, "ok%s", CONTROL_PRODUCE_NOTE);
    }
}

static void control_cmd_clear_errors(struct devbroker *db, char **argv, char *reply,
                                     size_t reply_len)
{
    int16_t key;
    if (control_parse_apikey(argv[1], &key) != 0) {
        snprintf(reply, reply_len, "err usage: clear-errors <apikey>");
        return;
    }
    rd_kafka_mock_clear_request_errors(db->mcluster, key);
    snprintf(reply, reply_len, "ok");
}

static void control_cmd_topic_error(struct devbroker *db, char **argv, char *reply,
                                    size_t reply_len)
{
    rd_kafka_resp_err_t e;
    if (control_parse_err(argv[2], &e) != 0) {
        snprintf(reply, reply_len, "err usage: topic-error <topic> <errcode>");
        return;
    }
    rd_kafka_mock_topic_set_error(db->mcluster, argv[1], e);
    snprintf(reply, reply_len, "ok");
}

static void control_cmd_topic_create(struct devbroker *db, char **argv, char *reply,
                                     size_t reply_len)
{
    long parts;
    if (control_parse_long(argv[2], 1, DEVBROKER_PARTITIONS_MAX, &parts) != 0) {
        snprintf(reply, reply_len, "err usage: topic-create <topic> <partitions 1..%d>",
                 DEVBROKER_PARTITIONS_MAX);
        return;
    }
    int rf = db->broker_cnt < 3 ? db->broker_cnt : 3;
    control_reply_err(rd_kafka_mock_topic_create(db->mcluster, argv[1], (int)parts, rf), reply,
                      reply_len);
}

static void control_cmd_leader(struct devbroker *db, char **argv, char *reply, size_t reply_len)
{
    long part;
    long id;
    if (control_parse_long(argv[2], 0, DEVBROKER_PARTITIONS_MAX - 1, &part) != 0 ||
        control_parse_long(argv[3], -1, db->broker_cnt, &id) != 0 || id == 0) {
        snprintf(reply, reply_len, "err usage: leader <topic> <partition> <broker 1..%d or -1>",
                 db->broker_cnt);
        return;
    }
    control_reply_err(
        rd_kafka_mock_partition_set_leader(db->mcluster, argv[1], (int32_t)part, (int32_t)id),
        reply, reply_len);
}

static void control_cmd_coordinator(struct devbroker *db, char **argv, char *reply,
                                    size_t reply_len)
{
    long id;
    /* The mock accepts any id here: a missing broker is how to make the coordinator vanish. */
    if (control_parse_long(argv[2], -1, 1000000, &id) != 0) {
        snprintf(reply, reply_len, "err usage: %s <key> <broker>", argv[0]);
        return;
    }
    const char *type = strcmp(argv[0], "coordinator") == 0 ? "group" : "transaction";
    control_reply_err(rd_kafka_mock_coordinator_set(db->mcluster, type, argv[1], (int32_t)id),
                      reply, reply_len);
}

static void control_cmd_help(struct devbroker *db, char **argv, char *reply, size_t reply_len);

static const struct control_cmd control_cmds[] = {
    {"ping", 0, 0, "ping", control_cmd_ping},
    {"info", 0, 0, "info", control_cmd_info},
    {"help", 0, 0, "help", control_cmd_help},
    {"broker-down", 1, 1, "broker-down <broker>", control_cmd_broker_updown},
    {"broker-up", 1, 1, "broker-up <broker>", control_cmd_broker_updown},
    {"rtt", 2, 2, "rtt <broker> <ms>", control_cmd_rtt},
    {"push-errors", 3, 3, "push-errors <apikey> <count> <errcode>", control_cmd_push_errors},
    {"broker-push-errors", 4, 5, "broker-push-errors <broker> <apikey> <count> <errcode> [rtt_ms]",
     control_cmd_broker_push_errors},
    {"clear-errors", 1, 1, "clear-errors <apikey>", control_cmd_clear_errors},
    {"topic-error", 2, 2, "topic-error <topic> <errcode>", control_cmd_topic_error},
    {"topic-create", 2, 2, "topic-create <topic> <partitions>", control_cmd_topic_create},
    {"leader", 3, 3, "leader <topic> <partition> <broker|-1>", control_cmd_leader},
    {"coordinator", 2, 2, "coordinator <group> <broker>", control_cmd_coordinator},
    {"txn-coordinator", 2, 2, "txn-coordinator <transactional.id> <broker>",
     control_cmd_coordinator},
};

#define CONTROL_CMD_CNT (sizeof(control_cmds) / sizeof(control_cmds[0]))

static void control_cmd_help(struct devbroker *db, char **argv, char *reply, size_t reply_len)
{
    size_t n = (size_t)snprintf(reply, reply_len, "ok");
    for (size_t i = 0; i < CONTROL_CMD_CNT && n < reply_len; i++) {
        n += (size_t)snprintf(reply + n, reply_len - n, "%s%s", i == 0 ? " " : " | ",
                              control_cmds[i].usage);
    }
}

void control_exec(struct devbroker *db, char *line, char *reply, size_t reply_len)
{
    char *argv[CONTROL_ARGS_MAX + 1] = {0};
    int argc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t\r\n", &save); tok != NULL;
         tok = strtok_r(NULL, " \t\r\n", &save)) {
        if (argc == CONTROL_ARGS_MAX) {
            snprintf(reply, reply_len, "err more than %d words", CONTROL_ARGS_MAX);
            return;
        }
        argv[argc++] = tok;
    }
    if (argc == 0) {
        snprintf(reply, reply_len, "err empty command (try help)");
        return;
    }
    for (size_t i = 0; i < CONTROL_CMD_CNT; i++) {
        const struct control_cmd *c = &control_cmds[i];
        if (strcmp(argv[0], c->name) != 0) {
            continue;
        }
        if (argc - 1 < c->argc_min || argc - 1 > c->argc_max) {
            snprintf(reply, reply_len, "err usage: %s", c->usage);
            return;
        }
        c->fn(db, argv, reply, reply_len);
        return;
    }
    snprintf(reply, reply_len, "err unknown command %.64s (try help)", argv[0]);
}

enum tp_status control_parse_addr(const char *addr, struct sockaddr_in *sin, struct tp_error *err)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    long port;
    memset(sin, 0, sizeof(*sin));
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host) ||
        control_parse_long(colon + 1, 0, 65535, &port) != 0) {
        return error_set(err, TP_INVALID, "control address \"%s\" is not ip:port", addr);
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
        return error_set(err, TP_INVALID, "control address \"%s\": %s is not an IPv4 address", addr,
                         host);
    }
    /* Fault injection has no authentication: it stays on this machine. */
    if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127) {
        return error_set(err, TP_INVALID, "control address \"%s\" is not on loopback", addr);
    }
    return TP_OK;
}

enum tp_status control_server_new(const char *addr, struct control_server **out, char *bound,
                                  size_t bound_len, struct tp_error *err)
{
    struct sockaddr_in sin;
    socklen_t slen = sizeof(sin);
    enum tp_status st = control_parse_addr(addr, &sin, err);
    if (st != TP_OK) {
        return st;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return error_set(err, TP_FATAL, "control socket: %s", strerror(errno));
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &slen) != 0) {
        st = error_set(err, TP_FATAL, "control listen on %s: %s", addr, strerror(errno));
        close(fd);
        return st;
    }
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sin.sin_addr, ip, sizeof(ip));
    snprintf(bound, bound_len, "%s:%u", ip, (unsigned)ntohs(sin.sin_port));
    struct control_server *cs = mem_calloc(1, sizeof(*cs));
    cs->listen_fd = fd;
    for (int i = 0; i < CONTROL_CLIENTS_MAX; i++) {
        cs->clients[i].fd = -1;
    }
    *out = cs;
    return TP_OK;
}

static void control_client_close(struct control_client *c)
{
    close(c->fd);
    c->fd = -1;
    c->len = 0;
}

/* Replies are short; a client that does not read them is dropped rather than waited for. */
static int control_send_line(int fd, const char *reply)
{
    char line[CONTROL_LINE_MAX + 2];
    int n = snprintf(line, sizeof(line), "%s\n", reply);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        n = (int)sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    return w == n ? 0 : -1;
}

static void control_accept(struct control_server *cs)
{
    for (;;) {
        int fd = accept4(cs->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            return;
        }
        struct control_client *slot = NULL;
        for (int i = 0; i < CONTROL_CLIENTS_MAX && slot == NULL; i++) {
            if (cs->clients[i].fd < 0) {
                slot = &cs->clients[i];
            }
        }
        if (slot == NULL) {
            log_warn("control client refused: too many clients",
                     LF_I("clients_max", CONTROL_CLIENTS_MAX));
            (void)control_send_line(fd, "err busy");
            close(fd);
            continue;
        }
        slot->fd = fd;
        slot->len = 0;
    }
}

/* Executes every complete line in the client's buffer. Returns -1 when the client must go. */
static int control_client_lines(struct control_client *c, struct devbroker *db)
{
    char *nl;
    while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
        size_t line_len = (size_t)(nl - c->buf);
        char line[CONTROL_LINE_MAX];
        char reply[CONTROL_LINE_MAX];
        memcpy(line, c->buf, line_len);
        line[line_len] = '\0';
        memmove(c->buf, nl + 1, c->len - line_len - 1);
        c->len -= line_len + 1;
        char logged[CONTROL_LINE_MAX];
        snprintf(logged, sizeof(logged), "%s", line);
        control_exec(db, line, reply, sizeof(reply));
        log_info("control command", LF_S("command", logged), LF_S("reply", reply));
        if (control_send_line(c->fd, reply) != 0) {
            return -1;
        }
    }
    if (c->len == sizeof(c->buf)) {
        (void)control_send_line(c->fd, "err line too long");
        return -1;
    }
    return 0;
}

static void control_client_read(struct control_client *c, struct devbroker *db)
{
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (r <= 0) {
        control_client_close(c);
        return;
    }
    c->len += (size_t)r;
    if (control_client_lines(c, db) != 0) {
        control_client_close(c);
    }
}

void control_server_poll(struct control_server *cs, struct devbroker *db, int timeout_ms)
{
    struct pollfd pfds[CONTROL_CLIENTS_MAX + 1];
    int slot_of[CONTROL_CLIENTS_MAX + 1];
    int n = 0;
    pfds[n].fd = cs->listen_fd;
    pfds[n].events = POLLIN;
    slot_of[n++] = -1;
    for (int i = 0; i < CONTROL_CLIENTS_MAX; i++) {
        if (cs->clients[i].fd >= 0) {
            pfds[n].fd = cs->clients[i].fd;
            pfds[n].events = POLLIN;
            slot_of[n++] = i;
        }
    }
    /* EINTR (our stop signal) simply returns to the caller, which checks the flag. */
    if (poll(pfds, (nfds_t)n, timeout_ms) <= 0) {
        return;
    }
    for (int i = 1; i < n; i++) {
        if (pfds[i].revents != 0) {
            control_client_read(&cs->clients[slot_of[i]], db);
        }
    }
    if (pfds[0].revents & POLLIN) {
        control_accept(cs);
    }
}

void control_server_free(struct control_server *cs)
{
    if (cs == NULL) {
        return;
    }
    for (int i = 0; i < CONTROL_CLIENTS_MAX; i++) {
        if (cs->clients[i].fd >= 0) {
            control_client_close(&cs->clients[i]);
        }
    }
    close(cs->listen_fd);
    free(cs);
}
