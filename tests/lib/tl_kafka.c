/* Kafka for the tests: a gateway-like producer (common/kafka.h) and raw reads of topics and
 * offsets. */
#include "testlib.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topup/event.h"
#include "topup/kafka.h"
#include "topup/v1/events.pb-c.h"

/* Producer name in the envelopes of the test's events. */
#define TL_PRODUCER_NAME "gateway-test"
/* Longest wait for metadata, watermarks and committed offsets. */
#define TL_KAFKA_META_MS 10000
/* Longest wait for the next message of a range being read. */
#define TL_KAFKA_READ_MS 30000
#define TL_KEY_MAX       128

/* One message in flight: kept until acknowledged, sent again when its delivery failed. */
struct tl_msg {
    char topic[64];
    char key[TL_KEY_MAX];
    size_t len;
    struct tl_msg *next; /* in the retry list */
    unsigned char payload[];
};

struct tl_producer {
    struct kafka_producer *kp;
    struct tl_msg *retry; /* failed deliveries waiting to be sent again */
    int outstanding;      /* sent, not yet acknowledged */
    int64_t resent;
    int recreated; /* after fatal errors */
    bool fatal;    /* the client hit a fatal error: recreate it before the next send */
    char client_id[64];
    char last_error[512];
};

static void tl_producer_delivered(void *ctx, void *opaque, enum tp_status status,
                                  const char *reason)
{
    struct tl_producer *p = ctx;
    struct tl_msg *m = opaque;
    p->outstanding--;
    if (status == TP_OK) {
        free(m);
        return;
    }
    snprintf(p->last_error, sizeof(p->last_error), "%s", reason != NULL ? reason : "?");
    if (status == TP_FATAL) {
        p->fatal = true;
    }
    m->next = p->retry;
    p->retry = m;
}

struct tl_producer *tl_producer_new(const char *client_id)
{
    struct tl_producer *p = calloc(1, sizeof(*p));
    TL_CHECK(p != NULL);
    snprintf(p->client_id, sizeof(p->client_id), "%s", client_id);
    struct tp_error err = {0};
    p->kp = kafka_producer_new(client_id, tl_producer_delivered, p, &err);
    TL_CHECK_MSG(p->kp != NULL, "kafka producer: %s", err.msg);
    return p;
}

/*
 * A fatal error (e.g. librdkafka's idempotent producer losing its sequence after a leader change)
 * ends the client, not the gateway: as a gateway must, close it (every unacknowledged message is
 * reported failed and queued again) and send them again, same event ids, on a new client. The
 * consumers apply an event id once, so a message the old client did get written is harmless.
 */
static void tl_producer_recreate(struct tl_producer *p)
{
    tl_step("producer %s hit a fatal error (%s): recreated; its unacknowledged events are sent "
            "again with the same event ids",
            p->client_id, p->last_error[0] ? p->last_error : "on send");
    kafka_producer_free(p->kp);
    struct tp_error err = {0};
    p->kp = kafka_producer_new(p->client_id, tl_producer_delivered, p, &err);
    TL_CHECK_MSG(p->kp != NULL, "kafka producer: %s", err.msg);
    p->fatal = false;
    p->recreated++;
}

static void tl_producer_send(struct tl_producer *p, struct tl_msg *m)
{
    for (;;) {
        if (p->fatal) {
            tl_producer_recreate(p);
        }
        struct tp_error err = {0};
        enum tp_status st = kafka_producer_send(p->kp, m->topic, m->key, strlen(m->key), m->payload,
                                                m->len, m, &err);
        if (st == TP_OK) {
            p->outstanding++;
            return;
        }
        if (st == TP_FATAL) {
            snprintf(p->last_error, sizeof(p->last_error), "%s", err.msg);
            p->fatal = true;
            continue;
        }
        TL_CHECK_MSG(st == TP_RETRY, "kafka produce: %s", err.msg);
        kafka_producer_poll(p->kp, 100);
    }
}

void tl_produce_raw(struct tl_producer *p, const char *topic, const char *key, const void *payload,
                    size_t len)
{
    struct tl_msg *m = calloc(1, sizeof(*m) + len);
    TL_CHECK(m != NULL);
    snprintf(m->topic, sizeof(m->topic), "%s", topic);
    snprintf(m->key, sizeof(m->key), "%s", key);
    memcpy(m->payload, payload, len);
    m->len = len;
    tl_producer_send(p, m);
    kafka_producer_poll(p->kp, 0);
}

static void tl_envelope(Topup__V1__Envelope *env, char *event_id, char *account)
{
    topup__v1__envelope__init(env);
    env->event_id = event_id;
    env->occurred_at_ms = event_now_ms();
    env->producer = (char *)TL_PRODUCER_NAME;
    env->schema_version = EVENT_SCHEMA_VERSION;
    env->account_id = account;
}

void tl_produce_usage(struct tl_producer *p, const char *event_id, const char *account,
                      const char *request_id, int64_t amount_fen)
{
    Topup__V1__Envelope env;
    tl_envelope(&env, (char *)event_id, (char *)account);
    Topup__V1__UsageRecorded m = TOPUP__V1__USAGE_RECORDED__INIT;
    m.envelope = &env;
    m.request_id = (char *)request_id;
    m.amount_fen = amount_fen;
    m.model = (char *)"wuliang-chat";
    m.units = -amount_fen * 10;
    unsigned char buf[1024];
    size_t len = topup__v1__usage_recorded__get_packed_size(&m);
    TL_CHECK(len <= sizeof(buf));
    topup__v1__usage_recorded__pack(&m, buf);
    tl_produce_raw(p, TOPIC_USAGE_RECORDED, account, buf, len);
}

void tl_produce_refund(struct tl_producer *p, const char *event_id, const char *account,
                       const char *refund_id, int64_t amount_fen, int kind, const char *original)
{
    Topup__V1__Envelope env;
    tl_envelope(&env, (char *)event_id, (char *)account);
    Topup__V1__RefundIssued m = TOPUP__V1__REFUND_ISSUED__INIT;
    m.envelope = &env;
    m.refund_id = (char *)refund_id;
    m.amount_fen = amount_fen;
    m.kind = (Topup__V1__RefundKind)kind;
    m.reason = (char *)"test refund";
    m.original_reference = (char *)(original != NULL ? original : "");
    unsigned char buf[1024];
    size_t len = topup__v1__refund_issued__get_packed_size(&m);
    TL_CHECK(len <= sizeof(buf));
    topup__v1__refund_issued__pack(&m, buf);
    tl_produce_raw(p, TOPIC_REFUND_ISSUED, account, buf, len);
}

int tl_producer_poll(struct tl_producer *p, int timeout_ms)
{
    kafka_producer_poll(p->kp, timeout_ms);
    if (p->fatal) {
        tl_producer_recreate(p);
    }
    while (p->retry != NULL) {
        struct tl_msg *m = p->retry;
        p->retry = m->next;
        m->next = NULL;
        p->resent++;
        tl_producer_send(p, m);
    }
    return p->outstanding;
}

void tl_producer_flush(struct tl_producer *p, int timeout_ms)
{
    int64_t deadline = tl_now_ms() + timeout_ms;
    while (tl_producer_poll(p, 100) > 0 || p->retry != NULL) {
        TL_CHECK_MSG(tl_now_ms() < deadline,
                     "%d events still unacknowledged after %d ms (last delivery error: %s)",
                     p->outstanding, timeout_ms, p->last_error[0] ? p->last_error : "none");
    }
}

int64_t tl_producer_resent(const struct tl_producer *p)
{
    return p->resent;
}

int tl_producer_recreated(const struct tl_producer *p)
{
    return p->recreated;
}

void tl_producer_free(struct tl_producer *p)
{
    if (p == NULL) {
        return;
    }
    kafka_producer_free(p->kp);
    while (p->retry != NULL) {
        struct tl_msg *m = p->retry;
        p->retry = m->next;
        free(m);
    }
    free(p);
}

/* ---- raw reads ---- */

static rd_kafka_t *tl_kafka_consumer(const char *group)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char gid[TL_ID_MAX];
    if (group == NULL) {
        snprintf(gid, sizeof(gid), "tl-reader-%s", tl_sfx());
        group = gid;
    }
    TL_CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", tl_env("KAFKA_BOOTSTRAP_SERVERS"), errstr,
                               sizeof(errstr)) == RD_KAFKA_CONF_OK);
    TL_CHECK(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ==
             RD_KAFKA_CONF_OK);
    TL_CHECK(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ==
             RD_KAFKA_CONF_OK);
    TL_CHECK(rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    TL_CHECK_MSG(rk != NULL, "kafka consumer: %s", errstr);
    return rk;
}

int tl_kafka_partitions(const char *topic)
{
    rd_kafka_t *rk = tl_kafka_consumer(NULL);
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, TL_KAFKA_META_MS);
    TL_CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1, "metadata of %s: %s", topic,
                 rd_kafka_err2str(e));
    int n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    return n;
}

int64_t tl_kafka_topic_size(const char *topic)
{
    int n = tl_kafka_partitions(topic);
    rd_kafka_t *rk = tl_kafka_consumer(NULL);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, TL_KAFKA_META_MS);
        TL_CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR, "watermarks of %s/%d: %s", topic, i,
                     rd_kafka_err2str(e));
        total += hi - lo;
    }
    rd_kafka_destroy(rk);
    return total;
}

void tl_kafka_committed(const char *group, const char *topic, int64_t *offsets, int n)
{
    rd_kafka_t *rk = tl_kafka_consumer(group);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) {
        rd_kafka_topic_partition_list_add(l, topic, i);
    }
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, TL_KAFKA_META_MS);
    TL_CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR, "committed offsets of %s: %s", group,
                 rd_kafka_err2str(e));
    for (int i = 0; i < n; i++) {
        offsets[i] = l->elems[i].offset >= 0 ? l->elems[i].offset : -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

void tl_kafka_read(const char *topic, int32_t partition, int64_t from, int64_t to,
                   tl_kafka_msg_fn *fn, void *ctx)
{
    rd_kafka_t *rk = tl_kafka_consumer(NULL);
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, TL_KAFKA_META_MS);
    TL_CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR, "watermarks of %s/%d: %s", topic, partition,
                 rd_kafka_err2str(e));
    if (to < 0 || to > hi) {
        to = hi;
    }
    TL_CHECK_MSG(from >= lo || from >= to, "%s/%d: offset %lld was dropped (low watermark %lld)",
                 topic, partition, (long long)from, (long long)lo);
    if (from < to) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, partition)->offset = from;
        TL_CHECK(rd_kafka_assign(rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_topic_partition_list_destroy(l);
        int64_t next = from, deadline = tl_now_ms() + TL_KAFKA_READ_MS;
        while (next < to) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
            if (m == NULL) {
                TL_CHECK_MSG(tl_now_ms() < deadline, "%s/%d: stuck at offset %lld of %lld", topic,
                             partition, (long long)next, (long long)to);
                continue;
            }
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->offset >= next) {
                if (m->offset < to) {
                    fn(ctx, partition, m->offset, m->key, m->key_len, m->payload, m->len);
                }
                next = m->offset + 1;
                deadline = tl_now_ms() + TL_KAFKA_READ_MS;
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_assign(rk, NULL);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* ---- event ids ---- */

/* Reads a protobuf varint at *p (below end); false when cut or too long. */
static bool tl_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            return true;
        }
    }
    return false;
}

bool tl_event_id_of(const void *payload, size_t len, char out[UUID_STR_LEN])
{
    const uint8_t *p = payload, *end = p + len;
    while (p < end) {
        uint64_t tag = 0, v = 0;
        if (!tl_varint(&p, end, &tag)) {
            return false;
        }
        switch (tag & 7) {
        case 0:
            if (!tl_varint(&p, end, &v)) {
                return false;
            }
            break;
        case 1:
            p += 8;
            break;
        case 5:
            p += 4;
            break;
        case 2:
            if (!tl_varint(&p, end, &v) || v > (uint64_t)(end - p)) {
                return false;
            }
            if (tag >> 3 == 1) {
                Topup__V1__Envelope *env = topup__v1__envelope__unpack(NULL, (size_t)v, p);
                bool ok =
                    env != NULL && env->event_id != NULL && strlen(env->event_id) < UUID_STR_LEN;
                if (ok) {
                    snprintf(out, UUID_STR_LEN, "%s", env->event_id);
                }
                if (env != NULL) {
                    topup__v1__envelope__free_unpacked(env, NULL);
                }
                return ok;
            }
            p += v;
            break;
        default:
            return false;
        }
    }
    return false;
}

void tl_ids_add(struct tl_ids *ids, const char *id)
{
    if (ids->n == ids->cap) {
        ids->cap = ids->cap == 0 ? 1024 : ids->cap * 2;
        ids->v = realloc(ids->v, ids->cap * sizeof(*ids->v));
        TL_CHECK(ids->v != NULL);
    }
    snprintf(ids->v[ids->n++], UUID_STR_LEN, "%s", id);
}

static int tl_ids_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

void tl_ids_sort(struct tl_ids *ids)
{
    if (ids->n == 0) {
        return;
    }
    qsort(ids->v, ids->n, sizeof(*ids->v), tl_ids_cmp);
}

void tl_ids_free(struct tl_ids *ids)
{
    free(ids->v);
    memset(ids, 0, sizeof(*ids));
}

size_t tl_ids_diff(const struct tl_ids *a, const char *a_label, const struct tl_ids *b,
                   const char *b_label)
{
    size_t i = 0, j = 0, only_a = 0, only_b = 0;
    while (i < a->n || j < b->n) {
        int c = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->v[i], b->v[j]);
        if (c < 0) {
            if (only_a++ < 5) {
                fprintf(stderr, "  %s only: %s\n", a_label, a->v[i]);
            }
            i++;
        } else if (c > 0) {
            if (only_b++ < 5) {
                fprintf(stderr, "  %s only: %s\n", b_label, b->v[j]);
            }
            j++;
        } else {
            i++;
            j++;
        }
    }
    if (only_a + only_b > 0) {
        fprintf(stderr, "  %zu in %s only, %zu in %s only (%zu and %zu in all)\n", only_a, a_label,
                only_b, b_label, a->n, b->n);
    }
    return only_a + only_b;
}

static void tl_kafka_ids_cb(void *ctx, int32_t partition, int64_t offset, const void *key,
                            size_t key_len, const void *payload, size_t len)
{
    (void)key;
    (void)key_len;
    char id[UUID_STR_LEN];
    TL_CHECK_MSG(tl_event_id_of(payload, len, id),
                 "message at partition %d offset %lld has no "
                 "envelope event id",
                 (int)partition, (long long)offset);
    tl_ids_add(ctx, id);
}

void tl_kafka_ids(const char *group, const char *topic, struct tl_ids *out)
{
    memset(out, 0, sizeof(*out));
    int n = tl_kafka_partitions(topic);
    int64_t *to = calloc((size_t)n, sizeof(int64_t));
    TL_CHECK(to != NULL);
    if (group != NULL) {
        tl_kafka_committed(group, topic, to, n);
    } else {
        for (int i = 0; i < n; i++) {
            to[i] = -1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (group == NULL || to[i] > 0) {
            tl_kafka_read(topic, i, 0, to[i], tl_kafka_ids_cb, out);
        }
    }
    free(to);
    tl_ids_sort(out);
}
