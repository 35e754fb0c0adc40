/* Test support for statement-import: run a parser and the checks over a buffer, collect results. */
#include "si_test.h"

#include <iconv.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "detect.h"
#include "identity.h"
#include "input.h"
#include "parser.h"
#include "topup/mem.h"

#define SI_RECORDS_MAX 4096

struct si_ctx {
    struct si_run *run;
    bool verify; /* the bank-id verification pass */
    struct validator *v;
    struct identity *id;
    const struct parse_sink *inner;
    bool second;
};

static void si_begin(void *c, const struct statement_info *s)
{
    struct si_ctx *x = c;
    if (x->verify) {
        return;
    }
    x->inner->statement_begin(x->inner->ctx, s);
}

static void si_end(void *c, const struct statement_info *s)
{
    struct si_ctx *x = c;
    if (x->verify) {
        return;
    }
    if (!x->second) {
        x->run->nstatements++;
    }
    x->inner->statement_end(x->inner->ctx, s);
}

static void si_record(void *c, struct record *r)
{
    struct si_ctx *x = c;
    if (x->verify) {
        char msg[512];
        if (!identity_verify(x->id, r, msg, sizeof msg)) {
            validator_report(x->v, r->line, msg);
        }
        return;
    }
    if (!x->second) {
        assert_true(x->run->nparsed < SI_RECORDS_MAX);
        x->run->parsed[x->run->nparsed++] = *r;
        x->inner->record(x->inner->ctx, r);
        return;
    }
    if (validator_check_record(x->v, r) != VALIDATE_OK) {
        return;
    }
    identity_assign(x->id, r);
    assert_true(x->run->nrecords < SI_RECORDS_MAX);
    x->run->records[x->run->nrecords++] = *r;
}

static void si_error(void *c, uint32_t line, const char *msg)
{
    struct si_ctx *x = c;
    if (x->verify) {
        return;
    }
    x->inner->error(x->inner->ctx, line, msg);
}

static void si_note(void *c, uint32_t line, const char *what)
{
    struct si_ctx *x = c;
    if (x->verify || x->second) {
        return;
    }
    x->inner->note(x->inner->ctx, line, what);
}

static void si_skipped(void *c, uint32_t line, const char *why)
{
    struct si_ctx *x = c;
    if (x->verify) {
        return;
    }
    if (!x->second) {
        x->run->nskipped++;
    }
    x->inner->skipped(x->inner->ctx, line, why);
}

static enum tp_status si_parse(struct input *in, enum stmt_format f, struct parse_options *po,
                               const struct parse_sink *sink)
{
    struct tp_error err;
    enum tp_status st = input_rewind(in, &err);
    assert_int_equal(st, TP_OK);
    switch (f) {
    case FORMAT_CSV:
        return parser_csv_run(in, po, sink, &err);
    case FORMAT_MT940:
        return parser_mt940_run(in, po, sink, &err);
    case FORMAT_CAMT:
        return parser_camt_run(in, po, sink, &err);
    default:
        fail_msg("no format");
    }
    return TP_FATAL;
}

void si_run_mem(struct si_run *run, const char *label, const void *data, size_t len,
                const struct si_opts *o)
{
    static const struct si_opts none = {0};
    if (o == NULL) {
        o = &none;
    }
    memset(run, 0, sizeof *run);
    run->records = mem_calloc(SI_RECORDS_MAX, sizeof *run->records);
    run->parsed = mem_calloc(SI_RECORDS_MAX, sizeof *run->parsed);
    struct parse_options po = {
        .account = o->account, .encoding = o->encoding, .csv_custom = o->custom};
    enum stmt_format f;
    const char *fmt = o->format != NULL ? o->format : "auto";
    if (strcmp(fmt, "auto") == 0) {
        f = detect_format(data, len < DETECT_HEAD_BYTES ? len : DETECT_HEAD_BYTES);
    } else if (strcmp(fmt, "mt940") == 0) {
        f = FORMAT_MT940;
    } else if (strcmp(fmt, "camt") == 0) {
        f = FORMAT_CAMT;
    } else {
        f = FORMAT_CSV;
        if (strncmp(fmt, "csv:", 4) == 0) {
            po.csv_profile = csv_profiles_find(o->custom, fmt + 4);
            assert_non_null(po.csv_profile);
        }
    }
    struct input *in = input_open_mem(data, len);
    struct identity *id = identity_new();
    struct validator *v = validator_new(label, id, 1000);
    struct si_ctx x = {.run = run, .v = v, .id = id, .inner = validator_sink(v)};
    struct parse_sink sink = {.ctx = &x,
                              .statement_begin = si_begin,
                              .statement_end = si_end,
                              .record = si_record,
                              .error = si_error,
                              .skipped = si_skipped,
                              .note = si_note};
    bool proceed = false;
    if (f != FORMAT_UNKNOWN) {
        enum tp_status st = si_parse(in, f, &po, &sink);
        assert_true(st == TP_OK || st == TP_INVALID);
        validator_finish(v);
        proceed = validator_problems(v) == 0 || (o->accept_gaps && validator_only_gaps(v));
        if (proceed && identity_has_bank_candidates(id)) {
            x.verify = true;
            identity_reset_counts(id);
            st = si_parse(in, f, &po, &sink);
            assert_int_equal(st, TP_OK);
            x.verify = false;
        }
    } else {
        validator_report(v, 0, "empty file");
    }
    proceed = proceed && (validator_problems(v) == 0 || validator_only_gaps(v));
    for (uint32_t i = 0; i < o->known_shared_n; i++) {
        assert_true(identity_mark_shared(id, o->known_shared[i][0], o->known_shared[i][1]));
    }
    run->stats = *validator_stats(v);
    const struct validate_gap *gaps;
    run->ngaps = (int)validator_gaps(v, &gaps);
    run->gaps = mem_calloc((size_t)run->ngaps + 1, sizeof *run->gaps);
    if (run->ngaps > 0) {
        memcpy(run->gaps, gaps, (size_t)run->ngaps * sizeof *gaps);
    }
    const struct validate_span *spans;
    run->nspans = (int)validator_spans(v, &spans);
    memcpy(run->spans, spans, (size_t)run->nspans * sizeof *spans);
    const struct validate_note *notes;
    run->nnotes = (int)validator_notes(v, &notes);
    memcpy(run->notes, notes, (size_t)run->nnotes * sizeof *notes);
    const struct identity_shared *shared;
    run->nshared = (int)identity_shared_list(id, &shared);
    run->shared = mem_calloc((size_t)run->nshared + 1, sizeof *run->shared);
    if (run->nshared > 0) {
        memcpy(run->shared, shared, (size_t)run->nshared * sizeof *shared);
    }
    run->nproblems = (int)validator_listed(v);
    run->problems = mem_calloc((size_t)run->nproblems + 1, sizeof(char *));
    for (int i = 0; i < run->nproblems; i++) {
        run->problems[i] = mem_strdup(validator_problem(v, (uint32_t)i));
    }
    snprintf(run->format, sizeof run->format, "%s", po.format_name);
    snprintf(run->encoding, sizeof run->encoding, "%s", po.encoding_used);
    if (proceed && f != FORMAT_UNKNOWN) {
        /* Second pass as the command runs it: fresh checks, identities assigned in order. */
        struct validator *v2 = validator_new(label, NULL, 10);
        x.v = v2;
        x.inner = validator_sink(v2);
        x.second = true;
        identity_reset_counts(id);
        enum tp_status st = si_parse(in, f, &po, &sink);
        assert_int_equal(st, TP_OK);
        assert_true(validator_problems(v2) == 0 || validator_only_gaps(v2));
        validator_free(v2);
    }
    validator_free(v);
    identity_free(id);
    input_free(in);
}

void si_run_file(struct si_run *run, const char *path, const struct si_opts *o)
{
    size_t len;
    char *data = si_read(path, &len);
    const char *base = strrchr(path, '/');
    si_run_mem(run, base != NULL ? base + 1 : path, data, len, o);
    free(data);
}

void si_run_free(struct si_run *run)
{
    for (int i = 0; i < run->nproblems; i++) {
        free(run->problems[i]);
    }
    free(run->problems);
    free(run->gaps);
    free(run->shared);
    free(run->records);
    free(run->parsed);
    memset(run, 0, sizeof *run);
}

char *si_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail_msg("cannot read %s (TOPUP_SAMPLES_DIR / TOPUP_SOURCE_DIR set?)", path);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = mem_alloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    assert_int_equal(got, (size_t)n);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static const char *si_path(const char *env, const char *fallback, const char *sub, const char *rel)
{
    static char buf[4][1024];
    static int slot;
    const char *base = getenv(env);
    char *out = buf[slot++ % 4];
    if (base == NULL) {
        base = fallback;
    }
    snprintf(out, sizeof buf[0], "%s%s/%s", base, sub, rel);
    return out;
}

const char *si_sample(const char *rel)
{
    return si_path("TOPUP_SAMPLES_DIR", "/work/shared/samples", "", rel);
}

const char *si_fixture(const char *rel)
{
    return si_path("TOPUP_SOURCE_DIR", ".", "/tests/fixtures/statements", rel);
}

char *si_convert(const char *text, size_t len, const char *encoding, size_t *out_len)
{
    iconv_t cd = iconv_open(encoding, "UTF-8");
    assert_true(cd != (iconv_t)-1);
    size_t cap = len * 4 + 16;
    char *out = mem_alloc(cap);
    char *in = (char *)text;
    char *o = out;
    size_t inleft = len, outleft = cap;
    size_t r = iconv(cd, &in, &inleft, &o, &outleft);
    assert_true(r != (size_t)-1);
    iconv_close(cd);
    *out_len = cap - outleft;
    return out;
}

void si_dump(const struct si_run *run)
{
    for (int i = 0; i < run->nproblems; i++) {
        print_message("problem: %s\n", run->problems[i]);
    }
}

const struct record *si_at_line(const struct si_run *run, unsigned line)
{
    char want[32];
    snprintf(want, sizeof want, "line %u", line);
    size_t wl = strlen(want);
    /* Prefer the identified records of a clean file; else what the parser reported. */
    const struct record *set = run->nrecords > 0 ? run->records : run->parsed;
    int n = run->nrecords > 0 ? run->nrecords : run->nparsed;
    for (int i = 0; i < n; i++) {
        const char *loc = set[i].location;
        if (strncmp(loc, want, wl) == 0 && (loc[wl] == '\0' || loc[wl] == ' ')) {
            return &set[i];
        }
    }
    return NULL;
}

bool si_has_problem(const struct si_run *run, const char *text)
{
    for (int i = 0; i < run->nproblems; i++) {
        if (strcmp(run->problems[i], text) == 0) {
            return true;
        }
    }
    return false;
}

const struct validate_note *si_note_of(const struct si_run *run, const char *what)
{
    for (int i = 0; i < run->nnotes; i++) {
        if (strcmp(run->notes[i].what, what) == 0) {
            return &run->notes[i];
        }
    }
    return NULL;
}
