/* One import: detect, check the whole file, then publish (or print) its records. */
#include "importer.h"

#include <inttypes.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
    struct record_meta meta;
    int64_t started_ms;
    /* The file's only problems are balance gaps, and finance accepted them. */
    bool gaps_accepted;
    char accepted_by[512];
    uint32_t continuity_checked;
    bool continuity_consulted;
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

/* Peak resident memory so far (debug lines): memory must not grow with the file. */
static int64_t importer_hwm_kb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (int64_t)ru.ru_maxrss : -1;
}

/* ---- the progress line ---- */

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
    (void)buf;
    (void)n;
    importer_progress(ctx, false);
}

/* ---- passes (every one reads the private copy of the file) ---- */

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

/* First pass: every check and the identities. */
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

static void importer_fwd_note(void *ctx, uint32_t line, const char *what)
{
    struct importer_check_ctx *c = ctx;
    c->inner->note(c->inner->ctx, line, what);
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
        .note = importer_fwd_note,
        .cancelled = importer_interrupted,
    };
    im->phase = "checking";
    enum tp_status st = importer_parse(im, &sink, err);
    importer_progress_clear(im);
    if (st == TP_FATAL) {
        return st;
    }
    validator_finish(im->check);
    log_debug("pass done", LF_S("pass", "checking"), LF_I("hwm_kb", importer_hwm_kb()));
    return TP_OK;
}

/* Verification pass (rare): bank ids that may repeat are counted exactly. */
static void importer_verify_record(void *ctx, struct record *r)
{
    struct importer *im = ctx;
    char msg[ERROR_MSG_MAX];
    if (!identity_verify(im->identity, r, msg, sizeof msg)) {
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
        .cancelled = importer_interrupted,
    };
    im->phase = "checking ids";
    identity_reset_counts(im->identity);
    enum tp_status st = importer_parse(im, &sink, err);
    importer_progress_clear(im);
    return st == TP_FATAL ? st : TP_OK;
}

/* What a pass over the checked records does with each one. */
enum importer_mode {
    MODE_PRINT,   /* dry run: JSON lines */
    MODE_DIGEST,  /* the provenance digests only (a resumed import compares them) */
    MODE_RECORD,  /* the digests into statement_import_records, before anything is published */
    MODE_PUBLISH, /* to Kafka */
};

/* The records again, given their identity, in the same order every time. */
struct importer_emit {
    struct importer *im;
    enum importer_mode mode;
    struct validator *again; /* the record checks again: the records to publish are the same */
    struct publisher *pub;
    struct import_store *store;
    EVP_MD_CTX *records_sha; /* SHA-256 over the records' digests in order */
    enum tp_status st;
    struct tp_error err;
    uint64_t emitted; /* also the last record's seq */
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
    int64_t seq = (int64_t)e->emitted + 1;
    uint8_t digest[EVENT_DIGEST_LEN];
    if (e->mode != MODE_PRINT) {
        publish_digest(r, &im->meta, digest);
        EVP_DigestUpdate(e->records_sha, digest, sizeof digest);
    }
    switch (e->mode) {
    case MODE_PRINT:
        e->st = output_json_record(im->o->out, r, &im->meta, &e->err);
        break;
    case MODE_DIGEST:
        break;
    case MODE_RECORD:
        e->st = import_store_record(e->store, seq, digest, r, &e->err);
        break;
    case MODE_PUBLISH:
        e->st = publisher_send(e->pub, r, &im->meta, (int)im->o->flush_timeout_ms, &e->err);
        if ((e->emitted & 1023) == 0) {
            publisher_poll(e->pub);
        }
        break;
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

static void importer_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/*
 * One pass over the records in the given mode. *emitted: records handled; records_sha256 (65
 * bytes, may be NULL for MODE_PRINT) the SHA-256 over their digests. A pass cut short by a
 * signal returns TP_RETRY ("interrupted").
 */
static enum tp_status importer_emit(struct importer *im, enum importer_mode mode,
                                    struct publisher *pub, struct import_store *store,
                                    uint64_t *emitted, char *records_sha256, struct tp_error *err)
{
    static const char *const phases[] = {"printing", "reading", "recording", "publishing"};
    struct importer_emit e = {.im = im, .mode = mode, .pub = pub, .store = store, .st = TP_OK};
    e.again = validator_new(im->file_name, NULL, 10);
    e.records_sha = EVP_MD_CTX_new();
    EVP_DigestInit_ex(e.records_sha, EVP_sha256(), NULL);
    struct parse_sink sink = {
        .ctx = &e,
        .statement_begin = importer_emit_begin,
        .statement_end = importer_emit_end,
        .record = importer_emit_record,
        .error = importer_emit_error,
        .skipped = importer_ignore_line,
        .cancelled = importer_emit_cancelled,
    };
    im->phase = phases[mode];
    identity_reset_counts(im->identity);
    int64_t t0 = importer_now_ms();
    enum tp_status st = importer_parse(im, &sink, err);
    importer_progress_clear(im);
    log_debug("pass done", LF_S("pass", phases[mode]), LF_I("records", e.emitted),
              LF_I("ms", importer_now_ms() - t0), LF_I("hwm_kb", importer_hwm_kb()));
    *emitted = e.emitted;
    uint8_t md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(e.records_sha, md, &mdlen);
    if (records_sha256 != NULL) {
        importer_hex(md, sizeof md, records_sha256);
    }
    if (st == TP_FATAL) {
        goto out;
    }
    if (e.st != TP_OK) {
        st = e.st;
        *err = e.err;
        goto out;
    }
    if (signals_stop_requested()) {
        st = error_set(err, TP_RETRY, "interrupted");
        goto out;
    }
    /* The passes read the same private copy: a different reading is a defect, never published. */
    bool same =
        validator_problems(e.again) == 0 || (im->gaps_accepted && validator_only_gaps(e.again));
    if (!same || e.emitted != validator_stats(im->check)->records) {
        st = error_set(err, TP_FATAL,
                       "the %s pass read %" PRIu64 " records, the check %" PRIu64 " (%s)",
                       phases[mode], e.emitted, validator_stats(im->check)->records,
                       same ? "same problems" : validator_problem(e.again, 0));
        goto out;
    }
    st = TP_OK;
out:
    EVP_MD_CTX_free(e.records_sha);
    validator_free(e.again);
    return st;
}

/* ---- output ---- */

static void importer_summary(struct importer *im, FILE *f, const char *result);

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
    if (validator_only_gaps(im->check)) {
        fprintf(f,
                "%s: every problem is a balance that does not add up; to import the file "
                "anyway, finance accepts the gaps: --accept-balance-gap --reason \"why\" (who, "
                "when, why and the gaps are kept with the import)\n",
                im->file_name);
    }
}

/* Refused: the problems, the summary, exit 2. */
static int importer_refuse(struct importer *im, FILE *summary)
{
    char result[128];
    uint64_t problems = validator_problems(im->check);
    importer_print_problems(im);
    snprintf(result, sizeof result, "rejected: %" PRIu64 " problem%s; nothing published", problems,
             problems == 1 ? "" : "s");
    importer_summary(im, summary, result);
    return IMPORT_EXIT_INVALID;
}

static void importer_summary_notes(struct importer *im, FILE *f)
{
    const struct validate_note *notes;
    uint32_t n = validator_notes(im->check, &notes);
    for (uint32_t i = 0; i < n; i++) {
        fprintf(f, "  accepted: %s: %" PRIu64 " (first at line %u)\n", notes[i].what,
                notes[i].count, notes[i].first_line);
    }
    const struct identity_shared *shared;
    uint32_t ns = identity_shared_list(im->identity, &shared);
    uint64_t in_file = 0, records = 0;
    for (uint32_t i = 0; i < ns; i++) {
        if (shared[i].first_line != 0) {
            in_file++;
            records += shared[i].count;
        }
    }
    if (in_file > 0) {
        fprintf(f,
                "  accepted: %" PRIu64 " bank ids repeat for different transactions (first: \"%s\" "
                "at lines %u and %u): their %" PRIu64 " records are fingerprinted\n",
                in_file, shared[0].bank_txn_id, shared[0].first_line, shared[0].second_line,
                records);
    }
    if (ns > in_file) {
        fprintf(f, "  accepted: %" PRIu64 " bank ids known from earlier imports to repeat\n",
                (uint64_t)ns - in_file);
    }
}

static void importer_summary_gaps(struct importer *im, FILE *f)
{
    const struct validate_gap *gaps;
    uint32_t n = validator_gaps(im->check, &gaps);
    char a[MONEY_STR_MAX];
    if (!im->gaps_accepted) {
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        fprintf(f, "  balance gap accepted: %s %s, %s gap of %s %s (line %u)\n", gaps[i].account,
                gaps[i].statement, validate_gap_kind_name(gaps[i].kind),
                money_format(gaps[i].gap_fen, a), gaps[i].currency, gaps[i].line);
    }
    fprintf(f, "  accepted by %s: \"%s\"\n", im->accepted_by, im->o->gap_reason);
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
    importer_summary_notes(im, f);
    importer_summary_gaps(im, f);
    if (im->continuity_consulted) {
        fprintf(f, "  continuity with earlier imports: %u account%s compared\n",
                im->continuity_checked, im->continuity_checked == 1 ? "" : "s");
    }
    fprintf(f, "  result: %s\n", result);
    fprintf(f, "  time: %.2f s\n", (double)(importer_now_ms() - im->started_ms) / 1000.0);
    fflush(f);
}

/* ---- setup ---- */

/* Who accepts a gap: the operating-system user of this process and the host. */
static void importer_who(struct importer *im)
{
    char host[256] = "";
    const struct passwd *pw = getpwuid(geteuid());
    const char *sudo = getenv("SUDO_USER");
    if (gethostname(host, sizeof host - 1) != 0) {
        snprintf(host, sizeof host, "unknown-host");
    }
    host[sizeof host - 1] = '\0';
    char user[64];
    if (pw != NULL) {
        snprintf(user, sizeof user, "%s", pw->pw_name);
    } else {
        snprintf(user, sizeof user, "uid %u", (unsigned)geteuid());
    }
    if (sudo != NULL && sudo[0] != '\0' && strcmp(sudo, user) != 0) {
        snprintf(im->accepted_by, sizeof im->accepted_by, "%s@%.200s (sudo by %.64s)", user, host,
                 sudo);
    } else {
        snprintf(im->accepted_by, sizeof im->accepted_by, "%s@%.200s", user, host);
    }
}

static int importer_setup(struct importer *im, struct tp_error *err)
{
    const struct import_options *o = im->o;
    char *copy = mem_strdup(o->path);
    snprintf(im->file_name, sizeof im->file_name, "%s", basename(copy));
    free(copy);
    im->popt.account = o->account;
    im->popt.default_currency = o->currency;
    im->popt.encoding = o->encoding;
    im->popt.xml_time_limit_ms = o->xml_time_limit_ms;
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
    /* Read once: detection and every pass see the bytes that were hashed, nothing else. */
    if (input_snapshot(im->in, o->spool_dir, im->sha256, err) != TP_OK) {
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
    importer_who(im);
    return IMPORT_EXIT_OK;
}

/* ---- publishing ---- */

struct importer_outcome {
    int code;
    char result[2048];
};

/*
 * A new import, inside the transaction import_store_begin() opened: continuity with the earlier
 * imports, the shared ids, then every record's provenance, committed before anything is
 * published. Anything refused rolls it all back.
 */
static bool importer_record_new(struct importer *im, struct import_store *store,
                                const char *const *accounts, int naccounts, uint64_t *records,
                                char records_sha256[65], struct importer_outcome *out)
{
    struct tp_error err;
    uint64_t before = validator_problems(im->check);
    im->continuity_consulted = true;
    if (import_store_continuity(store, im->check, &im->continuity_checked, &err) != TP_OK) {
        snprintf(out->result, sizeof out->result, "PostgreSQL: %s; nothing published", err.msg);
        out->code = IMPORT_EXIT_INFRA;
        return false;
    }
    if (validator_problems(im->check) > before && !im->o->accept_balance_gap) {
        out->code = importer_refuse(im, im->o->out);
        out->result[0] = '\0';
        return false;
    }
    im->gaps_accepted = im->gaps_accepted || validator_problems(im->check) > before;
    enum tp_status st = import_store_shared(store, im->identity, accounts, naccounts, &err);
    if (st == TP_INVALID) {
        validator_report(im->check, 0, err.msg);
        out->code = importer_refuse(im, im->o->out);
        out->result[0] = '\0';
        return false;
    }
    if (st == TP_OK) {
        st = importer_emit(im, MODE_RECORD, NULL, store, records, records_sha256, &err);
    }
    if (st == TP_OK) {
        struct import_gap_audit audit = {.accepted_by = im->accepted_by,
                                         .reason = im->o->gap_reason};
        st = import_store_commit(store, (int64_t)*records, records_sha256, im->check,
                                 im->gaps_accepted ? &audit : NULL, &err);
    }
    if (st != TP_OK) {
        bool stop = signals_stop_requested();
        snprintf(out->result, sizeof out->result,
                 "%s while recording the records (%s); nothing "
                 "published",
                 stop ? "interrupted" : "PostgreSQL failed", err.msg);
        out->code = stop ? IMPORT_EXIT_INTERRUPTED : IMPORT_EXIT_INFRA;
        return false;
    }
    return true;
}

/* A resumed import: it publishes exactly what its first run recorded, or nothing. */
static bool importer_record_resumed(struct importer *im, struct import_store *store,
                                    const char *const *accounts, int naccounts, uint64_t *records,
                                    char records_sha256[65], struct importer_outcome *out)
{
    struct tp_error err;
    enum tp_status st = import_store_shared(store, im->identity, accounts, naccounts, &err);
    if (st == TP_OK) {
        st = importer_emit(im, store->recorded ? MODE_DIGEST : MODE_RECORD, NULL, store, records,
                           records_sha256, &err);
    }
    if (st == TP_OK && !store->recorded) {
        st = import_store_commit(store, (int64_t)*records, records_sha256, im->check, NULL, &err);
    }
    if (st != TP_OK) {
        bool stop = signals_stop_requested();
        snprintf(out->result, sizeof out->result,
                 "%s while reading the records again (%s); "
                 "nothing published",
                 stop ? "interrupted" : "failed", err.msg);
        out->code = stop ? IMPORT_EXIT_INTERRUPTED : IMPORT_EXIT_INFRA;
        return false;
    }
    if (store->recorded && (strcmp(records_sha256, store->recorded_sha256) != 0 ||
                            (int64_t)*records != store->recorded_count)) {
        snprintf(out->result, sizeof out->result,
                 "conflict: the unfinished import %" PRId64 " of this file recorded %" PRId64
                 " records (records_sha256 %s); this run reads %" PRIu64 " (%s), so it would "
                 "publish records that are not recorded; nothing published. Finish the import "
                 "with the importer version that began it",
                 store->import_id, store->recorded_count, store->recorded_sha256, *records,
                 records_sha256);
        out->code = IMPORT_EXIT_CONFLICT;
        return false;
    }
    return true;
}

static int importer_publish(struct importer *im)
{
    const struct import_options *o = im->o;
    struct tp_error err;
    struct pg_conn *pg = NULL;
    struct publisher *pub = NULL;
    struct import_store store = {0};
    struct importer_outcome out = {.code = IMPORT_EXIT_INFRA};
    bool more = false;
    const char *const *accounts;
    int naccounts = validator_accounts(im->check, &accounts, &more);
    uint64_t records = 0, published = 0;
    char recorded_sha[65] = "", published_sha[65] = "";
    copyw_init(&store.copy);
    if (more) {
        snprintf(out.result, sizeof out.result,
                 "the file has records of more than %d receiving accounts: split it; nothing "
                 "published",
                 IMPORT_STORE_ACCOUNTS_MAX);
        out.code = IMPORT_EXIT_INVALID;
        goto out;
    }
    pg = pg_conn_new(o->pg_conninfo, (int)o->pg_connect_timeout_ms, &err);
    if (pg == NULL) {
        snprintf(out.result, sizeof out.result, "PostgreSQL unavailable (%s); nothing published",
                 err.msg);
        goto out;
    }
    if (import_store_begin(&store, pg, im->sha256, im->file_name, im->meta.format, accounts,
                           naccounts, &err) != TP_OK) {
        snprintf(out.result, sizeof out.result, "PostgreSQL: %s; nothing published", err.msg);
        goto out;
    }
    if (store.state == IMPORT_STATE_COMPLETED) {
        snprintf(out.result, sizeof out.result,
                 "already imported (completed %s); nothing published", store.completed_at);
        out.code = IMPORT_EXIT_DUPLICATE;
        goto out;
    }
    bool ok =
        store.state == IMPORT_STATE_NEW
            ? importer_record_new(im, &store, accounts, naccounts, &records, recorded_sha, &out)
            : importer_record_resumed(im, &store, accounts, naccounts, &records, recorded_sha,
                                      &out);
    if (!ok) {
        import_store_abort(&store);
        goto out;
    }
    if (store.state == IMPORT_STATE_RESUMED) {
        log_info("an earlier import of this file did not complete; publishing again",
                 LF_S("file", im->file_name), LF_S("sha256", im->sha256));
    }
    pub = publisher_new(&err);
    if (pub == NULL) {
        snprintf(out.result, sizeof out.result, "Kafka: %s; nothing published", err.msg);
        goto out;
    }
    enum tp_status st = importer_emit(im, MODE_PUBLISH, pub, NULL, &published, published_sha, &err);
    enum tp_status fst = publisher_finish(pub, (int)o->flush_timeout_ms, &err);
    if (st == TP_OK) {
        st = fst;
    }
    if (st == TP_OK && strcmp(published_sha, recorded_sha) != 0) {
        st = error_set(&err, TP_FATAL,
                       "the published records (records_sha256 %s) are not the recorded ones (%s)",
                       published_sha, recorded_sha);
    }
    if (st != TP_OK) {
        out.code = signals_stop_requested() ? IMPORT_EXIT_INTERRUPTED : IMPORT_EXIT_INFRA;
        snprintf(out.result, sizeof out.result,
                 "%s after %" PRIu64 " of %" PRIu64 " records were acknowledged: %s; run the "
                 "import again (records carry their identity, so it is safe)",
                 out.code == IMPORT_EXIT_INTERRUPTED ? "interrupted" : "failed",
                 publisher_acked(pub), records, err.msg);
        goto out;
    }
    if (import_store_complete(&store, (int64_t)published, &err) != TP_OK) {
        snprintf(out.result, sizeof out.result,
                 "all %" PRIu64 " records acknowledged but the import could not be marked "
                 "completed (%s); running it again publishes them again (safe)",
                 published, err.msg);
        goto out;
    }
    snprintf(out.result, sizeof out.result,
             "published %" PRIu64 " records to %s, every one acknowledged%s", published,
             TOPIC_BANK_STATEMENT_RECORDS,
             store.state == IMPORT_STATE_RESUMED ? " (resumed an unfinished import)" : "");
    out.code = IMPORT_EXIT_OK;
    log_info("statement imported", LF_S("file", im->file_name), LF_S("sha256", im->sha256),
             LF_S("format", im->meta.format), LF_I("records", published),
             LF_I("import_id", store.import_id));
out:
    if (out.result[0] != '\0') {
        importer_summary(im, o->out, out.result);
    }
    publisher_free(pub);
    import_store_deinit(&store);
    pg_conn_free(pg);
    return out.code;
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
    bool gaps_only = validator_only_gaps(im.check);
    if ((validator_problems(im.check) == 0 || gaps_only) &&
        identity_has_bank_candidates(im.identity) && importer_verify(&im, &err) != TP_OK) {
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
    if (problems > 0 && !(o->accept_balance_gap && validator_only_gaps(im.check))) {
        code = importer_refuse(&im, o->dry_run ? o->msg : o->out);
        goto out;
    }
    im.gaps_accepted = problems > 0;
    if (o->dry_run) {
        uint64_t emitted = 0;
        if (importer_emit(&im, MODE_PRINT, NULL, NULL, &emitted, NULL, &err) != TP_OK) {
            fprintf(o->msg, "statement-import: %s: %s\n", im.file_name, err.msg);
            code = signals_stop_requested() ? IMPORT_EXIT_INTERRUPTED : IMPORT_EXIT_INFRA;
            goto out;
        }
        fflush(o->out);
        importer_summary(&im, o->msg,
                         "dry run: nothing published, PostgreSQL not consulted (continuity with "
                         "earlier imports not checked)");
        code = IMPORT_EXIT_OK;
        goto out;
    }
    code = importer_publish(&im);
out:
    validator_free(im.check);
    identity_free(im.identity);
    csv_profiles_free(im.custom);
    input_free(im.in);
    return code;
}
