/* Kafka wrappers over librdkafka: idempotent producer, batch consumer with durable-only offsets. */
#include "topup/kafka.h"

#include <ctype.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topup/config.h"
#include "topup/kafka_probe.h"
#include "topup/log.h"
#include "topup/mem.h"

/* What kafka_producer_free() waits for outstanding deliveries before purging them. */
#define KAFKA_PRODUCER_FREE_FLUSH_MS 10000
/* Bounds of kafka_consumer_free(): the final commit, then leaving the group. */
#define KAFKA_CLOSE_COMMIT_MS 5000
#define KAFKA_CLOSE_LEAVE_MS  10000
/* Slice of a bounded wait: how often a waiter looks at its deadline. */
#define KAFKA_WAIT_SLICE_MS 50
/* Longest topic name we build a dead-letter name for (Kafka's own limit is 249). */
#define KAFKA_TOPIC_MAX 249

struct kafka_producer {
    rd_kafka_t *rk;
    kafka_delivery_fn *on_delivery;
    void *ctx;
    atomic_int outstanding; /* sent and not yet reported */
};

/*
 * A dead letter's delivery waiter. It is shared between the waiting caller and the delivery
 * report; whichever of the two comes last frees it, so a waiter that gave up never dangles.
 */
enum dlq_wait_state { DLQ_WAIT_PENDING, DLQ_WAIT_DONE, DLQ_WAIT_ABANDONED };
struct dlq_wait {
    atomic_int state;
    rd_kafka_resp_err_t err;
};

struct kafka_consumer {
    rd_kafka_t *rk;
    char *group;
};

static int64_t kafka_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration ---- */

static int kafka_conf_set_kv(void *ctx, const char *key, const char *value, char *errstr,
                             size_t errlen)
{
    return rd_kafka_conf_set((rd_kafka_conf_t *)ctx, key, value, errstr, errlen) == RD_KAFKA_CONF_OK
               ? 0
               : -1;
}

static enum tp_status kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                                     struct tp_error *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        return error_set(err, TP_INVALID, "kafka %s=%s: %s", key, value, errstr);
    }
    return TP_OK;
}

/* Warns about KAFKA_* settings that the wrapper overrides because correctness depends on them. */
static void kafka_warn_overridden(const char *const *kv)
{
    for (int i = 0; kv[i] != NULL; i += 2) {
        char name[128] = "KAFKA_";
        size_t n = strlen(name);
        for (const char *k = kv[i]; *k != '\0' && n + 1 < sizeof(name); k++) {
            name[n++] = *k == '.' ? '_' : (char)toupper((unsigned char)*k);
        }
        name[n] = '\0';
        const char *v = getenv(name);
        if (v != NULL && strcmp(v, kv[i + 1]) != 0) {
            log_warn("kafka setting ignored: the wrapper requires another value", LF_S("env", name),
                     LF_S("value", v), LF_S("required", kv[i + 1]));
        }
    }
}

/* Sets each key/value pair of a NULL-terminated list. */
static enum tp_status kafka_conf_set_all(rd_kafka_conf_t *conf, const char *const *kv,
                                         struct tp_error *err)
{
    for (int i = 0; kv[i] != NULL; i += 2) {
        enum tp_status st = kafka_conf_set(conf, kv[i], kv[i + 1], err);
        if (st != TP_OK) {
            return st;
        }
    }
    return TP_OK;
}

/* librdkafka's own log lines, as JSON lines like everything else (called from its threads). */
static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (strcmp(fac, "FAIL") == 0) {
        /* A broker connection failed: kafka_error_cb reports the same event as a warning. */
        level = 7;
    }
    enum log_level lvl = level <= 3   ? LOG_ERROR
                         : level == 4 ? LOG_WARN
                         : level <= 6 ? LOG_INFO
                                      : LOG_DEBUG;
    log_write(lvl, "librdkafka",
              (const struct log_field[]){LF_S("client", rd_kafka_name(rk)), LF_S("facility", fac),
                                         LF_S("detail", buf)},
              3);
}

/* Client-level errors: mostly transient (brokers down) and retried inside librdkafka. */
static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[512] = "";
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        log_error("kafka client hit a fatal error; it must be recreated",
                  LF_S("client", rd_kafka_name(rk)), LF_S("error", rd_kafka_err2name(orig)),
                  LF_S("reason", fatal));
        return;
    }
    log_warn("kafka client error, retrying", LF_S("client", rd_kafka_name(rk)),
             LF_S("error", rd_kafka_err2name((rd_kafka_resp_err_t)err)), LF_S("reason", reason));
}

/*
 * Refuses a client whose broker lacks what it depends on (kafka_probe.h): the bootstrap list and
 * security protocol are those of the finished configuration, KAFKA_* included.
 */
static enum tp_status kafka_conf_probe(rd_kafka_conf_t *conf, int needs, struct tp_error *err)
{
    char bootstrap[1024] = "";
    char proto[64] = "";
    size_t len = sizeof(bootstrap);
    if (rd_kafka_conf_get(conf, "bootstrap.servers", bootstrap, &len) != RD_KAFKA_CONF_OK) {
        bootstrap[0] = '\0';
    }
    len = sizeof(proto);
    if (rd_kafka_conf_get(conf, "security.protocol", proto, &len) != RD_KAFKA_CONF_OK) {
        proto[0] = '\0';
    }
    return kafka_probe_check(bootstrap, proto, needs, err);
}

static rd_kafka_conf_t *kafka_conf_base(void)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    return conf;
}

/* ---- producer ---- */

/*
 * The one place a delivery error becomes a tp_status. Retriable: anything the broker or the
 * network may get over (timeouts, leaders moving, brokers down, purges); the message is then
 * not on Kafka and may be produced again. Fatal: the message or the client can never succeed as
 * is (too large, not authorised, fenced producer).
 */
static enum tp_status kafka_classify_delivery(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return TP_OK;
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
        return TP_FATAL;
    default:
        return TP_RETRY;
    }
}

static bool kafka_has_header(const rd_kafka_message_t *m, const char *name)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val = NULL;
    size_t size = 0;
    return rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
           rd_kafka_header_get_last(hdrs, name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

static void kafka_dlq_wait_complete(struct dlq_wait *w, rd_kafka_resp_err_t err)
{
    w->err = err;
    int expected = DLQ_WAIT_PENDING;
    if (!atomic_compare_exchange_strong(&w->state, &expected, DLQ_WAIT_DONE)) {
        /* The waiter gave up; the report is the last user. */
        free(w);
    }
}

static void kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct kafka_producer *p = opaque;
    atomic_fetch_sub(&p->outstanding, 1);
    /* Only kafka_dead_letter() sends headers, and it passes its waiter as the opaque. */
    if (kafka_has_header(m, DLQ_HEADER_REASON)) {
        kafka_dlq_wait_complete(m->_private, m->err);
        return;
    }
    enum tp_status st = kafka_classify_delivery(m->err);
    if (p->on_delivery != NULL) {
        /* The sender reports failures, once per batch rather than once per message. */
        p->on_delivery(p->ctx, m->_private, st, rd_kafka_err2str(m->err));
    } else if (st != TP_OK) {
        log_warn("kafka delivery failed", LF_S("topic", rd_kafka_topic_name(m->rkt)),
                 LF_I("partition", m->partition), LF_S("error", rd_kafka_err2name(m->err)),
                 LF_S("status", error_status_name(st)));
    }
}

struct kafka_producer *kafka_producer_new(const char *client_id, kafka_delivery_fn *on_delivery,
                                          void *ctx, struct tp_error *err)
{
    struct kafka_producer *p = NULL;
    rd_kafka_conf_t *conf = kafka_conf_base();
    /*
     * Defaults first, then KAFKA_* from the environment, then the settings money depends on,
     * which the environment may not weaken. murmur2_random maps keys to partitions as the Java
     * client does, so other producers of the same keys agree with us.
     */
    static const char *const defaults[] = {"linger.ms", "5", "partitioner", "murmur2_random", NULL};
    static const char *const required[] = {"enable.idempotence", "true", "acks", "all", NULL};
    if (kafka_conf_set(conf, "client.id", client_id, err) != TP_OK ||
        kafka_conf_set_all(conf, defaults, err) != TP_OK ||
        config_apply_kafka_env(kafka_conf_set_kv, conf, err) != TP_OK ||
        kafka_conf_set_all(conf, required, err) != TP_OK ||
        kafka_conf_probe(conf, KAFKA_PROBE_IDEMPOTENCE, err) != TP_OK) {
        goto out;
    }
    kafka_warn_overridden(required);
    p = mem_calloc(1, sizeof(*p));
    p->on_delivery = on_delivery;
    p->ctx = ctx;
    atomic_init(&p->outstanding, 0);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, kafka_dr_cb);
    char errstr[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (p->rk == NULL) {
        error_set(err, TP_INVALID, "kafka producer: %s", errstr);
        free(p);
        p = NULL;
        goto out;
    }
    conf = NULL; /* owned by rk now */
out:
    if (conf != NULL) {
        rd_kafka_conf_destroy(conf);
    }
    return p;
}

static enum tp_status kafka_classify_produce(rd_kafka_resp_err_t e, const char *topic,
                                             struct tp_error *err)
{
    enum tp_status st = e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? TP_RETRY : TP_FATAL;
    return error_set(err, st, "kafka produce to %s: %s", topic, rd_kafka_err2str(e));
}

enum tp_status kafka_producer_send(struct kafka_producer *p, const char *topic, const void *key,
                                   size_t key_len, const void *payload, size_t len, void *opaque,
                                   struct tp_error *err)
{
    atomic_fetch_add(&p->outstanding, 1);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        atomic_fetch_sub(&p->outstanding, 1);
        return kafka_classify_produce(e, topic, err);
    }
    return TP_OK;
}

int kafka_producer_poll(struct kafka_producer *p, int timeout_ms)
{
    return rd_kafka_poll(p->rk, timeout_ms);
}

enum tp_status kafka_producer_flush(struct kafka_producer *p, int timeout_ms, struct tp_error *err)
{
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return error_set(err, TP_RETRY, "kafka flush: %d messages still unreported after %d ms",
                         atomic_load(&p->outstanding), timeout_ms);
    }
    return TP_OK;
}

int kafka_producer_outstanding(struct kafka_producer *p)
{
    return atomic_load(&p->outstanding);
}

void kafka_producer_free(struct kafka_producer *p)
{
    if (p == NULL) {
        return;
    }
    if (rd_kafka_flush(p->rk, KAFKA_PRODUCER_FREE_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        /*
         * Whatever is left is failed explicitly, so every sender still hears about each of its
         * messages (as retriable) before the handle goes away.
         */
        log_warn("kafka producer closing with unreported messages; failing them",
                 LF_S("client", rd_kafka_name(p->rk)),
                 LF_I("outstanding", atomic_load(&p->outstanding)));
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        (void)rd_kafka_flush(p->rk, KAFKA_WAIT_SLICE_MS * 10);
    }
    rd_kafka_destroy(p->rk);
    free(p);
}

/* ---- consumer ---- */

static void kafka_log_partitions(const char *what, rd_kafka_t *rk,
                                 const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        log_info(what, LF_S("client", rd_kafka_name(rk)), LF_S("topic", parts->elems[i].topic),
                 LF_I("partition", parts->elems[i].partition));
    }
}

/*
 * Takes and gives back partitions as the group decides. No commit here: with auto-commit on,
 * librdkafka commits the stored offsets of revoked partitions asynchronously itself, and a
 * synchronous commit here can block for minutes while the coordinator is away.
 */
static void kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                               rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        kafka_log_partitions("kafka partition assigned", rk, parts);
        if (cooperative) {
            error = rd_kafka_incremental_assign(rk, parts);
        } else {
            aerr = rd_kafka_assign(rk, parts);
        }
    } else {
        if (e == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
            kafka_log_partitions("kafka partition revoked", rk, parts);
        } else {
            log_warn("kafka rebalance error; dropping assignment",
                     LF_S("client", rd_kafka_name(rk)), LF_S("error", rd_kafka_err2name(e)));
        }
        if (cooperative) {
            error = rd_kafka_incremental_unassign(rk, parts);
        } else {
            aerr = rd_kafka_assign(rk, NULL);
        }
    }
    if (error != NULL) {
        log_error("kafka incremental (un)assign failed", LF_S("client", rd_kafka_name(rk)),
                  LF_S("reason", rd_kafka_error_string(error)));
        rd_kafka_error_destroy(error);
    } else if (aerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_error("kafka (un)assign failed", LF_S("client", rd_kafka_name(rk)),
                  LF_S("error", rd_kafka_err2name(aerr)));
    }
}

struct kafka_consumer *kafka_consumer_new(const char *group, const char *const *topics, int n,
                                          struct tp_error *err)
{
    struct kafka_consumer *c = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *subs = NULL;
    rd_kafka_conf_t *conf = kafka_conf_base();
    /*
     * A 10 s session (librdkafka's default is 45 s) bounds how long a crashed member holds its
     * partitions, and how long a close waits for a commit while the coordinator is away.
     */
    static const char *const defaults[] = {"auto.offset.reset", "earliest", "session.timeout.ms",
                                           "10000", NULL};
    /* Only offsets the caller stored (after its commit) are ever auto-committed. */
    static const char *const required[] = {"enable.auto.commit", "true", "enable.auto.offset.store",
                                           "false", NULL};
    if (n <= 0) {
        error_set(err, TP_INVALID, "kafka consumer %s: no topics", group);
        goto out;
    }
    if (kafka_conf_set_all(conf, defaults, err) != TP_OK ||
        config_apply_kafka_env(kafka_conf_set_kv, conf, err) != TP_OK ||
        kafka_conf_set(conf, "group.id", group, err) != TP_OK ||
        kafka_conf_set(conf, "client.id", group, err) != TP_OK ||
        kafka_conf_set_all(conf, required, err) != TP_OK ||
        kafka_conf_probe(conf, KAFKA_PROBE_GROUPS, err) != TP_OK) {
        goto out;
    }
    kafka_warn_overridden(required);
    rd_kafka_conf_set_rebalance_cb(conf, kafka_rebalance_cb);
    char errstr[512];
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        error_set(err, TP_INVALID, "kafka consumer %s: %s", group, errstr);
        goto out;
    }
    conf = NULL;
    rd_kafka_poll_set_consumer(rk);
    subs = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) {
        rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, subs);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        error_set(err, TP_INVALID, "kafka consumer %s: subscribe: %s", group, rd_kafka_err2str(e));
        goto out;
    }
    c = mem_calloc(1, sizeof(*c));
    c->rk = rk;
    c->group = mem_strdup(group);
    rk = NULL;
    log_info("kafka consumer subscribed", LF_S("group", group), LF_I("topics", n));
out:
    if (subs != NULL) {
        rd_kafka_topic_partition_list_destroy(subs);
    }
    if (rk != NULL) {
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    if (conf != NULL) {
        rd_kafka_conf_destroy(conf);
    }
    return c;
}

static void kafka_message_fill(struct kafka_message *out, rd_kafka_message_t *m)
{
    out->topic = rd_kafka_topic_name(m->rkt);
    out->partition = m->partition;
    out->offset = m->offset;
    out->key = m->key;
    out->key_len = m->key_len;
    out->payload = m->payload;
    out->len = m->len;
    out->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
    out->handle_ = m;
}

/* A consumer-side error event: transient ones are logged and swallowed (librdkafka retries). */
static void kafka_consumer_error(struct kafka_consumer *c, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        return;
    }
    const char *topic = m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : "";
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        char reason[512] = "";
        (void)rd_kafka_fatal_error(c->rk, reason, sizeof(reason));
        log_error("kafka consumer hit a fatal error", LF_S("group", c->group),
                  LF_S("reason", reason));
        return;
    }
    log_warn("kafka consumer error, continuing", LF_S("group", c->group), LF_S("topic", topic),
             LF_I("partition", m->partition), LF_S("error", rd_kafka_err2name(m->err)),
             LF_S("reason", rd_kafka_message_errstr(m)));
}

int kafka_consumer_poll_batch(struct kafka_consumer *c, struct kafka_message *msgs, int max,
                              int timeout_ms)
{
    int n = 0;
    int64_t deadline = kafka_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    while (n < max) {
        /* Wait only for the first message; after that take what is already here. */
        int64_t left = n == 0 ? deadline - kafka_now_ms() : 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, left > 0 ? (int)left : 0);
        if (m == NULL) {
            if (n > 0 || left <= 0) {
                break;
            }
            continue;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            kafka_consumer_error(c, m);
            rd_kafka_message_destroy(m);
            if (n == 0 && kafka_now_ms() >= deadline) {
                break;
            }
            continue;
        }
        kafka_message_fill(&msgs[n++], m);
    }
    return n;
}

void kafka_consumer_store(struct kafka_consumer *c, const struct kafka_message *msgs, int n)
{
    if (n <= 0) {
        return;
    }
    /* One entry per partition, at the highest offset stored + 1. */
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(parts, msgs[i].topic, msgs[i].partition);
        if (tp == NULL) {
            tp = rd_kafka_topic_partition_list_add(parts, msgs[i].topic, msgs[i].partition);
            tp->offset = msgs[i].offset + 1;
        } else if (msgs[i].offset + 1 > tp->offset) {
            tp->offset = msgs[i].offset + 1;
        }
    }
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_resp_err_t pe = parts->elems[i].err;
        if (pe == RD_KAFKA_RESP_ERR__STATE || pe == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION) {
            /* Revoked since it was polled: the next owner gets it again; that is idempotent. */
            log_debug("kafka offset not stored: partition no longer assigned",
                      LF_S("group", c->group), LF_S("topic", parts->elems[i].topic),
                      LF_I("partition", parts->elems[i].partition),
                      LF_I("offset", parts->elems[i].offset));
        } else if (pe != RD_KAFKA_RESP_ERR_NO_ERROR) {
            log_warn("kafka offset not stored", LF_S("group", c->group),
                     LF_S("topic", parts->elems[i].topic),
                     LF_I("partition", parts->elems[i].partition),
                     LF_S("error", rd_kafka_err2name(pe)));
        }
    }
    /* INVALID_ARG means enable.auto.offset.store is on: a configuration bug, not input. */
    if (e == RD_KAFKA_RESP_ERR__INVALID_ARG) {
        log_error("kafka offsets store refused", LF_S("group", c->group),
                  LF_S("error", rd_kafka_err2name(e)));
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

void kafka_consumer_release(struct kafka_consumer *c, struct kafka_message *msgs, int n)
{
    (void)c;
    for (int i = 0; i < n; i++) {
        if (msgs[i].handle_ != NULL) {
            rd_kafka_message_destroy(msgs[i].handle_);
        }
        memset(&msgs[i], 0, sizeof(msgs[i]));
    }
}

/* Commits the stored offsets, waiting at most timeout_ms for the result. */
static void kafka_consumer_final_commit(struct kafka_consumer *c, int timeout_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(c->rk, NULL, q, NULL, NULL);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            log_warn("kafka final commit not sent", LF_S("group", c->group),
                     LF_S("error", rd_kafka_err2name(e)));
        }
        goto out;
    }
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);
    if (ev == NULL) {
        log_warn("kafka final commit unanswered; stored offsets may be redelivered",
                 LF_S("group", c->group), LF_I("waited_ms", timeout_ms));
        goto out;
    }
    e = rd_kafka_event_error(ev);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        log_warn("kafka final commit failed; stored offsets may be redelivered",
                 LF_S("group", c->group), LF_S("error", rd_kafka_err2name(e)));
    }
    rd_kafka_event_destroy(ev);
out:
    rd_kafka_queue_destroy(q);
}

/*
 * Serves one event of the close queue. Event mode, not rd_kafka_queue_poll_callback(): fetched
 * messages and consumer errors can still be forwarded to this queue while leaving, and in
 * callback mode librdkafka 2.0.2 asserts on any op it cannot serve as a callback
 * (rdkafka_queue.c: res != RD_KAFKA_OP_RES_PASS), aborting the worker during SIGTERM.
 */
static void kafka_close_queue_serve(rd_kafka_t *rk, rd_kafka_queue_t *q, int timeout_ms)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);
    if (ev == NULL) {
        return;
    }
    if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
        kafka_rebalance_cb(rk, rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev),
                           NULL);
    }
    /* Anything else (a late message, an error) is dropped: its offset was never stored. */
    rd_kafka_event_destroy(ev);
}

void kafka_consumer_free(struct kafka_consumer *c)
{
    if (c == NULL) {
        return;
    }
    kafka_consumer_final_commit(c, KAFKA_CLOSE_COMMIT_MS);
    /*
     * Leave the group in the background and serve its rebalance callbacks here, for a bounded
     * time: with the coordinator away a blocking close can hang for minutes.
     */
    int flags = RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE;
    rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
    rd_kafka_error_t *error = rd_kafka_consumer_close_queue(c->rk, q);
    if (error != NULL) {
        log_warn("kafka consumer close failed", LF_S("group", c->group),
                 LF_S("reason", rd_kafka_error_string(error)));
        rd_kafka_error_destroy(error);
    } else {
        int64_t deadline = kafka_now_ms() + KAFKA_CLOSE_LEAVE_MS;
        while (!rd_kafka_consumer_closed(c->rk) && kafka_now_ms() < deadline) {
            kafka_close_queue_serve(c->rk, q, KAFKA_WAIT_SLICE_MS);
        }
        if (rd_kafka_consumer_closed(c->rk)) {
            flags = 0;
        } else {
            log_warn("kafka consumer did not leave its group in time; destroying",
                     LF_S("group", c->group), LF_I("waited_ms", KAFKA_CLOSE_LEAVE_MS));
        }
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy_flags(c->rk, flags);
    log_info("kafka consumer closed", LF_S("group", c->group));
    free(c->group);
    free(c);
}

/* ---- dead letters ---- */

enum tp_status kafka_dead_letter(struct kafka_producer *p, const struct kafka_message *msg,
                                 const char *reason, int timeout_ms, struct tp_error *err)
{
    enum tp_status st = TP_OK;
    char topic[KAFKA_TOPIC_MAX + 1];
    char part[16];
    char off[24];
    size_t tlen = strlen(msg->topic);
    if (tlen + sizeof(TOPIC_DLQ_SUFFIX) - 1 > KAFKA_TOPIC_MAX) {
        return error_set(err, TP_INVALID, "dead letter: topic name %s too long", msg->topic);
    }
    snprintf(topic, sizeof(topic), "%s%s", msg->topic, TOPIC_DLQ_SUFFIX);
    snprintf(part, sizeof(part), "%" PRId32, msg->partition);
    snprintf(off, sizeof(off), "%" PRId64, msg->offset);
    if (reason == NULL || reason[0] == '\0') {
        reason = "unspecified";
    }

    struct dlq_wait *w = mem_calloc(1, sizeof(*w));
    atomic_init(&w->state, DLQ_WAIT_PENDING);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(4);
    rd_kafka_header_add(hdrs, DLQ_HEADER_REASON, -1, reason, -1);
    rd_kafka_header_add(hdrs, DLQ_HEADER_TOPIC, -1, msg->topic, -1);
    rd_kafka_header_add(hdrs, DLQ_HEADER_PARTITION, -1, part, -1);
    rd_kafka_header_add(hdrs, DLQ_HEADER_OFFSET, -1, off, -1);
    atomic_fetch_add(&p->outstanding, 1);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(msg->key, msg->key_len),
        RD_KAFKA_V_VALUE((void *)msg->payload, msg->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(w), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        /* On failure the headers are still ours. */
        atomic_fetch_sub(&p->outstanding, 1);
        rd_kafka_headers_destroy(hdrs);
        free(w);
        return kafka_classify_produce(e, topic, err);
    }

    int64_t deadline = kafka_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    while (atomic_load(&w->state) == DLQ_WAIT_PENDING) {
        int64_t left = deadline - kafka_now_ms();
        if (left <= 0) {
            break;
        }
        /*
         * flush, not poll: the caller waits for this one message, so linger.ms would only delay
         * it (librdkafka ignores linger.ms during a flush); one dead letter at a time went at
         * ~200/s with the default linger of 5 ms. Another thread may serve the report; the slice
         * keeps us looking at the flag.
         */
        (void)rd_kafka_flush(p->rk, left < KAFKA_WAIT_SLICE_MS ? (int)left : KAFKA_WAIT_SLICE_MS);
    }
    int expected = DLQ_WAIT_PENDING;
    if (atomic_compare_exchange_strong(&w->state, &expected, DLQ_WAIT_ABANDONED)) {
        /* The report will free w when it comes. */
        return error_set(err, TP_RETRY, "dead letter to %s unacknowledged after %d ms", topic,
                         timeout_ms);
    }
    st = kafka_classify_delivery(w->err);
    if (st != TP_OK) {
        error_set(err, st, "dead letter to %s: %s", topic, rd_kafka_err2str(w->err));
    } else {
        log_warn("message dead-lettered", LF_S("topic", msg->topic),
                 LF_I("partition", msg->partition), LF_I("offset", msg->offset),
                 LF_S("reason", reason));
    }
    free(w);
    return st;
}
