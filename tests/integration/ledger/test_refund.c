/*
 * Refund requests through topupctl and the ledger: capped at the unused paid credit of the lot,
 * paid to the lot's remitter, approved twice (concurrently) = one reservation, the reservation
 * redelivered = one flow, a consume that spends the lot before the reservation applies makes the
 * ledger refuse it (never both), a forged payout naming a request is refused, every transition
 * audited.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iconv.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "harness.h"
#include "testlib.h"
#include "topup/ids.h"

static char racct[H_ID_MAX];

/* The last line topupctl wrote to stderr (its log in the run's folder) contains what. */
static bool stderr_says(const char *what)
{
    char path[4096], line[2048], last[2048] = "";
    snprintf(path, sizeof(path), "%s/topupctl.log", tl_logdir());
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    while (fgets(line, sizeof(line), f) != NULL) {
        snprintf(last, sizeof(last), "%s", line);
    }
    fclose(f);
    return strstr(last, what) != NULL;
}

static int refund_cmd(char *out, size_t len, const char *const *args)
{
    int rc = h_topupctl(out, len, args);
    fprintf(stderr, "topupctl %s %s -> %d: %s", args[0], args[1], rc, out);
    return rc;
}

/* topupctl refund request ... ; the refund id it printed into id (exit 0 expected). */
static void request_ok(const char *order, const char *amount, char id[32])
{
    char out[4096];
    int rc =
        refund_cmd(out, sizeof(out),
                   (const char *const[]){"refund", "request", "--order", order, "--amount", amount,
                                         "--reason", "customer asked", "--by", "support-li", NULL});
    CHECK_MSG(rc == 0, "refund request %s exited %d", amount, rc);
    CHECK(sscanf(out, "%31s requested", id) == 1 && strncmp(id, "RF", 2) == 0);
}

static void request_refused(const char *order, const char *amount, const char *why)
{
    char out[4096];
    int64_t before = h_i64("SELECT count(*) FROM refund_requests", 0, NULL);
    int rc =
        refund_cmd(out, sizeof(out),
                   (const char *const[]){"refund", "request", "--order", order, "--amount", amount,
                                         "--reason", "customer asked", "--by", "support-li", NULL});
    CHECK_MSG(rc == 1, "refund request %s exited %d, want 1", amount, rc);
    CHECK_MSG(stderr_says(why), "refusal does not say \"%s\"", why);
    CHECK(h_i64("SELECT count(*) FROM refund_requests", 0, NULL) == before);
}

/* Publishes the outbox row event_id as order-intake's relay would (the test stands in for it). */
static void relay(const char *event_id)
{
    PGresult *r = h_sql("SELECT payload FROM outbox WHERE event_id = $1 AND topic = "
                        "'refund.issued' AND source = 'order-intake' AND kafka_key = $2",
                        2, (const char *const[]){event_id, racct});
    CHECK_MSG(PQntuples(r) == 1, "outbox row of %s: %d", event_id, PQntuples(r));
    size_t len = 0;
    unsigned char *payload = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0), &len);
    CHECK(payload != NULL && len > 0);
    h_send_raw("refund.issued", racct, payload, len);
    PQfreemem(payload);
    PQclear(r);
}

/* The event id of the reservation that approving refund_id queued. */
static void reserve_event(const char *refund_id, char out[UUID_STR_LEN])
{
    PGresult *r = h_sql("SELECT reserve_event_id FROM refund_requests WHERE refund_id = $1 AND "
                        "state = 'approved' AND reserve_event_id IS NOT NULL",
                        1, (const char *const[]){refund_id});
    CHECK(PQntuples(r) == 1);
    snprintf(out, UUID_STR_LEN, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* The text of the XPath expr (pain.001.001.09 namespace as p:) in doc, "" when absent. */
static void xp(xmlDocPtr doc, const char *expr, char *out, size_t size, int *count)
{
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    CHECK(ctx != NULL);
    CHECK(xmlXPathRegisterNs(ctx, BAD_CAST "p",
                             BAD_CAST "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09") == 0);
    xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST expr, ctx);
    CHECK(o != NULL);
    int n = o->nodesetval != NULL ? o->nodesetval->nodeNr : 0;
    if (count != NULL) {
        *count = n;
    }
    out[0] = '\0';
    if (n > 0) {
        xmlChar *t = xmlNodeGetContent(o->nodesetval->nodeTab[0]);
        snprintf(out, size, "%s", t != NULL ? (const char *)t : "");
        xmlFree(t);
    }
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(ctx);
}

/* The bytes of path, hex-encoded (for comparing with what PostgreSQL recorded). */
static char *file_hex(const char *path)
{
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "%s was not written", path);
    static char hex[1 << 20];
    size_t n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF && n + 3 < sizeof(hex)) {
        n += (size_t)snprintf(hex + n, 3, "%02x", ch);
    }
    fclose(f);
    return hex;
}

/* payout write: the file recorded by its SHA-256, structure checked, written once. */
static void test_payout(const char *rf1)
{
    h_step("payout write pain001: one file, rf1 sent with its end-to-end id");
    char dir[] = "/tmp/payout-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char out[4096];
    const char *const args[] = {"payout", "write", "--format", "pain001", "--out",
                                dir,      "--by",  "fin-zhao", NULL};
    CHECK(refund_cmd(out, sizeof(out), args) == 0);
    CHECK(h_i64("SELECT count(*) FROM refund_requests WHERE refund_id = $1 AND state = 'sent' AND "
                "end_to_end_id = $1",
                1, (const char *const[]){rf1}) == 1);
    CHECK(h_i64("SELECT count(*) FROM refund_transitions t JOIN refund_requests q ON q.id = "
                "t.request_id WHERE q.refund_id = $1 AND t.from_state = 'approved' AND t.to_state "
                "= 'sent' AND t.actor = 'fin-zhao'",
                1, (const char *const[]){rf1}) == 1);
    CHECK(h_i64("SELECT count(*) FROM payout_files", 0, NULL) == 1);
    PGresult *r = h_sql("SELECT file_name, msg_id FROM payout_files", 0, NULL);
    char path[4200], msg_id[64];
    snprintf(path, sizeof(path), "%s/%s", dir, PQgetvalue(r, 0, 0));
    snprintf(msg_id, sizeof(msg_id), "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    CHECK(h_i64("SELECT count(*) FROM payout_files WHERE sha256 = encode(sha256(decode($1, "
                "'hex')), 'hex') AND written_at IS NOT NULL",
                1, (const char *const[]){file_hex(path)}) == 1);

    xmlDocPtr doc = xmlReadFile(path, NULL, XML_PARSE_NONET);
    CHECK_MSG(doc != NULL, "%s is not well-formed XML", path);
    char v[256];
    int n = 0;
    xp(doc, "/p:Document/p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", v, sizeof(v), &n);
    CHECK(n == 1 && strcmp(v, msg_id) == 0);
    xp(doc, "/p:Document/p:CstmrCdtTrfInitn/p:GrpHdr/p:CreDtTm", v, sizeof(v), &n);
    CHECK(n == 1 && strlen(v) >= 19);
    xp(doc, "/p:Document/p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", v, sizeof(v), &n);
    CHECK(n == 1 && strcmp(v, "1") == 0);
    xp(doc, "/p:Document/p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", v, sizeof(v), &n);
    CHECK(n == 1 && strcmp(v, "60.00") == 0);
    xp(doc, "/p:Document/p:CstmrCdtTrfInitn/p:GrpHdr/p:InitgPty/p:Nm", v, sizeof(v), &n);
    CHECK(n == 1 && v[0] != '\0');
    static const char pmt[] = "/p:Document/p:CstmrCdtTrfInitn/p:PmtInf";
    static const char *const required[] = {"p:PmtInfId",
                                           "p:PmtMtd",
                                           "p:NbOfTxs",
                                           "p:CtrlSum",
                                           "p:ReqdExctnDt/p:Dt",
                                           "p:Dbtr/p:Nm",
                                           "p:DbtrAcct/p:Id/p:Othr/p:Id",
                                           "p:DbtrAgt/p:FinInstnId",
                                           NULL};
    for (int i = 0; required[i] != NULL; i++) {
        char e[256];
        snprintf(e, sizeof(e), "%s/%s", pmt, required[i]);
        xp(doc, e, v, sizeof(v), &n);
        CHECK_MSG(n == 1 && v[0] != '\0', "%s missing", e);
    }
    xp(doc, "/p:Document/p:CstmrCdtTrfInitn/p:PmtInf/p:PmtMtd", v, sizeof(v), NULL);
    CHECK(strcmp(v, "TRF") == 0);
    static const char tx[] = "/p:Document/p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf";
    xp(doc, tx, v, sizeof(v), &n);
    CHECK(n == 1);
    char e[256];
    snprintf(e, sizeof(e), "%s/p:PmtId/p:EndToEndId", tx);
    xp(doc, e, v, sizeof(v), &n);
    CHECK(n == 1 && strcmp(v, rf1) == 0);
    snprintf(e, sizeof(e), "%s/p:Amt/p:InstdAmt[@Ccy='CNY']", tx);
    xp(doc, e, v, sizeof(v), &n);
    CHECK(n == 1 && strcmp(v, "60.00") == 0);
    snprintf(e, sizeof(e), "%s/p:Cdtr/p:Nm", tx);
    xp(doc, e, v, sizeof(v), &n);
    CHECK(n == 1 && strcmp(v, "张三") == 0);
    snprintf(e, sizeof(e), "%s/p:CdtrAcct/p:Id/p:Othr/p:Id", tx);
    xp(doc, e, v, sizeof(v), &n);
    CHECK(n == 1 && strcmp(v, "6217000011112222") == 0);
    snprintf(e, sizeof(e), "%s/p:CdtrAgt/p:FinInstnId/p:Nm", tx);
    xp(doc, e, v, sizeof(v), &n);
    CHECK(n == 1 && strcmp(v, "中国工商银行") == 0);
    xmlFreeDoc(doc);

    h_step("written again: nothing new (no second batch, the file untouched)");
    CHECK(refund_cmd(out, sizeof(out), args) == 0);
    CHECK(strstr(out, "nothing new") != NULL);
    CHECK(h_i64("SELECT count(*) FROM payout_files", 0, NULL) == 1);
    CHECK(h_i64("SELECT count(*) FROM payout_file_items", 0, NULL) == 1);

    h_step("a crash after the record, before the file: the same bytes are written again");
    CHECK(unlink(path) == 0);
    h_exec("UPDATE payout_files SET written_at = NULL", 0, NULL);
    CHECK(refund_cmd(out, sizeof(out), args) == 0);
    CHECK(h_i64("SELECT count(*) FROM payout_files WHERE sha256 = encode(sha256(decode($1, "
                "'hex')), 'hex') AND written_at IS NOT NULL",
                1, (const char *const[]){file_hex(path)}) == 1);
    CHECK(h_i64("SELECT count(*) FROM payout_files", 0, NULL) == 1);
    unlink(path);
    rmdir(dir);
}

/* A review-queue transfer refunded whole (--record), written as a GBK CN CSV. */
static void test_payout_record_gbk(void)
{
    h_step("review-queue refund (--record): no account, nothing reserved, paid by a GBK CSV");
    char txn[H_ID_MAX];
    h_id(txn, "rq");
    h_exec("INSERT INTO statement_records (receiving_account, bank_txn_id, value_date, amount_fen, "
           "currency, direction, event_id, state, counterparty_name, counterparty_account, "
           "counterparty_bank) VALUES ('" H_RECEIVING_ACCOUNT "', $1, DATE '2026-11-25', 12345, "
           "'CNY', 'credit', $1, 'refund', '李娜', '6228480000123456', '中国农业银行')",
           1, (const char *const[]){txn});
    char rec[24];
    snprintf(rec, sizeof(rec), "%lld",
             (long long)h_i64("SELECT id FROM statement_records WHERE bank_txn_id = $1", 1,
                              (const char *const[]){txn}));
    char out[4096], rf[32];
    CHECK(refund_cmd(out, sizeof(out),
                     (const char *const[]){"refund", "request", "--record", rec, "--reason",
                                           "matched nothing", "--by", "support-li", NULL}) == 0);
    CHECK(sscanf(out, "%31s requested", rf) == 1);
    CHECK(refund_cmd(out, sizeof(out),
                     (const char *const[]){"refund", "request", "--record", rec, "--reason",
                                           "again", "--by", "support-li", NULL}) == 1);
    CHECK(refund_cmd(out, sizeof(out),
                     (const char *const[]){"refund", "approve", rf, "--reason", "ok", "--by",
                                           "lead-wang", NULL}) == 0);
    CHECK(h_i64("SELECT count(*) FROM refund_requests WHERE refund_id = $1 AND state = 'approved' "
                "AND account_id IS NULL AND reserve_event_id IS NULL AND amount_fen = 12345",
                1, (const char *const[]){rf}) == 1);
    char dir[] = "/tmp/payout-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    const char *const args[] = {"payout", "write", "--format", "cn-csv",   "--encoding", "gbk",
                                "--out",  dir,     "--by",     "fin-zhao", NULL};
    /* Written twice at once: one batch, one file. */
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        CHECK(kids[k] >= 0);
        if (kids[k] == 0) {
            char o[4096];
            _exit(h_topupctl(o, sizeof(o), args));
        }
    }
    for (int k = 0; k < 2; k++) {
        int ws = 0;
        CHECK(waitpid(kids[k], &ws, 0) == kids[k]);
        CHECK_MSG(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "payout write %d: status %d", k, ws);
    }
    CHECK(h_i64("SELECT count(*) FROM payout_files WHERE format = 'cn-csv'", 0, NULL) == 1);
    CHECK(h_i64("SELECT count(*) FROM refund_transitions t JOIN refund_requests q ON q.id = "
                "t.request_id WHERE q.refund_id = $1 AND t.to_state = 'sent'",
                1, (const char *const[]){rf}) == 1);
    CHECK(h_i64("SELECT count(*) FROM refund_requests WHERE refund_id = $1 AND state = 'sent' AND "
                "end_to_end_id = $1",
                1, (const char *const[]){rf}) == 1);
    PGresult *r = h_sql("SELECT file_name FROM payout_files WHERE format = 'cn-csv' AND encoding "
                        "= 'gbk'",
                        0, NULL);
    CHECK(PQntuples(r) == 1);
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, PQgetvalue(r, 0, 0));
    PQclear(r);
    CHECK(h_i64("SELECT count(*) FROM payout_files WHERE format = 'cn-csv' AND sha256 = "
                "encode(sha256(decode($1, 'hex')), 'hex')",
                1, (const char *const[]){file_hex(path)}) == 1);
    /* The line as the bank reads it: the expected UTF-8 converted to GBK, found in the file. */
    char want[512], gbk[512];
    snprintf(want, sizeof(want), "1,6228480000123456,李娜,中国农业银行,123.45,CNY,");
    iconv_t cd = iconv_open("GBK", "UTF-8");
    CHECK(cd != (iconv_t)-1);
    char *in = want, *o = gbk;
    size_t li = strlen(want), lo = sizeof(gbk) - 1;
    CHECK(iconv(cd, &in, &li, &o, &lo) != (size_t)-1);
    *o = '\0';
    iconv_close(cd);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    static char bytes[1 << 16];
    size_t n = fread(bytes, 1, sizeof(bytes) - 1, f);
    fclose(f);
    bytes[n] = '\0';
    CHECK_MSG(strstr(bytes, gbk) != NULL, "the GBK line is not in %s", path);
    CHECK(strstr(bytes, "李娜") == NULL); /* not UTF-8 */
    CHECK(strstr(bytes, rf) != NULL);
    CHECK(refund_cmd(out, sizeof(out), args) == 0 && strstr(out, "nothing new") != NULL);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    h_init(argc, argv, "ledger_refund");
    char group[H_ID_MAX];
    h_id(group, "ledger-refund");
    h_id(racct, "refund");
    h_group_at_end(group);
    h_mark_topics();
    struct h_proc led;
    h_ledger_start(&led, "ledger", group, NULL);

    h_step("a 100.00 credit from 张三, 30.00 of it used");
    char o1[REFCODE_STR_LEN], eid[UUID_STR_LEN];
    ids_refcode_new(o1);
    h_order(o1, racct, 10000, "processing");
    h_event_id(eid);
    h_record_match(o1, eid, 10000);
    h_exec("UPDATE statement_records SET counterparty_name = '张三', counterparty_account = "
           "'6217000011112222', counterparty_bank = '中国工商银行' WHERE bank_txn_id = $1",
           1, (const char *const[]){eid});
    h_send_matched_unrecorded(eid, racct, o1, 10000, 10000, eid);
    h_wait_i64("the recharge", "SELECT count(*) FROM account_flows WHERE account_id = $1", 1,
               (const char *const[]){racct}, 1);
    request_refused(o1, "150.00", "is more than the 100.00 of unused paid credit");
    {
        char bad[4096];
        CHECK(refund_cmd(bad, sizeof(bad),
                         (const char *const[]){"refund", "request", "--order", o1, "--amount",
                                               "100.001", "--reason", "r", "--by", "x", NULL}) ==
              2);
        CHECK(h_i64("SELECT count(*) FROM refund_requests", 0, NULL) == 0);
    }
    h_event_id(eid);
    h_send_usage(eid, racct, "req-1", -3000);
    h_wait_i64("the usage", "SELECT count(*) FROM account_flows WHERE account_id = $1", 1,
               (const char *const[]){racct}, 2);

    h_step("capped at the 70.00 left; a second request only for what the first leaves");
    request_refused(o1, "80.00", "is more than the 70.00 of unused paid credit");
    char rf1[32];
    request_ok(o1, "60.00", rf1);
    CHECK(h_i64("SELECT count(*) FROM refund_requests WHERE refund_id = $1 AND state = "
                "'requested' AND account_id = $2 AND amount_fen = 6000 AND dest_name = '张三' "
                "AND dest_account = '6217000011112222' AND dest_bank = '中国工商银行' AND "
                "requested_by = 'support-li'",
                2, (const char *const[]){rf1, racct}) == 1);
    request_refused(o1, "20.00", "is more than the 10.00 of unused paid credit");
    char out[4096];
    CHECK(refund_cmd(out, sizeof(out),
                     (const char *const[]){"refund", "request", "--order", o1, "--amount", "10.00",
                                           NULL}) == 2); /* no --reason */

    h_step("approved twice at once: one reservation, one audit row");
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        CHECK(kids[k] >= 0);
        if (kids[k] == 0) {
            char o[4096];
            int rc =
                h_topupctl(o, sizeof(o),
                           (const char *const[]){"refund", "approve", rf1, "--reason",
                                                 "checked the lot", "--by", "lead-wang", NULL});
            _exit(rc);
        }
    }
    for (int k = 0; k < 2; k++) {
        int ws = 0;
        CHECK(waitpid(kids[k], &ws, 0) == kids[k]);
        CHECK_MSG(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "approve %d: status %d", k, ws);
    }
    CHECK(h_i64("SELECT count(*) FROM outbox WHERE topic = 'refund.issued' AND kafka_key = $1", 1,
                (const char *const[]){racct}) == 1);
    CHECK(h_i64("SELECT count(*) FROM refund_transitions t JOIN refund_requests q ON q.id = "
                "t.request_id WHERE q.refund_id = $1 AND t.to_state = 'approved' AND "
                "t.from_state = 'requested' AND t.actor = 'lead-wang' AND t.reason = "
                "'checked the lot'",
                1, (const char *const[]){rf1}) == 1);
    char res1[UUID_STR_LEN];
    reserve_event(rf1, res1);

    h_step("the reservation, delivered twice, takes 60.00 once, from the lot");
    relay(res1);
    relay(res1);
    h_wait_i64("the reservation", "SELECT count(*) FROM account_flows WHERE event_id = $1", 1,
               (const char *const[]){res1}, 1);
    CHECK(h_i64("SELECT amount_fen FROM account_flows WHERE event_id = $1 AND flow_type = "
                "'refund' AND reference = $2",
                2, (const char *const[]){res1, rf1}) == -6000);
    CHECK(h_balance(racct) == 1000);
    CHECK(h_i64("SELECT left_fen FROM credit_lots WHERE order_code = $1", 1,
                (const char *const[]){o1}) == 1000);

    h_step("refund vs consume: a usage spends the lot before the reservation applies");
    char rf2[32];
    request_ok(o1, "10.00", rf2);
    CHECK(refund_cmd(out, sizeof(out),
                     (const char *const[]){"refund", "approve", rf2, "--reason", "ok", "--by",
                                           "lead-wang", NULL}) == 0);
    char res2[UUID_STR_LEN];
    reserve_event(rf2, res2);
    h_event_id(eid);
    h_send_usage(eid, racct, "req-2", -800);
    h_wait_i64("the second usage", "SELECT count(*) FROM account_flows WHERE event_id = $1", 1,
               (const char *const[]){eid}, 1);
    relay(res2);
    h_wait_i64("the refused reservation",
               "SELECT count(*) FROM ledger_rejections WHERE event_id = $1 AND reason LIKE "
               "'%has only 200 fen left%'",
               1, (const char *const[]){res2}, 1);
    CHECK(h_i64("SELECT count(*) FROM account_flows WHERE event_id = $1", 1,
                (const char *const[]){res2}) == 0);
    CHECK(h_balance(racct) == 200);
    h_step("the refused reservation ends its request: refused, with the reason, audited");
    CHECK(h_i64("SELECT count(*) FROM refund_requests WHERE refund_id = $1 AND state = 'refused' "
                "AND state_reason LIKE '%has only 200 fen left%'",
                1, (const char *const[]){rf2}) == 1);
    CHECK(h_i64("SELECT count(*) FROM refund_transitions t JOIN refund_requests q ON q.id = "
                "t.request_id WHERE q.refund_id = $1 AND t.from_state = 'approved' AND "
                "t.to_state = 'refused' AND t.actor = 'ledger'",
                1, (const char *const[]){rf2}) == 1);
    relay(res2); /* redelivered: refused again; checked once the next event (same key) is in */

    h_step("a forged payout naming an approved refund under another event id is refused");
    char forged[UUID_STR_LEN];
    h_event_id(forged);
    h_send_refund(forged, racct, rf1, -6000, 2);
    h_wait_i64("the forged payout's refusal",
               "SELECT count(*) FROM ledger_rejections WHERE event_id = $1 AND reason LIKE "
               "'%is not the reservation of refund request%'",
               1, (const char *const[]){forged}, 1);
    CHECK(h_balance(racct) == 200);
    CHECK(h_i64("SELECT count(*) FROM refund_transitions t JOIN refund_requests q ON q.id = "
                "t.request_id WHERE q.refund_id = $1",
                1, (const char *const[]){rf2}) == 3); /* requested, approved, refused: once */
    CHECK(h_i64("SELECT count(*) FROM refund_requests WHERE refund_id = $1 AND state = "
                "'approved' AND state_reason IS NULL",
                1, (const char *const[]){rf1}) == 1);

    h_step("reject: audited; a rejected refund cannot be approved");
    char rf3[32];
    request_ok(o1, "1.00", rf3);
    CHECK(refund_cmd(out, sizeof(out),
                     (const char *const[]){"refund", "reject", rf3, "--reason", "duplicate ticket",
                                           "--by", "lead-wang", NULL}) == 0);
    CHECK(refund_cmd(out, sizeof(out),
                     (const char *const[]){"refund", "approve", rf3, "--reason", "x", "--by",
                                           "lead-wang", NULL}) == 1);
    CHECK(stderr_says("only a requested refund can be approved"));
    CHECK(h_i64("SELECT count(*) FROM refund_transitions t JOIN refund_requests q ON q.id = "
                "t.request_id WHERE q.refund_id = $1",
                1, (const char *const[]){rf3}) == 2);
    CHECK(refund_cmd(out, sizeof(out),
                     (const char *const[]){"refund", "list", "--account", racct, NULL}) == 0);
    CHECK(strstr(out, rf1) != NULL && strstr(out, "approved") != NULL &&
          strstr(out, "rejected") != NULL && strstr(out, "6217000011112222") != NULL);
    CHECK(h_ledger_stop(&led, SIGTERM, 30000) == 0);

    h_step("verify: no violations (lots left = balance)");
    int rc = h_topupctl(out, sizeof(out), (const char *const[]){"verify", NULL});
    fprintf(stderr, "%s", out);
    CHECK_MSG(rc == 0, "verify exited %d", rc);
    test_payout(rf1);
    test_payout_record_gbk();
    h_step("ok");
    return 0;
}
