/* Request validation of order-intake: order bodies per the SPEC, headers, query parameters. */
#include "validate.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "topup/ids.h"
#include "topup/mem.h"
#include "topup/money.h"

#define VALIDATE_HASH_DOMAIN "topup.order.v1"

static const char *const validate_order_fields[] = {
    "amount", "channel", "remitter_name", "remitter_bank", "remarks", "agreement_accepted", NULL,
};

static const char *const validate_statuses[] = {
    "pending", "processing", "completed", "cancelled", "expired", NULL,
};

/* Copies s into out, cut at a UTF-8 character boundary so the result stays valid UTF-8. */
static void validate_copy_field(char out[VALIDATE_FIELD_MAX], const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n >= VALIDATE_FIELD_MAX) {
        n = VALIDATE_FIELD_MAX - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    if (n > 0) {
        memcpy(out, s, n);
    }
    out[n] = '\0';
}

static bool validate_fail(struct validate_error *v, unsigned status, const char *code,
                          const char *field, const char *fmt, ...) TP_PRINTF(5, 6);

static bool validate_fail(struct validate_error *v, unsigned status, const char *code,
                          const char *field, const char *fmt, ...)
{
    v->status = status;
    v->code = code;
    validate_copy_field(v->field, field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->message, sizeof(v->message), fmt, ap);
    va_end(ap);
    /* A message quoting input could have been cut inside a character: cut it back. */
    size_t n = strlen(v->message);
    if (!validate_utf8(v->message, n)) {
        while (n > 0 && !validate_utf8(v->message, n)) {
            n--;
        }
        v->message[n] = '\0';
    }
    return false;
}

/*
 * Decodes one UTF-8 sequence at s (len bytes left). Returns its length and sets *cp, or 0 when
 * the bytes are not strict UTF-8.
 */
static size_t validate_utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v;
    uint32_t min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        v = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        v = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    *cp = v;
    return n;
}

bool validate_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = validate_utf8_next(p + i, len - i, &cp);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

static bool validate_is_space(uint32_t cp)
{
    return cp == ' ' || cp == '\t' || cp == '\r' || cp == '\n' || cp == 0xa0 || cp == 0x3000;
}

/*
 * Characters refused in text fields: C0/C1 controls, line/paragraph separators and the bidi
 * overrides and isolates (they make a name display differently from what it is).
 */
static bool validate_is_forbidden(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/* Trims surrounding white space (ASCII, NBSP, ideographic space) of valid UTF-8 s: a new copy. */
static char *validate_trim(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    size_t start = 0;
    size_t end = 0; /* end of the last non-space character */
    size_t i = 0;
    bool seen = false;
    while (i < len) {
        uint32_t cp = 0;
        size_t n = validate_utf8_next(p + i, len - i, &cp);
        if (n == 0) {
            break; /* cannot happen: the whole body was checked */
        }
        if (!validate_is_space(cp)) {
            if (!seen) {
                start = i;
                seen = true;
            }
            end = i + n;
        }
        i += n;
    }
    return seen ? mem_strndup(s + start, end - start) : mem_strdup("");
}

/* Counts code points and reports whether a forbidden character is present. */
static size_t validate_chars(const char *s, bool *forbidden)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    size_t count = 0;
    size_t i = 0;
    *forbidden = false;
    while (i < len) {
        uint32_t cp = 0;
        size_t n = validate_utf8_next(p + i, len - i, &cp);
        if (n == 0) {
            *forbidden = true;
            return count;
        }
        if (validate_is_forbidden(cp)) {
            *forbidden = true;
        }
        count++;
        i += n;
    }
    return count;
}

/* A present, non-null member or NULL. */
static json_t *validate_member(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    return json_is_null(v) ? NULL : v;
}

static bool validate_json_object(const char *body, size_t len, json_t **out,
                                 struct validate_error *v)
{
    if (!validate_utf8(body, len)) {
        return validate_fail(v, 400, "invalid_utf8", NULL, "request body is not valid UTF-8");
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return validate_fail(v, 400, "invalid_json", NULL,
                             "request body is not valid JSON: %s (line %d, column %d)", jerr.text,
                             jerr.line, jerr.column);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return validate_fail(v, 400, "invalid_json", NULL, "request body must be a JSON object");
    }
    *out = root;
    return true;
}

static bool validate_known_fields(json_t *root, const char *const *known, struct validate_error *v)
{
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        bool ok = false;
        for (const char *const *k = known; *k != NULL; k++) {
            ok = ok || strcmp(*k, key) == 0;
        }
        if (!ok) {
            return validate_fail(v, 400, "unknown_field", key, "unknown field \"%.60s\"", key);
        }
    }
    return true;
}

static bool validate_types(json_t *root, struct validate_error *v)
{
    for (const char *const *f = validate_order_fields; *f != NULL; f++) {
        json_t *m = validate_member(root, *f);
        bool want_bool = strcmp(*f, "agreement_accepted") == 0;
        if (m == NULL || (want_bool ? json_is_boolean(m) : json_is_string(m))) {
            continue;
        }
        if (strcmp(*f, "amount") == 0) {
            return validate_fail(v, 400, "wrong_type", *f,
                                 "amount must be a decimal string like \"100.00\", not a %s",
                                 json_is_number(m) ? "number" : "non-string");
        }
        return validate_fail(v, 400, "wrong_type", *f, "%s must be a %s", *f,
                             want_bool ? "boolean" : "string");
    }
    return true;
}

static bool validate_amount(json_t *root, int64_t min_fen, int64_t max_fen, int64_t *out,
                            struct validate_error *v)
{
    json_t *m = validate_member(root, "amount");
    if (m == NULL) {
        return validate_fail(v, 400, "invalid_amount", "amount", "amount is required");
    }
    struct tp_error err = {0};
    int64_t fen = 0;
    if (money_parse(json_string_value(m), &fen, &err) != TP_OK) {
        return validate_fail(v, 400, "invalid_amount", "amount", "%s", err.msg);
    }
    char buf[MONEY_STR_MAX];
    if (fen < min_fen) {
        return validate_fail(v, 422, "amount_below_minimum", "amount",
                             "amount must be at least %s CNY", money_format(min_fen, buf));
    }
    if (fen > max_fen) {
        return validate_fail(v, 422, "amount_above_maximum", "amount",
                             "amount must be at most %s CNY", money_format(max_fen, buf));
    }
    *out = fen;
    return true;
}

/*
 * A text field: trimmed, forbidden characters refused, length bounded. required: blank is an
 * error with required_code. On success *out is a new string.
 */
static bool validate_text(json_t *root, const char *field, bool required, size_t max_chars,
                          const char *required_code, const char *too_long_code, char **out,
                          struct validate_error *v)
{
    json_t *m = validate_member(root, field);
    char *text = validate_trim(m != NULL ? json_string_value(m) : "");
    if (text[0] == '\0' && required) {
        free(text);
        return validate_fail(v, 422, required_code, field, "%s is required", field);
    }
    bool forbidden = false;
    size_t chars = validate_chars(text, &forbidden);
    if (forbidden) {
        free(text);
        return validate_fail(v, 422, "invalid_characters", field,
                             "%s contains control or direction-override characters", field);
    }
    if (chars > max_chars) {
        free(text);
        return validate_fail(v, 422, too_long_code, field, "%s is longer than %zu characters",
                             field, max_chars);
    }
    *out = text;
    return true;
}

static void validate_hash_part(EVP_MD_CTX *md, const char *s)
{
    size_t n = strlen(s);
    unsigned char len[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                            (unsigned char)(n >> 8), (unsigned char)n};
    EVP_DigestUpdate(md, len, sizeof(len));
    EVP_DigestUpdate(md, s, n);
}

/* The canonical form: each validated value length-prefixed, so no two requests collide. */
static void validate_hash(struct validate_order *o)
{
    char amount[32];
    snprintf(amount, sizeof(amount), "%" PRId64, o->amount_fen);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        abort(); /* out of memory inside OpenSSL */
    }
    validate_hash_part(md, VALIDATE_HASH_DOMAIN);
    validate_hash_part(md, amount);
    validate_hash_part(md, VALIDATE_CHANNEL);
    validate_hash_part(md, o->remitter_name);
    validate_hash_part(md, o->remitter_bank);
    validate_hash_part(md, o->remarks);
    EVP_DigestFinal_ex(md, o->hash, &n);
    EVP_MD_CTX_free(md);
}

bool validate_order_body(const char *body, size_t len, int64_t min_fen, int64_t max_fen,
                         struct validate_order *out, struct validate_error *v)
{
    memset(out, 0, sizeof(*out));
    json_t *root = NULL;
    bool ok = validate_json_object(body, len, &root, v) &&
              validate_known_fields(root, validate_order_fields, v) && validate_types(root, v) &&
              validate_amount(root, min_fen, max_fen, &out->amount_fen, v);
    if (ok) {
        json_t *ch = validate_member(root, "channel");
        if (ch == NULL || strcmp(json_string_value(ch), VALIDATE_CHANNEL) != 0) {
            ok = validate_fail(v, 422, "invalid_channel", "channel",
                               "channel must be \"" VALIDATE_CHANNEL "\"");
        }
    }
    ok = ok &&
         validate_text(root, "remitter_name", true, VALIDATE_NAME_MAX_CHARS,
                       "remitter_name_required", "remitter_name_too_long", &out->remitter_name, v);
    ok = ok &&
         validate_text(root, "remitter_bank", true, VALIDATE_NAME_MAX_CHARS,
                       "remitter_bank_required", "remitter_bank_too_long", &out->remitter_bank, v);
    ok = ok && validate_text(root, "remarks", false, VALIDATE_REMARKS_MAX_CHARS, NULL,
                             "remarks_too_long", &out->remarks, v);
    if (ok) {
        json_t *ag = validate_member(root, "agreement_accepted");
        if (ag == NULL || !json_is_true(ag)) {
            ok = validate_fail(v, 422, "agreement_required", "agreement_accepted",
                               "the recharge agreement must be accepted");
        }
    }
    if (ok) {
        struct tp_error err = {0};
        if (names_normalize(out->remitter_name, strlen(out->remitter_name), out->name_norm, &err) !=
            TP_OK) {
            /* Valid UTF-8 was checked: only a name that expands past the bound lands here. */
            ok = validate_fail(v, 422, "remitter_name_too_long", "remitter_name",
                               "remitter_name is too long once normalised");
        }
    }
    json_decref(root);
    if (!ok) {
        validate_order_deinit(out);
        return false;
    }
    validate_hash(out);
    return true;
}

void validate_order_deinit(struct validate_order *o)
{
    free(o->remitter_name);
    free(o->remitter_bank);
    free(o->remarks);
    o->remitter_name = o->remitter_bank = o->remarks = NULL;
}

bool validate_empty_body(const char *body, size_t len, struct validate_error *v)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')) {
        i++;
    }
    if (i == len) {
        return true;
    }
    json_t *root = NULL;
    static const char *const none[] = {NULL};
    bool ok = validate_json_object(body, len, &root, v) && validate_known_fields(root, none, v);
    json_decref(root);
    return ok;
}

bool validate_content_type_json(const char *ct)
{
    static const char want[] = "application/json";
    if (ct == NULL || strncasecmp(ct, want, sizeof(want) - 1) != 0) {
        return false;
    }
    const char *p = ct + sizeof(want) - 1;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p == '\0') {
        return true;
    }
    if (*p != ';') {
        return false;
    }
    /* A charset parameter, if given, must say UTF-8 (JSON has no other encoding on the wire). */
    const char *cs = strcasestr(p, "charset=");
    if (cs == NULL) {
        return true;
    }
    cs += strlen("charset=");
    if (*cs == '"') {
        cs++;
    }
    return strncasecmp(cs, "utf-8", 5) == 0 &&
           (cs[5] == '\0' || cs[5] == '"' || cs[5] == ';' || cs[5] == ' ');
}

bool validate_idempotency_key(const char *key, struct validate_error *v)
{
    if (key == NULL) {
        return validate_fail(v, 400, "idempotency_key_required", "Idempotency-Key",
                             "header Idempotency-Key is required to create an order");
    }
    size_t n = strlen(key);
    bool ok = n >= 1 && n <= VALIDATE_IDEM_KEY_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        ok = key[i] >= 0x21 && key[i] <= 0x7e;
    }
    if (!ok) {
        return validate_fail(v, 400, "invalid_idempotency_key", "Idempotency-Key",
                             "Idempotency-Key must be 1 to %d printable ASCII characters",
                             VALIDATE_IDEM_KEY_MAX);
    }
    return true;
}

bool validate_limit(const char *s, int *out, struct validate_error *v)
{
    if (s == NULL) {
        *out = VALIDATE_LIMIT_DEFAULT;
        return true;
    }
    int val = 0;
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= 3 && s[0] != '0';
    for (size_t i = 0; ok && i < n; i++) {
        ok = s[i] >= '0' && s[i] <= '9';
        val = val * 10 + (s[i] - '0');
    }
    if (!ok || val < 1 || val > VALIDATE_LIMIT_MAX) {
        return validate_fail(v, 400, "invalid_limit", "limit", "limit must be 1 to %d",
                             VALIDATE_LIMIT_MAX);
    }
    *out = val;
    return true;
}

static const char validate_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Cursor layout before base64url: version, list, the row id (8 bytes, big-endian), MAC. */
#define CURSOR_VERSION   1
#define CURSOR_MAC_BYTES 16 /* HMAC-SHA256 truncated to 128 bits */
#define CURSOR_RAW_BYTES (2 + 8 + CURSOR_MAC_BYTES)

void validate_cursor_key(const void *secret, size_t secret_len,
                         unsigned char key[VALIDATE_CURSOR_KEY_BYTES])
{
    /* A key of its own, so a cursor's MAC can never serve as anything else (a token's). */
    static const char label[] = "topup order-intake list cursor key v1";
    unsigned int n = 0;
    if (HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)label, sizeof(label) - 1,
             key, &n) == NULL ||
        n != VALIDATE_CURSOR_KEY_BYTES) {
        abort(); /* HMAC-SHA256 over a constant cannot fail but for a broken libcrypto */
    }
}

static void cursor_mac(const unsigned char key[VALIDATE_CURSOR_KEY_BYTES],
                       const struct validate_cursor_scope *sc, const unsigned char raw[10],
                       unsigned char mac[CURSOR_MAC_BYTES])
{
    /* MAC over the version, the list, its filter, the account and the id: length-prefixed. */
    unsigned char msg[10 + 2 + 255 + 2 + 255];
    size_t n = 0;
    memcpy(msg, raw, 10);
    n = 10;
    const char *parts[2] = {sc->filter != NULL ? sc->filter : "", sc->account};
    for (int i = 0; i < 2; i++) {
        size_t len = strlen(parts[i]);
        len = len > 255 ? 255 : len;
        msg[n++] = (unsigned char)len;
        memcpy(msg + n, parts[i], len);
        n += len;
    }
    unsigned char full[32];
    unsigned int flen = 0;
    if (HMAC(EVP_sha256(), key, VALIDATE_CURSOR_KEY_BYTES, msg, n, full, &flen) == NULL) {
        abort();
    }
    memcpy(mac, full, CURSOR_MAC_BYTES);
}

void validate_cursor_encode(const unsigned char key[VALIDATE_CURSOR_KEY_BYTES],
                            const struct validate_cursor_scope *sc, int64_t id,
                            char out[VALIDATE_CURSOR_MAX])
{
    unsigned char raw[CURSOR_RAW_BYTES];
    raw[0] = CURSOR_VERSION;
    raw[1] = (unsigned char)sc->list;
    for (int i = 0; i < 8; i++) {
        raw[2 + i] = (unsigned char)((uint64_t)id >> (56 - 8 * i));
    }
    cursor_mac(key, sc, raw, raw + 10);
    size_t o = 0;
    for (size_t i = 0; i < sizeof(raw); i += 3) {
        size_t k = sizeof(raw) - i >= 3 ? 3 : sizeof(raw) - i;
        uint32_t v = (uint32_t)raw[i] << 16;
        v |= k > 1 ? (uint32_t)raw[i + 1] << 8 : 0;
        v |= k > 2 ? raw[i + 2] : 0;
        for (size_t j = 0; j <= k; j++) {
            out[o++] = validate_b64[(v >> (18 - 6 * j)) & 63];
        }
    }
    out[o] = '\0';
}

/* Strict base64url without padding of exactly CURSOR_RAW_BYTES bytes. */
static bool cursor_b64_decode(const char *s, unsigned char raw[CURSOR_RAW_BYTES])
{
    size_t len = strlen(s);
    if (len != (CURSOR_RAW_BYTES * 4 + 2) / 3) {
        return false;
    }
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        const char *p = strchr(validate_b64, s[i]);
        if (p == NULL) {
            return false;
        }
        acc = (acc << 6) | (uint32_t)(p - validate_b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            raw[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return n == CURSOR_RAW_BYTES && acc == 0; /* no stray bits: one spelling per cursor */
}

bool validate_cursor_decode(const unsigned char key[VALIDATE_CURSOR_KEY_BYTES],
                            const struct validate_cursor_scope *sc, const char *s, int64_t *id_out,
                            struct validate_error *v)
{
    if (s == NULL || s[0] == '\0') {
        *id_out = INT64_MAX;
        return true;
    }
    unsigned char raw[CURSOR_RAW_BYTES];
    if (!cursor_b64_decode(s, raw) || raw[0] != CURSOR_VERSION) {
        return validate_fail(v, 400, "invalid_cursor", "cursor",
                             "cursor is not one this API returned: pass back next_cursor as it "
                             "came, or leave cursor out for the first page");
    }
    if (raw[1] != (unsigned char)sc->list) {
        return validate_fail(v, 400, "invalid_cursor", "cursor",
                             "this cursor belongs to another list: a cursor only pages the list "
                             "that returned it");
    }
    unsigned char mac[CURSOR_MAC_BYTES];
    cursor_mac(key, sc, raw, mac);
    if (CRYPTO_memcmp(mac, raw + 10, CURSOR_MAC_BYTES) != 0) {
        return validate_fail(v, 400, "invalid_cursor", "cursor",
                             "cursor is not one this API returned for this account and filter: "
                             "leave cursor out to start from the first page");
    }
    uint64_t id = 0;
    for (int i = 0; i < 8; i++) {
        id = (id << 8) | raw[2 + i];
    }
    if (id == 0 || id > (uint64_t)INT64_MAX) {
        return validate_fail(v, 400, "invalid_cursor", "cursor", "cursor is not valid");
    }
    *id_out = (int64_t)id;
    return true;
}

bool validate_order_status(const char *s, struct validate_error *v)
{
    if (s == NULL) {
        return true;
    }
    for (const char *const *st = validate_statuses; *st != NULL; st++) {
        if (strcmp(*st, s) == 0) {
            return true;
        }
    }
    return validate_fail(v, 400, "invalid_status", "status",
                         "status must be pending, processing, completed, cancelled or expired");
}

bool validate_flow_type(const char *s, const char **type_out, struct validate_error *v)
{
    static const char *const types[] = {"recharge", "consume", "refund", NULL};
    *type_out = NULL;
    if (s == NULL || strcmp(s, "all") == 0) {
        return true;
    }
    for (const char *const *t = types; *t != NULL; t++) {
        if (strcmp(*t, s) == 0) {
            *type_out = *t;
            return true;
        }
    }
    return validate_fail(v, 400, "invalid_flow_type", "type",
                         "type must be all, recharge, consume or refund");
}

bool validate_order_code(const char *s, char out[16])
{
    size_t n = strlen(s);
    if (n != REFCODE_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        out[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    out[n] = '\0';
    return ids_refcode_valid(out);
}

/* ---- refunds ---- */

static const char *const validate_refund_fields[] = {"amount", "reason", NULL};

bool validate_refund_body(const char *body, size_t len, struct validate_refund *out,
                          struct validate_error *v)
{
    memset(out, 0, sizeof(*out));
    json_t *root = NULL;
    bool ok = validate_json_object(body, len, &root, v) &&
              validate_known_fields(root, validate_refund_fields, v);
    for (const char *const *f = validate_refund_fields; ok && *f != NULL; f++) {
        json_t *m = validate_member(root, *f);
        if (m != NULL && !json_is_string(m)) {
            ok = validate_fail(v, 400, "wrong_type", *f, "%s must be a string", *f);
        }
    }
    /* The cap (unused paid credit) is checked against the database; here only the form. */
    ok = ok && validate_amount(root, 1, INT64_MAX, &out->amount_fen, v);
    char *reason = NULL;
    ok = ok && validate_text(root, "reason", true, VALIDATE_REFUND_REASON_MAX_CHARS,
                             "reason_required", "reason_too_long", &reason, v);
    json_decref(root);
    if (!ok) {
        return false;
    }
    snprintf(out->reason, sizeof(out->reason), "%s", reason);
    free(reason);
    char amount[32];
    snprintf(amount, sizeof(amount), "%" PRId64, out->amount_fen);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        abort(); /* out of memory inside OpenSSL */
    }
    validate_hash_part(md, "topup.refund.v1");
    validate_hash_part(md, amount);
    validate_hash_part(md, out->reason);
    EVP_DigestFinal_ex(md, out->hash, &n);
    EVP_MD_CTX_free(md);
    return true;
}

bool validate_refund_id(const char *s, char out[VALIDATE_REFUND_ID_MAX])
{
    size_t n = strlen(s);
    if (n < 3 || n >= VALIDATE_REFUND_ID_MAX || (s[0] != 'R' && s[0] != 'r') ||
        (s[1] != 'F' && s[1] != 'f')) {
        return false;
    }
    for (size_t i = 2; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    out[0] = 'R';
    out[1] = 'F';
    memcpy(out + 2, s + 2, n - 1);
    return true;
}
