/* Text helpers for bank files: trimming, placeholders, full-width folding, dates, header names. */
#ifndef STATEMENT_IMPORT_TEXT_H
#define STATEMENT_IMPORT_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest cell text the helpers fold or normalise; longer input is refused (returns false/0). */
#define TEXT_CELL_MAX 4096

/* Narrows [*s, *s + *n) past leading and trailing blanks: space, tab, CR, LF, U+3000, U+00A0. */
void text_trim(const char **s, size_t *n);

/* True for cells that mean "nothing here": empty, "-", "--", "------", "—", "N/A". */
bool text_is_placeholder(const char *s, size_t n);

/*
 * Folds an amount cell to ASCII for money_parse_lenient(): full-width digits, signs, comma and
 * period become ASCII; currency marks (¥, ￥, 元, "RMB", "CNY") and inner blanks are dropped.
 * A trailing sign ("100.00-") moves to the front. Writes at most cap-1 bytes and a NUL into dst;
 * returns the length, or -1 when dst is too small.
 */
int text_fold_amount(const char *s, size_t n, char *dst, size_t cap);

/* Proleptic Gregorian calendar check; years 1900..2199 only (anything else is a typo). */
bool text_date_valid(int y, int m, int d);

/*
 * Parses a calendar date with an optional time: YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD, YYYYMMDD,
 * YYYY年MM月DD日 (month and day may have one digit where separated), optionally followed by
 * ' ' or 'T' and HH:MM[:SS][.fff] or HHMMSS. Writes "YYYY-MM-DD" to date (11 bytes) and
 * "HH:MM:SS" or "" to time (9 bytes). The whole input must be consumed.
 */
bool text_parse_date(const char *s, size_t n, char date[11], char time[9]);

/* Parses a time of day alone: HH:MM[:SS] or HHMMSS. Writes "HH:MM:SS". */
bool text_parse_time(const char *s, size_t n, char time[9]);

/*
 * Normalises a column header for matching: Unicode NFKC (full-width brackets to ASCII), all
 * blanks removed, a trailing English annotation in square brackets dropped ("交易日期[ Transaction
 * Date ]"), the unit marks "(元)" and "/元" dropped, ASCII lower-cased. Returns the length written
 * to out (NUL-terminated), 0 when the result is empty or does not fit.
 */
size_t text_normalize_header(const char *s, size_t n, char *out, size_t cap);

/*
 * Length of the longest prefix of s that is valid UTF-8. When the invalid part is only an
 * incomplete sequence at the very end, *incomplete is set (the caller may have more bytes).
 */
size_t text_utf8_valid_prefix(const unsigned char *s, size_t n, bool *incomplete);

/* Maps a currency cell ("人民币", "RMB", "CNY", "156", "美元") to ISO 4217; false if unknown. */
bool text_currency_code(const char *s, size_t n, char out[4]);

/* True when s contains sub (bytes). */
bool text_contains(const char *s, size_t n, const char *sub);

#endif
