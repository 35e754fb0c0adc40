/* libFuzzer target: the create-order body validator on arbitrary bytes; what it accepts is sane. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct validate_order o;
    struct validate_error verr;
    const int64_t min_fen = 5000;
    const int64_t max_fen = 100000000;
    if (validate_order_body((const char *)data, size, min_fen, max_fen, &o, &verr)) {
        /* An accepted order is inside the bounds and has both remitter fields. */
        assert(o.amount_fen >= min_fen && o.amount_fen <= max_fen);
        assert(o.remitter_name != NULL && o.remitter_name[0] != '\0');
        assert(o.remitter_bank != NULL && o.remitter_bank[0] != '\0');
        assert(o.remarks != NULL);
        validate_order_deinit(&o);
    } else {
        /* A refusal always names a stable code and a 4xx status. */
        assert(verr.code != NULL && verr.code[0] != '\0');
        assert(verr.status >= 400 && verr.status < 500);
    }
    return 0;
}
