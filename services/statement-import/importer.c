/* One import: detect, check the whole file, then publish (or print) its records. */
#include "importer.h"

#include <inttypes.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detect.h"
#include "identity.h"
#include "import_store.h"
#include "output_json.h"
#include "parser.h"
#include "publish.h"
#include "topup/kafka.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/money.h"
#include "topup/signals.h"
#include "validate.h"

/* Progress lines only for files at least this large, at most this often. */
#define IMPORT_PROGRESS_MIN_BYTES (4 * 1024 * 1024)
#define IMPORT_PROGRESS_EVERY_MS  250

struct importer {
    const struct import_options *o;
    struct input *in;
    enum stmt_format format;
    struct parse_options popt;
    struct csv_profile_set *custom;
    struct identity *identity;
    struct validator *check; /* first pass */
    char file_name[1024];
    char sha256[65];
    EVP_MD_CTX *sha;
    struct record_meta meta;
    int64_t started_ms;
    /* progress */
    const char *phase;
    int64_t last_progress_ms;
    bool progress_shown;
    uint64_t progress_records;
};

static int64_t importer_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- raw hooks: SHA-256 of the file and the progress line ---- */

static void importer_progress(struct importer *im, bool force)
{
    const struct import_options *o = im->o;
    if (!o->progress || input_size(im->in) < IMPORT_PROGRESS_MIN_BYTES) {
        return;
    }
    int64_t now = importer_now_ms();
    if (!force && now - im->last_progress_ms < IMPORT_PROGRESS_EVERY_MS) {
        return;
    }
    im->last_progress_ms = now;
    int64_t size = input_size(im->in);
    int pct = size > 0 ? (int)(input_offset(im->in) * 100 / size) : 100;
    fprintf(o->msg, "\r%s: %3d%% (%" PRIu64 " records)   ", im->phase, pct, im->progress_records);
    fflush(o->msg);
    im->progress_shown = true;
}

static void importer_progress_clear(struct importer *im)
{
    if (im->progress_shown) {
        fprintf(im->o->msg, "\r%60s\r", "");
        fflush(im->o->msg);
        im->progress_shown = false;
    }
}

static void importer_hook(void *ctx, const void *buf, size_t n)
{
    struct importer *im = ctx;
    if (im->sha != NULL) {
        EVP_DigestUpdate(im->sha, buf, n);
    }
    importer_progress(im, false);
}

/* ---- passes ---- */

static enum tp_status importer_parse(struct importer *im, const struct parse_sink *sink,
                                     struct tp_error *err)
{
    enum tp_status st = input_rewind(im->in, err);
    if (st != TP_OK) {
        return st;
    }
    im->progress_records = 0;
    switch (im->format) {
    case FORMAT_CSV:
        return parser_csv_run(im->in, &im->popt, sink, err);
    case FORMAT_MT940:
        return parser_mt940_run(im->in, &im->popt, sink, err);
    case FORMAT_CAMT:
        return parser_camt_run(im->in, &im->popt, sink, err);
    case FORMAT_UNKNOWN:
        break;
    }
    return error_set(err, TP_INVALID, "unknown format");
}

/* First pass: every check, the file's SHA-256, the identities. */
struct importer_check_ctx {
    struct importer *im;
    const struct parse_sink *inner;
};

static void importer_check_record(void *ctx, struct record *r)
{
    struct importer_check_ctx *c = ctx;
    c->im->progress_records++;
    c->inner->record(c->inner->ctx, r);
}

static void importer_fwd_begin(void *ctx, const struct statement_info *s)
{
    struct importer_check_ctx *c = ctx;
    c->inner->statement_begin(c->inner->ctx, s);
}

static void importer_fwd_end(void *ctx, const struct statement_info *s)
{
    struct importer_check_ctx *c = ctx;
    c->inner->statement_end(c->inner->ctx, s);
}

static void importer_fwd_error(void *ctx, uint32_t line, const char *msg)
{
    struct importer_check_ctx *c = ctx;
    c->inner->error(c->inner->ctx, line, msg);
}

static void importer_fwd_skipped(void *ctx, uint32_t line, const char *why)
{
    struct importer_check_ctx *c = ctx;
    c->inner->skipped(c->inner->ctx, line, why);
}

/* The file's SHA-256 is taken from the raw bytes as a pass reads them (importer_hook). */
static void importer_sha_begin(struct importer *im)
{
    im->sha = EVP_MD_CTX_new();
    EVP_DigestInit_ex(im->sha, EVP_sha256(), NULL);
}

static void importer_sha_end(struct importer *im, char hex[65])
{
    uint8_t md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(im->sha, md, &mdlen);
    EVP_MD_CTX_free(im->sha);
    im->sha = NULL;
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
}

static bool importer_interrupted(void *ctx)
{
    (void)ctx;
    return signals_stop_requested();
}

static enum tp_status importer_check(struct importer *im, struct tp_error *err)
{
    struct importer_check_ctx c = {.im = im, .inner = validator_sink(im->check)};
    struct parse_sink sink = {
        .ctx = &c,
        .statement_begin = importer_fwd_begin,
        .statement_end = importer_fwd_end,
        .record = importer_check_record,
        .error = importer_fwd_error,
        .skipped = importer_fwd_skipped,
        .cancelled = importer_interrupted,
    };
    im->phase = "checking";
    importer_sha_begin(im);
    enum tp_status st = importer_parse(im, &sink, err);
    importer_sha_end(im, im->sha256);
    importer_progress_clear(im);
    if (st == TP_FATAL) {
        return st;
    }
    validator_finish(im->check);
    return TP_OK;
}

/* Verification pass (rare): bank ids that may repeat are counted exactly. */
static void importer_verify_record(void *ctx, struct record *r)
{
    struct importer *im = ctx;
    char msg[ERROR_MSG_MAX];
    if (identity_verify(im->identity, r, msg, sizeof msg)) {
        validator_report(im->check, r->line, msg);
    }
}

static void importer_ignore_stmt(void *ctx, const struct statement_info *s)
{
    (void)ctx;
    (void)s;
}

static void importer_ignore_line(void *ctx, uint32_t line, const char *msg)
{
    (void)ctx;
    (void)line;
    (void)msg;
}

static enum tp_status importer_verify(struct importer *im, struct tp_error *err)
{
    struct parse_sink sink = {
        .ctx = im,
        .statement_begin = importer_ignore_stmt,
        .statement_end = importer_ignore_stmt,
        .record = importer_verify_record,
        .error = importer_ignore_line,
        .skipped = importer_ignore_line,
    };
    im->phase = "checking ids";
    identity_reset_counts(im->identity);
    enum tp_status st = importer_parse(im, &sink, err);
    importer_progress_clear(im);
    return st == TP_FATAL ? st : TP_OK;
}

/* Second pass: the same records again, given their identity, out to Kafka or stdout. */
struct importer_emit {
    struct importer *im;
    struct validator *again; /* guards against a file changed between the passes */
    struct publisher *pub;   /* NULL: dry run */
    enum tp_status st;
    struct tp_error err;
    uint64_t emitted;
};

static void importer_emit_record(void *ctx, struct record *r)
{
    struct importer_emit *e = ctx;
    struct importer *im = e->im;
    if (e->st != TP_OK) {
        return;
    }
    if (validator_check_record(e->again, r) != VALIDATE_OK) {
        return;
    }
    identity_assign(im->identity, r);
    im->progress_records++;
    if (e->pub == NULL) {
        e->st = output_json_record(im->o->out, r, &im->meta, &e->err);
    } else {
        e->st = publisher_send(e->pub, r, &im->meta, (int)im->o->flush_timeout_ms, &e->err);
        if ((e->emitted & 1023) == 0) {
            publisher_poll(e->pub);
        }
    }
    if (e->st == TP_OK) {
        e->emitted++;
    }
}

static void importer_emit_begin(void *ctx, const struct statement_info *s)
{
    struct importer_emit *e = ctx;
    validator_sink(e->again)->statement_begin(e->again, s);
}

static void importer_emit_end(void *ctx, const struct statement_info *s)
{
    struct importer_emit *e = ctx;
    validator_sink(e->again)->statement_end(e->again, s);
}

static void importer_emit_error(void *ctx, uint32_t line, const char *msg)
{
    struct importer_emit *e = ctx;
    validator_report(e->again, line, msg);
}

static bool importer_emit_cancelled(void *ctx)
{
    struct importer_emit *e = ctx;
    return e->st != TP_OK || signals_stop_requested();
}

static enum tp_status importer_emit(struct importer *im, struct publisher *pub, uint64_t *emitted,
                                    struct tp_error *err)
{
    struct importer_emit e = {.im = im, .pub = pub, .st = TP_OK};
    e.again = validator_new(im->file_name, NULL, 10);
    struct parse_sink sink = {
        .ctx = &e,
        .statement_begin = importer_emit_begin,
        .statement_end = importer_emit_end,
        .record = importer_emit_record,
        .error = importer_emit_error,
        .skipped = importer_ignore_line,
        .cancelled = importer_emit_cancelled,
    };
    im->phase = pub != NULL ? "publishing" : "printing";
    identity_reset_counts(im->identity);
    char again[65];
    importer_sha_begin(im);
    enum tp_status st = importer_parse(im, &sink, err);
    importer_sha_end(im, again);
    importer_progress_clear(im);
    *emitted = e.emitted;
    if (st == TP_FATAL) {
        goto out;
    }
    if (e.st != TP_OK) {
        st = e.st;
        *err = e.err;
        goto out;
    }
    if (validator_problems(e.again) > 0) {
        st = error_set(err, TP_RETRY, "the file changed while it was being imported: %s",
                       validator_problem(e.again, 0));
        goto out;
    }
    /* Same bytes as checked (a pass cancelled midway read less: no comparison then). */
    if (!signals_stop_requested() && strcmp(again, im->sha256) != 0) {
        st = error_set(err, TP_RETRY,
                       "the file changed while it was being imported (SHA-256 %s, checked %s); "
                       "import the final file",
                       again, im->sha256);
        goto out;
    }
    st = TP_OK;
out:
    validator_free(e.again);
    return st;
}

/* ---- output ---- */

static void importer_print_problems(struct importer *im)
{
    FILE *f = im->o->msg;
    uint32_t n = validator_listed(im->check);
    for (uint32_t i = 0; i < n; i++) {
        fprintf(f, "%s\n", validator_problem(im->check, i));
    }
    uint64_t total = validator_problems(im->check);
    if (total > n) {
        fprintf(f, "%s: ... and %" PRIu64 " more problems\n", im->file_name, total - n);
    }
}

static void importer_summary(struct importer *im, FILE *f, const char *result)
{
    const struct validate_stats *s = validator_stats(im->check);
    char a[MONEY_STR_MAX], b[MONEY_STR_MAX];
    uint64_t credits = 0, debits = 0;
    for (int i = 0; i < s->ncurrencies; i++) {
        credits += s->totals[i].credits;
        debits += s->totals[i].debits;
    }
    fprintf(f, "%s: %s%s%s, sha256 %s\n", im->file_name, im->popt.format_name,
            im->popt.encoding_used[0] ? ", " : "", im->popt.encoding_used, im->sha256);
    fprintf(f, "  records: %" PRIu64 " (%" PRIu64 " credits, %" PRIu64 " debits)", s->records,
            credits, debits);
    if (s->statements > 0) {
        fprintf(f, " in %" PRIu64 " statement%s", s->statements, s->statements == 1 ? "" : "s");
    }
    fprintf(f, "; %" PRIu64 " without a bank id (fingerprinted)\n", s->fingerprinted);
    if (s->skipped_zero + s->skipped_other > 0) {
        fprintf(f, "  skipped: %" PRIu64 " zero-amount, %" PRIu64 " not booked\n", s->skipped_zero,
                s->skipped_other);
    }
    for (int i = 0; i < s->ncurrencies; i++) {
        const struct validate_totals *t = &s->totals[i];
        fprintf(f, "  %s: credits %" PRIu64 " totalling %s, debits %" PRIu64 " totalling %s\n",
                t->currency, t->credits, money_format(t->credit_fen, a), t->debits,
                money_format(t->debit_fen, b));
    }
    fprintf(f, "  result: %s\n", result);
    fprintf(f, "  time: %.2f s\n", (double)(importer_now_ms() - im->started_ms) / 1000.0);
    fflush(f);
}

/* ---- setup ---- */

static int importer_setup(struct importer *im, struct tp_error *err)
{
    const struct import_options *o = im->o;
    char *copy = mem_strdup(o->path);
    snprintf(im->file_name, sizeof im->file_name, "%s", basename(copy));
    free(copy);
    im->popt.account = o->account;
    im->popt.default_currency = o->currency;
    im->popt.encoding = o->encoding;
    if (o->profile_file != NULL) {
        im->custom = csv_profiles_load(o->profile_file, err);
        if (im->custom == NULL) {
            return IMPORT_EXIT_USAGE;
        }
        im->popt.csv_custom = im->custom;
    }
    const char *fmt = o->format != NULL ? o->format : "auto";
    if (strcmp(fmt, "auto") == 0) {
        im->format = FORMAT_UNKNOWN;
    } else if (strcmp(fmt, "mt940") == 0 || strcmp(fmt, "mt942") == 0) {
        im->format = FORMAT_MT940;
    } else if (strcmp(fmt, "camt") == 0 || strncmp(fmt, "camt.05", 7) == 0) {
        im->format = FORMAT_CAMT;
    } else if (strcmp(fmt, "csv") == 0) {
        im->format = FORMAT_CSV;
    } else if (strncmp(fmt, "csv:", 4) == 0) {
        im->format = FORMAT_CSV;
        im->popt.csv_profile = csv_profiles_find(im->custom, fmt + 4);
        if (im->popt.csv_profile == NULL) {
            error_set(err, TP_INVALID, "unknown CSV profile \"%s\" (see --list-profiles)", fmt + 4);
            return IMPORT_EXIT_USAGE;
        }
    } else {
        error_set(err, TP_INVALID,
                  "unknown --format \"%s\" (auto, mt940, camt, csv, csv:<profile>)", fmt);
        return IMPORT_EXIT_USAGE;
    }
    im->in = input_open_file(o->path, err);
    if (im->in == NULL) {
        return IMPORT_EXIT_USAGE;
    }
    if (im->format == FORMAT_UNKNOWN) {
        unsigned char *head = mem_alloc(DETECT_HEAD_BYTES);
        size_t n = input_peek(im->in, head, DETECT_HEAD_BYTES);
        im->format = detect_format(head, n);
        free(head);
        if (im->format == FORMAT_UNKNOWN) {
            error_set(err, TP_INVALID, "%s is empty", im->file_name);
            return IMPORT_EXIT_INVALID;
        }
    }
    snprintf(im->popt.format_name, sizeof im->popt.format_name, "%s",
             detect_format_name(im->format));
    input_set_hook(im->in, importer_hook, im);
    im->identity = identity_new();
    im->check = validator_new(im->file_name, im->identity, o->problems_listed);
    return IMPORT_EXIT_OK;
}

/* ---- publishing ---- */

static int importer_publish(struct importer *im, uint64_t records)
{
    const struct import_options *o = im->o;
    struct tp_error err;
    struct pg_conn *pg = NULL;
    struct publisher *pub = NULL;
    int code = IMPORT_EXIT_INFRA;
    char result[2048];
    char completed_at[IMPORT_STORE_TIME_MAX] = "";
    enum import_state state;
    pg = pg_conn_new(o->pg_conninfo, (int)o->pg_connect_timeout_ms, &err);
    if (pg == NULL) {
        snprintf(result, sizeof result, "PostgreSQL unavailable (%s); nothing published", err.msg);
        goto out;
    }
    if (import_store_begin(pg, im->sha256, im->file_name, im->meta.format, (int64_t)records, &state,
                           completed_at, &err) != TP_OK) {
        snprintf(result, sizeof result, "PostgreSQL: %s; nothing published", err.msg);
        goto out;
    }
    if (state == IMPORT_STATE_COMPLETED) {
        snprintf(result, sizeof result, "already imported (completed %s); nothing published",
                 completed_at);
        code = IMPORT_EXIT_DUPLICATE;
        goto out;
    }
    if (state == IMPORT_STATE_RESUMED) {
        log_info("an earlier import of this file did not complete; publishing again",
                 LF_S("file", im->file_name), LF_S("sha256", im->sha256));
    }
    pub = publisher_new(&err);
    if (pub == NULL) {
        snprintf(result, sizeof result, "Kafka: %s; nothing published", err.msg);
        goto out;
    }
    uint64_t emitted = 0;
    enum tp_status st = importer_emit(im, pub, &emitted, &err);
    if (st == TP_OK && signals_stop_requested()) {
        st = error_set(&err, TP_RETRY, "interrupted");
    }
    enum tp_status fst = publisher_finish(pub, (int)o->flush_timeout_ms, &err);
    if (st == TP_OK) {
        st = fst;
    }
    if (st != TP_OK) {
        code = signals_stop_requested() ? IMPORT_EXIT_INTERRUPTED : IMPORT_EXIT_INFRA;
        snprintf(result, sizeof result,
                 "%s after %" PRIu64 " of %" PRIu64 " records were acknowledged: %s; run the "
                 "import again (records carry their identity, so it is safe)",
                 code == IMPORT_EXIT_INTERRUPTED ? "interrupted" : "failed", publisher_acked(pub),
                 records, err.msg);
        goto out;
    }
    if (import_store_complete(pg, im->sha256, (int64_t)emitted, &err) != TP_OK) {
        snprintf(result, sizeof result,
                 "all %" PRIu64 " records acknowledged but the import could not be marked "
                 "completed (%s); running it again publishes them again (safe)",
                 emitted, err.msg);
        goto out;
    }
    snprintf(result, sizeof result, "published %" PRIu64 " records to %s, every one acknowledged%s",
             emitted, TOPIC_BANK_STATEMENT_RECORDS,
             state == IMPORT_STATE_RESUMED ? " (resumed an unfinished import)" : "");
    code = IMPORT_EXIT_OK;
    log_info("statement imported", LF_S("file", im->file_name), LF_S("sha256", im->sha256),
             LF_S("format", im->meta.format), LF_I("records", emitted));
out:
    importer_summary(im, im->o->out, result);
    publisher_free(pub);
    pg_conn_free(pg);
    return code;
}

int importer_run(const struct import_options *o)
{
    struct importer im = {.o = o};
    struct tp_error err;
    error_clear(&err);
    im.started_ms = importer_now_ms();
    int code = importer_setup(&im, &err);
    if (code != IMPORT_EXIT_OK) {
        fprintf(o->msg, "statement-import: %s\n", err.msg);
        goto out;
    }
    if (importer_check(&im, &err) != TP_OK) {
        fprintf(o->msg, "statement-import: %s: %s\n", im.file_name, err.msg);
        code = IMPORT_EXIT_USAGE;
        goto out;
    }
    if (validator_problems(im.check) == 0 && identity_has_bank_candidates(im.identity) &&
        importer_verify(&im, &err) != TP_OK) {
        fprintf(o->msg, "statement-import: %s: %s\n", im.file_name, err.msg);
        code = IMPORT_EXIT_USAGE;
        goto out;
    }
    if (signals_stop_requested()) {
        fprintf(o->msg, "statement-import: %s: interrupted while checking; nothing published\n",
                im.file_name);
        code = IMPORT_EXIT_INTERRUPTED;
        goto out;
    }
    im.meta.source_file = im.file_name;
    im.meta.format = im.popt.format_name;
    im.meta.sha256 = im.sha256;
    uint64_t problems = validator_problems(im.check);
    if (problems > 0) {
        importer_print_problems(&im);
        char result[128];
        snprintf(result, sizeof result, "rejected: %" PRIu64 " problem%s; nothing published",
                 problems, problems == 1 ? "" : "s");
        importer_summary(&im, o->dry_run ? o->msg : o->out, result);
        code = IMPORT_EXIT_INVALID;
        goto out;
    }
    uint64_t records = validator_stats(im.check)->records;
    if (o->dry_run) {
        uint64_t emitted = 0;
        if (importer_emit(&im, NULL, &emitted, &err) != TP_OK) {
            fprintf(o->msg, "statement-import: %s: %s\n", im.file_name, err.msg);
            code = IMPORT_EXIT_INFRA;
            goto out;
        }
        fflush(o->out);
        importer_summary(&im, o->msg, "dry run: nothing published, PostgreSQL not consulted");
        code = IMPORT_EXIT_OK;
        goto out;
    }
    code = importer_publish(&im, records);
out:
    validator_free(im.check);
    identity_free(im.identity);
    csv_profiles_free(im.custom);
    input_free(im.in);
    return code;
}
