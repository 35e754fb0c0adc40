/* libFuzzer target: both amount grammars never crash, and what they accept formats back. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "topup/money.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t fen;
    if (money_parse(s, &fen, NULL) == TP_OK) {
        /* The strict grammar round-trips: format, parse again, same value. */
        char buf[MONEY_STR_MAX];
        int64_t back;
        assert(fen >= 0);
        assert(money_parse(money_format(fen, buf), &back, NULL) == TP_OK && back == fen);
    }
    (void)money_parse_lenient(s, size, '.', &fen, NULL);
    (void)money_parse_lenient(s, size, ',', &fen, NULL);
    free(s);
    return 0;
}
