/* Configuration from environment variables, checked against each setting's bounds. */
#include "topup/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char **environ;

static enum tp_status config_parse_int(const struct config_def *d, const char *v, int64_t *out,
                                       struct tp_error *err)
{
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || isspace((unsigned char)*v)) {
        return error_set(err, TP_INVALID, "%s=\"%s\" is not a whole number", d->name, v);
    }
    if (x < d->min || x > d->max) {
        return error_set(err, TP_INVALID, "%s=%lld is out of bounds [%" PRId64 ", %" PRId64 "]",
                         d->name, x, d->min, d->max);
    }
    *out = (int64_t)x;
    return TP_OK;
}

static enum tp_status config_parse_bool(const struct config_def *d, const char *v, bool *out,
                                        struct tp_error *err)
{
    if (strcasecmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
        strcasecmp(v, "on") == 0) {
        *out = true;
    } else if (strcasecmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0 ||
               strcasecmp(v, "off") == 0) {
        *out = false;
    } else {
        return error_set(err, TP_INVALID, "%s=\"%s\" is not a boolean (true/false)", d->name, v);
    }
    return TP_OK;
}

enum tp_status config_load(const struct config_def *defs, struct tp_error *err)
{
    for (const struct config_def *d = defs; d->name != NULL; d++) {
        const char *v = getenv(d->name);
        if (v == NULL) {
            v = d->def;
        }
        if (v == NULL) {
            return error_set(err, TP_INVALID, "%s is required: %s", d->name, d->help);
        }
        enum tp_status st = TP_OK;
        switch (d->type) {
        case CONFIG_STR:
            if (d->max > 0 && (int64_t)strlen(v) > d->max) {
                return error_set(err, TP_INVALID, "%s is longer than %" PRId64 " characters",
                                 d->name, d->max);
            }
            *(const char **)d->out = v;
            break;
        case CONFIG_INT:
            st = config_parse_int(d, v, (int64_t *)d->out, err);
            break;
        case CONFIG_BOOL:
            st = config_parse_bool(d, v, (bool *)d->out, err);
            break;
        }
        if (st != TP_OK) {
            return st;
        }
    }
    return TP_OK;
}

void config_print_table(const struct config_def *defs, FILE *out)
{
    fprintf(out, "| variable | default | bounds | meaning |\n|---|---|---|---|\n");
    for (const struct config_def *d = defs; d->name != NULL; d++) {
        char bounds[64] = "";
        if (d->type == CONFIG_INT) {
            snprintf(bounds, sizeof(bounds), "%" PRId64 "..%" PRId64, d->min, d->max);
        } else if (d->type == CONFIG_BOOL) {
            snprintf(bounds, sizeof(bounds), "true/false");
        } else if (d->max > 0) {
            snprintf(bounds, sizeof(bounds), "at most %" PRId64 " chars", d->max);
        }
        fprintf(out, "| `%s` | %s%s%s | %s | %s |\n", d->name, d->def ? "`" : "",
                d->def ? (d->def[0] ? d->def : " ") : "(required)", d->def ? "`" : "", bounds,
                d->help);
    }
}

enum tp_status config_apply_kafka_env(config_kv_fn *set, void *ctx, struct tp_error *err)
{
    static const char prefix[] = "KAFKA_";
    for (char **e = environ; *e != NULL; e++) {
        if (strncmp(*e, prefix, sizeof(prefix) - 1) != 0) {
            continue;
        }
        const char *eq = strchr(*e, '=');
        if (eq == NULL) {
            continue;
        }
        char key[256];
        size_t klen = (size_t)(eq - *e) - (sizeof(prefix) - 1);
        if (klen == 0 || klen >= sizeof(key)) {
            continue;
        }
        for (size_t i = 0; i < klen; i++) {
            char c = (*e)[sizeof(prefix) - 1 + i];
            key[i] = c == '_' ? '.' : (char)tolower((unsigned char)c);
        }
        key[klen] = '\0';
        char errstr[512] = "";
        if (set(ctx, key, eq + 1, errstr, sizeof(errstr)) != 0) {
            return error_set(err, TP_INVALID, "%.*s: %s", (int)(eq - *e), *e, errstr);
        }
    }
    return TP_OK;
}
