/* Structured logging: one JSON object per line on stderr, with service and context fields. */
#ifndef TOPUP_LOG_H
#define TOPUP_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_field_type { LOG_FIELD_NONE, LOG_FIELD_STR, LOG_FIELD_INT };

struct log_field {
    const char *key;
    enum log_field_type type;
    const char *s;
    int64_t i;
};

#define LF_S(k, v) ((struct log_field){.key = (k), .type = LOG_FIELD_STR, .s = (v)})
#define LF_I(k, v) ((struct log_field){.key = (k), .type = LOG_FIELD_INT, .i = (int64_t)(v)})

/* Sets the service name written in every line and the minimum level (LOG_LEVEL env overrides). */
void log_init(const char *service);

/* Writes {"ts":"...","level":"info","service":"...","msg":"...", fields...}\n atomically. */
void log_write(enum log_level level, const char *msg, const struct log_field *fields, int n);

/* Usage: log_info("order created", LF_S("order", code), LF_I("amount_fen", fen)); */
#define LOG_FIELDS_(...)  ((const struct log_field[]){{0}, __VA_ARGS__})
#define LOG_NFIELDS_(...) ((int)(sizeof(LOG_FIELDS_(__VA_ARGS__)) / sizeof(struct log_field)))
#define log_debug(msg, ...)                                                                        \
    log_write(LOG_DEBUG, msg, LOG_FIELDS_(__VA_ARGS__), LOG_NFIELDS_(__VA_ARGS__))
#define log_info(msg, ...)                                                                         \
    log_write(LOG_INFO, msg, LOG_FIELDS_(__VA_ARGS__), LOG_NFIELDS_(__VA_ARGS__))
#define log_warn(msg, ...)                                                                         \
    log_write(LOG_WARN, msg, LOG_FIELDS_(__VA_ARGS__), LOG_NFIELDS_(__VA_ARGS__))
#define log_error(msg, ...)                                                                        \
    log_write(LOG_ERROR, msg, LOG_FIELDS_(__VA_ARGS__), LOG_NFIELDS_(__VA_ARGS__))

/* Escapes s as the inside of a JSON string into buf; truncates safely. Returns bytes written. */
int log_json_escape(const char *s, char *buf, int buflen);

#endif
