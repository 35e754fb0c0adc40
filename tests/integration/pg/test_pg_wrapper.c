/* PostgreSQL wrapper against the real server: classification, retries, reconnects, bytea. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "topup/pg.h"

#define CONNECT_TIMEOUT_MS 10000

static const char *conninfo(void)
{
    const char *ci = getenv("PG_CONNINFO");
    if (ci == NULL || ci[0] == '\0') {
        fail_msg("PG_CONNINFO is not set: run through tests/with-stack.sh (ctest does)");
    }
    return ci;
}

static struct pg_conn *connect_or_fail(void)
{
    struct tp_error err = {0};
    struct pg_conn *c = pg_conn_new(conninfo(), CONNECT_TIMEOUT_MS, &err);
    if (c == NULL) {
        fail_msg("connect: %s", err.msg);
    }
    return c;
}

static void exec_ok(struct pg_conn *c, const char *sql)
{
    struct tp_error err = {0};
    enum tp_status st = pg_exec(c, sql, 0, NULL, NULL, &err);
    if (st != TP_OK) {
        fail_msg("%s: %s", sql, err.msg);
    }
}

static int64_t query_i64(struct pg_conn *c, const char *sql, int n, const char *const *params)
{
    struct tp_error err = {0};
    PGresult *r = NULL;
    enum tp_status st = pg_exec(c, sql, n, params, &r, &err);
    if (st != TP_OK) {
        fail_msg("%s: %s", sql, err.msg);
    }
    assert_int_equal(PQntuples(r), 1);
    int64_t v = pg_get_i64(r, 0, 0);
    PQclear(r);
    return v;
}

/* A table name of our own: tests in this binary share one database. */
static void unique_name(char *buf, size_t len, const char *base)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, len, "%s_%d_%ld", base, (int)getpid(), (long)(ts.tv_nsec % 1000000));
}

/* A loopback port nobody listens on: bound, read back, closed. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_classified_errors(void **state)
{
    (void)state;
    struct pg_conn *c = connect_or_fail();
    struct tp_error err = {0};
    char t[64], sql[512];
    unique_name(t, sizeof(t), "pgw_cls");
    snprintf(sql, sizeof(sql),
             "CREATE TABLE %s (id int PRIMARY KEY, qty int NOT NULL CHECK (qty > 0), "
             "parent int REFERENCES %s (id))",
             t, t);
    exec_ok(c, sql);
    snprintf(sql, sizeof(sql), "INSERT INTO %s (id, qty, parent) VALUES ($1, $2, $3)", t);
    assert_int_equal(pg_prepare(c, "cls_ins", sql, 3, &err), TP_OK);

    const char *row1[] = {"1", "5", NULL};
    assert_int_equal(pg_exec_prepared(c, "cls_ins", 3, row1, NULL, &err), TP_OK);

    err = (struct tp_error){0};
    assert_int_equal(pg_exec_prepared(c, "cls_ins", 3, row1, NULL, &err), TP_DUPLICATE);
    assert_non_null(strstr(err.msg, "23505"));
    /* The same through ad-hoc SQL. */
    assert_int_equal(pg_exec(c, sql, 3, row1, NULL, &err), TP_DUPLICATE);

    const char *check[] = {"2", "0", NULL};
    err = (struct tp_error){0};
    assert_int_equal(pg_exec_prepared(c, "cls_ins", 3, check, NULL, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "23514"));

    const char *not_null[] = {"3", NULL, NULL};
    assert_int_equal(pg_exec_prepared(c, "cls_ins", 3, not_null, NULL, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "23502"));

    const char *fk[] = {"4", "1", "99"};
    assert_int_equal(pg_exec_prepared(c, "cls_ins", 3, fk, NULL, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "23503"));

    const char *bad_int[] = {"abc", "1", NULL};
    assert_int_equal(pg_exec_prepared(c, "cls_ins", 3, bad_int, NULL, &err), TP_INVALID);
    assert_non_null(strstr(err.msg, "22P02"));

    assert_int_equal(pg_exec(c, "SELEC 1", 0, NULL, NULL, &err), TP_FATAL);
    assert_non_null(strstr(err.msg, "42601"));
    assert_int_equal(pg_exec(c, "SELECT * FROM pgw_no_such_table", 0, NULL, NULL, &err), TP_FATAL);

    /* None of that broke the connection or left rows behind. */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t);
    assert_int_equal(query_i64(c, sql, 0, NULL), 1);
    assert_true(pg_ping(c));
    pg_conn_free(c);
}

static void test_prepare_registry(void **state)
{
    (void)state;
    struct pg_conn *c = connect_or_fail();
    struct tp_error err = {0};
    assert_int_equal(pg_prepare(c, "reg_a", "SELECT $1::int * 2", 1, &err), TP_OK);
    /* Registering the same statement again is harmless; another SQL under the name is not. */
    assert_int_equal(pg_prepare(c, "reg_a", "SELECT $1::int * 2", 1, &err), TP_OK);
    assert_int_equal(pg_prepare(c, "reg_a", "SELECT $1::int * 3", 1, &err), TP_INVALID);
    /* Bad SQL is refused and forgotten (otherwise every reconnect would fail on it). */
    assert_int_equal(pg_prepare(c, "reg_bad", "SELEC $1", 1, &err), TP_FATAL);
    const char *p[] = {"21"};
    PGresult *r = NULL;
    assert_int_equal(pg_exec_prepared(c, "reg_a", 1, p, &r, &err), TP_OK);
    assert_int_equal(pg_get_i64(r, 0, 0), 42);
    assert_string_equal(pg_get_str(r, 0, 0), "42");
    assert_false(pg_is_null(r, 0, 0));
    PQclear(r);
    pg_conn_free(c);
}

/* Kills c's backend from another connection and waits until it is gone. */
static int terminate_backend(struct pg_conn *killer, struct pg_conn *victim)
{
    int pid = PQbackendPID(pg_conn_raw(victim));
    assert_true(pid > 0);
    char pidbuf[16];
    snprintf(pidbuf, sizeof(pidbuf), "%d", pid);
    const char *p[] = {pidbuf};
    struct tp_error err = {0};
    PGresult *r = NULL;
    if (pg_exec(killer, "SELECT pg_terminate_backend($1::int, 5000)", 1, p, &r, &err) != TP_OK) {
        fail_msg("terminate: %s", err.msg);
    }
    assert_string_equal(pg_get_str(r, 0, 0), "t");
    PQclear(r);
    return pid;
}

static void test_reconnect_after_terminate(void **state)
{
    (void)state;
    struct pg_conn *c = connect_or_fail();
    struct pg_conn *killer = connect_or_fail();
    struct tp_error err = {0};
    assert_int_equal(pg_prepare(c, "rc_add", "SELECT $1::int + 1", 1, &err), TP_OK);
    int old_pid = terminate_backend(killer, c);

    /* The first call may discover the loss (TP_RETRY, reconnected) or already succeed. */
    const char *p[] = {"41"};
    PGresult *r = NULL;
    enum tp_status st = pg_exec_prepared(c, "rc_add", 1, p, &r, &err);
    if (st == TP_RETRY) {
        st = pg_exec_prepared(c, "rc_add", 1, p, &r, &err);
    }
    if (st != TP_OK) {
        fail_msg("after reconnect: %s: %s", error_status_name(st), err.msg);
    }
    assert_int_equal(pg_get_i64(r, 0, 0), 42);
    PQclear(r);
    int new_pid = PQbackendPID(pg_conn_raw(c));
    assert_true(new_pid > 0);
    assert_int_not_equal(new_pid, old_pid);

    /* Again, found by pg_ping this time; the prepared statement survives a second reconnect. */
    terminate_backend(killer, c);
    assert_true(pg_ping(c));
    assert_int_equal(pg_exec_prepared(c, "rc_add", 1, p, &r, &err), TP_OK);
    assert_int_equal(pg_get_i64(r, 0, 0), 42);
    PQclear(r);
    pg_conn_free(killer);
    pg_conn_free(c);
}

static void test_reconnect_inside_transaction(void **state)
{
    (void)state;
    struct pg_conn *c = connect_or_fail();
    struct pg_conn *killer = connect_or_fail();
    struct tp_error err = {0};
    char t[64], sql[256];
    unique_name(t, sizeof(t), "pgw_rtx");
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int PRIMARY KEY)", t);
    exec_ok(c, sql);
    snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES ($1::int)", t);
    assert_int_equal(pg_prepare(c, "rtx_ins", sql, 1, &err), TP_OK);

    /* Lost mid-transaction: TP_RETRY, the caller rolls back, the connection works again. */
    const char *one[] = {"1"};
    assert_int_equal(pg_begin(c, &err), TP_OK);
    assert_int_equal(pg_exec_prepared(c, "rtx_ins", 1, one, NULL, &err), TP_OK);
    terminate_backend(killer, c);
    const char *two[] = {"2"};
    assert_int_equal(pg_exec_prepared(c, "rtx_ins", 1, two, NULL, &err), TP_RETRY);
    pg_rollback(c);
    const char *three[] = {"3"};
    assert_int_equal(pg_exec_prepared(c, "rtx_ins", 1, three, NULL, &err), TP_OK);

    /* Lost just before COMMIT: TP_RETRY (outcome unknown to libpq; here nothing committed). */
    assert_int_equal(pg_begin(c, &err), TP_OK);
    const char *four[] = {"4"};
    assert_int_equal(pg_exec_prepared(c, "rtx_ins", 1, four, NULL, &err), TP_OK);
    terminate_backend(killer, c);
    assert_int_equal(pg_commit(c, &err), TP_RETRY);

    snprintf(sql, sizeof(sql), "SELECT coalesce(sum(id), 0) FROM %s", t);
    assert_int_equal(query_i64(c, sql, 0, NULL), 3); /* only row 3 was ever committed */
    pg_conn_free(killer);
    pg_conn_free(c);
}

struct skew_ctx {
    const char *table;
    struct pg_conn *other;
    int attempts;
    int64_t on_call_seen;
};

static enum tp_status count_on_call(struct pg_conn *c, const char *table, int64_t *n,
                                    struct tp_error *err)
{
    char sql[256];
    PGresult *r = NULL;
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE on_call", table);
    enum tp_status st = pg_exec(c, sql, 0, NULL, &r, err);
    if (st == TP_OK) {
        *n = pg_get_i64(r, 0, 0);
        PQclear(r);
    }
    return st;
}

/*
 * Write skew, the textbook SERIALIZABLE conflict: two doctors on call, each goes off call if
 * the other is still on. On the first attempt the other connection does the same in its own
 * SERIALIZABLE transaction and commits in between, so this one must fail with 40001; the retry
 * then sees one doctor left and leaves it at that.
 */
static enum tp_status skew_tx(struct pg_conn *c, void *arg, struct tp_error *err)
{
    struct skew_ctx *ctx = arg;
    char sql[256];
    ctx->attempts++;
    enum tp_status st =
        pg_exec(c, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", 0, NULL, NULL, err);
    if (st == TP_OK) {
        st = count_on_call(c, ctx->table, &ctx->on_call_seen, err);
    }
    if (st != TP_OK) {
        return st;
    }
    if (ctx->attempts == 1) {
        struct tp_error oerr = {0};
        int64_t seen = 0;
        assert_int_equal(pg_begin(ctx->other, &oerr), TP_OK);
        exec_ok(ctx->other, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
        assert_int_equal(count_on_call(ctx->other, ctx->table, &seen, &oerr), TP_OK);
        assert_int_equal(seen, 2);
        snprintf(sql, sizeof(sql), "UPDATE %s SET on_call = false WHERE name = 'bob'", ctx->table);
        exec_ok(ctx->other, sql);
        if (pg_commit(ctx->other, &oerr) != TP_OK) {
            fail_msg("other commit: %s", oerr.msg);
        }
    }
    if (ctx->on_call_seen < 2) {
        return TP_OK; /* someone else went off call: stay */
    }
    snprintf(sql, sizeof(sql), "UPDATE %s SET on_call = false WHERE name = 'alice'", ctx->table);
    return pg_exec(c, sql, 0, NULL, NULL, err);
}

static void test_serialization_failure_retried(void **state)
{
    (void)state;
    struct pg_conn *a = connect_or_fail();
    struct pg_conn *b = connect_or_fail();
    char t[64], sql[256];
    unique_name(t, sizeof(t), "pgw_skew");
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (name text PRIMARY KEY, on_call bool NOT NULL)", t);
    exec_ok(a, sql);
    snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES ('alice', true), ('bob', true)", t);
    exec_ok(a, sql);

    struct skew_ctx ctx = {.table = t, .other = b};
    struct tp_error err = {0};
    enum tp_status st = pg_transaction(a, skew_tx, &ctx, 5, &err);
    if (st != TP_OK) {
        fail_msg("pg_transaction: %s: %s", error_status_name(st), err.msg);
    }
    /* Attempt 1 failed with a serialization failure (TP_RETRY); attempt 2 succeeded. */
    assert_int_equal(ctx.attempts, 2);
    assert_int_equal(ctx.on_call_seen, 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE on_call", t);
    assert_int_equal(query_i64(a, sql, 0, NULL), 1); /* never both off call */
    pg_conn_free(b);
    pg_conn_free(a);
}

struct count_ctx {
    int calls;
    const char *insert_sql;
    enum tp_status result;
};

static enum tp_status always_retry(struct pg_conn *c, void *arg, struct tp_error *err)
{
    (void)c;
    struct count_ctx *ctx = arg;
    ctx->calls++;
    return error_set(err, TP_RETRY, "still busy");
}

static enum tp_status insert_then(struct pg_conn *c, void *arg, struct tp_error *err)
{
    struct count_ctx *ctx = arg;
    ctx->calls++;
    enum tp_status st = pg_exec(c, ctx->insert_sql, 0, NULL, NULL, err);
    if (st != TP_OK) {
        return st;
    }
    return ctx->result == TP_OK ? TP_OK : error_set(err, ctx->result, "refused by the caller");
}

/* Ignores a failed statement, as a careless caller might: COMMIT must not report success. */
static enum tp_status ignore_duplicate(struct pg_conn *c, void *arg, struct tp_error *err)
{
    struct count_ctx *ctx = arg;
    ctx->calls++;
    enum tp_status first = pg_exec(c, ctx->insert_sql, 0, NULL, NULL, err);
    enum tp_status second = pg_exec(c, ctx->insert_sql, 0, NULL, NULL, err); /* duplicate key */
    ctx->result = first == TP_OK && second == TP_DUPLICATE ? TP_OK : TP_FATAL;
    return TP_OK; /* ... and carries on as if nothing happened */
}

static void test_transaction_outcomes(void **state)
{
    (void)state;
    struct pg_conn *c = connect_or_fail();
    struct tp_error err = {0};
    char t[64], sql[256], ins[256];
    unique_name(t, sizeof(t), "pgw_tx");
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int PRIMARY KEY)", t);
    exec_ok(c, sql);
    snprintf(ins, sizeof(ins), "INSERT INTO %s VALUES (7)", t);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t);

    struct count_ctx retry = {0};
    assert_int_equal(pg_transaction(c, always_retry, &retry, 3, &err), TP_RETRY);
    assert_int_equal(retry.calls, 3);

    struct count_ctx refuse = {.insert_sql = ins, .result = TP_CONFLICT};
    assert_int_equal(pg_transaction(c, insert_then, &refuse, 3, &err), TP_CONFLICT);
    assert_int_equal(refuse.calls, 1);
    assert_int_equal(query_i64(c, sql, 0, NULL), 0); /* rolled back */

    struct count_ctx careless = {.insert_sql = ins};
    assert_int_equal(pg_transaction(c, ignore_duplicate, &careless, 3, &err), TP_FATAL);
    assert_int_equal(careless.calls, 1);
    assert_int_equal(careless.result, TP_OK);        /* the statements did what the test meant */
    assert_int_equal(query_i64(c, sql, 0, NULL), 0); /* nothing committed */

    struct count_ctx fine = {.insert_sql = ins, .result = TP_OK};
    assert_int_equal(pg_transaction(c, insert_then, &fine, 3, &err), TP_OK);
    assert_int_equal(query_i64(c, sql, 0, NULL), 1);

    /* Explicit begin/commit misuse is reported, not passed to the server. */
    assert_int_equal(pg_commit(c, &err), TP_FATAL);
    assert_int_equal(pg_begin(c, &err), TP_OK);
    assert_int_equal(pg_begin(c, &err), TP_FATAL);
    pg_rollback(c);
    pg_rollback(c); /* twice is fine */
    assert_true(pg_ping(c));
    pg_conn_free(c);
}

static void test_bytea_roundtrip(void **state)
{
    (void)state;
    struct pg_conn *c = connect_or_fail();
    struct tp_error err = {0};
    char t[64], sql[256];
    unique_name(t, sizeof(t), "pgw_bin");
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int PRIMARY KEY, payload bytea NOT NULL)", t);
    exec_ok(c, sql);

    static const char payload[] = {0x0a, 0x00, 0x10, (char)0xff, 0x00, '\\', 'x', 0x7f};
    const char *values[] = {"1", payload};
    const int lengths[] = {0, (int)sizeof(payload)};
    const int formats[] = {0, 1};
    snprintf(sql, sizeof(sql), "INSERT INTO %s (id, payload) VALUES ($1, $2)", t);
    assert_int_equal(pg_exec_bin(c, sql, 2, values, lengths, formats, NULL, &err), TP_OK);
    assert_int_equal(pg_exec_bin(c, sql, 2, values, lengths, formats, NULL, &err), TP_DUPLICATE);

    PGresult *r = NULL;
    snprintf(sql, sizeof(sql), "SELECT octet_length(payload), payload FROM %s WHERE id = 1", t);
    assert_int_equal(pg_exec(c, sql, 0, NULL, &r, &err), TP_OK);
    assert_int_equal(pg_get_i64(r, 0, 0), sizeof(payload));
    size_t n = 0;
    unsigned char *back = PQunescapeBytea((const unsigned char *)pg_get_str(r, 0, 1), &n);
    assert_non_null(back);
    assert_int_equal(n, sizeof(payload));
    assert_memory_equal(back, payload, sizeof(payload));
    PQfreemem(back);
    PQclear(r);
    pg_conn_free(c);
}

static void test_connect_refused(void **state)
{
    (void)state;
    char ci[128];
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=topup user=topup", dead_port());
    struct tp_error err = {0};
    struct pg_conn *c = pg_conn_new(ci, 300, &err);
    assert_null(c);
    assert_int_equal(err.status, TP_RETRY);
    assert_non_null(strstr(err.msg, "connect"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classified_errors),
        cmocka_unit_test(test_prepare_registry),
        cmocka_unit_test(test_reconnect_after_terminate),
        cmocka_unit_test(test_reconnect_inside_transaction),
        cmocka_unit_test(test_serialization_failure_retried),
        cmocka_unit_test(test_transaction_outcomes),
        cmocka_unit_test(test_bytea_roundtrip),
        cmocka_unit_test(test_connect_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
