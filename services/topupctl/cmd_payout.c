/* topupctl payout write: approved refunds into one bank batch file (pain.001 or CN CSV), once. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "topup/mem.h"
#include "topup/money.h"
#include "topup/pg.h"

#define PAYOUT_CONNECT_MS  10000
#define PAYOUT_TX_ATTEMPTS 5
#define PAYOUT_BATCH_MAX   1000 /* refunds in one file; the rest go into the next run's file */
#define PAYOUT_PATH_MAX    4096
/* Advisory lock of payout writing: the bytes of "payoutwr". */
#define PAYOUT_LOCK_KEY "8097887124607760242"

static const char payout_usage[] =
    "usage: topupctl payout write --format pain001|cn-csv --out DIR [--encoding utf-8|gbk]\n"
    "                             [--by NAME] [--debtor-name N] [--debtor-account A]\n"
    "                             [--debtor-bank B]\n"
    "\n"
    "Writes the approved refunds whose reservation the ledger applied (and approved review-queue\n"
    "refunds) as one bank batch file in DIR: ISO 20022 pain.001.001.09, or the CN batch-transfer\n"
    "CSV (--encoding gbk for banks that take GBK). The file's bytes and SHA-256 are recorded\n"
    "(payout_files) in the transaction that moves its refunds to 'sent' with their end-to-end id;\n"
    "the file is then written from that record. Running it again writes nothing new; a recorded\n"
    "file not yet written (a crash in between) is written again, byte for byte.\n"
    "Exit 0 (also when there is nothing to write), 1 on a failure, 2 on a bad command line.\n";

struct payout_args {
    const char *format, *out, *encoding, *by, *debtor_name, *debtor_account, *debtor_bank;
};

struct payout_ctx {
    const struct payout_args *a;
    int refunds;
    int64_t total_fen;
    char file_name[256];
};

/* A growing buffer; out of memory aborts in mem_realloc. */
struct payout_buf {
    char *p;
    size_t len, cap;
};

static void payout_put(struct payout_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = mem_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void payout_puts(struct payout_buf *b, const char *s)
{
    payout_put(b, s, strlen(s));
}

/* Text as XML character data: & < > " escaped. */
static void payout_xml(struct payout_buf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '&':
            payout_puts(b, "&amp;");
            break;
        case '<':
            payout_puts(b, "&lt;");
            break;
        case '>':
            payout_puts(b, "&gt;");
            break;
        case '"':
            payout_puts(b, "&quot;");
            break;
        default:
            payout_put(b, s, 1);
        }
    }
}

static void payout_el(struct payout_buf *b, const char *tag, const char *text)
{
    payout_puts(b, "<");
    payout_puts(b, tag);
    payout_puts(b, ">");
    payout_xml(b, text);
    payout_puts(b, "</");
    payout_puts(b, tag);
    payout_puts(b, ">");
}

/* A CSV field: quoted when it holds a comma, quote or line break (quotes doubled). */
static void payout_csv(struct payout_buf *b, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        payout_puts(b, s);
        return;
    }
    payout_puts(b, "\"");
    for (; *s != '\0'; s++) {
        payout_put(b, s, 1);
        if (*s == '"') {
            payout_put(b, s, 1);
        }
    }
    payout_puts(b, "\"");
}

/* Rows: refund_id, amount_fen, dest_name, dest_account, dest_bank, order code or "". */
static void payout_pain001(struct payout_buf *b, const struct payout_args *a, const char *msg_id,
                           const PGresult *r, int64_t total_fen)
{
    char now[32], today[16], n[16], sum[MONEY_STR_MAX], amt[MONEY_STR_MAX];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    strftime(today, sizeof(today), "%Y-%m-%d", &tm);
    snprintf(n, sizeof(n), "%d", PQntuples(r));
    money_format(total_fen, sum);
    payout_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:"
                   "20022:tech:xsd:pain.001.001.09\"><CstmrCdtTrfInitn><GrpHdr>");
    payout_el(b, "MsgId", msg_id);
    payout_el(b, "CreDtTm", now);
    payout_el(b, "NbOfTxs", n);
    payout_el(b, "CtrlSum", sum);
    payout_puts(b, "<InitgPty>");
    payout_el(b, "Nm", a->debtor_name);
    payout_puts(b, "</InitgPty></GrpHdr><PmtInf>");
    payout_el(b, "PmtInfId", msg_id);
    payout_el(b, "PmtMtd", "TRF");
    payout_el(b, "NbOfTxs", n);
    payout_el(b, "CtrlSum", sum);
    payout_puts(b, "<ReqdExctnDt>");
    payout_el(b, "Dt", today);
    payout_puts(b, "</ReqdExctnDt><Dbtr>");
    payout_el(b, "Nm", a->debtor_name);
    payout_puts(b, "</Dbtr><DbtrAcct><Id><Othr>");
    payout_el(b, "Id", a->debtor_account);
    payout_puts(b, "</Othr></Id><Ccy>CNY</Ccy></DbtrAcct><DbtrAgt><FinInstnId>");
    payout_el(b, "Nm", a->debtor_bank);
    payout_puts(b, "</FinInstnId></DbtrAgt>");
    for (int i = 0; i < PQntuples(r); i++) {
        payout_puts(b, "\n<CdtTrfTxInf><PmtId>");
        payout_el(b, "EndToEndId", pg_get_str(r, i, 0));
        payout_puts(b, "</PmtId><Amt><InstdAmt Ccy=\"CNY\">");
        payout_puts(b, money_format(pg_get_i64(r, i, 1), amt));
        payout_puts(b, "</InstdAmt></Amt><CdtrAgt><FinInstnId>");
        payout_el(b, "Nm", pg_get_str(r, i, 4));
        payout_puts(b, "</FinInstnId></CdtrAgt><Cdtr>");
        payout_el(b, "Nm", pg_get_str(r, i, 2));
        payout_puts(b, "</Cdtr><CdtrAcct><Id><Othr>");
        payout_el(b, "Id", pg_get_str(r, i, 3));
        payout_puts(b, "</Othr></Id></CdtrAcct><RmtInf>");
        char ustrd[128];
        snprintf(ustrd, sizeof(ustrd), "REFUND %s %s", pg_get_str(r, i, 0), pg_get_str(r, i, 5));
        payout_el(b, "Ustrd", ustrd);
        payout_puts(b, "</RmtInf></CdtTrfTxInf>");
    }
    payout_puts(b, "\n</PmtInf></CstmrCdtTrfInitn></Document>\n");
}

/* The CN batch-transfer profile: a header line, then one line per transfer. */
static void payout_cn_csv(struct payout_buf *b, const char *msg_id, const PGresult *r)
{
    char amt[MONEY_STR_MAX], seq[16];
    payout_puts(b, "序号,收款人账号,收款人户名,收款银行,金额,币种,用途,业务参考号\r\n");
    for (int i = 0; i < PQntuples(r); i++) {
        snprintf(seq, sizeof(seq), "%d,", i + 1);
        payout_puts(b, seq);
        payout_csv(b, pg_get_str(r, i, 3));
        payout_puts(b, ",");
        payout_csv(b, pg_get_str(r, i, 2));
        payout_puts(b, ",");
        payout_csv(b, pg_get_str(r, i, 4));
        payout_puts(b, ",");
        payout_puts(b, money_format(pg_get_i64(r, i, 1), amt));
        payout_puts(b, ",CNY,");
        char use[128];
        snprintf(use, sizeof(use), "退款 %s %s", pg_get_str(r, i, 0), msg_id);
        payout_csv(b, use);
        payout_puts(b, ",");
        payout_csv(b, pg_get_str(r, i, 0));
        payout_puts(b, "\r\n");
    }
}

/* UTF-8 to GBK in place; a character GBK lacks is an error (never a '?' in a payee's name). */
static enum tp_status payout_to_gbk(struct payout_buf *b, struct tp_error *err)
{
    iconv_t cd = iconv_open("GBK", "UTF-8");
    if (cd == (iconv_t)-1) {
        return error_set(err, TP_FATAL, "iconv cannot convert UTF-8 to GBK here");
    }
    size_t cap = b->len * 2 + 16, left_in = b->len, left_out = cap;
    char *out = mem_alloc(cap), *in = b->p, *o = out;
    enum tp_status st = TP_OK;
    if (iconv(cd, &in, &left_in, &o, &left_out) == (size_t)-1) {
        st = error_set(err, TP_INVALID,
                       "a name or bank in the batch has a character GBK cannot write (%s): use "
                       "--encoding utf-8",
                       strerror(errno));
        free(out);
    } else {
        free(b->p);
        b->p = out;
        b->len = cap - left_out;
        b->cap = cap;
    }
    iconv_close(cd);
    return st;
}

/* Approved refunds that may be paid: reserved by the ledger, or review-queue ones (no account). */
static const char payout_sql_due[] =
    "SELECT q.refund_id, q.amount_fen, q.dest_name, q.dest_account, q.dest_bank, "
    "COALESCE(l.order_code, ''), q.id FROM refund_requests q "
    "LEFT JOIN credit_lots l ON l.id = q.lot_id WHERE q.state = 'approved' AND "
    "(q.account_id IS NULL OR EXISTS (SELECT 1 FROM account_flows f WHERE f.event_id = "
    "q.reserve_event_id)) ORDER BY q.id LIMIT 1000 FOR UPDATE OF q"; /* PAYOUT_BATCH_MAX */

static enum tp_status payout_record_tx(struct pg_conn *c, void *ctx, struct tp_error *err)
{
    struct payout_ctx *x = ctx;
    const struct payout_args *a = x->a;
    PGresult *r = NULL;
    x->refunds = 0;
    enum tp_status st = pg_exec(c, payout_sql_due, 0, NULL, &r, err);
    if (st != TP_OK || PQntuples(r) == 0) {
        PQclear(r);
        return st;
    }
    PGresult *idr = NULL;
    st = pg_exec(c, "SELECT nextval(pg_get_serial_sequence('payout_files', 'id'))", 0, NULL, &idr,
                 err);
    if (st != TP_OK) {
        PQclear(r);
        return st;
    }
    char id[24], msg_id[40], total[24], count[16];
    snprintf(id, sizeof(id), "%s", pg_get_str(idr, 0, 0));
    PQclear(idr);
    snprintf(msg_id, sizeof(msg_id), "TOPUP-PAYOUT-%010lld", atoll(id));
    x->total_fen = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        x->total_fen += pg_get_i64(r, i, 1);
    }
    struct payout_buf b = {0};
    bool pain = strcmp(a->format, "pain001") == 0;
    if (pain) {
        payout_pain001(&b, a, msg_id, r, x->total_fen);
    } else {
        payout_cn_csv(&b, msg_id, r);
    }
    bool gbk = strcmp(a->encoding, "gbk") == 0;
    if (gbk) {
        st = payout_to_gbk(&b, err);
    }
    snprintf(x->file_name, sizeof(x->file_name), "%s.%s", msg_id, pain ? "xml" : "csv");
    snprintf(total, sizeof(total), "%lld", (long long)x->total_fen);
    snprintf(count, sizeof(count), "%d", PQntuples(r));
    if (st == TP_OK) {
        const char *p[9] = {id,  msg_id, a->format, a->encoding, x->file_name,
                            b.p, count,  total,     a->by};
        int lens[9] = {0, 0, 0, 0, 0, (int)b.len, 0, 0, 0};
        int fmts[9] = {0, 0, 0, 0, 0, 1, 0, 0, 0};
        st = pg_exec_bin(c,
                         "INSERT INTO payout_files (id, msg_id, format, encoding, file_name, "
                         "content, sha256, refunds, total_fen, created_by) VALUES ($1::bigint, $2, "
                         "$3, $4, $5, $6::bytea, encode(sha256($6::bytea), 'hex'), $7::int, "
                         "$8::bigint, $9)",
                         9, p, lens, fmts, NULL, err);
    }
    free(b.p);
    for (int i = 0; st == TP_OK && i < PQntuples(r); i++) {
        const char *q[5] = {id, pg_get_str(r, i, 6), pg_get_str(r, i, 0), a->by, msg_id};
        st = pg_exec(c,
                     "WITH i AS (INSERT INTO payout_file_items (file_id, request_id, "
                     "end_to_end_id, amount_fen) SELECT $1::bigint, q.id, $3, q.amount_fen FROM "
                     "refund_requests q WHERE q.id = $2::bigint), "
                     "u AS (UPDATE refund_requests SET state = 'sent', end_to_end_id = $3, "
                     "updated_at = now() WHERE id = $2::bigint AND state = 'approved') "
                     "INSERT INTO refund_transitions (request_id, from_state, to_state, actor, "
                     "reason) VALUES ($2::bigint, 'approved', 'sent', $4, 'payout file ' || $5)",
                     5, q, NULL, err);
    }
    if (st == TP_OK) {
        x->refunds = PQntuples(r);
    }
    PQclear(r);
    return st;
}

/* Writes content to DIR/name through a temporary file, synced, then renamed into place. */
static enum tp_status payout_write_file(const char *dir, const char *name, const char *content,
                                        size_t len, struct tp_error *err)
{
    char path[PAYOUT_PATH_MAX], tmp[PAYOUT_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.tmp", dir, name, (long)getpid());
    FILE *f = fopen(path, "rb");
    if (f != NULL) {
        char *have = mem_alloc(len + 1);
        size_t got = fread(have, 1, len + 1, f);
        fclose(f);
        bool same = got == len && memcmp(have, content, len) == 0;
        free(have);
        return same ? TP_OK
                    : error_set(err, TP_CONFLICT,
                                "%s exists and is not the recorded file: it was changed; nothing "
                                "overwritten",
                                path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (fd < 0) {
        return error_set(err, TP_FATAL, "cannot create %s: %s", tmp, strerror(errno));
    }
    bool ok = write(fd, content, len) == (ssize_t)len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return error_set(err, TP_FATAL, "cannot write %s: %s", path, strerror(errno));
    }
    return TP_OK;
}

/* Every recorded file not yet written goes to DIR (a crash after the record left it unwritten). */
static enum tp_status payout_flush_all(struct pg_conn *c, const char *dir, int *written,
                                       struct tp_error *err)
{
    PGresult *r = NULL;
    *written = 0;
    enum tp_status st = pg_exec(c,
                                "SELECT id::text, file_name, content FROM payout_files WHERE "
                                "written_at IS NULL ORDER BY id",
                                0, NULL, &r, err);
    if (st != TP_OK) {
        return st;
    }
    for (int i = 0; st == TP_OK && i < PQntuples(r); i++) {
        const char *p[1] = {pg_get_str(r, i, 0)};
        size_t len = 0;
        unsigned char *bytes = PQunescapeBytea((const unsigned char *)pg_get_str(r, i, 2), &len);
        if (bytes == NULL) {
            abort(); /* out of memory */
        }
        st = payout_write_file(dir, pg_get_str(r, i, 1), (const char *)bytes, len, err);
        PQfreemem(bytes);
        if (st == TP_OK) {
            st = pg_exec(c, "UPDATE payout_files SET written_at = now() WHERE id = $1::bigint", 1,
                         p, NULL, err);
        }
        if (st == TP_OK) {
            printf("wrote %s/%s\n", dir, pg_get_str(r, i, 1));
            (*written)++;
        }
    }
    PQclear(r);
    return st;
}

static int payout_parse(int argc, char **argv, struct payout_args *a)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"encoding", required_argument, NULL, 'e'},
                                         {"by", required_argument, NULL, 'b'},
                                         {"debtor-name", required_argument, NULL, 'N'},
                                         {"debtor-account", required_argument, NULL, 'A'},
                                         {"debtor-bank", required_argument, NULL, 'B'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "f:o:e:b:N:A:B:", opts, NULL)) != -1) {
        switch (ch) {
        case 'f':
            a->format = optarg;
            break;
        case 'o':
            a->out = optarg;
            break;
        case 'e':
            a->encoding = optarg;
            break;
        case 'b':
            a->by = optarg;
            break;
        case 'N':
            a->debtor_name = optarg;
            break;
        case 'A':
            a->debtor_account = optarg;
            break;
        case 'B':
            a->debtor_bank = optarg;
            break;
        default:
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

int cmd_payout(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(payout_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? TOPUPCTL_EXIT_USAGE : TOPUPCTL_EXIT_OK;
    }
    struct payout_args a = {.encoding = "utf-8",
                            .by = getenv("USER"),
                            .debtor_name = "上海无量智能科技有限公司",
                            .debtor_account = "121909510710001",
                            .debtor_bank = "招商银行上海分行"};
    optind = 1;
    bool ok = strcmp(argv[1], "write") == 0 && payout_parse(argc - 1, argv + 1, &a) == 0 &&
              a.format != NULL && a.out != NULL &&
              (strcmp(a.format, "pain001") == 0 || strcmp(a.format, "cn-csv") == 0) &&
              (strcmp(a.encoding, "utf-8") == 0 || strcmp(a.encoding, "gbk") == 0) &&
              (strcmp(a.encoding, "gbk") != 0 || strcmp(a.format, "cn-csv") == 0);
    if (!ok || a.by == NULL || a.by[0] == '\0') {
        fprintf(stderr, "topupctl payout: bad arguments (and --by NAME or $USER is needed)\n\n%s",
                payout_usage);
        return TOPUPCTL_EXIT_USAGE;
    }
    if (access(a.out, W_OK) != 0) {
        fprintf(stderr, "topupctl payout write: %s is not a writable directory\n", a.out);
        return TOPUPCTL_EXIT_FAILURE;
    }
    struct tp_error err = {0};
    struct pg_conn *c = pg_conn_new(topupctl_cfg.pg_conninfo, PAYOUT_CONNECT_MS, &err);
    if (c == NULL) {
        fprintf(stderr, "topupctl payout write: %s\n", err.msg);
        return TOPUPCTL_EXIT_FAILURE;
    }
    struct payout_ctx x = {.a = &a};
    int written = 0, code = TOPUPCTL_EXIT_OK;
    /*
     * One writer at a time (session lock, released with the connection): two runs at once would
     * otherwise both write the recorded file into DIR. The rows' locks alone keep the batch
     * single; this keeps the file's writing single too.
     */
    if (pg_exec(c, "SELECT pg_advisory_lock(" PAYOUT_LOCK_KEY ")", 0, NULL, NULL, &err) != TP_OK) {
        fprintf(stderr, "topupctl payout write: %s\n", err.msg);
        pg_conn_free(c);
        return TOPUPCTL_EXIT_FAILURE;
    }
    if (pg_transaction(c, payout_record_tx, &x, PAYOUT_TX_ATTEMPTS, &err) != TP_OK ||
        payout_flush_all(c, a.out, &written, &err) != TP_OK) {
        fprintf(stderr, "topupctl payout write: %s\n", err.msg);
        code = TOPUPCTL_EXIT_FAILURE;
    } else if (x.refunds > 0) {
        char total[MONEY_STR_MAX];
        printf("%s: %d refunds, %s CNY, sent\n", x.file_name, x.refunds,
               money_format(x.total_fen, total));
    } else if (written == 0) {
        printf("nothing new to write: no approved refund is reserved and unsent\n");
    }
    pg_conn_free(c);
    return code;
}
