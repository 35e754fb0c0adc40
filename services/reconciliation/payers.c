/* account_payers: the payer names an account owns (rule 2), added and removed by support, audited.
 */
#include "recon.h"

#include <stdio.h>
#include <string.h>

#include "topup/names.h"
#include "topup/pg.h"

#define PAYERS_ACCOUNT_MAX 64
#define PAYERS_DISPLAY_MAX 200
#define PAYERS_BY_MAX      100
#define PAYERS_REASON_MAX  1000

static const char payers_sql_add[] =
    "INSERT INTO account_payers (account_id, name_norm, display_name, added_by, reason)"
    " VALUES ($1, $2, $3, $4, $5) RETURNING id";

static const char payers_sql_remove[] =
    "UPDATE account_payers SET removed_by = $3, removed_at = now(), removed_reason = $4"
    " WHERE account_id = $1 AND name_norm = $2 AND removed_at IS NULL RETURNING id";

static const char payers_sql_list[] =
    "SELECT id, account_id, display_name, name_norm, added_by,"
    " to_char(added_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), reason,"
    " coalesce(removed_by, ''),"
    " coalesce(to_char(removed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
    " coalesce(removed_reason, '')"
    " FROM account_payers WHERE ($1::text IS NULL OR account_id = $1)"
    " AND ($2::bool OR removed_at IS NULL) ORDER BY account_id, id";

static enum tp_status payers_field(const char *what, const char *s, size_t max,
                                   struct tp_error *err)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > max || !decode_text_ok(s, n) || strchr(s, '\n') || strchr(s, '\t')) {
        return error_set(err, TP_INVALID, "%s must be 1..%zu bytes of printable UTF-8", what, max);
    }
    return TP_OK;
}

/* Checks p's fields and normalises the name into norm. */
static enum tp_status payers_check(const struct payer_change *p, char norm[NAMES_NORM_MAX],
                                   struct tp_error *err)
{
    enum tp_status st = payers_field("account", p->account_id, PAYERS_ACCOUNT_MAX, err);
    if (st == TP_OK) {
        st = payers_field("payer name", p->display_name, PAYERS_DISPLAY_MAX, err);
    }
    if (st == TP_OK) {
        st = payers_field("--by", p->by, PAYERS_BY_MAX, err);
    }
    if (st == TP_OK) {
        st = payers_field("--reason", p->reason, PAYERS_REASON_MAX, err);
    }
    if (st == TP_OK) {
        st = names_normalize(p->display_name, strlen(p->display_name), norm, err);
    }
    if (st == TP_OK && norm[0] == '\0') {
        st = error_set(err, TP_INVALID,
                       "payer name \"%s\" normalises to nothing (an intermediary or punctuation "
                       "only): rule 2 never matches on it",
                       p->display_name);
    }
    return st;
}

enum tp_status payers_add(struct pg_conn *c, const struct payer_change *p, int64_t *id,
                          struct tp_error *err)
{
    char norm[NAMES_NORM_MAX];
    enum tp_status st = payers_check(p, norm, err);
    if (st != TP_OK) {
        return st;
    }
    const char *const params[5] = {p->account_id, norm, p->display_name, p->by, p->reason};
    PGresult *res = NULL;
    st = pg_exec(c, payers_sql_add, 5, params, &res, err);
    if (st == TP_DUPLICATE) {
        st = error_set(err, TP_CONFLICT, "account %s has the payer %s (normalised: %s) already",
                       p->account_id, p->display_name, norm);
    } else if (st == TP_OK && id != NULL) {
        *id = pg_get_i64(res, 0, 0);
    }
    PQclear(res);
    return st;
}

enum tp_status payers_remove(struct pg_conn *c, const struct payer_change *p, struct tp_error *err)
{
    char norm[NAMES_NORM_MAX];
    enum tp_status st = payers_check(p, norm, err);
    if (st != TP_OK) {
        return st;
    }
    const char *const params[4] = {p->account_id, norm, p->by, p->reason};
    PGresult *res = NULL;
    st = pg_exec(c, payers_sql_remove, 4, params, &res, err);
    if (st == TP_OK && PQntuples(res) == 0) {
        st = error_set(err, TP_NOT_FOUND, "account %s has no active payer %s (normalised: %s)",
                       p->account_id, p->display_name, norm);
    }
    PQclear(res);
    return st;
}

enum tp_status payers_list(struct pg_conn *c, const char *account_id, bool all, FILE *out,
                           struct tp_error *err)
{
    const char *const params[2] = {account_id, all ? "true" : "false"};
    PGresult *res = NULL;
    enum tp_status st = pg_exec(c, payers_sql_list, 2, params, &res, err);
    if (st != TP_OK) {
        return st;
    }
    fprintf(out, "id\taccount\tname\tnormalised\tadded_by\tadded_at\treason\tremoved_by\tremoved_at"
                 "\tremoved_reason\n");
    for (int row = 0; row < PQntuples(res); row++) {
        for (int col = 0; col < 10; col++) {
            fprintf(out, "%s%s", pg_get_str(res, row, col), col < 9 ? "\t" : "\n");
        }
    }
    PQclear(res);
    return TP_OK;
}
