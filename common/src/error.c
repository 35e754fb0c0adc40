/* Status codes and the caller-owned error struct. */
#include "topup/error.h"

#include <stdarg.h>
#include <stdio.h>

enum tp_status error_set(struct tp_error *err, enum tp_status status, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        err->status = status;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return status;
}

void error_clear(struct tp_error *err)
{
    if (err != NULL) {
        err->status = TP_OK;
        err->msg[0] = '\0';
    }
}

const char *error_status_name(enum tp_status status)
{
    switch (status) {
    case TP_OK:
        return "ok";
    case TP_INVALID:
        return "invalid";
    case TP_NOT_FOUND:
        return "not_found";
    case TP_CONFLICT:
        return "conflict";
    case TP_DUPLICATE:
        return "duplicate";
    case TP_RETRY:
        return "retry";
    case TP_FATAL:
        return "fatal";
    }
    return "unknown";
}
