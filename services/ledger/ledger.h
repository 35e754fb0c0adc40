/* The ledger worker's shared types and the interfaces between its files. */
#ifndef LEDGER_H
#define LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topup/error.h"
#include "topup/ids.h"

/* A flow's reference (order code, usage request id, refund id): printable ASCII, bounded. */
#define LEDGER_REFERENCE_MAX 128
#define LEDGER_ACCOUNT_MAX   64
/* A bank transaction id as reconciliation stores it (statement_records.bank_txn_id). */
#define LEDGER_TXN_ID_MAX 200
/* Why a message was dead-lettered; longer reasons are cut. */
#define LEDGER_REASON_MAX 256
/* Upper bound of LEDGER_BATCH_MAX: a batch's memory is about 1.5 KiB per message. */
#define LEDGER_BATCH_HARD_MAX 10000
/* Waiting usage refunds (ledger_pending_refunds) taken into one batch, beyond its messages. */
#define LEDGER_PENDING_PER_BATCH 100

/*
 * Advisory lock key ("ledgfm" in ASCII): every batch transaction holds it shared from its start,
 * the flows publisher takes it exclusively for an instant to learn up to which id flows are final.
 */
#define LEDGER_FLOWS_BARRIER_KEY "119165742884461"

/* Values equal the proto's FlowType so they can be published as they are. */
enum ledger_flow_type {
    LEDGER_FLOW_RECHARGE = 1,
    LEDGER_FLOW_CONSUME = 2,
    LEDGER_FLOW_REFUND = 3,
};

/* One money event, decoded and validated; owns its strings (no pointer into the message). */
struct ledger_event {
    char event_id[UUID_STR_LEN];
    char account_id[LEDGER_ACCOUNT_MAX + 1];
    char reference[LEDGER_REFERENCE_MAX + 1];
    enum ledger_flow_type type;
    int64_t amount_fen; /* signed effect on the balance, never 0 */
    int64_t occurred_at_ms;
    bool amount_mismatch; /* recharge only: flagged on the order */
    /* Recharge only: the bank record the match decision names (spaces removed, as stored). */
    char bank_account[LEDGER_ACCOUNT_MAX + 1];
    char bank_txn_id[LEDGER_TXN_ID_MAX + 1];
    /* Usage refund only: the reference (usage request id) of the consume flow it refunds. */
    char refund_of[LEDGER_REFERENCE_MAX + 1];
    bool usage_refund;
};

/* Per-event amount ceilings (absolute fen); above one an event is refused, never applied. */
struct ledger_limits {
    int64_t recharge_max;
    int64_t usage_max;
    int64_t refund_max;
    /* A usage refund waits this long for its usage (another topic) before it is refused. */
    int64_t refund_wait_s;
};

/* "recharge", "consume", "refund" (the account_flows.flow_type values). */
const char *ledger_flow_type_name(enum ledger_flow_type t);

/* ---- decode.c: Kafka message -> ledger_event, or the reason it goes to the dead-letter topic ----
 */

/*
 * Decodes the value of a message of `topic` (payment.matched, usage.recorded or refund.issued) and
 * checks it: envelope (event_envelope_check with an account), the Kafka key equal to the envelope's
 * account id (per-account order depends on it), a reference of 1..LEDGER_REFERENCE_MAX printable
 * ASCII characters, the amount's sign for its type. TP_INVALID with the reason in err otherwise.
 * key may be NULL (then it is refused). Nothing is allocated that outlives the call.
 */
enum tp_status decode_message(const char *topic, const void *key, size_t key_len,
                              const void *payload, size_t len, struct ledger_event *out,
                              struct tp_error *err) TP_MUST_CHECK;

/* ---- batch.c: the plan of one batch, computed from the events and what PostgreSQL holds ---- */

enum batch_outcome {
    BATCH_PENDING = 0, /* valid, not planned yet */
    BATCH_INVALID,     /* failed decoding: dead-lettered before the transaction */
    BATCH_APPLY,       /* becomes a flow */
    BATCH_DUPLICATE,   /* its event id is already a flow (or earlier in this batch): no effect */
    BATCH_REJECT,      /* valid but refused by the ledger's state: recorded and dead-lettered */
    BATCH_DEFER,       /* a usage refund whose usage has not arrived: waits in PostgreSQL */
};

/* Why a BATCH_REJECT was refused; each has its counter (refused.<name>) besides "rejected". */
enum batch_refusal {
    BATCH_REFUSED_STATE = 0,  /* e.g. an order credited already, a balance that would overflow */
    BATCH_REFUSED_PROVENANCE, /* its source is not in PostgreSQL: must stay 0 */
    BATCH_REFUSED_CEILING,    /* above the configured ceiling of its kind: must stay 0 */
    BATCH_REFUSED_CONFLICT,   /* an event id or usage request id seen before with other content */
};
#define BATCH_REFUSALS 4
/* "state", "provenance", "ceiling", "conflict". */
const char *batch_refusal_name(enum batch_refusal r);

/* Order statuses the plan distinguishes. */
enum batch_order_status {
    BATCH_ORDER_MISSING = 0,
    BATCH_ORDER_PROCESSING,
    BATCH_ORDER_OTHER, /* pending, cancelled, expired, completed */
};

struct batch_item {
    struct ledger_event ev;
    enum batch_outcome outcome;
    char reason[LEDGER_REASON_MAX];
    int64_t balance_after_fen; /* BATCH_APPLY */
    bool complete_order;       /* BATCH_APPLY recharge of an order in processing */
    bool order_not_processing; /* BATCH_APPLY recharge of an order in another status */
    bool rejected_before;      /* BATCH_REJECT found in ledger_rejections (redelivery) */
    /* BATCH_REJECT whose event id is a flow or a rejection already, with other content: dead-
     * lettered only (the event id's row stays what it was). */
    bool conflict;
    enum batch_refusal refusal; /* BATCH_REJECT */
    int msg_index;              /* position in the polled Kafka batch, -1 when from_pending */
    /* A usage refund read from ledger_pending_refunds (deferred by an earlier batch). */
    bool from_pending;
    int64_t pending_age_s;
    int32_t src_partition; /* from_pending: where it came from on refund.issued */
    int64_t src_offset;
    /* A bank payout whose reference is a refund request's refund_id (read by apply.c): the
     * request's account, amount, state, reserving event id and credit lot. */
    bool payout_request;
    char payout_account[LEDGER_ACCOUNT_MAX + 1];
    int64_t payout_amount_fen;
    char payout_state[16];
    char payout_event_id[UUID_STR_LEN];
    int64_t payout_lot_id;
    /* "<account>\x1f<consume reference>" of a consume or usage refund, "" otherwise. */
    char usage_key[LEDGER_ACCOUNT_MAX + 1 + LEDGER_REFERENCE_MAX + 1];
};

struct batch_account {
    const char *account_id; /* points into an item */
    /* Its credit lots (lots.c): read ones at lots[lot_first .. lot_first + lot_n - 1] (oldest
     * first), then those its recharges open in this batch, linked oldest first from new_first. */
    int lot_first, lot_n;
    int new_first, new_last; /* -1 when none */
    bool loaded;             /* row read (and locked) */
    int64_t balance_fen;     /* as read */
    int64_t version;         /* as read */
    int64_t new_balance_fen;
    int64_t new_version; /* after the update (filled by apply.c) */
    int flows;           /* flows applied in this batch */
};

struct batch_event_key {
    const char *event_id; /* points into an item */
    bool is_flow;         /* already an account flow */
    bool is_rejection;    /* already rejected (ledger_rejections) */
    char rejection_reason[LEDGER_REASON_MAX];
    /* What the flow or rejection holds, to tell a redelivery from a reused event id. */
    char account_id[LEDGER_ACCOUNT_MAX + 1];
    enum ledger_flow_type type;
    int64_t amount_fen;
    char reference[LEDGER_REFERENCE_MAX + 1];
};

struct batch_order {
    const char *code; /* points into an item */
    enum batch_order_status status;
    char account_id[LEDGER_ACCOUNT_MAX + 1];
    char credited_by[UUID_STR_LEN]; /* event id of an existing recharge flow, "" if none */
    /* The order's match decision (outcome matched) and the bank record it names. */
    bool has_decision;
    int64_t decision_id;
    char decision_bank_account[LEDGER_ACCOUNT_MAX + 1];
    char decision_bank_txn_id[LEDGER_TXN_ID_MAX + 1];
    int64_t decision_amount_fen;
};

/* A usage (consume flow) named by a consume's or a usage refund's account and reference. */
struct batch_usage {
    const char *key;                /* an item's usage_key */
    char consumed_by[UUID_STR_LEN]; /* event id of the existing consume flow, "" if none */
    int64_t consumed_fen;           /* > 0: what that flow took */
    int64_t refunded_fen;           /* >= 0: usage refunds of it already committed */
};

/* A credit lot of one of the batch's accounts: read from credit_lots, or opened by a recharge. */
struct batch_lot {
    int64_t id;  /* credit_lots.id; 0 for a lot opened in this batch */
    int item;    /* opened in this batch: the recharge item; -1 for a lot read */
    int account; /* index into accounts */
    int next;    /* opened in this batch: the account's next newer one, -1 */
    int prev;    /* opened in this batch: the account's next older one, -1 */
    int64_t paid_fen;
    int64_t left_read_fen; /* as read (0 for an opened one) */
    int64_t left_fen;      /* after the plan */
};

/* Everything one batch needs; sized once for LEDGER_BATCH_MAX items and reused. */
struct batch {
    struct batch_item *items;
    int n, max;   /* items: the polled messages (at most max), then waiting usage refunds */
    int n_polled; /* items before the waiting usage refunds (set by apply_batch) */
    struct batch_account *accounts; /* sorted by account_id, unique */
    int n_accounts;
    struct batch_event_key *keys; /* sorted by event_id, unique */
    int n_keys;
    struct batch_order *orders; /* recharge order codes, sorted, unique */
    int n_orders;
    struct batch_usage *usages; /* usage keys of consumes and usage refunds, sorted, unique */
    int n_usages;
    struct ledger_limits limits;
    /* Totals of the last plan. */
    int applied[4]; /* by ledger_flow_type */
    int duplicates, rejects, invalid, deferred;
    int refused[BATCH_REFUSALS]; /* rejects by refusal */
    /* Indexes of the BATCH_APPLY items in the order their balances were computed: flows are
     * inserted in this order, so ids follow balance_after. */
    int *plan_order;
    int n_planned;
    /* Credit lots of the batch's accounts (lots.c): n_lots_read read, then those opened. */
    struct batch_lot *lots;
    int n_lots, n_lots_read, lots_cap;
    /* What the plan could not draw from or give back to lots (lots out of step with the
     * balance: topupctl verify lots_left_mismatch). 0 unless the database was changed by hand. */
    int64_t lots_short_fen;
};

/* limits: the ceilings batch_plan applies (every one > 0). */
void batch_init(struct batch *b, int max, const struct ledger_limits *limits);
void batch_deinit(struct batch *b);
/* Empties the batch (keeps its memory). */
void batch_reset(struct batch *b);
/* Returns the next free item, zeroed, or NULL when the batch holds max items. Owned by b. */
struct batch_item *batch_add(struct batch *b);
/* The same for a waiting usage refund, beyond max (up to LEDGER_PENDING_PER_BATCH more). */
struct batch_item *batch_add_pending(struct batch *b);

/*
 * Builds the sorted indexes (accounts, event ids, recharge order codes) of the valid items and
 * forgets every database fact and earlier plan, so a transaction attempt can start again.
 */
void batch_index(struct batch *b);

/* Database facts, recorded by apply.c while it reads under locks. Unknown keys are ignored. */
struct batch_account *batch_find_account(struct batch *b, const char *account_id);
struct batch_event_key *batch_find_key(struct batch *b, const char *event_id);
struct batch_order *batch_find_order(struct batch *b, const char *code);
struct batch_usage *batch_find_usage(struct batch *b, const char *key);

/*
 * Decides every valid item's outcome in batch order: duplicates (known event id with the same
 * content, or repeated in the batch), rejections (an amount above its ceiling; a reused event id
 * with other content; a recharge of an unknown order, of another account's order, of an order
 * without a match decision naming this bank record and amount, of an order already credited by
 * another event; a usage request id charged before under another event id; a usage refund of no
 * usage, or above what is left of it; a balance that would overflow; an event rejected before),
 * deferrals (a usage refund whose usage is not known yet, until limits.refund_wait_s), and for
 * the rest the balance after each flow, per account in batch order, except that usage refunds
 * come after everything else of the batch (their usage may be later in the batch: another
 * topic, so no order between them is lost). Needs every account of the batch loaded. Fills the
 * totals and plan_order.
 */
void batch_plan(struct batch *b);

/* ---- lots.c: credit lots, what is left of each recharge (issue #14 item 1) ---- */

/* Forgets the lots read and planned (keeps the memory). */
void lots_reset(struct batch *b);
/* Records a lot read under the account locks; rows must come grouped by account, oldest first. */
void lots_add_read(struct batch *b, const char *account_id, int64_t id, int64_t paid_fen,
                   int64_t left_fen);
/* Starts a plan from the lots as read (batch_plan calls it; a retried plan starts again). */
void lots_begin(struct batch *b);
/*
 * Moves lots for applied item i (batch_plan calls it in plan order) by the change of its
 * account's positive balance part. A recharge opens a lot holding what it raised (a debt is paid
 * first); a bank payout naming a refund request draws from that request's lot; any other fall
 * draws from the oldest lots first; a rise that is no recharge (usage refund) gives back to the
 * newest lots with room first. Each account's lots left then add up to max(balance, 0), unless
 * they were out of step before (lots_short_fen).
 */
void lots_apply(struct batch *b, int i);
/* What the plan has left so far in lot lot_id of account_id; 0 if it was not read (empty). */
int64_t lots_left_now(struct batch *b, const char *account_id, int64_t lot_id);

/* ---- apply.c: the batch transaction in PostgreSQL ---- */

struct pg_conn;

/* Registers the prepared statements of the batch transaction on c. */
enum tp_status apply_prepare(struct pg_conn *c, struct tp_error *err) TP_MUST_CHECK;

/*
 * Applies b in one transaction (batch_index, lock, read, batch_plan, write), retrying the whole
 * transaction on TP_RETRY up to max_attempts. On TP_OK the plan in b is what was committed and
 * each touched account has its new balance and version. source_topic etc. of rejected items are
 * taken from topics/partitions/offsets indexed by item msg_index (may be NULL).
 */
struct apply_source {
    const char *topic;
    int32_t partition;
    int64_t offset;
};
enum tp_status apply_batch(struct pg_conn *c, struct batch *b, const struct apply_source *sources,
                           int max_attempts, struct tp_error *err) TP_MUST_CHECK;

/*
 * The sweep of waiting usage refunds (ledger_pending_refunds): picks at most accounts_max accounts
 * with a refund that can be decided now (its usage charged, or its wait over), then in one
 * transaction under the same rules as a batch (apply_batch: the accounts locked in one go, in one
 * order) reads up to b->max of their decidable refunds and decides them: applied (capped by what
 * is left of their usage) or refused. b is reset first; on TP_OK it holds what was committed
 * (every item from_pending; b->n == 0 when there was nothing to decide).
 */
enum tp_status apply_sweep(struct pg_conn *c, struct batch *b, int accounts_max, int max_attempts,
                           struct tp_error *err) TP_MUST_CHECK;

struct counters;

/* ---- flows_publisher.c: account.flows from the flows table (its own outbox) ---- */

struct flows_publisher;

/*
 * Connects to PostgreSQL (conninfo) and creates an idempotent producer of its own. Each round,
 * inside one transaction holding a cluster-wide advisory lock (one publisher at a time, so flows
 * leave in id order, which per account is event order), it produces up to batch_max unpublished
 * flows as AccountFlowRecorded (key: account id) and sets published_at on those acknowledged.
 * Rounds run when kicked after a commit and every poll_ms. NULL with err on failure; the caller
 * owns the result.
 */
struct flows_publisher *flows_publisher_new(const char *conninfo, int batch_max, int poll_ms,
                                            struct counters *counters, struct tp_error *err);
enum tp_status flows_publisher_start(struct flows_publisher *p, struct tp_error *err) TP_MUST_CHECK;
/* Wakes the publisher: flows were committed. NULL is fine. */
void flows_publisher_kick(struct flows_publisher *p);
/* Publishes what is committed (bounded), stops the thread, flushes and frees. NULL is fine. */
void flows_publisher_free(struct flows_publisher *p);

/* ---- balance_cache.c: real-time balances in Redis, written by a thread of their own ---- */

/*
 * Key <key_prefix><account> (default BALANCE_CACHE_KEY_PREFIX): a hash {balance_fen, version}.
 * version is accounts.balance_version; a write with a version not newer than the stored one is
 * refused by the script, so the cache never goes back in time. PostgreSQL stays the truth: a
 * missing key means "read PostgreSQL". A refused write is checked against PostgreSQL: a stored
 * value PostgreSQL never had (a version beyond its own, the same version with another balance,
 * not a number) is replaced by PostgreSQL's and counted (cache.poison_repaired).
 */
#define BALANCE_CACHE_KEY_PREFIX  "topup:balance:"
#define BALANCE_CACHE_PREFIX_MAX  100
#define BALANCE_CACHE_ACCOUNT_MAX LEDGER_ACCOUNT_MAX

struct balance_cache;

/*
 * Starts the writer thread (Redis at host:port, NULL/0 for REDIS_HOST/REDIS_PORT). At most
 * pending_max accounts wait for Redis (newest balance per account); beyond that updates are
 * dropped and counted (cache.dropped). ttl_s > 0 sets an expiry on every written key.
 * pg_conninfo (copied) is where the thread reads the truth after a refused write.
 * Never fails; the caller owns the result: balance_cache_free().
 */
struct balance_cache *balance_cache_new(const char *host, int port, const char *key_prefix,
                                        size_t pending_max, int ttl_s, const char *pg_conninfo,
                                        struct counters *counters);

/* Queues the balance of an account after a commit; never blocks on Redis. NULL bc is fine. */
void balance_cache_put(struct balance_cache *bc, const char *account, int64_t balance_fen,
                       int64_t version);

/* Updates dropped so far at the pending maximum. */
int64_t balance_cache_dropped(struct balance_cache *bc);

/* Makes one last bounded attempt to write what is pending, stops the thread and frees. */
void balance_cache_free(struct balance_cache *bc);

/* ---- worker.c: the consume loop; main.c wires it up ---- */

/* Commit latencies are kept per millisecond up to this; slower ones share the last bucket. */
#define LEDGER_COMMIT_HIST_MS 10000

struct ledger_config {
    const char *group;
    int64_t batch_max;
    int64_t batch_wait_ms;
    int64_t tx_attempts;
    int64_t dlq_timeout_ms;
    int64_t publish_batch_max;
    int64_t publish_poll_ms;
    int64_t refund_sweep_ms;
    int64_t cache_pending_max;
    int64_t cache_ttl_s;
    const char *cache_key_prefix;
    struct ledger_limits limits;
    const char *pg_conninfo;
    const char *redis_host;
    int64_t redis_port;
    const char *log_level;
};

struct ledger_stats {
    int64_t batches, messages, applied, duplicates, rejected, invalid;
    int64_t commit_hist[LEDGER_COMMIT_HIST_MS + 1];
};

/* The worker's one state struct. */
struct ledger {
    struct ledger_config cfg;
    struct pg_conn *pg;
    struct kafka_consumer *consumer;
    struct kafka_producer *dlq;
    struct counters *counters;
    struct balance_cache *cache;
    struct flows_publisher *publisher;
    struct batch batch;  /* the polled messages */
    struct batch single; /* one event at a time, when PostgreSQL refuses a whole batch */
    struct kafka_message *msgs;
    struct apply_source *sources;
    struct ledger_stats stats;
};

/*
 * Polls, applies and acknowledges batches until a stop is requested; the batch in hand is
 * finished (or left unacknowledged for redelivery when PostgreSQL or Kafka cannot take it).
 */
void worker_run(struct ledger *l);

/* Logs the totals and the commit latency percentiles ("ledger stats"). */
void worker_log_stats(const struct ledger *l, const char *msg);

#endif
