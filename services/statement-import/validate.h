/* Whole-file validation: record checks, statement balances, running balances, repeated ids. */
#ifndef STATEMENT_IMPORT_VALIDATE_H
#define STATEMENT_IMPORT_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include "identity.h"
#include "record.h"

/* Problems kept for listing; more are counted only ("... and N more"). */
#define VALIDATE_LISTED_DEFAULT 1000
#define VALIDATE_LISTED_MAX     100000
/* Statements per file whose keys are remembered to catch a statement included twice. */
#define VALIDATE_STATEMENTS_MAX 100000
/* Currencies kept apart in the totals. */
#define VALIDATE_CURRENCIES_MAX 16

struct validate_totals {
    char currency[4];
    uint64_t credits, debits;
    int64_t credit_fen, debit_fen; /* debit_fen is negative */
};

struct validate_stats {
    uint64_t records;
    uint64_t skipped_zero;  /* zero-amount transactions: nothing to credit or debit */
    uint64_t skipped_other; /* reported by the parser (not booked, ...) */
    uint64_t statements;
    uint64_t fingerprinted; /* records without a bank id */
    int ncurrencies;
    struct validate_totals totals[VALIDATE_CURRENCIES_MAX];
};

struct validator;

/*
 * file_label prefixes every problem ("file:line: reason"). identity may be NULL (no repeat
 * detection, as in the publishing pass); it is borrowed. listed_max bounds the kept messages.
 */
struct validator *validator_new(const char *file_label, struct identity *identity,
                                uint32_t listed_max);
void validator_free(struct validator *v);

/* The sink the parsers report into. Borrowed from v. */
const struct parse_sink *validator_sink(struct validator *v);

enum validate_verdict {
    VALIDATE_OK,      /* publish it */
    VALIDATE_SKIP,    /* a transaction with nothing to publish (zero amount), counted */
    VALIDATE_INVALID, /* a problem was reported */
};

/* Checks one record (the parsers' sink calls it; so does the publishing pass). */
enum validate_verdict validator_check_record(struct validator *v, struct record *r);

/* Ends the pass: running-balance verdicts and anything that needs the whole file. */
void validator_finish(struct validator *v);

/* Reports a problem found outside the parsers (e.g. the id verification pass). */
void validator_report(struct validator *v, uint32_t line, const char *msg);

uint64_t validator_problems(const struct validator *v);
uint32_t validator_listed(const struct validator *v);
/* The i-th kept problem, "file:line: reason". */
const char *validator_problem(const struct validator *v, uint32_t i);
const struct validate_stats *validator_stats(const struct validator *v);

#endif
