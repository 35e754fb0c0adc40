/* Kafka identities on the real broker: only reconciliation may write payment.matched, a wrong
 * password is refused at authentication, and what the broker refused credits nothing. */
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "topup/event.h"
#include "topup/kafka.h"
#include "topup/v1/events.pb-c.h"

/* Longest wait for one delivery report or one error callback (a loaded machine, a JVM broker). */
#define ACL_DELIVERY_MS 90000
/* How long a producer with a wrong password keeps its message before giving up on it. */
#define ACL_BADAUTH_TIMEOUT_MS 20000
#define ACL_CREDIT_FEN         12345

static char stack_dir[TL_PATH_MAX];

/* What one producer saw: the delivery report of its one message and any client error. */
struct acl_seen {
    bool delivered;
    rd_kafka_resp_err_t dr_err;
    rd_kafka_resp_err_t client_err;
    char client_reason[512];
};

static void acl_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct acl_seen *s = opaque;
    s->delivered = true;
    s->dr_err = m->err;
}

static void acl_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    struct acl_seen *s = opaque;
    if (s->client_err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        s->client_err = (rd_kafka_resp_err_t)err;
        snprintf(s->client_reason, sizeof(s->client_reason), "%s", reason);
    }
}

static void acl_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char errstr[512];
    TL_CHECK_MSG(rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK,
                 "%s: %s", k, errstr);
}

/* The stack's password of principal (its secrets file); caller frees. */
static char *acl_password(const char *principal)
{
    char path[TL_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s.password", tl_env("TOPUP_KAFKA_SECRETS_DIR"), principal);
    char *pw = tl_read_file(path, NULL);
    TL_CHECK_MSG(pw != NULL && pw[0] != '\0', "no password for %s in %s", principal, path);
    pw[strcspn(pw, "\r\n")] = '\0';
    return pw;
}

/* A client configuration authenticated as principal with password (SASL/SCRAM of the stack). */
static rd_kafka_conf_t *acl_conf(const char *principal, const char *password)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    acl_set(conf, "bootstrap.servers", tl_env("KAFKA_BOOTSTRAP_SERVERS"));
    acl_set(conf, "security.protocol", tl_env("KAFKA_SECURITY_PROTOCOL"));
    acl_set(conf, "sasl.mechanisms", tl_env("KAFKA_SASL_MECHANISMS"));
    acl_set(conf, "sasl.username", principal);
    acl_set(conf, "sasl.password", password);
    acl_set(conf, "log_level", "3");
    return conf;
}

/*
 * Produces payload to payment.matched as principal (password NULL: the stack's), with the
 * production settings (idempotent, acks=all), and waits for its delivery report, or for
 * message_timeout_ms. Returns what the producer saw.
 */
static struct acl_seen acl_produce(const char *principal, const char *password, const char *key,
                                   const void *payload, size_t len, int message_timeout_ms)
{
    struct acl_seen seen = {0};
    char *own = password == NULL ? acl_password(principal) : NULL;
    rd_kafka_conf_t *conf = acl_conf(principal, password != NULL ? password : own);
    free(own);
    char timeout[24];
    snprintf(timeout, sizeof(timeout), "%d", message_timeout_ms);
    acl_set(conf, "enable.idempotence", "true");
    acl_set(conf, "acks", "all");
    acl_set(conf, "message.timeout.ms", timeout);
    rd_kafka_conf_set_dr_msg_cb(conf, acl_dr);
    rd_kafka_conf_set_error_cb(conf, acl_error);
    rd_kafka_conf_set_opaque(conf, &seen);
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    TL_CHECK_MSG(rk != NULL, "producer as %s: %s", principal, errstr);
    rd_kafka_resp_err_t e =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(TOPIC_PAYMENT_MATCHED),
                          RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)payload, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    TL_CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR, "produce as %s: %s", principal,
                 rd_kafka_err2str(e));
    int64_t deadline = tl_now_ms() + ACL_DELIVERY_MS;
    while (!seen.delivered) {
        TL_CHECK_MSG(tl_now_ms() < deadline, "no delivery report as %s after %d ms", principal,
                     ACL_DELIVERY_MS);
        rd_kafka_poll(rk, 200);
    }
    rd_kafka_destroy(rk);
    tl_step("as %s: delivery %s%s%s", principal, rd_kafka_err2name(seen.dr_err),
            seen.client_err ? "; client error " : "", seen.client_err ? seen.client_reason : "");
    return seen;
}

/* Messages in payment.matched, read as the ledger (its topic, its group). */
static int64_t acl_topic_size(void)
{
    char *pw = acl_password("ledger");
    rd_kafka_conf_t *conf = acl_conf("ledger", pw);
    free(pw);
    acl_set(conf, "group.id", "ledger");
    acl_set(conf, "enable.auto.commit", "false");
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    TL_CHECK_MSG(rk != NULL, "consumer: %s", errstr);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, TOPIC_PAYMENT_MATCHED, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 30000);
    TL_CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1, "metadata: %s",
                 rd_kafka_err2str(e));
    int n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        int64_t lo = 0, hi = 0;
        e = rd_kafka_query_watermark_offsets(rk, TOPIC_PAYMENT_MATCHED, i, &lo, &hi, 30000);
        TL_CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR, "watermarks of partition %d: %s", i,
                     rd_kafka_err2str(e));
        total += hi - lo;
    }
    rd_kafka_destroy(rk);
    return total;
}

/* A PaymentMatched for code/account, naming bank record txn; *len its size in buf. */
static void acl_matched(const char *eid, const char *account, const char *code, const char *txn,
                        uint8_t *buf, size_t cap, size_t *len)
{
    Topup__V1__Envelope env;
    topup__v1__envelope__init(&env);
    env.event_id = (char *)eid;
    env.occurred_at_ms = event_now_ms();
    env.producer = "reconciliation";
    env.schema_version = EVENT_SCHEMA_VERSION;
    env.account_id = (char *)account;
    Topup__V1__PaymentMatched m;
    topup__v1__payment_matched__init(&m);
    m.envelope = &env;
    m.order_code = (char *)code;
    m.credited_fen = ACL_CREDIT_FEN;
    m.order_amount_fen = ACL_CREDIT_FEN;
    m.rule = TOPUP__V1__MATCH_RULE__MATCH_RULE_REFERENCE;
    m.receiving_account = "6222000011112222";
    m.bank_txn_id = (char *)txn;
    m.value_date = "2026-12-07";
    *len = topup__v1__payment_matched__get_packed_size(&m);
    TL_CHECK(*len <= cap);
    topup__v1__payment_matched__pack(&m, buf);
}

static int64_t acl_flows(const char *account)
{
    const char *p[1] = {account};
    return tl_pg_i64("SELECT count(*) FROM account_flows WHERE account_id = $1", 1, p);
}

static int64_t acl_balance(const char *account)
{
    const char *p[1] = {account};
    return tl_pg_i64("SELECT coalesce((SELECT balance_fen FROM accounts WHERE account_id = $1), 0)",
                     1, p);
}

/* At exit, passed or failed: the private stack goes, data included. A plain system() so that it
 * does not depend on tests/lib's process table, which its own exit handler has torn down. */
static void acl_stack_clean(void)
{
    if (stack_dir[0] == '\0') {
        return;
    }
    char cmd[3 * TL_PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "TOPUP_STACK_DIR='%s' bash '%s/deploy/local/stack.sh' clean >>'%s.clean.log' 2>&1",
             stack_dir, getenv("TOPUP_SOURCE_DIR") != NULL ? getenv("TOPUP_SOURCE_DIR") : ".",
             stack_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "kafka_acl: stack.sh clean of %s failed; see %s.clean.log\n", stack_dir,
                stack_dir);
    }
}

int main(void)
{
    tl_init("kafka_acl");
    snprintf(stack_dir, sizeof(stack_dir), "%s/stack", tl_logdir());
    atexit(acl_stack_clean);
    const char *stack_env[] = {"TOPUP_KAFKA=kafka", "TOPUP_KAFKA_AUTH=scram", NULL};
    tl_stack_start(stack_dir, stack_env);
    TL_CHECK_MSG(strcmp(tl_env("KAFKA_SECURITY_PROTOCOL"), "SASL_PLAINTEXT") == 0,
                 "the stack's Kafka does not authenticate (KAFKA_SECURITY_PROTOCOL=%s)",
                 tl_env("KAFKA_SECURITY_PROTOCOL"));

    /* The money a forgery would move if it reached the ledger: a pending order whose match
     * decision exists, so that the broker is the only thing between the forger and a credit. */
    char account[TL_ID_MAX], code[TL_ID_MAX], txn[TL_ID_MAX], eid[UUID_STR_LEN], amount[24];
    tl_id(account, "acct-acl");
    tl_id(code, "TUACL");
    tl_id(txn, "txn-acl");
    tl_event_id(eid);
    snprintf(amount, sizeof(amount), "%d", ACL_CREDIT_FEN);
    const char *op[3] = {code, account, amount};
    tl_pg_exec("INSERT INTO topup_orders (code, account_id, amount_fen, channel, remitter_name, "
               "remitter_name_norm, remitter_bank, status, expires_at, matched_at) VALUES ($1, "
               "$2, $3, 'bank_transfer', '张三', '张三', 'ICBC', 'processing', now() + interval "
               "'3 days', now())",
               3, op);
    const char *rp[4] = {code, txn, amount, "6222000011112222"};
    tl_pg_exec("WITH r AS (INSERT INTO statement_records (receiving_account, bank_txn_id, "
               "value_date, amount_fen, currency, direction, event_id, state) VALUES ($4, $2, "
               "DATE '2026-12-07', $3, 'CNY', 'credit', $2, 'matched') RETURNING id) "
               "INSERT INTO match_decisions (record_id, order_id, outcome, rule, decided_by) "
               "SELECT r.id, o.id, 'matched', 'reference', 'kafka-acl-test' FROM r, topup_orders o "
               "WHERE o.code = $1",
               4, rp);
    uint8_t ev[1024];
    size_t len = 0;
    acl_matched(eid, account, code, txn, ev, sizeof(ev), &len);

    /* The ledger, as its own principal, on the SASL listener (its ApiVersions probe included). */
    char user_env[64], pw_env[TL_PATH_MAX + 64];
    snprintf(user_env, sizeof(user_env), "KAFKA_SASL_USERNAME=ledger");
    snprintf(pw_env, sizeof(pw_env), "KAFKA_SASL_PASSWORD_FILE=%s/ledger.password",
             tl_env("TOPUP_KAFKA_SECRETS_DIR"));
    const char *led_env[] = {"LEDGER_GROUP=ledger", "LOG_LEVEL=info", user_env, pw_env, NULL};
    static struct tl_proc led; /* tests/lib keeps a pointer to it until exit */
    tl_worker_start(&led, "ledger", "ledger", led_env);

    /* 1. The gateways and the importer are authenticated, and refused the topic. */
    struct acl_seen s = acl_produce("gateways", NULL, account, ev, len, ACL_DELIVERY_MS);
    TL_CHECK_MSG(s.dr_err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                 "gateways writing payment.matched: delivery %s, want TOPIC_AUTHORIZATION_FAILED",
                 rd_kafka_err2name(s.dr_err));
    s = acl_produce("statement-import", NULL, account, ev, len, ACL_DELIVERY_MS);
    TL_CHECK_MSG(s.dr_err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                 "statement-import writing payment.matched: delivery %s, want "
                 "TOPIC_AUTHORIZATION_FAILED",
                 rd_kafka_err2name(s.dr_err));

    /* 2. Reconciliation's name with a wrong password: refused at authentication, never sent. */
    s = acl_produce("reconciliation", "not-the-password", account, ev, len, ACL_BADAUTH_TIMEOUT_MS);
    TL_CHECK_MSG(s.client_err == RD_KAFKA_RESP_ERR__AUTHENTICATION,
                 "a wrong password: client error %s (%s), want _AUTHENTICATION",
                 rd_kafka_err2name(s.client_err), s.client_reason);
    TL_CHECK_MSG(s.dr_err != RD_KAFKA_RESP_ERR_NO_ERROR,
                 "a wrong password's message was delivered");

    /* Nothing of the three reached the topic, and nothing was credited. */
    int64_t size = acl_topic_size();
    TL_CHECK_MSG(size == 0, "payment.matched holds %lld messages after three refused writes",
                 (long long)size);
    TL_CHECK_MSG(acl_flows(account) == 0 && acl_balance(account) == 0,
                 "refused writes moved money: %lld flows, balance %lld",
                 (long long)acl_flows(account), (long long)acl_balance(account));
    tl_proc_check_alive(&led);

    /* 3. The positive control: the same event from reconciliation reaches the topic and is
     * credited once, so the wait below can see a credit, and the refused ones left none. */
    s = acl_produce("reconciliation", NULL, account, ev, len, ACL_DELIVERY_MS);
    TL_CHECK_MSG(s.dr_err == RD_KAFKA_RESP_ERR_NO_ERROR,
                 "reconciliation writing payment.matched: %s", rd_kafka_err2name(s.dr_err));
    TL_CHECK_MSG(acl_topic_size() == 1, "payment.matched holds %lld messages, want 1",
                 (long long)acl_topic_size());
    const char *ap[1] = {account};
    int64_t flows = tl_pg_wait_i64("the recharge of the reconciliation's PaymentMatched",
                                   "SELECT count(*) FROM account_flows WHERE account_id = $1 AND "
                                   "flow_type = 'recharge'",
                                   1, ap, 1, ACL_DELIVERY_MS);
    TL_CHECK_MSG(flows == 1, "%lld recharge flows, want 1", (long long)flows);
    TL_CHECK_MSG(acl_flows(account) == 1 && acl_balance(account) == ACL_CREDIT_FEN,
                 "after the control: %lld flows, balance %lld, want 1 and %d",
                 (long long)acl_flows(account), (long long)acl_balance(account), ACL_CREDIT_FEN);
    int code_rc = tl_proc_stop(&led, SIGTERM, 60000, NULL);
    TL_CHECK_MSG(code_rc == 0, "ledger exited with %d after SIGTERM", code_rc);
    tl_step("refused: gateways and statement-import (TOPIC_AUTHORIZATION_FAILED), a wrong "
            "password (authentication); credited once: the reconciliation principal's event");
    return 0;
}
