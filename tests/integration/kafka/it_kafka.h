/* Helpers of the Kafka and outbox integration tests: unique names, dev broker control, consuming.
 */
#ifndef IT_KAFKA_H
#define IT_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "topup/kafka.h"

/* Upper bound of every wait on the stack, so a broken component fails a test instead of hanging. */
#define IT_WAIT_MAX_MS 90000
#define IT_KEY_MAX     64
#define IT_PAYLOAD_MAX 256

/* One consumed message, copied out of the consumer's batch. */
struct it_msg {
    char key[IT_KEY_MAX];
    unsigned char payload[IT_PAYLOAD_MAX];
    size_t len;
    int32_t partition;
    int64_t offset;
};

int64_t it_now_ms(void);
void it_sleep_ms(int64_t ms);

/* prefix + "." + pid + "." + random: unique across runs and parallel tests. */
void it_unique(char *buf, size_t len, const char *prefix);

/* The value of an environment variable the stack must provide; fails the test when missing. */
const char *it_env(const char *name);

/*
 * Sends one control command to the dev broker ($DEVBROKER_CONTROL) and fails the test unless the
 * reply starts with "ok".
 */
void it_devbroker(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Creates a topic with `partitions` partitions (replication factor 1) on the stack's broker:
 * through the control channel of a dev broker, or with the Admin API (CreateTopics) on Apache
 * Kafka ($TOPUP_KAFKA=kafka), then waits until every partition has a leader in the metadata.
 * Fails the test otherwise.
 */
void it_topic_create(const char *topic, int partitions);

/*
 * Consumes `topic` in `group` until `want` messages arrived (or IT_WAIT_MAX_MS), then keeps
 * polling for quiet_ms more so that extra (duplicate) messages show up too. Offsets of every
 * message are stored. Copies up to cap messages into out; returns how many arrived in total.
 */
int it_consume(const char *group, const char *topic, int want, int quiet_ms, struct it_msg *out,
               int cap);

/* Index of the message with this key and payload in msgs, from `from` on; -1 when absent. */
int it_find(const struct it_msg *msgs, int n, int from, const char *key, const void *payload,
            size_t len);

#endif
