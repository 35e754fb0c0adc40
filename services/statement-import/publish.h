/* Publishing records to bank.statement.records with the idempotent producer, counting acks. */
#ifndef STATEMENT_IMPORT_PUBLISH_H
#define STATEMENT_IMPORT_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "topup/error.h"
#include "topup/event.h"

/* Largest encoded record: every string field at its maximum fits with room to spare. */
#define PUBLISH_MESSAGE_MAX (16 * 1024)
#define PUBLISH_PRODUCER    "statement-import"

/*
 * Encodes r as a topup.v1.BankStatementRecord with a new envelope (UUIDv7 event id, producer
 * "statement-import", no account). Returns the length written to buf (PUBLISH_MESSAGE_MAX).
 */
size_t publish_encode(const struct record *r, const struct record_meta *m,
                      uint8_t buf[PUBLISH_MESSAGE_MAX]);

/*
 * The provenance digest of r as publish_encode() publishes it (event_bsr_digest(): SHA-256 of the
 * message without its envelope). The importer records it before publishing anything.
 */
void publish_digest(const struct record *r, const struct record_meta *m,
                    uint8_t out[EVENT_DIGEST_LEN]);

struct publisher;

/* Creates the producer (KAFKA_* environment). Caller owns it: publisher_free(). */
struct publisher *publisher_new(struct tp_error *err);
void publisher_free(struct publisher *p);

/*
 * Queues one record, key = receiving account. When the local queue is full it serves delivery
 * reports and waits, up to wait_ms in total; then TP_RETRY. TP_FATAL on a permanent error.
 */
enum tp_status publisher_send(struct publisher *p, const struct record *r,
                              const struct record_meta *m, int wait_ms,
                              struct tp_error *err) TP_MUST_CHECK;

/* Serves delivery reports without waiting (call it now and then while sending). */
void publisher_poll(struct publisher *p);

/*
 * Waits up to timeout_ms for every queued record's delivery report. TP_OK only when each one
 * was acknowledged; otherwise TP_RETRY (some unreported or failed retriably) or TP_FATAL.
 */
enum tp_status publisher_finish(struct publisher *p, int timeout_ms,
                                struct tp_error *err) TP_MUST_CHECK;

uint64_t publisher_sent(const struct publisher *p);
uint64_t publisher_acked(const struct publisher *p);
uint64_t publisher_failed(const struct publisher *p);

#endif
