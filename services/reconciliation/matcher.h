/*
 * Matching decisions (SPEC "Reconciliation"), pure: no I/O, no clock. Given the statement records
 * of a batch and the orders that could concern them, decides for each record: matched (rule 1
 * reference or rule 2 name + amount), review (with a reason), or unmatched. The cardinal rule:
 * never a guess; anything doubtful is review.
 */
#ifndef RECON_MATCHER_H
#define RECON_MATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topup/ids.h"

/* Reference codes looked at in one remittance text; further ones are not read. */
#define MATCHER_CODES_MAX 4
/* Candidates kept in a decision (for its details); more are only counted. */
#define MATCHER_CANDIDATES_MAX 8

enum matcher_order_status {
    MATCHER_ORDER_PENDING,
    MATCHER_ORDER_PROCESSING,
    MATCHER_ORDER_COMPLETED,
    MATCHER_ORDER_CANCELLED,
    MATCHER_ORDER_EXPIRED,
};

/* An order as the matcher sees it. Strings are borrowed (e.g. from a PGresult). */
struct matcher_order {
    int64_t id;
    const char *code;
    const char *account_id;
    int64_t amount_fen;
    const char *name_norm;
    enum matcher_order_status status;
    int64_t created_at_ms;
    int32_t created_day; /* Asia/Shanghai dates as day numbers (days.h) */
    int32_t expires_day;
    /* The order's account owns its remitter name (an active account_payers row): rule 2 only. */
    bool payer_verified;
    bool taken; /* set by the matcher: claimed by an earlier decision of this batch */
};

/* The orders of one batch with the indexes the matcher searches. */
struct matcher_orders {
    struct matcher_order *v; /* borrowed array of n orders */
    size_t n;
    size_t *by_code; /* owned: indexes into v sorted by code */
    size_t *by_key;  /* owned: sorted by (name_norm, amount_fen, created_at_ms, id) */
};

/* Indexes v[0..n) (ids must be distinct). Free the indexes with matcher_orders_deinit(). */
void matcher_orders_init(struct matcher_orders *set, struct matcher_order *v, size_t n);
void matcher_orders_deinit(struct matcher_orders *set);

/* A credit record into a receiving account, as the matcher needs it. */
struct matcher_record {
    int64_t amount_fen;    /* > 0 */
    bool currency_cny;     /* only CNY is ever matched automatically */
    const char *name_norm; /* names_normalize() of the counterparty name; "" = no usable name */
    int32_t value_day;
    /* When the worker stored the record (ms since the epoch); INT64_MAX for a record arriving in
     * this batch. An order created after it (or after the value date) is late for rule 2. */
    int64_t received_at_ms;
    int ncodes; /* valid reference codes in the remittance text (ids_refcode_find_all) */
    char codes[MATCHER_CODES_MAX][REFCODE_STR_LEN];
};

struct matcher_params {
    /* A transfer may precede its order's creation date by this many days and still be a rule-2
     * candidate; such an order is late (created after the transfer arrived): review late_order. */
    int early_days;
    int64_t max_record_fen; /* above it a record is never matched: review above_ceiling */
};

enum matcher_outcome { MATCHER_UNMATCHED, MATCHER_MATCHED, MATCHER_REVIEW };
enum matcher_rule { MATCHER_RULE_NONE, MATCHER_RULE_REFERENCE, MATCHER_RULE_NAME_AMOUNT };
enum matcher_reason {
    MATCHER_REASON_NONE,
    MATCHER_REASON_ORDER_NOT_PENDING,
    MATCHER_REASON_AMBIGUOUS,
    MATCHER_REASON_AMOUNT_MISMATCH,  /* with MATCHER_MATCHED: credited, but flagged for review */
    MATCHER_REASON_AGED_UNMATCHED,   /* set by the aging sweep, never by the matcher */
    MATCHER_REASON_ABOVE_CEILING,    /* the amount is above max_record_fen */
    MATCHER_REASON_UNVERIFIED_PAYER, /* rule 2: the name is no verified payer of the account */
    MATCHER_REASON_LATE_ORDER,       /* rule 2: the order was created after the transfer arrived */
};
/* How many reasons there are (array sizes). */
#define MATCHER_REASONS 8

struct matcher_decision {
    enum matcher_outcome outcome;
    enum matcher_rule rule;
    enum matcher_reason reason;
    /* matched: the order credited; order_not_pending: the order referenced; else NULL. */
    const struct matcher_order *order;
    int64_t credited_fen; /* matched: the amount received */
    bool amount_mismatch; /* matched by reference with an amount different from the order's */
    /* Orders considered: referenced ones (rule 1) or the rule-2 candidates in the window. */
    const struct matcher_order *candidates[MATCHER_CANDIDATES_MAX];
    int ncandidates;
    int candidates_total;
    int candidate_accounts; /* rule 2: distinct accounts among the candidates that may collect */
    const char *why;        /* short fixed text: "reference", "no_candidate", "two_orders", ... */
};

/*
 * Decides every record of a batch, in two passes: first the records whose text names an existing
 * order (rule 1), then the rest (rule 2), each in array order. A match marks its order taken,
 * so a later record of the batch cannot take it too. recs and out have n entries.
 */
void matcher_decide_batch(const struct matcher_params *p, struct matcher_orders *set,
                          const struct matcher_record *recs, size_t n,
                          struct matcher_decision *out);

/* Stable names for storage: "reference"/"name_amount"/"none", "order_not_pending", ... */
const char *matcher_rule_name(enum matcher_rule rule);
const char *matcher_reason_name(enum matcher_reason reason);
const char *matcher_outcome_name(enum matcher_outcome outcome);
/* Parses "pending", "processing", ...; false for anything else. */
bool matcher_order_status_parse(const char *s, enum matcher_order_status *out);
const char *matcher_order_status_name(enum matcher_order_status status);

#endif
