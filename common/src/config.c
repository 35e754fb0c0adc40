/* Configuration from environment variables, checked against each setting's bounds. */
#include "topup/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "topup/mem.h"

extern char **environ;

/*
 * Values read from NAME_FILE live as long as the process, like the environment they stand in
 * for; kept on a list so that they stay reachable (leak checkers) and are read once per load.
 */
struct config_file_value {
    struct config_file_value *next;
    char value[];
};
static struct config_file_value *config_file_values;
static pthread_mutex_t config_file_mu = PTHREAD_MUTEX_INITIALIZER;

/*
 * Reads the secret file path into a process-lifetime string: at most max bytes (0:
 * CONFIG_FILE_MAX) after one trailing newline is dropped, no NUL bytes. name is for messages.
 */
static enum tp_status config_read_file(const char *name, const char *path, int64_t max,
                                       const char **out, struct tp_error *err)
{
    size_t limit = max > 0 && max < CONFIG_FILE_MAX ? (size_t)max : CONFIG_FILE_MAX;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return error_set(err, TP_INVALID, "%s_FILE=%s cannot be read: %s", name, path,
                         strerror(errno));
    }
    struct config_file_value *v = mem_calloc(1, sizeof(*v) + limit + 3);
    size_t n = fread(v->value, 1, limit + 2, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    enum tp_status st = TP_OK;
    if (n > 0 && v->value[n - 1] == '\n') {
        n--;
        if (n > 0 && v->value[n - 1] == '\r') {
            n--;
        }
    }
    v->value[n] = '\0';
    if (failed) {
        st = error_set(err, TP_INVALID, "%s_FILE=%s cannot be read", name, path);
    } else if (n > limit) {
        st = error_set(err, TP_INVALID, "%s_FILE=%s holds more than %zu bytes", name, path, limit);
    } else if (memchr(v->value, '\0', n) != NULL) {
        st = error_set(err, TP_INVALID, "%s_FILE=%s holds a NUL byte", name, path);
    }
    if (st != TP_OK) {
        free(v);
        return st;
    }
    pthread_mutex_lock(&config_file_mu);
    v->next = config_file_values;
    config_file_values = v;
    pthread_mutex_unlock(&config_file_mu);
    *out = v->value;
    return TP_OK;
}

/* The value of name: from the environment, from the file NAME_FILE names, or NULL. */
static enum tp_status config_lookup(const char *name, int64_t max, const char **out,
                                    struct tp_error *err)
{
    char file_var[256];
    snprintf(file_var, sizeof(file_var), "%s_FILE", name);
    const char *v = getenv(name);
    const char *path = getenv(file_var);
    *out = v;
    if (path == NULL || path[0] == '\0') {
        return TP_OK; /* an empty NAME_FILE is unset, as an empty path names no file */
    }
    if (v != NULL) {
        return error_set(err, TP_INVALID, "%s and %s are both set: set one", name, file_var);
    }
    return config_read_file(name, path, max, out, err);
}

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
        const char *v = NULL;
        if (config_lookup(d->name, d->type == CONFIG_STR ? d->max : 0, &v, err) != TP_OK) {
            return TP_INVALID;
        }
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
        char key[256], name[256];
        size_t klen = (size_t)(eq - *e) - (sizeof(prefix) - 1);
        if (klen == 0 || klen >= sizeof(key)) {
            continue;
        }
        snprintf(name, sizeof(name), "%.*s", (int)(eq - *e), *e);
        const char *value = eq + 1;
        static const char file_suffix[] = "_FILE";
        size_t slen = sizeof(file_suffix) - 1;
        size_t nlen = strlen(name);
        if (nlen > sizeof(prefix) - 1 + slen && strcmp(name + nlen - slen, file_suffix) == 0) {
            /* KAFKA_SASL_PASSWORD_FILE: sasl.password from the file (librdkafka has no such
             * property of its own: none ends in ".file"). */
            name[nlen - slen] = '\0';
            klen -= slen;
            enum tp_status st = config_lookup(name, 0, &value, err);
            if (st != TP_OK) {
                return st;
            }
        }
        for (size_t i = 0; i < klen; i++) {
            char c = (*e)[sizeof(prefix) - 1 + i];
            key[i] = c == '_' ? '.' : (char)tolower((unsigned char)c);
        }
        key[klen] = '\0';
        char errstr[512] = "";
        if (set(ctx, key, value, errstr, sizeof(errstr)) != 0) {
            return error_set(err, TP_INVALID, "%s: %s", name, errstr);
        }
    }
    return TP_OK;
}
