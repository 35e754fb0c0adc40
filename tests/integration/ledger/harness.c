/* Ledger integration test harness: the h_* vocabulary of the tests over tests/lib, plus raw Kafka
 * I/O (where a sent event landed, what came out on account.flows and the .dlq topics). */
#include "harness.h"

#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "topup/event.h"
#include "topup/v1/events.pb-c.h"

#define H_MARKS_MAX      8
#define H_PARTITIONS_MAX 64
/* Longest run of topupctl. */
#define H_TOOL_MS 120000

/* Where a topic ended when the test began: readers start there, not at the beginning. */
struct h_mark {
    char topic[64];
    int n;
    int64_t end[H_PARTITIONS_MAX];
};

static struct {
    const char *ledger_bin;
    const char *topupctl_bin;
    rd_kafka_t *producer;
    /* tests/lib keeps pointers to its children until exit: they live here, one per start. */
    struct tl_proc procs[H_PROCS_MAX];
    int nprocs;
    struct h_mark marks[H_MARKS_MAX];
    int nmarks;
} H;

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
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Every ledger started, running or not: the one that died is the one to read. */
    for (int i = 0; i < H.nprocs; i++) {
        int code = 0;
        bool running = H.procs[i].pid > 0;
        if (running && !tl_proc_alive(&H.procs[i], &code)) {
            fprintf(stderr, "%s had exited with %d\n", H.procs[i].name, code);
        }
        tl_proc_log_tail(&H.procs[i], 25);
    }
    tl_fail("%s", msg); /* kills every child */
}

void h_step(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tl_step("%s", msg);
}

void h_init(int argc, char **argv, const char *name)
{
    tl_init(name);
    CHECK_MSG(argc >= 3, "usage: %s <ledger binary> <topupctl binary>", argv[0]);
    H.ledger_bin = argv[1];
    H.topupctl_bin = argv[2];
    CHECK_MSG(access(H.ledger_bin, X_OK) == 0, "ledger binary %s missing", H.ledger_bin);
    tl_pg(); /* fails now, not mid-test, when PG_CONNINFO is missing or wrong */

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", tl_env("KAFKA_BOOTSTRAP_SERVERS"), errstr,
                            sizeof(errstr)) == RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ==
          RD_KAFKA_CONF_OK);
    CHECK(rd_kafka_conf_set(conf, "linger.ms", "0", errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_dr_msg_cb(conf, h_dr);
    H.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    CHECK_MSG(H.producer != NULL, "producer: %s", errstr);
}

const char *h_sfx(void)
{
    return tl_sfx();
}

char *h_id(char *out, const char *prefix)
{
    return tl_id(out, prefix);
}

void h_event_id(char out[UUID_STR_LEN])
{
    tl_event_id(out);
}

/* ---- PostgreSQL: tests/lib's connection ---- */

PGresult *h_sql(const char *sql, int n, const char *const *params)
{
    return tl_pg_query(sql, n, params);
}

void h_exec(const char *sql, int n, const char *const *params)
{
    tl_pg_exec(sql, n, params);
}

int64_t h_i64(const char *sql, int n, const char *const *params)
{
    return tl_pg_i64(sql, n, params);
}

void h_wait_i64(const char *what, const char *sql, int n, const char *const *params, int64_t want)
{
    int64_t got = tl_pg_wait_i64(what, sql, n, params, want, H_WAIT_MS);
    CHECK_MSG(got == want, "timed out waiting for %s: %lld, want %lld", what, (long long)got,
              (long long)want);
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
    int64_t deadline = tl_now_ms() + H_WAIT_MS;
    while (!ack.done && tl_now_ms() < deadline) {
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

static struct h_sent h_send_refund_of(const char *eid, const char *account, const char *refund_id,
                                      int64_t amount, int kind, const char *original)
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
    m.original_reference = (char *)original;
    uint8_t buf[512];
    size_t len = topup__v1__refund_issued__pack(&m, buf);
    return h_send_raw("refund.issued", account, buf, len);
}

struct h_sent h_send_refund(const char *eid, const char *account, const char *refund_id,
                            int64_t amount, int kind)
{
    return h_send_refund_of(eid, account, refund_id, amount, kind, "");
}

struct h_sent h_send_usage_refund(const char *eid, const char *account, const char *refund_id,
                                  int64_t amount, const char *usage_request_id)
{
    return h_send_refund_of(eid, account, refund_id, amount, 1, usage_request_id);
}

struct h_sent h_send_matched_unrecorded(const char *eid, const char *account, const char *code,
                                        int64_t credited, int64_t order_amount,
                                        const char *bank_txn_id)
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
    m.receiving_account = H_RECEIVING_ACCOUNT;
    m.bank_txn_id = (char *)bank_txn_id;
    m.value_date = "2026-11-24";
    uint8_t buf[1024];
    size_t len = topup__v1__payment_matched__pack(&m, buf);
    return h_send_raw("payment.matched", account, buf, len);
}

void h_record_match(const char *code, const char *bank_txn_id, int64_t amount_fen)
{
    char amount[24];
    snprintf(amount, sizeof(amount), "%lld", (long long)amount_fen);
    const char *p[4] = {code, bank_txn_id, amount, H_RECEIVING_ACCOUNT};
    /* The record belongs to a recorded import, as reconciliation stores every record it takes. */
    h_exec("WITH i AS (INSERT INTO statement_imports (sha256, file_name, format, status) "
           "VALUES (md5(random()::text || clock_timestamp()::text || $2), 'ledger-test', 'test', "
           "'completed') RETURNING id), "
           "r AS (INSERT INTO statement_records (receiving_account, bank_txn_id, value_date, "
           "amount_fen, currency, direction, event_id, state, import_id) "
           "SELECT $4, $2, DATE '2026-11-24', $3, 'CNY', 'credit', $2, 'matched', i.id FROM i "
           "WHERE EXISTS (SELECT 1 FROM topup_orders WHERE code = $1) "
           "ON CONFLICT (receiving_account, bank_txn_id) DO NOTHING RETURNING id) "
           "INSERT INTO match_decisions (record_id, order_id, outcome, rule, decided_by) "
           "SELECT r.id, o.id, 'matched', 'reference', 'ledger-test' FROM r, topup_orders o "
           "WHERE o.code = $1 ON CONFLICT DO NOTHING",
           4, p);
}

struct h_sent h_send_matched(const char *eid, const char *account, const char *code,
                             int64_t credited, int64_t order_amount)
{
    h_record_match(code, eid, credited);
    return h_send_matched_unrecorded(eid, account, code, credited, order_amount, eid);
}

static rd_kafka_t *h_consumer(const char *group)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", tl_env("KAFKA_BOOTSTRAP_SERVERS"), errstr,
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
    int64_t offsets[H_PARTITIONS_MAX];
    CHECK(partition >= 0 && partition < H_PARTITIONS_MAX);
    tl_kafka_committed(group, topic, offsets, partition + 1);
    return offsets[partition];
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
    snprintf(group, sizeof(group), "ledger-test-reader-%s-%lld", tl_sfx(), (long long)tl_now_ms());
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
    int64_t deadline = tl_now_ms() + H_WAIT_MS;
    bool done = false;
    while (!done && tl_now_ms() < deadline) {
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
    char key[256];
    snprintf(key, sizeof(key), "topup:balance:t-%s:%s", tl_sfx(), account);
    return tl_redis_hget(key, field, out, len);
}

/* ---- the ledger process: a tests/lib child ---- */

void h_ledger_start(struct h_proc *p, const char *name, const char *group, const char *const *env)
{
    CHECK_MSG(H.nprocs < H_PROCS_MAX, "more than %d starts of the ledger", H_PROCS_MAX);
    p->proc = &H.procs[H.nprocs++];
    char group_env[H_ID_MAX + 16], prefix_env[H_ID_MAX];
    snprintf(group_env, sizeof(group_env), "LEDGER_GROUP=%s", group);
    /* Concurrent tests' ledgers see the same events: each test caches under its own keys. */
    snprintf(prefix_env, sizeof(prefix_env),
             "LEDGER_CACHE_KEY_PREFIX=topup:balance:t-%s:", tl_sfx());
    const char *over[TL_PROC_ENV_MAX + 1] = {group_env, prefix_env};
    int nover = 2;
    if (getenv("LOG_LEVEL") == NULL) {
        over[nover++] = "LOG_LEVEL=info";
    }
    for (int i = 0; env != NULL && env[i] != NULL; i++) {
        CHECK(nover < TL_PROC_ENV_MAX);
        over[nover++] = env[i];
    }
    const char *argv[] = {H.ledger_bin, NULL};
    tl_proc_start(p->proc, name, argv, over);
    h_step("started %s (pid %d, group %s, log %s)", name, (int)p->proc->pid, group, p->proc->log);
}

int h_ledger_stop(struct h_proc *p, int sig, int timeout_ms)
{
    CHECK(p->proc != NULL && p->proc->pid > 0);
    int code = tl_proc_stop(p->proc, sig, timeout_ms, NULL);
    CHECK_MSG(code != -1, "%s did not exit within %d ms after signal %d", p->proc->name, timeout_ms,
              sig);
    h_step("%s exited with %d", p->proc->name, code);
    return code;
}

pid_t h_ledger_pid(const struct h_proc *p)
{
    return p->proc != NULL ? p->proc->pid : 0;
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
    FILE *f = fopen(p->proc->log, "r");
    CHECK_MSG(f != NULL, "cannot read %s", p->proc->log);
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
    return tl_proc_log_count(p->proc, s);
}

int h_topupctl(char *out, size_t len, const char *const *args)
{
    const char *argv[TL_PROC_ARGS_MAX + 1] = {H.topupctl_bin};
    for (int i = 0; args[i] != NULL; i++) {
        CHECK(i + 1 < TL_PROC_ARGS_MAX);
        argv[i + 1] = args[i];
    }
    char *text = NULL;
    int rc = tl_run("topupctl", argv, NULL, &text, H_TOOL_MS);
    snprintf(out, len, "%s", text);
    free(text);
    return rc;
}
