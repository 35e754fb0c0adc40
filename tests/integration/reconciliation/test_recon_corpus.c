/*
 * The matching corpus through the real worker: generated orders go into PostgreSQL, generated
 * statement records through the dev broker; every record's outcome is compared with its true
 * answer. Prints precision and recall per scenario; fails on any false match (a record credited
 * to an order that is not its own, or credited when it should have gone to review), on records
 * the worker never stored, and on a recall below RECON_CORPUS_MIN_RECALL (default 0.99).
 * RECON_CORPUS_SEED and RECON_CORPUS_RECORDS choose the corpus (defaults 20240105 and 2000).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpus_gen.h"
#include "rt.h"
#include "topup/pg.h"

#define WAIT_MS 120000

struct tally {
    int records, right, false_match, missed, negatives, wrong_state;
};

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : def;
}

static void insert_orders(struct rt *t, const struct corpus *c, bool late, int64_t now)
{
    for (size_t i = 0; i < c->n_orders; i++) {
        const struct corpus_order *o = &c->orders[i];
        if (o->late != late) {
            continue;
        }
        rt_order(t, o->code, o->account_id, o->amount_fen, o->name, now + o->created_offset_ms,
                 now + o->expires_offset_ms, o->status);
        if (!o->payer_unverified) {
            rt_payer(t, o->account_id, o->name); /* the account owns the name it pays with */
        }
        if (late) {
            rt_requested(t, o->code, o->account_id, o->amount_fen, o->name,
                         now + o->created_offset_ms, now + o->expires_offset_ms);
        }
    }
}

static void produce(struct rt *t, const struct corpus *c)
{
    for (size_t i = 0; i < c->n_records; i++) {
        const struct corpus_record *r = &c->records[i];
        char date[11];
        rt_date(r->value_day_offset, date);
        struct rt_record rec = {.txn_id = r->txn_id,
                                .receiving_account = r->other_account ? "6222000011112222" : NULL,
                                .amount_fen = r->amount_fen,
                                .value_date = date,
                                .name = r->name,
                                .remittance = r->remittance};
        rt_record(t, &rec);
    }
    rt_flush(t);
}

static size_t distinct_records(const struct corpus *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_records; i++) {
        n += c->records[i].duplicate ? 0 : 1;
    }
    return n;
}

static size_t late_matches(const struct corpus *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_records; i++) {
        n += strcmp(c->records[i].scenario, "before_order") == 0 && !c->records[i].duplicate &&
             c->records[i].ntruth > 0; /* by reference: by name a late order goes to review */
    }
    return n;
}

static int scenario_index(const char *name)
{
    for (size_t k = 0; k < corpus_scenario_count; k++) {
        if (strcmp(corpus_scenarios[k], name) == 0) {
            return (int)k;
        }
    }
    return 0;
}

/* Outcome of each record: txn id, state, matched order code ("" when none). */
static PGresult *outcomes(struct rt *t, const char *like)
{
    PGresult *res = NULL;
    struct tp_error err = {0};
    const char *const p[1] = {like};
    if (pg_exec(t->pg,
                "SELECT r.bank_txn_id, r.state, coalesce(o.code, '') FROM statement_records r"
                " LEFT JOIN match_decisions d ON d.record_id = r.id AND d.outcome = 'matched'"
                " LEFT JOIN topup_orders o ON o.id = d.order_id WHERE r.bank_txn_id LIKE $1",
                1, p, &res, &err) != TP_OK) {
        fprintf(stderr, "outcome query: %s\n", err.msg);
        exit(1);
    }
    return res;
}

static const struct corpus_record *find_record(const struct corpus *c, const char *txn)
{
    for (size_t i = 0; i < c->n_records; i++) {
        if (!c->records[i].duplicate && strcmp(c->records[i].txn_id, txn) == 0) {
            return &c->records[i];
        }
    }
    return NULL;
}

static bool is_truth(const struct corpus_record *r, const char *code)
{
    for (int k = 0; k < r->ntruth; k++) {
        if (strcmp(r->truth[k], code) == 0) {
            return true;
        }
    }
    return false;
}

static int evaluate(struct rt *t, const struct corpus *c, const char *like, double min_recall)
{
    struct tally per[64] = {{0}};
    PGresult *res = outcomes(t, like);
    int stored = PQntuples(res);
    int failures = 0;
    for (int row = 0; row < stored; row++) {
        const char *txn = pg_get_str(res, row, 0);
        const char *state = pg_get_str(res, row, 1);
        const char *code = pg_get_str(res, row, 2);
        const struct corpus_record *r = find_record(c, txn);
        if (r == NULL) {
            continue;
        }
        struct tally *s = &per[scenario_index(r->scenario)];
        s->records++;
        s->negatives += r->ntruth == 0;
        if (code[0] != '\0' && !is_truth(r, code)) {
            s->false_match++;
            fprintf(stderr, "FALSE MATCH %s (%s): credited to %s; name \"%s\", text \"%s\"\n", txn,
                    r->scenario, code, r->name, r->remittance);
        } else if (code[0] != '\0') {
            s->right++;
        } else if (r->ntruth > 0) {
            s->missed++;
            fprintf(stderr, "missed %s (%s, %s): name \"%s\", text \"%s\", want %s\n", txn,
                    r->scenario, state, r->name, r->remittance, r->truth[0]);
        }
        if (strcmp(state, r->state) != 0) {
            s->wrong_state++;
            fprintf(stderr, "wrong state %s (%s): %s, want %s\n", txn, r->scenario, state,
                    r->state);
        }
    }
    PQclear(res);
    struct tally all = {0};
    fprintf(stderr, "\n%-30s %7s %7s %7s %7s %9s %7s\n", "scenario", "records", "right", "false",
            "missed", "no-match", "state?");
    for (size_t k = 0; k < corpus_scenario_count; k++) {
        const struct tally *s = &per[k];
        fprintf(stderr, "%-30s %7d %7d %7d %7d %9d %7d\n", corpus_scenarios[k], s->records,
                s->right, s->false_match, s->missed, s->negatives, s->wrong_state);
        all.records += s->records;
        all.right += s->right;
        all.false_match += s->false_match;
        all.missed += s->missed;
        all.negatives += s->negatives;
        all.wrong_state += s->wrong_state;
    }
    double precision = all.right + all.false_match > 0
                           ? (double)all.right / (double)(all.right + all.false_match)
                           : 1.0;
    double recall =
        all.right + all.missed > 0 ? (double)all.right / (double)(all.right + all.missed) : 1.0;
    fprintf(stderr, "%-30s %7d %7d %7d %7d %9d %7d\n", "total", all.records, all.right,
            all.false_match, all.missed, all.negatives, all.wrong_state);
    fprintf(stderr, "\nprecision %.4f  recall %.4f  (%d records, %d should stay unmatched)\n",
            precision, recall, all.records, all.negatives);
    failures += rt_check(t, (size_t)stored == distinct_records(c),
                         "every record stored once (%d of %zu)", stored, distinct_records(c))
                    ? 0
                    : 1;
    failures += rt_check(t, all.false_match == 0, "no false match (%d)", all.false_match) ? 0 : 1;
    failures += rt_check(t, all.wrong_state == 0,
                         "every record in its expected state: review, unmatched, ignored (%d off)",
                         all.wrong_state)
                    ? 0
                    : 1;
    failures +=
        rt_check(t, recall >= min_recall, "recall %.4f >= %.4f", recall, min_recall) ? 0 : 1;
    return failures;
}

int main(void)
{
    struct rt t;
    rt_init(&t, "recon-corpus");
    uint64_t seed = strtoull(env_or("RECON_CORPUS_SEED", "20240105"), NULL, 10);
    size_t n = (size_t)strtoul(env_or("RECON_CORPUS_RECORDS", "2000"), NULL, 10);
    double min_recall = strtod(env_or("RECON_CORPUS_MIN_RECALL", "0.99"), NULL);
    char tag[9];
    snprintf(tag, sizeof(tag), "%.8s", t.suffix);
    struct corpus c;
    corpus_generate(&c, seed, n, tag);
    fprintf(stderr, "corpus seed %llu: %zu records (%zu distinct), %zu orders; tag %s\n",
            (unsigned long long)seed, c.n_records, distinct_records(&c), c.n_orders, tag);
    int64_t now = rt_now_ms();
    insert_orders(&t, &c, false, now);

    char accounts[96], log_path[512];
    snprintf(accounts, sizeof(accounts), "RECON_RECEIVING_ACCOUNTS=9999 0000 1111, %s", t.account);
    snprintf(log_path, sizeof(log_path), "%s/recon-corpus-worker.log",
             env_or("TOPUP_BUILD_DIR", "."));
    const char *env[] = {accounts, "RECON_AGING_SWEEP_MS=600000", "LOG_LEVEL=warn", NULL};
    rt_worker_start(&t, env, log_path);
    produce(&t, &c);

    char like[32], want[24];
    snprintf(like, sizeof(like), "cp-%s-%%", tag);
    snprintf(want, sizeof(want), "%zu", distinct_records(&c));
    const char *const p[1] = {like};
    rt_check(&t,
             rt_wait(&t, WAIT_MS, want,
                     "SELECT count(*) FROM statement_records WHERE bank_txn_id LIKE $1", 1, p),
             "all %s records stored", want);
    /* The orders that come after their transfers. */
    insert_orders(&t, &c, true, rt_now_ms());
    rt_flush(&t);
    snprintf(want, sizeof(want), "%zu", late_matches(&c));
    rt_check(&t,
             rt_wait(&t, WAIT_MS, want,
                     "SELECT count(*) FROM statement_records r JOIN match_decisions d ON"
                     " d.record_id = r.id AND d.outcome = 'matched' AND"
                     " (d.details->>'reexamined')::boolean WHERE r.bank_txn_id LIKE $1",
                     1, p),
             "%s transfers matched when their late order arrived", want);
    int failures = evaluate(&t, &c, like, min_recall);
    rt_check(&t, rt_worker_stop(&t, SIGTERM, 20000) == 0, "SIGTERM: exit 0");
    failures = t.failures;
    corpus_free(&c);
    rt_free(&t);
    fprintf(stderr, "%s: %d failure(s)\n", failures == 0 ? "PASS" : "FAIL", failures);
    return failures == 0 ? 0 : 1;
}
