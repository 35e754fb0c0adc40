/*
 * The nightly close of a day the real services made: orders over order-intake's HTTP, a statement
 * through statement-import, reconciliation and ledger crediting them, usage through Kafka, a
 * support refund requested and approved with topupctl; `topupctl close` of that day exits 0 with
 * figures equal to what was driven; then an old transfer that matches nothing, imported for real,
 * is the break credit_not_matched with its age. A transfer for a cancelled order goes to review,
 * support marks it for refund (`topupctl review refund`) and refunds it (`topupctl refund request
 * --record`, approve): the close lists that refund without a ledger account.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define CLOSE_STR_(x) #x
#define CLOSE_STR(x)  CLOSE_STR_(x)

#define PAYEE_ACCOUNT     "6225 8802 1234 5678"
#define RECEIVING_ACCOUNT "6225880212345678"
#define SETTLE_MS         90000
#define HTTP_MS           10000
#define TOOL_MS           120000
/* What is driven: two top-ups, one usage, one refund approved, one order left unpaid. */
#define TOPUP_A_FEN  10000
#define TOPUP_B_FEN  25000
#define UNPAID_FEN   8000
#define USAGE_A_FEN  1234
#define REFUND_B_FEN 5000
#define BANK_FEE_FEN 150
/* Paid for an order the user had cancelled: review, marked for refund, paid back whole. */
#define CANCELLED_FEN 6000
#define AGED_DAYS     9
#define AGED_FEN      7777

static struct tl_intake intake;
static struct tl_proc ledger, recon;
static char day[11];

static void create_order(const char *token, int64_t fen, const char *name, char code[32])
{
    char amt[32], idem[64];
    tl_fen_str(fen, amt, sizeof(amt));
    snprintf(idem, sizeof(idem), "close-%s-%" PRId64, tl_sfx(), fen);
    json_t *body =
        json_pack("{s:s, s:s, s:s, s:s, s:b}", "amount", amt, "channel", "bank_transfer",
                  "remitter_name", name, "remitter_bank", "中国工商银行", "agreement_accepted", 1);
    char *text = json_dumps(body, JSON_COMPACT);
    struct tl_http_resp r;
    int st = tl_http(intake.port, "POST", "/v1/topup-orders", token, idem, text, &r, HTTP_MS);
    TL_CHECK_MSG(st == 201, "create order: HTTP %d %s", st, r.body != NULL ? r.body : r.error);
    snprintf(code, 32, "%s", tl_json_str(r.json, "code"));
    tl_http_free(&r);
    free(text);
    json_decref(body);
}

static void transfer(struct tl_txn *t, int n, int64_t fen, const char *name, const char *remit,
                     int days_back)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->txn_id, sizeof(t->txn_id), "C%s%02d", tl_sfx(), n);
    t->amount_fen = fen;
    snprintf(t->name, sizeof(t->name), "%s", name);
    snprintf(t->cp_account, sizeof(t->cp_account), "62220200%08d", 5000 + n);
    snprintf(t->cp_bank, sizeof(t->cp_bank), "%s", "中国工商银行");
    snprintf(t->remittance, sizeof(t->remittance), "%s", remit);
    tl_shanghai_date(t->value_date, -days_back);
}

static void import(const char *name, const struct tl_txn *t, size_t n)
{
    char path[TL_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s.csv", tl_logdir(), name);
    tl_stmt_write(TL_STMT_CSV_CMB, path, RECEIVING_ACCOUNT, t, n);
    char *out = NULL;
    int rc = tl_import(path, tl_stmt_import_args(TL_STMT_CSV_CMB, RECEIVING_ACCOUNT), &out);
    TL_CHECK_MSG(rc == 0, "statement-import %s: exit %d", path, rc);
    free(out);
}

static int run_tool(char **out, const char *const *argv)
{
    return tl_run("topupctl", argv, NULL, out, TOOL_MS);
}

static int close_day(const char *csv, char **out)
{
    const char *argv[] = {
        tl_bin("topupctl"), "close", "--date", day, "--by", "e2e", "--csv", csv, NULL};
    return run_tool(out, argv);
}

/* The CSV holds this exact line (date prefixed). */
static void csv_has(const char *csv_text, const char *what, const char *line)
{
    char want[512];
    snprintf(want, sizeof(want), "\n%s,%s\n", day, line);
    TL_CHECK_MSG(strstr(csv_text, want) != NULL, "close CSV: %s: no line \"%s,%s\" in:\n%s", what,
                 day, line, csv_text);
}

int main(void)
{
    tl_init("e2e_close");
    tl_shanghai_date(day, 0);
    tl_kafka_private_start();
    static const char *const recon_env[] = {"RECON_RECEIVING_ACCOUNTS=" RECEIVING_ACCOUNT,
                                            "RECON_RELAY_POLL_MS=200", NULL};
    static const char *const ledger_env[] = {"LEDGER_BATCH_WAIT_MS=50", NULL};
    static const char *const intake_env[] = {"INTAKE_PAYEE_ACCOUNT_NUMBER=" PAYEE_ACCOUNT,
                                             "INTAKE_OUTBOX_POLL_MS=200", NULL};
    tl_worker_start(&ledger, "ledger", "ledger", ledger_env);
    tl_worker_start(&recon, "reconciliation", "reconciliation", recon_env);
    tl_intake_start(&intake, intake_env);
    char a[TL_ID_MAX], b[TL_ID_MAX];
    tl_id(a, "close-a");
    tl_id(b, "close-b");
    char *ta = tl_token(a), *tb = tl_token(b);

    /* Orders over HTTP; a statement paying two of them by their codes, plus a bank fee. */
    char code_a[32], code_b[32], code_unpaid[32], code_cancelled[32];
    create_order(ta, TOPUP_A_FEN, "王伟", code_a);
    create_order(tb, TOPUP_B_FEN, "李芳", code_b);
    create_order(tb, UNPAID_FEN, "李芳", code_unpaid);
    create_order(ta, CANCELLED_FEN, "王伟", code_cancelled);
    char path[96];
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", code_cancelled);
    struct tl_http_resp hr;
    int st = tl_http(intake.port, "POST", path, ta, NULL, NULL, &hr, HTTP_MS);
    TL_CHECK_MSG(st == 200, "cancel %s: HTTP %d", code_cancelled, st);
    tl_http_free(&hr);
    struct tl_txn t[4];
    char remit[64];
    snprintf(remit, sizeof(remit), "充值 %s", code_a);
    transfer(&t[0], 0, TOPUP_A_FEN, "王伟", remit, 0);
    snprintf(remit, sizeof(remit), "充值 %s", code_b);
    transfer(&t[1], 1, TOPUP_B_FEN, "李芳", remit, 0);
    transfer(&t[2], 2, -BANK_FEE_FEN, "手续费", "汇款手续费", 0);
    snprintf(remit, sizeof(remit), "充值 %s", code_cancelled);
    transfer(&t[3], 3, CANCELLED_FEN, "王伟", remit, 0);
    import("stmt-day", t, 4);
    const char *codes[2] = {code_a, code_b};
    tl_pg_wait_i64("both paid orders credited",
                   "SELECT count(*) FROM topup_orders o JOIN account_flows f ON f.reference = "
                   "o.code AND f.flow_type = 'recharge' WHERE o.status = 'completed' AND o.code IN "
                   "($1, $2)",
                   2, codes, 2, SETTLE_MS);
    tl_step("2 orders paid through statement-import, reconciliation and ledger");

    /* Usage as a gateway sends it; a support refund of part of b's credit. */
    struct tl_producer *gw = tl_producer_new("close-gateway");
    char eid[UUID_STR_LEN], req[64];
    tl_event_id(eid);
    snprintf(req, sizeof(req), "req-close-%s", tl_sfx());
    tl_produce_usage(gw, eid, a, req, -USAGE_A_FEN);
    tl_producer_flush(gw, 30000);
    char amt[32], *out = NULL;
    tl_fen_str(REFUND_B_FEN, amt, sizeof(amt));
    const char *rq[] = {tl_bin("topupctl"), "refund", "request",  "--order",        code_b,
                        "--amount",         amt,      "--reason", "customer asked", "--by",
                        "e2e-support",      NULL};
    int rc = run_tool(&out, rq);
    char refund_id[32] = "";
    TL_CHECK_MSG(rc == 0 && sscanf(out, "%31s requested", refund_id) == 1,
                 "refund request: exit %d %s", rc, out != NULL ? out : "");
    free(out);
    const char *ap[] = {
        tl_bin("topupctl"), "refund", "approve", refund_id, "--reason", "ok", "--by",
        "e2e-lead",         NULL};
    rc = run_tool(&out, ap);
    TL_CHECK_MSG(rc == 0, "refund approve %s: exit %d %s", refund_id, rc, out != NULL ? out : "");
    free(out);
    const char *pr[3] = {req, refund_id, b};
    tl_pg_wait_i64(
        "the usage charged and the refund reserved",
        "SELECT count(*) FROM account_flows WHERE (flow_type = 'consume' AND reference = "
        "$1) OR (flow_type = 'refund' AND reference = $2 AND account_id = $3)",
        3, pr, 2, SETTLE_MS);
    tl_pg_wait_i64("the outbox published", "SELECT count(*) FROM outbox WHERE published_at IS NULL",
                   0, NULL, 0, SETTLE_MS);
    tl_step("usage %s charged, refund %s approved and reserved", req, refund_id);
    /* The transfer for the cancelled order: review, marked for refund, refunded whole. */
    const char *pc[1] = {t[3].txn_id};
    tl_pg_wait_i64("the cancelled order's transfer in review",
                   "SELECT count(*) FROM review_queue q JOIN statement_records r ON r.id = "
                   "q.record_id WHERE r.bank_txn_id = $1 AND q.reason = 'order_not_pending'",
                   1, pc, 1, SETTLE_MS);
    char review_id[24], record_id[24];
    snprintf(review_id, sizeof(review_id), "%" PRId64,
             tl_pg_i64("SELECT q.id FROM review_queue q JOIN statement_records r ON r.id = "
                       "q.record_id WHERE r.bank_txn_id = $1",
                       1, pc));
    snprintf(record_id, sizeof(record_id), "%" PRId64,
             tl_pg_i64("SELECT id FROM statement_records WHERE bank_txn_id = $1", 1, pc));
    const char *rv[] = {
        tl_bin("topupctl"),    "review", "refund", review_id, "--actor", "e2e-support", "--reason",
        "order was cancelled", NULL};
    rc = run_tool(&out, rv);
    TL_CHECK_MSG(rc == 0, "review refund %s: exit %d %s", review_id, rc, out != NULL ? out : "");
    free(out);
    const char *rr[] = {
        tl_bin("topupctl"),    "refund", "request",     "--record", record_id, "--reason",
        "order was cancelled", "--by",   "e2e-support", NULL};
    rc = run_tool(&out, rr);
    char refund_rec[32] = "";
    TL_CHECK_MSG(rc == 0 && sscanf(out, "%31s requested", refund_rec) == 1,
                 "refund request --record %s: exit %d %s", record_id, rc, out != NULL ? out : "");
    free(out);
    const char *ar[] = {
        tl_bin("topupctl"), "refund", "approve", refund_rec, "--reason", "ok", "--by",
        "e2e-lead",         NULL};
    rc = run_tool(&out, ar);
    TL_CHECK_MSG(rc == 0 && strstr(out, "reservation") == NULL,
                 "refund approve %s (review queue: nothing to reserve): exit %d %s", refund_rec, rc,
                 out != NULL ? out : "");
    free(out);
    const char *pq[1] = {refund_rec};
    TL_CHECK_MSG(tl_pg_i64("SELECT count(*) FROM refund_requests WHERE refund_id = $1 AND state = "
                           "'approved' AND account_id IS NULL AND amount_fen = " CLOSE_STR(
                               CANCELLED_FEN) " AND dest_name = '王伟'",
                           1, pq) == 1,
                 "the review-queue refund %s is not approved for the whole transfer", refund_rec);
    rc = tl_verify(&out);
    TL_CHECK_MSG(rc == 0, "topupctl verify: exit %d\n%s", rc, out);
    free(out);

    /* The close: no break, figures equal to what was driven. */
    char csv[TL_PATH_MAX];
    snprintf(csv, sizeof(csv), "%s/close-%s.csv", tl_logdir(), day);
    rc = close_day(csv, &out);
    TL_CHECK_MSG(rc == 0 && strstr(out, "\n0 breaks\n") != NULL, "close %s: exit %d, want 0:\n%s",
                 day, rc, out);
    free(out);
    size_t len = 0;
    char *text = tl_read_file(csv, &len);
    char line[256];
    const int64_t credits = TOPUP_A_FEN + TOPUP_B_FEN;
    snprintf(line, sizeof(line), "figure,statement_credits,,,,,,%" PRId64 ",,3,,,,,,,,",
             credits + CANCELLED_FEN);
    csv_has(text, "statement credits", line);
    snprintf(line, sizeof(line), "figure,matched_records,,,,,,%" PRId64 ",,2,,,,,,,,", credits);
    csv_has(text, "matched records", line);
    snprintf(line, sizeof(line), "figure,recharge_flows,,,,,,%" PRId64 ",,2,,,,,,,,", credits);
    csv_has(text, "recharges", line);
    snprintf(line, sizeof(line), "figure,consume,,,,,,%d,,0,,,,,,,,", -USAGE_A_FEN);
    csv_has(text, "consume", line);
    snprintf(line, sizeof(line), "figure,refund,,,,,,%d,,0,,,,,,,,", -REFUND_B_FEN);
    csv_has(text, "refund flows", line);
    csv_has(text, "opening", "figure,opening,,,,,,0,,0,,,,,,,,");
    snprintf(line, sizeof(line), "figure,closing,,,,,,%" PRId64 ",,0,,,,,,,,",
             credits - USAGE_A_FEN - REFUND_B_FEN);
    csv_has(text, "closing", line);
    snprintf(line, sizeof(line), "figure,refunds_approved,,,,,,%d,,2,,,,,,,,",
             REFUND_B_FEN + CANCELLED_FEN);
    csv_has(text, "refunds approved", line);
    csv_has(text, "refunds sent", "figure,refunds_sent,,,,,,0,,0,,,,,,,,");
    csv_has(text, "refunds outstanding", "figure,refunds_outstanding,,,,,,0,,0,,,,,,,,");
    snprintf(line, sizeof(line), "account,roll_forward,%s,,,,,,,,,0,%d,%d,0,%d,,", a, TOPUP_A_FEN,
             -USAGE_A_FEN, TOPUP_A_FEN - USAGE_A_FEN);
    csv_has(text, "roll-forward of a", line);
    snprintf(line, sizeof(line), "account,roll_forward,%s,,,,,,,,,0,%d,0,%d,%d,,", b, TOPUP_B_FEN,
             -REFUND_B_FEN, TOPUP_B_FEN - REFUND_B_FEN);
    csv_has(text, "roll-forward of b", line);
    const char *pb[1] = {refund_id};
    int64_t rec = tl_pg_i64("SELECT record_id FROM refund_requests WHERE refund_id = $1", 1, pb);
    snprintf(line, sizeof(line), "refund,approved,%s,%" PRId64 ",,%s,,%d,,,,,,,,,,%s", b, rec,
             code_b, REFUND_B_FEN, refund_id);
    csv_has(text, "the approved refund", line);
    snprintf(line, sizeof(line), "refund,approved,,%s,,,,%d,,,,,,,,,,%s", record_id, CANCELLED_FEN,
             refund_rec);
    csv_has(text, "the approved review-queue refund", line);
    TL_CHECK_MSG(strstr(text, ",break,") == NULL && strstr(text, ",unmatched,") == NULL,
                 "a clean day has breaks or unmatched funds:\n%s", text);
    free(text);
    tl_step("close %s: exit 0, figures, roll-forwards and the refund equal what was driven", day);

    /* A transfer dated AGED_DAYS back that matches nothing: unmatched funds past the limit. */
    struct tl_txn aged;
    transfer(&aged, 9, AGED_FEN, "无人认领", "货款", AGED_DAYS);
    import("stmt-aged", &aged, 1);
    const char *pa[1] = {aged.txn_id};
    tl_pg_wait_i64("the aged credit stored",
                   "SELECT count(*) FROM statement_records WHERE bank_txn_id = $1 AND state IN "
                   "('unmatched', 'review')",
                   1, pa, 1, SETTLE_MS);
    int64_t id = tl_pg_i64("SELECT id FROM statement_records WHERE bank_txn_id = $1", 1, pa);
    snprintf(csv, sizeof(csv), "%s/close-%s-aged.csv", tl_logdir(), day);
    rc = close_day(csv, &out);
    char want[256];
    snprintf(want, sizeof(want),
             "\nbreak credit_not_matched: record_id=%" PRId64 " bank_txn_id=%s amount_fen=%d "
             "age_days=%d ",
             id, aged.txn_id, AGED_FEN, AGED_DAYS);
    TL_CHECK_MSG(rc == 1 && strstr(out, want) != NULL && strstr(out, "\n1 break\n") != NULL,
                 "close with an aged unmatched credit: exit %d, want 1 with \"%s\":\n%s", rc,
                 want + 1, out);
    free(out);
    tl_step("an unmatched credit of %d days: close exit 1, credit_not_matched record %" PRId64,
            AGED_DAYS, id);

    tl_producer_free(gw);
    free(ta);
    free(tb);
    static struct tl_proc *const stop[] = {&intake.proc, &recon, &ledger};
    for (int i = 0; i < 3; i++) {
        int64_t ms = 0;
        int code = tl_proc_stop(stop[i], SIGTERM, 15000, &ms);
        TL_CHECK_MSG(code == 0, "%s: SIGTERM exit %d", stop[i]->name, code);
    }
    tl_proc_kill_all();
    tl_step("PASS");
    return 0;
}
