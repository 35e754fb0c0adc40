/* order-intake integration tests: start/stop the service, HTTP calls, SQL, decoded events. */
#include "harness.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "topup/kafka.h"
#include "topup/log.h"
#include "topup/v1/events.pb-c.h"

#define IT_EVENTS_MAX 20000

static const char *it_binary;
static int it_counter;
/* tests/lib keeps pointers to its children until exit: they live here, one per start. */
static struct tl_proc it_procs[IT_SERVICES_MAX];
static int it_nprocs;

int64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int ms)
{
    tl_sleep_ms(ms);
}

void it_fail(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (int i = 0; i < it_nprocs; i++) {
        if (it_procs[i].pid > 0) {
            tl_proc_log_tail(&it_procs[i], 40);
        }
    }
    tl_fail("%s", msg); /* kills every child */
}

void it_step(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tl_step("%s", msg);
}

void it_init(int argc, char **argv, const char *name)
{
    tl_init(name);
    if (argc < 2) {
        it_fail("usage: %s <order-intake binary>", argv[0]);
    }
    it_binary = argv[1];
    log_init(name);
    const char *secret = getenv("TOKEN_SECRET");
    CHECK_MSG(secret != NULL && strlen(secret) >= TOKEN_SECRET_MIN_BYTES,
              "TOKEN_SECRET missing from the stack env");
    tl_pg(); /* fails now, not mid-test, when PG_CONNINFO is missing or wrong */
    signal(SIGPIPE, SIG_IGN);
}

char *it_id(char *out, const char *prefix)
{
    snprintf(out, IT_ID_MAX, "%s-%s-%d", prefix, tl_sfx(), ++it_counter);
    return out;
}

/* ---- the service ---- */

static int it_read_port(const char *path)
{
    char *text = tl_read_file(path, NULL);
    int port = text != NULL ? atoi(text) : 0;
    free(text);
    return port;
}

void it_start(struct it_service *s, const char *const *env)
{
    CHECK_MSG(it_nprocs < IT_SERVICES_MAX, "more than %d starts of order-intake", IT_SERVICES_MAX);
    memset(s, 0, sizeof(*s));
    s->proc = &it_procs[it_nprocs++];
    char name[32], port_file[TL_PATH_MAX], port_env[TL_PATH_MAX + 32];
    snprintf(name, sizeof(name), "order-intake-%d", it_nprocs);
    snprintf(port_file, sizeof(port_file), "%s/%s.port", tl_logdir(), name);
    snprintf(port_env, sizeof(port_env), "INTAKE_PORT_FILE=%s", port_file);
    unlink(port_file);
    const char *over[TL_PROC_ENV_MAX + 1] = {"INTAKE_HTTP_PORT=0", port_env};
    int nover = 2;
    if (getenv("LOG_LEVEL") == NULL) {
        over[nover++] = "LOG_LEVEL=info";
    }
    for (int i = 0; env != NULL && env[i] != NULL; i++) {
        CHECK(nover < TL_PROC_ENV_MAX);
        over[nover++] = env[i];
    }
    const char *argv[] = {it_binary, NULL};
    tl_proc_start(s->proc, name, argv, over);
    int64_t deadline = it_now_ms() + IT_WAIT_MS;
    while ((s->port = it_read_port(port_file)) == 0) {
        tl_proc_check_alive(s->proc);
        CHECK_MSG(it_now_ms() < deadline, "order-intake did not write its port file");
        it_sleep_ms(20);
    }
}

int it_stop(struct it_service *s, int sig)
{
    if (s->proc == NULL || s->proc->pid <= 0) {
        return -1;
    }
    int rc = tl_proc_stop(s->proc, sig, IT_WAIT_MS, NULL);
    if (rc != 0) {
        tl_proc_log_tail(s->proc, 40);
    }
    CHECK_MSG(rc != -1, "order-intake did not exit within %d ms of signal %d", IT_WAIT_MS, sig);
    return rc;
}

pid_t it_pid(const struct it_service *s)
{
    return s->proc != NULL ? s->proc->pid : 0;
}

void it_wait_ready(struct it_service *s)
{
    int64_t deadline = it_now_ms() + IT_WAIT_MS;
    for (;;) {
        struct it_resp r;
        it_call(s, "GET", "/readyz", NULL, NULL, NULL, NULL, NULL, &r);
        int status = r.status;
        it_resp_free(&r);
        if (status == 200) {
            return;
        }
        CHECK_MSG(it_now_ms() < deadline, "order-intake not ready (last status %d)", status);
        it_sleep_ms(100);
    }
}

void it_token(char out[TOKEN_STR_MAX], const char *account, int64_t ttl_s)
{
    const char *secret = getenv("TOKEN_SECRET");
    struct tp_error err = {0};
    int64_t exp = (int64_t)time(NULL) + ttl_s;
    CHECK_MSG(token_issue(secret, strlen(secret), account, exp, out, TOKEN_STR_MAX, &err) == TP_OK,
              "token_issue: %s", err.msg);
}

/* ---- HTTP ---- */

void it_call(const struct it_service *s, const char *method, const char *path, const char *token,
             const char *idem_key, const char *content_type, const char *body,
             const char *const *extra, struct it_resp *out)
{
    char auth[TOKEN_STR_MAX + 32], idem[512], ct[256];
    const char *headers[16];
    int n = 0;
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        headers[n++] = auth;
    }
    if (idem_key != NULL) {
        snprintf(idem, sizeof(idem), "Idempotency-Key: %s", idem_key);
        headers[n++] = idem;
    }
    if (content_type != NULL) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
        headers[n++] = ct;
    }
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 15; i++) {
        headers[n++] = extra[i];
    }
    headers[n] = NULL;
    memset(out, 0, sizeof(*out));
    int rc = -1;
    /* A fresh connection can meet a full accept queue under load: a few attempts. */
    for (int attempt = 0; attempt < 3 && rc != 0; attempt++) {
        rc = hc_once(NULL, s->port, method, path, headers, body, &out->raw);
        if (rc != 0) {
            it_sleep_ms(50);
        }
    }
    CHECK_MSG(rc == 0, "%s %s: no HTTP response from port %d", method, path, s->port);
    out->status = out->raw.status;
    json_error_t e;
    out->json = out->raw.body_len > 0 ? json_loadb(out->raw.body, out->raw.body_len, 0, &e) : NULL;
}

void it_resp_free(struct it_resp *r)
{
    json_decref(r->json);
    r->json = NULL;
    hc_response_free(&r->raw);
}

const char *it_err(const struct it_resp *r)
{
    json_t *e = json_object_get(json_object_get(r->json, "error"), "code");
    return json_is_string(e) ? json_string_value(e) : "";
}

const char *it_err_field(const struct it_resp *r)
{
    json_t *e = json_object_get(json_object_get(r->json, "error"), "field");
    return json_is_string(e) ? json_string_value(e) : "";
}

const char *it_str(const struct it_resp *r, const char *key)
{
    json_t *v = json_object_get(r->json, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

char *it_body(char *buf, size_t size, const char *amount, const char *name, const char *bank,
              const char *remarks)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:b}", "amount", amount, "channel", "bank_transfer",
                          "remitter_name", name, "remitter_bank", bank, "agreement_accepted", 1);
    if (remarks != NULL) {
        json_object_set_new(j, "remarks", json_string(remarks));
    }
    char *text = json_dumps(j, JSON_COMPACT);
    snprintf(buf, size, "%s", text);
    free(text);
    json_decref(j);
    return buf;
}

void it_create(const struct it_service *s, const char *token, const char *idem_key,
               const char *body, struct it_resp *out)
{
    it_call(s, "POST", "/v1/topup-orders", token, idem_key, "application/json", body, NULL, out);
}

void it_create_ok(const struct it_service *s, const char *token, const char *amount,
                  char code[REFCODE_STR_LEN])
{
    char key[IT_ID_MAX], body[1024];
    it_id(key, "key");
    it_body(body, sizeof(body), amount, "张三", "中国工商银行", NULL);
    struct it_resp r;
    it_create(s, token, key, body, &r);
    CHECK_MSG(r.status == 201, "create: status %d body %s", r.status, r.raw.body);
    snprintf(code, REFCODE_STR_LEN, "%s", it_str(&r, "code"));
    CHECK(ids_refcode_valid(code));
    it_resp_free(&r);
}

/* ---- PostgreSQL: tests/lib's connection ---- */

PGconn *it_pg_connect(void)
{
    PGconn *c = PQconnectdb(tl_env("PG_CONNINFO"));
    CHECK_MSG(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    return c;
}

PGresult *it_sql(const char *sql, int n, const char *const *params)
{
    return tl_pg_query(sql, n, params);
}

void it_exec(const char *sql, int n, const char *const *params)
{
    tl_pg_exec(sql, n, params);
}

int64_t it_i64(const char *sql, int n, const char *const *params)
{
    int64_t v = tl_pg_i64(sql, n, params);
    return v == INT64_MIN ? 0 : v; /* NULL (an empty sum) counts as 0 here */
}

void it_wait_i64(const char *what, const char *sql, int n, const char *const *params, int64_t want)
{
    int64_t got = tl_pg_wait_i64(what, sql, n, params, want, IT_WAIT_MS);
    CHECK_MSG(got == want, "%s: got %lld, want %lld", what, (long long)got, (long long)want);
}

/* ---- Kafka ---- */

struct it_consumer {
    struct kafka_consumer *kc;
    struct it_event *events;
    int n;
};

struct it_consumer *it_consumer_new(const char *bootstrap)
{
    if (bootstrap != NULL) {
        setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap, 1);
    }
    char group[IT_ID_MAX];
    it_id(group, "intake-it-group");
    const char *topics[] = {TOPIC_TOPUP_REQUESTED, TOPIC_TOPUP_CANCELLED, TOPIC_TOPUP_EXPIRED};
    struct tp_error err = {0};
    struct it_consumer *c = calloc(1, sizeof(*c));
    c->kc = kafka_consumer_new(group, topics, 3, &err);
    CHECK_MSG(c->kc != NULL, "kafka consumer: %s", err.msg);
    c->events = calloc(IT_EVENTS_MAX, sizeof(*c->events));
    return c;
}

static void it_copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

static void it_envelope(struct it_event *e, const Topup__V1__Envelope *env)
{
    CHECK_MSG(env != NULL, "event without envelope");
    it_copy(e->account, sizeof(e->account), env->account_id);
    it_copy(e->producer, sizeof(e->producer), env->producer);
    it_copy(e->event_id, sizeof(e->event_id), env->event_id);
    e->schema_version = env->schema_version;
}

/* Decodes one message of our topics; fails the test on bytes that are not the topic's message. */
static void it_decode(const struct kafka_message *m, struct it_event *e)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->key, sizeof(e->key), "%.*s", (int)m->key_len, (const char *)m->key);
    snprintf(e->topic, sizeof(e->topic), "%s", m->topic);
    e->partition = m->partition;
    e->offset = m->offset;
    if (strcmp(m->topic, TOPIC_TOPUP_REQUESTED) == 0) {
        Topup__V1__TopUpRequested *ev =
            topup__v1__top_up_requested__unpack(NULL, m->len, m->payload);
        CHECK_MSG(ev != NULL, "undecodable TopUpRequested (key %s)", e->key);
        e->kind = IT_REQUESTED;
        it_envelope(e, ev->envelope);
        it_copy(e->code, sizeof(e->code), ev->order_code);
        e->amount_fen = ev->amount_fen;
        it_copy(e->remitter_name, sizeof(e->remitter_name), ev->remitter_name);
        e->created_ms = ev->created_at_ms;
        e->expires_ms = ev->expires_at_ms;
        topup__v1__top_up_requested__free_unpacked(ev, NULL);
    } else if (strcmp(m->topic, TOPIC_TOPUP_CANCELLED) == 0) {
        Topup__V1__TopUpCancelled *ev =
            topup__v1__top_up_cancelled__unpack(NULL, m->len, m->payload);
        CHECK_MSG(ev != NULL, "undecodable TopUpCancelled (key %s)", e->key);
        e->kind = IT_CANCELLED;
        it_envelope(e, ev->envelope);
        it_copy(e->code, sizeof(e->code), ev->order_code);
        e->at_ms = ev->cancelled_at_ms;
        topup__v1__top_up_cancelled__free_unpacked(ev, NULL);
    } else {
        Topup__V1__TopUpExpired *ev = topup__v1__top_up_expired__unpack(NULL, m->len, m->payload);
        CHECK_MSG(ev != NULL, "undecodable TopUpExpired (key %s)", e->key);
        e->kind = IT_EXPIRED;
        it_envelope(e, ev->envelope);
        it_copy(e->code, sizeof(e->code), ev->order_code);
        e->at_ms = ev->expired_at_ms;
        topup__v1__top_up_expired__free_unpacked(ev, NULL);
    }
}

/* Kafka redelivers after a group rejoin; the same topic, partition and offset is one message. */
static bool it_seen(const struct it_consumer *c, const struct kafka_message *m)
{
    for (int i = 0; i < c->n; i++) {
        const struct it_event *e = &c->events[i];
        if (e->offset == m->offset && e->partition == m->partition &&
            strcmp(e->topic, m->topic) == 0) {
            return true;
        }
    }
    return false;
}

static int it_count_prefix(const struct it_consumer *c, const char *prefix)
{
    int k = 0;
    for (int i = 0; i < c->n; i++) {
        k += strncmp(c->events[i].key, prefix, strlen(prefix)) == 0;
    }
    return k;
}

int it_collect(struct it_consumer *c, const char *key_prefix, int want, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    struct kafka_message msgs[256];
    while (it_count_prefix(c, key_prefix) < want && it_now_ms() < deadline) {
        int n = kafka_consumer_poll_batch(c->kc, msgs, 256, 200);
        for (int i = 0; i < n; i++) {
            /* Topics are shared by every test of the run: keep only this run's keys. */
            if (msgs[i].key_len > 0 &&
                memmem(msgs[i].key, msgs[i].key_len, tl_sfx(), strlen(tl_sfx())) != NULL &&
                !it_seen(c, &msgs[i])) {
                CHECK_MSG(c->n < IT_EVENTS_MAX, "too many events");
                it_decode(&msgs[i], &c->events[c->n++]);
            }
        }
        kafka_consumer_release(c->kc, msgs, n);
    }
    return it_count_prefix(c, key_prefix);
}

const struct it_event *it_events(const struct it_consumer *c, int *n)
{
    *n = c->n;
    return c->events;
}

void it_consumer_free(struct it_consumer *c)
{
    if (c != NULL) {
        kafka_consumer_free(c->kc);
        free(c->events);
        free(c);
    }
}
