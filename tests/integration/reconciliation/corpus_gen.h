/*
 * Matching corpus: realistic, noisy orders and bank statement records with the true answer for
 * each record. Deterministic for a seed. Scenarios: clean and mangled references (case, spaces,
 * hyphens, full-width, noise around them, one character wrong), remitter-name variants (spaces,
 * full-width, case, intermediary prefixes, punctuation), equal amounts in different accounts, the
 * same name in two accounts, duplicates, transfers before their orders, cancelled-then-paid,
 * amounts off by a fen, value dates outside the window, two references in one text, debits and
 * foreign receiving accounts, and a name match to an account that does not own the name. Every
 * order's account owns the order's name (a verified payer) unless payer_unverified.
 */
#ifndef CORPUS_GEN_H
#define CORPUS_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topup/ids.h"

#define CORPUS_TEXT_MAX  256
#define CORPUS_TRUTH_MAX 2 /* acceptable orders of one record (two equal orders of one account) */

struct corpus_order {
    char code[REFCODE_STR_LEN];
    char account_id[48];
    int64_t amount_fen;
    char name[CORPUS_TEXT_MAX]; /* as the user typed it on the order */
    int64_t created_offset_ms;  /* relative to the run's "now" */
    int64_t expires_offset_ms;
    const char *status;    /* "pending", "cancelled", ... */
    bool late;             /* created only after the records were processed */
    bool payer_unverified; /* the account does not own the name (no account_payers row) */
};

struct corpus_record {
    char txn_id[64];
    bool other_account;   /* into a receiving account that is not ours */
    int64_t amount_fen;   /* signed */
    int value_day_offset; /* days relative to today */
    char name[CORPUS_TEXT_MAX];
    char remittance[CORPUS_TEXT_MAX];
    bool duplicate; /* a redelivery of the previous record (same txn id) */
    const char *scenario;
    /* The truth: the codes of acceptable orders; none means it must not be matched. */
    int ntruth;
    char truth[CORPUS_TRUTH_MAX][REFCODE_STR_LEN];
    const char *state; /* the record's state it must end in: matched, review, unmatched, ignored */
};

struct corpus {
    struct corpus_order *orders;
    size_t n_orders, cap_orders;
    struct corpus_record *records;
    size_t n_records, cap_records;
};

/*
 * Generates about n records (and their orders) from seed; ids carry tag so that runs on a shared
 * stack never collide. Free with corpus_free().
 */
void corpus_generate(struct corpus *c, uint64_t seed, size_t n, const char *tag);
void corpus_free(struct corpus *c);

/* Names of the scenarios, for the per-scenario table. */
extern const char *const corpus_scenarios[];
extern const size_t corpus_scenario_count;

#endif
