/* PostgreSQL wrapper over libpq: reconnect with backoff, prepared statements, classified errors. */
#ifndef TOPUP_PG_H
#define TOPUP_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include "topup/error.h"

struct pg_conn;

/*
 * Connects with conninfo (libpq string or URI), retrying with exponential backoff (100 ms doubling
 * to 5 s) until connected or connect_timeout_ms passes. Caller owns the result: pg_conn_free().
 */
struct pg_conn *pg_conn_new(const char *conninfo, int connect_timeout_ms, struct tp_error *err);
void pg_conn_free(struct pg_conn *c);

/* The underlying PGconn, for COPY, LISTEN and pipeline mode. Owned by c. */
PGconn *pg_conn_raw(struct pg_conn *c);

/*
 * Registers a prepared statement: prepared now and again after every reconnect.
 * name must be unique per connection; sql uses $1..$n.
 */
enum tp_status pg_prepare(struct pg_conn *c, const char *name, const char *sql, int nparams,
                          struct tp_error *err) TP_MUST_CHECK;

/*
 * Executes a registered statement with text parameters (NULL entries are SQL NULL).
 * On success *res (if res is non-NULL) is the result, owned by the caller: PQclear() it.
 * Errors are classified: TP_RETRY (connection lost, serialization failure, deadlock, admin
 * shutdown, lock timeout), TP_DUPLICATE (unique_violation), TP_INVALID (check, not-null, foreign
 * key, data exception), TP_FATAL (everything else). A lost connection is re-established (with
 * backoff, bounded) before returning TP_RETRY, unless inside a transaction, where the caller must
 * restart it.
 */
enum tp_status pg_exec_prepared(struct pg_conn *c, const char *name, int nparams,
                                const char *const *params, PGresult **res,
                                struct tp_error *err) TP_MUST_CHECK;

/* Same for ad-hoc SQL with parameters (every value is a parameter, never spliced into sql). */
enum tp_status pg_exec(struct pg_conn *c, const char *sql, int nparams, const char *const *params,
                       PGresult **res, struct tp_error *err) TP_MUST_CHECK;

/*
 * Same as pg_exec with per-parameter lengths and formats (libpq PQexecParams): formats[i] = 1
 * sends values[i] as binary of lengths[i] bytes (bytea, e.g. a protobuf payload); 0 or formats
 * NULL means text (lengths ignored). Results are in text format (bytea as "\\x..." hex).
 */
enum tp_status pg_exec_bin(struct pg_conn *c, const char *sql, int nparams,
                           const char *const *values, const int *lengths, const int *formats,
                           PGresult **res, struct tp_error *err) TP_MUST_CHECK;

/*
 * pg_commit: a transaction in which a statement failed commits nothing; COMMIT then reports it
 * (TP_RETRY if that failure was retryable, else TP_FATAL) instead of libpq's silent ROLLBACK.
 * A connection lost during COMMIT gives TP_RETRY although the outcome is unknown: work retried
 * by pg_transaction must be idempotent (unique keys), which every money path here is.
 */
enum tp_status pg_begin(struct pg_conn *c, struct tp_error *err) TP_MUST_CHECK;
enum tp_status pg_commit(struct pg_conn *c, struct tp_error *err) TP_MUST_CHECK;
/* Never fails from the caller's point of view; a broken connection is reset. */
void pg_rollback(struct pg_conn *c);

/*
 * Runs fn inside BEGIN/COMMIT, retrying the whole transaction on TP_RETRY up to max_attempts
 * with backoff. fn returns a status; anything but TP_OK rolls back and, unless TP_RETRY, is
 * returned as is.
 */
typedef enum tp_status pg_tx_fn(struct pg_conn *c, void *ctx, struct tp_error *err);
enum tp_status pg_transaction(struct pg_conn *c, pg_tx_fn *fn, void *ctx, int max_attempts,
                              struct tp_error *err) TP_MUST_CHECK;

/* Classifies a SQLSTATE (5 characters; NULL means connection trouble). */
enum tp_status pg_classify_sqlstate(const char *sqlstate);

/* Cheap liveness check (SELECT 1); reconnects if needed. */
bool pg_ping(struct pg_conn *c);

/* Result helpers: value as int64 (0 if NULL), as string ("" if NULL). */
int64_t pg_get_i64(const PGresult *r, int row, int col);
const char *pg_get_str(const PGresult *r, int row, int col);
bool pg_is_null(const PGresult *r, int row, int col);

#endif
