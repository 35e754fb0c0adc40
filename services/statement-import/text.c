/* Text helpers for bank files: trimming, placeholders, full-width folding, dates, header names. */
#include "text.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* Byte length of a blank at s (0 when none): ASCII blanks, U+3000, U+00A0. */
static size_t text_blank_at(const unsigned char *s, size_t n)
{
    if (n >= 1 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r' || s[0] == '\n')) {
        return 1;
    }
    if (n >= 3 && s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80) {
        return 3;
    }
    if (n >= 2 && s[0] == 0xC2 && s[1] == 0xA0) {
        return 2;
    }
    return 0;
}

/* Byte length of a blank ending at s + n (0 when none). */
static size_t text_blank_before(const unsigned char *s, size_t n)
{
    if (n >= 1 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) {
        return 1;
    }
    if (n >= 3 && s[n - 3] == 0xE3 && s[n - 2] == 0x80 && s[n - 1] == 0x80) {
        return 3;
    }
    if (n >= 2 && s[n - 2] == 0xC2 && s[n - 1] == 0xA0) {
        return 2;
    }
    return 0;
}

/* Bytes that can start or end a blank: the common case (neither) returns at once. */
static bool text_blank_edge(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0xE3 || c == 0xC2 || c == 0x80 ||
           c == 0xA0;
}

void text_trim(const char **s, size_t *n)
{
    const unsigned char *p = (const unsigned char *)*s;
    size_t len = *n;
    if (len == 0 || (!text_blank_edge(p[0]) && !text_blank_edge(p[len - 1]))) {
        return;
    }
    size_t k;
    while (len > 0 && (k = text_blank_at(p, len)) > 0) {
        p += k;
        len -= k;
    }
    while (len > 0 && (k = text_blank_before(p, len)) > 0) {
        len -= k;
    }
    *s = (const char *)p;
    *n = len;
}

bool text_is_placeholder(const char *s, size_t n)
{
    text_trim(&s, &n);
    if (n == 0) {
        return true;
    }
    if ((n == 3 && memcmp(s, "N/A", 3) == 0) || (n == 3 && memcmp(s, "n/a", 3) == 0)) {
        return true;
    }
    /* Runs of '-', U+2014 (em dash, E2 80 94) or U+FF0D (full-width hyphen-minus, EF BC 8D). */
    size_t i = 0;
    while (i < n) {
        if (s[i] == '-') {
            i++;
        } else if (i + 3 <= n && memcmp(s + i, "\xE2\x80\x94", 3) == 0) {
            i += 3;
        } else if (i + 3 <= n && memcmp(s + i, "\xEF\xBC\x8D", 3) == 0) {
            i += 3;
        } else {
            return false;
        }
    }
    return true;
}

int text_fold_amount(const char *s, size_t n, char *dst, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    bool trailing_minus = false;
    text_trim(&s, &n);
    p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        char c = 0;
        size_t adv = 1;
        if (p[i] < 0x80) {
            c = (char)p[i];
            if (c == ' ' || c == '\t') {
                c = 0;
            }
        } else if (i + 3 <= n && p[i] == 0xEF && p[i + 1] == 0xBC && p[i + 2] >= 0x90 &&
                   p[i + 2] <= 0x99) {
            c = (char)('0' + (p[i + 2] - 0x90)); /* U+FF10..U+FF19 */
            adv = 3;
        } else if (i + 3 <= n && p[i] == 0xEF && p[i + 1] == 0xBC && p[i + 2] >= 0x8B &&
                   p[i + 2] <= 0x8E) {
            /* U+FF0B '+', U+FF0C ',', U+FF0D '-', U+FF0E '.' */
            c = "+,-."[p[i + 2] - 0x8B];
            adv = 3;
        } else if (i + 2 <= n && p[i] == 0xC2 && p[i + 1] == 0xA5) {
            adv = 2; /* U+00A5 yen/yuan sign */
        } else if (i + 3 <= n && p[i] == 0xEF && p[i + 1] == 0xBF && p[i + 2] == 0xA5) {
            adv = 3; /* U+FFE5 full-width yen/yuan sign */
        } else if (i + 3 <= n && p[i] == 0xE5 && p[i + 1] == 0x85 && p[i + 2] == 0x83) {
            adv = 3; /* 元 */
        } else if (i + 3 <= n && p[i] == 0xE3 && p[i + 1] == 0x80 && p[i + 2] == 0x80) {
            adv = 3; /* U+3000 */
        } else {
            /* Anything else is kept as a byte so the money parser names it in its message. */
            c = (char)p[i];
        }
        i += adv;
        if (c == 0) {
            continue;
        }
        if (o + 1 >= cap) {
            return -1;
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
    /* Currency codes written next to the number. */
    for (int pass = 0; pass < 2; pass++) {
        static const char *const codes[] = {"RMB", "CNY"};
        for (size_t k = 0; k < 2; k++) {
            size_t cl = strlen(codes[k]);
            if (o >= cl && memcmp(dst + o - cl, codes[k], cl) == 0) {
                o -= cl;
                dst[o] = '\0';
            } else if (o >= cl && memcmp(dst, codes[k], cl) == 0) {
                memmove(dst, dst + cl, o - cl + 1);
                o -= cl;
            }
        }
    }
    if (o > 1 && dst[o - 1] == '-' && dst[0] != '-' && dst[0] != '+') {
        trailing_minus = true;
        o--;
        dst[o] = '\0';
    }
    if (trailing_minus) {
        if (o + 2 > cap) {
            return -1;
        }
        memmove(dst + 1, dst, o + 1);
        dst[0] = '-';
        o++;
    }
    return (int)o;
}

bool text_date_valid(int y, int m, int d)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1900 || y > 2199 || m < 1 || m > 12 || d < 1) {
        return false;
    }
    int max = days[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        max = 29;
    }
    return d <= max;
}

/* Reads 1..maxd digits at *i into *v; returns the count read. */
static int text_digits(const char *s, size_t n, size_t *i, int maxd, int *v)
{
    int k = 0;
    int acc = 0;
    while (*i < n && k < maxd && s[*i] >= '0' && s[*i] <= '9') {
        acc = acc * 10 + (s[*i] - '0');
        (*i)++;
        k++;
    }
    *v = acc;
    return k;
}

static bool text_time_parts(const char *s, size_t n, size_t i, char time[9])
{
    int hh, mm, ss = 0;
    size_t start = i;
    if (text_digits(s, n, &i, 2, &hh) < 1) {
        return false;
    }
    if (i < n && s[i] == ':') {
        i++;
        if (text_digits(s, n, &i, 2, &mm) != 2) {
            return false;
        }
        if (i < n && s[i] == ':') {
            i++;
            if (text_digits(s, n, &i, 2, &ss) != 2) {
                return false;
            }
            if (i < n && s[i] == '.') {
                i++;
                int frac;
                if (text_digits(s, n, &i, 9, &frac) < 1) {
                    return false;
                }
            }
        }
    } else {
        /* HHMMSS in one run. */
        i = start;
        int all;
        if (text_digits(s, n, &i, 6, &all) != 6) {
            return false;
        }
        hh = all / 10000;
        mm = all / 100 % 100;
        ss = all % 100;
    }
    if (i != n || hh > 23 || mm > 59 || ss > 60) {
        return false;
    }
    time[0] = (char)('0' + hh / 10);
    time[1] = (char)('0' + hh % 10);
    time[2] = ':';
    time[3] = (char)('0' + mm / 10);
    time[4] = (char)('0' + mm % 10);
    time[5] = ':';
    time[6] = (char)('0' + ss / 10);
    time[7] = (char)('0' + ss % 10);
    time[8] = '\0';
    return true;
}

bool text_parse_time(const char *s, size_t n, char time[9])
{
    text_trim(&s, &n);
    return n > 0 && text_time_parts(s, n, 0, time);
}

static void text_write_date(char date[11], int y, int m, int d)
{
    date[0] = (char)('0' + y / 1000);
    date[1] = (char)('0' + y / 100 % 10);
    date[2] = (char)('0' + y / 10 % 10);
    date[3] = (char)('0' + y % 10);
    date[4] = '-';
    date[5] = (char)('0' + m / 10);
    date[6] = (char)('0' + m % 10);
    date[7] = '-';
    date[8] = (char)('0' + d / 10);
    date[9] = (char)('0' + d % 10);
    date[10] = '\0';
}

bool text_parse_date(const char *s, size_t n, char date[11], char time[9])
{
    text_trim(&s, &n);
    size_t i = 0;
    int y, m, d;
    time[0] = '\0';
    if (text_digits(s, n, &i, 8, &y) == 8) {
        /* YYYYMMDD */
        m = y / 100 % 100;
        d = y % 100;
        y /= 10000;
    } else {
        i = 0;
        if (text_digits(s, n, &i, 4, &y) != 4 || i >= n) {
            return false;
        }
        bool cjk = false;
        char sep = s[i];
        if (sep == '-' || sep == '/' || sep == '.') {
            i++;
        } else if (i + 3 <= n && memcmp(s + i, "年", 3) == 0) {
            cjk = true;
            i += 3;
        } else {
            return false;
        }
        if (text_digits(s, n, &i, 2, &m) < 1) {
            return false;
        }
        if (cjk) {
            if (i + 3 > n || memcmp(s + i, "月", 3) != 0) {
                return false;
            }
            i += 3;
        } else {
            if (i >= n || s[i] != sep) {
                return false;
            }
            i++;
        }
        if (text_digits(s, n, &i, 2, &d) < 1) {
            return false;
        }
        if (cjk && i + 3 <= n && memcmp(s + i, "日", 3) == 0) {
            i += 3;
        }
    }
    if (!text_date_valid(y, m, d)) {
        return false;
    }
    if (i < n) {
        if (s[i] != ' ' && s[i] != 'T' && s[i] != '\t') {
            return false;
        }
        while (i < n && (s[i] == ' ' || s[i] == 'T' || s[i] == '\t')) {
            i++;
        }
        if (!text_time_parts(s, n, i, time)) {
            return false;
        }
    }
    text_write_date(date, y, m, d);
    return true;
}

size_t text_normalize_header(const char *s, size_t n, char *out, size_t cap)
{
    if (n == 0 || n > TEXT_CELL_MAX || cap == 0) {
        return 0;
    }
    utf8proc_uint8_t *nf = NULL;
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &nf,
                                        UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_STABLE);
    if (len < 0) {
        return 0;
    }
    size_t o = 0;
    const unsigned char *p = nf;
    size_t plen = (size_t)len;
    for (size_t i = 0; i < plen;) {
        size_t k = text_blank_at(p + i, plen - i);
        if (k > 0) {
            i += k;
            continue;
        }
        if (o + 1 >= cap) {
            free(nf);
            return 0;
        }
        char c = (char)p[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        out[o++] = c;
        i++;
    }
    out[o] = '\0';
    free(nf);
    /* "交易日期[transactiondate]" -> "交易日期" (only when something precedes the bracket). */
    char *br = strchr(out, '[');
    if (br != NULL && br != out && out[o - 1] == ']') {
        *br = '\0';
        o = (size_t)(br - out);
    }
    static const char *const units[] = {"(元)", "/元"};
    for (size_t u = 0; u < 2; u++) {
        char *hit;
        size_t ul = strlen(units[u]);
        while ((hit = strstr(out, units[u])) != NULL) {
            memmove(hit, hit + ul, strlen(hit + ul) + 1);
            o -= ul;
        }
    }
    return o;
}

size_t text_utf8_valid_prefix(const unsigned char *s, size_t n, bool *incomplete)
{
    size_t i = 0;
    *incomplete = false;
    while (i < n) {
        /* ASCII fast path, eight bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) {
                break;
            }
            i += 8;
        }
        if (i >= n) {
            break;
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) {
                lo = 0xA0;
            } else if (c == 0xED) {
                hi = 0x9F; /* no surrogates */
            }
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) {
                lo = 0x90;
            } else if (c == 0xF4) {
                hi = 0x8F;
            }
        } else {
            return i;
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= n) {
                *incomplete = true;
                return i;
            }
            unsigned char b = s[i + k];
            unsigned char l = k == 1 ? lo : 0x80;
            unsigned char h = k == 1 ? hi : 0xBF;
            if (b < l || b > h) {
                return i;
            }
        }
        i += need + 1;
    }
    return i;
}

bool text_contains(const char *s, size_t n, const char *sub)
{
    size_t m = strlen(sub);
    if (m == 0) {
        return true;
    }
    if (m > n) {
        return false;
    }
    return memmem(s, n, sub, m) != NULL;
}

bool text_currency_code(const char *s, size_t n, char out[4])
{
    static const struct {
        const char *name;
        const char *code;
    } names[] = {
        {"人民币", "CNY"}, {"RMB", "CNY"},      {"156", "CNY"},      {"本币", "CNY"},
        {"美元", "USD"},   {"840", "USD"},      {"港币", "HKD"},     {"港元", "HKD"},
        {"344", "HKD"},    {"欧元", "EUR"},     {"978", "EUR"},      {"日元", "JPY"},
        {"392", "JPY"},    {"英镑", "GBP"},     {"826", "GBP"},      {"澳元", "AUD"},
        {"加元", "CAD"},   {"瑞士法郎", "CHF"}, {"新加坡元", "SGD"},
    };
    text_trim(&s, &n);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i].name) == n && memcmp(names[i].name, s, n) == 0) {
            memcpy(out, names[i].code, 4);
            return true;
        }
    }
    if (n == 3) {
        for (size_t i = 0; i < 3; i++) {
            char c = s[i];
            if (c >= 'a' && c <= 'z') {
                c = (char)(c - 'a' + 'A');
            }
            if (c < 'A' || c > 'Z') {
                return false;
            }
            out[i] = c;
        }
        out[3] = '\0';
        return true;
    }
    return false;
}
