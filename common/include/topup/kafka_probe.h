/* What the Kafka broker can do, asked before a client is made: ApiVersions on a plain connection.
 */
#ifndef TOPUP_KAFKA_PROBE_H
#define TOPUP_KAFKA_PROBE_H

#include <stdbool.h>
#include "topup/error.h"

/* The features a client of ours depends on. */
enum kafka_probe_need {
    KAFKA_PROBE_IDEMPOTENCE = 1, /* InitProducerId: the idempotent producer */
    KAFKA_PROBE_GROUPS = 2,      /* FindCoordinator, JoinGroup, SyncGroup, Heartbeat, offsets */
};

/*
 * Asks the first reachable bootstrap server (a "host:port[,host:port...]" list, borrowed) for its
 * ApiVersions and logs what it offers (once per process and bootstrap list). Returns TP_OK when
 * every feature in `needs` (a mask of enum kafka_probe_need) is offered; TP_FATAL with a message
 * naming the missing request types otherwise: the caller refuses to start. A broker that cannot
 * be reached, or a listener that needs TLS first (security_protocol "ssl" or "sasl_ssl", borrowed,
 * may be NULL), is not an answer: TP_OK with a warning, and librdkafka's own checks apply.
 */
enum tp_status kafka_probe_check(const char *bootstrap, const char *security_protocol, int needs,
                                 struct tp_error *err) TP_MUST_CHECK;

#endif
