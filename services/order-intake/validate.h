/* Request validation of order-intake: the order body per the SPEC, headers and query parameters. */
#ifndef INTAKE_VALIDATE_H
#define INTAKE_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "topup/names.h"

#define VALIDATE_NAME_MAX_CHARS    64  /* remitter_name, remitter_bank (code points) */
#define VALIDATE_REMARKS_MAX_CHARS 200 /* remarks (code points) */
#define VALIDATE_IDEM_KEY_MAX      255 /* Idempotency-Key bytes (printable ASCII) */
#define VALIDATE_LIMIT_DEFAULT     20
#define VALIDATE_LIMIT_MAX         100
#define VALIDATE_CURSOR_MAX        48 /* bytes of an encoded cursor, NUL included */
#define VALIDATE_CURSOR_KEY_BYTES  32 /* the cursors' HMAC-SHA256 key */
#define VALIDATE_HASH_BYTES        32
#define VALIDATE_CHANNEL           "bank_transfer"

#define VALIDATE_FIELD_MAX 64

/* A refusal: HTTP status, stable code, the field concerned ("" for none) and a message. */
struct validate_error {
    unsigned status;
    const char *code; /* static string */
    char field[VALIDATE_FIELD_MAX];
    char message[256];
};

/* A validated create-order request. Strings are owned (free with validate_order_deinit). */
struct validate_order {
    int64_t amount_fen;
    char *remitter_name; /* trimmed */
    char *remitter_bank; /* trimmed */
    char *remarks;       /* trimmed; "" when absent */
    char name_norm[NAMES_NORM_MAX];
    /* SHA-256 of the canonical form of the validated values (the idempotency fingerprint). */
    unsigned char hash[VALIDATE_HASH_BYTES];
};

/*
 * Validates a create-order body (len bytes) against the SPEC with the configured amount bounds.
 * True and out filled, or false with verr filled (out needs no deinit then).
 */
bool validate_order_body(const char *body, size_t len, int64_t min_fen, int64_t max_fen,
                         struct validate_order *out, struct validate_error *verr);

void validate_order_deinit(struct validate_order *o);

/* A body that must be empty or an empty JSON object (cancel). */
bool validate_empty_body(const char *body, size_t len, struct validate_error *verr);

/* Content-Type is application/json (parameters allowed; a charset must be utf-8). */
bool validate_content_type_json(const char *content_type);

/* The Idempotency-Key header (NULL when absent). */
bool validate_idempotency_key(const char *key, struct validate_error *verr);

/* "limit" query parameter: NULL gives the default; 1..VALIDATE_LIMIT_MAX. */
bool validate_limit(const char *s, int *out, struct validate_error *verr);

/*
 * Cursors are opaque to clients and bound to what returned them: base64url of a version, the
 * list, the last row id of the page and an HMAC-SHA256 (128 bits) over those with the list's
 * filter and the account. A cursor of another list, filter or account, or an altered one, is
 * refused 400 invalid_cursor.
 */
struct validate_cursor_scope {
    char list;          /* 'o' orders, 'f' flows, 'r' refunds (one letter per list of the API) */
    const char *filter; /* the list's filter as normalised by the handler; NULL or "" for none */
    const char *account;
};

/* The cursors' key from the configured secret (a key of its own, never the secret itself). */
void validate_cursor_key(const void *secret, size_t secret_len,
                         unsigned char key[VALIDATE_CURSOR_KEY_BYTES]);
void validate_cursor_encode(const unsigned char key[VALIDATE_CURSOR_KEY_BYTES],
                            const struct validate_cursor_scope *sc, int64_t id,
                            char out[VALIDATE_CURSOR_MAX]);
/* NULL or "" means the first page (*id_out = INT64_MAX). */
bool validate_cursor_decode(const unsigned char key[VALIDATE_CURSOR_KEY_BYTES],
                            const struct validate_cursor_scope *sc, const char *s, int64_t *id_out,
                            struct validate_error *verr);

/* Order status filter: NULL (all) or one of the statuses. */
bool validate_order_status(const char *s, struct validate_error *verr);

/* Flow type filter: NULL or "all" give NULL in *type_out; else recharge, consume or refund. */
bool validate_flow_type(const char *s, const char **type_out, struct validate_error *verr);

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
bool validate_utf8(const char *s, size_t len);

/* A validated POST /v1/refunds body. */
#define VALIDATE_REFUND_REASON_MAX_CHARS 500 /* reason (code points) */
#define VALIDATE_REFUND_ID_MAX           24  /* "RF" and digits, NUL included */
struct validate_refund {
    int64_t amount_fen;                                    /* > 0; the cap is the database's */
    char reason[VALIDATE_REFUND_REASON_MAX_CHARS * 4 + 1]; /* trimmed, non-empty */
    unsigned char hash[VALIDATE_HASH_BYTES];               /* idempotency fingerprint */
};

/* {"amount": "100.00", "reason": "..."}: true and out filled, or false with verr. */
bool validate_refund_body(const char *body, size_t len, struct validate_refund *out,
                          struct validate_error *verr);

/* A refund id in a URL (RF and digits, case-insensitive), upper-cased into out. */
bool validate_refund_id(const char *s, char out[VALIDATE_REFUND_ID_MAX]);

/* Reference codes in URLs: case-insensitive, upper-cased into out; false when not a valid code. */
bool validate_order_code(const char *s, char out[16]);

#endif
