/* SWIFT MT940/MT942 field parsers, exposed for unit tests (the driver is parser_mt940_run). */
#ifndef STATEMENT_IMPORT_PARSER_MT940_H
#define STATEMENT_IMPORT_PARSER_MT940_H

#include <stdint.h>

#include "record.h"
#include "topup/error.h"

#define MT940_REF_MAX           64
#define MT940_SUPPLEMENTARY_MAX 128
/* Longest :61: that a line break after its mark is taken out of (the field is 2 lines). */
#define MT940_61_JOIN_MAX 512

/* One :61: statement line. */
struct mt940_entry {
    char value_date[11];
    char entry_date[11]; /* "" when absent; the year is inferred from the value date */
    char mark[3];        /* "C", "D", "RC" (reversal of a credit: money out), "RD" */
    char funds_code;     /* 0 when absent */
    int64_t amount_fen;  /* magnitude */
    char type[5];        /* "NTRF", "S   " */
    char customer_ref[MT940_REF_MAX];
    char bank_ref[MT940_REF_MAX];
    char supplementary[MT940_SUPPLEMENTARY_MAX];
};

/* Parses a :61: field (its continuation line is the supplementary details). */
enum tp_status mt940_parse_61(const char *s, size_t n, struct mt940_entry *e,
                              struct tp_error *err) TP_MUST_CHECK;

/* Parses a balance (:60F:, :62F:, :64:): "C100318EUR380115,12". fen is signed. */
enum tp_status mt940_parse_balance(const char *s, size_t n, char date[11], char currency[4],
                                   int64_t *fen, struct tp_error *err) TP_MUST_CHECK;

/*
 * Reads :86: text into r's counterparty and remittance fields: German "?20" subfields (with the
 * SEPA keys EREF+/SVWZ+/...), Dutch "/NAME/ /REMI/ /EREF/" keys, or free text.
 */
void mt940_parse_86(const char *s, size_t n, struct record *r);

/* Entry date MMDD next to value date: the year that puts it closest (across New Year). */
void mt940_entry_year(const char value_date[11], int month, int day, char out[11]);

#endif
