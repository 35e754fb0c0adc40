/* Bearer tokens: HMAC-SHA256 over version, account and expiry, verified in constant time. */
#include "topup/token.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#define TOKEN_VERSION           "v1"
#define TOKEN_SIG_BYTES         32
#define TOKEN_SIG_B64_LEN       43 /* ceil(32 * 4 / 3) without padding */
#define TOKEN_ACCOUNT_B64_MAX   86
#define TOKEN_EXPIRY_DIGITS_MAX 12

static const char token_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encodes n bytes as base64url without padding into out; returns the length written. */
static size_t token_b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = token_b64_alphabet[(v >> 18) & 63];
        out[o++] = token_b64_alphabet[(v >> 12) & 63];
        out[o++] = token_b64_alphabet[(v >> 6) & 63];
        out[o++] = token_b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = token_b64_alphabet[(v >> 18) & 63];
        out[o++] = token_b64_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = token_b64_alphabet[(v >> 18) & 63];
        out[o++] = token_b64_alphabet[(v >> 12) & 63];
        out[o++] = token_b64_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static int token_b64_value(char c)
{
    const char *p = c != '\0' ? strchr(token_b64_alphabet, c) : NULL;
    return p != NULL ? (int)(p - token_b64_alphabet) : -1;
}

/*
 * Decodes strict base64url without padding (len chars) into out (room for out_max bytes).
 * Returns the decoded length, or -1 when malformed or non-canonical (unused bits must be zero).
 */
static int token_b64_decode(const char *in, size_t len, unsigned char *out, size_t out_max)
{
    if (len % 4 == 1 || len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > out_max) {
        return -1;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = token_b64_value(in[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) {
        return -1;
    }
    return (int)o;
}

bool token_account_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > TOKEN_ACCOUNT_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

static bool token_sign(const void *secret, size_t secret_len, const char *msg, size_t len,
                       unsigned char sig[TOKEN_SIG_BYTES])
{
    unsigned int sig_len = 0;
    unsigned char *r =
        HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)msg, len, sig, &sig_len);
    return r != NULL && sig_len == TOKEN_SIG_BYTES;
}

enum tp_status token_issue(const void *secret, size_t secret_len, const char *account,
                           int64_t expires_at_s, char *out, size_t out_size, struct tp_error *err)
{
    if (secret_len < TOKEN_SECRET_MIN_BYTES) {
        return error_set(err, TP_INVALID, "token secret must be at least %d bytes",
                         TOKEN_SECRET_MIN_BYTES);
    }
    if (!token_account_valid(account)) {
        return error_set(err, TP_INVALID,
                         "account id must be 1..%d printable ASCII characters without spaces",
                         TOKEN_ACCOUNT_MAX);
    }
    if (expires_at_s <= 0 || expires_at_s > 999999999999LL) {
        return error_set(err, TP_INVALID, "token expiry %" PRId64 " is out of range", expires_at_s);
    }
    char acct_b64[TOKEN_ACCOUNT_B64_MAX + 1];
    token_b64_encode((const unsigned char *)account, strlen(account), acct_b64);
    char body[TOKEN_STR_MAX];
    int n = snprintf(body, sizeof(body), TOKEN_VERSION ".%s.%" PRId64, acct_b64, expires_at_s);
    unsigned char sig[TOKEN_SIG_BYTES];
    if (!token_sign(secret, secret_len, body, (size_t)n, sig)) {
        return error_set(err, TP_FATAL, "HMAC-SHA256 failed");
    }
    char sig_b64[TOKEN_SIG_B64_LEN + 1];
    token_b64_encode(sig, sizeof(sig), sig_b64);
    int total = snprintf(out, out_size, "%s.%s", body, sig_b64);
    if (total < 0 || (size_t)total >= out_size) {
        return error_set(err, TP_INVALID, "token buffer too small");
    }
    return TP_OK;
}

/* Parses the expiry part: 1..12 digits, no leading zero. */
static bool token_parse_expiry(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > TOKEN_EXPIRY_DIGITS_MAX || (s[0] == '0')) {
        return false;
    }
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

enum tp_status token_verify(const void *secret, size_t secret_len, const char *token, int64_t now_s,
                            struct token_claims *claims, struct tp_error *err)
{
    memset(claims, 0, sizeof(*claims));
    if (secret_len < TOKEN_SECRET_MIN_BYTES) {
        return error_set(err, TP_INVALID, "token secret must be at least %d bytes",
                         TOKEN_SECRET_MIN_BYTES);
    }
    size_t len = token != NULL ? strnlen(token, TOKEN_STR_MAX) : 0;
    if (len == 0 || len >= TOKEN_STR_MAX) {
        return error_set(err, TP_INVALID, "token missing or too long");
    }
    /* Split into exactly four dot-separated parts. */
    const char *parts[4];
    size_t lens[4];
    const char *p = token;
    for (int i = 0; i < 4; i++) {
        const char *dot = i < 3 ? strchr(p, '.') : NULL;
        parts[i] = p;
        lens[i] = dot != NULL ? (size_t)(dot - p) : strlen(p);
        if (i < 3 && dot == NULL) {
            return error_set(err, TP_INVALID, "token is not v1.<account>.<expiry>.<signature>");
        }
        p = dot != NULL ? dot + 1 : p + lens[i];
    }
    if (lens[0] != 2 || memcmp(parts[0], TOKEN_VERSION, 2) != 0 ||
        memchr(parts[3], '.', lens[3]) != NULL) {
        return error_set(err, TP_INVALID, "token is not a v1 token");
    }
    unsigned char account[TOKEN_ACCOUNT_MAX + 1];
    int acct_len = lens[1] <= TOKEN_ACCOUNT_B64_MAX
                       ? token_b64_decode(parts[1], lens[1], account, TOKEN_ACCOUNT_MAX)
                       : -1;
    int64_t expiry = 0;
    unsigned char given[TOKEN_SIG_BYTES];
    if (acct_len <= 0 || !token_parse_expiry(parts[2], lens[2], &expiry) ||
        lens[3] != TOKEN_SIG_B64_LEN ||
        token_b64_decode(parts[3], lens[3], given, sizeof(given)) != TOKEN_SIG_BYTES) {
        return error_set(err, TP_INVALID, "token is malformed");
    }
    unsigned char want[TOKEN_SIG_BYTES];
    if (!token_sign(secret, secret_len, token, (size_t)(parts[3] - 1 - token), want)) {
        return error_set(err, TP_FATAL, "HMAC-SHA256 failed");
    }
    if (CRYPTO_memcmp(want, given, TOKEN_SIG_BYTES) != 0) {
        return error_set(err, TP_INVALID, "token signature does not match");
    }
    account[acct_len] = '\0';
    if (!token_account_valid((const char *)account)) {
        return error_set(err, TP_INVALID, "token account id is not valid");
    }
    memcpy(claims->account, account, (size_t)acct_len + 1);
    claims->expires_at_s = expiry;
    if (now_s >= expiry) {
        claims->expired = true;
        return error_set(err, TP_INVALID, "token expired at %" PRId64, expiry);
    }
    return TP_OK;
}

enum tp_status token_parse_ttl(const char *s, int64_t *ttl_s_out, struct tp_error *err)
{
    size_t n = s != NULL ? strlen(s) : 0;
    int64_t unit = 1;
    if (n > 0) {
        switch (s[n - 1]) {
        case 's':
            n--;
            break;
        case 'm':
            unit = 60;
            n--;
            break;
        case 'h':
            unit = 3600;
            n--;
            break;
        case 'd':
            unit = 86400;
            n--;
            break;
        default:
            break;
        }
    }
    if (n == 0 || n > 9) {
        return error_set(err, TP_INVALID, "ttl \"%s\" is not like 3600, 90m, 24h or 7d",
                         s != NULL ? s : "");
    }
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return error_set(err, TP_INVALID, "ttl \"%s\" is not like 3600, 90m, 24h or 7d", s);
        }
        v = v * 10 + (s[i] - '0');
    }
    v *= unit;
    if (v <= 0 || v > TOKEN_TTL_MAX_S) {
        return error_set(err, TP_INVALID, "ttl must be between 1 s and %lld days",
                         TOKEN_TTL_MAX_S / 86400);
    }
    *ttl_s_out = v;
    return TP_OK;
}
