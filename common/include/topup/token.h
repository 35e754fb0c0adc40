/*
 * Bearer tokens bound to one account with an expiry, signed with HMAC-SHA256:
 *
 *     v1.<base64url(account)>.<expiry, Unix seconds>.<base64url(HMAC-SHA256(secret, first 3
 * parts))>
 *
 * base64url without padding. The signature covers the version, the account and the expiry, so
 * neither can be changed without the secret. Verification compares in constant time.
 */
#ifndef TOPUP_TOKEN_H
#define TOPUP_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "topup/error.h"

#define TOKEN_SECRET_MIN_BYTES 32  /* a shorter TOKEN_SECRET is refused at start-up */
#define TOKEN_ACCOUNT_MAX      64  /* account ids: 1..64 printable ASCII (0x21..0x7e) */
#define TOKEN_STR_MAX          192 /* longest token text, NUL included; longer input is refused */
#define TOKEN_TTL_MAX_S        (366LL * 24 * 3600)

/* What a valid token says. */
struct token_claims {
    char account[TOKEN_ACCOUNT_MAX + 1];
    int64_t expires_at_s;
    bool expired; /* set (with TP_INVALID) when the signature is good but the expiry has passed */
};

/* True when s is a usable account id: 1..TOKEN_ACCOUNT_MAX printable ASCII, no spaces. */
bool token_account_valid(const char *s);

/*
 * Writes a token for account expiring at expires_at_s into out (out_size bytes, TOKEN_STR_MAX is
 * always enough). TP_INVALID for a short secret, a bad account id or a non-positive expiry.
 */
enum tp_status token_issue(const void *secret, size_t secret_len, const char *account,
                           int64_t expires_at_s, char *out, size_t out_size,
                           struct tp_error *err) TP_MUST_CHECK;

/*
 * Checks token (NUL-terminated) against secret at time now_s. TP_OK fills claims. TP_INVALID for
 * anything else: malformed, wrong signature, or expired (then claims->expired is true and the
 * other claims are filled; a forged token is never reported as expired).
 */
enum tp_status token_verify(const void *secret, size_t secret_len, const char *token, int64_t now_s,
                            struct token_claims *claims, struct tp_error *err) TP_MUST_CHECK;

/*
 * Parses a time-to-live: "3600", "3600s", "90m", "24h", "7d". TP_INVALID when malformed, zero or
 * above TOKEN_TTL_MAX_S.
 */
enum tp_status token_parse_ttl(const char *s, int64_t *ttl_s_out,
                               struct tp_error *err) TP_MUST_CHECK;

#endif
