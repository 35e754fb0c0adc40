/* Telling the statement formats apart from the first bytes of a file. */
#include "detect.h"

#include <stdbool.h>
#include <string.h>

/* ":20:", ":28C:", ":NS:" at the start of a line. */
static bool detect_is_tag(const unsigned char *s, size_t n)
{
    if (n >= 4 && s[0] == ':' && s[1] == 'N' && s[2] == 'S' && s[3] == ':') {
        return true;
    }
    if (n < 4 || s[0] != ':' || s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9') {
        return false;
    }
    if (s[3] == ':') {
        return true;
    }
    return n >= 5 && s[3] >= 'A' && s[3] <= 'Z' && s[4] == ':';
}

enum stmt_format detect_format(const unsigned char *head, size_t n)
{
    size_t i = 0;
    if (n >= 3 && head[0] == 0xEF && head[1] == 0xBB && head[2] == 0xBF) {
        i = 3;
    } else if (n >= 2 &&
               ((head[0] == 0xFF && head[1] == 0xFE) || (head[0] == 0xFE && head[1] == 0xFF))) {
        /* UTF-16: XML starts with '<' in either byte order; otherwise an Excel text export. */
        size_t k = head[0] == 0xFF ? 2 : 3;
        return k < n && head[k] == '<' ? FORMAT_CAMT : FORMAT_CSV;
    }
    while (i < n && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n')) {
        i++;
    }
    if (i == n) {
        return FORMAT_UNKNOWN;
    }
    if (head[i] == '<') {
        return FORMAT_CAMT;
    }
    int tags = 0;
    size_t pos = i;
    while (pos < n) {
        const unsigned char *nl = memchr(head + pos, '\n', n - pos);
        size_t len = nl != NULL ? (size_t)(nl - (head + pos)) : n - pos;
        const unsigned char *s = head + pos;
        /* SOH and FIN block headers may precede the first tag on the line. */
        while (len > 0 && (s[0] == 0x01 || s[0] == ' ')) {
            s++;
            len--;
        }
        if (len >= 3 && s[0] == '{' && s[1] == '1' && s[2] == ':') {
            return FORMAT_MT940;
        }
        if (detect_is_tag(s, len) && ++tags >= 2) {
            return FORMAT_MT940;
        }
        if (nl == NULL) {
            break;
        }
        pos = (size_t)(nl - head) + 1;
    }
    return FORMAT_CSV;
}

const char *detect_format_name(enum stmt_format f)
{
    switch (f) {
    case FORMAT_CSV:
        return "csv";
    case FORMAT_MT940:
        return "mt940";
    case FORMAT_CAMT:
        return "camt";
    case FORMAT_UNKNOWN:
        break;
    }
    return "unknown";
}
