/* Kafka wrappers over librdkafka: idempotent producer, batch consumer with durable-only offsets. */
#ifndef TOPUP_KAFKA_H
#define TOPUP_KAFKA_H

#include <stddef.h>
#include <stdint.h>
#include "topup/error.h"

/* Topic names (proto/README.md is the catalogue). */
#define TOPIC_TOPUP_REQUESTED        "topup.requested"
#define TOPIC_TOPUP_CANCELLED        "topup.cancelled"
#define TOPIC_TOPUP_EXPIRED          "topup.expired"
#define TOPIC_BANK_STATEMENT_RECORDS "bank.statement.records"
#define TOPIC_PAYMENT_MATCHED        "payment.matched"
#define TOPIC_USAGE_RECORDED         "usage.recorded"
#define TOPIC_REFUND_ISSUED          "refund.issued"
#define TOPIC_ACCOUNT_FLOWS          "account.flows"
#define TOPIC_DLQ_SUFFIX             ".dlq"

/* Header names on dead-lettered messages. */
#define DLQ_HEADER_REASON    "dlq.reason"
#define DLQ_HEADER_TOPIC     "dlq.original.topic"
#define DLQ_HEADER_PARTITION "dlq.original.partition"
#define DLQ_HEADER_OFFSET    "dlq.original.offset"

/*
 * Delivery report: called from kafka_producer_poll()/flush() on the caller's thread, once per
 * produced message, with TP_OK only when the broker acknowledged it (acks=all). opaque is what
 * was passed to kafka_producer_send().
 */
typedef void kafka_delivery_fn(void *ctx, void *opaque, enum tp_status status, const char *reason);

struct kafka_producer;

/*
 * Creates an idempotent producer (enable.idempotence=true, acks=all) configured from KAFKA_*
 * environment variables (config_apply_kafka_env). on_delivery may be NULL. Returns NULL and fills
 * err on a configuration error. Caller owns the result; free with kafka_producer_free().
 */
struct kafka_producer *kafka_producer_new(const char *client_id, kafka_delivery_fn *on_delivery,
                                          void *ctx, struct tp_error *err);

/*
 * Queues one message; key and payload are copied. Returns TP_RETRY when the local queue is full
 * (call kafka_producer_poll and try again), TP_FATAL on a permanent error.
 */
enum tp_status kafka_producer_send(struct kafka_producer *p, const char *topic, const void *key,
                                   size_t key_len, const void *payload, size_t len, void *opaque,
                                   struct tp_error *err) TP_MUST_CHECK;

/* Serves delivery reports; returns the number served. */
int kafka_producer_poll(struct kafka_producer *p, int timeout_ms);

/* Waits until every queued message is reported or timeout; TP_RETRY if some are left. */
enum tp_status kafka_producer_flush(struct kafka_producer *p, int timeout_ms,
                                    struct tp_error *err) TP_MUST_CHECK;

/* Messages queued and not yet reported. */
int kafka_producer_outstanding(struct kafka_producer *p);

/* Flushes up to 10 s, then destroys. NULL is fine. */
void kafka_producer_free(struct kafka_producer *p);

/* A consumed message; valid until kafka_consumer_release() (the batch owns it). */
struct kafka_message {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *payload;
    size_t len;
    int64_t timestamp_ms;
    void *handle_; /* private: the rd_kafka_message_t */
};

struct kafka_consumer;

/*
 * Joins consumer group `group` subscribed to topics (n of them), configured from KAFKA_*
 * environment variables. Auto-commit is on but offsets are stored only by kafka_consumer_store(),
 * so only work the caller declared durable is ever committed. auto.offset.reset=earliest.
 * Caller owns the result; close with kafka_consumer_free().
 */
struct kafka_consumer *kafka_consumer_new(const char *group, const char *const *topics, int n,
                                          struct tp_error *err);

/*
 * Fills msgs with up to max messages, waiting at most timeout_ms in total (returns early once at
 * least one message arrived and no more is immediately available, or max is reached).
 * Returns the count (0 on timeout). Transient errors are logged and swallowed.
 * Every returned message must be released with kafka_consumer_release().
 */
int kafka_consumer_poll_batch(struct kafka_consumer *c, struct kafka_message *msgs, int max,
                              int timeout_ms);

/*
 * Marks msgs as durably processed: stores offset+1 for each message's partition, for the next
 * asynchronous auto-commit. Call only after the effect is committed in PostgreSQL. Messages of
 * partitions revoked meanwhile are skipped silently (their redelivery is idempotent).
 */
void kafka_consumer_store(struct kafka_consumer *c, const struct kafka_message *msgs, int n);

/* Frees the messages' memory (not their offsets: see kafka_consumer_store). */
void kafka_consumer_release(struct kafka_consumer *c, struct kafka_message *msgs, int n);

/*
 * Sends msg to "<topic>.dlq" with the original key and payload and the DLQ_HEADER_* headers,
 * and waits for its delivery (up to timeout_ms). TP_OK only once the dead letter is acknowledged;
 * then the caller may store the original's offset.
 */
enum tp_status kafka_dead_letter(struct kafka_producer *p, const struct kafka_message *msg,
                                 const char *reason, int timeout_ms,
                                 struct tp_error *err) TP_MUST_CHECK;

/* Commits stored offsets (synchronously, bounded) and leaves the group. NULL is fine. */
void kafka_consumer_free(struct kafka_consumer *c);

#endif
