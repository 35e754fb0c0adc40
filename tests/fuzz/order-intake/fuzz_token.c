/* libFuzzer target: token verification never accepts what was not issued with the secret. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "topup/token.h"

static const char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret-0123";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    struct token_claims claims;
    if (token_verify(secret, sizeof(secret) - 1, s, 1700000000, &claims, NULL) == TP_OK) {
        /* Accepted: it must be exactly the token we would issue for those claims. */
        char again[TOKEN_STR_MAX];
        assert(token_issue(secret, sizeof(secret) - 1, claims.account, claims.expires_at_s, again,
                           sizeof(again), NULL) == TP_OK);
        assert(strcmp(again, s) == 0);
    }
    int64_t ttl;
    (void)token_parse_ttl(s, &ttl, NULL);
    free(s);
    return 0;
}
