/* Column profiles of Chinese bank CSV exports: built-in banks and custom profiles from a file. */
#include "csv_profiles.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "topup/mem.h"

/*
 * Header names are written as text_normalize_header() leaves them: NFKC (ASCII brackets), no
 * blanks, no "[English]" annotation, no "(元)" or "/元", ASCII lower case. A unit test checks it.
 * Sources: the sample exports in shared/samples/cn-csv, the corporate header templates listed in
 * corporate-export-headers.txt, and the personal exports documented by double-entry-generator.
 */
#define ACCOUNT_LABELS  "账号|卡号|账户号|查询账号|存款账号|银行账号|卡号/账号|账户|本方账号"
#define CURRENCY_LABELS "币种|币别|账户币种|货币"
#define FLAG_CREDIT     "贷|收|来账|转入|存入|入账|c|cr|credit|+"
#define FLAG_DEBIT      "借|支|往账|转出|支取|出账|d|dr|debit|-"

#define PROFILE_DEFAULTS                                                                           \
    .account_labels = ACCOUNT_LABELS, .currency_labels = CURRENCY_LABELS,                          \
    .flag_credit = FLAG_CREDIT, .flag_debit = FLAG_DEBIT

static const struct csv_profile csv_builtin[] = {
    {
        .name = "icbc-personal",
        .description = "ICBC personal account detail (明细查询文件下载), both layouts",
        .columns =
            {
                [CF_TXN_DATE] = "交易日期",
                [CF_CREDIT] = "记账金额(收入)",
                [CF_DEBIT] = "记账金额(支出)",
                [CF_CURRENCY] = "记账币种",
                [CF_BALANCE] = "余额",
                [CF_CP_NAME] = "对方户名",
                [CF_CP_ACCOUNT] = "对方账户",
                [CF_REMITTANCE] = "摘要|交易详情",
            },
        PROFILE_DEFAULTS,
    },
    {
        .name = "icbc-corporate",
        .description =
            "ICBC corporate history detail ([HISTORYDETAIL] and 借方/贷方发生额 layouts)",
        .columns =
            {
                [CF_TXN_DATE] = "交易时间|日期",
                [CF_FLAG] = "借贷标志|借/贷",
                [CF_CREDIT] = "转入金额|贷方发生额",
                [CF_DEBIT] = "转出金额|借方发生额",
                [CF_BALANCE] = "余额",
                [CF_CP_NAME] = "对方单位|对方单位名称|对方户名",
                [CF_CP_ACCOUNT] = "对方账号",
                [CF_CP_BANK] = "对方行号",
                [CF_REMITTANCE] = "用途|摘要|附言|个性化信息|回单个性化信息",
                [CF_OWN_ACCOUNT] = "本方账号",
            },
        PROFILE_DEFAULTS,
    },
    {
        .name = "ccb-personal",
        .description = "CCB personal account detail (交易金额 signed, 对方账号与户名)",
        .columns =
            {
                [CF_BOOKING_DATE] = "记账日",
                [CF_TXN_DATE] = "交易日期",
                [CF_AMOUNT] = "交易金额",
                [CF_BALANCE] = "账户余额",
                [CF_CURRENCY] = "币别|币种",
                [CF_CP_COMBINED] = "对方账号与户名",
                [CF_REMITTANCE] = "摘要|交易地点/附言|附言",
            },
        PROFILE_DEFAULTS,
    },
    {
        .name = "ccb-corporate",
        .description = "CCB corporate detail (明细查询结果下载; 借方/贷方 columns, 交易流水号)",
        .columns =
            {
                [CF_BOOKING_DATE] = "记账日期",
                [CF_TIME] = "交易时间",
                [CF_DEBIT] = "借方发生额(支取)|借方发生额|发生额借方",
                [CF_CREDIT] = "贷方发生额(收入)|贷方发生额|发生额贷方",
                [CF_BALANCE] = "余额",
                [CF_CURRENCY] = "币种",
                [CF_CP_NAME] = "对方户名",
                [CF_CP_ACCOUNT] = "对方账号",
                [CF_CP_BANK] = "对方开户机构",
                [CF_REMITTANCE] = "摘要|备注",
                [CF_TXN_ID] = "账户明细编号-交易流水号",
                [CF_OWN_ACCOUNT] = "本方账号|账号",
            },
        PROFILE_DEFAULTS,
    },
    {
        .name = "boc-personal",
        .description = "BOC personal transaction detail (中国银行交易流水明细单)",
        .columns =
            {
                [CF_BOOKING_DATE] = "记账日期",
                [CF_TIME] = "记账时间",
                [CF_CURRENCY] = "币别",
                [CF_AMOUNT] = "金额",
                [CF_BALANCE] = "余额",
                [CF_CP_NAME] = "对方账户名",
                [CF_CP_ACCOUNT] = "对方卡号/账号",
                [CF_CP_BANK] = "对方开户行",
                [CF_REMITTANCE] = "附言|交易名称",
                [CF_OWN_ACCOUNT] = "借记卡号",
            },
        PROFILE_DEFAULTS,
    },
    {
        .name = "boc-corporate",
        .description = "BOC corporate detail (bilingual headers; payer/payee columns, 来账/往账)",
        .columns =
            {
                [CF_TXN_DATE] = "交易日期",
                [CF_TIME] = "交易时间",
                [CF_VALUE_DATE] = "起息日期",
                [CF_CURRENCY] = "交易货币",
                [CF_AMOUNT] = "交易金额",
                [CF_BALANCE] = "交易后余额",
                [CF_FLAG] = "交易类型",
                [CF_PAYER_NAME] = "付款人名称",
                [CF_PAYER_ACCOUNT] = "付款人账号",
                [CF_PAYER_BANK] = "付款人开户行名",
                [CF_PAYEE_NAME] = "收款人名称",
                [CF_PAYEE_ACCOUNT] = "收款人账号",
                [CF_PAYEE_BANK] = "收款人开户行名",
                [CF_REMITTANCE] = "摘要|用途|交易附言|备注",
                [CF_TXN_ID] = "交易流水号",
            },
        PROFILE_DEFAULTS,
    },
    {
        .name = "cmb-personal",
        .description = "CMB personal account detail (交易金额 signed, 对手信息)",
        .columns =
            {
                [CF_BOOKING_DATE] = "记账日期",
                [CF_CURRENCY] = "货币",
                [CF_AMOUNT] = "交易金额",
                [CF_BALANCE] = "联机余额",
                [CF_CP_COMBINED] = "对手信息",
                [CF_REMITTANCE] = "交易摘要|客户摘要",
            },
        PROFILE_DEFAULTS,
    },
    {
        .name = "cmb-corporate",
        .description = "CMB corporate detail (交易日/起息日, 借方/贷方金额, 流水号)",
        .columns =
            {
                [CF_TXN_DATE] = "交易日",
                [CF_TIME] = "交易时间",
                [CF_VALUE_DATE] = "起息日",
                [CF_DEBIT] = "借方金额",
                [CF_CREDIT] = "贷方金额",
                [CF_BALANCE] = "余额",
                [CF_CP_NAME] = "收(付)方名称",
                [CF_CP_ACCOUNT] = "收(付)方账号",
                [CF_CP_BANK] = "收(付)方开户行名",
                [CF_REMITTANCE] = "用途|业务摘要|其它摘要|扩展摘要",
                [CF_TXN_ID] = "流水号",
            },
        PROFILE_DEFAULTS,
    },
    {
        .name = "abc-personal",
        .description = "ABC personal debit card detail (交易金额 signed, 对手信息)",
        .columns =
            {
                [CF_TXN_DATE] = "交易日期",
                [CF_TIME] = "交易时间",
                [CF_AMOUNT] = "交易金额",
                [CF_BALANCE] = "本次余额",
                [CF_CP_COMBINED] = "对手信息",
                [CF_REMITTANCE] = "交易附言|交易摘要",
            },
        PROFILE_DEFAULTS,
    },
    {
        .name = "abc-corporate",
        .description = "ABC corporate account detail (账户明细; 收入/支出金额)",
        .columns =
            {
                [CF_BOOKING_DATE] = "会计日期",
                [CF_TXN_DATE] = "交易日期",
                [CF_TIME] = "交易时间|交易时间戳",
                [CF_CREDIT] = "收入金额",
                [CF_DEBIT] = "支出金额",
                [CF_BALANCE] = "账户余额|本次余额",
                [CF_CP_NAME] = "对方户名",
                [CF_CP_ACCOUNT] = "对方账号",
                [CF_CP_BANK] = "对方开户行",
                [CF_REMITTANCE] = "交易用途|摘要|交易说明|交易摘要|交易附言",
            },
        PROFILE_DEFAULTS,
    },
    {
        .name = "bocom-personal",
        .description = "BOCOM personal debit card detail (借贷 贷 Cr / 借 Dr)",
        .columns =
            {
                [CF_TXN_DATE] = "交易日期",
                [CF_TIME] = "交易时间",
                [CF_FLAG] = "借贷",
                [CF_AMOUNT] = "交易金额",
                [CF_BALANCE] = "余额",
                [CF_CP_ACCOUNT] = "对方账号",
                [CF_CP_NAME] = "对方户名",
                [CF_REMITTANCE] = "摘要|交易类型",
            },
        PROFILE_DEFAULTS,
    },
    {
        .name = "bocom-corporate",
        .description = "BOCOM corporate detail (发生额 with 借贷标志)",
        .columns =
            {
                [CF_TIME] = "交易时间",
                [CF_AMOUNT] = "发生额",
                [CF_CURRENCY] = "币种",
                [CF_BALANCE] = "余额",
                [CF_CP_ACCOUNT] = "对方账号",
                [CF_CP_NAME] = "对方户名",
                [CF_FLAG] = "借贷标志",
                [CF_REMITTANCE] = "摘要",
            },
        PROFILE_DEFAULTS,
    },
    {
        .name = "generic",
        .description =
            "Other Chinese banks (CIB, SPDB, CMBC, PAB, HXB, PSBC, CBHB, CDB, rural banks)",
        .columns =
            {
                [CF_BOOKING_DATE] = "记账日期|记账日|会计日期|账务日期|账务日",
                [CF_TXN_DATE] = "交易日期|交易日|日期",
                [CF_TIME] = "交易时间|时间",
                [CF_VALUE_DATE] = "起息日|起息日期",
                [CF_AMOUNT] = "交易金额|发生额|金额",
                [CF_CREDIT] =
                    "贷方金额(收入)|贷方金额|贷方发生额|贷方发生额(收入)|收入金额|收入|贷|"
                    "收款金额|转入金额",
                [CF_DEBIT] = "借方金额(支出)|借方金额|借方发生额|借方发生额(支取)|支出金额|支出|借|"
                             "付款金额|转出金额",
                [CF_FLAG] = "借贷标志|收支标识|收入/支出|收入/支出标志|借贷方向|交易方向",
                [CF_BALANCE] = "余额|账户余额|交易后余额|本次余额",
                [CF_CURRENCY] = "币种|币别|货币",
                [CF_CP_NAME] =
                    "对方户名|对方账户名|对方账户名称|对方账号名称|对方名称|对方单位名称|"
                    "对方单位",
                [CF_CP_ACCOUNT] = "对方账号|对方账户|对方账户号",
                [CF_CP_BANK] = "对方银行|对方行名|对方开户行|对方开户机构|对方行名称|对方银行/机构",
                [CF_PAYER_NAME] = "付款户名|付款人名称",
                [CF_PAYER_ACCOUNT] = "付款账号|付款人账号",
                [CF_PAYER_BANK] = "付款方开户行名|付款人开户行名",
                [CF_PAYEE_NAME] = "收款户名|收款人名称",
                [CF_PAYEE_ACCOUNT] = "收款账号|收款人账号",
                [CF_PAYEE_BANK] = "收款方开户行名|收款人开户行名",
                [CF_REMITTANCE] = "摘要|用途|附言|备注|交易附言|客户附言|交易描述|交易说明",
                [CF_TXN_ID] = "交易流水号|银行流水号|核心流水号|交易参考号|账户明细编号-交易流水号",
                [CF_OWN_ACCOUNT] = "本方账号|交易账号",
            },
        PROFILE_DEFAULTS,
        .generic = true,
    },
};

const struct csv_profile *csv_profiles_builtin(int *n)
{
    *n = (int)(sizeof csv_builtin / sizeof csv_builtin[0]);
    return csv_builtin;
}

const struct csv_profile *csv_profiles_find(const struct csv_profile_set *custom, const char *name)
{
    if (custom != NULL) {
        for (int i = 0; i < custom->n; i++) {
            if (strcmp(custom->profiles[i].name, name) == 0) {
                return &custom->profiles[i];
            }
        }
    }
    int n;
    const struct csv_profile *b = csv_profiles_builtin(&n);
    for (int i = 0; i < n; i++) {
        if (strcmp(b[i].name, name) == 0) {
            return &b[i];
        }
    }
    return NULL;
}

static const char *const csv_field_keys[CF_COUNT_] = {
    [CF_NONE] = "",
    [CF_BOOKING_DATE] = "booking_date",
    [CF_TXN_DATE] = "txn_date",
    [CF_VALUE_DATE] = "value_date",
    [CF_TIME] = "time",
    [CF_AMOUNT] = "amount",
    [CF_CREDIT] = "credit",
    [CF_DEBIT] = "debit",
    [CF_FLAG] = "flag",
    [CF_BALANCE] = "balance",
    [CF_CURRENCY] = "currency",
    [CF_CP_NAME] = "counterparty_name",
    [CF_CP_ACCOUNT] = "counterparty_account",
    [CF_CP_BANK] = "counterparty_bank",
    [CF_CP_COMBINED] = "counterparty_combined",
    [CF_PAYER_NAME] = "payer_name",
    [CF_PAYER_ACCOUNT] = "payer_account",
    [CF_PAYER_BANK] = "payer_bank",
    [CF_PAYEE_NAME] = "payee_name",
    [CF_PAYEE_ACCOUNT] = "payee_account",
    [CF_PAYEE_BANK] = "payee_bank",
    [CF_REMITTANCE] = "remittance",
    [CF_TXN_ID] = "txn_id",
    [CF_OWN_ACCOUNT] = "own_account",
};

const char *csv_field_key(enum csv_field f)
{
    return (f > CF_NONE && f < CF_COUNT_) ? csv_field_keys[f] : "";
}

bool csv_list_has(const char *list, const char *name, size_t name_len)
{
    if (list == NULL) {
        return false;
    }
    const char *p = list;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (len == name_len && memcmp(p, name, len) == 0) {
            return true;
        }
        if (bar == NULL) {
            return false;
        }
        p = bar + 1;
    }
}

bool csv_list_prefix(const char *list, const char *value, size_t value_len)
{
    if (list == NULL || value_len == 0) {
        return false;
    }
    const char *p = list;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (len > 0 && len <= value_len && memcmp(p, value, len) == 0) {
            return true;
        }
        if (bar == NULL) {
            return false;
        }
        p = bar + 1;
    }
}

/* ---- custom profile files ---- */

/* Normalises every '|'-separated name of value into the arena; NULL when a name is empty. */
static const char *csv_profiles_norm_list(struct arena *a, const char *value, bool headers)
{
    size_t cap = strlen(value) * 2 + 8;
    char *out = arena_alloc(a, cap);
    size_t o = 0;
    const char *p = value;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        const char *s = p;
        size_t n = len;
        text_trim(&s, &n);
        if (n == 0) {
            return NULL;
        }
        if (o > 0) {
            out[o++] = '|';
        }
        if (headers) {
            size_t w = text_normalize_header(s, n, out + o, cap - o);
            if (w == 0) {
                return NULL;
            }
            o += w;
        } else {
            memcpy(out + o, s, n);
            o += n;
        }
        if (bar == NULL) {
            break;
        }
        p = bar + 1;
    }
    out[o] = '\0';
    return out;
}

static bool csv_profiles_name_ok(const char *s)
{
    if (*s == '\0' || strlen(s) >= CSV_PROFILE_NAME_MAX) {
        return false;
    }
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_')) {
            return false;
        }
    }
    return true;
}

/* A profile must be able to give every row a date and an amount. */
static bool csv_profiles_complete(const struct csv_profile *p)
{
    bool date = p->columns[CF_BOOKING_DATE] || p->columns[CF_TXN_DATE] || p->columns[CF_TIME];
    bool amount = p->columns[CF_AMOUNT] || p->columns[CF_CREDIT] || p->columns[CF_DEBIT];
    return date && amount;
}

static enum tp_status csv_profiles_set_key(struct csv_profile_set *set, struct csv_profile *p,
                                           const char *key, const char *value, const char *name,
                                           int lineno, struct tp_error *err)
{
    struct arena *a = set->arena;
    for (int f = CF_NONE + 1; f < CF_COUNT_; f++) {
        if (strcmp(key, csv_field_keys[f]) == 0) {
            p->columns[f] = csv_profiles_norm_list(a, value, true);
            if (p->columns[f] == NULL) {
                return error_set(err, TP_INVALID, "%s:%d: empty column name in \"%s\"", name,
                                 lineno, value);
            }
            return TP_OK;
        }
    }
    const char **slot = NULL;
    bool headers = true;
    if (strcmp(key, "account_labels") == 0) {
        slot = &p->account_labels;
    } else if (strcmp(key, "currency_labels") == 0) {
        slot = &p->currency_labels;
    } else if (strcmp(key, "flag_credit") == 0) {
        slot = &p->flag_credit;
    } else if (strcmp(key, "flag_debit") == 0) {
        slot = &p->flag_debit;
    } else if (strcmp(key, "description") == 0) {
        p->description = arena_strdup(a, value);
        return TP_OK;
    } else if (strcmp(key, "delimiter") == 0) {
        if (strcmp(value, "tab") == 0 || strcmp(value, "\\t") == 0) {
            p->delimiter = '\t';
        } else if (strlen(value) == 1 && strchr(",;|", value[0]) != NULL) {
            p->delimiter = value[0];
        } else {
            return error_set(err, TP_INVALID,
                             "%s:%d: delimiter must be one of , ; | tab (got \"%s\")", name, lineno,
                             value);
        }
        return TP_OK;
    } else {
        return error_set(err, TP_INVALID,
                         "%s:%d: unknown key \"%s\" (fields: booking_date txn_date value_date time "
                         "amount credit debit flag balance currency counterparty_name "
                         "counterparty_account counterparty_bank counterparty_combined payer_* "
                         "payee_* remittance txn_id own_account; also description delimiter "
                         "account_labels currency_labels flag_credit flag_debit)",
                         name, lineno, key);
    }
    *slot = csv_profiles_norm_list(a, value, headers);
    if (*slot == NULL) {
        return error_set(err, TP_INVALID, "%s:%d: empty value in \"%s\"", name, lineno, value);
    }
    return TP_OK;
}

static enum tp_status csv_profiles_close(const char *name, const struct csv_profile *p,
                                         int start_line, struct tp_error *err)
{
    if (p != NULL && !csv_profiles_complete(p)) {
        return error_set(err, TP_INVALID,
                         "%s:%d: profile \"%s\" needs a date column (booking_date, txn_date or "
                         "time) and an amount column (amount, credit or debit)",
                         name, start_line, p->name);
    }
    return TP_OK;
}

struct csv_profile_set *csv_profiles_parse(const char *name, const char *text, size_t len,
                                           struct tp_error *err)
{
    struct csv_profile_set *set = mem_calloc(1, sizeof *set);
    set->arena = arena_new(16 * 1024);
    struct csv_profile *cur = NULL;
    int cur_line = 0;
    int lineno = 0;
    size_t pos = 0;
    char line[1024];
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
        const char *s = text + pos;
        pos += n + (nl != NULL ? 1 : 0);
        lineno++;
        text_trim(&s, &n);
        if (n == 0 || s[0] == '#' || s[0] == ';') {
            continue;
        }
        if (n >= sizeof line) {
            error_set(err, TP_INVALID, "%s:%d: line too long", name, lineno);
            goto fail;
        }
        memcpy(line, s, n);
        line[n] = '\0';
        if (line[0] == '[') {
            if (csv_profiles_close(name, cur, cur_line, err) != TP_OK) {
                goto fail;
            }
            char pname[CSV_PROFILE_NAME_MAX + 1];
            if (line[n - 1] != ']' || sscanf(line, "[profile %48[^] ]]", pname) != 1 ||
                !csv_profiles_name_ok(pname)) {
                error_set(err, TP_INVALID,
                          "%s:%d: expected \"[profile NAME]\" with NAME of a-z 0-9 - _", name,
                          lineno);
                goto fail;
            }
            if (csv_profiles_find(set, pname) != NULL) {
                error_set(err, TP_INVALID, "%s:%d: profile \"%s\" is declared twice", name, lineno,
                          pname);
                goto fail;
            }
            if (set->n == CSV_CUSTOM_PROFILES_MAX) {
                error_set(err, TP_INVALID, "%s:%d: more than %d profiles", name, lineno,
                          CSV_CUSTOM_PROFILES_MAX);
                goto fail;
            }
            cur = &set->profiles[set->n++];
            memset(cur, 0, sizeof *cur);
            /* csv_profiles_name_ok() checked that the name fits. */
            memcpy(cur->name, pname, strlen(pname) + 1);
            cur->description = "custom profile";
            cur->account_labels = ACCOUNT_LABELS;
            cur->currency_labels = CURRENCY_LABELS;
            cur->flag_credit = FLAG_CREDIT;
            cur->flag_debit = FLAG_DEBIT;
            cur->custom = true;
            cur_line = lineno;
            continue;
        }
        char *eq = strchr(line, '=');
        if (eq == NULL) {
            error_set(err, TP_INVALID, "%s:%d: expected \"key = value\"", name, lineno);
            goto fail;
        }
        if (cur == NULL) {
            error_set(err, TP_INVALID, "%s:%d: \"%s\" before any [profile NAME] section", name,
                      lineno, line);
            goto fail;
        }
        *eq = '\0';
        const char *k = line;
        size_t kn = (size_t)(eq - line);
        const char *v = eq + 1;
        size_t vn = strlen(v);
        text_trim(&k, &kn);
        text_trim(&v, &vn);
        char key[64];
        char value[1024];
        if (kn == 0 || kn >= sizeof key || vn == 0) {
            error_set(err, TP_INVALID, "%s:%d: expected \"key = value\"", name, lineno);
            goto fail;
        }
        memcpy(key, k, kn);
        key[kn] = '\0';
        memcpy(value, v, vn);
        value[vn] = '\0';
        if (csv_profiles_set_key(set, cur, key, value, name, lineno, err) != TP_OK) {
            goto fail;
        }
    }
    if (csv_profiles_close(name, cur, cur_line, err) != TP_OK) {
        goto fail;
    }
    if (set->n == 0) {
        error_set(err, TP_INVALID, "%s: no [profile NAME] section", name);
        goto fail;
    }
    return set;
fail:
    csv_profiles_free(set);
    return NULL;
}

struct csv_profile_set *csv_profiles_load(const char *path, struct tp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        error_set(err, TP_INVALID, "cannot open profile file %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = mem_alloc(CSV_PROFILE_FILE_MAX + 1);
    size_t n = fread(buf, 1, CSV_PROFILE_FILE_MAX + 1, f);
    fclose(f);
    struct csv_profile_set *set = NULL;
    if (n > CSV_PROFILE_FILE_MAX) {
        error_set(err, TP_INVALID, "profile file %s is larger than %d bytes", path,
                  CSV_PROFILE_FILE_MAX);
    } else {
        set = csv_profiles_parse(path, buf, n, err);
    }
    free(buf);
    return set;
}

void csv_profiles_free(struct csv_profile_set *set)
{
    if (set == NULL) {
        return;
    }
    arena_free(set->arena);
    free(set);
}
