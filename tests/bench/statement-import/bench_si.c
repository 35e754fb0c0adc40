/*
 * statement-import benchmark: generates a 1,000,000-line CSV export and a large camt.053, then
 * measures the checking pass in process (lines and records per second, peak RSS) and the whole
 * import by the command to the stack's Kafka (wall time, peak RSS of the command). Prints figures
 * next to the targets; only a functional failure (the import not exiting 0) fails it.
 *
 *   bench_si <statement-import binary> [csv lines] [camt entries]
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "detect.h"
#include "identity.h"
#include "parser.h"
#include "validate.h"

#define TARGET_LINES_PER_S 1000000.0
#define TARGET_IMPORT_S    10.0
#define TARGET_RSS_MB      64.0

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rss_mb(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* BOC personal layout, newest row last, a running balance that holds, names and remarks that
 * look like real ones (Chinese text, reference codes), one account. */
static void gen_csv(const char *path, const char *account, long lines)
{
    static const char *const names[] = {"张三",
                                        "李四",
                                        "王五",
                                        "赵六",
                                        "北京某某科技有限公司",
                                        "上海十企业管理顾问有限公司",
                                        "支付宝-李四",
                                        "深圳市财付通支付科技有限公司"};
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    fprintf(f,
            "中国银行交易流水明细单\n记账日期,记账时间,币别,金额,余额,交易名称,渠道,网点名称,附言,"
            "对方账户名,对方卡号/账号,对方开户行,借记卡号\n");
    int64_t balance = 100000000;
    unsigned seed = 42;
    int y = 2024, m = 1, d = 1;
    for (long i = 0; i < lines - 2; i++) {
        if (i > 0 && i % 3000 == 0 && ++d > 28) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
        int64_t amount = (int64_t)(rand_r(&seed) % 130000) - 50000;
        if (amount == 0) {
            amount = 1;
        }
        balance += amount;
        int64_t a = amount < 0 ? -amount : amount;
        fprintf(f,
                "%04d-%02d-%02d,%02ld:%02ld:%02ld,人民币,%s%" PRId64 ".%02" PRId64 ",%" PRId64
                ".%02" PRId64 ",转账,手机银行,--,TU%07ldX 货款,%s,6222%012ld,中国银行,%s\n",
                y, m, d, i % 24, i % 60, (i * 7) % 60, amount < 0 ? "-" : "", a / 100, a % 100,
                balance / 100, balance % 100, i % 10000000, names[i % 8], i, account);
    }
    fclose(f);
}

static void gen_camt(const char *path, const char *account, long entries)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    int64_t opening = 100000000, sum = 0;
    unsigned seed = 7;
    /* Balances come before the entries in camt: add the entries up first. */
    for (long i = 0; i < entries; i++) {
        sum += (int64_t)(rand_r(&seed) % 100000) + 1;
    }
    int64_t closing = opening + sum;
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt>\n"
            "<GrpHdr><MsgId>BENCH</MsgId></GrpHdr><Stmt><Id>BENCH-%s</Id>\n"
            "<Acct><Id><Othr><Id>%s</Id></Othr></Id><Ccy>CNY</Ccy></Acct>\n"
            "<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">%" PRId64
            ".%02" PRId64 "</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2024-03-01</Dt></Dt></Bal>\n"
            "<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">%" PRId64
            ".%02" PRId64 "</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2024-03-01</Dt></Dt></Bal>\n",
            account, account, opening / 100, opening % 100, closing / 100, closing % 100);
    seed = 7;
    for (long i = 0; i < entries; i++) {
        int64_t a = (int64_t)(rand_r(&seed) % 100000) + 1;
        fprintf(f,
                "<Ntry><Amt Ccy=\"CNY\">%" PRId64 ".%02" PRId64 "</Amt><CdtDbtInd>CRDT</CdtDbtInd>"
                "<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2024-03-01</Dt></BookgDt><ValDt><Dt>"
                "2024-03-01</Dt></ValDt><AcctSvcrRef>B%ld</AcctSvcrRef><NtryDtls><TxDtls>"
                "<RltdPties><Dbtr><Pty><Nm>付款人%ld</Nm></Pty></Dbtr><DbtrAcct><Id><Othr><Id>"
                "6222%012ld</Id></Othr></Id></DbtrAcct></RltdPties><RmtInf><Ustrd>TU%07ldX 充值"
                "</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n",
                a / 100, a % 100, i, i % 1000, i, i % 10000000);
    }
    fprintf(f, "</Stmt></BkToCstmrStmt></Document>\n");
    fclose(f);
}

/* The checking pass in process: the parser, every check, the identities. */
static void bench_check(const char *path, const char *what, long lines)
{
    struct tp_error err;
    struct input *in = input_open_file(path, &err);
    if (in == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    unsigned char head[4096];
    enum stmt_format fmt = detect_format(head, input_peek(in, head, sizeof head));
    struct identity *id = identity_new();
    struct validator *v = validator_new(what, id, 10);
    struct parse_options o = {.account = NULL};
    double t0 = now_s();
    enum tp_status st = fmt == FORMAT_CAMT ? parser_camt_run(in, &o, validator_sink(v), &err)
                                           : parser_csv_run(in, &o, validator_sink(v), &err);
    validator_finish(v);
    double dt = now_s() - t0;
    uint64_t records = validator_stats(v)->records;
    printf("%-5s check pass : %8" PRIu64 " records, %.2f s, %10.0f records/s", what, records, dt,
           (double)records / dt);
    if (lines > 0) {
        printf(", %10.0f lines/s (target >= %.0f: %s)", (double)lines / dt, TARGET_LINES_PER_S,
               (double)lines / dt >= TARGET_LINES_PER_S ? "met" : "NOT met");
    }
    printf("\n");
    if (st != TP_OK || validator_problems(v) != 0) {
        fprintf(stderr, "bench: the generated %s file has problems: %s\n", what,
                validator_problem(v, 0));
        exit(1);
    }
    validator_free(v);
    identity_free(id);
    input_free(in);
}

/* The whole import by the command: returns its exit code; wall time and peak RSS printed. */
static int bench_import(const char *bin, const char *path, const char *what, long records)
{
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execl(bin, bin, path, (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    double dt = now_s() - t0;
    double rss = (double)ru.ru_maxrss / 1024.0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    printf("%-5s import     : %8ld records, %.2f s, %10.0f records/s to Kafka", what, records, dt,
           (double)records / dt);
    if (strcmp(what, "csv") == 0) {
        printf(" (target < %.0f s: %s)", TARGET_IMPORT_S, dt < TARGET_IMPORT_S ? "met" : "NOT met");
    }
    printf("\n%-5s peak RSS   : %.1f MB (target <= %.0f MB: %s), exit %d\n", what, rss,
           TARGET_RSS_MB, rss <= TARGET_RSS_MB ? "met" : "NOT met", code);
    return code;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_si <statement-import> [csv lines] [camt entries]\n");
        return 2;
    }
    long lines = argc > 2 ? atol(argv[2]) : 1000000;
    long entries = argc > 3 ? atol(argv[3]) : 200000;
    const char *tmp = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    char account[32], csv[512], camt[512];
    snprintf(account, sizeof account, "6222%06d%06ld", (int)getpid() % 1000000,
             (long)time(NULL) % 1000000);
    snprintf(csv, sizeof csv, "%s/bench-si-%s.csv", tmp, account);
    snprintf(camt, sizeof camt, "%s/bench-si-%s.xml", tmp, account);
    double t0 = now_s();
    gen_csv(csv, account, lines);
    gen_camt(camt, account, entries);
    printf("generated %ld CSV lines and %ld camt entries in %.1f s\n", lines, entries,
           now_s() - t0);
    bench_check(csv, "csv", lines);
    bench_check(camt, "camt", 0);
    printf("check pass peak RSS (this process): %.1f MB\n", rss_mb(RUSAGE_SELF));
    int rc = bench_import(argv[1], csv, "csv", lines - 2);
    int rc2 = bench_import(argv[1], camt, "camt", entries);
    unlink(csv);
    unlink(camt);
    return rc == 0 && rc2 == 0 ? 0 : 1;
}
