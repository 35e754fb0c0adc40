/* Graceful shutdown: SIGTERM/SIGINT handlers that only set a flag. */
#ifndef TOPUP_SIGNALS_H
#define TOPUP_SIGNALS_H

#include <stdbool.h>

/* Installs handlers for SIGTERM and SIGINT, and ignores SIGPIPE. */
void signals_install(void);

/* True once a stop was requested. Async-signal-safe to read from any thread. */
bool signals_stop_requested(void);

/* Requests a stop from code (tests, fatal errors in a worker thread). */
void signals_request_stop(void);

#endif
