/* Structured logging: one JSON object per line on stderr, written with a single write(2). */
#include "topup/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static const char *log_service = "topup";
static enum log_level log_min_level = LOG_INFO;

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *service)
{
    log_service = service;
    const char *lvl = getenv("LOG_LEVEL");
    if (lvl != NULL) {
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(lvl, log_level_names[i]) == 0) {
                log_min_level = (enum log_level)i;
            }
        }
    }
}

int log_json_escape(const char *s, char *buf, int buflen)
{
    int n = 0;
    if (buflen <= 0) {
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char tmp[8];
        const char *out = tmp;
        int len;
        switch (*p) {
        case '"':
            out = "\\\"";
            len = 2;
            break;
        case '\\':
            out = "\\\\";
            len = 2;
            break;
        case '\n':
            out = "\\n";
            len = 2;
            break;
        case '\r':
            out = "\\r";
            len = 2;
            break;
        case '\t':
            out = "\\t";
            len = 2;
            break;
        default:
            if (*p < 0x20) {
                len = snprintf(tmp, sizeof(tmp), "\\u%04x", *p);
            } else {
                tmp[0] = (char)*p;
                len = 1;
            }
        }
        if (n + len >= buflen) {
            break;
        }
        memcpy(buf + n, out, (size_t)len);
        n += len;
    }
    buf[n] = '\0';
    return n;
}

/* Appends the pieces (NULL-terminated) only if they all fit, so a line never ends mid-value. */
static int log_append(char *line, int n, const char *a, const char *b, const char *c)
{
    const char *parts[] = {a, b, c};
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        total += parts[i] != NULL ? strlen(parts[i]) : 0;
    }
    if ((size_t)n + total >= LOG_LINE_MAX - 3) {
        return n;
    }
    for (int i = 0; i < 3; i++) {
        if (parts[i] != NULL) {
            size_t l = strlen(parts[i]);
            memcpy(line + n, parts[i], l);
            n += (int)l;
        }
    }
    line[n] = '\0';
    return n;
}

static int log_append_str(char *line, int n, const char *key, const char *val)
{
    char k[128];
    char v[1024];
    char pair[1200];
    log_json_escape(key, k, sizeof(k));
    log_json_escape(val != NULL ? val : "", v, sizeof(v));
    snprintf(pair, sizeof(pair), "\"%s\":\"%s\"", k, v);
    return log_append(line, n, ",", pair, NULL);
}

void log_write(enum log_level level, const char *msg, const struct log_field *fields, int nfields)
{
    if (level < log_min_level) {
        return;
    }
    char line[LOG_LINE_MAX];
    char ts[64];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);

    int n =
        snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\"", ts, log_level_names[level]);
    n = log_append_str(line, n, "service", log_service);
    n = log_append_str(line, n, "msg", msg);
    for (int i = 0; i < nfields; i++) {
        const struct log_field *f = &fields[i];
        if (f->key == NULL || f->type == LOG_FIELD_NONE) {
            continue;
        }
        if (f->type == LOG_FIELD_STR) {
            n = log_append_str(line, n, f->key, f->s);
        } else {
            char num[32];
            char k[128];
            char pair[200];
            snprintf(num, sizeof(num), "%" PRId64, f->i);
            log_json_escape(f->key, k, sizeof(k));
            snprintf(pair, sizeof(pair), "\"%s\":%s", k, num);
            n = log_append(line, n, ",", pair, NULL);
        }
    }
    line[n++] = '}';
    line[n++] = '\n';
    /* One write per line keeps lines whole when several threads log at once. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
