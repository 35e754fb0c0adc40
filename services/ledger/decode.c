/* Validation of the ledger's input events: a Kafka message becomes a ledger_event or a DLQ reason.
 */
#include <string.h>
#include <utf8proc.h>

#include "ledger.h"
#include "topup/event.h"
#include "topup/kafka.h"

/* 9999-12-31T23:59:59.999Z: the last instant every consumer's date types can hold. */
#define DECODE_OCCURRED_AT_MAX_MS 253402300799999LL

const char *ledger_flow_type_name(enum ledger_flow_type t)
{
    switch (t) {
    case LEDGER_FLOW_RECHARGE:
        return "recharge";
    case LEDGER_FLOW_CONSUME:
        return "consume";
    case LEDGER_FLOW_REFUND:
        return "refund";
    }
    return "unknown";
}

/* References go into SQL text columns and logs: printable ASCII only, so never invalid UTF-8. */
static enum tp_status decode_reference(const char *field, const char *s, char *out,
                                       struct tp_error *err)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0) {
        return error_set(err, TP_INVALID, "%s missing", field);
    }
    if (n > LEDGER_REFERENCE_MAX) {
        return error_set(err, TP_INVALID, "%s longer than %d characters", field,
                         LEDGER_REFERENCE_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return error_set(err, TP_INVALID, "%s is not printable ASCII", field);
        }
    }
    memcpy(out, s, n + 1);
    return TP_OK;
}

/*
 * A bank identity field (receiving account, bank transaction id): compared with what
 * reconciliation stored, so bounded and valid UTF-8 without control characters, never cut.
 */
static enum tp_status decode_bank_field(const char *field, const char *s, size_t max, char *out,
                                        struct tp_error *err)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0) {
        return error_set(err, TP_INVALID, "%s missing", field);
    }
    if (n > max) {
        return error_set(err, TP_INVALID, "%s longer than %zu bytes", field, max);
    }
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t w =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (w <= 0 || cp < 0x20 || cp == 0x7f) {
            return error_set(err, TP_INVALID, "%s is not valid UTF-8 text", field);
        }
        i += (size_t)w;
    }
    memcpy(out, s, n + 1);
    return TP_OK;
}

/* Envelope checks shared by the three messages; also binds the Kafka key to the account. */
static enum tp_status decode_envelope(const Topup__V1__Envelope *env, const void *key,
                                      size_t key_len, struct ledger_event *out,
                                      struct tp_error *err)
{
    enum tp_status st = event_envelope_check(env, 1, err);
    if (st != TP_OK) {
        return st;
    }
    size_t alen = strlen(env->account_id);
    if (key == NULL || key_len != alen || memcmp(key, env->account_id, alen) != 0) {
        return error_set(err, TP_INVALID, "kafka key is not envelope.account_id");
    }
    if (env->occurred_at_ms > DECODE_OCCURRED_AT_MAX_MS) {
        /* Past the year 9999 PostgreSQL's timestamptz overflows: a poison value, not a time. */
        return error_set(err, TP_INVALID, "envelope.occurred_at_ms %lld is out of range",
                         (long long)env->occurred_at_ms);
    }
    memcpy(out->event_id, env->event_id, strlen(env->event_id) + 1);
    memcpy(out->account_id, env->account_id, alen + 1);
    out->occurred_at_ms = env->occurred_at_ms;
    return TP_OK;
}

static enum tp_status decode_payment_matched(const void *key, size_t key_len, const void *payload,
                                             size_t len, struct ledger_event *out,
                                             struct tp_error *err)
{
    Topup__V1__PaymentMatched *m = topup__v1__payment_matched__unpack(NULL, len, payload);
    if (m == NULL) {
        return error_set(err, TP_INVALID, "undecodable PaymentMatched");
    }
    enum tp_status st = decode_envelope(m->envelope, key, key_len, out, err);
    if (st != TP_OK) {
        goto out;
    }
    st = decode_reference("order_code", m->order_code, out->reference, err);
    if (st != TP_OK) {
        goto out;
    }
    if (m->credited_fen <= 0) {
        st = error_set(err, TP_INVALID, "credited_fen %lld is not positive",
                       (long long)m->credited_fen);
        goto out;
    }
    /* The bank record the match decision names: the ledger checks it against PostgreSQL. */
    st = decode_bank_field("receiving_account", m->receiving_account, LEDGER_ACCOUNT_MAX,
                           out->bank_account, err);
    if (st != TP_OK) {
        goto out;
    }
    st = decode_bank_field("bank_txn_id", m->bank_txn_id, LEDGER_TXN_ID_MAX, out->bank_txn_id, err);
    if (st != TP_OK) {
        goto out;
    }
    out->type = LEDGER_FLOW_RECHARGE;
    out->amount_fen = m->credited_fen;
    out->amount_mismatch = m->amount_mismatch;
out:
    topup__v1__payment_matched__free_unpacked(m, NULL);
    return st;
}

static enum tp_status decode_usage_recorded(const void *key, size_t key_len, const void *payload,
                                            size_t len, struct ledger_event *out,
                                            struct tp_error *err)
{
    Topup__V1__UsageRecorded *m = topup__v1__usage_recorded__unpack(NULL, len, payload);
    if (m == NULL) {
        return error_set(err, TP_INVALID, "undecodable UsageRecorded");
    }
    enum tp_status st = decode_envelope(m->envelope, key, key_len, out, err);
    if (st != TP_OK) {
        goto out;
    }
    st = decode_reference("request_id", m->request_id, out->reference, err);
    if (st != TP_OK) {
        goto out;
    }
    if (m->amount_fen >= 0) {
        st = error_set(err, TP_INVALID, "usage amount_fen %lld is not negative",
                       (long long)m->amount_fen);
        goto out;
    }
    out->type = LEDGER_FLOW_CONSUME;
    out->amount_fen = m->amount_fen;
out:
    topup__v1__usage_recorded__free_unpacked(m, NULL);
    return st;
}

static enum tp_status decode_refund_issued(const void *key, size_t key_len, const void *payload,
                                           size_t len, struct ledger_event *out,
                                           struct tp_error *err)
{
    Topup__V1__RefundIssued *m = topup__v1__refund_issued__unpack(NULL, len, payload);
    if (m == NULL) {
        return error_set(err, TP_INVALID, "undecodable RefundIssued");
    }
    enum tp_status st = decode_envelope(m->envelope, key, key_len, out, err);
    if (st != TP_OK) {
        goto out;
    }
    st = decode_reference("refund_id", m->refund_id, out->reference, err);
    if (st != TP_OK) {
        goto out;
    }
    if (m->kind != TOPUP__V1__REFUND_KIND__REFUND_KIND_USAGE &&
        m->kind != TOPUP__V1__REFUND_KIND__REFUND_KIND_BANK_PAYOUT) {
        st = error_set(err, TP_INVALID, "refund kind %d is not usage or bank payout", (int)m->kind);
        goto out;
    }
    if (m->amount_fen == 0) {
        st = error_set(err, TP_INVALID, "refund amount_fen is 0");
        goto out;
    }
    if (m->kind == TOPUP__V1__REFUND_KIND__REFUND_KIND_USAGE && m->amount_fen < 0) {
        st = error_set(err, TP_INVALID, "usage refund amount_fen %lld is not positive",
                       (long long)m->amount_fen);
        goto out;
    }
    if (m->kind == TOPUP__V1__REFUND_KIND__REFUND_KIND_BANK_PAYOUT && m->amount_fen > 0) {
        st = error_set(err, TP_INVALID, "bank payout refund amount_fen %lld is not negative",
                       (long long)m->amount_fen);
        goto out;
    }
    if (m->kind == TOPUP__V1__REFUND_KIND__REFUND_KIND_USAGE) {
        /* Money back to the balance needs the usage it gives back (SPEC, Trust): without one
         * it is refused by the plan (refused.provenance), recorded, not merely undecodable. */
        if (m->original_reference != NULL && m->original_reference[0] != '\0') {
            st = decode_reference("original_reference", m->original_reference, out->refund_of, err);
            if (st != TP_OK) {
                goto out;
            }
        }
        out->usage_refund = true;
    }
    out->type = LEDGER_FLOW_REFUND;
    out->amount_fen = m->amount_fen;
out:
    topup__v1__refund_issued__free_unpacked(m, NULL);
    return st;
}

enum tp_status decode_message(const char *topic, const void *key, size_t key_len,
                              const void *payload, size_t len, struct ledger_event *out,
                              struct tp_error *err)
{
    memset(out, 0, sizeof(*out));
    if (topic == NULL) {
        return error_set(err, TP_INVALID, "no topic");
    }
    if (payload == NULL) {
        payload = "";
        len = 0;
    }
    if (strcmp(topic, TOPIC_PAYMENT_MATCHED) == 0) {
        return decode_payment_matched(key, key_len, payload, len, out, err);
    }
    if (strcmp(topic, TOPIC_USAGE_RECORDED) == 0) {
        return decode_usage_recorded(key, key_len, payload, len, out, err);
    }
    if (strcmp(topic, TOPIC_REFUND_ISSUED) == 0) {
        return decode_refund_issued(key, key_len, payload, len, out, err);
    }
    return error_set(err, TP_INVALID, "topic %s is not a ledger input", topic);
}
