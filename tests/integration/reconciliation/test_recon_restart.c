/*
 * Stops under load: 8,000 records stream through the worker while it is stopped with SIGTERM (it
 * must finish the batch in hand and exit 0) and later killed with SIGKILL, each time restarted in
 * the same group. In the end every record is stored once and matched once, to its own order,
 * every order is credited at most once, and there is exactly one PaymentMatched outbox row per
 * match, all published: nothing lost, nothing doubled (the ledger dedupes Kafka redeliveries by
 * event id; what is checked here is what this service commits).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt.h"
#include "topup/pg.h"

/*
 * The dev broker keeps about 5 MiB per partition and drops older data unread: 8,000 records over
 * four receiving accounts (partition keys) stay far below that.
 */
#define RECORDS  8000
#define ACCOUNTS 4
#define WAIT_MS  120000

static struct rt t;
static char codes[RECORDS][REFCODE_STR_LEN];

/* $1 is the LIKE pattern of this run's records (the topics also hold other runs' records). */
static char mine[48];

static int64_t count(const char *sql)
{
    char out[32];
    const char *const p[1] = {mine};
    rt_scalar(&t, out, sizeof(out), sql, strstr(sql, "$1") != NULL ? 1 : 0, p);
    return strtoll(out, NULL, 10);
}

/* Waits until at least n records are stored (or the timeout); returns how many are. */
static int64_t wait_stored(int64_t n)
{
    int64_t have = 0;
    for (int waited = 0; waited < WAIT_MS; waited += 50) {
        have = count("SELECT count(*) FROM statement_records WHERE bank_txn_id LIKE $1");
        if (have >= n) {
            break;
        }
        usleep(50 * 1000);
    }
    return have;
}

static int cmp_code(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Distinct random codes (the birthday bound makes collisions likely at scale otherwise). */
static void draw_codes(void)
{
    static char sorted[RECORDS][REFCODE_STR_LEN];
    for (size_t i = 0; i < RECORDS; i++) {
        ids_refcode_new(codes[i]);
    }
    for (bool again = true; again;) {
        again = false;
        memcpy(sorted, codes, sizeof(sorted));
        qsort(sorted, RECORDS, REFCODE_STR_LEN, cmp_code);
        for (size_t i = 1; i < RECORDS && !again; i++) {
            for (size_t k = 0; strcmp(sorted[i - 1], sorted[i]) == 0 && k < RECORDS; k++) {
                if (strcmp(codes[k], sorted[i]) == 0) {
                    ids_refcode_new(codes[k]);
                    again = true;
                    break;
                }
            }
        }
    }
}

/* The orders, in one statement (as order-intake would have written them, one by one). */
static void insert_orders(void)
{
    static const char sql[] =
        "INSERT INTO topup_orders (code, account_id, amount_fen, channel, remitter_name,"
        " remitter_name_norm, remitter_bank, status, created_at, expires_at)"
        " SELECT c, 'rs-' || $2 || '-' || (n / 10), 5000 + n, 'bank_transfer', '张三', '张三',"
        " '中国银行', 'pending', now() - interval '1 hour', now() + interval '2 days'"
        " FROM unnest(string_to_array($1, ',')) WITH ORDINALITY AS u(c, k), LATERAL (SELECT k - 1"
        " AS n) AS x";
    size_t len = RECORDS * REFCODE_STR_LEN + 1;
    char *list = calloc(1, len);
    for (size_t i = 0; i < RECORDS; i++) {
        strcat(list, codes[i]);
        strcat(list, i + 1 < RECORDS ? "," : "");
    }
    const char *const params[2] = {list, t.suffix};
    struct tp_error err = {0};
    if (pg_exec(t.pg, sql, 2, params, NULL, &err) != TP_OK) {
        fprintf(stderr, "insert orders: %s\n", err.msg);
        exit(1);
    }
    free(list);
}

static char accounts[ACCOUNTS][40];

static void produce(size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        char txn[64], text[64];
        snprintf(txn, sizeof(txn), "rs-%s-%06zu", t.suffix, i);
        snprintf(text, sizeof(text), "充值 %.*s", (int)REFCODE_LEN, codes[i]);
        struct rt_record r = {.txn_id = txn,
                              .receiving_account = accounts[i % ACCOUNTS],
                              .amount_fen = 5000 + (int64_t)i,
                              .name = "张三",
                              .remittance = text};
        rt_record(&t, &r);
    }
    rt_flush(&t);
}

int main(void)
{
    rt_init(&t, "recon-restart");
    snprintf(mine, sizeof(mine), "rs-%s-%%", t.suffix);
    char log_path[512];
    snprintf(log_path, sizeof(log_path), "%s/recon-restart-worker.log",
             getenv("TOPUP_BUILD_DIR") != NULL ? getenv("TOPUP_BUILD_DIR") : ".");
    draw_codes();
    insert_orders();
    char list[ACCOUNTS * 42 + 32] = "RECON_RECEIVING_ACCOUNTS=";
    for (int a = 0; a < ACCOUNTS; a++) {
        snprintf(accounts[a], sizeof(accounts[a]), "%s%d", t.account, a);
        strcat(list, accounts[a]);
        strcat(list, a + 1 < ACCOUNTS ? "," : "");
    }
    /* Small batches: more batches in flight when the signals come. */
    const char *env[] = {"RECON_BATCH_MAX=500", list, NULL};
    rt_worker_start(&t, env, log_path);
    produce(0, RECORDS);

    int64_t at = wait_stored(RECORDS / 4);
    int code = rt_worker_stop(&t, SIGTERM, 30000);
    rt_check(&t, code == 0, "SIGTERM under load (%lld stored): exit %d", (long long)at, code);
    int64_t after_term = count("SELECT count(*) FROM statement_records WHERE bank_txn_id LIKE $1");
    rt_worker_start(&t, env, log_path);
    at = wait_stored(after_term + RECORDS / 4);
    code = rt_worker_stop(&t, SIGKILL, 5000);
    rt_check(&t, code == 128 + SIGKILL, "SIGKILL under load (%lld stored)", (long long)at);
    rt_worker_start(&t, env, log_path);

    const char *const pm[1] = {mine};
    char want[16];
    snprintf(want, sizeof(want), "%d", RECORDS);
    rt_check(&t,
             rt_wait(&t, WAIT_MS, want,
                     "SELECT count(*) FROM statement_records WHERE state = 'matched' AND "
                     "bank_txn_id LIKE $1",
                     1, pm),
             "all %d records matched after the restarts", RECORDS);
    rt_check(&t,
             count("SELECT count(*) FROM statement_records WHERE bank_txn_id LIKE $1") == RECORDS,
             "every record stored once");
    rt_check(&t,
             count("SELECT count(*) FROM match_decisions d JOIN statement_records r ON r.id = "
                   "d.record_id WHERE r.bank_txn_id LIKE $1") == RECORDS,
             "one decision per record (no decision written twice)");
    rt_check(&t,
             count("SELECT count(*) FROM match_decisions d JOIN statement_records r ON r.id ="
                   " d.record_id JOIN topup_orders o ON o.id = d.order_id"
                   " WHERE o.amount_fen <> r.amount_fen") == 0,
             "every record credited to its own order");
    rt_check(&t, count("SELECT count(*) FROM topup_orders WHERE status = 'processing'") == RECORDS,
             "every order claimed once");
    rt_check(&t, count("SELECT count(*) FROM outbox WHERE source = 'reconciliation'") == RECORDS,
             "one PaymentMatched outbox row per match");
    rt_check(&t,
             rt_wait(&t, WAIT_MS, "0", "SELECT count(*) FROM outbox WHERE published_at IS NULL", 0,
                     NULL),
             "every PaymentMatched published");
    rt_check(&t, count("SELECT count(*) FROM review_queue") == 0, "nothing sent to review");
    rt_check(&t, rt_worker_stop(&t, SIGTERM, 30000) == 0, "final SIGTERM: exit 0");
    int failures = t.failures;
    rt_free(&t);
    fprintf(stderr, "%s: %d failure(s)\n", failures == 0 ? "PASS" : "FAIL", failures);
    return failures == 0 ? 0 : 1;
}
