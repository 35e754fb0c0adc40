/*
 * Reconciliation end to end: the worker binary against the stack's PostgreSQL and dev broker.
 * Orders are written with SQL (as order-intake would), statement records and order events are
 * produced to Kafka, and the outcome is read back from PostgreSQL, Kafka and Redis: rule 1 and 2
 * matches, every review reason, ignored records, duplicates, late orders, a cancel racing a
 * claim, the dead-letter topic, support's topupctl review actions, kill -9 and a clean SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt.h"
#include "topup/event.h"
#include "topup/kafka.h"
#include "topup/pg.h"

#define WAIT_MS 30000

static struct rt t;
static char log_path[512];

struct order {
    char code[REFCODE_STR_LEN];
    char account[64];
    int64_t amount_fen;
    const char *name;
    int64_t id;
};

static void order_new(struct order *o, const char *acct_tag, int64_t amount_fen, const char *name,
                      int64_t created_ms, const char *status)
{
    ids_refcode_new(o->code);
    snprintf(o->account, sizeof(o->account), "e2e-%s-%s", t.suffix, acct_tag);
    o->amount_fen = amount_fen;
    o->name = name;
    o->id = rt_order(&t, o->code, o->account, amount_fen, name, created_ms,
                     created_ms + 3 * RT_MS_PER_DAY, status);
}

/*
 * Waits up to 5 s (the worker flushes every second) until counter `name` grew by at least want
 * since base; reports the growth seen.
 */
static bool counter_grew(const char *name, int64_t base, int64_t want)
{
    int64_t d = 0;
    for (int waited = 0; waited <= 5000; waited += 200) {
        d = rt_counter(name) - base;
        if (d >= want) {
            break;
        }
        usleep(200 * 1000);
    }
    return rt_check(&t, d >= want, "counter %s grew by >= %lld (%lld)", name, (long long)want,
                    (long long)d);
}

static void txn(char *out, size_t len, const char *tag)
{
    snprintf(out, len, "e2e-%s-%s", t.suffix, tag);
}

/* Waits until the record with this txn tag is in state `want`. */
static bool wait_state(const char *tag, const char *want)
{
    char id[128];
    txn(id, sizeof(id), tag);
    const char *const p[1] = {id};
    return rt_check(&t,
                    rt_wait(&t, WAIT_MS, want,
                            "SELECT state FROM statement_records WHERE bank_txn_id = $1", 1, p),
                    "record %s is %s", tag, want);
}

/* First cell of a query about a record (by txn tag): $1 is its bank_txn_id. */
static const char *about(char *out, size_t len, const char *tag, const char *sql)
{
    char id[128];
    txn(id, sizeof(id), tag);
    const char *const p[1] = {id};
    return rt_scalar(&t, out, len, sql, 1, p);
}

static const char *order_status(char *out, size_t len, const struct order *o)
{
    const char *const p[1] = {o->code};
    return rt_scalar(&t, out, len, "SELECT status FROM topup_orders WHERE code = $1", 1, p);
}

/* "ｔｕ７ｋ－３ｍ９－ｑ２ｘ": the code in lower-case full-width with full-width hyphens. */
static void fullwidth_code(const char *code, char *out, size_t len)
{
    size_t o = 0;
    for (int i = 0; code[i] != '\0' && o + 8 < len; i++) {
        if (i == 4 || i == 7) {
            memcpy(out + o, "\xef\xbc\x8d", 3); /* U+FF0D */
            o += 3;
        }
        unsigned c = (unsigned char)code[i];
        if (c >= 'A' && c <= 'Z') {
            c += 'a' - 'A';
        }
        unsigned cp = 0xFF00 + (c - 0x20);
        out[o++] = (char)(0xE0 | (cp >> 12));
        out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[o++] = (char)(0x80 | (cp & 0x3F));
    }
    out[o] = '\0';
}

static void record(const char *tag, int64_t amount, const char *name, const char *remittance,
                   const char *value_date, const char *receiving)
{
    char id[128];
    txn(id, sizeof(id), tag);
    struct rt_record r = {.txn_id = id,
                          .amount_fen = amount,
                          .name = name,
                          .remittance = remittance,
                          .value_date = value_date,
                          .receiving_account = receiving};
    rt_record(&t, &r);
}

/* The open review item of a record, "" if none. */
static const char *review_of(char *out, size_t len, const char *tag, const char *reason)
{
    char id[128];
    txn(id, sizeof(id), tag);
    const char *const p[2] = {id, reason};
    return rt_scalar(
        &t, out, len,
        "SELECT q.id FROM review_queue q JOIN statement_records r ON r.id = q.record_id"
        " WHERE r.bank_txn_id = $1 AND q.reason = $2 AND q.status = 'open'",
        2, p);
}

struct wanted {
    const char *key;
    const char *code; /* NULL: any message with the key */
    Topup__V1__PaymentMatched *found;
};

static bool wanted_match(void *ctx, const char *key, size_t key_len, const void *payload,
                         size_t len)
{
    struct wanted *w = ctx;
    if (key == NULL || key_len != strlen(w->key) || memcmp(key, w->key, key_len) != 0) {
        return false;
    }
    if (w->code == NULL) {
        return true;
    }
    Topup__V1__PaymentMatched *m = topup__v1__payment_matched__unpack(NULL, len, payload);
    if (m != NULL && strcmp(m->order_code, w->code) == 0) {
        w->found = m;
        return true;
    }
    if (m != NULL) {
        topup__v1__payment_matched__free_unpacked(m, NULL);
    }
    return false;
}

/* Looks for a message with key (and, if code, a PaymentMatched of that order) on topic. */
static bool find_message(const char *topic, const char *key, const char *code,
                         Topup__V1__PaymentMatched **out)
{
    struct wanted w = {.key = key, .code = code};
    bool found = rt_find(topic, wanted_match, &w, WAIT_MS);
    if (out != NULL) {
        *out = w.found;
    }
    return found;
}

struct txn_wanted {
    const char *txn_id;
};

static bool txn_match(void *ctx, const char *key, size_t key_len, const void *payload, size_t len)
{
    (void)key;
    (void)key_len;
    const struct txn_wanted *w = ctx;
    Topup__V1__BankStatementRecord *m =
        topup__v1__bank_statement_record__unpack(NULL, len, payload);
    bool ok = m != NULL && strcmp(m->bank_txn_id, w->txn_id) == 0;
    if (m != NULL) {
        topup__v1__bank_statement_record__free_unpacked(m, NULL);
    }
    return ok;
}

/* Waits until counter `name` grew by want since base, then checks it grew by exactly want. */
static void counter_exactly(const char *name, int64_t base, int64_t want)
{
    counter_grew(name, base, want);
    int64_t d = rt_counter(name) - base;
    rt_check(&t, d == want, "counter %s grew by exactly %lld (%lld)", name, (long long)want,
             (long long)d);
}

/* Runs `[env] topupctl review match ID --order CODE ... [extra]` with stderr; its exit code. */
static int review_match_sh(char *out, size_t len, const char *env, const char *review_id,
                           const char *code, const char *extra)
{
    const char *build = getenv("TOPUP_BUILD_DIR");
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "%s '%s/services/topupctl/topupctl' review match %s --order %s --actor rt-support "
             "--reason 'the payer sent a contract for this amount' %s 2>&1",
             env, build != NULL ? build : "build", review_id, code, extra);
    FILE *p = popen(cmd, "r");
    rt_check(&t, p != NULL, "popen %s", cmd);
    if (p == NULL) {
        return -1;
    }
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* What a refused manual match must leave: the order pending, no match, no PaymentMatched. */
static void nothing_credited(const struct order *o, const char *review_id, const char *what)
{
    char buf[256];
    const char *const p[1] = {o->code};
    rt_check(&t, strcmp(order_status(buf, sizeof(buf), o), "pending") == 0, "%s: order pending",
             what);
    rt_check(&t,
             strcmp(rt_scalar(&t, buf, sizeof(buf),
                              "SELECT count(*) FROM match_decisions d JOIN topup_orders o"
                              " ON o.id = d.order_id WHERE o.code = $1 AND d.outcome = 'matched'",
                              1, p),
                    "0") == 0,
             "%s: no match decision names the order", what);
    rt_check(&t,
             strcmp(rt_scalar(&t, buf, sizeof(buf),
                              "SELECT count(*) FROM outbox WHERE source = 'reconciliation'"
                              " AND strpos(encode(payload, 'escape'), $1) > 0",
                              1, p),
                    "0") == 0,
             "%s: no PaymentMatched queued", what);
    const char *const q[1] = {review_id};
    rt_check(&t,
             strcmp(rt_scalar(&t, buf, sizeof(buf),
                              "SELECT status FROM review_queue WHERE id = $1::bigint", 1, q),
                    "open") == 0,
             "%s: the review item stays open", what);
}

/*
 * Support cannot credit an above_ceiling transfer by a plain `review match`: never above the
 * ledger's recharge ceiling (it would refuse the credit), and below it only with --over-ceiling,
 * audited. Exit 1, a clear message, nothing credited.
 */
static void test_match_above_ceiling(const struct order *oc)
{
    char buf[4096], max_id[32], above_id[32];
    snprintf(max_id, sizeof(max_id), "%s", review_of(buf, sizeof(buf), "t-max", "above_ceiling"));
    snprintf(above_id, sizeof(above_id), "%s",
             review_of(buf, sizeof(buf), "t-above", "above_ceiling"));
    int rc = review_match_sh(buf, sizeof(buf), "", max_id, oc->code, "");
    rt_check(&t, rc == 1 && strstr(buf, "above the ledger's recharge ceiling") != NULL,
             "review match of the INT64_MAX record: exit 1, ledger ceiling named (exit %d: %s)", rc,
             buf);
    nothing_credited(oc, max_id, "INT64_MAX, plain match");
    rc = review_match_sh(buf, sizeof(buf), "LEDGER_MAX_RECHARGE_FEN=100000000000", max_id, oc->code,
                         "--over-ceiling");
    rt_check(&t, rc == 1 && strstr(buf, "above the ledger's recharge ceiling") != NULL,
             "review match --over-ceiling of INT64_MAX fen: exit 1 whatever the ceiling (exit %d: "
             "%s)",
             rc, buf);
    nothing_credited(oc, max_id, "INT64_MAX, --over-ceiling");
    rc = review_match_sh(buf, sizeof(buf), "", above_id, oc->code, "--over-ceiling");
    rt_check(&t, rc == 1 && strstr(buf, "above the ledger's recharge ceiling") != NULL,
             "review match --over-ceiling just above the default ledger ceiling: exit 1 (exit %d: "
             "%s)",
             rc, buf);
    nothing_credited(oc, above_id, "just above, --over-ceiling, default ledger ceiling");
    /* A ledger that takes more (LEDGER_MAX_RECHARGE_FEN raised): still not without the flag. */
    const char *raised = "LEDGER_MAX_RECHARGE_FEN=200000000";
    rc = review_match_sh(buf, sizeof(buf), raised, above_id, oc->code, "");
    rt_check(&t, rc == 1 && strstr(buf, "--over-ceiling") != NULL,
             "plain review match of an above_ceiling item: exit 1, --over-ceiling asked for (exit "
             "%d: %s)",
             rc, buf);
    nothing_credited(oc, above_id, "just above, plain match, raised ledger ceiling");
    /* The audited override: credited once, the decision says so. */
    rc = review_match_sh(buf, sizeof(buf), raised, above_id, oc->code, "--over-ceiling");
    rt_check(&t, rc == 0,
             "review match --over-ceiling under a raised ledger ceiling: exit 0 (%d: %s)", rc, buf);
    rt_check(&t, strcmp(order_status(buf, sizeof(buf), oc), "processing") == 0,
             "the override claimed the order");
    const char *const p[1] = {oc->code};
    rt_check(&t,
             strcmp(rt_scalar(
                        &t, buf, sizeof(buf),
                        "SELECT (d.details->>'over_ceiling') || ' ' || (d.details->>'credited_fen')"
                        " FROM match_decisions d JOIN topup_orders o ON o.id = d.order_id"
                        " WHERE o.code = $1 AND d.outcome = 'matched'",
                        1, p),
                    "true 100000001") == 0,
             "the decision records the override and the amount (%s)", buf);
    const char *const q[1] = {above_id};
    rt_check(
        &t,
        strcmp(rt_scalar(&t, buf, sizeof(buf),
                         "SELECT actor FROM review_actions WHERE review_id = $1::bigint", 1, q),
               "rt-support") == 0,
        "the override is audited with its actor (%s)", buf);
}

static int64_t count_about(const char *tag, const char *sql)
{
    char out[64];
    return strtoll(about(out, sizeof(out), tag, sql), NULL, 10);
}

/*
 * Issue #15's attacks on reconciliation, each refused with nothing lost: a record produced
 * straight to Kafka (no import), a record above the ceiling, a squatted name, a late order. And
 * the genuine cases next to them: the same record imported, a verified payer's transfer.
 */
static void test_trust(int64_t created_ms)
{
    char buf[4096], text[256], id[128];
    int64_t c_prov = rt_counter("recon.refused.provenance");
    int64_t c_ceiling = rt_counter("recon.review.above_ceiling");
    int64_t c_unverified = rt_counter("recon.review.unverified_payer");
    int64_t c_late = rt_counter("recon.review.late_order");

    /* 1. No import: a BankStatementRecord produced straight to Kafka for a pending order. */
    struct order op;
    order_new(&op, "prov", 10000, "陈十三", created_ms, "pending");
    snprintf(text, sizeof(text), "充值 %s", op.code);
    txn(id, sizeof(id), "t-prov");
    struct rt_record forged = {.txn_id = id,
                               .amount_fen = 10000,
                               .name = "陈十三",
                               .remittance = text,
                               .unrecorded = true};
    rt_record(&t, &forged);
    rt_flush(&t);
    struct txn_wanted tw = {.txn_id = id};
    rt_check(&t, rt_find(TOPIC_BANK_STATEMENT_RECORDS TOPIC_DLQ_SUFFIX, txn_match, &tw, WAIT_MS),
             "the record of no import is on bank.statement.records.dlq");
    counter_exactly("recon.refused.provenance", c_prov, 1);
    rt_check(&t,
             count_about("t-prov", "SELECT count(*) FROM statement_records"
                                   " WHERE bank_txn_id = $1") == 0,
             "nothing of the record of no import is stored");
    rt_check(&t, strcmp(order_status(buf, sizeof(buf), &op), "pending") == 0,
             "its order stays pending");
    {
        const char *const p[1] = {op.code};
        rt_check(&t,
                 strcmp(rt_scalar(&t, buf, sizeof(buf),
                                  "SELECT count(*) FROM match_decisions d JOIN topup_orders o"
                                  " ON o.id = d.order_id WHERE o.code = $1",
                                  1, p),
                        "0") == 0,
                 "no decision names its order");
    }
    /* The same record, imported (its provenance recorded first): matched once. */
    forged.unrecorded = false;
    rt_record(&t, &forged);
    rt_flush(&t);
    wait_state("t-prov", "matched");
    char want[32];
    snprintf(want, sizeof(want), "%lld", (long long)t.import_id);
    rt_check(&t,
             strcmp(about(buf, sizeof(buf), "t-prov",
                          "SELECT import_id FROM statement_records WHERE bank_txn_id = $1"),
                    want) == 0,
             "the imported record is stored with its import (%s)", buf);
    rt_check(&t, strcmp(order_status(buf, sizeof(buf), &op), "processing") == 0,
             "the imported record claimed its order");

    /* 2. Above the ceiling: INT64_MAX fen naming a 50.00 order, and just above the ceiling. */
    struct order oc;
    order_new(&oc, "ceil", 5000, "褚十四", created_ms, "pending");
    snprintf(text, sizeof(text), "充值 %s", oc.code);
    record("t-max", INT64_MAX, "褚十四", text, NULL, NULL);
    record("t-above", 100000001, "褚十四", text, NULL, NULL);
    rt_flush(&t);
    wait_state("t-max", "review");
    wait_state("t-above", "review");
    rt_check(&t,
             review_of(buf, sizeof(buf), "t-max", "above_ceiling")[0] != '\0' &&
                 review_of(buf, sizeof(buf), "t-above", "above_ceiling")[0] != '\0',
             "records above RECON_MAX_RECORD_FEN: review above_ceiling");
    rt_check(&t, strcmp(order_status(buf, sizeof(buf), &oc), "pending") == 0,
             "the 50.00 order they name stays pending");
    counter_exactly("recon.review.above_ceiling", c_ceiling, 2);
    test_match_above_ceiling(&oc);

    /* 3. 王伟 / 500.00 squatted: an account with a pending 500.00 order for a name it does not
     * own does not collect a stranger's code-less transfer. */
    struct order os, ow;
    order_new(&os, "squat", 50000, "王伟", created_ms, "pending");
    record("t-squat", 50000, "王伟", "转账", NULL, NULL);
    rt_flush(&t);
    wait_state("t-squat", "review");
    rt_check(&t, review_of(buf, sizeof(buf), "t-squat", "unverified_payer")[0] != '\0',
             "王伟 / 500.00 to an account that does not own the name: review unverified_payer");
    rt_check(&t, strcmp(order_status(buf, sizeof(buf), &os), "pending") == 0,
             "the squatter's order stays pending");
    counter_exactly("recon.review.unverified_payer", c_unverified, 1);
    /* The account that owns 王伟 is credited by name, once; the squatter's order is no rival. */
    order_new(&ow, "owner", 50000, "王 伟", created_ms, "pending");
    rt_payer(&t, ow.account, "王伟");
    record("t-owner", 50000, "支付宝-王伟", "转账", NULL, NULL);
    rt_flush(&t);
    wait_state("t-owner", "matched");
    rt_check(&t,
             strcmp(about(buf, sizeof(buf), "t-owner",
                          "SELECT o.code || ' ' || d.rule FROM match_decisions d JOIN"
                          " statement_records r ON r.id = d.record_id JOIN topup_orders o ON"
                          " o.id = d.order_id WHERE r.bank_txn_id = $1 AND d.outcome = 'matched'"),
                    (snprintf(text, sizeof(text), "%s name_amount", ow.code), text)) == 0,
             "the verified payer's transfer matched its account's order by name (%s)", buf);
    rt_check(&t, strcmp(order_status(buf, sizeof(buf), &os), "pending") == 0,
             "the squatter's order is still pending");
    {
        const char *const p[1] = {ow.code};
        rt_check(&t,
                 strcmp(rt_scalar(&t, buf, sizeof(buf),
                                  "SELECT count(*) FROM outbox WHERE source = 'reconciliation'"
                                  " AND strpos(encode(payload, 'escape'), $1) > 0",
                                  1, p),
                        "1") == 0,
                 "one PaymentMatched for the verified payer's order (%s)", buf);
    }

    /* 4. 李娜 / 1000.00 late: the transfer waited unmatched, then an order was created for it. */
    record("t-late", 100000, "李娜", "", NULL, NULL);
    rt_flush(&t);
    wait_state("t-late", "unmatched");
    struct order ol;
    order_new(&ol, "late", 100000, "李娜", rt_now_ms(), "pending");
    rt_payer(&t, ol.account, "李娜");
    rt_requested(&t, ol.code, ol.account, 100000, "李娜", rt_now_ms(),
                 rt_now_ms() + 3 * RT_MS_PER_DAY);
    rt_flush(&t);
    wait_state("t-late", "review");
    rt_check(&t, review_of(buf, sizeof(buf), "t-late", "late_order")[0] != '\0',
             "李娜 / 1000.00 with a later order: review late_order");
    rt_check(&t, strcmp(order_status(buf, sizeof(buf), &ol), "pending") == 0,
             "the late order stays pending");
    counter_exactly("recon.review.late_order", c_late, 1);

    /* The reasons show in topupctl review list. */
    const char *list[] = {"review", "list", NULL};
    int code = rt_topupctl(list, buf, sizeof(buf));
    rt_check(&t,
             code == 0 && strstr(buf, "above_ceiling") != NULL &&
                 strstr(buf, "unverified_payer") != NULL && strstr(buf, "late_order") != NULL,
             "topupctl review list shows above_ceiling, unverified_payer and late_order");
}

int main(void)
{
    rt_init(&t, "recon-e2e");
    snprintf(log_path, sizeof(log_path), "%s/recon-e2e-worker.log",
             getenv("TOPUP_BUILD_DIR") != NULL ? getenv("TOPUP_BUILD_DIR") : ".");
    fprintf(stderr, "run %s, receiving account %s, worker log %s\n", t.suffix, t.account, log_path);
    int64_t now = rt_now_ms();
    int64_t hour = 3600 * 1000;
    char buf[4096], text[512], today[11], old[11];
    rt_date(0, today);
    rt_date(-10, old);
    int64_t c_ref = rt_counter("recon.matched.reference");
    int64_t c_name = rt_counter("recon.matched.name_amount");
    int64_t c_dup = rt_counter("recon.duplicates");
    int64_t c_dlq = rt_counter("recon.dlq");
    int64_t c_amb = rt_counter("recon.review.ambiguous");
    int64_t c_late = rt_counter("recon.review.late_order");

    struct order o1, o2, o3, o4, o5, o6, o7, o8, o9, o10, o11, o12;
    order_new(&o1, "a", 10000, "张三", now - hour, "pending");
    order_new(&o2, "a", 20000, "张三", now - hour, "pending");
    order_new(&o3, "b", 30000, "李四", now - hour, "pending");
    order_new(&o4, "b", 50000, "王五", now - 2 * hour, "pending"); /* older: rule 2 takes it */
    order_new(&o5, "b", 50000, "王五", now - hour, "pending");
    order_new(&o6, "a", 100000, "赵六", now - hour, "pending");
    order_new(&o7, "c", 100000, "赵 六", now - hour, "pending"); /* same name, other account */
    order_new(&o8, "c", 5000, "钱七", now - hour, "cancelled");
    order_new(&o11, "a", 1000, "郑十一", now - hour, "pending");
    order_new(&o12, "c", 1200, "冯十二", now - hour, "pending");
    ids_refcode_new(o9.code); /* created later: transfers before orders */
    ids_refcode_new(o10.code);
    /* Rule 2 credits only a name the account owns (topupctl payers add). */
    rt_payer(&t, o4.account, "王五");
    rt_payer(&t, o6.account, "赵六");
    rt_payer(&t, o7.account, "赵 六");
    rt_payer(&t, "e2e-late-a", "孙八");

    const char *fast_sweep_never[] = {"RECON_AGING_SWEEP_MS=600000",
                                      "RECON_REVIEW_AFTER_BUSINESS_DAYS=1", NULL};
    rt_worker_start(&t, fast_sweep_never, log_path);

    /* ---- phase 1: records ---- */
    snprintf(text, sizeof(text), "充值 %s", o1.code);
    record("r1", 10000, "张三", text, NULL, NULL);
    char fw[128];
    fullwidth_code(o2.code, fw, sizeof(fw));
    snprintf(text, sizeof(text), "附言:%s/谢谢 ref", fw);
    record("r2", 20000, "某某公司", text, NULL, NULL);
    snprintf(text, sizeof(text), "%.*s %s", 4, o3.code, o3.code + 4);
    record("r3", 29999, "李四", text, NULL, NULL);
    record("r4", 50000, "支付宝-王 五", "网银转账", NULL, NULL);
    record("r5", 100000, "ＺＨＡＯ", "", NULL, NULL); /* no name match: unmatched for now */
    record("r5b", 100000, "赵六", "转账", NULL, NULL);
    snprintf(text, sizeof(text), "order %s", o8.code);
    record("r6", 5000, "钱七", text, NULL, NULL);
    record("r7", -10000, "张三", "fee", NULL, NULL);
    record("r8", 10000, "张三", o1.code, NULL, "121909510799999");
    record("r1", 10000, "张三", "duplicate delivery", NULL, NULL); /* same identity as r1 */
    record("r10", 8800, "孙八", "", NULL, NULL);
    snprintf(text, sizeof(text), "pay %s", o10.code);
    record("r11", 7700, "周九", text, NULL, NULL);
    record("r12", 1234, "吴十", "", old, NULL);
    rt_raw(&t, TOPIC_BANK_STATEMENT_RECORDS, t.account, "\xff\xff not protobuf", 14);
    rt_flush(&t);

    wait_state("r1", "matched");
    wait_state("r2", "matched");
    wait_state("r3", "matched");
    wait_state("r4", "matched");
    wait_state("r5", "unmatched");
    wait_state("r5b", "review");
    wait_state("r6", "review");
    wait_state("r7", "ignored");
    wait_state("r8", "ignored");
    wait_state("r10", "unmatched");
    wait_state("r11", "unmatched");
    wait_state("r12", "unmatched");

    char id1[128];
    txn(id1, sizeof(id1), "r1");
    const char *const p1[1] = {id1};
    rt_check(
        &t,
        strcmp(rt_scalar(&t, buf, sizeof(buf),
                         "SELECT count(*) FROM statement_records WHERE bank_txn_id = $1", 1, p1),
               "1") == 0,
        "the redelivered record is stored once");
    rt_check(&t, strcmp(order_status(buf, sizeof(buf), &o1), "processing") == 0,
             "o1 claimed (processing)");
    rt_check(&t,
             strcmp(about(buf, sizeof(buf), "r1",
                          "SELECT d.rule || ' ' || o.code FROM match_decisions d"
                          " JOIN statement_records r ON r.id = d.record_id"
                          " JOIN topup_orders o ON o.id = d.order_id"
                          " WHERE r.bank_txn_id = $1 AND d.outcome = 'matched'"),
                    (snprintf(text, sizeof(text), "reference %s", o1.code), text)) == 0,
             "r1 matched o1 by reference");
    rt_check(&t,
             strcmp(about(buf, sizeof(buf), "r2",
                          "SELECT o.code FROM match_decisions d JOIN statement_records r ON"
                          " r.id = d.record_id JOIN topup_orders o ON o.id = d.order_id"
                          " WHERE r.bank_txn_id = $1 AND d.outcome = 'matched'"
                          " AND d.rule = 'reference'"),
                    o2.code) == 0,
             "r2: lower-case full-width hyphenated code in noise found (o2)");
    {
        const char *const p[1] = {o3.code};
        rt_check(&t,
                 strcmp(rt_scalar(&t, buf, sizeof(buf),
                                  "SELECT status || ' ' || credited_fen || ' ' || amount_mismatch"
                                  " FROM topup_orders WHERE code = $1",
                                  1, p),
                        "processing 29999 true") == 0,
                 "o3 credited with the amount received and flagged (%s)", buf);
    }
    rt_check(&t, review_of(buf, sizeof(buf), "r3", "amount_mismatch")[0] != '\0',
             "r3 amount mismatch has a review item");
    rt_check(&t,
             strcmp(about(buf, sizeof(buf), "r4",
                          "SELECT o.code || ' ' || d.rule FROM match_decisions d JOIN"
                          " statement_records r ON r.id = d.record_id JOIN topup_orders o ON"
                          " o.id = d.order_id WHERE r.bank_txn_id = $1 AND d.outcome = 'matched'"),
                    (snprintf(text, sizeof(text), "%s name_amount", o4.code), text)) == 0,
             "r4 (支付宝-王 五) matched the oldest order o4 by name and amount");
    rt_check(&t, strcmp(order_status(buf, sizeof(buf), &o5), "pending") == 0, "o5 still pending");
    char amb[32];
    review_of(amb, sizeof(amb), "r5b", "ambiguous");
    rt_check(&t, amb[0] != '\0', "r5b same name and amount in two accounts: review ambiguous");
    rt_check(&t,
             strcmp(about(buf, sizeof(buf), "r5b",
                          "SELECT (d.details->>'candidate_accounts') || ' ' ||"
                          " jsonb_array_length(d.details->'candidates') FROM match_decisions d"
                          " JOIN statement_records r ON r.id = d.record_id"
                          " WHERE r.bank_txn_id = $1"),
                    "2 2") == 0,
             "r5b decision lists both candidates (%s)", buf);
    char onp[32];
    review_of(onp, sizeof(onp), "r6", "order_not_pending");
    rt_check(&t, onp[0] != '\0', "r6 transfer for a cancelled order: review order_not_pending");
    rt_check(&t,
             strcmp(order_status(buf, sizeof(buf), &o6), "pending") == 0 &&
                 strcmp(order_status(buf, sizeof(buf), &o7), "pending") == 0,
             "o6 and o7 untouched");

    /* ---- late orders: the transfer came first (the orders are created now, after it) ---- */
    now = rt_now_ms();
    o9.id =
        rt_order(&t, o9.code, "e2e-late-a", 8800, "孙八", now, now + 3 * RT_MS_PER_DAY, "pending");
    snprintf(o9.account, sizeof(o9.account), "e2e-late-a");
    o10.id = rt_order(&t, o10.code, "e2e-late-c", 7700, "someone else", now,
                      now + 3 * RT_MS_PER_DAY, "pending");
    rt_requested(&t, o9.code, "e2e-late-a", 8800, "孙八", now, now + 3 * RT_MS_PER_DAY);
    rt_requested(&t, o10.code, "e2e-late-c", 7700, "someone else", now, now + 3 * RT_MS_PER_DAY);
    rt_flush(&t);
    wait_state("r10", "review");
    wait_state("r11", "matched");
    rt_check(&t, review_of(buf, sizeof(buf), "r10", "late_order")[0] != '\0',
             "r10: an order created after the code-less transfer waited does not collect it by "
             "name, even from a verified payer: review late_order");
    rt_check(&t, strcmp(order_status(buf, sizeof(buf), &o9), "pending") == 0, "o9 stays pending");
    rt_check(&t,
             strcmp(about(buf, sizeof(buf), "r11",
                          "SELECT d.rule FROM match_decisions d JOIN statement_records r"
                          " ON r.id = d.record_id WHERE r.bank_txn_id = $1"
                          " AND d.outcome = 'matched'"),
                    "reference") == 0,
             "r11 matched its late order by reference");

    /* ---- a cancel racing the claim: the cancel holds the row, then commits ---- */
    struct tp_error err = {0};
    struct pg_conn *other = pg_conn_new(getenv("PG_CONNINFO"), 10000, &err);
    const char *const p11[1] = {o11.code};
    if (other == NULL || pg_begin(other, &err) != TP_OK ||
        pg_exec(other,
                "UPDATE topup_orders SET status = 'cancelled', cancelled_at = now()"
                " WHERE code = $1",
                1, p11, NULL, &err) != TP_OK) {
        rt_check(&t, false, "cancel transaction: %s", err.msg);
    }
    snprintf(text, sizeof(text), "%s", o11.code);
    record("r13", 1000, "郑十一", text, NULL, NULL);
    rt_flush(&t);
    rt_check(&t,
             rt_wait(&t, WAIT_MS, "1",
                     "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                     " AND wait_event_type = 'Lock'",
                     0, NULL),
             "the worker's claim waits for the uncommitted cancel");
    rt_check(&t, other != NULL && pg_commit(other, &err) == TP_OK, "cancel committed");
    pg_conn_free(other);
    wait_state("r13", "review");
    rt_check(&t, review_of(buf, sizeof(buf), "r13", "order_not_pending")[0] != '\0',
             "r13 lost the race to the cancel: review order_not_pending");
    rt_check(&t, strcmp(order_status(buf, sizeof(buf), &o11), "cancelled") == 0,
             "o11 stays cancelled");

    /* ---- support: topupctl review ---- */
    {
        const char *list[] = {"review", "list", NULL};
        int code = rt_topupctl(list, buf, sizeof(buf));
        rt_check(&t, code == 0 && strstr(buf, "ambiguous") != NULL, "review list shows items");
        const char *show[] = {"review", "show", amb, NULL};
        code = rt_topupctl(show, buf, sizeof(buf));
        rt_check(&t, code == 0 && strstr(buf, o7.code) != NULL, "review show lists the candidates");
        const char *bad[] = {"review",  "match",    onp,
                             "--order", o8.code,    "--actor",
                             "alice",   "--reason", "customer says it was for this order",
                             NULL};
        code = rt_topupctl(bad, buf, sizeof(buf));
        rt_check(&t, code == 1, "matching to a cancelled order is refused (exit %d)", code);
        rt_check(&t,
                 strcmp(order_status(buf, sizeof(buf), &o8), "cancelled") == 0 &&
                     review_of(buf, sizeof(buf), "r6", "order_not_pending")[0] != '\0',
                 "nothing changed by the refused match");
        const char *match[] = {"review",  "match",    amb,
                               "--order", o7.code,    "--actor",
                               "alice",   "--reason", "ticket 4711: remitter confirmed account c",
                               NULL};
        code = rt_topupctl(match, buf, sizeof(buf));
        rt_check(&t, code == 0, "review match exit 0: %s", buf);
        rt_check(&t, strcmp(order_status(buf, sizeof(buf), &o7), "processing") == 0,
                 "o7 claimed by the manual match");
        wait_state("r5b", "matched");
        const char *const pa[1] = {amb};
        rt_check(&t,
                 strcmp(rt_scalar(&t, buf, sizeof(buf),
                                  "SELECT q.status || ' ' || q.resolution || ' ' || a.actor || ' '"
                                  " || a.action FROM review_queue q JOIN review_actions a ON"
                                  " a.review_id = q.id WHERE q.id = $1::bigint",
                                  1, pa),
                        "resolved matched alice match") == 0,
                 "manual match resolved and audited (%s)", buf);
        code = rt_topupctl(match, buf, sizeof(buf));
        rt_check(&t, code == 1, "a resolved item cannot be matched again");
        const char *refund[] = {
            "review", "refund", onp, "--actor", "bob", "--reason", "order was cancelled; pay back",
            NULL};
        code = rt_topupctl(refund, buf, sizeof(buf));
        rt_check(&t, code == 0, "review refund exit 0");
        wait_state("r6", "refund");
        char mm[32];
        review_of(mm, sizeof(mm), "r3", "amount_mismatch");
        const char *refund_mm[] = {"review", "refund", mm, "--actor", "bob", "--reason", "x", NULL};
        rt_check(&t, rt_topupctl(refund_mm, buf, sizeof(buf)) == 1,
                 "a credited (amount mismatch) transfer is not refunded from the queue");
        const char *ack[] = {"review",
                             "ignore",
                             mm,
                             "--actor",
                             "bob",
                             "--reason",
                             "customer paid 1 fen less; accepted",
                             NULL};
        rt_check(&t, rt_topupctl(ack, buf, sizeof(buf)) == 0, "amount mismatch acknowledged");
        wait_state("r3", "matched");
    }

    /* Counted before the kill: a kill -9 loses at most the increments of the last second. */
    counter_grew("recon.matched.reference", c_ref, 4);
    counter_grew("recon.matched.name_amount", c_name, 1);
    counter_grew("recon.review.late_order", c_late, 1);
    counter_grew("recon.duplicates", c_dup, 1);
    counter_grew("recon.dlq", c_dlq, 1);
    counter_grew("recon.review.ambiguous", c_amb, 1);

    test_trust(now - hour);

    /* ---- kill -9, a re-import and a new record, restart with a fast sweep ---- */
    rt_check(&t, rt_worker_stop(&t, SIGKILL, 5000) == 128 + SIGKILL, "worker killed");
    snprintf(text, sizeof(text), "充值 %s", o1.code);
    record("r1", 10000, "张三", text, NULL, NULL);
    snprintf(text, sizeof(text), "%s", o12.code);
    record("r14", 1200, "冯十二", text, NULL, NULL);
    rt_flush(&t);
    const char *fast_sweep[] = {"RECON_AGING_SWEEP_MS=300", "RECON_REVIEW_AFTER_BUSINESS_DAYS=1",
                                NULL};
    rt_worker_start(&t, fast_sweep, log_path);
    wait_state("r14", "matched");
    wait_state("r12", "review");
    rt_check(&t, review_of(buf, sizeof(buf), "r12", "aged_unmatched")[0] != '\0',
             "r12 (value date 10 days ago) aged into review");
    rt_check(&t,
             strcmp(about(buf, sizeof(buf), "r1",
                          "SELECT count(*) FROM match_decisions d JOIN statement_records r"
                          " ON r.id = d.record_id WHERE r.bank_txn_id = $1"),
                    "1") == 0,
             "the re-imported r1 changed nothing (one decision)");
    rt_check(&t,
             strcmp(about(buf, sizeof(buf), "r5",
                          "SELECT state FROM statement_records WHERE bank_txn_id = $1"),
                    "unmatched") == 0,
             "r5 (value date today) still waits");

    /* ---- what left through Kafka ---- */
    rt_check(&t,
             rt_wait(&t, WAIT_MS, "0",
                     "SELECT count(*) FROM outbox WHERE source = 'reconciliation'"
                     " AND published_at IS NULL",
                     0, NULL),
             "every PaymentMatched in the outbox was published");
    Topup__V1__PaymentMatched *pm = NULL;
    if (rt_check(&t, find_message(TOPIC_PAYMENT_MATCHED, o1.account, o1.code, &pm),
                 "PaymentMatched for o1 on payment.matched, key = account")) {
        rt_check(
            &t,
            pm->credited_fen == 10000 && pm->order_amount_fen == 10000 && !pm->amount_mismatch &&
                pm->rule == TOPUP__V1__MATCH_RULE__MATCH_RULE_REFERENCE &&
                strcmp(pm->envelope->account_id, o1.account) == 0 &&
                strcmp(pm->envelope->producer, "reconciliation") == 0 &&
                strcmp(pm->receiving_account, t.account) == 0 && strcmp(pm->value_date, today) == 0,
            "o1's PaymentMatched carries the credit, rule, account and transfer");
        topup__v1__payment_matched__free_unpacked(pm, NULL);
    }
    pm = NULL;
    if (rt_check(&t, find_message(TOPIC_PAYMENT_MATCHED, o7.account, o7.code, &pm),
                 "PaymentMatched for the manual match of o7")) {
        rt_check(&t,
                 pm->rule == TOPUP__V1__MATCH_RULE__MATCH_RULE_MANUAL && pm->credited_fen == 100000,
                 "manual PaymentMatched: rule manual, 1000.00 credited");
        topup__v1__payment_matched__free_unpacked(pm, NULL);
    }
    rt_check(&t, find_message(TOPIC_BANK_STATEMENT_RECORDS TOPIC_DLQ_SUFFIX, t.account, NULL, NULL),
             "the undecodable record is on bank.statement.records.dlq");

    /* ---- clean stop and the counters it flushed ---- */
    rt_check(&t, rt_worker_stop(&t, SIGTERM, 20000) == 0, "SIGTERM: exit 0");
    counter_grew("recon.matched.reference", c_ref, 5); /* r14 after the restart */
    counter_grew("recon.duplicates", c_dup, 2);        /* the re-import of r1 */
    int failures = t.failures;
    rt_free(&t);
    fprintf(stderr, "%s: %d failure(s)\n", failures == 0 ? "PASS" : "FAIL", failures);
    return failures == 0 ? 0 : 1;
}
