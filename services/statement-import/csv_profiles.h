/* Column profiles of Chinese bank CSV exports: built-in banks and custom profiles from a file. */
#ifndef STATEMENT_IMPORT_CSV_PROFILES_H
#define STATEMENT_IMPORT_CSV_PROFILES_H

#include <stdbool.h>
#include <stddef.h>

#include "topup/error.h"

/* What a column means. */
enum csv_field {
    CF_NONE = 0,
    CF_BOOKING_DATE, /* 记账日期: when the bank booked it */
    CF_TXN_DATE,     /* 交易日期: date, or date and time */
    CF_VALUE_DATE,   /* 起息日 */
    CF_TIME,         /* 交易时间: a time of day, or a date and time */
    CF_AMOUNT,       /* signed amount, or unsigned with a flag column */
    CF_CREDIT,       /* income column (收入, 贷方) */
    CF_DEBIT,        /* expense column (支出, 借方) */
    CF_FLAG,         /* debit/credit flag (借贷标志) */
    CF_BALANCE,      /* running balance after the row */
    CF_CURRENCY,
    CF_CP_NAME,
    CF_CP_ACCOUNT,
    CF_CP_BANK,
    CF_CP_COMBINED, /* name and account in one cell ("张三 6222...") */
    CF_PAYER_NAME,  /* payer/payee columns: the counterparty is the payer on credits */
    CF_PAYER_ACCOUNT,
    CF_PAYER_BANK,
    CF_PAYEE_NAME,
    CF_PAYEE_ACCOUNT,
    CF_PAYEE_BANK,
    CF_REMITTANCE,  /* any number of columns, joined in file order */
    CF_TXN_ID,      /* the bank's unique transaction number */
    CF_OWN_ACCOUNT, /* our account, per row */
    CF_COUNT_,
};

#define CSV_PROFILE_NAME_MAX 48
/* Most profiles a custom profile file may declare, and most aliases per field. */
#define CSV_CUSTOM_PROFILES_MAX 32
#define CSV_PROFILE_FILE_MAX    (64 * 1024)

/*
 * A profile: for each field, '|'-separated header names as text_normalize_header() writes them
 * (NULL: the field has no column). Flag tokens are prefixes of the normalised flag cell.
 */
struct csv_profile {
    char name[CSV_PROFILE_NAME_MAX];
    const char *description;
    const char *columns[CF_COUNT_];
    const char *account_labels;  /* header-area labels naming our account ("卡号", "账号") */
    const char *currency_labels; /* header-area labels naming the currency ("币种") */
    const char *flag_credit;     /* flag values meaning credit ("贷|收|c|cr|...") */
    const char *flag_debit;
    char delimiter; /* 0: detect (',' '\t' ';' '|') */
    bool generic;   /* matched last: loses ties against bank profiles */
    bool custom;
};

/* Custom profiles loaded from a file. */
struct csv_profile_set {
    struct csv_profile profiles[CSV_CUSTOM_PROFILES_MAX];
    int n;
    struct arena *arena; /* owns the strings the profiles point into */
};

/* The built-in profiles, in detection order; *n receives the count. */
const struct csv_profile *csv_profiles_builtin(int *n);

/* Finds a profile by name among custom (may be NULL) then built-in ones; NULL if unknown. */
const struct csv_profile *csv_profiles_find(const struct csv_profile_set *custom, const char *name);

/*
 * Loads custom profiles from an INI-style file (see README: "[profile NAME]" sections with
 * "field = 列名|列名" lines). Returns NULL and fills err ("file:line: reason") on any mistake.
 * Caller owns the result: csv_profiles_free().
 */
struct csv_profile_set *csv_profiles_load(const char *path, struct tp_error *err);
/* Same from a buffer (tests); name is used in messages. */
struct csv_profile_set *csv_profiles_parse(const char *name, const char *text, size_t len,
                                           struct tp_error *err);
void csv_profiles_free(struct csv_profile_set *set);

/* Stable name of a field as custom profile files spell it ("booking_date"). */
const char *csv_field_key(enum csv_field f);

/* True when the '|'-separated list contains exactly name. */
bool csv_list_has(const char *list, const char *name, size_t name_len);

/* True when the normalised value starts with one of the '|'-separated tokens. */
bool csv_list_prefix(const char *list, const char *value, size_t value_len);

#endif
