/* libFuzzer target: the mt940 parser and the whole-file checks on arbitrary bytes. */
#include "fuzz_si.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_si_run(data, size, parser_mt940_run);
    return 0;
}
