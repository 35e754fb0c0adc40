/* Identifiers: UUIDv7 event ids and human order reference codes with a check character. */
#ifndef TOPUP_IDS_H
#define TOPUP_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UUID_STR_LEN 37 /* 36 characters and NUL */

/*
 * Reference codes: "TU" + 7 random characters + 1 check character, from an alphabet without
 * 0/O, 1/I/L, U/V lookalikes: 23456789ABCDEFGHJKMNPQRSTWXYZ (29 symbols, a prime, so the
 * weighted-sum check character catches every single substitution and adjacent transposition).
 */
#define REFCODE_LEN     10
#define REFCODE_STR_LEN 11
#define REFCODE_PREFIX  "TU"

/* Writes a new UUIDv7 (RFC 9562: 48-bit ms timestamp, random rest; monotonic within a process). */
void ids_uuid7(char out[UUID_STR_LEN]);

/* True when s is a canonical lower-case UUID string (any version). */
bool ids_uuid_valid(const char *s);

/* Writes a new random reference code (CSPRNG). */
void ids_refcode_new(char out[REFCODE_STR_LEN]);

/* True when s is exactly REFCODE_LEN upper-case characters with a valid check character. */
bool ids_refcode_valid(const char *s);

/*
 * Finds a valid reference code in free text (remittance information): case, spaces and hyphens
 * ignored, surrounding noise tolerated. Writes the canonical code to out and returns true on the
 * first valid one; false when none is present.
 */
bool ids_refcode_find(const char *text, size_t len, char out[REFCODE_STR_LEN]);

/* Like ids_refcode_find, but collects up to max distinct codes; returns how many were found. */
int ids_refcode_find_all(const char *text, size_t len, char (*out)[REFCODE_STR_LEN], int max);

#endif
