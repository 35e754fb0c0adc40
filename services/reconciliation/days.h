/* Calendar dates as day numbers (days since 1970-01-01) and the Asia/Shanghai local date. */
#ifndef RECON_DAYS_H
#define RECON_DAYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DAYS_STR_LEN 11 /* "YYYY-MM-DD" and NUL */

/* Asia/Shanghai has been UTC+8 without daylight saving since 1991: a fixed offset is exact. */
#define DAYS_SHANGHAI_OFFSET_MS (8LL * 3600 * 1000)

/* Day number of a proleptic Gregorian date (1970-01-01 is 0). m 1..12, d 1..31. */
int32_t days_from_civil(int y, int m, int d);
void days_to_civil(int32_t day, int *y, int *m, int *d);

/* 0 = Monday ... 6 = Sunday. */
int days_weekday(int32_t day);

/*
 * Parses exactly "YYYY-MM-DD" (len bytes, no NUL needed), a real calendar date with year
 * 1900..9999. False for anything else ("2024-02-30", "2024-1-05", " 2024-01-05").
 */
bool days_parse(const char *s, size_t len, int32_t *day);

/* Writes "YYYY-MM-DD" into out; returns out. */
char *days_format(int32_t day, char out[DAYS_STR_LEN]);

/* The Asia/Shanghai calendar date of an instant (ms since the epoch). */
int32_t days_local_from_ms(int64_t ms);

#endif
