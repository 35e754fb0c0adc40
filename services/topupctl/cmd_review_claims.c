/* topupctl review claims: users' "I have paid" claims beside the unmatched records that fit. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "topup/money.h"
#include "topup/pg.h"

/* A record fits a claim when it is a credit still waiting (unmatched, or in review), its value
 * date lies within CLAIM_WINDOW_DAYS of the stated transfer date, and its amount or its payer's
 * normalised name is the claim's. */
#define CLAIM_WINDOW_DAYS "3"
#define CLAIMS_LIST_MAX   "200"

static const char claims_sql_list[] =
    "SELECT c.id, o.code, c.account_id, o.status, c.created_at::text, c.payer_name, c.amount_fen,"
    " c.transfer_date::text, c.bank_serial, c.note, o.amount_fen"
    " FROM payment_claims c JOIN topup_orders o ON o.id = c.order_id"
    " WHERE $1::boolean OR o.status NOT IN ('processing', 'completed')"
    " ORDER BY c.id LIMIT " CLAIMS_LIST_MAX;

static const char claims_sql_candidates[] =
    "SELECT r.id, (SELECT string_agg(q.id || ' (' || q.reason || ')', ', ') FROM review_queue q"
    " WHERE q.record_id = r.id AND q.status = 'open'), r.state, r.value_date::text, r.amount_fen,"
    " r.counterparty_name, r.remittance_info, r.amount_fen = c.amount_fen,"
    " r.counterparty_name_norm <> '' AND r.counterparty_name_norm = c.payer_name_norm"
    " FROM payment_claims c JOIN statement_records r ON r.direction = 'credit'"
    " AND r.state IN ('unmatched', 'review')"
    " AND r.value_date BETWEEN c.transfer_date - " CLAIM_WINDOW_DAYS
    " AND c.transfer_date + " CLAIM_WINDOW_DAYS
    " AND (r.amount_fen = c.amount_fen OR (r.counterparty_name_norm <> ''"
    " AND r.counterparty_name_norm = c.payer_name_norm))"
    " WHERE c.id = $1::bigint ORDER BY (r.amount_fen = c.amount_fen) DESC, r.value_date, r.id";

/* The claims that fit a record (for `review show`). */
static const char claims_sql_for_record[] =
    "SELECT c.id, o.code, c.account_id, o.status, c.payer_name, c.amount_fen,"
    " c.transfer_date::text FROM statement_records r JOIN payment_claims c"
    " ON r.value_date BETWEEN c.transfer_date - " CLAIM_WINDOW_DAYS
    " AND c.transfer_date + " CLAIM_WINDOW_DAYS
    " AND (r.amount_fen = c.amount_fen OR (r.counterparty_name_norm <> ''"
    " AND r.counterparty_name_norm = c.payer_name_norm))"
    " JOIN topup_orders o ON o.id = c.order_id"
    " WHERE r.id = (SELECT record_id FROM review_queue WHERE id = $1::bigint)"
    " AND o.status NOT IN ('processing', 'completed') ORDER BY c.id";

static int claims_candidates(struct pg_conn *c, const char *claim_id, const char *code, FILE *out,
                             struct tp_error *err)
{
    const char *params[1] = {claim_id};
    PGresult *r = NULL;
    if (pg_exec(c, claims_sql_candidates, 1, params, &r, err) != TP_OK) {
        return -1;
    }
    int n = PQntuples(r);
    if (n == 0) {
        fprintf(out, "  no waiting credit fits (amount or payer name, value date within %s days)\n",
                CLAIM_WINDOW_DAYS);
    }
    for (int i = 0; i < n; i++) {
        char amount[MONEY_STR_MAX];
        const char *review = PQgetisnull(r, i, 1) ? "-" : pg_get_str(r, i, 1);
        fprintf(out,
                "  record %s\treview %s\tstate %s\tvalue %s\t%s CNY\tpayer %s\tremittance \"%s\""
                "\tfits: %s%s\n",
                pg_get_str(r, i, 0), review, pg_get_str(r, i, 2), pg_get_str(r, i, 3),
                money_format(pg_get_i64(r, i, 4), amount), pg_get_str(r, i, 5), pg_get_str(r, i, 6),
                strcmp(pg_get_str(r, i, 7), "t") == 0 ? "amount " : "",
                strcmp(pg_get_str(r, i, 8), "t") == 0 ? "name" : "");
    }
    if (n > 0) {
        fprintf(out,
                "  resolve: topupctl review match REVIEW --order %s --actor NAME --reason TEXT"
                " (or review refund REVIEW ...); a record still unmatched reaches review when "
                "it ages\n",
                code);
    }
    PQclear(r);
    return n;
}

static int claims_list(struct pg_conn *c, bool all, FILE *out, struct tp_error *err)
{
    const char *params[1] = {all ? "true" : "false"};
    PGresult *r = NULL;
    if (pg_exec(c, claims_sql_list, 1, params, &r, err) != TP_OK) {
        return -1;
    }
    int n = PQntuples(r);
    if (n == 0) {
        fprintf(out, "no %sclaims\n", all ? "" : "open ");
    }
    for (int i = 0; i < n; i++) {
        char amount[MONEY_STR_MAX], ordered[MONEY_STR_MAX];
        fprintf(out,
                "claim %s\torder %s (%s, %s CNY)\taccount %s\tfiled %s\tpayer %s\tamount %s CNY"
                "\ttransfer date %s\tserial %s\tnote \"%s\"\n",
                pg_get_str(r, i, 0), pg_get_str(r, i, 1), pg_get_str(r, i, 3),
                money_format(pg_get_i64(r, i, 10), ordered), pg_get_str(r, i, 2),
                pg_get_str(r, i, 4), pg_get_str(r, i, 5), money_format(pg_get_i64(r, i, 6), amount),
                pg_get_str(r, i, 7), pg_get_str(r, i, 8)[0] != '\0' ? pg_get_str(r, i, 8) : "-",
                pg_get_str(r, i, 9));
        if (claims_candidates(c, pg_get_str(r, i, 0), pg_get_str(r, i, 1), out, err) < 0) {
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    return n;
}

int review_claims_cmd(struct pg_conn *c, int argc, char **argv)
{
    bool all = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0) {
            all = true;
        } else {
            fprintf(stderr, "usage: topupctl review claims [--all]\n");
            return TOPUPCTL_EXIT_USAGE;
        }
    }
    struct tp_error err = {0};
    if (claims_list(c, all, stdout, &err) < 0) {
        fprintf(stderr, "topupctl review claims: %s\n", err.msg);
        return TOPUPCTL_EXIT_FAILURE;
    }
    return TOPUPCTL_EXIT_OK;
}

int review_claims_for_item(struct pg_conn *c, int64_t review_id, FILE *out)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, review_id);
    const char *params[1] = {id};
    PGresult *r = NULL;
    struct tp_error err = {0};
    if (pg_exec(c, claims_sql_for_record, 1, params, &r, &err) != TP_OK) {
        fprintf(stderr, "topupctl review show: claims: %s\n", err.msg);
        return TOPUPCTL_EXIT_FAILURE;
    }
    int n = PQntuples(r);
    fprintf(out, "\nusers' claims that fit this transfer: %d\n", n);
    for (int i = 0; i < n; i++) {
        char amount[MONEY_STR_MAX];
        fprintf(out, "  claim %s\torder %s (%s)\taccount %s\tpayer %s\t%s CNY\ttransfer date %s\n",
                pg_get_str(r, i, 0), pg_get_str(r, i, 1), pg_get_str(r, i, 3), pg_get_str(r, i, 2),
                pg_get_str(r, i, 4), money_format(pg_get_i64(r, i, 5), amount),
                pg_get_str(r, i, 6));
    }
    PQclear(r);
    return TOPUPCTL_EXIT_OK;
}
