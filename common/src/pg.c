/* PostgreSQL wrapper over libpq: reconnect with backoff, prepared statements, classified errors. */
#include "topup/pg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topup/log.h"
#include "topup/mem.h"
#include "topup/signals.h"

#define PG_DEFAULT_CONNINFO  "host=127.0.0.1 port=55432 dbname=topup user=topup"
#define PG_BACKOFF_MIN_MS    100
#define PG_BACKOFF_MAX_MS    5000
#define PG_TX_BACKOFF_MIN_MS 10
#define PG_TX_BACKOFF_MAX_MS 1000
/* libpq rounds connect_timeout below 2 s up to 2 s. */
#define PG_ATTEMPT_TIMEOUT_MIN_S 2

struct pg_stmt {
    char *name;
    char *sql;
    int nparams;
};

struct pg_conn {
    PGconn *conn; /* never NULL after pg_conn_new; may be a failed connection */
    char *conninfo;
    int connect_timeout_ms;
    struct pg_stmt *stmts;
    size_t nstmts, stmts_cap;
    bool in_tx;
    uint64_t generation; /* bumped by every successful (re)connect */
    /* Status of the first failed statement of the current transaction, TP_OK if none. */
    enum tp_status tx_failure;
};

static int64_t pg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pg_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    /* A signal cuts the sleep short; the caller re-checks its deadline and the stop flag. */
    (void)nanosleep(&ts, NULL);
}

/* Cheap per-thread jitter so that conflicting transactions do not retry in lockstep. */
static int64_t pg_jitter(int64_t max)
{
    static _Thread_local uint64_t state;
    if (state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        state = ((uint64_t)ts.tv_nsec << 16) ^ (uint64_t)(uintptr_t)&state ^ 0x9E3779B97F4A7C15ULL;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return max > 0 ? (int64_t)(state % (uint64_t)max) : 0;
}

enum tp_status pg_classify_sqlstate(const char *sqlstate)
{
    if (sqlstate == NULL || strlen(sqlstate) != 5) {
        return TP_RETRY; /* no SQLSTATE: the connection broke */
    }
    if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0 ||
        strcmp(sqlstate, "55P03") == 0 || strcmp(sqlstate, "57P01") == 0 ||
        strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0 ||
        strncmp(sqlstate, "08", 2) == 0) {
        return TP_RETRY;
    }
    if (strcmp(sqlstate, "23505") == 0) {
        return TP_DUPLICATE;
    }
    if (strncmp(sqlstate, "23", 2) == 0 || strncmp(sqlstate, "22", 2) == 0) {
        return TP_INVALID;
    }
    return TP_FATAL;
}

/* libpq prints notices to stderr by default; route them into the JSON log instead. */
static void pg_notice_receiver(void *arg, const PGresult *res)
{
    (void)arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *text = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (text == NULL) {
        text = "";
    }
    if (severity != NULL && strcmp(severity, "WARNING") == 0) {
        log_warn("postgres warning", LF_S("detail", text));
    } else {
        log_debug("postgres notice", LF_S("detail", text));
    }
}

/* Copies libpq's message without its trailing newline. */
static void pg_conn_message(PGconn *conn, char *buf, size_t len)
{
    snprintf(buf, len, "%s", conn != NULL ? PQerrorMessage(conn) : "out of memory");
    /* One line for the JSON log: libpq's messages span several, with tabs. */
    for (char *p = buf; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\t') {
            *p = ' ';
        }
    }
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == ' ') {
        buf[--n] = '\0';
    }
    if (n == 0) {
        snprintf(buf, len, "connection lost");
    }
}

/* Fills err from a failed result (NULL result or broken connection: connection trouble). */
static enum tp_status pg_result_error(struct pg_conn *c, const PGresult *r, const char *what,
                                      struct tp_error *err)
{
    char msg[ERROR_MSG_MAX];
    if (r == NULL || PQstatus(c->conn) != CONNECTION_OK) {
        pg_conn_message(c->conn, msg, sizeof(msg));
        return error_set(err, TP_RETRY, "%s: connection lost: %s", what, msg);
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    const char *constraint = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
    char extra[300] = "";
    if (detail != NULL && constraint != NULL) {
        snprintf(extra, sizeof(extra), " (%s; constraint %s)", detail, constraint);
    } else if (detail != NULL) {
        snprintf(extra, sizeof(extra), " (%s)", detail);
    } else if (constraint != NULL) {
        snprintf(extra, sizeof(extra), " (constraint %s)", constraint);
    }
    return error_set(err, pg_classify_sqlstate(state), "%s: %s %s%s", what,
                     state != NULL ? state : "-----", primary != NULL ? primary : "error", extra);
}

static bool pg_result_ok(const PGresult *r)
{
    if (r == NULL) {
        return false;
    }
    switch (PQresultStatus(r)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
    case PGRES_SINGLE_TUPLE:
        return true;
    default:
        return false;
    }
}

/* Prepares one registered statement on the current connection. */
static enum tp_status pg_prepare_one(struct pg_conn *c, const struct pg_stmt *s,
                                     struct tp_error *err)
{
    PGresult *r = PQprepare(c->conn, s->name, s->sql, s->nparams, NULL);
    enum tp_status st = TP_OK;
    if (!pg_result_ok(r)) {
        char what[128];
        snprintf(what, sizeof(what), "prepare %s", s->name);
        st = pg_result_error(c, r, what, err);
    }
    PQclear(r);
    return st;
}

/*
 * One connection attempt plus re-preparing every registered statement. TP_RETRY for anything
 * a later attempt may fix; TP_FATAL when a statement no longer prepares (schema or SQL bug).
 */
static enum tp_status pg_attempt(struct pg_conn *c, int64_t remaining_ms, struct tp_error *err)
{
    char timeout[24];
    int64_t secs = (remaining_ms + 999) / 1000;
    snprintf(timeout, sizeof(timeout), "%" PRId64,
             secs < PG_ATTEMPT_TIMEOUT_MIN_S ? PG_ATTEMPT_TIMEOUT_MIN_S : secs);
    /* Entries before "dbname" are defaults the caller's conninfo may override. */
    const char *const keys[] = {"connect_timeout",
                                "keepalives",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "dbname",
                                NULL};
    const char *const values[] = {timeout, "1", "30", "10", "3", c->conninfo, NULL};
    if (c->conn != NULL) {
        PQfinish(c->conn);
    }
    c->conn = PQconnectdbParams(keys, values, 1);
    if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK) {
        char msg[ERROR_MSG_MAX];
        pg_conn_message(c->conn, msg, sizeof(msg));
        return error_set(err, TP_RETRY, "connect: %s", msg);
    }
    PQsetNoticeReceiver(c->conn, pg_notice_receiver, NULL);
    for (size_t i = 0; i < c->nstmts; i++) {
        enum tp_status st = pg_prepare_one(c, &c->stmts[i], err);
        if (st != TP_OK) {
            return st == TP_RETRY ? TP_RETRY : TP_FATAL;
        }
    }
    return TP_OK;
}

/*
 * (Re)connects with exponential backoff (100 ms doubling to 5 s) until connected, a
 * non-retryable failure, a stop request, or connect_timeout_ms.
 */
static enum tp_status pg_connect(struct pg_conn *c, struct tp_error *err)
{
    int64_t deadline = pg_now_ms() + (c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 0);
    int64_t backoff = PG_BACKOFF_MIN_MS;
    int attempts = 0;
    enum tp_status st;
    c->in_tx = false;
    c->tx_failure = TP_OK;
    for (;;) {
        attempts++;
        st = pg_attempt(c, deadline - pg_now_ms(), err);
        if (st != TP_RETRY) {
            break;
        }
        int64_t left = deadline - pg_now_ms();
        if (left <= 0 || signals_stop_requested()) {
            break;
        }
        if (attempts == 1) {
            log_warn("postgres unreachable, retrying with backoff", LF_S("error", err->msg),
                     LF_I("budget_ms", c->connect_timeout_ms));
        }
        pg_sleep_ms(backoff < left ? backoff : left);
        backoff = backoff * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : backoff * 2;
    }
    if (st == TP_OK) {
        c->generation++;
    }
    if (st == TP_OK && attempts > 1) {
        log_info("postgres connected", LF_I("attempts", attempts));
    } else if (st != TP_OK) {
        log_error("postgres connect failed", LF_S("error", err->msg), LF_I("attempts", attempts));
    }
    return st;
}

struct pg_conn *pg_conn_new(const char *conninfo, int connect_timeout_ms, struct tp_error *err)
{
    struct tp_error local;
    if (err == NULL) {
        err = &local;
    }
    if (conninfo == NULL) {
        conninfo = getenv("PG_CONNINFO");
    }
    if (conninfo == NULL || conninfo[0] == '\0') {
        conninfo = PG_DEFAULT_CONNINFO;
    }
    struct pg_conn *c = mem_calloc(1, sizeof(*c));
    c->conninfo = mem_strdup(conninfo);
    c->connect_timeout_ms = connect_timeout_ms;
    if (pg_connect(c, err) != TP_OK) {
        pg_conn_free(c);
        return NULL;
    }
    return c;
}

void pg_conn_free(struct pg_conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->conn != NULL) {
        PQfinish(c->conn);
    }
    for (size_t i = 0; i < c->nstmts; i++) {
        free(c->stmts[i].name);
        free(c->stmts[i].sql);
    }
    free(c->stmts);
    free(c->conninfo);
    free(c);
}

PGconn *pg_conn_raw(struct pg_conn *c)
{
    return c->conn;
}

/* Before a statement: a connection found broken outside a transaction is re-established. */
static enum tp_status pg_ready(struct pg_conn *c, struct tp_error *err)
{
    if (PQstatus(c->conn) == CONNECTION_OK) {
        return TP_OK;
    }
    if (c->in_tx) {
        return error_set(err, TP_RETRY,
                         "connection lost inside a transaction: roll back and start again");
    }
    return pg_connect(c, err) == TP_OK ? TP_OK : TP_RETRY;
}

/* After a statement: classifies r (consumed unless handed to *res) and handles a lost link. */
static enum tp_status pg_finish(struct pg_conn *c, PGresult *r, const char *what, PGresult **res,
                                struct tp_error *err)
{
    if (pg_result_ok(r)) {
        if (res != NULL) {
            *res = r;
        } else {
            PQclear(r);
        }
        return TP_OK;
    }
    enum tp_status st = pg_result_error(c, r, what, err);
    PQclear(r);
    if (c->in_tx && c->tx_failure == TP_OK) {
        c->tx_failure = st;
    }
    if (PQstatus(c->conn) != CONNECTION_OK && !c->in_tx) {
        /* Re-establish now so the caller's retry finds a working connection. */
        struct tp_error ignored;
        log_warn("postgres connection lost, reconnecting", LF_S("error", err->msg));
        (void)pg_connect(c, &ignored);
    }
    return st;
}

static void pg_register(struct pg_conn *c, const char *name, const char *sql, int nparams)
{
    if (c->nstmts == c->stmts_cap) {
        c->stmts_cap = c->stmts_cap == 0 ? 8 : c->stmts_cap * 2;
        c->stmts = mem_realloc(c->stmts, c->stmts_cap * sizeof(*c->stmts));
    }
    struct pg_stmt *s = &c->stmts[c->nstmts++];
    s->name = mem_strdup(name);
    s->sql = mem_strdup(sql);
    s->nparams = nparams;
}

enum tp_status pg_prepare(struct pg_conn *c, const char *name, const char *sql, int nparams,
                          struct tp_error *err)
{
    for (size_t i = 0; i < c->nstmts; i++) {
        if (strcmp(c->stmts[i].name, name) == 0) {
            if (strcmp(c->stmts[i].sql, sql) == 0 && c->stmts[i].nparams == nparams) {
                return TP_OK;
            }
            return error_set(err, TP_INVALID, "prepare %s: name already used for other SQL", name);
        }
    }
    enum tp_status st = pg_ready(c, err);
    if (st != TP_OK) {
        /* The link is down: registered, the next successful reconnect prepares it. */
        pg_register(c, name, sql, nparams);
        return st;
    }
    PGresult *r = PQprepare(c->conn, name, sql, nparams, NULL);
    bool link_lost = r == NULL || PQstatus(c->conn) != CONNECTION_OK;
    char what[128];
    snprintf(what, sizeof(what), "prepare %s", name);
    if (pg_result_ok(r) || link_lost) {
        /* Registered before pg_finish, whose reconnect (if any) then prepares it too. */
        pg_register(c, name, sql, nparams);
    }
    uint64_t generation = c->generation;
    st = pg_finish(c, r, what, NULL, err);
    if (st != TP_OK && link_lost && c->generation != generation) {
        st = TP_OK; /* reconnected, and the reconnect prepared it */
    }
    /* Refused by a live server (bad SQL, lock timeout): not registered, or every reconnect
     * would fail on it. */
    return st;
}

enum tp_status pg_exec_prepared(struct pg_conn *c, const char *name, int nparams,
                                const char *const *params, PGresult **res, struct tp_error *err)
{
    if (res != NULL) {
        *res = NULL;
    }
    enum tp_status st = pg_ready(c, err);
    if (st != TP_OK) {
        return st;
    }
    PGresult *r = PQexecPrepared(c->conn, name, nparams, params, NULL, NULL, 0);
    return pg_finish(c, r, name, res, err);
}

enum tp_status pg_exec_bin(struct pg_conn *c, const char *sql, int nparams,
                           const char *const *values, const int *lengths, const int *formats,
                           PGresult **res, struct tp_error *err)
{
    if (res != NULL) {
        *res = NULL;
    }
    enum tp_status st = pg_ready(c, err);
    if (st != TP_OK) {
        return st;
    }
    PGresult *r = PQexecParams(c->conn, sql, nparams, NULL, values, lengths, formats, 0);
    char what[64];
    /* The start of the statement names it in the error without dumping a whole query. */
    snprintf(what, sizeof(what), "%.40s", sql);
    for (char *p = what; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\t') {
            *p = ' ';
        }
    }
    return pg_finish(c, r, what, res, err);
}

enum tp_status pg_exec(struct pg_conn *c, const char *sql, int nparams, const char *const *params,
                       PGresult **res, struct tp_error *err)
{
    return pg_exec_bin(c, sql, nparams, params, NULL, NULL, res, err);
}

enum tp_status pg_begin(struct pg_conn *c, struct tp_error *err)
{
    if (c->in_tx) {
        return error_set(err, TP_FATAL, "begin: already inside a transaction");
    }
    enum tp_status st = pg_exec(c, "BEGIN", 0, NULL, NULL, err);
    if (st == TP_OK) {
        c->in_tx = true;
        c->tx_failure = TP_OK;
    }
    return st;
}

enum tp_status pg_commit(struct pg_conn *c, struct tp_error *err)
{
    if (!c->in_tx) {
        return error_set(err, TP_FATAL, "commit: no transaction in progress");
    }
    enum tp_status earlier = c->tx_failure;
    if (PQstatus(c->conn) != CONNECTION_OK) {
        c->in_tx = false;
        (void)pg_ready(c, err);
        return error_set(err, TP_RETRY, "commit: connection lost inside the transaction");
    }
    PGresult *r = NULL;
    enum tp_status st = pg_exec(c, "COMMIT", 0, NULL, &r, err);
    c->in_tx = false;
    c->tx_failure = TP_OK;
    if (st == TP_OK && strcmp(PQcmdStatus(r), "ROLLBACK") == 0) {
        /* libpq reports a COMMIT of an aborted transaction as success; it committed nothing. */
        st = error_set(err, earlier == TP_RETRY ? TP_RETRY : TP_FATAL,
                       "commit: transaction was aborted by an earlier failed statement (%s); "
                       "nothing was committed",
                       error_status_name(earlier));
    } else if (st != TP_OK && PQstatus(c->conn) != CONNECTION_OK) {
        /* pg_exec ran with in_tx set, so it did not reconnect: do it now, outside the tx. */
        struct tp_error ignored;
        (void)pg_ready(c, &ignored);
        st = error_set(err, TP_RETRY, "commit: connection lost, outcome unknown");
    }
    PQclear(r);
    return st;
}

void pg_rollback(struct pg_conn *c)
{
    bool was_in_tx = c->in_tx;
    c->in_tx = false;
    c->tx_failure = TP_OK;
    if (PQstatus(c->conn) != CONNECTION_OK) {
        struct tp_error ignored;
        (void)pg_ready(c, &ignored);
        return;
    }
    if (!was_in_tx && PQtransactionStatus(c->conn) == PQTRANS_IDLE) {
        return;
    }
    PGresult *r = PQexec(c->conn, "ROLLBACK");
    bool ok = pg_result_ok(r);
    PQclear(r);
    if (!ok) {
        /* A connection that cannot roll back is not trusted again: start afresh. */
        struct tp_error ignored;
        log_warn("postgres rollback failed, resetting the connection");
        (void)pg_connect(c, &ignored);
    }
}

enum tp_status pg_transaction(struct pg_conn *c, pg_tx_fn *fn, void *ctx, int max_attempts,
                              struct tp_error *err)
{
    struct tp_error local;
    if (err == NULL) {
        err = &local;
    }
    if (max_attempts < 1) {
        max_attempts = 1;
    }
    enum tp_status st = TP_RETRY;
    int64_t backoff = PG_TX_BACKOFF_MIN_MS;
    for (int attempt = 1; attempt <= max_attempts; attempt++) {
        if (attempt > 1) {
            log_info("transaction retry", LF_I("attempt", attempt), LF_S("error", err->msg));
            pg_sleep_ms(backoff / 2 + pg_jitter(backoff / 2 + 1));
            backoff = backoff * 2 > PG_TX_BACKOFF_MAX_MS ? PG_TX_BACKOFF_MAX_MS : backoff * 2;
        }
        st = pg_begin(c, err);
        if (st == TP_OK) {
            st = fn(c, ctx, err);
            if (st == TP_OK) {
                st = pg_commit(c, err);
            } else {
                pg_rollback(c);
            }
        }
        if (st != TP_RETRY || signals_stop_requested()) {
            break;
        }
    }
    return st;
}

bool pg_ping(struct pg_conn *c)
{
    struct tp_error err;
    enum tp_status st = pg_exec(c, "SELECT 1", 0, NULL, NULL, &err);
    if (st == TP_RETRY && !c->in_tx) {
        /* The first attempt may only have discovered the loss and reconnected. */
        st = pg_exec(c, "SELECT 1", 0, NULL, NULL, &err);
    }
    return st == TP_OK;
}

int64_t pg_get_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) {
        return 0;
    }
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

const char *pg_get_str(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) {
        return "";
    }
    return PQgetvalue(r, row, col);
}

bool pg_is_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) != 0;
}
