/*
 * Reconciliation benchmark: 100,000 pending orders in PostgreSQL and 100,000 statement records
 * through the stack's Kafka (Apache Kafka by default) into the worker binary. Prints records/s
 * matched end to end (first record produced -> last record matched and committed), the time until
 * every PaymentMatched was published, and the worker's peak RSS, against the targets (>= 20,000
 * records/s, <= 64 MiB). Fails only when the result is wrong (a record not matched, or matched to
 * another order). BENCH_RECORDS changes the size (default 100000); BENCH_LAG_MAX bounds how far
 * production runs ahead of the worker (the dev broker keeps only ~5 MiB per partition);
 * BENCH_LOG_LEVEL is the worker's log level (debug prints each batch's step timings).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "rt.h"
#include "topup/names.h"
#include "topup/pg.h"

#define TARGET_RECORDS_PER_S 20000
#define TARGET_RSS_KB        (64 * 1024)
#define ORDER_CHUNK          5000
#define RECEIVING_ACCOUNTS   8
#define WAIT_MS              600000
#define STALL_S              30.0

static const char *const names[] = {"张伟", "王芳", "李娜", "刘洋",      "陈静",
                                    "杨磊", "黄敏", "赵强", "Zhang Wei", "北京无量科技有限公司"};

struct bench {
    struct rt t;
    size_t n;
    char (*codes)[REFCODE_STR_LEN];
    char accounts[RECEIVING_ACCOUNTS][40];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every order gets a unique amount, so a rule-2 record has exactly one candidate. */
static int64_t amount_of(size_t i)
{
    return 5000 + (int64_t)i * 3;
}

static bool by_reference(size_t i)
{
    return i % 10 < 7; /* 70 % rule 1, 30 % rule 2 */
}

static int cmp_code(const void *a, const void *b)
{
    return strcmp(a, b);
}

/*
 * Distinct codes: 29^7 possible bodies make a collision among 100,000 random codes likely (the
 * birthday bound); order-intake retries on the unique key, here duplicates are drawn again.
 */
static void draw_codes(struct bench *b)
{
    char(*sorted)[REFCODE_STR_LEN] = calloc(b->n, sizeof(*sorted));
    for (size_t i = 0; i < b->n; i++) {
        ids_refcode_new(b->codes[i]);
    }
    for (bool again = true; again;) {
        again = false;
        memcpy(sorted, b->codes, b->n * sizeof(*sorted));
        qsort(sorted, b->n, sizeof(*sorted), cmp_code);
        for (size_t i = 1; i < b->n; i++) {
            if (strcmp(sorted[i - 1], sorted[i]) != 0) {
                continue;
            }
            for (size_t k = 0; k < b->n; k++) {
                if (strcmp(b->codes[k], sorted[i]) == 0) {
                    ids_refcode_new(b->codes[k]);
                    again = true;
                    break;
                }
            }
        }
    }
    free(sorted);
}

static void insert_orders(struct bench *b)
{
    static const char sql[] =
        "INSERT INTO topup_orders (code, account_id, amount_fen, channel, remitter_name,"
        " remitter_name_norm, remitter_bank, status, created_at, expires_at)"
        " SELECT x.code, x.account_id, x.amount_fen, 'bank_transfer', x.name, x.norm, '中国银行',"
        " 'pending', now() - interval '1 hour', now() + interval '2 days'"
        " FROM jsonb_to_recordset($1::jsonb) AS x(code text, account_id text, amount_fen bigint,"
        " name text, norm text)";
    /* Rule 2 credits only a verified payer: the rule-2 orders' accounts own their names. */
    static const char payers_sql[] =
        "INSERT INTO account_payers (account_id, name_norm, display_name, added_by, reason)"
        " SELECT DISTINCT x.account_id, x.norm, x.name, 'bench', 'bench: the account owns it'"
        " FROM jsonb_to_recordset($1::jsonb) AS x(account_id text, name text, norm text, p bool)"
        " WHERE x.p ON CONFLICT (account_id, name_norm) WHERE removed_at IS NULL DO NOTHING";
    double started = now_s();
    draw_codes(b);
    for (size_t first = 0; first < b->n; first += ORDER_CHUNK) {
        json_t *rows = json_array();
        for (size_t i = first; i < b->n && i < first + ORDER_CHUNK; i++) {
            const char *name = names[i % 10];
            char norm[NAMES_NORM_MAX];
            struct tp_error err = {0};
            if (names_normalize(name, strlen(name), norm, &err) != TP_OK) {
                abort();
            }
            char account[48];
            snprintf(account, sizeof(account), "bench-%s-%05zu", b->t.suffix, i / 5);
            json_array_append_new(rows, json_pack("{s:s,s:s,s:I,s:s,s:s,s:b}", "code", b->codes[i],
                                                  "account_id", account, "amount_fen",
                                                  (json_int_t)amount_of(i), "name", name, "norm",
                                                  norm, "p", !by_reference(i)));
        }
        char *text = json_dumps(rows, JSON_COMPACT);
        json_decref(rows);
        const char *const p[1] = {text};
        struct tp_error err = {0};
        if (pg_exec(b->t.pg, sql, 1, p, NULL, &err) != TP_OK ||
            pg_exec(b->t.pg, payers_sql, 1, p, NULL, &err) != TP_OK) {
            fprintf(stderr, "insert orders: %s\n", err.msg);
            exit(1);
        }
        free(text);
    }
    fprintf(stderr, "%zu pending orders inserted in %.1f s\n", b->n, now_s() - started);
}

static void produce_one(struct bench *b, size_t i)
{
    char txn[64], text[96], name[96];
    snprintf(txn, sizeof(txn), "bench-%s-%06zu", b->t.suffix, i);
    if (by_reference(i)) {
        snprintf(text, sizeof(text), "充值 %s 网银", b->codes[i]);
        snprintf(name, sizeof(name), "%s", names[(i + 3) % 10]); /* the payer's name differs */
    } else {
        snprintf(text, sizeof(text), "API充值");
        snprintf(name, sizeof(name), "支付宝-%s", names[i % 10]);
    }
    struct rt_record r = {.txn_id = txn,
                          .receiving_account = b->accounts[i % RECEIVING_ACCOUNTS],
                          .amount_fen = amount_of(i),
                          .name = name,
                          .remittance = text};
    rt_record(&b->t, &r);
}

static int64_t count(struct bench *b, const char *sql)
{
    char out[32];
    rt_scalar(&b->t, out, sizeof(out), sql, 0, NULL);
    return strtoll(out, NULL, 10);
}

static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kb;
}

/*
 * Starts the worker at the end of the shared topics (a new group would otherwise first wade
 * through every other test's records) and waits until it is assigned: records produced before
 * that are not read, so warm-up records are sent until one arrives.
 */
static bool start_worker(struct bench *b)
{
    char list[RECEIVING_ACCOUNTS * 42 + 64] = "RECON_RECEIVING_ACCOUNTS=";
    for (int i = 0; i < RECEIVING_ACCOUNTS; i++) {
        strcat(list, b->accounts[i]);
        strcat(list, i + 1 < RECEIVING_ACCOUNTS ? "," : "");
    }
    char level[64], log_path[512];
    snprintf(level, sizeof(level), "LOG_LEVEL=%s",
             getenv("BENCH_LOG_LEVEL") != NULL ? getenv("BENCH_LOG_LEVEL") : "warn");
    snprintf(log_path, sizeof(log_path), "%s/recon-bench-worker.log",
             getenv("TOPUP_BUILD_DIR") != NULL ? getenv("TOPUP_BUILD_DIR") : ".");
    const char *env[] = {list, level, "KAFKA_AUTO_OFFSET_RESET=latest", NULL};
    rt_worker_start(&b->t, env, log_path);
    for (int k = 0; k < 60; k++) {
        char warm_id[32];
        snprintf(warm_id, sizeof(warm_id), "warm-up-%d", k);
        for (int a = 0; a < RECEIVING_ACCOUNTS; a++) {
            struct rt_record warm = {.txn_id = warm_id,
                                     .receiving_account = b->accounts[a],
                                     .amount_fen = 1,
                                     .name = "x",
                                     .remittance = ""};
            rt_record(&b->t, &warm);
        }
        rt_flush(&b->t);
        if (rt_wait(&b->t, 1000, "t",
                    "SELECT count(DISTINCT receiving_account) = 8 FROM statement_records"
                    " WHERE bank_txn_id LIKE 'warm-up-%'",
                    0, NULL)) {
            return true;
        }
    }
    return false;
}

int main(void)
{
    static struct bench b;
    rt_init(&b.t, "recon-bench");
    /* Records are recorded in their import 5000 at a time (rt_flush), as the importer batches. */
    b.t.defer_records = true;
    const char *nv = getenv("BENCH_RECORDS");
    b.n = nv != NULL ? (size_t)strtoul(nv, NULL, 10) : 100000;
    const char *lv = getenv("BENCH_LAG_MAX");
    int64_t lag_max = lv != NULL ? strtoll(lv, NULL, 10) : 10000;
    b.codes = calloc(b.n, sizeof(*b.codes));
    for (int i = 0; i < RECEIVING_ACCOUNTS; i++) {
        snprintf(b.accounts[i], sizeof(b.accounts[i]), "%s%d", b.t.account, i);
    }
    insert_orders(&b);
    if (!start_worker(&b)) {
        fprintf(stderr, "worker did not start\n");
        return 1;
    }
    /*
     * Progress while producing is the highest committed record id past the warm-up's: an index
     * probe, where a count over the growing table cost the very PostgreSQL being measured several
     * per cent of its CPU. Lanes commit in any order and rolled-back attempts leave gaps, so it
     * runs ahead of the truth by a batch or two at most: far below the ~5 MiB per partition the
     * dev broker keeps of what the worker has not read yet. The end is counted exactly.
     */
    static const char progress_sql[] = "SELECT coalesce(max(id), 0) FROM statement_records";
    int64_t base = count(&b, progress_sql);

    double t0 = now_s();
    for (size_t i = 0; i < b.n; i++) {
        produce_one(&b, i);
        if (i % 5000 == 4999) {
            rt_flush(&b.t);
            int64_t lag;
            while ((lag = (int64_t)i + 1 - (count(&b, progress_sql) - base)) > lag_max) {
                /* As long as the worker needs for the excess at the target rate. */
                int64_t wait_us = (lag - lag_max) * 1000000 / TARGET_RECORDS_PER_S;
                usleep((useconds_t)(wait_us < 20000 ? 20000 : wait_us));
            }
        }
    }
    rt_flush(&b.t);
    double t_produced = now_s();
    /*
     * Until all are matched: the cheap progress first, then the exact count, timed at its start
     * (its snapshot is taken then). A run that stops progressing (lost messages) fails, not hangs.
     */
    bool all = false;
    int64_t last = -1, last_ids = -1;
    double last_progress = now_s();
    double t_matched = 0;
    while (!all && now_s() - last_progress < STALL_S) {
        double t_query = now_s();
        int64_t ids = count(&b, progress_sql) - base;
        int64_t matched = last;
        if (ids >= (int64_t)b.n) {
            t_query = now_s();
            matched = count(&b, "SELECT count(*) FROM statement_records WHERE state = 'matched'");
        }
        all = matched == (int64_t)b.n;
        t_matched = t_query;
        if (matched != last || ids != last_ids) {
            last = matched;
            last_ids = ids;
            last_progress = now_s();
        }
        if (!all) {
            usleep(20 * 1000);
        }
    }
    long rss_kb = peak_rss_kb(b.t.worker);
    bool published = rt_wait(&b.t, WAIT_MS, "0",
                             "SELECT count(*) FROM outbox WHERE published_at IS NULL", 0, NULL);
    double t_published = now_s();
    long rss_after_kb = peak_rss_kb(b.t.worker);
    if (rss_after_kb > rss_kb) {
        rss_kb = rss_after_kb;
    }

    /* Correctness: amounts are unique per order, so equal amounts mean the record's own order. */
    int64_t wrong =
        count(&b, "SELECT count(*) FROM statement_records r"
                  " JOIN match_decisions d ON d.record_id = r.id AND d.outcome = 'matched'"
                  " JOIN topup_orders o ON o.id = d.order_id"
                  " WHERE o.amount_fen <> r.amount_fen");
    int64_t reviews = count(&b, "SELECT count(*) FROM review_queue");
    int64_t by_ref = count(&b, "SELECT count(*) FROM match_decisions WHERE rule = 'reference'");
    int stop = rt_worker_stop(&b.t, SIGTERM, 30000);

    double rate = (double)b.n / (t_matched - t0);
    fprintf(stderr, "\nrecords            %zu (%lld by reference, %lld by name and amount)\n", b.n,
            (long long)by_ref, (long long)((int64_t)b.n - by_ref));
    fprintf(stderr, "produced in        %.2f s\n", t_produced - t0);
    fprintf(stderr, "matched in         %.2f s  -> %.0f records/s (target >= %d): %s\n",
            t_matched - t0, rate, TARGET_RECORDS_PER_S,
            rate >= TARGET_RECORDS_PER_S ? "met" : "MISSED");
    fprintf(stderr, "published in       %.2f s  (every PaymentMatched acknowledged by Kafka)\n",
            t_published - t0);
    fprintf(stderr, "worker peak RSS    %.1f MiB (target <= %d MiB): %s\n", (double)rss_kb / 1024,
            TARGET_RSS_KB / 1024, rss_kb >= 0 && rss_kb <= TARGET_RSS_KB ? "met" : "MISSED");
    fprintf(stderr, "worker exit        %d after SIGTERM\n", stop);
    int failures = 0;
    failures += !rt_check(&b.t, all, "all %zu records matched (%lld)", b.n, (long long)last);
    failures += !rt_check(&b.t, published, "all PaymentMatched published");
    failures +=
        !rt_check(&b.t, wrong == 0 && reviews == 0, "no wrong match (%lld), no review (%lld)",
                  (long long)wrong, (long long)reviews);
    free(b.codes);
    rt_free(&b.t);
    return failures == 0 ? 0 : 1;
}
