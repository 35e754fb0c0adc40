/* Event envelope helpers shared by every producer and consumer of topup.v1 messages. */
#include "topup/event.h"

#include <assert.h>
#include <openssl/evp.h>
#include <string.h>
#include <time.h>

int64_t event_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Topup__V1__Envelope *event_envelope_init(struct event_envelope_buf *b, const char *producer,
                                         const char *account_id)
{
    topup__v1__envelope__init(&b->env);
    ids_uuid7(b->event_id);
    b->env.event_id = b->event_id;
    b->env.occurred_at_ms = event_now_ms();
    b->env.producer = (char *)producer;
    b->env.schema_version = EVENT_SCHEMA_VERSION;
    b->env.account_id = (char *)(account_id != NULL ? account_id : "");
    return &b->env;
}

static bool event_account_valid(const char *a)
{
    size_t n = strlen(a);
    if (n == 0 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (a[i] < 0x21 || a[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

enum tp_status event_envelope_check(const Topup__V1__Envelope *env, int require_account,
                                    struct tp_error *err)
{
    if (env == NULL) {
        return error_set(err, TP_INVALID, "envelope missing");
    }
    if (env->event_id == NULL || !ids_uuid_valid(env->event_id)) {
        return error_set(err, TP_INVALID, "envelope.event_id is not a UUID");
    }
    if (env->schema_version != EVENT_SCHEMA_VERSION) {
        return error_set(err, TP_INVALID, "envelope.schema_version %u is not supported",
                         env->schema_version);
    }
    if (env->occurred_at_ms <= 0) {
        return error_set(err, TP_INVALID, "envelope.occurred_at_ms missing");
    }
    if (require_account && (env->account_id == NULL || !event_account_valid(env->account_id))) {
        return error_set(err, TP_INVALID,
                         "envelope.account_id missing or not 1..64 printable ASCII characters");
    }
    return TP_OK;
}

struct event_digest_sink {
    ProtobufCBuffer base; /* first: protobuf-c calls append with a pointer to it */
    EVP_MD_CTX *md;
};

static void event_digest_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    struct event_digest_sink *s = (struct event_digest_sink *)b;
    EVP_DigestUpdate(s->md, data, len);
}

void event_bsr_digest(const Topup__V1__BankStatementRecord *r, uint8_t out[EVENT_DIGEST_LEN])
{
    /* A shallow copy without the envelope: the event id and times differ between publications
     * of the same record, the record's content does not. */
    Topup__V1__BankStatementRecord bare = *r;
    bare.envelope = NULL;
    struct event_digest_sink sink = {.base = {.append = event_digest_append}};
    sink.md = EVP_MD_CTX_new();
    assert(sink.md != NULL);
    int ok = EVP_DigestInit_ex(sink.md, EVP_sha256(), NULL);
    topup__v1__bank_statement_record__pack_to_buffer(&bare, &sink.base);
    unsigned int len = 0;
    ok = ok && EVP_DigestFinal_ex(sink.md, out, &len);
    /* SHA-256 in the default provider cannot fail short of memory exhaustion. */
    assert(ok && len == EVENT_DIGEST_LEN);
    EVP_MD_CTX_free(sink.md);
}
