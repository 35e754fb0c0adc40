/* Graceful shutdown: SIGTERM/SIGINT only set a flag that workers poll. */
#include "topup/signals.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>

static volatile sig_atomic_t signals_flag;
static atomic_bool signals_stop;

static void signals_handler(int sig)
{
    (void)sig;
    signals_flag = 1;
}

void signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = signals_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool signals_stop_requested(void)
{
    return signals_flag != 0 || atomic_load(&signals_stop);
}

void signals_request_stop(void)
{
    atomic_store(&signals_stop, true);
}
