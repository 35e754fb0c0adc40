/* topupctl refund: support requests, approves, rejects and lists refunds of unused paid credit. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "topup/event.h"
#include "topup/kafka.h"
#include "topup/money.h"
#include "topup/outbox.h"
#include "topup/pg.h"

#define REFUND_CONNECT_MS  10000
#define REFUND_TX_ATTEMPTS 5
#define REFUND_LIST_MAX    1000
#define REFUND_REASON_MAX  500
/* The relay that publishes refund reservations: order-intake's, which owns the user's refunds. */
#define REFUND_OUTBOX_SOURCE "order-intake"

static const char refund_usage[] =
    "usage: topupctl refund request --order CODE --amount 100.00 --reason TEXT [--by NAME]\n"
    "       topupctl refund request --record ID --reason TEXT [--by NAME]\n"
    "       topupctl refund approve REFUND_ID --reason TEXT [--by NAME]\n"
    "       topupctl refund reject REFUND_ID --reason TEXT [--by NAME]\n"
    "       topupctl refund list [--account ACCOUNT] [--state STATE] [--limit N]\n"
    "\n"
    "request  a refund of the credit lot of order CODE (its unused paid credit, at most what is\n"
    "         left of it less the refunds of it still open), or of a review-queue transfer\n"
    "         marked for refund (--record: the whole amount, no ledger account). The money goes\n"
    "         to the remitter as the bank reported it; nobody types an account.\n"
    "approve  reserves the amount at once: queues, in the same transaction, the RefundIssued\n"
    "         (bank payout) the ledger applies to the lot; approving again reserves nothing more\n"
    "reject   a requested refund is not paid\n"
    "Every transition is audited (refund_transitions: who, when, why); --by defaults to $USER.\n"
    "Exit 1 when the order, lot, record or refund does not exist, the amount is above what can\n"
    "be refunded, or the refund is not in a state that allows it; 2 on a bad command line.\n";

struct refund_args {
    const char *order, *amount, *reason, *by, *account, *state;
    int64_t record_id, limit;
};

struct refund_ctx {
    const struct refund_args *a;
    const char *refund_id;
    int64_t amount_fen;
    char out[512];
};

static int refund_fail(const char *what, const struct tp_error *err)
{
    fprintf(stderr, "topupctl refund %s: %s\n", what, err->msg);
    return err->status == TP_INVALID ? TOPUPCTL_EXIT_USAGE : TOPUPCTL_EXIT_FAILURE;
}

static bool refund_parse_pos(const char *s, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v <= 0) {
        return false;
    }
    *out = v;
    return true;
}

/* Inserts the audit row of request id (as text) going from `from` ("" for none) to `to`. */
static enum tp_status refund_audit(struct pg_conn *c, const char *id, const char *from,
                                   const char *to, const struct refund_args *a,
                                   struct tp_error *err)
{
    const char *p[5] = {id, from, to, a->by, a->reason};
    return pg_exec(c,
                   "INSERT INTO refund_transitions (request_id, from_state, to_state, actor, "
                   "reason) VALUES ($1::bigint, NULLIF($2, ''), $3, $4, $5)",
                   5, p, NULL, err);
}

/* Refunds of lot $1 still open: requested, or approved with a reservation not yet decided. */
#define REFUND_SQL_OPEN_OF_LOT                                                                     \
    "SELECT COALESCE(sum(q.amount_fen), 0) FROM refund_requests q WHERE q.lot_id = $1::bigint "    \
    "AND q.refund_id <> $2 AND (q.state = 'requested' OR (q.state = 'approved' AND NOT EXISTS "    \
    "(SELECT 1 FROM account_flows f WHERE f.event_id = q.reserve_event_id) AND NOT EXISTS "        \
    "(SELECT 1 FROM ledger_rejections j WHERE j.event_id = q.reserve_event_id)))"

/* What lot_id can still refund besides refund_id ("" for a new one); the lot is locked. */
static enum tp_status refund_room(struct pg_conn *c, const char *lot_id, const char *refund_id,
                                  int64_t *room, struct tp_error *err)
{
    PGresult *r = NULL;
    const char *p[2] = {lot_id, refund_id};
    enum tp_status st = pg_exec(
        c, "SELECT left_fen FROM credit_lots WHERE id = $1::bigint FOR UPDATE", 1, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    int64_t left = PQntuples(r) == 1 ? pg_get_i64(r, 0, 0) : 0;
    PQclear(r);
    r = NULL;
    st = pg_exec(c, REFUND_SQL_OPEN_OF_LOT, 2, p, &r, err);
    if (st != TP_OK) {
        return st;
    }
    *room = left - pg_get_i64(r, 0, 0);
    PQclear(r);
    return TP_OK;
}

static const char refund_sql_insert[] =
    "WITH n AS (SELECT nextval(pg_get_serial_sequence('refund_requests', 'id')) AS id) "
    "INSERT INTO refund_requests (id, refund_id, account_id, lot_id, record_id, amount_fen, "
    "dest_name, dest_account, dest_bank, reason, requested_by) "
    "SELECT n.id, 'RF' || lpad(n.id::text, greatest(10, length(n.id::text)), '0'), "
    "NULLIF($1, ''), NULLIF($2, '')::bigint, "
    "$3::bigint, $4::bigint, $5, $6, $7, $8, $9 FROM n RETURNING id, refund_id";

static enum tp_status refund_request_tx(struct pg_conn *c, void *ctx, struct tp_error *err)
{
    struct refund_ctx *x = ctx;
    const struct refund_args *a = x->a;
    PGresult *r = NULL;
    enum tp_status st;
    char record[24], amount[24];
    const char *account = "", *lot = "";
    if (a->order != NULL) {
        st = pg_exec(c,
                     "SELECT id, account_id, record_id, remitter_name, remitter_account, "
                     "remitter_bank FROM credit_lots WHERE order_code = $1 FOR UPDATE",
                     1, &a->order, &r, err);
    } else {
        snprintf(record, sizeof(record), "%lld", (long long)a->record_id);
        const char *p[1] = {record};
        st = pg_exec(c,
                     "SELECT '', '', id, counterparty_name, counterparty_account, "
                     "counterparty_bank, amount_fen, state, direction FROM statement_records "
                     "WHERE id = $1::bigint FOR UPDATE",
                     1, p, &r, err);
    }
    if (st != TP_OK) {
        return st;
    }
    if (PQntuples(r) != 1) {
        st = error_set(err, TP_NOT_FOUND, "%s %s has no %s", a->order ? "order" : "record",
                       a->order ? a->order : record, a->order ? "credit lot" : "statement record");
        goto out;
    }
    if (pg_get_str(r, 0, 4)[0] == '\0') {
        st = error_set(err, TP_NOT_FOUND,
                       "the bank reported no remitter account for this transfer: nothing to pay "
                       "it back to automatically");
        goto out;
    }
    if (a->order != NULL) {
        lot = pg_get_str(r, 0, 0);
        account = pg_get_str(r, 0, 1);
        int64_t room = 0;
        st = refund_room(c, lot, "", &room, err);
        if (st != TP_OK) {
            goto out;
        }
        if (x->amount_fen > room) {
            char want[MONEY_STR_MAX], can[MONEY_STR_MAX];
            st = error_set(err, TP_NOT_FOUND,
                           "%s is more than the %s of unused paid credit of order %s that is not "
                           "being refunded already",
                           money_format(x->amount_fen, want),
                           money_format(room < 0 ? 0 : room, can), a->order);
            goto out;
        }
    } else {
        if (strcmp(pg_get_str(r, 0, 7), "refund") != 0 ||
            strcmp(pg_get_str(r, 0, 8), "credit") != 0) {
            st = error_set(err, TP_NOT_FOUND,
                           "record %s is a %s in state %s: only a credit marked for refund in "
                           "the review queue (topupctl review refund) is refunded without an order",
                           record, pg_get_str(r, 0, 8), pg_get_str(r, 0, 7));
            goto out;
        }
        x->amount_fen = pg_get_i64(r, 0, 6);
    }
    snprintf(record, sizeof(record), "%s", pg_get_str(r, 0, 2));
    snprintf(amount, sizeof(amount), "%lld", (long long)x->amount_fen);
    const char *p[9] = {account,
                        lot,
                        record,
                        amount,
                        pg_get_str(r, 0, 3),
                        pg_get_str(r, 0, 4),
                        pg_get_str(r, 0, 5),
                        a->reason,
                        a->by};
    PGresult *ins = NULL;
    st = pg_exec(c, refund_sql_insert, 9, p, &ins, err);
    if (st == TP_DUPLICATE) {
        st = error_set(err, TP_NOT_FOUND, "record %s is being refunded already", record);
    }
    if (st != TP_OK) {
        goto out;
    }
    char dest[400];
    snprintf(dest, sizeof(dest), "%s %s %s", pg_get_str(r, 0, 3), pg_get_str(r, 0, 4),
             pg_get_str(r, 0, 5));
    char money[MONEY_STR_MAX];
    snprintf(x->out, sizeof(x->out), "%s requested %s to %s", pg_get_str(ins, 0, 1),
             money_format(x->amount_fen, money), dest);
    st = refund_audit(c, pg_get_str(ins, 0, 0), "", "requested", a, err);
    PQclear(ins);
out:
    PQclear(r);
    return st;
}

/* The RefundIssued (bank payout) reserving request refund_id on account through the ledger. */
static enum tp_status refund_queue_reservation(struct pg_conn *c, const char *refund_id,
                                               const char *account, int64_t amount_fen,
                                               const char *order, const char *reason,
                                               char event_id[UUID_STR_LEN], struct tp_error *err)
{
    struct event_envelope_buf eb;
    Topup__V1__RefundIssued m = TOPUP__V1__REFUND_ISSUED__INIT;
    m.envelope = event_envelope_init(&eb, "topupctl", account);
    m.refund_id = (char *)refund_id;
    m.amount_fen = -amount_fen;
    m.kind = TOPUP__V1__REFUND_KIND__REFUND_KIND_BANK_PAYOUT;
    m.reason = (char *)reason;
    m.original_reference = (char *)order;
    uint8_t buf[2048];
    if (topup__v1__refund_issued__get_packed_size(&m) > sizeof(buf)) {
        return error_set(err, TP_INVALID, "the reason is too long for the event");
    }
    size_t len = topup__v1__refund_issued__pack(&m, buf);
    snprintf(event_id, UUID_STR_LEN, "%s", eb.event_id);
    return outbox_write(c, REFUND_OUTBOX_SOURCE, TOPIC_REFUND_ISSUED, account, eb.event_id, buf,
                        len, err);
}

static enum tp_status refund_decide_tx(struct pg_conn *c, void *ctx, struct tp_error *err,
                                       bool approve)
{
    struct refund_ctx *x = ctx;
    PGresult *r = NULL;
    enum tp_status st = pg_exec(c,
                                "SELECT q.id, q.state, COALESCE(q.account_id, ''), "
                                "COALESCE(q.lot_id::text, ''), q.amount_fen, "
                                "COALESCE(q.reserve_event_id, ''), COALESCE(l.order_code, '') "
                                "FROM refund_requests q LEFT JOIN credit_lots l ON l.id = q.lot_id "
                                "WHERE q.refund_id = $1 FOR UPDATE OF q",
                                1, &x->refund_id, &r, err);
    if (st != TP_OK) {
        return st;
    }
    if (PQntuples(r) != 1) {
        st = error_set(err, TP_NOT_FOUND, "refund %s does not exist", x->refund_id);
        goto out;
    }
    const char *state = pg_get_str(r, 0, 1);
    const char *to = approve ? "approved" : "rejected";
    if (strcmp(state, to) == 0) {
        snprintf(x->out, sizeof(x->out), "%s is %s already%s%s: nothing changed", x->refund_id, to,
                 approve ? ", reserved by event " : "", approve ? pg_get_str(r, 0, 5) : "");
        goto out;
    }
    if (strcmp(state, "requested") != 0) {
        st = error_set(err, TP_NOT_FOUND, "refund %s is %s: only a requested refund can be %s",
                       x->refund_id, state, to);
        goto out;
    }
    const char *account = pg_get_str(r, 0, 2), *lot = pg_get_str(r, 0, 3);
    int64_t amount_fen = pg_get_i64(r, 0, 4);
    char event_id[UUID_STR_LEN] = "";
    if (approve && lot[0] != '\0') {
        int64_t room = 0;
        st = refund_room(c, lot, x->refund_id, &room, err);
        if (st != TP_OK) {
            goto out;
        }
        if (amount_fen > room) {
            char want[MONEY_STR_MAX], can[MONEY_STR_MAX];
            st = error_set(err, TP_NOT_FOUND,
                           "refund %s of %s is more than the %s left of its credit lot (used "
                           "since the request): reject it and request again",
                           x->refund_id, money_format(amount_fen, want),
                           money_format(room < 0 ? 0 : room, can));
            goto out;
        }
        st = refund_queue_reservation(c, x->refund_id, account, amount_fen, pg_get_str(r, 0, 6),
                                      x->a->reason, event_id, err);
        if (st != TP_OK) {
            goto out;
        }
    }
    const char *p[3] = {pg_get_str(r, 0, 0), to, event_id};
    st = pg_exec(c,
                 "UPDATE refund_requests SET state = $2, reserve_event_id = NULLIF($3, ''), "
                 "updated_at = now() WHERE id = $1::bigint",
                 3, p, NULL, err);
    if (st == TP_OK) {
        st = refund_audit(c, pg_get_str(r, 0, 0), "requested", to, x->a, err);
    }
    if (st == TP_OK) {
        snprintf(x->out, sizeof(x->out), "%s %s%s%s", x->refund_id, to,
                 event_id[0] ? ", reservation queued as event " : "", event_id);
    }
out:
    PQclear(r);
    return st;
}

static enum tp_status refund_approve_tx(struct pg_conn *c, void *ctx, struct tp_error *err)
{
    return refund_decide_tx(c, ctx, err, true);
}

static enum tp_status refund_reject_tx(struct pg_conn *c, void *ctx, struct tp_error *err)
{
    return refund_decide_tx(c, ctx, err, false);
}

static int refund_list(struct pg_conn *c, const struct refund_args *a)
{
    char limit[24];
    snprintf(limit, sizeof(limit), "%lld", (long long)a->limit);
    const char *p[3] = {a->account != NULL ? a->account : "", a->state != NULL ? a->state : "",
                        limit};
    PGresult *r = NULL;
    struct tp_error err = {0};
    if (pg_exec(c,
                "SELECT refund_id, state, COALESCE(account_id, '-'), amount_fen, dest_name, "
                "dest_account, dest_bank, requested_by, created_at, reason FROM refund_requests "
                "WHERE ($1 = '' OR account_id = $1) AND ($2 = '' OR state = $2) "
                "ORDER BY id DESC LIMIT $3::int",
                3, p, &r, &err) != TP_OK) {
        return refund_fail("list", &err);
    }
    printf("refund_id\tstate\taccount\tamount\tdest_name\tdest_account\tdest_bank\trequested_by"
           "\tcreated_at\treason\n");
    for (int row = 0; row < PQntuples(r); row++) {
        char money[MONEY_STR_MAX];
        printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", pg_get_str(r, row, 0),
               pg_get_str(r, row, 1), pg_get_str(r, row, 2),
               money_format(pg_get_i64(r, row, 3), money), pg_get_str(r, row, 4),
               pg_get_str(r, row, 5), pg_get_str(r, row, 6), pg_get_str(r, row, 7),
               pg_get_str(r, row, 8), pg_get_str(r, row, 9));
    }
    PQclear(r);
    return TOPUPCTL_EXIT_OK;
}

static int refund_parse(int argc, char **argv, struct refund_args *a)
{
    static const struct option opts[] = {{"order", required_argument, NULL, 'o'},
                                         {"record", required_argument, NULL, 'R'},
                                         {"amount", required_argument, NULL, 'm'},
                                         {"reason", required_argument, NULL, 'r'},
                                         {"by", required_argument, NULL, 'b'},
                                         {"account", required_argument, NULL, 'a'},
                                         {"state", required_argument, NULL, 's'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "o:R:m:r:b:a:s:n:", opts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            a->order = optarg;
            break;
        case 'R':
            if (!refund_parse_pos(optarg, &a->record_id)) {
                return -1;
            }
            break;
        case 'm':
            a->amount = optarg;
            break;
        case 'r':
            a->reason = optarg;
            break;
        case 'b':
            a->by = optarg;
            break;
        case 'a':
            a->account = optarg;
            break;
        case 's':
            a->state = optarg;
            break;
        case 'n':
            if (!refund_parse_pos(optarg, &a->limit) || a->limit > REFUND_LIST_MAX) {
                return -1;
            }
            break;
        default:
            return -1;
        }
    }
    if (a->by == NULL) {
        a->by = getenv("USER");
    }
    return 0;
}

int cmd_refund(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(refund_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? TOPUPCTL_EXIT_USAGE : TOPUPCTL_EXIT_OK;
    }
    const char *sub = argv[1];
    struct refund_args a = {.limit = 100};
    optind = 1;
    if (refund_parse(argc - 1, argv + 1, &a) != 0) {
        fputs(refund_usage, stderr);
        return TOPUPCTL_EXIT_USAGE;
    }
    int rest = argc - 1 - optind; /* positional arguments after the subcommand's options */
    const char *pos = rest == 1 ? argv[1 + optind] : NULL;
    bool list = strcmp(sub, "list") == 0, request = strcmp(sub, "request") == 0;
    bool decide = strcmp(sub, "approve") == 0 || strcmp(sub, "reject") == 0;
    struct refund_ctx x = {.a = &a, .refund_id = pos};
    struct tp_error err = {0};
    bool ok = list ? rest == 0 : rest == (decide ? 1 : 0);
    if (ok && !list) {
        ok = (request || decide) && a.reason != NULL && a.reason[0] != '\0' &&
             strlen(a.reason) <= REFUND_REASON_MAX;
    }
    if (ok && request) {
        ok = (a.order != NULL) != (a.record_id > 0) && (a.order == NULL) == (a.amount == NULL);
        if (ok && a.amount != NULL && money_parse(a.amount, &x.amount_fen, &err) != TP_OK) {
            return refund_fail("request", &err);
        }
        ok = ok && (a.amount == NULL || x.amount_fen > 0);
    }
    if (ok && !list && (a.by == NULL || a.by[0] == '\0')) {
        fprintf(stderr, "topupctl refund %s: who does it? --by NAME (or $USER) is needed\n", sub);
        return TOPUPCTL_EXIT_USAGE;
    }
    if (!ok) {
        fprintf(stderr, "topupctl refund: bad arguments for \"%s\"\n\n%s", sub, refund_usage);
        return TOPUPCTL_EXIT_USAGE;
    }
    struct pg_conn *c = pg_conn_new(topupctl_cfg.pg_conninfo, REFUND_CONNECT_MS, &err);
    if (c == NULL) {
        return refund_fail(sub, &err);
    }
    int code = TOPUPCTL_EXIT_OK;
    if (list) {
        code = refund_list(c, &a);
    } else {
        pg_tx_fn *fn = request                       ? refund_request_tx
                       : strcmp(sub, "approve") == 0 ? refund_approve_tx
                                                     : refund_reject_tx;
        if (pg_transaction(c, fn, &x, REFUND_TX_ATTEMPTS, &err) != TP_OK) {
            code = refund_fail(sub, &err);
        } else {
            printf("%s\n", x.out);
        }
    }
    pg_conn_free(c);
    return code;
}
