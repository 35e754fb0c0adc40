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
/* Balance gaps kept (each one is also a problem); more refuse the file even when accepted. */
#define VALIDATE_GAPS_MAX 1000
/* Accounts (with currency) whose balances a file spans, for the continuity across files. */
#define VALIDATE_SPANS_MAX 64
/* Kinds of accepted deviations counted (notes). */
#define VALIDATE_NOTES_MAX 16

/*
 * Balances that do not add up. Refused by default like every problem; finance may accept them
 * (--accept-balance-gap, audited): only then do they not stop the import.
 */
enum validate_gap_kind {
    GAP_BALANCE,    /* closing balance != opening balance + entries (MT940, camt) */
    GAP_PREVIOUS,   /* camt OPBD != PRCD (the previous statement's closing) */
    GAP_RUNNING,    /* a CSV export's running balance breaks */
    GAP_CONTINUITY, /* this file's opening != the last imported closing of the account */
};

struct validate_gap {
    enum validate_gap_kind kind;
    uint32_t line;
    char statement[160]; /* how problems name it ("statement ... (line 4)", "the export") */
    char account[RECORD_ACCOUNT_MAX + 1];
    char currency[4];
    int64_t expected_fen; /* what the other figures make the balance */
    int64_t stated_fen;   /* what the file says it is */
    int64_t gap_fen;      /* stated - expected */
    char previous[160];   /* continuity: the import it follows ("2024-03-01 of file.sta") */
};

/* What a file says of an account's balance at its start and end (for continuity). */
struct validate_span {
    char account[RECORD_ACCOUNT_MAX + 1];
    char currency[4];
    char statement[160]; /* the statement that opens it */
    uint32_t opening_line;
    char opening_date[11], closing_date[11]; /* "" when unknown */
    int64_t opening_fen, closing_fen;
};

/* A deviation from the format that was accepted (the parsers' notes), counted by kind. */
struct validate_note {
    const char *what; /* static text */
    uint64_t count;
    uint32_t first_line;
};

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
    uint64_t foreign;       /* records in another currency than their statement's */
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

/* Reports a balance gap found outside the parsers (continuity with an earlier import). */
void validator_report_gap(struct validator *v, const struct validate_gap *g);

/* The kept gaps (borrowed) and their number. */
uint32_t validator_gaps(const struct validator *v, const struct validate_gap **gaps);
/* True when there are problems and every one is a kept balance gap (acceptable with the flag). */
bool validator_only_gaps(const struct validator *v);
/* The accounts' spans (borrowed) and their number. */
uint32_t validator_spans(const struct validator *v, const struct validate_span **spans);
/*
 * The receiving accounts of the file's records (borrowed), at most VALIDATE_SPANS_MAX (*more set
 * when there were others): imports of an account take turns, and shared ids are per account.
 */
int validator_accounts(const struct validator *v, const char *const **accounts, bool *more);
/* The notes (borrowed) and their number. */
uint32_t validator_notes(const struct validator *v, const struct validate_note **notes);
/* Gap messages' kind names ("balance", "previous", "running", "continuity"). */
const char *validate_gap_kind_name(enum validate_gap_kind k);

uint64_t validator_problems(const struct validator *v);
uint32_t validator_listed(const struct validator *v);
/* The i-th kept problem, "file:line: reason". */
const char *validator_problem(const struct validator *v, uint32_t i);
const struct validate_stats *validator_stats(const struct validator *v);

#endif
