/*
 * statement-import against the local stack, for what its records are trusted with:
 * - the file is read once: changed in place while the importer waits, what is published is
 *   what was hashed;
 * - every published record's provenance digest is recorded before anything is published, and a
 *   resumed import records nothing twice and publishes nothing it did not record;
 * - balance gaps and cross-file continuity: refused by default, accepted with an audit;
 * - bank ids that repeat inside a file: fingerprinted, here and in later files; one published
 *   alone before refuses the file;
 * - SIGTERM while waiting for PostgreSQL: nothing recorded, nothing published.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "testlib.h"
#include "topup/event.h"
#include "topup/kafka.h"
#include "topup/v1/events.pb-c.h"

#define IMPORT_MS 120000
#define WAIT_MS   60000
#define GOT_MAX   64

static char dir[TL_PATH_MAX];
static int nruns;

/* ---------------------------------------------------------------- running the command */

struct run {
    int code;
    char *out; /* stdout: the summary */
    char *err; /* stderr: problems, log lines */
};

static void run_import(struct run *r, const char *const *args, const char *const *env)
{
    char name[64], log[TL_PATH_MAX];
    const char *argv[TL_PROC_ARGS_MAX + 1] = {tl_bin("statement-import")};
    int k = 1;
    for (int i = 0; args[i] != NULL; i++) {
        argv[k++] = args[i];
    }
    argv[k] = NULL;
    snprintf(name, sizeof(name), "import-%d", ++nruns);
    r->code = tl_run(name, argv, env, &r->out, IMPORT_MS);
    snprintf(log, sizeof(log), "%s/%s.log", tl_logdir(), name);
    r->err = tl_read_file(log, NULL);
    TL_CHECK(r->err != NULL);
    tl_step("%s -> %d", name, r->code);
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

static void expect_code(const struct run *r, int code)
{
    TL_CHECK_MSG(r->code == code,
                 "statement-import exit %d, expected %d\n--- stdout\n%s--- stderr\n%s", r->code,
                 code, r->out, r->err);
}

static void expect_text(const char *hay, const char *needle)
{
    TL_CHECK_MSG(strstr(hay, needle) != NULL, "expected \"%s\" in:\n%s", needle, hay);
}

static const char *path_of(const char *name)
{
    static char p[4][TL_PATH_MAX * 2];
    static int slot;
    char *out = p[slot++ % 4];
    snprintf(out, sizeof(p[0]), "%s/%s", dir, name);
    return out;
}

static void write_text(const char *name, const char *text)
{
    tl_write_file(path_of(name), text, strlen(text));
}

/* ---------------------------------------------------------------- what was published */

struct got {
    const char *file;
    Topup__V1__BankStatementRecord *m[GOT_MAX];
    int n;
};

static void got_fn(void *ctx, int32_t partition, int64_t offset, const void *key, size_t key_len,
                   const void *payload, size_t len)
{
    struct got *g = ctx;
    (void)partition;
    (void)offset;
    (void)key;
    (void)key_len;
    Topup__V1__BankStatementRecord *m =
        topup__v1__bank_statement_record__unpack(NULL, len, payload);
    if (m == NULL || strcmp(m->source_file, g->file) != 0) {
        if (m != NULL) {
            topup__v1__bank_statement_record__free_unpacked(m, NULL);
        }
        return;
    }
    TL_CHECK(g->n < GOT_MAX);
    g->m[g->n++] = m;
}

/*
 * Where the topic ended when the test began: what it publishes comes after (and the dev broker
 * drops old messages of a busy partition, so offset 0 may be gone).
 */
static int64_t start_offsets[GOT_MAX];
static int partitions;

static void got_mark_start(void)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    TL_CHECK(rd_kafka_conf_set(conf, "bootstrap.servers", tl_env("KAFKA_BOOTSTRAP_SERVERS"), errstr,
                               sizeof(errstr)) == RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    TL_CHECK_MSG(rk != NULL, "rd_kafka_new: %s", errstr);
    partitions = tl_kafka_partitions(TOPIC_BANK_STATEMENT_RECORDS);
    TL_CHECK(partitions > 0 && partitions <= GOT_MAX);
    for (int p = 0; p < partitions; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, TOPIC_BANK_STATEMENT_RECORDS, p, &lo, &hi, 10000);
        TL_CHECK_MSG(e == RD_KAFKA_RESP_ERR_NO_ERROR, "watermarks: %s", rd_kafka_err2str(e));
        start_offsets[p] = hi;
    }
    rd_kafka_destroy(rk);
}

/* Every record on the topic from file (acknowledged before the import exits, so all there). */
static void got_read(struct got *g, const char *file)
{
    memset(g, 0, sizeof(*g));
    g->file = file;
    for (int p = 0; p < partitions; p++) {
        tl_kafka_read(TOPIC_BANK_STATEMENT_RECORDS, p, start_offsets[p], -1, got_fn, g);
    }
}

static void got_free(struct got *g)
{
    for (int i = 0; i < g->n; i++) {
        topup__v1__bank_statement_record__free_unpacked(g->m[i], NULL);
    }
    g->n = 0;
}

static const Topup__V1__BankStatementRecord *got_at(const struct got *g, const char *location)
{
    for (int i = 0; i < g->n; i++) {
        if (strcmp(g->m[i]->source_location, location) == 0) {
            return g->m[i];
        }
    }
    tl_fail("no published record of %s at %s (%d published)", g->file, location, g->n);
}

/* ---------------------------------------------------------------- PostgreSQL */

static int64_t q_i64(const char *sql, const char *p1)
{
    const char *params[] = {p1};
    return tl_pg_i64(sql, p1 != NULL ? 1 : 0, params);
}

static char *q_str(const char *sql, const char *p1)
{
    const char *params[] = {p1};
    PGresult *r = tl_pg_query(sql, 1, params);
    TL_CHECK_MSG(PQntuples(r) == 1, "%s: %d rows", sql, PQntuples(r));
    char *s = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return s;
}

static int64_t import_rows(const char *file)
{
    return q_i64("SELECT count(*) FROM statement_imports WHERE file_name = $1", file);
}

static int64_t provenance_rows(const char *file)
{
    return q_i64("SELECT count(*) FROM statement_import_records r JOIN statement_imports i ON "
                 "i.id = r.import_id WHERE i.file_name = $1",
                 file);
}

/*
 * Each published record's digest (event_bsr_digest, what reconciliation recomputes) is recorded
 * for its import, with its seq, account, id and amount; and nothing else is recorded.
 */
static void expect_provenance(const struct got *g)
{
    TL_CHECK_MSG(provenance_rows(g->file) == g->n, "%s: %" PRId64 " provenance rows, %d published",
                 g->file, provenance_rows(g->file), g->n);
    for (int i = 0; i < g->n; i++) {
        uint8_t d[EVENT_DIGEST_LEN];
        char hex[2 * EVENT_DIGEST_LEN + 3] = "\\x";
        event_bsr_digest(g->m[i], d);
        for (int k = 0; k < EVENT_DIGEST_LEN; k++) {
            snprintf(hex + 2 + 2 * k, 3, "%02x", d[k]);
        }
        char amount[24];
        snprintf(amount, sizeof(amount), "%" PRId64, g->m[i]->amount_fen);
        const char *params[] = {g->file, hex, g->m[i]->receiving_account, g->m[i]->bank_txn_id,
                                amount};
        int64_t n = tl_pg_i64("SELECT count(*) FROM statement_import_records r JOIN "
                              "statement_imports i ON i.id = r.import_id WHERE i.file_name = $1 "
                              "AND r.digest = $2::bytea AND r.receiving_account = $3 AND "
                              "r.bank_txn_id = $4 AND r.amount_fen = $5::bigint",
                              5, params);
        TL_CHECK_MSG(n == 1, "%s: record %s (%s) not recorded with its digest", g->file,
                     g->m[i]->bank_txn_id, g->m[i]->source_location);
    }
}

/* A second connection that holds statement_imports locked: the importer waits at its INSERT. */
static PGconn *lock_imports(void)
{
    PGconn *c = PQconnectdb(tl_env("PG_CONNINFO"));
    TL_CHECK_MSG(PQstatus(c) == CONNECTION_OK, "lock connection: %s", PQerrorMessage(c));
    PQclear(PQexec(c, "BEGIN"));
    PGresult *r = PQexec(c, "LOCK TABLE statement_imports IN EXCLUSIVE MODE");
    TL_CHECK_MSG(PQresultStatus(r) == PGRES_COMMAND_OK, "LOCK: %s", PQerrorMessage(c));
    PQclear(r);
    return c;
}

static void unlock_imports(PGconn *c)
{
    PQclear(PQexec(c, "COMMIT"));
    PQfinish(c);
}

/* Waits until the importer whose connection is named app waits for a lock. */
static void wait_blocked(const char *app)
{
    const char *p[] = {app};
    tl_pg_wait_i64("importer waiting for the lock",
                   "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND "
                   "wait_event_type = 'Lock'",
                   1, p, 1, WAIT_MS);
}

/* The importer as a child whose PostgreSQL connection carries application_name app. */
static void start_import(struct tl_proc *p, const char *name, const char *file, const char *app)
{
    static char conninfo[2][2048];
    static int slot;
    char *ci = conninfo[slot++ % 2];
    snprintf(ci, sizeof(conninfo[0]), "PG_CONNINFO=%s application_name=%s", tl_env("PG_CONNINFO"),
             app);
    const char *argv[] = {tl_bin("statement-import"), file, NULL};
    const char *env[] = {ci, NULL};
    tl_proc_start(p, name, argv, env);
}

static int wait_exit(struct tl_proc *p)
{
    int64_t deadline = tl_now_ms() + IMPORT_MS;
    int code = -1;
    while (tl_proc_alive(p, &code)) {
        TL_CHECK_MSG(tl_now_ms() < deadline, "%s did not exit", p->name);
        tl_sleep_ms(50);
    }
    return code;
}

static void sha256_hex(const char *text, char out[65])
{
    uint8_t md[32];
    unsigned int n = 0;
    EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
}

/* ---------------------------------------------------------------- statements */

/* An MT940 statement of account: :60F:/:62F: as given, then the :61:/:86: lines. */
static void mt940(char *out, size_t cap, const char *ref, const char *account, const char *open,
                  const char *close, const char *entries)
{
    snprintf(out, cap, ":20:%s\n:25:%s\n:28C:1/1\n:60F:%s\n%s:62F:%s\n-\n", ref, account, open,
             entries, close);
}

/* ---------------------------------------------------------------- the tests */

static struct tl_proc snapshot_proc, sigterm_proc;

/*
 * Changed in place while the importer waits for PostgreSQL (after it read the file): the records
 * published and the SHA-256 recorded are the file's as it was read, and each published record's
 * digest was recorded before it was published.
 */
static void test_read_once_and_provenance(const char *account)
{
    tl_step("read once, provenance recorded");
    char before[2048], after[2048], sha[65], app[64];
    mt940(before, sizeof(before), "SNAP1", account, "C240229CNY0,00", "C240301CNY350,00",
          ":61:2403010301C100,00NTRFNONREF//SNAP-A\n:86:TU7K3M9Q2X\n"
          ":61:2403010301C250,00NTRFNONREF\n:86:TU2345678A\n");
    mt940(after, sizeof(after), "SNAP1", account, "C240229CNY0,00", "C240301CNY9350,00",
          ":61:2403010301C900,00NTRFNONREF//SNAP-A\n:86:TU7K3M9Q2X\n"
          ":61:2403010301C8450,00NTRFNONREF\n:86:TU2345678A\n");
    write_text("snapshot.sta", before);
    sha256_hex(before, sha);
    snprintf(app, sizeof(app), "si-snap-%s", tl_sfx());
    PGconn *lock = lock_imports();
    start_import(&snapshot_proc, "import-snapshot", path_of("snapshot.sta"), app);
    wait_blocked(app);
    /* The importer has hashed and checked the file; now it changes, in place, into a file that
     * is just as valid. */
    int fd = open(path_of("snapshot.sta"), O_WRONLY | O_TRUNC);
    TL_CHECK(fd >= 0);
    TL_CHECK(write(fd, after, strlen(after)) == (ssize_t)strlen(after));
    close(fd);
    unlock_imports(lock);
    int code = wait_exit(&snapshot_proc);
    if (code != 0) {
        tl_proc_log_tail(&snapshot_proc, 30);
        tl_fail("import of a file changed after it was read: exit %d", code);
    }
    char *recorded =
        q_str("SELECT sha256 FROM statement_imports WHERE file_name = $1", "snapshot.sta");
    TL_CHECK_MSG(strcmp(recorded, sha) == 0, "recorded sha256 %s, the file as read %s", recorded,
                 sha);
    free(recorded);
    struct got g;
    got_read(&g, "snapshot.sta");
    TL_CHECK_MSG(g.n == 2, "%d records published", g.n);
    TL_CHECK(got_at(&g, "line 5")->amount_fen == 10000);
    TL_CHECK(got_at(&g, "line 7")->amount_fen == 25000);
    TL_CHECK(strcmp(got_at(&g, "line 5")->import_sha256, sha) == 0);
    expect_provenance(&g);
    char *rsha = q_str("SELECT coalesce(records_sha256, '') FROM statement_imports WHERE "
                       "file_name = $1",
                       "snapshot.sta");
    TL_CHECK(strlen(rsha) == 64);
    free(rsha);
    got_free(&g);
}

/*
 * Kafka unreachable: the records are recorded (before anything is published), the import stays
 * 'publishing'. The next run records nothing again and publishes exactly the recorded records.
 * A run whose reading differs from the recorded one (here: the record made to differ) publishes
 * nothing (exit 6).
 */
static void test_resume_records_once(const char *account)
{
    tl_step("resumed import: recorded once");
    char text[2048];
    mt940(text, sizeof(text), "RES1", account, "C240301CNY350,00", "C240302CNY480,00",
          ":61:2403020302C100,00NTRFNONREF//RES-A\n:86:TU3456789B\n"
          ":61:2403020302C30,00NTRFNONREF\n:86:TU4567890C\n");
    write_text("resume.sta", text);
    const char *args[] = {path_of("resume.sta"), NULL};
    const char *cut[] = {"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1", "IMPORT_FLUSH_TIMEOUT_MS=2000",
                         NULL};
    struct run r;
    run_import(&r, args, cut);
    expect_code(&r, 4);
    run_free(&r);
    TL_CHECK(provenance_rows("resume.sta") == 2);
    char *status = q_str("SELECT status FROM statement_imports WHERE file_name = $1", "resume.sta");
    TL_CHECK(strcmp(status, "publishing") == 0);
    free(status);
    run_import(&r, args, NULL);
    expect_code(&r, 0);
    expect_text(r.out, "(resumed an unfinished import)");
    run_free(&r);
    TL_CHECK(provenance_rows("resume.sta") == 2);
    struct got g;
    got_read(&g, "resume.sta");
    TL_CHECK_MSG(g.n == 2, "%d records published", g.n);
    expect_provenance(&g);
    got_free(&g);

    /* A 'publishing' import whose recorded reading is not this run's: nothing published. */
    mt940(text, sizeof(text), "RES2", account, "C240302CNY480,00", "C240303CNY490,00",
          ":61:2403030303C10,00NTRFNONREF//RES-B\n:86:TU5678901D\n");
    write_text("conflict.sta", text);
    const char *args2[] = {path_of("conflict.sta"), NULL};
    run_import(&r, args2, cut);
    expect_code(&r, 4);
    run_free(&r);
    tl_pg_exec("UPDATE statement_imports SET records_sha256 = repeat('0', 64) WHERE file_name = "
               "'conflict.sta'",
               0, NULL);
    run_import(&r, args2, NULL);
    expect_code(&r, 6);
    expect_text(r.out, "conflict: the unfinished import");
    expect_text(r.out, "nothing published");
    run_free(&r);
    got_read(&g, "conflict.sta");
    TL_CHECK_MSG(g.n == 0, "%d records published after a conflict", g.n);
    TL_CHECK(provenance_rows("conflict.sta") == 1);
}

/* A gap is refused with its amount named; accepted with a reason, it is kept with the import. */
static void test_gap_audited(const char *account)
{
    tl_step("balance gap: refused, then accepted and audited");
    char text[2048];
    mt940(text, sizeof(text), "GAP1", account, "C240303CNY490,00", "C240304CNY591,00",
          ":61:2403040304C100,00NTRFNONREF//GAP-A\n:86:TU6789012E\n");
    write_text("gap.sta", text);
    const char *plain[] = {path_of("gap.sta"), NULL};
    struct run r;
    run_import(&r, plain, NULL);
    expect_code(&r, 2);
    expect_text(r.err, "closing balance 591.00 CNY is not the opening balance 490.00 plus the 1 "
                       "entries 100.00 (= 590.00): a gap of 1.00");
    expect_text(r.err, "--accept-balance-gap --reason");
    run_free(&r);
    TL_CHECK(import_rows("gap.sta") == 0);
    const char *noreason[] = {"--accept-balance-gap", path_of("gap.sta"), NULL};
    run_import(&r, noreason, NULL);
    expect_code(&r, 1);
    expect_text(r.err, "--accept-balance-gap needs --reason");
    run_free(&r);
    const char *vague[] = {"--accept-balance-gap", "--reason", "ok", path_of("gap.sta"), NULL};
    run_import(&r, vague, NULL);
    expect_code(&r, 1);
    run_free(&r);
    TL_CHECK(import_rows("gap.sta") == 0);
    static const char why[] = "bank confirmed a 1.00 interest credit missing from the file";
    const char *accept[] = {"--accept-balance-gap", "--reason", why, path_of("gap.sta"), NULL};
    run_import(&r, accept, NULL);
    expect_code(&r, 0);
    expect_text(r.out, "balance gap accepted:");
    run_free(&r);
    TL_CHECK(q_i64("SELECT count(*) FROM statement_imports WHERE file_name = $1 AND "
                   "balance_gaps->0->>'kind' = 'balance' AND (balance_gaps->0->>'gap_fen')::bigint "
                   "= 100 AND (balance_gaps->0->>'expected_fen')::bigint = 59000 AND "
                   "gap_accepted_by LIKE '%@%' AND gap_accepted_role = current_user AND "
                   "gap_accepted_at IS NOT NULL AND jsonb_array_length(balance_gaps) = 1",
                   "gap.sta") == 1);
    char *reason =
        q_str("SELECT gap_reason FROM statement_imports WHERE file_name = $1", "gap.sta");
    TL_CHECK(strcmp(reason, why) == 0);
    free(reason);
    struct got g;
    got_read(&g, "gap.sta");
    TL_CHECK(g.n == 1);
    expect_provenance(&g);
    got_free(&g);
}

/* This file's opening must be the last imported closing of the account. */
static void test_continuity(const char *account)
{
    tl_step("continuity across files");
    char text[2048];
    mt940(text, sizeof(text), "CON1", account, "C240229EUR100,00", "C240301EUR150,00",
          ":61:2403010301C50,00NTRFNONREF//CON-A\n:86:TU7890123F\n");
    write_text("con-1.sta", text);
    const char *a1[] = {path_of("con-1.sta"), NULL};
    struct run r;
    run_import(&r, a1, NULL);
    expect_code(&r, 0);
    run_free(&r);
    /* The next day opens at 140.00 instead of 150.00. */
    mt940(text, sizeof(text), "CON2", account, "C240301EUR140,00", "C240302EUR130,00",
          ":61:2403020302D10,00NTRFNONREF//CON-B\n:86:FEE\n");
    write_text("con-2.sta", text);
    const char *a2[] = {path_of("con-2.sta"), NULL};
    run_import(&r, a2, NULL);
    expect_code(&r, 2);
    char want[512];
    snprintf(want, sizeof(want),
             "con-2.sta:4: statement :20:CON2 :28C:1/1 (line 1) opens account %s at 140.00 EUR, "
             "but the last imported closing balance (2024-03-01 of con-1.sta) is 150.00: a gap "
             "of -10.00",
             account);
    expect_text(r.err, want);
    run_free(&r);
    TL_CHECK(import_rows("con-2.sta") == 0);
    struct got g;
    got_read(&g, "con-2.sta");
    TL_CHECK(g.n == 0);
    const char *a2ok[] = {"--accept-balance-gap", "--reason", "bank reversed a 10.00 fee overnight",
                          path_of("con-2.sta"), NULL};
    run_import(&r, a2ok, NULL);
    expect_code(&r, 0);
    run_free(&r);
    TL_CHECK(q_i64("SELECT count(*) FROM statement_imports WHERE file_name = $1 AND "
                   "balance_gaps->0->>'kind' = 'continuity' AND "
                   "(balance_gaps->0->>'gap_fen')::bigint = -1000",
                   "con-2.sta") == 1);
    /* The day after follows on: compared, nothing to accept. */
    mt940(text, sizeof(text), "CON3", account, "C240302EUR130,00", "C240303EUR131,00",
          ":61:2403030303C1,00NTRFNONREF//CON-C\n:86:INTEREST\n");
    write_text("con-3.sta", text);
    const char *a3[] = {path_of("con-3.sta"), NULL};
    run_import(&r, a3, NULL);
    expect_code(&r, 0);
    expect_text(r.out, "continuity with earlier imports: 1 account compared");
    run_free(&r);
    TL_CHECK(q_i64("SELECT count(*) FROM statement_imports WHERE file_name = $1 AND "
                   "balance_gaps IS NULL AND gap_accepted_by IS NULL",
                   "con-3.sta") == 1);
}

/*
 * A bank id on two transactions of one file: both fingerprinted, and a later file's single use
 * of it too. An id that an earlier file published alone refuses the file that repeats it.
 */
static void test_shared_ids(const char *acc_a, const char *acc_b)
{
    tl_step("shared bank ids across files");
    char text[2048];
    struct run r;
    mt940(text, sizeof(text), "SH1", acc_a, "C240229CNY0,00", "C240301CNY300,00",
          ":61:2403010301C100,00NTRFNONREF//BATCH7\n:86:TU8901234G\n"
          ":61:2403010301C200,00NTRFNONREF//BATCH7\n:86:TU9012345H\n");
    write_text("shared-1.sta", text);
    const char *a1[] = {path_of("shared-1.sta"), NULL};
    run_import(&r, a1, NULL);
    expect_code(&r, 0);
    expect_text(r.out, "bank ids repeat for different transactions");
    run_free(&r);
    struct got g1;
    got_read(&g1, "shared-1.sta");
    TL_CHECK(g1.n == 2);
    TL_CHECK(got_at(&g1, "line 5")->id_is_fingerprint && got_at(&g1, "line 7")->id_is_fingerprint);
    TL_CHECK(strcmp(got_at(&g1, "line 5")->bank_txn_id, got_at(&g1, "line 7")->bank_txn_id) != 0);
    expect_provenance(&g1);
    TL_CHECK(q_i64("SELECT count(*) FROM statement_shared_ids WHERE receiving_account = $1 AND "
                   "bank_txn_id = 'BATCH7'",
                   acc_a) == 1);
    /* The next day's file has BATCH7 once: still not an identity. */
    mt940(text, sizeof(text), "SH2", acc_a, "C240301CNY300,00", "C240302CNY350,00",
          ":61:2403020302C50,00NTRFNONREF//BATCH7\n:86:TU0123456J\n");
    write_text("shared-2.sta", text);
    const char *a2[] = {path_of("shared-2.sta"), NULL};
    run_import(&r, a2, NULL);
    expect_code(&r, 0);
    run_free(&r);
    struct got g2;
    got_read(&g2, "shared-2.sta");
    TL_CHECK(g2.n == 1);
    TL_CHECK(g2.m[0]->id_is_fingerprint);
    TL_CHECK(strcmp(g2.m[0]->bank_txn_id, got_at(&g1, "line 5")->bank_txn_id) != 0);
    TL_CHECK(strcmp(g2.m[0]->bank_txn_id, got_at(&g1, "line 7")->bank_txn_id) != 0);
    got_free(&g1);
    got_free(&g2);

    /* Account B: PAY9 published alone first; a file repeating it cannot say which is which. */
    mt940(text, sizeof(text), "SH3", acc_b, "C240229CNY0,00", "C240301CNY100,00",
          ":61:2403010301C100,00NTRFNONREF//PAY9\n:86:TU1234567K\n");
    write_text("alone.sta", text);
    const char *a3[] = {path_of("alone.sta"), NULL};
    run_import(&r, a3, NULL);
    expect_code(&r, 0);
    run_free(&r);
    mt940(text, sizeof(text), "SH4", acc_b, "C240229CNY0,00", "C240301CNY300,00",
          ":61:2403010301C100,00NTRFNONREF//PAY9\n:86:TU1234567K\n"
          ":61:2403010301C200,00NTRFNONREF//PAY9\n:86:TU2345678L\n");
    write_text("repeats.sta", text);
    const char *a4[] = {path_of("repeats.sta"), NULL};
    run_import(&r, a4, NULL);
    expect_code(&r, 2);
    char want[512];
    snprintf(want, sizeof(want),
             "repeats.sta: bank transaction id \"PAY9\" of account %s repeats in this file (lines "
             "5 and 7) for different transactions, but import ",
             acc_b);
    expect_text(r.err, want);
    expect_text(r.err, "(alone.sta) published it as the id of one transaction");
    run_free(&r);
    TL_CHECK(import_rows("repeats.sta") == 0);
    struct got g;
    got_read(&g, "repeats.sta");
    TL_CHECK(g.n == 0);
    TL_CHECK(q_i64("SELECT count(*) FROM statement_shared_ids WHERE receiving_account = $1",
                   acc_b) == 0);
}

/* SIGTERM while the importer waits for PostgreSQL: exit 5, no row, nothing recorded or sent. */
static void test_sigterm(const char *account)
{
    tl_step("SIGTERM before anything is recorded");
    char text[2048], app[64];
    mt940(text, sizeof(text), "TERM1", account, "C240229CNY0,00", "C240301CNY10,00",
          ":61:2403010301C10,00NTRFNONREF//TERM-A\n:86:TU3456789M\n");
    write_text("term.sta", text);
    snprintf(app, sizeof(app), "si-term-%s", tl_sfx());
    PGconn *lock = lock_imports();
    start_import(&sigterm_proc, "import-sigterm", path_of("term.sta"), app);
    wait_blocked(app);
    TL_CHECK(kill(sigterm_proc.pid, SIGTERM) == 0);
    unlock_imports(lock);
    int code = wait_exit(&sigterm_proc);
    if (code != 5) {
        tl_proc_log_tail(&sigterm_proc, 30);
        tl_fail("SIGTERM: exit %d, expected 5", code);
    }
    TL_CHECK(import_rows("term.sta") == 0);
    TL_CHECK(provenance_rows("term.sta") == 0);
    struct got g;
    got_read(&g, "term.sta");
    TL_CHECK(g.n == 0);
}

int main(void)
{
    tl_init("statement_import_trust");
    snprintf(dir, sizeof(dir), "%s/files", tl_logdir());
    char cmd[TL_PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
    TL_CHECK(system(cmd) == 0);
    got_mark_start();
    char a[TL_ID_MAX], b[TL_ID_MAX], c[TL_ID_MAX], d[TL_ID_MAX], e[TL_ID_MAX], f[TL_ID_MAX];
    test_read_once_and_provenance(tl_id(a, "SNAP"));
    test_resume_records_once(tl_id(b, "RES"));
    test_gap_audited(tl_id(c, "GAP"));
    test_continuity(tl_id(d, "CON"));
    test_shared_ids(tl_id(e, "SHA"), tl_id(f, "SHB"));
    test_sigterm(tl_id(a, "TERM"));
    tl_step("done");
    return 0;
}
