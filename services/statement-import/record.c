/* The normalised statement record: field storage with limits, and sink helpers. */
#include "record.h"

#include <stdio.h>
#include <string.h>

#include "text.h"

void record_reset(struct record *r)
{
    /* Clearing the first byte of each string is enough and keeps this cheap per record. */
    r->receiving_account[0] = '\0';
    r->bank_txn_id[0] = '\0';
    r->id_is_fingerprint = false;
    r->booking_date[0] = '\0';
    r->value_date[0] = '\0';
    r->booking_time[0] = '\0';
    r->amount_fen = 0;
    r->currency[0] = '\0';
    r->reversal = false;
    r->counterparty_name[0] = '\0';
    r->counterparty_account[0] = '\0';
    r->counterparty_bank[0] = '\0';
    r->remittance[0] = '\0';
    r->has_balance = false;
    r->balance_fen = 0;
    r->line = 0;
    r->location[0] = '\0';
    r->overflow_mask = 0;
}

char *record_field_ptr(struct record *r, enum record_field f)
{
    switch (f) {
    case RF_RECEIVING_ACCOUNT:
        return r->receiving_account;
    case RF_BANK_TXN_ID:
        return r->bank_txn_id;
    case RF_COUNTERPARTY_NAME:
        return r->counterparty_name;
    case RF_COUNTERPARTY_ACCOUNT:
        return r->counterparty_account;
    case RF_COUNTERPARTY_BANK:
        return r->counterparty_bank;
    case RF_REMITTANCE:
        return r->remittance;
    case RF_COUNT_:
        break;
    }
    return NULL;
}

size_t record_field_max(enum record_field f)
{
    switch (f) {
    case RF_RECEIVING_ACCOUNT:
    case RF_COUNTERPARTY_ACCOUNT:
        return RECORD_ACCOUNT_MAX;
    case RF_BANK_TXN_ID:
        return RECORD_ID_MAX;
    case RF_COUNTERPARTY_NAME:
        return RECORD_NAME_MAX;
    case RF_COUNTERPARTY_BANK:
        return RECORD_BANK_MAX;
    case RF_REMITTANCE:
        return RECORD_REMIT_MAX;
    case RF_COUNT_:
        break;
    }
    return 0;
}

const char *record_field_name(enum record_field f)
{
    switch (f) {
    case RF_RECEIVING_ACCOUNT:
        return "receiving account";
    case RF_BANK_TXN_ID:
        return "bank transaction id";
    case RF_COUNTERPARTY_NAME:
        return "counterparty name";
    case RF_COUNTERPARTY_ACCOUNT:
        return "counterparty account";
    case RF_COUNTERPARTY_BANK:
        return "counterparty bank";
    case RF_REMITTANCE:
        return "remittance information";
    case RF_COUNT_:
        break;
    }
    return "?";
}

/* Copies s[0..n) to dst replacing control characters by spaces. */
static void record_copy_clean(char *dst, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c < 0x20 || c == 0x7F) ? ' ' : (char)c;
    }
    dst[n] = '\0';
}

void record_set(struct record *r, enum record_field f, const char *s, size_t n)
{
    char *dst = record_field_ptr(r, f);
    text_trim(&s, &n);
    if (n > record_field_max(f)) {
        r->overflow_mask |= 1u << f;
        dst[0] = '\0';
        return;
    }
    record_copy_clean(dst, s, n);
}

void record_append(struct record *r, enum record_field f, const char *sep, const char *s, size_t n)
{
    char *dst = record_field_ptr(r, f);
    text_trim(&s, &n);
    if (n == 0) {
        return;
    }
    size_t cur = strlen(dst);
    size_t sl = cur > 0 ? strlen(sep) : 0;
    if (cur + sl + n > record_field_max(f)) {
        r->overflow_mask |= 1u << f;
        return;
    }
    memcpy(dst + cur, sep, sl);
    record_copy_clean(dst + cur + sl, s, n);
}

const char *record_direction_name(const struct record *r)
{
    return r->amount_fen < 0 ? "debit" : "credit";
}

void sink_errorf(const struct parse_sink *sink, uint32_t line, const char *fmt, ...)
{
    char msg[ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sink->error(sink->ctx, line, msg);
}

void record_location_line(struct record *r, uint32_t line)
{
    char digits[12];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + line % 10);
        line /= 10;
    } while (line > 0);
    memcpy(r->location, "line ", 5);
    size_t o = 5;
    while (n > 0) {
        r->location[o++] = digits[--n];
    }
    r->location[o] = '\0';
}
