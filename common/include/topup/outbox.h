/*
 * Transactional outbox: outbox_write() inserts an event in the caller's transaction; a relay
 * publishes a source's rows in id order with the idempotent producer and marks them published
 * only after the delivery report. One relay per source is active at a time (advisory lock), so
 * order per key holds with several service instances.
 */
#ifndef TOPUP_OUTBOX_H
#define TOPUP_OUTBOX_H

#include <stddef.h>
#include <stdint.h>
#include "topup/error.h"

struct pg_conn;
struct kafka_producer;
struct counters;

/* Inserts one outbox row; call inside the transaction that makes the state change. */
enum tp_status outbox_write(struct pg_conn *c, const char *source, const char *topic,
                            const char *key, const char *event_id, const void *payload, size_t len,
                            struct tp_error *err) TP_MUST_CHECK;

/* One event for outbox_write_many(); strings and payload are borrowed. */
struct outbox_event {
    const char *key;
    const char *event_id;
    const void *payload;
    size_t len;
};

/*
 * Inserts n outbox rows of one source and topic in one COPY (ids ascend in array order, so the
 * relay publishes them in that order), with the same wake-up of the relay as outbox_write(). Call
 * inside the transaction that makes the state change. A duplicate event id fails the whole call
 * with TP_DUPLICATE; after any failure the transaction is aborted and must be rolled back. n == 0
 * writes nothing.
 */
enum tp_status outbox_write_many(struct pg_conn *c, const char *source, const char *topic,
                                 const struct outbox_event *ev, size_t n,
                                 struct tp_error *err) TP_MUST_CHECK;

struct outbox_relay;

/*
 * Creates a relay for rows of `source`, with its own PostgreSQL connection (conninfo) and its own
 * producer. It LISTENs on channel "outbox_<source>" (outbox_write NOTIFYs it) and also polls every
 * poll_ms. Caller owns the result.
 */
struct outbox_relay *outbox_relay_new(const char *source, const char *conninfo, int poll_ms,
                                      struct counters *counters, struct tp_error *err);

/* Starts the relay thread. */
enum tp_status outbox_relay_start(struct outbox_relay *r, struct tp_error *err) TP_MUST_CHECK;

/* True when the relay published or confirmed an empty backlog recently (for /readyz). */
int outbox_relay_healthy(struct outbox_relay *r);

/* Rows not yet published, as last seen. */
int64_t outbox_relay_backlog(struct outbox_relay *r);

/* Stops the thread after the batch in hand is reported, flushes the producer, frees. */
void outbox_relay_free(struct outbox_relay *r);

#endif
