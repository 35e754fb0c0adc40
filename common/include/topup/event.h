/* Event envelope helpers shared by every producer and consumer of topup.v1 messages. */
#ifndef TOPUP_EVENT_H
#define TOPUP_EVENT_H

#include <stdint.h>
#include "topup/error.h"
#include "topup/ids.h"
#include "topup/v1/events.pb-c.h"

#define EVENT_SCHEMA_VERSION 1

/* Storage for an envelope's strings so a caller can fill one without allocating. */
struct event_envelope_buf {
    char event_id[UUID_STR_LEN];
    Topup__V1__Envelope env;
};

/* Fills b with a new UUIDv7, now, producer and account (pointers are borrowed, not copied). */
Topup__V1__Envelope *event_envelope_init(struct event_envelope_buf *b, const char *producer,
                                         const char *account_id);

/*
 * Checks a decoded envelope: present, event id a UUID, schema version 1, occurred_at > 0, and
 * account id 1..64 printable ASCII when require_account. TP_INVALID with a reason otherwise.
 */
enum tp_status event_envelope_check(const Topup__V1__Envelope *env, int require_account,
                                    struct tp_error *err) TP_MUST_CHECK;

#define EVENT_DIGEST_LEN 32

/*
 * The provenance digest of a bank record: SHA-256 of r as protobuf-c packs it with its envelope
 * left out (everything else, unknown fields included, is covered). The importer records it in
 * statement_import_records before publishing; the reconciliation worker recomputes it from the
 * decoded event and takes the event only when it is recorded. r is not modified.
 */
void event_bsr_digest(const Topup__V1__BankStatementRecord *r, uint8_t out[EVENT_DIGEST_LEN]);

/* Milliseconds since the epoch (CLOCK_REALTIME). */
int64_t event_now_ms(void);

#endif
