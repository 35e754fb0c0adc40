/* The normalised statement record every parser produces, and the sink parsers report into. */
#ifndef STATEMENT_IMPORT_RECORD_H
#define STATEMENT_IMPORT_RECORD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topup/error.h"

/* Field maxima in bytes (UTF-8). A longer value is an error of the record, never truncated:
 * a cut remittance could cut a reference code in half. */
#define RECORD_ACCOUNT_MAX  64
#define RECORD_ID_MAX       128
#define RECORD_NAME_MAX     512
#define RECORD_BANK_MAX     256
#define RECORD_REMIT_MAX    2048
#define RECORD_LOCATION_MAX 160
#define RECORD_DATE_LEN     10 /* YYYY-MM-DD */
#define RECORD_TIME_LEN     8  /* HH:MM:SS */

enum record_field {
    RF_RECEIVING_ACCOUNT,
    RF_BANK_TXN_ID,
    RF_COUNTERPARTY_NAME,
    RF_COUNTERPARTY_ACCOUNT,
    RF_COUNTERPARTY_BANK,
    RF_REMITTANCE,
    RF_COUNT_,
};

/*
 * One transaction. Parsers fill it in place (it is reused record after record, no allocation).
 * amount_fen is signed: credit > 0, debit < 0. Dates are "YYYY-MM-DD" or "" when unknown.
 */
struct record {
    char receiving_account[RECORD_ACCOUNT_MAX + 1];
    char bank_txn_id[RECORD_ID_MAX + 1]; /* the bank's id; "" until identity assigns "fp:..." */
    bool id_is_fingerprint;
    char booking_date[RECORD_DATE_LEN + 1];
    char value_date[RECORD_DATE_LEN + 1];
    char booking_time[RECORD_TIME_LEN + 1]; /* "" when the format has none; fingerprint only */
    int64_t amount_fen;
    char currency[4];
    bool reversal;
    char counterparty_name[RECORD_NAME_MAX + 1];
    char counterparty_account[RECORD_ACCOUNT_MAX + 1];
    char counterparty_bank[RECORD_BANK_MAX + 1];
    char remittance[RECORD_REMIT_MAX + 1];
    /* CSV running balance after this row, when the export has one. */
    bool has_balance;
    int64_t balance_fen;
    /* Where it came from. */
    uint32_t line;
    char location[RECORD_LOCATION_MAX];
    /* Set by record_set() when a value did not fit: the record is invalid. */
    unsigned overflow_mask;
};

/* Clears every field. */
void record_reset(struct record *r);

/*
 * Stores s[0..n) into field f after trimming blanks (ASCII and U+3000) and replacing control
 * characters (tab, CR, LF) by spaces. A value longer than the field's maximum sets the field's
 * bit in overflow_mask and stores nothing.
 */
void record_set(struct record *r, enum record_field f, const char *s, size_t n);

/* Appends s[0..n) (trimmed) to field f, separated by sep when both are non-empty. */
void record_append(struct record *r, enum record_field f, const char *sep, const char *s, size_t n);

/* Sets location to "line N" (fast: formatted by hand, once per record). */
void record_location_line(struct record *r, uint32_t line);

/* Human name of a field ("counterparty name"). */
const char *record_field_name(enum record_field f);

/* Maximum length of a field in bytes. */
size_t record_field_max(enum record_field f);

/* Pointer to the field's storage (borrowed). */
char *record_field_ptr(struct record *r, enum record_field f);

/* Direction as the statement_records table spells it: "credit" or "debit". */
const char *record_direction_name(const struct record *r);

/*
 * A statement inside a file (MT940 :20: block, camt Stmt/Rpt/Ntfctn). CSV files have none.
 * Balances are signed fen. Parsers fill it and report it at the statement's end.
 */
struct statement_info {
    uint32_t line;     /* first line of the statement */
    uint32_t end_line; /* line of the closing balance (or last line) */
    char key[256];     /* identity inside the file, to catch a statement included twice */
    char label[160];   /* how messages name it, e.g. "statement 253EUR... (line 25)" */
    char account[RECORD_ACCOUNT_MAX + 1];
    char currency[4];
    bool balances_required;
    /* Some entry was dropped for a problem already reported: totals cannot add up, so they
     * are not checked (the report would only repeat the problem). */
    bool incomplete;
    bool has_opening, has_closing;
    int64_t opening_fen, closing_fen;
    char opening_ccy[4], closing_ccy[4];
    char opening_date[11], closing_date[11]; /* "" when the format gives none */
    uint32_t opening_line, closing_line;
    /* camt PRCD (the previous statement's closing) when OPBD is the opening: they must agree. */
    bool has_previous;
    int64_t previous_fen;
    char previous_ccy[4];
    uint32_t previous_line;
    /* MT942 :90D:/:90C: totals, when present. */
    bool has_debit_sum, has_credit_sum;
    int64_t debit_count, credit_count;
    int64_t debit_sum_fen, credit_sum_fen; /* magnitudes */
};

/*
 * Where parsers report. Callbacks run synchronously on the parser's thread.
 * - statement_begin/statement_end bracket the records of one statement (MT940, camt).
 * - record: one complete record; the callee may modify it (identity is filled in later steps).
 * - error: one problem at a line (0 = the file as a whole); parsing goes on where it can.
 * - skipped: a transaction deliberately not published (zero amount, not booked), with why.
 */
struct parse_sink {
    void *ctx;
    void (*statement_begin)(void *ctx, const struct statement_info *s);
    void (*statement_end)(void *ctx, const struct statement_info *s);
    void (*record)(void *ctx, struct record *r);
    void (*error)(void *ctx, uint32_t line, const char *msg);
    void (*skipped)(void *ctx, uint32_t line, const char *why);
    /* Optional: a deviation from the format that was accepted, said once per kind (what is a
     * fixed text naming the kind, e.g. "booked entry without BookgDt: booked on ValDt"). */
    void (*note)(void *ctx, uint32_t line, const char *what);
    /* Optional: parsers stop early (returning TP_OK) once it returns true. */
    bool (*cancelled)(void *ctx);
};

/* What every record of one import shares: where it came from. Strings are borrowed. */
struct record_meta {
    const char *source_file; /* file name as imported (no directories) */
    const char *format;      /* "csv:icbc-personal", "mt940", "camt.053" */
    const char *sha256;      /* of the whole file, hex */
};

/* Formats a message and reports it through sink->error. */
void sink_errorf(const struct parse_sink *sink, uint32_t line, const char *fmt, ...)
    TP_PRINTF(3, 4);

#endif
