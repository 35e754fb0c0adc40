/* Ledger integration tests: the ledger as a child process, events in, PostgreSQL/Kafka/Redis out.
 * The h_* names are the tests' vocabulary; harness.c implements them on tests/lib (testlib.h).
 */
#ifndef LEDGER_HARNESS_H
#define LEDGER_HARNESS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "topup/ids.h"

#define H_WAIT_MS   60000 /* longest wait for the ledger to reach a state */
#define H_PROCS_MAX 8
#define H_DLQ_MAX   256
#define H_FLOWS_MAX 4096
#define H_ID_MAX    96 /* = TL_ID_MAX: h_id is tl_id */

/* Fails the test: prints, the tails of every started ledger's log, kills every child, exits 1. */
void h_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            h_fail("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);                          \
        }                                                                                          \
    } while (0)
#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            h_fail(__VA_ARGS__);                                                                   \
        }                                                                                          \
    } while (0)
void h_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* argv: <test> <ledger binary> <topupctl binary>. Connects to PostgreSQL and Kafka. */
void h_init(int argc, char **argv, const char *name);
/* A random suffix unique to this run, for account ids, order codes and groups. */
const char *h_sfx(void);
/* Writes "<prefix>-<sfx>" into out (H_ID_MAX). Returns out. */
char *h_id(char *out, const char *prefix);
void h_event_id(char out[UUID_STR_LEN]);

/* ---- PostgreSQL (the test's own database) ---- */
PGresult *h_sql(const char *sql, int n, const char *const *params);
void h_exec(const char *sql, int n, const char *const *params);
int64_t h_i64(const char *sql, int n, const char *const *params);
/* Polls sql (one bigint) until it equals want or H_WAIT_MS passes; fails naming what. */
void h_wait_i64(const char *what, const char *sql, int n, const char *const *params, int64_t want);
int64_t h_balance(const char *account);
/* Fails unless every flow of account has balance_after = running sum of amounts, in id order. */
void h_check_chain(const char *account);
void h_order(const char *code, const char *account, int64_t amount_fen, const char *status);

/* ---- Kafka ---- */
struct h_sent {
    char topic[64];
    int32_t partition;
    int64_t offset;
};
/* Produces and waits for the acknowledgement; returns where it landed. */
struct h_sent h_send_raw(const char *topic, const char *key, const void *payload, size_t len);
struct h_sent h_send_usage(const char *eid, const char *account, const char *req, int64_t amount);
/* kind: 1 usage refund, 2 bank payout. */
struct h_sent h_send_refund(const char *eid, const char *account, const char *refund_id,
                            int64_t amount, int kind);
/*
 * A PaymentMatched as reconciliation sends it: first what reconciliation records in the same
 * transaction (h_record_match: the bank record eid and the match decision naming it, when the
 * order exists and has no matched decision yet), then the event naming that record.
 */
struct h_sent h_send_matched(const char *eid, const char *account, const char *code,
                             int64_t credited, int64_t order_amount);
/* The bank account of every record the harness records and every PaymentMatched it sends. */
#define H_RECEIVING_ACCOUNT "6222000000000001"
/* A statement record bank_txn_id of amount_fen and the order's match decision naming it. */
void h_record_match(const char *code, const char *bank_txn_id, int64_t amount_fen);
/* A PaymentMatched naming bank record bank_txn_id, with nothing recorded (a forgery). */
struct h_sent h_send_matched_unrecorded(const char *eid, const char *account, const char *code,
                                        int64_t credited, int64_t order_amount,
                                        const char *bank_txn_id);
/* RefundIssued of a usage: kind 1 naming the usage request id it refunds ("" for none). */
struct h_sent h_send_usage_refund(const char *eid, const char *account, const char *refund_id,
                                  int64_t amount, const char *usage_request_id);
/*
 * Notes where account.flows and the .dlq topics end now; h_dlq_count and h_flows_find then
 * read only what came after (the shared topics hold every earlier run's messages).
 */
void h_mark_topics(void);
/*
 * Commits, for a new group, the current end of the ledger's input topics: a ledger started in it
 * sees only events produced from now on (not the whole history of the shared topics), including
 * the ones produced before it starts.
 */
void h_group_at_end(const char *group);
/* Committed offset of group on topic/partition (-1 when none). */
int64_t h_committed(const char *group, const char *topic, int32_t partition);

/*
 * Reads <orig_topic>.dlq (from the mark) until `want` dead letters with exactly this key, a reason
 * containing reason_part and dlq.original.topic = orig_topic are seen, or H_WAIT_MS passes; returns
 * how many were seen (at most want). Other ledgers running at the same time see the same shared
 * topics and may dead-letter the same messages too: count "at least".
 */
int h_dlq_count(const char *orig_topic, const char *key, const char *reason_part, int want);

/* A flow as committed (flow_id, source_event_id set by the caller) and as found on the topic. */
struct h_flow {
    int64_t flow_id;
    char source_event_id[UUID_STR_LEN];
    /* filled from the first AccountFlowRecorded found: */
    char account[H_ID_MAX];
    char event_id[UUID_STR_LEN];
    int flow_type;
    int64_t amount_fen, balance_after_fen;
    int seq; /* position among the messages read, -1 when not found */
};
/*
 * Reads account.flows (from the mark), keys starting with key_prefix, until every wanted flow is
 * found or H_WAIT_MS passes. Returns how many were found.
 */
int h_flows_find(const char *key_prefix, struct h_flow *want, int n);

/* ---- Redis ---- */
/* HGET <the test's key prefix><account> field into out; false when missing. */
bool h_cached(const char *account, const char *field, char *out, size_t len);

/* ---- the ledger process ---- */
struct tl_proc;
/* A started ledger: a tests/lib child (log in the test's log directory, killed on failure). */
struct h_proc {
    struct tl_proc *proc;
};
/* Starts the ledger with LEDGER_GROUP=group plus env ("K=V", NULL-terminated, may be NULL). */
void h_ledger_start(struct h_proc *p, const char *name, const char *group, const char *const *env);
/* Sends sig and waits up to timeout_ms; returns the exit code, 128+signal when killed. */
int h_ledger_stop(struct h_proc *p, int sig, int timeout_ms);
/* Its pid while it runs, else 0. */
pid_t h_ledger_pid(const struct h_proc *p);
/* Sum of integer field `field` over the log lines of p whose msg is `msg`. */
int64_t h_log_sum(const struct h_proc *p, const char *msg, const char *field);
/* Lines of p's log containing s. */
int h_log_count(const struct h_proc *p, const char *s);

/* Runs topupctl with args (NULL-terminated); stdout into out (cut at len); returns the exit
 * code, -1 when it ran out of time. */
int h_topupctl(char *out, size_t len, const char *const *args);

#endif
