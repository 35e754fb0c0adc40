/* Configuration from environment variables: a table per service with defaults and bounds. */
#ifndef TOPUP_CONFIG_H
#define TOPUP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "topup/error.h"

enum config_type { CONFIG_STR, CONFIG_INT, CONFIG_BOOL };

/*
 * One setting. A service declares a static array of these (terminated by {0}); config_load()
 * reads each from the environment into the pointed-to variable. The README's configuration
 * table is printed from the same array by `<service> --help-config`.
 */
struct config_def {
    const char *name; /* environment variable, e.g. "INTAKE_HTTP_PORT" */
    enum config_type type;
    const char *def;  /* default as text; NULL means required */
    int64_t min, max; /* bounds for CONFIG_INT (inclusive); max length for CONFIG_STR if > 0 */
    const char *help; /* one line */
    void *out;        /* char ** (points into the environment or def), int64_t *, bool * */
};

/*
 * Reads every definition; on the first bad value returns TP_INVALID naming variable and bound.
 * A setting NAME can also come from a file: NAME_FILE=/path (a Kubernetes Secret volume, Docker
 * Compose secrets, systemd LoadCredential's %d/...) reads the file, one trailing newline dropped,
 * so that passwords and TOKEN_SECRET never stand in the environment or a unit file. Setting both
 * is refused.
 */
enum tp_status config_load(const struct config_def *defs, struct tp_error *err) TP_MUST_CHECK;

/* Prints the table as Markdown: name, default, bounds, meaning. */
void config_print_table(const struct config_def *defs, FILE *out);

/* Longest value read from a NAME_FILE (or the setting's own maximum when smaller). */
#define CONFIG_FILE_MAX (64 * 1024)

/*
 * Applies every KAFKA_* environment variable to a librdkafka-style setter: KAFKA_BOOTSTRAP_SERVERS
 * becomes "bootstrap.servers" (prefix dropped, lower-cased, '_' -> '.'). KAFKA_X_FILE=/path sets
 * x from the file, as for NAME_FILE above (KAFKA_SASL_PASSWORD_FILE). set returns 0 on success.
 */
typedef int config_kv_fn(void *ctx, const char *key, const char *value, char *errstr,
                         size_t errlen);
enum tp_status config_apply_kafka_env(config_kv_fn *set, void *ctx,
                                      struct tp_error *err) TP_MUST_CHECK;

#endif
