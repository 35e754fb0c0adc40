/*
 * Monitoring counters in Redis, best effort: increments are buffered and flushed pipelined;
 * Redis down never blocks (bounded connect/IO timeouts, backoff) nor fails the caller.
 *
 * Key scheme (documented in README "Monitoring"):
 *   topup:ctr:<service>:<name>                  total, never expires (INCRBY)
 *   topup:ctr:<service>:<name>:m:<YYYYMMDDHHMM>  per-minute bucket (UTC), expires after 48 h
 *   topup:gauge:<service>:<name>                 last value (SET), e.g. outbox backlog
 * <name> is lower-case with dots or underscores, e.g. "orders.created", "dlq".
 */
#ifndef TOPUP_COUNTERS_H
#define TOPUP_COUNTERS_H

#include <stdint.h>

#define COUNTERS_KEY_PREFIX   "topup:ctr:"
#define GAUGES_KEY_PREFIX     "topup:gauge:"
#define COUNTERS_BUCKET_TTL_S 172800 /* 48 h */
#define COUNTERS_BUFFER_MAX   1024   /* distinct (name, minute) entries between two flushes */
#define COUNTERS_NAME_MAX     100

struct counters;

/*
 * Creates the counter client for service; connects lazily to host:port (from REDIS_HOST /
 * REDIS_PORT when host is NULL). Never fails: with Redis away it only drops increments (and
 * counts them). Caller owns the result; free with counters_free().
 */
struct counters *counters_new(const char *service, const char *host, int port);

/* Buffers an increment; thread-safe. Flushed by counters_flush() or when the buffer is full. */
void counters_incr(struct counters *c, const char *name, int64_t by);

/* Buffers a gauge value; the last one before a flush wins. */
void counters_gauge(struct counters *c, const char *name, int64_t value);

/* Sends what is buffered in one pipeline, bounded by short timeouts. Call it every second. */
void counters_flush(struct counters *c);

/*
 * Buffered updates discarded so far: at the buffer maximum (COUNTERS_BUFFER_MAX distinct
 * name/minute entries), for an invalid name, or lost in a send that failed half-way. Also
 * reported to Redis as the counter "counters.dropped" once Redis is reachable.
 */
int64_t counters_dropped(struct counters *c);

/* Flushes once and frees. NULL is fine. */
void counters_free(struct counters *c);

#endif
