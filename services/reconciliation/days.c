/* Calendar dates as day numbers and the Asia/Shanghai local date of an instant. */
#include "days.h"

/* Howard Hinnant's days_from_civil: exact for the whole proleptic Gregorian calendar. */
int32_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + (int)doe - 719468);
}

void days_to_civil(int32_t day, int *y, int *m, int *d)
{
    int z = (int)day + 719468;
    const int era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned dd = doy - (153 * mp + 2) / 5 + 1;
    const unsigned mm = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)yoe + era * 400 + (mm <= 2);
    *m = (int)mm;
    *d = (int)dd;
}

int days_weekday(int32_t day)
{
    /* 1970-01-01 was a Thursday (3 when Monday is 0). */
    return (int)(((day % 7) + 10) % 7);
}

static int days_in_month(int y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : len[m - 1];
}

static int days_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

bool days_parse(const char *s, size_t len, int32_t *day)
{
    if (s == NULL || len != 10 || s[4] != '-' || s[7] != '-') {
        return false;
    }
    int y = days_digits(s, 4);
    int m = days_digits(s + 5, 2);
    int d = days_digits(s + 8, 2);
    if (y < 1900 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) {
        return false;
    }
    *day = days_from_civil(y, m, d);
    return true;
}

char *days_format(int32_t day, char out[DAYS_STR_LEN])
{
    int y, m, d;
    days_to_civil(day, &y, &m, &d);
    /* Written digit by digit: years outside 0..9999 never come from days_parse. */
    unsigned uy = (unsigned)y % 10000u;
    out[0] = (char)('0' + uy / 1000);
    out[1] = (char)('0' + uy / 100 % 10);
    out[2] = (char)('0' + uy / 10 % 10);
    out[3] = (char)('0' + uy % 10);
    out[4] = '-';
    out[5] = (char)('0' + m / 10);
    out[6] = (char)('0' + m % 10);
    out[7] = '-';
    out[8] = (char)('0' + d / 10);
    out[9] = (char)('0' + d % 10);
    out[10] = '\0';
    return out;
}

int32_t days_local_from_ms(int64_t ms)
{
    const int64_t day_ms = 86400LL * 1000;
    int64_t local = ms + DAYS_SHANGHAI_OFFSET_MS;
    int64_t q = local / day_ms;
    if (local % day_ms < 0) {
        q--; /* floor division for instants before 1970 */
    }
    return (int32_t)q;
}
