/* The events order-intake publishes through its outbox: TopUpRequested, -Cancelled, -Expired. */
#include <string.h>

#include "intake.h"
#include "topup/event.h"
#include "topup/mem.h"

/* Packs any topup.v1 message into a new buffer. */
static uint8_t *events_pack(const ProtobufCMessage *msg, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = mem_alloc(*len > 0 ? *len : 1);
    protobuf_c_message_pack(msg, buf);
    return buf;
}

uint8_t *events_pack_requested(const struct store_order *o, char event_id[UUID_STR_LEN],
                               size_t *len)
{
    struct event_envelope_buf env;
    Topup__V1__TopUpRequested ev = TOPUP__V1__TOP_UP_REQUESTED__INIT;
    ev.envelope = event_envelope_init(&env, INTAKE_SERVICE, o->account);
    ev.envelope->occurred_at_ms = o->created_ms;
    ev.order_code = (char *)o->code;
    ev.amount_fen = o->amount_fen;
    ev.currency = (char *)o->currency;
    ev.channel = (char *)o->channel;
    ev.remitter_name = (char *)o->remitter_name;
    ev.remitter_bank = (char *)o->remitter_bank;
    ev.remarks = (char *)o->remarks;
    ev.created_at_ms = o->created_ms;
    ev.expires_at_ms = o->expires_ms;
    memcpy(event_id, env.event_id, UUID_STR_LEN);
    return events_pack(&ev.base, len);
}

uint8_t *events_pack_cancelled(const char *account, const char *code, int64_t cancelled_ms,
                               char event_id[UUID_STR_LEN], size_t *len)
{
    struct event_envelope_buf env;
    Topup__V1__TopUpCancelled ev = TOPUP__V1__TOP_UP_CANCELLED__INIT;
    ev.envelope = event_envelope_init(&env, INTAKE_SERVICE, account);
    ev.envelope->occurred_at_ms = cancelled_ms;
    ev.order_code = (char *)code;
    ev.cancelled_at_ms = cancelled_ms;
    memcpy(event_id, env.event_id, UUID_STR_LEN);
    return events_pack(&ev.base, len);
}

uint8_t *events_pack_expired(const char *account, const char *code, int64_t expired_ms,
                             char event_id[UUID_STR_LEN], size_t *len)
{
    struct event_envelope_buf env;
    Topup__V1__TopUpExpired ev = TOPUP__V1__TOP_UP_EXPIRED__INIT;
    ev.envelope = event_envelope_init(&env, INTAKE_SERVICE, account);
    ev.envelope->occurred_at_ms = expired_ms;
    ev.order_code = (char *)code;
    ev.expired_at_ms = expired_ms;
    memcpy(event_id, env.event_id, UUID_STR_LEN);
    return events_pack(&ev.base, len);
}
