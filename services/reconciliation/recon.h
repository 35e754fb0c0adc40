/* The reconciliation worker's shared types and the interfaces between its files. */
#ifndef RECON_H
#define RECON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "matcher.h"
#include "topup/error.h"
#include "topup/ids.h"
#include "topup/names.h"

#define RECON_SERVICE "reconciliation"
/* Consumer group default, producer name in envelopes, outbox source and decided_by. */
#define RECON_SOURCE RECON_SERVICE

/* Bounds of a statement record's fields (bytes); a longer field dead-letters the message. */
#define RECON_ACCOUNT_MAX         64
#define RECON_TXN_ID_MAX          200
#define RECON_NAME_MAX            512
#define RECON_CP_ACCOUNT_MAX      128
#define RECON_REMITTANCE_MAX      4096
#define RECON_SOURCE_FILE_MAX     1024
#define RECON_SOURCE_LOCATION_MAX 256
#define RECON_FORMAT_MAX          64
/* Receiving accounts configured (RECON_RECEIVING_ACCOUNTS); more are refused at start. */
#define RECON_ACCOUNTS_MAX 32
/* Upper bound of RECON_BATCH_MAX: a batch holds about 2 KiB per message plus its SQL texts. */
#define RECON_BATCH_HARD_MAX 5000
/* Why a message was dead-lettered; longer reasons are cut. */
#define RECON_REASON_MAX 256
/* Upper bound of RECON_TX_LANES: parallel transactions, one PostgreSQL connection each. */
#define RECON_LANES_MAX 8

/* ---- decode.c: Kafka message -> what it means for reconciliation ---- */

/* The configured receiving accounts, spaces removed. */
struct recon_accounts {
    char v[RECON_ACCOUNTS_MAX][RECON_ACCOUNT_MAX + 1];
    int n;
};

/*
 * Parses "acc1, acc2" (comma-separated; spaces inside an account are removed, so "6222 0212"
 * equals "62220212"). TP_INVALID for an empty list, an empty or too long entry, or too many.
 */
enum tp_status recon_accounts_parse(const char *list, struct recon_accounts *out,
                                    struct tp_error *err) TP_MUST_CHECK;
bool recon_accounts_contains(const struct recon_accounts *a, const char *account);

/* Copies s without spaces into out (cap bytes, NUL included); false if it does not fit. */
bool recon_strip_spaces(const char *s, char *out, size_t cap);

/*
 * A bank statement record as reconciliation uses it. For a decoded message the string pointers
 * borrow from the unpacked protobuf message (decode_free); for a record loaded from PostgreSQL
 * they borrow from the PGresult. The derived fields are copies.
 */
struct recon_record {
    const char *event_id;
    char receiving_account[RECON_ACCOUNT_MAX + 1]; /* spaces removed: part of the identity */
    const char *bank_txn_id;
    bool id_is_fingerprint;
    const char *booking_date; /* "" when the format has none */
    const char *value_date;
    int32_t value_day;
    int64_t amount_fen; /* signed: credit > 0, debit < 0 */
    const char *currency;
    bool credit;
    bool reversal;
    const char *counterparty_name;
    const char *counterparty_account;
    const char *counterparty_bank;
    const char *remittance_info;
    const char *source_file;
    const char *source_location;
    const char *format;
    /* The recorded import the record belongs to (statement_import_records, found by the worker
     * from the record's digest before the batch); stored with the record. 0: not looked up. */
    int64_t import_id;
    /* A stored record: when the worker stored it (received_at); INT64_MAX for a new one. */
    int64_t received_at_ms;
    /* Derived. */
    char name_norm[NAMES_NORM_MAX]; /* "" when there is no usable name */
    int ncodes;
    char codes[MATCHER_CODES_MAX][REFCODE_STR_LEN];
    const char *ignore_reason; /* NULL: a candidate for matching; else why it is ignored */
};

enum decode_kind {
    DECODE_RECORD,
    DECODE_ORDER_REQUESTED,
    DECODE_ORDER_CANCELLED,
    DECODE_ORDER_EXPIRED,
};

struct decoded {
    enum decode_kind kind;
    void *proto;                      /* the unpacked message; owned, freed by decode_free */
    struct recon_record rec;          /* DECODE_RECORD */
    uint8_t digest[32];               /* DECODE_RECORD: event_bsr_digest() of the record */
    char order_code[REFCODE_STR_LEN]; /* the order events */
};

/*
 * Decodes and checks the value of a message of `topic`. Records: envelope, identity, dates,
 * direction and sign, currency, UTF-8 and field bounds; then the derived fields (normalised name,
 * reference codes from the NFKC-normalised remittance text, ignore reason). Order events: the
 * envelope and a valid order code. TP_INVALID with the reason (for the dead letter) otherwise;
 * nothing to free then. On TP_OK the caller frees with decode_free().
 */
enum tp_status decode_message(const char *topic, const void *payload, size_t len,
                              const struct recon_accounts *accounts, struct decoded *out,
                              struct tp_error *err) TP_MUST_CHECK;
void decode_free(struct decoded *d);

/*
 * Fills the derived fields of r (name_norm, codes) from counterparty_name and remittance_info.
 * Used by decode and by topupctl-free tests; never fails (an unusable name becomes "").
 */
void decode_derive(struct recon_record *r);

/* True when s (len bytes) is valid UTF-8 without control characters other than tab/newline. */
bool decode_text_ok(const char *s, size_t len);

/* ---- records_store.c and orders_store.c: the SQL of statement_records and topup_orders ---- */

struct pg_conn;
struct counters;
struct aging_calendar;
typedef struct pg_result PGresult;

/* Register the stores' statements on c. */
enum tp_status records_store_prepare(struct pg_conn *c, struct tp_error *err) TP_MUST_CHECK;
enum tp_status orders_store_prepare(struct pg_conn *c, struct tp_error *err) TP_MUST_CHECK;

/*
 * ids is the text of a JSON array of {"i": index, "a": receiving account, "t": bank txn id}. Sets
 * dup[i] for each identity already stored (dup has an entry for every index used).
 */
enum tp_status records_store_known(struct pg_conn *c, const char *ids, bool *dup,
                                   struct tp_error *err) TP_MUST_CHECK;

/* Takes n ids for new records from their sequence, in ascending order, into ids_out[0..n). */
enum tp_status records_store_ids(struct pg_conn *c, size_t n, int64_t *ids_out,
                                 struct tp_error *err) TP_MUST_CHECK;

struct copyw;

/* Appends the statement_records row of x (id, state: its state after the batch) to w. */
void records_store_copy_row(struct copyw *w, int64_t id, const struct recon_record *x,
                            const char *state);

/*
 * Inserts w's rows (records_store_copy_row). An identity stored meanwhile by another transaction
 * fails the whole COPY with TP_DUPLICATE (the transaction is then aborted).
 */
enum tp_status records_store_copy(struct pg_conn *c, const struct copyw *rows,
                                  struct tp_error *err) TP_MUST_CHECK;

/*
 * Locks (FOR UPDATE) up to limit unmatched records that one of the orders `codes` (JSON array of
 * order codes; only pending orders count) could fit: by reference code, or by normalised name and
 * amount. Oldest first. *res is owned by the caller; rows read with records_store_row().
 */
enum tp_status records_store_lock_for_orders(struct pg_conn *c, const char *codes, int limit,
                                             PGresult **res, struct tp_error *err) TP_MUST_CHECK;

/* Locks up to limit unmatched records with id > after_id, skipping rows locked by others. */
enum tp_status records_store_lock_unmatched(struct pg_conn *c, int64_t after_id, int limit,
                                            PGresult **res, struct tp_error *err) TP_MUST_CHECK;

/* Fills r (strings borrowed from res) and *id from row of a lock result. */
void records_store_row(const PGresult *res, int row, struct recon_record *r, int64_t *id);

/* Sets state for rows (JSON array of {"id", "state"}). */
enum tp_status records_store_set_states(struct pg_conn *c, const char *rows,
                                        struct tp_error *err) TP_MUST_CHECK;

/*
 * Reads the orders a batch could concern: every order (any status) whose code is in codes (JSON
 * array), or every pending order whose (remitter_name_norm, amount_fen) is in keys (JSON array of
 * {"n", "a"}). *res is owned by the caller; orders_store_fill() turns it into matcher orders.
 */
enum tp_status orders_store_by_code(struct pg_conn *c, const char *codes, PGresult **res,
                                    struct tp_error *err) TP_MUST_CHECK;
enum tp_status orders_store_by_key(struct pg_conn *c, const char *keys, PGresult **res,
                                   struct tp_error *err) TP_MUST_CHECK;

/* Fills out[0..PQntuples(res)) from res (strings borrowed from res). */
void orders_store_fill(const PGresult *res, struct matcher_order *out);

/* ---- provenance.c: a bank record is taken only when it belongs to a recorded import ---- */

/* Registers provenance.c's statement on c. */
enum tp_status provenance_prepare(struct pg_conn *c, struct tp_error *err) TP_MUST_CHECK;

/*
 * Looks the n digests (digests[i]: 32 bytes, event_bsr_digest()) up in statement_import_records, in
 * one query: import_ids[i] is the (lowest) import of status publishing or completed that recorded
 * digests[i], or 0 when none did.
 */
enum tp_status provenance_lookup(struct pg_conn *c, const uint8_t *const *digests, size_t n,
                                 int64_t *import_ids, struct tp_error *err) TP_MUST_CHECK;

/* ---- reconcile.c: one batch, one transaction ---- */

/* What reconcile needs to know about the deployment; set once at start. */
struct recon_settings {
    struct matcher_params matcher;
    int review_after_business_days;
    const struct aging_calendar *calendar;
    int batch_max;
};

/* Totals of one committed batch, for the counters and the logs. */
struct recon_tally {
    int64_t seen, duplicates, ignored, unmatched, matched_reference, matched_name_amount,
        review[MATCHER_REASONS]; /* by enum matcher_reason (AMOUNT_MISMATCH: matched and flagged) */
    int64_t rematched; /* stored unmatched records matched or sent to review in this batch */
};

struct reconcile;

/* Prepares statements on c and sizes a batch for settings->batch_max records. Caller owns it. */
struct reconcile *reconcile_new(struct pg_conn *c, const struct recon_settings *settings,
                                struct tp_error *err);
void reconcile_free(struct reconcile *r);

/* Empties the batch (keeps its memory). */
void reconcile_reset(struct reconcile *r);

/*
 * Adds a decoded record (borrowed until reconcile_reset) or the code of an order that was just
 * requested (copied). False when the batch is full (settings->batch_max of each).
 */
bool reconcile_add_record(struct reconcile *r, const struct recon_record *rec);
bool reconcile_add_order(struct reconcile *r, const char *code);

/*
 * Runs the batch in one transaction (retried on TP_RETRY up to attempts times): stores the new
 * records once, re-examines the stored unmatched records an added order could fit, decides,
 * claims, writes decisions, review items and PaymentMatched rows to the outbox. On TP_OK the tally
 * is filled. Nothing is committed on failure.
 */
enum tp_status reconcile_run(struct reconcile *r, int attempts, struct recon_tally *tally,
                             struct tp_error *err) TP_MUST_CHECK;

/*
 * The periodic sweep, one chunk: re-examines up to batch_max stored unmatched records with id >
 * *after_id (skipping rows another instance holds), matches what now fits, and sends those
 * waiting more than review_after_business_days before `today` (local day number) to review
 * (aged_unmatched). *after_id advances; *more is false once the end was reached.
 */
enum tp_status reconcile_sweep_chunk(struct reconcile *r, int32_t today, int64_t *after_id,
                                     bool *more, struct recon_tally *tally,
                                     struct tp_error *err) TP_MUST_CHECK;

/* Adds a tally to the counters (recon.*). */
void recon_tally_count(const struct recon_tally *t, struct counters *c);

/* ---- worker.c: the consumer loop, the sweep and the relay ---- */

/* Configuration (main.c's table; the README's table is its --help-config output). */
struct recon_config {
    char *group;
    char *receiving_accounts;
    int64_t early_days;
    int64_t review_after_business_days;
    char *holidays_file;
    int64_t aging_sweep_ms;
    int64_t batch_max;
    int64_t tx_lanes;
    int64_t relay_poll_ms;
    char *pg_conninfo;
    char *redis_host;
    int64_t redis_port;
    int64_t max_record_fen;
};

/*
 * Runs the worker until SIGTERM/SIGINT: consumes the four topics in the group, reconciles each
 * polled batch in one transaction and stores its offsets after the commit, dead-letters what
 * cannot be decoded, sweeps unmatched records every aging_sweep_ms, and runs the outbox relay
 * that publishes PaymentMatched. Returns the process exit code (0 after a clean stop).
 */
int worker_run(const struct recon_config *cfg, const struct recon_accounts *accounts,
               const struct aging_calendar *calendar);

/* ---- claim.c: crediting orders, the decisions and the PaymentMatched events ---- */

/* One match to apply: the claim of its order, then its event. Strings are borrowed. */
struct claim_match {
    int64_t record_id;
    int64_t order_id;
    const char *order_code;
    const char *account_id;
    int64_t order_amount_fen;
    int64_t credited_fen;
    bool amount_mismatch;
    int rule; /* Topup__V1__MatchRule */
    const char *receiving_account;
    const char *bank_txn_id;
    const char *value_date;
};

/* Registers claim.c's statements on c (also used by topupctl review). */
enum tp_status claim_prepare(struct pg_conn *c, struct tp_error *err) TP_MUST_CHECK;

/*
 * Claims the orders of m[0..n): pending -> processing with matched_at, credited_fen and the
 * amount_mismatch flag, conditionally on still being pending. *claimed is how many were; fewer
 * than n means a concurrent cancel, expiry or match won for the others: the caller must not go
 * on with this transaction as it is.
 */
enum tp_status claim_orders(struct pg_conn *c, const struct claim_match *m, size_t n,
                            size_t *claimed, struct tp_error *err) TP_MUST_CHECK;

/* Writes one PaymentMatched per match to the outbox (source "reconciliation"), in order. */
enum tp_status claim_write_events(struct pg_conn *c, const struct claim_match *m, size_t n,
                                  struct tp_error *err) TP_MUST_CHECK;

/* One decision row (match_decisions) and possibly a review item. */
struct claim_decision {
    int64_t record_id;
    int64_t order_id;    /* 0: none */
    const char *outcome; /* matched, review, unmatched, ignored, refund, dismissed */
    const char *rule;    /* reference, name_amount, manual, none */
    const char *details; /* borrowed JSON object text of details_len bytes; NULL: {} */
    size_t details_len;
    const char *decided_by;    /* "reconciliation" or the support user */
    const char *review_reason; /* NULL: no review item */
    size_t record_index_;      /* private to the caller (reconcile.c's bookkeeping) */
};

/* Inserts the decisions and their review items (an open item per record and reason at most). */
enum tp_status claim_write_decisions(struct pg_conn *c, const struct claim_decision *d, size_t n,
                                     struct tp_error *err) TP_MUST_CHECK;

/* ---- review.c: the review queue as support works it (topupctl review) ---- */

enum review_action { REVIEW_MATCH, REVIEW_REFUND, REVIEW_IGNORE };

/* A support action on one review item; strings borrowed. */
struct review_request {
    int64_t review_id;
    enum review_action action;
    const char *order_code; /* REVIEW_MATCH only */
    const char *actor;      /* who: 1..100 characters */
    const char *reason;     /* why: 1..1000 characters */
    /* MATCH of an above_ceiling item: support confirms the amount (audited in the decision);
     * without it such an item is refused. */
    bool over_ceiling;
    /* MATCH: the ledger's LEDGER_MAX_RECHARGE_FEN; a transfer above it is never matched (the
     * ledger would refuse the credit and leave the order processing): refund it instead. */
    int64_t max_credit_fen;
};

/*
 * Applies the action in one transaction, audited in review_actions. MATCH claims the order through
 * claim_orders() and writes the same PaymentMatched (rule manual) through claim_write_events().
 * TP_NOT_FOUND: no such item or order. TP_CONFLICT: the item is resolved already, the order is not
 * pending, or the action does not fit the item (an amount_mismatch item is credited already: it
 * can only be ignored, i.e. acknowledged; an above_ceiling item is matched only with over_ceiling;
 * nothing above max_credit_fen is ever matched). Details in err. On TP_OK, summary (if non-NULL)
 * gets a one-line description of what was done.
 */
enum tp_status review_apply(struct pg_conn *c, const struct review_request *req, char *summary,
                            size_t summary_len, struct tp_error *err) TP_MUST_CHECK;

/* Longest list `review list` prints. */
#define REVIEW_LIST_MAX 1000

struct review_filter {
    bool all;           /* resolved items too */
    const char *reason; /* NULL: every reason */
    int limit;          /* 1..REVIEW_LIST_MAX */
};

/* Prints review items, oldest open first, one per line (tab-separated, with a header). */
enum tp_status review_list(struct pg_conn *c, const struct review_filter *f, FILE *out,
                           struct tp_error *err) TP_MUST_CHECK;

/* Prints one item: the record, the decisions with their details, the candidates, the actions. */
enum tp_status review_show(struct pg_conn *c, int64_t review_id, FILE *out,
                           struct tp_error *err) TP_MUST_CHECK;

/* ---- payers.c: an account's verified payer names (account_payers; topupctl payers) ---- */

/* Who and why, for every change of account_payers; strings borrowed. */
struct payer_change {
    const char *account_id;   /* 1..64 characters */
    const char *display_name; /* the name as the bank shows it; 1..200 bytes of UTF-8 */
    const char *by;           /* who: 1..100 characters */
    const char *reason;       /* why: 1..1000 characters */
};

/*
 * Adds display_name (normalised with names_normalize, as rule 2 compares it) as a verified payer
 * of the account, audited. TP_INVALID: a bad field, or a name that normalises to nothing (an
 * intermediary only). TP_CONFLICT: the account has that name already. On TP_OK *id (if non-NULL)
 * is the new row's id.
 */
enum tp_status payers_add(struct pg_conn *c, const struct payer_change *p, int64_t *id,
                          struct tp_error *err) TP_MUST_CHECK;

/* Removes the active payer display_name (as normalised) of the account: stamps removed_by/at/
 * reason, deletes nothing. TP_NOT_FOUND: no such active payer. */
enum tp_status payers_remove(struct pg_conn *c, const struct payer_change *p,
                             struct tp_error *err) TP_MUST_CHECK;

/* Prints the payers of account_id (NULL: every account), tab-separated with a header; removed
 * ones too when all. */
enum tp_status payers_list(struct pg_conn *c, const char *account_id, bool all, FILE *out,
                           struct tp_error *err) TP_MUST_CHECK;

#endif
