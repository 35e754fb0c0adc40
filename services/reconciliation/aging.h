/*
 * Business days for aging unmatched records: weekends skipped, an optional holiday list, and
 * make-up working days (a Saturday or Sunday the banks work, as China's holiday schedule has).
 * Everything here is pure except aging_calendar_load(), which only reads the file.
 */
#ifndef RECON_AGING_H
#define RECON_AGING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topup/error.h"

/* Entries (holidays plus make-up working days) a calendar holds; a longer file is refused. */
#define AGING_CALENDAR_MAX 4096
/* Bytes of a holidays file; a larger file is refused. */
#define AGING_FILE_MAX (256 * 1024)
/* Bound of n in aging_add_business_days (RECON_REVIEW_AFTER_BUSINESS_DAYS has the same bound). */
#define AGING_BUSINESS_DAYS_MAX 60

struct aging_calendar {
    int32_t holidays[AGING_CALENDAR_MAX]; /* sorted day numbers */
    int nholidays;
    int32_t workdays[AGING_CALENDAR_MAX]; /* sorted weekend days that are business days */
    int nworkdays;
};

/* An empty calendar: Monday to Friday are business days. */
void aging_calendar_init(struct aging_calendar *cal);

/*
 * Parses a holidays list (len bytes): one entry per line, "YYYY-MM-DD" for a holiday or
 * "YYYY-MM-DD workday" for a weekend day that is a business day; blank lines and text after '#'
 * are ignored. TP_INVALID naming the line for anything else, or beyond AGING_CALENDAR_MAX.
 * cal is left empty on error.
 */
enum tp_status aging_calendar_parse(struct aging_calendar *cal, const char *text, size_t len,
                                    struct tp_error *err) TP_MUST_CHECK;

/* Reads and parses the file at path (at most AGING_FILE_MAX bytes). */
enum tp_status aging_calendar_load(struct aging_calendar *cal, const char *path,
                                   struct tp_error *err) TP_MUST_CHECK;

bool aging_is_business_day(const struct aging_calendar *cal, int32_t day);

/* The n-th business day after day (n >= 0; n = 0 returns day itself). */
int32_t aging_add_business_days(const struct aging_calendar *cal, int32_t day, int n);

/*
 * True when a record with value date value_day, still unmatched on today, has waited more than
 * n business days: today is after the n-th business day following the value date.
 * Example (no holidays, n = 3): value date Friday 2024-01-05 -> the 3rd business day after it is
 * Wednesday 2024-01-10 -> due from Thursday 2024-01-11.
 */
bool aging_is_due(const struct aging_calendar *cal, int32_t value_day, int n, int32_t today);

#endif
