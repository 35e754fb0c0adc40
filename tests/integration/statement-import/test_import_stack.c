/*
 * statement-import through the local stack: import a file, consume bank.statement.records and
 * decode it; import it again (already imported, nothing published); an invalid file publishes
 * nothing; a run cut off while publishing (Kafka unreachable) is resumed by the next run.
 */
#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "topup/ids.h"
#include "topup/kafka.h"
#include "topup/v1/events.pb-c.h"

#define WAIT_MAX_MS 90000
#define QUIET_MS    4000
#define MSGS_MAX    64

static char account[40];  /* unique per run: every assertion is about our own records */
static char workdir[256]; /* temporary files */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fail_msg("%s is not set: run through tests/with-stack.sh (ctest does)", name);
    }
    return v;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs the command with extra environment assignments; returns its exit code, output in out. */
static int run_import(const char *envs, const char *args, char *out, size_t cap)
{
    char cmd[2048], log[300];
    snprintf(log, sizeof log, "%s/out.txt", workdir);
    snprintf(cmd, sizeof cmd,
             "env %s '%s/services/statement-import/statement-import' %s > '%s' 2>&1", envs,
             env("TOPUP_BUILD_DIR"), args, log);
    int rc = system(cmd);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
    print_message("--- statement-import %s -> %d\n%s", args, WEXITSTATUS(rc), out);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

struct got {
    Topup__V1__BankStatementRecord *msgs[MSGS_MAX];
    int n;
};

/*
 * Consumes until `want` records of our account from file `file` arrived, then QUIET_MS more to
 * see extras. A new group reads the topic from the start: other files' records are skipped.
 */
static void consume(const char *group, const char *file, int want, struct got *g)
{
    struct tp_error err;
    const char *topics[] = {TOPIC_BANK_STATEMENT_RECORDS};
    struct kafka_consumer *c = kafka_consumer_new(group, topics, 1, &err);
    if (c == NULL) {
        fail_msg("consumer: %s", err.msg);
    }
    struct kafka_message batch[128];
    int64_t deadline = now_ms() + WAIT_MAX_MS;
    int64_t quiet_until = 0;
    while (now_ms() < deadline && (quiet_until == 0 || now_ms() < quiet_until)) {
        int n = kafka_consumer_poll_batch(c, batch, 128, 200);
        for (int i = 0; i < n; i++) {
            if (batch[i].key_len != strlen(account) ||
                memcmp(batch[i].key, account, batch[i].key_len) != 0) {
                continue;
            }
            Topup__V1__BankStatementRecord *m =
                topup__v1__bank_statement_record__unpack(NULL, batch[i].len, batch[i].payload);
            assert_non_null(m);
            if (strcmp(m->source_file, file) != 0) {
                topup__v1__bank_statement_record__free_unpacked(m, NULL);
                continue;
            }
            assert_true(g->n < MSGS_MAX);
            g->msgs[g->n++] = m;
        }
        kafka_consumer_store(c, batch, n);
        kafka_consumer_release(c, batch, n);
        if (g->n >= want && quiet_until == 0) {
            quiet_until = now_ms() + QUIET_MS;
        }
    }
    kafka_consumer_free(c);
}

static void got_free(struct got *g)
{
    for (int i = 0; i < g->n; i++) {
        topup__v1__bank_statement_record__free_unpacked(g->msgs[i], NULL);
    }
    g->n = 0;
}

static const Topup__V1__BankStatementRecord *by_location(const struct got *g, const char *loc)
{
    for (int i = 0; i < g->n; i++) {
        if (strcmp(g->msgs[i]->source_location, loc) == 0) {
            return g->msgs[i];
        }
    }
    return NULL;
}

/* statement_imports row of the file: status and record count ("" when none). */
static void import_row(const char *file_name, char *status, int *records)
{
    PGconn *pg = PQconnectdb(env("PG_CONNINFO"));
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    const char *params[] = {file_name};
    PGresult *r = PQexecParams(pg,
                               "SELECT status, record_count FROM statement_imports WHERE "
                               "file_name = $1",
                               1, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    status[0] = '\0';
    *records = -1;
    if (PQntuples(r) == 1) {
        strcpy(status, PQgetvalue(r, 0, 0));
        *records = atoi(PQgetvalue(r, 0, 1));
    }
    assert_true(PQntuples(r) <= 1);
    PQclear(r);
    PQfinish(pg);
}

static char *csv_for(const char *tag, char *path, size_t cap)
{
    /* Identical payments on one day stay two records; the third has the bank's own number. */
    snprintf(path, cap, "%s/stmt-%s-%s.csv", workdir, account, tag);
    char text[2048];
    snprintf(text, sizeof text,
             "记账日期,交易时间,借方发生额,贷方发生额,余额,币种,对方户名,对方账号,对方开户机构,"
             "摘要,备注,账户明细编号-交易流水号,本方账号\n"
             "20240301,09:00:00,,\"1,000.00\",1000.00,人民币,张三,6222020000000001,工行,转账,"
             "TU7K3M9Q2X %s,,%s\n"
             "20240301,09:00:00,,\"1,000.00\",2000.00,人民币,张三,6222020000000001,工行,转账,"
             "TU7K3M9Q2X %s,,%s\n"
             "20240301,10:00:00,50.00,,1950.00,人民币,供应商,6222020000000002,建行,付款,,"
             "ID-%s,%s\n",
             tag, account, tag, account, account, account);
    write_file(path, text);
    return path;
}

static void test_import_consume_reimport(void **state)
{
    (void)state;
    char path[512], out[8192], args[1024], group[128], status[32];
    int records;
    csv_for("a", path, sizeof path);
    snprintf(args, sizeof args, "'%s'", path);
    assert_int_equal(run_import("", args, out, sizeof out), 0);
    assert_non_null(strstr(out, "published 3 records to bank.statement.records, every one "
                                "acknowledged"));
    const char *base = strrchr(path, '/') + 1;
    import_row(base, status, &records);
    assert_string_equal(status, "completed");
    assert_int_equal(records, 3);

    snprintf(group, sizeof group, "it-si-%s", account);
    struct got g = {0};
    consume(group, base, 3, &g);
    assert_int_equal(g.n, 3);
    const Topup__V1__BankStatementRecord *m = by_location(&g, "line 2");
    assert_non_null(m);
    assert_string_equal(m->envelope->producer, "statement-import");
    assert_true(ids_uuid_valid(m->envelope->event_id));
    assert_string_equal(m->envelope->account_id, "");
    assert_int_equal(m->envelope->schema_version, 1);
    assert_string_equal(m->receiving_account, account);
    assert_int_equal(m->amount_fen, 100000);
    assert_int_equal(m->direction, TOPUP__V1__DIRECTION__DIRECTION_CREDIT);
    assert_string_equal(m->currency, "CNY");
    assert_string_equal(m->booking_date, "2024-03-01");
    assert_string_equal(m->value_date, "2024-03-01");
    assert_string_equal(m->counterparty_name, "张三");
    assert_string_equal(m->format, "csv:ccb-corporate");
    assert_string_equal(m->source_file, base);
    assert_int_equal(strlen(m->import_sha256), 64);
    assert_true(m->id_is_fingerprint);
    const Topup__V1__BankStatementRecord *twin = by_location(&g, "line 3");
    assert_non_null(twin);
    assert_true(strncmp(m->bank_txn_id, "fp:", 3) == 0);
    assert_string_not_equal(m->bank_txn_id, twin->bank_txn_id);
    assert_int_equal(strncmp(m->bank_txn_id, twin->bank_txn_id, strlen(m->bank_txn_id) - 1), 0);
    const Topup__V1__BankStatementRecord *debit = by_location(&g, "line 4");
    assert_non_null(debit);
    assert_int_equal(debit->amount_fen, -5000);
    assert_int_equal(debit->direction, TOPUP__V1__DIRECTION__DIRECTION_DEBIT);
    assert_false(debit->id_is_fingerprint);
    char id[64];
    snprintf(id, sizeof id, "ID-%s", account);
    assert_string_equal(debit->bank_txn_id, id);
    got_free(&g);

    /* The same file again: already imported, exit 3, nothing new on the topic. */
    assert_int_equal(run_import("", args, out, sizeof out), 3);
    assert_non_null(strstr(out, "already imported (completed "));
    consume(group, base, 0, &g);
    assert_int_equal(g.n, 0);
    got_free(&g);
}

static void test_invalid_publishes_nothing(void **state)
{
    (void)state;
    char path[512], out[8192], args[1024], group[128], status[32], text[1024];
    int records;
    snprintf(path, sizeof path, "%s/bad-%s.csv", workdir, account);
    snprintf(text, sizeof text,
             "记账日期,货币,交易金额,联机余额,交易摘要,对手信息,客户摘要\n"
             "2024-03-01,CNY,100.00,100.00,ok,张三,TU7K3M9Q2X\n"
             "2024-03-01,CNY,10.001,,bad,李四,x\n");
    write_file(path, text);
    snprintf(args, sizeof args, "--account %s '%s'", account, path);
    assert_int_equal(run_import("", args, out, sizeof out), 2);
    char want[700];
    snprintf(want, sizeof want,
             "bad-%s.csv:3: column 交易金额: amount \"10.001\" has non-zero digits beyond two "
             "decimals",
             account);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "rejected: 1 problem; nothing published"));
    import_row(strrchr(path, '/') + 1, status, &records);
    assert_string_equal(status, "");
    snprintf(group, sizeof group, "it-si-bad-%s", account);
    struct got g = {0};
    consume(group, strrchr(path, '/') + 1, 0, &g);
    assert_int_equal(g.n, 0); /* the valid first row was not published either */
    got_free(&g);
}

/* Kafka unreachable: exit 4 and the import stays 'publishing'; the next run publishes all. */
static void test_cut_off_then_resumed(void **state)
{
    (void)state;
    char path[512], out[8192], args[1024], group[128], status[32];
    int records;
    csv_for("resume", path, sizeof path);
    snprintf(args, sizeof args, "'%s'", path);
    assert_int_equal(run_import("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1 IMPORT_FLUSH_TIMEOUT_MS=2000",
                                args, out, sizeof out),
                     4);
    assert_non_null(strstr(out, "run the import again"));
    const char *base = strrchr(path, '/') + 1;
    import_row(base, status, &records);
    assert_string_equal(status, "publishing");
    assert_int_equal(run_import("", args, out, sizeof out), 0);
    assert_non_null(strstr(out, "(resumed an unfinished import)"));
    import_row(base, status, &records);
    assert_string_equal(status, "completed");
    snprintf(group, sizeof group, "it-si-resume-%s", account);
    struct got g = {0};
    consume(group, base, 3, &g);
    /* Only what the broker acknowledged counts: the first run's messages never arrived. */
    assert_int_equal(g.n, 3);
    got_free(&g);
}

/* --dry-run needs neither PostgreSQL nor Kafka. */
static void test_dry_run_touches_nothing(void **state)
{
    (void)state;
    char path[512], out[8192], args[1024], status[32];
    int records;
    csv_for("dry", path, sizeof path);
    snprintf(args, sizeof args, "--dry-run '%s'", path);
    assert_int_equal(run_import("PG_CONNINFO='host=127.0.0.1 port=1' KAFKA_BOOTSTRAP_SERVERS="
                                "127.0.0.1:1",
                                args, out, sizeof out),
                     0);
    assert_non_null(strstr(out, "\"receiving_account\":\""));
    assert_non_null(strstr(out, "dry run: nothing published"));
    import_row(strrchr(path, '/') + 1, status, &records);
    assert_string_equal(status, "");
}

static int setup(void **state)
{
    (void)state;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    srand((unsigned)ts.tv_nsec ^ (unsigned)getpid());
    snprintf(account, sizeof account, "SI%d%06d", (int)getpid(), rand() % 1000000);
    snprintf(workdir, sizeof workdir, "/tmp/si-it-%s", account);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", workdir);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", workdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_consume_reimport),
        cmocka_unit_test(test_invalid_publishes_nothing),
        cmocka_unit_test(test_cut_off_then_resumed),
        cmocka_unit_test(test_dry_run_touches_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
