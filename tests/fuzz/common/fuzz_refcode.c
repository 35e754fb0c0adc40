/* libFuzzer target: reference-code search in arbitrary remittance text finds only valid codes. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "topup/ids.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char codes[4][REFCODE_STR_LEN];
    int n = ids_refcode_find_all((const char *)data, size, codes, 4);
    assert(n >= 0 && n <= 4);
    for (int i = 0; i < n; i++) {
        assert(ids_refcode_valid(codes[i]));
    }
    return 0;
}
