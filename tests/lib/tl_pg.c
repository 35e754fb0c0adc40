/* PostgreSQL for the tests: one connection per thread to PG_CONNINFO, queries that fail the test.
 */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each thread of a test (load generators, the checker) has its own connection. */
static __thread PGconn *tl_conn;

static void tl_pg_drop(void)
{
    if (tl_conn != NULL) {
        PQfinish(tl_conn);
        tl_conn = NULL;
    }
}

/* Connects when needed; NULL (and a message in err) when PostgreSQL does not answer. */
static PGconn *tl_pg_get(char *err, size_t len)
{
    if (tl_conn != NULL && PQstatus(tl_conn) == CONNECTION_OK) {
        return tl_conn;
    }
    tl_pg_drop();
    char conninfo[4200];
    snprintf(conninfo, sizeof(conninfo), "%s connect_timeout=5", tl_env("PG_CONNINFO"));
    tl_conn = PQconnectdb(conninfo);
    if (PQstatus(tl_conn) != CONNECTION_OK) {
        snprintf(err, len, "%s", PQerrorMessage(tl_conn));
        tl_pg_drop();
        return NULL;
    }
    PQsetNoticeProcessor(tl_conn, NULL, NULL);
    return tl_conn;
}

PGconn *tl_pg(void)
{
    char err[512];
    PGconn *c = tl_pg_get(err, sizeof(err));
    TL_CHECK_MSG(c != NULL, "PostgreSQL: %s", err);
    return c;
}

PGresult *tl_pg_try(const char *sql, int n, const char *const *params)
{
    char err[512];
    PGconn *c = tl_pg_get(err, sizeof(err));
    if (c == NULL) {
        return NULL;
    }
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        PQclear(r);
        if (PQstatus(c) != CONNECTION_OK) {
            tl_pg_drop();
        }
        return NULL;
    }
    return r;
}

PGresult *tl_pg_query(const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(tl_pg(), sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        tl_fail("SQL failed: %s\n%s", PQresultErrorMessage(r), sql);
    }
    return r;
}

void tl_pg_exec(const char *sql, int n, const char *const *params)
{
    PQclear(tl_pg_query(sql, n, params));
}

static int64_t tl_pg_one(PGresult *r, const char *sql)
{
    TL_CHECK_MSG(PQntuples(r) == 1 && PQnfields(r) >= 1, "expected one row from %s, got %d", sql,
                 PQntuples(r));
    return PQgetisnull(r, 0, 0) ? INT64_MIN : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
}

int64_t tl_pg_i64(const char *sql, int n, const char *const *params)
{
    PGresult *r = tl_pg_query(sql, n, params);
    int64_t v = tl_pg_one(r, sql);
    PQclear(r);
    return v;
}

int64_t tl_pg_wait_i64(const char *what, const char *sql, int n, const char *const *params,
                       int64_t want, int timeout_ms)
{
    int64_t deadline = tl_now_ms() + timeout_ms, got = INT64_MIN;
    for (;;) {
        PGresult *r = tl_pg_try(sql, n, params);
        if (r != NULL) {
            got = tl_pg_one(r, sql);
            PQclear(r);
            if (got == want) {
                return got;
            }
        }
        if (tl_now_ms() > deadline) {
            tl_step("waited %d ms for %s: %lld, want %lld", timeout_ms, what, (long long)got,
                    (long long)want);
            return got;
        }
        tl_sleep_ms(200);
    }
}

void tl_pg_wait_up(int timeout_ms)
{
    int64_t deadline = tl_now_ms() + timeout_ms;
    for (;;) {
        PGresult *r = tl_pg_try("SELECT 1", 0, NULL);
        if (r != NULL) {
            PQclear(r);
            return;
        }
        TL_CHECK_MSG(tl_now_ms() < deadline, "PostgreSQL did not answer within %d ms", timeout_ms);
        tl_sleep_ms(200);
    }
}

void tl_pg_ids(const char *sql, int n, const char *const *params, struct tl_ids *out)
{
    memset(out, 0, sizeof(*out));
    PGresult *r = tl_pg_query(sql, n, params);
    for (int i = 0; i < PQntuples(r); i++) {
        tl_ids_add(out, PQgetvalue(r, i, 0));
    }
    PQclear(r);
    tl_ids_sort(out);
}

void tl_pg_copy(const char *copy_sql, const char *data, size_t len)
{
    PGconn *c = tl_pg();
    PGresult *r = PQexec(c, copy_sql);
    TL_CHECK_MSG(PQresultStatus(r) == PGRES_COPY_IN, "%s: %s", copy_sql, PQerrorMessage(c));
    PQclear(r);
    /* In slices: libpq takes any size, but smaller writes keep memory flat. */
    for (size_t off = 0; off < len;) {
        size_t n = len - off > 65536 ? 65536 : len - off;
        TL_CHECK_MSG(PQputCopyData(c, data + off, (int)n) == 1, "COPY: %s", PQerrorMessage(c));
        off += n;
    }
    TL_CHECK_MSG(PQputCopyEnd(c, NULL) == 1, "COPY end: %s", PQerrorMessage(c));
    r = PQgetResult(c);
    TL_CHECK_MSG(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", copy_sql,
                 PQresultErrorMessage(r));
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL) {
        PQclear(r);
    }
}
