/*
 * End-to-end scenario: every service as its own process, driven from outside (HTTP, statement
 * files, gateway events on Kafka), checked against an independent model of what must happen.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

/*
 * The model is this file's own bookkeeping, not the services' code: for every order the status,
 * credited amount and mismatch flag it must end with; for every account the flows (type, signed
 * amount, reference) and hence the balance; for every transfer the state of its statement record
 * and the review reason, if any. Each case below says why it expects what it expects (SPEC
 * "Reconciliation" and "Ledger and account flows"). The scenario runs in phases and the model
 * knows which facts exist in which phase, so the outcome is deterministic however the services
 * interleave their work.
 */

#define ACCOUNTS       12
#define ORDERS_MAX     160
#define TXNS_MAX       160
#define FLOWS_MAX      800
#define USAGE_PER_ACCT 14
/* Bounded waits: everything settles in seconds on a laptop; a slow CI machine gets slack. */
#define SETTLE_MS 90000
#define HTTP_MS   10000
#define TOOL_MS   120000 /* a topupctl run */
/* Our receiving account: the payee account the orders show, spaces and all. */
#define PAYEE_ACCOUNT     "6225 8802 1234 5678"
#define RECEIVING_ACCOUNT "6225880212345678"
#define OTHER_ACCOUNT     "6225880299990000"
#define REVIEW_NONE       ""

enum order_kind {
    K_REF,       /* rule 1: the transfer names the code, same amount */
    K_MISMATCH,  /* rule 1 with another amount: credited what arrived, flagged */
    K_RULE2,     /* rule 2: no code, name (written differently) and amount match one account */
    K_SQUAT,     /* rule 2 shape, but the name is no verified payer of the account: review */
    K_PENDING,   /* never paid */
    K_CANCEL,    /* cancelled by the user, never paid */
    K_CANCEL_TX, /* cancelled, then a transfer naming it arrives: review, no credit */
    K_OLD,       /* two orders of one account with the same name and amount: the older is paid */
    K_YOUNG,     /* ... the younger stays pending */
    K_AMBIG,     /* two accounts with the same name and amount: review, neither is paid */
    K_LATE,      /* the transfer (rule 2) is imported before the order exists: review late_order */
    K_WRONG_ACC, /* its code arrives in a transfer to another receiving account: stays pending */
    K_OVERLAP,   /* paid by a new transfer in an overlapping statement */
};

struct m_order {
    int acct;
    enum order_kind kind;
    char name[64];
    int64_t amount;
    char idem[64];
    char code[32];
    /* What must hold at the end. */
    const char *status;
    int64_t credited; /* 0: null */
    bool mismatch;
    bool payer; /* its name is a verified payer of its account (topupctl payers add) */
};

struct m_txn {
    struct tl_txn t;
    int file;           /* index into files[] */
    int order;          /* the order it concerns (-1: none) */
    bool refers;        /* its remittance names the order's code */
    const char *state;  /* statement_records.state it must end in */
    const char *review; /* review reason, or REVIEW_NONE */
    bool late;          /* imported before its order exists: unmatched until phase 3 */
    bool deferred;      /* in a statement imported only in phase 3: no record before */
};

struct m_flow {
    int acct;
    char type[16];
    int64_t amount;
    char ref[64];
};

struct m_file {
    enum tl_stmt_format fmt;
    const char *account;
    char path[TL_PATH_MAX];
};

static struct {
    char acct[ACCOUNTS][TL_ID_MAX];
    char *token[ACCOUNTS];
    struct m_order orders[ORDERS_MAX];
    int norders;
    struct m_txn txns[TXNS_MAX];
    int ntxns;
    struct m_flow flows[FLOWS_MAX];
    int nflows;
    /* usage.recorded references of each account in production order (the ledger keeps it). */
    char usage_refs[ACCOUNTS][USAGE_PER_ACCT + 4][64];
    int64_t usage_fen[ACCOUNTS][USAGE_PER_ACCT + 4]; /* what each usage took (> 0) */
    int nusage[ACCOUNTS];
    struct tl_intake intake;
    struct tl_proc recon, ledger;
    struct tl_producer *producer;
    char date[11];
} M;

/* Distinct names: Chinese for the CSV and camt files, pinyin for MT940 (which cannot carry
 * Chinese). Normalisation folds case, width and spaces, never syllables, so these never collide. */
static const char *const surnames[] = {"王", "李", "张", "刘", "陈", "杨", "赵", "黄",
                                       "周", "吴", "徐", "孙", "胡", "朱", "高", "林"};
static const char *const given[] = {"伟", "芳", "娜", "敏", "静", "丽", "强",   "磊",   "军",  "洋",
                                    "勇", "艳", "杰", "涛", "明", "超", "秀英", "桂英", "志强"};
static const char *const py_sur[] = {"WANG", "LI", "ZHANG", "LIU", "CHEN", "YANG", "ZHAO", "HUANG",
                                     "ZHOU", "WU", "XU",    "SUN", "HU",   "ZHU",  "GAO",  "LIN"};
static const char *const py_given[] = {
    "WEI",  "FANG", "NA",  "MIN", "JING", "LI",   "QIANG",   "LEI",     "JUN",     "YANG",
    "YONG", "YAN",  "JIE", "TAO", "MING", "CHAO", "XIUYING", "GUIYING", "ZHIQIANG"};
static int name_seq;

static void next_name(char *out, size_t len, bool pinyin)
{
    int n = name_seq++;
    int s = n % 16, g = (n / 16) % 19, g2 = (n / 16 / 19 + n) % 19;
    if (pinyin) {
        snprintf(out, len, "%s %s%s", py_sur[s], py_given[g], py_given[g2]);
    } else {
        snprintf(out, len, "%s%s%s", surnames[s], given[g], given[g2]);
    }
}

/* How the bank writes a name the user typed: rule 2 must still recognise it. */
static void bank_spelling(const char *name, char *out, size_t len, bool pinyin)
{
    if (pinyin) {
        /* lower case, and the space doubled */
        size_t o = 0;
        for (const char *c = name; *c != '\0' && o + 2 < len; c++) {
            out[o++] = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
            if (*c == ' ') {
                out[o++] = ' ';
            }
        }
        out[o] = '\0';
    } else {
        /* an ideographic space after the surname (full-width; NFKC makes it a space) */
        snprintf(out, len, "%.3s\xe3\x80\x80%s", name, name + 3);
    }
}

static bool acct_pinyin(int a)
{
    return a % 4 == 2; /* accounts whose transfers come in the MT940 file */
}

static int add_order(int acct, enum order_kind kind, const char *name, int64_t amount)
{
    TL_CHECK(M.norders < ORDERS_MAX);
    struct m_order *o = &M.orders[M.norders];
    memset(o, 0, sizeof(*o));
    o->acct = acct;
    o->kind = kind;
    if (name != NULL) {
        snprintf(o->name, sizeof(o->name), "%s", name);
    } else {
        next_name(o->name, sizeof(o->name), acct_pinyin(acct));
    }
    o->amount = amount;
    snprintf(o->idem, sizeof(o->idem), "e2e-%s-%d", tl_sfx(), M.norders);
    o->status = "pending";
    return M.norders++;
}

static int64_t rand_amount(void)
{
    return tl_rand_range(5000, 300000); /* 50.00 .. 3000.00 */
}

static struct m_txn *add_txn(int file, int order, bool refers, int64_t amount, const char *name)
{
    TL_CHECK(M.ntxns < TXNS_MAX);
    struct m_txn *x = &M.txns[M.ntxns];
    memset(x, 0, sizeof(*x));
    x->file = file;
    x->order = order;
    x->refers = refers;
    x->review = REVIEW_NONE;
    snprintf(x->t.txn_id, sizeof(x->t.txn_id), "T%s%04d", tl_sfx(), M.ntxns);
    x->t.amount_fen = amount;
    snprintf(x->t.name, sizeof(x->t.name), "%s", name);
    snprintf(x->t.cp_account, sizeof(x->t.cp_account), "62220200%08d", 1000 + M.ntxns);
    snprintf(x->t.cp_bank, sizeof(x->t.cp_bank), "%s", "中国工商银行");
    snprintf(x->t.value_date, sizeof(x->t.value_date), "%s", M.date);
    M.ntxns++;
    return x;
}

static void add_flow(int acct, const char *type, int64_t amount, const char *ref)
{
    TL_CHECK(M.nflows < FLOWS_MAX);
    struct m_flow *f = &M.flows[M.nflows++];
    f->acct = acct;
    snprintf(f->type, sizeof(f->type), "%s", type);
    f->amount = amount;
    /* ref may point into the model itself (an order's code): copy without snprintf's restrict. */
    size_t n = strnlen(ref, sizeof(f->ref) - 1);
    memmove(f->ref, ref, n);
    f->ref[n] = '\0';
}

/* ------------------------------------------------------------------ the plan */

enum { F_CSV, F_CSV_GBK, F_MT940, F_CAMT, F_OTHER, F_OVERLAP, F_LATE, F_REFUND, NFILES };
static struct m_file files[NFILES];

static int acct_file(int a)
{
    static const int by_mod[4] = {F_CSV, F_CSV_GBK, F_MT940, F_CAMT};
    return by_mod[a % 4];
}

/*
 * Orders of every account: a rule-1 payment, a rule-2 payment and an unpaid order each; then,
 * spread over the accounts, amount mismatches, cancellations (with and without a transfer),
 * the older-of-two rule, a late order, a name the account does not own (a squatted name), and
 * the ambiguous pair across accounts 0 and 1. Rule 2 credits only a verified payer's transfer: the
 * orders marked payer have their name added with `topupctl payers add`.
 */
static void plan_orders(void)
{
    for (int a = 0; a < ACCOUNTS; a++) {
        add_order(a, K_REF, NULL, rand_amount());
        M.orders[add_order(a, K_RULE2, NULL, rand_amount())].payer = true;
        add_order(a, K_PENDING, NULL, rand_amount());
        if (a % 3 == 0) {
            add_order(a, K_MISMATCH, NULL, rand_amount());
        }
        if (a % 3 == 1) {
            add_order(a, K_CANCEL_TX, NULL, rand_amount());
        }
        if (a % 3 == 2) {
            add_order(a, K_CANCEL, NULL, rand_amount());
        }
        if (a % 4 == 0) {
            char name[64];
            next_name(name, sizeof(name), acct_pinyin(a));
            int64_t amt = rand_amount();
            M.orders[add_order(a, K_OLD, name, amt)].payer = true; /* the name, once for both */
            add_order(a, K_YOUNG, name, amt);
        }
        if (a % 4 == 1) {
            M.orders[add_order(a, K_LATE, NULL, rand_amount())].payer = true;
        }
        if (a % 4 == 3) {
            add_order(a, K_SQUAT, NULL, rand_amount());
        }
    }
    char amb[64];
    next_name(amb, sizeof(amb), false);
    int64_t amt = rand_amount();
    /* Both accounts own the name (two people of one name are common): ambiguous, not a guess. */
    M.orders[add_order(0, K_AMBIG, amb, amt)].payer = true;
    M.orders[add_order(1, K_AMBIG, amb, amt)].payer = true;
    add_order(2, K_WRONG_ACC, NULL, rand_amount());
    add_order(3, K_OVERLAP, NULL, rand_amount());
}

static void remit_code(struct m_txn *x, const char *code, bool pinyin)
{
    /* Users write the code every which way: lower case, with a hyphen, among other words. */
    char c[32];
    snprintf(c, sizeof(c), "%s", code);
    switch (M.ntxns % 3) {
    case 0:
        snprintf(x->t.remittance, sizeof(x->t.remittance), "%s %s", pinyin ? "TOPUP" : "充值", c);
        break;
    case 1:
        for (char *p = c; *p; p++) {
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        }
        snprintf(x->t.remittance, sizeof(x->t.remittance), "%s", c);
        break;
    default:
        snprintf(x->t.remittance, sizeof(x->t.remittance), "%.5s-%s %s", c, c + 5,
                 pinyin ? "THANKS" : "谢谢");
        break;
    }
}

/* The transfers, once the orders (and their codes) exist; and what each must lead to. */
static void plan_transfers(void)
{
    for (int i = 0; i < M.norders; i++) {
        struct m_order *o = &M.orders[i];
        bool py = acct_pinyin(o->acct);
        int file = acct_file(o->acct);
        char spelled[128];
        bank_spelling(o->name, spelled, sizeof(spelled), py);
        struct m_txn *x = NULL;
        switch (o->kind) {
        case K_REF:
            x = add_txn(file, i, true, o->amount, o->name);
            remit_code(x, o->code, py);
            x->state = "matched";
            o->status = "completed";
            o->credited = o->amount;
            break;
        case K_MISMATCH:
            /* The user sent 0.50 less than ordered: credit what arrived, flag the order. */
            x = add_txn(file, i, true, o->amount - 50, o->name);
            remit_code(x, o->code, py);
            x->state = "matched";
            x->review = "amount_mismatch";
            o->status = "completed";
            o->credited = o->amount - 50;
            o->mismatch = true;
            break;
        case K_RULE2:
            x = add_txn(file, i, false, o->amount, spelled);
            snprintf(x->t.remittance, sizeof(x->t.remittance), "%s", py ? "TOPUP" : "充值");
            x->state = "matched";
            o->status = "completed";
            o->credited = o->amount;
            break;
        case K_SQUAT:
            /* Name and amount fit, but the account never proved it owns the name: someone typing
             * a stranger's name into an order must not collect that stranger's transfer. */
            x = add_txn(file, i, false, o->amount, spelled);
            snprintf(x->t.remittance, sizeof(x->t.remittance), "%s", py ? "TOPUP" : "充值");
            x->state = "review";
            x->review = "unverified_payer";
            o->status = "pending";
            break;
        case K_CANCEL_TX:
            x = add_txn(file, i, true, o->amount, o->name);
            remit_code(x, o->code, py);
            x->state = "review";
            x->review = "order_not_pending";
            o->status = "cancelled";
            break;
        case K_CANCEL:
            o->status = "cancelled";
            break;
        case K_OLD:
            /* One transfer for the pair: the older order is paid (SPEC rule 2). */
            x = add_txn(file, i, false, o->amount, spelled);
            snprintf(x->t.remittance, sizeof(x->t.remittance), "%s", py ? "TOPUP" : "充值");
            x->state = "matched";
            o->status = "completed";
            o->credited = o->amount;
            break;
        case K_YOUNG:
        case K_PENDING:
            o->status = "pending";
            break;
        case K_AMBIG:
            if (o->acct == 0) {
                x = add_txn(F_CAMT, i, false, o->amount, spelled);
                snprintf(x->t.remittance, sizeof(x->t.remittance), "%s", "充值");
                x->state = "review";
                x->review = "ambiguous";
            }
            o->status = "pending";
            break;
        case K_LATE:
            /* Imported before the order exists: unmatched until the order arrives; then an order
             * created after the transfer never collects it by name alone (a verified payer or
             * not): review late_order, and support matches it by hand (phase 4). */
            x = add_txn(F_LATE, i, false, o->amount, spelled);
            snprintf(x->t.remittance, sizeof(x->t.remittance), "%s", "充值");
            x->state = "review";
            x->review = "late_order";
            o->status = "pending";
            break;
        case K_WRONG_ACC:
            /* Into an account that is not ours: ignored, never credited. */
            x = add_txn(F_OTHER, i, true, o->amount, o->name);
            remit_code(x, o->code, true);
            x->state = "ignored";
            o->status = "pending";
            break;
        case K_OVERLAP:
            /* Its statement comes in phase 3; until then the order waits. */
            x = add_txn(F_OVERLAP, i, true, o->amount, o->name);
            remit_code(x, o->code, false);
            x->state = "matched";
            x->deferred = true;
            o->status = "pending";
            break;
        }
        if (o->credited > 0) {
            add_flow(o->acct, "recharge", o->credited, o->code);
        }
    }
    /* Debits (bank fees, a payout) in every statement of ours: kept, ignored. */
    static const int ours[] = {F_CSV, F_CSV_GBK, F_MT940, F_CAMT};
    for (int k = 0; k < 4; k++) {
        bool py = ours[k] == F_MT940;
        struct m_txn *x =
            add_txn(ours[k], -1, false, -tl_rand_range(100, 2000), py ? "BANK FEE" : "手续费");
        snprintf(x->t.remittance, sizeof(x->t.remittance), "%s", py ? "FEE" : "汇款手续费");
        x->state = "ignored";
    }
}

/* ------------------------------------------------------------------ driving the system */

static void start_system(void)
{
    tl_kafka_private_start();
    static const char *const recon_env[] = {"RECON_RECEIVING_ACCOUNTS=" RECEIVING_ACCOUNT,
                                            "RECON_RELAY_POLL_MS=200", NULL};
    static const char *const ledger_env[] = {"LEDGER_BATCH_WAIT_MS=50", NULL};
    static const char *const intake_env[] = {"INTAKE_PAYEE_ACCOUNT_NUMBER=" PAYEE_ACCOUNT,
                                             "INTAKE_OUTBOX_POLL_MS=200", NULL};
    tl_worker_start(&M.ledger, "ledger", "ledger", ledger_env);
    tl_worker_start(&M.recon, "reconciliation", "reconciliation", recon_env);
    tl_intake_start(&M.intake, intake_env);
    tl_step("services up: order-intake :%d, reconciliation pid %d, ledger pid %d", M.intake.port,
            (int)M.recon.pid, (int)M.ledger.pid);
}

static json_t *order_body(const struct m_order *o)
{
    char amt[32];
    tl_fen_str(o->amount, amt, sizeof(amt));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "amount", amt, "channel", "bank_transfer",
                     "remitter_name", o->name, "remitter_bank", "中国工商银行", "remarks", "e2e",
                     "agreement_accepted", 1);
}

static void create_order(struct m_order *o)
{
    json_t *body = order_body(o);
    char *text = json_dumps(body, JSON_COMPACT);
    struct tl_http_resp r;
    int st = tl_http(M.intake.port, "POST", "/v1/topup-orders", M.token[o->acct], o->idem, text, &r,
                     HTTP_MS);
    TL_CHECK_MSG(st == 201, "create order for %s: HTTP %d %s %s", M.acct[o->acct], st,
                 r.body != NULL ? r.body : "", r.error);
    snprintf(o->code, sizeof(o->code), "%s", tl_json_str(r.json, "code"));
    TL_CHECK_MSG(strcmp(tl_json_str(r.json, "status"), "pending") == 0, "new order not pending");
    const json_t *payee = json_object_get(r.json, "payee");
    TL_CHECK_MSG(strcmp(tl_json_str(payee, "account_number"), PAYEE_ACCOUNT) == 0,
                 "payee account %s, want %s", tl_json_str(payee, "account_number"), PAYEE_ACCOUNT);
    TL_CHECK_MSG(ids_refcode_valid(o->code), "order code \"%s\" is not a valid reference code",
                 o->code);
    tl_http_free(&r);
    free(text);
    json_decref(body);
}

/* A retry with the same key returns the same order; the same key with another body is 409. */
static void check_idempotency(const struct m_order *o)
{
    json_t *body = order_body(o);
    char *text = json_dumps(body, JSON_COMPACT);
    struct tl_http_resp r;
    int st = tl_http(M.intake.port, "POST", "/v1/topup-orders", M.token[o->acct], o->idem, text, &r,
                     HTTP_MS);
    TL_CHECK_MSG(st == 200 && strcmp(tl_json_str(r.json, "code"), o->code) == 0,
                 "replay of %s: HTTP %d code %s", o->idem, st, tl_json_str(r.json, "code"));
    tl_http_free(&r);
    free(text);
    json_object_set_new(body, "amount", json_string("777.00"));
    text = json_dumps(body, JSON_COMPACT);
    st = tl_http(M.intake.port, "POST", "/v1/topup-orders", M.token[o->acct], o->idem, text, &r,
                 HTTP_MS);
    TL_CHECK_MSG(st == 409, "same key, other body: HTTP %d, want 409", st);
    tl_http_free(&r);
    free(text);
    json_decref(body);
}

static void cancel_order(const struct m_order *o)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", o->code);
    struct tl_http_resp r;
    int st = tl_http(M.intake.port, "POST", path, M.token[o->acct], NULL, NULL, &r, HTTP_MS);
    TL_CHECK_MSG(st == 200 && strcmp(tl_json_str(r.json, "status"), "cancelled") == 0,
                 "cancel %s: HTTP %d %s", o->code, st, r.body != NULL ? r.body : "");
    tl_http_free(&r);
    /* A second cancel is refused: only pending orders can be cancelled. */
    st = tl_http(M.intake.port, "POST", path, M.token[o->acct], NULL, NULL, &r, HTTP_MS);
    TL_CHECK_MSG(st == 409, "second cancel of %s: HTTP %d, want 409", o->code, st);
    tl_http_free(&r);
}

/* Usage deductions and refunds as a gateway sends them; the model records each flow. */
static void produce_usage(int round)
{
    for (int a = 0; a < ACCOUNTS; a++) {
        for (int k = 0; k < USAGE_PER_ACCT / 2; k++) {
            char eid[UUID_STR_LEN], ref[64];
            tl_event_id(eid);
            snprintf(ref, sizeof(ref), "req-%s-%d-%d-%d", tl_sfx(), a, round, k);
            int64_t amt = -tl_rand_range(1, 2500);
            tl_produce_usage(M.producer, eid, M.acct[a], ref, amt);
            add_flow(a, "consume", amt, ref);
            M.usage_fen[a][M.nusage[a]] = -amt;
            snprintf(M.usage_refs[a][M.nusage[a]++], 64, "%s", ref);
            if (k == 2 && a % 2 == round) {
                /* The gateway did not see the acknowledgement and sends it again: one flow. */
                tl_produce_usage(M.producer, eid, M.acct[a], ref, amt);
            }
        }
        char eid[UUID_STR_LEN], ref[64];
        tl_event_id(eid);
        snprintf(ref, sizeof(ref), "rf-%s-%d-%d", tl_sfx(), a, round);
        if ((a + round) % 3 == 0) {
            /* Part of this round's first usage refunded to the balance (at most what it took:
             * the ledger refuses more). It may reach the ledger before its usage: it waits. */
            int u = M.nusage[a] - USAGE_PER_ACCT / 2;
            int64_t amt = tl_rand_range(1, M.usage_fen[a][u] < 500 ? M.usage_fen[a][u] : 500);
            tl_produce_refund(M.producer, eid, M.acct[a], ref, amt, 1, M.usage_refs[a][u]);
            add_flow(a, "refund", amt, ref);
        } else if ((a + round) % 3 == 1) {
            /* Balance paid back to the customer's bank. */
            int64_t amt = -tl_rand_range(100, 5000);
            tl_produce_refund(M.producer, eid, M.acct[a], ref, amt, 2, "");
            add_flow(a, "refund", amt, ref);
        }
    }
    if (round == 0) {
        /* A malformed event (usage that adds money) goes to the dead-letter topic, no flow. */
        char eid[UUID_STR_LEN];
        tl_event_id(eid);
        tl_produce_usage(M.producer, eid, M.acct[5], "req-bad", 999);
    }
    tl_producer_flush(M.producer, 30000);
}

static void write_and_import(int f, bool late)
{
    static struct tl_txn buf[TXNS_MAX];
    size_t n = 0;
    for (int i = 0; i < M.ntxns; i++) {
        if (M.txns[i].file == f && M.txns[i].late == late) {
            buf[n++] = M.txns[i].t;
        }
    }
    char path[TL_PATH_MAX];
    static const char *const ext[] = {"csv", "csv", "sta", "xml"};
    snprintf(files[f].path, sizeof(files[f].path), "%s/stmt-%d-%s.%s", tl_logdir(), f,
             tl_stmt_format_name(files[f].fmt), ext[files[f].fmt]);
    snprintf(path, sizeof(path), "%s", files[f].path);
    tl_stmt_write(files[f].fmt, path, files[f].account, buf, n);
    char *out = NULL;
    int rc = tl_import(path, tl_stmt_import_args(files[f].fmt, files[f].account), &out);
    TL_CHECK_MSG(rc == 0, "statement-import %s (%s, %zu transfers): exit %d; see %s/%s.log", path,
                 tl_stmt_format_name(files[f].fmt), n, rc, tl_logdir(), "statement-import");
    free(out);
    tl_step("imported %s: %zu transfers (%s)", tl_stmt_format_name(files[f].fmt), n, path);
}

/* ------------------------------------------------------------------ comparing */

#define DIFF_MAX 12

struct diffs {
    char msg[DIFF_MAX][512];
    int n;
};

static void diff(struct diffs *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void diff(struct diffs *d, const char *fmt, ...)
{
    if (d->n < DIFF_MAX) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg[d->n], sizeof(d->msg[0]), fmt, ap);
        va_end(ap);
    }
    d->n++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int64_t model_balance(int a)
{
    int64_t b = 0;
    for (int i = 0; i < M.nflows; i++) {
        b += M.flows[i].acct == a ? M.flows[i].amount : 0;
    }
    return b;
}

/* Every flow of account a through the API, newest first, page by page. */
static json_t *api_flows(int a, struct diffs *d)
{
    json_t *all = json_array();
    char cursor[256] = "";
    for (int page = 0; page < 50; page++) {
        char path[512];
        snprintf(path, sizeof(path), "/v1/account-flows?limit=%d%s%s", page % 2 == 0 ? 100 : 37,
                 cursor[0] ? "&cursor=" : "", cursor);
        struct tl_http_resp r;
        int st = tl_http(M.intake.port, "GET", path, M.token[a], NULL, NULL, &r, HTTP_MS);
        if (st != 200 || !json_is_array(json_object_get(r.json, "flows"))) {
            diff(d, "%s: GET %s: HTTP %d", M.acct[a], path, st);
            tl_http_free(&r);
            break;
        }
        json_array_extend(all, json_object_get(r.json, "flows"));
        const json_t *next = json_object_get(r.json, "next_cursor");
        bool more = json_is_string(next);
        if (more) {
            snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        }
        tl_http_free(&r);
        if (!more) {
            break;
        }
    }
    return all;
}

static void compare_account(int a, struct diffs *d)
{
    const char *acct = M.acct[a];
    int64_t want = model_balance(a);
    /* Balance: the API and the accounts table. */
    struct tl_http_resp r;
    int st = tl_http(M.intake.port, "GET", "/v1/balance", M.token[a], NULL, NULL, &r, HTTP_MS);
    int64_t api_bal = st == 200 ? tl_fen_parse(tl_json_str(r.json, "balance")) : INT64_MIN;
    tl_http_free(&r);
    if (api_bal != want) {
        diff(d, "%s: GET /v1/balance %" PRId64 " fen, model %" PRId64, acct, api_bal, want);
    }
    const char *p[1] = {acct};
    PGresult *res = tl_pg_query("SELECT balance_fen FROM accounts WHERE account_id = $1", 1, p);
    int64_t db_bal = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : INT64_MIN;
    PQclear(res);
    if (db_bal != want) {
        diff(d, "%s: accounts.balance_fen %" PRId64 ", model %" PRId64, acct, db_bal, want);
    }
    /* Flows: the same multiset of (type, amount, reference) as the model, through the API. */
    json_t *flows = api_flows(a, d);
    size_t nf = json_array_size(flows);
    char **got = calloc(nf + 1, sizeof(char *));
    char **exp = calloc((size_t)M.nflows + 1, sizeof(char *));
    TL_CHECK(got != NULL && exp != NULL);
    int64_t prev_id = INT64_MAX;
    for (size_t i = 0; i < nf; i++) {
        const json_t *f = json_array_get(flows, i);
        got[i] = malloc(160);
        snprintf(got[i], 160, "%s|%" PRId64 "|%s", tl_json_str(f, "type"),
                 tl_fen_parse(tl_json_str(f, "amount")), tl_json_str(f, "reference"));
        int64_t id = json_integer_value(json_object_get(f, "id"));
        if (id >= prev_id) {
            diff(d, "%s: flows not newest first (id %" PRId64 " after %" PRId64 ")", acct, id,
                 prev_id);
        }
        prev_id = id;
    }
    size_t ne = 0;
    for (int i = 0; i < M.nflows; i++) {
        if (M.flows[i].acct == a) {
            exp[ne] = malloc(160);
            snprintf(exp[ne], 160, "%s|%" PRId64 "|%s", M.flows[i].type, M.flows[i].amount,
                     M.flows[i].ref);
            ne++;
        }
    }
    qsort(got, nf, sizeof(char *), cmp_str);
    qsort(exp, ne, sizeof(char *), cmp_str);
    size_t i = 0, j = 0;
    while (i < nf || j < ne) {
        int c = i == nf ? 1 : j == ne ? -1 : strcmp(got[i], exp[j]);
        if (c < 0) {
            diff(d, "%s: unexpected flow %s", acct, got[i++]);
        } else if (c > 0) {
            diff(d, "%s: missing flow %s", acct, exp[j++]);
        } else {
            i++;
            j++;
        }
    }
    for (i = 0; i < nf; i++) {
        free(got[i]);
    }
    for (j = 0; j < ne; j++) {
        free(exp[j]);
    }
    free(got);
    free(exp);
    json_decref(flows);
    /* balance_after is the running sum in flow order; usage applies in the order produced. */
    res = tl_pg_query("SELECT amount_fen, balance_after_fen, flow_type, reference "
                      "FROM account_flows WHERE account_id = $1 ORDER BY id",
                      1, p);
    int64_t run = 0;
    int u = 0;
    for (int row = 0; row < PQntuples(res); row++) {
        run += strtoll(PQgetvalue(res, row, 0), NULL, 10);
        if (run != strtoll(PQgetvalue(res, row, 1), NULL, 10)) {
            diff(d, "%s: flow %d balance_after %s, running sum %" PRId64, acct, row,
                 PQgetvalue(res, row, 1), run);
        }
        if (strcmp(PQgetvalue(res, row, 2), "consume") == 0) {
            if (u >= M.nusage[a] || strcmp(M.usage_refs[a][u], PQgetvalue(res, row, 3)) != 0) {
                diff(d, "%s: consume #%d is %s, produced as %s", acct, u, PQgetvalue(res, row, 3),
                     u < M.nusage[a] ? M.usage_refs[a][u] : "(none)");
            }
            u++;
        }
    }
    PQclear(res);
    /* The gateways' real-time balance in Redis agrees. */
    char key[160], val[64];
    snprintf(key, sizeof(key), "topup:balance:%s", acct);
    if (!tl_redis_hget(key, "balance_fen", val, sizeof(val))) {
        diff(d, "%s: no cached balance in Redis (%s)", acct, key);
    } else if (strtoll(val, NULL, 10) != want) {
        diff(d, "%s: Redis balance_fen %s, model %" PRId64, acct, val, want);
    }
}

static void compare_orders(struct diffs *d)
{
    for (int i = 0; i < M.norders; i++) {
        const struct m_order *o = &M.orders[i];
        if (o->code[0] == '\0') {
            continue; /* a late order not created yet */
        }
        char path[128];
        snprintf(path, sizeof(path), "/v1/topup-orders/%s", o->code);
        struct tl_http_resp r;
        int st = tl_http(M.intake.port, "GET", path, M.token[o->acct], NULL, NULL, &r, HTTP_MS);
        const char *status = tl_json_str(r.json, "status");
        const json_t *cr = json_object_get(r.json, "credited_amount");
        int64_t credited = json_is_string(cr) ? tl_fen_parse(json_string_value(cr)) : 0;
        bool mismatch = json_is_true(json_object_get(r.json, "amount_mismatch"));
        if (st != 200 || strcmp(status, o->status) != 0 || credited != o->credited ||
            mismatch != o->mismatch) {
            diff(d,
                 "order %s (%s, kind %d): HTTP %d status %s credited %" PRId64
                 " mismatch %d; model %s %" PRId64 " %d",
                 o->code, M.acct[o->acct], (int)o->kind, st, status, credited, mismatch, o->status,
                 o->credited, o->mismatch);
        }
        tl_http_free(&r);
    }
}

static void compare_records(struct diffs *d, bool include_late)
{
    for (int i = 0; i < M.ntxns; i++) {
        const struct m_txn *x = &M.txns[i];
        if (x->deferred) {
            continue;
        }
        const char *acct = x->file == F_OTHER ? OTHER_ACCOUNT : RECEIVING_ACCOUNT;
        const char *p[2] = {acct, x->t.txn_id};
        PGresult *res =
            tl_pg_query("SELECT r.state, coalesce(string_agg(q.reason, ',' ORDER BY q.reason), '') "
                        "FROM statement_records r LEFT JOIN review_queue q ON q.record_id = r.id "
                        "WHERE r.receiving_account = $1 AND r.bank_txn_id = $2 GROUP BY r.state",
                        2, p);
        if (PQntuples(res) != 1) {
            diff(d, "transfer %s: %d statement records, want 1", x->t.txn_id, PQntuples(res));
        } else {
            bool waiting = x->late && !include_late;
            const char *state = waiting ? "unmatched" : x->state;
            const char *review = waiting ? REVIEW_NONE : x->review;
            if (strcmp(PQgetvalue(res, 0, 0), state) != 0 ||
                strcmp(PQgetvalue(res, 0, 1), review) != 0) {
                diff(d, "transfer %s (order %s): state %s review [%s]; model %s [%s]", x->t.txn_id,
                     x->order >= 0 ? M.orders[x->order].code : "-", PQgetvalue(res, 0, 0),
                     PQgetvalue(res, 0, 1), state, review);
            }
        }
        PQclear(res);
    }
}

static void compare_refund_model(struct diffs *d);

/* Everything the model predicts, or the differences. */
static void compare_all(struct diffs *d, bool final)
{
    memset(d, 0, sizeof(*d));
    for (int a = 0; a < ACCOUNTS; a++) {
        compare_account(a, d);
    }
    compare_orders(d);
    compare_records(d, final);
    compare_refund_model(d);
    int64_t n = tl_pg_i64("SELECT count(*) FROM outbox WHERE published_at IS NULL", 0, NULL);
    if (n != 0) {
        diff(d, "%" PRId64 " outbox rows not yet published", n);
    }
    n = tl_pg_i64("SELECT count(*) FROM topup_orders WHERE status = 'processing'", 0, NULL);
    if (n != 0) {
        diff(d, "%" PRId64 " orders stuck in processing", n);
    }
}

static void settle(const char *what, bool final)
{
    int64_t t0 = tl_now_ms();
    struct diffs d;
    for (;;) {
        compare_all(&d, final);
        if (d.n == 0) {
            break;
        }
        if (tl_now_ms() - t0 > SETTLE_MS) {
            for (int i = 0; i < d.n && i < DIFF_MAX; i++) {
                fprintf(stderr, "  diff: %s\n", d.msg[i]);
            }
            tl_proc_log_tail(&M.recon, 15);
            tl_proc_log_tail(&M.ledger, 15);
            tl_fail("%s: the system did not reach the model's state within %d ms (%d "
                    "differences, first: %s)",
                    what, SETTLE_MS, d.n, d.msg[0]);
        }
        tl_proc_check_alive(&M.recon);
        tl_proc_check_alive(&M.ledger);
        tl_proc_check_alive(&M.intake.proc);
        tl_sleep_ms(500);
    }
    /* Settled: nothing more may arrive (a late duplicate would show now). */
    tl_sleep_ms(1500);
    compare_all(&d, final);
    TL_CHECK_MSG(d.n == 0, "%s: state changed after settling: %s", what, d.msg[0]);
    tl_step("%s: settled in %.1f s, system equals the model", what,
            (double)(tl_now_ms() - t0) / 1000.0);
}

/* ------------------------------------------------------------------ refunds and the close */

/*
 * Phase 4, refunds (issue #14 items 2 and 6): accounts 0..3 get a new order each, paid by a
 * rule-1 transfer of a statement of its own, which opens a credit lot the model knows exactly:
 * its paid amount, or less when the account was in debt (a recharge first pays the debt). No
 * usage moves those accounts afterwards, and a refund reservation draws from its request's lot,
 * so every request and the lot's left are predictable:
 *   account 0: request half, approve, approve again ("approved already": one reservation)
 *   account 1: request, reject (nothing reserved)
 *   account 2: request the whole lot and leave it requested; one fen more is refused (the open
 *              request already holds the credit)
 *   account 3: request all but one fen, approve; 2.00 more is refused (1 fen is left)
 * Then `topupctl close` of the scenario's day: exit code, every figure, every account's
 * roll-forward and every break equal what the model predicts; and an old credit that matches
 * nothing, imported through statement-import, is reported as credit_not_matched with its age.
 */
#define REFUND_ACCTS 4
#define REFUNDS_MAX  8
#define AGED_DAYS    10

struct m_refund {
    int acct;
    int order;
    int64_t amount;
    char id[32];
    const char *state;
};

static struct {
    int lot_order[REFUND_ACCTS]; /* the phase-4 order of each account (index into M.orders) */
    int64_t lot_left[REFUND_ACCTS];
    struct m_refund refunds[REFUNDS_MAX];
    int nrefunds;
    bool active; /* phase 4 has begun: compare its refunds and lots */
} R;

/* Every refund request in its model state, to the lot's remitter; every phase-4 lot's left. */
static void compare_refund_model(struct diffs *d)
{
    if (!R.active) {
        return;
    }
    for (int i = 0; i < R.nrefunds; i++) {
        const struct m_refund *f = &R.refunds[i];
        const struct m_txn *x = NULL;
        for (int k = 0; k < M.ntxns && x == NULL; k++) {
            x = M.txns[k].order == f->order && M.txns[k].file == F_REFUND ? &M.txns[k] : NULL;
        }
        const char *p[1] = {f->id};
        PGresult *res = tl_pg_query("SELECT state, amount_fen, account_id, dest_account, "
                                    "dest_name FROM refund_requests WHERE refund_id = $1",
                                    1, p);
        if (PQntuples(res) != 1) {
            diff(d, "refund %s: %d requests, want 1", f->id, PQntuples(res));
        } else if (strcmp(PQgetvalue(res, 0, 0), f->state) != 0 ||
                   strtoll(PQgetvalue(res, 0, 1), NULL, 10) != f->amount ||
                   strcmp(PQgetvalue(res, 0, 2), M.acct[f->acct]) != 0 || x == NULL ||
                   strcmp(PQgetvalue(res, 0, 3), x->t.cp_account) != 0 ||
                   strcmp(PQgetvalue(res, 0, 4), x->t.name) != 0) {
            diff(d, "refund %s: %s %s fen of %s to %s (%s); model %s %" PRId64 " of %s to %s (%s)",
                 f->id, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                 PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4), f->state, f->amount, M.acct[f->acct],
                 x != NULL ? x->t.cp_account : "?", x != NULL ? x->t.name : "?");
        }
        PQclear(res);
    }
    int64_t n = tl_pg_i64("SELECT count(*) FROM refund_requests", 0, NULL);
    if (n != R.nrefunds) {
        diff(d, "%" PRId64 " refund requests, model %d", n, R.nrefunds);
    }
    for (int a = 0; a < REFUND_ACCTS; a++) {
        const char *p[2] = {M.orders[R.lot_order[a]].code, M.acct[a]};
        PGresult *res = tl_pg_query("SELECT left_fen, (SELECT sum(left_fen) FROM credit_lots "
                                    "WHERE account_id = $2) FROM credit_lots WHERE order_code = $1",
                                    2, p);
        int64_t bal = model_balance(a);
        if (PQntuples(res) != 1) {
            diff(d, "lot of order %s: %d lots, want 1", p[0], PQntuples(res));
        } else if (strtoll(PQgetvalue(res, 0, 0), NULL, 10) != R.lot_left[a] ||
                   strtoll(PQgetvalue(res, 0, 1), NULL, 10) != (bal > 0 ? bal : 0)) {
            diff(d, "lot of order %s: left %s (account's lots %s); model %" PRId64 " (%" PRId64 ")",
                 p[0], PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), R.lot_left[a],
                 bal > 0 ? bal : 0);
        }
        PQclear(res);
    }
}

/* topupctl refund <args...> --reason e2e --by e2e-support (args NULL-terminated); returns its
 * exit code, *out its stdout (caller frees). */
static int refund_cmd(char **out, const char *const *args)
{
    const char *argv[16] = {tl_bin("topupctl"), "refund"};
    int n = 2;
    for (int i = 0; args[i] != NULL; i++) {
        TL_CHECK(n < 11);
        argv[n++] = args[i];
    }
    static const char *const tail[] = {"--reason", "e2e", "--by", "e2e-support"};
    for (int i = 0; i < 4; i++) {
        argv[n++] = tail[i];
    }
    argv[n] = NULL;
    return tl_run("topupctl", argv, NULL, out, 30000);
}

static struct m_refund *refund_request(int a, int64_t amount, int want_rc)
{
    char amt[32];
    tl_fen_str(amount, amt, sizeof(amt));
    char *out = NULL;
    const char *const args[] = {"request",  "--order", M.orders[R.lot_order[a]].code,
                                "--amount", amt,       NULL};
    int rc = refund_cmd(&out, args);
    TL_CHECK_MSG(rc == want_rc, "refund request of %s for %s: exit %d, want %d: %s", amt,
                 M.orders[R.lot_order[a]].code, rc, want_rc, out != NULL ? out : "");
    struct m_refund *f = NULL;
    if (rc == 0) {
        TL_CHECK(R.nrefunds < REFUNDS_MAX);
        f = &R.refunds[R.nrefunds++];
        f->acct = a;
        f->order = R.lot_order[a];
        f->amount = amount;
        f->state = "requested";
        TL_CHECK_MSG(sscanf(out, "%31s requested", f->id) == 1 && strncmp(f->id, "RF", 2) == 0,
                     "refund request printed \"%s\"", out);
    }
    free(out);
    return f;
}

static void refund_decide(struct m_refund *f, const char *verb, const char *want_out)
{
    char *out = NULL;
    const char *const args[] = {verb, f->id, NULL};
    int rc = refund_cmd(&out, args);
    TL_CHECK_MSG(rc == 0 && strstr(out, want_out) != NULL, "refund %s %s: exit %d \"%s\"", verb,
                 f->id, rc, out != NULL ? out : "");
    free(out);
    if (strcmp(verb, "approve") == 0 && strcmp(f->state, "approved") != 0) {
        f->state = "approved";
        add_flow(f->acct, "refund", -f->amount, f->id);
        R.lot_left[f->acct] -= f->amount;
    } else if (strcmp(verb, "reject") == 0) {
        f->state = "rejected";
    }
}

static void run_refunds(void)
{
    for (int a = 0; a < REFUND_ACCTS; a++) {
        int64_t debt = -model_balance(a);
        int i = add_order(a, K_REF, NULL, 100000 + 1000 * a);
        struct m_order *o = &M.orders[i];
        create_order(o);
        struct m_txn *x = add_txn(F_REFUND, i, true, o->amount, o->name);
        remit_code(x, o->code, false);
        x->state = "matched";
        o->status = "completed";
        o->credited = o->amount;
        add_flow(a, "recharge", o->amount, o->code);
        R.lot_order[a] = i;
        R.lot_left[a] = debt > 0 ? (o->amount > debt ? o->amount - debt : 0) : o->amount;
    }
    R.active = true;
    write_and_import(F_REFUND, false);
    settle("phase 5a (a credit lot for each refund account)", true);

    struct m_refund *f = refund_request(0, R.lot_left[0] / 2, 0);
    refund_decide(f, "approve", "reservation queued");
    refund_decide(f, "approve", "approved already");
    f = refund_request(1, R.lot_left[1] / 3, 0);
    refund_decide(f, "reject", "rejected");
    refund_request(2, R.lot_left[2], 0);
    refund_request(2, 1, 1);
    f = refund_request(3, R.lot_left[3] - 1, 0);
    refund_decide(f, "approve", "reservation queued");
    refund_request(3, 200, 1);
    tl_step("phase 5: %d refund requests (approved, approved twice, rejected, left requested), "
            "2 refused over the cap",
            R.nrefunds);
    settle("phase 5b (refunds reserved by the ledger)", true);
}

/* One CSV line split at commas outside quotes (quotes kept out); returns the field count. */
static int csv_split(char *line, char *f[], int max)
{
    int n = 0;
    char *w = line;
    f[n++] = w;
    bool q = false;
    for (char *c = line; *c != '\0'; c++) {
        if (*c == '"') {
            q = !q;
        } else if (*c == ',' && !q) {
            *w++ = '\0';
            if (n < max) {
                f[n++] = w;
            }
        } else {
            *w++ = *c;
        }
    }
    *w = '\0';
    return n;
}

struct close_expect {
    const char *kind;
    int64_t count, fen;
    bool seen;
};

static int run_close(const char *csv, char **out)
{
    const char *argv[] = {
        tl_bin("topupctl"), "close", "--date", M.date, "--by", "e2e", "--csv", csv, NULL};
    return tl_run("topupctl", argv, NULL, out, 120000);
}

/* Break kinds the model predicts for the scenario's day: raw bank payouts (no request). */
static int model_raw_payouts(void)
{
    int n = 0;
    for (int i = 0; i < M.nflows; i++) {
        bool req = false;
        for (int k = 0; k < R.nrefunds && !req; k++) {
            req = strcmp(M.flows[i].ref, R.refunds[k].id) == 0;
        }
        n += strcmp(M.flows[i].type, "refund") == 0 && M.flows[i].amount < 0 && !req;
    }
    return n;
}

static void check_close(void)
{
    struct close_expect fig[] = {{"statement_credits", 0, 0, false},
                                 {"matched_records", 0, 0, false},
                                 {"recharge_flows", 0, 0, false},
                                 {"consume", 0, 0, false},
                                 {"refund", 0, 0, false},
                                 {"opening", 0, 0, false},
                                 {"closing", 0, 0, false},
                                 {"refunds_approved", 0, 0, false},
                                 {"refunds_sent", 0, 0, false},
                                 {"refunds_paid_out", 0, 0, false},
                                 {"refunds_failed", 0, 0, false},
                                 {"refunds_restored", 0, 0, false},
                                 {"refunds_outstanding", 0, 0, false}};
    int waiting = 0;
    for (int i = 0; i < M.ntxns; i++) {
        const struct m_txn *x = &M.txns[i];
        if (x->file == F_OTHER || x->t.amount_fen <= 0) {
            continue;
        }
        fig[0].count++;
        fig[0].fen += x->t.amount_fen;
        if (strcmp(x->state, "matched") == 0) {
            fig[1].count++;
            fig[1].fen += x->t.amount_fen;
        } else {
            waiting++; /* review (cancelled order, ambiguous): unmatched funds, age 0 */
        }
    }
    for (int i = 0; i < M.nflows; i++) {
        const struct m_flow *f = &M.flows[i];
        int k = strcmp(f->type, "recharge") == 0 ? 2 : strcmp(f->type, "consume") == 0 ? 3 : 4;
        fig[k].count += k == 2;
        fig[k].fen += f->amount;
        fig[6].fen += f->amount;
    }
    for (int i = 0; i < R.nrefunds; i++) {
        if (strcmp(R.refunds[i].state, "approved") == 0) {
            fig[7].count++;
            fig[7].fen += R.refunds[i].amount;
        }
    }
    int raw = model_raw_payouts();
    char csv[TL_PATH_MAX];
    snprintf(csv, sizeof(csv), "%s/close-%s.csv", tl_logdir(), M.date);
    char *out = NULL;
    int rc = run_close(csv, &out);
    TL_CHECK_MSG(rc == (raw > 0 ? 1 : 0), "topupctl close --date %s: exit %d, model %d\n%s", M.date,
                 rc, raw > 0 ? 1 : 0, out != NULL ? out : "");
    TL_CHECK_MSG(strstr(out, "\nstored close ") != NULL, "the close was not stored:\n%s", out);
    free(out);
    size_t len = 0;
    char *text = tl_read_file(csv, &len);
    int accounts = 0, breaks = 0, waiting_rows = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char *f[24];
        int n = csv_split(line, f, 24);
        if (strcmp(f[0], "date") == 0) {
            continue;
        }
        TL_CHECK_MSG(n == 19 && strcmp(f[0], M.date) == 0, "close CSV line of %d fields: %s", n,
                     line);
        if (strcmp(f[1], "figure") == 0) {
            bool known = false;
            for (size_t k = 0; k < sizeof(fig) / sizeof(fig[0]); k++) {
                if (strcmp(fig[k].kind, f[2]) != 0) {
                    continue;
                }
                known = fig[k].seen = true;
                TL_CHECK_MSG(strtoll(f[8], NULL, 10) == fig[k].fen &&
                                 strtoll(f[10], NULL, 10) == fig[k].count,
                             "close figure %s: %s fen, count %s; model %" PRId64
                             " fen, count %" PRId64,
                             f[2], f[8], f[10], fig[k].fen, fig[k].count);
            }
            TL_CHECK_MSG(known, "close figure %s not in the model", f[2]);
        } else if (strcmp(f[1], "account") == 0) {
            int a = -1;
            for (int k = 0; k < ACCOUNTS && a < 0; k++) {
                a = strcmp(M.acct[k], f[3]) == 0 ? k : -1;
            }
            TL_CHECK_MSG(a >= 0, "close roll-forward of an account not in the scenario: %s", f[3]);
            int64_t want[4] = {0, 0, 0, 0}; /* recharge, consume, refund, closing */
            for (int i = 0; i < M.nflows; i++) {
                if (M.flows[i].acct == a) {
                    const char *t = M.flows[i].type;
                    want[strcmp(t, "recharge") == 0  ? 0
                         : strcmp(t, "consume") == 0 ? 1
                                                     : 2] += M.flows[i].amount;
                    want[3] += M.flows[i].amount;
                }
            }
            TL_CHECK_MSG(
                strcmp(f[12], "0") == 0 && strtoll(f[13], NULL, 10) == want[0] &&
                    strtoll(f[14], NULL, 10) == want[1] && strtoll(f[15], NULL, 10) == want[2] &&
                    strtoll(f[16], NULL, 10) == want[3],
                "close roll-forward of %s: %s + %s %s %s = %s; model 0 + %" PRId64 " %" PRId64
                " %" PRId64 " = %" PRId64,
                f[3], f[12], f[13], f[14], f[15], f[16], want[0], want[1], want[2], want[3]);
            accounts++;
        } else if (strcmp(f[1], "unmatched") == 0) {
            TL_CHECK_MSG(strcmp(f[11], "0") == 0, "unmatched credit of age %s: %s", f[11], line);
            waiting_rows++;
        } else if (strcmp(f[1], "break") == 0) {
            TL_CHECK_MSG(strcmp(f[2], "refund_payout_without_request") == 0,
                         "close break the model does not predict: %s", line);
            breaks++;
        } else if (strcmp(f[1], "refund") == 0) {
            TL_CHECK_MSG(strcmp(f[2], "approved") == 0, "close refund row: %s", line);
        }
    }
    free(text);
    for (size_t k = 0; k < sizeof(fig) / sizeof(fig[0]); k++) {
        TL_CHECK_MSG(fig[k].seen, "close CSV lacks figure %s", fig[k].kind);
    }
    TL_CHECK_MSG(accounts == ACCOUNTS && breaks == raw && waiting_rows == waiting,
                 "close: %d roll-forwards, %d breaks, %d unmatched; model %d, %d, %d", accounts,
                 breaks, waiting_rows, ACCOUNTS, raw, waiting);
    tl_step("topupctl close %s: exit %d, %zu figures, %d roll-forwards and %d unmatched credits "
            "equal the model (%d predicted breaks: bank payouts naming no refund request)",
            M.date, rc, sizeof(fig) / sizeof(fig[0]), accounts, waiting, raw);
}

/* A credit AGED_DAYS old that matches nothing, imported for real: the close names it. */
static void check_close_aged_credit(void)
{
    struct tl_txn t;
    memset(&t, 0, sizeof(t));
    snprintf(t.txn_id, sizeof(t.txn_id), "T%sAGED", tl_sfx());
    t.amount_fen = 12345;
    snprintf(t.name, sizeof(t.name), "%s", "无人认领");
    snprintf(t.cp_account, sizeof(t.cp_account), "%s", "6222020099998888");
    snprintf(t.cp_bank, sizeof(t.cp_bank), "%s", "中国银行");
    snprintf(t.remittance, sizeof(t.remittance), "%s", "货款");
    tl_shanghai_date(t.value_date, -AGED_DAYS);
    char path[TL_PATH_MAX];
    snprintf(path, sizeof(path), "%s/stmt-aged.csv", tl_logdir());
    tl_stmt_write(TL_STMT_CSV_CMB, path, RECEIVING_ACCOUNT, &t, 1);
    char *out = NULL;
    int rc = tl_import(path, tl_stmt_import_args(TL_STMT_CSV_CMB, RECEIVING_ACCOUNT), &out);
    TL_CHECK_MSG(rc == 0, "statement-import of the aged credit: exit %d", rc);
    free(out);
    const char *p[1] = {t.txn_id};
    tl_pg_wait_i64("the aged credit stored by reconciliation",
                   "SELECT count(*) FROM statement_records WHERE bank_txn_id = $1 AND state IN "
                   "('unmatched', 'review')",
                   1, p, 1, SETTLE_MS);
    int64_t id = tl_pg_i64("SELECT id FROM statement_records WHERE bank_txn_id = $1", 1, p);
    char csv[TL_PATH_MAX];
    snprintf(csv, sizeof(csv), "%s/close-%s-aged.csv", tl_logdir(), M.date);
    rc = run_close(csv, &out);
    char want[256];
    snprintf(want, sizeof(want),
             "break credit_not_matched: record_id=%" PRId64 " bank_txn_id=%s amount_fen=12345 "
             "age_days=%d",
             id, t.txn_id, AGED_DAYS);
    TL_CHECK_MSG(rc == 1 && strstr(out, want) != NULL,
                 "close after an aged unmatched credit: exit %d, want 1 with \"%s\":\n%s", rc, want,
                 out);
    /* Booked ten days ago, it is not the day's credit: the stored day is unchanged. */
    TL_CHECK_MSG(strstr(out, "\nunchanged: ") != NULL, "closing the day again changed it:\n%s",
                 out);
    free(out);
    tl_step("an unmatched credit of %d days, imported for real: close exit 1, credit_not_matched "
            "record %" PRId64 " with its age; the stored day unchanged",
            AGED_DAYS, id);
}

/* ------------------------------------------------------------------ scenario */

/* Each late transfer waits in review (late_order); support matches it to its order by hand. */
static void match_late_by_hand(void)
{
    for (int i = 0; i < M.ntxns; i++) {
        struct m_txn *x = &M.txns[i];
        if (x->file != F_LATE) {
            continue;
        }
        struct m_order *o = &M.orders[x->order];
        const char *p[1] = {x->t.txn_id};
        int64_t id = tl_pg_i64("SELECT q.id FROM review_queue q JOIN statement_records r ON "
                               "r.id = q.record_id WHERE r.bank_txn_id = $1 AND q.status = 'open' "
                               "AND q.reason = 'late_order'",
                               1, p);
        char ids[32];
        snprintf(ids, sizeof(ids), "%" PRId64, id);
        const char *argv[] = {tl_bin("topupctl"),
                              "review",
                              "match",
                              ids,
                              "--order",
                              o->code,
                              "--actor",
                              "e2e-support",
                              "--reason",
                              "the payer phoned: this transfer pays the order made afterwards",
                              NULL};
        char *out = NULL;
        int rc = tl_run("topupctl", argv, NULL, &out, TOOL_MS);
        TL_CHECK_MSG(rc == 0, "topupctl review match %s --order %s: exit %d: %s", ids, o->code, rc,
                     out != NULL ? out : "");
        free(out);
        x->state = "matched"; /* the review item stays, resolved: the reason is kept */
        o->status = "completed";
        o->credited = o->amount;
        add_flow(o->acct, "recharge", o->credited, o->code);
    }
}

static void check_isolation(void)
{
    /* Accounts see only their own orders: another account's code is a 404. */
    char path[128];
    snprintf(path, sizeof(path), "/v1/topup-orders/%s", M.orders[0].code);
    struct tl_http_resp r;
    int st = tl_http(M.intake.port, "GET", path, M.token[1], NULL, NULL, &r, HTTP_MS);
    TL_CHECK_MSG(st == 404, "account 1 reads account 0's order: HTTP %d, want 404", st);
    tl_http_free(&r);
    /* And the list of each account holds exactly its own orders. */
    for (int a = 0; a < ACCOUNTS; a++) {
        st = tl_http(M.intake.port, "GET", "/v1/topup-orders?limit=100", M.token[a], NULL, NULL, &r,
                     HTTP_MS);
        TL_CHECK_MSG(st == 200, "list orders: HTTP %d", st);
        const json_t *list = json_object_get(r.json, "orders");
        size_t want = 0;
        for (int i = 0; i < M.norders; i++) {
            want += M.orders[i].acct == a && M.orders[i].code[0] != '\0';
        }
        TL_CHECK_MSG(json_array_size(list) == want, "%s lists %zu orders, model %zu", M.acct[a],
                     json_array_size(list), want);
        for (size_t k = 0; k < json_array_size(list); k++) {
            const char *code = tl_json_str(json_array_get(list, k), "code");
            bool mine = false;
            for (int i = 0; i < M.norders && !mine; i++) {
                mine = M.orders[i].acct == a && strcmp(M.orders[i].code, code) == 0;
            }
            TL_CHECK_MSG(mine, "%s lists order %s that is not its own", M.acct[a], code);
        }
        tl_http_free(&r);
    }
}

static void check_dead_letters(void)
{
    int64_t n = tl_kafka_topic_size("usage.recorded.dlq");
    TL_CHECK_MSG(n == 1, "usage.recorded.dlq holds %" PRId64 " messages, want 1 (the malformed)",
                 n);
    static const char *const clean[] = {"payment.matched.dlq",        "refund.issued.dlq",
                                        "bank.statement.records.dlq", "topup.requested.dlq",
                                        "topup.cancelled.dlq",        NULL};
    for (int i = 0; clean[i] != NULL; i++) {
        n = tl_kafka_topic_size(clean[i]);
        TL_CHECK_MSG(n == 0, "%s holds %" PRId64 " messages, want 0", clean[i], n);
    }
}

int main(void)
{
    tl_init("e2e_scenario");
    tl_shanghai_date(M.date, 0);
    files[F_CSV] = (struct m_file){TL_STMT_CSV_CMB, RECEIVING_ACCOUNT, ""};
    files[F_CSV_GBK] = (struct m_file){TL_STMT_CSV_CMB_GBK, RECEIVING_ACCOUNT, ""};
    files[F_MT940] = (struct m_file){TL_STMT_MT940, RECEIVING_ACCOUNT, ""};
    files[F_CAMT] = (struct m_file){TL_STMT_CAMT053, RECEIVING_ACCOUNT, ""};
    files[F_OTHER] = (struct m_file){TL_STMT_MT940, OTHER_ACCOUNT, ""};
    files[F_OVERLAP] = (struct m_file){TL_STMT_CAMT053, RECEIVING_ACCOUNT, ""};
    files[F_LATE] = (struct m_file){TL_STMT_CSV_CMB, RECEIVING_ACCOUNT, ""};
    files[F_REFUND] = (struct m_file){TL_STMT_CSV_CMB, RECEIVING_ACCOUNT, ""};

    start_system();
    M.producer = tl_producer_new("e2e-gateway");
    for (int a = 0; a < ACCOUNTS; a++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "e2e-%02d", a);
        tl_id(M.acct[a], prefix);
        M.token[a] = tl_token(M.acct[a]);
    }

    /* Phase 1: orders over HTTP (all but the late ones), cancellations, the first usage. */
    plan_orders();
    for (int i = 0; i < M.norders; i++) {
        if (M.orders[i].kind != K_LATE) {
            create_order(&M.orders[i]);
        }
        if (M.orders[i].payer) {
            tl_payer_add(M.acct[M.orders[i].acct], M.orders[i].name);
        }
    }
    check_idempotency(&M.orders[0]);
    for (int i = 0; i < M.norders; i++) {
        if (M.orders[i].kind == K_CANCEL || M.orders[i].kind == K_CANCEL_TX) {
            cancel_order(&M.orders[i]);
        }
    }
    tl_step("phase 1: %d orders created over HTTP for %d accounts, cancellations done", M.norders,
            ACCOUNTS);
    produce_usage(0);

    /* Phase 2: statements in every format, the late transfers among them. */
    plan_transfers();
    for (int i = 0; i < M.ntxns; i++) {
        M.txns[i].late = false;
    }
    /* The late transfers go in their own CSV file, imported now; their orders come in phase 3. */
    write_and_import(F_CSV, false);
    write_and_import(F_CSV_GBK, false);
    write_and_import(F_MT940, false);
    write_and_import(F_CAMT, false);
    write_and_import(F_OTHER, false);
    write_and_import(F_LATE, false);
    /* Until their orders exist, the late transfers stay unmatched and credit nothing. */
    for (int i = 0; i < M.ntxns; i++) {
        M.txns[i].late = M.txns[i].file == F_LATE;
    }
    settle("phase 2 (orders, statements, first usage)", false);

    /* Phase 3: the late orders, more usage, a re-import and an overlapping statement. */
    for (int i = 0; i < M.norders; i++) {
        struct m_order *o = &M.orders[i];
        if (o->kind == K_LATE) {
            create_order(o);
        }
    }
    for (int i = 0; i < M.ntxns; i++) {
        M.txns[i].late = false;
    }
    produce_usage(1);
    char *out = NULL;
    int rc =
        tl_import(files[F_CSV].path, tl_stmt_import_args(TL_STMT_CSV_CMB, RECEIVING_ACCOUNT), &out);
    TL_CHECK_MSG(rc == 3, "second import of the same file: exit %d, want 3 (already imported)", rc);
    free(out);
    /* The overlapping statement repeats a camt transfer already credited, plus a new one. */
    int repeated = -1;
    for (int i = 0; i < M.ntxns && repeated < 0; i++) {
        if (M.txns[i].file == F_CAMT && strcmp(M.txns[i].state, "matched") == 0) {
            repeated = i;
        }
    }
    TL_CHECK(repeated >= 0);
    TL_CHECK(M.ntxns < TXNS_MAX);
    M.txns[M.ntxns] = M.txns[repeated];
    M.txns[M.ntxns].file = F_OVERLAP;
    M.ntxns++;
    write_and_import(F_OVERLAP, false);
    M.ntxns--; /* the repeated transfer is one record, already in the model */
    for (int i = 0; i < M.ntxns; i++) {
        struct m_txn *x = &M.txns[i];
        if (x->deferred) {
            struct m_order *o = &M.orders[x->order];
            x->deferred = false;
            o->status = "completed";
            o->credited = o->amount;
            add_flow(o->acct, "recharge", o->credited, o->code);
        }
    }
    settle("phase 3 (late orders, more usage, re-import, overlap)", true);

    /* Phase 4: support matches the late transfers by hand (topupctl review match, audited). */
    match_late_by_hand();
    settle("phase 4 (late transfers matched by support)", true);

    /* Phase 5: refund requests, approvals and a rejection through topupctl. */
    run_refunds();

    check_isolation();
    check_dead_letters();
    rc = tl_verify(&out);
    TL_CHECK_MSG(rc == 0, "topupctl verify: exit %d\n%s", rc, out);
    tl_step("topupctl verify: %s", strtok(out, "\n"));
    free(out);
    check_close();
    check_close_aged_credit();

    int64_t total = 0;
    for (int i = 0; i < M.nflows; i++) {
        total += M.flows[i].amount;
    }
    tl_step("PASS: %d accounts, %d orders, %d transfers in 4 formats (+other account, late, "
            "overlap), %d flows, net %" PRId64 " fen; every balance, flow, order status and "
            "record state equals the model",
            ACCOUNTS, M.norders, M.ntxns, M.nflows, total);
    tl_producer_free(M.producer);
    static struct tl_proc *const stop[] = {&M.intake.proc, &M.recon, &M.ledger};
    for (int i = 0; i < 3; i++) {
        int64_t ms = 0;
        int code = tl_proc_stop(stop[i], SIGTERM, 15000, &ms);
        TL_CHECK_MSG(code == 0, "%s: SIGTERM exit %d after %" PRId64 " ms", stop[i]->name, code,
                     ms);
        tl_step("%s stopped by SIGTERM: exit 0 in %" PRId64 " ms", stop[i]->name, ms);
    }
    tl_proc_kill_all();
    return 0;
}
