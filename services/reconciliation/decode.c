/* Decoding and checking the consumed messages; the derived fields of a statement record. */
#include "recon.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "days.h"
#include "topup/event.h"
#include "topup/kafka.h"

bool recon_strip_spaces(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s != '\0'; s++) {
        if (*s == ' ' || *s == '\t') {
            continue;
        }
        if (o + 1 >= cap) {
            out[0] = '\0';
            return false;
        }
        out[o++] = *s;
    }
    out[o] = '\0';
    return true;
}

enum tp_status recon_accounts_parse(const char *list, struct recon_accounts *out,
                                    struct tp_error *err)
{
    out->n = 0;
    const char *p = list;
    while (true) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char raw[RECON_ACCOUNT_MAX * 4 + 1];
        if (len >= sizeof(raw)) {
            return error_set(err, TP_INVALID, "receiving account \"%.*s...\" is too long", 20, p);
        }
        memcpy(raw, p, len);
        raw[len] = '\0';
        if (out->n >= RECON_ACCOUNTS_MAX) {
            return error_set(err, TP_INVALID, "more than %d receiving accounts",
                             RECON_ACCOUNTS_MAX);
        }
        if (!recon_strip_spaces(raw, out->v[out->n], sizeof(out->v[0]))) {
            return error_set(err, TP_INVALID, "receiving account \"%s\" is longer than %d", raw,
                             RECON_ACCOUNT_MAX);
        }
        if (out->v[out->n][0] == '\0') {
            return error_set(err, TP_INVALID, "empty entry in the receiving accounts \"%s\"", list);
        }
        out->n++;
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    return TP_OK;
}

bool recon_accounts_contains(const struct recon_accounts *a, const char *account)
{
    for (int i = 0; i < a->n; i++) {
        if (strcmp(a->v[i], account) == 0) {
            return true;
        }
    }
    return false;
}

bool decode_text_ok(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t w =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (w <= 0) {
            return false;
        }
        if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7f) {
            return false;
        }
        i += (size_t)w;
    }
    return true;
}

void decode_derive(struct recon_record *r)
{
    struct tp_error ignored;
    const char *name = r->counterparty_name != NULL ? r->counterparty_name : "";
    if (names_normalize(name, strlen(name), r->name_norm, &ignored) != TP_OK) {
        r->name_norm[0] = '\0'; /* unusable for rule 2; the record can still match by reference */
    }
    /* NFKC first, so full-width codes ("ＴＵ７Ｋ…") and full-width hyphens are found too. */
    r->ncodes = 0;
    const char *text = r->remittance_info != NULL ? r->remittance_info : "";
    utf8proc_uint8_t *folded = NULL;
    utf8proc_ssize_t n =
        utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)strlen(text), &folded,
                     UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    if (n >= 0) {
        r->ncodes =
            ids_refcode_find_all((const char *)folded, (size_t)n, r->codes, MATCHER_CODES_MAX);
    } else {
        r->ncodes = ids_refcode_find_all(text, strlen(text), r->codes, MATCHER_CODES_MAX);
    }
    free(folded);
}

/* A bounded, valid UTF-8 text field; name is for the reason. */
static enum tp_status decode_field(const char *name, const char *s, size_t max, bool required,
                                   struct tp_error *err)
{
    size_t len = strlen(s);
    if (required && len == 0) {
        return error_set(err, TP_INVALID, "%s is missing", name);
    }
    if (len > max) {
        return error_set(err, TP_INVALID, "%s is longer than %zu bytes", name, max);
    }
    if (!decode_text_ok(s, len)) {
        return error_set(err, TP_INVALID, "%s is not valid UTF-8 text", name);
    }
    return TP_OK;
}

static bool decode_currency_ok(const char *c)
{
    if (strlen(c) != 3) {
        return false;
    }
    for (int i = 0; i < 3; i++) {
        if (c[i] < 'A' || c[i] > 'Z') {
            return false;
        }
    }
    return true;
}

static enum tp_status decode_record_fields(const Topup__V1__BankStatementRecord *m,
                                           struct recon_record *r, struct tp_error *err)
{
    const struct {
        const char *name;
        const char *value;
        size_t max;
        bool required;
    } fields[] = {
        {"bank_txn_id", m->bank_txn_id, RECON_TXN_ID_MAX, true},
        {"counterparty_name", m->counterparty_name, RECON_NAME_MAX, false},
        {"counterparty_account", m->counterparty_account, RECON_CP_ACCOUNT_MAX, false},
        {"counterparty_bank", m->counterparty_bank, RECON_NAME_MAX, false},
        {"remittance_info", m->remittance_info, RECON_REMITTANCE_MAX, false},
        {"source_file", m->source_file, RECON_SOURCE_FILE_MAX, false},
        {"source_location", m->source_location, RECON_SOURCE_LOCATION_MAX, false},
        {"format", m->format, RECON_FORMAT_MAX, false},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        enum tp_status st =
            decode_field(fields[i].name, fields[i].value, fields[i].max, fields[i].required, err);
        if (st != TP_OK) {
            return st;
        }
    }
    if (!recon_strip_spaces(m->receiving_account, r->receiving_account,
                            sizeof(r->receiving_account)) ||
        r->receiving_account[0] == '\0') {
        return error_set(err, TP_INVALID, "receiving_account is missing or longer than %d",
                         RECON_ACCOUNT_MAX);
    }
    for (const char *p = r->receiving_account; *p != '\0'; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            return error_set(err, TP_INVALID, "receiving_account is not printable ASCII");
        }
    }
    if (!days_parse(m->value_date, strlen(m->value_date), &r->value_day)) {
        return error_set(err, TP_INVALID, "value_date \"%.16s\" is not YYYY-MM-DD", m->value_date);
    }
    int32_t ignored_day;
    if (m->booking_date[0] != '\0' &&
        !days_parse(m->booking_date, strlen(m->booking_date), &ignored_day)) {
        return error_set(err, TP_INVALID, "booking_date \"%.16s\" is not YYYY-MM-DD",
                         m->booking_date);
    }
    if (!decode_currency_ok(m->currency)) {
        return error_set(err, TP_INVALID, "currency \"%.8s\" is not an ISO 4217 code", m->currency);
    }
    if (m->direction == TOPUP__V1__DIRECTION__DIRECTION_CREDIT) {
        if (m->amount_fen <= 0) {
            return error_set(err, TP_INVALID, "credit with amount_fen %lld (must be > 0)",
                             (long long)m->amount_fen);
        }
    } else if (m->direction == TOPUP__V1__DIRECTION__DIRECTION_DEBIT) {
        if (m->amount_fen >= 0) {
            return error_set(err, TP_INVALID, "debit with amount_fen %lld (must be < 0)",
                             (long long)m->amount_fen);
        }
    } else {
        return error_set(err, TP_INVALID, "direction is unspecified");
    }
    return TP_OK;
}

static enum tp_status decode_record(const void *payload, size_t len,
                                    const struct recon_accounts *accounts, struct decoded *out,
                                    struct tp_error *err)
{
    Topup__V1__BankStatementRecord *m =
        topup__v1__bank_statement_record__unpack(NULL, len, payload);
    if (m == NULL) {
        return error_set(err, TP_INVALID, "not a BankStatementRecord (protobuf decode failed)");
    }
    struct recon_record *r = &out->rec;
    memset(r, 0, sizeof(*r));
    enum tp_status st = event_envelope_check(m->envelope, 0, err);
    if (st == TP_OK) {
        st = decode_record_fields(m, r, err);
    }
    if (st != TP_OK) {
        topup__v1__bank_statement_record__free_unpacked(m, NULL);
        return st;
    }
    out->kind = DECODE_RECORD;
    out->proto = m;
    r->event_id = m->envelope->event_id;
    r->bank_txn_id = m->bank_txn_id;
    r->id_is_fingerprint = m->id_is_fingerprint;
    r->booking_date = m->booking_date;
    r->value_date = m->value_date;
    r->amount_fen = m->amount_fen;
    r->currency = m->currency;
    r->credit = m->direction == TOPUP__V1__DIRECTION__DIRECTION_CREDIT;
    r->reversal = m->reversal;
    r->counterparty_name = m->counterparty_name;
    r->counterparty_account = m->counterparty_account;
    r->counterparty_bank = m->counterparty_bank;
    r->remittance_info = m->remittance_info;
    r->source_file = m->source_file;
    r->source_location = m->source_location;
    r->format = m->format;
    r->received_at_ms = INT64_MAX; /* arriving now: any order in PostgreSQL is older */
    event_bsr_digest(m, out->digest);
    decode_derive(r);
    if (!recon_accounts_contains(accounts, r->receiving_account)) {
        r->ignore_reason = "not_receiving_account";
    } else if (!r->credit) {
        r->ignore_reason = "debit";
    } else if (r->reversal) {
        /* A reversal booked as a credit is the bank undoing a debit, not a customer's transfer. */
        r->ignore_reason = "reversal";
    }
    return TP_OK;
}

/* The three order events share their checks: an envelope and a valid order code. */
static enum tp_status decode_order_code(const Topup__V1__Envelope *env, const char *code,
                                        int require_account, struct decoded *out,
                                        struct tp_error *err)
{
    enum tp_status st = event_envelope_check(env, require_account, err);
    if (st != TP_OK) {
        return st;
    }
    if (!ids_refcode_valid(code)) {
        return error_set(err, TP_INVALID, "order_code \"%.16s\" is not a valid reference code",
                         code);
    }
    memcpy(out->order_code, code, REFCODE_STR_LEN);
    return TP_OK;
}

static enum tp_status decode_requested(const void *payload, size_t len, struct decoded *out,
                                       struct tp_error *err)
{
    Topup__V1__TopUpRequested *m = topup__v1__top_up_requested__unpack(NULL, len, payload);
    if (m == NULL) {
        return error_set(err, TP_INVALID, "not a TopUpRequested (protobuf decode failed)");
    }
    enum tp_status st = decode_order_code(m->envelope, m->order_code, 1, out, err);
    if (st == TP_OK && m->amount_fen <= 0) {
        st = error_set(err, TP_INVALID, "amount_fen %lld must be > 0", (long long)m->amount_fen);
    }
    if (st != TP_OK) {
        topup__v1__top_up_requested__free_unpacked(m, NULL);
        return st;
    }
    out->kind = DECODE_ORDER_REQUESTED;
    out->proto = m;
    return TP_OK;
}

static enum tp_status decode_cancelled(const void *payload, size_t len, struct decoded *out,
                                       struct tp_error *err)
{
    Topup__V1__TopUpCancelled *m = topup__v1__top_up_cancelled__unpack(NULL, len, payload);
    if (m == NULL) {
        return error_set(err, TP_INVALID, "not a TopUpCancelled (protobuf decode failed)");
    }
    enum tp_status st = decode_order_code(m->envelope, m->order_code, 0, out, err);
    if (st != TP_OK) {
        topup__v1__top_up_cancelled__free_unpacked(m, NULL);
        return st;
    }
    out->kind = DECODE_ORDER_CANCELLED;
    out->proto = m;
    return TP_OK;
}

static enum tp_status decode_expired(const void *payload, size_t len, struct decoded *out,
                                     struct tp_error *err)
{
    Topup__V1__TopUpExpired *m = topup__v1__top_up_expired__unpack(NULL, len, payload);
    if (m == NULL) {
        return error_set(err, TP_INVALID, "not a TopUpExpired (protobuf decode failed)");
    }
    enum tp_status st = decode_order_code(m->envelope, m->order_code, 0, out, err);
    if (st != TP_OK) {
        topup__v1__top_up_expired__free_unpacked(m, NULL);
        return st;
    }
    out->kind = DECODE_ORDER_EXPIRED;
    out->proto = m;
    return TP_OK;
}

enum tp_status decode_message(const char *topic, const void *payload, size_t len,
                              const struct recon_accounts *accounts, struct decoded *out,
                              struct tp_error *err)
{
    memset(out, 0, sizeof(*out));
    if (payload == NULL && len > 0) {
        return error_set(err, TP_INVALID, "no payload");
    }
    if (strcmp(topic, TOPIC_BANK_STATEMENT_RECORDS) == 0) {
        return decode_record(payload, len, accounts, out, err);
    }
    if (strcmp(topic, TOPIC_TOPUP_REQUESTED) == 0) {
        return decode_requested(payload, len, out, err);
    }
    if (strcmp(topic, TOPIC_TOPUP_CANCELLED) == 0) {
        return decode_cancelled(payload, len, out, err);
    }
    if (strcmp(topic, TOPIC_TOPUP_EXPIRED) == 0) {
        return decode_expired(payload, len, out, err);
    }
    return error_set(err, TP_INVALID, "unexpected topic %s", topic);
}

void decode_free(struct decoded *d)
{
    if (d->proto == NULL) {
        return;
    }
    switch (d->kind) {
    case DECODE_RECORD:
        topup__v1__bank_statement_record__free_unpacked(d->proto, NULL);
        break;
    case DECODE_ORDER_REQUESTED:
        topup__v1__top_up_requested__free_unpacked(d->proto, NULL);
        break;
    case DECODE_ORDER_CANCELLED:
        topup__v1__top_up_cancelled__free_unpacked(d->proto, NULL);
        break;
    case DECODE_ORDER_EXPIRED:
        topup__v1__top_up_expired__free_unpacked(d->proto, NULL);
        break;
    }
    d->proto = NULL;
}
