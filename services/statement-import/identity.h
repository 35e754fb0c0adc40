/* Record identity: the bank's id or a deterministic fingerprint with an occurrence counter. */
#ifndef STATEMENT_IMPORT_IDENTITY_H
#define STATEMENT_IMPORT_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

#include "record.h"

/*
 * Repeats inside one file are found in memory that does not grow with the file: a fixed Bloom
 * filter (IDENTITY_BLOOM_BITS) flags keys that may have been seen, and only those candidates
 * are counted exactly, in a table of at most IDENTITY_CANDIDATES_MAX keys (more: the file is
 * refused as too repetitive). A false positive costs one table slot, never a wrong id.
 */
#define IDENTITY_BLOOM_BITS     (1u << 27) /* 16 MiB */
#define IDENTITY_CANDIDATES_MAX (1u << 20)
#define IDENTITY_FP_PREFIX      "fp:"
/* Bank ids that repeat inside one file (or are known to from earlier imports), listed by text. */
#define IDENTITY_SHARED_MAX 100000

struct identity_key {
    uint8_t b[32]; /* SHA-256 of the identity input */
    bool bank;     /* from the bank's transaction id (else a fingerprint) */
};

struct identity;

/* Caller owns the result: identity_free(). */
struct identity *identity_new(void);
void identity_free(struct identity *id);

/*
 * The key of r: (receiving account, bank id) when the bank gave an id, else a fingerprint over
 * receiving account, booking and value date, booking time, amount, currency, reversal,
 * counterparty name and account and remittance information.
 */
void identity_key(const struct record *r, struct identity_key *k);

enum identity_seen {
    IDENTITY_FIRST,     /* certainly not seen before in this pass */
    IDENTITY_CANDIDATE, /* may repeat: counted exactly from now on */
    IDENTITY_FULL,      /* too many candidates: the file is refused */
};

/* Starts fetching the filter's cache line of k (observe it a record later: no stall). */
void identity_prefetch(const struct identity *id, const struct identity_key *k);

/* First pass: notes k. */
enum identity_seen identity_observe(struct identity *id, const struct identity_key *k);

/* True when some bank-id key may repeat (a verification pass must count them). */
bool identity_has_bank_candidates(const struct identity *id);

/* Sets every candidate's count to zero before a counting pass. */
void identity_reset_counts(struct identity *id);

/*
 * Counting pass: returns the occurrence number of k in file order (1 for keys that are not
 * candidates) and, for repeats, the line of the first occurrence in *first_line.
 */
uint32_t identity_count(struct identity *id, const struct identity_key *k, uint32_t line,
                        uint32_t *first_line);

/* Writes "fp:<32 hex digits>:<occurrence>" into r->bank_txn_id and marks it a fingerprint. */
void identity_assign_fingerprint(struct record *r, const struct identity_key *k,
                                 uint32_t occurrence);

/*
 * Publishing pass: gives r its identity. A record with the bank's id keeps it unless the id is
 * shared; one without (or with a shared one) gets "fp:<hash>:<n>" where n counts the same
 * fingerprint so far in this pass (a shared id's fingerprint covers the id too). Call
 * identity_reset_counts() before the pass.
 */
void identity_assign(struct identity *id, struct record *r);

/*
 * A bank id that does not identify one transaction: it repeats inside one file for different
 * transactions (a Danish MT940's "//1234", a Swiss camt batch whose details share an
 * AcctSvcrRef), or an earlier import found it repeating. The records carrying it are identified
 * by the fallback fingerprint (identity_assign), never merged or dropped.
 */
struct identity_shared {
    char account[RECORD_ACCOUNT_MAX + 1];
    char bank_txn_id[RECORD_ID_MAX + 1];
    uint32_t first_line, second_line; /* 0 when known from an earlier import only */
    uint32_t count;                   /* occurrences in this file */
};

/*
 * Verification pass: counts r's bank id when it may repeat; the second occurrence marks it
 * shared (listed, see identity_shared_list). Returns false only when more than
 * IDENTITY_SHARED_MAX ids repeat (msg says so: the file is refused).
 */
bool identity_verify(struct identity *id, const struct record *r, char *msg, size_t cap);

/*
 * Marks (account, bank id) shared because an earlier import found it repeating: this file's
 * records with it take the fallback fingerprint too, so the overlapping files agree. False when
 * the list is full.
 */
bool identity_mark_shared(struct identity *id, const char *account, const char *bank_txn_id);

/* The shared ids (borrowed): repeated in this file first, then those known from earlier. */
uint32_t identity_shared_list(const struct identity *id, const struct identity_shared **list);

/* Number of candidate keys (tests, summary). */
uint32_t identity_candidates(const struct identity *id);

#endif
