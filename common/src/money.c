/* Money: decimal strings <-> int64 fen with overflow and format checks, in integers only. */
#include "topup/money.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Accumulates one digit into *v (non-negative), false on overflow. */
static bool money_push_digit(int64_t *v, int d)
{
    if (*v > (INT64_MAX - d) / 10) {
        return false;
    }
    *v = *v * 10 + d;
    return true;
}

static bool money_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

enum tp_status money_parse(const char *s, int64_t *fen_out, struct tp_error *err)
{
    if (s == NULL || *s == '\0') {
        return error_set(err, TP_INVALID, "amount is empty");
    }
    const char *p = s;
    int64_t units = 0;
    int int_digits = 0;
    while (money_is_digit(*p)) {
        if (int_digits == 1 && units == 0) {
            return error_set(err, TP_INVALID, "amount has a leading zero: \"%s\"", s);
        }
        if (!money_push_digit(&units, *p - '0')) {
            return error_set(err, TP_INVALID, "amount is too large");
        }
        int_digits++;
        p++;
    }
    if (int_digits == 0) {
        return error_set(err, TP_INVALID, "amount must start with a digit");
    }
    int64_t cents = 0;
    if (*p == '.') {
        p++;
        int dec = 0;
        while (money_is_digit(*p)) {
            if (dec == 2) {
                return error_set(err, TP_INVALID, "amount has more than two decimals");
            }
            cents = cents * 10 + (*p - '0');
            dec++;
            p++;
        }
        if (dec == 0) {
            return error_set(err, TP_INVALID, "amount has no digits after the decimal point");
        }
        if (dec == 1) {
            cents *= 10;
        }
    }
    if (*p != '\0') {
        return error_set(
            err, TP_INVALID,
            "amount must be a decimal string like \"100.00\" (digits, optional '.', at "
            "most two decimals)");
    }
    if (units > (INT64_MAX - cents) / 100) {
        return error_set(err, TP_INVALID, "amount is too large");
    }
    *fen_out = units * 100 + cents;
    return TP_OK;
}

static bool money_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

enum tp_status money_parse_lenient(const char *s, size_t len, char dec_sep, int64_t *fen_out,
                                   struct tp_error *err)
{
    if (dec_sep != '.' && dec_sep != ',') {
        return error_set(err, TP_INVALID, "decimal separator must be '.' or ','");
    }
    size_t i = 0;
    size_t end = len;
    while (i < end && money_is_blank(s[i])) {
        i++;
    }
    while (end > i && money_is_blank(s[end - 1])) {
        end--;
    }
    if (i == end) {
        return error_set(err, TP_INVALID, "amount is empty");
    }
    bool negative = false;
    if (s[i] == '+' || s[i] == '-') {
        negative = s[i] == '-';
        i++;
        while (i < end && money_is_blank(s[i])) {
            i++;
        }
    }
    int64_t units = 0;
    int digits = 0;
    int group_len = -1; /* digits since the last thousands separator; -1 before any */
    bool seen_dec = false;
    int64_t frac = 0;
    int frac_digits = 0;
    for (; i < end; i++) {
        char c = s[i];
        if (money_is_digit(c)) {
            if (!seen_dec) {
                if (!money_push_digit(&units, c - '0')) {
                    return error_set(err, TP_INVALID, "amount is too large");
                }
                digits++;
                if (group_len >= 0) {
                    group_len++;
                }
            } else if (frac_digits < 2) {
                frac = frac * 10 + (c - '0');
                frac_digits++;
            } else if (c != '0') {
                return error_set(err, TP_INVALID,
                                 "amount \"%.*s\" has non-zero digits beyond two decimals",
                                 (int)len, s);
            }
            continue;
        }
        if (c == dec_sep && !seen_dec) {
            if (digits == 0 || (group_len >= 0 && group_len != 3)) {
                return error_set(err, TP_INVALID, "amount \"%.*s\" is malformed", (int)len, s);
            }
            seen_dec = true;
            continue;
        }
        bool is_group = !seen_dec && ((dec_sep == '.' && c == ',') ||
                                      (dec_sep == ',' && (c == '.' || c == ' ' || c == '\'')));
        if (is_group) {
            /* A thousands separator follows 1-3 digits first, then exactly 3 each time. */
            if (digits == 0 || (group_len < 0 && digits > 3) ||
                (group_len >= 0 && group_len != 3)) {
                return error_set(err, TP_INVALID, "amount \"%.*s\" has misplaced separators",
                                 (int)len, s);
            }
            group_len = 0;
            continue;
        }
        return error_set(err, TP_INVALID, "amount \"%.*s\" has an unexpected character '%c'",
                         (int)len, s, c);
    }
    if (digits == 0) {
        return error_set(err, TP_INVALID, "amount \"%.*s\" has no digits", (int)len, s);
    }
    if (group_len >= 0 && group_len != 3) {
        return error_set(err, TP_INVALID, "amount \"%.*s\" has misplaced separators", (int)len, s);
    }
    if (frac_digits == 1) {
        frac *= 10;
    }
    if (units > (INT64_MAX - frac) / 100) {
        return error_set(err, TP_INVALID, "amount is too large");
    }
    int64_t v = units * 100 + frac;
    *fen_out = negative ? -v : v;
    return TP_OK;
}

char *money_format(int64_t fen, char buf[MONEY_STR_MAX])
{
    /* Work in unsigned so INT64_MIN formats correctly. */
    uint64_t mag = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
    snprintf(buf, MONEY_STR_MAX, "%s%" PRIu64 ".%02" PRIu64, fen < 0 ? "-" : "", mag / 100,
             mag % 100);
    return buf;
}

bool money_add(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        return false;
    }
    *out = r;
    return true;
}

bool money_sub(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r)) {
        return false;
    }
    *out = r;
    return true;
}
