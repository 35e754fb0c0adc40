/* Status codes and the caller-owned error struct every fallible function reports into. */
#ifndef TOPUP_ERROR_H
#define TOPUP_ERROR_H

#define TP_MUST_CHECK   __attribute__((warn_unused_result))
#define TP_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Classified once at the edge (library wrappers); service code switches on these only. */
enum tp_status {
    TP_OK = 0,
    TP_INVALID,   /* bad input: reject it, never retry */
    TP_NOT_FOUND, /* the thing asked for does not exist */
    TP_CONFLICT,  /* state forbids it (e.g. cancelling a completed order) */
    TP_DUPLICATE, /* already done: a unique key says so; usually a no-op for the caller */
    TP_RETRY,     /* transient: connection lost, serialization failure, broker down */
    TP_FATAL,     /* bug or broken environment: stop */
};

#define ERROR_MSG_MAX 512

/* Filled by the callee on failure; owned by the caller (usually on its stack). */
struct tp_error {
    enum tp_status status;
    char msg[ERROR_MSG_MAX];
};

/* Sets err (may be NULL) and returns status, so callers can `return error_set(...)`. */
enum tp_status error_set(struct tp_error *err, enum tp_status status, const char *fmt, ...)
    TP_PRINTF(3, 4);

void error_clear(struct tp_error *err);

/* Stable lower-case name of a status, e.g. "retry". */
const char *error_status_name(enum tp_status status);

#endif
