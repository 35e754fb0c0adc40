/* Remitter-name normalisation: NFKC, case folding, intermediary prefixes, no spaces/punctuation. */
#include "topup/names.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/*
 * Payment intermediaries that show up as (or in front of) the counterparty name, in their
 * NFKC + case-folded form. Longest first so "微信支付" wins over "微信".
 */
static const char *const names_intermediaries[] = {
    "支付宝(中国)网络技术有限公司",
    "财付通支付科技有限公司",
    "网银在线(北京)科技有限公司",
    "微信支付",
    "微信转账",
    "支付宝",
    "财付通",
    "云闪付",
    "银联",
    "微信",
    "alipay",
    "tenpay",
    "wechatpay",
    "wechat",
    "unionpay",
};

static int names_keep(utf8proc_int32_t cp)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return 1;
    default:
        return 0; /* separators, punctuation, symbols, controls */
    }
}

/* Returns where the name starts after a known intermediary prefix (or s itself). */
static const char *names_skip_intermediary(const char *s)
{
    for (size_t i = 0; i < sizeof(names_intermediaries) / sizeof(names_intermediaries[0]); i++) {
        size_t n = strlen(names_intermediaries[i]);
        if (strncmp(s, names_intermediaries[i], n) == 0) {
            const char *rest = s + n;
            /* Only a real prefix: the whole string, or followed by a separator. */
            if (*rest == '\0') {
                return rest;
            }
            utf8proc_int32_t cp;
            utf8proc_ssize_t w = utf8proc_iterate((const utf8proc_uint8_t *)rest, -1, &cp);
            if (w > 0 && !names_keep(cp)) {
                return rest;
            }
        }
    }
    return s;
}

/* One pass: NFKC + case fold, optionally drop an intermediary prefix, drop non-name characters. */
static enum tp_status names_pass(const char *name, size_t len, int skip_intermediary,
                                 char out[NAMES_NORM_MAX], struct tp_error *err)
{
    enum tp_status st = TP_OK;
    utf8proc_uint8_t *folded = NULL;
    out[0] = '\0';
    utf8proc_ssize_t n = utf8proc_map(
        (const utf8proc_uint8_t *)name, (utf8proc_ssize_t)len, &folded,
        UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE);
    if (n < 0) {
        st = error_set(err, TP_INVALID, "name is not valid UTF-8: %s", utf8proc_errmsg(n));
        goto out;
    }
    const char *p = (const char *)folded;
    if (skip_intermediary) {
        p = names_skip_intermediary(p);
    }
    size_t o = 0;
    while (*p != '\0') {
        utf8proc_int32_t cp;
        utf8proc_ssize_t w = utf8proc_iterate((const utf8proc_uint8_t *)p, -1, &cp);
        if (w <= 0) {
            st = error_set(err, TP_INVALID, "name is not valid UTF-8");
            goto out;
        }
        if (names_keep(cp)) {
            if (o + (size_t)w >= NAMES_NORM_MAX) {
                st = error_set(err, TP_INVALID, "name is longer than %d bytes normalised",
                               NAMES_NORM_MAX - 1);
                goto out;
            }
            memcpy(out + o, p, (size_t)w);
            o += (size_t)w;
        }
        p += w;
    }
    out[o] = '\0';
out:
    if (st != TP_OK) {
        out[0] = '\0';
    }
    free(folded);
    return st;
}

enum tp_status names_normalize(const char *name, size_t len, char out[NAMES_NORM_MAX],
                               struct tp_error *err)
{
    char first[NAMES_NORM_MAX];
    enum tp_status st = names_pass(name, len, 1, first, err);
    if (st != TP_OK) {
        out[0] = '\0';
        return st;
    }
    /*
     * Removing a character can bring a base letter next to a combining mark ("u_\u0309"), which
     * composes differently: a second pass makes the result a fixed point, so an order's name and
     * a bank's rendering of it normalise alike whatever punctuation stood between.
     */
    return names_pass(first, strlen(first), 0, out, err);
}
