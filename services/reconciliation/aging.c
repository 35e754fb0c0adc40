/* Business-day arithmetic for aging unmatched records, and the holiday calendar file. */
#include "aging.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "days.h"
#include "topup/mem.h"

void aging_calendar_init(struct aging_calendar *cal)
{
    cal->nholidays = 0;
    cal->nworkdays = 0;
}

static int aging_cmp_day(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a;
    int32_t y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static bool aging_contains(const int32_t *days, int n, int32_t day)
{
    return bsearch(&day, days, (size_t)n, sizeof(*days), aging_cmp_day) != NULL;
}

static bool aging_is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Parses one line (comment already cut off) into cal; lineno for messages. */
static enum tp_status aging_parse_line(struct aging_calendar *cal, const char *s, size_t n,
                                       int lineno, struct tp_error *err)
{
    while (n > 0 && aging_is_blank(s[0])) {
        s++;
        n--;
    }
    while (n > 0 && aging_is_blank(s[n - 1])) {
        n--;
    }
    if (n == 0) {
        return TP_OK;
    }
    int32_t day;
    if (n < 10 || !days_parse(s, 10, &day)) {
        return error_set(err, TP_INVALID, "holidays line %d: expected YYYY-MM-DD, got \"%.*s\"",
                         lineno, (int)(n > 40 ? 40 : n), s);
    }
    const char *rest = s + 10;
    size_t rn = n - 10;
    while (rn > 0 && aging_is_blank(rest[0])) {
        rest++;
        rn--;
    }
    bool workday = false;
    if (rn == 7 && memcmp(rest, "workday", 7) == 0 && rest != s + 10) {
        workday = true;
    } else if (rn != 0) {
        return error_set(err, TP_INVALID,
                         "holidays line %d: only \"workday\" may follow the date, got \"%.*s\"",
                         lineno, (int)(rn > 40 ? 40 : rn), rest);
    }
    if (cal->nholidays + cal->nworkdays >= AGING_CALENDAR_MAX) {
        return error_set(err, TP_INVALID, "holidays line %d: more than %d entries", lineno,
                         AGING_CALENDAR_MAX);
    }
    if (workday) {
        if (days_weekday(day) < 5) {
            return error_set(err, TP_INVALID,
                             "holidays line %d: %.10s is a weekday, \"workday\" is for weekends",
                             lineno, s);
        }
        cal->workdays[cal->nworkdays++] = day;
    } else {
        cal->holidays[cal->nholidays++] = day;
    }
    return TP_OK;
}

enum tp_status aging_calendar_parse(struct aging_calendar *cal, const char *text, size_t len,
                                    struct tp_error *err)
{
    enum tp_status st = TP_OK;
    aging_calendar_init(cal);
    size_t i = 0;
    int lineno = 0;
    while (i < len) {
        lineno++;
        size_t end = i;
        while (end < len && text[end] != '\n') {
            end++;
        }
        size_t stop = i;
        while (stop < end && text[stop] != '#') {
            stop++;
        }
        st = aging_parse_line(cal, text + i, stop - i, lineno, err);
        if (st != TP_OK) {
            aging_calendar_init(cal);
            goto out;
        }
        i = end + 1;
    }
    qsort(cal->holidays, (size_t)cal->nholidays, sizeof(int32_t), aging_cmp_day);
    qsort(cal->workdays, (size_t)cal->nworkdays, sizeof(int32_t), aging_cmp_day);
out:
    return st;
}

enum tp_status aging_calendar_load(struct aging_calendar *cal, const char *path,
                                   struct tp_error *err)
{
    enum tp_status st = TP_OK;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        st = error_set(err, TP_INVALID, "cannot open holidays file %s", path);
        goto out;
    }
    buf = mem_alloc(AGING_FILE_MAX + 1);
    size_t n = fread(buf, 1, AGING_FILE_MAX + 1, f);
    if (ferror(f)) {
        st = error_set(err, TP_INVALID, "cannot read holidays file %s", path);
        goto out;
    }
    if (n > AGING_FILE_MAX) {
        st = error_set(err, TP_INVALID, "holidays file %s is larger than %d bytes", path,
                       AGING_FILE_MAX);
        goto out;
    }
    st = aging_calendar_parse(cal, buf, n, err);
out:
    if (f != NULL) {
        fclose(f);
    }
    free(buf);
    return st;
}

bool aging_is_business_day(const struct aging_calendar *cal, int32_t day)
{
    if (days_weekday(day) >= 5) {
        return aging_contains(cal->workdays, cal->nworkdays, day);
    }
    return !aging_contains(cal->holidays, cal->nholidays, day);
}

int32_t aging_add_business_days(const struct aging_calendar *cal, int32_t day, int n)
{
    /* A calendar cannot hold more holidays than entries, so this loop ends within n + max + 2n. */
    int32_t d = day;
    for (int counted = 0; counted < n;) {
        d++;
        if (aging_is_business_day(cal, d)) {
            counted++;
        }
    }
    return d;
}

bool aging_is_due(const struct aging_calendar *cal, int32_t value_day, int n, int32_t today)
{
    return today > aging_add_business_days(cal, value_day, n);
}
