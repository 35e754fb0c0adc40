/* Ledger integration test harness: child ledgers, raw Kafka I/O, PostgreSQL and Redis checks. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "topup/event.h"
#include "topup/v1/events.pb-c.h"

#define H_MARKS_MAX      8
#define H_PARTITIONS_MAX 64

/* Where a topic ended when the test began: readers start there, not at the beginning. */
struct h_mark {
    char topic[64];
    int n;
    int64_t end[H_PARTITIONS_MAX];
};

static struct {
    const char *name;
    const char *ledger_bin;
    const char *topupctl_bin;
    char sfx[16];
    PGconn *pg;
    rd_kafka_t *producer;
    struct h_proc *procs[H_PROCS_MAX];
    int nprocs;
    char logdir[256];
    struct h_mark marks[H_MARKS_MAX];
    int nmarks;
} H;

static int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct h_ack {
    int done;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
};

static void h_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    struct h_ack *a = m->_private;
    a->err = m->err;
    a->partition = m->partition;
    a->offset = m->offset;
    a->done = 1;
}

void h_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL [%s]: ", H.name ? H.name : "?");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    for (int i = 0; i < H.nprocs; i++) {
        if (H.procs[i] != NULL && H.procs[i]->pid > 0) {
            kill(H.procs[i]->pid, SIGKILL);
            waitpid(H.procs[i]->pid, NULL, 0);
            fprintf(stderr, "---- last lines of %s (%s)\n", H.procs[i]->name, H.procs[i]->log);
            char cmd[640];
            snprintf(cmd, sizeof(cmd), "tail -n 25 '%s' >&2", H.procs[i]->log);
            if (system(cmd) != 0) {
                fprintf(stderr, "(no log)\n");
            }
        }
    }
    exit(1);
}

/* No ledger outlives its test, whatever way the test ends. */
static void h_cleanup(void)
{
    for (int i = 0; i < H.nprocs; i++) {
        if (H.procs[i] != NULL && H.procs[i]->pid > 0) {
            kill(H.procs[i]->pid, SIGKILL);
            waitpid(H.procs[i]->pid, NULL, 0);
            H.procs[i]->pid = 0;
        }
    }
}

void h_step(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] ", H.name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static const char *h_env(const char *name)
{
    const char *v = getenv(name);
    CHECK_MSG(v != NULL && v[0] != '\0',
              "environment variable %s is not set (run through "
              "tests/with-stack.sh)",
              name);
    return v;
}

void h_init(int argc, char **argv, const char *name)
{
    H.name = name;
    atexit(h_cleanup);
    CHECK_MSG(argc >= 3, "usage: %s <ledger binary> <topupctl binary>", argv[0]);
    H.ledger_bin = argv[1];
    H.topupctl_bin = argv[2];
    CHECK_MSG(access(H.ledger_bin, X_OK) == 0, "ledger binary %s missing", H.ledger_bin);
    unsigned char rnd[4];
    int fd = open("/dev/urandom", O_RDONLY);
    CHECK(fd >= 0 && read(fd, rnd, sizeof(rnd)) == (ssize_t)sizeof(rnd));
    close(fd);
    snprintf(H.sfx, sizeof(H.sfx), "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    snprintf(H.logdir, sizeof(H.logdir), "%s/ledger-test-logs",
             getenv("TOPUP_BUILD_DIR") != NULL ? getenv("TOPUP_BUILD_DIR") : "/tmp");
    mkdir(H.logdir, 0755);

    H.pg = PQconnectdb(h_env("PG_CONNINFO"));
    CHECK_MSG(PQstatus(H.pg) == CONNECTION_OK, "PostgreSQL: %s", PQerrorMessage(H.pg));
    PQsetNoticeProcessor(H.pg, NULL, NULL);

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", h_env("KAFKA_BOOTSTRAP_SERVERS"), errstr,
                            sizeof(errstr)) == RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ==
          RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_dr_msg_cb(conf, h_dr);
    H.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    CHECK_MSG(H.producer != NULL, "producer: %s", errstr);
    h_step("suffix %s", H.sfx);
}

const char *h_sfx(void)
{
    return H.sfx;
}

char *h_id(char *out, const char *prefix)
{
    snprintf(out, H_ID_MAX, "%s-%s", prefix, H.sfx);
    return out;
}

void h_event_id(char out[UUID_STR_LEN])
{
    ids_uuid7(out);
}

/* ---- PostgreSQL ---- */

PGresult *h_sql(const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(H.pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    CHECK_MSG(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "SQL failed: %s\n%s",
              PQresultErrorMessage(r), sql);
    return r;
}

void h_exec(const char *sql, int n, const char *const *params)
{
    PQclear(h_sql(sql, n, params));
}

int64_t h_i64(const char *sql, int n, const char *const *params)
{
    PGresult *r = h_sql(sql, n, params);
    CHECK_MSG(PQntuples(r) == 1, "expected one row from %s, got %d", sql, PQntuples(r));
    int64_t v = PQgetisnull(r, 0, 0) ? INT64_MIN : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

void h_wait_i64(const char *what, const char *sql, int n, const char *const *params, int64_t want)
{
    int64_t deadline = h_now_ms() + H_WAIT_MS, got = 0;
    while ((got = h_i64(sql, n, params)) != want) {
        if (h_now_ms() > deadline) {
            h_fail("timed out waiting for %s: %lld, want %lld", what, (long long)got,
                   (long long)want);
        }
        h_sleep_ms(100);
    }
}

int64_t h_balance(const char *account)
{
    const char *p[1] = {account};
    return h_i64("SELECT balance_fen FROM accounts WHERE account_id = $1", 1, p);
}

void h_check_chain(const char *account)
{
    const char *p[1] = {account};
    PGresult *r = h_sql("SELECT id, amount_fen, balance_after_fen FROM account_flows "
                        "WHERE account_id = $1 ORDER BY id",
                        1, p);
    int64_t sum = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        sum += strtoll(PQgetvalue(r, i, 1), NULL, 10);
        int64_t after = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        CHECK_MSG(after == sum, "account %s flow %s: balance_after %lld, running sum %lld", account,
                  PQgetvalue(r, i, 0), (long long)after, (long long)sum);
    }
    PQclear(r);
    CHECK_MSG(h_balance(account) == sum, "account %s: balance %lld, sum of flows %lld", account,
              (long long)h_balance(account), (long long)sum);
}

void h_order(const char *code, const char *account, int64_t amount_fen, const char *status)
{
    char amount[24];
    snprintf(amount, sizeof(amount), "%lld", (long long)amount_fen);
    const char *p[4] = {code, account, amount, status};
    h_exec("INSERT INTO topup_orders (code, account_id, amount_fen, channel, remitter_name, "
           "remitter_name_norm, remitter_bank, status, expires_at, matched_at) "
           "VALUES ($1, $2, $3, 'bank_transfer', '张三', '张三', 'ICBC', $4, now() + interval '3 "
           "days', CASE WHEN $4 = 'processing' THEN now() END)",
           4, p);
}

/* ---- Kafka ---- */

struct h_sent h_send_raw(const char *topic, const char *key, const void *payload, size_t len)
{
    struct h_ack ack = {0};
    size_t key_len = key != NULL ? strlen(key) : 0;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        H.producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(&ack), RD_KAFKA_V_END);
    CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR, "produce to %s: %s", topic, rd_kafka_err2str(e));
    int64_t deadline = h_now_ms() + H_WAIT_MS;
    while (!ack.done && h_now_ms() < deadline) {
        rd_kafka_poll(H.producer, 50);
    }
    CHECK_MSG(ack.done && ack.err == RD_KAFKA_RESP_ERR_NO_ERROR, "produce to %s not acknowledged",
              topic);
    struct h_sent s = {.partition = ack.partition, .offset = ack.offset};
    snprintf(s.topic, sizeof(s.topic), "%s", topic);
    return s;
}

static void h_envelope(Topup__V1__Envelope *e, const char *eid, const char *account)
{
    topup__v1__envelope__init(e);
    e->event_id = (char *)eid;
    e->occurred_at_ms = event_now_ms();
    e->producer = "ledger-test";
    e->schema_version = 1;
    e->account_id = (char *)account;
}

struct h_sent h_send_usage(const char *eid, const char *account, const char *req, int64_t amount)
{
    Topup__V1__Envelope e;
    h_envelope(&e, eid, account);
    Topup__V1__UsageRecorded m;
    topup__v1__usage_recorded__init(&m);
    m.envelope = &e;
    m.request_id = (char *)req;
    m.amount_fen = amount;
    m.model = "test-model";
    m.units = 1;
    uint8_t buf[512];
    size_t len = topup__v1__usage_recorded__pack(&m, buf);
    return h_send_raw("usage.recorded", account, buf, len);
}

struct h_sent h_send_refund(const char *eid, const char *account, const char *refund_id,
                            int64_t amount, int kind)
{
    Topup__V1__Envelope e;
    h_envelope(&e, eid, account);
    Topup__V1__RefundIssued m;
    topup__v1__refund_issued__init(&m);
    m.envelope = &e;
    m.refund_id = (char *)refund_id;
    m.amount_fen = amount;
    m.kind = (Topup__V1__RefundKind)kind;
    m.reason = "test";
    uint8_t buf[512];
    size_t len = topup__v1__refund_issued__pack(&m, buf);
    return h_send_raw("refund.issued", account, buf, len);
}

struct h_sent h_send_matched(const char *eid, const char *account, const char *code,
                             int64_t credited, int64_t order_amount)
{
    Topup__V1__Envelope e;
    h_envelope(&e, eid, account);
    Topup__V1__PaymentMatched m;
    topup__v1__payment_matched__init(&m);
    m.envelope = &e;
    m.order_code = (char *)code;
    m.credited_fen = credited;
    m.order_amount_fen = order_amount;
    m.amount_mismatch = credited != order_amount;
    m.rule = TOPUP__V1__MATCH_RULE__MATCH_RULE_REFERENCE;
    m.receiving_account = "6222000000000001";
    m.bank_txn_id = (char *)eid;
    m.value_date = "2026-11-24";
    uint8_t buf[512];
    size_t len = topup__v1__payment_matched__pack(&m, buf);
    return h_send_raw("payment.matched", account, buf, len);
}

static rd_kafka_t *h_consumer(const char *group)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", h_env("KAFKA_BOOTSTRAP_SERVERS"), errstr,
                            sizeof(errstr)) == RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr)) ==
          RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ==
          RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    CHECK_MSG(rk != NULL, "consumer: %s", errstr);
    return rk;
}

int64_t h_committed(const char *group, const char *topic, int32_t partition)
{
    rd_kafka_t *rk = h_consumer(group);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, 10000);
    CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR, "committed offsets of %s: %s", group,
              rd_kafka_err2str(e));
    int64_t off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return off;
}

/* The partitions of topic and their end offsets now. */
static void h_topic_ends(const char *topic, struct h_mark *m)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->topic, sizeof(m->topic), "%s", topic);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(H.producer, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(H.producer, 0, rkt, &md, 10000);
    CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1, "metadata of %s: %s", topic,
              rd_kafka_err2str(e));
    m->n = md->topics[0].partition_cnt;
    CHECK(m->n > 0 && m->n <= H_PARTITIONS_MAX);
    for (int p = 0; p < m->n; p++) {
        int64_t lo = 0, hi = 0;
        e = rd_kafka_query_watermark_offsets(H.producer, topic, p, &lo, &hi, 10000);
        CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR, "watermarks of %s/%d: %s", topic, p,
                  rd_kafka_err2str(e));
        m->end[p] = hi;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
}

void h_mark_topics(void)
{
    static const char *const topics[] = {"account.flows", "usage.recorded.dlq", "refund.issued.dlq",
                                         "payment.matched.dlq"};
    H.nmarks = 0;
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        h_topic_ends(topics[i], &H.marks[H.nmarks++]);
    }
}

void h_group_at_end(const char *group)
{
    static const char *const topics[] = {"payment.matched", "usage.recorded", "refund.issued"};
    rd_kafka_t *rk = h_consumer(group);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3 * H_PARTITIONS_MAX);
    for (int i = 0; i < 3; i++) {
        struct h_mark m;
        h_topic_ends(topics[i], &m);
        for (int p = 0; p < m.n; p++) {
            rd_kafka_topic_partition_list_add(l, topics[i], p)->offset = m.end[p];
        }
    }
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
    CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR, "positioning group %s: %s", group,
              rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

/*
 * Calls fn for each message of topic until it returns true or time runs out: from where the topic
 * ended when h_mark_topics() ran, else from the beginning.
 */
typedef bool h_msg_fn(void *ctx, const rd_kafka_message_t *m);

static void h_read_topic(const char *topic, h_msg_fn *fn, void *ctx)
{
    char group[128];
    snprintf(group, sizeof(group), "ledger-test-reader-%s-%lld", H.sfx, (long long)h_now_ms());
    rd_kafka_t *rk = h_consumer(group);
    rd_kafka_poll_set_consumer(rk);
    const struct h_mark *mark = NULL;
    for (int i = 0; i < H.nmarks; i++) {
        if (strcmp(H.marks[i].topic, topic) == 0) {
            mark = &H.marks[i];
        }
    }
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(H_PARTITIONS_MAX);
    if (mark != NULL) {
        for (int p = 0; p < mark->n; p++) {
            rd_kafka_topic_partition_list_add(subs, topic, p)->offset = mark->end[p];
        }
        CHECK(rd_kafka_assign(rk, subs) == RD_KAFKA_RESP_ERR_NO_ERROR);
    } else {
        rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
        CHECK(rd_kafka_subscribe(rk, subs) == RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    rd_kafka_topic_partition_list_destroy(subs);
    int64_t deadline = h_now_ms() + H_WAIT_MS;
    bool done = false;
    while (!done && h_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL) {
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            done = fn(ctx, m);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static bool h_header(const rd_kafka_message_t *m, const char *name, char *out, size_t len)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v;
    size_t vl;
    out[0] = '\0';
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, name, &v, &vl) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return false;
    }
    snprintf(out, len, "%.*s", (int)vl, (const char *)v);
    return true;
}

struct h_dlq_ctx {
    const char *key, *reason, *orig_topic;
    int want, n;
};

static bool h_dlq_msg(void *ctx, const rd_kafka_message_t *m)
{
    struct h_dlq_ctx *c = ctx;
    size_t kl = strlen(c->key);
    if (m->key == NULL || m->key_len != kl || memcmp(m->key, c->key, kl) != 0) {
        return false;
    }
    char reason[512], topic[128];
    h_header(m, "dlq.reason", reason, sizeof(reason));
    h_header(m, "dlq.original.topic", topic, sizeof(topic));
    if (strstr(reason, c->reason) != NULL && strcmp(topic, c->orig_topic) == 0) {
        c->n++;
    }
    return c->n >= c->want;
}

int h_dlq_count(const char *orig_topic, const char *key, const char *reason_part, int want)
{
    char dlq[128];
    snprintf(dlq, sizeof(dlq), "%s.dlq", orig_topic);
    struct h_dlq_ctx c = {
        .key = key, .reason = reason_part, .orig_topic = orig_topic, .want = want};
    h_read_topic(dlq, h_dlq_msg, &c);
    return c.n;
}

struct h_flows_ctx {
    const char *prefix;
    struct h_flow *want;
    int n, found, seq;
};

static bool h_flows_msg(void *ctx, const rd_kafka_message_t *m)
{
    struct h_flows_ctx *c = ctx;
    size_t pl = strlen(c->prefix);
    if (m->key == NULL || m->key_len < pl || memcmp(m->key, c->prefix, pl) != 0) {
        return false;
    }
    Topup__V1__AccountFlowRecorded *f =
        topup__v1__account_flow_recorded__unpack(NULL, m->len, m->payload);
    CHECK_MSG(f != NULL && f->envelope != NULL, "undecodable AccountFlowRecorded");
    int seq = c->seq++;
    for (int i = 0; i < c->n; i++) {
        struct h_flow *w = &c->want[i];
        if (w->seq < 0 && w->flow_id == f->flow_id &&
            strcmp(w->source_event_id, f->source_event_id) == 0) {
            snprintf(w->event_id, sizeof(w->event_id), "%s", f->envelope->event_id);
            snprintf(w->account, sizeof(w->account), "%s", f->envelope->account_id);
            w->flow_type = (int)f->flow_type;
            w->amount_fen = f->amount_fen;
            w->balance_after_fen = f->balance_after_fen;
            w->seq = seq;
            c->found++;
        }
    }
    topup__v1__account_flow_recorded__free_unpacked(f, NULL);
    return c->found >= c->n;
}

int h_flows_find(const char *key_prefix, struct h_flow *want, int n)
{
    for (int i = 0; i < n; i++) {
        want[i].seq = -1;
    }
    struct h_flows_ctx c = {.prefix = key_prefix, .want = want, .n = n};
    h_read_topic("account.flows", h_flows_msg, &c);
    return c.found;
}

/* ---- Redis ---- */

bool h_cached(const char *account, const char *field, char *out, size_t len)
{
    struct timeval tv = {2, 0};
    redisContext *rc = redisConnectWithTimeout(h_env("REDIS_HOST"), atoi(h_env("REDIS_PORT")), tv);
    CHECK_MSG(rc != NULL && rc->err == 0, "Redis connect failed");
    redisReply *r = redisCommand(rc, "HGET topup:balance:t-%s:%s %s", H.sfx, account, field);
    bool ok = r != NULL && r->type == REDIS_REPLY_STRING;
    if (ok) {
        snprintf(out, len, "%s", r->str);
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    redisFree(rc);
    return ok;
}

/* ---- the ledger process ---- */

void h_ledger_start(struct h_proc *p, const char *name, const char *group, const char *const *env)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log, sizeof(p->log), "%s/%s-%s-%s.log", H.logdir, H.name, name, H.sfx);
    /* Created here so the log can be read as soon as this returns. */
    int lfd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    CHECK_MSG(lfd >= 0, "cannot create %s", p->log);
    close(lfd);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0) {
            _exit(127);
        }
        dup2(fd, 2);
        dup2(fd, 1);
        close(fd);
        setenv("LEDGER_GROUP", group, 1);
        /* Concurrent tests' ledgers see the same events: each test caches under its own keys. */
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "topup:balance:t-%s:", H.sfx);
        setenv("LEDGER_CACHE_KEY_PREFIX", prefix, 1);
        if (getenv("LOG_LEVEL") == NULL) {
            setenv("LOG_LEVEL", "info", 1);
        }
        for (int i = 0; env != NULL && env[i] != NULL; i++) {
            putenv((char *)env[i]);
        }
        execl(H.ledger_bin, H.ledger_bin, (char *)NULL);
        _exit(127);
    }
    p->pid = pid;
    CHECK(H.nprocs < H_PROCS_MAX);
    H.procs[H.nprocs++] = p;
    h_step("started %s (pid %d, group %s, log %s)", name, (int)pid, group, p->log);
}

int h_ledger_stop(struct h_proc *p, int sig, int timeout_ms)
{
    CHECK(p->pid > 0);
    kill(p->pid, sig);
    int64_t deadline = h_now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            break;
        }
        if (h_now_ms() > deadline) {
            h_fail("%s did not exit within %d ms after signal %d", p->name, timeout_ms, sig);
        }
        h_sleep_ms(20);
    }
    p->pid = 0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    h_step("%s exited with %d", p->name, code);
    return code;
}

/* Finds "field": value in a JSON line written by log.c (integers only). */
static bool h_json_int(const char *line, const char *field, int64_t *out)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "\"%s\":", field);
    const char *s = strstr(line, pat);
    if (s == NULL) {
        return false;
    }
    *out = strtoll(s + strlen(pat), NULL, 10);
    return true;
}

int64_t h_log_sum(const struct h_proc *p, const char *msg, const char *field)
{
    FILE *f = fopen(p->log, "r");
    CHECK_MSG(f != NULL, "cannot read %s", p->log);
    char pat[256];
    snprintf(pat, sizeof(pat), "\"msg\":\"%s\"", msg);
    char line[8192];
    int64_t sum = 0, v;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, pat) != NULL && h_json_int(line, field, &v)) {
            sum += v;
        }
    }
    fclose(f);
    return sum;
}

int h_log_count(const struct h_proc *p, const char *s)
{
    FILE *f = fopen(p->log, "r");
    CHECK_MSG(f != NULL, "cannot read %s", p->log);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        n += strstr(line, s) != NULL;
    }
    fclose(f);
    return n;
}

int h_topupctl(char *out, size_t len, const char *const *args)
{
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        const char *argv[16] = {H.topupctl_bin};
        for (int i = 0; args[i] != NULL && i < 14; i++) {
            argv[i + 1] = args[i];
        }
        execv(H.topupctl_bin, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(pipefd[0], out + n, len - 1 - n)) > 0) {
        n += (size_t)r;
        if (n >= len - 1) {
            break;
        }
    }
    out[n] = '\0';
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
