/*
 * Helpers of the reconciliation integration tests and benchmark: the worker as a child process,
 * orders written straight into PostgreSQL (as order-intake would), statement records and order
 * events produced to the dev broker, and polling PostgreSQL for the outcome.
 */
#ifndef RT_H
#define RT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "topup/ids.h"

#define RT_MS_PER_DAY (86400LL * 1000)

struct pg_conn;
struct kafka_producer;

struct rt {
    struct pg_conn *pg;
    struct kafka_producer *producer;
    char suffix[17];  /* random hex: every id of the run carries it */
    char account[32]; /* the run's own receiving account (digits) */
    char group[64];   /* the worker's consumer group */
    pid_t worker;
    int failures;
    /*
     * Provenance, as statement-import records it: every rt_record() is first recorded in
     * statement_import_records under the run's import (statement_imports, status completed,
     * created on the first record). With defer_records, records are held and recorded all in one
     * statement by rt_flush() before they are produced (the benchmark's 100,000).
     */
    bool defer_records;
    int64_t import_id;
    int seq;
    struct rt_pending *pending;
    size_t n_pending, cap_pending;
};

/* Connects to the stack from the environment (with-stack.sh). Exits 1 when it cannot. */
void rt_init(struct rt *t, const char *name);
void rt_free(struct rt *t);

/* Reports a failed check (and counts it); returns cond. */
bool rt_check(struct rt *t, bool cond, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Starts TOPUP_BUILD_DIR/services/reconciliation/reconciliation with the stack's environment,
 * RECON_GROUP = t->group, RECON_RECEIVING_ACCOUNTS = t->account unless env overrides them
 * (env: "NAME=value" strings, NULL-terminated; may be NULL). Its log goes to log_path (appended).
 */
void rt_worker_start(struct rt *t, const char *const *env, const char *log_path);

/* Sends sig to the worker and waits up to timeout_ms; returns its exit code, 128+signal if killed,
 * -1 if it did not end (then it is killed). */
int rt_worker_stop(struct rt *t, int sig, int timeout_ms);

/* The Asia/Shanghai date `days` days from today, "YYYY-MM-DD" in out[11]. */
void rt_date(int days, char out[11]);
int64_t rt_now_ms(void);

/* Inserts an order (remitter_name_norm computed with names_normalize). Returns its id. */
int64_t rt_order(struct rt *t, const char *code, const char *account_id, int64_t amount_fen,
                 const char *name, int64_t created_ms, int64_t expires_ms, const char *status);

/* Produces TopUpRequested for an order (the fields are what order-intake publishes). */
void rt_requested(struct rt *t, const char *code, const char *account_id, int64_t amount_fen,
                  const char *name, int64_t created_ms, int64_t expires_ms);

struct rt_record {
    const char *txn_id;
    const char *receiving_account; /* NULL: t->account */
    int64_t amount_fen;            /* signed as on the statement */
    const char *value_date;        /* NULL: today */
    const char *name;
    const char *remittance;
    const char *currency; /* NULL: CNY */
    bool reversal;
    /* The attack: produced straight to Kafka, no import recorded (the worker must refuse it). */
    bool unrecorded;
};

/*
 * Records the record's provenance (unless r->unrecorded) and produces the BankStatementRecord
 * (key: the receiving account, as statement-import does); with t->defer_records both wait for
 * rt_flush().
 */
void rt_record(struct rt *t, const struct rt_record *r);

/* Produces raw bytes to a topic (for dead-letter tests). */
void rt_raw(struct rt *t, const char *topic, const char *key, const void *payload, size_t len);

/*
 * Makes name a verified payer of account_id (rule 2), through the same code as `topupctl payers
 * add` (payers_add, recon_core).
 */
void rt_payer(struct rt *t, const char *account_id, const char *name);

/* Records and produces the deferred records, then waits for every message to be acknowledged. */
void rt_flush(struct rt *t);

/*
 * First cell of the query's first row, copied into out (out_len bytes); "" when no row, "<error>"
 * on an error. Parameters are text.
 */
const char *rt_scalar(struct rt *t, char *out, size_t out_len, const char *sql, int n,
                      const char *const *params);

/* Polls the query until its first cell equals want or timeout_ms passes; true when it did. */
bool rt_wait(struct rt *t, int timeout_ms, const char *want, const char *sql, int n,
             const char *const *params);

/* Runs TOPUP_BUILD_DIR/services/topupctl/topupctl with args; returns its exit code. */
int rt_topupctl(const char *const *args, char *out, size_t out_len);

/*
 * Reads topic from the beginning of every partition (no consumer group: assign()) until fn returns
 * true for a message or timeout_ms passes. Returns whether fn accepted one.
 */
typedef bool rt_message_fn(void *ctx, const char *key, size_t key_len, const void *payload,
                           size_t len);
bool rt_find(const char *topic, rt_message_fn *fn, void *ctx, int timeout_ms);

/* A counter's total in Redis (topup:ctr:reconciliation:<name>), 0 when absent or unreachable. */
int64_t rt_counter(const char *name);

#endif
