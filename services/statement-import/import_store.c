/* The statement_imports table: one row per imported file, by the file's SHA-256. */
#include "import_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum tp_status import_store_begin(struct pg_conn *c, const char *sha256, const char *file_name,
                                  const char *format, int64_t records, enum import_state *state,
                                  char *completed_at, struct tp_error *err)
{
    char count[24];
    snprintf(count, sizeof count, "%" PRId64, records);
    const char *ins[] = {sha256, file_name, format, count};
    PGresult *r = NULL;
    /* ON CONFLICT DO NOTHING: a second run (or a concurrent one) falls through to the SELECT. */
    enum tp_status st = pg_exec(c,
                                "INSERT INTO statement_imports (sha256, file_name, format, "
                                "record_count, status) VALUES ($1, $2, $3, $4::integer, "
                                "'publishing') ON CONFLICT (sha256) DO NOTHING RETURNING id",
                                4, ins, &r, err);
    if (st != TP_OK) {
        return st;
    }
    int inserted = PQntuples(r);
    PQclear(r);
    if (inserted == 1) {
        *state = IMPORT_STATE_NEW;
        return TP_OK;
    }
    const char *sel[] = {sha256};
    st = pg_exec(c,
                 "SELECT status, coalesce(to_char(completed_at AT TIME ZONE 'UTC', "
                 "'YYYY-MM-DD HH24:MI:SS') || ' UTC', '') FROM statement_imports WHERE sha256 = $1",
                 1, sel, &r, err);
    if (st != TP_OK) {
        return st;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        return error_set(err, TP_RETRY, "statement_imports row for %s vanished", sha256);
    }
    const char *status = pg_get_str(r, 0, 0);
    *state = strcmp(status, "completed") == 0 ? IMPORT_STATE_COMPLETED : IMPORT_STATE_RESUMED;
    snprintf(completed_at, IMPORT_STORE_TIME_MAX, "%s", pg_get_str(r, 0, 1));
    PQclear(r);
    return TP_OK;
}

enum tp_status import_store_complete(struct pg_conn *c, const char *sha256, int64_t records,
                                     struct tp_error *err)
{
    char count[24];
    snprintf(count, sizeof count, "%" PRId64, records);
    const char *params[] = {sha256, count};
    PGresult *r = NULL;
    enum tp_status st = pg_exec(c,
                                "UPDATE statement_imports SET status = 'completed', "
                                "completed_at = now(), record_count = $2::integer "
                                "WHERE sha256 = $1",
                                2, params, &r, err);
    if (st != TP_OK) {
        return st;
    }
    bool updated = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!updated) {
        return error_set(err, TP_RETRY, "statement_imports row for %s not found", sha256);
    }
    return TP_OK;
}
