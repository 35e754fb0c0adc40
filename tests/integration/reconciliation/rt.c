/* Helpers of the reconciliation integration tests: worker process, orders, messages, polling. */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "days.h"
#include "jsonw.h"
#include "recon.h"
#include "topup/config.h"
#include "topup/event.h"
#include "topup/kafka.h"
#include "topup/names.h"
#include "topup/pg.h"
#include "topup/redis.h"

static void rt_die(const char *what, const char *msg)
{
    fprintf(stderr, "FATAL: %s: %s\n", what, msg);
    exit(1);
}

int64_t rt_now_ms(void)
{
    return event_now_ms();
}

void rt_date(int days, char out[11])
{
    days_format(days_local_from_ms(rt_now_ms()) + days, out);
}

void rt_init(struct rt *t, const char *name)
{
    memset(t, 0, sizeof(*t));
    unsigned char r[8];
    if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
        rt_die("getrandom", strerror(errno));
    }
    for (int i = 0; i < 8; i++) {
        snprintf(t->suffix + 2 * i, 3, "%02x", r[i]);
    }
    /* A receiving account of our own: records of other tests on the shared topic are ignored. */
    snprintf(t->account, sizeof(t->account), "88%02u%02u%02u%02u%02u%02u", r[0] % 100u, r[1] % 100u,
             r[2] % 100u, r[3] % 100u, r[4] % 100u, r[5] % 100u);
    snprintf(t->group, sizeof(t->group), "%s-%s", name, t->suffix);
    struct tp_error err = {0};
    t->pg = pg_conn_new(getenv("PG_CONNINFO"), 30000, &err);
    if (t->pg == NULL) {
        rt_die("postgres", err.msg);
    }
    t->producer = kafka_producer_new(name, NULL, NULL, &err);
    if (t->producer == NULL) {
        rt_die("kafka producer", err.msg);
    }
    t->worker = -1;
}

/* A record held for rt_flush() (defer_records): its provenance row and its message. */
struct rt_pending {
    char digest_hex[65];
    char account[64];
    char *txn_id;
    int64_t amount_fen;
    int seq;
    uint8_t *payload;
    size_t len;
};

void rt_free(struct rt *t)
{
    if (t->worker > 0) {
        (void)rt_worker_stop(t, SIGKILL, 5000);
    }
    kafka_producer_free(t->producer);
    pg_conn_free(t->pg);
    free(t->pending);
}

bool rt_check(struct rt *t, bool cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, cond ? "ok    " : "FAIL  ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (!cond) {
        t->failures++;
    }
    return cond;
}

void rt_worker_start(struct rt *t, const char *const *env, const char *log_path)
{
    char bin[4096];
    const char *build = getenv("TOPUP_BUILD_DIR");
    snprintf(bin, sizeof(bin), "%s/services/reconciliation/reconciliation",
             build != NULL ? build : "build");
    pid_t pid = fork();
    if (pid < 0) {
        rt_die("fork", strerror(errno));
    }
    if (pid == 0) {
        /* A test that dies (assertion, timeout) must not leave a worker behind on the stack. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("RECON_GROUP", t->group, 1);
        setenv("RECON_RECEIVING_ACCOUNTS", t->account, 1);
        setenv("LOG_LEVEL", "info", 0);
        for (int i = 0; env != NULL && env[i] != NULL; i++) {
            putenv((char *)env[i]);
        }
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        execl(bin, bin, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    t->worker = pid;
}

int rt_worker_stop(struct rt *t, int sig, int timeout_ms)
{
    if (t->worker <= 0) {
        return -1;
    }
    kill(t->worker, sig);
    int status = 0;
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        pid_t p = waitpid(t->worker, &status, WNOHANG);
        if (p == t->worker) {
            t->worker = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(50 * 1000);
    }
    kill(t->worker, SIGKILL);
    waitpid(t->worker, &status, 0);
    t->worker = -1;
    return -1;
}

int64_t rt_order(struct rt *t, const char *code, const char *account_id, int64_t amount_fen,
                 const char *name, int64_t created_ms, int64_t expires_ms, const char *status)
{
    char norm[NAMES_NORM_MAX];
    struct tp_error err = {0};
    if (names_normalize(name, strlen(name), norm, &err) != TP_OK) {
        rt_die("names_normalize", err.msg);
    }
    char amount[24], created[24], expires[24];
    snprintf(amount, sizeof(amount), "%lld", (long long)amount_fen);
    snprintf(created, sizeof(created), "%lld", (long long)created_ms);
    snprintf(expires, sizeof(expires), "%lld", (long long)expires_ms);
    const char *const params[8] = {code, account_id, amount, name, norm, status, created, expires};
    PGresult *res = NULL;
    if (pg_exec(t->pg,
                "INSERT INTO topup_orders (code, account_id, amount_fen, channel, remitter_name,"
                " remitter_name_norm, remitter_bank, status, created_at, expires_at, updated_at)"
                " VALUES ($1, $2, $3::bigint, 'bank_transfer', $4, $5, '中国工商银行', $6,"
                " to_timestamp($7::bigint / 1000.0), to_timestamp($8::bigint / 1000.0), now())"
                " RETURNING id",
                8, params, &res, &err) != TP_OK) {
        rt_die("insert order", err.msg);
    }
    int64_t id = pg_get_i64(res, 0, 0);
    PQclear(res);
    return id;
}

static void rt_send(struct rt *t, const char *topic, const char *key, const void *buf, size_t len)
{
    struct tp_error err = {0};
    for (int tries = 0; tries < 1000; tries++) {
        enum tp_status st =
            kafka_producer_send(t->producer, topic, key, strlen(key), buf, len, NULL, &err);
        if (st == TP_OK) {
            return;
        }
        if (st != TP_RETRY) {
            break;
        }
        kafka_producer_poll(t->producer, 10);
    }
    rt_die("produce", err.msg);
}

void rt_requested(struct rt *t, const char *code, const char *account_id, int64_t amount_fen,
                  const char *name, int64_t created_ms, int64_t expires_ms)
{
    Topup__V1__TopUpRequested m;
    topup__v1__top_up_requested__init(&m);
    struct event_envelope_buf env;
    m.envelope = event_envelope_init(&env, "order-intake", account_id);
    m.order_code = (char *)code;
    m.amount_fen = amount_fen;
    m.currency = "CNY";
    m.channel = "bank_transfer";
    m.remitter_name = (char *)name;
    m.remitter_bank = "中国工商银行";
    m.created_at_ms = created_ms;
    m.expires_at_ms = expires_ms;
    uint8_t buf[2048];
    size_t len = topup__v1__top_up_requested__pack(&m, buf);
    rt_send(t, TOPIC_TOPUP_REQUESTED, account_id, buf, len);
}

/* The run's import: one statement_imports row, status completed, created on first use. */
static void rt_import(struct rt *t)
{
    if (t->import_id > 0) {
        return;
    }
    char sha[65], file[64];
    for (int i = 0; i < 4; i++) {
        memcpy(sha + 16 * i, t->suffix, 16);
    }
    sha[64] = '\0';
    snprintf(file, sizeof(file), "rt-%s.sta", t->suffix);
    const char *const params[2] = {sha, file};
    PGresult *res = NULL;
    struct tp_error err = {0};
    if (pg_exec(t->pg,
                "INSERT INTO statement_imports (sha256, file_name, format, status, completed_at)"
                " VALUES ($1, $2, 'mt940', 'completed', now()) RETURNING id",
                2, params, &res, &err) != TP_OK) {
        rt_die("insert import", err.msg);
    }
    t->import_id = pg_get_i64(res, 0, 0);
    PQclear(res);
}

/* Holds a packed record and its provenance until rt_record_pending(). */
static void rt_hold(struct rt *t, const Topup__V1__BankStatementRecord *m, const char *acct,
                    const uint8_t *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (t->n_pending == t->cap_pending) {
        t->cap_pending = t->cap_pending == 0 ? 64 : 2 * t->cap_pending;
        t->pending = realloc(t->pending, t->cap_pending * sizeof(*t->pending));
        if (t->pending == NULL) {
            rt_die("realloc", "out of memory");
        }
    }
    struct rt_pending *p = &t->pending[t->n_pending++];
    uint8_t d[EVENT_DIGEST_LEN];
    event_bsr_digest(m, d);
    for (int i = 0; i < EVENT_DIGEST_LEN; i++) {
        p->digest_hex[2 * i] = hex[d[i] >> 4];
        p->digest_hex[2 * i + 1] = hex[d[i] & 15];
    }
    p->digest_hex[64] = '\0';
    snprintf(p->account, sizeof(p->account), "%s", acct);
    p->txn_id = strdup(m->bank_txn_id);
    p->amount_fen = m->amount_fen;
    p->seq = ++t->seq;
    p->payload = malloc(len);
    if (p->txn_id == NULL || p->payload == NULL) {
        rt_die("malloc", "out of memory");
    }
    memcpy(p->payload, buf, len);
    p->len = len;
}

/* Records the held records' provenance in one statement, then produces them. */
static void rt_record_pending(struct rt *t)
{
    if (t->n_pending == 0) {
        return;
    }
    rt_import(t);
    struct jsonw w;
    jsonw_init(&w);
    jsonw_array_begin(&w);
    for (size_t i = 0; i < t->n_pending; i++) {
        const struct rt_pending *p = &t->pending[i];
        jsonw_object_begin(&w);
        jsonw_kint(&w, "s", p->seq);
        jsonw_kstr(&w, "d", p->digest_hex);
        jsonw_kstr(&w, "a", p->account);
        jsonw_kstr(&w, "t", p->txn_id);
        jsonw_kint(&w, "f", p->amount_fen);
        jsonw_object_end(&w);
    }
    jsonw_array_end(&w);
    char import[24];
    snprintf(import, sizeof(import), "%lld", (long long)t->import_id);
    const char *const params[2] = {import, jsonw_text(&w)};
    struct tp_error err = {0};
    if (pg_exec(t->pg,
                "INSERT INTO statement_import_records"
                " (import_id, seq, digest, receiving_account, bank_txn_id, amount_fen)"
                " SELECT $1::bigint, x.s, decode(x.d, 'hex'), x.a, x.t, x.f"
                " FROM json_to_recordset($2::json) AS x(s int, d text, a text, t text, f bigint)",
                2, params, NULL, &err) != TP_OK) {
        rt_die("record provenance", err.msg);
    }
    jsonw_deinit(&w);
    for (size_t i = 0; i < t->n_pending; i++) {
        struct rt_pending *p = &t->pending[i];
        rt_send(t, TOPIC_BANK_STATEMENT_RECORDS, p->account, p->payload, p->len);
        free(p->payload);
        free(p->txn_id);
    }
    t->n_pending = 0;
}

void rt_payer(struct rt *t, const char *account_id, const char *name)
{
    struct payer_change p = {
        .account_id = account_id, .display_name = name, .by = "rt", .reason = "test payer"};
    struct tp_error err = {0};
    enum tp_status st = payers_add(t->pg, &p, NULL, &err);
    if (st != TP_OK && st != TP_CONFLICT) {
        rt_die("payer", err.msg);
    }
}

void rt_record(struct rt *t, const struct rt_record *r)
{
    Topup__V1__BankStatementRecord m;
    topup__v1__bank_statement_record__init(&m);
    struct event_envelope_buf env;
    m.envelope = event_envelope_init(&env, "statement-import", "");
    char today[11];
    rt_date(0, today);
    const char *acct = r->receiving_account != NULL ? r->receiving_account : t->account;
    m.receiving_account = (char *)acct;
    m.bank_txn_id = (char *)r->txn_id;
    m.booking_date = (char *)(r->value_date != NULL ? r->value_date : today);
    m.value_date = (char *)(r->value_date != NULL ? r->value_date : today);
    m.amount_fen = r->amount_fen;
    m.currency = (char *)(r->currency != NULL ? r->currency : "CNY");
    m.direction = r->amount_fen < 0 ? TOPUP__V1__DIRECTION__DIRECTION_DEBIT
                                    : TOPUP__V1__DIRECTION__DIRECTION_CREDIT;
    m.counterparty_name = (char *)(r->name != NULL ? r->name : "");
    m.counterparty_account = "6222020200112233445";
    m.counterparty_bank = "中国工商银行北京分行";
    m.remittance_info = (char *)(r->remittance != NULL ? r->remittance : "");
    m.source_file = "test.sta";
    m.source_location = "line 1";
    m.format = "mt940";
    m.reversal = r->reversal;
    uint8_t buf[8192];
    size_t len = topup__v1__bank_statement_record__get_packed_size(&m);
    if (len > sizeof(buf)) {
        rt_die("record", "too large for the test buffer");
    }
    topup__v1__bank_statement_record__pack(&m, buf);
    if (r->unrecorded) {
        rt_send(t, TOPIC_BANK_STATEMENT_RECORDS, acct, buf, len);
        return;
    }
    rt_hold(t, &m, acct, buf, len);
    if (!t->defer_records) {
        rt_record_pending(t);
    }
}

void rt_raw(struct rt *t, const char *topic, const char *key, const void *payload, size_t len)
{
    rt_send(t, topic, key, payload, len);
}

void rt_flush(struct rt *t)
{
    rt_record_pending(t);
    struct tp_error err = {0};
    if (kafka_producer_flush(t->producer, 30000, &err) != TP_OK) {
        rt_die("flush", err.msg);
    }
}

const char *rt_scalar(struct rt *t, char *out, size_t out_len, const char *sql, int n,
                      const char *const *params)
{
    PGresult *res = NULL;
    struct tp_error err = {0};
    if (pg_exec(t->pg, sql, n, params, &res, &err) != TP_OK) {
        fprintf(stderr, "query failed: %s\n  %s\n", err.msg, sql);
        snprintf(out, out_len, "<error>");
    } else {
        snprintf(out, out_len, "%s", PQntuples(res) > 0 ? pg_get_str(res, 0, 0) : "");
    }
    PQclear(res);
    return out;
}

bool rt_wait(struct rt *t, int timeout_ms, const char *want, const char *sql, int n,
             const char *const *params)
{
    char got[256] = "";
    for (int waited = 0;; waited += 100) {
        if (strcmp(rt_scalar(t, got, sizeof(got), sql, n, params), want) == 0) {
            return true;
        }
        if (waited >= timeout_ms) {
            fprintf(stderr, "  waited %d ms for \"%s\", last \"%s\": %s\n", timeout_ms, want, got,
                    sql);
            return false;
        }
        usleep(100 * 1000);
    }
}

int rt_topupctl(const char *const *args, char *out, size_t out_len)
{
    char bin[4096];
    const char *build = getenv("TOPUP_BUILD_DIR");
    snprintf(bin, sizeof(bin), "%s/services/topupctl/topupctl", build != NULL ? build : "build");
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        rt_die("pipe", strerror(errno));
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        const char *argv[32] = {bin};
        int n = 1;
        for (int i = 0; args[i] != NULL && n < 31; i++) {
            argv[n++] = args[i];
        }
        argv[n] = NULL;
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t got = 0;
    ssize_t k;
    while (out_len > 0 && got + 1 < out_len &&
           (k = read(pipefd[0], out + got, out_len - got - 1)) > 0) {
        got += (size_t)k;
    }
    char sink[4096];
    while (read(pipefd[0], sink, sizeof(sink)) > 0) {
    }
    if (out_len > 0) {
        out[got] = '\0';
    }
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int64_t rt_counter(const char *name)
{
    struct redis_client *r = redis_new(NULL, 0, 500, 1000);
    redisReply *reply = NULL;
    struct tp_error err = {0};
    int64_t v = 0;
    if (redis_command(r, &reply, &err, "GET topup:ctr:reconciliation:%s", name) == TP_OK &&
        reply != NULL && reply->type == REDIS_REPLY_STRING) {
        v = strtoll(reply->str, NULL, 10);
    }
    if (reply != NULL) {
        freeReplyObject(reply);
    }
    redis_free(r);
    return v;
}

/* Sets a librdkafka property from the KAFKA_* environment (the same mapping as config.h). */
static int rt_conf_kv(void *ctx, const char *key, const char *value, char *errstr, size_t len)
{
    return rd_kafka_conf_set(ctx, key, value, errstr, len) == RD_KAFKA_CONF_OK ? 0 : -1;
}

bool rt_find(const char *topic, rt_message_fn *fn, void *ctx, int timeout_ms)
{
    char errstr[512];
    struct tp_error err = {0};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (config_apply_kafka_env(rt_conf_kv, conf, &err) != TP_OK ||
        rd_kafka_conf_set(conf, "group.id", "recon-test-reader", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
        rt_die("reader config", err.msg[0] != '\0' ? err.msg : errstr);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rt_die("reader", errstr);
    }
    rd_kafka_poll_set_consumer(rk);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1) {
        rt_die("reader metadata", topic);
    }
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    bool found = false;
    int64_t deadline = rt_now_ms() + timeout_ms;
    while (!found && rt_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL) {
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            found = fn(ctx, m->key, m->key_len, m->payload, m->len);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return found;
}
