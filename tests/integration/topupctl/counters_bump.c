/* Test helper: `counters_bump SERVICE COUNTER BY [GAUGE VALUE]` writes through the counters
 * library. */
#include <stdio.h>
#include <stdlib.h>

#include "topup/counters.h"
#include "topup/log.h"

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: %s SERVICE COUNTER BY [GAUGE VALUE]\n", argv[0]);
        return 2;
    }
    log_init("counters_bump");
    struct counters *c = counters_new(argv[1], NULL, 0);
    counters_incr(c, argv[2], strtoll(argv[3], NULL, 10));
    if (argc == 6) {
        counters_gauge(c, argv[4], strtoll(argv[5], NULL, 10));
    }
    counters_flush(c);
    /* Drops are a failure here; whether the values arrived is what the test checks via stats. */
    long long dropped = (long long)counters_dropped(c);
    counters_free(c);
    if (dropped != 0) {
        fprintf(stderr, "counters_bump: %lld updates dropped (is Redis up?)\n", dropped);
        return 1;
    }
    return 0;
}
