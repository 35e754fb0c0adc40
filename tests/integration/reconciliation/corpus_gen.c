/* Matching corpus generator: noisy orders and statement records with the true answer for each. */
#include "corpus_gen.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topup/mem.h"

#define HOUR_MS (3600LL * 1000)
#define DAY_MS  (24 * HOUR_MS)

const char *const corpus_scenarios[] = {
    "ref_clean",
    "ref_noisy",
    "ref_amount_differs",
    "ref_mangled_name_fits",
    "ref_mangled_ambiguous",
    "unknown_ref_name_fits",
    "name_variant",
    "equal_amounts_other_accounts",
    "same_name_two_accounts",
    "two_orders_one_account",
    "duplicate",
    "before_order",
    "before_order_too_early",
    "cancelled_then_paid",
    "expired_then_paid",
    "amount_off_by_a_fen",
    "outside_window",
    "intermediary_only",
    "two_references",
    "debit",
    "other_receiving_account",
    "name_not_verified",
};
const size_t corpus_scenario_count = sizeof(corpus_scenarios) / sizeof(corpus_scenarios[0]);

/* Names as people type them on the order; rule 2 compares their normalised forms. */
static const char *const cn_names[] = {
    "张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "黄敏", "赵强", "周杰",     "吴婷",   "徐明",
    "孙丽", "马超", "朱琳", "胡军", "郭涛", "何欢", "高峰", "林峰", "罗敏",     "郑爽",   "梁朝伟",
    "谢娜", "宋佳", "唐嫣", "韩梅", "冯刚", "邓超", "曹操", "彭宇", "欧阳娜娜", "司马光",
};
static const char *const py_names[] = {
    "Zhang Wei", "Wang Fang", "Li Na",     "Liu Yang",
    "Chen Jing", "Yang Lei",  "Huang Min", "Zhao Qiang",
};
static const char *const companies[] = {
    "北京无量科技有限公司",     "上海云帆信息技术有限公司", "深圳市星河数据有限公司",
    "杭州青木网络科技有限公司", "成都蓝海智能科技有限公司",
};
static const char *const minority[] = {"阿依古丽·买买提", "迪丽热巴·迪力木拉提"};
static const char *const prefixes[] = {"支付宝-",  "财付通：", "微信转账-",
                                       "支付宝（", "ALIPAY-",  "银联 "};
static const char *const plain_notes[] = {"充值", "货款", "转账", "网银转账", "API充值", "服务费"};

struct gen {
    uint64_t s;
    const char *tag;
    int seq;        /* for unique ids */
    int64_t amount; /* unique amounts so scenarios never meet by accident */
    struct corpus *c;
};

static uint64_t gen_next(struct gen *g)
{
    /* splitmix64: deterministic for a seed, good enough for test data. */
    uint64_t z = (g->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int gen_int(struct gen *g, int n)
{
    return (int)(gen_next(g) % (uint64_t)n);
}

#define PICK(g, arr) ((arr)[gen_int((g), (int)(sizeof(arr) / sizeof((arr)[0])))])

static const char alphabet[] = "23456789ABCDEFGHJKMNPQRSTWXYZ";

/* A valid reference code drawn from the generator (the check character found by trying). */
static void gen_code(struct gen *g, char out[REFCODE_STR_LEN])
{
    out[0] = 'T';
    out[1] = 'U';
    for (int i = 2; i < REFCODE_LEN - 1; i++) {
        out[i] = alphabet[gen_int(g, 29)];
    }
    out[REFCODE_LEN] = '\0';
    for (int k = 0; k < 29; k++) {
        out[REFCODE_LEN - 1] = alphabet[k];
        if (ids_refcode_valid(out)) {
            return;
        }
    }
    abort(); /* a check character always exists */
}

/* The same code with one body character replaced: the check character refuses it. */
static void gen_mangle(struct gen *g, const char *code, char out[REFCODE_STR_LEN])
{
    memcpy(out, code, REFCODE_STR_LEN);
    int pos = 2 + gen_int(g, REFCODE_LEN - 2);
    char c;
    do {
        c = alphabet[gen_int(g, 29)];
    } while (c == code[pos]);
    out[pos] = c;
}

static int64_t gen_amount(struct gen *g)
{
    /*
     * Custom amounts, unique in the corpus (a step of 37 fen), so that two scenarios never share
     * a name and an amount by accident; the ones that must share, share on purpose. A neighbour
     * off by a fen (amount_off_by_a_fen) can never be another instance's amount either.
     */
    g->amount++;
    return 5000 + 37 * g->amount;
}

static void put_fullwidth(char **o, unsigned c)
{
    unsigned cp = 0xFF00 + (c - 0x20);
    *(*o)++ = (char)(0xE0 | (cp >> 12));
    *(*o)++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *(*o)++ = (char)(0x80 | (cp & 0x3F));
}

/* The code as it shows up in remittance texts: case, spaces, hyphens, full-width, noise. */
static void gen_ref_text(struct gen *g, const char *code, bool noisy, char *out, size_t len)
{
    char form[64];
    char *o = form;
    int style = noisy ? gen_int(g, 6) : 0;
    for (int i = 0; i < REFCODE_LEN; i++) {
        unsigned c = (unsigned char)code[i];
        bool lower = style == 1 || style == 5;
        if (lower && c >= 'A' && c <= 'Z') {
            c += 'a' - 'A';
        }
        if (i == 4 && (style == 2 || style == 5)) {
            *o++ = '-';
        }
        if ((i == 3 || i == 7) && style == 3) {
            *o++ = ' ';
        }
        if (style == 4 || style == 5) {
            put_fullwidth(&o, c);
        } else {
            *o++ = (char)c;
        }
    }
    *o = '\0';
    if (!noisy) {
        snprintf(out, len, "%s %s", PICK(g, plain_notes), form);
        return;
    }
    switch (gen_int(g, 5)) {
    case 0:
        snprintf(out, len, "转账附言:%s/谢谢", form);
        break;
    case 1:
        snprintf(out, len, "REF:%s 网银转账", form);
        break;
    case 2:
        snprintf(out, len, "%s充值", form);
        break;
    case 3:
        snprintf(out, len, "单号%s20240105", form); /* digits glued behind the code */
        break;
    default:
        snprintf(out, len, "API充值 订单号：%s（个人）", form);
        break;
    }
}

/* A remitter name as the bank prints it: same person, different surface. */
static void gen_name_variant(struct gen *g, const char *name, char *out, size_t len)
{
    char fw[CORPUS_TEXT_MAX];
    char *o = fw;
    switch (gen_int(g, 7)) {
    case 0:
        snprintf(out, len, "%s", name);
        break;
    case 1:
        snprintf(out, len, "%s%s", PICK(g, prefixes), name);
        break;
    case 2: /* a space after the first character (the surname of most names) */
        if ((unsigned char)name[0] >= 0xE0 && strlen(name) > 3) {
            snprintf(out, len, "%.3s %s", name, name + 3);
        } else {
            snprintf(out, len, " %s ", name);
        }
        break;
    case 3: /* ideographic spaces around */
        snprintf(out, len, "\xe3\x80\x80%s\xe3\x80\x80", name);
        break;
    case 4: /* full-width Latin where there is Latin */
        for (const char *p = name; *p != '\0' && o < fw + sizeof(fw) - 4; p++) {
            unsigned char c = (unsigned char)*p;
            if (c >= 0x21 && c <= 0x7e) {
                put_fullwidth(&o, c);
            } else if (c == ' ') {
                memcpy(o, "\xe3\x80\x80", 3);
                o += 3;
            } else {
                *o++ = (char)c;
            }
        }
        *o = '\0';
        snprintf(out, len, "%s", fw);
        break;
    case 5: /* upper case Latin, or the name in parentheses */
        if ((unsigned char)name[0] < 0x80) {
            size_t i = 0;
            for (; name[i] != '\0' && i + 1 < len; i++) {
                out[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
            }
            out[i] = '\0';
        } else {
            snprintf(out, len, "(%s)", name);
        }
        break;
    default:
        snprintf(out, len, "%s.", name);
        break;
    }
}

static const char *gen_name(struct gen *g)
{
    switch (gen_int(g, 10)) {
    case 0:
    case 1:
        return PICK(g, py_names);
    case 2:
        return PICK(g, companies);
    case 3:
        return PICK(g, minority);
    default:
        return PICK(g, cn_names);
    }
}

static struct corpus_order *gen_order(struct gen *g, const char *acct, int64_t amount,
                                      const char *name, const char *status)
{
    struct corpus *c = g->c;
    /* gen_scenario reserved room: pointers to earlier orders of a scenario must stay valid. */
    assert(c->n_orders < c->cap_orders);
    struct corpus_order *o = &c->orders[c->n_orders++];
    memset(o, 0, sizeof(*o));
    gen_code(g, o->code);
    snprintf(o->account_id, sizeof(o->account_id), "cp-%s-%s", g->tag, acct);
    o->amount_fen = amount;
    snprintf(o->name, sizeof(o->name), "%s", name);
    o->created_offset_ms = -(int64_t)gen_int(g, 20) * HOUR_MS - 60000;
    o->expires_offset_ms = o->created_offset_ms + 3 * DAY_MS;
    o->status = status;
    return o;
}

/* The state a record without a true order must end in, by scenario. */
static const char *gen_negative_state(const char *scenario)
{
    static const char *const review[] = {"ref_mangled_ambiguous", "same_name_two_accounts",
                                         "cancelled_then_paid",   "expired_then_paid",
                                         "two_references",        "name_not_verified"};
    static const char *const ignored[] = {"debit", "other_receiving_account"};
    for (size_t i = 0; i < sizeof(review) / sizeof(review[0]); i++) {
        if (strcmp(scenario, review[i]) == 0) {
            return "review";
        }
    }
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
        if (strcmp(scenario, ignored[i]) == 0) {
            return "ignored";
        }
    }
    return "unmatched"; /* waits for a fitting order, then ages into review */
}

static struct corpus_record *gen_record(struct gen *g, const char *scenario, int64_t amount,
                                        const char *name, const char *remittance)
{
    struct corpus *c = g->c;
    if (c->n_records == c->cap_records) {
        c->cap_records = c->cap_records ? c->cap_records * 2 : 256;
        c->records = mem_realloc(c->records, c->cap_records * sizeof(*c->records));
    }
    struct corpus_record *r = &c->records[c->n_records++];
    memset(r, 0, sizeof(*r));
    snprintf(r->txn_id, sizeof(r->txn_id), "cp-%s-%06d", g->tag, g->seq++);
    r->amount_fen = amount;
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->remittance, sizeof(r->remittance), "%s", remittance);
    r->scenario = scenario;
    r->state = gen_negative_state(scenario);
    return r;
}

static void truth(struct corpus_record *r, const struct corpus_order *o)
{
    memcpy(r->truth[r->ntruth++], o->code, REFCODE_STR_LEN);
    r->state = "matched";
}

static char *acct(struct gen *g, char buf[16])
{
    snprintf(buf, 16, "a%04d", gen_int(g, 9000) + 1000);
    return buf;
}

/* One instance of scenario k. */
/* Most orders one scenario creates. */
#define GEN_SCENARIO_ORDERS_MAX 4

/*
 * Grows the orders array before a scenario starts, never during one: a scenario holds pointers
 * to the orders it created while creating more, and a realloc in between would leave them
 * dangling (ASan caught exactly that).
 */
static void gen_reserve(struct corpus *c)
{
    if (c->cap_orders - c->n_orders < GEN_SCENARIO_ORDERS_MAX) {
        c->cap_orders = c->cap_orders ? c->cap_orders * 2 : 256;
        c->orders = mem_realloc(c->orders, c->cap_orders * sizeof(*c->orders));
    }
}

static void gen_scenario(struct gen *g, size_t k)
{
    gen_reserve(g->c);
    const char *sc = corpus_scenarios[k];
    char a1[16], a2[16], a3[16], text[CORPUS_TEXT_MAX], name[CORPUS_TEXT_MAX];
    char bad[REFCODE_STR_LEN], code[REFCODE_STR_LEN];
    const char *who = gen_name(g);
    int64_t amount = gen_amount(g);
    struct corpus_order *o, *o2;
    struct corpus_record *r;
    gen_name_variant(g, who, name, sizeof(name));
    if (strcmp(sc, "ref_clean") == 0 || strcmp(sc, "ref_noisy") == 0) {
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        gen_ref_text(g, o->code, sc[4] == 'n', text, sizeof(text));
        /* The payer is often someone else (a colleague, the company): the reference decides. */
        r = gen_record(g, sc, amount, gen_name(g), text);
        truth(r, o);
    } else if (strcmp(sc, "ref_amount_differs") == 0) {
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        gen_ref_text(g, o->code, true, text, sizeof(text));
        r = gen_record(g, sc, amount - 100 + gen_int(g, 50), name, text);
        truth(r, o); /* credited with what arrived, flagged */
    } else if (strcmp(sc, "ref_mangled_name_fits") == 0) {
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        gen_mangle(g, o->code, bad);
        gen_ref_text(g, bad, true, text, sizeof(text));
        r = gen_record(g, sc, amount, name, text);
        truth(r, o); /* rule 2 */
    } else if (strcmp(sc, "ref_mangled_ambiguous") == 0) {
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        gen_order(g, acct(g, a2), amount, who, "pending");
        gen_mangle(g, o->code, bad);
        gen_ref_text(g, bad, false, text, sizeof(text));
        gen_record(g, sc, amount, name, text); /* no truth: review */
    } else if (strcmp(sc, "unknown_ref_name_fits") == 0) {
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        gen_code(g, code); /* valid, but no order has it */
        gen_ref_text(g, code, true, text, sizeof(text));
        r = gen_record(g, sc, amount, name, text);
        truth(r, o);
    } else if (strcmp(sc, "name_variant") == 0) {
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        r = gen_record(g, sc, amount, name, PICK(g, plain_notes));
        truth(r, o);
    } else if (strcmp(sc, "equal_amounts_other_accounts") == 0) {
        const char *w2 = "韩梅梅";
        const char *w3 = "Li Lei";
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        gen_order(g, acct(g, a2), amount, strcmp(who, w2) == 0 ? "马冬梅" : w2, "pending");
        gen_order(g, acct(g, a3), amount, strcmp(who, w3) == 0 ? "Han Meimei" : w3, "pending");
        r = gen_record(g, sc, amount, name, "");
        truth(r, o);
    } else if (strcmp(sc, "same_name_two_accounts") == 0) {
        gen_order(g, acct(g, a1), amount, who, "pending");
        gen_order(g, acct(g, a2), amount, who, "pending");
        gen_record(g, sc, amount, name, "转账");
    } else if (strcmp(sc, "two_orders_one_account") == 0) {
        acct(g, a1);
        o = gen_order(g, a1, amount, who, "pending");
        o2 = gen_order(g, a1, amount, who, "pending");
        for (int i = 0; i < 2; i++) {
            r = gen_record(g, sc, amount, name, "充值");
            truth(r, o);
            truth(r, o2);
        }
    } else if (strcmp(sc, "duplicate") == 0) {
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        gen_ref_text(g, o->code, true, text, sizeof(text));
        r = gen_record(g, sc, amount, name, text);
        truth(r, o);
        struct corpus_record copy = *r;
        r = gen_record(g, sc, amount, name, text);
        *r = copy;
        r->duplicate = true;
    } else if (strcmp(sc, "before_order") == 0 || strcmp(sc, "before_order_too_early") == 0) {
        bool early = sc[12] == '_';
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        o->late = true;
        o->created_offset_ms = 0;
        o->expires_offset_ms = 3 * DAY_MS;
        bool by_ref = gen_int(g, 2) == 0;
        if (by_ref && !early) {
            gen_ref_text(g, o->code, true, text, sizeof(text));
        } else {
            snprintf(text, sizeof(text), "%s", PICK(g, plain_notes));
        }
        r = gen_record(g, sc, amount, name, text);
        r->value_day_offset = early ? -6 : -gen_int(g, 3);
        if (!early && by_ref) {
            truth(r, o);
        } else if (!early) {
            r->state = "review"; /* a late order never collects by name alone: late_order */
        }
    } else if (strcmp(sc, "cancelled_then_paid") == 0 || strcmp(sc, "expired_then_paid") == 0) {
        o = gen_order(g, acct(g, a1), amount, who, sc[0] == 'c' ? "cancelled" : "expired");
        gen_ref_text(g, o->code, true, text, sizeof(text));
        gen_record(g, sc, amount, name, text);
    } else if (strcmp(sc, "amount_off_by_a_fen") == 0) {
        gen_order(g, acct(g, a1), amount, who, "pending");
        gen_record(g, sc, amount + (gen_int(g, 2) ? 1 : -1), name, "充值");
    } else if (strcmp(sc, "outside_window") == 0) {
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        o->created_offset_ms = -9 * DAY_MS; /* expired by the clock, not yet by the expiry job */
        o->expires_offset_ms = -6 * DAY_MS;
        gen_record(g, sc, amount, name, "充值");
    } else if (strcmp(sc, "intermediary_only") == 0) {
        gen_order(g, acct(g, a1), amount, who, "pending");
        gen_record(g, sc, amount, gen_int(g, 2) ? "财付通" : "支付宝（中国）网络技术有限公司", "");
    } else if (strcmp(sc, "two_references") == 0) {
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        o2 = gen_order(g, acct(g, a2), amount + 1, gen_name(g), "pending");
        snprintf(text, sizeof(text), "%s / %s", o->code, o2->code);
        gen_record(g, sc, amount, name, text);
    } else if (strcmp(sc, "debit") == 0) {
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        gen_record(g, sc, -amount, name, o->code);
    } else if (strcmp(sc, "name_not_verified") == 0) {
        /* A squatted name: the account's order fits by name and amount, the name is not its. */
        snprintf(a1, sizeof(a1), "u%04d", gen_int(g, 9000) + 1000);
        o = gen_order(g, a1, amount, who, "pending");
        o->payer_unverified = true;
        gen_record(g, sc, amount, name, PICK(g, plain_notes)); /* review unverified_payer */
    } else {
        o = gen_order(g, acct(g, a1), amount, who, "pending");
        r = gen_record(g, sc, amount, name, o->code);
        r->other_account = true;
    }
}

void corpus_generate(struct corpus *c, uint64_t seed, size_t n, const char *tag)
{
    memset(c, 0, sizeof(*c));
    struct gen g = {.s = seed, .tag = tag, .c = c};
    /* Common cases weigh more; every scenario appears. */
    static const int weight[] = {6, 6, 2, 2, 1, 1, 6, 2, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    _Static_assert(sizeof(weight) / sizeof(weight[0]) ==
                       sizeof(corpus_scenarios) / sizeof(corpus_scenarios[0]),
                   "one weight per scenario");
    int total = 0;
    for (size_t k = 0; k < corpus_scenario_count; k++) {
        total += weight[k];
    }
    while (c->n_records < n) {
        int x = gen_int(&g, total);
        size_t k = 0;
        while (x >= weight[k]) {
            x -= weight[k++];
        }
        gen_scenario(&g, k);
    }
}

void corpus_free(struct corpus *c)
{
    free(c->orders);
    free(c->records);
    memset(c, 0, sizeof(*c));
}
