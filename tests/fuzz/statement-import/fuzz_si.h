/* Shared libFuzzer driver for the statement parsers: parse, check, and assert invariants. */
#ifndef FUZZ_SI_H
#define FUZZ_SI_H

#include <stddef.h>
#include <stdint.h>

#include "parser.h"

/* Runs parse over data with the whole-file checks as the sink; aborts on a broken invariant. */
void fuzz_si_run(const uint8_t *data, size_t size,
                 enum tp_status (*parse)(struct input *, struct parse_options *,
                                         const struct parse_sink *, struct tp_error *));

#endif
