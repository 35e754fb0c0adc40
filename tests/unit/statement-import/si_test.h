/* Test support for statement-import: run a parser and the checks over a buffer, collect results. */
#ifndef SI_TEST_H
#define SI_TEST_H

#include <stdbool.h>
#include <stddef.h>

#include "csv_profiles.h"
#include "identity.h"
#include "record.h"
#include "validate.h"

struct si_run {
    struct record *parsed; /* everything the parser reported in the first pass, valid or not */
    int nparsed;
    struct record *records; /* after both passes (only for a clean file): identities assigned */
    int nrecords;
    char **problems; /* "label:line: reason", as the command prints them */
    int nproblems;
    int nstatements;
    int nskipped;
    struct validate_stats stats;
    char format[64];
    char encoding[32];
    struct validate_gap *gaps; /* the balance gaps among the problems */
    int ngaps;
    struct validate_span spans[VALIDATE_SPANS_MAX];
    int nspans;
    struct validate_note notes[VALIDATE_NOTES_MAX];
    int nnotes;
    struct identity_shared *shared; /* bank ids that repeat */
    int nshared;
};

struct si_opts {
    const char *format;  /* NULL or "auto": detect; "mt940", "camt", "csv", "csv:<profile>" */
    const char *account; /* --account */
    const char *encoding;
    const struct csv_profile_set *custom;
    bool accept_gaps; /* --accept-balance-gap: a file whose only problems are gaps proceeds */
    /* (account, bank id) pairs known from earlier imports to repeat. */
    const char *const (*known_shared)[2];
    uint32_t known_shared_n;
};

/* Checks data like the command's first pass; when it is clean, runs the second pass and keeps
 * the records with their identities (fingerprint counters). label names the file in problems. */
void si_run_mem(struct si_run *run, const char *label, const void *data, size_t len,
                const struct si_opts *o);
/* Same for a file; label is its base name. Fails the test when the file cannot be read. */
void si_run_file(struct si_run *run, const char *path, const struct si_opts *o);
void si_run_free(struct si_run *run);

/* Whole file into memory (NUL-terminated); fails the test when missing. */
char *si_read(const char *path, size_t *len);

/* $TOPUP_SAMPLES_DIR/rel and $TOPUP_SOURCE_DIR/tests/fixtures/statements/rel (static buffer). */
const char *si_sample(const char *rel);
const char *si_fixture(const char *rel);

/* Converts UTF-8 text with iconv into encoding (caller frees). */
char *si_convert(const char *text, size_t len, const char *encoding, size_t *out_len);

/* Prints the problems (to help when an assertion fails). */
void si_dump(const struct si_run *run);

/* The record whose location is "line N" (or starts with it); NULL when none. */
const struct record *si_at_line(const struct si_run *run, unsigned line);

/* True when some problem equals text exactly. */
bool si_has_problem(const struct si_run *run, const char *text);

/* The note whose text is what (NULL when none). */
const struct validate_note *si_note_of(const struct si_run *run, const char *what);

#endif
