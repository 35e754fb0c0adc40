/* Record identity: the bank's id or a deterministic fingerprint with an occurrence counter. */
#include "identity.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topup/mem.h"

struct identity_slot {
    uint8_t key[16];
    uint32_t count;
    uint32_t first_line;
    uint32_t shared_index; /* into the shared list, when shared */
    uint8_t used;
    uint8_t bank;
    uint8_t shared; /* a bank id that does not identify one transaction */
};

struct identity {
    uint64_t *bloom; /* IDENTITY_BLOOM_BITS bits; calloc'd pages are touched only when set */
    struct identity_slot *slots;
    uint32_t cap; /* power of two */
    uint32_t n;
    uint32_t bank_candidates;
    struct identity_shared *shared; /* grown as needed, at most IDENTITY_SHARED_MAX */
    uint32_t nshared, shared_cap;
};

struct identity *identity_new(void)
{
    struct identity *id = mem_calloc(1, sizeof *id);
    id->bloom = mem_calloc(IDENTITY_BLOOM_BITS / 64, sizeof(uint64_t));
    id->cap = 1024;
    id->slots = mem_calloc(id->cap, sizeof *id->slots);
    return id;
}

void identity_free(struct identity *id)
{
    if (id == NULL) {
        return;
    }
    free(id->bloom);
    free(id->slots);
    free(id->shared);
    free(id);
}

/* Appends a field and a unit separator (fields never contain control characters). */
static size_t identity_put(uint8_t *buf, size_t o, const char *s)
{
    size_t n = strlen(s);
    memcpy(buf + o, s, n);
    buf[o + n] = 0x1F;
    return o + n + 1;
}

/*
 * SHA-256 with the algorithm fetched once per thread: OpenSSL 3's one-shot SHA256() fetches it
 * (under a lock) on every call, which cost more than the hashing at a million records.
 */
static void identity_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
    static _Thread_local EVP_MD *md;
    static _Thread_local EVP_MD_CTX *ctx;
    if (md == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
        ctx = EVP_MD_CTX_new();
        if (md == NULL || ctx == NULL) {
            abort(); /* libcrypto without SHA-256 is a broken installation */
        }
    }
    unsigned int n = 0;
    if (EVP_DigestInit_ex2(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, data, len) != 1 ||
        EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != 32) {
        abort();
    }
}

/* Decimal digits of v (fast; the hot path formats one per record). */
static size_t identity_i64(int64_t v, char *out)
{
    char tmp[24];
    size_t n = 0, o = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0) {
        out[o++] = '-';
    }
    while (n > 0) {
        out[o++] = tmp[--n];
    }
    out[o] = '\0';
    return o;
}

void identity_key(const struct record *r, struct identity_key *k)
{
    /* Large enough for every field at its maximum plus separators. */
    uint8_t buf[RECORD_ACCOUNT_MAX * 2 + RECORD_ID_MAX + RECORD_NAME_MAX + RECORD_REMIT_MAX + 128];
    size_t o = 0;
    if (r->bank_txn_id[0] != '\0' && !r->id_is_fingerprint) {
        k->bank = true;
        o = identity_put(buf, o, "bank.v1");
        o = identity_put(buf, o, r->receiving_account);
        o = identity_put(buf, o, r->bank_txn_id);
    } else {
        char amount[24];
        k->bank = false;
        identity_i64(r->amount_fen, amount);
        o = identity_put(buf, o, "fp.v1");
        o = identity_put(buf, o, r->receiving_account);
        o = identity_put(buf, o, r->booking_date);
        o = identity_put(buf, o, r->value_date);
        o = identity_put(buf, o, r->booking_time);
        o = identity_put(buf, o, amount);
        o = identity_put(buf, o, r->currency);
        o = identity_put(buf, o, r->reversal ? "R" : "");
        o = identity_put(buf, o, r->counterparty_name);
        o = identity_put(buf, o, r->counterparty_account);
        o = identity_put(buf, o, r->remittance);
    }
    identity_sha256(buf, o, k->b);
}

/* The fingerprint of a record whose bank id is shared: the id and everything the plain one covers.
 */
static void identity_fallback_key(const struct record *r, struct identity_key *k)
{
    uint8_t buf[RECORD_ACCOUNT_MAX * 2 + RECORD_ID_MAX + RECORD_NAME_MAX + RECORD_REMIT_MAX + 160];
    char amount[24];
    size_t o = 0;
    k->bank = false;
    identity_i64(r->amount_fen, amount);
    o = identity_put(buf, o, "fpb.v1");
    o = identity_put(buf, o, r->receiving_account);
    o = identity_put(buf, o, r->bank_txn_id);
    o = identity_put(buf, o, r->booking_date);
    o = identity_put(buf, o, r->value_date);
    o = identity_put(buf, o, r->booking_time);
    o = identity_put(buf, o, amount);
    o = identity_put(buf, o, r->currency);
    o = identity_put(buf, o, r->reversal ? "R" : "");
    o = identity_put(buf, o, r->counterparty_name);
    o = identity_put(buf, o, r->counterparty_account);
    o = identity_put(buf, o, r->remittance);
    identity_sha256(buf, o, k->b);
}

static uint32_t identity_word(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static struct identity_slot *identity_find(struct identity *id, const uint8_t *key, bool insert)
{
    uint32_t mask = id->cap - 1;
    uint32_t i = identity_word(key) & mask;
    for (;;) {
        struct identity_slot *s = &id->slots[i];
        if (!s->used) {
            return insert ? s : NULL;
        }
        if (memcmp(s->key, key, 16) == 0) {
            return s;
        }
        i = (i + 1) & mask;
    }
}

static void identity_grow(struct identity *id)
{
    struct identity_slot *old = id->slots;
    uint32_t old_cap = id->cap;
    id->cap *= 2;
    id->slots = mem_calloc(id->cap, sizeof *id->slots);
    for (uint32_t i = 0; i < old_cap; i++) {
        if (old[i].used) {
            *identity_find(id, old[i].key, true) = old[i];
        }
    }
    free(old);
}

static uint64_t *identity_block(const struct identity *id, const struct identity_key *k)
{
    uint32_t block = identity_word(k->b + 16) & (IDENTITY_BLOOM_BITS / 512 - 1);
    return id->bloom + (size_t)block * 8;
}

void identity_prefetch(const struct identity *id, const struct identity_key *k)
{
    __builtin_prefetch(identity_block(id, k), 1, 1);
}

enum identity_seen identity_observe(struct identity *id, const struct identity_key *k)
{
    /* Blocked Bloom filter: the four bits of a key share one 512-bit block (one cache line). */
    uint64_t *words = identity_block(id, k);
    bool all = true;
    for (int h = 0; h < 4; h++) {
        uint32_t bit = (uint32_t)k->b[20 + 2 * h] | (uint32_t)(k->b[21 + 2 * h] & 1) << 8;
        uint64_t m = (uint64_t)1 << (bit & 63);
        if ((words[bit >> 6] & m) == 0) {
            all = false;
            words[bit >> 6] |= m;
        }
    }
    if (!all) {
        return IDENTITY_FIRST;
    }
    struct identity_slot *s = identity_find(id, k->b, false);
    if (s != NULL) {
        return IDENTITY_CANDIDATE;
    }
    if (id->n >= IDENTITY_CANDIDATES_MAX) {
        return IDENTITY_FULL;
    }
    if ((id->n + 1) * 4 > id->cap * 3) {
        identity_grow(id);
    }
    s = identity_find(id, k->b, true);
    memcpy(s->key, k->b, 16);
    s->used = 1;
    s->bank = k->bank;
    id->n++;
    if (k->bank) {
        id->bank_candidates++;
    }
    return IDENTITY_CANDIDATE;
}

bool identity_has_bank_candidates(const struct identity *id)
{
    return id->bank_candidates > 0;
}

void identity_reset_counts(struct identity *id)
{
    for (uint32_t i = 0; i < id->cap; i++) {
        id->slots[i].count = 0;
        id->slots[i].first_line = 0;
    }
}

uint32_t identity_count(struct identity *id, const struct identity_key *k, uint32_t line,
                        uint32_t *first_line)
{
    struct identity_slot *s = identity_find(id, k->b, false);
    if (s == NULL) {
        return 1;
    }
    if (s->count == 0) {
        s->first_line = line;
    }
    s->count++;
    *first_line = s->first_line;
    return s->count;
}

void identity_assign_fingerprint(struct record *r, const struct identity_key *k,
                                 uint32_t occurrence)
{
    static const char hex[] = "0123456789abcdef";
    char h[33];
    for (int i = 0; i < 16; i++) {
        h[2 * i] = hex[k->b[i] >> 4];
        h[2 * i + 1] = hex[k->b[i] & 15];
    }
    h[32] = '\0';
    snprintf(r->bank_txn_id, sizeof r->bank_txn_id, IDENTITY_FP_PREFIX "%s:%" PRIu32, h,
             occurrence);
    r->id_is_fingerprint = true;
}

uint32_t identity_candidates(const struct identity *id)
{
    return id->n;
}

/* Appends (account, bank id) to the shared list; false when it is full. */
static bool identity_list_shared(struct identity *id, struct identity_slot *slot,
                                 const char *account, const char *bank_txn_id)
{
    if (id->nshared == IDENTITY_SHARED_MAX) {
        return false;
    }
    if (id->nshared == id->shared_cap) {
        id->shared_cap = id->shared_cap == 0 ? 64 : id->shared_cap * 2;
        id->shared = mem_realloc(id->shared, id->shared_cap * sizeof *id->shared);
    }
    struct identity_shared *e = &id->shared[id->nshared];
    memset(e, 0, sizeof *e);
    snprintf(e->account, sizeof e->account, "%s", account);
    snprintf(e->bank_txn_id, sizeof e->bank_txn_id, "%s", bank_txn_id);
    slot->shared = 1;
    slot->shared_index = id->nshared++;
    return true;
}

void identity_assign(struct identity *id, struct record *r)
{
    struct identity_key k;
    uint32_t first = 0;
    if (r->bank_txn_id[0] != '\0') {
        if (id->nshared == 0) {
            return;
        }
        identity_key(r, &k);
        struct identity_slot *s = identity_find(id, k.b, false);
        if (s == NULL || !s->shared) {
            return;
        }
        identity_fallback_key(r, &k);
    } else {
        identity_key(r, &k);
    }
    identity_assign_fingerprint(r, &k, identity_count(id, &k, r->line, &first));
}

bool identity_verify(struct identity *id, const struct record *r, char *msg, size_t cap)
{
    if (r->amount_fen == 0 || r->bank_txn_id[0] == '\0' || r->id_is_fingerprint) {
        return true;
    }
    struct identity_key k;
    identity_key(r, &k);
    struct identity_slot *s = identity_find(id, k.b, false);
    if (s == NULL) {
        return true; /* not a candidate: seen once */
    }
    /* Should the id turn out shared, its records need their fallback fingerprints counted
     * exactly: they go through the filter now, the way plain fingerprints did in the first pass. */
    struct identity_key fk;
    identity_fallback_key(r, &fk);
    if (identity_observe(id, &fk) == IDENTITY_FULL) {
        snprintf(msg, cap,
                 "more than %u transactions repeat another one's identity; split the file",
                 IDENTITY_CANDIDATES_MAX);
        return false;
    }
    s = identity_find(id, k.b, false); /* the table may have grown */
    if (s->count == 0) {
        s->first_line = r->line;
    }
    s->count++;
    if (s->count == 2 && !s->shared) {
        if (!identity_list_shared(id, s, r->receiving_account, r->bank_txn_id)) {
            snprintf(msg, cap,
                     "more than %d bank transaction ids repeat inside the file; split the file",
                     IDENTITY_SHARED_MAX);
            return false;
        }
        id->shared[s->shared_index].first_line = s->first_line;
        id->shared[s->shared_index].second_line = r->line;
    }
    if (s->shared) {
        id->shared[s->shared_index].count = s->count;
    }
    return true;
}

bool identity_mark_shared(struct identity *id, const char *account, const char *bank_txn_id)
{
    struct record r;
    struct identity_key k;
    record_reset(&r);
    snprintf(r.receiving_account, sizeof r.receiving_account, "%s", account);
    snprintf(r.bank_txn_id, sizeof r.bank_txn_id, "%s", bank_txn_id);
    identity_key(&r, &k);
    struct identity_slot *s = identity_find(id, k.b, false);
    if (s != NULL && s->shared) {
        return true;
    }
    if (s == NULL) {
        if ((id->n + 1) * 4 > id->cap * 3) {
            identity_grow(id);
        }
        s = identity_find(id, k.b, true);
        memcpy(s->key, k.b, 16);
        s->used = 1;
        s->bank = 1;
        id->n++;
    }
    return identity_list_shared(id, s, account, bank_txn_id);
}

uint32_t identity_shared_list(const struct identity *id, const struct identity_shared **list)
{
    *list = id->shared;
    return id->nshared;
}
