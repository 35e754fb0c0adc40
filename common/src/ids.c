/* Identifiers: UUIDv7 event ids and order reference codes with a mod-29 check character. */
#include "topup/ids.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char ids_alphabet[] = "23456789ABCDEFGHJKMNPQRSTWXYZ";
#define IDS_ALPHABET_LEN 29
#define IDS_REFCODE_BODY 7

static void ids_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            /* getrandom only fails on interruption before any byte; anything else is a broken OS.
             */
            continue;
        }
        p += n;
        len -= (size_t)n;
    }
}

static pthread_mutex_t ids_uuid_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t ids_last_ms;
static uint16_t ids_last_seq;

void ids_uuid7(char out[UUID_STR_LEN])
{
    unsigned char b[16];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    ids_random(b, sizeof(b));

    /* Monotonic within the process: a 12-bit counter in rand_a, seeded randomly each ms. */
    pthread_mutex_lock(&ids_uuid_lock);
    uint16_t seq;
    if (ms <= ids_last_ms) {
        ms = ids_last_ms;
        seq = (uint16_t)(ids_last_seq + 1);
        if (seq > 0x0fff) {
            ms++;
            seq = (uint16_t)((b[6] << 8 | b[7]) & 0x07ff);
        }
    } else {
        seq = (uint16_t)((b[6] << 8 | b[7]) & 0x07ff);
    }
    ids_last_ms = ms;
    ids_last_seq = seq;
    pthread_mutex_unlock(&ids_uuid_lock);

    for (int i = 0; i < 6; i++) {
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    }
    b[6] = (unsigned char)(0x70 | ((seq >> 8) & 0x0f));
    b[7] = (unsigned char)(seq & 0xff);
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    snprintf(out, UUID_STR_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

bool ids_uuid_valid(const char *s)
{
    if (s == NULL || strlen(s) != 36) {
        return false;
    }
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return false;
            }
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

static int ids_symbol_value(char c)
{
    const char *p = c != '\0' ? strchr(ids_alphabet, c) : NULL;
    return p == NULL ? -1 : (int)(p - ids_alphabet);
}

/* Weighted sum with weights 1..7: any single substitution or adjacent swap changes it mod 29. */
static int ids_check_value(const char *body)
{
    int sum = 0;
    for (int i = 0; i < IDS_REFCODE_BODY; i++) {
        sum += (i + 1) * ids_symbol_value(body[i]);
    }
    return sum % IDS_ALPHABET_LEN;
}

void ids_refcode_new(char out[REFCODE_STR_LEN])
{
    unsigned char r[IDS_REFCODE_BODY];
    memcpy(out, REFCODE_PREFIX, 2);
    for (int i = 0; i < IDS_REFCODE_BODY; i++) {
        /* Rejection sampling keeps every symbol equally likely. */
        do {
            ids_random(&r[i], 1);
        } while (r[i] >= 256 - (256 % IDS_ALPHABET_LEN));
        out[2 + i] = ids_alphabet[r[i] % IDS_ALPHABET_LEN];
    }
    out[2 + IDS_REFCODE_BODY] = ids_alphabet[ids_check_value(out + 2)];
    out[REFCODE_LEN] = '\0';
}

/* Checks the REFCODE_LEN characters at s (no terminator needed). */
static bool ids_refcode_valid_n(const char *s)
{
    if (s[0] != 'T' || s[1] != 'U') {
        return false;
    }
    for (int i = 2; i < REFCODE_LEN; i++) {
        if (ids_symbol_value(s[i]) < 0) {
            return false;
        }
    }
    return ids_symbol_value(s[REFCODE_LEN - 1]) == ids_check_value(s + 2);
}

bool ids_refcode_valid(const char *s)
{
    return s != NULL && strlen(s) == REFCODE_LEN && ids_refcode_valid_n(s);
}

int ids_refcode_find_all(const char *text, size_t len, char (*out)[REFCODE_STR_LEN], int max)
{
    /* Fold to upper case and drop spaces and hyphens; any other character breaks a run. */
    char run[REFCODE_LEN];
    int found = 0;
    size_t n = 0;
    for (size_t i = 0; i <= len && found < max; i++) {
        char c = i < len ? text[i] : '\0';
        if (c == ' ' || c == '-' || c == '\t') {
            continue;
        }
        if (c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        bool alnum = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum) {
            n = 0;
            continue;
        }
        if (n == REFCODE_LEN) {
            memmove(run, run + 1, REFCODE_LEN - 1);
            n--;
        }
        run[n++] = c;
        if (n == REFCODE_LEN && ids_refcode_valid_n(run)) {
            bool dup = false;
            for (int k = 0; k < found; k++) {
                dup = dup || memcmp(out[k], run, REFCODE_LEN) == 0;
            }
            if (!dup) {
                memcpy(out[found], run, REFCODE_LEN);
                out[found][REFCODE_LEN] = '\0';
                found++;
            }
            n = 0;
        }
    }
    return found;
}

bool ids_refcode_find(const char *text, size_t len, char out[REFCODE_STR_LEN])
{
    return ids_refcode_find_all(text, len, (char(*)[REFCODE_STR_LEN])out, 1) == 1;
}
