/* Shared libFuzzer driver for the statement parsers: parse, check, and assert invariants. */
#include "fuzz_si.h"

#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "validate.h"

struct fuzz_ctx {
    const struct parse_sink *inner;
    struct identity *id;
    bool verify; /* the pass that counts bank ids that may repeat */
};

/* Every record handed on must hold what the publisher relies on. */
static void fuzz_record(void *ctx, struct record *r)
{
    struct fuzz_ctx *c = ctx;
    if (strlen(r->counterparty_name) > RECORD_NAME_MAX ||
        strlen(r->remittance) > RECORD_REMIT_MAX ||
        strlen(r->receiving_account) > RECORD_ACCOUNT_MAX ||
        strlen(r->location) >= RECORD_LOCATION_MAX) {
        abort();
    }
    if (r->booking_date[0] != '\0' && strlen(r->booking_date) != RECORD_DATE_LEN) {
        abort();
    }
    if (c->verify) {
        char msg[512];
        (void)identity_verify(c->id, r, msg, sizeof msg);
        identity_assign(c->id, r);
        if (r->bank_txn_id[0] == '\0' && r->amount_fen != 0) {
            abort(); /* every record to publish has an identity */
        }
        return;
    }
    c->inner->record(c->inner->ctx, r);
}

static void fuzz_note(void *ctx, uint32_t line, const char *what)
{
    struct fuzz_ctx *c = ctx;
    if (what == NULL || what[0] == '\0') {
        abort();
    }
    c->inner->note(c->inner->ctx, line, what);
}

static void fuzz_begin(void *ctx, const struct statement_info *s)
{
    struct fuzz_ctx *c = ctx;
    c->inner->statement_begin(c->inner->ctx, s);
}

static void fuzz_end(void *ctx, const struct statement_info *s)
{
    struct fuzz_ctx *c = ctx;
    c->inner->statement_end(c->inner->ctx, s);
}

static void fuzz_error(void *ctx, uint32_t line, const char *msg)
{
    struct fuzz_ctx *c = ctx;
    c->inner->error(c->inner->ctx, line, msg);
}

static void fuzz_skipped(void *ctx, uint32_t line, const char *why)
{
    struct fuzz_ctx *c = ctx;
    c->inner->skipped(c->inner->ctx, line, why);
}

void fuzz_si_run(const uint8_t *data, size_t size,
                 enum tp_status (*parse)(struct input *, struct parse_options *,
                                         const struct parse_sink *, struct tp_error *))
{
    struct tp_error err;
    struct input *in = input_open_mem(data, size);
    struct identity *id = identity_new();
    struct validator *v = validator_new("fuzz", id, 50);
    struct fuzz_ctx c = {.inner = validator_sink(v), .id = id};
    struct parse_sink sink = {.ctx = &c,
                              .statement_begin = fuzz_begin,
                              .statement_end = fuzz_end,
                              .record = fuzz_record,
                              .error = fuzz_error,
                              .skipped = fuzz_skipped,
                              .note = fuzz_note};
    struct parse_options o = {.account = NULL};
    enum tp_status st = parse(in, &o, &sink, &err);
    if (st != TP_OK && st != TP_INVALID) {
        abort(); /* memory input has no I/O errors */
    }
    validator_finish(v);
    /* The identity passes as the importer runs them, on whatever parsed. */
    if (identity_has_bank_candidates(id)) {
        c.verify = true;
        identity_reset_counts(id);
        (void)input_rewind(in, &err);
        (void)parse(in, &o, &sink, &err);
    }
    validator_free(v);
    identity_free(id);
    input_free(in);
}
