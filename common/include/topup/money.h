/* Money: decimal strings <-> int64 fen, with overflow and format checks. No floating point. */
#ifndef TOPUP_MONEY_H
#define TOPUP_MONEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "topup/error.h"

/* Longest formatted amount: "-92233720368547758.08" plus NUL. */
#define MONEY_STR_MAX 24

/*
 * Strict API form: "100", "100.5", "100.00". Digits, at most one '.', at most two decimals,
 * no sign, no spaces, no exponent, no leading '+', no empty integer part (".5"), no trailing '.'.
 * Leading zeros are refused except a single "0" ("0.50"). Returns TP_INVALID with a message
 * for anything else, including values that overflow int64 fen.
 */
enum tp_status money_parse(const char *s, int64_t *fen_out, struct tp_error *err) TP_MUST_CHECK;

/*
 * Lenient form for bank files: optional sign ('+' or '-', also U+FF0B/U+FF0D already folded by the
 * caller), thousands separators ',' (when dec_sep is '.') or '.' / ' ' (when dec_sep is ','),
 * decimal separator dec_sep ('.' or ','), up to max_decimals decimals; extra decimals are accepted
 * only when they are zeros ("12.3400"). "672," (MT940) is 672.00. Surrounding spaces and tabs are
 * ignored. len is the length of s (s need not be NUL-terminated).
 */
enum tp_status money_parse_lenient(const char *s, size_t len, char dec_sep, int64_t *fen_out,
                                   struct tp_error *err) TP_MUST_CHECK;

/* Formats fen as "-1234.50" into buf (MONEY_STR_MAX bytes). Returns buf. */
char *money_format(int64_t fen, char buf[MONEY_STR_MAX]);

/* Checked arithmetic: false on overflow, *out untouched. */
bool money_add(int64_t a, int64_t b, int64_t *out) TP_MUST_CHECK;
bool money_sub(int64_t a, int64_t b, int64_t *out) TP_MUST_CHECK;

#endif
